/* crop.c — the contour-box crop of the preprocessing (sq_volume_crop_contour in volume.h), and
 * its parts the training loader uses to jitter the box (sq_crop_box, sq_crop_box_jitter,
 * sq_volume_crop_box). */
#include "data/volume.h"

#include <math.h>
#include <string.h>

/* Bounding box [lo, hi] per axis (z, y, x) of the non-zero voxels; 0 when there are none. */
static int contour_box(const sq_volume *con, int lo[3], int hi[3]) {
    const uint8_t *m = sq_volume_u8(con);
    lo[0] = con->d, lo[1] = con->h, lo[2] = con->w;
    hi[0] = hi[1] = hi[2] = -1;
    for (int z = 0; z < con->d; z++)
        for (int y = 0; y < con->h; y++)
            for (int x = 0; x < con->w; x++) {
                if (!m[((size_t)z * (size_t)con->h + (size_t)y) * (size_t)con->w + (size_t)x])
                    continue;
                const int v[3] = {z, y, x};
                for (int a = 0; a < 3; a++) {
                    if (v[a] < lo[a]) lo[a] = v[a];
                    if (v[a] > hi[a]) hi[a] = v[a];
                }
            }
    return hi[0] >= 0;
}

static void grow_box(const sq_volume *v, double margin, int lo[3], int hi[3]) {
    const int n[3] = {v->d, v->h, v->w};
    for (int a = 0; a < 3; a++) {
        int g = (int)ceil(margin * (hi[a] - lo[a] + 1));
        if (g < 2) g = 2;
        lo[a] = lo[a] - g < 0 ? 0 : lo[a] - g;
        hi[a] = hi[a] + g >= n[a] ? n[a] - 1 : hi[a] + g;
    }
}

static float trilinear(const sq_volume *v, double z, double y, double x) {
    const float *p = sq_volume_f32(v);
    const double c[3] = {z, y, x};
    const int n[3] = {v->d, v->h, v->w};
    int i0[3], i1[3];
    double f[3];
    for (int a = 0; a < 3; a++) {
        double q = c[a] < 0 ? 0 : c[a] > n[a] - 1 ? n[a] - 1 : c[a];
        i0[a] = (int)floor(q);
        i1[a] = i0[a] + 1 < n[a] ? i0[a] + 1 : i0[a];
        f[a] = q - i0[a];
    }
    double s = 0;
    for (int k = 0; k < 8; k++) {
        int zz = k & 4 ? i1[0] : i0[0], yy = k & 2 ? i1[1] : i0[1], xx = k & 1 ? i1[2] : i0[2];
        double wgt =
            (k & 4 ? f[0] : 1 - f[0]) * (k & 2 ? f[1] : 1 - f[1]) * (k & 1 ? f[2] : 1 - f[2]);
        s += wgt * p[((size_t)zz * (size_t)v->h + (size_t)yy) * (size_t)v->w + (size_t)xx];
    }
    return (float)s;
}

/* Output geometry: voxel o of axis a sits at box coordinate lo + (o + 0.5) * step - 0.5. */
static void box_geometry(const sq_volume *in, const int lo[3], const double step[3],
                         sq_volume *out) {
    sq_volume_copy_geometry(out, in);
    const double off[3] = {lo[0] + 0.5 * step[0] - 0.5, lo[1] + 0.5 * step[1] - 0.5,
                           lo[2] + 0.5 * step[2] - 0.5};
    for (int a = 0; a < 3; a++)
        out->spacing[a] = in->spacing[a] * step[a];
    /* affine columns are x, y, z = our axes 2, 1, 0 */
    for (int r = 0; r < 3; r++) {
        out->affine[r][3] = in->affine[r][3] + in->affine[r][0] * off[2] +
                            in->affine[r][1] * off[1] + in->affine[r][2] * off[0];
        out->affine[r][0] = in->affine[r][0] * step[2];
        out->affine[r][1] = in->affine[r][1] * step[1];
        out->affine[r][2] = in->affine[r][2] * step[0];
    }
}

int sq_crop_box(const sq_volume *con, double margin, int lo[3], int hi[3]) {
    if (!contour_box(con, lo, hi)) return 0;
    grow_box(con, margin, lo, hi);
    return 1;
}

void sq_crop_box_jitter(const int dims[3], const double u[6], double amount, int lo[3], int hi[3]) {
    for (int a = 0; a < 3; a++) {
        const double ext = hi[a] - lo[a] + 1;
        const double centre = 0.5 * (lo[a] + hi[a]) + u[a] * amount * ext;
        const double half = 0.5 * ext * (1.0 + u[3 + a] * amount);
        int l = (int)lround(centre - half + 0.5), h = (int)lround(centre + half - 0.5);
        l = l < 0 ? 0 : l > dims[a] - 1 ? dims[a] - 1 : l;
        h = h < l ? l : h > dims[a] - 1 ? dims[a] - 1 : h;
        lo[a] = l, hi[a] = h;
    }
}

sq_code sq_volume_crop_box(const sq_volume *img, const sq_volume *con, const int lo[3],
                           const int hi[3], int d, int h, int w, sq_volume *out_img,
                           sq_volume *out_con, sq_status *st) {
    const int out[3] = {d, h, w};
    double step[3];
    for (int a = 0; a < 3; a++)
        step[a] = (double)(hi[a] - lo[a] + 1) / out[a];
    SQ_TRY(sq_volume_alloc(out_img, SQ_F32, d, h, w, st));
    sq_code rc = sq_volume_alloc(out_con, SQ_U8, d, h, w, st);
    if (rc != SQ_OK) {
        sq_volume_free(out_img);
        return rc;
    }
    const uint8_t *m = sq_volume_u8(con);
    for (int z = 0; z < d; z++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double sz = lo[0] + (z + 0.5) * step[0] - 0.5,
                       sy = lo[1] + (y + 0.5) * step[1] - 0.5,
                       sx = lo[2] + (x + 0.5) * step[2] - 0.5;
                size_t o = ((size_t)z * (size_t)h + (size_t)y) * (size_t)w + (size_t)x;
                sq_volume_f32(out_img)[o] = trilinear(img, sz, sy, sx);
                long nz = lround(sz), ny = lround(sy), nx = lround(sx);
                nz = nz < 0 ? 0 : nz >= con->d ? con->d - 1 : nz;
                ny = ny < 0 ? 0 : ny >= con->h ? con->h - 1 : ny;
                nx = nx < 0 ? 0 : nx >= con->w ? con->w - 1 : nx;
                sq_volume_u8(out_con)[o] =
                    m[((size_t)nz * (size_t)con->h + (size_t)ny) * (size_t)con->w + (size_t)nx];
            }
    box_geometry(img, lo, step, out_img);
    box_geometry(con, lo, step, out_con);
    return SQ_OK;
}

sq_code sq_volume_crop_contour(const sq_volume *img, const sq_volume *con, int d, int h, int w,
                               double margin, sq_volume *out_img, sq_volume *out_con,
                               sq_status *st) {
    int lo[3], hi[3];
    if (!sq_crop_box(con, margin, lo, hi)) {
        SQ_TRY(sq_volume_crop_pad(img, d, h, w, out_img, st));
        return sq_volume_crop_pad(con, d, h, w, out_con, st);
    }
    return sq_volume_crop_box(img, con, lo, hi, d, h, w, out_img, out_con, st);
}
