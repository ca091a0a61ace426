/* copy_stream.c — the CUDA backend's input-pipeline extras (backend.h, "optional"): page-locked
 * host memory (cudaHostAlloc) and a second, copy stream, so that the next batch's host-to-device
 * copy runs while the compute stream trains on the current one (docs/gpu.md, "Input pipeline").
 *
 * The copy stream is created with the backend and is non-blocking like the compute stream;
 * ordering between the two is by events only (record on one, wait on the other), never by a host
 * synchronisation. Not for: device-to-device copies (be->copy, on the compute stream).
 */
#include "cuda/cuda_impl.h"

#include <stdio.h>

static sq_code host_alloc(sq_backend *be, size_t bytes, void **out, sq_status *st) {
    (void)be;
    *out = NULL;
    void *p = NULL;
    const cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return sq_fail(st, SQ_ERR_NOMEM, "cuda: cudaHostAlloc of %zu bytes (pinned batch ring): %s",
                       bytes, cudaGetErrorString(e));
    }
    *out = p; /* cudaHostAlloc returns page-aligned memory: 64-byte alignment holds */
    return SQ_OK;
}

static void host_free(sq_backend *be, void *p) {
    (void)be;
    if (p && cudaFreeHost(p) != cudaSuccess) (void)cudaGetLastError();
}

static sq_code upload_async(sq_backend *be, sq_buf *dst, size_t dst_off, const void *src,
                            size_t bytes, sq_status *st) {
    SQ_TRY(sq_byte_range_check("cuda", dst != NULL, dst ? dst->bytes : 0, dst_off, bytes,
                               "upload_async", st));
    if (!bytes) return SQ_OK;
    if (!src) return sq_fail(st, SQ_ERR_RANGE, "cuda: upload_async: NULL host pointer");
    return sq_cuda_ok(cudaMemcpyAsync(dst->d + dst_off, src, bytes, cudaMemcpyHostToDevice,
                                      sq_cuda_of(be)->copy_stream),
                      "upload_async (copy stream)", st);
}

static sq_code copy_event_record(sq_backend *be, void *ev, sq_status *st) {
    if (!ev) return sq_fail(st, SQ_ERR_RANGE, "cuda: copy_event_record: NULL event");
    return sq_cuda_ok(cudaEventRecord((cudaEvent_t)ev, sq_cuda_of(be)->copy_stream),
                      "copy_event_record", st);
}

static sq_code copy_stream_wait(sq_backend *be, void *ev, sq_status *st) {
    if (!ev) return sq_fail(st, SQ_ERR_RANGE, "cuda: copy_stream_wait: NULL event");
    return sq_cuda_ok(cudaStreamWaitEvent(sq_cuda_of(be)->copy_stream, (cudaEvent_t)ev, 0),
                      "copy_stream_wait", st);
}

static sq_code event_sync(sq_backend *be, void *ev, sq_status *st) {
    (void)be;
    if (!ev) return sq_fail(st, SQ_ERR_RANGE, "cuda: event_sync: NULL event");
    return sq_cuda_ok(cudaEventSynchronize((cudaEvent_t)ev), "event_sync", st);
}

sq_code sq_cuda_copy_stream_create(sq_cuda *c, sq_status *st) {
    return sq_cuda_ok(cudaStreamCreateWithFlags(&c->copy_stream, cudaStreamNonBlocking),
                      "create the copy stream", st);
}

void sq_cuda_copy_stream_destroy(sq_cuda *c) {
    if (!c->copy_stream) return;
    (void)cudaStreamSynchronize(c->copy_stream);
    (void)cudaStreamDestroy(c->copy_stream);
    c->copy_stream = NULL;
    (void)cudaGetLastError();
}

void sq_cuda_copy_fill(sq_backend *be) {
    be->host_alloc = host_alloc;
    be->host_free = host_free;
    be->upload_async = upload_async;
    be->copy_event_record = copy_event_record;
    be->copy_stream_wait = copy_stream_wait;
    be->event_sync = event_sync;
}
