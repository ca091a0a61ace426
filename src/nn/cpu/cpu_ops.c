/* cpu_ops.c — the CPU backend's non-convolution ops: BatchNorm (+ activation, + residual),
 * activations, PReLU, global average pooling, channel scaling, nearest resize, fast normalised
 * fusion, add/axpy, MSE loss and Adam. OpenMP over channels or planes; reductions in
 * double. Semantics and argument shapes are those of nn/backend.h.
 */
#include "nn/cpu/cpu.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define NT num_threads(sq_cpu_of(be)->threads)

/* PReLU works on 4-float GCC vectors; masks replace branches. */
typedef float v4 __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));
typedef float v4u __attribute__((vector_size(16), aligned(4), may_alias));

static inline v4 vsel(v4i m, v4 a, v4 b) {
    return (v4)((m & (v4i)a) | (~m & (v4i)b));
}

/* BatchNorm and activation kernels (act_kernels.h), once per ISA; KERN picks the backend's. */
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef int v8i __attribute__((vector_size(32)));

#define AK_RBLOCK 2048

#define AK_SUFFIX       avx2
#define AK_TARGET       __attribute__((target("avx2,fma")))
#define AK_FMA(a, b, c) ((v8)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#include "nn/cpu/act_kernels.h"
#undef AK_SUFFIX
#undef AK_TARGET
#undef AK_FMA

#define AK_SUFFIX portable
#define AK_TARGET
#define AK_FMA(a, b, c) ((a) * (b) + (c))
#include "nn/cpu/act_kernels.h"
#undef AK_SUFFIX
#undef AK_TARGET
#undef AK_FMA

#define KERN(be, name) (sq_cpu_of(be)->isa == SQ_ISA_AVX2 ? name##_avx2 : name##_portable)

#define CHUNK 16384 /* elements per task of the element-wise loops */

#define check_shape sq_shape5_check /* shapes.c, shared with every backend */

/* Reductions: float vector partial sums over blocks of 2048, accumulated in double. */
#define RBLOCK 2048

static double sum_f(const float *x, size_t n) {
    double s = 0.0;
    for (size_t lo = 0; lo < n; lo += RBLOCK) {
        const size_t hi = lo + RBLOCK < n ? lo + RBLOCK : n;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (size_t i = lo; i < hi; i++)
            part += x[i];
        s += part;
    }
    return s;
}

static double sumsq_dev(const float *x, size_t n, float m) {
    double s = 0.0;
    for (size_t lo = 0; lo < n; lo += RBLOCK) {
        const size_t hi = lo + RBLOCK < n ? lo + RBLOCK : n;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (size_t i = lo; i < hi; i++)
            part += (x[i] - m) * (x[i] - m);
        s += part;
    }
    return s;
}

/* ---- BatchNorm ----------------------------------------------------------------------------- */

/* Per-channel sums of x over the batch: sum_f and sumsq_dev, in double across blocks. */
static double ch_sum(const float *px, sq_shape5 s, int c) {
    const size_t S = (size_t)s.d * s.h * s.w;
    double sum = 0.0;
    for (int n = 0; n < s.n; n++)
        sum += sum_f(px + ((size_t)n * s.c + c) * S, S);
    return sum;
}

static double ch_sumsq_dev(const float *px, sq_shape5 s, int c, float m) {
    const size_t S = (size_t)s.d * s.h * s.w;
    double ss = 0.0;
    for (int n = 0; n < s.n; n++)
        ss += sumsq_dev(px + ((size_t)n * s.c + c) * S, S, m);
    return ss;
}

/* Synchronised BN statistics (sq_bn_sync): the per-channel sums are taken in two parallel passes
 * with the group sums between them. acc: [0, C) sum x, [C] element count, [C+1, 2C+1) sum of
 * squared deviations from the global mean. Without a group bn_fwd computes the same sums per
 * channel inside its one loop, while the channel's data is still in cache. */
static sq_code bn_sync_stats(sq_backend *be, const sq_bn *p, const float *px, double *acc,
                             sq_status *st) {
    const sq_shape5 s = p->shape;
    const int C = s.c;
    sq_buf *sb = sq_cpu_of(be)->stats;
#pragma omp parallel for schedule(dynamic, 1) NT
    for (int c = 0; c < C; c++)
        acc[c] = ch_sum(px, s, c);
    acc[C] = (double)s.n * (double)s.d * s.h * s.w;
    SQ_TRY(p->sync->sum(p->sync->ctx, be, sb, 0, C + 1, st));
#pragma omp parallel for schedule(dynamic, 1) NT
    for (int c = 0; c < C; c++)
        acc[C + 1 + c] = ch_sumsq_dev(px, s, c, (float)(acc[c] / acc[C]));
    return p->sync->sum(p->sync->ctx, be, sb, (size_t)(C + 1) * sizeof(double), C, st);
}

