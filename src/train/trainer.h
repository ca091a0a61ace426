/* trainer.h — `segqa cv` and `segqa train`: the training job of DESIGN §1 and §5.
 *
 * Every rank opens the site files itself (read-only). Folds are made per patient (splits.h) or
 * read back with --splits, or made one per site file (leave-one-site-out). The world is laid out as
 * hpc/comm.h says (fold groups when W >= K, round-robin folds when W < K, one data-parallel group
 * when K = 0). Inside a group the initial parameters are broadcast, each rank streams its shard of
 * the seeded global permutation from the loader (data/loader.h), gradients of the flat buffer are
 * averaged in buckets, and Adam runs on every rank with the same numbers. A part of the training
 * patients (--val-fraction) is held out for validation every --val-every epochs; best.h5 and
 * last.h5 are written per fold by the group's rank 0. After training each fold's test patients are
 * predicted — their real contours, and with the failure study their empty / noise / all-ones /
 * shifted-GT contours and the GT itself — and world rank 0 gathers every prediction and writes the
 * run folder (report.h), with each fold's best validation MAE in metrics.json's `validation` (the
 * number a sweep chooses on).
 *
 * Resume: last.h5 holds parameters, BatchNorm statistics, Adam moments and the global step; a
 * restarted run skips the batches already done in the interrupted epoch (the loader is
 * deterministic), so it ends bitwise equal to an uninterrupted run on the same thread count.
 * SIGUSR1/SIGTERM: every rank of a group finishes its step, the group checkpoints, and the call
 * returns SQ_ERR_INTERRUPTED (exit code 75).
 */
#ifndef SEGQA_TRAIN_TRAINER_H
#define SEGQA_TRAIN_TRAINER_H

#include "core/status.h"
#include "hpc/comm.h"
#include "model/model.h"
#include "optim/optim.h"
#include "train/metrics.h"

#include <cjson/cJSON.h>
#include <stdint.h>

typedef struct sq_train_opts {
    const char *const *sites; /* site files */
    int nsites;
    int nfolds;              /* K >= 2 for cross-validation; 0: one model on all data */
    int split_by_site;       /* leave-one-site-out: fold f = site file f (nfolds = nsites) */
    const char *splits_path; /* reuse these folds ("" or NULL: make them) */
    const char *run_dir;
    int epochs;
    int batch;
    int val_every;       /* validate every N epochs (and after the last) */
    double val_fraction; /* of each fold's training patients, held out for validation */
    int workers;         /* augmentation threads per rank */
    int threads;         /* compute threads per rank (CPU backend) */
    const char *device;  /* backend by name: "cpu", "cuda" or "auto" (nn/registry.h) */
    int deterministic;   /* CUDA: deterministic algorithms only */
    uint64_t seed;
    sq_lr_schedule lr;
    double clip;          /* gradient-norm clipping, 0 = off */
    const char *augment;  /* "paper", "robust" (paper + failure injection) or "none" */
    double fail_rate;     /* failure injection rate of the robust preset */
    double gt_rate;       /* share of training samples whose contour is the GT itself (0: off) */
    int failures;         /* run the failure-case study on every test fold */
    int figures;          /* draw the figures */
    int max_steps;        /* stop every fold after this many steps in total (tests); 0 = off */
    int sync_bn;          /* synchronised BatchNorm over a data-parallel group (default on) */
    int bn_freeze_epochs; /* the last N epochs train with BN on its running statistics, which
                             stay as they are (eval-mode BN, forward and backward); 0: off */
    const char *comm;     /* "auto" (NCCL when the backend is CUDA), "nccl" or "mpi" */
    double comm_timeout;  /* seconds a collective may take before the job is ended (watchdog) */
    int on_nan_skip;      /* a step with a NaN/Inf loss or gradient: 0 stop the run, 1 skip it */
    const char *calibration_path; /* calibration.json to store in every checkpoint ("": none) */
    int recalibrate; /* fit the estimate's map (train/recal.h) on each fold's validation patients,
                      * apply it to its test predictions, store it in its checkpoints (default 1) */
    sq_accuracy_rule rule;
    /* --crop contour (docs/predict.md "Crop policy"): every sample, in training (after
     * augmentation, box jittered) and in evaluation, is the box of its contour grown by
     * crop_margin, resampled to crop_shape (zeros: the site's shape) and re-normalised as predict
     * does; the checkpoint stores the policy. 0: the site's grid as stored (centre crop). */
    int crop_contour;
    int crop_shape[3];
    double crop_margin;
    sq_model_config model; /* input shape (or crop_shape) and spacing from the site files */
    const cJSON *config;   /* resolved options, saved as run_dir/config.json (may be NULL) */
} sq_train_opts;

sq_train_opts sq_train_opts_default(void);

/* Run the job on this rank. Rank 0 prints the summary table when done. */
sq_code sq_train_run(const sq_train_opts *o, const sq_world *w, sq_status *st);

#endif
