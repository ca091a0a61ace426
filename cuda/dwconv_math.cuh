/* dwconv_math.cuh — index math and per-thread work of the depthwise 3D convolution kernels
 * (dwconv.cu), as __host__ __device__ functions so that the host check
 * (tests/cuda/test_cuda_dwconv_host.cu) runs exactly the same code in emulated grid/block loops.
 *
 * Semantics (nn/backend.h, CPU oracle src/nn/cpu/cpu_dwconv.c): x (N,C,D,H,W), w (C,1,kD,kH,kW),
 * b (C) or none, y (N,C,Do,Ho,Wo) with o = (i + 2p - k) / s + 1; zero padding; kernel extent <= 7
 * and stride <= 8 per axis. Work split:
 *  - forward: one thread per DW_VW consecutive outputs of a row (fast path: cubic k 3/5, W stride
 *    1/2; weights and the needed input columns in registers) or per output voxel (any geometry);
 *    grid (row segments of a plane / DW_TPB, C, N).
 *  - backward data (dx overwritten): a gather, no atomics: dx[i] sums w[k] dy[o] over the taps with
 *    (i + p - k) % s == 0 and 0 <= (i + p - k) / s < O on every axis. Fast path (cubic k 3/5, all
 *    strides 1): DW_VW consecutive dx of a row per thread; otherwise one voxel per thread.
 *  - backward weights / bias (accumulated): stage 1, grid (nblk, C, tap groups): each thread sums
 *    its items' products in float (at most 32 products per tap), the block reduces them in double
 *    (warp tree, then warps in order) into the workspace, one double per (channel, block, slot);
 *    slot kvol is the bias (summed in double per element, as the CPU does). Stage 2: one thread
 *    per (channel, slot) adds the blocks' partials in block order in double and ADDS the float
 *    result to dw / db. Fast path (cubic k 3/5, W stride 1/2): items are row segments and a
 *    thread holds all kvol taps; otherwise items are voxels and each block row z = one tap.
 * Accumulation order of one output (all paths): bias, then taps in (kd, kh, kw) order with fmaf.
 */
#ifndef SEGQA_CUDA_DWCONV_MATH_CUH
#define SEGQA_CUDA_DWCONV_MATH_CUH

#include "core/status.h"
#include "nn/backend.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define DW_KMAX      7   /* largest kernel extent per axis (as the CPU backend) */
#define DW_SMAX      8   /* largest stride per axis */
#define DW_TPB       128 /* threads per block, every kernel */
#define DW_WARP      32
#define DW_NWARPS    (DW_TPB / DW_WARP)
#define DW_VW        4  /* outputs along W per thread on the fast paths */
#define DW_SEG_ITEMS 8  /* row segments per thread, fast weight-gradient path */
#define DW_VOX_ITEMS 32 /* voxels per thread, generic weight-gradient path */

#define DW_HD __host__ __device__ __forceinline__
/* Full unrolling of the compile-time loops on the device (keeps the per-tap accumulators and the
 * cached columns in registers); nothing on the host, whose compiler does not know the pragma. */
#ifdef __CUDA_ARCH__
#define DW_UNROLL _Pragma("unroll")
#else
#define DW_UNROLL
#endif

/* The geometry every kernel receives by value. Plane sizes fit in int (checked on the host). */
struct dw_geo {
    int N, C;
    int D, H, W, Do, Ho, Wo;
    int kd, kh, kw, sd, sh, sw, pd, ph, pw;
    int kvol;                /* kd * kh * kw */
    int in_plane, out_plane; /* D*H*W and Do*Ho*Wo */
};

/* ---- host-side validation and geometry --------------------------------------------------------
 */

/* sq_conv3d_check, the kernel / stride limits (SQ_ERR_UNSUPPORTED, as the CPU backend), then the
 * 32-bit plane indexing and grid limits of these kernels (SQ_ERR_UNSUPPORTED). Fills *g. */
