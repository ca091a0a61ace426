/* mask.c — label maps, float masks and contours on other grids -> a 0/1 contour on the image
 * grid (see mask.h). */
#include "data/mask.h"

#include "data/nifti.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

sq_mask_policy sq_mask_policy_default(void) {
    sq_mask_policy p;
    memset(&p, 0, sizeof p);
    p.threshold = 0.5;
    p.resample = SQ_RESAMPLE_NONE;
    return p;
}

sq_code sq_resample_parse(const char *text, sq_resample *r, sq_status *st) {
    if (!strcmp(text, "none")) {
        *r = SQ_RESAMPLE_NONE;
        return SQ_OK;
    }
    if (!strcmp(text, "nearest")) {
        *r = SQ_RESAMPLE_NEAREST;
        return SQ_OK;
    }
    return sq_fail(st, SQ_ERR_USAGE, "resample '%s': expected none or nearest", text);
}

static void voxel_xyz(const sq_volume *v, size_t i, size_t xyz[3]) {
    xyz[0] = i % (size_t)v->w;
    xyz[1] = i / (size_t)v->w % (size_t)v->h;
    xyz[2] = i / ((size_t)v->w * (size_t)v->h);
}

/* One voxel's label value -> 0/1, or an error naming it. */
static sq_code label_value(double v, size_t i, const sq_volume *vals, const sq_mask_policy *p,
                           const char *path, uint8_t *out, sq_status *st) {
    size_t xyz[3];
    if (!(v >= 0 && v <= 255 && v == floor(v))) {
        voxel_xyz(vals, i, xyz);
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: voxel (x=%zu, y=%zu, z=%zu) has value %g, expected integer label "
                       "values 0..255",
                       path, xyz[0], xyz[1], xyz[2], v);
    }
    int label = (int)v;
    if (p->has_labels) {
        *out = (uint8_t)sq_label_set_has(&p->labels, label);
        return SQ_OK;
    }
    if (label > 1) {
        voxel_xyz(vals, i, xyz);
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: contour value %d at voxel (x=%zu, y=%zu, z=%zu), expected a binary "
                       "mask (0 or 1); give --label L|L1,L2|all for a label map",
                       path, label, xyz[0], xyz[1], xyz[2]);
    }
    *out = (uint8_t)label;
    return SQ_OK;
}

sq_code sq_mask_binarise(const sq_volume *values, int is_float, const sq_mask_policy *p,
                         const char *path, sq_volume *out, sq_status *st) {
    SQ_TRY(sq_volume_alloc(out, SQ_U8, values->d, values->h, values->w, st));
    sq_volume_copy_geometry(out, values);
    const float *x = sq_volume_f32(values);
    uint8_t *m = sq_volume_u8(out);
    size_t n = sq_volume_numel(values);
    sq_code rc = SQ_OK;
    if (is_float && !p->has_labels) {
        for (size_t i = 0; i < n; i++)
            m[i] = (double)x[i] >= p->threshold;
        return SQ_OK;
    }
    for (size_t i = 0; i < n && rc == SQ_OK; i++)
        rc = label_value(x[i], i, values, p, path, &m[i], st);
    if (rc != SQ_OK) sq_volume_free(out);
    return rc;
}

/* Inverse of the 3x4 affine part (rotation/scale + translation) into inv; 0 when singular. */
static int invert_affine(const double a[4][4], double inv[4][4]) {
    double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                 a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                 a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    if (!(fabs(det) > 1e-12)) return 0;
    double r[3][3];
    r[0][0] = (a[1][1] * a[2][2] - a[1][2] * a[2][1]) / det;
    r[0][1] = (a[0][2] * a[2][1] - a[0][1] * a[2][2]) / det;
    r[0][2] = (a[0][1] * a[1][2] - a[0][2] * a[1][1]) / det;
    r[1][0] = (a[1][2] * a[2][0] - a[1][0] * a[2][2]) / det;
    r[1][1] = (a[0][0] * a[2][2] - a[0][2] * a[2][0]) / det;
    r[1][2] = (a[0][2] * a[1][0] - a[0][0] * a[1][2]) / det;
    r[2][0] = (a[1][0] * a[2][1] - a[1][1] * a[2][0]) / det;
    r[2][1] = (a[0][1] * a[2][0] - a[0][0] * a[2][1]) / det;
    r[2][2] = (a[0][0] * a[1][1] - a[0][1] * a[1][0]) / det;
    memset(inv, 0, sizeof(double) * 16);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++)
            inv[i][j] = r[i][j];
        inv[i][3] = -(r[i][0] * a[0][3] + r[i][1] * a[1][3] + r[i][2] * a[2][3]);
    }
    inv[3][3] = 1.0;
    return 1;
}

