// pointwise.cu — the CUDA backend's element-wise, pooling, resize, fusion and loss ops:
// activations, PReLU, global average pooling, channel scaling, max pooling, nearest resize, fast
// normalised fusion, add/axpy/scale, sumsq and MSE (nn/backend.h contracts, cpu_ops.c semantics).
//
// Kernels are thin wrappers around the __host__ __device__ math of pointwise_math.cuh (work split
// described there). Element-wise kernels are grid-stride with int64 indices; reductions write
// per-block double partials into the backend workspace and a second kernel combines them in a
// fixed order (no atomics: bitwise reproducible). Max-pool and resize backward are gathers: each dx
// element sums its own contributions in the CPU's order, so no output is written twice.
#include "cuda/cuda_impl.h"
#include "cuda/pointwise_math.cuh"

#include <math.h>
#include <stdio.h>

// ---- device helpers ----------------------------------------------------------------------------

// Sum of v over the block (PW_BLOCK threads) by the fixed tree of pw_tree_step; every thread gets
// the total. Must be reached by all threads of the block.
static __device__ double pw_block_sum(double v) {
    __shared__ double sh[PW_BLOCK];
    const int t = (int)threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = PW_BLOCK / 2; s > 0; s >>= 1) {
        pw_tree_step(sh, t, s);
        __syncthreads();
    }
    const double total = sh[0];
    __syncthreads(); // sh is reused by the next call
    return total;
}

static __device__ int64_t pw_gtid(void) {
    return (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}
static __device__ int64_t pw_gstride(void) {
    return (int64_t)gridDim.x * blockDim.x;
}

typedef struct pw_cptrs {
    const float *p[PW_FUSE_KMAX];
} pw_cptrs;
typedef struct pw_ptrs {
    float *p[PW_FUSE_KMAX];
} pw_ptrs;

// ---- element-wise kernels (any shape: n elements) -------------------------------------------

// y = act(x); y may equal x.
template <sq_act A> static __global__ void act_fwd_kernel(int64_t n, const float *x, float *y) {
    for (int64_t i = pw_gtid(); i < n; i += pw_gstride())
        y[i] = pw_act(A, pw_act_input(x[i]));
}

// dx = dy * act'(x); dx may equal dy.
template <sq_act A>
static __global__ void act_bwd_kernel(int64_t n, const float *x, const float *dy, float *dx) {
    for (int64_t i = pw_gtid(); i < n; i += pw_gstride())
        dx[i] = pw_act_grad(A, pw_act_input(x[i]), dy[i]);
}

// y = a + b; y may be a or b.
static __global__ void add_kernel(int64_t n, const float *a, const float *b, float *y) {
    for (int64_t i = pw_gtid(); i < n; i += pw_gstride())
        y[i] = pw_add(a[i], b[i]);
}

// y += alpha * x (x, y do not overlap).
static __global__ void axpy_kernel(int64_t n, float alpha, const float *__restrict__ x,
                                   float *__restrict__ y) {
    for (int64_t i = pw_gtid(); i < n; i += pw_gstride())
        y[i] = pw_add(y[i], pw_mul(alpha, x[i]));
}

// y = x * alpha; y may equal x.
static __global__ void scale_kernel(int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = pw_gtid(); i < n; i += pw_gstride())
        y[i] = pw_mul(x[i], alpha);
}

// dpred = k * (pred - target), k = 2 scale / n.
static __global__ void mse_bwd_kernel(int64_t n, float k, const float *p, const float *t,
                                      float *d) {
    for (int64_t i = pw_gtid(); i < n; i += pw_gstride())
        d[i] = pw_mse_grad(k, p[i], t[i]);
}

// y = sum_i a_i xs[i] (k = K inputs of n elements); weights from the raw w (k) per thread.
template <int K>
static __global__ void fuse_fwd_kernel(int64_t n, pw_cptrs xs, const float *w, float *y) {
    float r[K], a[K];
    pw_fuse_weights(w, K, r, a);
    for (int64_t j = pw_gtid(); j < n; j += pw_gstride())
        y[j] = pw_fuse_value(a, K, xs.p, j);
}

// ---- flat reductions: block b covers chunk b of [0, n) -----------------------------------------

// part[b] = sum of x^2 over chunk b.
static __global__ void sumsq_partial_kernel(int64_t n, const float *x, double *part) {
    const int64_t b = blockIdx.x;
    const double s =
        pw_block_sum(pw_sumsq_thread(x, pw_chunk_lo(b), pw_chunk_hi(b, n), (int)threadIdx.x));
    if (threadIdx.x == 0) part[b] = s;
}

// part[b] = sum of (pred - target)^2 over chunk b.
static __global__ void mse_partial_kernel(int64_t n, const float *p, const float *t, double *part) {
    const int64_t b = blockIdx.x;
    const double s =
        pw_block_sum(pw_mse_thread(p, t, pw_chunk_lo(b), pw_chunk_hi(b, n), (int)threadIdx.x));
    if (threadIdx.x == 0) part[b] = s;
}

enum { PW_FLAT_SUMSQ = 0, PW_FLAT_MSE = 1 };

// One block: out[0] = the finished sum of part[0, nb).
static __global__ void flat_finish_kernel(const double *part, int64_t nb, int mode, int64_t n,
                                          float *out) {
    const double s = pw_block_sum(pw_combine_thread(part, nb, (int)threadIdx.x));
    if (threadIdx.x == 0) out[0] = mode == PW_FLAT_MSE ? pw_mse_finish(s, n) : (float)s;
}

// fuse_bwd, chunk b: dx_i = a_i dy; part[i * nb + b] = sum dy * x_i (part NULL: no dw wanted).
template <int K>
static __global__ void fuse_bwd_kernel(int64_t n, pw_cptrs xs, const float *w, const float *dy,
                                       pw_ptrs dxs, double *part) {
    float r[K], a[K];
    pw_fuse_weights(w, K, r, a);
    double D[K];
    for (int i = 0; i < K; i++)
        D[i] = 0.0;
    const int64_t b = blockIdx.x, nb = gridDim.x;
    pw_fuse_bwd_thread(K, a, xs.p, dy, dxs.p, pw_chunk_lo(b), pw_chunk_hi(b, n), (int)threadIdx.x,
                       part != NULL, D);
    if (!part) return; // uniform over the block
    for (int i = 0; i < K; i++) {
        const double s = pw_block_sum(D[i]);
        if (threadIdx.x == 0) part[i * nb + b] = s;
    }
}

