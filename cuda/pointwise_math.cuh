/* pointwise_math.cuh — the per-element, index and reduction math of the CUDA element-wise ops
 * (pointwise.cu), written as __host__ __device__ functions so that
 * tests/cuda/test_cuda_pointwise_host.cu replays the kernels' work split on the host with exactly
 * this code. The formulas mirror the CPU oracle (src/nn/cpu/cpu_ops.c) operation by operation:
 * the activations use the CPU's own exp polynomial, every float operation is done in the same
 * order and without fused multiply-adds (pw_add/pw_mul map to __fadd_rn/__fmul_rn on the device,
 * which nvcc never contracts), so element-wise results are bitwise those of the CPU; reductions
 * differ from the CPU only in the summation order (double per thread, fixed tree, fixed combine).
 *
 * Work split (x is (N,C,D,H,W), S = D*H*W, a "plane" is one (n, c) pair: S contiguous floats,
 * plane index pl = n*C + c):
 *  - per-plane ops: grid (pw_nchunks(S), min(N*C, PW_MAX_GRID_Y)); block (bx, by) handles
 *    elements [pw_chunk_lo(bx), pw_chunk_hi(bx, S)) of planes by, by + gridDim.y, ...; thread t
 *    takes lo + t, lo + t + PW_BLOCK, ... (coalesced), summing in double where the op reduces;
 *    the block combines its PW_BLOCK values with pw_tree_step and writes one partial,
 *    part[pl * nchunks + bx].
 *  - flat reductions (sumsq, MSE, fusion weights): block b covers [pw_chunk_lo(b),
 *    pw_chunk_hi(b, n)) the same way; one combine block then sums the partials: thread t takes
 *    t, t + PW_BLOCK, ... in order (pw_combine_thread), then the same tree.
 *  - pooling / resize: one thread per output (forward) or input (backward) element of a plane,
 *    grid (ceil(plane / PW_BLOCK), min(planes, PW_MAX_GRID_Y)).
 */
#ifndef SEGQA_CUDA_POINTWISE_MATH_CUH
#define SEGQA_CUDA_POINTWISE_MATH_CUH

#include "nn/backend.h"

#include <stdint.h>
#include <string.h>

#define PW_HD __host__ __device__ inline

enum {
    PW_BLOCK = 256,                      /* every kernel's block size; a power of two (trees) */
    PW_PER_THREAD = 16,                  /* elements per thread in a chunk */
    PW_CHUNK = PW_BLOCK * PW_PER_THREAD, /* elements per block of the chunked kernels */
    PW_MAX_GRID_Y = 65535,
    PW_FUSE_KMAX = 8,
};
#define PW_FUSE_EPS 1e-4f