sq_code sq_mask_resample_nearest(const sq_volume *mask, const sq_volume *grid, sq_volume *out,
                                 sq_status *st) {
    double inv[4][4], t[3][4];
    if (!invert_affine(mask->affine, inv))
        return sq_fail(st, SQ_ERR_FORMAT, "contour affine is singular, cannot resample it");
    /* t = inv(mask affine) * grid affine: grid voxel (x, y, z) -> mask voxel coordinates */
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) {
            t[r][c] = 0;
            for (int k = 0; k < 3; k++)
                t[r][c] += inv[r][k] * grid->affine[k][c];
            if (c == 3) t[r][c] += inv[r][3];
        }
    SQ_TRY(sq_volume_alloc(out, SQ_U8, grid->d, grid->h, grid->w, st));
    sq_volume_copy_geometry(out, grid);
    const uint8_t *src = sq_volume_u8(mask);
    uint8_t *dst = sq_volume_u8(out);
    for (int z = 0; z < grid->d; z++)
        for (int y = 0; y < grid->h; y++)
            for (int x = 0; x < grid->w; x++) {
                double q[3];
                for (int r = 0; r < 3; r++)
                    q[r] = t[r][0] * x + t[r][1] * y + t[r][2] * z + t[r][3];
                long mx = lround(q[0]), my = lround(q[1]), mz = lround(q[2]);
                uint8_t v = 0;
                if (mx >= 0 && my >= 0 && mz >= 0 && mx < mask->w && my < mask->h && mz < mask->d)
                    v = src[((size_t)mz * (size_t)mask->h + (size_t)my) * (size_t)mask->w +
                            (size_t)mx];
                dst[((size_t)z * (size_t)grid->h + (size_t)y) * (size_t)grid->w + (size_t)x] = v;
            }
    return SQ_OK;
}

/* Append the resampling hint to a grid-mismatch message. */
static sq_code grid_mismatch(sq_status *st) {
    if (st) {
        size_t len = strlen(st->msg);
        snprintf(st->msg + len, sizeof st->msg - len,
                 "; give --resample nearest to map the contour onto the image grid");
    }
    return st ? st->code : SQ_ERR_FORMAT;
}

static sq_code onto_grid(const char *path, sq_volume *bin, const sq_volume *img,
                         const char *img_path, const sq_mask_policy *p, sq_volume *out,
                         sq_status *st) {
    sq_status probe;
    sq_status_clear(&probe);
    if (sq_nifti_check_pair(img, img_path, bin, path, &probe) == SQ_OK) {
        *out = *bin; /* same grid: hand the buffer over */
        memset(bin, 0, sizeof *bin);
        return SQ_OK;
    }
    if (p->resample == SQ_RESAMPLE_NONE) {
        if (st) *st = probe;
        return grid_mismatch(st);
    }
    sq_code rc = sq_mask_resample_nearest(bin, img, out, st);
    if (rc != SQ_OK) return sq_context(st, "%s", path);
    if (sq_mask_count(bin) > 0 && sq_mask_count(out) == 0) {
        sq_volume_free(out);
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: no contour voxel lands on the grid of image %s after resampling "
                       "(expected overlapping affines)",
                       path, img_path);
    }
    return SQ_OK;
}

sq_code sq_contour_read(const char *path, const sq_volume *img, const char *img_path,
                        const sq_mask_policy *p, sq_volume *out, sq_status *st) {
    memset(out, 0, sizeof *out);
    sq_volume vals = {0}, bin = {0};
    int is_float = 0;
    SQ_TRY(sq_nifti_read_values(path, &vals, &is_float, st));
    sq_code rc = sq_mask_binarise(&vals, is_float, p, path, &bin, st);
    sq_volume_free(&vals);
    if (rc == SQ_OK) rc = onto_grid(path, &bin, img, img_path, p, out, st);
    sq_volume_free(&bin);
    return rc;
}
