/* augment.c — one-pass resampling of image, GT and contour through the composed map, failure
 * injection and Dice (see augment.h). Written for speed: the in-plane map is affine per row plus
 * an elastic term interpolated from per-row node values, so each row's source coordinates are a
 * few vectorisable multiply-adds; the row kernels (portable, AVX2: bit-identical) then do one
 * bilinear image fetch and the nearest mask fetches per voxel. */
#include "data/augment.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OFF = 1 << 16 };
#define OFFF ((float)OFF)

sq_aug_config sq_aug_config_default(void) {
    sq_aug_config c = {
        .swap_scale_lo = 0.55f,
        .swap_scale_hi = 1.8f,
        .flip_prob = 0.5f,
        .rot_max = (float)(M_PI / 12),
        .trans_frac = 0.1f,
        .zoom_frac = 0.1f,
        .elastic_mm = 1.5f,
        .elastic_cell_mm = 16.0f,
        .fail_rate = 0.0f,
        .fail_kinds = SQ_FAIL_ALL,
    };
    return c;
}

sq_aug_config sq_aug_config_identity(void) {
    sq_aug_config c;
    memset(&c, 0, sizeof c);
    c.swap_scale_lo = c.swap_scale_hi = 1.0f;
    c.elastic_cell_mm = 16.0f;
    c.fail_kinds = SQ_FAIL_ALL;
    return c;
}

void sq_failure_contour(int kind, sq_rng *r, const uint8_t *gt, int d, int h, int w,
                        uint8_t *contour, sq_aug_record *rec) {
    size_t n = (size_t)d * h * w;
    rec->failure = kind;
    switch (kind) {
    case SQ_FAIL_EMPTY: memset(contour, 0, n); break;
    case SQ_FAIL_ONES: memset(contour, 1, n); break;
    case SQ_FAIL_NOISE:
        for (size_t i = 0; i < n; i += 32) {
            uint32_t bits = sq_rng_u32(r);
            size_t m = n - i < 32 ? n - i : 32;
            for (size_t k = 0; k < m; k++)
                contour[i + k] = (bits >> k) & 1u;
        }
        break;
    case SQ_FAIL_SHIFT: {
        int sx = (int)lrintf(sq_rng_uniform_range(r, -0.5f, 0.5f) * (float)w);
        int sy = (int)lrintf(sq_rng_uniform_range(r, -0.5f, 0.5f) * (float)h);
        rec->shift_x = (float)sx, rec->shift_y = (float)sy;
        memset(contour, 0, n);
        for (int z = 0; z < d; z++)
            for (int y = 0; y < h; y++) {
                int ys = y - sy;
                if (ys < 0 || ys >= h) continue;
                int x0 = sx > 0 ? sx : 0, x1 = sx < 0 ? w + sx : w;
                if (x1 <= x0) continue;
                memcpy(contour + ((size_t)z * h + y) * w + x0,
                       gt + ((size_t)z * h + ys) * w + (x0 - sx), (size_t)(x1 - x0));
            }
        break;
    }
    default: break;
    }
}

/* centroid of a binary mask in voxels (z, y, x); the volume centre when empty */
static void mask_centroid(const uint8_t *m, int d, int h, int w, double c[3]) {
    double sz = 0, sy = 0, sx = 0;
    size_t cnt = 0;
    for (int z = 0; z < d; z++)
        for (int y = 0; y < h; y++) {
            const uint8_t *row = m + ((size_t)z * h + y) * w;
            size_t rc = 0, rx = 0;
            for (int x = 0; x < w; x++) {
                unsigned v = row[x] != 0;
                rc += v, rx += v * (size_t)x;
            }
            cnt += rc, sz += (double)rc * z, sy += (double)rc * y, sx += (double)rx;
        }
    if (!cnt) {
        c[0] = (d - 1) / 2.0, c[1] = (h - 1) / 2.0, c[2] = (w - 1) / 2.0;
        return;
    }
    c[0] = sz / (double)cnt, c[1] = sy / (double)cnt, c[2] = sx / (double)cnt;
}

