/* backend.h — the compute backend interface: every op the network needs, forward and backward.
 *
 * A backend is one struct of function pointers (sq_backend) plus opaque buffers (sq_buf) that the
 * backend owns: host memory for the CPU backend (src/nn/cpu), device memory for the CUDA backend
 * (cuda/). The model calls only what is declared here and never includes a backend's own headers.
 *
 * Conventions (they hold for every op below):
 *  - Tensors are float32, contiguous NCDHW. An argument is a view (sq_view): a buffer plus an
 *    offset counted in float elements. A view whose .buf is NULL means "absent" where an argument
 *    is documented as optional (e.g. no bias, no dx wanted).
 *  - Ops are enqueued on the backend's single stream, in order. They may run asynchronously (CUDA):
 *    host memory passed to upload/download must stay valid until sync(); download() itself syncs.
 *    The CPU backend runs everything synchronously.
 *  - Gradients: gradients of INPUTS / activations (dx, dxs[i], ds, ...) are OVERWRITTEN.
 *    Gradients of PARAMETERS (dw, db, dgamma, dbeta, dalpha, fusion weights) are ACCUMULATED
 *    (+=), so that a flat gradient buffer can be zeroed once per step with fill() and then
 *    filled by the backward pass. Where a tensor feeds several consumers, sum the dx's with add().
 *  - Outputs never alias inputs unless the op says so (add() allows y == a or y == b).
 *  - Workspaces, oneDNN/cuDNN primitives, plans and layout reorders are cached per shape inside
 *    the backend; the caller passes only shapes and views.
 *  - Every op returns SQ_OK or a failure code with `st` filled (bad shape, out of memory, ...).
 */
#ifndef SEGQA_NN_BACKEND_H
#define SEGQA_NN_BACKEND_H

#include "core/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque, backend-owned memory. */
typedef struct sq_buf sq_buf;

/* A float32 tensor inside a buffer: `off` is counted in floats (not bytes). */
typedef struct sq_view {
    sq_buf *buf;
    size_t off;
} sq_view;

static inline sq_view sq_view_of(sq_buf *buf, size_t off) {
    sq_view v = {buf, off};
    return v;
}
static inline sq_view sq_view_none(void) {
    sq_view v = {NULL, 0};
    return v;
}

/* A 5D NCDHW shape. */
typedef struct sq_shape5 {
    int n, c, d, h, w;
} sq_shape5;

static inline int64_t sq_shape5_numel(sq_shape5 s) {
    return (int64_t)s.n * s.c * s.d * s.h * s.w;
}

/* 3D convolution (dense or depthwise). Axes in arrays are ordered (D, H, W).
 * Output extent per axis: o = (i + 2*pad - k) / stride + 1 (floor, as PyTorch). */
typedef struct sq_conv3d {
    sq_shape5 in; /* x is (N, Cin, D, H, W) */
    int cout;     /* dense: output channels; depthwise: must equal in.c */
    int k[3];     /* kernel size per axis */
    int stride[3];
    int pad[3]; /* symmetric zero padding per axis */
} sq_conv3d;

/* The output shape of a convolution (no validation). */
sq_shape5 sq_conv3d_out(const sq_conv3d *p);

typedef enum sq_act {
    SQ_ACT_NONE = 0,
    SQ_ACT_RELU,
    SQ_ACT_SIGMOID,
    SQ_ACT_SWISH, /* x * sigmoid(x) */
} sq_act;

/* Synchronised BatchNorm: in training, the per-channel sums behind the batch statistics (forward:
 * count and sum, then the sum of squared deviations from the global mean; backward: the sums of
 * g' and g' * xhat) are summed over a group of processes by this callback before they are used, so
 * every rank normalises with the statistics of the whole group's batch (PyTorch SyncBatchNorm).
 * The sums stay in the backend's own memory: `sum` must add the `n` doubles that start `off_bytes`
 * into backend buffer `buf` element-wise over the group, in place, in the same call order on every
 * rank. It is called with every op before it enqueued (not necessarily finished): a device-aware
 * implementation orders itself on be->stream(be) (NCCL); a host one reads the memory through
 * be->buf_native / download after be->sync. The backend calls it outside any parallel region,
 * 2 times per BN forward, once per backward. */
typedef struct sq_backend sq_backend;
typedef struct sq_bn_sync {
    sq_code (*sum)(void *ctx, sq_backend *be, sq_buf *buf, size_t off_bytes, int n, sq_status *st);
    void *ctx;
} sq_bn_sync;

