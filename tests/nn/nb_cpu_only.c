/* nb_cpu_only.c — the checks that only make sense on one backend (skipped on the others):
 *  - cpu: the depthwise and dense kernels on the portable ISA against the float64 references
 *    (the main run has the default ISA, AVX2+FMA where present), and AVX2 against portable on
 *    medium real-ish shapes through the cross-backend path (a second CPU backend forced to
 *    portable as oracle); our depthwise kernels against oneDNN's grouped convolution (the
 *    benchmark's comparison path); the oneDNN primitive cache (repeated calls add no primitives).
 *  - cuda: the convolution plan cache (repeated calls add no plans).
 * Tolerances: portable vs float64 as nb_conv.c; AVX2 vs portable <= 1e-4 max|ref| (FMA
 * contraction and order); ours vs oneDNN grouped: y, dx <= 1e-5 + 1e-5|ref|, dw <= 2e-3 +
 * 1e-5|ref| (sums over 2x4x4x5x37 terms in another order).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nb.h"

#include "nn/cpu/cpu.h"
#include "nn/registry.h"
#ifdef SEGQA_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int on(const char *name) {
    return nb.be && !strcmp(nb.be->name, name);
}

/* Starts a check outside the table: labelled with the backend it is specific to, not counted
 * as a table case. */
static int begin_extra(const char *op, const char *label) {
    nb.tag = on("cpu") ? "cpu only" : "cuda only";
    const int run = nb_begin(op, 0, "%s", label);
    nb.tag = NULL;
    return run;
}

/* ---- ISA ----------------------------------------------------------------------------------------
 */

static const nb_case k_isa_cases[] = {
    {NB_DWCONV3D, 0, "medium s(1,2,2)",
     .u.conv = {2, 32, 14, 40, 40, 32, {3, 3, 3}, {1, 2, 2}, {1, 1, 1}, 1}},
    {NB_DWCONV3D, 0, "medium k5 s2",
     .u.conv = {2, 16, 14, 40, 40, 16, {5, 5, 5}, {2, 2, 2}, {2, 2, 2}, 0}},
    {NB_DWCONV3D, 0, "medium k3 s1",
     .u.conv = {1, 16, 7, 20, 44, 16, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1}},
};

static sq_backend *cpu_with_isa(int isa) {
    sq_backend_opts o = sq_backend_opts_default();
    o.threads = 2;
    sq_status st;
    sq_status_clear(&st);
    sq_backend *be = sq_backend_create("cpu", &o, NULL, 0, &st);
    if (!be) fail_msg("cpu backend: %s", st.msg);
    if (sq_cpu_set_isa(be, isa, NULL, &st) != SQ_OK) {
        be->destroy(be);
        return NULL;
    }
    return be;
}

/* The table's small depthwise and dense cases with the portable kernels, against float64 (dense:
 * the im2col path, which the direct stem forward replaces on AVX2). */
static void isa_portable_vs_ref(void) {
    int prev;
    sq_status st;
    sq_status_clear(&st);
    assert_int_equal(sq_cpu_set_isa(nb.be, SQ_ISA_PORTABLE, &prev, &st), SQ_OK);
    nb.tag = "isa portable";
    for (size_t i = 0; i < nb_ncases; i++)
        if ((nb_cases[i].op == NB_DWCONV3D || nb_cases[i].op == NB_CONV3D) && !nb_cases[i].large)
            nb_run_case(&nb_cases[i]);
    nb.tag = NULL;
    assert_int_equal(sq_cpu_set_isa(nb.be, prev, NULL, &st), SQ_OK);
}