/* GT injection's draw: its own stream, so gt_rate leaves every other draw where it was. */
/* ---- the resampling of one output row ----
 * Source coordinates (xs, ys) per output voxel come precomputed (rxs, rys). The image is fetched
 * bilinearly (zero outside), GT and contour by nearest neighbour (the contour through the swap
 * scaling when `scaled`). row_avx2 does the coordinate and weight arithmetic of 8 voxels at a time
 * with the same float operations in the same order (no FMA), so both give bit-identical rows
 * (tests/data/test_data_augment test_isa_identical). */
typedef struct aug_row {
    const float *islice;
    const uint8_t *gslice, *cslice;
    const uint8_t *bslice; /* unscaled rows on AVX2: (gt != 0) | (contour != 0) << 1, else NULL */
    const float *rxs, *rys;
    float *orow;
    uint8_t *ogrow, *ocrow;
    int W, H, scaled, zc_ok;
    float fcx, fcy, fisc;
} aug_row;

typedef struct aug_count {
    size_t gt, ct, both;
} aug_count;

/* -1 until the first sq_augment or sq_augment_isa; read and written atomically, because loader
 * workers call sq_augment from several threads. */
static int g_use_avx2 = -1;

/* Floor by truncation after an offset (floorf is a libm call on baseline x86-64); coordinates far
 * outside (< -OFF) are clamped and land outside anyway. */
static inline __attribute__((always_inline)) float clamp_lo(float v) {
    return v > -OFFF ? v : -OFFF;
}

static inline __attribute__((always_inline)) void voxel_scalar(const aug_row *r, int x,
                                                               aug_count *c) {
    const int W = r->W, H = r->H;
    float xs = r->rxs[x], ys = r->rys[x];
    float ox = clamp_lo(xs), oy = clamp_lo(ys);
    int ix = (int)(ox + OFFF) - OFF, iy = (int)(oy + OFFF) - OFF;
    float wx = ox - (float)ix, wy = oy - (float)iy;
    float a00 = 0, a01 = 0, a10 = 0, a11 = 0;
    int inx0 = ix >= 0 && ix < W, inx1 = ix + 1 >= 0 && ix + 1 < W;
    int iny0 = iy >= 0 && iy < H, iny1 = iy + 1 >= 0 && iy + 1 < H;
    const float *is = r->islice;
    if (iny0 && inx0) a00 = is[(size_t)iy * W + ix];
    if (iny0 && inx1) a01 = is[(size_t)iy * W + ix + 1];
    if (iny1 && inx0) a10 = is[(size_t)(iy + 1) * W + ix];
    if (iny1 && inx1) a11 = is[(size_t)(iy + 1) * W + ix + 1];
    float top = a00 + wx * (a01 - a00), bot = a10 + wx * (a11 - a10);
    r->orow[x] = top + wy * (bot - top);
    int nx = ix + (wx >= 0.5f), ny = iy + (wy >= 0.5f);
    uint8_t g = 0, k = 0;
    if ((unsigned)nx < (unsigned)W && (unsigned)ny < (unsigned)H)
        g = r->gslice[(size_t)ny * W + nx] != 0;
    if (!r->scaled) {
        if ((unsigned)nx < (unsigned)W && (unsigned)ny < (unsigned)H)
            k = r->cslice[(size_t)ny * W + nx] != 0;
    } else if (r->zc_ok) {
        float mxf = clamp_lo(r->fcx + (xs - r->fcx) * r->fisc);
        float myf = clamp_lo(r->fcy + (ys - r->fcy) * r->fisc);
        int mx = (int)(mxf + (OFFF + 0.5f)) - OFF, my = (int)(myf + (OFFF + 0.5f)) - OFF;
        if ((unsigned)mx < (unsigned)W && (unsigned)my < (unsigned)H)
            k = r->cslice[(size_t)my * W + mx] != 0;
    }
    r->ogrow[x] = g;
    r->ocrow[x] = k;
    c->gt += g, c->ct += k, c->both += g & k;
}

