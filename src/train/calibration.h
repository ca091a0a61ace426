/* calibration.h — calibrated intervals on every Dice estimate: split-conformal, conditioned on the
 * estimate's Dice band (Mondrian conformal prediction), from out-of-fold residuals.
 *
 * Fit: the signed residuals r = y - ŷ of held-out predictions (the CV's test folds: every sample
 * is predicted by a model that never saw its patient) are sorted per band of the *estimate* ŷ
 * ([0, 0.5), [0.5, 0.85), [0.85, 1], report.h). For a coverage 1 - a the interval is
 * [ŷ + r_(kl), ŷ + r_(kh)] with kl = floor((n + 1) a / 2) and kh = ceil((n + 1)(1 - a / 2))
 * (1-based order statistics; kl < 1 or kh > n give an open end, i.e. 0 or 1), clipped to [0, 1].
 * Under exchangeability of the new case with the calibration cases of its band this covers y with
 * probability >= 1 - a. Signed (not absolute) residuals let the interval be one-sided where the
 * errors are, e.g. below 1 at the top. A band with fewer than SQ_CALIB_MIN_BAND residuals uses the
 * pooled residuals of all bands.
 *
 * Stored compactly: the two offsets per band for the coverages 0.50, 0.51, ..., 0.99. A requested
 * coverage is rounded up to the next hundredth (never less coverage than asked).
 */
#ifndef SEGQA_TRAIN_CALIBRATION_H
#define SEGQA_TRAIN_CALIBRATION_H

#include "core/status.h"
#include "train/report.h"

#include <cjson/cJSON.h>

enum { SQ_CALIB_LEVELS = 50, SQ_CALIB_MIN_BAND = 30 };

typedef struct sq_calibration {
    int n[SQ_BAND_COUNT];      /* residuals fitted per estimate band */
    int pooled[SQ_BAND_COUNT]; /* 1: the band had too few and uses the pooled offsets */
    float lo[SQ_BAND_COUNT][SQ_CALIB_LEVELS]; /* offset of the lower end, at 0.50 + 0.01 k */
    float hi[SQ_BAND_COUNT][SQ_CALIB_LEVELS];
} sq_calibration;

/* Fit from n (true, estimate) pairs. n >= 1. */
sq_code sq_calib_fit(const double *y, const double *est, int n, sq_calibration *c, sq_status *st);
/* 0.50..0.99 -> 0..49 (rounded up); -1 outside [0.5, 0.99]. */
int sq_calib_level(double coverage);
/* Interval [lo, hi] of an estimate at a level index. */
void sq_calib_interval(const sq_calibration *c, double est, int level, double *lo, double *hi);

cJSON *sq_calib_to_json(const sq_calibration *c);
/* origin names the source (a file, a checkpoint) in messages. */
sq_code sq_calib_from_json(const cJSON *j, const char *origin, sq_calibration *c, sq_status *st);
sq_code sq_calib_read_file(const char *path, sq_calibration *c, sq_status *st);

/* Empirical coverage on held-out folds: for each fold k the calibration is fitted on the other
 * folds' predictions and applied to fold k's. */
typedef struct sq_coverage_cell {
    int n, covered;
    double width; /* mean interval width */
} sq_coverage_cell;

typedef struct sq_coverage_table {
    double nominal;
    int nfolds;
    sq_coverage_cell all;
    sq_coverage_cell est_band[SQ_BAND_COUNT];  /* by the estimate's band (what is conditioned on) */
    sq_coverage_cell true_band[SQ_BAND_COUNT]; /* real contours, by the true Dice's band */
    sq_coverage_cell cat[SQ_CAT_COUNT];
} sq_coverage_table;

sq_code sq_calib_crossfold(const sq_prediction *p, int n, double coverage, sq_coverage_table *t,
                           sq_status *st);
cJSON *sq_coverage_to_json(const sq_coverage_table *t);
void sq_coverage_print(FILE *f, const sq_coverage_table *t);

#endif
