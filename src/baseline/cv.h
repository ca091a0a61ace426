/* cv.h — repeated random K-fold cross-validation of a clinical baseline, one row per patient.
 *
 * Repeat r permutes the patients with Philox keyed by (seed, stream + r) and deals them round-robin
 * into K folds, so a patient's contours never span two folds (rows are patients). Each repeat gives
 * out-of-fold predictions for every patient, scored by MAE and Spearman over all of them (the
 * study's Table 2 aggregates these per-repeat numbers over 64 repeats as mean ± SD).
 *
 * Not for: the parameter search (search.h).
 */
#ifndef SEGQA_BASELINE_CV_H
#define SEGQA_BASELINE_CV_H

#include "baseline/gbdt.h"
#include "baseline/table.h"

#include <stdint.h>

typedef struct sq_bl_repeat {
    double mae, spearman;
} sq_bl_repeat;

/* One repeat: out-of-fold predictions of every row into oof (may be NULL) and fold into fold
 * (may be NULL); the repeat's MAE and Spearman into *out. */
sq_code sq_bl_cv_repeat(sq_bl_model model, const sq_bl_table *t, const sq_gbdt_params *p,
                        int nfolds, uint64_t seed, uint32_t stream, double *oof, int *fold,
                        sq_bl_repeat *out, sq_status *st);

/* Mean and population SD (ddof 0) of n values, skipping NaNs; *nvalid counts the others. */
void sq_bl_mean_sd(const double *v, int n, double *mean, double *sd, int *nvalid);

#endif