/* Mean and 1/sqrt(var + eps) of channel c (training: batch statistics, running ones updated). */
static void bn_channel_stats(sq_backend *be, const sq_bn *p, const float *px, const double *acc,
                             int c, float *prm, float *prv, float *mean, float *invstd) {
    const sq_shape5 s = p->shape;
    if (!p->training) {
        *mean = prm[c];
        *invstd = (float)(1.0 / sqrt((double)prv[c] + p->eps));
        return;
    }
    double M, mu, ss;
    if (acc) {
        M = acc[s.c];
        mu = acc[c] / M;
        ss = acc[s.c + 1 + c];
    } else {
        M = (double)s.n * (double)s.d * s.h * s.w;
        /* two passes, as the synchronised path: sum, then deviations from the rounded mean */
        mu = ch_sum(px, s, c) / M;
        ss = ch_sumsq_dev(px, s, c, (float)mu);
    }
    const double var = ss / M;
    *mean = (float)mu;
    *invstd = (float)(1.0 / sqrt(var + p->eps));
    if (prm) prm[c] = (1.0f - p->momentum) * prm[c] + p->momentum * *mean;
    if (prv) {
        const double unb = M > 1 ? ss / (M - 1) : var;
        prv[c] = (1.0f - p->momentum) * prv[c] + p->momentum * (float)unb;
    }
}

static sq_code bn_fwd(sq_backend *be, const sq_bn *p, sq_view x, sq_view gamma, sq_view beta,
                      sq_view running_mean, sq_view running_var, sq_view residual, sq_view y,
                      sq_view save_mean, sq_view save_invstd, sq_status *st) {
    const sq_shape5 s = p->shape;
    SQ_TRY(check_shape(s, "bn_fwd", st));
    const float *px = sq_cpu_f(x), *pg = sq_cpu_f(gamma), *pb = sq_cpu_f(beta),
                *pr = sq_cpu_f(residual);
    float *prm = sq_cpu_f(running_mean), *prv = sq_cpu_f(running_var), *py = sq_cpu_f(y),
          *psm = sq_cpu_f(save_mean), *psi = sq_cpu_f(save_invstd);
    const int C = s.c;
    const size_t S = (size_t)s.d * s.h * s.w;
    double *acc = NULL; /* group statistics (synchronised BN only), in the backend's stats buffer */
    if (p->training && p->sync) {
        SQ_TRY(sq_cpu_stats_reserve(be, 2 * (size_t)C + 1, &acc, st));
        if (bn_sync_stats(be, p, px, acc, st) != SQ_OK)
            return sq_context(st, "bn_fwd: synchronised statistics");
    }
#pragma omp parallel for schedule(dynamic, 1) NT
    for (int c = 0; c < C; c++) {
        float mean, invstd;
        bn_channel_stats(be, p, px, acc, c, prm, prv, &mean, &invstd);
        if (psm) psm[c] = mean;
        if (psi) psi[c] = invstd;
        const float a = (pg ? pg[c] : 1.0f) * invstd;
        const float b = (pb ? pb[c] : 0.0f) - mean * a;
        for (int n = 0; n < s.n; n++) {
            const size_t o = ((size_t)n * C + c) * S;
            KERN(be, act_apply)(p->act, py + o, px + o, pr ? pr + o : NULL, S, a, b);
        }
    }
    return SQ_OK;
}

/* Whether bn_bwd keeps g' = dy * act'(z) in dx between its passes (sigmoid and swish, whose
 * derivative costs more than a write and a read) or recomputes it from dy and x (none, ReLU). */
static int bn_keeps_g(sq_act a) {
    return a == SQ_ACT_SIGMOID || a == SQ_ACT_SWISH;
}

/* bn_bwd pass 1 for channel c: *sg = sum g', *sgx = sum g' * xhat (g' kept in dx where
 * bn_keeps_g); dgamma/dbeta accumulated (they stay local: the all-reduce sums them). */
