/* feed.c — loader batches into the model's input, overlapped with compute on a GPU (feed.h). */
#include "train/feed.h"

#include "core/timer.h"
#include "nn/registry.h"

#include <string.h>

static void *ring_alloc(void *ctx, size_t bytes) {
    void *p = NULL;
    sq_status st;
    sq_status_clear(&st);
    return sq_backend_host_alloc(ctx, bytes, &p, &st) == SQ_OK ? p : NULL;
}

static void ring_release(void *ctx, void *p) {
    sq_backend_host_free(ctx, p);
}

sq_ring_allocator sq_feed_ring_allocator(sq_backend *be) {
    sq_ring_allocator a = {NULL, NULL, NULL};
    if (be && be->host_alloc) a = (sq_ring_allocator){ring_alloc, ring_release, be};
    return a;
}

sq_code sq_feed_init(sq_feed *f, sq_backend *be, sq_loader *L, size_t xbytes, sq_status *st) {
    memset(f, 0, sizeof *f);
    f->be = be;
    f->L = L;
    f->xbytes = xbytes;
    f->device = be->device_memory && sq_backend_has_copy_stream(be);
    if (!f->device) return SQ_OK;
    SQ_TRY(be->buf_alloc(be, xbytes, &f->stage, st));
    SQ_TRY(be->event_create(be, &f->copied, st));
    return be->event_create(be, &f->consumed, st);
}

void sq_feed_free(sq_feed *f) {
    sq_backend *be = f->be;
    if (!be) return;
    if (f->device) {
        sq_status st;
        sq_status_clear(&st);
        (void)be->sync(be, &st); /* nothing may still read staging or the ring */
        if (f->copied) (void)be->event_sync(be, f->copied, &st);
        if (f->next) sq_loader_release(f->L, f->next);
        be->event_destroy(be, f->copied);
        be->event_destroy(be, f->consumed);
        be->buf_free(be, f->stage);
    }
    memset(f, 0, sizeof *f);
}

/* The loader's next batch, timing how long the host waited for it. */
static sq_code loader_next(sq_feed *f, sq_batch **b, sq_status *st) {
    const double t0 = sq_now();
    const sq_code rc = sq_loader_next(f->L, b, st);
    f->wait_ms += (sq_now() - t0) * 1e3;
    if (rc == SQ_OK && *b) f->batches++;
    return rc;
}

/* Device path: take the loader's next batch and enqueue its upload into staging on the copy
 * stream, after the compute stream has copied staging's previous content out. */
static sq_code prefetch(sq_feed *f, sq_status *st) {
    sq_backend *be = f->be;
    f->next = NULL;
    sq_batch *b = NULL;
    SQ_TRY(loader_next(f, &b, st));
    if (!b) return SQ_OK;
    f->next = b;
    SQ_TRY(be->copy_stream_wait(be, f->consumed, st));
    SQ_TRY(be->upload_async(be, f->stage, 0, b->x, f->xbytes, st));
    return be->copy_event_record(be, f->copied, st);
}

sq_code sq_feed_start_epoch(sq_feed *f, uint32_t epoch, sq_status *st) {
    if (f->next) { /* an epoch left early (a stop): its prefetched batch goes back */
        SQ_TRY(f->be->event_sync(f->be, f->copied, st));
        sq_loader_release(f->L, f->next);
        f->next = NULL;
    }
    SQ_TRY(sq_loader_start_epoch(f->L, epoch, st));
    return f->device ? prefetch(f, st) : SQ_OK;
}

sq_code sq_feed_next(sq_feed *f, sq_batch **b, sq_status *st) {
    if (!f->device) return loader_next(f, b, st);
    *b = f->next;
    f->next = NULL;
    return SQ_OK;
}

sq_code sq_feed_forward(sq_feed *f, sq_model *m, sq_batch *b, sq_status *st) {
    if (!f->device) return sq_model_forward(m, b->x, NULL, st);
    sq_backend *be = f->be;
    const sq_view in = sq_model_input(m);
    if (!in.buf) return sq_fail(st, SQ_ERR_INTERNAL, "feed: the model has no plan");
    SQ_TRY(be->stream_wait(be, f->copied, st));
    SQ_TRY(be->copy(be, in.buf, in.off * sizeof(float), f->stage, 0, f->xbytes, st));
    SQ_TRY(be->event_record(be, f->consumed, st));
    SQ_TRY(sq_model_forward(m, NULL, NULL, st));
    /* b's own upload completed before the compute stream's copy above could run; the host knows
     * it only through the event, and b's slot must not be refilled before. */
    SQ_TRY(be->event_sync(be, f->copied, st));
    f->forwarded = 1;
    return prefetch(f, st); /* overlaps this step's forward and backward */
}

sq_code sq_feed_release(sq_feed *f, sq_batch *b, sq_status *st) {
    if (!b) return SQ_OK;
    const int skipped = f->device && !f->forwarded; /* a batch skipped after a resume */
    f->forwarded = 0;
    if (skipped) SQ_TRY(f->be->event_sync(f->be, f->copied, st));
    sq_loader_release(f->L, b);
    return skipped ? prefetch(f, st) : SQ_OK;
}
