/* test_tpe.c — the baseline search's proposals (src/baseline/search.h): prior draws stay inside the
 * study's space with integer integers, proposals are deterministic in (history, trial, seed), and
 * on a toy objective with a known optimum TPE's best after 64 trials beats random search's for most
 * seeds (the control: random search, the same trial budget, the same seeds). */
#include "baseline/search.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static double toy(const double *x) {
    double a = (x[0] - 40) / 64, b = (x[1] - 2) / 2, c = log10(x[2] / 0.1), d = (x[3] - 0.5) / 0.4;
    return a * a + b * b + c * c + d * d;
}

/* best toy value after `trials` proposals in rounds of 8, the first `startup` from the prior */
static double run(int trials, int startup, uint64_t seed) {
    sq_bl_trial tr[64];
    double best = INFINITY;
    for (int t0 = 0; t0 < trials; t0 += 8) {
        for (int i = t0; i < t0 + 8; i++)
            sq_bl_propose(tr, t0, i, startup, seed, tr[i].x, &tr[i].tpe);
        for (int i = t0; i < t0 + 8; i++) {
            tr[i].mae = toy(tr[i].x);
            best = fmin(best, tr[i].mae);
        }
    }
    return best;
}

static void test_prior_in_space(void **state) {
    (void)state;
    for (int t = 0; t < 2000; t++) {
        double x[SQ_BL_NPARAM];
        int tpe;
        sq_bl_propose(NULL, 0, t, 16, 5, x, &tpe);
        assert_int_equal(tpe, 0);
        assert_true(x[0] >= 1 && x[0] <= 256 && x[0] == floor(x[0]));
        assert_true(x[1] >= 1 && x[1] <= 6 && x[1] == floor(x[1]));
        assert_true(x[2] >= 1e-3 && x[2] <= 10);
        assert_true(x[3] >= 0.2 && x[3] <= 1);
    }
}

static void test_tpe_deterministic_and_in_space(void **state) {
    (void)state;
    sq_bl_trial tr[32];
    for (int i = 0; i < 16; i++) {
        int tpe;
        sq_bl_propose(tr, 0, i, 16, 9, tr[i].x, &tpe);
        tr[i].mae = toy(tr[i].x);
    }
    double a[SQ_BL_NPARAM], b[SQ_BL_NPARAM], c[SQ_BL_NPARAM];
    int ta, tb, tc;
    sq_bl_propose(tr, 16, 16, 16, 9, a, &ta);
    sq_bl_propose(tr, 16, 16, 16, 9, b, &tb);
    sq_bl_propose(tr, 16, 17, 16, 9, c, &tc);
    assert_int_equal(ta, 1);
    assert_memory_equal(a, b, sizeof a);
    assert_true(memcmp(a, c, sizeof a) != 0); /* another trial index, another draw */
    assert_true(a[0] >= 1 && a[0] <= 256 && a[0] == floor(a[0]));
    assert_true(a[2] >= 1e-3 && a[2] <= 10 && a[3] >= 0.2 && a[3] <= 1);
}

static void test_tpe_beats_random(void **state) {
    (void)state;
    int wins = 0;
    double st = 0, sr = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        double t = run(64, 16, seed), r = run(64, 64, seed);
        wins += t < r;
        st += t, sr += r;
    }
    printf("toy objective, best of 64 (mean over 20 seeds): TPE %.4f, random %.4f; TPE better "
           "in %d of 20\n",
           st / 20, sr / 20, wins);
    assert_true(wins >= 14);
    assert_true(st < 0.7 * sr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prior_in_space),
        cmocka_unit_test(test_tpe_deterministic_and_in_space),
        cmocka_unit_test(test_tpe_beats_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
