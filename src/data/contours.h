/* contours.h — automatic contours for data that has none, with a known Dice against the GT.
 *
 *  atlas:   another case's GT mapped onto this image by intensity moments (centroid, principal
 *           axes and their extents, i.e. a 9-parameter affine with no shear) — a genuine, if
 *           simple, atlas-based automatic segmentation that never looks at this case's GT.
 *  perturb: the GT changed by a signed-distance offset (erode/dilate by r mm), smooth boundary
 *           noise (a coarse random field added to the signed distance) and a smooth local shift
 *           field (GT resampled at x + u(x)).
 * Every draw comes from an sq_rng the caller keys, so the same seed gives the same contours.
 *
 * Not for: the augmentation-time failure cases (augment.h).
 */
#ifndef SEGQA_DATA_CONTOURS_H
#define SEGQA_DATA_CONTOURS_H

#include "core/rng.h"
#include "core/status.h"
#include "data/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Signed Euclidean distance in mm to the mask boundary (negative inside, positive outside);
 * exact (separable squared-distance transform). An empty mask gives +1e9 everywhere. */
sq_code sq_signed_distance(const sq_volume *mask, float *sd, sq_status *st);

/* Smooth random field: N(0, 1) values on a coarse grid with `cell` voxels between nodes per
 * axis (z, y, x), trilinearly interpolated to d x h x w, times `amp`. */
void sq_smooth_field(sq_rng *r, int d, int h, int w, const double cell[3], float amp, float *out);

typedef struct sq_perturb_params {
    float radius_mm; /* > 0 dilate, < 0 erode */
    float noise_mm;  /* amplitude of the boundary noise */
    float noise_cell_mm;
    float shift_mm; /* amplitude of the local shift field */
    float shift_cell_mm;
} sq_perturb_params;

/* Draw perturbation parameters: radius U[-2, 2] mm, noise U[0, 1.5] mm on an 8 mm grid, shift
 * U[0, 2.5] mm on a 12 mm grid (scaled by `strength`). */
void sq_perturb_draw(sq_rng *r, float strength, sq_perturb_params *p);
/* out (fresh U8 volume) = perturbed gt; params_json (malloc'ed) describes p. */
sq_code sq_contour_perturb(const sq_volume *gt, const sq_perturb_params *p, sq_rng *r,
                           sq_volume *out, char **params_json, sq_status *st);

/* out (fresh U8 volume on the target's grid) = atlas_gt mapped by the moment alignment of
 * atlas_img onto target_img. params_json (malloc'ed) records centroids and axis scales. */
sq_code sq_contour_atlas(const sq_volume *target_img, const sq_volume *atlas_img,
                         const sq_volume *atlas_gt, const char *atlas_id, sq_volume *out,
                         char **params_json, sq_status *st);

/* `segqa contours`: read a site, add per case n_atlas atlas contours, n_perturb perturbed-GT
 * contours and n_near near-GT contours (names atlas_<k>, perturb_<k>, near_<k>), write the result
 * atomically to output (may equal input). Contours of the same name already there are replaced.
 * A near-GT contour is a perturbation whose strength is drawn U[near_lo, near_hi] (times the
 * default parameters): the sub-voxel to one-voxel boundary errors of a good segmentation model,
 * Dice about 0.85-0.99 on the bundled hippocampi (docs/training.md, "top of the range"). */
typedef struct sq_contours_opts {
    const char *input, *output;
    int n_atlas, n_perturb, n_near;
    unsigned long long seed;
    float strength;
    float near_lo, near_hi;
    int progress;
} sq_contours_opts;

/* The defaults of `segqa contours`, which both training recipes expect: 1 atlas, 1 perturbed, 2
 * near-GT contours per case, strength 1, near strengths U[0.2, 0.8], seed 1234. */
sq_contours_opts sq_contours_opts_default(void);

typedef struct sq_contours_stats {
    int n_cases, n_contours;
    double dice_min, dice_max, dice_mean;
    double seconds;
} sq_contours_stats;

sq_code sq_contours_run(const sq_contours_opts *o, sq_contours_stats *stats, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
