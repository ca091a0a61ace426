/* bn.cu — BatchNorm3d (+ fused activation, + fused residual add) forward and backward on the GPU,
 * the contract of nn/backend.h (bn_fwd, bn_bwd) with the CPU backend's formulas.
 *
 * Per-channel statistics are deterministic two-stage reductions in double (no atomics):
 * stage 1 writes one partial per (block, channel) into the workspace, stage 2 (one block per
 * channel) combines them in a fixed order into the statistics buffer (sq_cuda_stats_buf), where
 * they stay on the device; a synchronised BN hands that buffer to sq_bn_sync.sum between the two
 * stages' users. The kernels are thin: the math and the work split live in bn_math.cuh.
 *
 * Forward (training): sum x -> combine (+count) [-> sync] -> sum (x - mean)^2 -> combine
 * [-> sync] -> finalize (mean, invstd, running update, save_*, coefficients) -> apply.
 * Forward (inference): finalize from the running statistics -> apply.
 * Backward: sums of g' and g' xhat -> combine (+count, dgamma/dbeta accumulated with the local
 * sums) [-> sync, training only] -> dx (g' recomputed from x and dy, not stored).
 */
#include "cuda/bn_math.cuh"
#include "cuda/cuda_impl.h"

#include <stdio.h>

/* ---- kernels --------------------------------------------------------------------------------- */

/* Block-wide sum of one double per thread in bn_tree_step's fixed order; every thread gets it.
 * `sh` (BN_THREADS doubles) must not be reused by the caller afterwards. */
__device__ double bn_block_sum(double v, double *sh) {
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = BN_THREADS / 2; s > 0; s >>= 1) {
        bn_tree_step(sh, t, s);
        __syncthreads();
    }
    return sh[0];
}

/* x is (N,C,S); grid (P, C); part[bn_part_idx(0, c, C, P, b)] = sum of x over block b's range. */
__global__ void __launch_bounds__(BN_THREADS)
    bn_sum_x_kernel(const float *x, int C, int64_t S, int64_t P, double *part) {
    __shared__ double sh[BN_THREADS];
    const int c = blockIdx.y;
    const int64_t b = blockIdx.x;
    const bn_range r = bn_red_range(b, S);
    const float *xp = x + bn_plane_off(r.n, c, C, S);
    const double s = bn_block_sum(bn_thread_sum_x(xp, r.lo, r.hi, threadIdx.x), sh);
    if (threadIdx.x == 0) part[bn_part_idx(0, c, C, P, b)] = s;
}

/* x is (N,C,S); grid (P, C); partials of sum (x - mean)^2, mean from acc (forward layout). */
__global__ void __launch_bounds__(BN_THREADS)
    bn_ssdev_kernel(const float *x, int C, int64_t S, int64_t P, const double *acc, double *part) {
    __shared__ double sh[BN_THREADS];
    const int c = blockIdx.y;
    const int64_t b = blockIdx.x;
    const bn_range r = bn_red_range(b, S);
    const float *xp = x + bn_plane_off(r.n, c, C, S);
    const float m = bn_acc_mean(acc, c, C);
    const double s = bn_block_sum(bn_thread_ssdev(xp, r.lo, r.hi, threadIdx.x, m), sh);
    if (threadIdx.x == 0) part[bn_part_idx(0, c, C, P, b)] = s;
}

/* x, dy are (N,C,S); grid (P, C); partials of sum g' (k = 0) and sum g' xhat (k = 1). */
__global__ void __launch_bounds__(BN_THREADS)
    bn_bwd_sums_kernel(const float *x, const float *dy, const float *gamma, const float *beta,
                       const float *save_mean, const float *save_invstd, int act, int C, int64_t S,
                       int64_t P, double *part) {
    __shared__ double sh0[BN_THREADS], sh1[BN_THREADS];
    const int c = blockIdx.y;
    const int64_t b = blockIdx.x;
    const bn_range r = bn_red_range(b, S);
    const int64_t o = bn_plane_off(r.n, c, C, S);
    const bn_bwd_cf f = bn_bwd_coef(c, C, gamma, beta, save_mean, save_invstd, 0, NULL);
    double sg, sgx;
    bn_thread_bwd_sums(act, x + o, dy + o, r.lo, r.hi, threadIdx.x, &f, &sg, &sgx);
    sg = bn_block_sum(sg, sh0);
    sgx = bn_block_sum(sgx, sh1);
    if (threadIdx.x == 0) {
        part[bn_part_idx(0, c, C, P, b)] = sg;
        part[bn_part_idx(1, c, C, P, b)] = sgx;
    }
}

