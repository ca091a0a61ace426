/* test_optim.c — Adam against torch.optim.Adam's formula (double-precision host reference), the
 * paper's step schedule with warm-up, and global gradient-norm clipping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/rng.h"
#include "nn/backend.h"
#include "nn/cpu/cpu_backend.h"
#include "optim/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define OK(expr)                                                                                   \
    do {                                                                                           \
        sq_code rc_ = (expr);                                                                      \
        if (rc_ != SQ_OK) fprintf(stderr, "%s\n", st.msg);                                         \
        assert_int_equal(rc_, SQ_OK);                                                              \
    } while (0)

static void test_adam_matches_pytorch_formula(void **state) {
    (void)state;
    sq_status st;
    sq_status_clear(&st);
    sq_backend *be = sq_backend_cpu_create(1, &st);
    assert_non_null(be);
    enum { N = 1000, STEPS = 5 };
    float p[N], g[N];
    double rp[N], rm[N] = {0}, rv[N] = {0};
    sq_rng r;
    sq_rng_init(&r, 3, 0, 0);
    for (int i = 0; i < N; i++)
        rp[i] = p[i] = sq_rng_normal(&r);
    sq_buf *bp, *bg;
    OK(be->buf_alloc(be, sizeof p, &bp, &st));
    OK(be->buf_alloc(be, sizeof g, &bg, &st));
    OK(be->upload(be, bp, 0, p, sizeof p, &st));
    sq_adam_config c = sq_adam_config_default();
    sq_adam_opt *o;
    OK(sq_adam_create(be, N, &c, &o, &st));
    const double lr = 0.002, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < N; i++)
            g[i] = sq_rng_normal(&r) * (i % 7 == 0 ? 1e-6f : 1.0f);
        OK(be->upload(be, bg, 0, g, sizeof g, &st));
        OK(sq_adam_step(o, bp, bg, (float)lr, &st));
        for (int i = 0; i < N; i++) { /* torch.optim.Adam (non-amsgrad, no weight decay) */
            rm[i] = b1 * rm[i] + (1 - b1) * g[i];
            rv[i] = b2 * rv[i] + (1 - b2) * (double)g[i] * g[i];
            double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
            rp[i] -= lr / bc1 * rm[i] / (sqrt(rv[i]) / sqrt(bc2) + eps);
        }
    }
    OK(be->download(be, p, bp, 0, sizeof p, &st));
    double worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(p[i] - rp[i]));
    printf("adam: %d steps, max |C - reference| = %.3e\n", STEPS, worst);
    assert_true(worst < 1e-6);
    assert_int_equal(sq_adam_steps(o), STEPS);
    /* state round trip */
    float *m = malloc(sizeof p), *v = malloc(sizeof p);
    long step;
    OK(sq_adam_get_state(o, m, v, &step, &st));
    assert_int_equal(step, STEPS);
    assert_true(fabs(m[1] - rm[1]) < 1e-6);
    OK(sq_adam_set_state(o, m, v, 42, &st));
    assert_int_equal(sq_adam_steps(o), 42);
    free(m);
    free(v);
    sq_adam_destroy(o);
    be->buf_free(be, bp);
    be->buf_free(be, bg);
    be->destroy(be);
}

static void test_schedule(void **state) {
    (void)state;
    sq_lr_schedule s = sq_lr_schedule_paper();
    assert_true(sq_lr_at(&s, 0, 0) == 0.002);
    assert_true(sq_lr_at(&s, 119, 100000) == 0.002);
    assert_true(sq_lr_at(&s, 120, 100000) == 0.0002);
    assert_true(sq_lr_at(&s, 199, 100000) == 0.0002);
    s.warmup_steps = 10;
    assert_true(fabs(sq_lr_at(&s, 0, 0) - 0.0002) < 1e-12);
    assert_true(fabs(sq_lr_at(&s, 0, 4) - 0.001) < 1e-12);
    assert_true(sq_lr_at(&s, 0, 10) == 0.002);
}

static void test_clip(void **state) {
    (void)state;
    sq_status st;
    sq_status_clear(&st);
    sq_backend *be = sq_backend_cpu_create(1, &st);
    assert_non_null(be);
    float g[4] = {3, 4, 0, 0}, out[4];
    sq_buf *b;
    OK(be->buf_alloc(be, sizeof g, &b, &st));
    OK(be->upload(be, b, 0, g, sizeof g, &st));
    double norm;
    OK(sq_clip_grad_norm(be, b, 4, 10.0, &norm, &st)); /* below: untouched */
    OK(be->download(be, out, b, 0, sizeof out, &st));
    assert_true(fabs(norm - 5.0) < 1e-9 && out[0] == 3.0f);
    OK(sq_clip_grad_norm(be, b, 4, 1.0, &norm, &st));
    OK(be->download(be, out, b, 0, sizeof out, &st));
    assert_true(fabs(out[0] - 0.6) < 1e-5 && fabs(out[1] - 0.8) < 1e-5);
    OK(sq_grad_norm(be, b, 4, &norm, &st));
    assert_true(fabs(norm - 1.0) < 1e-5);
    be->buf_free(be, b);
    be->destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_matches_pytorch_formula),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_clip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
