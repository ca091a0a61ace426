/* checkpoint.h — segqa checkpoints in HDF5, readable with h5py.
 *
 * Layout (format "segqa-checkpoint", version 2; version 1 files lack image_scale and bn_momentum
 * in model_config and are refused):
 *   /params/<name>      float32, the tensor's shape   (every learnable tensor, registry order)
 *   /buffers/<name>     float32                       (BatchNorm running statistics)
 *   /optim/m/<name>, /optim/v/<name>                  (Adam moments, when an optimiser is given)
 *   root attributes: format, version, step, epoch, model_config (JSON), preproc_config (JSON),
 *                    calibration (JSON, optional: the intervals of train/calibration.h),
 *                    recalibration (JSON, optional: the estimate's map of train/recal.h),
 *                    rng_key/rng_ctr/rng_buf (uint32), rng_idx, rng_has_spare, rng_spare;
 *   /optim attributes: step, beta1, beta2, eps, weight_decay.
 * Written to "<path>.tmp.<pid>" and renamed, so a reader never sees half a checkpoint. Loading
 * checks the format, the model config and every tensor's name and shape, and says exactly what
 * does not match.
 *
 * Not for: the training loop's policy of when to checkpoint (train/), data files (data/).
 */
#ifndef SEGQA_TRAIN_CHECKPOINT_H
#define SEGQA_TRAIN_CHECKPOINT_H

#include "core/rng.h"
#include "core/status.h"
#include "model/model.h"
#include "optim/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_ckpt_info {
    long step;                 /* global optimiser step */
    int epoch;                 /* epochs completed */
    char preproc_config[4096]; /* JSON text of the preprocessing config ("" = "{}") */
    int has_rng;               /* rng below is valid */
    sq_rng rng;
    char calibration[8192];  /* JSON of the interval calibration (train/calibration.h); "" = none */
    char recalibration[512]; /* JSON of the estimate's map (train/recal.h); "" = the identity */
} sq_ckpt_info;

/* Remove PATH.tmp.* left by a writer that died mid-write (call before resuming; nothing else may be
 * writing PATH then). Returns how many were removed. */
int sq_checkpoint_remove_stale(const char *path);

/* `opt` may be NULL (no optimiser state written). */
sq_code sq_checkpoint_save(const char *path, const sq_model *m, const sq_adam_opt *opt,
                           const sq_ckpt_info *info, sq_status *st);

/* Read the model config of a checkpoint (to create a matching model first). */
sq_code sq_checkpoint_read_config(const char *path, sq_model_config *c, sq_status *st);

/* Load into an existing model (and optimiser, if not NULL: the file must then hold its state).
 * info may be NULL. */
sq_code sq_checkpoint_load(const char *path, sq_model *m, sq_adam_opt *opt, sq_ckpt_info *info,
                           sq_status *st);

/* Store (replace) the calibration attribute of an existing checkpoint: the file is copied to a
 * temporary name, changed there and renamed over the original. */
sq_code sq_checkpoint_set_calibration(const char *path, const char *json, sq_status *st);
/* The same for any string attribute (e.g. "recalibration"). */
sq_code sq_checkpoint_set_attr(const char *path, const char *name, const char *json, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
