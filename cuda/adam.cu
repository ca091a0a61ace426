// adam.cu — one fused Adam step over a flat parameter buffer (backend.h's adam), bitwise the CPU
// backend's: constants and per-element math in adam_math.cuh.
#include "cuda/adam_math.cuh"
#include "cuda/cuda_impl.h"

#include <stdio.h>

// p, g, m, v are flat (n). Grid-stride loop; each element is read and written by one thread.
__global__ void sq_adam_kernel(sq_adam_coef k, int64_t n, float *p, const float *g, float *m,
                               float *v) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float pi = p[i], mi = m[i], vi = v[i];
        sq_adam_update(k, g[i], pi, mi, vi);
        p[i] = pi;
        m[i] = mi;
        v[i] = vi;
    }
}

extern "C" sq_code sq_cuda_adam(sq_backend *be, const sq_adam *a, int64_t n, sq_view params,
                                sq_view grads, sq_view m, sq_view v, sq_status *st) {
    if (a->step < 1) return sq_fail(st, SQ_ERR_RANGE, "adam: step %ld, expected >= 1", a->step);
    if (n < 0) return sq_fail(st, SQ_ERR_RANGE, "adam: %lld parameters", (long long)n);
    char what[64];
    snprintf(what, sizeof what, "adam (n=%lld)", (long long)n);
    SQ_TRY(sq_cuda_check_view(params, n, "adam params", st));
    SQ_TRY(sq_cuda_check_view(grads, n, "adam grads", st));
    SQ_TRY(sq_cuda_check_view(m, n, "adam m", st));
    SQ_TRY(sq_cuda_check_view(v, n, "adam v", st));
    if (n == 0) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    const sq_adam_coef k = sq_adam_coef_of(a);
    sq_adam_kernel<<<sq_adam_blocks(n, c->sm_count), SQ_ADAM_THREADS, 0, c->stream>>>(
        k, n, sq_cuda_f(params), sq_cuda_f(grads), sq_cuda_f(m), sq_cuda_f(v));
    return sq_cuda_launch_ok(what, st);
}