/* BatchNorm3d with PyTorch semantics: normalise with the biased batch variance; running_var is
 * updated with the unbiased one: r = (1 - momentum) * r + momentum * batch_stat. */
typedef struct sq_bn {
    sq_shape5 shape; /* x and y are (N, C, D, H, W); per-channel vectors are (C) */
    float eps;       /* e.g. 1e-3 */
    float momentum;  /* e.g. 0.1 */
    int training;    /* 1: batch statistics (+ running update); 0: running statistics.
                        In training, running_mean and running_var may both be none: no update
                        (finite-difference probes and tests that must not move the statistics). */
    sq_act act;      /* fused activation applied after the affine transform (NONE/RELU/SWISH) */
    const sq_bn_sync *sync; /* NULL: statistics of this process's batch only */
} sq_bn;

/* Max pooling. Output extent per axis (PyTorch):
 *   floor mode: o = (i + 2p - k) / s + 1
 *   ceil mode:  o = ceil((i + 2p - k) / s) + 1, minus 1 if (o - 1) * s >= i + p
 * Padding positions never win; pad <= k/2. Backward routes each dy to the FIRST max (PyTorch). */
typedef struct sq_pool3d {
    sq_shape5 in;
    int k[3];
    int stride[3];
    int pad[3];
    int ceil_mode;
} sq_pool3d;

sq_shape5 sq_pool3d_out(const sq_pool3d *p);

/* Nearest upsampling (or downsampling) to an exact size, PyTorch 'nearest':
 * src index = floor(dst * in / out) per axis. */
typedef struct sq_resize3d {
    sq_shape5 in; /* x is (N, C, D, H, W) */
    int out[3];   /* target (D, H, W); y is (N, C, out[0], out[1], out[2]) */
} sq_resize3d;

/* Adam (PyTorch torch.optim.Adam semantics, L2 weight decay added to the gradient, bias-corrected):
 *   g = grad + weight_decay * p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)                          */
typedef struct sq_adam {
    float lr, beta1, beta2, eps, weight_decay;
    long step; /* t, 1 for the first update */
} sq_adam;

/* Shape validation shared by every backend (shapes.c): SQ_ERR_RANGE with a message naming the
 * op and the offending axis. */
sq_code sq_conv3d_check(const sq_conv3d *p, int depthwise, sq_status *st);
sq_code sq_pool3d_check(const sq_pool3d *p, sq_status *st);
sq_code sq_resize3d_check(const sq_resize3d *p, sq_status *st);
sq_code sq_shape5_check(sq_shape5 s, const char *op, sq_status *st);
/* Bytes [off, off + bytes) inside a buffer of buf_bytes (buffer NULL: `present` 0). SQ_ERR_RANGE
 * with "<backend>: <what>: ..." otherwise; shared by the backends' copy, fill and view checks. */
sq_code sq_byte_range_check(const char *backend, int present, size_t buf_bytes, size_t off,
                            size_t bytes, const char *what, sq_status *st);

struct sq_backend {
    const char *name;      /* "cpu", "cuda" */
    void *impl;            /* backend private state */
    int device_memory;     /* 1: buffers live in device memory (buf_host is NULL, buf_native is a
                              device pointer); 0: host memory */
    char description[160]; /* e.g. "cpu (2 threads, avx2+fma)", "cuda:0 NVIDIA H200 (sm_90)" */

    /* --- lifetime, memory and stream ------------------------------------------------------ */
    void (*destroy)(sq_backend *be); /* frees the backend and its caches (not live buffers) */

    /* *out = new buffer of `bytes` bytes, 64-byte aligned, zero-filled. */
    sq_code (*buf_alloc)(sq_backend *be, size_t bytes, sq_buf **out, sq_status *st);
    void (*buf_free)(sq_backend *be, sq_buf *buf);         /* NULL is a no-op */
    size_t (*buf_size)(sq_backend *be, const sq_buf *buf); /* bytes */
    /* Host pointer to the buffer's memory, or NULL where it is not host-accessible (CUDA). */
    void *(*buf_host)(sq_backend *be, sq_buf *buf);

