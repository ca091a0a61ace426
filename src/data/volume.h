/* volume.h — one 3D volume in memory (image or mask) and the voxel-wise operations on it:
 * centre crop/pad, percentile normalisation, label selection, Dice.
 *
 * Axis convention (used everywhere in segqa): a volume is stored C-order as [z][y][x], i.e.
 * D x H x W, so a batch loads as NCDHW. NIfTI's i (x) is the fastest axis W, j (y) is H, k (z) is
 * D; the raw NIfTI voxel buffer is therefore already in this order. spacing[] is in mm per axis,
 * listed in the same order (z, y, x). The affine maps (i, j, k, 1) = (x, y, z, 1) voxel indices to
 * scanner mm, as in NIfTI (sform if set, else qform).
 *
 * Not for: file formats (nifti.h, site.h) or geometric augmentation (augment.h).
 */
#ifndef SEGQA_DATA_VOLUME_H
#define SEGQA_DATA_VOLUME_H

#include "core/status.h"
#include "core/tensor.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_volume {
    sq_dtype dtype;      /* SQ_F32 (images) or SQ_U8 (masks) */
    int d, h, w;         /* z, y, x extents */
    double spacing[3];   /* mm, (z, y, x) */
    double affine[4][4]; /* voxel (x, y, z) -> mm */
    void *data;          /* d*h*w elements, sq_alloc'ed, owned */
} sq_volume;

static inline size_t sq_volume_numel(const sq_volume *v) {
    return (size_t)v->d * (size_t)v->h * (size_t)v->w;
}
static inline float *sq_volume_f32(const sq_volume *v) {
    return (float *)v->data;
}
static inline uint8_t *sq_volume_u8(const sq_volume *v) {
    return (uint8_t *)v->data;
}

/* Allocate a zeroed volume (spacing 1 mm, identity affine). */
sq_code sq_volume_alloc(sq_volume *v, sq_dtype dt, int d, int h, int w, sq_status *st);
void sq_volume_free(sq_volume *v);
/* Copy geometry (spacing, affine) from src. */
void sq_volume_copy_geometry(sq_volume *dst, const sq_volume *src);

/* Centre crop and/or zero-pad to d x h x w (each axis independently: the start offset is
 * floor((in - out) / 2) when cropping, and the input is placed at floor((out - in) / 2) when
 * padding). The affine origin is moved accordingly. out must be freed by the caller. */
sq_code sq_volume_crop_pad(const sq_volume *in, int d, int h, int w, sq_volume *out, sq_status *st);

/* Crop around the contour instead of the centre (`crop: contour` in the preprocessing): the
 * contour's bounding box, grown by `margin` times its extent on each side (at least 2 voxels) and
 * clipped to the volume, resampled to d x h x w: the image trilinearly, the contour by nearest
 * neighbour, each axis scaled on its own; spacing and affine follow the box. An empty contour
 * falls back to sq_volume_crop_pad (the centre); an all-ones or noise contour's box is the whole
 * volume. img F32, con U8 on the same grid. */
sq_code sq_volume_crop_contour(const sq_volume *img, const sq_volume *con, int d, int h, int w,
                               double margin, sq_volume *out_img, sq_volume *out_con,
                               sq_status *st);

/* The parts of sq_volume_crop_contour, for the training loader (crop jittered by augmentation):
 * sq_crop_box: the grown, clipped box [lo, hi] (inclusive voxel indices, z y x); 0 for an empty
 * contour. sq_crop_box_jitter: the box's centre moved by u[a] * amount and its size scaled by
 * 1 + u[3 + a] * amount, of its extent per axis (u in [-1, 1]), clipped to dims.
 * sq_volume_crop_box: the resampling of [lo, hi] to d x h x w. */
int sq_crop_box(const sq_volume *con, double margin, int lo[3], int hi[3]);
void sq_crop_box_jitter(const int dims[3], const double u[6], double amount, int lo[3], int hi[3]);
sq_code sq_volume_crop_box(const sq_volume *img, const sq_volume *con, const int lo[3],
                           const int hi[3], int d, int h, int w, sq_volume *out_img,
                           sq_volume *out_con, sq_status *st);

/* Map the lo-th and hi-th percentile (e.g. 0, 99; linear interpolation between order statistics,
 * as numpy's default) to [0, 255] in place; values above the hi percentile keep the same linear
 * map. A constant image maps to 0. Reports the two percentile values. */
sq_code sq_volume_normalise_percentile(sq_volume *img, double lo_pct, double hi_pct, double *p_lo,
                                       double *p_hi, sq_status *st);

/* Dice 2|A∩B| / (|A|+|B|) of two binary masks (non-zero = inside). Both empty: 1. */
double sq_dice_u8(const uint8_t *a, const uint8_t *b, size_t n);

/* A set of label values that make up the foreground: `all` (every non-zero value) or an
 * explicit list. Parsed from "all" or "1,2". */
typedef struct sq_label_set {
    int all;
    int n;
    int values[32];
} sq_label_set;
sq_code sq_label_set_parse(const char *text, sq_label_set *ls, sq_status *st);
/* 1 when `value` is in the set. */
int sq_label_set_has(const sq_label_set *ls, int value);
/* Binarise a label volume (U8 holding label values) in place: 1 where the label is in the set. */
void sq_label_set_apply(const sq_label_set *ls, sq_volume *mask);
/* Number of non-zero voxels. */
size_t sq_mask_count(const sq_volume *mask);

#ifdef __cplusplus
}
#endif
#endif
