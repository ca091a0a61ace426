/* dwconv.cu — depthwise 3D convolution (groups = C) on our own kernels, forward and backward.
 *
 * cuDNN is slow for 5-D depthwise convolutions in NCDHW (PyTorch routes them away from it too), so
 * these are ours. The kernels are thin wrappers: the index math and each thread's work live in
 * dwconv_math.cuh (shared with the host check tests/cuda/test_cuda_dwconv_host.cu), see there for
 * the work split. Fast paths (templates) for cubic kernels 3 and 5; any kernel <= 7 and stride <= 8
 * per axis otherwise. No floating-point atomics: backward data is a gather, the weight / bias
 * gradients a two-stage fixed-order reduction in double through the backend workspace.
 */
#include "cuda/cuda_impl.h"
#include "cuda/dwconv_math.cuh"

#include <stdio.h>

/* ---- kernels ------------------------------------------------------------------------------------
 */

/* x is (N,C,D,H,W), w (C,1,k,k,k), b (C) or NULL, y (N,C,Do,Ho,Wo); grid (segments / DW_TPB, C, N).
 */
template <int K, int SW>
__global__ void __launch_bounds__(DW_TPB)
    dw_fwd_fast_kernel(dw_geo g, const float *__restrict__ x, const float *__restrict__ w,
                       const float *__restrict__ b, float *__restrict__ y) {
    dw_fwd_fast_thread<K, SW>(g, x, w, b, y, blockIdx.z, blockIdx.y,
                              blockIdx.x * DW_TPB + threadIdx.x);
}

/* As above, any geometry; grid (output voxels of a plane / DW_TPB, C, N). */
__global__ void __launch_bounds__(DW_TPB)
    dw_fwd_generic_kernel(dw_geo g, const float *__restrict__ x, const float *__restrict__ w,
                          const float *__restrict__ b, float *__restrict__ y) {
    dw_fwd_generic_thread(g, x, w, b, y, blockIdx.z, blockIdx.y, blockIdx.x * DW_TPB + threadIdx.x);
}

/* dy is (N,C,Do,Ho,Wo), w (C,1,k,k,k), dx (N,C,D,H,W) overwritten; strides 1;
 * grid (dx segments / DW_TPB, C, N). */
template <int K>
__global__ void __launch_bounds__(DW_TPB)
    dw_bwdd_fast_kernel(dw_geo g, const float *__restrict__ dy, const float *__restrict__ w,
                        float *__restrict__ dx) {
    dw_bwdd_fast_thread<K>(g, dy, w, dx, blockIdx.z, blockIdx.y, blockIdx.x * DW_TPB + threadIdx.x);
}

/* As above, any geometry; grid (input voxels of a plane / DW_TPB, C, N). */
__global__ void __launch_bounds__(DW_TPB)
    dw_bwdd_generic_kernel(dw_geo g, const float *__restrict__ dy, const float *__restrict__ w,
                           float *__restrict__ dx) {
    dw_bwdd_generic_thread(g, dy, w, dx, blockIdx.z, blockIdx.y, blockIdx.x * DW_TPB + threadIdx.x);
}