static void row_scalar(const aug_row *r, int x0, aug_count *c) {
    for (int x = x0; x < r->W; x++)
        voxel_scalar(r, x, c);
}

#define AVX2 __attribute__((target("avx2")))

/* Mask fetches of 8 voxels: byte loads at the indices the vector part computed (-1: outside). */
static inline AVX2 void masks8(const uint8_t *gs, const uint8_t *cs, uint8_t *og, uint8_t *oc,
                               const int *gi, const int *ci) {
    static const uint8_t zero = 0;
    for (int l = 0; l < 8; l++) {
        og[l] = *(gi[l] >= 0 ? gs + gi[l] : &zero) != 0;
        oc[l] = *(ci[l] >= 0 ? cs + ci[l] : &zero) != 0;
    }
}

/* The same for an unscaled contour: one byte load per voxel from the (gt | contour << 1) slice,
 * split into the two rows 8 bytes at a time. */
static inline AVX2 void masks8_both(const uint8_t *bs, uint8_t *og, uint8_t *oc, const int *gi) {
    static const uint8_t zero = 0;
    uint8_t v[8];
    for (int l = 0; l < 8; l++)
        v[l] = *(gi[l] >= 0 ? bs + gi[l] : &zero);
    uint64_t w, g, k;
    memcpy(&w, v, 8);
    g = w & 0x0101010101010101ull, k = (w >> 1) & 0x0101010101010101ull;
    memcpy(og, &g, 8);
    memcpy(oc, &k, 8);
}

/* Voxels of GT, contour and both among the first n of two 0/1 rows, 32 at a time. */
static inline AVX2 void count01(const uint8_t *g, const uint8_t *k, int n, aug_count *c) {
    __m256i sg = _mm256_setzero_si256(), sk = sg, sb = sg;
    const __m256i z = _mm256_setzero_si256();
    int x = 0;
    for (; x + 32 <= n; x += 32) {
        __m256i vg = _mm256_loadu_si256((const __m256i *)(g + x));
        __m256i vk = _mm256_loadu_si256((const __m256i *)(k + x));
        sg = _mm256_add_epi64(sg, _mm256_sad_epu8(vg, z));
        sk = _mm256_add_epi64(sk, _mm256_sad_epu8(vk, z));
        sb = _mm256_add_epi64(sb, _mm256_sad_epu8(_mm256_and_si256(vg, vk), z));
    }
    uint64_t t[3][4];
    _mm256_storeu_si256((__m256i *)t[0], sg);
    _mm256_storeu_si256((__m256i *)t[1], sk);
    _mm256_storeu_si256((__m256i *)t[2], sb);
    c->gt += t[0][0] + t[0][1] + t[0][2] + t[0][3];
    c->ct += t[1][0] + t[1][1] + t[1][2] + t[1][3];
    c->both += t[2][0] + t[2][1] + t[2][2] + t[2][3];
    for (; x < n; x++)
        c->gt += g[x], c->ct += k[x], c->both += g[x] & k[x];
}

/* Flat index y * W + x where 0 <= x < W and 0 <= y < H, else -1 (8 lanes). */
static inline AVX2 __m256i index_or_neg(__m256i x, __m256i y, __m256i Wv, __m256i Hv) {
    const __m256i neg = _mm256_set1_epi32(-1);
    __m256i ok = _mm256_and_si256(_mm256_cmpgt_epi32(x, neg), _mm256_cmpgt_epi32(Wv, x));
    ok = _mm256_and_si256(ok,
                          _mm256_and_si256(_mm256_cmpgt_epi32(y, neg), _mm256_cmpgt_epi32(Hv, y)));
    __m256i idx = _mm256_add_epi32(_mm256_mullo_epi32(y, Wv), x);
    return _mm256_blendv_epi8(neg, idx, ok);
}

