/* recal.h — recalibration of the Dice estimate: a monotone map fitted on validation patients.
 *
 * The network's estimate is compressed toward the middle of the range (a sigmoid under MSE, with
 * too few steps to reach its ends): failures near Dice 0 come out around 0.1, the GT and the best
 * contours around 0.85-0.9. The map undoes that: est' = sigmoid(a * logit(est) + b), a > 0, with
 * (a, b) the least-squares fit of the true Dice on the raw estimates of the model's own
 * validation patients (held out of its training, never a test fold); logit clips at 1e-4. Two
 * parameters, so a fold's validation share (about 150 samples) fits it stably. A fit that fails
 * or leaves a outside [SQ_RECAL_A_MIN, SQ_RECAL_A_MAX] gives the identity (a = 1, b = 0).
 *
 * Stored in the checkpoint as the "recalibration" attribute (JSON, recal_to_text); a checkpoint
 * without it has the identity. Interval calibration (calibration.h) is fitted on mapped estimates.
 */
#ifndef SEGQA_TRAIN_RECAL_H
#define SEGQA_TRAIN_RECAL_H

#include "core/status.h"

#include <stddef.h>

#define SQ_RECAL_A_MIN 0.1
#define SQ_RECAL_A_MAX 10.0
enum { SQ_RECAL_MIN_SAMPLES = 10 };

typedef struct sq_recal {
    double a, b;
    int n;      /* samples it was fitted on (0: the identity, never fitted) */
    double mse; /* mean squared error on them after the map (before: mse_raw) */
    double mse_raw;
} sq_recal;

sq_recal sq_recal_identity(void);
/* Fit on n (raw estimate, true Dice) pairs; fewer than SQ_RECAL_MIN_SAMPLES, (nearly) constant
 * estimates (variance of the logits <= 1e-6) or a degenerate fit give the identity with n set.
 * Never fails. */
sq_recal sq_recal_fit(const double *est, const double *y, int n);
double sq_recal_apply(const sq_recal *r, double est);
/* JSON text {"map": "sigmoid(a*logit(est)+b)", "a", "b", "n", "mse_raw", "mse"} into buf. */
void sq_recal_to_text(const sq_recal *r, char *buf, size_t cap);
/* Parse that text; origin names the source in messages. "" gives the identity. */
sq_code sq_recal_from_text(const char *text, const char *origin, sq_recal *r, sq_status *st);

#endif