static void bn_bwd_pass1(sq_backend *be, const sq_bn *p, int c, const float *px, const float *pg,
                         const float *pb, const float *psm, const float *psi, const float *pdy,
                         float *pdx, float *pdg, float *pdb, double *sg, double *sgx) {
    const sq_shape5 s = p->shape;
    const size_t S = (size_t)s.d * s.h * s.w;
    const float mean = psm[c], invstd = psi[c], g = pg ? pg[c] : 1.0f, bt = pb ? pb[c] : 0.0f;
    const float sa = g * invstd, sb = bt - mean * sa;
    const int keep = pdx && bn_keeps_g(p->act);
    *sg = 0.0;
    *sgx = 0.0;
    for (int n = 0; n < s.n; n++) {
        const size_t o = ((size_t)n * s.c + c) * S;
        KERN(be, bn_grad_sums)
        (p->act, keep ? pdx + o : NULL, pdy + o, px + o, S, sa, sb, mean, invstd, sg, sgx);
    }
    if (pdg) pdg[c] += (float)*sgx;
    if (pdb) pdb[c] += (float)*sg;
}

/* pass 2: dx = gamma * invstd * (g' - mean(g') - xhat * mean(g' xhat)), means over M elements */
static void bn_bwd_pass2(sq_backend *be, const sq_bn *p, int c, const float *px, const float *pg,
                         const float *pb, const float *psm, const float *psi, const float *pdy,
                         float *pdx, double sg, double sgx, double M) {
    const sq_shape5 s = p->shape;
    const size_t S = (size_t)s.d * s.h * s.w;
    const float mean = psm[c], invstd = psi[c], g = pg ? pg[c] : 1.0f, bt = pb ? pb[c] : 0.0f;
    const float sa = g * invstd, sb = bt - mean * sa, k = g * invstd;
    const float mg = p->training ? (float)(sg / M) : 0.0f;
    const float mgx = p->training ? (float)(sgx / M) : 0.0f;
    const int keep = bn_keeps_g(p->act);
    for (int n = 0; n < s.n; n++) {
        const size_t o = ((size_t)n * s.c + c) * S;
        KERN(be, bn_grad_apply)
        (p->act, pdx + o, keep ? pdx + o : NULL, pdy + o, px + o, S, sa, sb, mean, invstd, k, mg,
         mgx);
    }
}

static sq_code bn_bwd(sq_backend *be, const sq_bn *p, sq_view x, sq_view gamma, sq_view beta,
                      sq_view save_mean, sq_view save_invstd, sq_view dy, sq_view dx,
                      sq_view dgamma, sq_view dbeta, sq_status *st) {
    const sq_shape5 s = p->shape;
    SQ_TRY(check_shape(s, "bn_bwd", st));
    const float *px = sq_cpu_f(x), *pg = sq_cpu_f(gamma), *pb = sq_cpu_f(beta),
                *psm = sq_cpu_f(save_mean), *psi = sq_cpu_f(save_invstd), *pdy = sq_cpu_f(dy);
    float *pdx = sq_cpu_f(dx), *pdg = sq_cpu_f(dgamma), *pdb = sq_cpu_f(dbeta);
    const int C = s.c;
    const size_t S = (size_t)s.d * s.h * s.w;
    if (!(pdx && p->training && p->sync)) { /* local: both passes per channel, data in cache */
        const double M = (double)s.n * (double)S;
#pragma omp parallel for schedule(dynamic, 1) NT
        for (int c = 0; c < C; c++) {
            double sg, sgx;
            bn_bwd_pass1(be, p, c, px, pg, pb, psm, psi, pdy, pdx, pdg, pdb, &sg, &sgx);
            if (pdx) bn_bwd_pass2(be, p, c, px, pg, pb, psm, psi, pdy, pdx, sg, sgx, M);
        }
        return SQ_OK;
    }
    /* synchronised: sums[c] = sum g', sums[C + c] = sum g' xhat, sums[2C] = count (group sums) */
    double *sums = NULL;
    SQ_TRY(sq_cpu_stats_reserve(be, 2 * (size_t)C + 1, &sums, st));
#pragma omp parallel for schedule(dynamic, 1) NT
    for (int c = 0; c < C; c++)
        bn_bwd_pass1(be, p, c, px, pg, pb, psm, psi, pdy, pdx, pdg, pdb, &sums[c], &sums[C + c]);
    sums[2 * C] = (double)s.n * (double)S;
    const sq_code rc = p->sync->sum(p->sync->ctx, be, sq_cpu_of(be)->stats, 0, 2 * C + 1, st);
    if (rc == SQ_OK) {
#pragma omp parallel for schedule(dynamic, 1) NT
        for (int c = 0; c < C; c++)
            bn_bwd_pass2(be, p, c, px, pg, pb, psm, psi, pdy, pdx, sums[c], sums[C + c],
                         sums[2 * C]);
    }
    return rc == SQ_OK ? SQ_OK : sq_context(st, "bn_bwd: synchronised sums");
}

