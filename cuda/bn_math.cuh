/* bn_math.cuh — the per-element and index math of the CUDA BatchNorm kernels (bn.cu), written as
 * __host__ __device__ functions so that tests/cuda/test_cuda_bn_host.cu replays the kernels' work
 * split on the host with exactly this code. The formulas mirror the CPU oracle
 * (src/nn/cpu/cpu_ops.c, BatchNorm section): same roundings to float, same eps handling, same
 * activation derivatives; only the summation order differs (here: double per thread, then a
 * fixed tree over the block, then a fixed-order combine of the per-block partials).
 *
 * Work split (x is (N,C,D,H,W), S = D*H*W, one "plane" = one (n, c) pair, S contiguous floats):
 *  - reductions, stage 1: grid (P, C), P = N * ceil(S / BN_RED_CHUNK); block b of channel c covers
 *    elements [lo, hi) of plane (b / chunks, c) (bn_red_range); thread t takes lo + t, lo + t + T,
 *    ... (coalesced) and sums in double; the block combines its T values with bn_tree_step and
 *    writes one partial: part[bn_part_idx(k, c, C, P, b)] for sum k.
 *  - reductions, stage 2: one block per channel; thread t sums partials t, t + T, ... in order
 *    (bn_combine_thread); then the same tree.
 *  - element-wise passes: grid (ceil(S / BN_EW_CHUNK), min(N*C, 65535)); block (bx, by) handles
 *    [bn_ew_range(bx)) of planes by, by + gridDim.y, ... (plane p = n*C + c).
 *
 * Statistics buffer layout (the doubles handed to sq_bn_sync.sum, as the CPU backend sends them):
 *  forward:  [0, C) sum x, [C] element count, [C+1, 2C+1) sum of squared deviations from the
 *            (global) mean; synced as (off 0, C+1 doubles) then (off C+1, C doubles).
 *  backward: [0, C) sum g', [C, 2C) sum g' * xhat, [2C] element count; synced as one call.
 */
#ifndef SEGQA_CUDA_BN_MATH_CUH
#define SEGQA_CUDA_BN_MATH_CUH

#include "nn/backend.h"

#include <math.h>
#include <stdint.h>

#define BN_HD __host__ __device__ inline

enum {
    BN_THREADS = 256, /* every BN kernel's block size; a power of two (tree reductions) */
    BN_RED_PER_THREAD = 16,
    BN_RED_CHUNK = BN_THREADS * BN_RED_PER_THREAD, /* plane elements per stage-1 block */
    BN_EW_CHUNK = BN_THREADS * 4,                  /* plane elements per element-wise block */
    BN_MAX_GRID_Y = 65535,
};

/* ---- statistics buffer layout ---------------------------------------------------------------- */
/* forward: index of the element count, first sum of squared deviations, length */
BN_HD int bn_fwd_acc_count(int C) {
    return C;
}
BN_HD int bn_fwd_acc_ss(int C) {
    return C + 1;
}
BN_HD int bn_fwd_acc_len(int C) {
    return 2 * C + 1;
}
/* backward: first sum g' * xhat, index of the element count, length */
BN_HD int bn_bwd_sums_sgx(int C) {
    return C;
}
BN_HD int bn_bwd_sums_count(int C) {
    return 2 * C;
}
BN_HD int bn_bwd_sums_len(int C) {
    return 2 * C + 1;
}

/* ---- index math ------------------------------------------------------------------------------ */
BN_HD int64_t bn_ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

/* Offset of plane (n, c) of an (N,C,S) tensor. */
BN_HD int64_t bn_plane_off(int64_t n, int c, int C, int64_t S) {
    return (n * C + c) * S;
}

/* Stage-1 blocks per channel. */
BN_HD int64_t bn_red_blocks(int N, int64_t S) {
    return (int64_t)N * bn_ceil_div(S, BN_RED_CHUNK);
}

typedef struct bn_range {
    int64_t n, lo, hi; /* plane n of the channel, elements [lo, hi) of it */
} bn_range;

/* What stage-1 block b (of bn_red_blocks) of a channel covers. */
BN_HD bn_range bn_red_range(int64_t b, int64_t S) {
    const int64_t chunks = bn_ceil_div(S, BN_RED_CHUNK);
    bn_range r;
    r.n = b / chunks;
    r.lo = (b % chunks) * BN_RED_CHUNK;
    r.hi = r.lo + BN_RED_CHUNK < S ? r.lo + BN_RED_CHUNK : S;
    return r;
}

