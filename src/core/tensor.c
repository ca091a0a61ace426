/* tensor.c — see tensor.h. */
#include "core/tensor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    size_t size;
    const char *name;
} k_dtypes[SQ_DTYPE_COUNT] = {
    [SQ_F32] = {4, "f32"}, [SQ_F64] = {8, "f64"}, [SQ_U8] = {1, "u8"},
    [SQ_I8] = {1, "i8"},   [SQ_U16] = {2, "u16"}, [SQ_I16] = {2, "i16"},
    [SQ_I32] = {4, "i32"}, [SQ_U32] = {4, "u32"}, [SQ_I64] = {8, "i64"},
};

size_t sq_dtype_size(sq_dtype dt) {
    return (unsigned)dt < SQ_DTYPE_COUNT ? k_dtypes[dt].size : 0;
}

const char *sq_dtype_name(sq_dtype dt) {
    return (unsigned)dt < SQ_DTYPE_COUNT ? k_dtypes[dt].name : "?";
}

sq_code sq_tdesc_make(sq_tdesc *d, sq_dtype dt, int ndim, const int64_t *shape, sq_status *st) {
    if ((unsigned)dt >= SQ_DTYPE_COUNT) return sq_fail(st, SQ_ERR_RANGE, "unknown dtype %d", dt);
    if (ndim < 1 || ndim > SQ_MAX_DIMS)
        return sq_fail(st, SQ_ERR_RANGE, "tensor rank %d: expected 1..%d", ndim, SQ_MAX_DIMS);
    memset(d, 0, sizeof *d);
    d->dtype = dt;
    d->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return sq_fail(st, SQ_ERR_RANGE, "tensor extent %d is %lld: expected > 0", i,
                           (long long)shape[i]);
        d->shape[i] = shape[i];
    }
    return SQ_OK;
}

sq_tdesc sq_tdesc_5d(sq_dtype dt, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w) {
    sq_tdesc t = {dt, 5, {n, c, d, h, w}};
    return t;
}

int64_t sq_tdesc_numel(const sq_tdesc *d) {
    int64_t n = 1;
    for (int i = 0; i < d->ndim; i++)
        n *= d->shape[i];
    return n;
}

size_t sq_tdesc_nbytes(const sq_tdesc *d) {
    return (size_t)sq_tdesc_numel(d) * sq_dtype_size(d->dtype);
}

void sq_tdesc_strides(const sq_tdesc *d, int64_t strides[SQ_MAX_DIMS]) {
    int64_t s = 1;
    for (int i = SQ_MAX_DIMS - 1; i >= 0; i--) {
        if (i >= d->ndim) {
            strides[i] = 0;
            continue;
        }
        strides[i] = s;
        s *= d->shape[i];
    }
}

int sq_tdesc_equal(const sq_tdesc *a, const sq_tdesc *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

int sq_tdesc_format(const sq_tdesc *d, char *buf, size_t n) {
    int w = snprintf(buf, n, "%s[", sq_dtype_name(d->dtype));
    for (int i = 0; i < d->ndim && w >= 0 && (size_t)w < n; i++)
        w += snprintf(buf + w, n - (size_t)w, "%s%lld", i ? "x" : "", (long long)d->shape[i]);
    if (w >= 0 && (size_t)w < n) w += snprintf(buf + w, n - (size_t)w, "]");
    return w;
}

sq_code sq_parse_shape(const char *text, int64_t shape[SQ_MAX_DIMS], int *ndim, sq_status *st) {
    const char *p = text;
    int n = 0;
    if (!text || !*text)
        return sq_fail(st, SQ_ERR_USAGE, "empty shape: expected e.g. 2x28x160x160");
    while (*p) {
        if (n == SQ_MAX_DIMS)
            return sq_fail(st, SQ_ERR_USAGE, "shape '%s' has more than %d extents", text,
                           SQ_MAX_DIMS);
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v <= 0 || v > (1LL << 31))
            return sq_fail(st, SQ_ERR_USAGE,
                           "shape '%s': expected positive integers separated by 'x'", text);
        shape[n++] = v;
        p = end;
        if (*p == 'x' || *p == 'X' || *p == ',') {
            p++;
            if (!*p) return sq_fail(st, SQ_ERR_USAGE, "shape '%s' ends with a separator", text);
        } else if (*p) {
            return sq_fail(
                st, SQ_ERR_USAGE,
                "shape '%s': unexpected '%c', expected positive integers separated by 'x'", text,
                *p);
        }
    }
    *ndim = n;
    return SQ_OK;
}

size_t sq_round_up(size_t n, size_t align) {
    return (n + align - 1) / align * align;
}

void *sq_alloc(size_t bytes) {
    size_t sz = sq_round_up(bytes ? bytes : 1, SQ_ALIGN);
    void *p = aligned_alloc(SQ_ALIGN, sz);
    if (p) memset(p, 0, sz);
    return p;
}

void sq_free(void *p) {
    free(p);
}
