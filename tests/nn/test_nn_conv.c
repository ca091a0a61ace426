/* test_nn_conv.c — dense (oneDNN) and depthwise (own kernels) 3D convolutions, forward and both
 * backward passes, against a double-precision reference and central finite differences, on odd
 * shapes (depth 1, primes, stride 2 on one axis only, no padding, width 1); the depthwise kernels
 * on both ISAs (AVX2+FMA where present, and the portable baseline) and against oneDNN's grouped
 * convolution; the oneDNN primitive cache; accumulation semantics of dw/db.
 *
 * Tolerances (stated here, checked per element): forward |got-ref| <= 1e-5 + 1e-5|ref| (at most
 * 125 products of values in [-1,1]); dx likewise; dw and db <= 1e-6 * terms + 1e-5|ref|, where
 * terms = N*Do*Ho*Wo products are summed. Finite differences (the ops are linear, h = 0.5):
 * |fd - analytic| <= 2e-4 + 2e-4 |analytic|.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn_test_util.h"

#include "nn/cpu/cpu.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct conv_case {
    int n, c, d, h, w, cout;
    int k[3], s[3], p[3];
    int bias;
} conv_case;

static sq_conv3d to_p(const conv_case *cc) {
    sq_conv3d p = {.in = {cc->n, cc->c, cc->d, cc->h, cc->w}, .cout = cc->cout};
    for (int a = 0; a < 3; a++) {
        p.k[a] = cc->k[a];
        p.stride[a] = cc->s[a];
        p.pad[a] = cc->p[a];
    }
    return p;
}

/* Reference grouped convolution in double: y, and from dy: dx, dw, db. */
static void ref_conv(const sq_conv3d *p, int groups, const float *x, const float *w, const float *b,
                     const float *dy, double *y, double *dx, double *dw, double *db) {
    const sq_shape5 i = p->in, o = sq_conv3d_out(p);
    const int cig = i.c / groups, cog = p->cout / groups;
    const size_t nx = (size_t)sq_shape5_numel(i);
    const size_t nw = (size_t)p->cout * cig * p->k[0] * p->k[1] * p->k[2];
    if (dx)
        for (size_t t = 0; t < nx; t++)
            dx[t] = 0;
    if (dw)
        for (size_t t = 0; t < nw; t++)
            dw[t] = 0;
    if (db)
        for (int t = 0; t < p->cout; t++)
            db[t] = 0;
    for (int n = 0; n < o.n; n++)
        for (int oc = 0; oc < o.c; oc++)
            for (int od = 0; od < o.d; od++)
                for (int oh = 0; oh < o.h; oh++)
                    for (int ow = 0; ow < o.w; ow++) {
                        const size_t yi =
                            ((((size_t)n * o.c + oc) * o.d + od) * o.h + oh) * o.w + ow;
                        const int g = oc / cog;
                        double acc = b ? b[oc] : 0.0;
                        const double gy = dy ? dy[yi] : 0.0;
                        if (db) db[oc] += gy;
                        for (int icl = 0; icl < cig; icl++)
                            for (int kd = 0; kd < p->k[0]; kd++)
                                for (int kh = 0; kh < p->k[1]; kh++)
                                    for (int kw = 0; kw < p->k[2]; kw++) {
                                        const int id = od * p->stride[0] - p->pad[0] + kd;
                                        const int ih = oh * p->stride[1] - p->pad[1] + kh;
                                        const int iw = ow * p->stride[2] - p->pad[2] + kw;
                                        if (id < 0 || ih < 0 || iw < 0 || id >= i.d || ih >= i.h ||
                                            iw >= i.w)
                                            continue;
                                        const int ic = g * cig + icl;
                                        const size_t xi =
                                            ((((size_t)n * i.c + ic) * i.d + id) * i.h + ih) * i.w +
                                            iw;
                                        const size_t wi =
                                            ((((size_t)oc * cig + icl) * p->k[0] + kd) * p->k[1] +
                                             kh) *
                                                p->k[2] +
                                            kw;
                                        acc += (double)x[xi] * w[wi];
                                        if (dx) dx[xi] += (double)w[wi] * gy;
                                        if (dw) dw[wi] += (double)x[xi] * gy;
                                    }
                        if (y) y[yi] = acc;
                    }
}

