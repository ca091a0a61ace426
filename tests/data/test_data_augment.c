/* test_data_augment.c — augmentation identities (zero parameters -> unchanged volumes, Dice 1 for
 * GT vs GT), exact flip, swap scaling, failure cases with their expected Dice, and Philox
 * determinism: a sample is bit-identical whichever thread computes it, and in whatever order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "data/augment.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { D = 12, H = 40, W = 36, N = D * H * W };

typedef struct fixture {
    float img[N];
    uint8_t gt[N], ct[N];
} fixture;

static fixture g_fx;

/* an ellipsoid GT, a shifted ellipsoid contour, a smooth textured image */
static void make_fixture(fixture *f) {
    for (int z = 0; z < D; z++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = ((size_t)z * H + y) * W + x;
                double dz = (z - 6.0) / 4, dy = (y - 20.0) / 10, dx = (x - 17.0) / 8;
                f->gt[i] = dz * dz + dy * dy + dx * dx < 1;
                double ex = (x - 19.0) / 8;
                f->ct[i] = dz * dz + dy * dy + ex * ex < 1;
                f->img[i] = (float)(100 + 50 * sin(0.3 * x) * cos(0.2 * y) + 10 * z);
            }
}

static sq_aug_input input(int swapped) {
    sq_aug_input in = {D, H, W, {3.0, 0.8, 0.8}, g_fx.img, g_fx.gt, g_fx.ct, swapped};
    return in;
}

typedef struct outbuf {
    float img[N];
    uint8_t gt[N], ct[N];
    sq_aug_output o;
} outbuf;

static void bind(outbuf *b) {
    b->o.image = b->img;
    b->o.gt = b->gt;
    b->o.contour = b->ct;
}

static double dice(const uint8_t *a, const uint8_t *b) {
    size_t na = 0, nb = 0, nab = 0;
    for (int i = 0; i < N; i++)
        na += a[i], nb += b[i], nab += a[i] & b[i];
    return na + nb ? 2.0 * nab / (double)(na + nb) : 1.0;
}

static int setup(void **state) {
    (void)state;
    make_fixture(&g_fx);
    return 0;
}

static void test_identity(void **state) {
    (void)state;
    sq_aug_config c = sq_aug_config_identity();
    outbuf *b = calloc(1, sizeof *b);
    bind(b);
    sq_status st;
    sq_aug_input in = input(0);
    assert_int_equal(sq_augment(&c, 1, 2, 3, &in, &b->o, &st), SQ_OK);
    double maxerr = 0;
    for (int i = 0; i < N; i++)
        maxerr = fmax(maxerr, fabs(b->img[i] - g_fx.img[i]));
    assert_true(maxerr < 1e-3);
    assert_memory_equal(b->gt, g_fx.gt, N);
    assert_memory_equal(b->ct, g_fx.ct, N);
    assert_true(fabs(b->o.dice - dice(g_fx.gt, g_fx.ct)) < 1e-12);
    /* GT vs GT: Dice 1, also under the full default augmentation */
    in.contour = g_fx.gt;
    assert_int_equal(sq_augment(&c, 1, 2, 3, &in, &b->o, &st), SQ_OK);
    assert_true(b->o.dice == 1.0);
    sq_aug_config full = sq_aug_config_default();
    assert_int_equal(sq_augment(&full, 1, 2, 3, &in, &b->o, &st), SQ_OK);
    assert_true(b->o.dice == 1.0);
    free(b);
}

static void test_flip_exact(void **state) {
    (void)state;
    sq_aug_config c = sq_aug_config_identity();
    c.flip_prob = 1.0f;
    outbuf *b = calloc(1, sizeof *b);
    bind(b);
    sq_status st;
    sq_aug_input in = input(0);
    assert_int_equal(sq_augment(&c, 5, 0, 0, &in, &b->o, &st), SQ_OK);
    assert_int_equal(b->o.rec.flip, 1);
    for (int z = 0; z < D; z++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = ((size_t)z * H + y) * W + x, j = ((size_t)z * H + y) * W + (W - 1 - x);
                assert_int_equal(b->gt[i], g_fx.gt[j]);
                assert_int_equal(b->ct[i], g_fx.ct[j]);
                assert_true(fabsf(b->img[i] - g_fx.img[j]) < 1e-3f);
            }
    free(b);
}

