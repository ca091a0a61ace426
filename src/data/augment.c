/* augment.c — one-pass resampling of image, GT and contour through the composed map, failure
 * injection and Dice (see augment.h). Written for speed: the in-plane map is affine per row plus
 * an elastic term interpolated from per-row node values, so the inner loop is a few multiply-adds,
 * one bilinear image fetch and two mask fetches per voxel. */
#include "data/augment.h"

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
static int gt_drawn(const sq_aug_config *cfg, uint64_t seed, uint32_t epoch, uint32_t sample) {
    if (!(cfg->gt_rate > 0)) return 0;
    sq_rng g;
    sq_rng_init(&g, seed ^ 0x4754494e4a454354ull /* "GTINJECT" */, epoch, sample);
    return sq_rng_uniform(&g) < cfg->gt_rate;
}

sq_code sq_augment(const sq_aug_config *cfg, uint64_t seed, uint32_t epoch, uint32_t sample,
                   const sq_aug_input *in, sq_aug_output *out, sq_status *st) {
    const int D = in->d, H = in->h, W = in->w;
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
            for (int x = 0; x < W; x++) {
                float xs = rxs[x], ys = rys[x];
                /* image: bilinear, zero outside */
                /* floor by truncation after an offset (floorf is a libm call on baseline x86-64);
                 * coordinates far outside (< -OFF) are clamped and land outside anyway */
                float ox = (xs > -OFFF ? xs : -OFFF), oy = (ys > -OFFF ? ys : -OFFF);
                int ix = (int)(ox + OFFF) - OFF, iy = (int)(oy + OFFF) - OFF;
                float wx = ox - (float)ix, wy = oy - (float)iy;
                float v;
                if (ix >= 0 && iy >= 0 && ix < W - 1 && iy < H - 1) {
                    const float *p = islice + (size_t)iy * W + ix;
                    float top = p[0] + wx * (p[1] - p[0]);
                    float bot = p[W] + wx * (p[W + 1] - p[W]);
                    v = top + wy * (bot - top);
                } else {
                    float a00 = 0, a01 = 0, a10 = 0, a11 = 0;
                    int inx0 = ix >= 0 && ix < W, inx1 = ix + 1 >= 0 && ix + 1 < W;
                    int iny0 = iy >= 0 && iy < H, iny1 = iy + 1 >= 0 && iy + 1 < H;
                    if (iny0 && inx0) a00 = islice[(size_t)iy * W + ix];
                    if (iny0 && inx1) a01 = islice[(size_t)iy * W + ix + 1];
                    if (iny1 && inx0) a10 = islice[(size_t)(iy + 1) * W + ix];
                    if (iny1 && inx1) a11 = islice[(size_t)(iy + 1) * W + ix + 1];
                    float top = a00 + wx * (a01 - a00), bot = a10 + wx * (a11 - a10);
                    v = top + wy * (bot - top);
                }
                orow[x] = v;
                /* masks: nearest */
                int nx = ix + (wx >= 0.5f), ny = iy + (wy >= 0.5f);
                uint8_t g = 0, k = 0;
                if ((unsigned)nx < (unsigned)W && (unsigned)ny < (unsigned)H)
                    g = gslice[(size_t)ny * W + nx] != 0;
                if (!scaled) {
                    if ((unsigned)nx < (unsigned)W && (unsigned)ny < (unsigned)H)
                        k = cslice[(size_t)ny * W + nx] != 0;
                } else if (zc_ok) {
                    float mxf = fcx + (xs - fcx) * fisc, myf = fcy + (ys - fcy) * fisc;
                    mxf = mxf > -OFFF ? mxf : -OFFF;
                    myf = myf > -OFFF ? myf : -OFFF;
                    int mx = (int)(mxf + (OFFF + 0.5f)) - OFF,
                        my = (int)(myf + (OFFF + 0.5f)) - OFF;
                    if ((unsigned)mx < (unsigned)W && (unsigned)my < (unsigned)H)
                        k = cslice[(size_t)my * W + mx] != 0;
                }
                ogrow[x] = g;
                ocrow[x] = k;
                n_gt += g, n_ct += k, n_both += g & k;
            }
        }
    }
    free(gx), free(rowx), free(txw), free(x0w), free(xseg), free(rxs);
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