/* ---- activations ------------------------------------------------------------------------- */

static sq_code act_fwd(sq_backend *be, sq_act act, int64_t n, sq_view x, sq_view y, sq_status *st) {
    (void)st;
    const float *px = sq_cpu_f(x);
    float *py = sq_cpu_f(y);
    const int64_t tasks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) NT
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t lo = t * CHUNK, len = n - lo < CHUNK ? n - lo : CHUNK;
        KERN(be, act_apply)(act, py + lo, px + lo, NULL, (size_t)len, 1.0f, 0.0f);
    }
    return SQ_OK;
}

static sq_code act_bwd(sq_backend *be, sq_act act, int64_t n, sq_view x, sq_view dy, sq_view dx,
                       sq_status *st) {
    (void)st;
    const float *px = sq_cpu_f(x), *pdy = sq_cpu_f(dy);
    float *pdx = sq_cpu_f(dx);
    const int64_t tasks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) NT
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t lo = t * CHUNK, len = n - lo < CHUNK ? n - lo : CHUNK;
        KERN(be, act_grad)(act, pdx + lo, pdy + lo, px + lo, (size_t)len, 1.0f, 0.0f);
    }
    return SQ_OK;
}

/* ---- PReLU --------------------------------------------------------------------------------- */

static sq_code prelu_fwd(sq_backend *be, sq_shape5 s, sq_view x, sq_view alpha, sq_view y,
                         sq_status *st) {
    SQ_TRY(check_shape(s, "prelu_fwd", st));
    const float *px = sq_cpu_f(x), *pa = sq_cpu_f(alpha);
    float *py = sq_cpu_f(y);
    const size_t S = (size_t)s.d * s.h * s.w;
    const int planes = s.n * s.c;
#pragma omp parallel for schedule(static) NT
    for (int pl = 0; pl < planes; pl++) {
        const float a = pa[pl % s.c];
        const float *xp = px + pl * S;
        float *yp = py + pl * S;
        size_t i = 0;
        for (; i + 4 <= S; i += 4) {
            const v4 v = *(const v4u *)(xp + i);
            *(v4u *)(yp + i) = vsel(v > 0.0f, v, v * a);
        }
        for (; i < S; i++)
            yp[i] = xp[i] > 0.0f ? xp[i] : a * xp[i];
    }
    return SQ_OK;
}

static sq_code prelu_bwd(sq_backend *be, sq_shape5 s, sq_view x, sq_view alpha, sq_view dy,
                         sq_view dx, sq_view dalpha, sq_status *st) {
    SQ_TRY(check_shape(s, "prelu_bwd", st));
    const float *px = sq_cpu_f(x), *pa = sq_cpu_f(alpha), *pdy = sq_cpu_f(dy);
    float *pdx = sq_cpu_f(dx), *pda = sq_cpu_f(dalpha);
    const size_t S = (size_t)s.d * s.h * s.w;
#pragma omp parallel for schedule(static) NT
    for (int c = 0; c < s.c; c++) {
        const float a = pa[c];
        double da = 0.0;
        for (int n = 0; n < s.n; n++) {
            const size_t o = ((size_t)n * s.c + c) * S;
            float part = 0.0f;
            for (size_t i = 0; i < S; i++) {
                const float xv = px[o + i], g = pdy[o + i];
                if (pdx) pdx[o + i] = xv > 0.0f ? g : a * g;
                if (xv <= 0.0f) part += g * xv;
            }
            da += part;
        }
        if (pda) pda[c] += (float)da;
    }
    return SQ_OK;
}

/* ---- global average pooling, channel scaling ---------------------------------------------- */

