/* metrics.h — how well predicted Dice matches the true Dice (paper §2.5, DESIGN §6).
 *
 * MAE ± SD of the absolute error, mean absolute percentage error (over samples with y != 0), max
 * error, Spearman (average ranks on ties, as scipy.stats.spearmanr) and Pearson correlation, and
 * the paper's accuracy rule: a prediction fails when (ŷ < low and y > high) or (ŷ > high and
 * y < low), with low = 0.75 and high = 0.8 in the study.
 *
 * Not for: gathering predictions across ranks (hpc/comm.h) or writing reports.
 */
#ifndef SEGQA_TRAIN_METRICS_H
#define SEGQA_TRAIN_METRICS_H

#include "core/status.h"

typedef struct sq_accuracy_rule {
    double low;  /* 0.75 */
    double high; /* 0.80 */
} sq_accuracy_rule;

#define SQ_ACCURACY_RULE_PAPER ((sq_accuracy_rule){0.75, 0.80})

typedef struct sq_metrics {
    int n;
    double mae, mae_sd; /* SD of |ŷ - y| (population, ddof = 0) */
    double mape;        /* percent, over the n_mape samples with y != 0 */
    int n_mape;
    double max_err;
    double spearman; /* NaN when either vector is constant or n < 2 */
    double pearson;
    double accuracy; /* fraction of samples that do not fail the rule */
    int n_failed;
} sq_metrics;

/* Fractional ranks 1..n with ties given their average rank (scipy.stats.rankdata 'average'). */
sq_code sq_rank_average(const double *x, int n, double *ranks, sq_status *st);
double sq_pearson(const double *x, const double *y, int n);
double sq_spearman(const double *x, const double *y, int n);
/* 1 when the pair fails the rule. */
int sq_accuracy_fails(double y, double pred, sq_accuracy_rule rule);

/* All metrics of n pairs (y = true Dice, pred = estimate). n may be 0 (all fields NaN, n = 0). */
sq_code sq_metrics_compute(const double *y, const double *pred, int n, sq_accuracy_rule rule,
                           sq_metrics *m, sq_status *st);

#endif
