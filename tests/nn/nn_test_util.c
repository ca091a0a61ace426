/* nn_test_util.c — see nn_test_util.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn_test_util.h"
#include "nn/cpu/cpu_backend.h"

#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static sq_backend *g_be;

sq_backend *tu_backend(void) {
    if (!g_be) {
        sq_status st;
        sq_status_clear(&st);
        g_be = sq_backend_cpu_create(2, &st);
        if (!g_be) fail_msg("cpu backend: %s", st.msg);
    }
    return g_be;
}

tt tu_new(size_t n) {
    sq_backend *be = tu_backend();
    sq_status st;
    sq_status_clear(&st);
    tt t = {NULL, NULL, n};
    if (be->buf_alloc(be, (n ? n : 1) * sizeof(float), &t.b, &st) != SQ_OK)
        fail_msg("alloc: %s", st.msg);
    t.h = be->buf_host(be, t.b);
    return t;
}

tt tu_rand(size_t n, float lo, float hi, uint32_t seed) {
    tt t = tu_new(n);
    sq_rng r;
    sq_rng_init(&r, 1234, seed, 0);
    for (size_t i = 0; i < n; i++)
        t.h[i] = sq_rng_uniform_range(&r, lo, hi);
    return t;
}

void tu_free(tt *t) {
    tu_backend()->buf_free(tu_backend(), t->b);
    t->b = NULL;
    t->h = NULL;
}

void tu_fill(tt t, float v) {
    for (size_t i = 0; i < t.n; i++)
        t.h[i] = v;
}

void tu_copy(tt dst, tt src) {
    memcpy(dst.h, src.h, src.n * sizeof(float));
}

double tu_check(const char *what, const float *got, const double *ref, size_t n, double atol,
                double rtol) {
    double worst = 0.0, maxdiff = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - ref[i]);
        const double r = d / (atol + rtol * fabs(ref[i]));
        if (!(r <= worst)) {
            worst = r;
            at = i;
        }
        if (d > maxdiff) maxdiff = d;
    }
    printf("  %-44s n=%-8zu max|diff|=%.3e  worst/tol=%.3f%s\n", what, n, maxdiff, worst,
           worst <= 1.0 ? "" : "  FAIL");
    if (!(worst <= 1.0))
        printf("    at %zu: got %.9g ref %.9g (atol %.1e rtol %.1e)\n", at, got[at], ref[at], atol,
               rtol);
    return worst;
}

double tu_dot(const float *y, const float *r, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)y[i] * r[i];
    return s;
}

double tu_fd(const char *what, tu_fwd_fn fwd, void *ctx, float *x, size_t nx, const float *grad,
             const float *y, const float *r, size_t ny, float h, int max_pts, double atol,
             double rtol) {
    double worst = 0.0, maxdiff = 0.0;
    const size_t step = nx > (size_t)max_pts ? nx / (size_t)max_pts : 1;
    int pts = 0;
    for (size_t i = (step > 1 ? step / 2 : 0); i < nx && pts < max_pts; i += step, pts++) {
        const float x0 = x[i];
        x[i] = x0 + h;
        fwd(ctx);
        const double lp = tu_dot(y, r, ny);
        x[i] = x0 - h;
        fwd(ctx);
        const double lm = tu_dot(y, r, ny);
        x[i] = x0;
        const double fd = (lp - lm) / ((double)(x0 + h) - (double)(x0 - h));
        const double d = fabs(fd - grad[i]);
        const double q = d / (atol + rtol * fabs(grad[i]));
        if (d > maxdiff) maxdiff = d;
        if (!(q <= worst)) {
            if (q > 1.0) printf("    fd at %zu: fd %.9g analytic %.9g\n", i, fd, (double)grad[i]);
            worst = q;
        }
    }
    fwd(ctx);
    printf("  %-44s fd pts=%-5d max|diff|=%.3e  worst/tol=%.3f%s\n", what, pts, maxdiff, worst,
           worst <= 1.0 ? "" : "  FAIL");
    return worst;
}
