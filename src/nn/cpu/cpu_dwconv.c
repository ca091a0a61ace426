/* cpu_dwconv.c — depthwise 3D convolution (groups = channels), forward and both backward passes.
 *
 * oneDNN 2.6 has no fast path for grouped 3D convolutions (about 3 GFLOP/s), so these are ours.
 * Each (n, c) plane is handled by one thread (OpenMP over planes; over channels for the weight
 * gradient, so no two threads write the same dw). The input plane is first copied into a per-thread
 * scratch with its W axis zero-padded and split into `stride` phases (column j goes to phase j % s,
 * slot j / s), so that every tap of a strided row is a contiguous run: the inner loops are then
 * plain 8-wide vector multiply-adds over output rows. D/H padding is handled by skipping taps.
 * Where H and W have stride 1 the H padding is materialised too and a whole output slice (Ho x Wp,
 * junk past Wo) is one long row: the "flat" path, used for most layers of the network.
 * Backward data is the forward kernel again: on dy padded by k-1-p with the flipped kernel (stride
 * 1), or on the zero-upsampled dy (strided; zero rows in D/H skipped, zeros along W stored). The
 * row kernels (dwconv_kernels.h) are compiled for AVX2+FMA and for the portable baseline; the
 * choice is made at run time (sq_cpu.isa).
 */
#include "nn/cpu/cpu.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#define DW_KMAX 7 /* largest kernel extent per axis */
#define DW_SMAX 8 /* largest stride per axis */

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef int v8i __attribute__((vector_size(32)));

typedef struct dw_geo {
    int D, H, W, Do, Ho, Wo;
    int kd, kh, kw, sd, sh, sw, pd, ph, pw;
    int Wp; /* padded row length W + 2 pw */
    int phase_off[DW_SMAX], phase_len[DW_SMAX];
    int coff[DW_KMAX]; /* column of tap kw in a phase-split row, for output column 0 */
    int ud, uh, Hr;    /* zero-upsampled input (strided backward data): factors, real H rows */
    /* flat path layout (see dwconv_kernels.h): rows per H phase, row pitch, floats per W phase
     * plane and per d slice, offsets of taps kh and kw */
    int fhrows, fpitch;
    size_t fwplane, fslice;
    size_t fhoff[DW_KMAX];
    int fcoff[DW_KMAX];
} dw_geo;

#define DW_SUFFIX       avx2
#define DW_TARGET       __attribute__((target("avx2,fma")))
#define DW_FMA(a, b, c) ((v8)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#include "nn/cpu/dwconv_kernels.h"
#undef DW_SUFFIX
#undef DW_TARGET
#undef DW_FMA

#define DW_SUFFIX portable
#define DW_TARGET
#define DW_FMA(a, b, c) ((a) * (b) + (c))
#include "nn/cpu/dwconv_kernels.h"
#undef DW_SUFFIX
#undef DW_TARGET
#undef DW_FMA

static sq_code make_geo(const sq_conv3d *p, dw_geo *g, sq_status *st) {
    SQ_TRY(sq_conv3d_check(p, 1, st));
    for (int a = 0; a < 3; a++)
        if (p->k[a] > DW_KMAX || p->stride[a] > DW_SMAX)
            return sq_fail(st, SQ_ERR_UNSUPPORTED,
                           "dwconv3d: axis %d: kernel %d / stride %d above %d / %d", a, p->k[a],
                           p->stride[a], DW_KMAX, DW_SMAX);
    const sq_shape5 o = sq_conv3d_out(p);
    *g = (dw_geo){.D = p->in.d,
                  .H = p->in.h,
                  .W = p->in.w,
                  .Do = o.d,
                  .Ho = o.h,
                  .Wo = o.w,
                  .kd = p->k[0],
                  .kh = p->k[1],
                  .kw = p->k[2],
                  .sd = p->stride[0],
                  .sh = p->stride[1],
                  .sw = p->stride[2],
                  .pd = p->pad[0],
                  .ph = p->pad[1],
                  .pw = p->pad[2],
                  .ud = 1,
                  .uh = 1};
    g->Wp = g->W + 2 * g->pw;
    g->Hr = g->H;
    int off = 0;
    for (int r = 0; r < g->sw; r++) {
        g->phase_off[r] = off;
        g->phase_len[r] = r < g->Wp ? (g->Wp - r + g->sw - 1) / g->sw : 0;
        off += g->phase_len[r];
    }
    for (int t = 0; t < g->kw; t++)
        g->coff[t] = g->phase_off[t % g->sw] + t / g->sw;
    const int Hp = g->H + 2 * g->ph;
    g->fhrows = (Hp + g->sh - 1) / g->sh;
    g->fpitch = (g->Wp + g->sw - 1) / g->sw;
    g->fwplane = (size_t)g->fhrows * g->fpitch;
    g->fslice = (size_t)g->sh * g->sw * g->fwplane;
    for (int t = 0; t < g->kh; t++)
        g->fhoff[t] = (size_t)(t % g->sh) * g->sw * g->fwplane + (size_t)(t / g->sh) * g->fpitch;
    for (int t = 0; t < g->kw; t++)
        g->fcoff[t] = (int)((size_t)(t % g->sw) * g->fwplane) + t / g->sw;
    return SQ_OK;
}

