/* fileio.c — see fileio.h. */
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

sq_code sq_tmp_path(const char *final_path, char *buf, size_t n, sq_status *st) {
    int w = snprintf(buf, n, "%s.tmp.%ld", final_path, (long)getpid());
    if (w < 0 || (size_t)w >= n) return sq_fail(st, SQ_ERR_RANGE, "%s: path too long", final_path);
    return SQ_OK;
}

sq_code sq_commit_file(const char *tmp_path, const char *final_path, sq_status *st) {
    int fd = open(tmp_path, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    if (rename(tmp_path, final_path) != 0) {
        int e = errno;
        unlink(tmp_path);
        return sq_fail(st, SQ_ERR_IO, "%s: cannot rename from %s: %s", final_path, tmp_path,
                       strerror(e));
    }
    return SQ_OK;
}

sq_code sq_write_file_atomic(const char *path, const void *data, size_t len, sq_status *st) {
    char tmp[SQ_PATH_MAX];
    SQ_TRY(sq_tmp_path(path, tmp, sizeof tmp, st));
    FILE *f = fopen(tmp, "wb");
    if (!f) return sq_fail(st, SQ_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t w = len ? fwrite(data, 1, len, f) : 0;
    int ok = (w == len) && fflush(f) == 0;
    int e = errno;
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        unlink(tmp);
        return sq_fail(st, SQ_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return sq_commit_file(tmp, path, st);
}

sq_code sq_read_file(const char *path, char **out, size_t *len, sq_status *st) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sq_fail(st, SQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return sq_fail(st, SQ_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return sq_fail(st, SQ_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return sq_fail(st, SQ_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return SQ_OK;
}

sq_code sq_mkdirs(const char *path, sq_status *st) {
    char buf[SQ_PATH_MAX];
    int w = snprintf(buf, sizeof buf, "%s", path);
    if (w < 0 || (size_t)w >= sizeof buf)
        return sq_fail(st, SQ_ERR_RANGE, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return sq_fail(st, SQ_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return sq_fail(st, SQ_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return sq_fail(st, SQ_ERR_IO, "%s: exists and is not a directory", buf);
    return SQ_OK;
}

int sq_file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Length of the UTF-8 sequence starting at p (at most n bytes), 0 when it is not valid UTF-8. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    size_t k = p[0] < 0x80             ? 1
               : (p[0] & 0xE0) == 0xC0 ? 2
               : (p[0] & 0xF0) == 0xE0 ? 3
               : (p[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (k == 0 || k > n || (k == 2 && p[0] < 0xC2)) return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if (k == 3 && p[0] == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
    if (k == 3 && p[0] == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
    if (k == 4 && ((p[0] == 0xF0 && p[1] < 0x90) || p[0] > 0xF4 || (p[0] == 0xF4 && p[1] >= 0x90)))
        return 0;
    return k;
}

sq_code sq_text_check(const char *origin, const char *text, size_t len, size_t *skip,
                      sq_status *st) {
    const unsigned char *p = (const unsigned char *)text;
    size_t i = len >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF ? 3 : 0;
    *skip = i;
    int line = 1;
    while (i < len) {
        if (p[i] == 0)
            return sq_fail(st, SQ_ERR_FORMAT, "%s:%d: NUL byte at offset %zu, expected UTF-8 text",
                           origin, line, i);
        size_t k = utf8_len(p + i, len - i);
        if (k == 0)
            return sq_fail(st, SQ_ERR_FORMAT,
                           "%s:%d: byte 0x%02x at offset %zu is not UTF-8, expected UTF-8 text "
                           "(re-save the file as UTF-8)",
                           origin, line, p[i], i);
        line += p[i] == '\n';
        i += k;
    }
    return SQ_OK;
}
