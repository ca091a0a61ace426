/* test_cuda_conv_host.c — host-only check of the pure-C parts of the CUDA convolution path
 * (cuda/conv_gemm_math.h), without a GPU:
 *  - the cuBLAS GEMM arguments of the three directions of a dense 1x1x1 convolution, fed to a
 *    naive column-major sgemm that follows cuBLAS's conventions (op(A) m x k, leading dimensions,
 *    strides, batch; the sequential filter batch accumulating in order) and checks every index
 *    it touches, compared with the CPU backend's convolution (oneDNN) on the network's shapes
 *    and odd small ones: forward (+ bias, as cudnnAddTensor adds it), backward data
 *    (overwritten) and backward filter (accumulated into a non-zero dw);
 *  - the 1x1x1 eligibility rule, the plan-cache key (compare, hash), the algorithm choice among
 *    Find results and the message shape string.
 * Prints one line per case; returns 0 when all pass, 1 otherwise.
 */
#include "cuda/conv_gemm_math.h"
#include "nn/cpu/cpu_backend.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void expect(int ok, const char *what) {
    printf("%-4s %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) failures++;
}

static uint64_t rng_state = 88172645463325252ull;
static float rnd(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0) - 1.0);
}
static void fill_rand(float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = rnd();
}

/* --- naive column-major sgemm, cuBLAS conventions ------------------------------------------- */
typedef struct operand {
    float *p;
    size_t n; /* floats in the tensor, for the bounds check */
} operand;

static int in_bounds = 1;
static float at(const operand *o, long long i) {
    if (i < 0 || (size_t)i >= o->n) {
        in_bounds = 0;
        return 0.0f;
    }
    return o->p[i];
}

/* Checks the cuBLAS argument rules (lda >= rows of A as stored, ...). */
static int args_valid(const sq_gemm_args *g) {
    const int rows_a = g->transa ? g->k : g->m, rows_b = g->transb ? g->n : g->k;
    return g->m >= 1 && g->n >= 1 && g->k >= 1 && g->batch >= 1 && g->lda >= rows_a &&
           g->ldb >= rows_b && g->ldc >= g->m && (!g->sequential || g->stride_c == 0);
}

/* C_i = alpha op(A_i) op(B_i) + beta C_i for i = 0..batch-1 in order, in double; *abssum (like C)
 * gets sum |terms| per element, for the tolerance. */
static void ref_gemm(const sq_gemm_args *g, const operand op[3], double *abssum) {
    const operand *a = &op[g->a], *b = &op[g->b], *c = &op[g->c];
    for (int bi = 0; bi < g->batch; bi++) {
        const long long oa = bi * g->stride_a, ob = bi * g->stride_b, oc = bi * g->stride_c;
        for (int j = 0; j < g->n; j++)
            for (int i = 0; i < g->m; i++) {
                double s = 0.0, as = 0.0;
                for (int l = 0; l < g->k; l++) {
                    const long long ia =
                        g->transa ? l + (long long)i * g->lda : i + (long long)l * g->lda;
                    const long long ib =
                        g->transb ? j + (long long)l * g->ldb : l + (long long)j * g->ldb;
                    const double t = (double)at(a, oa + ia) * at(b, ob + ib);
                    s += t;
                    as += fabs(t);
                }
                const long long ic = oc + i + (long long)j * g->ldc;
                const double prev = g->beta != 0.0f ? (double)g->beta * at(c, ic) : 0.0;
                const double v = (double)g->alpha * s + prev;
                if (ic >= 0 && (size_t)ic < c->n) {
                    c->p[ic] = (float)v;
                    abssum[ic] = bi == 0 || !g->sequential ? as + fabs(prev) : abssum[ic] + as;
                } else {
                    in_bounds = 0;
                }
            }
    }
}

/* --- one 1x1x1 shape against the CPU backend ----------------------------------------------------
 */