/* ---- IEEE float operations, never contracted into FMAs (the CPU does none either) ------------ */
PW_HD float pw_add(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
PW_HD float pw_sub(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
PW_HD float pw_mul(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
PW_HD float pw_div(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
PW_HD uint32_t pw_float_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}
PW_HD float pw_bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* ---- activations (cpu_ops.c vexp / vsig / vact / vactd, one lane) ---------------------------- */
/* exp: Cephes-style range reduction + degree-6 polynomial, the CPU's exact operation sequence
 * (clamp to [-87, 88]; NaN passes the clamps and gives NaN). */
PW_HD float pw_exp(float x) {
    const float hi = 88.0f, lo = -87.0f, magic = 12582912.0f;
    x = x > hi ? hi : x;
    x = x < lo ? lo : x;
    const float tm = pw_add(pw_mul(x, 1.44269504088896341f), magic);
    const uint32_t n = pw_float_bits(tm) - pw_float_bits(magic); /* round(x * log2 e) */
    const float fn = pw_sub(tm, magic);
    const float r = pw_sub(pw_sub(x, pw_mul(fn, 0.693359375f)), pw_mul(fn, -2.12194440e-4f));
    float p = 1.9875691500e-4f;
    p = pw_add(pw_mul(p, r), 1.3981999507e-3f);
    p = pw_add(pw_mul(p, r), 8.3334519073e-3f);
    p = pw_add(pw_mul(p, r), 4.1665795894e-2f);
    p = pw_add(pw_mul(p, r), 1.6666665459e-1f);
    p = pw_add(pw_mul(p, r), 5.0000001201e-1f);
    const float e = pw_add(pw_add(pw_mul(pw_mul(p, r), r), r), 1.0f);
    return pw_mul(e, pw_bits_float((n + 127u) << 23));
}

PW_HD float pw_sigmoid(float z) {
    return pw_div(1.0f, pw_add(1.0f, pw_exp(-z)));
}

/* The CPU evaluates act(x * 1 + 0): the "+ 0" turns -0 into +0. */
PW_HD float pw_act_input(float x) {
    return pw_add(pw_mul(x, 1.0f), 0.0f);
}

/* act(z); z = pw_act_input(x). ReLU: z > 0 ? z : +0 (NaN gives 0, as the CPU's mask). */
PW_HD float pw_act(sq_act a, float z) {
    switch (a) {
    case SQ_ACT_RELU: return z > 0.0f ? z : 0.0f;
    case SQ_ACT_SIGMOID: return pw_sigmoid(z);
    case SQ_ACT_SWISH: return pw_mul(z, pw_sigmoid(z));
    default: return z;
    }
}

/* dy * act'(z), z = pw_act_input(x): sigmoid' = s (1 - s), swish' = s (1 + z (1 - s)).
 * NONE returns dy unchanged (the CPU copies dy). */
PW_HD float pw_act_grad(sq_act a, float z, float dy) {
    switch (a) {
    case SQ_ACT_RELU: return z > 0.0f ? dy : 0.0f;
    case SQ_ACT_SIGMOID: {
        const float sg = pw_sigmoid(z);
        return pw_mul(pw_mul(dy, sg), pw_sub(1.0f, sg));
    }
    case SQ_ACT_SWISH: {
        const float sg = pw_sigmoid(z);
        return pw_mul(pw_mul(dy, sg), pw_add(1.0f, pw_mul(z, pw_sub(1.0f, sg))));
    }
    default: return dy;
    }
}

/* ---- PReLU ------------------------------------------------------------------------------------
 */
PW_HD float pw_prelu(float x, float a) {
    return x > 0.0f ? x : pw_mul(x, a);
}
PW_HD float pw_prelu_dx(float x, float a, float g) {
    return x > 0.0f ? g : pw_mul(a, g);
}
/* Term of dalpha: g * x where x <= 0 (float product, summed in double). */
PW_HD double pw_prelu_dalpha_term(float x, float g) {
    return x <= 0.0f ? (double)pw_mul(g, x) : 0.0;
}

/* ---- chunked reductions ---------------------------------------------------------------------- */
PW_HD int64_t pw_nchunks(int64_t len) {
    return (len + PW_CHUNK - 1) / PW_CHUNK;
}
PW_HD int64_t pw_chunk_lo(int64_t chunk) {
    return chunk * PW_CHUNK;
}
PW_HD int64_t pw_chunk_hi(int64_t chunk, int64_t len) {
    const int64_t hi = (chunk + 1) * PW_CHUNK;
    return hi < len ? hi : len;
}

/* Launch shapes. Grid-stride element-wise kernels: enough blocks to fill the device (16 per SM),
 * never more than the elements need. Per-plane kernels: y covers min(planes, 65535) planes and
 * each block loops over planes y, y + gridDim.y, ... */
PW_HD int64_t pw_elem_blocks(int64_t n, int sm_count) {
    const int64_t want = (n + PW_BLOCK - 1) / PW_BLOCK;
    const int64_t cap = (int64_t)(sm_count > 0 ? sm_count : 128) * 16;
    return want < cap ? want : cap;
}
PW_HD int64_t pw_grid_y(int64_t planes) {
    return planes < (int64_t)PW_MAX_GRID_Y ? planes : (int64_t)PW_MAX_GRID_Y;
}

/* One step of the block tree: s = PW_BLOCK/2, ..., 1; threads t < s add sh[t + s]. */
PW_HD void pw_tree_step(double *sh, int t, int s) {
    if (t < s) sh[t] += sh[t + s];
}

/* Thread t's share of partials [0, count): t, t + PW_BLOCK, ... in order. */
PW_HD double pw_combine_thread(const double *part, int64_t count, int t) {
    double s = 0.0;
    for (int64_t i = t; i < count; i += PW_BLOCK)
        s += part[i];
    return s;
}

/* Serial, in-order sum of `count` partials (per-plane / per-channel combines). */
PW_HD double pw_combine_serial(const double *part, int64_t count) {
    double s = 0.0;
    for (int64_t i = 0; i < count; i++)
        s += part[i];
    return s;
}

/* dalpha[c]'s sum: planes n = 0..N-1 of channel c, each its chunks in order. */
PW_HD double pw_prelu_channel_sum(const double *part, int N, int C, int c, int64_t nchunks) {
    double s = 0.0;
    for (int n = 0; n < N; n++)
        s += pw_combine_serial(part + ((int64_t)n * C + c) * nchunks, nchunks);
    return s;
}

/* Thread t's work on one chunk [lo, hi) of plane `base` (offset of the plane); return values are
 * the thread's double partial sums. */
PW_HD double pw_gap_thread(const float *x, int64_t base, int64_t lo, int64_t hi, int t) {
    double s = 0.0;
    for (int64_t i = lo + t; i < hi; i += PW_BLOCK)
        s += (double)x[base + i];
    return s;
}

/* dx = dy * a (dx may be NULL); returns sum dy * x (float products). */
PW_HD double pw_chscale_bwd_thread(const float *x, const float *dy, float *dx, float a,
                                   int64_t base, int64_t lo, int64_t hi, int t) {
    double s = 0.0;
    for (int64_t i = lo + t; i < hi; i += PW_BLOCK) {
        const float g = dy[base + i];
        if (dx) dx[base + i] = pw_mul(g, a);
        s += (double)pw_mul(g, x[base + i]);
    }
    return s;
}

/* dx = x > 0 ? g : a g (dx may be NULL); returns sum g x over x <= 0. */
PW_HD double pw_prelu_bwd_thread(const float *x, const float *dy, float *dx, float a, int64_t base,
                                 int64_t lo, int64_t hi, int t) {
    double s = 0.0;
    for (int64_t i = lo + t; i < hi; i += PW_BLOCK) {
        const float xv = x[base + i], g = dy[base + i];
        if (dx) dx[base + i] = pw_prelu_dx(xv, a, g);
        s += pw_prelu_dalpha_term(xv, g);
    }
    return s;
}

PW_HD double pw_sumsq_thread(const float *x, int64_t lo, int64_t hi, int t) {
    double s = 0.0;
    for (int64_t i = lo + t; i < hi; i += PW_BLOCK)
        s += (double)x[i] * (double)x[i];
    return s;
}

/* sum ((double)p - t)^2, as the CPU. */
PW_HD double pw_mse_thread(const float *p, const float *tg, int64_t lo, int64_t hi, int t) {
    double s = 0.0;
    for (int64_t i = lo + t; i < hi; i += PW_BLOCK) {
        const double d = (double)p[i] - (double)tg[i];
        s += d * d;
    }
    return s;
}

/* Finishers: the float the op writes from a double sum. */
PW_HD float pw_gap_finish(double sum, int64_t S) {
    return (float)(sum / (double)S);
}
PW_HD float pw_mse_finish(double sum, int64_t n) {
    return (float)(sum / (double)n);
}
PW_HD float pw_accumulate(float acc, double sum) {
    return pw_add(acc, (float)sum);
}

/* gap_bwd: dx = dy / (float)S, a float division as the CPU. */
PW_HD float pw_gap_grad(float dy, int64_t S) {
    return pw_div(dy, (float)S);
}

/* mse_bwd's factor 2 * scale / n (float), and dpred = k * (p - t). */
PW_HD float pw_mse_grad_factor(float scale, int64_t n) {
    return pw_div(pw_mul(2.0f, scale), (float)n);
}
PW_HD float pw_mse_grad(float k, float p, float t) {
    return pw_mul(k, pw_sub(p, t));
}

/* ---- fast normalised fusion ------------------------------------------------------------------ */
/* r_i = relu(w_i); T = (sum_i r_i, in order, float) + 1e-4; a_i = r_i / T. */
PW_HD float pw_fuse_weights(const float *w, int k, float *r, float *a) {
    float sum = 0.0f;
    for (int i = 0; i < k; i++) {
        r[i] = w[i] > 0.0f ? w[i] : 0.0f;
        sum = pw_add(sum, r[i]);
    }
    const float T = pw_add(sum, PW_FUSE_EPS);
    for (int i = 0; i < k; i++)
        a[i] = pw_div(r[i], T);
    return T;
}

/* y = a_0 x_0 + a_1 x_1 + ..., accumulated left to right in float. xs are element pointers. */
PW_HD float pw_fuse_value(const float *a, int k, const float *const *xs, int64_t j) {
    float y = pw_mul(a[0], xs[0][j]);
    for (int i = 1; i < k; i++)
        y = pw_add(y, pw_mul(a[i], xs[i][j]));
    return y;
}

/* fuse_bwd thread work on [lo, hi): dx_i = a_i dy (skipped where dxs[i] is NULL); when `sums`,
 * D[i] += sum dy * x_i (float products, double sums). */
PW_HD void pw_fuse_bwd_thread(int k, const float *a, const float *const *xs, const float *dy,
                              float *const *dxs, int64_t lo, int64_t hi, int t, int sums,
                              double *D) {
    for (int64_t j = lo + t; j < hi; j += PW_BLOCK) {
        const float g = dy[j];
        for (int i = 0; i < k; i++) {
            if (dxs[i]) dxs[i][j] = pw_mul(a[i], g);
            if (sums) D[i] += (double)pw_mul(g, xs[i][j]);
        }
    }
}

/* dw_i += (D_i - sum_j r_j D_j / T) / T where w_i > 0 (the CPU's double formula). */
PW_HD void pw_fuse_dw(int k, const float *w, const float *r, float T, const double *D, float *dw) {
    double mix = 0.0;
    for (int j = 0; j < k; j++)
        mix += (double)r[j] * D[j];
    for (int i = 0; i < k; i++)
        if (w[i] > 0.0f) dw[i] = pw_accumulate(dw[i], (D[i] - mix / (double)T) / (double)T);
}

/* ---- max pooling ----------------------------------------------------------------------------- */
typedef struct pw_pool_geom {
    int in[3], out[3], k[3], s[3], p[3]; /* (D, H, W) */
} pw_pool_geom;

/* Window of output o along one axis, clipped to the input: [*lo, *hi). */
PW_HD void pw_pool_window(int o, int k, int s, int p, int in, int *lo, int *hi) {
    const int a = o * s - p, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b < in ? b : in;
}

/* Outputs along one axis whose window contains input i: [*lo, *hi) (may be empty). Window o
 * covers [o s - p, o s - p + k), so o >= ceil((i + p - k + 1) / s) and o <= floor((i + p) / s). */
PW_HD void pw_pool_outputs_of(int i, int k, int s, int p, int out, int *lo, int *hi) {
    const int num = i + p - k + 1;
    *lo = num <= 0 ? 0 : (num + s - 1) / s;
    const int h = (i + p) / s + 1;
    *hi = h < out ? h : out;
}

/* In-plane index of the FIRST maximum of window (od, oh, ow) of plane xp, scanning d, h, w in
 * order: the first element is always taken, later ones only when strictly greater (so a NaN wins
 * only as the window's first element, exactly as the CPU). -1 for an empty window (never
 * reached: sq_pool3d_check guarantees every window holds an input element). */
PW_HD int pw_pool_argmax(const float *xp, const pw_pool_geom &g, int od, int oh, int ow) {
    int d0, d1, h0, h1, w0, w1;
    pw_pool_window(od, g.k[0], g.s[0], g.p[0], g.in[0], &d0, &d1);
    pw_pool_window(oh, g.k[1], g.s[1], g.p[1], g.in[1], &h0, &h1);
    pw_pool_window(ow, g.k[2], g.s[2], g.p[2], g.in[2], &w0, &w1);
    float best = 0.0f;
    int arg = -1;
    for (int d = d0; d < d1; d++)
        for (int h = h0; h < h1; h++) {
            const int r = (d * g.in[1] + h) * g.in[2];
            for (int w = w0; w < w1; w++)
                if (arg < 0 || xp[r + w] > best) {
                    best = xp[r + w];
                    arg = r + w;
                }
        }
    return arg;
}

/* Output q of a plane -> (od, oh, ow). */
PW_HD void pw_unflatten3(int q, const int *ext, int *a, int *b, int *c) {
    *c = q % ext[2];
    q /= ext[2];
    *b = q % ext[1];
    *a = q / ext[1];
}

/* dx of input (d, h, w) of a plane: the sum of dy over the windows whose first maximum it is,
 * windows visited in (od, oh, ow) order from 0.0f (the CPU's += order). arg / dy: the plane's
 * per-output argmax (pw_pool_argmax) and gradient. */
PW_HD float pw_pool_gather(const int *arg, const float *dy, const pw_pool_geom &g, int d, int h,
                           int w) {
    const int q = (d * g.in[1] + h) * g.in[2] + w;
    int d0, d1, h0, h1, w0, w1;
    pw_pool_outputs_of(d, g.k[0], g.s[0], g.p[0], g.out[0], &d0, &d1);
    pw_pool_outputs_of(h, g.k[1], g.s[1], g.p[1], g.out[1], &h0, &h1);
    pw_pool_outputs_of(w, g.k[2], g.s[2], g.p[2], g.out[2], &w0, &w1);
    float acc = 0.0f;
    for (int od = d0; od < d1; od++)
        for (int oh = h0; oh < h1; oh++)
            for (int ow = w0; ow < w1; ow++) {
                const int o = (od * g.out[1] + oh) * g.out[2] + ow;
                if (arg[o] == q) acc = pw_add(acc, dy[o]);
            }
    return acc;
}

/* ---- nearest resize -------------------------------------------------------------------------- */
typedef struct pw_resize_geom {
    int in[3], out[3]; /* (D, H, W) */
} pw_resize_geom;

/* src = floor(dst * in / out), in 64-bit integers as the CPU. */
PW_HD int pw_resize_src(int o, int in, int out) {
    return (int)((int64_t)o * in / out);
}

/* The dst indices o with pw_resize_src(o) == i: [ceil(i out / in), ceil((i+1) out / in)),
 * clipped to out (empty when downsampling skips i). */
PW_HD void pw_resize_dsts_of(int i, int in, int out, int *lo, int *hi) {
    *lo = (int)(((int64_t)i * out + in - 1) / in);
    const int h = (int)(((int64_t)(i + 1) * out + in - 1) / in);
    *hi = h < out ? h : out;
}

/* y at (od, oh, ow) of a plane. */
PW_HD float pw_resize_value(const float *xp, const pw_resize_geom &g, int od, int oh, int ow) {
    const int id = pw_resize_src(od, g.in[0], g.out[0]);
    const int ih = pw_resize_src(oh, g.in[1], g.out[1]);
    const int iw = pw_resize_src(ow, g.in[2], g.out[2]);
    return xp[((int64_t)id * g.in[1] + ih) * g.in[2] + iw];
}

/* dx at (d, h, w) of a plane: dy summed over its dst indices in (od, oh, ow) order from 0.0f. */
PW_HD float pw_resize_gather(const float *dyp, const pw_resize_geom &g, int d, int h, int w) {
    int d0, d1, h0, h1, w0, w1;
    pw_resize_dsts_of(d, g.in[0], g.out[0], &d0, &d1);
    pw_resize_dsts_of(h, g.in[1], g.out[1], &h0, &h1);
    pw_resize_dsts_of(w, g.in[2], g.out[2], &w0, &w1);
    float acc = 0.0f;
    for (int od = d0; od < d1; od++)
        for (int oh = h0; oh < h1; oh++) {
            const float *row = dyp + ((int64_t)od * g.out[1] + oh) * g.out[2];
            for (int ow = w0; ow < w1; ow++)
                acc = pw_add(acc, row[ow]);
        }
    return acc;
}

/* ---- geometry from the backend's descriptors (host) ------------------------------------------ */
static inline pw_pool_geom pw_pool_geom_of(const sq_pool3d *p) {
    const sq_shape5 o = sq_pool3d_out(p);
    pw_pool_geom g;
    g.in[0] = p->in.d, g.in[1] = p->in.h, g.in[2] = p->in.w;
    g.out[0] = o.d, g.out[1] = o.h, g.out[2] = o.w;
    for (int a = 0; a < 3; a++) {
        g.k[a] = p->k[a];
        g.s[a] = p->stride[a];
        g.p[a] = p->pad[a];
    }
    return g;
}

static inline pw_resize_geom pw_resize_geom_of(const sq_resize3d *p) {
    pw_resize_geom g;
    g.in[0] = p->in.d, g.in[1] = p->in.h, g.in[2] = p->in.w;
    for (int a = 0; a < 3; a++)
        g.out[a] = p->out[a];
    return g;
}

#endif