/* Floats of a padded plane plus a zeroed slack that full-vector reads past the last row hit. */
static size_t slack(const dw_geo *g) {
    return (size_t)g->Wp + 64;
}
static size_t padded_plane(const dw_geo *g) {
    return (size_t)g->D * g->H * g->Wp + slack(g);
}

/* P (D,H,Wp) = x plane with W zero-padded and phase-split (column j -> phase j % s, slot j / s),
 * followed by a zeroed slack. */
static void pad_plane(int avx2, const dw_geo *g, const float *x, float *P) {
    for (size_t r = 0; r < (size_t)g->D * g->H; r++) {
        float *row = P + r * g->Wp;
        const float *xr = x + r * g->W;
        if (g->sw == 1) {
            for (int j = 0; j < g->pw; j++)
                row[j] = row[g->pw + g->W + j] = 0.0f;
            memcpy(row + g->pw, xr, (size_t)g->W * sizeof(float));
        } else if (g->sw == 2) {
            /* deinterleave 16 inputs at a time: even / odd padded columns to phases 0 / 1 */
            memset(row, 0, (size_t)g->Wp * sizeof(float));
            const int pe = g->pw & 1; /* phase of the even input columns */
            float *de = row + g->phase_off[pe], *dodd = row + g->phase_off[1 - pe];
            int i = avx2 ? deint2_avx2(xr, g->W, g->pw, de, dodd)
                         : deint2_portable(xr, g->W, g->pw, de, dodd);
            for (; i < g->W; i++) {
                const int j = i + g->pw;
                row[g->phase_off[j & 1] + (j >> 1)] = xr[i];
            }
        } else {
            for (int ph = 0; ph < g->sw; ph++) {
                /* slots m of this phase hold padded column j = ph + m*s, input column j - pw:
                 * zeros, then a strided copy of the interior, then zeros */
                float *dst = row + g->phase_off[ph];
                const int len = g->phase_len[ph];
                int m0 = g->pw > ph ? (g->pw - ph + g->sw - 1) / g->sw : 0;
                int m1 = (g->pw + g->W - ph + g->sw - 1) / g->sw; /* first m past the interior */
                if (m0 > len) m0 = len;
                if (m1 > len) m1 = len;
                if (m1 < m0) m1 = m0;
                for (int m = 0; m < m0; m++)
                    dst[m] = 0.0f;
                const float *src = xr + (ph + m0 * g->sw - g->pw);
                for (int m = m0; m < m1; m++, src += g->sw)
                    dst[m] = *src;
                for (int m = m1; m < len; m++)
                    dst[m] = 0.0f;
            }
        }
    }
    memset(P + (size_t)g->D * g->H * g->Wp, 0, slack(g) * sizeof(float));
}

/* Each tap's weight broadcast to 8 lanes (optionally flipped in all three axes). */
static void broadcast_weights(const dw_geo *g, const float *w, int flip, v8 *wv) {
    const int kvol = g->kd * g->kh * g->kw;
    for (int t = 0; t < kvol; t++)
        wv[t] = (v8){0} + w[flip ? kvol - 1 - t : t];
}

static void fwd_plane(int avx2, const dw_geo *g, const float *P, const v8 *wv, float bias,
                      float *y) {
    if (avx2)
        fwd_plane_avx2(g, P, wv, bias, y);
    else
        fwd_plane_portable(g, P, wv, bias, y);
}

/* The flattened-slice path (dwconv_kernels.h, fwd_flat, wgt_flat) for stride 1 in H and W, and
 * for strided planes up to 48 wide; wider strided planes keep the row path, whose phase-split copy
 * writes each element once (measured at the network shapes: stage 2.1, 80 wide, is faster on the
 * row path, stages 3.1-6.1, 40 wide and less, on the flat one). Never for the zero-upsampled plane
 * of strided backward data. */