typedef struct bufs {
    sq_buf *x, *w, *b, *y, *dy, *dx, *dw, *db;
} bufs;

static float *host(sq_backend *be, sq_buf *b) {
    return (float *)be->buf_host(be, b);
}

static sq_code alloc_all(sq_backend *be, const sq_conv3d *p, bufs *B, sq_status *st) {
    const size_t nx = (size_t)sq_shape5_numel(p->in),
                 ny = (size_t)sq_shape5_numel(sq_conv3d_out(p));
    const size_t nw = (size_t)p->cout * p->in.c, f = sizeof(float);
    SQ_TRY(be->buf_alloc(be, nx * f, &B->x, st));
    SQ_TRY(be->buf_alloc(be, nw * f, &B->w, st));
    SQ_TRY(be->buf_alloc(be, (size_t)p->cout * f, &B->b, st));
    SQ_TRY(be->buf_alloc(be, ny * f, &B->y, st));
    SQ_TRY(be->buf_alloc(be, ny * f, &B->dy, st));
    SQ_TRY(be->buf_alloc(be, nx * f, &B->dx, st));
    SQ_TRY(be->buf_alloc(be, nw * f, &B->dw, st));
    return be->buf_alloc(be, (size_t)p->cout * f, &B->db, st);
}

static void free_all(sq_backend *be, bufs *B) {
    sq_buf *all[] = {B->x, B->y, B->w, B->b, B->dy, B->dx, B->dw, B->db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        be->buf_free(be, all[i]);
}

/* max |got - ref| and the worst ratio |got - ref| / tol, tol = (2 + 4 sqrt(k)) eps sum|terms|. */
static void compare(const float *got, const float *ref, const double *abssum, size_t n, int k,
                    double *maxdiff, double *worst) {
    const double rel = (2.0 + 4.0 * sqrt((double)k)) * FLT_EPSILON;
    *maxdiff = 0.0;
    *worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - ref[i]);
        const double tol = rel * abssum[i] + 1e-30;
        if (d > *maxdiff) *maxdiff = d;
        if (d / tol > *worst) *worst = d / tol;
        if (got[i] != got[i]) *worst = INFINITY;
    }
}

static void report(const char *dir, const sq_conv3d *p, const sq_gemm_args *g, const float *got,
                   const float *ref, const double *abssum, size_t n) {
    double maxdiff, worst;
    compare(got, ref, abssum, n, g->k, &maxdiff, &worst);
    char d[128], line[320];
    snprintf(line, sizeof line,
             "gemm %-10s %-32s m%d n%d k%d batch %d%s: max|diff| %.3g, worst diff/tol %.3f "
             "(tol (2+4sqrt(k)) eps sum|terms|)",
             dir, sq_conv_desc(p, 1, d, sizeof d), g->m, g->n, g->k, g->batch,
             g->sequential ? " seq" : "", maxdiff, worst);
    expect(worst <= 1.0 && args_valid(g) && in_bounds, line);
}

/* Forward: y = gemm + bias (as cudnnAddTensor adds it after the GEMM). */
static void check_fwd(sq_backend *be, const sq_conv3d *p, bufs *B, float *scratch, double *abssum) {
    const sq_shape5 o = sq_conv3d_out(p);
    const size_t ny = (size_t)sq_shape5_numel(o), s = (size_t)o.d * o.h * o.w;
    const sq_gemm_args g = sq_conv_gemm_args(p, SQ_CONV_FWD);
    fill_rand(scratch, ny); /* overwritten: start from garbage */
    operand op[3] = {{host(be, B->x), (size_t)sq_shape5_numel(p->in)},
                     {host(be, B->w), (size_t)p->cout * p->in.c},
                     {scratch, ny}};
    in_bounds = 1;
    ref_gemm(&g, op, abssum);
    const float *bias = host(be, B->b);
    for (size_t i = 0; i < ny; i++) {
        const size_t ch = (i / s) % (size_t)o.c;
        scratch[i] += bias[ch];
        abssum[i] += fabs(bias[ch]);
    }
    report("fwd", p, &g, host(be, B->y), scratch, abssum, ny);
}