static inline sq_code dw_validate(const sq_conv3d *p, dw_geo *g, sq_status *st) {
    SQ_TRY(sq_conv3d_check(p, 1, st));
    for (int a = 0; a < 3; a++)
        if (p->k[a] > DW_KMAX || p->stride[a] > DW_SMAX)
            return sq_fail(st, SQ_ERR_UNSUPPORTED,
                           "dwconv3d: axis %d: kernel %d / stride %d above %d / %d", a, p->k[a],
                           p->stride[a], DW_KMAX, DW_SMAX);
    const sq_shape5 o = sq_conv3d_out(p);
    const int64_t in_plane = (int64_t)p->in.d * p->in.h * p->in.w;
    const int64_t out_plane = (int64_t)o.d * o.h * o.w;
    /* per channel, N * plane (+ one block of slack) must stay in int; N and C are grid y / z */
    const int64_t lim = (int64_t)INT_MAX / 2;
    if (p->in.n > 65535 || p->in.c > 65535 || (int64_t)p->in.n * in_plane > lim ||
        (int64_t)p->in.n * out_plane > lim)
        return sq_fail(st, SQ_ERR_UNSUPPORTED,
                       "dwconv3d: shape %dx%dx%dx%dx%d beyond the CUDA kernels' index range",
                       p->in.n, p->in.c, p->in.d, p->in.h, p->in.w);
    g->N = p->in.n;
    g->C = p->in.c;
    g->D = p->in.d;
    g->H = p->in.h;
    g->W = p->in.w;
    g->Do = o.d;
    g->Ho = o.h;
    g->Wo = o.w;
    g->kd = p->k[0];
    g->kh = p->k[1];
    g->kw = p->k[2];
    g->sd = p->stride[0];
    g->sh = p->stride[1];
    g->sw = p->stride[2];
    g->pd = p->pad[0];
    g->ph = p->pad[1];
    g->pw = p->pad[2];
    g->kvol = g->kd * g->kh * g->kw;
    g->in_plane = (int)in_plane;
    g->out_plane = (int)out_plane;
    return SQ_OK;
}

/* The cubic kernel extent of a fast path (3 or 5), or 0 (generic). */
static inline int dw_fast_k(const dw_geo &g) {
    if (g.kd != g.kh || g.kd != g.kw) return 0;
    return g.kd == 3 || g.kd == 5 ? g.kd : 0;
}
/* Forward / weight-gradient fast path: cubic k 3 or 5 and W stride 1 or 2. */
static inline int dw_fwd_fast(const dw_geo &g) {
    return dw_fast_k(g) != 0 && (g.sw == 1 || g.sw == 2);
}
/* Backward-data fast path: cubic k 3 or 5 and stride 1 on every axis. */
static inline int dw_bwdd_fast(const dw_geo &g) {
    return dw_fast_k(g) != 0 && g.sd == 1 && g.sh == 1 && g.sw == 1;
}

static inline int dw_ceil_div(int64_t a, int64_t b) {
    return (int)((a + b - 1) / b);
}

/* ---- decomposition of flat indices -------------------------------------------------------------
 */

DW_HD int dw_nseg(int w, int vw) {
    return (w + vw - 1) / vw;
}

/* idx over (d, h, seg) of a plane with `rows_h` rows per slice and `nseg` segments per row. */
DW_HD void dw_decode_row_seg(int idx, int rows_h, int nseg, int *d, int *h, int *seg) {
    *seg = idx % nseg;
    const int r = idx / nseg;
    *h = r % rows_h;
    *d = r / rows_h;
}

/* Flat offset of the (n, c) plane. */
DW_HD size_t dw_plane(const dw_geo &g, int n, int c) {
    return (size_t)n * g.C + c;
}

/* ---- forward ----------------------------------------------------------------------------------
 */

/* Fast forward: out[j] = output (od, oh, ow0 + j), j < DW_VW (junk past Wo, never stored).
 * xp is the (n, c) input plane, wc the channel's K^3 weights. Each (kd, kh) input row in range
 * contributes its (DW_VW-1)*SW + K columns, loaded once (zero outside [0, W)). */
template <int K, int SW>
DW_HD void dw_fwd_seg(const dw_geo &g, const float *__restrict__ xp, const float *__restrict__ wc,
                      float bias, int od, int oh, int ow0, float out[DW_VW]) {
    constexpr int NCOL = (DW_VW - 1) * SW + K;
    DW_UNROLL
    for (int j = 0; j < DW_VW; j++)
        out[j] = bias;
    const int iw0 = ow0 * SW - g.pw;
    DW_UNROLL
    for (int kd = 0; kd < K; kd++) {
        const int id = od * g.sd - g.pd + kd;
        if (id < 0 || id >= g.D) continue;
        DW_UNROLL
        for (int kh = 0; kh < K; kh++) {
            const int ih = oh * g.sh - g.ph + kh;
            if (ih < 0 || ih >= g.H) continue;
            const float *row = xp + ((size_t)id * g.H + ih) * g.W;
            float col[NCOL];
            DW_UNROLL
            for (int c = 0; c < NCOL; c++) {
                const int iw = iw0 + c;
                col[c] = (iw >= 0 && iw < g.W) ? row[iw] : 0.0f;
            }
            const float *wr = wc + (kd * K + kh) * K;
            DW_UNROLL
            for (int kw = 0; kw < K; kw++) {
                const float wv = wr[kw];
                DW_UNROLL
                for (int j = 0; j < DW_VW; j++)
                    out[j] = fmaf(wv, col[j * SW + kw], out[j]);
            }
        }
    }
}

