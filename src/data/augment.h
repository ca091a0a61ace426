/* augment.h — the paper's augmentation (§2.4) plus failure-case injection, one sample at a time.
 *
 * Image, GT and contour are resampled once through one composed coordinate map (output voxel ->
 * source voxel): horizontal flip (x), in-plane rotation U[-rot_max, rot_max], x/y translation
 * U[-trans_frac, trans_frac] of the extent, in-plane zoom U[1-zoom_frac, 1+zoom_frac], and an
 * elastic in-plane displacement (N(0, elastic_mm) on a coarse grid of elastic_cell_mm, trilinearly
 * interpolated). Rotation and zoom act in mm about the volume centre, so anisotropic voxels are
 * handled. The image is sampled bilinearly within its slice (the map never moves across slices);
 * masks by nearest neighbour. A swapped contour (the paper's second pair of a batch) is
 * additionally scaled by U[swap_scale_lo, swap_scale_hi] about its centroid in 3D.
 * Failure injection (probability fail_rate) then replaces the contour by: empty, uniform binary
 * noise (each voxel 1 with p = 0.5), all ones, or the augmented GT shifted by U[-0.5, 0.5] of the
 * extent in x and y. A sample that is not made a failure becomes, with probability gt_rate, the
 * augmented GT itself (Dice 1), drawn from its own Philox stream so that the other draws do not
 * move. The target Dice is recomputed on the outputs (both empty -> 1).
 *
 * Every draw comes from Philox keyed by (seed, epoch, sample id) in a fixed order, so a sample is
 * bit-identical whichever thread or rank computes it. The function is re-entrant.
 */
#ifndef SEGQA_DATA_AUGMENT_H
#define SEGQA_DATA_AUGMENT_H

#include "core/rng.h"
#include "core/status.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SQ_FAIL_NONE = 0,
    SQ_FAIL_EMPTY = 1,
    SQ_FAIL_NOISE = 2,
    SQ_FAIL_ONES = 3,
    SQ_FAIL_SHIFT = 4,
};
/* Bit set of failure kinds: 1 << SQ_FAIL_EMPTY | ... */
#define SQ_FAIL_ALL                                                                                \
    ((1u << SQ_FAIL_EMPTY) | (1u << SQ_FAIL_NOISE) | (1u << SQ_FAIL_ONES) | (1u << SQ_FAIL_SHIFT))

typedef struct sq_aug_config {
    float swap_scale_lo, swap_scale_hi; /* 0.55, 1.8 */
    float flip_prob;                    /* 0.5 */
    float rot_max;                      /* pi/12 rad */
    float trans_frac;                   /* 0.1 */
    float zoom_frac;                    /* 0.1 */
    float elastic_mm;                   /* 1.5: std of the coarse-node displacement, mm */
    float elastic_cell_mm;              /* 16: coarse grid spacing, mm */
    float fail_rate;                    /* 0: off */
    unsigned fail_kinds;                /* SQ_FAIL_ALL */
    float gt_rate; /* 0: off; else the contour of a sample not made a failure is replaced by the
                      augmented GT with this probability (target 1: the top of the range) */
} sq_aug_config;

/* The paper's settings, failure injection off. */
sq_aug_config sq_aug_config_default(void);
/* Every parameter zero: the identity map (for tests). */
sq_aug_config sq_aug_config_identity(void);

typedef struct sq_aug_input {
    int d, h, w;
    double spacing[3];      /* z, y, x mm */
    const float *image;     /* d*h*w */
    const uint8_t *gt;      /* binary */
    const uint8_t *contour; /* binary; for a swapped pair another case's contour */
    int swapped;            /* 1: scale the contour by the swap factor */
} sq_aug_input;

typedef struct sq_aug_record {
    int flip;
    float rot, tx_mm, ty_mm, zoom, swap_scale;
    int failure;            /* SQ_FAIL_* */
    int gt_copy;            /* 1: the contour is the augmented GT (gt_rate) */
    float shift_x, shift_y; /* voxels, SQ_FAIL_SHIFT only */
} sq_aug_record;

typedef struct sq_aug_output {
    float *image;     /* d*h*w */
    uint8_t *contour; /* d*h*w */
    uint8_t *gt;      /* d*h*w */
    double dice;      /* contour vs gt after augmentation */
    sq_aug_record rec;
} sq_aug_output;

/* The row kernel: use_avx2 1 = AVX2 (when the CPU has it), 0 = portable, -1 = leave as is.
 * Returns the previous choice; the default is AVX2 where present. Both give bit-identical samples.
 */
int sq_augment_isa(int use_avx2);

sq_code sq_augment(const sq_aug_config *cfg, uint64_t seed, uint32_t epoch, uint32_t sample,
                   const sq_aug_input *in, sq_aug_output *out, sq_status *st);

/* Replace `contour` by failure case `kind` (drawing from r); `gt` is used by SQ_FAIL_SHIFT.
 * Records the shift in rec. */
void sq_failure_contour(int kind, sq_rng *r, const uint8_t *gt, int d, int h, int w,
                        uint8_t *contour, sq_aug_record *rec);

#ifdef __cplusplus
}
#endif
#endif
