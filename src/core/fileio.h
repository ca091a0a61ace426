/* fileio.h — small file helpers: atomic writes (temp name + rename), whole-file reads, paths.
 *
 * Every output segqa writes goes to "<final>.tmp.<pid>" first and is renamed onto the final name
 * only once complete, so a crash or an error never leaves a half-written file under the real name.
 */
#ifndef SEGQA_CORE_FILEIO_H
#define SEGQA_CORE_FILEIO_H

#include "core/status.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQ_PATH_MAX 4096

/* "<final>.tmp.<pid>" into buf. */
sq_code sq_tmp_path(const char *final_path, char *buf, size_t n, sq_status *st);
/* fsync (best effort) and rename tmp onto final. On failure the temp file is removed. */
sq_code sq_commit_file(const char *tmp_path, const char *final_path, sq_status *st);
/* Write `len` bytes atomically to `path`. */
sq_code sq_write_file_atomic(const char *path, const void *data, size_t len, sq_status *st);
/* Read a whole file (NUL-terminated for text use); caller frees *out with free(). */
sq_code sq_read_file(const char *path, char **out, size_t *len, sq_status *st);
/* mkdir -p */
sq_code sq_mkdirs(const char *path, sq_status *st);
int sq_file_exists(const char *path);

/* Check a text file read whole (len bytes, NUL-terminated): a UTF-8 byte-order mark is skipped
 * (*skip = 3, else 0: Excel writes one), and a NUL byte or a byte sequence that is not UTF-8 is
 * an error naming `origin`, the line and the byte ("expected UTF-8 text"). */
sq_code sq_text_check(const char *origin, const char *text, size_t len, size_t *skip,
                      sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