/* Sum over the warp; lane 0 gets the total (same additions as dw_lane_tree). Every lane calls. */
__device__ __forceinline__ double dw_warp_sum(double v) {
    for (int off = DW_WARP / 2; off > 0; off >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

/* Stage 1, fast path. x (N,C,D,H,W), dy (N,C,Do,Ho,Wo); grid (nblk, C, 1). Writes every slot
 * (K^3 taps, then the bias sum) of ws[c, blockIdx.x]. No thread returns before the reductions. */
template <int K, int SW>
__global__ void __launch_bounds__(DW_TPB)
    dw_wgt_fast_kernel(dw_geo g, const float *__restrict__ x, const float *__restrict__ dy,
                       int nblk, double *__restrict__ ws) {
    constexpr int KV = K * K * K, SLOTS = KV + 1;
    __shared__ double red[DW_NWARPS * SLOTS];
    const int c = blockIdx.y, b = blockIdx.x, t = threadIdx.x;
    const int warp = t / DW_WARP, lane = t % DW_WARP;
    float acc[KV];
#pragma unroll
    for (int s = 0; s < KV; s++)
        acc[s] = 0.0f;
    double bsum = 0.0;
    dw_wgt_fast_accum<K, SW>(g, x, dy, c, b, t, acc, &bsum);
#pragma unroll
    for (int s = 0; s < KV; s++) {
        const double v = dw_warp_sum((double)acc[s]);
        if (lane == 0) red[warp * SLOTS + s] = v;
    }
    const double vb = dw_warp_sum(bsum);
    if (lane == 0) red[warp * SLOTS + KV] = vb;
    __syncthreads();
    for (int s = t; s < SLOTS; s += DW_TPB)
        ws[dw_ws_index(c, b, s, nblk, SLOTS)] = dw_block_sum(red, SLOTS, s);
}

/* Stage 1, generic path: one tap per blockIdx.z (grid (nblk, C, kvol), or (nblk, C, 1) when only
 * the bias is wanted). Writes slot tap (do_w) and, from z = 0, slot kvol (do_b). */
__global__ void __launch_bounds__(DW_TPB)
    dw_wgt_generic_kernel(dw_geo g, const float *__restrict__ x, const float *__restrict__ dy,
                          int nblk, int do_w, int do_b, double *__restrict__ ws) {
    __shared__ double red[DW_NWARPS * 2];
    const int c = blockIdx.y, b = blockIdx.x, tap = blockIdx.z, t = threadIdx.x;
    const int warp = t / DW_WARP, lane = t % DW_WARP;
    const int with_b = do_b && tap == 0;
    float acc = 0.0f;
    double bsum = 0.0;
    dw_wgt_generic_accum(g, x, dy, c, b, t, tap, do_w, with_b, &acc, &bsum);
    const double va = dw_warp_sum((double)acc), vb = dw_warp_sum(bsum);
    if (lane == 0) {
        red[warp * 2] = va;
        red[warp * 2 + 1] = vb;
    }
    __syncthreads();
    const int slots = g.kvol + 1;
    if (t == 0 && do_w) ws[dw_ws_index(c, b, tap, nblk, slots)] = dw_block_sum(red, 2, 0);
    if (t == 1 && with_b) ws[dw_ws_index(c, b, g.kvol, nblk, slots)] = dw_block_sum(red, 2, 1);
}

/* Stage 2: dw (C,1,k,k,k) and db (C) accumulated (either NULL); one thread per (channel, slot). */
__global__ void __launch_bounds__(DW_TPB)
    dw_combine_kernel(dw_geo g, const double *__restrict__ ws, int nblk, float *__restrict__ dw,
                      float *__restrict__ db) {
    dw_combine_thread(ws, g, nblk, dw, db, blockIdx.x * DW_TPB + threadIdx.x);
}

/* ---- host side ----------------------------------------------------------------------------------
 */

/* "dwconv3d_fwd 2x32x28x80x80 k3x3x3 s1x2x2" */
static void dw_what(char *buf, size_t n, const char *op, const sq_conv3d *p) {
    char sh[96];
    snprintf(buf, n, "%s %s k%dx%dx%d s%dx%dx%d", op, sq_cuda_shape_str(p->in, sh, sizeof sh),
             p->k[0], p->k[1], p->k[2], p->stride[0], p->stride[1], p->stride[2]);
}

/* A required view: present and in range (sq_cuda_check_view names the op and the tensor). */
static sq_code dw_need_view(sq_view v, int64_t n, const char *what, const char *name,
                            sq_status *st) {
    char w[200];
    snprintf(w, sizeof w, "%s: %s", what, name);
    return sq_cuda_check_view(v, n, w, st);
}
/* An optional view: absent, or in range. */
static sq_code dw_opt_view(sq_view v, int64_t n, const char *what, const char *name,
                           sq_status *st) {
    return v.buf ? dw_need_view(v, n, what, name, st) : SQ_OK;
}

static int64_t dw_numel_in(const dw_geo &g) {
    return (int64_t)g.N * g.C * g.in_plane;
}
static int64_t dw_numel_out(const dw_geo &g) {
    return (int64_t)g.N * g.C * g.out_plane;
}

static void dw_launch_fwd(const dw_geo &g, cudaStream_t s, const float *x, const float *w,
                          const float *b, float *y) {
    const int k = dw_fast_k(g);
    if (!dw_fwd_fast(g)) {
        const dim3 grid(dw_ceil_div(g.out_plane, DW_TPB), g.C, g.N);
        dw_fwd_generic_kernel<<<grid, DW_TPB, 0, s>>>(g, x, w, b, y);
        return;
    }
    const dim3 grid(dw_ceil_div((int64_t)g.Do * g.Ho * dw_nseg(g.Wo, DW_VW), DW_TPB), g.C, g.N);
    if (k == 3 && g.sw == 1) dw_fwd_fast_kernel<3, 1><<<grid, DW_TPB, 0, s>>>(g, x, w, b, y);
    if (k == 3 && g.sw == 2) dw_fwd_fast_kernel<3, 2><<<grid, DW_TPB, 0, s>>>(g, x, w, b, y);
    if (k == 5 && g.sw == 1) dw_fwd_fast_kernel<5, 1><<<grid, DW_TPB, 0, s>>>(g, x, w, b, y);
    if (k == 5 && g.sw == 2) dw_fwd_fast_kernel<5, 2><<<grid, DW_TPB, 0, s>>>(g, x, w, b, y);
}

extern "C" sq_code sq_cuda_dwconv3d_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w,
                                        sq_view b, sq_view y, sq_status *st) {
    dw_geo g;
    SQ_TRY(dw_validate(p, &g, st));
    char what[160];
    dw_what(what, sizeof what, "dwconv3d_fwd", p);
    SQ_TRY(dw_need_view(x, dw_numel_in(g), what, "x", st));
    SQ_TRY(dw_need_view(w, (int64_t)g.C * g.kvol, what, "w", st));
    SQ_TRY(dw_opt_view(b, g.C, what, "b", st));
    SQ_TRY(dw_need_view(y, dw_numel_out(g), what, "y", st));
    dw_launch_fwd(g, sq_cuda_of(be)->stream, sq_cuda_f(x), sq_cuda_f(w), sq_cuda_f(b),
                  sq_cuda_f(y));
    return sq_cuda_launch_ok(what, st);
}

static void dw_launch_bwdd(const dw_geo &g, cudaStream_t s, const float *dy, const float *w,
                           float *dx) {
    const int k = dw_fast_k(g);
    if (!dw_bwdd_fast(g)) {
        const dim3 grid(dw_ceil_div(g.in_plane, DW_TPB), g.C, g.N);
        dw_bwdd_generic_kernel<<<grid, DW_TPB, 0, s>>>(g, dy, w, dx);
        return;
    }
    const dim3 grid(dw_ceil_div((int64_t)g.D * g.H * dw_nseg(g.W, DW_VW), DW_TPB), g.C, g.N);
    if (k == 3) dw_bwdd_fast_kernel<3><<<grid, DW_TPB, 0, s>>>(g, dy, w, dx);
    if (k == 5) dw_bwdd_fast_kernel<5><<<grid, DW_TPB, 0, s>>>(g, dy, w, dx);
}

/* Stage 1 into the workspace ws; nblk blocks per channel. */
static void dw_launch_wgt(const dw_geo &g, cudaStream_t s, const float *x, const float *dy,
                          int do_w, int do_b, int fast, int nblk, double *ws) {
    if (!fast) {
        const dim3 grid(nblk, g.C, do_w ? g.kvol : 1);
        dw_wgt_generic_kernel<<<grid, DW_TPB, 0, s>>>(g, x, dy, nblk, do_w, do_b, ws);
        return;
    }
    const int k = dw_fast_k(g);
    const dim3 grid(nblk, g.C, 1);
    if (k == 3 && g.sw == 1) dw_wgt_fast_kernel<3, 1><<<grid, DW_TPB, 0, s>>>(g, x, dy, nblk, ws);
    if (k == 3 && g.sw == 2) dw_wgt_fast_kernel<3, 2><<<grid, DW_TPB, 0, s>>>(g, x, dy, nblk, ws);
    if (k == 5 && g.sw == 1) dw_wgt_fast_kernel<5, 1><<<grid, DW_TPB, 0, s>>>(g, x, dy, nblk, ws);
    if (k == 5 && g.sw == 2) dw_wgt_fast_kernel<5, 2><<<grid, DW_TPB, 0, s>>>(g, x, dy, nblk, ws);
}

/* dw / db accumulated through the two-stage reduction (either may be NULL, not both). */
static sq_code dw_weight_grads(sq_cuda *c, const dw_geo &g, const float *x, const float *dy,
                               float *dw, float *db, const char *what, sq_status *st) {
    const int fast = dw != nullptr && dw_fwd_fast(g); /* the fast stage 1 fills every slot */
    const int nblk = dw_wgt_nblk(g, fast);
    void *ws = nullptr;
    SQ_TRY(sq_cuda_workspace(c, dw_ws_bytes(g, nblk), &ws, st));
    dw_launch_wgt(g, c->stream, x, dy, dw != nullptr, db != nullptr, fast, nblk, (double *)ws);
    SQ_TRY(sq_cuda_launch_ok(what, st));
    const int threads = g.C * (g.kvol + 1);
    dw_combine_kernel<<<dw_ceil_div(threads, DW_TPB), DW_TPB, 0, c->stream>>>(g, (const double *)ws,
                                                                              nblk, dw, db);
    return sq_cuda_launch_ok(what, st);
}

extern "C" sq_code sq_cuda_dwconv3d_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w,
                                        sq_view dy, sq_view dx, sq_view dw, sq_view db,
                                        sq_status *st) {
    dw_geo g;
    SQ_TRY(dw_validate(p, &g, st));
    char what[160];
    dw_what(what, sizeof what, "dwconv3d_bwd", p);
    const int64_t wn = (int64_t)g.C * g.kvol;
    SQ_TRY(dw_need_view(dy, dw_numel_out(g), what, "dy", st));
    SQ_TRY(dw_opt_view(dx, dw_numel_in(g), what, "dx", st));
    SQ_TRY(dw_opt_view(dw, wn, what, "dw", st));
    SQ_TRY(dw_opt_view(db, g.C, what, "db", st));
    if (dx.buf) SQ_TRY(dw_need_view(w, wn, what, "w", st));
    if (dw.buf) SQ_TRY(dw_need_view(x, dw_numel_in(g), what, "x", st));
    sq_cuda *c = sq_cuda_of(be);
    if (dx.buf) {
        dw_launch_bwdd(g, c->stream, sq_cuda_f(dy), sq_cuda_f(w), sq_cuda_f(dx));
        SQ_TRY(sq_cuda_launch_ok(what, st));
    }
    if (dw.buf || db.buf)
        SQ_TRY(dw_weight_grads(c, g, sq_cuda_f(x), sq_cuda_f(dy), sq_cuda_f(dw), sq_cuda_f(db),
                               what, st));
    return SQ_OK;
}
