/* volume.c — allocation, centre crop/pad, percentile normalisation, label sets and Dice. */
#include "data/volume.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void identity(double a[4][4]) {
    memset(a, 0, sizeof(double) * 16);
    for (int i = 0; i < 4; i++)
        a[i][i] = 1.0;
}

sq_code sq_volume_alloc(sq_volume *v, sq_dtype dt, int d, int h, int w, sq_status *st) {
    memset(v, 0, sizeof *v);
    if (d <= 0 || h <= 0 || w <= 0)
        return sq_fail(st, SQ_ERR_RANGE, "volume shape %dx%dx%d must be positive", d, h, w);
    if (dt != SQ_F32 && dt != SQ_U8)
        return sq_fail(st, SQ_ERR_INTERNAL, "volume dtype must be f32 or u8");
    v->dtype = dt;
    v->d = d, v->h = h, v->w = w;
    v->spacing[0] = v->spacing[1] = v->spacing[2] = 1.0;
    identity(v->affine);
    v->data = sq_alloc(sq_volume_numel(v) * sq_dtype_size(dt));
    if (!v->data) return sq_fail(st, SQ_ERR_NOMEM, "out of memory for a %dx%dx%d volume", d, h, w);
    return SQ_OK;
}

void sq_volume_free(sq_volume *v) {
    if (!v) return;
    sq_free(v->data);
    v->data = NULL;
}

void sq_volume_copy_geometry(sq_volume *dst, const sq_volume *src) {
    memcpy(dst->spacing, src->spacing, sizeof dst->spacing);
    memcpy(dst->affine, src->affine, sizeof dst->affine);
}

sq_code sq_volume_crop_pad(const sq_volume *in, int d, int h, int w, sq_volume *out,
                           sq_status *st) {
    SQ_TRY(sq_volume_alloc(out, in->dtype, d, h, w, st));
    sq_volume_copy_geometry(out, in);
    const int ins[3] = {in->d, in->h, in->w}, outs[3] = {d, h, w};
    int src0[3], dst0[3], len[3];
    for (int a = 0; a < 3; a++) {
        if (ins[a] >= outs[a]) {
            src0[a] = (ins[a] - outs[a]) / 2, dst0[a] = 0, len[a] = outs[a];
        } else {
            src0[a] = 0, dst0[a] = (outs[a] - ins[a]) / 2, len[a] = ins[a];
        }
    }
    size_t es = sq_dtype_size(in->dtype);
    const char *s = in->data;
    char *o = out->data;
    for (int z = 0; z < len[0]; z++)
        for (int y = 0; y < len[1]; y++) {
            size_t si = (((size_t)(z + src0[0]) * in->h) + (size_t)(y + src0[1])) * in->w + src0[2];
            size_t oi = (((size_t)(z + dst0[0]) * h) + (size_t)(y + dst0[1])) * w + dst0[2];
            memcpy(o + oi * es, s + si * es, (size_t)len[2] * es);
        }
    /* output voxel (x,y,z) = input voxel (x + src0 - dst0, ...): shift the origin. Axis order of
     * the affine columns is x, y, z = our axes 2, 1, 0. */
    double shift[3] = {src0[2] - dst0[2], src0[1] - dst0[1], src0[0] - dst0[0]};
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            out->affine[r][3] += in->affine[r][c] * shift[c];
    return SQ_OK;
}

static void swapf(float *a, float *b) {
    float t = *a;
    *a = *b;
    *b = t;
}

/* k-th smallest (0-based) of x[0..n), reordering x so that x[k+1..n) >= x[k] (quickselect,
 * median of three, Hoare partition on signed indices). */
