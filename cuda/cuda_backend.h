/* cuda_backend.h — creating the CUDA backend (cuda/) and the few extras its benchmark and tests
 * reach. Only the registry (src/nn/registry.c), the benchmarks and the backend tests include this;
 * the model goes through nn/backend.h.
 *
 * Works in a build without a GPU: sq_cuda_device_count reports 0 and why (without a driver
 * cudaGetDeviceCount returns error 35 and leaves the count untouched), and creation fails with one
 * line and SQ_ERR_DEVICE.
 */
#ifndef SEGQA_CUDA_BACKEND_H
#define SEGQA_CUDA_BACKEND_H

#include "nn/backend.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_cuda_opts {
    int device;        /* GPU ordinal (0-based) */
    int deterministic; /* only deterministic cuDNN algorithms (our own kernels always are) */
    int allow_tf32;    /* 0 (default): strict FP32 math in cuDNN/cuBLAS; 1: TF32 tensor cores */
} sq_cuda_opts;

sq_cuda_opts sq_cuda_opts_default(void);

/* Number of usable GPUs; 0 with `why` filled where there is none (no driver, no device). */
int sq_cuda_device_count(char *why, size_t why_size);

/* Creates the backend on opts->device: one compute stream, one device arena (cudaMalloc only,
 * never managed memory), cuDNN and cuBLAS handles bound to the stream. NULL with `st` filled. */
sq_backend *sq_backend_cuda_create(const sq_cuda_opts *opts, sq_status *st);

/* --- extras for benchmarks and tests ------------------------------------------------------- */
/* Peak and current bytes taken from the device by the arena (the backend's whole footprint,
 * workspaces included). */
size_t sq_cuda_peak_bytes(sq_backend *be);
size_t sq_cuda_used_bytes(sq_backend *be);
/* Device-to-device copy bandwidth over `bytes` (read + write counted), GB/s. */
sq_code sq_cuda_copy_bandwidth(sq_backend *be, size_t bytes, double *gbs, sq_status *st);
/* cuDNN's own grouped convolution (groups == in.c == cout: depthwise), the comparison path of
 * `segqa bench ops --device cuda`. Same contract as conv3d_fwd/bwd. */
sq_code sq_cuda_cudnn_conv_fwd(sq_backend *be, const sq_conv3d *p, int groups, sq_view x, sq_view w,
                               sq_view b, sq_view y, sq_status *st);
sq_code sq_cuda_cudnn_conv_bwd(sq_backend *be, const sq_conv3d *p, int groups, sq_view x, sq_view w,
                               sq_view dy, sq_view dx, sq_view dw, sq_view db, sq_status *st);
/* Number of cached convolution plans (tests check that repeated calls add none). */
int sq_cuda_conv_cache_size(sq_backend *be);

#ifdef __cplusplus
}
#endif
#endif
