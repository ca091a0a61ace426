// test_cuda_pointwise_host.cu — host replay of the CUDA element-wise ops (cuda/pointwise.cu)
// against the CPU backend, without a GPU.
//
// Every kernel of pointwise.cu is emulated with host loops over its grid (blocks, threads, the
// per-plane y loop, the per-thread chunk loops, the block trees and the fixed-order combines),
// calling exactly the __host__ __device__ functions of cuda/pointwise_math.cuh. The result is
// compared with the CPU backend (the oracle) at the network's shapes and at odd small ones:
//  - element-wise ops, pooling and resize (values and gradients): bitwise (tolerance 0; NaN
//    matches NaN), since the float operations are the CPU's in the CPU's order;
//  - reductions: against the CPU with a tolerance for the CPU's float partial sums, and against a
//    double reference with a rounding-level tolerance.
// One line per case: max |diff| and its tolerance. Exit status 0 when every case passes.
#include "cuda/pointwise_math.cuh"
#include "nn/backend.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

// nn/cpu/cpu_backend.h does not compile as C++ today (its extern "C" block closes early), so the
// one function used is declared here.
extern "C" sq_backend *sq_backend_cpu_create(int threads, sq_status *st);

static sq_backend *g_be;
static int g_fail;

// ---- small utilities -------------------------------------------------------------------------

typedef std::vector<float> vecf;
typedef std::vector<double> vecd;

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float urand(float lo, float hi) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}
static vecf rand_vec(size_t n, float lo, float hi) {
    vecf v(n);
    for (size_t i = 0; i < n; i++)
        v[i] = urand(lo, hi);
    return v;
}
// Few distinct values (ties) with a NaN every ~`nan_every` elements (0: none).
static vecf tie_vec(size_t n, size_t nan_every) {
    vecf v(n);
    for (size_t i = 0; i < n; i++) {
        v[i] = floorf(urand(-3.0f, 3.0f)) * 0.5f;
        if (nan_every && (size_t)urand(0.0f, (float)nan_every) == 0) v[i] = NAN;
    }
    return v;
}

// A CPU-backend buffer holding `v` (at least one float).
struct cbuf {
    sq_buf *b;
    size_t n;
};
static cbuf cpu_put(const vecf &v) {
    sq_status st;
    cbuf c = {NULL, v.size()};
    const size_t bytes = (v.size() ? v.size() : 1) * sizeof(float);
    if (g_be->buf_alloc(g_be, bytes, &c.b, &st) != SQ_OK) {
        fprintf(stderr, "buf_alloc: %s\n", st.msg);
        exit(1);
    }
    if (v.size()) memcpy(g_be->buf_host(g_be, c.b), v.data(), v.size() * sizeof(float));
    return c;
}
static cbuf cpu_zeros(size_t n) {
    return cpu_put(vecf(n, 0.0f));
}
static vecf cpu_get(const cbuf &c) {
    vecf v(c.n);
    if (c.n) memcpy(v.data(), g_be->buf_host(g_be, c.b), c.n * sizeof(float));
    g_be->buf_free(g_be, c.b);
    return v;
}
static sq_view V(const cbuf &c) {
    return sq_view_of(c.b, 0);
}
static void cpu_ok(sq_code rc, const sq_status &st, const char *what) {
    if (rc != SQ_OK) {
        fprintf(stderr, "CPU %s failed: %s\n", what, st.msg);
        exit(1);
    }
}

// Bitwise comparison (NaN equals NaN); prints one line.
static void check_exact(const char *name, const vecf &got, const vecf &ref) {
    size_t bad = 0;
    double maxd = 0.0;
    if (got.size() != ref.size()) bad = 1;
    for (size_t i = 0; !bad && i < got.size(); i++) {
        const float a = got[i], b = ref[i];
        if (isnan(a) && isnan(b)) continue;
        uint32_t ua, ub;
        memcpy(&ua, &a, 4);
        memcpy(&ub, &b, 4);
        if (ua != ub) bad++;
        const double d = isnan(a) || isnan(b) ? INFINITY : fabs((double)a - b);
        if (d > maxd) maxd = d;
    }
    printf("%-64s max|diff| %-10.3g tol 0 (bitwise)  %s\n", name, maxd, bad ? "FAIL" : "ok");
    if (bad) g_fail = 1;
}

// Within 1e-6 relative (NaN where both are NaN, infinities equal): sigmoid and swish, whose CPU
// kernels (issue 17) evaluate exp as 8-float vectors with FMA, so the last bits differ from expf.
static void check_close(const char *name, const vecf &got, const vecf &ref) {
    size_t bad = got.size() != ref.size();
    double maxd = 0.0;
    for (size_t i = 0; !bad && i < got.size(); i++) {
        const float a = got[i], b = ref[i];
        if (isnan(a) && isnan(b)) continue;
        if (isinf(a) || isinf(b)) {
            bad += a != b;
            continue;
        }
        const double d = fabs((double)a - b);
        if (!(d <= 1e-6 * fmax(1.0, fabs((double)b)))) bad++;
        if (d > maxd) maxd = d;
    }
    printf("%-64s max|diff| %-10.3g tol 1e-6 (rel)   %s\n", name, maxd, bad ? "FAIL" : "ok");
    if (bad) g_fail = 1;
}

static void check_act(sq_act a, const char *name, const vecf &got, const vecf &ref) {
    if (a == SQ_ACT_SIGMOID || a == SQ_ACT_SWISH)
        check_close(name, got, ref);
    else
        check_exact(name, got, ref);
}

// |got - ref| <= tol[i] element-wise; prints the largest diff and the largest tolerance.
static void check_tol(const char *name, const vecf &got, const vecd &ref, const vecd &tol) {
    double maxd = 0.0, maxt = 0.0;
    int bad = got.size() != ref.size();
    for (size_t i = 0; !bad && i < got.size(); i++) {
        const double d = fabs((double)got[i] - ref[i]);
        if (!(d <= tol[i])) bad = 1;
        if (d > maxd || isnan(d)) maxd = d;
        if (tol[i] > maxt) maxt = tol[i];
    }
    printf("%-64s max|diff| %-10.3g tol %-10.3g        %s\n", name, maxd, maxt,
           bad ? "FAIL" : "ok");
    if (bad) g_fail = 1;
}
static vecd to_d(const vecf &v) {
    return vecd(v.begin(), v.end());
}