    /* Copies; offsets and counts in BYTES. Host memory must stay valid until sync(). */
    sq_code (*upload)(sq_backend *be, sq_buf *dst, size_t dst_off, const void *src, size_t bytes,
                      sq_status *st);
    /* Synchronous: returns when `dst` holds the data. */
    sq_code (*download)(sq_backend *be, void *dst, const sq_buf *src, size_t src_off, size_t bytes,
                        sq_status *st);
    sq_code (*copy)(sq_backend *be, sq_buf *dst, size_t dst_off, const sq_buf *src, size_t src_off,
                    size_t bytes, sq_status *st);
    /* Every byte of [off, off+bytes) set to `value` (0 zeroes floats). */
    sq_code (*fill)(sq_backend *be, sq_buf *buf, size_t off, int value, size_t bytes,
                    sq_status *st);
    /* Wait until every enqueued op has finished. */
    sq_code (*sync)(sq_backend *be, sq_status *st);

    /* --- native handles, for hpc/ (collectives on the backend's own memory and stream) ------ */
    /* The native address of a buffer's memory: host pointer (CPU) or device pointer (CUDA). */
    void *(*buf_native)(sq_backend *be, sq_buf *buf);
    /* The compute stream (cudaStream_t) or NULL where ops are synchronous (CPU). */
    void *(*stream)(sq_backend *be);
    /* Events on the compute stream (cudaEvent_t with timing disabled; the CPU backend hands out
     * non-NULL tokens and its record/wait are no-ops, since its ops are complete on return).
     * record: the event completes when every op enqueued so far has. wait: ops enqueued after
     * this call start only after `ev` (recorded on any stream of the same device) completed. */
    sq_code (*event_create)(sq_backend *be, void **ev, sq_status *st);
    void (*event_destroy)(sq_backend *be, void *ev); /* NULL is a no-op */
    sq_code (*event_record)(sq_backend *be, void *ev, sq_status *st);
    sq_code (*stream_wait)(sq_backend *be, void *ev, sq_status *st);

    /* --- dense 3D convolution (groups = 1) ------------------------------------------------ */
    /* x is (N,Cin,D,H,W), w is (Cout,Cin,kD,kH,kW), b is (Cout) or none, y is (N,Cout,Do,Ho,Wo). */
    sq_code (*conv3d_fwd)(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                          sq_view y, sq_status *st);
    /* dy is (N,Cout,Do,Ho,Wo). dx (overwritten) is like x or none; dw (accumulated) like w or
     * none; db (accumulated) is (Cout) or none. */
    sq_code (*conv3d_bwd)(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                          sq_view dx, sq_view dw, sq_view db, sq_status *st);

    /* --- depthwise 3D convolution (groups = C, cout = C) ------------------------------------ */
    /* x is (N,C,D,H,W), w is (C,1,kD,kH,kW), b is (C) or none, y is (N,C,Do,Ho,Wo).
     * Kernel extent <= 7 and stride <= 8 per axis (SQ_ERR_UNSUPPORTED beyond, CPU backend);
     * k 3 and 5 have unrolled fast paths, any stride is vectorised. */
    sq_code (*dwconv3d_fwd)(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                            sq_view y, sq_status *st);
    /* dx overwritten (or none), dw and db accumulated (or none). */
    sq_code (*dwconv3d_bwd)(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                            sq_view dx, sq_view dw, sq_view db, sq_status *st);

    /* --- BatchNorm (+ fused activation, + fused residual add) ------------------------------ */
    /* x, y, residual are (N,C,D,H,W); gamma, beta, running_mean, running_var, save_mean,
     * save_invstd are (C).  y = act(gamma * (x - mean) * invstd + beta) + residual
     * (residual optional: none = no add). Training: mean/invstd from the batch, running stats
     * updated, save_* written. Inference: running stats used, save_* still written (the running
     * mean and 1/sqrt(running_var + eps)). The gradient of `residual` is dy itself (the caller
     * routes it; bn_bwd does not touch it). */
    sq_code (*bn_fwd)(sq_backend *be, const sq_bn *p, sq_view x, sq_view gamma, sq_view beta,
                      sq_view running_mean, sq_view running_var, sq_view residual, sq_view y,
                      sq_view save_mean, sq_view save_invstd, sq_status *st);
    /* dy is (N,C,D,H,W) (gradient of y, i.e. after the activation). dx overwritten; dgamma and
     * dbeta (C) accumulated (or none). The activation derivative is recomputed from x, gamma,
     * beta and save_*, so nothing else must be kept. p->training selects the batch-statistics
     * backward (1) or the frozen-statistics one (0). */
    sq_code (*bn_bwd)(sq_backend *be, const sq_bn *p, sq_view x, sq_view gamma, sq_view beta,
                      sq_view save_mean, sq_view save_invstd, sq_view dy, sq_view dx,
                      sq_view dgamma, sq_view dbeta, sq_status *st);

