/* feed.h — the training step's input pipeline: loader batches into the model's input tensor.
 *
 * Host-memory backend (CPU): a pass-through, as before this file existed: the batch's host x goes
 * to sq_model_forward, which copies it into the activation arena; nothing else is copied.
 *
 * Backend with a copy stream (CUDA: be->upload_async and the copy events, nn/backend.h): the
 * loader's batch ring is page-locked host memory (sq_feed_ring_allocator), and batch k+1 is
 * uploaded on the copy stream into a device staging buffer while the compute stream still runs
 * step k. Step k+1's forward makes the compute stream wait for that copy's event, copies staging
 * into the model's input tensor on the device (a few microseconds) and records an event that the
 * next upload waits for before it overwrites staging. No host synchronisation is added; the host
 * blocks only where the loader has no batch ready (counted in wait_ms: the input-bound time).
 *
 * Not for: evaluation batches (the trainer's evaluator uploads its own small batches).
 */
#ifndef SEGQA_TRAIN_FEED_H
#define SEGQA_TRAIN_FEED_H

#include "core/status.h"
#include "data/loader.h"
#include "model/model.h"
#include "nn/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_feed {
    sq_backend *be;
    sq_loader *L;
    int device;     /* 1: the copy-stream path */
    size_t xbytes;  /* one batch's x */
    sq_buf *stage;  /* device staging buffer of the next batch's x */
    void *copied;   /* event on the copy stream: staging holds `next` */
    void *consumed; /* event on the compute stream: staging was copied into the model's input */
    sq_batch *next; /* device path: the batch whose upload is in flight */
    int forwarded;  /* device path: the batch handed out went through sq_feed_forward */
    double wait_ms; /* host time blocked in sq_loader_next (the loader was behind) */
    long batches;   /* batches delivered */
} sq_feed;

/* The loader's ring allocator for this backend: pinned memory where the backend has it. */
sq_ring_allocator sq_feed_ring_allocator(sq_backend *be);

/* xbytes: bytes of one batch's x (n * 2 * D * H * W floats). The loader must outlive the feed. */
sq_code sq_feed_init(sq_feed *f, sq_backend *be, sq_loader *L, size_t xbytes, sq_status *st);
void sq_feed_free(sq_feed *f);

/* sq_loader_start_epoch, then (device path) the first batch's upload. */
sq_code sq_feed_start_epoch(sq_feed *f, uint32_t epoch, sq_status *st);
/* The next batch of the epoch (NULL at its end). On the device path its upload is in flight. */
sq_code sq_feed_next(sq_feed *f, sq_batch **b, sq_status *st);
/* Forward pass of the model on b (training: no outputs read back). Device path: the input comes
 * from staging, and the next batch's upload is enqueued behind this forward. */
sq_code sq_feed_forward(sq_feed *f, sq_model *m, sq_batch *b, sq_status *st);
/* Give b back to the loader (device path: once its upload has completed; a batch given back
 * without a forward, e.g. skipped after a resume, starts the next upload itself). */
sq_code sq_feed_release(sq_feed *f, sq_batch *b, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
