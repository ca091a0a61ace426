/* cpu_direct.c — direct 3x3x3 convolution forward for few input channels (the stem), AVX2 + FMA.
 *
 * The im2col path (cpu_gemm.c) gathers a Cin*27-row patch matrix with strided scalar copies and
 * hands it to an sgemm whose K (54) and M (32) are too small for it to come near its peak. Here the
 * input is first copied once into a "split" buffer: every input row zero-padded by one column on
 * each side and split into the W stride's phases (padded column j to phase j % sw, slot j / sw),
 * so that tap kw of output column ow is slot ow + kw / sw of phase kw % sw: a contiguous run.
 * Register blocks of 4 output channels x DIRECT_NV vectors of 8 columns; the weights are packed
 * so that a block's broadcasts come from one base. Every output is one chain over (ci, kd, kh,
 * kw) in that order, computed by one thread: bit-identical across thread counts.
 * Measured at the paper shape (2x2x28x160x160 -> 32, `segqa bench ops --only dense`): 13 ms
 * against the im2col path's 15-22 ms on 2 threads, 21-24 against 27-36 ms on one. A direct
 * weight gradient written the same way was no faster than the im2col one (19-21 ms on 2
 * threads), so the backward passes stay there (cpu_gemm.c) and on oneDNN.
 * Applies to kernel 3x3x3, padding 1, W stride 1 or 2, Cin <= 4, Cout a multiple of 4, on AVX2.
 * Not for: anything a portable build or a non-x86 CPU runs (they keep the im2col path).
 */
#include "nn/cpu/cpu.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#define AVX2           __attribute__((target("avx2,fma")))
#define DIRECT_CIN_MAX 4
#ifndef DIRECT_NV
#define DIRECT_NV 2 /* vectors of 8 columns per forward block (x 4 channels) */
#endif

int sq_cpu_direct_applies(const sq_conv3d *p, int isa) {
    if (isa != SQ_ISA_AVX2 || p->in.c > DIRECT_CIN_MAX || p->cout % 4) return 0;
    for (int a = 0; a < 3; a++)
        if (p->k[a] != 3 || p->pad[a] != 1 || p->stride[a] < 1) return 0;
    return p->stride[2] <= 2;
}

/* Geometry: input and output extents, strides, the split buffer's row pitch per phase. */
typedef struct direct_geo {
    int N, C, D, H, W, K; /* K: output channels */
    int Do, Ho, Wo, Wo8;  /* Wo8: Wo rounded up to 8 */
    int sd, sh, sw;
    int pitch;   /* floats per phase of a split row */
    int toff[3]; /* tap kw's run in a split row: phase kw % sw, slot kw / sw */
    size_t rows; /* output rows in all: N * Do * Ho */
} direct_geo;

static direct_geo geo_of(const sq_conv3d *p) {
    const sq_shape5 o = sq_conv3d_out(p);
    direct_geo g = {.N = p->in.n,
                    .C = p->in.c,
                    .D = p->in.d,
                    .H = p->in.h,
                    .W = p->in.w,
                    .K = p->cout,
                    .Do = o.d,
                    .Ho = o.h,
                    .Wo = o.w,
                    .sd = p->stride[0],
                    .sh = p->stride[1],
                    .sw = p->stride[2]};
    g.Wo8 = (g.Wo + 7) & ~7;
    /* slots a phase holds, and the furthest a full-vector read reaches (ow < Wo8, kw / sw <= 2) */
    const int held = (g.W + 2 + g.sw - 1) / g.sw, reach = g.Wo8 + 2;
    g.pitch = (((held > reach ? held : reach) + 7) & ~7) + 8;
    g.rows = (size_t)g.N * g.Do * g.Ho;
    for (int kw = 0; kw < 3; kw++)
        g.toff[kw] = (kw % g.sw) * g.pitch + kw / g.sw;
    return g;
}

static size_t split_floats(const direct_geo *g) {
    return (size_t)g->N * g->C * g->D * g->H * g->sw * g->pitch;
}