static sq_code gap_fwd(sq_backend *be, sq_shape5 s, sq_view x, sq_view y, sq_status *st) {
    SQ_TRY(check_shape(s, "gap_fwd", st));
    const float *px = sq_cpu_f(x);
    float *py = sq_cpu_f(y);
    const size_t S = (size_t)s.d * s.h * s.w;
    const int planes = s.n * s.c;
#pragma omp parallel for schedule(static) NT
    for (int pl = 0; pl < planes; pl++) {
        const float *xp = px + pl * S;
        double sum = 0.0;
        for (size_t lo = 0; lo < S; lo += 4096) {
            const size_t hi = lo + 4096 < S ? lo + 4096 : S;
            float part = 0.0f;
#pragma omp simd reduction(+ : part)
            for (size_t i = lo; i < hi; i++)
                part += xp[i];
            sum += part;
        }
        py[pl] = (float)(sum / (double)S);
    }
    return SQ_OK;
}

/* dx = dy / S (accumulate 0) or dx += dy / S (accumulate 1), plane by plane. */
static void gap_spread(sq_backend *be, sq_shape5 s, const float *pdy, float *pdx, int accumulate) {
    const size_t S = (size_t)s.d * s.h * s.w;
    const int planes = s.n * s.c;
#pragma omp parallel for schedule(static) NT
    for (int pl = 0; pl < planes; pl++) {
        const float g = pdy[pl] / (float)S;
        float *xp = pdx + pl * S;
        if (accumulate) {
#pragma omp simd
            for (size_t i = 0; i < S; i++)
                xp[i] += g;
        } else {
            for (size_t i = 0; i < S; i++)
                xp[i] = g;
        }
    }
}

static sq_code gap_bwd(sq_backend *be, sq_shape5 s, sq_view dy, sq_view dx, sq_status *st) {
    SQ_TRY(check_shape(s, "gap_bwd", st));
    gap_spread(be, s, sq_cpu_f(dy), sq_cpu_f(dx), 0);
    return SQ_OK;
}

sq_code sq_cpu_gap_bwd_add(sq_backend *be, sq_shape5 s, sq_view dy, sq_view dx, sq_status *st) {
    SQ_TRY(check_shape(s, "gap_bwd_add", st));
    gap_spread(be, s, sq_cpu_f(dy), sq_cpu_f(dx), 1);
    return SQ_OK;
}

static sq_code chscale_fwd(sq_backend *be, sq_shape5 s, sq_view x, sq_view scale, sq_view y,
                           sq_status *st) {
    SQ_TRY(check_shape(s, "chscale_fwd", st));
    const float *px = sq_cpu_f(x), *ps = sq_cpu_f(scale);
    float *py = sq_cpu_f(y);
    const size_t S = (size_t)s.d * s.h * s.w;
    const int planes = s.n * s.c;
#pragma omp parallel for schedule(static) NT
    for (int pl = 0; pl < planes; pl++) {
        const float a = ps[pl];
        const float *xp = px + pl * S;
        float *yp = py + pl * S;
        for (size_t i = 0; i < S; i++)
            yp[i] = xp[i] * a;
    }
    return SQ_OK;
}

static sq_code chscale_bwd(sq_backend *be, sq_shape5 s, sq_view x, sq_view scale, sq_view dy,
                           sq_view dx, sq_view dscale, sq_status *st) {
    SQ_TRY(check_shape(s, "chscale_bwd", st));
    const float *px = sq_cpu_f(x), *ps = sq_cpu_f(scale), *pdy = sq_cpu_f(dy);
    float *pdx = sq_cpu_f(dx), *pds = sq_cpu_f(dscale);
    const size_t S = (size_t)s.d * s.h * s.w;
    const int planes = s.n * s.c;
#pragma omp parallel for schedule(static) NT
    for (int pl = 0; pl < planes; pl++) {
        const float a = ps[pl];
        const float *xp = px + pl * S, *gp = pdy + pl * S;
        float acc = 0.0f;
        if (pdx) {
            float *dp = pdx + pl * S;
            for (size_t i = 0; i < S; i++)
                dp[i] = gp[i] * a;
        }
        if (pds) {
            double sum = 0.0;
            for (size_t lo = 0; lo < S; lo += 4096) {
                const size_t hi = lo + 4096 < S ? lo + 4096 : S;
                acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (size_t i = lo; i < hi; i++)
                    acc += gp[i] * xp[i];
                sum += acc;
            }
            pds[pl] = (float)sum;
        }
    }
    return SQ_OK;
}

/* ---- nearest resize ---------------------------------------------------------------------- */