/* AVX2+FMA (the backend under test) against a portable CPU backend as the oracle. */
static void isa_avx2_vs_portable(void) {
    int prev;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cpu_set_isa(nb.be, SQ_ISA_AVX2, &prev, &st) != SQ_OK) {
        printf("dwconv3d  (AVX2+FMA not available here: no AVX2 vs portable comparison)\n");
        return;
    }
    sq_backend *portable = cpu_with_isa(SQ_ISA_PORTABLE);
    sq_backend *r0 = nb.ref;
    nb.ref = portable;
    nb.tag = "avx2 vs portable";
    for (size_t i = 0; i < sizeof k_isa_cases / sizeof *k_isa_cases; i++)
        nb_run_case(&k_isa_cases[i]);
    nb.tag = NULL;
    nb.ref = r0;
    portable->destroy(portable);
    assert_int_equal(sq_cpu_set_isa(nb.be, prev, NULL, &st), SQ_OK);
}

void nb_test_cpu_isa(void **state) {
    (void)state;
    if (!on("cpu") || nb.ref) return; /* float64 mode on the CPU backend only */
    const long f0 = nb.fails;
    isa_portable_vs_ref();
    isa_avx2_vs_portable();
    assert_int_equal(nb.fails - f0, 0);
}

/* ---- oneDNN grouped convolution -------------------------------------------------------------- */

