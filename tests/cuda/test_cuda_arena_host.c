/* test_cuda_arena_host.c — the device arena's bookkeeping (cuda/arena.c) on the host: rounding,
 * reuse, best fit, in-use/cached/peak accounting, the release-and-retry path on "out of memory",
 * hard failures passed up, bad frees, and destroy giving every block back. The "device" is a fake
 * over malloc with a byte budget and a fail-the-next-N switch. No GPU needed.
 * Prints one line per case; returns 0 when all pass. */
#include "cuda/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((size_t)1 << 20)

typedef struct fake_dev {
    size_t budget; /* bytes the fake device holds */
    size_t taken;  /* bytes currently allocated */
    int fail_next; /* the next N allocs report out of memory */
    int hard_fail; /* the next alloc fails with SQ_ERR_DEVICE */
    long live;     /* allocations not yet released */
    long quiesced; /* quiesce calls */
    size_t *sizes; /* size per live pointer, kept in a small table */
    void **ptrs;
    int nptr, capptr;
} fake_dev;

static void track(fake_dev *f, void *p, size_t n) {
    if (f->nptr == f->capptr) {
        f->capptr = f->capptr ? 2 * f->capptr : 64;
        f->ptrs = realloc(f->ptrs, (size_t)f->capptr * sizeof *f->ptrs);
        f->sizes = realloc(f->sizes, (size_t)f->capptr * sizeof *f->sizes);
        if (!f->ptrs || !f->sizes) abort();
    }
    f->ptrs[f->nptr] = p;
    f->sizes[f->nptr++] = n;
}

static size_t untrack(fake_dev *f, void *p) {
    for (int i = 0; i < f->nptr; i++) {
        if (f->ptrs[i] != p) continue;
        const size_t n = f->sizes[i];
        f->ptrs[i] = f->ptrs[f->nptr - 1];
        f->sizes[i] = f->sizes[--f->nptr];
        return n;
    }
    fprintf(stderr, "fake device: release of an unknown pointer\n");
    abort();
}

static sq_code fake_alloc(void *ctx, size_t bytes, void **p, sq_status *st) {
    fake_dev *f = ctx;
    if (f->hard_fail) {
        f->hard_fail = 0;
        return sq_fail(st, SQ_ERR_DEVICE, "fake: cudaMalloc: cudaErrorLaunchFailure");
    }
    if (f->fail_next > 0) {
        f->fail_next--;
        return SQ_ERR_NOMEM;
    }
    if (bytes > f->budget - f->taken) return SQ_ERR_NOMEM;
    *p = malloc(bytes);
    if (!*p) return SQ_ERR_NOMEM;
    f->taken += bytes;
    f->live++;
    track(f, *p, bytes);
    return SQ_OK;
}

static void fake_release(void *ctx, void *p) {
    fake_dev *f = ctx;
    f->taken -= untrack(f, p);
    f->live--;
    free(p);
}

static sq_code fake_quiesce(void *ctx, sq_status *st) {
    (void)st;
    ((fake_dev *)ctx)->quiesced++;
    return SQ_OK;
}

static int failures = 0;

static void check(int ok, const char *what) {
    printf("%-60s %s\n", what, ok ? "ok" : "FAILED");
    if (!ok) failures++;
}

static sq_cuda_arena *make(fake_dev *f, size_t budget) {
    memset(f, 0, sizeof *f);
    f->budget = budget;
    sq_arena_device d = {fake_alloc, fake_release, fake_quiesce, f};
    sq_cuda_arena *a = NULL;
    sq_status st;
    if (sq_arena_create(&d, &a, &st) != SQ_OK) {
        fprintf(stderr, "arena create: %s\n", st.msg);
        exit(1);
    }
    return a;
}

static void done(sq_cuda_arena *a, fake_dev *f) {
    sq_arena_destroy(a);
    free(f->ptrs);
    free(f->sizes);
}

static void test_rounding(void) {
    int ok = sq_arena_round(0) == 512 && sq_arena_round(1) == 512 && sq_arena_round(512) == 512 &&
             sq_arena_round(513) == 1024 && sq_arena_round(MIB) == MIB &&
             sq_arena_round(MIB + 1) == 2 * MIB && sq_arena_round(2 * MIB + 1) == 4 * MIB &&
             sq_arena_round(SIZE_MAX) == 0;
    check(ok, "rounding: 512 B small, 2 MiB large, overflow -> 0");
}