/* What a combine block does after writing its channel's sums. */
enum { BN_TAIL_NONE = 0, BN_TAIL_FINALIZE = 1, BN_TAIL_BWD_ACCUM = 2 };

typedef struct bn_tail {
    int kind;
    bn_fin_args fin;       /* BN_TAIL_FINALIZE */
    float *dgamma, *dbeta; /* BN_TAIL_BWD_ACCUM (either may be NULL); out is the backward layout */
} bn_tail;

/* grid (C); out[k*C + c] = sum over the P partials of sum k (nsum <= 2), in fixed order; block 0
 * writes *count_slot = count (if count_slot); then the tail for channel c. */
__global__ void __launch_bounds__(BN_THREADS)
    bn_combine_kernel(const double *part, int C, int64_t P, int nsum, double *out,
                      double *count_slot, double count, bn_tail tail) {
    __shared__ double sh[2][BN_THREADS];
    const int c = blockIdx.x, t = threadIdx.x;
    for (int k = 0; k < nsum; k++) {
        const double s =
            bn_block_sum(bn_combine_thread(part + bn_part_idx(k, c, C, P, 0), P, t), sh[k]);
        if (t == 0) out[k * C + c] = s;
    }
    if (t != 0) return;
    if (c == 0 && count_slot) *count_slot = count;
    if (tail.kind == BN_TAIL_FINALIZE) bn_finalize(&tail.fin, c);
    if (tail.kind == BN_TAIL_BWD_ACCUM) bn_bwd_accum(c, C, out, tail.dgamma, tail.dbeta);
}

/* grid ceil(C / T): per-channel mean, invstd, running update, save_*, coefficients. */
__global__ void __launch_bounds__(BN_THREADS) bn_finalize_kernel(bn_fin_args f) {
    const int c = blockIdx.x * BN_THREADS + threadIdx.x;
    if (c < f.C) bn_finalize(&f, c);
}

/* x, residual, y are (N,C,S); grid (ceil(S / BN_EW_CHUNK), min(N*C, 65535)). */
__global__ void __launch_bounds__(BN_THREADS)
    bn_apply_kernel(const float *x, const float *coef, const float *residual, float *y, int act,
                    int C, int64_t S, int64_t planes) {
    int64_t lo, hi;
    bn_ew_range(blockIdx.x, S, &lo, &hi);
    for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
        const int c = (int)(p % C);
        const int64_t o = p * S;
        bn_thread_apply(act, x + o, residual ? residual + o : NULL, y + o, lo, hi, threadIdx.x,
                        coef[2 * c], coef[2 * c + 1]);
    }
}

/* x, dy, dx are (N,C,S); grid as bn_apply_kernel; sums: backward layout or NULL (frozen). */
__global__ void __launch_bounds__(BN_THREADS)
    bn_bwd_dx_kernel(const float *x, const float *dy, const float *gamma, const float *beta,
                     const float *save_mean, const float *save_invstd, const double *sums,
                     int training, int act, int C, int64_t S, int64_t planes, float *dx) {
    int64_t lo, hi;
    bn_ew_range(blockIdx.x, S, &lo, &hi);
    for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
        const int c = (int)(p % C);
        const int64_t o = p * S;
        const bn_bwd_cf f = bn_bwd_coef(c, C, gamma, beta, save_mean, save_invstd, training, sums);
        bn_thread_bwd_dx(act, x + o, dy + o, dx + o, lo, hi, threadIdx.x, &f);
    }
}

/* ---- host side ------------------------------------------------------------------------------- */

typedef struct bn_ctx {
    sq_backend *be;
    sq_cuda *cu;
    sq_shape5 s;
    int C;
    int64_t S, planes, P; /* P: stage-1 blocks per channel */
    char what[96];        /* "bn_fwd NxCxDxHxW" for messages */
} bn_ctx;