static const char *shape_s(sq_shape5 s) {
    static char buf[8][64];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%dx%dx%dx%dx%d", s.n, s.c, s.d, s.h, s.w);
    return buf[k];
}

// ---- emulation of the launch shapes ---------------------------------------------------------

static const int EMU_SM = 132; // an H200's SM count

// A grid-stride element-wise kernel: f(i) for every i, visited as the device threads do.
template <class F> static void emu_grid_stride(int64_t n, F f) {
    const int64_t nb = pw_elem_blocks(n, EMU_SM);
    for (int64_t b = 0; b < nb; b++)
        for (int t = 0; t < PW_BLOCK; t++)
            for (int64_t i = b * PW_BLOCK + t; i < n; i += nb * PW_BLOCK)
                f(i);
}

// A per-plane chunked kernel: f(pl, chunk, lo, hi) for each block (chunk, by) and each of its
// planes by, by + gridDim.y, ...
template <class F> static void emu_plane_chunks(int64_t S, int64_t planes, F f) {
    const int64_t nchunks = pw_nchunks(S);
    const int64_t gy = pw_grid_y(planes);
    for (int64_t bx = 0; bx < nchunks; bx++)
        for (int64_t by = 0; by < gy; by++)
            for (int64_t pl = by; pl < planes; pl += gy)
                f(pl, bx, pw_chunk_lo(bx), pw_chunk_hi(bx, S));
}

// A per-plane element kernel (pooling, resize): f(pl, q) for q < per_plane.
template <class F> static void emu_plane_elems(int64_t per_plane, int64_t planes, F f) {
    const int64_t gx = (per_plane + PW_BLOCK - 1) / PW_BLOCK;
    const int64_t gy = pw_grid_y(planes);
    for (int64_t by = 0; by < gy; by++)
        for (int64_t bx = 0; bx < gx; bx++)
            for (int t = 0; t < PW_BLOCK; t++) {
                const int64_t q = bx * PW_BLOCK + t;
                if (q >= per_plane) continue;
                for (int64_t pl = by; pl < planes; pl += gy)
                    f(pl, q);
            }
}

// pw_block_sum: the block's values combined by the fixed tree.
static double emu_tree(double *sh) {
    for (int s = PW_BLOCK / 2; s > 0; s >>= 1)
        for (int t = 0; t < PW_BLOCK; t++)
            pw_tree_step(sh, t, s);
    return sh[0];
}

// flat_finish_kernel / fuse_finish_kernel's combine of `count` partials.
static double emu_combine_block(const double *part, int64_t count) {
    double sh[PW_BLOCK];
    for (int t = 0; t < PW_BLOCK; t++)
        sh[t] = pw_combine_thread(part, count, t);
    return emu_tree(sh);
}

// ---- emulated ops (the op functions of pointwise.cu, kernel by kernel) ------------------------

static void emu_act_fwd(sq_act a, int64_t n, const float *x, float *y) {
    emu_grid_stride(n, [&](int64_t i) { y[i] = pw_act(a, pw_act_input(x[i])); });
}
static void emu_act_bwd(sq_act a, int64_t n, const float *x, const float *dy, float *dx) {
    if (a == SQ_ACT_NONE) { // cudaMemcpyAsync
        if (dx != dy) memcpy(dx, dy, (size_t)n * sizeof(float));
        return;
    }
    emu_grid_stride(n, [&](int64_t i) { dx[i] = pw_act_grad(a, pw_act_input(x[i]), dy[i]); });
}

static void emu_prelu_fwd(sq_shape5 s, const float *x, const float *alpha, float *y) {
    const int64_t S = (int64_t)s.d * s.h * s.w;
    emu_plane_chunks(S, (int64_t)s.n * s.c, [&](int64_t pl, int64_t, int64_t lo, int64_t hi) {
        const float a = alpha[pl % s.c];
        for (int t = 0; t < PW_BLOCK; t++)
            for (int64_t i = lo + t; i < hi; i += PW_BLOCK)
                y[pl * S + i] = pw_prelu(x[pl * S + i], a);
    });
}

static void emu_prelu_bwd(sq_shape5 s, const float *x, const float *alpha, const float *dy,
                          float *dx, float *dalpha) {
    const int64_t S = (int64_t)s.d * s.h * s.w, planes = (int64_t)s.n * s.c;
    const int64_t nchunks = pw_nchunks(S);
    vecd part(dalpha ? planes * nchunks : 0);
    emu_plane_chunks(S, planes, [&](int64_t pl, int64_t bx, int64_t lo, int64_t hi) {
        double sh[PW_BLOCK];
        for (int t = 0; t < PW_BLOCK; t++)
            sh[t] = pw_prelu_bwd_thread(x, dy, dx, alpha[pl % s.c], pl * S, lo, hi, t);
        if (dalpha) part[pl * nchunks + bx] = emu_tree(sh);
    });
    if (!dalpha) return;
    for (int c = 0; c < s.c; c++) // prelu_finish_kernel
        dalpha[c] =
            pw_accumulate(dalpha[c], pw_prelu_channel_sum(part.data(), s.n, s.c, c, nchunks));
}

static void emu_gap_fwd(sq_shape5 s, const float *x, float *y) {
    const int64_t S = (int64_t)s.d * s.h * s.w, planes = (int64_t)s.n * s.c;
    const int64_t nchunks = pw_nchunks(S);
    vecd part(planes * nchunks);
    emu_plane_chunks(S, planes, [&](int64_t pl, int64_t bx, int64_t lo, int64_t hi) {
        double sh[PW_BLOCK];
        for (int t = 0; t < PW_BLOCK; t++)
            sh[t] = pw_gap_thread(x, pl * S, lo, hi, t);
        const double tot = emu_tree(sh);
        if (nchunks == 1)
            y[pl] = pw_gap_finish(tot, S); // direct
        else
            part[pl * nchunks + bx] = tot;
    });
    if (nchunks == 1) return;
    for (int64_t pl = 0; pl < planes; pl++) // plane_finish_kernel, mean
        y[pl] = pw_gap_finish(pw_combine_serial(part.data() + pl * nchunks, nchunks), S);
}

static void emu_gap_bwd(sq_shape5 s, const float *dy, float *dx) {
    const int64_t S = (int64_t)s.d * s.h * s.w;
    emu_plane_chunks(S, (int64_t)s.n * s.c, [&](int64_t pl, int64_t, int64_t lo, int64_t hi) {
        const float g = pw_gap_grad(dy[pl], S);
        for (int t = 0; t < PW_BLOCK; t++)
            for (int64_t i = lo + t; i < hi; i += PW_BLOCK)
                dx[pl * S + i] = g;
    });
}