// One block: D_i = combined partials of input i, then dw (k) accumulated by thread 0.
static __global__ void fuse_finish_kernel(const double *part, int64_t nb, int k, const float *w,
                                          float *dw) {
    double D[PW_FUSE_KMAX];
    for (int i = 0; i < k; i++)
        D[i] = pw_block_sum(pw_combine_thread(part + i * nb, nb, (int)threadIdx.x));
    if (threadIdx.x != 0) return;
    float r[PW_FUSE_KMAX], a[PW_FUSE_KMAX];
    const float T = pw_fuse_weights(w, k, r, a);
    pw_fuse_dw(k, w, r, T, D, dw);
}

// ---- per-plane kernels: x is (N,C,D,H,W) as planes x S; grid (nchunks, <= 65535 planes) -------

// y = prelu(x, alpha[pl % C]).
static __global__ void prelu_fwd_kernel(int64_t S, int C, int64_t planes, const float *x,
                                        const float *alpha, float *y) {
    const int64_t lo = pw_chunk_lo(blockIdx.x), hi = pw_chunk_hi(blockIdx.x, S);
    for (int64_t pl = blockIdx.y; pl < planes; pl += gridDim.y) {
        const float a = alpha[pl % C];
        for (int64_t i = lo + threadIdx.x; i < hi; i += PW_BLOCK)
            y[pl * S + i] = pw_prelu(x[pl * S + i], a);
    }
}

// dx (or NULL) = prelu'(x) dy; part[pl * nchunks + chunk] = sum g x over x <= 0 (or NULL).
static __global__ void prelu_bwd_kernel(int64_t S, int C, int64_t planes, const float *x,
                                        const float *alpha, const float *dy, float *dx,
                                        double *part) {
    const int64_t lo = pw_chunk_lo(blockIdx.x), hi = pw_chunk_hi(blockIdx.x, S);
    for (int64_t pl = blockIdx.y; pl < planes; pl += gridDim.y) {
        const double s =
            pw_prelu_bwd_thread(x, dy, dx, alpha[pl % C], pl * S, lo, hi, (int)threadIdx.x);
        if (!part) continue; // uniform over the block
        const double total = pw_block_sum(s);
        if (threadIdx.x == 0) part[pl * gridDim.x + blockIdx.x] = total;
    }
}

// dalpha[c] += sum over planes (n, c) of their partials; one thread per channel.
static __global__ void prelu_finish_kernel(const double *part, int N, int C, int64_t nchunks,
                                           float *dalpha) {
    const int64_t c = pw_gtid();
    if (c < C)
        dalpha[c] = pw_accumulate(dalpha[c], pw_prelu_channel_sum(part, N, C, (int)c, nchunks));
}

// Partial sums of x per (plane, chunk); with one chunk per plane, y[pl] = mean directly.
static __global__ void gap_partial_kernel(int64_t S, int64_t planes, const float *x, double *part,
                                          float *y_direct) {
    const int64_t lo = pw_chunk_lo(blockIdx.x), hi = pw_chunk_hi(blockIdx.x, S);
    for (int64_t pl = blockIdx.y; pl < planes; pl += gridDim.y) {
        const double s = pw_block_sum(pw_gap_thread(x, pl * S, lo, hi, (int)threadIdx.x));
        if (threadIdx.x != 0) continue;
        if (y_direct)
            y_direct[pl] = pw_gap_finish(s, S);
        else
            part[pl * gridDim.x + blockIdx.x] = s;
    }
}

enum { PW_PLANE_MEAN = 0, PW_PLANE_SUM = 1 };

// out[pl] = finished in-order sum of the plane's partials; one thread per plane.
static __global__ void plane_finish_kernel(const double *part, int64_t planes, int64_t nchunks,
                                           int mode, int64_t S, float *out) {
    const int64_t pl = pw_gtid();
    if (pl >= planes) return;
    const double s = pw_combine_serial(part + pl * nchunks, nchunks);
    out[pl] = mode == PW_PLANE_MEAN ? pw_gap_finish(s, S) : (float)s;
}

// dx[pl, :] = dy[pl] / S.
static __global__ void gap_bwd_kernel(int64_t S, int64_t planes, const float *dy, float *dx) {
    const int64_t lo = pw_chunk_lo(blockIdx.x), hi = pw_chunk_hi(blockIdx.x, S);
    for (int64_t pl = blockIdx.y; pl < planes; pl += gridDim.y) {
        const float g = pw_gap_grad(dy[pl], S);
        for (int64_t i = lo + threadIdx.x; i < hi; i += PW_BLOCK)
            dx[pl * S + i] = g;
    }
}

// y = x * scale[pl].
static __global__ void chscale_fwd_kernel(int64_t S, int64_t planes, const float *x,
                                          const float *scale, float *y) {
    const int64_t lo = pw_chunk_lo(blockIdx.x), hi = pw_chunk_hi(blockIdx.x, S);
    for (int64_t pl = blockIdx.y; pl < planes; pl += gridDim.y) {
        const float a = scale[pl];
        for (int64_t i = lo + threadIdx.x; i < hi; i += PW_BLOCK)
            y[pl * S + i] = pw_mul(x[pl * S + i], a);
    }
}

// dx (or NULL) = dy * scale[pl]; sum dy * x per (plane, chunk) into part, or straight into
// ds_direct[pl] with one chunk per plane; neither when no dscale is wanted.
static __global__ void chscale_bwd_kernel(int64_t S, int64_t planes, const float *x,
                                          const float *scale, const float *dy, float *dx,
                                          double *part, float *ds_direct) {
    const int64_t lo = pw_chunk_lo(blockIdx.x), hi = pw_chunk_hi(blockIdx.x, S);
    for (int64_t pl = blockIdx.y; pl < planes; pl += gridDim.y) {
        const double s =
            pw_chscale_bwd_thread(x, dy, dx, scale[pl], pl * S, lo, hi, (int)threadIdx.x);
        if (!part && !ds_direct) continue; // uniform over the block
        const double total = pw_block_sum(s);
        if (threadIdx.x != 0) continue;
        if (ds_direct)
            ds_direct[pl] = (float)total;
        else
            part[pl * gridDim.x + blockIdx.x] = total;
    }
}