static void test_reuse(void) {
    fake_dev f;
    sq_cuda_arena *a = make(&f, 64 * MIB);
    sq_status st;
    void *p, *q;
    size_t cp, cq;
    int ok = sq_arena_alloc(a, 1000, &p, &cp, &st) == SQ_OK && cp == 1024;
    sq_arena_free(a, p);
    ok = ok && sq_arena_alloc(a, 900, &q, &cq, &st) == SQ_OK && q == p && cq == 1024;
    sq_arena_stats s = sq_arena_get_stats(a);
    ok = ok && s.device_allocs == 1 && s.reuses == 1 && s.in_use == 1024 && s.cached == 0;
    sq_arena_free(a, q);
    done(a, &f);
    check(ok && f.live == 0, "reuse: a freed block serves the next request that fits");
}

static void test_best_fit(void) {
    fake_dev f;
    sq_cuda_arena *a = make(&f, 64 * MIB);
    sq_status st;
    void *b4, *b2, *b3, *x, *y, *z;
    size_t c;
    int ok = sq_arena_alloc(a, 4096, &b4, &c, &st) == SQ_OK;
    ok = ok && sq_arena_alloc(a, 2048, &b2, &c, &st) == SQ_OK;
    ok = ok && sq_arena_alloc(a, 3072, &b3, &c, &st) == SQ_OK;
    sq_arena_free(a, b4);
    sq_arena_free(a, b2);
    sq_arena_free(a, b3);
    ok = ok && sq_arena_alloc(a, 2000, &x, &c, &st) == SQ_OK && x == b2 && c == 2048;
    ok = ok && sq_arena_alloc(a, 2600, &y, &c, &st) == SQ_OK && y == b3 && c == 3072;
    /* 4096 is more than twice 1024: not used for a 1000-byte request. */
    ok = ok && sq_arena_alloc(a, 1000, &z, &c, &st) == SQ_OK && z != b4 && c == 1024;
    sq_arena_stats s = sq_arena_get_stats(a);
    ok = ok && s.device_allocs == 4 && s.reuses == 2 && s.cached == 4096;
    done(a, &f);
    check(ok && f.live == 0, "best fit: smallest block that fits, at most 2x the request");
}

static void test_peaks(void) {
    fake_dev f;
    sq_cuda_arena *a = make(&f, 256 * MIB);
    sq_status st;
    void *p[3];
    size_t c;
    int ok = 1;
    ok = ok && sq_arena_alloc(a, 3 * MIB, &p[0], &c, &st) == SQ_OK && c == 4 * MIB;
    ok = ok && sq_arena_alloc(a, 10 * MIB, &p[1], &c, &st) == SQ_OK && c == 10 * MIB;
    sq_arena_free(a, p[0]);
    ok = ok && sq_arena_alloc(a, 100, &p[2], &c, &st) == SQ_OK && c == 512;
    sq_arena_stats s = sq_arena_get_stats(a);
    ok = ok && s.in_use == 10 * MIB + 512 && s.cached == 4 * MIB && s.peak == 14 * MIB + 512 &&
         s.peak_in_use == 14 * MIB;
    sq_arena_free(a, p[1]);
    sq_arena_free(a, p[2]);
    s = sq_arena_get_stats(a);
    ok = ok && s.in_use == 0 && s.cached == 14 * MIB + 512 && s.peak == 14 * MIB + 512;
    ok = ok && sq_arena_trim(a, &st) == SQ_OK;
    s = sq_arena_get_stats(a);
    ok = ok && s.cached == 0 && s.releases == 3 && f.live == 0 && f.quiesced == 1;
    done(a, &f);
    check(ok, "accounting: in use, cached, peak, peak in use, trim");
}

static void test_release_and_retry(void) {
    fake_dev f;
    sq_cuda_arena *a = make(&f, 8 * MIB);
    sq_status st;
    void *big, *c2, *d2;
    size_t c;
    int ok = sq_arena_alloc(a, 6 * MIB, &big, &c, &st) == SQ_OK;
    sq_arena_free(a, big); /* cached, 6 MiB: too big for a 2 MiB request */
    ok = ok && sq_arena_alloc(a, 2 * MIB, &c2, &c, &st) == SQ_OK && f.taken == 8 * MIB;
    /* The device is full: the cached 6 MiB must be released, then the retry succeeds. */
    ok = ok && sq_arena_alloc(a, 2 * MIB, &d2, &c, &st) == SQ_OK;
    sq_arena_stats s = sq_arena_get_stats(a);
    ok = ok && s.releases == 1 && s.cached == 0 && f.quiesced == 1 && s.in_use == 4 * MIB;
    /* A device that fails once: the retry succeeds. */
    sq_arena_free(a, d2);
    f.fail_next = 1;
    void *e;
    ok = ok && sq_arena_alloc(a, 100, &e, &c, &st) == SQ_OK;
    done(a, &f);
    check(ok && f.live == 0, "out of memory: cache released, request retried once");
}