static void emu_chscale_fwd(sq_shape5 s, const float *x, const float *scale, float *y) {
    const int64_t S = (int64_t)s.d * s.h * s.w;
    emu_plane_chunks(S, (int64_t)s.n * s.c, [&](int64_t pl, int64_t, int64_t lo, int64_t hi) {
        for (int t = 0; t < PW_BLOCK; t++)
            for (int64_t i = lo + t; i < hi; i += PW_BLOCK)
                y[pl * S + i] = pw_mul(x[pl * S + i], scale[pl]);
    });
}

static void emu_chscale_bwd(sq_shape5 s, const float *x, const float *scale, const float *dy,
                            float *dx, float *dscale) {
    const int64_t S = (int64_t)s.d * s.h * s.w, planes = (int64_t)s.n * s.c;
    const int64_t nchunks = pw_nchunks(S);
    vecd part(planes * nchunks);
    emu_plane_chunks(S, planes, [&](int64_t pl, int64_t bx, int64_t lo, int64_t hi) {
        double sh[PW_BLOCK];
        for (int t = 0; t < PW_BLOCK; t++)
            sh[t] = pw_chscale_bwd_thread(x, dy, dx, scale[pl], pl * S, lo, hi, t);
        if (!dscale) return;
        const double tot = emu_tree(sh);
        if (nchunks == 1)
            dscale[pl] = (float)tot; // direct
        else
            part[pl * nchunks + bx] = tot;
    });
    if (!dscale || nchunks == 1) return;
    for (int64_t pl = 0; pl < planes; pl++) // plane_finish_kernel, sum
        dscale[pl] = (float)pw_combine_serial(part.data() + pl * nchunks, nchunks);
}

static void emu_maxpool_fwd(const sq_pool3d *p, const float *x, float *y) {
    const pw_pool_geom g = pw_pool_geom_of(p);
    const int64_t S = (int64_t)g.in[0] * g.in[1] * g.in[2];
    const int64_t So = (int64_t)g.out[0] * g.out[1] * g.out[2];
    emu_plane_elems(So, (int64_t)p->in.n * p->in.c, [&](int64_t pl, int64_t q) {
        int od, oh, ow;
        pw_unflatten3((int)q, g.out, &od, &oh, &ow);
        const int a = pw_pool_argmax(x + pl * S, g, od, oh, ow);
        y[pl * So + q] = a >= 0 ? x[pl * S + a] : -INFINITY;
    });
}

static void emu_maxpool_bwd(const sq_pool3d *p, const float *x, const float *dy, float *dx) {
    const pw_pool_geom g = pw_pool_geom_of(p);
    const int64_t S = (int64_t)g.in[0] * g.in[1] * g.in[2];
    const int64_t So = (int64_t)g.out[0] * g.out[1] * g.out[2];
    const int64_t planes = (int64_t)p->in.n * p->in.c;
    std::vector<int> arg(planes * So);
    emu_plane_elems(So, planes, [&](int64_t pl, int64_t q) {
        int od, oh, ow;
        pw_unflatten3((int)q, g.out, &od, &oh, &ow);
        arg[pl * So + q] = pw_pool_argmax(x + pl * S, g, od, oh, ow);
    });
    emu_plane_elems(S, planes, [&](int64_t pl, int64_t q) {
        int d, h, w;
        pw_unflatten3((int)q, g.in, &d, &h, &w);
        dx[pl * S + q] = pw_pool_gather(arg.data() + pl * So, dy + pl * So, g, d, h, w);
    });
}

static void emu_resize_fwd(const sq_resize3d *p, const float *x, float *y) {
    const pw_resize_geom g = pw_resize_geom_of(p);
    const int64_t S = (int64_t)g.in[0] * g.in[1] * g.in[2];
    const int64_t So = (int64_t)g.out[0] * g.out[1] * g.out[2];
    emu_plane_elems(So, (int64_t)p->in.n * p->in.c, [&](int64_t pl, int64_t q) {
        int od, oh, ow;
        pw_unflatten3((int)q, g.out, &od, &oh, &ow);
        y[pl * So + q] = pw_resize_value(x + pl * S, g, od, oh, ow);
    });
}

static void emu_resize_bwd(const sq_resize3d *p, const float *dy, float *dx) {
    const pw_resize_geom g = pw_resize_geom_of(p);
    const int64_t S = (int64_t)g.in[0] * g.in[1] * g.in[2];
    const int64_t So = (int64_t)g.out[0] * g.out[1] * g.out[2];
    emu_plane_elems(S, (int64_t)p->in.n * p->in.c, [&](int64_t pl, int64_t q) {
        int d, h, w;
        pw_unflatten3((int)q, g.in, &d, &h, &w);
        dx[pl * S + q] = pw_resize_gather(dy + pl * So, g, d, h, w);
    });
}

static void emu_fuse_fwd(int64_t n, int k, const float *const *xs, const float *w, float *y) {
    float r[PW_FUSE_KMAX], a[PW_FUSE_KMAX];
    pw_fuse_weights(w, k, r, a);
    emu_grid_stride(n, [&](int64_t j) { y[j] = pw_fuse_value(a, k, xs, j); });
}

static void emu_fuse_bwd(int64_t n, int k, const float *const *xs, const float *w, const float *dy,
                         float *const *dxs, float *dw) {
    float r[PW_FUSE_KMAX], a[PW_FUSE_KMAX];
    pw_fuse_weights(w, k, r, a);
    const int64_t nb = pw_nchunks(n);
    vecd part((size_t)k * nb);
    for (int64_t b = 0; b < nb; b++) { // fuse_bwd_kernel
        double D[PW_BLOCK][PW_FUSE_KMAX] = {};
        for (int t = 0; t < PW_BLOCK; t++)
            pw_fuse_bwd_thread(k, a, xs, dy, dxs, pw_chunk_lo(b), pw_chunk_hi(b, n), t, dw != NULL,
                               D[t]);
        for (int i = 0; dw && i < k; i++) {
            double sh[PW_BLOCK];
            for (int t = 0; t < PW_BLOCK; t++)
                sh[t] = D[t][i];
            part[i * nb + b] = emu_tree(sh);
        }
    }
    if (!dw) return;
    double D[PW_FUSE_KMAX]; // fuse_finish_kernel
    for (int i = 0; i < k; i++)
        D[i] = emu_combine_block(part.data() + i * nb, nb);
    const float T = pw_fuse_weights(w, k, r, a);
    pw_fuse_dw(k, w, r, T, D, dw);
}

