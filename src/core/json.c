/* json.c — see json.h. */
#include "core/json.h"

#include "core/fileio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void line_col(const char *text, const char *at, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

sq_code sq_json_parse(const char *text, const char *origin, cJSON **out, sq_status *st) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        const char *at = end ? end : cJSON_GetErrorPtr();
        int line = 0, col = 0;
        if (at) line_col(text, at, &line, &col);
        char near[24] = "";
        if (at && *at) {
            size_t k = 0;
            for (; k < 16 && at[k] && at[k] != '\n'; k++)
                near[k] = at[k];
            near[k] = '\0';
        }
        if (at && *at)
            return sq_fail(st, SQ_ERR_FORMAT, "%s:%d:%d: malformed JSON near '%s'", origin, line,
                           col, near);
        return sq_fail(st, SQ_ERR_FORMAT, "%s:%d:%d: malformed JSON (unexpected end of input)",
                       origin, line, col);
    }
    *out = root;
    return SQ_OK;
}

sq_code sq_json_read_file(const char *path, cJSON **out, sq_status *st) {
    char *text = NULL;
    size_t len = 0;
    SQ_TRY(sq_read_file(path, &text, &len, st));
    size_t skip = 0;
    sq_code rc = sq_text_check(path, text, len, &skip, st);
    if (rc == SQ_OK) rc = sq_json_parse(text + skip, path, out, st);
    free(text);
    return rc;
}

sq_code sq_json_write_file(const char *path, const cJSON *root, sq_status *st) {
    char *text = cJSON_Print(root);
    if (!text) return sq_fail(st, SQ_ERR_NOMEM, "%s: cannot serialise JSON", path);
    size_t n = strlen(text);
    char *buf = malloc(n + 2);
    if (!buf) {
        cJSON_free(text);
        return sq_fail(st, SQ_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(buf, text, n);
    buf[n] = '\n';
    cJSON_free(text);
    sq_code rc = sq_write_file_atomic(path, buf, n + 1, st);
    free(buf);
    return rc;
}

const char *sq_json_type_name(const cJSON *item) {
    if (!item) return "nothing";
    if (cJSON_IsBool(item)) return "boolean";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsNumber(item)) return "number";
    if (cJSON_IsString(item)) return "string";
    if (cJSON_IsArray(item)) return "array";
    if (cJSON_IsObject(item)) return "object";
    return "invalid";
}

static sq_code get_item(const cJSON *obj, const char *key, const cJSON **item, int optional,
                        const char *origin, sq_status *st) {
    if (!cJSON_IsObject(obj))
        return sq_fail(st, SQ_ERR_FORMAT, "%s: expected a JSON object, found %s", origin,
                       sq_json_type_name(obj));
    *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!*item && !optional) return sq_fail(st, SQ_ERR_FORMAT, "%s: missing key '%s'", origin, key);
    return SQ_OK;
}

static sq_code wrong_type(const char *origin, const char *key, const cJSON *item,
                          const char *expected, sq_status *st) {
    return sq_fail(st, SQ_ERR_FORMAT, "%s: key '%s' must be %s, found %s", origin, key, expected,
                   sq_json_type_name(item));
}

sq_code sq_json_get_number(const cJSON *obj, const char *key, double *out, int optional,
                           const char *origin, sq_status *st) {
    const cJSON *it = NULL;
    SQ_TRY(get_item(obj, key, &it, optional, origin, st));
    if (!it) return SQ_OK;
    if (!cJSON_IsNumber(it)) return wrong_type(origin, key, it, "a number", st);
    *out = it->valuedouble;
    return SQ_OK;
}

sq_code sq_json_get_int(const cJSON *obj, const char *key, long long *out, int optional,
                        const char *origin, sq_status *st) {
    const cJSON *it = NULL;
    SQ_TRY(get_item(obj, key, &it, optional, origin, st));
    if (!it) return SQ_OK;
    if (!cJSON_IsNumber(it)) return wrong_type(origin, key, it, "an integer", st);
    double v = it->valuedouble;
    if (!isfinite(v) || v != floor(v) || fabs(v) > 9.0e15)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: key '%s' must be an integer, found %g", origin, key,
                       v);
    *out = (long long)v;
    return SQ_OK;
}

sq_code sq_json_get_bool(const cJSON *obj, const char *key, int *out, int optional,
                         const char *origin, sq_status *st) {
    const cJSON *it = NULL;
    SQ_TRY(get_item(obj, key, &it, optional, origin, st));
    if (!it) return SQ_OK;
    if (!cJSON_IsBool(it)) return wrong_type(origin, key, it, "true or false", st);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return SQ_OK;
}

sq_code sq_json_get_string(const cJSON *obj, const char *key, const char **out, int optional,
                           const char *origin, sq_status *st) {
    const cJSON *it = NULL;
    SQ_TRY(get_item(obj, key, &it, optional, origin, st));
    if (!it) return SQ_OK;
    if (!cJSON_IsString(it)) return wrong_type(origin, key, it, "a string", st);
    *out = it->valuestring;
    return SQ_OK;
}
