/* cuda_backend.c — the CUDA backend: creation and teardown, error helpers, device buffers from the
 * arena (arena.c), copies and events on the one compute stream, the workspace, and the vtable
 * (the ops themselves live in conv_cudnn.c, dwconv.cu, bn.cu, pointwise.cu and adam.cu).
 *
 * Works without a GPU: sq_cuda_device_count reports 0 and why, and creation fails with one line.
 * Every create failure goes through destroy(), which therefore tolerates a half-built backend.
 */
#include "cuda/arena.h"
#include "cuda/cuda_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- errors ----------------------------------------------------------------------------------- */

sq_code sq_cuda_ok(cudaError_t e, const char *what, sq_status *st) {
    if (e == cudaSuccess) return SQ_OK;
    /* Reset the "last error" so that the next sq_cuda_launch_ok does not report this one again
     * (sticky errors stay, as they must). */
    (void)cudaGetLastError();
    return sq_fail(st, SQ_ERR_DEVICE, "cuda: %s: %s: %s", what, cudaGetErrorName(e),
                   cudaGetErrorString(e));
}

sq_code sq_cudnn_ok(cudnnStatus_t s, const char *what, sq_status *st) {
    if (s == CUDNN_STATUS_SUCCESS) return SQ_OK;
    char detail[512];
    detail[0] = '\0';
    cudnnGetLastErrorString(detail, sizeof detail);
    if (detail[0])
        return sq_fail(st, SQ_ERR_DEVICE, "cudnn: %s: %s (%s)", what, cudnnGetErrorString(s),
                       detail);
    return sq_fail(st, SQ_ERR_DEVICE, "cudnn: %s: %s", what, cudnnGetErrorString(s));
}

sq_code sq_cublas_ok(cublasStatus_t s, const char *what, sq_status *st) {
    if (s == CUBLAS_STATUS_SUCCESS) return SQ_OK;
    return sq_fail(st, SQ_ERR_DEVICE, "cublas: %s: %s: %s", what, cublasGetStatusName(s),
                   cublasGetStatusString(s));
}

sq_code sq_cuda_launch_ok(const char *what, sq_status *st) {
    return sq_cuda_ok(cudaGetLastError(), what, st);
}

const char *sq_cuda_shape_str(sq_shape5 s, char *buf, size_t n) {
    snprintf(buf, n, "%dx%dx%dx%dx%d", s.n, s.c, s.d, s.h, s.w);
    return buf;
}

int sq_cuda_view_fits(sq_view v, int64_t n) {
    if (!v.buf) return 0;
    const size_t floats = v.buf->bytes / sizeof(float);
    return n >= 0 && v.off <= floats && (uint64_t)n <= floats - v.off;
}

sq_code sq_cuda_check_view(sq_view v, int64_t n, const char *what, sq_status *st) {
    if (!v.buf) return sq_fail(st, SQ_ERR_RANGE, "cuda: %s: missing tensor (none view)", what);
    if (!sq_cuda_view_fits(v, n)) {
        const size_t floats = v.buf->bytes / sizeof(float);
        return sq_fail(st, SQ_ERR_RANGE,
                       "cuda: %s: floats [%zu, %zu + %lld) outside a buffer of %zu floats", what,
                       v.off, v.off, (long long)n, floats);
    }
    return SQ_OK;
}

/* --- devices ---------------------------------------------------------------------------------- */

sq_cuda_opts sq_cuda_opts_default(void) {
    sq_cuda_opts o = {.device = 0, .deterministic = 0, .allow_tf32 = 0};
    return o;
}

int sq_cuda_device_count(char *why, size_t why_size) {
    int count = 0; /* left untouched by cudaGetDeviceCount without a driver */
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        if (why && why_size)
            snprintf(why, why_size, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
        (void)cudaGetLastError();
        return 0;
    }
    if (count <= 0) {
        if (why && why_size) snprintf(why, why_size, "no CUDA device");
        return 0;
    }
    if (why && why_size) why[0] = '\0';
    return count;
}

/* --- the arena's device ----------------------------------------------------------------------- */

static sq_code dev_alloc(void *ctx, size_t bytes, void **p, sq_status *st) {
    (void)ctx;
    const cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaSuccess) return SQ_OK;
    *p = NULL;
    (void)cudaGetLastError(); /* not sticky: clear it */
    if (e == cudaErrorMemoryAllocation) return SQ_ERR_NOMEM;
    return sq_cuda_ok(e, "cudaMalloc", st);
}

static void dev_release(void *ctx, void *p) {
    (void)ctx;
    if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
}