static float emu_sumsq(int64_t n, const float *x) {
    if (n == 0) return 0.0f;
    const int64_t nb = pw_nchunks(n);
    vecd part(nb);
    for (int64_t b = 0; b < nb; b++) {
        double sh[PW_BLOCK];
        for (int t = 0; t < PW_BLOCK; t++)
            sh[t] = pw_sumsq_thread(x, pw_chunk_lo(b), pw_chunk_hi(b, n), t);
        part[b] = emu_tree(sh);
    }
    return (float)emu_combine_block(part.data(), nb);
}

static float emu_mse_fwd(int64_t n, const float *p, const float *tg) {
    const int64_t nb = pw_nchunks(n);
    vecd part(nb);
    for (int64_t b = 0; b < nb; b++) {
        double sh[PW_BLOCK];
        for (int t = 0; t < PW_BLOCK; t++)
            sh[t] = pw_mse_thread(p, tg, pw_chunk_lo(b), pw_chunk_hi(b, n), t);
        part[b] = emu_tree(sh);
    }
    return pw_mse_finish(emu_combine_block(part.data(), nb), n);
}

// ---- test cases ---------------------------------------------------------------------------------

static const char *act_s(sq_act a) {
    static const char *names[] = {"none", "relu", "sigmoid", "swish"};
    return names[a];
}

// Activations: random values plus the special ones (NaN, inf, signed zeros, clamp edges,
// subnormals) at the front.
static void test_act(int64_t n) {
    vecf x = rand_vec((size_t)n, -12.0f, 12.0f), dy = rand_vec((size_t)n, -2.0f, 2.0f);
    const float sp[] = {NAN,    INFINITY, -INFINITY, 0.0f,   -0.0f,   87.5f, -87.5f, 88.5f,
                        -88.5f, 100.0f,   -100.0f,   1e-40f, -1e-40f, 1e-3f, -1e-3f, 30.0f};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0] && i < x.size(); i++)
        x[i] = sp[i];
    for (int a = SQ_ACT_NONE; a <= SQ_ACT_SWISH; a++) {
        const sq_act act = (sq_act)a;
        sq_status st;
        char name[96];
        cbuf cx = cpu_put(x), cy = cpu_zeros(x.size());
        cpu_ok(g_be->act_fwd(g_be, act, n, V(cx), V(cy), &st), st, "act_fwd");
        vecf y(x.size());
        emu_act_fwd(act, n, x.data(), y.data());
        snprintf(name, sizeof name, "act_fwd %s n=%lld", act_s(act), (long long)n);
        check_act(act, name, y, cpu_get(cy));
        cbuf cdy = cpu_put(dy), cdx = cpu_zeros(x.size());
        cpu_ok(g_be->act_bwd(g_be, act, n, V(cx), V(cdy), V(cdx), &st), st, "act_bwd");
        vecf dx(x.size());
        emu_act_bwd(act, n, x.data(), dy.data(), dx.data());
        snprintf(name, sizeof name, "act_bwd %s n=%lld", act_s(act), (long long)n);
        check_act(act, name, dx, cpu_get(cdx));
        // in place: y = act(y), dy = dy * act'(x)
        cpu_ok(g_be->act_fwd(g_be, act, n, V(cx), V(cx), &st), st, "act_fwd in place");
        vecf yi = x;
        emu_act_fwd(act, n, yi.data(), yi.data());
        snprintf(name, sizeof name, "act_fwd %s n=%lld in place", act_s(act), (long long)n);
        check_act(act, name, yi, cpu_get(cx));
        cx = cpu_put(x);
        cpu_ok(g_be->act_bwd(g_be, act, n, V(cx), V(cdy), V(cdy), &st), st, "act_bwd in place");
        vecf gi = dy;
        emu_act_bwd(act, n, x.data(), gi.data(), gi.data());
        snprintf(name, sizeof name, "act_bwd %s n=%lld in place", act_s(act), (long long)n);
        check_act(act, name, gi, cpu_get(cdy));
        g_be->buf_free(g_be, cx.b);
    }
}

static void test_prelu(sq_shape5 s) {
    const size_t n = (size_t)sq_shape5_numel(s);
    vecf x = rand_vec(n, -1.0f, 1.0f), dy = rand_vec(n, -1.0f, 1.0f);
    vecf alpha = rand_vec((size_t)s.c, 0.0f, 0.5f), da0 = rand_vec((size_t)s.c, -1.0f, 1.0f);
    x[0] = 0.0f; // x == 0 takes the alpha branch
    sq_status st;
    char name[96];
    cbuf cx = cpu_put(x), ca = cpu_put(alpha), cy = cpu_zeros(n);
    cpu_ok(g_be->prelu_fwd(g_be, s, V(cx), V(ca), V(cy), &st), st, "prelu_fwd");
    vecf y(n);
    emu_prelu_fwd(s, x.data(), alpha.data(), y.data());
    snprintf(name, sizeof name, "prelu_fwd %s", shape_s(s));
    check_exact(name, y, cpu_get(cy));

    cbuf cdy = cpu_put(dy), cdx = cpu_zeros(n), cda = cpu_put(da0);
    cpu_ok(g_be->prelu_bwd(g_be, s, V(cx), V(ca), V(cdy), V(cdx), V(cda), &st), st, "prelu_bwd");
    vecf dx(n), da = da0;
    emu_prelu_bwd(s, x.data(), alpha.data(), dy.data(), dx.data(), da.data());
    snprintf(name, sizeof name, "prelu_bwd dx %s", shape_s(s));
    check_exact(name, dx, cpu_get(cdx));
    // dalpha: double reference and the sums of |terms| behind the tolerances
    const int64_t S = (int64_t)s.d * s.h * s.w;
    vecd ref(s.c), tol_cpu(s.c), tol_ref(s.c);
    for (int c = 0; c < s.c; c++) {
        double sum = 0.0, sabs = 0.0;
        for (int nn = 0; nn < s.n; nn++)
            for (int64_t i = 0; i < S; i++) {
                const size_t o = ((size_t)nn * s.c + c) * S + i;
                const double t = x[o] <= 0.0f ? (double)(dy[o] * x[o]) : 0.0;
                sum += t;
                sabs += fabs(t);
            }
        ref[c] = (double)da0[c] + sum;
        tol_ref[c] = 2.4e-7 * (fabs(da0[c]) + fabs(sum)) + 1e-12 * sabs;
        tol_cpu[c] = tol_ref[c] + 1e-4 * sabs; // the CPU sums each plane serially in float
    }
    snprintf(name, sizeof name, "prelu_bwd dalpha (+=) vs cpu %s", shape_s(s));
    check_tol(name, da, to_d(cpu_get(cda)), tol_cpu);
    snprintf(name, sizeof name, "prelu_bwd dalpha (+=) vs double %s", shape_s(s));
    check_tol(name, da, ref, tol_ref);
    // dx none: only dalpha; dalpha none: only dx
    vecf da2 = da0, dx2(n);
    emu_prelu_bwd(s, x.data(), alpha.data(), dy.data(), NULL, da2.data());
    snprintf(name, sizeof name, "prelu_bwd dalpha, dx none %s", shape_s(s));
    check_exact(name, da2, da);
    emu_prelu_bwd(s, x.data(), alpha.data(), dy.data(), dx2.data(), NULL);
    snprintf(name, sizeof name, "prelu_bwd dx, dalpha none %s", shape_s(s));
    check_exact(name, dx2, dx);
    g_be->buf_free(g_be, cx.b);
    g_be->buf_free(g_be, ca.b);
    g_be->buf_free(g_be, cdy.b);
}