static void grouped_compare(const sq_conv3d *p, const float *x, const float *w, const float *b,
                            const float *dy) {
    sq_backend *be = nb.be;
    sq_status st;
    sq_status_clear(&st);
    const int C = p->in.c;
    const size_t nx = (size_t)sq_shape5_numel(p->in),
                 ny = (size_t)sq_shape5_numel(sq_conv3d_out(p)),
                 nw = (size_t)C * p->k[0] * p->k[1] * p->k[2];
    nb_dt xd = nb_in(be, x, nx), wd = nb_in(be, w, nw), bd = nb_in(be, b, (size_t)C),
          dyd = nb_in(be, dy, ny), y1 = nb_out(be, ny), y2 = nb_out(be, ny), dx1 = nb_out(be, nx),
          dx2 = nb_out(be, nx), dw1 = nb_in(be, NULL, nw), dw2 = nb_in(be, NULL, nw);
    be->fill(be, dw1.b, NB_GUARD * sizeof(float), 0, nw * sizeof(float), &st);
    be->fill(be, dw2.b, NB_GUARD * sizeof(float), 0, nw * sizeof(float), &st);
    assert_int_equal(be->dwconv3d_fwd(be, p, nb_v(xd), nb_v(wd), nb_v(bd), nb_v(y1), &st), SQ_OK);
    assert_int_equal(sq_cpu_dnnl_conv_fwd(be, p, C, nb_v(xd), nb_v(wd), nb_v(bd), nb_v(y2), &st),
                     SQ_OK);
    assert_int_equal(be->dwconv3d_bwd(be, p, nb_v(xd), nb_v(wd), nb_v(dyd), nb_v(dx1), nb_v(dw1),
                                      sq_view_none(), &st),
                     SQ_OK);
    assert_int_equal(sq_cpu_dnnl_conv_bwd(be, p, C, nb_v(xd), nb_v(wd), nb_v(dyd), nb_v(dx2),
                                          nb_v(dw2), sq_view_none(), &st),
                     SQ_OK);
    float *a = nb_alloc(nx), *c = nb_alloc(nx);
    nb_get(y1, a), nb_get(y2, c);
    nb_check_f("fwd", "y ours vs oneDNN", a, c, ny, (nb_tol){1e-5, 1e-5, 0});
    nb_get(dx1, a), nb_get(dx2, c);
    nb_check_f("bwd", "dx ours vs oneDNN", a, c, nx, (nb_tol){1e-5, 1e-5, 0});
    nb_get(dw1, a), nb_get(dw2, c);
    nb_check_f("bwd", "dw ours vs oneDNN", a, c, nw, (nb_tol){2e-3, 1e-5, 0});
    free(a), free(c);
    nb_dt *all[] = {&xd, &wd, &bd, &dyd, &y1, &y2, &dx1, &dx2, &dw1, &dw2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        nb_free(all[i]);
}

void nb_test_cpu_onednn_grouped(void **state) {
    (void)state;
    if (!on("cpu")) return;
    if (!begin_extra("dwconv3d", "2x4x4x10x37 k3 s1,2,1 p1 bias ours vs oneDNN grouped")) return;
    const long f0 = nb.fails;
    const sq_conv3d p = {{2, 4, 4, 10, 37}, 4, {3, 3, 3}, {1, 2, 1}, {1, 1, 1}};
    const size_t nx = (size_t)sq_shape5_numel(p.in),
                 ny = (size_t)sq_shape5_numel(sq_conv3d_out(&p));
    float *x = nb_rand_new(nx, -1, 1, 5), *w = nb_rand_new(4 * 27, -1, 1, 6),
          *b = nb_rand_new(4, -1, 1, 7), *dy = nb_rand_new(ny, -1, 1, 8);
    grouped_compare(&p, x, w, b, dy);
    free(x), free(w), free(b), free(dy);
    assert_int_equal(nb.fails - f0, 0);
}

/* ---- primitive / plan caches ------------------------------------------------------------------
 */

/* Runs a 1x1x1 convolution forward and backward `reps` times. */
static void conv_reps(sq_backend *be, int reps) {
    sq_status st;
    sq_status_clear(&st);
    const sq_conv3d p = {{1, 3, 4, 5, 6}, 2, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    float *x = nb_rand_new(360, -1, 1, 1), *w = nb_rand_new(6, -1, 1, 2);
    nb_dt xd = nb_in(be, x, 360), wd = nb_in(be, w, 6), bd = nb_in(be, w, 2), y = nb_out(be, 240),
          dx = nb_out(be, 360), dw = nb_in(be, w, 6), db = nb_in(be, w, 2);
    for (int r = 0; r < reps; r++) {
        assert_int_equal(be->conv3d_fwd(be, &p, nb_v(xd), nb_v(wd), nb_v(bd), nb_v(y), &st), SQ_OK);
        assert_int_equal(
            be->conv3d_bwd(be, &p, nb_v(xd), nb_v(wd), nb_v(y), nb_v(dx), nb_v(dw), nb_v(db), &st),
            SQ_OK);
    }
    assert_int_equal(be->sync(be, &st), SQ_OK);
    nb_dt *all[] = {&xd, &wd, &bd, &y, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        nb_free(all[i]);
    free(x), free(w);
}

static void cache_check(const char *what, int n0, int n1) {
    char nm[96];
    snprintf(nm, sizeof nm, "%s: %d -> %d", what, n0, n1);
    nb_expect("cache", nm, n0 == n1);
}

void nb_test_cpu_primitive_cache(void **state) {
    (void)state;
    if (!on("cpu")) return;
    if (!begin_extra("conv3d", "1x3x4x5x6->2 k1 x5 repeats (oneDNN primitive cache)")) return;
    const long f0 = nb.fails;
    conv_reps(nb.be, 1);
    const int n0 = sq_cpu_dnnl_cache_size(nb.be);
    conv_reps(nb.be, 5);
    cache_check("primitives after 5 more", n0, sq_cpu_dnnl_cache_size(nb.be));
    assert_int_equal(nb.fails - f0, 0);
}

void nb_test_cuda_plan_cache(void **state) {
    (void)state;
#ifdef SEGQA_HAVE_CUDA
    if (!on("cuda")) return;
    if (!begin_extra("conv3d", "1x3x4x5x6->2 k1 x5 repeats (cuDNN plan cache)")) return;
    const long f0 = nb.fails;
    conv_reps(nb.be, 1);
    const int n0 = sq_cuda_conv_cache_size(nb.be);
    conv_reps(nb.be, 5);
    cache_check("plans after 5 more", n0, sq_cuda_conv_cache_size(nb.be));
    assert_int_equal(nb.fails - f0, 0);
#endif
}