#define SQ_DW_FLAT_STRIDED_MAX_W 48
static int use_flat(const dw_geo *g) {
    if (g->ud != 1 || g->uh != 1) return 0;
    return (g->sh == 1 && g->sw == 1) || g->W <= SQ_DW_FLAT_STRIDED_MAX_W;
}

static size_t flat_plane(const dw_geo *g) {
    return (size_t)g->D * g->fslice + slack(g);
}

static size_t flat_row(const dw_geo *g) {
    return (size_t)((g->Ho * g->fpitch + 7) & ~7) + 16;
}

/* Pf = x plane zero-padded in H and W and split into H and W stride phases, then a zeroed slack. */
static void pad_plane_flat(int avx2, const dw_geo *g, const float *x, float *Pf) {
    if (g->sh != 1 || g->sw != 1) {
        memset(Pf, 0, flat_plane(g) * sizeof(float));
        const int pe = g->pw & 1; /* stride 2 in W: the phase of the even input columns */
        for (int d = 0; d < g->D; d++)
            for (int h = 0; h < g->H; h++) {
                const int hh = h + g->ph;
                float *base = Pf + (size_t)d * g->fslice +
                              (size_t)(hh % g->sh) * g->sw * g->fwplane +
                              (size_t)(hh / g->sh) * g->fpitch;
                const float *xr = x + ((size_t)d * g->H + h) * g->W;
                int i = 0;
                if (g->sw == 1) {
                    memcpy(base + g->pw, xr, (size_t)g->W * sizeof(float));
                    continue;
                }
                if (g->sw == 2)
                    i = avx2 ? deint2_avx2(xr, g->W, g->pw, base + pe * g->fwplane,
                                           base + (1 - pe) * g->fwplane)
                             : deint2_portable(xr, g->W, g->pw, base + pe * g->fwplane,
                                               base + (1 - pe) * g->fwplane);
                for (; i < g->W; i++) {
                    const int j = i + g->pw;
                    base[(size_t)(j % g->sw) * g->fwplane + j / g->sw] = xr[i];
                }
            }
        return;
    }
    const int Hp = g->H + 2 * g->ph;
    for (int d = 0; d < g->D; d++) {
        float *sl = Pf + (size_t)d * Hp * g->Wp;
        memset(sl, 0, (size_t)g->ph * g->Wp * sizeof(float));
        memset(sl + (size_t)(g->ph + g->H) * g->Wp, 0, (size_t)g->ph * g->Wp * sizeof(float));
        for (int h = 0; h < g->H; h++) {
            float *row = sl + (size_t)(g->ph + h) * g->Wp;
            for (int j = 0; j < g->pw; j++)
                row[j] = row[g->pw + g->W + j] = 0.0f;
            memcpy(row + g->pw, x + ((size_t)d * g->H + h) * g->W, (size_t)g->W * sizeof(float));
        }
    }
    memset(Pf + (size_t)g->D * Hp * g->Wp, 0, slack(g) * sizeof(float));
}

/* Floats of per-thread scratch a forward plane needs. */
static size_t fwd_scratch(const dw_geo *g) {
    return use_flat(g) ? flat_plane(g) + flat_row(g) : padded_plane(g);
}

/* One forward plane: pad x into the scratch and run the kernel. */
static void fwd_any(int avx2, const dw_geo *g, const float *x, const v8 *wv, float bias, float *y,
                    float *scratch) {
    if (use_flat(g)) {
        float *ypad = scratch + flat_plane(g);
        pad_plane_flat(avx2, g, x, scratch);
        if (avx2)
            fwd_flat_avx2(g, scratch, wv, bias, y, ypad);
        else
            fwd_flat_portable(g, scratch, wv, bias, y, ypad);
    } else {
        pad_plane(avx2, g, x, scratch);
        fwd_plane(avx2, g, scratch, wv, bias, y);
    }
}

