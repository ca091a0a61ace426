/* tensor.h — tensor descriptors (dtype + shape, up to 5D, NCDHW contiguous) and aligned memory.
 *
 * A descriptor says what a buffer holds; it never owns memory. Shapes are listed outermost first
 * (N, C, D, H, W for 5D). Strides are implied: the last axis is contiguous.
 */
#ifndef SEGQA_CORE_TENSOR_H
#define SEGQA_CORE_TENSOR_H

#include "core/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQ_MAX_DIMS 5
#define SQ_ALIGN    64

typedef enum sq_dtype {
    SQ_F32 = 0,
    SQ_F64,
    SQ_U8,
    SQ_I8,
    SQ_U16,
    SQ_I16,
    SQ_I32,
    SQ_U32,
    SQ_I64,
    SQ_DTYPE_COUNT
} sq_dtype;

typedef struct sq_tdesc {
    sq_dtype dtype;
    int ndim;
    int64_t shape[SQ_MAX_DIMS];
} sq_tdesc;

size_t sq_dtype_size(sq_dtype dt);
const char *sq_dtype_name(sq_dtype dt);

/* Build a descriptor; fails (SQ_ERR_RANGE) on ndim outside 1..5 or a non-positive extent. */
sq_code sq_tdesc_make(sq_tdesc *d, sq_dtype dt, int ndim, const int64_t *shape, sq_status *st);
/* Convenience for NCDHW. */
sq_tdesc sq_tdesc_5d(sq_dtype dt, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w);

int64_t sq_tdesc_numel(const sq_tdesc *d);
size_t sq_tdesc_nbytes(const sq_tdesc *d);
/* Element strides, last axis 1. */
void sq_tdesc_strides(const sq_tdesc *d, int64_t strides[SQ_MAX_DIMS]);
int sq_tdesc_equal(const sq_tdesc *a, const sq_tdesc *b);
/* "f32[2x28x160x160]" */
int sq_tdesc_format(const sq_tdesc *d, char *buf, size_t n);
/* Parse "2x28x160x160" into shape (up to 5 extents); returns ndim or a failure code. */
sq_code sq_parse_shape(const char *text, int64_t shape[SQ_MAX_DIMS], int *ndim, sq_status *st);

/* 64-byte aligned allocation, zero-filled; size 0 returns a valid unique pointer. NULL on failure.
 */
void *sq_alloc(size_t bytes);
void sq_free(void *p);
/* Round a byte count (or element count) up to a multiple of `align`. */
size_t sq_round_up(size_t n, size_t align);

#ifdef __cplusplus
}
#endif
#endif