static void test_swap_scale(void **state) {
    (void)state;
    sq_aug_config c = sq_aug_config_identity();
    c.swap_scale_lo = c.swap_scale_hi = 1.5f;
    outbuf *b = calloc(1, sizeof *b);
    bind(b);
    sq_status st;
    sq_aug_input in = input(1);
    assert_int_equal(sq_augment(&c, 5, 0, 0, &in, &b->o, &st), SQ_OK);
    size_t n0 = 0, n1 = 0;
    for (int i = 0; i < N; i++)
        n0 += g_fx.ct[i], n1 += b->ct[i];
    double ratio = (double)n1 / (double)n0;
    assert_true(ratio > 2.6 && ratio < 4.2); /* 1.5^3 = 3.375, clipped a little by the box */
    assert_memory_equal(b->gt, g_fx.gt, N);  /* the GT is not scaled */
    assert_true(fabs(b->o.dice - dice(b->gt, b->ct)) < 1e-12);
    free(b);
}

static void test_failure_cases(void **state) {
    (void)state;
    outbuf *b = calloc(1, sizeof *b);
    bind(b);
    sq_status st;
    sq_aug_input in = input(0);
    size_t ngt = 0;
    for (int i = 0; i < N; i++)
        ngt += g_fx.gt[i];
    const int kinds[4] = {SQ_FAIL_EMPTY, SQ_FAIL_ONES, SQ_FAIL_NOISE, SQ_FAIL_SHIFT};
    for (int k = 0; k < 4; k++) {
        sq_aug_config c = sq_aug_config_identity();
        c.fail_rate = 1.0f;
        c.fail_kinds = 1u << kinds[k];
        assert_int_equal(sq_augment(&c, 9, 1, (uint32_t)k, &in, &b->o, &st), SQ_OK);
        assert_int_equal(b->o.rec.failure, kinds[k]);
        assert_true(fabs(b->o.dice - dice(b->gt, b->ct)) < 1e-12);
        switch (kinds[k]) {
        case SQ_FAIL_EMPTY: assert_true(b->o.dice == 0.0); break;
        case SQ_FAIL_ONES:
            assert_true(fabs(b->o.dice - 2.0 * ngt / (double)(ngt + N)) < 1e-12);
            break;
        case SQ_FAIL_NOISE: { /* E[Dice] = 2 * 0.5 * |G| / (|G| + N/2) */
            double e = ngt / (ngt + N / 2.0);
            assert_true(fabs(b->o.dice - e) < 0.02);
            break;
        }
        case SQ_FAIL_SHIFT:
            assert_true(fabsf(b->o.rec.shift_x) <= W / 2.0f + 0.5f);
            assert_true(fabsf(b->o.rec.shift_y) <= H / 2.0f + 0.5f);
            break;
        }
    }
    /* a zero shift reproduces the GT exactly */
    uint8_t *ct = malloc(N);
    sq_aug_record rec = {0};
    sq_rng r;
    int zero_found = 0;
    for (uint32_t s = 0; s < 2000 && !zero_found; s++) {
        sq_rng_init(&r, 77, 0, s);
        sq_failure_contour(SQ_FAIL_SHIFT, &r, g_fx.gt, D, H, W, ct, &rec);
        if (rec.shift_x == 0 && rec.shift_y == 0) {
            assert_memory_equal(ct, g_fx.gt, N);
            zero_found = 1;
        }
    }
    assert_true(zero_found);
    free(ct);
    free(b);
}

/* ---- determinism across threads ---- */
enum { NS = 12, NT = 3 };
typedef struct job {
    int first, step;
    outbuf *out; /* NS */
} job;

static void *run_job(void *arg) {
    job *j = arg;
    sq_aug_config c = sq_aug_config_default();
    c.fail_rate = 0.3f;
    sq_status st;
    for (int s = j->first; s >= 0 && s < NS; s += j->step) {
        sq_aug_input in = input(s % 2);
        bind(&j->out[s]);
        sq_augment(&c, 42, 7, (uint32_t)s, &in, &j->out[s].o, &st);
    }
    return NULL;
}

