/* arena.c — the device arena: a caching allocator over two callbacks (see arena.h for the rules).
 *
 * Bookkeeping only, no CUDA here: two lists of blocks (handed out, cached), both sized ahead so
 * that freeing never allocates. A backend holds a few hundred buffers at most (parameters,
 * gradients, one activation arena, workspaces), so the lists are searched linearly.
 */
#include "cuda/arena.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct block {
    void *p;
    size_t cap;
} block;

typedef struct block_list {
    block *v;
    size_t n, cap;
} block_list;

struct sq_cuda_arena {
    sq_arena_device dev;
    block_list used;   /* handed out */
    block_list cached; /* freed, kept for reuse */
    sq_arena_stats s;
};

static const double MIB = 1024.0 * 1024.0;

size_t sq_arena_round(size_t bytes) {
    if (bytes == 0) bytes = 1;
    const size_t g = bytes <= SQ_ARENA_SMALL_MAX ? SQ_ARENA_SMALL_ROUND : SQ_ARENA_LARGE_ROUND;
    if (bytes > SIZE_MAX - (g - 1)) return 0;
    return (bytes + g - 1) / g * g;
}

static sq_code list_reserve(block_list *l, size_t n, sq_status *st) {
    if (n <= l->cap) return SQ_OK;
    size_t cap = l->cap ? l->cap * 2 : 16;
    while (cap < n)
        cap *= 2;
    block *v = realloc(l->v, cap * sizeof *v);
    if (!v) return sq_fail(st, SQ_ERR_NOMEM, "cuda: out of host memory for the arena's block list");
    l->v = v;
    l->cap = cap;
    return SQ_OK;
}

static void list_remove(block_list *l, size_t i) {
    l->v[i] = l->v[l->n - 1];
    l->n--;
}

static void note_peaks(sq_cuda_arena *a) {
    const size_t taken = a->s.in_use + a->s.cached;
    if (taken > a->s.peak) a->s.peak = taken;
    if (a->s.in_use > a->s.peak_in_use) a->s.peak_in_use = a->s.in_use;
}

sq_code sq_arena_create(const sq_arena_device *dev, sq_cuda_arena **out, sq_status *st) {
    *out = NULL;
    if (!dev || !dev->alloc || !dev->release)
        return sq_fail(st, SQ_ERR_INTERNAL, "cuda: arena: no device allocator");
    sq_cuda_arena *a = calloc(1, sizeof *a);
    if (!a) return sq_fail(st, SQ_ERR_NOMEM, "cuda: out of host memory for the arena");
    a->dev = *dev;
    *out = a;
    return SQ_OK;
}

static sq_code quiesce(sq_cuda_arena *a, sq_status *st) {
    return a->dev.quiesce ? a->dev.quiesce(a->dev.ctx, st) : SQ_OK;
}

static void release_list(sq_cuda_arena *a, block_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        a->dev.release(a->dev.ctx, l->v[i].p);
        a->s.releases++;
    }
    l->n = 0;
}

sq_code sq_arena_trim(sq_cuda_arena *a, sq_status *st) {
    if (!a || a->cached.n == 0) return SQ_OK;
    SQ_TRY(quiesce(a, st));
    release_list(a, &a->cached);
    a->s.cached = 0;
    return SQ_OK;
}

void sq_arena_destroy(sq_cuda_arena *a) {
    if (!a) return;
    sq_status ignored;
    (void)quiesce(a, &ignored);
    release_list(a, &a->cached);
    release_list(a, &a->used);
    free(a->cached.v);
    free(a->used.v);
    free(a);
}

/* Index of the smallest cached block with need <= cap <= 2 * need, or -1. */
static ptrdiff_t best_fit(const block_list *l, size_t need) {
    ptrdiff_t best = -1;
    for (size_t i = 0; i < l->n; i++) {
        const size_t cap = l->v[i].cap;
        if (cap < need || cap / 2 > need) continue;
        if (best < 0 || cap < l->v[best].cap) best = (ptrdiff_t)i;
    }
    return best;
}

static sq_code out_of_memory(const sq_cuda_arena *a, size_t bytes, size_t cached_before,
                             sq_status *st) {
    return sq_fail(st, SQ_ERR_NOMEM,
                   "cuda: out of device memory: asked %.1f MiB, in use %.1f MiB, cached %.1f MiB, "
                   "peak %.1f MiB",
                   (double)bytes / MIB, (double)a->s.in_use / MIB, (double)cached_before / MIB,
                   (double)a->s.peak / MIB);
}

/* A new block of `need` bytes from the device; on "out of memory" the cache is released and the
 * request retried once. */
static sq_code from_device(sq_cuda_arena *a, size_t bytes, size_t need, void **p, sq_status *st) {
    const size_t cached_before = a->s.cached;
    sq_code rc = a->dev.alloc(a->dev.ctx, need, p, st);
    if (rc == SQ_ERR_NOMEM) {
        SQ_TRY(sq_arena_trim(a, st));
        rc = a->dev.alloc(a->dev.ctx, need, p, st);
    }
    if (rc == SQ_ERR_NOMEM) return out_of_memory(a, bytes, cached_before, st);
    if (rc != SQ_OK) return rc;
    a->s.device_allocs++;
    return SQ_OK;
}

sq_code sq_arena_alloc(sq_cuda_arena *a, size_t bytes, void **p, size_t *cap, sq_status *st) {
    *p = NULL;
    *cap = 0;
    const size_t need = sq_arena_round(bytes);
    if (need == 0) return out_of_memory(a, bytes, a->s.cached, st);
    /* Room for one more block in each list, so that sq_arena_free never allocates. */
    SQ_TRY(list_reserve(&a->used, a->used.n + 1, st));
    SQ_TRY(list_reserve(&a->cached, a->used.n + a->cached.n + 1, st));
    block b;
    const ptrdiff_t i = best_fit(&a->cached, need);
    if (i >= 0) {
        b = a->cached.v[i];
        list_remove(&a->cached, (size_t)i);
        a->s.cached -= b.cap;
        a->s.reuses++;
    } else {
        b.cap = need;
        SQ_TRY(from_device(a, bytes, need, &b.p, st));
    }
    a->used.v[a->used.n++] = b;
    a->s.in_use += b.cap;
    note_peaks(a);
    *p = b.p;
    *cap = b.cap;
    return SQ_OK;
}

void sq_arena_free(sq_cuda_arena *a, void *p) {
    if (!a || !p) return;
    for (size_t i = a->used.n; i-- > 0;) {
        if (a->used.v[i].p != p) continue;
        const block b = a->used.v[i];
        list_remove(&a->used, i);
        a->cached.v[a->cached.n++] = b; /* capacity reserved by sq_arena_alloc */
        a->s.in_use -= b.cap;
        a->s.cached += b.cap;
        return;
    }
    a->s.bad_frees++;
}

sq_arena_stats sq_arena_get_stats(const sq_cuda_arena *a) {
    sq_arena_stats s = {0};
    if (a) s = a->s;
    return s;
}