/* Cached blocks may still be read by enqueued work: wait for the stream before cudaFree. */
static sq_code dev_quiesce(void *ctx, sq_status *st) {
    sq_cuda *c = ctx;
    if (!c->stream) return SQ_OK;
    return sq_cuda_ok(cudaStreamSynchronize(c->stream), "stream synchronise before cudaFree", st);
}

/* --- buffers ---------------------------------------------------------------------------------- */

/* A buffer header over an arena block (contents undefined). */
static sq_code buf_new(sq_cuda *c, size_t bytes, sq_buf **out, sq_status *st) {
    *out = NULL;
    sq_buf *b = calloc(1, sizeof *b);
    if (!b) return sq_fail(st, SQ_ERR_NOMEM, "cuda: out of host memory for a buffer header");
    void *p = NULL;
    const sq_code rc = sq_arena_alloc(c->arena, bytes, &p, &b->cap, st);
    if (rc != SQ_OK) {
        free(b);
        return rc;
    }
    b->d = p;
    b->bytes = bytes;
    *out = b;
    return SQ_OK;
}

static void buf_delete(sq_cuda *c, sq_buf *b) {
    if (!b) return;
    sq_arena_free(c->arena, b->d);
    free(b);
}

/* Zero-filled by a memset on the stream: every later op (they are all on the stream) sees 0. */
static sq_code buf_alloc(sq_backend *be, size_t bytes, sq_buf **out, sq_status *st) {
    sq_cuda *c = sq_cuda_of(be);
    SQ_TRY(buf_new(c, bytes, out, st));
    const sq_code rc =
        sq_cuda_ok(cudaMemsetAsync((*out)->d, 0, bytes, c->stream), "buf_alloc: memset", st);
    if (rc != SQ_OK) {
        buf_delete(c, *out);
        *out = NULL;
    }
    return rc;
}

static void buf_free(sq_backend *be, sq_buf *b) {
    buf_delete(sq_cuda_of(be), b);
}

static size_t buf_size(sq_backend *be, const sq_buf *b) {
    (void)be;
    return b ? b->bytes : 0;
}

static void *buf_host(sq_backend *be, sq_buf *b) {
    (void)be;
    (void)b;
    return NULL;
}

static void *buf_native(sq_backend *be, sq_buf *b) {
    (void)be;
    return b ? b->d : NULL;
}

/* --- copies ----------------------------------------------------------------------------------- */

static sq_code check_range(const sq_buf *b, size_t off, size_t bytes, const char *what,
                           sq_status *st) {
    return sq_byte_range_check("cuda", b != NULL, b ? b->bytes : 0, off, bytes, what, st);
}

static sq_code upload(sq_backend *be, sq_buf *dst, size_t dst_off, const void *src, size_t bytes,
                      sq_status *st) {
    SQ_TRY(check_range(dst, dst_off, bytes, "upload", st));
    if (!bytes) return SQ_OK;
    if (!src) return sq_fail(st, SQ_ERR_RANGE, "cuda: upload: NULL host pointer");
    return sq_cuda_ok(cudaMemcpyAsync(dst->d + dst_off, src, bytes, cudaMemcpyHostToDevice,
                                      sq_cuda_of(be)->stream),
                      "upload", st);
}

static sq_code download(sq_backend *be, void *dst, const sq_buf *src, size_t src_off, size_t bytes,
                        sq_status *st) {
    SQ_TRY(check_range(src, src_off, bytes, "download", st));
    if (!bytes) return SQ_OK;
    if (!dst) return sq_fail(st, SQ_ERR_RANGE, "cuda: download: NULL host pointer");
    sq_cuda *c = sq_cuda_of(be);
    SQ_TRY(
        sq_cuda_ok(cudaMemcpyAsync(dst, src->d + src_off, bytes, cudaMemcpyDeviceToHost, c->stream),
                   "download", st));
    return sq_cuda_ok(cudaStreamSynchronize(c->stream), "download: synchronise", st);
}

/* Overlapping ranges of one buffer (memmove semantics) go through the workspace. */
static sq_code copy(sq_backend *be, sq_buf *dst, size_t dst_off, const sq_buf *src, size_t src_off,
                    size_t bytes, sq_status *st) {
    SQ_TRY(check_range(dst, dst_off, bytes, "copy (destination)", st));
    SQ_TRY(check_range(src, src_off, bytes, "copy (source)", st));
    if (!bytes) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    char *to = dst->d + dst_off;
    const char *from = src->d + src_off;
    if (to == from) return SQ_OK;
    const int overlap = from < to + bytes && to < from + bytes;
    if (overlap) {
        void *tmp = NULL;
        SQ_TRY(sq_cuda_workspace(c, bytes, &tmp, st));
        SQ_TRY(sq_cuda_ok(cudaMemcpyAsync(tmp, from, bytes, cudaMemcpyDeviceToDevice, c->stream),
                          "copy", st));
        from = tmp;
    }
    return sq_cuda_ok(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, c->stream), "copy",
                      st);
}