typedef struct fd_ctx {
    sq_backend *be;
    const sq_conv3d *p;
    int dw;
    tt x, w, b, y;
    int bias;
} fd_ctx;

static void fd_fwd(void *vc) {
    fd_ctx *c = vc;
    sq_status st;
    sq_status_clear(&st);
    sq_code rc = c->dw ? c->be->dwconv3d_fwd(c->be, c->p, tu_v(c->x), tu_v(c->w),
                                             c->bias ? tu_v(c->b) : sq_view_none(), tu_v(c->y), &st)
                       : c->be->conv3d_fwd(c->be, c->p, tu_v(c->x), tu_v(c->w),
                                           c->bias ? tu_v(c->b) : sq_view_none(), tu_v(c->y), &st);
    if (rc != SQ_OK) fail_msg("%s", st.msg);
}

/* Runs one case through the backend (dense or depthwise) and checks it. */
static void run_case(const conv_case *cc, int depthwise, int fd) {
    sq_backend *be = tu_backend();
    sq_status st;
    sq_status_clear(&st);
    const sq_conv3d p = to_p(cc);
    const sq_shape5 o = sq_conv3d_out(&p);
    const int groups = depthwise ? cc->c : 1;
    const size_t nx = (size_t)sq_shape5_numel(p.in), ny = (size_t)sq_shape5_numel(o);
    const size_t nw = (size_t)p.cout * (cc->c / groups) * p.k[0] * p.k[1] * p.k[2];
    printf("%s %dx%dx%dx%dx%d -> %d k%d%d%d s%d%d%d p%d%d%d%s\n", depthwise ? "dwconv" : "conv",
           cc->n, cc->c, cc->d, cc->h, cc->w, cc->cout, cc->k[0], cc->k[1], cc->k[2], cc->s[0],
           cc->s[1], cc->s[2], cc->p[0], cc->p[1], cc->p[2], cc->bias ? " bias" : "");
    tt x = tu_rand(nx, -1, 1, 1), w = tu_rand(nw, -1, 1, 2), b = tu_rand(p.cout, -1, 1, 3);
    tt y = tu_new(ny), dy = tu_rand(ny, -1, 1, 4), dx = tu_new(nx), dw = tu_new(nw),
       db = tu_new(p.cout);
    double *ry = malloc(ny * sizeof(double)), *rdx = malloc(nx * sizeof(double)),
           *rdw = malloc(nw * sizeof(double)), *rdb = malloc(p.cout * sizeof(double));
    ref_conv(&p, groups, x.h, w.h, cc->bias ? b.h : NULL, dy.h, ry, rdx, rdw, rdb);
    const double terms = (double)o.n * o.d * o.h * o.w;
    sq_view bv = cc->bias ? tu_v(b) : sq_view_none(), dbv = cc->bias ? tu_v(db) : sq_view_none();

    int isas[2] = {SQ_ISA_AVX2, SQ_ISA_PORTABLE};
    for (int ii = 0; ii < (depthwise ? 2 : 1); ii++) {
        int prev;
        sq_status_clear(&st);
        if (depthwise && sq_cpu_set_isa(be, isas[ii], &prev, &st) != SQ_OK) continue;
        if (depthwise) printf(" isa %s\n", sq_cpu_isa_name(isas[ii]));
        /* dw/db accumulate: start them at 1 and subtract afterwards. */
        tu_fill(dw, 1.0f);
        tu_fill(db, 1.0f);
        if (depthwise) {
            assert_int_equal(be->dwconv3d_fwd(be, &p, tu_v(x), tu_v(w), bv, tu_v(y), &st), SQ_OK);
            assert_int_equal(
                be->dwconv3d_bwd(be, &p, tu_v(x), tu_v(w), tu_v(dy), tu_v(dx), tu_v(dw), dbv, &st),
                SQ_OK);
        } else {
            assert_int_equal(be->conv3d_fwd(be, &p, tu_v(x), tu_v(w), bv, tu_v(y), &st), SQ_OK);
            assert_int_equal(
                be->conv3d_bwd(be, &p, tu_v(x), tu_v(w), tu_v(dy), tu_v(dx), tu_v(dw), dbv, &st),
                SQ_OK);
        }
        for (size_t i = 0; i < nw; i++)
            dw.h[i] -= 1.0f;
        for (int i = 0; i < p.cout; i++)
            db.h[i] -= 1.0f;
        assert_true(tu_check("forward y", y.h, ry, ny, 1e-5, 1e-5) <= 1.0);
        assert_true(tu_check("backward dx", dx.h, rdx, nx, 1e-5, 1e-5) <= 1.0);
        assert_true(
            tu_check("backward dw (accumulated)", dw.h, rdw, nw, 1e-6 * terms + 1e-5, 1e-5) <= 1.0);
        if (cc->bias)
            assert_true(tu_check("backward db (accumulated)", db.h, rdb, p.cout,
                                 1e-6 * terms + 1e-5, 1e-5) <= 1.0);
        if (depthwise) assert_int_equal(sq_cpu_set_isa(be, prev, NULL, &st), SQ_OK);
    }
    if (fd) {
        /* analytic gradients of L = sum dy*y */
        fd_ctx c = {be, &p, depthwise, x, w, b, y, cc->bias};
        tu_fill(dw, 0.0f);
        tu_fill(db, 0.0f);
        if (depthwise)
            assert_int_equal(
                be->dwconv3d_bwd(be, &p, tu_v(x), tu_v(w), tu_v(dy), tu_v(dx), tu_v(dw), dbv, &st),
                SQ_OK);
        else
            assert_int_equal(
                be->conv3d_bwd(be, &p, tu_v(x), tu_v(w), tu_v(dy), tu_v(dx), tu_v(dw), dbv, &st),
                SQ_OK);
        assert_true(
            tu_fd("fd dx", fd_fwd, &c, x.h, nx, dx.h, y.h, dy.h, ny, 0.5f, 12, 2e-4, 2e-4) <= 1.0);
        assert_true(
            tu_fd("fd dw", fd_fwd, &c, w.h, nw, dw.h, y.h, dy.h, ny, 0.5f, 12, 2e-4, 2e-4) <= 1.0);
        if (cc->bias)
            assert_true(tu_fd("fd db", fd_fwd, &c, b.h, p.cout, db.h, y.h, dy.h, ny, 0.5f, 4, 2e-4,
                              2e-4) <= 1.0);
    }
    free(ry);
    free(rdx);
    free(rdw);
    free(rdb);
    tt *all[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tu_free(all[i]);
}

static const conv_case dense_cases[] = {
    {2, 3, 5, 7, 11, 4, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 0}, /* 1x1x1 (expand/project) */
    {2, 3, 5, 7, 11, 5, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1}, /* with bias */
    {2, 2, 7, 9, 13, 3, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 0}, /* stem: k3 s2 */
    {1, 2, 1, 6, 9, 3, {1, 3, 3}, {1, 2, 1}, {0, 1, 1}, 1},  /* depth 1, stride 2 on H only */
    {1, 1, 4, 5, 1, 2, {3, 3, 1}, {1, 1, 1}, {1, 1, 0}, 0},  /* width 1 */
    {2, 3, 6, 5, 8, 2, {2, 3, 5}, {2, 1, 3}, {0, 1, 2}, 1},  /* mixed */
};

static const conv_case dw_cases[] = {
    {2, 3, 1, 7, 11, 3, {1, 3, 3}, {1, 1, 2}, {0, 1, 1}, 0},  /* depth 1, stride 2 on W only */
    {1, 2, 5, 6, 13, 2, {3, 3, 3}, {2, 1, 1}, {1, 1, 1}, 1},  /* stride 2 on D only */
    {2, 3, 7, 9, 17, 3, {5, 5, 5}, {2, 2, 2}, {2, 2, 2}, 0},  /* k5 s2 */
    {1, 1, 3, 3, 3, 1, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1},   /* tiny */
    {2, 4, 4, 10, 37, 4, {5, 5, 5}, {1, 2, 1}, {2, 2, 2}, 1}, /* k5, stride 2 on H, long rows */
    {1, 3, 3, 5, 40, 3, {3, 3, 3}, {1, 1, 2}, {1, 1, 1}, 0},  /* k3 s2 on W, even width */
    {1, 2, 5, 7, 23, 2, {5, 5, 5}, {1, 1, 1}, {0, 0, 0}, 0},  /* no padding */
    {1, 2, 3, 4, 1, 2, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0},   /* width 1 */
    {1, 2, 3, 9, 41, 2, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 1},  /* k3 s2 all, odd width */
    {1, 2, 4, 6, 19, 2, {3, 3, 3}, {1, 1, 3}, {1, 1, 1}, 0},  /* generic stride 3 */
    {1, 2, 3, 5, 53, 2, {3, 3, 3}, {1, 2, 2}, {1, 1, 1}, 1},  /* strided, wide: row path */
    {1, 2, 4, 7, 50, 2, {5, 5, 5}, {2, 2, 2}, {2, 2, 2}, 0},  /* strided k5, wide: row path */
};

static void test_dense_conv(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof dense_cases / sizeof *dense_cases; i++)
        run_case(&dense_cases[i], 0, 1);
}