// ---- max pooling and resize: grid (ceil(plane / PW_BLOCK), <= 65535 planes) ------------------

// Output q of each plane: y = x at the window's first maximum (y may be NULL), arg = its
// in-plane index (arg may be NULL).
static __global__ void pool_argmax_kernel(pw_pool_geom g, int64_t planes, const float *x, float *y,
                                          int *arg) {
    const int64_t S = (int64_t)g.in[0] * g.in[1] * g.in[2];
    const int64_t So = (int64_t)g.out[0] * g.out[1] * g.out[2];
    const int64_t q = pw_gtid();
    if (q >= So) return;
    int od, oh, ow;
    pw_unflatten3((int)q, g.out, &od, &oh, &ow);
    for (int64_t pl = blockIdx.y; pl < planes; pl += gridDim.y) {
        const float *xp = x + pl * S;
        const int a = pw_pool_argmax(xp, g, od, oh, ow);
        if (y) y[pl * So + q] = a >= 0 ? xp[a] : -INFINITY;
        if (arg) arg[pl * So + q] = a;
    }
}

// Input q of each plane: dx = sum of dy over the windows whose first maximum it is.
static __global__ void pool_gather_kernel(pw_pool_geom g, int64_t planes, const int *arg,
                                          const float *dy, float *dx) {
    const int64_t S = (int64_t)g.in[0] * g.in[1] * g.in[2];
    const int64_t So = (int64_t)g.out[0] * g.out[1] * g.out[2];
    const int64_t q = pw_gtid();
    if (q >= S) return;
    int d, h, w;
    pw_unflatten3((int)q, g.in, &d, &h, &w);
    for (int64_t pl = blockIdx.y; pl < planes; pl += gridDim.y)
        dx[pl * S + q] = pw_pool_gather(arg + pl * So, dy + pl * So, g, d, h, w);
}

// Output q of each plane: y = x at its nearest source.
static __global__ void resize_fwd_kernel(pw_resize_geom g, int64_t planes, const float *x,
                                         float *y) {
    const int64_t S = (int64_t)g.in[0] * g.in[1] * g.in[2];
    const int64_t So = (int64_t)g.out[0] * g.out[1] * g.out[2];
    const int64_t q = pw_gtid();
    if (q >= So) return;
    int od, oh, ow;
    pw_unflatten3((int)q, g.out, &od, &oh, &ow);
    for (int64_t pl = blockIdx.y; pl < planes; pl += gridDim.y)
        y[pl * So + q] = pw_resize_value(x + pl * S, g, od, oh, ow);
}

// Input q of each plane: dx = sum of dy over the outputs that read it.
static __global__ void resize_bwd_kernel(pw_resize_geom g, int64_t planes, const float *dy,
                                         float *dx) {
    const int64_t S = (int64_t)g.in[0] * g.in[1] * g.in[2];
    const int64_t So = (int64_t)g.out[0] * g.out[1] * g.out[2];
    const int64_t q = pw_gtid();
    if (q >= S) return;
    int d, h, w;
    pw_unflatten3((int)q, g.in, &d, &h, &w);
    for (int64_t pl = blockIdx.y; pl < planes; pl += gridDim.y)
        dx[pl * S + q] = pw_resize_gather(dy + pl * So, g, d, h, w);
}

// ---- host helpers --------------------------------------------------------------------------

// A view of n floats: required (must be present) or optional (none allowed). The message is
// formatted only on failure: this runs for every argument of every op of every step.
static sq_code check_arg(sq_view v, int64_t n, int required, const char *what, const char *arg,
                         sq_status *st) {
    if (v.buf ? sq_cuda_view_fits(v, n) : !required) return SQ_OK;
    char buf[192];
    snprintf(buf, sizeof buf, "%s %s", what, arg);
    if (!v.buf)
        return required ? sq_fail(st, SQ_ERR_RANGE, "cuda: %s: missing (none view)", buf) : SQ_OK;
    return sq_cuda_check_view(v, n, buf, st);
}

static sq_code check_count(int64_t n, const char *what, sq_status *st) {
    if (n < 0) return sq_fail(st, SQ_ERR_RANGE, "cuda: %s: negative element count", what);
    return SQ_OK;
}

// Grid-stride blocks for n elements (pw_elem_blocks).
static unsigned elem_blocks(const sq_cuda *c, int64_t n) {
    return (unsigned)pw_elem_blocks(n, c->sm_count);
}

// Grid of `x` blocks per plane over `planes` planes (y capped, the kernels loop).
static sq_code plane_grid(int64_t x, int64_t planes, const char *what, dim3 *grid, sq_status *st) {
    if (x < 1 || x > 0x7fffffff || planes < 1)
        return sq_fail(st, SQ_ERR_RANGE, "cuda: %s: grid of %lld blocks x %lld planes", what,
                       (long long)x, (long long)planes);
    *grid = dim3((unsigned)x, (unsigned)pw_grid_y(planes), 1);
    return SQ_OK;
}

static sq_code flat_blocks(int64_t n, const char *what, unsigned *nb, sq_status *st) {
    const int64_t b = pw_nchunks(n);
    if (b > 0x7fffffff)
        return sq_fail(st, SQ_ERR_RANGE, "cuda: %s: %lld elements is too many", what, (long long)n);
    *nb = (unsigned)b;
    return SQ_OK;
}

static const char *act_name(sq_act a) {
    switch (a) {
    case SQ_ACT_NONE: return "none";
    case SQ_ACT_RELU: return "relu";
    case SQ_ACT_SIGMOID: return "sigmoid";
    case SQ_ACT_SWISH: return "swish";
    default: return "?";
    }
}

static int64_t plane_size(sq_shape5 s) {
    return (int64_t)s.d * s.h * s.w;
}

