/* test_report.c — the run folder's results: predictions.csv, metrics.json (summary first, then per
 * fold, per site, per sample) and the gnuplot figures, with no temporary files left behind. */
#include "../tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/fileio.h"
#include "core/json.h"
#include "train/report.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_dir[256];

static int setup(void **state) {
    (void)state;
    return sq_test_mkdtemp(g_dir, sizeof g_dir, "report");
}

static int teardown(void **state) {
    (void)state;
    return sq_test_rmtree(g_dir);
}

static int make_predictions(sq_prediction *p) {
    int n = 0;
    for (int i = 0; i < 20; i++) { /* real contours, two folds, two sites */
        sq_prediction *q = &p[n++];
        memset(q, 0, sizeof *q);
        snprintf(q->case_id, sizeof q->case_id, "c%02d", i);
        snprintf(q->site, sizeof q->site, "%s", i % 2 ? "siteB" : "siteA");
        q->fold = i % 2;
        q->category = SQ_CAT_REAL;
        q->target = 0.85 + 0.005 * i;
        q->pred = q->target + (i % 3 == 0 ? 0.02 : -0.01);
        q->naive = 0.9;
    }
    const int cats[3] = {SQ_CAT_EMPTY, SQ_CAT_GT, SQ_CAT_SHIFTED};
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 4; i++) {
            sq_prediction *q = &p[n++];
            memset(q, 0, sizeof *q);
            snprintf(q->case_id, sizeof q->case_id, "f%d_%d", c, i);
            snprintf(q->site, sizeof q->site, "siteA");
            q->fold = i % 2;
            q->category = cats[c];
            q->target = cats[c] == SQ_CAT_EMPTY ? 0.0 : cats[c] == SQ_CAT_GT ? 1.0 : 0.3 + 0.1 * i;
            q->pred = cats[c] == SQ_CAT_EMPTY ? 0.3 : 0.9;
            q->naive = 0.9;
        }
    return n;
}

static int count_tmp(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.") || strstr(e->d_name, ".gp")) n++;
    closedir(d);
    return n;
}

static void assert_png(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s missing", path);
    unsigned char sig[8] = {0};
    assert_int_equal(fread(sig, 1, 8, f), 8);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
    assert_true(size > 5000);
}

static void test_summary_values(void **state) {
    (void)state;
    sq_prediction p[64];
    int n = make_predictions(p);
    sq_report_summary s;
    sq_status st;
    assert_int_equal(sq_report_summarise(p, n, SQ_ACCURACY_RULE_PAPER, &s, &st), SQ_OK);
    assert_int_equal(s.real.n, 20);
    /* 7 of 20 with error 0.02 (i % 3 == 0), 13 with 0.01 */
    assert_true(fabs(s.real.mae - (7 * 0.02 + 13 * 0.01) / 20) < 1e-12);
    assert_true(fabs(s.cat[SQ_CAT_EMPTY].mae - 0.3) < 1e-12);
    assert_true(fabs(s.cat_naive[SQ_CAT_EMPTY].mae - 0.9) < 1e-12);
    assert_true(fabs(s.cat[SQ_CAT_GT].mae - 0.1) < 1e-12);
    assert_int_equal(s.cat[SQ_CAT_NOISE].n, 0);
    assert_int_equal(s.all.n, 32);
    /* shifted GT with target < 0.75 predicted 0.9 fails the rule: all 4 */
    assert_int_equal(s.cat[SQ_CAT_SHIFTED].n_failed, 4);
    assert_int_equal(s.all.n_failed, 4);
    assert_int_equal(sq_category_parse("shifted-gt"), SQ_CAT_SHIFTED);
    assert_int_equal(sq_category_parse("bogus"), -1);
}

static void test_run_folder(void **state) {
    (void)state;
    sq_prediction p[64];
    int n = make_predictions(p);
    sq_status st;
    char run[512], path[600];
    snprintf(run, sizeof run, "%s/run1", g_dir);
    assert_int_equal(sq_mkdirs(run, &st), SQ_OK);
    snprintf(path, sizeof path, "%s/curves.csv", run);
    const char *curves = "fold,epoch,train_loss,val_mae\n0,1,0.05,-1\n0,2,0.03,0.04\n1,1,0.06,-1\n"
                         "1,2,0.02,0.03\n";
    assert_int_equal(sq_write_file_atomic(path, curves, strlen(curves), &st), SQ_OK);
    if (sq_report_write(run, p, n, SQ_ACCURACY_RULE_PAPER, 1, &st) != SQ_OK) fail_msg("%s", st.msg);
    assert_png(run, "pred_vs_target.png");
    assert_png(run, "failure_mae.png");
    assert_png(run, "curves.png");
    assert_int_equal(count_tmp(run), 0);

    cJSON *j = NULL;
    snprintf(path, sizeof path, "%s/metrics.json", run);
    assert_int_equal(sq_json_read_file(path, &j, &st), SQ_OK);
    assert_string_equal(j->child->string, "summary"); /* summary first */
    cJSON *real = cJSON_GetObjectItem(cJSON_GetObjectItem(j->child, "real_contours"), "segqa");
    assert_int_equal(cJSON_GetObjectItem(real, "n")->valueint, 20);
    assert_true(fabs(cJSON_GetObjectItem(real, "mae")->valuedouble - 0.0135) < 1e-9);
    cJSON *cats = cJSON_GetObjectItem(j->child, "by_category");
    assert_non_null(cJSON_GetObjectItem(cats, "empty"));
    assert_null(cJSON_GetObjectItem(cats, "noise"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "per_fold")), 2);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "per_site"), "siteB"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "per_sample")), n);
    cJSON_Delete(j);

    char *csv = NULL;
    snprintf(path, sizeof path, "%s/predictions.csv", run);
    assert_int_equal(sq_read_file(path, &csv, NULL, &st), SQ_OK);
    int lines = 0;
    for (char *c = csv; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, n + 1);
    assert_non_null(strstr(csv, "f0_0,siteA,0,empty,0.000000,0.300000,0.900000,0.300000\n"));
    free(csv);

    FILE *out = tmpfile();
    sq_report_summary s;
    sq_report_summarise(p, n, SQ_ACCURACY_RULE_PAPER, &s, &st);
    sq_report_print_summary(out, &s);
    long sz = ftell(out);
    rewind(out);
    char *text = calloc(1, (size_t)sz + 1);
    assert_int_equal(fread(text, 1, (size_t)sz, out), (size_t)sz);
    fclose(out);
    assert_non_null(strstr(text, "real             20  0.0135"));
    assert_non_null(strstr(text, "empty             4  0.3000"));
    free(text);
}

static void test_unwritable_run_dir(void **state) {
    (void)state;
    sq_prediction p[64];
    int n = make_predictions(p);
    sq_status st;
    char file[512];
    snprintf(file, sizeof file, "%s/plainfile", g_dir);
    assert_int_equal(sq_write_file_atomic(file, "x", 1, &st), SQ_OK);
    assert_int_equal(sq_report_write(file, p, n, SQ_ACCURACY_RULE_PAPER, 0, &st), SQ_ERR_IO);
    assert_non_null(strstr(st.msg, "plainfile"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_values),
        cmocka_unit_test(test_run_folder),
        cmocka_unit_test(test_unwritable_run_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
