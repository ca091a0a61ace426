/* cpu_backend.c — the CPU backend: creation, host buffers, the vtable, ISA choice and scratch.
 *
 * Buffers are 64-byte aligned host allocations; the "stream" is the calling thread, so every op is
 * synchronous and sync() is a no-op. Ops live in cpu_gemm.c (dense conv as GEMMs), cpu_dnnl.c
 * (other dense conv), cpu_dwconv.c (depthwise) and cpu_ops.c (the rest).
 */
#include "nn/cpu/cpu.h"

#include "core/tensor.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sq_code buf_alloc(sq_backend *be, size_t bytes, sq_buf **out, sq_status *st) {
    (void)be;
    *out = NULL;
    sq_buf *b = calloc(1, sizeof *b);
    if (!b) return sq_fail(st, SQ_ERR_NOMEM, "cpu backend: out of memory for a buffer header");
    b->p = sq_alloc(bytes);
    if (!b->p) {
        free(b);
        return sq_fail(st, SQ_ERR_NOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
    }
    b->bytes = bytes;
    *out = b;
    return SQ_OK;
}

static void buf_free(sq_backend *be, sq_buf *b) {
    (void)be;
    if (!b) return;
    sq_free(b->p);
    free(b);
}

static size_t buf_size(sq_backend *be, const sq_buf *b) {
    (void)be;
    return b ? b->bytes : 0;
}

static void *buf_host(sq_backend *be, sq_buf *b) {
    (void)be;
    return b ? b->p : NULL;
}

static sq_code check_range(const sq_buf *b, size_t off, size_t bytes, const char *what,
                           sq_status *st) {
    return sq_byte_range_check("cpu backend", b != NULL, b ? b->bytes : 0, off, bytes, what, st);
}

static sq_code upload(sq_backend *be, sq_buf *dst, size_t dst_off, const void *src, size_t bytes,
                      sq_status *st) {
    (void)be;
    SQ_TRY(check_range(dst, dst_off, bytes, "upload", st));
    if (bytes) memcpy((char *)dst->p + dst_off, src, bytes);
    return SQ_OK;
}

static sq_code download(sq_backend *be, void *dst, const sq_buf *src, size_t src_off, size_t bytes,
                        sq_status *st) {
    (void)be;
    SQ_TRY(check_range(src, src_off, bytes, "download", st));
    if (bytes) memcpy(dst, (const char *)src->p + src_off, bytes);
    return SQ_OK;
}

static sq_code copy(sq_backend *be, sq_buf *dst, size_t dst_off, const sq_buf *src, size_t src_off,
                    size_t bytes, sq_status *st) {
    (void)be;
    SQ_TRY(check_range(dst, dst_off, bytes, "copy (destination)", st));
    SQ_TRY(check_range(src, src_off, bytes, "copy (source)", st));
    if (bytes) memmove((char *)dst->p + dst_off, (const char *)src->p + src_off, bytes);
    return SQ_OK;
}

static sq_code fill(sq_backend *be, sq_buf *buf, size_t off, int value, size_t bytes,
                    sq_status *st) {
    (void)be;
    SQ_TRY(check_range(buf, off, bytes, "fill", st));
    if (bytes) memset((char *)buf->p + off, value, bytes);
    return SQ_OK;
}

static sq_code sync_(sq_backend *be, sq_status *st) {
    (void)be;
    (void)st;
    return SQ_OK;
}

/* Native handles: host memory, no stream; every op is complete on return, so events are tokens
 * whose record and wait do nothing. */
static void *stream_(sq_backend *be) {
    (void)be;
    return NULL;
}

static int event_token;

static sq_code event_create(sq_backend *be, void **ev, sq_status *st) {
    (void)be;
    (void)st;
    *ev = &event_token;
    return SQ_OK;
}

static void event_destroy(sq_backend *be, void *ev) {
    (void)be;
    (void)ev;
}

static sq_code event_noop(sq_backend *be, void *ev, sq_status *st) {
    (void)be;
    (void)st;
    return ev ? SQ_OK : sq_fail(st, SQ_ERR_INTERNAL, "cpu backend: NULL event");
}

sq_code sq_cpu_stats_reserve(sq_backend *be, size_t n, double **p, sq_status *st) {
    sq_cpu *c = sq_cpu_of(be);
    const size_t bytes = n * sizeof(double);
    if (!c->stats || c->stats->bytes < bytes) {
        buf_free(be, c->stats);
        c->stats = NULL;
        SQ_TRY(buf_alloc(be, bytes, &c->stats, st));
    }
    *p = (double *)(void *)c->stats->p;
    return SQ_OK;
}

sq_code sq_cpu_scratch_grow(sq_cpu_scratch *s, size_t n, sq_status *st) {
    if (s->n >= n) return SQ_OK;
    sq_free(s->p);
    s->p = sq_alloc(n * sizeof(float));
    s->n = s->p ? n : 0;
    if (!s->p)
        return sq_fail(st, SQ_ERR_NOMEM, "cpu backend: cannot allocate %zu floats of scratch", n);
    return SQ_OK;
}