static void test_determinism_threads(void **state) {
    (void)state;
    outbuf *serial = calloc(NS, sizeof *serial), *par = calloc(NS, sizeof *par);
    job js = {0, 1, serial};
    run_job(&js);
    /* 3 threads, samples interleaved and in reverse order */
    pthread_t th[NT];
    job jobs[NT];
    for (int t = 0; t < NT; t++) {
        jobs[t] = (job){NS - 1 - t, -NT, par};
        pthread_create(&th[t], NULL, run_job, &jobs[t]);
    }
    for (int t = 0; t < NT; t++)
        pthread_join(th[t], NULL);
    int differ = 0;
    for (int s = 0; s < NS; s++) {
        assert_memory_equal(serial[s].img, par[s].img, sizeof serial[s].img);
        assert_memory_equal(serial[s].gt, par[s].gt, N);
        assert_memory_equal(serial[s].ct, par[s].ct, N);
        assert_true(serial[s].o.dice == par[s].o.dice);
        if (s && memcmp(serial[s].img, serial[0].img, sizeof serial[0].img)) differ++;
    }
    assert_true(differ >= NS - 2); /* different sample ids give different augmentations */
    /* another epoch gives another sample */
    outbuf *o = calloc(1, sizeof *o);
    bind(o);
    sq_aug_config c = sq_aug_config_default();
    c.fail_rate = 0.3f;
    sq_aug_input in = input(0);
    sq_status st;
    sq_augment(&c, 42, 8, 0, &in, &o->o, &st);
    assert_true(memcmp(o->img, serial[0].img, sizeof o->img) != 0);
    free(o);
    free(serial);
    free(par);
}

/* The AVX2 row kernel against the portable one: bit-identical image, masks and Dice, on plain and
 * swapped (scaled) contours, with failures, and with strong transforms that move much of the volume
 * outside (translation 60 %, zoom 50 %, rotation 90 degrees): the border lanes. W = 36 is 4 blocks
 * of 8 plus a scalar tail. */
static void test_isa_identical(void **state) {
    (void)state;
    outbuf *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    bind(a), bind(b);
    sq_status st;
    int was = sq_augment_isa(-1), compared = 0;
    for (int strong = 0; strong < 2; strong++)
        for (uint32_t s = 0; s < 24; s++) {
            sq_aug_config c = sq_aug_config_default();
            c.fail_rate = 0.25f;
            if (strong) c.trans_frac = 0.6f, c.zoom_frac = 0.5f, c.rot_max = (float)(M_PI / 2);
            sq_aug_input in = input((int)(s & 1));
            sq_augment_isa(0);
            assert_int_equal(sq_augment(&c, 7, 3, s, &in, &a->o, &st), SQ_OK);
            sq_augment_isa(1);
            if (!sq_augment_isa(-1)) skip(); /* no AVX2 on this CPU: nothing to compare */
            assert_int_equal(sq_augment(&c, 7, 3, s, &in, &b->o, &st), SQ_OK);
            assert_memory_equal(a->img, b->img, sizeof a->img);
            assert_memory_equal(a->gt, b->gt, N);
            assert_memory_equal(a->ct, b->ct, N);
            assert_true(a->o.dice == b->o.dice);
            compared++;
        }
    sq_augment_isa(was);
    assert_int_equal(compared, 48);
    free(a);
    free(b);
}

static void test_default_ranges(void **state) {
    (void)state;
    sq_aug_config c = sq_aug_config_default();
    outbuf *b = calloc(1, sizeof *b);
    bind(b);
    sq_status st;
    int flips = 0;
    for (uint32_t s = 0; s < 64; s++) {
        sq_aug_input in = input(1);
        assert_int_equal(sq_augment(&c, 3, 0, s, &in, &b->o, &st), SQ_OK);
        assert_true(fabsf(b->o.rec.rot) <= (float)(M_PI / 12) + 1e-6f);
        assert_true(b->o.rec.zoom >= 0.9f && b->o.rec.zoom <= 1.1f);
        assert_true(b->o.rec.swap_scale >= 0.55f && b->o.rec.swap_scale < 1.8f);
        assert_true(fabsf(b->o.rec.tx_mm) <= 0.1f * W * 0.8f + 1e-4f);
        assert_true(b->o.dice >= 0 && b->o.dice <= 1);
        assert_true(fabs(b->o.dice - dice(b->gt, b->ct)) < 1e-12);
        flips += b->o.rec.flip;
    }
    assert_true(flips > 16 && flips < 48);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_flip_exact),
        cmocka_unit_test(test_swap_scale),
        cmocka_unit_test(test_failure_cases),
        cmocka_unit_test(test_determinism_threads),
        cmocka_unit_test(test_default_ranges),
        cmocka_unit_test(test_isa_identical),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