static sq_code fill(sq_backend *be, sq_buf *buf, size_t off, int value, size_t bytes,
                    sq_status *st) {
    SQ_TRY(check_range(buf, off, bytes, "fill", st));
    if (!bytes) return SQ_OK;
    return sq_cuda_ok(cudaMemsetAsync(buf->d + off, value, bytes, sq_cuda_of(be)->stream), "fill",
                      st);
}

static sq_code sync_(sq_backend *be, sq_status *st) {
    return sq_cuda_ok(cudaStreamSynchronize(sq_cuda_of(be)->stream), "sync", st);
}

/* --- stream and events ------------------------------------------------------------------------ */

static void *stream_(sq_backend *be) {
    return (void *)sq_cuda_of(be)->stream;
}

static sq_code event_create(sq_backend *be, void **ev, sq_status *st) {
    (void)be;
    cudaEvent_t e = NULL;
    *ev = NULL;
    SQ_TRY(sq_cuda_ok(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event_create", st));
    *ev = (void *)e;
    return SQ_OK;
}

static void event_destroy(sq_backend *be, void *ev) {
    (void)be;
    if (ev && cudaEventDestroy((cudaEvent_t)ev) != cudaSuccess) (void)cudaGetLastError();
}

static sq_code event_record(sq_backend *be, void *ev, sq_status *st) {
    if (!ev) return sq_fail(st, SQ_ERR_RANGE, "cuda: event_record: NULL event");
    return sq_cuda_ok(cudaEventRecord((cudaEvent_t)ev, sq_cuda_of(be)->stream), "event_record", st);
}

static sq_code stream_wait(sq_backend *be, void *ev, sq_status *st) {
    if (!ev) return sq_fail(st, SQ_ERR_RANGE, "cuda: stream_wait: NULL event");
    return sq_cuda_ok(cudaStreamWaitEvent(sq_cuda_of(be)->stream, (cudaEvent_t)ev, 0),
                      "stream_wait", st);
}

/* --- workspace and statistics buffer ---------------------------------------------------------- */

/* *slot holds at least `bytes`. Growth is rare; the old block may still be used by enqueued work,
 * so the stream is synchronised before it goes back to the arena (then the arena may even give it
 * to the device under memory pressure without harm). */
static sq_code grow(sq_cuda *c, sq_buf **slot, size_t bytes, const char *what, sq_status *st) {
    if (*slot && (*slot)->cap >= bytes) {
        if ((*slot)->bytes < bytes) (*slot)->bytes = bytes;
        return SQ_OK;
    }
    size_t want = bytes;
    if (*slot && want < (*slot)->cap + (*slot)->cap / 2) want = (*slot)->cap + (*slot)->cap / 2;
    if (*slot) {
        SQ_TRY(sq_cuda_ok(cudaStreamSynchronize(c->stream), what, st));
        buf_delete(c, *slot);
        *slot = NULL;
    }
    return buf_new(c, want, slot, st);
}

sq_code sq_cuda_workspace(sq_cuda *c, size_t bytes, void **ws, sq_status *st) {
    *ws = NULL;
    if (bytes == 0) {
        if (c->ws) *ws = c->ws->d;
        return SQ_OK;
    }
    SQ_TRY(grow(c, &c->ws, bytes, "workspace: synchronise before growing", st));
    *ws = c->ws->d;
    return SQ_OK;
}

sq_code sq_cuda_stats_buf(sq_cuda *c, size_t bytes, sq_buf **out, sq_status *st) {
    *out = NULL;
    SQ_TRY(grow(c, &c->stats, bytes ? bytes : 1, "stats buffer: synchronise before growing", st));
    *out = c->stats;
    return SQ_OK;
}

/* --- extras ----------------------------------------------------------------------------------- */

size_t sq_cuda_peak_bytes(sq_backend *be) {
    return sq_arena_get_stats(sq_cuda_of(be)->arena).peak;
}

size_t sq_cuda_used_bytes(sq_backend *be) {
    const sq_arena_stats s = sq_arena_get_stats(sq_cuda_of(be)->arena);
    return s.in_use + s.cached;
}

typedef struct bw_run {
    sq_buf *a, *b;
    cudaEvent_t t0, t1;
} bw_run;

static sq_code bw_time(sq_cuda *c, bw_run *r, size_t bytes, int reps, float *ms, sq_status *st) {
    const char *what = "copy_bandwidth";
    for (int i = 0; i < 2; i++) /* warm-up */
        SQ_TRY(sq_cuda_ok(
            cudaMemcpyAsync(r->b->d, r->a->d, bytes, cudaMemcpyDeviceToDevice, c->stream), what,
            st));
    SQ_TRY(sq_cuda_ok(cudaEventRecord(r->t0, c->stream), what, st));
    for (int i = 0; i < reps; i++)
        SQ_TRY(sq_cuda_ok(
            cudaMemcpyAsync(r->b->d, r->a->d, bytes, cudaMemcpyDeviceToDevice, c->stream), what,
            st));
    SQ_TRY(sq_cuda_ok(cudaEventRecord(r->t1, c->stream), what, st));
    SQ_TRY(sq_cuda_ok(cudaEventSynchronize(r->t1), what, st));
    return sq_cuda_ok(cudaEventElapsedTime(ms, r->t0, r->t1), what, st);
}

sq_code sq_cuda_copy_bandwidth(sq_backend *be, size_t bytes, double *gbs, sq_status *st) {
    sq_cuda *c = sq_cuda_of(be);
    enum { REPS = 10 };
    *gbs = 0.0;
    if (bytes == 0) return sq_fail(st, SQ_ERR_RANGE, "cuda: copy_bandwidth: 0 bytes");
    bw_run r = {0};
    float ms = 0.0f;
    sq_code rc = buf_alloc(be, bytes, &r.a, st);
    if (rc == SQ_OK) rc = buf_alloc(be, bytes, &r.b, st);
    if (rc == SQ_OK) rc = sq_cuda_ok(cudaEventCreate(&r.t0), "copy_bandwidth: event", st);
    if (rc == SQ_OK) rc = sq_cuda_ok(cudaEventCreate(&r.t1), "copy_bandwidth: event", st);
    if (rc == SQ_OK) rc = bw_time(c, &r, bytes, REPS, &ms, st);
    if (rc == SQ_OK && ms > 0.0f) *gbs = 2.0 * (double)bytes * REPS / (ms * 1e-3) / 1e9;
    if (r.t0) cudaEventDestroy(r.t0);
    if (r.t1) cudaEventDestroy(r.t1);
    (void)cudaStreamSynchronize(c->stream);
    buf_delete(c, r.a);
    buf_delete(c, r.b);
    return rc;
}

/* --- lifetime --------------------------------------------------------------------------------- */

/* Reverse order of creation; every member may be missing (a failed create). */
static void destroy(sq_backend *be) {
    if (!be) return;
    sq_cuda *c = sq_cuda_of(be);
    if (c) {
        (void)cudaSetDevice(c->device);
        if (c->stream) (void)cudaStreamSynchronize(c->stream);
        if (c->conv) sq_cuda_conv_destroy(c);
        if (c->arena) {
            buf_delete(c, c->ws);
            buf_delete(c, c->stats);
        }
        if (c->cublas) cublasDestroy(c->cublas);
        if (c->cudnn) cudnnDestroy(c->cudnn);
        sq_arena_destroy(c->arena); /* every block, cuBLAS's workspace too; needs the stream */
        if (c->stream) cudaStreamDestroy(c->stream);
        sq_cuda_copy_stream_destroy(c);
        (void)cudaGetLastError();
        free(c);
    }
    free(be);
}

/* Device properties into c, and the backend's description (sq_cuda has no field for the compute
 * capability, so it is only kept there). */
static sq_code read_device(sq_backend *be, sq_cuda *c, sq_status *st) {
    SQ_TRY(sq_cuda_ok(cudaSetDevice(c->device), "cudaSetDevice", st));
    struct cudaDeviceProp prop;
    SQ_TRY(sq_cuda_ok(cudaGetDeviceProperties(&prop, c->device), "cudaGetDeviceProperties", st));
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    c->sm_count = prop.multiProcessorCount;
    c->smem_per_block = prop.sharedMemPerBlock;
    snprintf(be->description, sizeof be->description, "cuda:%d %.80s (sm_%d%d, %d SMs, %s%s)",
             c->device, c->name, prop.major, prop.minor, c->sm_count,
             c->allow_tf32 ? "TF32 allowed" : "strict FP32",
             c->deterministic ? ", deterministic" : "");
    return SQ_OK;
}

/* Stream, arena, cuDNN and cuBLAS (in this order; destroy undoes it backwards). cuBLAS gets its
 * workspace from the arena (so the arena's footprint is the backend's) instead of allocating one
 * on the first GEMM; 32 MiB is NVIDIA's recommendation for Hopper. */
static sq_code make_handles(sq_cuda *c, sq_status *st) {
    SQ_TRY(sq_cuda_ok(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking),
                      "create the compute stream", st));
    SQ_TRY(sq_cuda_copy_stream_create(c, st));
    const sq_arena_device dev = {dev_alloc, dev_release, dev_quiesce, c};
    SQ_TRY(sq_arena_create(&dev, &c->arena, st));
    SQ_TRY(sq_cudnn_ok(cudnnCreate(&c->cudnn), "cudnnCreate", st));
    SQ_TRY(sq_cudnn_ok(cudnnSetStream(c->cudnn, c->stream), "cudnnSetStream", st));
    SQ_TRY(sq_cublas_ok(cublasCreate(&c->cublas), "cublasCreate", st));
    SQ_TRY(sq_cublas_ok(cublasSetStream(c->cublas, c->stream), "cublasSetStream", st));
    enum { CUBLAS_WS = 32 << 20 };
    void *ws = NULL;
    size_t cap = 0; /* freed with the arena, after cublasDestroy */
    SQ_TRY(sq_arena_alloc(c->arena, CUBLAS_WS, &ws, &cap, st));
    SQ_TRY(sq_cublas_ok(cublasSetWorkspace(c->cublas, ws, cap), "cublasSetWorkspace", st));
    /* DEFAULT_MATH keeps FP32 routines in FP32 (no TF32, no BF16x9 emulation). */
    const cublasMath_t mode = c->allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    return sq_cublas_ok(cublasSetMathMode(c->cublas, mode), "cublasSetMathMode", st);
}

static void fill_vtable(sq_backend *be) {
    be->name = "cuda";
    be->device_memory = 1;
    be->destroy = destroy;
    be->buf_alloc = buf_alloc;
    be->buf_free = buf_free;
    be->buf_size = buf_size;
    be->buf_host = buf_host;
    be->upload = upload;
    be->download = download;
    be->copy = copy;
    be->fill = fill;
    be->sync = sync_;
    be->buf_native = buf_native;
    be->stream = stream_;
    be->event_create = event_create;
    be->event_destroy = event_destroy;
    be->event_record = event_record;
    be->stream_wait = stream_wait;
    be->conv3d_fwd = sq_cuda_conv3d_fwd;
    be->conv3d_bwd = sq_cuda_conv3d_bwd;
    be->dwconv3d_fwd = sq_cuda_dwconv3d_fwd;
    be->dwconv3d_bwd = sq_cuda_dwconv3d_bwd;
    be->bn_fwd = sq_cuda_bn_fwd;
    be->bn_bwd = sq_cuda_bn_bwd;
    be->adam = sq_cuda_adam;
    sq_cuda_pointwise_fill(be);
    sq_cuda_copy_fill(be);
}

static sq_code build(sq_backend *be, sq_cuda *c, sq_status *st) {
    SQ_TRY(read_device(be, c, st));
    SQ_TRY(make_handles(c, st));
    SQ_TRY(sq_cuda_conv_init(c, st));
    fill_vtable(be);
    return SQ_OK;
}

sq_backend *sq_backend_cuda_create(const sq_cuda_opts *opts, sq_status *st) {
    const sq_cuda_opts o = opts ? *opts : sq_cuda_opts_default();
    char why[256];
    const int count = sq_cuda_device_count(why, sizeof why);
    if (count == 0) {
        sq_fail(st, SQ_ERR_DEVICE, "cuda: no usable GPU: %s", why);
        return NULL;
    }
    if (o.device < 0 || o.device >= count) {
        sq_fail(st, SQ_ERR_DEVICE, "cuda: device %d requested but %d GPU(s) visible", o.device,
                count);
        return NULL;
    }
    sq_backend *be = calloc(1, sizeof *be);
    sq_cuda *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        sq_fail(st, SQ_ERR_NOMEM, "cuda: out of host memory for the backend");
        return NULL;
    }
    c->device = o.device;
    c->deterministic = o.deterministic;
    c->allow_tf32 = o.allow_tf32;
    be->impl = c;
    be->name = "cuda";
    be->destroy = destroy;
    if (build(be, c, st) != SQ_OK) {
        destroy(be);
        return NULL;
    }
    return be;
}