/* Generic forward: one output voxel, any kernel / stride / padding. */
DW_HD float dw_fwd_voxel(const dw_geo &g, const float *__restrict__ xp,
                         const float *__restrict__ wc, float bias, int od, int oh, int ow) {
    float acc = bias;
    for (int kd = 0; kd < g.kd; kd++) {
        const int id = od * g.sd - g.pd + kd;
        if (id < 0 || id >= g.D) continue;
        for (int kh = 0; kh < g.kh; kh++) {
            const int ih = oh * g.sh - g.ph + kh;
            if (ih < 0 || ih >= g.H) continue;
            const float *row = xp + ((size_t)id * g.H + ih) * g.W;
            const float *wr = wc + (kd * g.kh + kh) * g.kw;
            for (int kw = 0; kw < g.kw; kw++) {
                const int iw = ow * g.sw - g.pw + kw;
                if (iw < 0 || iw >= g.W) continue;
                acc = fmaf(wr[kw], row[iw], acc);
            }
        }
    }
    return acc;
}

/* Fast forward thread: idx = blockIdx.x * DW_TPB + threadIdx.x over (od, oh, segment) of the
 * (n = blockIdx.z, c = blockIdx.y) plane. b may be NULL. */
template <int K, int SW>
DW_HD void dw_fwd_fast_thread(const dw_geo &g, const float *__restrict__ x,
                              const float *__restrict__ w, const float *__restrict__ b,
                              float *__restrict__ y, int n, int c, int idx) {
    const int nseg = dw_nseg(g.Wo, DW_VW);
    if (idx >= g.Do * g.Ho * nseg) return;
    int od, oh, seg;
    dw_decode_row_seg(idx, g.Ho, nseg, &od, &oh, &seg);
    const size_t pl = dw_plane(g, n, c);
    float out[DW_VW];
    dw_fwd_seg<K, SW>(g, x + pl * g.in_plane, w + (size_t)c * g.kvol, b ? b[c] : 0.0f, od, oh,
                      seg * DW_VW, out);
    float *yr = y + pl * g.out_plane + ((size_t)od * g.Ho + oh) * g.Wo;
    DW_UNROLL
    for (int j = 0; j < DW_VW; j++)
        if (seg * DW_VW + j < g.Wo) yr[seg * DW_VW + j] = out[j];
}

/* Generic forward thread: idx over the output voxels of the (n, c) plane. */
DW_HD void dw_fwd_generic_thread(const dw_geo &g, const float *__restrict__ x,
                                 const float *__restrict__ w, const float *__restrict__ b,
                                 float *__restrict__ y, int n, int c, int idx) {
    if (idx >= g.out_plane) return;
    int od, oh, ow;
    dw_decode_row_seg(idx, g.Ho, g.Wo, &od, &oh, &ow);
    const size_t pl = dw_plane(g, n, c);
    y[pl * g.out_plane + idx] =
        dw_fwd_voxel(g, x + pl * g.in_plane, w + (size_t)c * g.kvol, b ? b[c] : 0.0f, od, oh, ow);
}

/* ---- backward data (gather) -------------------------------------------------------------------
 */

/* The taps k of one axis that reach input i: k = first, first + s, ..., <= last, each from output
 * o = (i + p - k) / s. They are the k in [0, K) with (i + p - k) % s == 0 and
 * 0 <= (i + p - k) / s <= O - 1. Empty when first > last. */
DW_HD void dw_gather_axis(int i, int p, int s, int k, int o_ext, int *first, int *last) {
    const int t = i + p;                /* >= 0 */
    const int r = t % s;                /* smallest k with (t - k) % s == 0 */
    const int lo = t - (o_ext - 1) * s; /* smallest k with (t - k) / s <= O - 1; lo = r mod s */
    *first = lo > r ? lo : r;
    *last = t < k - 1 ? t : k - 1;
}