static void test_exhausted(void) {
    fake_dev f;
    sq_cuda_arena *a = make(&f, 8 * MIB);
    sq_status st;
    void *p, *q;
    size_t c;
    int ok = sq_arena_alloc(a, 6 * MIB, &p, &c, &st) == SQ_OK;
    ok = ok && sq_arena_alloc(a, 4 * MIB, &q, &c, &st) == SQ_ERR_NOMEM && q == NULL && c == 0;
    ok = ok && strstr(st.msg, "cuda: out of device memory: asked 4.0 MiB, in use 6.0 MiB") != NULL;
    printf("  message: %s\n", st.msg);
    f.fail_next = 2; /* fails the request and its retry */
    ok = ok && sq_arena_alloc(a, 1, &q, &c, &st) == SQ_ERR_NOMEM;
    f.hard_fail = 1;
    ok = ok && sq_arena_alloc(a, 1, &q, &c, &st) == SQ_ERR_DEVICE &&
         strstr(st.msg, "cudaErrorLaunchFailure") != NULL;
    ok = ok && sq_arena_alloc(a, SIZE_MAX, &q, &c, &st) == SQ_ERR_NOMEM;
    sq_arena_stats s = sq_arena_get_stats(a);
    ok = ok && s.in_use == 6 * MIB && s.device_allocs == 1;
    done(a, &f);
    check(ok && f.live == 0, "exhausted: NOMEM with one line; hard failures passed up");
}

static void test_bad_free_and_destroy(void) {
    fake_dev f;
    sq_cuda_arena *a = make(&f, 64 * MIB);
    sq_status st;
    void *p, *q;
    size_t c;
    int ok = sq_arena_alloc(a, 5 * MIB, &p, &c, &st) == SQ_OK;
    ok = ok && sq_arena_alloc(a, 5000, &q, &c, &st) == SQ_OK;
    int local;
    sq_arena_free(a, &local);
    sq_arena_free(a, NULL);
    sq_arena_free(a, q);
    sq_arena_free(a, q); /* double free: counted, ignored */
    sq_arena_stats s = sq_arena_get_stats(a);
    ok = ok && s.bad_frees == 2 && s.in_use == 6 * MIB && f.live == 2;
    sq_arena_destroy(a); /* p still handed out: given back too */
    ok = ok && f.live == 0 && f.taken == 0;
    free(f.ptrs);
    free(f.sizes);
    sq_arena_destroy(NULL);
    check(ok, "bad frees counted; destroy gives back every block");
}

/* Random alloc/free: a block is never handed out twice, totals always add up. */
static void test_random(void) {
    fake_dev f;
    sq_cuda_arena *a = make(&f, 512 * MIB);
    sq_status st;
    enum { SLOTS = 64, OPS = 20000 };
    void *p[SLOTS] = {0};
    size_t cap[SLOTS] = {0};
    unsigned seed = 12345;
    int ok = 1;
    for (int it = 0; it < OPS && ok; it++) {
        seed = seed * 1103515245u + 12345u;
        const int k = (int)((seed >> 8) % SLOTS);
        if (p[k]) {
            ok = *(int *)p[k] == k; /* still ours */
            sq_arena_free(a, p[k]);
            p[k] = NULL;
            cap[k] = 0;
            continue;
        }
        seed = seed * 1103515245u + 12345u;
        const size_t n = (seed >> 4) % 8 == 0 ? (seed >> 8) % (12 * MIB) : (seed >> 8) % 70000;
        ok = sq_arena_alloc(a, n + sizeof(int), &p[k], &cap[k], &st) == SQ_OK;
        if (ok) *(int *)p[k] = k;
        size_t sum = 0;
        for (int j = 0; j < SLOTS; j++)
            sum += cap[j];
        const sq_arena_stats s = sq_arena_get_stats(a);
        ok = ok && s.in_use == sum && s.in_use + s.cached == f.taken && s.peak >= f.taken;
    }
    const sq_arena_stats s = sq_arena_get_stats(a);
    printf("  random: %ld device allocs, %ld reuses, peak %.1f MiB\n", s.device_allocs, s.reuses,
           (double)s.peak / (double)MIB);
    done(a, &f);
    check(ok && f.live == 0 && s.reuses > 0, "random alloc/free: no block handed out twice");
}

int main(void) {
    test_rounding();
    test_reuse();
    test_best_fit();
    test_peaks();
    test_release_and_retry();
    test_exhausted();
    test_bad_free_and_destroy();
    test_random();
    printf("%s\n", failures ? "FAILED" : "all arena checks passed");
    return failures ? 1 : 0;
}
