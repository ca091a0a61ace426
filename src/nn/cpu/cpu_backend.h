/* cpu_backend.h — creating the CPU backend (src/nn/cpu). Only the registry and backend tests
 * include this; everything else goes through nn/registry.h. */
#ifndef SEGQA_NN_CPU_BACKEND_H
#define SEGQA_NN_CPU_BACKEND_H

#include "nn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* oneDNN for dense convolutions, own AVX2/portable kernels for the rest, OpenMP with `threads`
 * threads (<= 0: OpenMP's default). Returns NULL with `st` filled on failure. Free with
 * be->destroy(be). */
sq_backend *sq_backend_cpu_create(int threads, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