static void test_depthwise_conv(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof dw_cases / sizeof *dw_cases; i++)
        run_case(&dw_cases[i], 1, i < 4 || i >= 10);
}

/* The oneDNN grouped path (the benchmark's comparison) computes the same thing. */
static void test_depthwise_matches_onednn_grouped(void **state) {
    (void)state;
    sq_backend *be = tu_backend();
    sq_status st;
    sq_status_clear(&st);
    const conv_case cc = {2, 4, 4, 10, 37, 4, {3, 3, 3}, {1, 2, 1}, {1, 1, 1}, 1};
    const sq_conv3d p = to_p(&cc);
    const size_t nx = (size_t)sq_shape5_numel(p.in),
                 ny = (size_t)sq_shape5_numel(sq_conv3d_out(&p));
    const size_t nw = (size_t)cc.c * 27;
    tt x = tu_rand(nx, -1, 1, 5), w = tu_rand(nw, -1, 1, 6), b = tu_rand(cc.c, -1, 1, 7);
    tt y1 = tu_new(ny), y2 = tu_new(ny), dy = tu_rand(ny, -1, 1, 8);
    tt dx1 = tu_new(nx), dx2 = tu_new(nx), dw1 = tu_new(nw), dw2 = tu_new(nw);
    assert_int_equal(be->dwconv3d_fwd(be, &p, tu_v(x), tu_v(w), tu_v(b), tu_v(y1), &st), SQ_OK);
    assert_int_equal(sq_cpu_dnnl_conv_fwd(be, &p, cc.c, tu_v(x), tu_v(w), tu_v(b), tu_v(y2), &st),
                     SQ_OK);
    assert_int_equal(be->dwconv3d_bwd(be, &p, tu_v(x), tu_v(w), tu_v(dy), tu_v(dx1), tu_v(dw1),
                                      sq_view_none(), &st),
                     SQ_OK);
    assert_int_equal(sq_cpu_dnnl_conv_bwd(be, &p, cc.c, tu_v(x), tu_v(w), tu_v(dy), tu_v(dx2),
                                          tu_v(dw2), sq_view_none(), &st),
                     SQ_OK);
    double *r = malloc(nx * sizeof(double));
    for (size_t i = 0; i < ny; i++)
        r[i] = y2.h[i];
    assert_true(tu_check("ours vs oneDNN grouped: y", y1.h, r, ny, 1e-5, 1e-5) <= 1.0);
    for (size_t i = 0; i < nx; i++)
        r[i] = dx2.h[i];
    assert_true(tu_check("ours vs oneDNN grouped: dx", dx1.h, r, nx, 1e-5, 1e-5) <= 1.0);
    for (size_t i = 0; i < nw; i++)
        r[i] = dw2.h[i];
    assert_true(tu_check("ours vs oneDNN grouped: dw", dw1.h, r, nw, 2e-3, 1e-5) <= 1.0);
    free(r);
    tt *all[] = {&x, &w, &b, &y1, &y2, &dy, &dx1, &dx2, &dw1, &dw2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tu_free(all[i]);
}

/* Primitives are created once per shape: repeated calls add no cache entries. */
static void test_primitive_cache(void **state) {
    (void)state;
    sq_backend *be = tu_backend();
    sq_status st;
    sq_status_clear(&st);
    const conv_case cc = {1, 3, 4, 5, 6, 2, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1};
    const sq_conv3d p = to_p(&cc);
    tt x = tu_rand(3 * 120, -1, 1, 1), w = tu_rand(6, -1, 1, 2), b = tu_new(2), y = tu_new(240);
    tt dx = tu_new(360), dw = tu_new(6), db = tu_new(2);
    assert_int_equal(be->conv3d_fwd(be, &p, tu_v(x), tu_v(w), tu_v(b), tu_v(y), &st), SQ_OK);
    assert_int_equal(
        be->conv3d_bwd(be, &p, tu_v(x), tu_v(w), tu_v(y), tu_v(dx), tu_v(dw), tu_v(db), &st),
        SQ_OK);
    const int n0 = sq_cpu_dnnl_cache_size(be);
    for (int r = 0; r < 5; r++) {
        assert_int_equal(be->conv3d_fwd(be, &p, tu_v(x), tu_v(w), tu_v(b), tu_v(y), &st), SQ_OK);
        assert_int_equal(
            be->conv3d_bwd(be, &p, tu_v(x), tu_v(w), tu_v(y), tu_v(dx), tu_v(dw), tu_v(db), &st),
            SQ_OK);
    }
    assert_int_equal(sq_cpu_dnnl_cache_size(be), n0);
    tt *all[] = {&x, &w, &b, &y, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tu_free(all[i]);
}

static void test_bad_shapes_fail_cleanly(void **state) {
    (void)state;
    sq_backend *be = tu_backend();
    sq_status st;
    sq_status_clear(&st);
    const conv_case cc = {1, 3, 4, 5, 6, 2, {3, 3, 3}, {1, 1, 1}, {0, 0, 0}, 0};
    sq_conv3d p = to_p(&cc);
    tt t = tu_new(1000);
    /* depthwise with cout != c */
    assert_int_equal(be->dwconv3d_fwd(be, &p, tu_v(t), tu_v(t), sq_view_none(), tu_v(t), &st),
                     SQ_ERR_RANGE);
    p.cout = 3;
    p.k[2] = 9; /* larger than padded width */
    assert_int_equal(be->dwconv3d_fwd(be, &p, tu_v(t), tu_v(t), sq_view_none(), tu_v(t), &st),
                     SQ_ERR_RANGE);
    printf("  message: %s\n", st.msg);
    tu_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_conv),
        cmocka_unit_test(test_depthwise_conv),
        cmocka_unit_test(test_depthwise_matches_onednn_grouped),
        cmocka_unit_test(test_primitive_cache),
        cmocka_unit_test(test_bad_shapes_fail_cleanly),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_backend()->destroy(tu_backend());
    return rc;
}
