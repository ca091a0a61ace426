/* test_nn_ops.c — the non-convolution ops of the CPU backend: BatchNorm (training, inference,
 * running-average update, fused ReLU/swish, fused residual add), sigmoid/swish/ReLU, PReLU, global
 * average pooling, channel scaling, max pooling (ceil-mode edges, first-max ties), nearest resize
 * (non-integer ratios), fast normalised fusion, add/axpy, MSE and Adam.
 *
 * Each forward is checked against a double-precision reference, each backward against central
 * finite differences of the float forward with the probe loss L = sum r*y. Tolerances:
 *  - forwards: |got-ref| <= 1e-6 + 2e-6 |ref| (element-wise ops; BN uses 2e-6 + 1e-5 |ref|);
 *  - FD of ops linear in the perturbed input (pooling, resize, GAP, scaling, PReLU alpha, fusion
 *    inputs): h = 0.25 (pool: 1e-3 on values 0.01 apart), |fd-an| <= 1e-4 + 1e-4|an|;
 *  - FD of non-linear ops (activations, BN, fusion weights, MSE): h = 1e-2 or 1e-3, stated at
 *    each call, |fd-an| <= 2e-3 + 2e-3|an| (float forward rounding divided by 2h dominates).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn_test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define OK(expr)                                                                                   \
    do {                                                                                           \
        sq_status st_;                                                                             \
        sq_status_clear(&st_);                                                                     \
        sq_code rc_ = (expr);                                                                      \
        if (rc_ != SQ_OK) fail_msg("%s: %s", #expr, st_.msg);                                      \
    } while (0)
#define ST (&st_)

static double *dalloc(size_t n) {
    return calloc(n ? n : 1, sizeof(double));
}

static double dsig(double z) {
    return 1.0 / (1.0 + exp(-z));
}
static double dact(sq_act a, double z) {
    switch (a) {
    case SQ_ACT_RELU: return z > 0 ? z : 0;
    case SQ_ACT_SIGMOID: return dsig(z);
    case SQ_ACT_SWISH: return z * dsig(z);
    default: return z;
    }
}

/* ---- BatchNorm ------------------------------------------------------------------------------ */

typedef struct bn_ctx {
    sq_bn p;
    tt x, g, b, rm, rv, res, y, sm, si;
    int use_res;
} bn_ctx;

static void bn_run(void *vc) {
    bn_ctx *c = vc;
    sq_backend *be = tu_backend();
    /* no running update during finite differences: pass none in training mode */
    OK(be->bn_fwd(
        be, &c->p, tu_v(c->x), tu_v(c->g), tu_v(c->b), c->p.training ? sq_view_none() : tu_v(c->rm),
        c->p.training ? sq_view_none() : tu_v(c->rv), c->use_res ? tu_v(c->res) : sq_view_none(),
        tu_v(c->y), tu_v(c->sm), tu_v(c->si), ST));
}

