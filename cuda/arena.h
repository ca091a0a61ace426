/* arena.h — private to cuda/: the device arena, a caching allocator (one per backend).
 *
 * Memory comes from the device through two callbacks (cudaMalloc / cudaFree in cuda_backend.c;
 * malloc / free in tests/cuda/test_cuda_arena_host.c, so the bookkeeping is tested without a GPU).
 * Never managed memory.
 *
 * Rules:
 *  - a request is rounded up to 512 bytes when it is at most 1 MiB (small), else to 2 MiB (large);
 *  - a freed block is kept in the cache and handed out again to the request it fits best: the
 *    smallest cached block whose capacity is >= the rounded request and at most twice it (a block
 *    more than twice too big is left for a bigger request and a new one is taken instead);
 *  - when the device says "out of memory", every cached block is released (after `quiesce`, which
 *    waits until no enqueued work can still touch them) and the request is retried once; if that
 *    fails too: SQ_ERR_NOMEM with "cuda: out of device memory: asked N MiB, in use U MiB, cached
 *    C MiB, peak P MiB" (cached: what the cache held when the request came);
 *  - reuse is stream-ordered: a block freed while enqueued work still uses it may be handed out at
 *    once, which is safe because every op of a backend runs on its one stream.
 */
#ifndef SEGQA_CUDA_ARENA_H
#define SEGQA_CUDA_ARENA_H

#include "core/status.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQ_ARENA_SMALL_MAX   ((size_t)1 << 20) /* requests up to this are "small" */
#define SQ_ARENA_SMALL_ROUND ((size_t)512)
#define SQ_ARENA_LARGE_ROUND ((size_t)2 << 20)

typedef struct sq_cuda_arena sq_cuda_arena;

/* Where the memory comes from. */
typedef struct sq_arena_device {
    /* *p = `bytes` new bytes. SQ_ERR_NOMEM means "out of memory" (the arena writes its own
     * message); any other failure code comes with `st` filled and is passed up unchanged. */
    sq_code (*alloc)(void *ctx, size_t bytes, void **p, sq_status *st);
    void (*release)(void *ctx, void *p);
    /* Before blocks are given back to the device: wait for enqueued work (NULL: nothing to do). */
    sq_code (*quiesce)(void *ctx, sq_status *st);
    void *ctx;
} sq_arena_device;

typedef struct sq_arena_stats {
    size_t in_use;      /* capacity of the blocks handed out */
    size_t cached;      /* capacity of the freed blocks kept for reuse */
    size_t peak;        /* the most ever taken from the device at once (in_use + cached) */
    size_t peak_in_use; /* the most ever handed out at once */
    long device_allocs; /* successful alloc callbacks */
    long reuses;        /* requests served from the cache */
    long releases;      /* blocks given back to the device */
    long bad_frees;     /* sq_arena_free of a pointer the arena did not hand out (ignored) */
} sq_arena_stats;

/* The capacity a request of `bytes` gets (0 where rounding would overflow). */
size_t sq_arena_round(size_t bytes);

sq_code sq_arena_create(const sq_arena_device *dev, sq_cuda_arena **out, sq_status *st);
/* Quiesces, then gives every block back to the device (cached and still handed out); NULL ok. */
void sq_arena_destroy(sq_cuda_arena *a);

/* *p = a block of at least `bytes` (*cap its capacity). */
sq_code sq_arena_alloc(sq_cuda_arena *a, size_t bytes, void **p, size_t *cap, sq_status *st);
/* Back to the cache; NULL is a no-op. */
void sq_arena_free(sq_cuda_arena *a, void *p);
/* Quiesces, then gives every cached block back to the device. */
sq_code sq_arena_trim(sq_cuda_arena *a, sq_status *st);

sq_arena_stats sq_arena_get_stats(const sq_cuda_arena *a);

#ifdef __cplusplus
}
#endif
#endif