// "<op> NxCxDxHxW"
static void shape_what(char *what, size_t size, const char *op, sq_shape5 s) {
    char sh[64];
    snprintf(what, size, "%s %s", op, sq_cuda_shape_str(s, sh, sizeof sh));
}

// ---- activations ------------------------------------------------------------------------------

static sq_code act_fwd(sq_backend *be, sq_act act, int64_t n, sq_view x, sq_view y, sq_status *st) {
    char what[96];
    snprintf(what, sizeof what, "act_fwd n=%lld %s", (long long)n, act_name(act));
    SQ_TRY(check_count(n, what, st));
    SQ_TRY(check_arg(x, n, 1, what, "x", st));
    SQ_TRY(check_arg(y, n, 1, what, "y", st));
    if (n == 0) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    const unsigned nb = elem_blocks(c, n);
    const float *px = sq_cuda_f(x);
    float *py = sq_cuda_f(y);
    switch (act) {
    case SQ_ACT_NONE: act_fwd_kernel<SQ_ACT_NONE><<<nb, PW_BLOCK, 0, c->stream>>>(n, px, py); break;
    case SQ_ACT_RELU: act_fwd_kernel<SQ_ACT_RELU><<<nb, PW_BLOCK, 0, c->stream>>>(n, px, py); break;
    case SQ_ACT_SIGMOID:
        act_fwd_kernel<SQ_ACT_SIGMOID><<<nb, PW_BLOCK, 0, c->stream>>>(n, px, py);
        break;
    case SQ_ACT_SWISH:
        act_fwd_kernel<SQ_ACT_SWISH><<<nb, PW_BLOCK, 0, c->stream>>>(n, px, py);
        break;
    default: return sq_fail(st, SQ_ERR_RANGE, "cuda: %s: unknown activation %d", what, (int)act);
    }
    return sq_cuda_launch_ok(what, st);
}

static sq_code act_bwd(sq_backend *be, sq_act act, int64_t n, sq_view x, sq_view dy, sq_view dx,
                       sq_status *st) {
    char what[96];
    snprintf(what, sizeof what, "act_bwd n=%lld %s", (long long)n, act_name(act));
    SQ_TRY(check_count(n, what, st));
    SQ_TRY(check_arg(x, n, 1, what, "x", st));
    SQ_TRY(check_arg(dy, n, 1, what, "dy", st));
    SQ_TRY(check_arg(dx, n, 1, what, "dx", st));
    if (n == 0) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    const unsigned nb = elem_blocks(c, n);
    const float *px = sq_cuda_f(x), *pdy = sq_cuda_f(dy);
    float *pdx = sq_cuda_f(dx);
    switch (act) {
    case SQ_ACT_NONE:
        if (pdx == pdy) return SQ_OK;
        return sq_cuda_ok(cudaMemcpyAsync(pdx, pdy, (size_t)n * sizeof(float),
                                          cudaMemcpyDeviceToDevice, c->stream),
                          what, st);
    case SQ_ACT_RELU:
        act_bwd_kernel<SQ_ACT_RELU><<<nb, PW_BLOCK, 0, c->stream>>>(n, px, pdy, pdx);
        break;
    case SQ_ACT_SIGMOID:
        act_bwd_kernel<SQ_ACT_SIGMOID><<<nb, PW_BLOCK, 0, c->stream>>>(n, px, pdy, pdx);
        break;
    case SQ_ACT_SWISH:
        act_bwd_kernel<SQ_ACT_SWISH><<<nb, PW_BLOCK, 0, c->stream>>>(n, px, pdy, pdx);
        break;
    default: return sq_fail(st, SQ_ERR_RANGE, "cuda: %s: unknown activation %d", what, (int)act);
    }
    return sq_cuda_launch_ok(what, st);
}

// ---- PReLU ------------------------------------------------------------------------------------

static sq_code prelu_fwd(sq_backend *be, sq_shape5 s, sq_view x, sq_view alpha, sq_view y,
                         sq_status *st) {
    char what[96];
    shape_what(what, sizeof what, "prelu_fwd", s);
    SQ_TRY(sq_shape5_check(s, "prelu_fwd", st));
    const int64_t n = sq_shape5_numel(s), S = plane_size(s), planes = (int64_t)s.n * s.c;
    SQ_TRY(check_arg(x, n, 1, what, "x", st));
    SQ_TRY(check_arg(alpha, s.c, 1, what, "alpha", st));
    SQ_TRY(check_arg(y, n, 1, what, "y", st));
    sq_cuda *c = sq_cuda_of(be);
    dim3 grid;
    SQ_TRY(plane_grid(pw_nchunks(S), planes, what, &grid, st));
    prelu_fwd_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(S, s.c, planes, sq_cuda_f(x),
                                                       sq_cuda_f(alpha), sq_cuda_f(y));
    return sq_cuda_launch_ok(what, st);
}

static sq_code prelu_bwd(sq_backend *be, sq_shape5 s, sq_view x, sq_view alpha, sq_view dy,
                         sq_view dx, sq_view dalpha, sq_status *st) {
    char what[96];
    shape_what(what, sizeof what, "prelu_bwd", s);
    SQ_TRY(sq_shape5_check(s, "prelu_bwd", st));
    const int64_t n = sq_shape5_numel(s), S = plane_size(s), planes = (int64_t)s.n * s.c;
    SQ_TRY(check_arg(x, n, 1, what, "x", st));
    SQ_TRY(check_arg(alpha, s.c, 1, what, "alpha", st));
    SQ_TRY(check_arg(dy, n, 1, what, "dy", st));
    SQ_TRY(check_arg(dx, n, 0, what, "dx", st));
    SQ_TRY(check_arg(dalpha, s.c, 0, what, "dalpha", st));
    if (!dx.buf && !dalpha.buf) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    const int64_t nchunks = pw_nchunks(S);
    dim3 grid;
    SQ_TRY(plane_grid(nchunks, planes, what, &grid, st));
    double *part = NULL;
    if (dalpha.buf) {
        void *ws = NULL;
        SQ_TRY(sq_cuda_workspace(c, (size_t)(planes * nchunks) * sizeof(double), &ws, st));
        part = (double *)ws;
    }
    prelu_bwd_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(
        S, s.c, planes, sq_cuda_f(x), sq_cuda_f(alpha), sq_cuda_f(dy), sq_cuda_f(dx), part);
    SQ_TRY(sq_cuda_launch_ok(what, st));
    if (!part) return SQ_OK;
    prelu_finish_kernel<<<(unsigned)((s.c + PW_BLOCK - 1) / PW_BLOCK), PW_BLOCK, 0, c->stream>>>(
        part, s.n, s.c, nchunks, sq_cuda_f(dalpha));
    return sq_cuda_launch_ok(what, st);
}