static sq_code bn_ctx_init(bn_ctx *k, sq_backend *be, const sq_bn *p, const char *op,
                           sq_status *st) {
    SQ_TRY(sq_shape5_check(p->shape, op, st));
    k->be = be;
    k->cu = sq_cuda_of(be);
    k->s = p->shape;
    k->C = p->shape.c;
    k->S = (int64_t)p->shape.d * p->shape.h * p->shape.w;
    k->planes = (int64_t)p->shape.n * p->shape.c;
    k->P = bn_red_blocks(p->shape.n, k->S);
    char sh[64];
    snprintf(k->what, sizeof k->what, "%s %s", op, sq_cuda_shape_str(p->shape, sh, sizeof sh));
    if (k->P > INT32_MAX || bn_ceil_div(k->S, BN_EW_CHUNK) > INT32_MAX)
        return sq_fail(st, SQ_ERR_RANGE, "%s: too many elements per channel", k->what);
    if (k->C > BN_MAX_GRID_Y)
        return sq_fail(st, SQ_ERR_RANGE, "%s: %d channels (at most %d supported)", k->what, k->C,
                       (int)BN_MAX_GRID_Y);
    if (p->act != SQ_ACT_NONE && p->act != SQ_ACT_RELU && p->act != SQ_ACT_SWISH &&
        p->act != SQ_ACT_SIGMOID)
        return sq_fail(st, SQ_ERR_RANGE, "%s: unknown activation %d", k->what, (int)p->act);
    return SQ_OK;
}

static sq_code check_req(const bn_ctx *k, sq_view v, int64_t n, const char *name, sq_status *st) {
    if (!v.buf) return sq_fail(st, SQ_ERR_RANGE, "%s: %s is required", k->what, name);
    return sq_cuda_check_view(v, n, k->what, st);
}

static sq_code check_opt(const bn_ctx *k, sq_view v, int64_t n, sq_status *st) {
    return v.buf ? sq_cuda_check_view(v, n, k->what, st) : SQ_OK;
}

static size_t align256(size_t b) {
    return (b + 255) & ~(size_t)255;
}

/* Workspace: [partials: nsum * C * P doubles][coef: 2C floats] (coef may be NULL: not wanted). */
static sq_code bn_workspace(const bn_ctx *k, int nsum, double **part, float **coef, sq_status *st) {
    const size_t pb = align256((size_t)nsum * k->C * (size_t)k->P * sizeof(double));
    void *ws = NULL;
    SQ_TRY(sq_cuda_workspace(k->cu, pb + 2 * (size_t)k->C * sizeof(float), &ws, st));
    *part = (double *)ws;
    if (coef) *coef = (float *)(void *)((char *)ws + pb);
    return SQ_OK;
}

static sq_code bn_sync_call(const bn_ctx *k, const sq_bn_sync *sy, sq_buf *sb, int first, int n,
                            sq_status *st) {
    if (sy->sum(sy->ctx, k->be, sb, (size_t)first * sizeof(double), n, st) != SQ_OK)
        return sq_context(st, "%s: synchronised statistics", k->what);
    return SQ_OK;
}

static dim3 bn_red_grid(const bn_ctx *k) {
    return dim3((unsigned)k->P, (unsigned)k->C);
}

static dim3 bn_ew_grid(const bn_ctx *k) {
    return dim3((unsigned)bn_ceil_div(k->S, BN_EW_CHUNK), (unsigned)bn_ew_grid_y(k->planes));
}

static sq_code bn_launch_combine(const bn_ctx *k, const double *part, int nsum, double *out,
                                 double *count_slot, const bn_tail *tail, sq_status *st) {
    const double count = (double)k->s.n * (double)k->S;
    bn_combine_kernel<<<k->C, BN_THREADS, 0, k->cu->stream>>>(part, k->C, k->P, nsum, out,
                                                              count_slot, count, *tail);
    return sq_cuda_launch_ok(k->what, st);
}

/* Training statistics into acc (forward layout) and, without sync, finalize in the combine.
 * The workspace is taken again after each sync call (the callback may have used the backend),
 * which is why part and fin->coef are updated here. */