static float select_kth(float *x, size_t n, size_t kk) {
    long lo = 0, hi = (long)n - 1, k = (long)kk;
    while (hi > lo) {
        long mid = lo + (hi - lo) / 2;
        if (x[mid] < x[lo]) swapf(&x[mid], &x[lo]);
        if (x[hi] < x[lo]) swapf(&x[hi], &x[lo]);
        if (x[hi] < x[mid]) swapf(&x[hi], &x[mid]);
        float pivot = x[mid];
        long i = lo, j = hi;
        while (i <= j) {
            while (x[i] < pivot)
                i++;
            while (x[j] > pivot)
                j--;
            if (i <= j) {
                swapf(&x[i], &x[j]);
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return x[k];
    }
    return x[k];
}

static double percentile(float *tmp, size_t n, double pct) {
    if (pct <= 0 || pct >= 100) { /* the minimum or maximum (the usual lower one is 0): one scan */
        float m = tmp[0];
        for (size_t i = 1; i < n; i++)
            m = pct <= 0 ? (tmp[i] < m ? tmp[i] : m) : (tmp[i] > m ? tmp[i] : m);
        return m;
    }
    double pos = pct / 100.0 * (double)(n - 1);
    size_t k = (size_t)floor(pos);
    double frac = pos - (double)k;
    double a = select_kth(tmp, n, k);
    if (frac <= 0 || k + 1 >= n) return a;
    /* after selecting k, the (k+1)-th smallest is the minimum of the upper part */
    float b = tmp[k + 1];
    for (size_t i = k + 2; i < n; i++)
        if (tmp[i] < b) b = tmp[i];
    return a + frac * ((double)b - a);
}

sq_code sq_volume_normalise_percentile(sq_volume *img, double lo_pct, double hi_pct, double *p_lo,
                                       double *p_hi, sq_status *st) {
    if (img->dtype != SQ_F32) return sq_fail(st, SQ_ERR_INTERNAL, "normalise needs an f32 image");
    size_t n = sq_volume_numel(img);
    float *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    float *x = sq_volume_f32(img);
    memcpy(tmp, x, n * sizeof *tmp);
    double lo = percentile(tmp, n, lo_pct);
    double hi = percentile(tmp, n, hi_pct);
    free(tmp);
    double scale = hi > lo ? 255.0 / (hi - lo) : 0.0;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(((double)x[i] - lo) * scale);
    if (p_lo) *p_lo = lo;
    if (p_hi) *p_hi = hi;
    return SQ_OK;
}

double sq_dice_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    size_t na = 0, nb = 0, nab = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned x = a[i] != 0, y = b[i] != 0;
        na += x, nb += y, nab += x & y;
    }
    if (na + nb == 0) return 1.0;
    return 2.0 * (double)nab / (double)(na + nb);
}

sq_code sq_label_set_parse(const char *text, sq_label_set *ls, sq_status *st) {
    memset(ls, 0, sizeof *ls);
    if (!text || !*text || !strcmp(text, "all")) {
        ls->all = 1;
        return SQ_OK;
    }
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 255)
            return sq_fail(st, SQ_ERR_USAGE,
                           "--label '%s': expected 'all' or a comma list of labels 1..255", text);
        if (ls->n >= 32) return sq_fail(st, SQ_ERR_USAGE, "--label '%s': at most 32 labels", text);
        ls->values[ls->n++] = (int)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return sq_fail(st, SQ_ERR_USAGE,
                           "--label '%s': expected 'all' or a comma list of labels 1..255", text);
    }
    return SQ_OK;
}

int sq_label_set_has(const sq_label_set *ls, int value) {
    if (ls->all) return value != 0;
    for (int i = 0; i < ls->n; i++)
        if (ls->values[i] == value) return 1;
    return 0;
}

void sq_label_set_apply(const sq_label_set *ls, sq_volume *mask) {
    uint8_t lut[256];
    for (int i = 0; i < 256; i++)
        lut[i] = (uint8_t)sq_label_set_has(ls, i);
    uint8_t *m = sq_volume_u8(mask);
    size_t n = sq_volume_numel(mask);
    for (size_t i = 0; i < n; i++)
        m[i] = lut[m[i]];
}

size_t sq_mask_count(const sq_volume *mask) {
    const uint8_t *m = sq_volume_u8(mask);
    size_t n = sq_volume_numel(mask), c = 0;
    for (size_t i = 0; i < n; i++)
        c += m[i] != 0;
    return c;
}
