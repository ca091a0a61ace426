/* nn_test_util.h — shared helpers of the nn tests: a CPU backend, host-visible test tensors,
 * random fills, max-error reports and central finite differences of a scalar probe loss.
 */
#ifndef SEGQA_TESTS_NN_UTIL_H
#define SEGQA_TESTS_NN_UTIL_H

#include "nn/backend.h"

#include <stddef.h>
#include <stdint.h>

/* A tensor in a backend buffer; `h` is its host pointer (CPU backend). */
typedef struct tt {
    sq_buf *b;
    float *h;
    size_t n;
} tt;

sq_backend *tu_backend(void); /* created once, 2 threads; aborts the test on failure */
tt tu_new(size_t n);          /* zero-filled */
tt tu_rand(size_t n, float lo, float hi, uint32_t seed);
void tu_free(tt *t);
static inline sq_view tu_v(tt t) {
    return sq_view_of(t.b, 0);
}
void tu_fill(tt t, float v);
void tu_copy(tt dst, tt src);

/* max |got - ref| / (atol + rtol * |ref|) over n; prints a one-line report; returns that ratio
 * (<= 1 means within tolerance). */
double tu_check(const char *what, const float *got, const double *ref, size_t n, double atol,
                double rtol);

/* Probe loss L = sum_j r_j y_j in double. */
double tu_dot(const float *y, const float *r, size_t n);

/* Central finite differences: for up to `max_pts` elements of x (spread evenly), perturb by +-h,
 * call fwd(ctx) (which recomputes y), and compare (L+ - L-) / 2h with grad[i]. Tolerance
 * |fd - grad| <= atol + rtol * |grad|. Returns the worst ratio as tu_check. */
typedef void (*tu_fwd_fn)(void *ctx);
double tu_fd(const char *what, tu_fwd_fn fwd, void *ctx, float *x, size_t nx, const float *grad,
             const float *y, const float *r, size_t ny, float h, int max_pts, double atol,
             double rtol);

#endif
