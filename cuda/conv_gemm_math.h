/* conv_gemm_math.h — the pure-C parts of the CUDA convolution path (conv_cudnn.c), kept apart so
 * that a host program (tests/cuda/test_cuda_conv_host.c) can check them without a GPU:
 *  - when a convolution is a GEMM (dense 1x1x1, stride 1, pad 0) and the column-major cuBLAS
 *    arguments of each direction (forward, backward data, backward filter);
 *  - the plan-cache key (compare and hash of the convolution parameters and the group count);
 *  - the choice of the fastest usable algorithm among cuDNN Find results;
 *  - the shape string used in error messages.
 * Nothing here includes a CUDA header.
 */
#ifndef SEGQA_CUDA_CONV_GEMM_MATH_H
#define SEGQA_CUDA_CONV_GEMM_MATH_H

#include "nn/backend.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The three directions of a convolution; a plan keeps one algorithm choice per direction. */
enum { SQ_CONV_FWD = 0, SQ_CONV_BWD_DATA = 1, SQ_CONV_BWD_FILTER = 2, SQ_CONV_DIRS = 3 };

/* Which tensor a GEMM operand is: x (or dx), w (or dw), y (or dy). */
enum { SQ_GEMM_X = 0, SQ_GEMM_W = 1, SQ_GEMM_Y = 2 };

/* One column-major GEMM per batch item i (cuBLAS convention):
 *   C_i = alpha * op(A_i) * op(B_i) + beta * C_i,  A_i = A + i * stride_a (floats), same for B, C
 * op(A_i) is m x k, op(B_i) is k x n, C_i is m x n. `sequential`: the batch items write the same C
 * (stride_c == 0) and must run one after the other, in order i = 0, 1, ... (a loop of sgemm with
 * beta 1: deterministic accumulation); otherwise they are independent (one strided-batched call).
 */
typedef struct sq_gemm_args {
    int a, b, c;        /* operands: SQ_GEMM_X / SQ_GEMM_W / SQ_GEMM_Y */
    int transa, transb; /* 0: N, 1: T */
    int m, n, k;
    int lda, ldb, ldc;
    long long stride_a, stride_b, stride_c;
    int batch;
    int sequential;
    float alpha, beta;
} sq_gemm_args;

/* 1 when the convolution is a plain GEMM per sample: dense, 1x1x1 kernel, stride 1, pad 0, and
 * every extent fits cuBLAS's int arguments. */
static inline int sq_conv_is_gemm(const sq_conv3d *p, int groups) {
    if (groups != 1) return 0;
    for (int a = 0; a < 3; a++)
        if (p->k[a] != 1 || p->stride[a] != 1 || p->pad[a] != 0) return 0;
    const int64_t s = (int64_t)p->in.d * p->in.h * p->in.w;
    return s >= 1 && s <= INT_MAX && p->in.c >= 1 && p->cout >= 1;
}

/* The GEMM of direction `dir` for a convolution where sq_conv_is_gemm(p, 1) holds.
 * Row-major per sample n, with S = D*H*W (NCDHW makes X_n a Cin x S matrix, W a Cout x Cin one):
 *   fwd:         Y_n  = W X_n                 (overwrite)
 *   bwd data:    dX_n = W^T dY_n              (overwrite)
 *   bwd filter:  dW  += sum_n dY_n X_n^T      (accumulate, n in order)
 * A row-major r x c matrix is a column-major c x r one with the same leading dimension, so:
 *   fwd:    Y_n^T (S x Cout)   = X_n^T (S x Cin) * W^T (Cin x Cout):    A=x N lda S, B=w N ldb Cin
 *   data:   dX_n^T (S x Cin)   = dY_n^T (S x Cout) * W (Cout x Cin):    A=dy N lda S, B=w T ldb Cin
 *   filter: dW^T (Cin x Cout) += X_n (Cin x S) * dY_n^T (S x Cout):     A=x T lda S, B=dy N ldb S
 */
static inline sq_gemm_args sq_conv_gemm_args(const sq_conv3d *p, int dir) {
    const int s = p->in.d * p->in.h * p->in.w, cin = p->in.c, cout = p->cout;
    sq_gemm_args g = {0};
    g.alpha = 1.0f;
    g.batch = p->in.n;
    if (dir == SQ_CONV_FWD) {
        g.a = SQ_GEMM_X, g.b = SQ_GEMM_W, g.c = SQ_GEMM_Y;
        g.m = s, g.n = cout, g.k = cin;
        g.lda = s, g.ldb = cin, g.ldc = s;
        g.stride_a = (long long)cin * s, g.stride_b = 0, g.stride_c = (long long)cout * s;
    } else if (dir == SQ_CONV_BWD_DATA) {
        g.a = SQ_GEMM_Y, g.b = SQ_GEMM_W, g.c = SQ_GEMM_X;
        g.transb = 1;
        g.m = s, g.n = cin, g.k = cout;
        g.lda = s, g.ldb = cin, g.ldc = s;
        g.stride_a = (long long)cout * s, g.stride_b = 0, g.stride_c = (long long)cin * s;
    } else {
        g.a = SQ_GEMM_X, g.b = SQ_GEMM_Y, g.c = SQ_GEMM_W;
        g.transa = 1;
        g.m = cin, g.n = cout, g.k = s;
        g.lda = s, g.ldb = s, g.ldc = cin;
        g.stride_a = (long long)cin * s, g.stride_b = (long long)cout * s, g.stride_c = 0;
        g.sequential = 1;
        g.beta = 1.0f;
    }
    return g;
}