static sq_code bn_fwd_train_stats(const bn_ctx *k, const sq_bn *p, const float *x, double *part,
                                  sq_buf *sb, bn_fin_args *fin, sq_status *st) {
    double *acc = (double *)(void *)sb->d;
    const int C = k->C;
    const bn_tail none = {BN_TAIL_NONE, *fin, NULL, NULL};
    bn_sum_x_kernel<<<bn_red_grid(k), BN_THREADS, 0, k->cu->stream>>>(x, C, k->S, k->P, part);
    SQ_TRY(sq_cuda_launch_ok(k->what, st));
    SQ_TRY(bn_launch_combine(k, part, 1, acc, acc + bn_fwd_acc_count(C), &none, st));
    if (p->sync) {
        SQ_TRY(bn_sync_call(k, p->sync, sb, 0, C + 1, st));
        SQ_TRY(bn_workspace(k, 1, &part, &fin->coef, st));
    }
    bn_ssdev_kernel<<<bn_red_grid(k), BN_THREADS, 0, k->cu->stream>>>(x, C, k->S, k->P, acc, part);
    SQ_TRY(sq_cuda_launch_ok(k->what, st));
    const bn_tail fz = {p->sync ? BN_TAIL_NONE : BN_TAIL_FINALIZE, *fin, NULL, NULL};
    SQ_TRY(bn_launch_combine(k, part, 1, acc + bn_fwd_acc_ss(C), NULL, &fz, st));
    if (!p->sync) return SQ_OK;
    SQ_TRY(bn_sync_call(k, p->sync, sb, bn_fwd_acc_ss(C), C, st));
    SQ_TRY(bn_workspace(k, 1, &part, &fin->coef, st));
    bn_finalize_kernel<<<(unsigned)bn_ceil_div(C, BN_THREADS), BN_THREADS, 0, k->cu->stream>>>(
        *fin);
    return sq_cuda_launch_ok(k->what, st);
}

static sq_code bn_fwd_check(const bn_ctx *k, const sq_bn *p, sq_view x, sq_view gamma, sq_view beta,
                            sq_view rm, sq_view rv, sq_view residual, sq_view y, sq_view sm,
                            sq_view si, sq_status *st) {
    const int64_t n = sq_shape5_numel(k->s), C = k->C;
    SQ_TRY(check_req(k, x, n, "x", st));
    SQ_TRY(check_req(k, y, n, "y", st));
    SQ_TRY(check_opt(k, residual, n, st));
    SQ_TRY(check_opt(k, gamma, C, st));
    SQ_TRY(check_opt(k, beta, C, st));
    SQ_TRY(check_opt(k, sm, C, st));
    SQ_TRY(check_opt(k, si, C, st));
    if (!p->training) {
        SQ_TRY(check_req(k, rm, C, "running_mean (inference)", st));
        return check_req(k, rv, C, "running_var (inference)", st);
    }
    SQ_TRY(check_opt(k, rm, C, st));
    return check_opt(k, rv, C, st);
}

extern "C" sq_code sq_cuda_bn_fwd(sq_backend *be, const sq_bn *p, sq_view x, sq_view gamma,
                                  sq_view beta, sq_view running_mean, sq_view running_var,
                                  sq_view residual, sq_view y, sq_view save_mean,
                                  sq_view save_invstd, sq_status *st) {
    bn_ctx k;
    SQ_TRY(bn_ctx_init(&k, be, p, "bn_fwd", st));
    SQ_TRY(bn_fwd_check(&k, p, x, gamma, beta, running_mean, running_var, residual, y, save_mean,
                        save_invstd, st));
    double *part = NULL;
    float *coef = NULL;
    sq_buf *sb = NULL;
    if (p->training) SQ_TRY(sq_cuda_stats_buf(k.cu, bn_fwd_acc_len(k.C) * sizeof(double), &sb, st));
    SQ_TRY(bn_workspace(&k, p->training ? 1 : 0, &part, &coef, st));
    bn_fin_args fin;
    fin.C = k.C;
    fin.training = p->training;
    fin.eps = p->eps;
    fin.momentum = p->momentum;
    fin.acc = sb ? (const double *)(void *)sb->d : NULL;
    fin.running_mean = sq_cuda_f(running_mean);
    fin.running_var = sq_cuda_f(running_var);
    fin.save_mean = sq_cuda_f(save_mean);
    fin.save_invstd = sq_cuda_f(save_invstd);
    fin.gamma = sq_cuda_f(gamma);
    fin.beta = sq_cuda_f(beta);
    fin.coef = coef;
    if (p->training) {
        SQ_TRY(bn_fwd_train_stats(&k, p, sq_cuda_f(x), part, sb, &fin, st));
        coef = fin.coef;
    } else {
        bn_finalize_kernel<<<(unsigned)bn_ceil_div(k.C, BN_THREADS), BN_THREADS, 0, k.cu->stream>>>(
            fin);
        SQ_TRY(sq_cuda_launch_ok(k.what, st));
    }
    bn_apply_kernel<<<bn_ew_grid(&k), BN_THREADS, 0, k.cu->stream>>>(
        sq_cuda_f(x), coef, sq_cuda_f(residual), sq_cuda_f(y), (int)p->act, k.C, k.S, k.planes);
    return sq_cuda_launch_ok(k.what, st);
}

