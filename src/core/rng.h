/* rng.h — counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
 *
 * A stream is keyed by a 64-bit seed and two 32-bit stream ids (for segqa: epoch and sample id), so
 * the numbers a sample sees depend on (seed, epoch, sample) only — never on which thread or rank
 * draws them. Within a stream a 64-bit block counter advances; each block yields four 32-bit words.
 *
 * Layout of one Philox call: key = {seed_lo, seed_hi}, counter = {block_lo, block_hi, a, b}.
 */
#ifndef SEGQA_CORE_RNG_H
#define SEGQA_CORE_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The raw bijection: out = Philox4x32-10(ctr, key). Checked against Random123's kat_vectors. */
void sq_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

typedef struct sq_rng {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t buf[4];
    int idx; /* next unused word of buf; 4 = empty */
    int has_spare;
    float spare;
} sq_rng;

void sq_rng_init(sq_rng *r, uint64_t seed, uint32_t stream_a, uint32_t stream_b);
/* Jump to block `block` of the stream (words 4*block .. 4*block+3). */
void sq_rng_seek(sq_rng *r, uint64_t block);

uint32_t sq_rng_u32(sq_rng *r);
/* Uniform float in [0, 1), 24 random bits. */
float sq_rng_uniform(sq_rng *r);
/* Uniform float in [lo, hi). */
float sq_rng_uniform_range(sq_rng *r, float lo, float hi);
/* Uniform double in [0, 1), 53 random bits. */
double sq_rng_uniform_double(sq_rng *r);
/* Standard normal (Box–Muller, both values used). */
float sq_rng_normal(sq_rng *r);
/* Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). n must be > 0. */
uint32_t sq_rng_below(sq_rng *r, uint32_t n);
/* perm[0..n) = a uniformly random permutation of 0..n-1 drawn from stream (seed, stream, 0). */
void sq_rng_permutation(uint64_t seed, uint32_t stream, uint32_t *perm, uint32_t n);

#ifdef __cplusplus
}
#endif
#endif