static void test_gap_chscale(sq_shape5 s) {
    const size_t n = (size_t)sq_shape5_numel(s), planes = (size_t)s.n * s.c;
    const int64_t S = (int64_t)s.d * s.h * s.w;
    vecf x = rand_vec(n, -1.0f, 1.0f) /* offset: mean != 0 */, dy = rand_vec(n, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++)
        x[i] += 0.25f;
    vecf sc = rand_vec(planes, -2.0f, 2.0f), gy = rand_vec(planes, -3.0f, 3.0f);
    sq_status st;
    char name[96];
    // gap_fwd
    cbuf cx = cpu_put(x), cy = cpu_zeros(planes);
    cpu_ok(g_be->gap_fwd(g_be, s, V(cx), V(cy), &st), st, "gap_fwd");
    vecf y(planes);
    emu_gap_fwd(s, x.data(), y.data());
    vecd ref(planes), tol_cpu(planes), tol_ref(planes);
    for (size_t pl = 0; pl < planes; pl++) {
        double sum = 0.0, sabs = 0.0;
        for (int64_t i = 0; i < S; i++) {
            sum += x[pl * S + i];
            sabs += fabs(x[pl * S + i]);
        }
        ref[pl] = sum / (double)S;
        tol_ref[pl] = 6e-8 * fabs(ref[pl]) + 1e-14 * sabs / (double)S;
        tol_cpu[pl] = 1.2e-7 * fabs(ref[pl]) + 1e-5 * sabs / (double)S;
    }
    snprintf(name, sizeof name, "gap_fwd vs cpu %s", shape_s(s));
    check_tol(name, y, to_d(cpu_get(cy)), tol_cpu);
    snprintf(name, sizeof name, "gap_fwd vs double %s", shape_s(s));
    check_tol(name, y, ref, tol_ref);
    // gap_bwd
    cbuf cgy = cpu_put(gy), cdx = cpu_zeros(n);
    cpu_ok(g_be->gap_bwd(g_be, s, V(cgy), V(cdx), &st), st, "gap_bwd");
    vecf dx(n);
    emu_gap_bwd(s, gy.data(), dx.data());
    snprintf(name, sizeof name, "gap_bwd %s", shape_s(s));
    check_exact(name, dx, cpu_get(cdx));
    // chscale_fwd
    cbuf csc = cpu_put(sc), cyy = cpu_zeros(n);
    cpu_ok(g_be->chscale_fwd(g_be, s, V(cx), V(csc), V(cyy), &st), st, "chscale_fwd");
    vecf yy(n);
    emu_chscale_fwd(s, x.data(), sc.data(), yy.data());
    snprintf(name, sizeof name, "chscale_fwd %s", shape_s(s));
    check_exact(name, yy, cpu_get(cyy));
    // chscale_bwd (dscale overwritten: start from garbage)
    cbuf cdy = cpu_put(dy), cdx2 = cpu_zeros(n), cds = cpu_put(vecf(planes, 7.0f));
    cpu_ok(g_be->chscale_bwd(g_be, s, V(cx), V(csc), V(cdy), V(cdx2), V(cds), &st), st,
           "chscale_bwd");
    vecf dx2(n), ds(planes, 7.0f);
    emu_chscale_bwd(s, x.data(), sc.data(), dy.data(), dx2.data(), ds.data());
    snprintf(name, sizeof name, "chscale_bwd dx %s", shape_s(s));
    check_exact(name, dx2, cpu_get(cdx2));
    for (size_t pl = 0; pl < planes; pl++) {
        double sum = 0.0, sabs = 0.0;
        for (int64_t i = 0; i < S; i++) {
            const double t = (double)(dy[pl * S + i] * x[pl * S + i]);
            sum += t;
            sabs += fabs(t);
        }
        ref[pl] = sum;
        tol_ref[pl] = 6e-8 * fabs(sum) + 1e-14 * sabs;
        tol_cpu[pl] = 1.2e-7 * fabs(sum) + 1e-5 * sabs;
    }
    snprintf(name, sizeof name, "chscale_bwd dscale vs cpu %s", shape_s(s));
    check_tol(name, ds, to_d(cpu_get(cds)), tol_cpu);
    snprintf(name, sizeof name, "chscale_bwd dscale vs double %s", shape_s(s));
    check_tol(name, ds, ref, tol_ref);
    vecf ds2(planes, 7.0f), dx3(n);
    emu_chscale_bwd(s, x.data(), sc.data(), dy.data(), NULL, ds2.data());
    snprintf(name, sizeof name, "chscale_bwd dscale, dx none %s", shape_s(s));
    check_exact(name, ds2, ds);
    emu_chscale_bwd(s, x.data(), sc.data(), dy.data(), dx3.data(), NULL);
    snprintf(name, sizeof name, "chscale_bwd dx, dscale none %s", shape_s(s));
    check_exact(name, dx3, dx2);
    g_be->buf_free(g_be, cx.b);
    g_be->buf_free(g_be, cgy.b);
    g_be->buf_free(g_be, csc.b);
    g_be->buf_free(g_be, cdy.b);
}