/* The two horizontally adjacent floats at p as the low half of a vector. */
static inline AVX2 __m128 pair_at(const float *p) {
    double d; /* memcpy, not _mm_load_sd on a cast pointer: p is only 4-byte aligned */
    memcpy(&d, p, sizeof d);
    return _mm_castpd_ps(_mm_set_sd(d));
}

/* Lanes l0..l3 of the pairs at is + idx[l] (top row) deinterleaved into left and right taps. */
static inline AVX2 void pairs4(const float *is, const int *idx, __m128 *left, __m128 *right) {
    __m128 q01 = _mm_movelh_ps(pair_at(is + idx[0]), pair_at(is + idx[1]));
    __m128 q23 = _mm_movelh_ps(pair_at(is + idx[2]), pair_at(is + idx[3]));
    *left = _mm_shuffle_ps(q01, q23, _MM_SHUFFLE(2, 0, 2, 0));
    *right = _mm_shuffle_ps(q01, q23, _MM_SHUFFLE(3, 1, 3, 1));
}

/* The 4 bilinear taps a00, a01, a10, a11 of 8 voxels whose top-left source voxel is (ix, iy).
 * All inside: two 8-byte loads per voxel, deinterleaved (AVX2 gathers were slower than the
 * portable loop on the AMD EPYC these machines have). Else scalar loads at the indices computed
 * here, a tap outside reading a zero. */
static inline AVX2 void taps8(const float *is, __m256i ix, __m256i iy, __m256i Wv, __m256i Hv,
                              __m256 a[4]) {
    const __m256i one = _mm256_set1_epi32(1), neg = _mm256_set1_epi32(-1);
    const __m256i inner =
        _mm256_and_si256(_mm256_and_si256(_mm256_cmpgt_epi32(ix, neg), _mm256_cmpgt_epi32(iy, neg)),
                         _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_sub_epi32(Wv, one), ix),
                                          _mm256_cmpgt_epi32(_mm256_sub_epi32(Hv, one), iy)));
    int idx[4][8];
    if (_mm256_movemask_epi8(inner) == -1) {
        const int W = _mm256_extract_epi32(Wv, 0);
        _mm256_storeu_si256((__m256i *)idx[0], _mm256_add_epi32(_mm256_mullo_epi32(iy, Wv), ix));
        __m128 l0, r0, l1, r1, l2, r2, l3, r3;
        pairs4(is, idx[0], &l0, &r0);
        pairs4(is, idx[0] + 4, &l1, &r1);
        pairs4(is + W, idx[0], &l2, &r2);
        pairs4(is + W, idx[0] + 4, &l3, &r3);
        a[0] = _mm256_set_m128(l1, l0), a[1] = _mm256_set_m128(r1, r0);
        a[2] = _mm256_set_m128(l3, l2), a[3] = _mm256_set_m128(r3, r2);
        return;
    }
    const __m256i ix1 = _mm256_add_epi32(ix, one), iy1 = _mm256_add_epi32(iy, one);
    _mm256_storeu_si256((__m256i *)idx[0], index_or_neg(ix, iy, Wv, Hv));
    _mm256_storeu_si256((__m256i *)idx[1], index_or_neg(ix1, iy, Wv, Hv));
    _mm256_storeu_si256((__m256i *)idx[2], index_or_neg(ix, iy1, Wv, Hv));
    _mm256_storeu_si256((__m256i *)idx[3], index_or_neg(ix1, iy1, Wv, Hv));
    static const float zero = 0.0f;
    float t[4][8];
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 8; l++)
            t[k][l] = *(idx[k][l] >= 0 ? is + idx[k][l] : &zero);
    for (int k = 0; k < 4; k++)
        a[k] = _mm256_loadu_ps(t[k]);
}

