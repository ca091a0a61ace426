/* synth.h — a synthetic prostate-like MRI site: a smooth random organ in textured anatomy with a
 * bias field and noise (0.59 x 0.59 x 3.9 mm voxels, paper shape 28 x 160 x 160), automatic
 * contours whose Dice is aimed at U[0.85, 0.95] (perturbed GT, strength found by bisection), and
 * clinical variables (age, volume, ISUP, PI-RADS, iPSA, risk class) weakly tied to a per-case
 * difficulty that also lowers contrast, raises noise and lowers the contour's Dice.
 * Sites of a multi-site study differ in intensity scale, bias field and resolution
 * (sq_synth_site_variant). Deterministic in (seed, case index). Not for: real-data ingest
 * (ingest.h). */
#ifndef SEGQA_DATA_SYNTH_H
#define SEGQA_DATA_SYNTH_H

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_synth_opts {
    const char *output;      /* site .h5 */
    const char *nifti_dir;   /* optional: also write images/ labels/ contours/ + clinical.csv */
    int n_cases;             /* paper: 60 */
    int shape[3];            /* D, H, W: 28, 160, 160 */
    double spacing[3];       /* z, y, x mm: 3.9, 0.59, 0.59 */
    double two_contour_frac; /* fraction of cases with a second contour (paper: 20/60) */
    unsigned long long seed;
    int progress;
    /* 0 (default): age only weakly tied to difficulty (66 + 7 N(0,1) + 4 d); 1: age = 66 + 30 d,
     * so the clinical baselines have something to find. Other draws and variables unchanged. */
    double clinical_signal;
    /* Site effects (multi-site studies, `segqa synth --sites N`): */
    const char *site_name;  /* NULL: "synth-prostate" */
    double intensity_scale; /* scanner gain applied after normalisation (1: none) */
    double bias_extra;      /* added to the bias-field amplitude (0: none) */
    /* 0 (default): the organ near the centre (+-5 mm); F in (0, 1]: moved in-plane towards a
     * random corner by F times the room between its radius and the edge (crop tests). */
    double off_centre;
} sq_synth_opts;

/* Site k of n (0-based) of a multi-site study: intensity scale 0.6..1.4, bias-field amplitude
 * +0..+0.35, in-plane spacing 1..1.5 x (lower resolution at the same shape), its own seed and
 * name "synth-site<k+1>". `name` holds the name (at least 32 bytes). */
void sq_synth_site_variant(sq_synth_opts *o, int k, int n, char *name, size_t name_size);

typedef struct sq_synth_stats {
    int n_cases, n_contours;
    double dice_min, dice_max;
    double seconds;
} sq_synth_stats;

sq_synth_opts sq_synth_opts_default(void);
sq_code sq_synth(const sq_synth_opts *o, sq_synth_stats *stats, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
