/* cpu_pool.c — 3D max pooling on the CPU backend, forward and backward, by separable passes.
 *
 * A box window's maximum is the maximum along W of the maxima along H of the maxima along D, so
 * each (n, c) plane is reduced one axis at a time: W first (rows of the input, window clamped at
 * the edges), then H and D, whose passes run over contiguous rows and vectorise. Each pass keeps
 * the first maximum in its axis order (a later element replaces the running one only when strictly
 * greater), which makes the chosen element the lexicographically smallest (d, h, w) of the
 * window's maxima: the first maximum of a raster scan, as in PyTorch and the CUDA backend. The
 * backward carries the chosen element's index through the same passes and scatters dy in raster
 * order of the outputs, so it routes ties as before and adds in the same order.
 * NaN, exactly as the raster scan (best = the first element; a later one replaces it only when
 * greater, which a NaN never is and nothing is than a NaN): the window's first element when that is
 * NaN, else the first maximum of its other elements with NaNs skipped. So every pass skips NaNs (a
 * NaN running value is replaced by the next number), and a last pass puts the first element back
 * where it is NaN. CUDA's test checks this bit for bit on inputs with ties and NaNs.
 * Work per output is about k_w / s_w + k_h + k_d comparisons instead of k_d k_h k_w.
 */
#include "nn/cpu/cpu.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NT num_threads(sq_cpu_of(be)->threads)

/* The clamped window [*lo, *hi) of output o along an axis of extent n. */
static inline void window(int o, int k, int s, int p, int n, int *lo, int *hi) {
    const int a = o * s - p, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b < n ? b : n;
}

typedef struct pool_geo {
    int D, H, W, Do, Ho, Wo;
    size_t S, So;
    size_t n1, n2; /* floats of the W pass (D x H x Wo) and the H pass (D x Ho x Wo) */
} pool_geo;

static pool_geo geo_of(const sq_pool3d *p) {
    const sq_shape5 s = p->in, o = sq_pool3d_out(p);
    pool_geo g = {s.d, s.h, s.w, o.d, o.h, o.w, 0, 0, 0, 0};
    g.S = (size_t)s.d * s.h * s.w;
    g.So = (size_t)o.d * o.h * o.w;
    g.n1 = (size_t)s.d * s.h * o.w;
    g.n2 = (size_t)s.d * o.h * o.w;
    return g;
}

/* Whether v replaces the running value m: greater, or m is NaN and v is not (NaNs skipped). */
static inline int takes(float v, float m) {
    return (v > m) | ((m != m) & (v == v));
}

/* First maximum of row[lo, hi); with nan, NaNs skipped (a NaN only if all are). */
static inline int first_max(const float *row, int lo, int hi, int nan) {
    int best = lo;
    if (nan) {
        for (int w = lo + 1; w < hi; w++)
            if (takes(row[w], row[best])) best = w;
    } else {
        for (int w = lo + 1; w < hi; w++)
            if (row[w] > row[best]) best = w;
    }
    return best;
}

/* W pass: t[r][ow] = max over the window of row r of x; with ti, ti gets its plane index. nan:
 * the plane holds a NaN (NaN-skipping comparisons; plain ones otherwise, the same result). */
static void pass_w(const sq_pool3d *p, const pool_geo *g, const float *x, int nan, float *t,
                   int32_t *ti) {
    for (int r = 0; r < g->D * g->H; r++) {
        const float *row = x + (size_t)r * g->W;
        float *out = t + (size_t)r * g->Wo;
        int32_t *oi = ti ? ti + (size_t)r * g->Wo : NULL;
        for (int ow = 0; ow < g->Wo; ow++) {
            int lo, hi;
            window(ow, p->k[2], p->stride[2], p->pad[2], g->W, &lo, &hi);
            const int best = first_max(row, lo, hi, nan);
            out[ow] = row[best];
            if (oi) oi[ow] = (int32_t)((size_t)r * g->W + best);
        }
    }
}

