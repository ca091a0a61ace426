/* test_model_gradcheck.c — finite differences of the whole network against its backward pass.
 *
 * Tiny shape (N x 2 x 8 x 12 x 8, isotropic 1 mm), CPU backend. For a spread of parameter tensors
 * (every 3rd in eval mode, every 16th in train mode) the coordinate with the largest analytic
 * gradient is perturbed by ±h and the central difference of the loss compared with the gradient;
 * plus one directional derivative along a random direction over all parameters at once.
 * Eval mode: batch 2, frozen BN statistics, well conditioned (2 % tolerance, no outlier allowed).
 * Train mode: batch statistics over few values at the 1x1x1 levels make the loss steep and curved
 * (gradients ~1e2), so batch 16, smaller steps, 5 % tolerance and at most 2 outliers; the exact
 * train-mode check is the PyTorch parity test. Also: a re-plan with the same shape keeps the arena,
 * and backward refuses to run without a loss or without a gradient plan; a training step at the
 * hippocampus shape (2 x 2 x 40 x 56 x 40) gives finite estimates and gradients.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/rng.h"
#include "model/model.h"
#include "nn/cpu/cpu_backend.h"
#include "nn/backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK(expr)                                                                                   \
    do {                                                                                           \
        sq_code rc_ = (expr);                                                                      \
        if (rc_ != SQ_OK) fprintf(stderr, "%s\n", st.msg);                                         \
        assert_int_equal(rc_, SQ_OK);                                                              \
    } while (0)

typedef struct fixture {
    sq_backend *be;
    sq_model *m;
    float *x, t[16];
    int n;
} fixture;

static sq_model_config tiny(void) {
    sq_model_config c = sq_model_config_default();
    c.depth = 8, c.height = 12, c.width = 8;
    c.spacing[0] = c.spacing[1] = c.spacing[2] = 1.0;
    c.depth_rule = SQ_DEPTH_ISOTROPIC;
    return c;
}

static double loss_at(fixture *f, sq_status *stp) {
    sq_status st;
    sq_status_clear(&st);
    float l;
    OK(sq_model_forward(f->m, f->x, NULL, &st));
    OK(sq_model_loss(f->m, f->t, &l, &st));
    (void)stp;
    return l;
}

static void setup(fixture *f, int n) {
    sq_status st;
    sq_status_clear(&st);
    memset(f, 0, sizeof *f);
    f->n = n;
    f->be = sq_backend_cpu_create(1, &st);
    assert_non_null(f->be);
    sq_model_config c = tiny();
    OK(sq_model_create(&c, f->be, &f->m, &st));
    OK(sq_model_init(f->m, 7, &st));
    size_t nx = (size_t)n * 2 * c.depth * c.height * c.width;
    f->x = malloc(nx * sizeof(float));
    sq_rng r;
    sq_rng_init(&r, 5, 0, 0);
    for (size_t i = 0; i < nx; i++)
        f->x[i] = sq_rng_normal(&r);
    for (int i = 0; i < n; i++)
        f->t[i] = 0.2f + 0.6f * sq_rng_uniform(&r);
    /* random running statistics so that eval mode is not an identity BN */
    size_t ns = sq_model_state_floats(f->m);
    float *s = calloc(ns, sizeof(float));
    for (int i = 0; i < sq_model_nstate(f->m); i++) {
        const sq_param_info *si = sq_model_state(f->m, i);
        int var = strstr(si->name, "running_var") != NULL;
        for (int64_t j = 0; j < si->numel; j++)
            s[si->off + j] =
                var ? sq_rng_uniform_range(&r, 0.5f, 2.0f) : sq_rng_uniform_range(&r, -0.3f, 0.3f);
    }
    OK(sq_model_set_state(f->m, s, &st));
    free(s);
    OK(sq_model_plan(f->m, n, 1, &st));
}

static void teardown(fixture *f) {
    sq_model_destroy(f->m);
    f->be->destroy(f->be);
    free(f->x);
}