static sq_code resize3d_fwd(sq_backend *be, const sq_resize3d *p, sq_view x, sq_view y,
                            sq_status *st) {
    SQ_TRY(sq_resize3d_check(p, st));
    const sq_shape5 s = p->in;
    const int Do = p->out[0], Ho = p->out[1], Wo = p->out[2];
    const float *px = sq_cpu_f(x);
    float *py = sq_cpu_f(y);
    const size_t S = (size_t)s.d * s.h * s.w, So = (size_t)Do * Ho * Wo;
    const int planes = s.n * s.c;
#pragma omp parallel for schedule(static) NT
    for (int pl = 0; pl < planes; pl++) {
        const float *xp = px + pl * S;
        float *yp = py + pl * So;
        for (int od = 0; od < Do; od++) {
            const int id = (int)((int64_t)od * s.d / Do);
            for (int oh = 0; oh < Ho; oh++) {
                const int ih = (int)((int64_t)oh * s.h / Ho);
                const float *xr = xp + ((size_t)id * s.h + ih) * s.w;
                float *yr = yp + ((size_t)od * Ho + oh) * Wo;
                for (int ow = 0; ow < Wo; ow++)
                    yr[ow] = xr[(int64_t)ow * s.w / Wo];
            }
        }
    }
    return SQ_OK;
}

static sq_code resize3d_bwd(sq_backend *be, const sq_resize3d *p, sq_view dy, sq_view dx,
                            sq_status *st) {
    SQ_TRY(sq_resize3d_check(p, st));
    const sq_shape5 s = p->in;
    const int Do = p->out[0], Ho = p->out[1], Wo = p->out[2];
    const float *pdy = sq_cpu_f(dy);
    float *pdx = sq_cpu_f(dx);
    const size_t S = (size_t)s.d * s.h * s.w, So = (size_t)Do * Ho * Wo;
    const int planes = s.n * s.c;
#pragma omp parallel for schedule(static) NT
    for (int pl = 0; pl < planes; pl++) {
        float *xp = pdx + pl * S;
        const float *yp = pdy + pl * So;
        memset(xp, 0, S * sizeof(float));
        for (int od = 0; od < Do; od++) {
            const int id = (int)((int64_t)od * s.d / Do);
            for (int oh = 0; oh < Ho; oh++) {
                const int ih = (int)((int64_t)oh * s.h / Ho);
                float *xr = xp + ((size_t)id * s.h + ih) * s.w;
                const float *yr = yp + ((size_t)od * Ho + oh) * Wo;
                for (int ow = 0; ow < Wo; ow++)
                    xr[(int64_t)ow * s.w / Wo] += yr[ow];
            }
        }
    }
    return SQ_OK;
}

/* ---- fast normalised fusion ---------------------------------------------------------------- */

#define FUSE_KMAX 8
#define FUSE_EPS  1e-4f

static sq_code fuse_fwd(sq_backend *be, sq_shape5 s, int k, const sq_view *xs, sq_view w, sq_view y,
                        sq_status *st) {
    SQ_TRY(check_shape(s, "fuse_fwd", st));
    if (k < 1 || k > FUSE_KMAX)
        return sq_fail(st, SQ_ERR_RANGE, "fuse_fwd: %d inputs, expected 1..%d", k, FUSE_KMAX);
    const float *pw = sq_cpu_f(w);
    const float *px[FUSE_KMAX];
    float a[FUSE_KMAX], sum = 0.0f;
    for (int i = 0; i < k; i++) {
        px[i] = sq_cpu_f(xs[i]);
        a[i] = pw[i] > 0.0f ? pw[i] : 0.0f;
        sum += a[i];
    }
    for (int i = 0; i < k; i++)
        a[i] /= sum + FUSE_EPS;
    float *py = sq_cpu_f(y);
    const int64_t n = sq_shape5_numel(s);
    const int64_t tasks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) NT
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t lo = t * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        const float *x0 = px[0];
        const float a0 = a[0];
#pragma omp simd
        for (int64_t j = lo; j < hi; j++)
            py[j] = a0 * x0[j];
        for (int i = 1; i < k; i++) {
            const float *xi = px[i];
            const float ai = a[i];
#pragma omp simd
            for (int64_t j = lo; j < hi; j++)
                py[j] += ai * xi[j];
        }
    }
    return SQ_OK;
}