/* Split row (n, c, d, h): sw phases of `pitch` floats. */
static const float *split_row(const direct_geo *g, const float *S, int n, int c, int d, int h) {
    return S + ((((size_t)n * g->C + c) * g->D + d) * g->H + h) * g->sw * g->pitch;
}

/* Padded column j = i + 1 of input column i goes to phase j % sw, slot j / sw; the rest is zero. */
static AVX2 void split_one_row(const direct_geo *g, const float *xr, float *dst) {
    memset(dst, 0, (size_t)g->sw * g->pitch * sizeof(float));
    if (g->sw == 1) {
        memcpy(dst + 1, xr, (size_t)g->W * sizeof(float));
        return;
    }
    /* stride 2: input column 2m (padded 2m + 1) to phase 1 slot m, 2m + 1 to phase 0 slot m + 1 */
    float *ph0 = dst, *ph1 = dst + g->pitch;
    int i = 0;
    for (; i + 16 <= g->W; i += 16) {
        const __m256 lo = _mm256_loadu_ps(xr + i), hi = _mm256_loadu_ps(xr + i + 8);
        const __m256 ev = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
        const __m256 od = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
        /* lanes come as (lo 0-3, hi 0-3 | lo 4-7, hi 4-7) pairs: put the 64-bit quarters in order
         */
        _mm256_storeu_ps(ph1 + i / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(
                                          _mm256_castps_pd(ev), _MM_SHUFFLE(3, 1, 2, 0))));
        _mm256_storeu_ps(ph0 + i / 2 + 1, _mm256_castpd_ps(_mm256_permute4x64_pd(
                                              _mm256_castps_pd(od), _MM_SHUFFLE(3, 1, 2, 0))));
    }
    for (; i < g->W; i++) {
        if (i & 1)
            ph0[i / 2 + 1] = xr[i];
        else
            ph1[i / 2] = xr[i];
    }
}

static void split_input(sq_backend *be, const direct_geo *g, const float *px, float *S) {
    const int64_t nrows = (int64_t)g->N * g->C * g->D * g->H;
#pragma omp parallel for schedule(static) num_threads(sq_cpu_of(be)->threads)
    for (int64_t r = 0; r < nrows; r++)
        split_one_row(g, px + (size_t)r * g->W, S + (size_t)r * g->sw * g->pitch);
}

/* Output row r = (n, od, oh): its sample n and its row od * Ho + oh within the sample; for each
 * input row inside the volume, in (ci, kd, kh) order, its split row and the offset of its three
 * weights (ci * 27 + kd * 9 + kh * 3). */
typedef struct direct_taps {
    int sample;
    size_t in_sample;
    int n;
    const float *row[DIRECT_CIN_MAX * 9];
    int woff[DIRECT_CIN_MAX * 9];
} direct_taps;

static void taps_of(const direct_geo *g, const float *S, size_t r, direct_taps *t) {
    const size_t per_sample = (size_t)g->Do * g->Ho;
    const int n = (int)(r / per_sample);
    t->sample = n;
    t->in_sample = r % per_sample;
    const int od = (int)(t->in_sample / (size_t)g->Ho), oh = (int)(t->in_sample % (size_t)g->Ho);
    t->n = 0;
    for (int ci = 0; ci < g->C; ci++)
        for (int kd = 0; kd < 3; kd++) {
            const int id = od * g->sd - 1 + kd;
            if (id < 0 || id >= g->D) continue;
            for (int kh = 0; kh < 3; kh++) {
                const int ih = oh * g->sh - 1 + kh;
                if (ih < 0 || ih >= g->H) continue;
                t->row[t->n] = split_row(g, S, n, ci, id, ih);
                t->woff[t->n++] = ci * 27 + kd * 9 + kh * 3;
            }
        }
}

/* The weights packed for the forward blocks: for each block of 4 output channels, each input
 * row (ci, kd, kh) and each kw, the 4 channels' weights side by side (their broadcasts then come
 * from one base and constant offsets). */
static void pack_weights(const direct_geo *g, const float *pw, float *pk) {
    const int taps = g->C * 27;
    for (int co = 0; co < g->K; co++)
        for (int k = 0; k < taps; k++)
            pk[((size_t)(co / 4) * taps + k) * 4 + co % 4] = pw[(size_t)co * taps + k];
}