static void gradcheck(int training, int n, int every, double rtol, double atol, int max_bad) {
    sq_status st;
    sq_status_clear(&st);
    fixture f;
    setup(&f, n);
    sq_model *m = f.m;
    sq_model_set_training(m, training);
    size_t np = sq_model_params_floats(m);
    float *p = malloc(np * sizeof(float)), *g = malloc(np * sizeof(float));
    float *s0 = malloc(sq_model_state_floats(m) * sizeof(float));
    OK(sq_model_get_state(m, s0, &st));
    OK(sq_model_get_params(m, p, &st));
    (void)loss_at(&f, &st);
    OK(sq_model_backward(m, &st));
    OK(sq_model_get_grads(m, g, &st));
    int bad = 0, checked = 0;
    double worst = 0;
    for (int i = 0; i < sq_model_nparams(m); i += every) {
        const sq_param_info *pi = sq_model_param(m, i);
        size_t best = pi->off;
        for (int64_t j = 0; j < pi->numel; j++)
            if (fabsf(g[pi->off + j]) > fabsf(g[best])) best = pi->off + (size_t)j;
        float orig = p[best];
        double h = (training ? 1e-3 : 1e-2) * fmax(1.0, fabs(orig));
        p[best] = (float)(orig + h);
        OK(sq_model_set_params(m, p, &st));
        double lp = loss_at(&f, &st);
        p[best] = (float)(orig - h);
        OK(sq_model_set_params(m, p, &st));
        double lm = loss_at(&f, &st);
        p[best] = orig;
        double fd = (lp - lm) / (2 * h), an = g[best];
        double err = fabs(fd - an), lim = rtol * fmax(fabs(fd), fabs(an)) + atol;
        checked++;
        if (fmax(fabs(fd), fabs(an)) > atol) worst = fmax(worst, err / fmax(fabs(fd), fabs(an)));
        if (err > lim) {
            bad++;
            printf("  %-44s analytic % .5e  numeric % .5e\n", pi->name, an, fd);
        }
    }
    OK(sq_model_set_params(m, p, &st));
    /* directional derivative over all parameters */
    sq_rng r;
    sq_rng_init(&r, 11, 0, 0);
    float *d = calloc(np, sizeof(float)), *q = malloc(np * sizeof(float));
    double gd = 0, nd = 0;
    for (size_t i = 0; i < np; i++) {
        d[i] = sq_rng_normal(&r);
        gd += (double)g[i] * d[i];
        nd += (double)d[i] * d[i];
    }
    double h = (training ? 1e-5 : 1e-3) / sqrt(nd / (double)np);
    for (size_t i = 0; i < np; i++)
        q[i] = p[i] + (float)(h * d[i]);
    OK(sq_model_set_params(m, q, &st));
    double lp = loss_at(&f, &st);
    for (size_t i = 0; i < np; i++)
        q[i] = p[i] - (float)(h * d[i]);
    OK(sq_model_set_params(m, q, &st));
    double lm = loss_at(&f, &st);
    double fdd = (lp - lm) / (2 * h);
    printf("%s mode, batch %d: %d/%d tensors outside tolerance (worst relative error %.2e); "
           "directional derivative analytic %.6e numeric %.6e\n",
           training ? "train" : "eval", n, bad, checked, worst, gd, fdd);
    assert_true(bad <= max_bad);
    assert_true(fabs(fdd - gd) <= 5e-2 * fmax(fabs(gd), fabs(fdd)) + 1e-4);
    free(p);
    free(g);
    free(q);
    free(d);
    free(s0);
    teardown(&f);
}

static void test_gradcheck_eval(void **state) {
    (void)state;
    gradcheck(0, 2, 3, 2e-2, 2e-4, 0);
}

static void test_gradcheck_train(void **state) {
    (void)state;
    gradcheck(1, 16, 16, 5e-2, 1e-3, 2);
}