static inline AVX2 __m256i trunc_off(__m256 v, __m256 off) {
    return _mm256_sub_epi32(_mm256_cvttps_epi32(_mm256_add_ps(v, off)), _mm256_set1_epi32(OFF));
}

static AVX2 void row_avx2(const aug_row *r, aug_count *c) {
    const __m256i Wv = _mm256_set1_epi32(r->W), Hv = _mm256_set1_epi32(r->H);
    const __m256 lo = _mm256_set1_ps(-OFFF), off = _mm256_set1_ps(OFFF),
                 offh = _mm256_set1_ps(OFFF + 0.5f), half = _mm256_set1_ps(0.5f),
                 fcx = _mm256_set1_ps(r->fcx), fcy = _mm256_set1_ps(r->fcy),
                 fisc = _mm256_set1_ps(r->fisc);
    const uint8_t *gs = r->gslice, *cs = r->cslice;
    const int scaled = r->scaled, zc_ok = r->zc_ok;
    int x = 0;
    for (; x + 8 <= r->W; x += 8) {
        __m256 xs = _mm256_loadu_ps(r->rxs + x), ys = _mm256_loadu_ps(r->rys + x);
        /* max(v, lo) is v > lo ? v : lo, NaN included: clamp_lo */
        __m256 ox = _mm256_max_ps(xs, lo), oy = _mm256_max_ps(ys, lo);
        __m256i ix = trunc_off(ox, off), iy = trunc_off(oy, off);
        __m256 wx = _mm256_sub_ps(ox, _mm256_cvtepi32_ps(ix));
        __m256 wy = _mm256_sub_ps(oy, _mm256_cvtepi32_ps(iy));
        __m256 a[4];
        taps8(r->islice, ix, iy, Wv, Hv, a);
        const __m256 a00 = a[0], a01 = a[1], a10 = a[2], a11 = a[3];
        __m256 top = _mm256_add_ps(a00, _mm256_mul_ps(wx, _mm256_sub_ps(a01, a00)));
        __m256 bot = _mm256_add_ps(a10, _mm256_mul_ps(wx, _mm256_sub_ps(a11, a10)));
        _mm256_storeu_ps(r->orow + x,
                         _mm256_add_ps(top, _mm256_mul_ps(wy, _mm256_sub_ps(bot, top))));
        /* nearest: ix + (wx >= 0.5) */
        __m256i nx = _mm256_sub_epi32(ix, _mm256_castps_si256(_mm256_cmp_ps(wx, half, _CMP_GE_OQ)));
        __m256i ny = _mm256_sub_epi32(iy, _mm256_castps_si256(_mm256_cmp_ps(wy, half, _CMP_GE_OQ)));
        __m256i gidx = index_or_neg(nx, ny, Wv, Hv), cidx = gidx;
        if (scaled) {
            cidx = _mm256_set1_epi32(-1);
            if (zc_ok) {
                __m256 mxf = _mm256_max_ps(
                    _mm256_add_ps(fcx, _mm256_mul_ps(_mm256_sub_ps(xs, fcx), fisc)), lo);
                __m256 myf = _mm256_max_ps(
                    _mm256_add_ps(fcy, _mm256_mul_ps(_mm256_sub_ps(ys, fcy), fisc)), lo);
                cidx = index_or_neg(trunc_off(mxf, offh), trunc_off(myf, offh), Wv, Hv);
            }
        }
        int gi[8], ci[8];
        _mm256_storeu_si256((__m256i *)gi, gidx);
        _mm256_storeu_si256((__m256i *)ci, cidx);
        if (r->bslice)
            masks8_both(r->bslice, r->ogrow + x, r->ocrow + x, gi);
        else
            masks8(gs, cs, r->ogrow + x, r->ocrow + x, gi, ci);
    }
    count01(r->ogrow, r->ocrow, x, c);
    row_scalar(r, x, c);
}