/* out[c][v] (4 channels x NV vectors at column ow) = bias + sum over the taps, in (ci, kd, kh,
 * kw) order; pk: the channel block's packed weights. */
static inline __attribute__((always_inline)) AVX2 void fwd_block(const int NV, const direct_geo *g,
                                                                 const direct_taps *t,
                                                                 const float *pk, const float *bias,
                                                                 int ow, __m256 out[4][DIRECT_NV]) {
    __m256 a[4][DIRECT_NV];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            a[c][v] = _mm256_set1_ps(bias ? bias[c] : 0.0f);
    const int t0 = g->toff[0], t1 = g->toff[1], t2 = g->toff[2];
    for (int r = 0; r < t->n; r++) {
        const float *wr = pk + (size_t)t->woff[r] * 4, *xr = t->row[r] + ow;
        const float *xk[3] = {xr + t0, xr + t1, xr + t2};
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; kw++) {
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                const __m256 wv = _mm256_broadcast_ss(wr + kw * 4 + c);
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    a[c][v] = _mm256_fmadd_ps(_mm256_loadu_ps(xk[kw] + 8 * v), wv, a[c][v]);
            }
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            out[c][v] = a[c][v];
}

/* Stores 4 channels x nv vectors at column ow of rows y[c * cstride]; the last vector may stop
 * at Wo. */
static AVX2 void store_block(const direct_geo *g, __m256 out[4][DIRECT_NV], int nv, float *y,
                             size_t cstride, int ow) {
    for (int c = 0; c < 4; c++)
        for (int v = 0; v < nv; v++) {
            float *dst = y + (size_t)c * cstride + ow + 8 * v;
            const int left = g->Wo - (ow + 8 * v);
            if (left >= 8) {
                _mm256_storeu_ps(dst, out[c][v]);
            } else {
                float tmp[8];
                _mm256_storeu_ps(tmp, out[c][v]);
                memcpy(dst, tmp, (size_t)left * sizeof(float));
            }
        }
}

/* All channels of output row r; pk: pack_weights. */
static AVX2 void fwd_row(const direct_geo *g, const float *S, const float *pk, const float *pb,
                         float *py, size_t r) {
    direct_taps t;
    taps_of(g, S, r, &t);
    const int taps = g->C * 27;
    const size_t plane = (size_t)g->Do * g->Ho * g->Wo;
    for (int co = 0; co < g->K; co += 4) {
        float *y = py + ((size_t)t.sample * g->K + co) * plane + t.in_sample * g->Wo;
        const float *w = pk + (size_t)co * taps, *b = pb ? pb + co : NULL;
        __m256 out[4][DIRECT_NV];
        int ow = 0;
        for (; ow + 8 * DIRECT_NV <= g->Wo8; ow += 8 * DIRECT_NV) {
            fwd_block(DIRECT_NV, g, &t, w, b, ow, out);
            store_block(g, out, DIRECT_NV, y, plane, ow);
        }
        for (; ow < g->Wo8; ow += 8) {
            fwd_block(1, g, &t, w, b, ow, out);
            store_block(g, out, 1, y, plane, ow);
        }
    }
}

sq_code sq_cpu_direct_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                          sq_view y, sq_status *st) {
    sq_cpu *c = sq_cpu_of(be);
    const direct_geo g = geo_of(p);
    const size_t nw = (size_t)g.K * g.C * 27, ns = split_floats(&g);
    SQ_TRY(sq_cpu_scratch_grow(&c->split, ns + nw, st));
    float *S = c->split.p, *pk = S + ns;
    pack_weights(&g, sq_cpu_f(w), pk);
    split_input(be, &g, sq_cpu_f(x), S);
    const float *pb = sq_cpu_f(b);
    float *py = sq_cpu_f(y);
    const int64_t rows = (int64_t)g.rows;
#pragma omp parallel for schedule(static) num_threads(c->threads)
    for (int64_t r = 0; r < rows; r++)
        fwd_row(&g, S, pk, pb, py, (size_t)r);
    return SQ_OK;
}
