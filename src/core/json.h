/* json.h — JSON files through cJSON, with errors that say where.
 *
 * Parse errors give the file, line and column; writes are atomic (fileio.h). Typed getters check
 * the type of a key and say which key, what was found and what was expected.
 */
#ifndef SEGQA_CORE_JSON_H
#define SEGQA_CORE_JSON_H

#include "core/status.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parse text; `origin` names it in messages (a path, or "<config>"). Caller cJSON_Delete()s. */
sq_code sq_json_parse(const char *text, const char *origin, cJSON **out, sq_status *st);
sq_code sq_json_read_file(const char *path, cJSON **out, sq_status *st);
/* Pretty-printed, newline-terminated, atomic. */
sq_code sq_json_write_file(const char *path, const cJSON *root, sq_status *st);

/* Name of a cJSON node's type for messages: "string", "number", "object", ... */
const char *sq_json_type_name(const cJSON *item);

/* Typed getters on an object. Missing key: SQ_ERR_FORMAT unless `optional` (then *out untouched
 * and SQ_OK). Wrong type: SQ_ERR_FORMAT naming origin, key, found and expected type. */
sq_code sq_json_get_number(const cJSON *obj, const char *key, double *out, int optional,
                           const char *origin, sq_status *st);
sq_code sq_json_get_int(const cJSON *obj, const char *key, long long *out, int optional,
                        const char *origin, sq_status *st);
sq_code sq_json_get_bool(const cJSON *obj, const char *key, int *out, int optional,
                         const char *origin, sq_status *st);
/* Returns a pointer into the cJSON tree (valid while it lives). */
sq_code sq_json_get_string(const cJSON *obj, const char *key, const char **out, int optional,
                           const char *origin, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
