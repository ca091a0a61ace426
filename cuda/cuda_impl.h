/* cuda_impl.h — private to cuda/: the CUDA backend's state, buffer type, error helpers and the
 * entry points each file implements. Included by the .c and the .cu files alike (C ABI).
 *
 * Files: cuda_backend.c (creation, arena, copies, events, vtable), conv_cudnn.c (dense and grouped
 * convolutions through cuDNN, per-shape algorithm cache; cuBLAS where a 1x1x1 conv is a GEMM),
 * dwconv.cu (our depthwise kernels), bn.cu (BatchNorm), pointwise.cu (activations, PReLU, GAP,
 * channel scale, pooling, resize, fusion, add/axpy/scale, sumsq, MSE), adam.cu (fused Adam).
 *
 * Rules every kernel here follows:
 *  - ops are enqueued on c->stream only; no host synchronisation inside an op except where the
 *    contract needs a value on the host (none today);
 *  - every CUDA/cuDNN/cuBLAS return code is checked and turned into one message naming the op,
 *    its shape and the library's error string (sq_cuda_ok & co.); kernel launches are checked with
 *    sq_cuda_launch_ok;
 *  - no floating-point atomics: every reduction runs in a fixed order, so a run is bitwise
 *    reproducible on the same device;
 *  - accumulations that the CPU backend does in double (BN statistics, sumsq, GAP, MSE) are done in
 *    double here too.
 */
#ifndef SEGQA_CUDA_IMPL_H
#define SEGQA_CUDA_IMPL_H

#include "cuda/cuda_backend.h"
#include "nn/backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_cuda_arena sq_cuda_arena; /* arena.c / arena.h */
typedef struct sq_cuda_conv sq_cuda_conv;   /* conv_cudnn.c: descriptors + algorithm cache */

struct sq_buf {
    char *d;      /* device memory, 256-byte aligned */
    size_t bytes; /* what the caller asked for */
    size_t cap;   /* the arena block behind it */
};

typedef struct sq_cuda {
    int device;
    int deterministic, allow_tf32;
    int sm_count;
    size_t smem_per_block;
    char name[256];
    cudaStream_t stream;
    cudaStream_t copy_stream; /* host-to-device input copies (copy_stream.c) */
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    sq_cuda_arena *arena;
    sq_cuda_conv *conv;
    sq_buf *ws;    /* workspace (cuDNN, reductions), grown on demand through the arena */
    sq_buf *stats; /* synchronised-BN statistics handed to sq_bn_sync.sum, grown on demand */
} sq_cuda;

static inline sq_cuda *sq_cuda_of(sq_backend *be) {
    return (sq_cuda *)be->impl;
}
/* Device pointer of a view (NULL for a none view). */
static inline float *sq_cuda_f(sq_view v) {
    return v.buf ? (float *)(void *)v.buf->d + v.off : NULL;
}

/* --- errors (cuda_backend.c) ----------------------------------------------------------------- */
/* SQ_OK, or SQ_ERR_DEVICE with "cuda: <what>: <error name>: <error string>". `what` names the op
 * and its shape, e.g. "dwconv3d_fwd 2x32x28x80x80 k3". */
sq_code sq_cuda_ok(cudaError_t e, const char *what, sq_status *st);
sq_code sq_cudnn_ok(cudnnStatus_t s, const char *what, sq_status *st);
sq_code sq_cublas_ok(cublasStatus_t s, const char *what, sq_status *st);
/* After a kernel launch: cudaGetLastError() through sq_cuda_ok. */
sq_code sq_cuda_launch_ok(const char *what, sq_status *st);
/* "NxCxDxHxW" into buf (for messages). */
const char *sq_cuda_shape_str(sq_shape5 s, char *buf, size_t n);

/* --- memory (cuda_backend.c) ----------------------------------------------------------------- */
/* A device workspace of at least `bytes`, valid until the next call (stream-ordered reuse is safe:
 * every op runs on c->stream). */
sq_code sq_cuda_workspace(sq_cuda *c, size_t bytes, void **ws, sq_status *st);
/* The statistics buffer for synchronised BN, at least `bytes`. */
sq_code sq_cuda_stats_buf(sq_cuda *c, size_t bytes, sq_buf **out, sq_status *st);
/* Range check of a view of `n` floats. */
sq_code sq_cuda_check_view(sq_view v, int64_t n, const char *what, sq_status *st);
/* Whether v is present and holds n floats from its offset (sq_cuda_check_view without the
 * message, for hot paths that format one only on failure). */
int sq_cuda_view_fits(sq_view v, int64_t n);

/* --- dense / grouped convolution (conv_cudnn.c) ---------------------------------------------- */
sq_code sq_cuda_conv_init(sq_cuda *c, sq_status *st);
void sq_cuda_conv_destroy(sq_cuda *c);
sq_code sq_cuda_conv3d_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                           sq_view y, sq_status *st);
sq_code sq_cuda_conv3d_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                           sq_view dx, sq_view dw, sq_view db, sq_status *st);

/* --- depthwise convolution (dwconv.cu) -------------------------------------------------------- */
sq_code sq_cuda_dwconv3d_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                             sq_view y, sq_status *st);
sq_code sq_cuda_dwconv3d_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                             sq_view dx, sq_view dw, sq_view db, sq_status *st);

/* --- BatchNorm (bn.cu) ------------------------------------------------------------------------ */
sq_code sq_cuda_bn_fwd(sq_backend *be, const sq_bn *p, sq_view x, sq_view gamma, sq_view beta,
                       sq_view running_mean, sq_view running_var, sq_view residual, sq_view y,
                       sq_view save_mean, sq_view save_invstd, sq_status *st);
sq_code sq_cuda_bn_bwd(sq_backend *be, const sq_bn *p, sq_view x, sq_view gamma, sq_view beta,
                       sq_view save_mean, sq_view save_invstd, sq_view dy, sq_view dx,
                       sq_view dgamma, sq_view dbeta, sq_status *st);

/* --- the input pipeline's copy stream and pinned host memory (copy_stream.c) --------------- */
sq_code sq_cuda_copy_stream_create(sq_cuda *c, sq_status *st);
void sq_cuda_copy_stream_destroy(sq_cuda *c);
void sq_cuda_copy_fill(sq_backend *be); /* host_alloc/free, upload_async, copy events, event_sync */

/* --- the rest (pointwise.cu) and Adam (adam.cu): fill the vtable entries they implement ------- */
void sq_cuda_pointwise_fill(sq_backend *be); /* act, prelu, gap, chscale, maxpool, resize, fuse,
                                                add, axpy, scale, sumsq, mse */
sq_code sq_cuda_adam(sq_backend *be, const sq_adam *p, int64_t n, sq_view params, sq_view grads,
                     sq_view m, sq_view v, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
