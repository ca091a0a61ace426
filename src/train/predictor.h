/* predictor.h — a loaded model that estimates the Dice of (image, contour) pairs: the non-CLI
 * part of `segqa predict` (single pair, --pairs, --stdin and --report all go through it).
 *
 * Opening reads the model config, weights and preprocessing (crop shape, percentiles) from the
 * checkpoint once; each case then reads the NIfTI image, brings the contour onto the image grid
 * (data/mask.h policy), crops/pads and normalises as training did, and runs one forward pass.
 * The last case's image and contour stay readable until the next case (for the QC report).
 *
 * Not for: argv, output formatting or exit codes (src/cli/cmd_predict*.c).
 */
#ifndef SEGQA_TRAIN_PREDICTOR_H
#define SEGQA_TRAIN_PREDICTOR_H

#include "core/status.h"
#include "data/mask.h"
#include "data/volume.h"
#include "nn/backend.h"
#include "train/recal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_predictor sq_predictor;

/* Load ckpt onto backend be (not owned; it must outlive the predictor). */
sq_code sq_predictor_open(const char *ckpt, sq_backend *be, sq_predictor **out, sq_status *st);
void sq_predictor_close(sq_predictor *p);

/* The model's input shape (z, y, x) = the checkpoint's preprocessing shape. */
void sq_predictor_shape(const sq_predictor *p, int shape[3]);

/* Estimate the Dice of one contour: the network's output through the checkpoint's map
 * (train/recal.h; the identity when it has none). Errors name the file at fault; the predictor
 * stays usable. */
sq_code sq_predictor_estimate(sq_predictor *p, const char *image, const char *contour,
                              const sq_mask_policy *mp, float *estimate, sq_status *st);

/* The last successful case's image (F32, as read) and 0/1 contour on its grid. */
const sq_volume *sq_predictor_last_image(const sq_predictor *p);
const sq_volume *sq_predictor_last_contour(const sq_predictor *p);

/* The checkpoint's crop policy: "center" (also for checkpoints without the key) or "contour"
 * (preproc_config keys "crop" and "crop_margin"; see sq_volume_crop_contour). */
const char *sq_predictor_crop(const sq_predictor *p);

/* The checkpoint's interval calibration (JSON of train/calibration.h), "" when it has none. */
const char *sq_predictor_calibration(const sq_predictor *p);

/* The checkpoint's estimate map (train/recal.h). */
const sq_recal *sq_predictor_recal(const sq_predictor *p);

/* Milliseconds of the last case's phases: [0] NIfTI read + contour rules, [1] crop/pad +
 * normalisation, [2] forward pass. */
void sq_predictor_last_ms(const sq_predictor *p, double ms[3]);

#ifdef __cplusplus
}
#endif
#endif