sq_code sq_cpu_scratch_reserve(sq_cpu *c, size_t n, sq_status *st) {
    for (int t = 0; t < c->threads; t++)
        SQ_TRY(sq_cpu_scratch_grow(&c->scratch[t], n, st));
    return SQ_OK;
}

static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

sq_code sq_cpu_set_isa(sq_backend *be, int isa, int *prev, sq_status *st) {
    sq_cpu *c = sq_cpu_of(be);
    if (prev) *prev = c->isa;
    if (isa == SQ_ISA_AVX2 && !cpu_has_avx2())
        return sq_fail(st, SQ_ERR_UNSUPPORTED, "cpu backend: this CPU has no AVX2+FMA");
    if (isa != SQ_ISA_AVX2 && isa != SQ_ISA_PORTABLE)
        return sq_fail(st, SQ_ERR_RANGE, "cpu backend: unknown ISA %d", isa);
    c->isa = isa;
    return SQ_OK;
}

const char *sq_cpu_isa_name(int isa) {
    return isa == SQ_ISA_AVX2 ? "avx2+fma" : "portable";
}

/* The direct stem forward where it applies (the ISA is checked per call: tests switch it). */
static int direct_on(sq_backend *be, const sq_conv3d *p) {
    const sq_cpu *c = sq_cpu_of(be);
    return c->direct && sq_cpu_direct_applies(p, c->isa);
}

static sq_code conv3d_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                          sq_view y, sq_status *st) {
    SQ_TRY(sq_conv3d_check(p, 0, st));
    if (sq_cpu_gemm1x1_applies(p)) return sq_cpu_gemm1x1_fwd(be, p, x, w, b, y, st);
    if (direct_on(be, p)) return sq_cpu_direct_fwd(be, p, x, w, b, y, st);
    if (sq_cpu_im2col_applies(p)) return sq_cpu_im2col_fwd(be, p, x, w, b, y, st);
    return sq_cpu_dnnl_conv_fwd(be, p, 1, x, w, b, y, st);
}

static sq_code conv3d_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                          sq_view dx, sq_view dw, sq_view db, sq_status *st) {
    SQ_TRY(sq_conv3d_check(p, 0, st));
    if (sq_cpu_gemm1x1_applies(p)) return sq_cpu_gemm1x1_bwd(be, p, x, w, dy, dx, dw, db, st);
    if (sq_cpu_im2col_applies(p)) return sq_cpu_im2col_bwd(be, p, x, w, dy, dx, dw, db, st);
    return sq_cpu_dnnl_conv_bwd(be, p, 1, x, w, dy, dx, dw, db, st);
}

static void destroy(sq_backend *be) {
    if (!be) return;
    sq_cpu *c = sq_cpu_of(be);
    if (c) {
        sq_cpu_dnnl_destroy(c);
        buf_free(be, c->stats);
        sq_free(c->gemm_part.p);
        sq_free(c->wscaled.p);
        sq_free(c->gsum.p);
        sq_free(c->split.p);
        for (int t = 0; t < SQ_CPU_MAX_THREADS; t++)
            sq_free(c->scratch[t].p);
        free(c);
    }
    free(be);
}

sq_backend *sq_backend_cpu_create(int threads, sq_status *st) {
    sq_backend *be = calloc(1, sizeof *be);
    sq_cpu *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        sq_fail(st, SQ_ERR_NOMEM, "cpu backend: out of memory");
        return NULL;
    }
    if (threads > 0) omp_set_num_threads(threads);
    c->threads = omp_get_max_threads();
    if (c->threads > SQ_CPU_MAX_THREADS) {
        c->threads = SQ_CPU_MAX_THREADS;
        omp_set_num_threads(c->threads);
    }
    c->isa = cpu_has_avx2() ? SQ_ISA_AVX2 : SQ_ISA_PORTABLE;
    const char *force = getenv("SEGQA_CPU_ISA");
    if (force && strcmp(force, "portable") == 0) c->isa = SQ_ISA_PORTABLE;
    const char *direct = getenv("SEGQA_CPU_DIRECT"); /* "0": the im2col stem (benchmark A/B) */
    c->direct = !direct || strcmp(direct, "0") != 0;
    be->name = "cpu";
    be->device_memory = 0;
    snprintf(be->description, sizeof be->description, "cpu (%d threads, %s)", c->threads,
             sq_cpu_isa_name(c->isa));
    be->impl = c;
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
    be->buf_native = buf_host;
    be->stream = stream_;
    be->event_create = event_create;
    be->event_destroy = event_destroy;
    be->event_record = event_noop;
    be->stream_wait = event_noop;
    be->conv3d_fwd = conv3d_fwd;
    be->conv3d_bwd = conv3d_bwd;
    be->dwconv3d_fwd = sq_cpu_dwconv3d_fwd;
    be->dwconv3d_bwd = sq_cpu_dwconv3d_bwd;
    sq_cpu_ops_fill(be);
    const char *fusions = getenv("SEGQA_CPU_FUSIONS"); /* "0": without (benchmark A/B) */
    if (!fusions || strcmp(fusions, "0") != 0) sq_cpu_gemm_register(be);
    if (sq_cpu_dnnl_init(c, st) != SQ_OK) {
        destroy(be);
        return NULL;
    }
    return be;
}