/* Element-wise block bx of a plane covers [*lo, *hi). */
BN_HD void bn_ew_range(int64_t bx, int64_t S, int64_t *lo, int64_t *hi) {
    *lo = bx * BN_EW_CHUNK;
    *hi = *lo + BN_EW_CHUNK < S ? *lo + BN_EW_CHUNK : S;
}

BN_HD int bn_ew_grid_y(int64_t planes) {
    return planes < BN_MAX_GRID_Y ? (int)planes : BN_MAX_GRID_Y;
}

/* Index of partial b of sum k for channel c (P partials per channel and sum). */
BN_HD int64_t bn_part_idx(int k, int c, int C, int64_t P, int64_t b) {
    return ((int64_t)k * C + c) * P + b;
}

/* One step of the block's fixed-order tree: for s = T/2, T/4, ..., 1 (barrier between steps). */
BN_HD void bn_tree_step(double *sh, int t, int s) {
    if (t < s) sh[t] += sh[t + s];
}

/* Stage 2, thread t: partials t, t + T, ... of one channel's sum, in order. */
BN_HD double bn_combine_thread(const double *part, int64_t P, int t) {
    double v = 0.0;
    for (int64_t b = t; b < P; b += BN_THREADS)
        v += part[b];
    return v;
}

/* ---- activations (the CPU's vact / vactd) --------------------------------------------------- */
BN_HD float bn_sigmoid(float z) {
    return 1.0f / (1.0f + expf(-z));
}

BN_HD float bn_act(int act, float z) {
    switch (act) {
    case SQ_ACT_RELU: return z > 0.0f ? z : 0.0f;
    case SQ_ACT_SIGMOID: return bn_sigmoid(z);
    case SQ_ACT_SWISH: return z * bn_sigmoid(z);
    default: return z;
    }
}

/* dy * act'(z) */
BN_HD float bn_act_grad(int act, float z, float dy) {
    switch (act) {
    case SQ_ACT_RELU: return z > 0.0f ? dy : 0.0f;
    case SQ_ACT_SIGMOID: {
        const float sg = bn_sigmoid(z);
        return dy * sg * (1.0f - sg);
    }
    case SQ_ACT_SWISH: {
        const float sg = bn_sigmoid(z);
        return dy * sg * (1.0f + z * (1.0f - sg));
    }
    default: return dy;
    }
}

/* ---- per-thread loops of the stage-1 reductions ---------------------------------------------- */
/* sum of xp[i], i = lo + t, lo + t + T, ... < hi */
BN_HD double bn_thread_sum_x(const float *xp, int64_t lo, int64_t hi, int t) {
    double s = 0.0;
    for (int64_t i = lo + t; i < hi; i += BN_THREADS)
        s += xp[i];
    return s;
}

/* sum of (x - m)^2 (the square in float, as the CPU) */
BN_HD double bn_thread_ssdev(const float *xp, int64_t lo, int64_t hi, int t, float m) {
    double s = 0.0;
    for (int64_t i = lo + t; i < hi; i += BN_THREADS) {
        const float d = xp[i] - m;
        s += d * d;
    }
    return s;
}

/* Per-channel constants of the backward pass. */
typedef struct bn_bwd_cf {
    float mean, invstd;
    float sa, sb;  /* z = x * sa + sb, the activation's input */
    float k;       /* gamma * invstd */
    float mg, mgx; /* mean of g' and of g' * xhat over the (group's) batch; 0 when frozen */
} bn_bwd_cf;

/* sums: the backward layout (may be NULL when !training). */
BN_HD bn_bwd_cf bn_bwd_coef(int c, int C, const float *gamma, const float *beta,
                            const float *save_mean, const float *save_invstd, int training,
                            const double *sums) {
    bn_bwd_cf f;
    const float g = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
    f.mean = save_mean[c];
    f.invstd = save_invstd[c];
    f.sa = g * f.invstd;
    f.sb = bt - f.mean * f.sa;
    f.k = g * f.invstd;
    f.mg = 0.0f;
    f.mgx = 0.0f;
    if (training && sums) {
        const double M = sums[bn_bwd_sums_count(C)];
        f.mg = (float)(sums[c] / M);
        f.mgx = (float)(sums[bn_bwd_sums_sgx(C) + c] / M);
    }
    return f;
}

/* g' = dy * act'(z) and its product with xhat */
BN_HD float bn_bwd_gprime(int act, float x, float dy, const bn_bwd_cf *f) {
    return bn_act_grad(act, x * f->sa + f->sb, dy);
}
BN_HD float bn_xhat(float x, float mean, float invstd) {
    return (x - mean) * invstd;
}