static void test_plan_is_reused(void **state) {
    (void)state;
    sq_status st;
    sq_status_clear(&st);
    fixture f;
    setup(&f, 2);
    size_t bytes = sq_model_arena_bytes(f.m);
    assert_true(bytes > 0);
    long built = sq_model_plans_built(f.m);
    assert_true(built >= 1);
    OK(sq_model_plan(f.m, 2, 1, &st)); /* same shape: no-op, nothing rebuilt */
    assert_int_equal(sq_model_plans_built(f.m), built);
    assert_int_equal(sq_model_arena_bytes(f.m), bytes);
    OK(sq_model_plan(f.m, 2, 0, &st)); /* control: another mode is a real re-plan */
    assert_int_equal(sq_model_plans_built(f.m), built + 1);
    OK(sq_model_plan(f.m, 2, 1, &st));
    assert_int_equal(sq_model_plans_built(f.m), built + 2);
    double l1 = loss_at(&f, &st);
    OK(sq_model_backward(f.m, &st));
    double l2 = loss_at(&f, &st);
    assert_true(l1 == l2); /* eval-independent: train mode forward is deterministic */
    /* backward needs a loss first */
    OK(sq_model_forward(f.m, f.x, NULL, &st));
    assert_int_equal(sq_model_backward(f.m, &st), SQ_ERR_INTERNAL);
    /* a plan without gradients refuses backward */
    OK(sq_model_plan(f.m, 1, 0, &st));
    OK(sq_model_forward(f.m, f.x, NULL, &st));
    OK(sq_model_loss(f.m, f.t, NULL, &st));
    assert_int_equal(sq_model_backward(f.m, &st), SQ_ERR_INTERNAL);
    assert_int_equal(sq_model_plan(f.m, 0, 0, &st), SQ_ERR_RANGE);
    teardown(&f);
}

/* The hippocampus shape of DESIGN §3 (2 x 2 x 40 x 56 x 40 at 1 mm, isotropic): a training step
 * runs and gives finite estimates in (0, 1) and finite gradients. */
static void test_hippocampus_shape_runs(void **state) {
    (void)state;
    sq_status st;
    sq_status_clear(&st);
    sq_backend *be = sq_backend_cpu_create(1, &st);
    assert_non_null(be);
    sq_model_config c = tiny();
    c.depth = 40, c.height = 56, c.width = 40;
    sq_model *m;
    OK(sq_model_create(&c, be, &m, &st));
    OK(sq_model_plan(m, 2, 1, &st));
    size_t nx = (size_t)2 * 2 * 40 * 56 * 40;
    float *x = malloc(nx * sizeof(float)), y[2], t[2] = {0.9f, 0.5f}, loss;
    sq_rng r;
    sq_rng_init(&r, 8, 0, 0);
    for (size_t i = 0; i < nx; i++)
        x[i] = sq_rng_normal(&r);
    OK(sq_model_forward(m, x, y, &st));
    OK(sq_model_loss(m, t, &loss, &st));
    OK(sq_model_backward(m, &st));
    size_t np = sq_model_params_floats(m);
    float *g = malloc(np * sizeof(float));
    OK(sq_model_get_grads(m, g, &st));
    double norm = 0;
    for (size_t i = 0; i < np; i++)
        norm += (double)g[i] * g[i];
    printf("40x56x40: estimates %.4f %.4f, loss %.4f, |grad| %.3e, arena %.0f MiB\n", y[0], y[1],
           loss, sqrt(norm), sq_model_arena_bytes(m) / 1048576.0);
    assert_true(y[0] > 0 && y[0] < 1 && y[1] > 0 && y[1] < 1);
    assert_true(isfinite(loss) && isfinite(norm) && norm > 0);
    free(x);
    free(g);
    sq_model_destroy(m);
    be->destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_eval),
        cmocka_unit_test(test_gradcheck_train),
        cmocka_unit_test(test_plan_is_reused),
        cmocka_unit_test(test_hippocampus_shape_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
