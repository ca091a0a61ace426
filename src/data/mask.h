/* mask.h — a segmentation output as it comes out of a deployed model, turned into the binary
 * contour on the image's grid that the QA network takes.
 *
 * Real outputs are label maps (values 1, 2, ... one per structure), probability maps (float) or
 * masks written on another grid (resampled by the segmentation tool). The policy says which
 * labels make up the structure, where a float map is cut, and whether a contour on another grid
 * is mapped onto the image grid (nearest neighbour through both affines) or refused.
 *
 * Not for: reading image intensities (nifti.h) or the crop and normalisation (volume.h).
 */
#ifndef SEGQA_DATA_MASK_H
#define SEGQA_DATA_MASK_H

#include "core/status.h"
#include "data/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sq_resample { SQ_RESAMPLE_NONE = 0, SQ_RESAMPLE_NEAREST = 1 } sq_resample;

typedef struct sq_mask_policy {
    int has_labels;       /* a label set was given (--label); else the mask must hold 0/1 */
    sq_label_set labels;  /* foreground labels when has_labels */
    double threshold;     /* float datatypes without a label set: inside where value >= it */
    sq_resample resample; /* a contour on another grid: refused (NONE) or mapped (NEAREST) */
} sq_mask_policy;

/* Defaults: binary 0/1 required, float threshold 0.5, no resampling. */
sq_mask_policy sq_mask_policy_default(void);
/* "none" | "nearest". */
sq_code sq_resample_parse(const char *text, sq_resample *r, sq_status *st);

/* Raw values (F32, from sq_nifti_read_values) -> U8 0/1 mask with the same geometry. A float
 * datatype without a label set is thresholded; otherwise values must be integers 0..255 and are
 * taken through the label set, or must be 0/1 when there is none. Errors name `path` and the
 * first offending voxel. */
sq_code sq_mask_binarise(const sq_volume *values, int is_float, const sq_mask_policy *p,
                         const char *path, sq_volume *out, sq_status *st);

/* Nearest-neighbour map of a U8 mask onto grid's shape and affine: each grid voxel takes the
 * value of the mask voxel nearest to its centre in scanner mm (0 outside the mask). Fails on a
 * singular mask affine. */
sq_code sq_mask_resample_nearest(const sq_volume *mask, const sq_volume *grid, sq_volume *out,
                                 sq_status *st);

/* Read a contour file and bring it onto img's grid as a 0/1 U8 volume: the whole contour input
 * step of `predict`. A grid mismatch without resampling is one line naming both files and
 * saying how to resample; a resampled contour with voxels none of which lands on the image grid
 * is an error too. */
sq_code sq_contour_read(const char *path, const sq_volume *img, const char *img_path,
                        const sq_mask_policy *p, sq_volume *out, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