/* *sg = sum g', *sgx = sum g' * xhat over this thread's elements */
BN_HD void bn_thread_bwd_sums(int act, const float *xp, const float *dyp, int64_t lo, int64_t hi,
                              int t, const bn_bwd_cf *f, double *sg, double *sgx) {
    double a0 = 0.0, a1 = 0.0;
    for (int64_t i = lo + t; i < hi; i += BN_THREADS) {
        const float x = xp[i];
        const float g = bn_bwd_gprime(act, x, dyp[i], f);
        a0 += g;
        a1 += g * bn_xhat(x, f->mean, f->invstd);
    }
    *sg = a0;
    *sgx = a1;
}

/* dx = gamma * invstd * (g' - mean(g') - xhat * mean(g' xhat)) */
BN_HD float bn_bwd_dx(int act, float x, float dy, const bn_bwd_cf *f) {
    const float g = bn_bwd_gprime(act, x, dy, f);
    return f->k * (g - f->mg - bn_xhat(x, f->mean, f->invstd) * f->mgx);
}

/* dgamma/dbeta accumulated with this rank's (pre-sync) sums, as the CPU. */
BN_HD void bn_bwd_accum(int c, int C, const double *sums, float *dgamma, float *dbeta) {
    if (dgamma) dgamma[c] += (float)sums[bn_bwd_sums_sgx(C) + c];
    if (dbeta) dbeta[c] += (float)sums[c];
}

/* ---- forward: per-channel statistics, running update, affine coefficients ------------------- */
typedef struct bn_fin_args {
    int C, training;
    float eps, momentum;
    const double *acc;                 /* forward layout (training) */
    float *running_mean, *running_var; /* training: optional, updated; inference: read */
    float *save_mean, *save_invstd;    /* optional */
    const float *gamma, *beta;         /* optional */
    float *coef;                       /* (2C): a, b with y = act(x * a + b) */
} bn_fin_args;

/* The mean a stage-1 ssdev block centres on: the (group) mean rounded to float. */
BN_HD float bn_acc_mean(const double *acc, int c, int C) {
    return (float)(acc[c] / acc[bn_fwd_acc_count(C)]);
}

BN_HD float bn_running(float r, float momentum, float stat) {
    return (1.0f - momentum) * r + momentum * stat;
}

BN_HD void bn_finalize(const bn_fin_args *f, int c) {
    float mean, invstd;
    if (f->training) {
        const double M = f->acc[bn_fwd_acc_count(f->C)], sum = f->acc[c],
                     ss = f->acc[bn_fwd_acc_ss(f->C) + c];
        const double var = ss / M;
        mean = (float)(sum / M);
        invstd = (float)(1.0 / sqrt(var + f->eps));
        if (f->running_mean) f->running_mean[c] = bn_running(f->running_mean[c], f->momentum, mean);
        if (f->running_var) {
            const double unb = M > 1 ? ss / (M - 1) : var;
            f->running_var[c] = bn_running(f->running_var[c], f->momentum, (float)unb);
        }
    } else {
        mean = f->running_mean[c];
        invstd = (float)(1.0 / sqrt((double)f->running_var[c] + f->eps));
    }
    if (f->save_mean) f->save_mean[c] = mean;
    if (f->save_invstd) f->save_invstd[c] = invstd;
    const float a = (f->gamma ? f->gamma[c] : 1.0f) * invstd;
    f->coef[2 * c] = a;
    f->coef[2 * c + 1] = (f->beta ? f->beta[c] : 0.0f) - mean * a;
}

/* y = act(x * a + b) (+ r) over this thread's elements of one plane block */
BN_HD void bn_thread_apply(int act, const float *xp, const float *rp, float *yp, int64_t lo,
                           int64_t hi, int t, float a, float b) {
    for (int64_t i = lo + t; i < hi; i += BN_THREADS) {
        float v = bn_act(act, xp[i] * a + b);
        if (rp) v += rp[i];
        yp[i] = v;
    }
}

BN_HD void bn_thread_bwd_dx(int act, const float *xp, const float *dyp, float *dxp, int64_t lo,
                            int64_t hi, int t, const bn_bwd_cf *f) {
    for (int64_t i = lo + t; i < hi; i += BN_THREADS)
        dxp[i] = bn_bwd_dx(act, xp[i], dyp[i], f);
}

#endif