// ---- global average pooling, channel scaling --------------------------------------------------

static sq_code gap_fwd(sq_backend *be, sq_shape5 s, sq_view x, sq_view y, sq_status *st) {
    char what[96];
    shape_what(what, sizeof what, "gap_fwd", s);
    SQ_TRY(sq_shape5_check(s, "gap_fwd", st));
    const int64_t n = sq_shape5_numel(s), S = plane_size(s), planes = (int64_t)s.n * s.c;
    SQ_TRY(check_arg(x, n, 1, what, "x", st));
    SQ_TRY(check_arg(y, planes, 1, what, "y", st));
    sq_cuda *c = sq_cuda_of(be);
    const int64_t nchunks = pw_nchunks(S);
    dim3 grid;
    SQ_TRY(plane_grid(nchunks, planes, what, &grid, st));
    if (nchunks == 1) { // one block per plane writes the mean itself
        gap_partial_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(S, planes, sq_cuda_f(x), NULL,
                                                             sq_cuda_f(y));
        return sq_cuda_launch_ok(what, st);
    }
    void *ws = NULL;
    SQ_TRY(sq_cuda_workspace(c, (size_t)(planes * nchunks) * sizeof(double), &ws, st));
    double *part = (double *)ws;
    gap_partial_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(S, planes, sq_cuda_f(x), part, NULL);
    SQ_TRY(sq_cuda_launch_ok(what, st));
    plane_finish_kernel<<<(unsigned)((planes + PW_BLOCK - 1) / PW_BLOCK), PW_BLOCK, 0, c->stream>>>(
        part, planes, nchunks, PW_PLANE_MEAN, S, sq_cuda_f(y));
    return sq_cuda_launch_ok(what, st);
}

static sq_code gap_bwd(sq_backend *be, sq_shape5 s, sq_view dy, sq_view dx, sq_status *st) {
    char what[96];
    shape_what(what, sizeof what, "gap_bwd", s);
    SQ_TRY(sq_shape5_check(s, "gap_bwd", st));
    const int64_t n = sq_shape5_numel(s), S = plane_size(s), planes = (int64_t)s.n * s.c;
    SQ_TRY(check_arg(dy, planes, 1, what, "dy", st));
    SQ_TRY(check_arg(dx, n, 1, what, "dx", st));
    sq_cuda *c = sq_cuda_of(be);
    dim3 grid;
    SQ_TRY(plane_grid(pw_nchunks(S), planes, what, &grid, st));
    gap_bwd_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(S, planes, sq_cuda_f(dy), sq_cuda_f(dx));
    return sq_cuda_launch_ok(what, st);
}

static sq_code chscale_fwd(sq_backend *be, sq_shape5 s, sq_view x, sq_view scale, sq_view y,
                           sq_status *st) {
    char what[96];
    shape_what(what, sizeof what, "chscale_fwd", s);
    SQ_TRY(sq_shape5_check(s, "chscale_fwd", st));
    const int64_t n = sq_shape5_numel(s), S = plane_size(s), planes = (int64_t)s.n * s.c;
    SQ_TRY(check_arg(x, n, 1, what, "x", st));
    SQ_TRY(check_arg(scale, planes, 1, what, "scale", st));
    SQ_TRY(check_arg(y, n, 1, what, "y", st));
    sq_cuda *c = sq_cuda_of(be);
    dim3 grid;
    SQ_TRY(plane_grid(pw_nchunks(S), planes, what, &grid, st));
    chscale_fwd_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(S, planes, sq_cuda_f(x), sq_cuda_f(scale),
                                                         sq_cuda_f(y));
    return sq_cuda_launch_ok(what, st);
}

static sq_code chscale_bwd(sq_backend *be, sq_shape5 s, sq_view x, sq_view scale, sq_view dy,
                           sq_view dx, sq_view dscale, sq_status *st) {
    char what[96];
    shape_what(what, sizeof what, "chscale_bwd", s);
    SQ_TRY(sq_shape5_check(s, "chscale_bwd", st));
    const int64_t n = sq_shape5_numel(s), S = plane_size(s), planes = (int64_t)s.n * s.c;
    SQ_TRY(check_arg(x, n, 1, what, "x", st));
    SQ_TRY(check_arg(scale, planes, 1, what, "scale", st));
    SQ_TRY(check_arg(dy, n, 1, what, "dy", st));
    SQ_TRY(check_arg(dx, n, 0, what, "dx", st));
    SQ_TRY(check_arg(dscale, planes, 0, what, "dscale", st));
    if (!dx.buf && !dscale.buf) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    const int64_t nchunks = pw_nchunks(S);
    dim3 grid;
    SQ_TRY(plane_grid(nchunks, planes, what, &grid, st));
    double *part = NULL;
    float *direct = NULL;
    if (dscale.buf && nchunks == 1) {
        direct = sq_cuda_f(dscale);
    } else if (dscale.buf) {
        void *ws = NULL;
        SQ_TRY(sq_cuda_workspace(c, (size_t)(planes * nchunks) * sizeof(double), &ws, st));
        part = (double *)ws;
    }
    chscale_bwd_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(
        S, planes, sq_cuda_f(x), sq_cuda_f(scale), sq_cuda_f(dy), sq_cuda_f(dx), part, direct);
    SQ_TRY(sq_cuda_launch_ok(what, st));
    if (!part) return SQ_OK;
    plane_finish_kernel<<<(unsigned)((planes + PW_BLOCK - 1) / PW_BLOCK), PW_BLOCK, 0, c->stream>>>(
        part, planes, nchunks, PW_PLANE_SUM, S, sq_cuda_f(dscale));
    return sq_cuda_launch_ok(what, st);
}

