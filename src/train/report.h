/* report.h — the run folder's results (DESIGN §6): predictions.csv, metrics.json, figures.
 *
 * Input is every test prediction of every fold, gathered on rank 0, each tagged with its category:
 * a real automatic contour, one of the paper's failure cases (empty, uniform noise, all-ones, GT
 * shifted by up to ±50 %), or the GT mask itself (target 1). metrics.json holds the summary first
 * (segqa vs the naive baseline — the training mean — on real contours; MAE per failure case;
 * accuracy over all samples with the paper's rule), then per fold, per site, and per sample.
 * Figures are drawn by gnuplot (pngcairo): predicted vs target with the x = y line, failure-case
 * MAE bars, and training/validation curves when curves.csv exists.
 */
#ifndef SEGQA_TRAIN_REPORT_H
#define SEGQA_TRAIN_REPORT_H

#include "core/status.h"
#include <cjson/cJSON.h>
#include "train/metrics.h"
#include "train/splits.h"

#include <stdio.h>

typedef enum sq_category {
    SQ_CAT_REAL = 0,
    SQ_CAT_EMPTY,
    SQ_CAT_NOISE,
    SQ_CAT_ONES,
    SQ_CAT_SHIFTED,
    SQ_CAT_GT,
    SQ_CAT_COUNT
} sq_category;

const char *sq_category_name(sq_category c);
/* -1 when unknown. */
int sq_category_parse(const char *name);

typedef struct sq_prediction {
    char case_id[SQ_ID_MAX];
    char site[64];
    int fold;
    int category; /* sq_category */
    double target, pred, naive;
} sq_prediction;

/* Dice bands of the true Dice (issue 12): [0, 0.5), [0.5, 0.85), [0.85, 1]. The top band is
 * closed so that a real contour equal to its GT (Dice 1) counts in it; the GT category itself is
 * reported on its own. */
enum { SQ_BAND_COUNT = 3 };
extern const double sq_band_edges[SQ_BAND_COUNT + 1];
/* Band of a Dice value: 0..2 (values above 1 go to the top band, below 0 to the first). */
int sq_band_of(double dice);
/* "[0, 0.5)", "[0.5, 0.85)", "[0.85, 1]" */
const char *sq_band_name(int band);

typedef struct sq_report_summary {
    sq_metrics real, real_naive;    /* real contours */
    sq_metrics band[SQ_BAND_COUNT]; /* real contours per band of the true Dice */
    sq_metrics band_naive[SQ_BAND_COUNT];
    sq_metrics cat[SQ_CAT_COUNT];       /* segqa per category */
    sq_metrics cat_naive[SQ_CAT_COUNT]; /* naive per category */
    sq_metrics all, all_naive;          /* every sample: the accuracy of the paper */
} sq_report_summary;

sq_code sq_report_summarise(const sq_prediction *p, int n, sq_accuracy_rule rule,
                            sq_report_summary *s, sq_status *st);

/* Write predictions.csv, metrics.json and the figures into run_dir (created if needed). Each file
 * is written under a temporary name and renamed. `figures`: 0 skips gnuplot. */
sq_code sq_report_write(const char *run_dir, const sq_prediction *p, int n, sq_accuracy_rule rule,
                        int figures, sq_status *st);

/* Add `validation` to run_dir/metrics.json (second, after `summary`): per fold the best
 * validation MAE of real contours (patients held out of the fold's training patients,
 * --val-fraction) and its epoch, and their mean — the numbers to choose hyperparameters on.
 * best_val[f] = INFINITY: the fold had no validation (null). estimate_map (may be NULL, or hold
 * NULLs): each fold's estimate map as JSON text (train/recal.h), added as its "estimate_map". */
sq_code sq_report_add_validation(const char *run_dir, const double *best_val, const int *best_epoch,
                                 const char *const *estimate_map, int nfolds, double val_fraction,
                                 sq_status *st);

/* Add (replace) top-level `key` of run_dir/metrics.json with `item` (taken over, deleted on
 * failure too), after summary and validation. */
sq_code sq_report_add_section(const char *run_dir, const char *key, cJSON *item, sq_status *st);

/* Real-contour metrics per site beside the pooled ones (printed when there are 2+ sites). */
void sq_report_print_sites(FILE *f, const sq_prediction *p, int n, sq_accuracy_rule rule);

/* The table segqa prints at the end of a run: segqa vs naive, MAE, Spearman, accuracy, failures. */
void sq_report_print_summary(FILE *f, const sq_report_summary *s);

#endif
