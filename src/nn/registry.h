/* registry.h — choose a compute backend by name at the program's edge ("cpu", "cuda", "auto").
 *
 * src/cli parses --device and calls sq_backend_create; src/train and src/model receive the
 * sq_backend and never name one. "auto" takes CUDA when this build has it and a usable GPU is
 * present, otherwise the CPU, and says which (and why) in `chosen`. The GPU of a rank is
 * `opts.device` when >= 0, else the launcher's local rank (SLURM_LOCALID /
 * OMPI_COMM_WORLD_LOCAL_RANK) modulo the number of visible GPUs.
 *
 * Not for: creating communicators (hpc/) or parsing options (src/cli).
 */
#ifndef SEGQA_NN_REGISTRY_H
#define SEGQA_NN_REGISTRY_H

#include "nn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_backend_opts {
    int threads;       /* CPU: OpenMP threads (<= 0: OpenMP's default) */
    int device;        /* CUDA: GPU ordinal; -1: local rank modulo the visible GPUs */
    int local_rank;    /* the launcher's local rank, -1 when unknown */
    int deterministic; /* CUDA: only deterministic cuDNN algorithms */
    int allow_tf32;    /* CUDA: TF32 tensor cores in cuDNN/cuBLAS (default 0: strict FP32) */
} sq_backend_opts;

sq_backend_opts sq_backend_opts_default(void);

/* Names a user may pass: "cpu", "cuda", "auto". */
int sq_backend_name_valid(const char *name);

/* Create the named backend. On success `chosen` (may be NULL) receives one line such as
 * "cuda:0 NVIDIA H200 (auto: a usable GPU was found)". "cuda" without a usable GPU or without CUDA
 * in this build fails with SQ_ERR_DEVICE / SQ_ERR_UNSUPPORTED and one line saying why. */
sq_backend *sq_backend_create(const char *name, const sq_backend_opts *opts, char *chosen,
                              size_t chosen_size, sq_status *st);

/* Host memory for buffers the backend copies from often (the loader's batch ring): page-locked
 * through be->host_alloc where the backend has it (CUDA), else 64-byte aligned host memory. Free
 * with sq_backend_host_free on the same backend (NULL is a no-op). */
sq_code sq_backend_host_alloc(sq_backend *be, size_t bytes, void **out, sq_status *st);
void sq_backend_host_free(sq_backend *be, void *p);
/* 1 when the backend has the copy stream of the input pipeline (upload_async and its events). */
int sq_backend_has_copy_stream(const sq_backend *be);

/* 1 when this build has the CUDA backend and a GPU can be used; otherwise 0 and `why`. */
int sq_backend_cuda_usable(char *why, size_t why_size);

#ifdef __cplusplus
}
#endif
#endif