static void bn_case(sq_shape5 s, sq_act act, int use_res, int training) {
    sq_backend *be = tu_backend();
    const size_t n = (size_t)sq_shape5_numel(s), S = (size_t)s.d * s.h * s.w, M = s.n * S;
    printf("bn %dx%dx%dx%dx%d act %d residual %d training %d\n", s.n, s.c, s.d, s.h, s.w, act,
           use_res, training);
    bn_ctx c = {.p = {s, 1e-3f, 0.1f, training, act}, .use_res = use_res};
    c.x = tu_rand(n, -2, 3, 11);
    c.g = tu_rand(s.c, 0.5f, 1.5f, 12);
    c.b = tu_rand(s.c, -0.5f, 0.5f, 13);
    c.rm = tu_rand(s.c, -0.2f, 0.2f, 14);
    c.rv = tu_rand(s.c, 0.5f, 2.0f, 15);
    c.res = tu_rand(n, -1, 1, 16);
    c.y = tu_new(n);
    c.sm = tu_new(s.c);
    c.si = tu_new(s.c);
    tt rm0 = tu_new(s.c), rv0 = tu_new(s.c);
    tu_copy(rm0, c.rm);
    tu_copy(rv0, c.rv);
    /* forward with the running update */
    OK(be->bn_fwd(be, &c.p, tu_v(c.x), tu_v(c.g), tu_v(c.b), tu_v(c.rm), tu_v(c.rv),
                  use_res ? tu_v(c.res) : sq_view_none(), tu_v(c.y), tu_v(c.sm), tu_v(c.si), ST));
    double *ry = dalloc(n), *rrm = dalloc(s.c), *rrv = dalloc(s.c);
    for (int ch = 0; ch < s.c; ch++) {
        double mean = 0, var = 0;
        for (int nn = 0; nn < s.n; nn++)
            for (size_t i = 0; i < S; i++)
                mean += c.x.h[((size_t)nn * s.c + ch) * S + i];
        mean /= (double)M;
        for (int nn = 0; nn < s.n; nn++)
            for (size_t i = 0; i < S; i++) {
                const double d = c.x.h[((size_t)nn * s.c + ch) * S + i] - mean;
                var += d * d;
            }
        const double unb = M > 1 ? var / (double)(M - 1) : var / (double)M;
        var /= (double)M;
        if (!training) {
            mean = rm0.h[ch];
            var = rv0.h[ch];
        }
        rrm[ch] = training ? 0.9 * rm0.h[ch] + 0.1 * mean : rm0.h[ch];
        rrv[ch] = training ? 0.9 * rv0.h[ch] + 0.1 * unb : rv0.h[ch];
        const double inv = 1.0 / sqrt(var + 1e-3);
        for (int nn = 0; nn < s.n; nn++)
            for (size_t i = 0; i < S; i++) {
                const size_t o = ((size_t)nn * s.c + ch) * S + i;
                ry[o] = dact(act, c.g.h[ch] * (c.x.h[o] - mean) * inv + c.b.h[ch]) +
                        (use_res ? c.res.h[o] : 0.0);
            }
    }
    assert_true(tu_check("forward y", c.y.h, ry, n, 2e-6, 1e-5) <= 1.0);
    assert_true(tu_check("running_mean", c.rm.h, rrm, s.c, 1e-6, 2e-6) <= 1.0);
    assert_true(tu_check("running_var (unbiased batch var)", c.rv.h, rrv, s.c, 1e-6, 2e-6) <= 1.0);
    /* backward vs finite differences */
    tt r = tu_rand(n, -1, 1, 17), dx = tu_new(n), dg = tu_new(s.c), db = tu_new(s.c);
    tu_copy(c.rm, rm0);
    tu_copy(c.rv, rv0);
    bn_run(&c);
    OK(be->bn_bwd(be, &c.p, tu_v(c.x), tu_v(c.g), tu_v(c.b), tu_v(c.sm), tu_v(c.si), tu_v(r),
                  tu_v(dx), tu_v(dg), tu_v(db), ST));
    if (act != SQ_ACT_RELU) {
        assert_true(tu_fd("fd dx (h 1e-2)", bn_run, &c, c.x.h, n, dx.h, c.y.h, r.h, n, 1e-2f, 24,
                          2e-3, 2e-3) <= 1.0);
        assert_true(tu_fd("fd dgamma (h 1e-2)", bn_run, &c, c.g.h, s.c, dg.h, c.y.h, r.h, n, 1e-2f,
                          8, 2e-3, 2e-3) <= 1.0);
    }
    assert_true(tu_fd("fd dbeta (h 1e-3)", bn_run, &c, c.b.h, s.c, db.h, c.y.h, r.h, n, 1e-3f, 8,
                      2e-3, 2e-3) <= 1.0);
    tt *all[] = {&c.x,  &c.g, &c.b, &c.rm, &c.rv, &c.res, &c.y, &c.sm,
                 &c.si, &rm0, &rv0, &r,    &dx,   &dg,    &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tu_free(all[i]);
    free(ry);
    free(rrm);
    free(rrv);
}

static void test_batchnorm(void **state) {
    (void)state;
    bn_case((sq_shape5){2, 3, 1, 5, 7}, SQ_ACT_NONE, 0, 1);
    bn_case((sq_shape5){2, 3, 3, 2, 5}, SQ_ACT_SWISH, 0, 1);
    bn_case((sq_shape5){1, 4, 3, 5, 1}, SQ_ACT_NONE, 1, 1);
    bn_case((sq_shape5){2, 2, 2, 3, 7}, SQ_ACT_RELU, 0, 1);
    bn_case((sq_shape5){2, 3, 1, 5, 7}, SQ_ACT_SWISH, 1, 0);
    bn_case((sq_shape5){1, 2, 1, 1, 3}, SQ_ACT_NONE, 0, 1); /* 3 values per channel */
}

/* ---- activations, PReLU --------------------------------------------------------------------- */

typedef struct act_ctx {
    sq_act a;
    tt x, y;
} act_ctx;

static void act_run(void *vc) {
    act_ctx *c = vc;
    sq_backend *be = tu_backend();
    OK(be->act_fwd(be, c->a, (int64_t)c->x.n, tu_v(c->x), tu_v(c->y), ST));
}

static void test_activations(void **state) {
    (void)state;
    sq_backend *be = tu_backend();
    const size_t n = 1009;
    const sq_act acts[3] = {SQ_ACT_SIGMOID, SQ_ACT_SWISH, SQ_ACT_RELU};
    const char *names[3] = {"sigmoid", "swish", "relu"};
    for (int k = 0; k < 3; k++) {
        printf("%s\n", names[k]);
        act_ctx c = {acts[k], tu_rand(n, -6, 6, 21), tu_new(n)};
        for (size_t i = 0; i < n; i++)
            if (fabsf(c.x.h[i]) < 0.05f) c.x.h[i] = 0.5f; /* away from the ReLU kink */
        act_run(&c);
        double *ref = dalloc(n);
        for (size_t i = 0; i < n; i++)
            ref[i] = dact(acts[k], c.x.h[i]);
        assert_true(tu_check("forward", c.y.h, ref, n, 1e-6, 2e-6) <= 1.0);
        tt r = tu_rand(n, -1, 1, 22), dx = tu_new(n);
        OK(be->act_bwd(be, acts[k], (int64_t)n, tu_v(c.x), tu_v(r), tu_v(dx), ST));
        assert_true(tu_fd("fd dx (h 1e-2)", act_run, &c, c.x.h, n, dx.h, c.y.h, r.h, n, 1e-2f, 200,
                          2e-3, 2e-3) <= 1.0);
        /* in place: y == x */
        tt z = tu_new(n);
        tu_copy(z, c.x);
        OK(be->act_fwd(be, acts[k], (int64_t)n, tu_v(z), tu_v(z), ST));
        assert_true(tu_check("forward in place", z.h, ref, n, 1e-6, 2e-6) <= 1.0);
        free(ref);
        tu_free(&c.x);
        tu_free(&c.y);
        tu_free(&r);
        tu_free(&dx);
        tu_free(&z);
    }
}

typedef struct prelu_ctx {
    sq_shape5 s;
    tt x, a, y;
} prelu_ctx;

static void prelu_run(void *vc) {
    prelu_ctx *c = vc;
    sq_backend *be = tu_backend();
    OK(be->prelu_fwd(be, c->s, tu_v(c->x), tu_v(c->a), tu_v(c->y), ST));
}

static void test_prelu(void **state) {
    (void)state;
    sq_backend *be = tu_backend();
    const sq_shape5 s = {2, 3, 1, 4, 5};
    const size_t n = (size_t)sq_shape5_numel(s), S = 20;
    prelu_ctx c = {s, tu_rand(n, -1, 1, 31), tu_rand(3, 0.05f, 0.4f, 32), tu_new(n)};
    for (size_t i = 0; i < n; i++)
        if (fabsf(c.x.h[i]) < 0.05f) c.x.h[i] = -0.5f;
    prelu_run(&c);
    double *ref = dalloc(n);
    for (size_t i = 0; i < n; i++) {
        const int ch = (int)(i / S) % 3;
        ref[i] = c.x.h[i] > 0 ? c.x.h[i] : (double)c.a.h[ch] * c.x.h[i];
    }
    printf("prelu\n");
    assert_true(tu_check("forward", c.y.h, ref, n, 1e-6, 2e-6) <= 1.0);
    tt r = tu_rand(n, -1, 1, 33), dx = tu_new(n), da = tu_new(3);
    OK(be->prelu_bwd(be, s, tu_v(c.x), tu_v(c.a), tu_v(r), tu_v(dx), tu_v(da), ST));
    assert_true(tu_fd("fd dx (h 1e-2)", prelu_run, &c, c.x.h, n, dx.h, c.y.h, r.h, n, 1e-2f, 60,
                      2e-3, 2e-3) <= 1.0);
    assert_true(tu_fd("fd dalpha (h 0.25)", prelu_run, &c, c.a.h, 3, da.h, c.y.h, r.h, n, 0.25f, 3,
                      1e-4, 1e-4) <= 1.0);
    free(ref);
    tt *all[] = {&c.x, &c.a, &c.y, &r, &dx, &da};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tu_free(all[i]);
}

/* ---- GAP and channel scaling ------------------------------------------------------------------
 */

typedef struct se_ctx {
    sq_shape5 s;
    tt x, sc, y, g;
} se_ctx;

static void gap_run(void *vc) {
    se_ctx *c = vc;
    OK(tu_backend()->gap_fwd(tu_backend(), c->s, tu_v(c->x), tu_v(c->g), ST));
}
static void chs_run(void *vc) {
    se_ctx *c = vc;
    OK(tu_backend()->chscale_fwd(tu_backend(), c->s, tu_v(c->x), tu_v(c->sc), tu_v(c->y), ST));
}

static void test_gap_and_channel_scale(void **state) {
    (void)state;
    sq_backend *be = tu_backend();
    const sq_shape5 s = {2, 3, 1, 7, 5};
    const size_t n = (size_t)sq_shape5_numel(s), S = 35, nc = 6;
    se_ctx c = {s, tu_rand(n, -1, 1, 41), tu_rand(nc, 0, 1, 42), tu_new(n), tu_new(nc)};
    printf("gap, chscale %dx%dx%dx%dx%d\n", s.n, s.c, s.d, s.h, s.w);
    gap_run(&c);
    chs_run(&c);
    double *rg = dalloc(nc), *ry = dalloc(n);
    for (size_t pl = 0; pl < nc; pl++) {
        for (size_t i = 0; i < S; i++) {
            rg[pl] += c.x.h[pl * S + i] / (double)S;
            ry[pl * S + i] = (double)c.x.h[pl * S + i] * c.sc.h[pl];
        }
    }
    assert_true(tu_check("gap forward", c.g.h, rg, nc, 1e-6, 2e-6) <= 1.0);
    assert_true(tu_check("chscale forward", c.y.h, ry, n, 1e-6, 2e-6) <= 1.0);
    tt rg_ = tu_rand(nc, -1, 1, 43), dxg = tu_new(n);
    OK(be->gap_bwd(be, s, tu_v(rg_), tu_v(dxg), ST));
    assert_true(tu_fd("gap fd dx (h 0.25)", gap_run, &c, c.x.h, n, dxg.h, c.g.h, rg_.h, nc, 0.25f,
                      40, 1e-4, 1e-4) <= 1.0);
    tt r = tu_rand(n, -1, 1, 44), dx = tu_new(n), ds = tu_new(nc);
    OK(be->chscale_bwd(be, s, tu_v(c.x), tu_v(c.sc), tu_v(r), tu_v(dx), tu_v(ds), ST));
    assert_true(tu_fd("chscale fd dx (h 0.25)", chs_run, &c, c.x.h, n, dx.h, c.y.h, r.h, n, 0.25f,
                      40, 1e-4, 1e-4) <= 1.0);
    assert_true(tu_fd("chscale fd dscale (h 0.25)", chs_run, &c, c.sc.h, nc, ds.h, c.y.h, r.h, n,
                      0.25f, 6, 1e-4, 1e-4) <= 1.0);
    free(rg);
    free(ry);
    tt *all[] = {&c.x, &c.sc, &c.y, &c.g, &rg_, &dxg, &r, &dx, &ds};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tu_free(all[i]);
}

/* ---- max pooling -------------------------------------------------------------------------------
 */

typedef struct pool_ctx {
    sq_pool3d p;
    tt x, y;
} pool_ctx;

static void pool_run(void *vc) {
    pool_ctx *c = vc;
    OK(tu_backend()->maxpool3d_fwd(tu_backend(), &c->p, tu_v(c->x), tu_v(c->y), ST));
}

/* Reference: first max of each window (padding never wins); dx by routing. */
static void ref_pool(const sq_pool3d *p, const float *x, const float *dy, double *y, double *dx) {
    const sq_shape5 s = p->in, o = sq_pool3d_out(p);
    const size_t S = (size_t)s.d * s.h * s.w;
    for (size_t i = 0; i < (size_t)sq_shape5_numel(s); i++)
        dx[i] = 0;
    size_t yi = 0;
    for (int pl = 0; pl < s.n * s.c; pl++)
        for (int od = 0; od < o.d; od++)
            for (int oh = 0; oh < o.h; oh++)
                for (int ow = 0; ow < o.w; ow++, yi++) {
                    double best = -INFINITY;
                    long arg = -1;
                    for (int kd = 0; kd < p->k[0]; kd++)
                        for (int kh = 0; kh < p->k[1]; kh++)
                            for (int kw = 0; kw < p->k[2]; kw++) {
                                const int d = od * p->stride[0] - p->pad[0] + kd,
                                          h = oh * p->stride[1] - p->pad[1] + kh,
                                          w = ow * p->stride[2] - p->pad[2] + kw;
                                if (d < 0 || h < 0 || w < 0 || d >= s.d || h >= s.h || w >= s.w)
                                    continue;
                                const long i = (long)(pl * S + ((size_t)d * s.h + h) * s.w + w);
                                if (x[i] > best) {
                                    best = x[i];
                                    arg = i;
                                }
                            }
                    y[yi] = best;
                    dx[arg] += dy[yi];
                }
}

static void pool_case(sq_pool3d p, int ties) {
    sq_backend *be = tu_backend();
    const sq_shape5 o = sq_pool3d_out(&p);
    const size_t n = (size_t)sq_shape5_numel(p.in), no = (size_t)sq_shape5_numel(o);
    printf("maxpool %dx%dx%dx%dx%d k%d%d%d s%d%d%d p%d%d%d ceil %d -> %dx%dx%d%s\n", p.in.n, p.in.c,
           p.in.d, p.in.h, p.in.w, p.k[0], p.k[1], p.k[2], p.stride[0], p.stride[1], p.stride[2],
           p.pad[0], p.pad[1], p.pad[2], p.ceil_mode, o.d, o.h, o.w, ties ? " (ties)" : "");
    pool_ctx c = {p, tu_new(n), tu_new(no)};
    /* distinct values 0.01 apart (a permutation), or three levels with many ties */
    for (size_t i = 0; i < n; i++)
        c.x.h[i] = (float)((i * 7919) % n) * 0.01f - 1.0f;
    if (ties)
        for (size_t i = 0; i < n; i++)
            c.x.h[i] = floorf((c.x.h[i] + 1.0f) * 3.0f / (n * 0.01f));
    pool_run(&c);
    tt r = tu_rand(no, -1, 1, 51), dx = tu_new(n);
    tu_fill(dx, 7.0f); /* overwritten */
    OK(be->maxpool3d_bwd(be, &p, tu_v(c.x), tu_v(r), tu_v(dx), ST));
    double *ry = dalloc(no), *rdx = dalloc(n);
    ref_pool(&p, c.x.h, r.h, ry, rdx);
    assert_true(tu_check("forward", c.y.h, ry, no, 0, 1e-7) <= 1.0);
    assert_true(tu_check("backward (first-max routing)", dx.h, rdx, n, 1e-6, 1e-6) <= 1.0);
    if (!ties)
        assert_true(tu_fd("fd dx (h 1e-3)", pool_run, &c, c.x.h, n, dx.h, c.y.h, r.h, no, 1e-3f, 60,
                          1e-4, 1e-4) <= 1.0);
    free(ry);
    free(rdx);
    tt *all[] = {&c.x, &c.y, &r, &dx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tu_free(all[i]);
}

static void test_maxpool(void **state) {
    (void)state;
    /* PyTorch output sizes, ceil-mode edges */
    sq_pool3d q = {{1, 1, 6, 5, 7}, {3, 2, 3}, {2, 2, 2}, {1, 1, 1}, 0};
    sq_shape5 o = sq_pool3d_out(&q);
    assert_int_equal(o.d, 3); /* floor((6+2-3)/2)+1 */
    assert_int_equal(o.h, 3); /* floor((5+2-2)/2)+1 */
    assert_int_equal(o.w, 4);
    q.ceil_mode = 1;
    o = sq_pool3d_out(&q);
    assert_int_equal(o.d, 4); /* ceil(5/2)+1 = 4, (4-1)*2 = 6 < 6+1 */
    assert_int_equal(o.h, 3); /* ceil(5/2)+1 = 4, but (4-1)*2 = 6 >= 5+1: last window dropped */
    assert_int_equal(o.w, 4);
    pool_case((sq_pool3d){{2, 2, 5, 7, 9}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 0}, 0);
    pool_case((sq_pool3d){{2, 2, 5, 7, 9}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 1}, 0);
    pool_case((sq_pool3d){{1, 3, 1, 6, 7}, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, 1}, 0); /* depth 1 */
    pool_case((sq_pool3d){{1, 2, 5, 5, 6}, {2, 2, 2}, {2, 2, 2}, {0, 1, 0}, 1}, 0); /* ceil edge */
    pool_case((sq_pool3d){{1, 2, 3, 7, 5}, {3, 3, 3}, {1, 2, 1}, {1, 1, 1}, 0}, 0); /* s2 H only */
    pool_case((sq_pool3d){{2, 2, 4, 6, 7}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 1}, 1); /* ties */
}

/* ---- nearest resize ------------------------------------------------------------------------- */

typedef struct rs_ctx {
    sq_resize3d p;
    tt x, y;
} rs_ctx;

static void rs_run(void *vc) {
    rs_ctx *c = vc;
    OK(tu_backend()->resize3d_fwd(tu_backend(), &c->p, tu_v(c->x), tu_v(c->y), ST));
}

static void rs_case(sq_resize3d p) {
    sq_backend *be = tu_backend();
    const sq_shape5 s = p.in;
    const size_t n = (size_t)sq_shape5_numel(s);
    const size_t no = (size_t)s.n * s.c * p.out[0] * p.out[1] * p.out[2];
    printf("resize %dx%dx%d -> %dx%dx%d\n", s.d, s.h, s.w, p.out[0], p.out[1], p.out[2]);
    rs_ctx c = {p, tu_rand(n, -1, 1, 61), tu_new(no)};
    rs_run(&c);
    double *ry = dalloc(no), *rdx = dalloc(n);
    tt r = tu_rand(no, -1, 1, 62), dx = tu_new(n);
    size_t yi = 0;
    for (int pl = 0; pl < s.n * s.c; pl++)
        for (int d = 0; d < p.out[0]; d++)
            for (int h = 0; h < p.out[1]; h++)
                for (int w = 0; w < p.out[2]; w++, yi++) {
                    const int id = (int)floor((double)d * s.d / p.out[0]),
                              ih = (int)floor((double)h * s.h / p.out[1]),
                              iw = (int)floor((double)w * s.w / p.out[2]);
                    const size_t xi =
                        (size_t)pl * s.d * s.h * s.w + ((size_t)id * s.h + ih) * s.w + iw;
                    ry[yi] = c.x.h[xi];
                    rdx[xi] += r.h[yi];
                }
    assert_true(tu_check("forward", c.y.h, ry, no, 0, 1e-7) <= 1.0);
    OK(be->resize3d_bwd(be, &p, tu_v(r), tu_v(dx), ST));
    assert_true(tu_check("backward (scatter-add)", dx.h, rdx, n, 1e-6, 1e-6) <= 1.0);
    assert_true(tu_fd("fd dx (h 0.25)", rs_run, &c, c.x.h, n, dx.h, c.y.h, r.h, no, 0.25f, 40, 1e-4,
                      1e-4) <= 1.0);
    free(ry);
    free(rdx);
    tt *all[] = {&c.x, &c.y, &r, &dx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tu_free(all[i]);
}

static void test_resize_nearest(void **state) {
    (void)state;
    /* PyTorch nearest picks floor(dst*in/out): 3 -> 7 is 0,0,0,1,1,2,2 */
    sq_resize3d p = {{1, 1, 1, 1, 3}, {1, 1, 7}};
    rs_ctx c = {p, tu_new(3), tu_new(7)};
    for (int i = 0; i < 3; i++)
        c.x.h[i] = (float)i;
    rs_run(&c);
    const float want[7] = {0, 0, 0, 1, 1, 2, 2};
    for (int i = 0; i < 7; i++)
        assert_float_equal(c.y.h[i], want[i], 0.0);
    tu_free(&c.x);
    tu_free(&c.y);
    rs_case((sq_resize3d){{2, 3, 2, 5, 7}, {4, 10, 14}}); /* x2 */
    rs_case((sq_resize3d){{1, 2, 3, 7, 5}, {7, 3, 5}});   /* up, down, same */
    rs_case((sq_resize3d){{1, 2, 1, 1, 1}, {3, 4, 5}});   /* from a single voxel */
    rs_case((sq_resize3d){{1, 1, 5, 3, 13}, {11, 7, 4}}); /* non-integer ratios */
}

/* ---- fast normalised fusion ------------------------------------------------------------------ */

typedef struct fuse_ctx {
    sq_shape5 s;
    int k;
    tt x[3], w, y;
} fuse_ctx;

static void fuse_run(void *vc) {
    fuse_ctx *c = vc;
    sq_view xs[3];
    for (int i = 0; i < c->k; i++)
        xs[i] = tu_v(c->x[i]);
    OK(tu_backend()->fuse_fwd(tu_backend(), c->s, c->k, xs, tu_v(c->w), tu_v(c->y), ST));
}

static void fuse_case(int k, const float *w) {
    sq_backend *be = tu_backend();
    const sq_shape5 s = {2, 3, 1, 5, 7};
    const size_t n = (size_t)sq_shape5_numel(s);
    printf("fuse k=%d\n", k);
    fuse_ctx c = {s, k, {{0}}, tu_new(k), tu_new(n)};
    for (int i = 0; i < k; i++) {
        c.x[i] = tu_rand(n, -1, 1, 70 + i);
        c.w.h[i] = w[i];
    }
    fuse_run(&c);
    double *ry = dalloc(n), sum = 0;
    for (int i = 0; i < k; i++)
        sum += w[i] > 0 ? w[i] : 0;
    for (size_t j = 0; j < n; j++)
        for (int i = 0; i < k; i++)
            ry[j] += (w[i] > 0 ? w[i] : 0) * c.x[i].h[j] / (sum + 1e-4);
    assert_true(tu_check("forward", c.y.h, ry, n, 1e-6, 2e-6) <= 1.0);
    tt r = tu_rand(n, -1, 1, 79), dw = tu_new(k), dx[3];
    sq_view dxs[3];
    for (int i = 0; i < k; i++) {
        dx[i] = tu_new(n);
        dxs[i] = tu_v(dx[i]);
    }
    tu_fill(dw, 0.5f); /* accumulated */
    sq_view xs[3];
    for (int i = 0; i < k; i++)
        xs[i] = tu_v(c.x[i]);
    OK(be->fuse_bwd(be, s, k, xs, tu_v(c.w), tu_v(r), dxs, tu_v(dw), ST));
    for (int i = 0; i < k; i++)
        dw.h[i] -= 0.5f;
    for (int i = 0; i < k; i++)
        assert_true(tu_fd("fd dx_i (h 0.25)", fuse_run, &c, c.x[i].h, n, dx[i].h, c.y.h, r.h, n,
                          0.25f, 20, 1e-4, 1e-4) <= 1.0);
    assert_true(tu_fd("fd dw (h 1e-3; 0 where w <= 0)", fuse_run, &c, c.w.h, k, dw.h, c.y.h, r.h, n,
                      1e-3f, k, 2e-3, 2e-3) <= 1.0);
    free(ry);
    for (int i = 0; i < k; i++) {
        tu_free(&c.x[i]);
        tu_free(&dx[i]);
    }
    tu_free(&c.w);
    tu_free(&c.y);
    tu_free(&r);
    tu_free(&dw);
}

static void test_fusion(void **state) {
    (void)state;
    const float w2[2] = {0.7f, 1.3f}, w3[3] = {0.4f, -0.3f, 1.1f};
    fuse_case(2, w2);
    fuse_case(3, w3);
}

/* ---- add, axpy, MSE, Adam ----------------------------------------------------------------------
 */

typedef struct mse_ctx {
    tt p, t, l;
} mse_ctx;

static void mse_run(void *vc) {
    mse_ctx *c = vc;
    OK(tu_backend()->mse_fwd(tu_backend(), (int64_t)c->p.n, tu_v(c->p), tu_v(c->t), tu_v(c->l),
                             ST));
}

static void test_add_axpy_mse(void **state) {
    (void)state;
    sq_backend *be = tu_backend();
    const size_t n = 517;
    tt a = tu_rand(n, -1, 1, 81), b = tu_rand(n, -1, 1, 82), y = tu_new(n);
    double *ref = dalloc(n);
    OK(be->add(be, (int64_t)n, tu_v(a), tu_v(b), tu_v(y), ST));
    for (size_t i = 0; i < n; i++)
        ref[i] = (double)a.h[i] + b.h[i];
    printf("add, axpy, mse\n");
    assert_true(tu_check("add", y.h, ref, n, 1e-7, 1e-7) <= 1.0);
    OK(be->add(be, (int64_t)n, tu_v(a), tu_v(b), tu_v(a), ST)); /* in place */
    assert_true(tu_check("add in place", a.h, ref, n, 1e-7, 1e-7) <= 1.0);
    OK(be->axpy(be, (int64_t)n, -0.5f, tu_v(b), tu_v(a), ST));
    for (size_t i = 0; i < n; i++)
        ref[i] -= 0.5 * b.h[i];
    assert_true(tu_check("axpy", a.h, ref, n, 1e-6, 1e-6) <= 1.0);
    mse_ctx c = {tu_rand(5, 0, 1, 83), tu_rand(5, 0, 1, 84), tu_new(1)};
    mse_run(&c);
    double l = 0;
    for (int i = 0; i < 5; i++)
        l += ((double)c.p.h[i] - c.t.h[i]) * ((double)c.p.h[i] - c.t.h[i]);
    l /= 5;
    assert_true(tu_check("mse forward (mean)", c.l.h, &l, 1, 1e-7, 1e-6) <= 1.0);
    tt dp = tu_new(5);
    float one = 1.0f;
    OK(be->mse_bwd(be, 5, tu_v(c.p), tu_v(c.t), 1.0f, tu_v(dp), ST));
    assert_true(tu_fd("mse fd dpred (h 1e-2)", mse_run, &c, c.p.h, 5, dp.h, c.l.h, &one, 1, 1e-2f,
                      5, 2e-4, 2e-4) <= 1.0);
    free(ref);
    tt *all[] = {&a, &b, &y, &c.p, &c.t, &c.l, &dp};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tu_free(all[i]);
}

static void test_adam(void **state) {
    (void)state;
    sq_backend *be = tu_backend();
    /* hand value (PyTorch): p=1, g=0.5, lr=0.1 -> first step moves p by lr: 0.9 */
    tt p = tu_new(1), g = tu_new(1), m = tu_new(1), v = tu_new(1);
    p.h[0] = 1.0f;
    g.h[0] = 0.5f;
    sq_adam a = {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1};
    OK(be->adam(be, &a, 1, tu_v(p), tu_v(g), tu_v(m), tu_v(v), ST));
    assert_float_equal(p.h[0], 0.9f, 1e-6);
    tt *one[] = {&p, &g, &m, &v};
    for (int i = 0; i < 4; i++)
        tu_free(one[i]);
    /* three steps with weight decay on 1001 parameters against a double reference */
    const size_t n = 1001;
    tt P = tu_rand(n, -1, 1, 91), M = tu_new(n), V = tu_new(n);
    double *rp = dalloc(n), *rm = dalloc(n), *rv = dalloc(n);
    for (size_t i = 0; i < n; i++)
        rp[i] = P.h[i];
    sq_adam b = {2e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, 0};
    for (int t = 1; t <= 3; t++) {
        tt G = tu_rand(n, -1, 1, 92 + t);
        b.step = t;
        OK(be->adam(be, &b, (int64_t)n, tu_v(P), tu_v(G), tu_v(M), tu_v(V), ST));
        for (size_t i = 0; i < n; i++) {
            const double gi = G.h[i] + 1e-2 * rp[i];
            const double b1 = b.beta1, b2 = b.beta2; /* the float values the op sees */
            rm[i] = b1 * rm[i] + (1 - b1) * gi;
            rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
            const double mh = rm[i] / (1 - pow(b1, t)), vh = rv[i] / (1 - pow(b2, t));
            rp[i] -= 2e-3 * mh / (sqrt(vh) + 1e-8);
        }
        tu_free(&G);
    }
    printf("adam\n");
    assert_true(tu_check("params after 3 steps", P.h, rp, n, 1e-6, 1e-6) <= 1.0);
    assert_true(tu_check("m after 3 steps", M.h, rm, n, 1e-7, 1e-5) <= 1.0);
    assert_true(tu_check("v after 3 steps", V.h, rv, n, 1e-9, 1e-5) <= 1.0);
    free(rp);
    free(rm);
    free(rv);
    tu_free(&P);
    tu_free(&M);
    tu_free(&V);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm), cmocka_unit_test(test_activations),
        cmocka_unit_test(test_prelu),     cmocka_unit_test(test_gap_and_channel_scale),
        cmocka_unit_test(test_maxpool),   cmocka_unit_test(test_resize_nearest),
        cmocka_unit_test(test_fusion),    cmocka_unit_test(test_add_axpy_mse),
        cmocka_unit_test(test_adam),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_backend()->destroy(tu_backend());
    return rc;
}