/* Backward data: dx overwritten. */
static void check_bwd_data(sq_backend *be, const sq_conv3d *p, bufs *B, float *scratch,
                           double *abssum) {
    const size_t nx = (size_t)sq_shape5_numel(p->in);
    const sq_gemm_args g = sq_conv_gemm_args(p, SQ_CONV_BWD_DATA);
    fill_rand(scratch, nx);
    operand op[3] = {{scratch, nx},
                     {host(be, B->w), (size_t)p->cout * p->in.c},
                     {host(be, B->dy), (size_t)sq_shape5_numel(sq_conv3d_out(p))}};
    in_bounds = 1;
    ref_gemm(&g, op, abssum);
    report("bwd_data", p, &g, host(be, B->dx), scratch, abssum, nx);
}

/* Backward filter: dw accumulated onto its initial value dw0. */
static void check_bwd_filter(sq_backend *be, const sq_conv3d *p, bufs *B, const float *dw0,
                             float *scratch, double *abssum) {
    const size_t nw = (size_t)p->cout * p->in.c;
    const sq_gemm_args g = sq_conv_gemm_args(p, SQ_CONV_BWD_FILTER);
    memcpy(scratch, dw0, nw * sizeof(float));
    operand op[3] = {{host(be, B->x), (size_t)sq_shape5_numel(p->in)},
                     {scratch, nw},
                     {host(be, B->dy), (size_t)sq_shape5_numel(sq_conv3d_out(p))}};
    in_bounds = 1;
    ref_gemm(&g, op, abssum);
    report("bwd_filter", p, &g, host(be, B->dw), scratch, abssum, nw);
}

static sq_code run_cpu(sq_backend *be, const sq_conv3d *p, bufs *B, sq_status *st) {
    SQ_TRY(be->conv3d_fwd(be, p, sq_view_of(B->x, 0), sq_view_of(B->w, 0), sq_view_of(B->b, 0),
                          sq_view_of(B->y, 0), st));
    return be->conv3d_bwd(be, p, sq_view_of(B->x, 0), sq_view_of(B->w, 0), sq_view_of(B->dy, 0),
                          sq_view_of(B->dx, 0), sq_view_of(B->dw, 0), sq_view_none(), st);
}

