/* test_rng.c — Philox4x32-10 known answers (Random123, Salmon et al. SC'11) and the derived
 * distributions: uniform range/moments, normal moments, unbiased bounded integers, permutations,
 * stream independence and counter seeking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* kat_vectors of Random123 1.09: counter[4], key[2] -> expected[4]. */
static const uint32_t k_kat[3][10] = {
    {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
     0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
     0x5001e420, 0x24126ea1},
};

static void test_philox_known_answers(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        sq_philox4x32_10(k_kat[i], k_kat[i] + 4, out);
        for (int j = 0; j < 4; j++)
            assert_int_equal(out[j], k_kat[i][6 + j]);
    }
}

static void test_stream_layout_matches_raw_philox(void **state) {
    (void)state;
    /* key = seed, counter = {block_lo, block_hi, a, b}. */
    uint64_t seed = 0x299f31d0a4093822ull;
    sq_rng r;
    sq_rng_init(&r, seed, 0x13198a2e, 0x03707344);
    sq_rng_seek(&r, 0x85a308d3243f6a88ull);
    for (int j = 0; j < 4; j++)
        assert_int_equal(sq_rng_u32(&r), k_kat[2][6 + j]);
}

static void test_uniform_range_and_moments(void **state) {
    (void)state;
    sq_rng r;
    sq_rng_init(&r, 42, 1, 2);
    const int n = 200000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        float u = sq_rng_uniform(&r);
        assert_true(u >= 0.0f && u < 1.0f);
        s += u;
        s2 += (double)u * u;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    /* standard error of the mean: sqrt(1/12/n) = 6.5e-4; 5 sigma */
    assert_true(fabs(mean - 0.5) < 3.3e-3);
    assert_true(fabs(var - 1.0 / 12.0) < 2e-3);
    for (int i = 0; i < 1000; i++) {
        float v = sq_rng_uniform_range(&r, -2.5f, 4.0f);
        assert_true(v >= -2.5f && v < 4.0f);
        double d = sq_rng_uniform_double(&r);
        assert_true(d >= 0.0 && d < 1.0);
    }
}

static void test_normal_moments(void **state) {
    (void)state;
    sq_rng r;
    sq_rng_init(&r, 7, 0, 0);
    const int n = 200000;
    double s = 0, s2 = 0, s4 = 0;
    for (int i = 0; i < n; i++) {
        double x = sq_rng_normal(&r);
        assert_true(isfinite(x));
        s += x;
        s2 += x * x;
        s4 += x * x * x * x;
    }
    double mean = s / n, var = s2 / n - mean * mean, kurt = s4 / n;
    assert_true(fabs(mean) < 0.012);      /* 5 sigma = 5/sqrt(n) */
    assert_true(fabs(var - 1.0) < 0.016); /* 5 * sqrt(2/n) */
    assert_true(fabs(kurt - 3.0) < 0.08); /* E[x^4] = 3 */
}

static void test_below_is_in_range_and_unbiased(void **state) {
    (void)state;
    sq_rng r;
    sq_rng_init(&r, 99, 3, 4);
    enum { K = 7, N = 70000 };
    int hist[K] = {0};
    for (int i = 0; i < N; i++) {
        uint32_t v = sq_rng_below(&r, K);
        assert_true(v < K);
        hist[v]++;
    }
    double chi2 = 0, e = (double)N / K;
    for (int k = 0; k < K; k++)
        chi2 += (hist[k] - e) * (hist[k] - e) / e;
    assert_true(chi2 < 22.46); /* chi-square, 6 dof, p = 0.001 */
    assert_int_equal(sq_rng_below(&r, 1), 0);
}

static void test_permutation_is_permutation_and_seeded(void **state) {
    (void)state;
    enum { N = 1001 };
    uint32_t a[N], b[N], c[N];
    int seen[N] = {0};
    sq_rng_permutation(5, 0, a, N);
    sq_rng_permutation(5, 0, b, N);
    sq_rng_permutation(5, 1, c, N);
    int same_c = 0, fixed = 0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] < N);
        seen[a[i]]++;
        same_c += a[i] == c[i];
        fixed += a[i] == (uint32_t)i;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_memory_equal(a, b, sizeof a);
    assert_true(same_c < 10); /* another stream gives another permutation */
    assert_true(fixed < 10);  /* not the identity */
}

static void test_streams_are_independent_and_reproducible(void **state) {
    (void)state;
    sq_rng r1, r2, r3;
    sq_rng_init(&r1, 1234, 5, 17); /* (seed, epoch, sample) */
    sq_rng_init(&r2, 1234, 5, 17);
    sq_rng_init(&r3, 1234, 5, 18);
    int equal13 = 0;
    for (int i = 0; i < 64; i++) {
        uint32_t x = sq_rng_u32(&r1), y = sq_rng_u32(&r2), z = sq_rng_u32(&r3);
        assert_int_equal(x, y);
        equal13 += x == z;
    }
    assert_true(equal13 < 2);
    /* Seeking back reproduces the same words. */
    sq_rng_seek(&r1, 3);
    uint32_t w[4];
    for (int i = 0; i < 4; i++)
        w[i] = sq_rng_u32(&r1);
    sq_rng_init(&r2, 1234, 5, 17);
    for (int i = 0; i < 12; i++)
        (void)sq_rng_u32(&r2);
    for (int i = 0; i < 4; i++)
        assert_int_equal(sq_rng_u32(&r2), w[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_stream_layout_matches_raw_philox),
        cmocka_unit_test(test_uniform_range_and_moments),
        cmocka_unit_test(test_normal_moments),
        cmocka_unit_test(test_below_is_in_range_and_unbiased),
        cmocka_unit_test(test_permutation_is_permutation_and_seeded),
        cmocka_unit_test(test_streams_are_independent_and_reproducible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