static void test_maxpool(sq_shape5 in, int k0, int k1, int k2, int s0, int s1, int s2, int pad,
                         int ceil_mode, int ties) {
    sq_pool3d p = {in, {k0, k1, k2}, {s0, s1, s2}, {pad, pad, pad}, ceil_mode};
    sq_status st;
    if (sq_pool3d_check(&p, &st) != SQ_OK) {
        printf("maxpool config rejected: %s\n", st.msg);
        g_fail = 1;
        return;
    }
    const sq_shape5 o = sq_pool3d_out(&p);
    const size_t n = (size_t)sq_shape5_numel(in), no = (size_t)sq_shape5_numel(o);
    vecf x = ties ? tie_vec(n, 97) : rand_vec(n, -1.0f, 1.0f), dy = rand_vec(no, -1.0f, 1.0f);
    char name[160];
    cbuf cx = cpu_put(x), cy = cpu_zeros(no);
    cpu_ok(g_be->maxpool3d_fwd(g_be, &p, V(cx), V(cy), &st), st, "maxpool3d_fwd");
    vecf y(no);
    emu_maxpool_fwd(&p, x.data(), y.data());
    const char *tag = ties ? "ties+NaN" : "random";
    snprintf(name, sizeof name, "maxpool_fwd %s k%d%d%d s%d%d%d p%d%s %s -> %dx%dx%d", shape_s(in),
             k0, k1, k2, s0, s1, s2, pad, ceil_mode ? " ceil" : "", tag, o.d, o.h, o.w);
    check_exact(name, y, cpu_get(cy));
    cbuf cdy = cpu_put(dy), cdx = cpu_put(vecf(n, 5.0f)); // dx overwritten
    cpu_ok(g_be->maxpool3d_bwd(g_be, &p, V(cx), V(cdy), V(cdx), &st), st, "maxpool3d_bwd");
    vecf dx(n, 5.0f);
    emu_maxpool_bwd(&p, x.data(), dy.data(), dx.data());
    snprintf(name, sizeof name, "maxpool_bwd %s k%d%d%d s%d%d%d p%d%s %s", shape_s(in), k0, k1, k2,
             s0, s1, s2, pad, ceil_mode ? " ceil" : "", tag);
    check_exact(name, dx, cpu_get(cdx));
    g_be->buf_free(g_be, cx.b);
    g_be->buf_free(g_be, cdy.b);
}

static void test_resize(sq_shape5 in, int od, int oh, int ow) {
    sq_resize3d p = {in, {od, oh, ow}};
    sq_shape5 o = in;
    o.d = od, o.h = oh, o.w = ow;
    const size_t n = (size_t)sq_shape5_numel(in), no = (size_t)sq_shape5_numel(o);
    vecf x = rand_vec(n, -1.0f, 1.0f), dy = rand_vec(no, -1.0f, 1.0f);
    sq_status st;
    char name[160];
    cbuf cx = cpu_put(x), cy = cpu_zeros(no);
    cpu_ok(g_be->resize3d_fwd(g_be, &p, V(cx), V(cy), &st), st, "resize3d_fwd");
    vecf y(no);
    emu_resize_fwd(&p, x.data(), y.data());
    snprintf(name, sizeof name, "resize_fwd %s -> %dx%dx%d", shape_s(in), od, oh, ow);
    check_exact(name, y, cpu_get(cy));
    cbuf cdy = cpu_put(dy), cdx = cpu_put(vecf(n, 5.0f));
    cpu_ok(g_be->resize3d_bwd(g_be, &p, V(cdy), V(cdx), &st), st, "resize3d_bwd");
    vecf dx(n, 5.0f);
    emu_resize_bwd(&p, dy.data(), dx.data());
    snprintf(name, sizeof name, "resize_bwd %s -> %dx%dx%d", shape_s(in), od, oh, ow);
    check_exact(name, dx, cpu_get(cdx));
    g_be->buf_free(g_be, cx.b);
    g_be->buf_free(g_be, cdy.b);
}

// The inverse index ranges against brute force over small extents.
static void test_index_inverses(void) {
    int bad = 0, cases = 0;
    for (int in = 1; in <= 24; in++)
        for (int out = 1; out <= 24; out++)
            for (int i = 0; i < in; i++) {
                int lo, hi;
                pw_resize_dsts_of(i, in, out, &lo, &hi);
                for (int o = 0; o < out; o++) {
                    const int want = pw_resize_src(o, in, out) == i, got = o >= lo && o < hi;
                    bad += want != got;
                    cases++;
                }
            }
    for (int in = 1; in <= 12; in++)
        for (int k = 1; k <= 5; k++)
            for (int s = 1; s <= 3; s++)
                for (int p = 0; 2 * p <= k; p++)
                    for (int cm = 0; cm <= 1; cm++) {
                        sq_pool3d q = {{1, 1, in, 1, 1}, {k, 1, 1}, {s, 1, 1}, {p, 0, 0}, cm};
                        sq_status st;
                        if (sq_pool3d_check(&q, &st) != SQ_OK) continue;
                        const int out = sq_pool3d_out(&q).d;
                        for (int i = 0; i < in; i++) {
                            int lo, hi;
                            pw_pool_outputs_of(i, k, s, p, out, &lo, &hi);
                            for (int o = 0; o < out; o++) {
                                int wl, wh;
                                pw_pool_window(o, k, s, p, in, &wl, &wh);
                                const int want = i >= wl && i < wh, got = o >= lo && o < hi;
                                bad += want != got;
                                cases++;
                            }
                        }
                    }
    printf("%-64s mismatches %d of %d  %s\n", "index inverses (resize dsts, pool outputs)", bad,
           cases, bad ? "FAIL" : "ok");
    if (bad) g_fail = 1;
}