int sq_augment_isa(int use_avx2) {
    const int have = __builtin_cpu_supports("avx2") ? 1 : 0;
    int was = __atomic_load_n(&g_use_avx2, __ATOMIC_RELAXED);
    if (was < 0) was = have;
    __atomic_store_n(&g_use_avx2, use_avx2 >= 0 ? use_avx2 && have : was, __ATOMIC_RELAXED);
    return was;
}

static int gt_drawn(const sq_aug_config *cfg, uint64_t seed, uint32_t epoch, uint32_t sample) {
    if (!(cfg->gt_rate > 0)) return 0;
    sq_rng g;
    sq_rng_init(&g, seed ^ 0x4754494e4a454354ull /* "GTINJECT" */, epoch, sample);
    return sq_rng_uniform(&g) < cfg->gt_rate;
}

sq_code sq_augment(const sq_aug_config *cfg, uint64_t seed, uint32_t epoch, uint32_t sample,
                   const sq_aug_input *in, sq_aug_output *out, sq_status *st) {
    const int D = in->d, H = in->h, W = in->w;
    int avx2 = __atomic_load_n(&g_use_avx2, __ATOMIC_RELAXED);
    if (avx2 < 0) avx2 = sq_augment_isa(-1);
    sq_rng r;
    sq_rng_init(&r, seed, epoch, sample);
    sq_aug_record rec;
    memset(&rec, 0, sizeof rec);
    /* ---- draws, in a fixed order ---- */
    float u_flip = sq_rng_uniform(&r);
    rec.flip = u_flip < cfg->flip_prob;
    rec.rot = sq_rng_uniform_range(&r, -1, 1) * cfg->rot_max;
    const double sz = in->spacing[0], sy = in->spacing[1], sx = in->spacing[2];
    rec.tx_mm = sq_rng_uniform_range(&r, -1, 1) * cfg->trans_frac * (float)(W * sx);
    rec.ty_mm = sq_rng_uniform_range(&r, -1, 1) * cfg->trans_frac * (float)(H * sy);
    rec.zoom = 1.0f + sq_rng_uniform_range(&r, -1, 1) * cfg->zoom_frac;
    rec.swap_scale = sq_rng_uniform_range(&r, cfg->swap_scale_lo, cfg->swap_scale_hi);
    if (!(cfg->swap_scale_hi > cfg->swap_scale_lo)) rec.swap_scale = cfg->swap_scale_lo;
    /* elastic nodes: in-plane displacement (mm) on a coarse grid covering the volume */
    double cell[3];
    cell[0] = fmax(1.0, cfg->elastic_cell_mm / sz);
    cell[1] = fmax(1.0, cfg->elastic_cell_mm / sy);
    cell[2] = fmax(1.0, cfg->elastic_cell_mm / sx);
    int gd = (int)ceil((D - 1) / cell[0]) + 2, gh = (int)ceil((H - 1) / cell[1]) + 2,
        gw = (int)ceil((W - 1) / cell[2]) + 2;
    size_t gn = (size_t)gd * gh * gw;
    int elastic = cfg->elastic_mm > 0;
    float *gx = NULL, *gy = NULL, *rowx = NULL, *rowy = NULL, *txw = NULL;
    int *x0w = NULL, *xseg = NULL;
    float *rxs = malloc(sizeof *rxs * (size_t)W * 2), *rys = rxs ? rxs + W : NULL;
    if (!rxs) return sq_fail(st, SQ_ERR_NOMEM, "augment: out of memory");
    if (elastic) {
        gx = malloc(sizeof *gx * gn * 2);
        rowx = malloc(sizeof *rowx * (size_t)gw * 2);
        txw = malloc(sizeof *txw * (size_t)W);
        x0w = malloc(sizeof *x0w * (size_t)W);
        xseg = malloc(sizeof *xseg * (size_t)(gw + 1));
        if (!gx || !rowx || !txw || !x0w || !xseg) {
            free(gx), free(rowx), free(txw), free(x0w), free(xseg), free(rxs);
            return sq_fail(st, SQ_ERR_NOMEM, "augment: out of memory");
        }
        gy = gx + gn, rowy = rowx + gw;
        /* voxel units: displacement in mm / spacing */
        for (size_t i = 0; i < gn; i++)
            gx[i] = sq_rng_normal(&r) * cfg->elastic_mm / (float)sx;
        for (size_t i = 0; i < gn; i++)
            gy[i] = sq_rng_normal(&r) * cfg->elastic_mm / (float)sy;
        for (int x = 0; x < W; x++) {
            double f = x / cell[2];
            x0w[x] = (int)f;
            txw[x] = (float)(f - x0w[x]);
        }
        /* xseg[k] = first x whose coarse cell is k */
        for (int k = 0, x = 0; k <= gw; k++) {
            while (x < W && x0w[x] < k)
                x++;
            xseg[k] = x;
        }
    }
    float u_fail = sq_rng_uniform(&r);
    uint32_t kind_draw = sq_rng_u32(&r);
    /* ---- the composed in-plane map, output voxel (x, y) -> source voxel (xs, ys) ----
     * p = ((x - cx) sx, (y - cy) sy) mm; q = R(-rot) (p - t) / zoom; flip: q.x = -q.x;
     * xs = q.x / sx + cx, ys = q.y / sy + cy. Linear: xs = ax*x + bx*y + cx0, ys = ay*x + by*y +
     * cy0 */
    const double cx = (W - 1) / 2.0, cy = (H - 1) / 2.0;
    double c = cos(rec.rot), s = sin(rec.rot), iz = 1.0 / rec.zoom;
    double fl = rec.flip ? -1.0 : 1.0;
    /* q.x = fl * iz * ( c*(px - tx) + s*(py - ty) ), q.y = iz * (-s*(px - tx) + c*(py - ty)) */
    double ax = fl * iz * c * sx / sx, bx = fl * iz * s * sy / sx;
    double ay = -iz * s * sx / sy, by = iz * c * sy / sy;
    double px0 = -cx * sx - rec.tx_mm, py0 = -cy * sy - rec.ty_mm;
    double cx0 = fl * iz * (c * px0 + s * py0) / sx + cx;
    double cy0 = iz * (-s * px0 + c * py0) / sy + cy;
    /* swapped contour: source voxel = cc + (src - cc) / scale (3D, about its centroid) */
    double cc[3] = {0, 0, 0};
    double isc = 1.0 / rec.swap_scale;
    int scaled = in->swapped && rec.swap_scale != 1.0f;
    if (scaled) mask_centroid(in->contour, D, H, W, cc);
    const float fcx = (float)cc[2], fcy = (float)cc[1], fisc = (float)isc;
    const float *img = in->image;
    const uint8_t *gt = in->gt, *ct = in->contour;
    size_t plane = (size_t)H * W;
    size_t n_gt = 0, n_ct = 0, n_both = 0;
    uint8_t *both = !scaled && avx2 ? malloc((size_t)D * plane) : NULL;
    for (size_t i = 0; both && i < (size_t)D * plane; i++)
        both[i] = (uint8_t)((gt[i] != 0) | (ct[i] != 0) << 1);
    for (int z = 0; z < D; z++) {
        const float *islice = img + (size_t)z * plane;
        const uint8_t *gslice = gt + (size_t)z * plane;
        int zc = z;
        if (scaled) {
            zc = (int)floor(cc[0] + (z - cc[0]) * isc + 0.5);
        }
        int zc_ok = zc >= 0 && zc < D;
        const uint8_t *cslice = ct + (size_t)(zc_ok ? zc : 0) * plane;
        double fz = elastic ? z / cell[0] : 0;
        int gz0 = (int)fz;
        float tz = (float)(fz - gz0);
        for (int y = 0; y < H; y++) {
            if (elastic) { /* node values of this row: bilinear in (z, y) */
                double fy = y / cell[1];
                int gy0 = (int)fy;
                float ty = (float)(fy - gy0);
                float w00 = (1 - tz) * (1 - ty), w01 = (1 - tz) * ty, w10 = tz * (1 - ty),
                      w11 = tz * ty;
                const size_t o00 = ((size_t)gz0 * gh + gy0) * gw, o01 = o00 + gw,
                             o10 = o00 + (size_t)gh * gw, o11 = o10 + gw;
                for (int k = 0; k < gw; k++) {
                    rowx[k] = w00 * gx[o00 + k] + w01 * gx[o01 + k] + w10 * gx[o10 + k] +
                              w11 * gx[o11 + k];
                    rowy[k] = w00 * gy[o00 + k] + w01 * gy[o01 + k] + w10 * gy[o10 + k] +
                              w11 * gy[o11 + k];
                }
            }
            float *orow = out->image + (size_t)z * plane + (size_t)y * W;
            uint8_t *ogrow = out->gt + (size_t)z * plane + (size_t)y * W;
            uint8_t *ocrow = out->contour + (size_t)z * plane + (size_t)y * W;
            const float fxs0 = (float)(bx * y + cx0), fys0 = (float)(by * y + cy0);
            const float fax = (float)ax, fay = (float)ay;
            /* source coordinates of the whole row first (vectorisable), then the fetches */
            for (int x = 0; x < W; x++) {
                rxs[x] = fxs0 + fax * (float)x;
                rys[x] = fys0 + fay * (float)x;
            }
            if (elastic)
                for (int k = 0; k + 1 < gw; k++) { /* piecewise linear along x, per coarse cell */
                    int xa = xseg[k], xb = xseg[k + 1];
                    float ex0 = rowx[k], dex = rowx[k + 1] - rowx[k];
                    float ey0 = rowy[k], dey = rowy[k + 1] - rowy[k];
                    for (int x = xa; x < xb; x++) {
                        rxs[x] += ex0 + txw[x] * dex;
                        rys[x] += ey0 + txw[x] * dey;
                    }
                }
            aug_row rw = {islice, gslice, cslice, both ? both + (size_t)z * plane : NULL,
                          rxs,    rys,    orow,   ogrow,
                          ocrow,  W,      H,      scaled,
                          zc_ok,  fcx,    fcy,    fisc};
            aug_count cnt = {0, 0, 0};
            if (avx2)
                row_avx2(&rw, &cnt);
            else
                row_scalar(&rw, 0, &cnt);
            n_gt += cnt.gt, n_ct += cnt.ct, n_both += cnt.both;
        }
    }
    free(gx), free(rowx), free(txw), free(x0w), free(xseg), free(rxs), free(both);
    /* ---- failure injection, else GT injection ---- */
    int failed = cfg->fail_rate > 0 && u_fail < cfg->fail_rate && (cfg->fail_kinds & SQ_FAIL_ALL);
    if (!failed && gt_drawn(cfg, seed, epoch, sample)) {
        memcpy(out->contour, out->gt, (size_t)D * plane);
        n_ct = n_both = n_gt;
        rec.gt_copy = 1;
    }
    if (failed) {
        int kinds[4], nk = 0;
        for (int k = SQ_FAIL_EMPTY; k <= SQ_FAIL_SHIFT; k++)
            if (cfg->fail_kinds & (1u << k)) kinds[nk++] = k;
        int kind = kinds[kind_draw % (uint32_t)nk];
        sq_failure_contour(kind, &r, out->gt, D, H, W, out->contour, &rec);
        n_ct = n_both = 0;
        size_t n = (size_t)D * plane;
        for (size_t i = 0; i < n; i++) {
            unsigned k = out->contour[i];
            n_ct += k, n_both += k & out->gt[i];
        }
    }
    out->dice = n_gt + n_ct ? 2.0 * (double)n_both / (double)(n_gt + n_ct) : 1.0;
    out->rec = rec;
    return SQ_OK;
}
