/* test_splits.c — per-patient folds: no patient spans two folds, folds are balanced, the seed makes
 * them reproducible, JSON round trips, and bad splits files are one clear error each. */
#include "../tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "train/splits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_dir[256];

static int setup(void **state) {
    (void)state;
    return sq_test_mkdtemp(g_dir, sizeof g_dir, "splits");
}

static int teardown(void **state) {
    (void)state;
    return sq_test_rmtree(g_dir);
}

/* 80 contours of 60 patients, as the paper: patients 0..19 have two contours each. */
enum { N = 80 };
static char g_case[N][32], g_pat[N][32];
static const char *g_cases[N], *g_pats[N];

static void make_ids(void) {
    for (int i = 0; i < N; i++) {
        int p = i < 40 ? i / 2 : i - 20;
        snprintf(g_case[i], sizeof g_case[i], "case%03d", i);
        snprintf(g_pat[i], sizeof g_pat[i], "pat%02d", p);
        g_cases[i] = g_case[i];
        g_pats[i] = g_pat[i];
    }
}

static void test_per_patient_balanced_reproducible(void **state) {
    (void)state;
    make_ids();
    sq_splits a, b, c;
    sq_status st;
    assert_int_equal(sq_splits_make(g_cases, g_pats, N, 5, 42, &a, &st), SQ_OK);
    assert_int_equal(sq_splits_make(g_cases, g_pats, N, 5, 42, &b, &st), SQ_OK);
    assert_int_equal(sq_splits_make(g_cases, g_pats, N, 5, 43, &c, &st), SQ_OK);
    int differ = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(a.fold[i], b.fold[i]);
        differ += a.fold[i] != c.fold[i];
        for (int j = 0; j < N; j++)
            if (!strcmp(g_pats[i], g_pats[j])) assert_int_equal(a.fold[i], a.fold[j]);
    }
    assert_true(differ > 10);
    for (int f = 0; f < 5; f++) {
        int n = sq_splits_count(&a, f);
        assert_true(n >= 15 && n <= 17); /* 80 / 5 = 16, one two-contour patient of slack */
    }
    assert_int_equal(sq_splits_fold_of(&a, "case007"), a.fold[7]);
    assert_int_equal(sq_splits_fold_of(&a, "nope"), -1);
    sq_splits_free(&a);
    sq_splits_free(&b);
    sq_splits_free(&c);
}

static void test_make_errors(void **state) {
    (void)state;
    make_ids();
    sq_splits s;
    sq_status st;
    assert_int_equal(sq_splits_make(g_cases, g_pats, N, 1, 1, &s, &st), SQ_ERR_USAGE);
    assert_int_equal(sq_splits_make(g_cases, g_pats, 3, 5, 1, &s, &st), SQ_ERR_USAGE);
    assert_non_null(strstr(st.msg, "5 folds need at least 5 patients, found 2"));
    const char *dup[3] = {"a", "b", "a"}, *pat[3] = {"p", "q", "r"};
    assert_int_equal(sq_splits_make(dup, pat, 3, 2, 1, &s, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "case id 'a' appears twice"));
}

static void test_json_round_trip_and_check(void **state) {
    (void)state;
    make_ids();
    sq_splits a, b;
    sq_status st;
    char path[512];
    snprintf(path, sizeof path, "%s/splits.json", g_dir);
    assert_int_equal(sq_splits_make(g_cases, g_pats, N, 5, 7, &a, &st), SQ_OK);
    assert_int_equal(sq_splits_save(&a, path, &st), SQ_OK);
    assert_int_equal(sq_splits_load(path, &b, &st), SQ_OK);
    assert_int_equal(b.nfolds, 5);
    assert_true(b.seed == 7);
    assert_int_equal(b.ncases, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(sq_splits_fold_of(&b, g_cases[i]), a.fold[i]);
    assert_int_equal(sq_splits_check_cases(&b, g_cases, g_pats, N, path, &st), SQ_OK);
    assert_int_equal(sq_splits_check_cases(&b, g_cases, g_pats, N - 1, path, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "lists 80 cases, the data set has 79"));
    const char *other[1] = {"zzz"};
    assert_int_equal(sq_splits_check_cases(&b, other, g_pats, 1, path, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "case 'zzz' of the data set has no fold"));
    const char *wrongp[1] = {"pat99"};
    assert_int_equal(sq_splits_check_cases(&b, g_cases, wrongp, 1, path, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "belongs to patient 'pat00' in the splits but 'pat99'"));
    sq_splits_free(&a);
    sq_splits_free(&b);
}

static void expect_load_error(const char *text, const char *needle) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.json", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    sq_splits s;
    sq_status st;
    sq_status_clear(&st);
    assert_int_not_equal(sq_splits_load(path, &s, &st), SQ_OK);
    if (!strstr(st.msg, needle)) fail_msg("'%s' lacks '%s'", st.msg, needle);
    assert_non_null(strstr(st.msg, "bad.json"));
    assert_null(s.case_id);
}

#define HDR "{\"format\": \"segqa-splits\", \"version\": 1, \"folds\": 2, \"cases\": "
static void test_bad_files(void **state) {
    (void)state;
    expect_load_error("{\"format\": \"other\"}", "format 'other', expected 'segqa-splits'");
    expect_load_error("{\"format\": \"segqa-splits\", \"version\": 2}", "version 2, expected 1");
    expect_load_error("{\"format\": \"segqa-splits\", \"version\": 1, \"folds\": 1, \"cases\": []}",
                      "folds = 1");
    expect_load_error(HDR "{}}", "key 'cases' must be an array, found object");
    expect_load_error(HDR "[{\"case\": \"a\", \"patient\": \"p\", \"fold\": 2}]}",
                      "cases[0]: fold 2, expected 0..1");
    expect_load_error(HDR "[{\"case\": \"a\", \"fold\": 0}]}", "cases[0]: missing key 'patient'");
    expect_load_error(HDR "[{\"case\": \"a\", \"patient\": \"p\", \"fold\": 0},"
                          " {\"case\": \"b\", \"patient\": \"p\", \"fold\": 1}]}",
                      "patient 'p' is in fold 0 (case 'a') and fold 1 (case 'b')");
    expect_load_error(HDR "[{\"case\": \"a\", \"patient\": \"p\", \"fold\": 0},"
                          " {\"case\": \"a\", \"patient\": \"q\", \"fold\": 1}]}",
                      "case 'a' listed twice");
    expect_load_error(HDR "[{\"case\": \"a\", \"patient\": \"p\", \"fold\": 0}]}",
                      "fold 1 has no cases");
    expect_load_error(HDR "[", "malformed JSON");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_patient_balanced_reproducible),
        cmocka_unit_test(test_make_errors),
        cmocka_unit_test(test_json_round_trip_and_check),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