    /* --- element-wise activations (any shape: n elements) -------------------------------- */
    /* y = act(x); y may equal x (in place). */
    sq_code (*act_fwd)(sq_backend *be, sq_act act, int64_t n, sq_view x, sq_view y, sq_status *st);
    /* dx = dy * act'(x) (overwritten); x is the forward INPUT. dx may equal dy. */
    sq_code (*act_bwd)(sq_backend *be, sq_act act, int64_t n, sq_view x, sq_view dy, sq_view dx,
                       sq_status *st);

    /* PReLU, one slope per channel: y = x > 0 ? x : alpha[c] * x.
     * x, y are (N,C,D,H,W), alpha is (C). dx overwritten, dalpha accumulated (or none). */
    sq_code (*prelu_fwd)(sq_backend *be, sq_shape5 s, sq_view x, sq_view alpha, sq_view y,
                         sq_status *st);
    sq_code (*prelu_bwd)(sq_backend *be, sq_shape5 s, sq_view x, sq_view alpha, sq_view dy,
                         sq_view dx, sq_view dalpha, sq_status *st);

    /* --- global average pooling and channel scaling (squeeze-excitation) -------------------- */
    /* x is (N,C,D,H,W), y is (N,C) = mean over D,H,W. */
    sq_code (*gap_fwd)(sq_backend *be, sq_shape5 s, sq_view x, sq_view y, sq_status *st);
    /* dy is (N,C); dx (N,C,D,H,W) overwritten with dy / (D*H*W). */
    sq_code (*gap_bwd)(sq_backend *be, sq_shape5 s, sq_view dy, sq_view dx, sq_status *st);
    /* y = x * scale[n,c]; x, y (N,C,D,H,W); scale (N,C). */
    sq_code (*chscale_fwd)(sq_backend *be, sq_shape5 s, sq_view x, sq_view scale, sq_view y,
                           sq_status *st);
    /* dx = dy * scale (overwritten, or none); dscale[n,c] = sum dy*x (overwritten, or none). */
    sq_code (*chscale_bwd)(sq_backend *be, sq_shape5 s, sq_view x, sq_view scale, sq_view dy,
                           sq_view dx, sq_view dscale, sq_status *st);

    /* --- max pooling ------------------------------------------------------------------------ */
    /* x is p->in, y is sq_pool3d_out(p). */
    sq_code (*maxpool3d_fwd)(sq_backend *be, const sq_pool3d *p, sq_view x, sq_view y,
                             sq_status *st);
    /* dx (like x) overwritten: each dy goes to the first maximum of its window (recomputed
     * from x). */
    sq_code (*maxpool3d_bwd)(sq_backend *be, const sq_pool3d *p, sq_view x, sq_view dy, sq_view dx,
                             sq_status *st);

    /* --- nearest resize to an exact size ---------------------------------------------------- */
    sq_code (*resize3d_fwd)(sq_backend *be, const sq_resize3d *p, sq_view x, sq_view y,
                            sq_status *st);
    /* dx overwritten with the scatter-add of dy. */
    sq_code (*resize3d_bwd)(sq_backend *be, const sq_resize3d *p, sq_view dy, sq_view dx,
                            sq_status *st);

    /* --- fast normalised fusion (EfficientDet) ----------------------------------------------- */
    /* k inputs xs[0..k-1], each (N,C,D,H,W) = s; w is (k) raw weights;
     * y = sum_i relu(w_i) * xs[i] / (sum_j relu(w_j) + 1e-4).  k <= 8. */
    sq_code (*fuse_fwd)(sq_backend *be, sq_shape5 s, int k, const sq_view *xs, sq_view w, sq_view y,
                        sq_status *st);
    /* dxs[i] overwritten (a none view skips that input); dw (k) accumulated (zero gradient
     * where w_i <= 0). */
    sq_code (*fuse_bwd)(sq_backend *be, sq_shape5 s, int k, const sq_view *xs, sq_view w,
                        sq_view dy, sq_view *dxs, sq_view dw, sq_status *st);