/* Generic backward data: dx at input voxel (id, ih, iw) of a plane; dyp the (n, c) dy plane. */
DW_HD float dw_bwdd_voxel(const dw_geo &g, const float *__restrict__ dyp,
                          const float *__restrict__ wc, int id, int ih, int iw) {
    int d0, d1, h0, h1, w0, w1;
    dw_gather_axis(id, g.pd, g.sd, g.kd, g.Do, &d0, &d1);
    dw_gather_axis(ih, g.ph, g.sh, g.kh, g.Ho, &h0, &h1);
    dw_gather_axis(iw, g.pw, g.sw, g.kw, g.Wo, &w0, &w1);
    float acc = 0.0f;
    for (int kd = d0; kd <= d1; kd += g.sd) {
        const int od = (id + g.pd - kd) / g.sd;
        for (int kh = h0; kh <= h1; kh += g.sh) {
            const int oh = (ih + g.ph - kh) / g.sh;
            const float *row = dyp + ((size_t)od * g.Ho + oh) * g.Wo;
            const float *wr = wc + (kd * g.kh + kh) * g.kw;
            for (int kw = w0; kw <= w1; kw += g.sw)
                acc = fmaf(wr[kw], row[(iw + g.pw - kw) / g.sw], acc);
        }
    }
    return acc;
}

/* Fast backward data (all strides 1): out[j] = dx at (id, ih, iw0 + j), j < DW_VW; each dy row in
 * range contributes its DW_VW + K - 1 columns ow = iw0 + pw - (K-1) + c, loaded once. */
template <int K>
DW_HD void dw_bwdd_seg(const dw_geo &g, const float *__restrict__ dyp, const float *__restrict__ wc,
                       int id, int ih, int iw0, float out[DW_VW]) {
    constexpr int NCOL = DW_VW + K - 1;
    DW_UNROLL
    for (int j = 0; j < DW_VW; j++)
        out[j] = 0.0f;
    const int ow0 = iw0 + g.pw - (K - 1);
    DW_UNROLL
    for (int kd = 0; kd < K; kd++) {
        const int od = id + g.pd - kd;
        if (od < 0 || od >= g.Do) continue;
        DW_UNROLL
        for (int kh = 0; kh < K; kh++) {
            const int oh = ih + g.ph - kh;
            if (oh < 0 || oh >= g.Ho) continue;
            const float *row = dyp + ((size_t)od * g.Ho + oh) * g.Wo;
            float col[NCOL];
            DW_UNROLL
            for (int c = 0; c < NCOL; c++) {
                const int ow = ow0 + c;
                col[c] = (ow >= 0 && ow < g.Wo) ? row[ow] : 0.0f;
            }
            const float *wr = wc + (kd * K + kh) * K;
            DW_UNROLL
            for (int kw = 0; kw < K; kw++) {
                const float wv = wr[kw];
                DW_UNROLL
                for (int j = 0; j < DW_VW; j++)
                    out[j] = fmaf(wv, col[j + K - 1 - kw], out[j]);
            }
        }
    }
}

/* Fast backward-data thread: idx over (id, ih, segment) of the (n, c) dx plane. */
template <int K>
DW_HD void dw_bwdd_fast_thread(const dw_geo &g, const float *__restrict__ dy,
                               const float *__restrict__ w, float *__restrict__ dx, int n, int c,
                               int idx) {
    const int nseg = dw_nseg(g.W, DW_VW);
    if (idx >= g.D * g.H * nseg) return;
    int id, ih, seg;
    dw_decode_row_seg(idx, g.H, nseg, &id, &ih, &seg);
    const size_t pl = dw_plane(g, n, c);
    float out[DW_VW];
    dw_bwdd_seg<K>(g, dy + pl * g.out_plane, w + (size_t)c * g.kvol, id, ih, seg * DW_VW, out);
    float *xr = dx + pl * g.in_plane + ((size_t)id * g.H + ih) * g.W;
    DW_UNROLL
    for (int j = 0; j < DW_VW; j++)
        if (seg * DW_VW + j < g.W) xr[seg * DW_VW + j] = out[j];
}