sq_code sq_cpu_dwconv3d_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                            sq_view y, sq_status *st) {
    sq_cpu *c = sq_cpu_of(be);
    dw_geo g;
    SQ_TRY(make_geo(p, &g, st));
    SQ_TRY(sq_cpu_scratch_reserve(c, fwd_scratch(&g), st));
    const float *px = sq_cpu_f(x), *pw = sq_cpu_f(w), *pb = sq_cpu_f(b);
    float *py = sq_cpu_f(y);
    const int C = p->in.c, planes = p->in.n * C;
    const size_t in_plane = (size_t)g.D * g.H * g.W, out_plane = (size_t)g.Do * g.Ho * g.Wo;
    const size_t kvol = (size_t)g.kd * g.kh * g.kw;
    const int avx2 = c->isa == SQ_ISA_AVX2;
#pragma omp parallel for schedule(dynamic, 1) num_threads(c->threads)
    for (int pl = 0; pl < planes; pl++) {
        const int ch = pl % C;
        float *P = c->scratch[omp_get_thread_num()].p;
        v8 wv[DW_KMAX * DW_KMAX * DW_KMAX];
        broadcast_weights(&g, pw + ch * kvol, 0, wv);
        fwd_any(avx2, &g, px + pl * in_plane, wv, pb ? pb[ch] : 0.0f, py + pl * out_plane, P);
    }
    return SQ_OK;
}

/* Backward data of a stride-1 depthwise convolution is a stride-1 convolution of dy (padded by
 * k-1-p) with the flipped kernel: the forward kernel does it. */
static sq_code bwd_data_stride1(sq_cpu *c, const sq_conv3d *p, const dw_geo *g, const float *pdy,
                                const float *pw, float *pdx, sq_status *st) {
    sq_conv3d q = *p;
    q.in.d = g->Do;
    q.in.h = g->Ho;
    q.in.w = g->Wo;
    for (int a = 0; a < 3; a++)
        q.pad[a] = p->k[a] - 1 - p->pad[a];
    dw_geo gq;
    SQ_TRY(make_geo(&q, &gq, st));
    if (gq.Do != g->D || gq.Ho != g->H || gq.Wo != g->W)
        return sq_fail(st, SQ_ERR_INTERNAL, "dwconv3d: transposed geometry mismatch");
    SQ_TRY(sq_cpu_scratch_reserve(c, fwd_scratch(&gq), st));
    const int C = p->in.c, planes = p->in.n * C;
    const size_t in_plane = (size_t)g->D * g->H * g->W, out_plane = (size_t)g->Do * g->Ho * g->Wo;
    const size_t kvol = (size_t)g->kd * g->kh * g->kw;
    const int avx2 = c->isa == SQ_ISA_AVX2;
#pragma omp parallel for schedule(dynamic, 1) num_threads(c->threads)
    for (int pl = 0; pl < planes; pl++) {
        const int ch = pl % C;
        float *P = c->scratch[omp_get_thread_num()].p;
        v8 wv[DW_KMAX * DW_KMAX * DW_KMAX];
        broadcast_weights(&gq, pw + ch * kvol, 1, wv);
        fwd_any(avx2, &gq, pdy + pl * out_plane, wv, 0.0f, pdx + pl * in_plane, P);
    }
    return SQ_OK;
}

/* Strided backward data as a stride-1 convolution of the zero-upsampled dy with the flipped kernel
 * (padding k-1-p; the zero rows in D and H are skipped, the zeros along W are stored). */
static sq_code bwd_data_strided(sq_cpu *c, const sq_conv3d *p, const dw_geo *g, const float *pdy,
                                const float *pw, float *pdx, sq_status *st) {
    dw_geo u = *g;
    u.ud = g->sd;
    u.uh = g->sh;
    u.D = (g->Do - 1) * g->sd + 1; /* upsampled extents */
    u.H = (g->Ho - 1) * g->sh + 1;
    u.Hr = g->Ho;
    u.Do = g->D; /* outputs: the input extents */
    u.Ho = g->H;
    u.Wo = g->W;
    u.sd = u.sh = u.sw = 1;
    u.pd = g->kd - 1 - g->pd;
    u.ph = g->kh - 1 - g->ph;
    u.pw = g->kw - 1 - g->pw;
    u.Wp = g->W + g->kw - 1;
    u.phase_off[0] = 0;
    u.phase_len[0] = u.Wp;
    for (int t = 0; t < g->kw; t++)
        u.coff[t] = t;
    const size_t rows = (size_t)g->Do * g->Ho, plane = rows * u.Wp + (size_t)u.Wp + 64;
    SQ_TRY(sq_cpu_scratch_reserve(c, plane, st));
    const int C = p->in.c, planes = p->in.n * C, sw = g->sw;
    const size_t in_plane = (size_t)g->D * g->H * g->W, out_plane = (size_t)g->Do * g->Ho * g->Wo;
    const size_t kvol = (size_t)g->kd * g->kh * g->kw;
    const int avx2 = c->isa == SQ_ISA_AVX2;
#pragma omp parallel for schedule(dynamic, 1) num_threads(c->threads)
    for (int pl = 0; pl < planes; pl++) {
        const int ch = pl % C;
        float *P = c->scratch[omp_get_thread_num()].p;
        v8 wv[DW_KMAX * DW_KMAX * DW_KMAX];
        broadcast_weights(&u, pw + ch * kvol, 1, wv);
        memset(P, 0, plane * sizeof(float));
        const float *dyp = pdy + pl * out_plane;
        for (size_t r = 0; r < rows; r++) {
            float *row = P + r * u.Wp;
            const float *src = dyp + r * g->Wo;
            for (int m = 0; m < g->Wo; m++) {
                const int j = u.pw + sw * m;
                if (j < u.Wp) row[j] = src[m];
            }
        }
        fwd_plane(avx2, &u, P, wv, 0.0f, pdx + pl * in_plane);
    }
    return SQ_OK;
}