// ---- max pooling --------------------------------------------------------------------------

static void pool_what(char *what, size_t size, const char *op, const sq_pool3d *p) {
    char sh[64];
    snprintf(what, size, "%s %s k%dx%dx%d s%dx%dx%d p%dx%dx%d%s", op,
             sq_cuda_shape_str(p->in, sh, sizeof sh), p->k[0], p->k[1], p->k[2], p->stride[0],
             p->stride[1], p->stride[2], p->pad[0], p->pad[1], p->pad[2],
             p->ceil_mode ? " ceil" : "");
}

// Shape checks shared by forward and backward; *S, *So: plane sizes (int-indexable).
static sq_code pool_check(const sq_pool3d *p, const char *what, int64_t *S, int64_t *So,
                          sq_status *st) {
    SQ_TRY(sq_pool3d_check(p, st));
    const sq_shape5 o = sq_pool3d_out(p);
    *S = plane_size(p->in);
    *So = plane_size(o);
    if (*S > 0x7fffffff || *So > 0x7fffffff)
        return sq_fail(st, SQ_ERR_RANGE, "cuda: %s: plane too large", what);
    return SQ_OK;
}

static sq_code maxpool3d_fwd(sq_backend *be, const sq_pool3d *p, sq_view x, sq_view y,
                             sq_status *st) {
    char what[160];
    pool_what(what, sizeof what, "maxpool3d_fwd", p);
    int64_t S = 0, So = 0;
    SQ_TRY(pool_check(p, what, &S, &So, st));
    const int64_t planes = (int64_t)p->in.n * p->in.c;
    SQ_TRY(check_arg(x, planes * S, 1, what, "x", st));
    SQ_TRY(check_arg(y, planes * So, 1, what, "y", st));
    sq_cuda *c = sq_cuda_of(be);
    dim3 grid;
    SQ_TRY(plane_grid((So + PW_BLOCK - 1) / PW_BLOCK, planes, what, &grid, st));
    pool_argmax_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(pw_pool_geom_of(p), planes, sq_cuda_f(x),
                                                         sq_cuda_f(y), NULL);
    return sq_cuda_launch_ok(what, st);
}

// Backward in two gathers: the first maximum of every window into the workspace, then each dx
// element sums the dy of the windows that chose it.
static sq_code maxpool3d_bwd(sq_backend *be, const sq_pool3d *p, sq_view x, sq_view dy, sq_view dx,
                             sq_status *st) {
    char what[160];
    pool_what(what, sizeof what, "maxpool3d_bwd", p);
    int64_t S = 0, So = 0;
    SQ_TRY(pool_check(p, what, &S, &So, st));
    const int64_t planes = (int64_t)p->in.n * p->in.c;
    SQ_TRY(check_arg(x, planes * S, 1, what, "x", st));
    SQ_TRY(check_arg(dy, planes * So, 1, what, "dy", st));
    SQ_TRY(check_arg(dx, planes * S, 1, what, "dx", st));
    sq_cuda *c = sq_cuda_of(be);
    void *ws = NULL;
    SQ_TRY(sq_cuda_workspace(c, (size_t)(planes * So) * sizeof(int), &ws, st));
    int *arg = (int *)ws;
    const pw_pool_geom g = pw_pool_geom_of(p);
    dim3 grid;
    SQ_TRY(plane_grid((So + PW_BLOCK - 1) / PW_BLOCK, planes, what, &grid, st));
    pool_argmax_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(g, planes, sq_cuda_f(x), NULL, arg);
    SQ_TRY(sq_cuda_launch_ok(what, st));
    SQ_TRY(plane_grid((S + PW_BLOCK - 1) / PW_BLOCK, planes, what, &grid, st));
    pool_gather_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(g, planes, arg, sq_cuda_f(dy),
                                                         sq_cuda_f(dx));
    return sq_cuda_launch_ok(what, st);
}

// ---- nearest resize -----------------------------------------------------------------------

static sq_code resize_check(const sq_resize3d *p, const char *op, char *what, size_t size,
                            int64_t *S, int64_t *So, sq_status *st) {
    char sh[64];
    snprintf(what, size, "%s %s -> %dx%dx%d", op, sq_cuda_shape_str(p->in, sh, sizeof sh),
             p->out[0], p->out[1], p->out[2]);
    SQ_TRY(sq_resize3d_check(p, st));
    *S = plane_size(p->in);
    *So = (int64_t)p->out[0] * p->out[1] * p->out[2];
    if (*S > 0x7fffffff || *So > 0x7fffffff)
        return sq_fail(st, SQ_ERR_RANGE, "cuda: %s: plane too large", what);
    return SQ_OK;
}

static sq_code resize3d_fwd(sq_backend *be, const sq_resize3d *p, sq_view x, sq_view y,
                            sq_status *st) {
    char what[160];
    int64_t S = 0, So = 0;
    SQ_TRY(resize_check(p, "resize3d_fwd", what, sizeof what, &S, &So, st));
    const int64_t planes = (int64_t)p->in.n * p->in.c;
    SQ_TRY(check_arg(x, planes * S, 1, what, "x", st));
    SQ_TRY(check_arg(y, planes * So, 1, what, "y", st));
    sq_cuda *c = sq_cuda_of(be);
    dim3 grid;
    SQ_TRY(plane_grid((So + PW_BLOCK - 1) / PW_BLOCK, planes, what, &grid, st));
    resize_fwd_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(pw_resize_geom_of(p), planes, sq_cuda_f(x),
                                                        sq_cuda_f(y));
    return sq_cuda_launch_ok(what, st);
}