static sq_code fuse_bwd(sq_backend *be, sq_shape5 s, int k, const sq_view *xs, sq_view w,
                        sq_view dy, sq_view *dxs, sq_view dw, sq_status *st) {
    SQ_TRY(check_shape(s, "fuse_bwd", st));
    if (k < 1 || k > FUSE_KMAX)
        return sq_fail(st, SQ_ERR_RANGE, "fuse_bwd: %d inputs, expected 1..%d", k, FUSE_KMAX);
    const float *pw = sq_cpu_f(w), *pdy = sq_cpu_f(dy);
    float *pdw = sq_cpu_f(dw);
    float r[FUSE_KMAX], sum = 0.0f;
    for (int i = 0; i < k; i++) {
        r[i] = pw[i] > 0.0f ? pw[i] : 0.0f;
        sum += r[i];
    }
    const float T = sum + FUSE_EPS;
    const int64_t n = sq_shape5_numel(s);
    const float *px[FUSE_KMAX];
    float *pdx[FUSE_KMAX], a[FUSE_KMAX];
    for (int i = 0; i < k; i++) {
        px[i] = sq_cpu_f(xs[i]);
        pdx[i] = sq_cpu_f(dxs[i]);
        a[i] = r[i] / T;
    }
    /* one pass: dx_i = a_i dy, and per-chunk partial sums D_i = sum dy * x_i, kept per chunk and
     * added in chunk order (in double), so the result does not depend on the thread count */
    const int64_t tasks = (n + CHUNK - 1) / CHUNK;
    double D[FUSE_KMAX] = {0};
    double *part = pdw ? malloc((size_t)tasks * FUSE_KMAX * sizeof *part) : NULL;
    if (pdw && !part)
        return sq_fail(st, SQ_ERR_NOMEM, "fuse_bwd: out of memory (%lld chunks)", (long long)tasks);
#pragma omp parallel for schedule(static) NT
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t lo = t * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        for (int i = 0; i < k; i++) {
            const float *x = px[i];
            float *dx = pdx[i];
            const float ai = a[i];
            float acc = 0.0f;
            if (dx) {
#pragma omp simd
                for (int64_t j = lo; j < hi; j++)
                    dx[j] = ai * pdy[j];
            }
            if (part) {
#pragma omp simd reduction(+ : acc)
                for (int64_t j = lo; j < hi; j++)
                    acc += pdy[j] * x[j];
                part[t * FUSE_KMAX + i] = acc;
            }
        }
    }
    for (int64_t t = 0; part && t < tasks; t++)
        for (int i = 0; i < k; i++)
            D[i] += part[t * FUSE_KMAX + i];
    free(part);
    if (!pdw) return SQ_OK;
    /* dL/dr_i = (D_i - sum_j r_j D_j / T) / T */
    double mix = 0.0;
    for (int j = 0; j < k; j++)
        mix += r[j] * D[j];
    for (int i = 0; i < k; i++)
        if (pw[i] > 0.0f) pdw[i] += (float)((D[i] - mix / T) / T);
    return SQ_OK;
}

/* ---- add, axpy, MSE, Adam ------------------------------------------------------------------ */

static sq_code add(sq_backend *be, int64_t n, sq_view a, sq_view b, sq_view y, sq_status *st) {
    (void)st;
    const float *pa = sq_cpu_f(a), *pb = sq_cpu_f(b);
    float *py = sq_cpu_f(y);
#pragma omp parallel for schedule(static) NT
    for (int64_t i = 0; i < n; i++)
        py[i] = pa[i] + pb[i];
    return SQ_OK;
}

static sq_code axpy(sq_backend *be, int64_t n, float alpha, sq_view x, sq_view y, sq_status *st) {
    (void)st;
    const float *px = sq_cpu_f(x);
    float *py = sq_cpu_f(y);
#pragma omp parallel for schedule(static) NT
    for (int64_t i = 0; i < n; i++)
        py[i] += alpha * px[i];
    return SQ_OK;
}

static sq_code scale(sq_backend *be, int64_t n, float alpha, sq_view x, sq_view y, sq_status *st) {
    (void)st;
    const float *px = sq_cpu_f(x);
    float *py = sq_cpu_f(y);
#pragma omp parallel for schedule(static) NT
    for (int64_t i = 0; i < n; i++)
        py[i] = px[i] * alpha;
    return SQ_OK;
}

/* Sum of squares in double, in fixed-size blocks combined in order, so the result does not depend
 * on the thread count. */