/* One reduction over rows: dst[i] = max over rows [lo, hi) of src (row length len, row pitch
 * len), first maximum kept (NaNs skipped with nan); the index arrays follow the values when
 * given. Masks, not branches: these loops vectorise. */
static void reduce_rows(const float *src, const int32_t *si, int lo, int hi, size_t len, int nan,
                        float *dst, int32_t *di) {
    memcpy(dst, src + lo * len, len * sizeof(float));
    if (di) memcpy(di, si + lo * len, len * sizeof(int32_t));
    for (int r = lo + 1; r < hi; r++) {
        const float *v = src + r * len;
        const int32_t *vi = di ? si + r * len : NULL;
        if (di && nan) {
#pragma omp simd
            for (size_t i = 0; i < len; i++) {
                const int32_t gt = -(int32_t)takes(v[i], dst[i]);
                di[i] = (vi[i] & gt) | (di[i] & ~gt);
                dst[i] = gt ? v[i] : dst[i];
            }
        } else if (di) {
#pragma omp simd
            for (size_t i = 0; i < len; i++) {
                const int32_t gt = -(int32_t)(v[i] > dst[i]);
                di[i] = (vi[i] & gt) | (di[i] & ~gt);
                dst[i] = gt ? v[i] : dst[i];
            }
        } else if (nan) {
#pragma omp simd
            for (size_t i = 0; i < len; i++)
                dst[i] = takes(v[i], dst[i]) ? v[i] : dst[i];
        } else {
#pragma omp simd
            for (size_t i = 0; i < len; i++)
                dst[i] = v[i] > dst[i] ? v[i] : dst[i];
        }
    }
}

/* H pass (per d slice, rows of Wo) then D pass (slices of Ho x Wo) into y (and yi). */
static void pass_hd(const sq_pool3d *p, const pool_geo *g, int nan, const float *t1,
                    const int32_t *i1, float *t2, int32_t *i2, float *y, int32_t *yi) {
    const size_t slice1 = (size_t)g->H * g->Wo, slice2 = (size_t)g->Ho * g->Wo;
    for (int d = 0; d < g->D; d++)
        for (int oh = 0; oh < g->Ho; oh++) {
            int lo, hi;
            window(oh, p->k[1], p->stride[1], p->pad[1], g->H, &lo, &hi);
            const size_t o2 = d * slice2 + (size_t)oh * g->Wo;
            reduce_rows(t1 + d * slice1, i1 ? i1 + d * slice1 : NULL, lo, hi, g->Wo, nan, t2 + o2,
                        i2 ? i2 + o2 : NULL);
        }
    for (int od = 0; od < g->Do; od++) {
        int lo, hi;
        window(od, p->k[0], p->stride[0], p->pad[0], g->D, &lo, &hi);
        reduce_rows(t2, i2, lo, hi, slice2, nan, y + od * slice2, yi ? yi + od * slice2 : NULL);
    }
}

/* Whether the plane holds a NaN (one vectorised read; without, plain comparisons and no fix-up). */
static int has_nan(const float *x, size_t n) {
    int any = 0;
#pragma omp simd reduction(| : any)
    for (size_t i = 0; i < n; i++)
        any |= x[i] != x[i];
    return any;
}

/* Where a window's first element (raster order) is NaN the scan keeps it: put it back in y (yi). */
static void first_nan_fixup(const sq_pool3d *p, const pool_geo *g, const float *x, float *y,
                            int32_t *yi) {
    for (int od = 0; od < g->Do; od++) {
        int d0, d1;
        window(od, p->k[0], p->stride[0], p->pad[0], g->D, &d0, &d1);
        for (int oh = 0; oh < g->Ho; oh++) {
            int h0, h1;
            window(oh, p->k[1], p->stride[1], p->pad[1], g->H, &h0, &h1);
            const float *row = x + ((size_t)d0 * g->H + h0) * g->W;
            const size_t o = ((size_t)od * g->Ho + oh) * g->Wo;
            for (int ow = 0; ow < g->Wo; ow++) {
                int w0, w1;
                window(ow, p->k[2], p->stride[2], p->pad[2], g->W, &w0, &w1);
                if (row[w0] == row[w0]) continue;
                y[o + ow] = row[w0];
                if (yi) yi[o + ow] = (int32_t)(((size_t)d0 * g->H + h0) * g->W + w0);
            }
        }
    }
}