sq_code sq_cpu_dwconv3d_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                            sq_view dx, sq_view dw, sq_view db, sq_status *st) {
    sq_cpu *c = sq_cpu_of(be);
    dw_geo g;
    SQ_TRY(make_geo(p, &g, st));
    const float *px = sq_cpu_f(x), *pw = sq_cpu_f(w), *pdy = sq_cpu_f(dy);
    float *pdx = sq_cpu_f(dx), *pdw = sq_cpu_f(dw), *pdb = sq_cpu_f(db);
    const int N = p->in.n, C = p->in.c;
    const size_t in_plane = (size_t)g.D * g.H * g.W, out_plane = (size_t)g.Do * g.Ho * g.Wo;
    const size_t kvol = (size_t)g.kd * g.kh * g.kw;
    const int avx2 = c->isa == SQ_ISA_AVX2;
    if (pdx) {
        const int stride1 = g.sd == 1 && g.sh == 1 && g.sw == 1;
        SQ_TRY(stride1 ? bwd_data_stride1(c, p, &g, pdy, pw, pdx, st)
                       : bwd_data_strided(c, p, &g, pdy, pw, pdx, st));
    }
    if (pdw || pdb) {
        /* per thread: kvol accumulator vectors | a dy row rounded up to 8 | the padded plane */
        const int flat = use_flat(&g);
        const size_t nvacc = kvol * 8, nrow = flat ? flat_row(&g) : (size_t)((g.Wo + 7) & ~7) + 8;
        SQ_TRY(sq_cpu_scratch_reserve(c, nvacc + nrow + (flat ? flat_plane(&g) : padded_plane(&g)),
                                      st));
#pragma omp parallel for schedule(dynamic, 1) num_threads(c->threads)
        for (int ch = 0; ch < C; ch++) {
            double acc[DW_KMAX * DW_KMAX * DW_KMAX];
            double bsum = 0.0;
            for (size_t t = 0; t < kvol; t++)
                acc[t] = 0.0;
            float *base = c->scratch[omp_get_thread_num()].p;
            v8 *vacc = (v8 *)base;
            float *dyt = base + nvacc, *P = dyt + nrow;
            for (int n = 0; n < N; n++) {
                const size_t pl = (size_t)n * C + ch;
                const float *dyp = pdy + pl * out_plane;
                if (pdw && flat) {
                    pad_plane_flat(avx2, &g, px + pl * in_plane, P);
                    if (avx2)
                        wgt_flat_avx2(&g, P, dyp, acc, vacc, dyt);
                    else
                        wgt_flat_portable(&g, P, dyp, acc, vacc, dyt);
                } else if (pdw) {
                    pad_plane(avx2, &g, px + pl * in_plane, P);
                    if (avx2)
                        bwd_weights_plane_avx2(&g, P, dyp, acc, vacc, dyt);
                    else
                        bwd_weights_plane_portable(&g, P, dyp, acc, vacc, dyt);
                }
                if (pdb) {
                    double s = 0.0;
                    for (size_t i = 0; i < out_plane; i++)
                        s += dyp[i];
                    bsum += s;
                }
            }
            if (pdw)
                for (size_t t = 0; t < kvol; t++)
                    pdw[ch * kvol + t] += (float)acc[t];
            if (pdb) pdb[ch] += (float)bsum;
        }
    }
    return SQ_OK;
}