/* Generic backward-data thread: idx over the input voxels of the (n, c) plane. */
DW_HD void dw_bwdd_generic_thread(const dw_geo &g, const float *__restrict__ dy,
                                  const float *__restrict__ w, float *__restrict__ dx, int n, int c,
                                  int idx) {
    if (idx >= g.in_plane) return;
    int id, ih, iw;
    dw_decode_row_seg(idx, g.H, g.W, &id, &ih, &iw);
    const size_t pl = dw_plane(g, n, c);
    dx[pl * g.in_plane + idx] =
        dw_bwdd_voxel(g, dy + pl * g.out_plane, w + (size_t)c * g.kvol, id, ih, iw);
}

/* ---- backward weights and bias: stage 1 (per-thread sums) -------------------------------------
 */

/* Items of one channel: fast path, row segments over (n, od, oh, seg); generic, output voxels over
 * (n, o). A block covers `span` consecutive items; thread t takes items b*span + i*DW_TPB + t. */
static inline int dw_wgt_items(const dw_geo &g, int fast) {
    return fast ? g.N * g.Do * g.Ho * dw_nseg(g.Wo, DW_VW) : g.N * g.out_plane;
}
static inline int dw_wgt_span(int fast) {
    return DW_TPB * (fast ? DW_SEG_ITEMS : DW_VOX_ITEMS);
}
/* Blocks per channel (grid x). */
static inline int dw_wgt_nblk(const dw_geo &g, int fast) {
    return dw_ceil_div(dw_wgt_items(g, fast), dw_wgt_span(fast));
}
DW_HD int64_t dw_item(int b, int i, int t, int span) {
    return (int64_t)b * span + (int64_t)i * DW_TPB + t;
}

/* Fast path, one row segment (od, oh, ow0 .. ow0+DW_VW-1) of the (n, c) planes xp / dyp:
 * acc[(kd*K + kh)*K + kw] += sum_j dy[j] * x[tap window of output j] (float, fmaf, j ascending);
 * *bsum += each dy in double. Outputs past Wo are skipped. */
template <int K, int SW>
DW_HD void dw_wgt_seg(const dw_geo &g, const float *__restrict__ xp, const float *__restrict__ dyp,
                      int od, int oh, int ow0, float *acc, double *bsum) {
    constexpr int NCOL = (DW_VW - 1) * SW + K;
    const int nv = g.Wo - ow0 < DW_VW ? g.Wo - ow0 : DW_VW; /* valid outputs, >= 1 */
    const float *dyr = dyp + ((size_t)od * g.Ho + oh) * g.Wo;
    float dv[DW_VW];
    DW_UNROLL
    for (int j = 0; j < DW_VW; j++) {
        dv[j] = j < nv ? dyr[ow0 + j] : 0.0f;
        if (j < nv) *bsum += (double)dv[j];
    }
    const int iw0 = ow0 * SW - g.pw;
    DW_UNROLL
    for (int kd = 0; kd < K; kd++) {
        const int id = od * g.sd - g.pd + kd;
        if (id < 0 || id >= g.D) continue;
        DW_UNROLL
        for (int kh = 0; kh < K; kh++) {
            const int ih = oh * g.sh - g.ph + kh;
            if (ih < 0 || ih >= g.H) continue;
            const float *row = xp + ((size_t)id * g.H + ih) * g.W;
            float col[NCOL];
            DW_UNROLL
            for (int c = 0; c < NCOL; c++) {
                const int iw = iw0 + c;
                col[c] = (iw >= 0 && iw < g.W) ? row[iw] : 0.0f;
            }
            DW_UNROLL
            for (int kw = 0; kw < K; kw++) {
                float a = acc[(kd * K + kh) * K + kw];
                DW_UNROLL
                for (int j = 0; j < DW_VW; j++)
                    if (j < nv) a = fmaf(dv[j], col[j * SW + kw], a);
                acc[(kd * K + kh) * K + kw] = a;
            }
        }
    }
}

/* Fast path, thread t of block b of channel c: acc[K^3] (zeroed by the caller) and *bsum over
 * the thread's items. */
template <int K, int SW>
DW_HD void dw_wgt_fast_accum(const dw_geo &g, const float *__restrict__ x,
                             const float *__restrict__ dy, int c, int b, int t, float *acc,
                             double *bsum) {
    const int nseg = dw_nseg(g.Wo, DW_VW);
    const int64_t items = (int64_t)g.N * g.Do * g.Ho * nseg;
    for (int i = 0; i < DW_SEG_ITEMS; i++) {
        const int64_t it = dw_item(b, i, t, DW_TPB * DW_SEG_ITEMS);
        if (it >= items) break;
        const int ii = (int)it;
        const int seg = ii % nseg, r = ii / nseg; /* r over (n, od, oh) */
        const int oh = r % g.Ho, od = (r / g.Ho) % g.Do, n = r / g.Ho / g.Do;
        const size_t pl = dw_plane(g, n, c);
        dw_wgt_seg<K, SW>(g, x + pl * g.in_plane, dy + pl * g.out_plane, od, oh, seg * DW_VW, acc,
                          bsum);
    }
}