static void check_shape(sq_backend *be, sq_shape5 in, int cout) {
    sq_conv3d p = {in, cout, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    sq_status st;
    sq_status_clear(&st);
    bufs B;
    memset(&B, 0, sizeof B);
    const size_t nx = (size_t)sq_shape5_numel(in), ny = (size_t)sq_shape5_numel(sq_conv3d_out(&p));
    const size_t nw = (size_t)cout * in.c, nxy = nx > ny ? nx : ny, nmax = nxy > nw ? nxy : nw;
    float *scratch = malloc(nmax * sizeof(float)), *dw0 = malloc(nw * sizeof(float));
    double *abssum = malloc(nmax * sizeof(double));
    sq_code rc = scratch && dw0 && abssum ? alloc_all(be, &p, &B, &st) : SQ_ERR_NOMEM;
    if (rc == SQ_OK) {
        fill_rand(host(be, B.x), nx);
        fill_rand(host(be, B.w), nw);
        fill_rand(host(be, B.b), (size_t)cout);
        fill_rand(host(be, B.dy), ny);
        fill_rand(host(be, B.dx), nx); /* overwritten: garbage in */
        fill_rand(dw0, nw);            /* accumulated: a non-zero start */
        memcpy(host(be, B.dw), dw0, nw * sizeof(float));
        rc = run_cpu(be, &p, &B, &st);
    }
    if (rc == SQ_OK) {
        check_fwd(be, &p, &B, scratch, abssum);
        check_bwd_data(be, &p, &B, scratch, abssum);
        check_bwd_filter(be, &p, &B, dw0, scratch, abssum);
    } else {
        expect(0, st.msg[0] ? st.msg : "allocation failed");
    }
    free_all(be, &B);
    free(scratch);
    free(dw0);
    free(abssum);
}

/* --- eligibility, key, algorithm choice, message -----------------------------------------------
 */
static void check_is_gemm(void) {
    const sq_shape5 in = {2, 32, 14, 80, 80};
    sq_conv3d p = {in, 16, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    int ok = sq_conv_is_gemm(&p, 1) && !sq_conv_is_gemm(&p, 2) && !sq_conv_is_gemm(&p, 32);
    for (int a = 0; a < 3; a++) {
        sq_conv3d q = p;
        q.k[a] = 3;
        ok = ok && !sq_conv_is_gemm(&q, 1);
        q = p;
        q.stride[a] = 2;
        ok = ok && !sq_conv_is_gemm(&q, 1);
        q = p;
        q.pad[a] = 1;
        ok = ok && !sq_conv_is_gemm(&q, 1);
    }
    sq_conv3d big = p;
    big.in.d = 2048, big.in.h = 1024, big.in.w = 1024; /* S = 2^31 > INT_MAX */
    ok = ok && !sq_conv_is_gemm(&big, 1);
    expect(ok, "is_gemm: dense 1x1x1 s1 p0 only (not groups>1, k3, stride 2, pad 1, S > INT_MAX)");
}

static void check_key(void) {
    const sq_conv3d base = {{2, 32, 28, 160, 160}, 64, {3, 3, 3}, {1, 2, 2}, {1, 1, 1}};
    const sq_conv_key k0 = sq_conv_key_make(&base, 1);
    sq_conv_key k1 = sq_conv_key_make(&base, 1);
    int ok = sq_conv_key_eq(&k0, &k1) && sq_conv_key_hash(&k0) == sq_conv_key_hash(&k1);
    /* every single-field change: unequal, and a different hash */
    int *fields[] = {&k1.in[0],  &k1.in[1],     &k1.in[2],     &k1.in[3],
                     &k1.in[4],  &k1.cout,      &k1.k[0],      &k1.k[1],
                     &k1.k[2],   &k1.stride[0], &k1.stride[1], &k1.stride[2],
                     &k1.pad[0], &k1.pad[1],    &k1.pad[2],    &k1.groups};
    const int nf = (int)(sizeof fields / sizeof fields[0]);
    for (int i = 0; i < nf; i++) {
        k1 = sq_conv_key_make(&base, 1);
        *fields[i] += 1;
        ok = ok && !sq_conv_key_eq(&k0, &k1) && sq_conv_key_hash(&k0) != sq_conv_key_hash(&k1);
    }
    /* swapped axes must differ too (D/H/W are not interchangeable) */
    sq_conv3d sw = base;
    sw.stride[0] = 2, sw.stride[2] = 1;
    const sq_conv_key ks = sq_conv_key_make(&sw, 1);
    ok = ok && !sq_conv_key_eq(&k0, &ks) && sq_conv_key_hash(&k0) != sq_conv_key_hash(&ks);
    /* no hash collision over a grid of network-like shapes */
    enum { NK = 4 * 5 * 4 * 3 };
    uint64_t h[NK];
    int n = 0;
    const int batch[4] = {1, 2, 3, 8}, chans[5] = {2, 16, 40, 320, 640}, dims[4] = {1, 5, 40, 160};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 5; b++)
            for (int c = 0; c < 4; c++)
                for (int g = 0; g < 3; g++) {
                    sq_conv3d q = {{batch[a], chans[b], dims[c], dims[c], dims[c]},
                                   chans[(b + 1) % 5],
                                   {1 + 2 * g, 1 + 2 * g, 1 + 2 * g},
                                   {1, 1 + (g & 1), 1 + (g & 1)},
                                   {g, g, g}};
                    const sq_conv_key k = sq_conv_key_make(&q, 1);
                    h[n++] = sq_conv_key_hash(&k);
                }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            ok = ok && h[i] != h[j];
    expect(ok, "plan key: equal keys match, each field and axis swap changes key and hash, "
               "no collision over 240 shapes");
}

static void check_pick(void) {
    const size_t cap = 1000;
    /* {success, deterministic, math_ok, ms, memory} */
    const sq_conv_algo_cand c[] = {
        {1, 0, 1, 0.10f, 0},    /* fastest but non-deterministic */
        {0, 1, 1, 0.05f, 0},    /* failed */
        {1, 1, 0, 0.06f, 0},    /* wrong math (e.g. TF32 when strict) */
        {1, 1, 1, 0.30f, 2000}, /* workspace over the cap */
        {1, 1, 1, 0.20f, 10},   /* usable */
        {1, 1, 1, 0.20f, 0},    /* usable, same time: the first one wins */
        {1, 1, 1, -1.0f, 0},    /* not measured */
    };
    const int n = (int)(sizeof c / sizeof c[0]);
    int ok = sq_conv_pick_algo(c, n, 0, cap) == 0 && sq_conv_pick_algo(c, n, 1, cap) == 4;
    ok = ok && sq_conv_pick_algo(c, 4, 1, cap) == -1 && sq_conv_pick_algo(c, 0, 0, cap) == -1;
    ok = ok && sq_conv_pick_algo(c + 1, 3, 0, 5000) == 2; /* c[3], once its workspace fits */
    expect(ok, "algo pick: fastest with SUCCESS, allowed math, determinism when asked, "
               "workspace <= cap; first on ties; -1 when none");
}

static void check_desc(void) {
    const sq_conv3d p = {{2, 32, 28, 160, 160}, 64, {3, 3, 3}, {1, 2, 2}, {1, 1, 1}};
    char b[128], g[128], tiny[8];
    sq_conv_desc(&p, 1, b, sizeof b);
    sq_conv_desc(&p, 32, g, sizeof g);
    sq_conv_desc(&p, 32, tiny, sizeof tiny);
    const int ok = strcmp(b, "2x32x28x160x160 -> 64 k3x3x3 s1x2x2 p1x1x1") == 0 &&
                   strcmp(g, "2x32x28x160x160 -> 64 k3x3x3 s1x2x2 p1x1x1 g32") == 0 &&
                   strlen(tiny) == sizeof tiny - 1;
    expect(ok, "message shape string (dense, grouped, truncated)");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    sq_status st;
    sq_status_clear(&st);
    sq_backend *be = sq_backend_cpu_create(1, &st);
    if (!be) {
        printf("FAIL cpu backend: %s\n", st.msg);
        return 1;
    }
    check_is_gemm();
    check_key();
    check_pick();
    check_desc();
    const struct {
        sq_shape5 in;
        int cout;
    } shapes[] = {
        {{2, 32, 14, 80, 80}, 16}, /* project at the paper shape's first stage */
        {{2, 64, 7, 20, 20}, 384}, /* expand */
        {{2, 320, 1, 1, 1}, 80},   /* SE reduce at the deepest level, S = 1 */
        {{2, 80, 1, 1, 1}, 320},   /* SE expand */
        {{1, 16, 5, 7, 3}, 24},    /* N = 1 */
        {{3, 8, 3, 5, 7}, 5},      /* N = 3, odd sizes */
        {{2, 1, 4, 6, 5}, 7},      /* Cin = 1 */
        {{2, 9, 3, 3, 3}, 1},      /* Cout = 1 */
        {{1, 1, 1, 1, 1}, 1},      /* everything 1 */
        {{2, 2, 2, 16, 24}, 16},   /* small test shape */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_shape(be, shapes[i].in, shapes[i].cout);
    be->destroy(be);
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
