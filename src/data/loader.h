/* loader.h — the streaming training loader: one reader thread (the only thread that touches
 * HDF5), N augmentation worker threads, and a bounded ring of ready batches, delivered in order.
 *
 * A dataset is one or more site files (all with the same volume shape). Its samples are the
 * (site, case, contour) triples, in site order, then case order (by id), then contour order (by
 * name). Each epoch a global permutation of the selected samples is drawn from Philox
 * (seed, epoch); rank r of W takes global positions p = (step * W + r) * batch + j, so every rank
 * runs the same number of steps (floor(n / (W * batch)), at least 1, positions wrap around).
 * The augmentation of the sample at global position p is keyed by (seed, epoch, p), and with
 * swap_pairs the odd positions of a batch get another sample's contour (chosen by Philox from
 * (seed ^ const, epoch, p)) scaled by U[0.55, 1.8]: batches are identical for any number of
 * workers, and the union over ranks is the same for any world size with the same W * batch.
 *
 * Batch layout: x is float32 [n][2][D][H][W] (channel 0 the image, channel 1 the contour as
 * 0/1; D, H, W the crop's shape with cfg.crop.on, else the site's), y is float32 [n] (the Dice
 * recomputed after augmentation).
 */
#ifndef SEGQA_DATA_LOADER_H
#define SEGQA_DATA_LOADER_H

#include "core/status.h"
#include "data/augment.h"
#include "data/site.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_sample_ref {
    int site, case_idx, contour; /* contour index within the case's metadata */
    double dice;                 /* stored Dice (before augmentation) */
} sq_sample_ref;

typedef struct sq_dataset sq_dataset;
/* Open the site files (metadata only; volumes are read by the loader's reader thread). */
sq_code sq_dataset_open(const char *const *paths, int n, sq_dataset **ds, sq_status *st);
void sq_dataset_close(sq_dataset *ds);
int sq_dataset_nsites(const sq_dataset *ds);
sq_site *sq_dataset_site(sq_dataset *ds, int i);
int sq_dataset_nsamples(const sq_dataset *ds);
const sq_sample_ref *sq_dataset_sample(const sq_dataset *ds, int i);
/* Patient id of sample i (for per-patient folds). */
const char *sq_dataset_patient(const sq_dataset *ds, int i);
void sq_dataset_shape(const sq_dataset *ds, int shape[3]);

/* Where the batch ring's x buffers come from. NULL functions: 64-byte aligned host memory. The
 * trainer passes the backend's page-locked memory on a GPU (nn/registry.h sq_backend_host_alloc),
 * so a batch is copied to the device by DMA while the previous step computes (train/feed.h);
 * src/data itself knows nothing of backends. */
typedef struct sq_ring_allocator {
    void *(*alloc)(void *ctx, size_t bytes); /* NULL on failure */
    void (*release)(void *ctx, void *p);
    void *ctx;
} sq_ring_allocator;

/* Optional crop around the training contour (`crop: contour` in the preprocessing; predict crops
 * the same way, docs/predict.md). After augmentation on the site's full grid, the sample is the
 * box of the augmented (possibly swapped and scaled) contour — never the GT's — grown by `margin`,
 * its centre and size jittered by up to `jitter` of its extent when augmenting, resampled to
 * `shape` (sq_volume_crop_box), the image re-mapped by the percentiles lo_pct/hi_pct as predict
 * maps its crop. An empty contour takes the centre crop; an all-ones or noise one, the whole
 * grid. y stays the Dice over the whole structure on the full grid, not over the crop. Batch x
 * is then [n][2][shape]. */
typedef struct sq_loader_crop {
    int on;
    int shape[3];  /* D, H, W of the model input */
    double margin; /* share of the box extent per side (0.1) */
    double jitter; /* share of the extent (0.1); used only when the loader augments */
    double lo_pct, hi_pct;
} sq_loader_crop;

typedef struct sq_loader_config {
    int batch;   /* samples per batch (paper: 2) */
    int workers; /* augmentation threads, >= 1 */
    int ring;    /* batches in flight, >= 1 (default 4) */
    uint64_t seed;
    int rank, world; /* data-parallel shard; 0, 1 for one process */
    int augment;     /* 0: identity map (evaluation), 1: cfg aug */
    int swap_pairs;  /* 1: odd positions of a batch get a swapped, scaled contour (paper) */
    int shuffle;     /* 1: permute each epoch; 0: dataset order */
    int cache;       /* 1: keep every decoded case in memory after its first read */
    sq_aug_config aug;
    const int *subset; /* optional: sample indices to use (e.g. a fold's training set) */
    int nsubset;
    sq_ring_allocator ring_alloc; /* optional (zeroed: host memory) */
    sq_loader_crop crop;          /* optional (zeroed: the batch is the site's grid) */
} sq_loader_config;

/* Defaults: batch 2, 2 workers, ring 4, rank 0 of 1, augment + swap pairs + shuffle + cache on,
 * the paper's augmentation. */
sq_loader_config sq_loader_config_default(void);

typedef struct sq_batch {
    int n;              /* samples in this batch */
    int step;           /* step within the epoch */
    float *x;           /* [n][2][D][H][W] */
    float *y;           /* [n] */
    int *sample;        /* [n] dataset sample index */
    uint32_t *position; /* [n] global position p (the augmentation's sample id) */
    sq_aug_record *rec; /* [n] what the augmentation drew */
} sq_batch;

typedef struct sq_loader sq_loader;
/* The dataset must stay open, and untouched by other threads, while the loader lives. */
sq_code sq_loader_create(sq_dataset *ds, const sq_loader_config *cfg, sq_loader **L, sq_status *st);
/* Begin epoch `epoch` (the previous one, if any, is finished or cancelled first). */
sq_code sq_loader_start_epoch(sq_loader *L, uint32_t epoch, sq_status *st);
/* Steps per epoch for this rank. */
int sq_loader_steps(const sq_loader *L);
/* Next batch of the epoch, in order (blocks). *b = NULL at the end of the epoch. A reader or
 * worker error is returned here. */
sq_code sq_loader_next(sq_loader *L, sq_batch **b, sq_status *st);
/* Give a batch's slot back to the ring. */
void sq_loader_release(sq_loader *L, sq_batch *b);
/* Stop the threads, free everything. NULL is fine. */
void sq_loader_destroy(sq_loader *L);

#ifdef __cplusplus
}
#endif
#endif