static sq_code resize3d_bwd(sq_backend *be, const sq_resize3d *p, sq_view dy, sq_view dx,
                            sq_status *st) {
    char what[160];
    int64_t S = 0, So = 0;
    SQ_TRY(resize_check(p, "resize3d_bwd", what, sizeof what, &S, &So, st));
    const int64_t planes = (int64_t)p->in.n * p->in.c;
    SQ_TRY(check_arg(dy, planes * So, 1, what, "dy", st));
    SQ_TRY(check_arg(dx, planes * S, 1, what, "dx", st));
    sq_cuda *c = sq_cuda_of(be);
    dim3 grid;
    SQ_TRY(plane_grid((S + PW_BLOCK - 1) / PW_BLOCK, planes, what, &grid, st));
    resize_bwd_kernel<<<grid, PW_BLOCK, 0, c->stream>>>(pw_resize_geom_of(p), planes, sq_cuda_f(dy),
                                                        sq_cuda_f(dx));
    return sq_cuda_launch_ok(what, st);
}

// ---- fast normalised fusion -----------------------------------------------------------------

static sq_code fuse_check(sq_shape5 s, int k, const char *op, char *what, size_t size,
                          sq_status *st) {
    char sh[64];
    snprintf(what, size, "%s %s k=%d", op, sq_cuda_shape_str(s, sh, sizeof sh), k);
    SQ_TRY(sq_shape5_check(s, op, st));
    if (k < 1 || k > PW_FUSE_KMAX)
        return sq_fail(st, SQ_ERR_RANGE, "%s: %d inputs, expected 1..%d", op, k, PW_FUSE_KMAX);
    return SQ_OK;
}

#define PW_FUSE_CASES(LAUNCH)                                                                      \
    switch (k) {                                                                                   \
    case 1: LAUNCH(1); break;                                                                      \
    case 2: LAUNCH(2); break;                                                                      \
    case 3: LAUNCH(3); break;                                                                      \
    case 4: LAUNCH(4); break;                                                                      \
    case 5: LAUNCH(5); break;                                                                      \
    case 6: LAUNCH(6); break;                                                                      \
    case 7: LAUNCH(7); break;                                                                      \
    default: LAUNCH(8); break;                                                                     \
    }

static sq_code fuse_fwd(sq_backend *be, sq_shape5 s, int k, const sq_view *xs, sq_view w, sq_view y,
                        sq_status *st) {
    char what[96];
    SQ_TRY(fuse_check(s, k, "fuse_fwd", what, sizeof what, st));
    const int64_t n = sq_shape5_numel(s);
    pw_cptrs px = {};
    for (int i = 0; i < k; i++) {
        SQ_TRY(check_arg(xs[i], n, 1, what, "xs[i]", st));
        px.p[i] = sq_cuda_f(xs[i]);
    }
    SQ_TRY(check_arg(w, k, 1, what, "w", st));
    SQ_TRY(check_arg(y, n, 1, what, "y", st));
    sq_cuda *c = sq_cuda_of(be);
    const unsigned nb = elem_blocks(c, n);
    const float *pw = sq_cuda_f(w);
    float *py = sq_cuda_f(y);
#define PW_FUSE_FWD(K) fuse_fwd_kernel<K><<<nb, PW_BLOCK, 0, c->stream>>>(n, px, pw, py)
    PW_FUSE_CASES(PW_FUSE_FWD)
#undef PW_FUSE_FWD
    return sq_cuda_launch_ok(what, st);
}

static sq_code fuse_bwd(sq_backend *be, sq_shape5 s, int k, const sq_view *xs, sq_view w,
                        sq_view dy, sq_view *dxs, sq_view dw, sq_status *st) {
    char what[96];
    SQ_TRY(fuse_check(s, k, "fuse_bwd", what, sizeof what, st));
    const int64_t n = sq_shape5_numel(s);
    pw_cptrs px = {};
    pw_ptrs pdx = {};
    int any_dx = 0;
    for (int i = 0; i < k; i++) {
        SQ_TRY(check_arg(xs[i], n, dw.buf != NULL, what, "xs[i]", st));
        SQ_TRY(check_arg(dxs ? dxs[i] : sq_view_none(), n, 0, what, "dxs[i]", st));
        px.p[i] = sq_cuda_f(xs[i]);
        pdx.p[i] = dxs ? sq_cuda_f(dxs[i]) : NULL;
        any_dx |= pdx.p[i] != NULL;
    }
    SQ_TRY(check_arg(w, k, 1, what, "w", st));
    SQ_TRY(check_arg(dy, n, 1, what, "dy", st));
    SQ_TRY(check_arg(dw, k, 0, what, "dw", st));
    if (!any_dx && !dw.buf) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    unsigned nb = 0;
    SQ_TRY(flat_blocks(n, what, &nb, st));
    double *part = NULL;
    if (dw.buf) {
        void *ws = NULL;
        SQ_TRY(sq_cuda_workspace(c, (size_t)k * nb * sizeof(double), &ws, st));
        part = (double *)ws;
    }
    const float *pw = sq_cuda_f(w), *pdy = sq_cuda_f(dy);
#define PW_FUSE_BWD(K) fuse_bwd_kernel<K><<<nb, PW_BLOCK, 0, c->stream>>>(n, px, pw, pdy, pdx, part)
    PW_FUSE_CASES(PW_FUSE_BWD)
#undef PW_FUSE_BWD
    SQ_TRY(sq_cuda_launch_ok(what, st));
    if (!part) return SQ_OK;
    fuse_finish_kernel<<<1, PW_BLOCK, 0, c->stream>>>(part, nb, k, pw, sq_cuda_f(dw));
    return sq_cuda_launch_ok(what, st);
}

// ---- add, axpy, scale, sumsq --------------------------------------------------------------------

static sq_code add(sq_backend *be, int64_t n, sq_view a, sq_view b, sq_view y, sq_status *st) {
    char what[64];
    snprintf(what, sizeof what, "add n=%lld", (long long)n);
    SQ_TRY(check_count(n, what, st));
    SQ_TRY(check_arg(a, n, 1, what, "a", st));
    SQ_TRY(check_arg(b, n, 1, what, "b", st));
    SQ_TRY(check_arg(y, n, 1, what, "y", st));
    if (n == 0) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    add_kernel<<<elem_blocks(c, n), PW_BLOCK, 0, c->stream>>>(n, sq_cuda_f(a), sq_cuda_f(b),
                                                              sq_cuda_f(y));
    return sq_cuda_launch_ok(what, st);
}