static void test_fuse(sq_shape5 s, int k, const float *w) {
    const size_t n = (size_t)sq_shape5_numel(s);
    std::vector<vecf> xs(k);
    std::vector<cbuf> cxs(k), cdxs(k);
    std::vector<sq_view> vx(k), vdx(k);
    const float *px[PW_FUSE_KMAX];
    for (int i = 0; i < k; i++) {
        xs[i] = rand_vec(n, -1.0f, 1.0f);
        cxs[i] = cpu_put(xs[i]);
        vx[i] = V(cxs[i]);
        px[i] = xs[i].data();
    }
    vecf wv(w, w + k), dy = rand_vec(n, -1.0f, 1.0f), dw0 = rand_vec((size_t)k, -0.1f, 0.1f);
    sq_status st;
    char name[128], ws[64] = "";
    for (int i = 0; i < k; i++)
        snprintf(ws + strlen(ws), sizeof ws - strlen(ws), "%s%g", i ? "," : "", w[i]);
    cbuf cw = cpu_put(wv), cy = cpu_zeros(n);
    cpu_ok(g_be->fuse_fwd(g_be, s, k, vx.data(), V(cw), V(cy), &st), st, "fuse_fwd");
    vecf y(n);
    emu_fuse_fwd((int64_t)n, k, px, wv.data(), y.data());
    snprintf(name, sizeof name, "fuse_fwd %s k=%d w=(%s)", shape_s(s), k, ws);
    check_exact(name, y, cpu_get(cy));
    // backward; the last input's dx is none (skipped) when k > 1
    std::vector<vecf> dxs(k, vecf(n, 9.0f));
    float *pdx[PW_FUSE_KMAX];
    for (int i = 0; i < k; i++) {
        const int skip = k > 1 && i == k - 1;
        cdxs[i] = cpu_put(vecf(n, 9.0f));
        vdx[i] = skip ? sq_view_none() : V(cdxs[i]);
        pdx[i] = skip ? NULL : dxs[i].data();
    }
    cbuf cdy = cpu_put(dy), cdw = cpu_put(dw0);
    cpu_ok(g_be->fuse_bwd(g_be, s, k, vx.data(), V(cw), V(cdy), vdx.data(), V(cdw), &st), st,
           "fuse_bwd");
    vecf dw = dw0;
    emu_fuse_bwd((int64_t)n, k, px, wv.data(), dy.data(), pdx, dw.data());
    for (int i = 0; i < k; i++) {
        snprintf(name, sizeof name, "fuse_bwd dx[%d]%s %s k=%d", i, pdx[i] ? "" : " (none)",
                 shape_s(s), k);
        check_exact(name, dxs[i], cpu_get(cdxs[i]));
    }
    // dw: double reference
    float r[PW_FUSE_KMAX], a[PW_FUSE_KMAX];
    const float T = pw_fuse_weights(wv.data(), k, r, a);
    double D[PW_FUSE_KMAX], Dabs = 0.0, mix = 0.0;
    for (int i = 0; i < k; i++) {
        D[i] = 0.0;
        double sabs = 0.0;
        for (size_t j = 0; j < n; j++) {
            D[i] += (double)(dy[j] * xs[i][j]);
            sabs += fabs((double)(dy[j] * xs[i][j]));
        }
        Dabs = sabs > Dabs ? sabs : Dabs;
        mix += (double)r[i] * D[i];
    }
    vecd ref(k), tol_ref(k), tol_cpu(k);
    for (int i = 0; i < k; i++) {
        const double g = w[i] > 0.0f ? (D[i] - mix / T) / T : 0.0;
        ref[i] = dw0[i] + g;
        tol_ref[i] = 2.4e-7 * (fabs(dw0[i]) + fabs(g)) + 1e-12 * Dabs * 2.0 / T;
        tol_cpu[i] = tol_ref[i] + 2e-6 * Dabs * 2.0 / T;
    }
    snprintf(name, sizeof name, "fuse_bwd dw (+=) vs cpu %s k=%d", shape_s(s), k);
    check_tol(name, dw, to_d(cpu_get(cdw)), tol_cpu);
    snprintf(name, sizeof name, "fuse_bwd dw (+=) vs double %s k=%d", shape_s(s), k);
    check_tol(name, dw, ref, tol_ref);
    for (int i = 0; i < k; i++)
        g_be->buf_free(g_be, cxs[i].b);
    g_be->buf_free(g_be, cw.b);
    g_be->buf_free(g_be, cdy.b);
}

static void test_add_axpy_scale(int64_t n) {
    vecf a = rand_vec((size_t)n, -2.0f, 2.0f), b = rand_vec((size_t)n, -2.0f, 2.0f);
    sq_status st;
    char name[96];
    const float alpha = 0.3f;
    { // add, then add in place (y == a)
        cbuf ca = cpu_put(a), cb = cpu_put(b), cy = cpu_zeros((size_t)n);
        cpu_ok(g_be->add(g_be, n, V(ca), V(cb), V(cy), &st), st, "add");
        vecf y((size_t)n);
        emu_grid_stride(n, [&](int64_t i) { y[i] = pw_add(a[i], b[i]); });
        snprintf(name, sizeof name, "add n=%lld", (long long)n);
        check_exact(name, y, cpu_get(cy));
        cpu_ok(g_be->add(g_be, n, V(ca), V(cb), V(ca), &st), st, "add in place");
        snprintf(name, sizeof name, "add n=%lld y==a", (long long)n);
        check_exact(name, y, cpu_get(ca));
        g_be->buf_free(g_be, cb.b);
    }
    { // axpy
        cbuf cx = cpu_put(a), cy = cpu_put(b);
        cpu_ok(g_be->axpy(g_be, n, alpha, V(cx), V(cy), &st), st, "axpy");
        vecf y = b;
        emu_grid_stride(n, [&](int64_t i) { y[i] = pw_add(y[i], pw_mul(alpha, a[i])); });
        snprintf(name, sizeof name, "axpy n=%lld", (long long)n);
        check_exact(name, y, cpu_get(cy));
        g_be->buf_free(g_be, cx.b);
    }
    { // scale (CPU op when present, else y = x * alpha), in place
        vecf y = a, ref((size_t)n);
        emu_grid_stride(n, [&](int64_t i) { y[i] = pw_mul(y[i], alpha); });
        if (g_be->scale) {
            cbuf cx = cpu_put(a);
            cpu_ok(g_be->scale(g_be, n, alpha, V(cx), V(cx), &st), st, "scale");
            ref = cpu_get(cx);
        } else {
            for (int64_t i = 0; i < n; i++)
                ref[i] = a[i] * alpha;
        }
        snprintf(name, sizeof name, "scale n=%lld in place vs %s", (long long)n,
                 g_be->scale ? "cpu" : "x*alpha (no cpu op)");
        check_exact(name, y, ref);
    }
}