static sq_code sumsq(sq_backend *be, int64_t n, sq_view x, sq_view out, sq_status *st) {
    (void)st;
    const float *px = sq_cpu_f(x);
    const int64_t nb = (n + RBLOCK - 1) / RBLOCK;
    double total = 0.0;
    if (nb > 0) {
        double *part = malloc((size_t)nb * sizeof *part);
        if (!part)
            return sq_fail(st, SQ_ERR_NOMEM, "sumsq: out of memory (%lld blocks)", (long long)nb);
#pragma omp parallel for schedule(static) NT
        for (int64_t b = 0; b < nb; b++) {
            const int64_t lo = b * RBLOCK, hi = lo + RBLOCK < n ? lo + RBLOCK : n;
            double a = 0.0;
            for (int64_t i = lo; i < hi; i++)
                a += (double)px[i] * px[i];
            part[b] = a;
        }
        for (int64_t b = 0; b < nb; b++)
            total += part[b];
        free(part);
    }
    *sq_cpu_f(out) = (float)total;
    return SQ_OK;
}

static sq_code mse_fwd(sq_backend *be, int64_t n, sq_view pred, sq_view target, sq_view loss,
                       sq_status *st) {
    (void)be;
    if (n < 1) return sq_fail(st, SQ_ERR_RANGE, "mse_fwd: %lld elements", (long long)n);
    const float *p = sq_cpu_f(pred), *t = sq_cpu_f(target);
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++)
        acc += ((double)p[i] - t[i]) * ((double)p[i] - t[i]);
    *sq_cpu_f(loss) = (float)(acc / (double)n);
    return SQ_OK;
}

static sq_code mse_bwd(sq_backend *be, int64_t n, sq_view pred, sq_view target, float scale,
                       sq_view dpred, sq_status *st) {
    (void)be;
    if (n < 1) return sq_fail(st, SQ_ERR_RANGE, "mse_bwd: %lld elements", (long long)n);
    const float *p = sq_cpu_f(pred), *t = sq_cpu_f(target);
    float *d = sq_cpu_f(dpred);
    const float k = 2.0f * scale / (float)n;
    for (int64_t i = 0; i < n; i++)
        d[i] = k * (p[i] - t[i]);
    return SQ_OK;
}

static sq_code adam(sq_backend *be, const sq_adam *a, int64_t n, sq_view params, sq_view grads,
                    sq_view m, sq_view v, sq_status *st) {
    if (a->step < 1) return sq_fail(st, SQ_ERR_RANGE, "adam: step %ld, expected >= 1", a->step);
    float *pp = sq_cpu_f(params), *pm = sq_cpu_f(m), *pv = sq_cpu_f(v);
    const float *pg = sq_cpu_f(grads);
    const double bc1 = 1.0 - pow(a->beta1, (double)a->step);
    const double bc2 = 1.0 - pow(a->beta2, (double)a->step);
    const float step_size = (float)(a->lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
    const float b1 = a->beta1, b2 = a->beta2, eps = a->eps, wd = a->weight_decay;
#pragma omp parallel for schedule(static) NT
    for (int64_t i = 0; i < n; i++) {
        const float g = pg[i] + wd * pp[i];
        const float mi = b1 * pm[i] + (1.0f - b1) * g;
        const float vi = b2 * pv[i] + (1.0f - b2) * g * g;
        pm[i] = mi;
        pv[i] = vi;
        pp[i] -= step_size * mi / (sqrtf(vi) * rbc2 + eps);
    }
    return SQ_OK;
}

void sq_cpu_ops_fill(sq_backend *be) {
    be->bn_fwd = bn_fwd;
    be->bn_bwd = bn_bwd;
    be->act_fwd = act_fwd;
    be->act_bwd = act_bwd;
    be->prelu_fwd = prelu_fwd;
    be->prelu_bwd = prelu_bwd;
    be->gap_fwd = gap_fwd;
    be->gap_bwd = gap_bwd;
    be->chscale_fwd = chscale_fwd;
    be->chscale_bwd = chscale_bwd;
    be->maxpool3d_fwd = sq_cpu_maxpool3d_fwd;
    be->maxpool3d_bwd = sq_cpu_maxpool3d_bwd;
    be->resize3d_fwd = resize3d_fwd;
    be->resize3d_bwd = resize3d_bwd;
    be->fuse_fwd = fuse_fwd;
    be->fuse_bwd = fuse_bwd;
    be->add = add;
    be->axpy = axpy;
    be->scale = scale;
    be->sumsq = sumsq;
    be->mse_fwd = mse_fwd;
    be->mse_bwd = mse_bwd;
    be->adam = adam;
}
