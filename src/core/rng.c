/* rng.c — Philox4x32-10 and the helpers built on it (see rng.h). */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void sq_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n1 = lo1;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        uint32_t n3 = lo0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void sq_rng_init(sq_rng *r, uint64_t seed, uint32_t stream_a, uint32_t stream_b) {
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[0] = 0;
    r->ctr[1] = 0;
    r->ctr[2] = stream_a;
    r->ctr[3] = stream_b;
    r->idx = 4;
    r->has_spare = 0;
    r->spare = 0.0f;
}

void sq_rng_seek(sq_rng *r, uint64_t block) {
    r->ctr[0] = (uint32_t)block;
    r->ctr[1] = (uint32_t)(block >> 32);
    r->idx = 4;
    r->has_spare = 0;
}

uint32_t sq_rng_u32(sq_rng *r) {
    if (r->idx >= 4) {
        sq_philox4x32_10(r->ctr, r->key, r->buf);
        if (++r->ctr[0] == 0) ++r->ctr[1];
        r->idx = 0;
    }
    return r->buf[r->idx++];
}

float sq_rng_uniform(sq_rng *r) {
    return (float)(sq_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

float sq_rng_uniform_range(sq_rng *r, float lo, float hi) {
    return lo + (hi - lo) * sq_rng_uniform(r);
}

double sq_rng_uniform_double(sq_rng *r) {
    uint64_t a = sq_rng_u32(r) >> 5, b = sq_rng_u32(r) >> 6; /* 27 + 26 bits */
    return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

float sq_rng_normal(sq_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    /* u1 in (0, 1] so that log(u1) is finite. */
    double u1 = 1.0 - sq_rng_uniform_double(r);
    double u2 = sq_rng_uniform_double(r);
    double rad = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586476925 * u2;
    r->spare = (float)(rad * sin(th));
    r->has_spare = 1;
    return (float)(rad * cos(th));
}

uint32_t sq_rng_below(sq_rng *r, uint32_t n) {
    uint64_t m = (uint64_t)sq_rng_u32(r) * (uint64_t)n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)sq_rng_u32(r) * (uint64_t)n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void sq_rng_permutation(uint64_t seed, uint32_t stream, uint32_t *perm, uint32_t n) {
    sq_rng r;
    sq_rng_init(&r, seed, stream, 0);
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = sq_rng_below(&r, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