static void test_sumsq(int64_t n) {
    vecf x = rand_vec((size_t)n, -1.5f, 1.5f);
    const float got = emu_sumsq(n, x.data());
    double ref = 0.0;
    for (int64_t i = 0; i < n; i++)
        ref += (double)x[i] * x[i];
    char name[96];
    vecd tol(1, 6e-8 * ref + 1e-30);
    snprintf(name, sizeof name, "sumsq n=%lld vs double", (long long)n);
    check_tol(name, vecf(1, got), vecd(1, ref), tol);
    if (g_be->sumsq) {
        sq_status st;
        cbuf cx = cpu_put(x), co = cpu_put(vecf(1, 3.0f));
        cpu_ok(g_be->sumsq(g_be, n, V(cx), V(co), &st), st, "sumsq");
        snprintf(name, sizeof name, "sumsq n=%lld vs cpu", (long long)n);
        vecd tc(1, 1.2e-7 * ref + 1e-30);
        check_tol(name, vecf(1, got), to_d(cpu_get(co)), tc);
        g_be->buf_free(g_be, cx.b);
    }
}

static void test_mse(int64_t n) {
    vecf p = rand_vec((size_t)n, -1.0f, 1.0f), t = rand_vec((size_t)n, -1.0f, 1.0f);
    sq_status st;
    char name[96];
    cbuf cp = cpu_put(p), ct = cpu_put(t), cl = cpu_zeros(1);
    cpu_ok(g_be->mse_fwd(g_be, n, V(cp), V(ct), V(cl), &st), st, "mse_fwd");
    const float loss = emu_mse_fwd(n, p.data(), t.data());
    const vecf cpu_loss = cpu_get(cl);
    snprintf(name, sizeof name, "mse_fwd n=%lld vs cpu", (long long)n);
    check_tol(name, vecf(1, loss), to_d(cpu_loss), vecd(1, 1.2e-7 * fabs(cpu_loss[0])));
    const float scale = 0.7f;
    cbuf cd = cpu_put(vecf((size_t)n, 4.0f));
    cpu_ok(g_be->mse_bwd(g_be, n, V(cp), V(ct), scale, V(cd), &st), st, "mse_bwd");
    vecf d((size_t)n);
    const float kf = pw_mse_grad_factor(scale, n);
    emu_grid_stride(n, [&](int64_t i) { d[i] = pw_mse_grad(kf, p[i], t[i]); });
    snprintf(name, sizeof name, "mse_bwd n=%lld", (long long)n);
    check_exact(name, d, cpu_get(cd));
    g_be->buf_free(g_be, cp.b);
    g_be->buf_free(g_be, ct.b);
}

int main(void) {
    sq_status st;
    g_be = sq_backend_cpu_create(1, &st);
    if (!g_be) {
        fprintf(stderr, "cpu backend: %s\n", st.msg);
        return 1;
    }
    const int64_t act_sizes[] = {1, 3, 5, 7, 1001, 1000000};
    for (int64_t n : act_sizes)
        test_act(n);

    test_prelu({2, 64, 28, 20, 20});
    test_prelu({1, 3, 1, 1, 5});
    test_prelu({3, 5, 7, 3, 197}); // S = 4137: two chunks, the second short

    const sq_shape5 gshapes[] = {{2, 96, 14, 40, 40}, {2, 640, 1, 1, 1}, {1, 70000, 1, 1, 1},
                                 {1, 3, 5, 7, 3},     {2, 3, 1, 64, 64}, {1, 2, 1, 1, 4097}};
    for (const sq_shape5 &s : gshapes)
        test_gap_chscale(s);

    test_index_inverses();
    for (int ties = 0; ties <= 1; ties++) {
        test_maxpool({2, 64, 7, 20, 20}, 3, 3, 3, 2, 2, 2, 1, 1, ties);
        test_maxpool({2, 64, 28, 40, 40}, 3, 3, 3, 1, 2, 2, 1, 1, ties);
        test_maxpool({2, 3, 5, 5, 5}, 3, 3, 3, 2, 2, 2, 1, 1, ties);
        test_maxpool({2, 3, 5, 5, 5}, 3, 3, 3, 2, 2, 2, 0, 1, ties);
        test_maxpool({2, 3, 5, 5, 5}, 3, 3, 3, 2, 2, 2, 0, 0, ties);
        test_maxpool({1, 2, 1, 1, 1}, 3, 3, 3, 2, 2, 2, 1, 1, ties);
        test_maxpool({2, 2, 3, 1, 2}, 3, 3, 3, 2, 2, 2, 1, 1, ties);
        test_maxpool({1, 4, 6, 7, 9}, 2, 3, 5, 2, 1, 3, 1, 1, ties);
    }

    test_resize({2, 64, 4, 5, 5}, 7, 10, 10);
    test_resize({1, 3, 3, 3, 3}, 7, 7, 7);
    test_resize({1, 3, 5, 5, 5}, 3, 3, 3);
    test_resize({2, 2, 3, 5, 7}, 7, 3, 5);
    test_resize({1, 2, 1, 1, 1}, 3, 5, 2);
    test_resize({2, 16, 7, 20, 20}, 14, 40, 40);

    const float w2[] = {0.7f, 1.3f}, w2n[] = {-0.5f, 0.8f}, w3[] = {0.4f, -0.2f, 1.1f},
                w3z[] = {-1.0f, -2.0f, 0.0f}, w1[] = {0.9f},
                w8[] = {0.1f, 0.2f, -0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    test_fuse({2, 64, 7, 20, 20}, 2, w2);
    test_fuse({2, 64, 7, 20, 20}, 2, w2n);
    test_fuse({2, 32, 14, 40, 40}, 3, w3);
    test_fuse({1, 3, 5, 7, 3}, 3, w3z);
    test_fuse({1, 1, 1, 1, 3}, 1, w1);
    test_fuse({1, 5, 3, 7, 5}, 8, w8);

    const int64_t ew_sizes[] = {1, 7, 4097, 1000003};
    for (int64_t n : ew_sizes)
        test_add_axpy_scale(n);
    const int64_t sq_sizes[] = {1, 5, 4096, 4097, 1600000, 1600001};
    for (int64_t n : sq_sizes)
        test_sumsq(n);
    for (int64_t n = 1; n <= 8; n++)
        test_mse(n);
    test_mse(100003);

    g_be->destroy(g_be);
    printf("%s\n", g_fail ? "FAILED" : "all cases passed");
    return g_fail;
}