    /* --- optional fusions: NULL where a backend lacks them (the model then runs the separate
     *     ops and keeps the intermediate tensor) ---------------------------------------------- */
    /* A 1x1x1 convolution (k 1, stride 1, pad 0) of a channel-scaled input, without the scaled
     * tensor: y_n = W (scale_n * x_n) + b, with scale (N, Cin) as chscale_fwd's, computed as
     * (W diag(scale_n)) x_n. Equal to chscale_fwd then conv3d_fwd up to rounding. */
    sq_code (*conv1x1_scaled_fwd)(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view scale,
                                  sq_view w, sq_view b, sq_view y, sq_status *st);
    /* dx = (W diag(scale_n))^T dy_n and dscale[n,c] = sum over voxels of x * (W^T dy_n)
     * (both overwritten, or none); dw += sum_n (dy_n x_n^T) diag(scale_n), db += row sums of
     * dy (accumulated, or none). */
    sq_code (*conv1x1_scaled_bwd)(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view scale,
                                  sq_view w, sq_view dy, sq_view dx, sq_view dscale, sq_view dw,
                                  sq_view db, sq_status *st);
    /* gap_bwd accumulating: dx (N,C,D,H,W) += dy / (D*H*W), dy (N,C). */
    sq_code (*gap_bwd_add)(sq_backend *be, sq_shape5 s, sq_view dy, sq_view dx, sq_status *st);

    /* --- element-wise add ----------------------------------------------------------------------
     */
    /* y = a + b over n elements; y may be a or b (in place accumulate). Backward is identity. */
    sq_code (*add)(sq_backend *be, int64_t n, sq_view a, sq_view b, sq_view y, sq_status *st);
    /* y = alpha * x + y over n elements (accumulate a gradient). x and y must not overlap. */
    sq_code (*axpy)(sq_backend *be, int64_t n, float alpha, sq_view x, sq_view y, sq_status *st);
    /* y = alpha * x over n elements, in float (y = x * alpha); y may equal x (in place). */
    sq_code (*scale)(sq_backend *be, int64_t n, float alpha, sq_view x, sq_view y, sq_status *st);
    /* out (1 float, overwritten) = sum of x^2 over n elements, accumulated in double and rounded
     * once (gradient norms without a host round trip). */
    sq_code (*sumsq)(sq_backend *be, int64_t n, sq_view x, sq_view out, sq_status *st);

    /* --- loss -----------------------------------------------------------------------------------
     */
    /* pred, target are (n); loss is (1) = mean((pred - target)^2). */
    sq_code (*mse_fwd)(sq_backend *be, int64_t n, sq_view pred, sq_view target, sq_view loss,
                       sq_status *st);
    /* dpred (n) overwritten = scale * 2 (pred - target) / n  (scale = dL/dloss, usually 1). */
    sq_code (*mse_bwd)(sq_backend *be, int64_t n, sq_view pred, sq_view target, float scale,
                       sq_view dpred, sq_status *st);

    /* --- optimiser ------------------------------------------------------------------------------
     */
    /* One Adam step on n flat parameters; params, m, v updated in place, grads read. */
    sq_code (*adam)(sq_backend *be, const sq_adam *p, int64_t n, sq_view params, sq_view grads,
                    sq_view m, sq_view v, sq_status *st);

    /* --- optional: pinned host memory and a copy stream (the input pipeline, docs/gpu.md) ----
     * NULL where the backend has none: the CPU backend's buffers are host memory, nothing is
     * copied. Callers go through sq_backend_host_alloc (nn/registry.h), which falls back to
     * aligned host memory.
     *  - host_alloc: *out = page-locked host memory (cudaHostAlloc) of `bytes`, 64-byte aligned,
     *    not zeroed, that upload_async reads by DMA while the compute stream runs. host_free:
     *    NULL is a no-op.
     *  - upload_async: host -> device on the backend's COPY stream, not the compute stream;
     *    `src` must stay valid until an event recorded after it by copy_event_record completed.
     *  - copy_event_record: `ev` completes when everything enqueued on the copy stream so far
     *    has; copy_stream_wait: later copy-stream work waits for `ev` (e.g. recorded on the
     *    compute stream by event_record); event_sync: the host waits until `ev` completed. */
    sq_code (*host_alloc)(sq_backend *be, size_t bytes, void **out, sq_status *st);
    void (*host_free)(sq_backend *be, void *p);
    sq_code (*upload_async)(sq_backend *be, sq_buf *dst, size_t dst_off, const void *src,
                            size_t bytes, sq_status *st);
    sq_code (*copy_event_record)(sq_backend *be, void *ev, sq_status *st);
    sq_code (*copy_stream_wait)(sq_backend *be, void *ev, sq_status *st);
    sq_code (*event_sync)(sq_backend *be, void *ev, sq_status *st);
};

/* Backends are created by name through the registry (nn/registry.h); each has its own header
 * (nn/cpu/cpu_backend.h, cuda/cuda_backend.h) that only the registry and backend tests include. */

#ifdef __cplusplus
}
#endif
#endif