/* Generic path, thread t of block b of channel c, one tap (blockIdx.z): *acc += dy * x over the
 * thread's voxels (float, fmaf) when do_w, *bsum += dy (double) when do_b. */
DW_HD void dw_wgt_generic_accum(const dw_geo &g, const float *__restrict__ x,
                                const float *__restrict__ dy, int c, int b, int t, int tap,
                                int do_w, int do_b, float *acc, double *bsum) {
    const int kw = tap % g.kw, kh = (tap / g.kw) % g.kh, kd = tap / g.kw / g.kh;
    const int64_t items = (int64_t)g.N * g.out_plane;
    for (int i = 0; i < DW_VOX_ITEMS; i++) {
        const int64_t it = dw_item(b, i, t, DW_TPB * DW_VOX_ITEMS);
        if (it >= items) break;
        const int n = (int)(it / g.out_plane), o = (int)(it % g.out_plane);
        int od, oh, ow;
        dw_decode_row_seg(o, g.Ho, g.Wo, &od, &oh, &ow);
        const size_t pl = dw_plane(g, n, c);
        const float dv = dy[pl * g.out_plane + o];
        if (do_b) *bsum += (double)dv;
        if (!do_w) continue;
        const int id = od * g.sd - g.pd + kd, ih = oh * g.sh - g.ph + kh,
                  iw = ow * g.sw - g.pw + kw;
        if (id < 0 || id >= g.D || ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
        *acc = fmaf(dv, x[pl * g.in_plane + ((size_t)id * g.H + ih) * g.W + iw], *acc);
    }
}

/* ---- backward weights and bias: block reduction, workspace, stage 2 ---------------------------
 */

/* Host emulation of the device warp sum (v += __shfl_down_sync(v, off), off = 16, 8, 4, 2, 1;
 * a lane past the warp reads its own value): the same additions, in place; returns lane 0. */
DW_HD double dw_lane_tree(double v[DW_WARP]) {
    for (int off = DW_WARP / 2; off > 0; off >>= 1)
        for (int lane = 0; lane < DW_WARP; lane++) /* ascending: v[lane + off] is still old */
            v[lane] += lane + off < DW_WARP ? v[lane + off] : v[lane];
    return v[0];
}

/* The block's total of slot s: warp totals red[w * slots + s] added in warp order. */
DW_HD double dw_block_sum(const double *red, int slots, int s) {
    double sum = 0.0;
    for (int w = 0; w < DW_NWARPS; w++)
        sum += red[w * slots + s];
    return sum;
}

/* Workspace: one double per (channel c, block b, slot s); slots = kvol + 1 (the last is db). */
DW_HD size_t dw_ws_index(int c, int b, int s, int nblk, int slots) {
    return ((size_t)c * nblk + b) * slots + s;
}
static inline size_t dw_ws_bytes(const dw_geo &g, int nblk) {
    return (size_t)g.C * nblk * (g.kvol + 1) * sizeof(double);
}

/* Stage 2, thread idx over (channel, slot): the partials of blocks 0..nblk-1 added in that order
 * in double, then dw[c, s] (s < kvol) or db[c] (s == kvol) += the float of it; a NULL target is
 * skipped (stage 1 fills the slots of every non-NULL target). */
DW_HD void dw_combine_thread(const double *__restrict__ ws, const dw_geo &g, int nblk,
                             float *__restrict__ dw, float *__restrict__ db, int idx) {
    const int slots = g.kvol + 1;
    if (idx >= g.C * slots) return;
    const int c = idx / slots, s = idx % slots;
    float *dst =
        s < g.kvol ? (dw ? dw + (size_t)c * g.kvol + s : nullptr) : (db ? db + c : nullptr);
    if (!dst) return;
    double sum = 0.0;
    for (int b = 0; b < nblk; b++)
        sum += ws[dw_ws_index(c, b, s, nblk, slots)];
    *dst += (float)sum;
}

#endif