/* Per-thread scratch. Values: the W pass (n1), the H pass (n2) and, for the backward, the D
 * pass's (So, kept apart: the D pass reads the H pass's rows while it writes). Indices, for the
 * backward: the same three. */
typedef struct pool_scratch {
    float *t1, *t2, *yv;
    int32_t *i1, *i2, *yi;
} pool_scratch;

static int scratch_new(const pool_geo *g, int idx, pool_scratch *s) {
    const size_t nv = g->n1 + g->n2 + (idx ? g->So : 0), ni = idx ? nv : 0;
    float *b = malloc(nv * sizeof(float) + ni * sizeof(int32_t));
    *s = (pool_scratch){0};
    if (!b) return 0;
    s->t1 = b, s->t2 = b + g->n1, s->yv = idx ? s->t2 + g->n2 : NULL;
    if (idx) {
        s->i1 = (int32_t *)(b + nv), s->i2 = s->i1 + g->n1, s->yi = s->i2 + g->n2;
    }
    return 1;
}

/* One plane x through the three passes into y (and, with t's index arrays, yi). */
static void pool_plane(const sq_pool3d *p, const pool_geo *g, const float *x, const pool_scratch *t,
                       float *y, int32_t *yi) {
    const int nan = has_nan(x, g->S);
    pass_w(p, g, x, nan, t->t1, t->i1);
    pass_hd(p, g, nan, t->t1, t->i1, t->t2, t->i2, y, yi);
    if (nan) first_nan_fixup(p, g, x, y, yi);
}

sq_code sq_cpu_maxpool3d_fwd(sq_backend *be, const sq_pool3d *p, sq_view x, sq_view y,
                             sq_status *st) {
    SQ_TRY(sq_pool3d_check(p, st));
    const pool_geo g = geo_of(p);
    const float *px = sq_cpu_f(x);
    float *py = sq_cpu_f(y);
    const int planes = p->in.n * p->in.c;
    int failed = 0;
#pragma omp parallel NT reduction(| : failed)
    {
        pool_scratch t;
        failed = !scratch_new(&g, 0, &t);
#pragma omp for schedule(static)
        for (int pl = 0; pl < planes; pl++) {
            if (t.t1) pool_plane(p, &g, px + pl * g.S, &t, py + pl * g.So, NULL);
        }
        free(t.t1);
    }
    return failed ? sq_fail(st, SQ_ERR_NOMEM, "maxpool3d_fwd: out of memory for the scratch")
                  : SQ_OK;
}

sq_code sq_cpu_maxpool3d_bwd(sq_backend *be, const sq_pool3d *p, sq_view x, sq_view dy, sq_view dx,
                             sq_status *st) {
    SQ_TRY(sq_pool3d_check(p, st));
    const pool_geo g = geo_of(p);
    const float *px = sq_cpu_f(x), *pdy = sq_cpu_f(dy);
    float *pdx = sq_cpu_f(dx);
    const int planes = p->in.n * p->in.c;
    int failed = 0;
#pragma omp parallel NT reduction(| : failed)
    {
        pool_scratch t;
        failed = !scratch_new(&g, 1, &t);
#pragma omp for schedule(static)
        for (int pl = 0; pl < planes; pl++) {
            if (!t.t1) continue;
            const float *gp = pdy + pl * g.So;
            float *dp = pdx + pl * g.S;
            pool_plane(p, &g, px + pl * g.S, &t, t.yv, t.yi);
            memset(dp, 0, g.S * sizeof(float));
            for (size_t i = 0; i < g.So; i++) /* raster order of the outputs, as a scan would */
                dp[t.yi[i]] += gp[i];
        }
        free(t.t1);
    }
    return failed ? sq_fail(st, SQ_ERR_NOMEM, "maxpool3d_bwd: out of memory for the scratch")
                  : SQ_OK;
}