static sq_code bn_bwd_check(const bn_ctx *k, sq_view x, sq_view gamma, sq_view beta, sq_view sm,
                            sq_view si, sq_view dy, sq_view dx, sq_view dgamma, sq_view dbeta,
                            sq_status *st) {
    const int64_t n = sq_shape5_numel(k->s), C = k->C;
    SQ_TRY(check_req(k, x, n, "x", st));
    SQ_TRY(check_req(k, dy, n, "dy", st));
    SQ_TRY(check_req(k, sm, C, "save_mean", st));
    SQ_TRY(check_req(k, si, C, "save_invstd", st));
    SQ_TRY(check_opt(k, dx, n, st));
    SQ_TRY(check_opt(k, gamma, C, st));
    SQ_TRY(check_opt(k, beta, C, st));
    SQ_TRY(check_opt(k, dgamma, C, st));
    return check_opt(k, dbeta, C, st);
}

/* Stage 1 + combine of the backward sums into sb (backward layout); dgamma/dbeta accumulated. */
static sq_code bn_bwd_sums(const bn_ctx *k, const sq_bn *p, sq_view x, sq_view gamma, sq_view beta,
                           sq_view sm, sq_view si, sq_view dy, sq_view dgamma, sq_view dbeta,
                           sq_buf *sb, sq_status *st) {
    double *part = NULL;
    SQ_TRY(bn_workspace(k, 2, &part, NULL, st));
    double *sums = (double *)(void *)sb->d;
    bn_bwd_sums_kernel<<<bn_red_grid(k), BN_THREADS, 0, k->cu->stream>>>(
        sq_cuda_f(x), sq_cuda_f(dy), sq_cuda_f(gamma), sq_cuda_f(beta), sq_cuda_f(sm),
        sq_cuda_f(si), (int)p->act, k->C, k->S, k->P, part);
    SQ_TRY(sq_cuda_launch_ok(k->what, st));
    bn_tail acc = {BN_TAIL_BWD_ACCUM, bn_fin_args(), sq_cuda_f(dgamma), sq_cuda_f(dbeta)};
    return bn_launch_combine(k, part, 2, sums, sums + bn_bwd_sums_count(k->C), &acc, st);
}

extern "C" sq_code sq_cuda_bn_bwd(sq_backend *be, const sq_bn *p, sq_view x, sq_view gamma,
                                  sq_view beta, sq_view save_mean, sq_view save_invstd, sq_view dy,
                                  sq_view dx, sq_view dgamma, sq_view dbeta, sq_status *st) {
    bn_ctx k;
    SQ_TRY(bn_ctx_init(&k, be, p, "bn_bwd", st));
    SQ_TRY(bn_bwd_check(&k, x, gamma, beta, save_mean, save_invstd, dy, dx, dgamma, dbeta, st));
    const int want_dx = dx.buf != NULL, batch = p->training && want_dx;
    const double *sums = NULL;
    if (batch || dgamma.buf || dbeta.buf) {
        sq_buf *sb = NULL;
        SQ_TRY(sq_cuda_stats_buf(k.cu, bn_bwd_sums_len(k.C) * sizeof(double), &sb, st));
        SQ_TRY(
            bn_bwd_sums(&k, p, x, gamma, beta, save_mean, save_invstd, dy, dgamma, dbeta, sb, st));
        if (batch && p->sync) SQ_TRY(bn_sync_call(&k, p->sync, sb, 0, bn_bwd_sums_len(k.C), st));
        sums = (const double *)(void *)sb->d;
    }
    if (!want_dx) return SQ_OK;
    bn_bwd_dx_kernel<<<bn_ew_grid(&k), BN_THREADS, 0, k.cu->stream>>>(
        sq_cuda_f(x), sq_cuda_f(dy), sq_cuda_f(gamma), sq_cuda_f(beta), sq_cuda_f(save_mean),
        sq_cuda_f(save_invstd), batch ? sums : NULL, p->training, (int)p->act, k.C, k.S, k.planes,
        sq_cuda_f(dx));
    return sq_cuda_launch_ok(k.what, st);
}
