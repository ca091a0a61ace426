// adam_math.cuh — the Adam update of one element and the kernel's launch shape, shared by the
// kernel (adam.cu) and its host check (tests/cuda/test_cuda_adam_host.cu).
//
// Bitwise the CPU backend's adam() (src/nn/cpu/cpu_ops.c): the bias corrections in double on the
// host, then per element in float, in the same order, each operation rounded on its own (the CPU
// build is ISO C, so no FMA contraction there; here the _rn intrinsics forbid it on the device and
// volatile temporaries on the host):
//   g = grad + wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + ((1 - b2) g) g;
//   p = p - (step_size * m) / (sqrt(v) * rbc2 + eps)
// with step_size = (float)(lr / (1 - b1^t)) and rbc2 = (float)(1 / sqrt(1 - b2^t)).
#ifndef SEGQA_CUDA_ADAM_MATH_CUH
#define SEGQA_CUDA_ADAM_MATH_CUH

#include "nn/backend.h"

#include <math.h>
#include <stdint.h>

// Per-step constants (computed once on the host).
struct sq_adam_coef {
    float step_size, rbc2; // lr / bias correction 1; 1 / sqrt(bias correction 2)
    float b1, b2, one_minus_b1, one_minus_b2, eps, wd;
};

// Exactly the CPU backend's constants (doubles, then rounded to float once). p->step >= 1.
static inline sq_adam_coef sq_adam_coef_of(const sq_adam *p) {
    const double bc1 = 1.0 - pow(p->beta1, (double)p->step);
    const double bc2 = 1.0 - pow(p->beta2, (double)p->step);
    sq_adam_coef k;
    k.step_size = (float)(p->lr / bc1);
    k.rbc2 = (float)(1.0 / sqrt(bc2));
    k.b1 = p->beta1;
    k.b2 = p->beta2;
    k.one_minus_b1 = 1.0f - p->beta1;
    k.one_minus_b2 = 1.0f - p->beta2;
    k.eps = p->eps;
    k.wd = p->weight_decay;
    return k;
}

// Single-rounded float operations (no contraction into FMA).
__host__ __device__ inline float sq_adam_mul(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    volatile float r = a * b;
    return r;
#endif
}
__host__ __device__ inline float sq_adam_add(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    volatile float r = a + b;
    return r;
#endif
}
__host__ __device__ inline float sq_adam_sub(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    volatile float r = a - b;
    return r;
#endif
}
__host__ __device__ inline float sq_adam_div(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    volatile float r = a / b;
    return r;
#endif
}
__host__ __device__ inline float sq_adam_sqrt(float a) {
#ifdef __CUDA_ARCH__
    return __fsqrt_rn(a);
#else
    volatile float r = sqrtf(a);
    return r;
#endif
}

// One element: p, m, v updated in place from its gradient.
__host__ __device__ inline void sq_adam_update(const sq_adam_coef &k, float grad, float &p,
                                               float &m, float &v) {
    const float g = sq_adam_add(grad, sq_adam_mul(k.wd, p));
    const float mi = sq_adam_add(sq_adam_mul(k.b1, m), sq_adam_mul(k.one_minus_b1, g));
    const float vi =
        sq_adam_add(sq_adam_mul(k.b2, v), sq_adam_mul(sq_adam_mul(k.one_minus_b2, g), g));
    m = mi;
    v = vi;
    const float den = sq_adam_add(sq_adam_mul(sq_adam_sqrt(vi), k.rbc2), k.eps);
    p = sq_adam_sub(p, sq_adam_div(sq_adam_mul(k.step_size, mi), den));
}

// Launch shape: 256 threads, a grid-stride loop over at most 8 blocks per SM (n >= 1).
enum { SQ_ADAM_THREADS = 256, SQ_ADAM_BLOCKS_PER_SM = 8 };

static inline unsigned sq_adam_blocks(int64_t n, int sm_count) {
    const int64_t want = (n + SQ_ADAM_THREADS - 1) / SQ_ADAM_THREADS;
    const int64_t cap = (int64_t)(sm_count > 0 ? sm_count : 1) * SQ_ADAM_BLOCKS_PER_SM;
    const int64_t b = want < cap ? want : cap;
    return (unsigned)(b > 0 ? b : 1);
}

#endif