/* --- plan-cache key ------------------------------------------------------------------------- */
/* Everything a plan depends on (the backend's math and determinism settings are fixed per
 * backend). All ints: no padding, so a zeroed key compares field by field. */
typedef struct sq_conv_key {
    int in[5]; /* n, c, d, h, w */
    int cout;
    int k[3], stride[3], pad[3];
    int groups;
} sq_conv_key;

static inline sq_conv_key sq_conv_key_make(const sq_conv3d *p, int groups) {
    sq_conv_key key = {{p->in.n, p->in.c, p->in.d, p->in.h, p->in.w},
                       p->cout,
                       {p->k[0], p->k[1], p->k[2]},
                       {p->stride[0], p->stride[1], p->stride[2]},
                       {p->pad[0], p->pad[1], p->pad[2]},
                       groups};
    return key;
}

static inline int sq_conv_key_eq(const sq_conv_key *a, const sq_conv_key *b) {
    for (int i = 0; i < 5; i++)
        if (a->in[i] != b->in[i]) return 0;
    for (int i = 0; i < 3; i++)
        if (a->k[i] != b->k[i] || a->stride[i] != b->stride[i] || a->pad[i] != b->pad[i]) return 0;
    return a->cout == b->cout && a->groups == b->groups;
}

/* FNV-1a over the key's ints, in field order. */
static inline uint64_t sq_conv_key_hash(const sq_conv_key *key) {
    const int v[] = {key->in[0],  key->in[1],     key->in[2],     key->in[3],
                     key->in[4],  key->cout,      key->k[0],      key->k[1],
                     key->k[2],   key->stride[0], key->stride[1], key->stride[2],
                     key->pad[0], key->pad[1],    key->pad[2],    key->groups};
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint32_t u = (uint32_t)v[i];
        for (int byte = 0; byte < 4; byte++) {
            h ^= (u >> (8 * byte)) & 0xffu;
            h *= 1099511628211ull;
        }
    }
    return h;
}

/* --- algorithm choice ------------------------------------------------------------------------ */
/* One cuDNN Find result, reduced to what the choice needs (conv_cudnn.c fills it). */
typedef struct sq_conv_algo_cand {
    int success;       /* status == CUDNN_STATUS_SUCCESS */
    int deterministic; /* determinism == CUDNN_DETERMINISTIC */
    int math_ok;       /* mathType allowed by the requested math (strict FP32 / TF32) */
    float ms;          /* measured time */
    size_t memory;     /* workspace bytes */
} sq_conv_algo_cand;

/* Index of the fastest usable candidate (success, math allowed, deterministic where required,
 * workspace within `ws_cap`), the first one on a tie; -1 when none is usable. */
static inline int sq_conv_pick_algo(const sq_conv_algo_cand *c, int n, int need_deterministic,
                                    size_t ws_cap) {
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (!c[i].success || !c[i].math_ok || c[i].memory > ws_cap) continue;
        if (need_deterministic && !c[i].deterministic) continue;
        if (c[i].ms != c[i].ms || c[i].ms < 0.0f) continue; /* NaN or negative: not measured */
        if (best < 0 || c[i].ms < c[best].ms) best = i;
    }
    return best;
}

/* "2x32x28x160x160 -> 64 k3x3x3 s1x2x2 p1x1x1" (+ " g32" for grouped), for messages. */
static inline const char *sq_conv_desc(const sq_conv3d *p, int groups, char *buf, size_t n) {
    int len = snprintf(buf, n, "%dx%dx%dx%dx%d -> %d k%dx%dx%d s%dx%dx%d p%dx%dx%d", p->in.n,
                       p->in.c, p->in.d, p->in.h, p->in.w, p->cout, p->k[0], p->k[1], p->k[2],
                       p->stride[0], p->stride[1], p->stride[2], p->pad[0], p->pad[1], p->pad[2]);
    if (groups != 1 && len >= 0 && (size_t)len < n)
        snprintf(buf + len, n - (size_t)len, " g%d", groups);
    return buf;
}

/* --- query for benchmarks and tests (conv_cudnn.c; needs the CUDA backend) -------------------- */
/* What a plan chose for one direction. */
typedef struct sq_conv_plan_info {
    int planned;             /* 0: this direction has not run yet for this shape */
    int use_gemm;            /* 1: cuBLAS GEMM; 0: cuDNN */
    int cudnn_ok;            /* a usable cuDNN algorithm was found */
    int algo;                /* the cuDNN algorithm (cudnnConvolution*Algo_t), -1 if none */
    int math;                /* its cudnnMathType_t */
    size_t ws;               /* its workspace bytes */
    float ms_cudnn, ms_gemm; /* plan-time timings (1x1x1 shapes); -1 where not measured */
} sq_conv_plan_info;

/* Fills *out for (p, groups, dir); SQ_ERR_RANGE when no plan of that shape exists. */
sq_code sq_cuda_conv_plan_info(sq_backend *be, const sq_conv3d *p, int groups, int dir,
                               sq_conv_plan_info *out, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