static sq_code axpy(sq_backend *be, int64_t n, float alpha, sq_view x, sq_view y, sq_status *st) {
    char what[64];
    snprintf(what, sizeof what, "axpy n=%lld", (long long)n);
    SQ_TRY(check_count(n, what, st));
    SQ_TRY(check_arg(x, n, 1, what, "x", st));
    SQ_TRY(check_arg(y, n, 1, what, "y", st));
    if (n == 0) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    axpy_kernel<<<elem_blocks(c, n), PW_BLOCK, 0, c->stream>>>(n, alpha, sq_cuda_f(x),
                                                               sq_cuda_f(y));
    return sq_cuda_launch_ok(what, st);
}

static sq_code scale(sq_backend *be, int64_t n, float alpha, sq_view x, sq_view y, sq_status *st) {
    char what[64];
    snprintf(what, sizeof what, "scale n=%lld", (long long)n);
    SQ_TRY(check_count(n, what, st));
    SQ_TRY(check_arg(x, n, 1, what, "x", st));
    SQ_TRY(check_arg(y, n, 1, what, "y", st));
    if (n == 0) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    scale_kernel<<<elem_blocks(c, n), PW_BLOCK, 0, c->stream>>>(n, alpha, sq_cuda_f(x),
                                                                sq_cuda_f(y));
    return sq_cuda_launch_ok(what, st);
}

static sq_code sumsq(sq_backend *be, int64_t n, sq_view x, sq_view out, sq_status *st) {
    char what[64];
    snprintf(what, sizeof what, "sumsq n=%lld", (long long)n);
    SQ_TRY(check_count(n, what, st));
    SQ_TRY(check_arg(x, n, 1, what, "x", st));
    SQ_TRY(check_arg(out, 1, 1, what, "out", st));
    sq_cuda *c = sq_cuda_of(be);
    if (n == 0)
        return sq_cuda_ok(cudaMemsetAsync(sq_cuda_f(out), 0, sizeof(float), c->stream), what, st);
    unsigned nb = 0;
    SQ_TRY(flat_blocks(n, what, &nb, st));
    void *ws = NULL;
    SQ_TRY(sq_cuda_workspace(c, (size_t)nb * sizeof(double), &ws, st));
    double *part = (double *)ws;
    sumsq_partial_kernel<<<nb, PW_BLOCK, 0, c->stream>>>(n, sq_cuda_f(x), part);
    SQ_TRY(sq_cuda_launch_ok(what, st));
    flat_finish_kernel<<<1, PW_BLOCK, 0, c->stream>>>(part, nb, PW_FLAT_SUMSQ, n, sq_cuda_f(out));
    return sq_cuda_launch_ok(what, st);
}

// ---- MSE ----------------------------------------------------------------------------------------

static sq_code mse_fwd(sq_backend *be, int64_t n, sq_view pred, sq_view target, sq_view loss,
                       sq_status *st) {
    char what[64];
    snprintf(what, sizeof what, "mse_fwd n=%lld", (long long)n);
    if (n < 1) return sq_fail(st, SQ_ERR_RANGE, "mse_fwd: %lld elements", (long long)n);
    SQ_TRY(check_arg(pred, n, 1, what, "pred", st));
    SQ_TRY(check_arg(target, n, 1, what, "target", st));
    SQ_TRY(check_arg(loss, 1, 1, what, "loss", st));
    sq_cuda *c = sq_cuda_of(be);
    unsigned nb = 0;
    SQ_TRY(flat_blocks(n, what, &nb, st));
    void *ws = NULL;
    SQ_TRY(sq_cuda_workspace(c, (size_t)nb * sizeof(double), &ws, st));
    double *part = (double *)ws;
    mse_partial_kernel<<<nb, PW_BLOCK, 0, c->stream>>>(n, sq_cuda_f(pred), sq_cuda_f(target), part);
    SQ_TRY(sq_cuda_launch_ok(what, st));
    flat_finish_kernel<<<1, PW_BLOCK, 0, c->stream>>>(part, nb, PW_FLAT_MSE, n, sq_cuda_f(loss));
    return sq_cuda_launch_ok(what, st);
}

static sq_code mse_bwd(sq_backend *be, int64_t n, sq_view pred, sq_view target, float scale_,
                       sq_view dpred, sq_status *st) {
    char what[64];
    snprintf(what, sizeof what, "mse_bwd n=%lld", (long long)n);
    if (n < 1) return sq_fail(st, SQ_ERR_RANGE, "mse_bwd: %lld elements", (long long)n);
    SQ_TRY(check_arg(pred, n, 1, what, "pred", st));
    SQ_TRY(check_arg(target, n, 1, what, "target", st));
    SQ_TRY(check_arg(dpred, n, 1, what, "dpred", st));
    sq_cuda *c = sq_cuda_of(be);
    mse_bwd_kernel<<<elem_blocks(c, n), PW_BLOCK, 0, c->stream>>>(
        n, pw_mse_grad_factor(scale_, n), sq_cuda_f(pred), sq_cuda_f(target), sq_cuda_f(dpred));
    return sq_cuda_launch_ok(what, st);
}

// ---- vtable -----------------------------------------------------------------------------------

extern "C" void sq_cuda_pointwise_fill(sq_backend *be) {
    be->act_fwd = act_fwd;
    be->act_bwd = act_bwd;
    be->prelu_fwd = prelu_fwd;
    be->prelu_bwd = prelu_bwd;
    be->gap_fwd = gap_fwd;
    be->gap_bwd = gap_bwd;
    be->chscale_fwd = chscale_fwd;
    be->chscale_bwd = chscale_bwd;
    be->maxpool3d_fwd = maxpool3d_fwd;
    be->maxpool3d_bwd = maxpool3d_bwd;
    be->resize3d_fwd = resize3d_fwd;
    be->resize3d_bwd = resize3d_bwd;
    be->fuse_fwd = fuse_fwd;
    be->fuse_bwd = fuse_bwd;
    be->add = add;
    be->axpy = axpy;
    be->scale = scale;
    be->sumsq = sumsq;
    be->mse_fwd = mse_fwd;
    be->mse_bwd = mse_bwd;
}
