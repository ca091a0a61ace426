/* monitor.h — drift detection on a stream of Dice estimates of a deployed model (`segqa monitor`).
 *
 * Reference: the out-of-fold CV estimates of the model's run (RUN/predictions.csv, category
 * `real`), i.e. what the estimates look like on contours of known, in-distribution quality.
 * Method: two one-sided CUSUMs per site stream, in arrival order, on
 *   the estimate:  z = (mu0 - y) / sd0               (a drop of the mean estimate)
 *   rejection:     r = (1[y < threshold] - p0) / sqrt(p0 (1 - p0))   (a rise of the reject rate)
 * each S = max(0, S + z - k) with k = 0.5 (tuned to a shift of one reference SD). The alarm
 * limits h are calibrated by a smoothed bootstrap: B streams of the same length drawn with
 * replacement from the reference plus Gaussian kernel noise (Silverman's bandwidth); h is the (1 -
 * alpha/2) quantile of each statistic's maximum, so a stream drawn from the reference raises an
 * alarm (either statistic) with probability <= alpha (Bonferroni). After an alarm a statistic
 * restarts from 0.
 *
 * Not for: reading JSON lines or drawing axes' labels of the CLI (cmd_monitor.c).
 */
#ifndef SEGQA_TRAIN_MONITOR_H
#define SEGQA_TRAIN_MONITOR_H

#include "core/status.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_monitor_config {
    double alpha;     /* false-alarm probability per site stream (default 0.01) */
    double k;         /* CUSUM allowance in reference SDs (default 0.5) */
    double threshold; /* accept/reject threshold of the estimates (default 0.8) */
    int bootstrap;    /* bootstrap streams for the limits (default 2000) */
    int window;       /* cases per window of the plotted rolling mean (default 20) */
    uint64_t seed;
} sq_monitor_config;

sq_monitor_config sq_monitor_config_default(void);

/* The reference distribution. */
typedef struct sq_monitor_ref {
    double *y;
    int n;
    double mean, sd, reject_rate;
} sq_monitor_ref;

/* Real-contour rows of a run's predictions.csv (column `predicted`, `category` == real). */
sq_code sq_monitor_ref_read(const char *predictions_csv, double threshold, sq_monitor_ref *ref,
                            sq_status *st);
void sq_monitor_ref_free(sq_monitor_ref *ref);

/* One site's stream result. alarm[i] = 1 (mean), 2 (rejection), 3 (both) at case i. */
typedef struct sq_monitor_result {
    double h_mean, h_reject;
    int first_alarm; /* index of the first alarm, -1 none */
    int alarms;
    double mean, reject_rate;
} sq_monitor_result;

/* Run the CUSUMs on y[0..n) (one site, arrival order); alarm[] (n entries) may be NULL. */
sq_code sq_monitor_run(const sq_monitor_ref *ref, const sq_monitor_config *c, const double *y,
                       int n, uint8_t *alarm, sq_monitor_result *res, sq_status *st);

/* PNG of the estimates over time: points, rolling mean of `window`, reference mean, threshold,
 * and red marks at alarms. */
sq_code sq_monitor_plot(const char *png, const sq_monitor_ref *ref, const sq_monitor_config *c,
                        const double *y, const uint8_t *alarm, int n, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
