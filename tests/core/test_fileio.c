/* test_fileio.c — atomic writes (no temp left behind, no partial file on failure), reads, mkdir -p,
 * timers. */
#include "../tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/fileio.h"
#include "core/timer.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[256];

static int setup(void **state) {
    (void)state;
    return sq_test_mkdtemp(g_dir, sizeof g_dir, "fileio");
}

static int teardown(void **state) {
    (void)state;
    return sq_test_rmtree(g_dir);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void test_atomic_write_and_read(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/a/b/c", g_dir);
    sq_status st;
    assert_int_equal(sq_mkdirs(path, &st), SQ_OK);
    assert_int_equal(sq_mkdirs(path, &st), SQ_OK); /* idempotent */
    char file[600];
    snprintf(file, sizeof file, "%s/out.txt", path);
    assert_int_equal(sq_write_file_atomic(file, "hello\n", 6, &st), SQ_OK);
    assert_int_equal(count_entries(path), 1); /* no temp file left */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sq_read_file(file, &text, &len, &st), SQ_OK);
    assert_int_equal(len, 6);
    assert_string_equal(text, "hello\n");
    free(text);
    /* Overwrite replaces whole. */
    assert_int_equal(sq_write_file_atomic(file, "x", 1, &st), SQ_OK);
    assert_int_equal(sq_read_file(file, &text, &len, &st), SQ_OK);
    assert_string_equal(text, "x");
    free(text);
}

static void test_failed_write_leaves_nothing(void **state) {
    (void)state;
    char file[512];
    snprintf(file, sizeof file, "%s/missing-dir/out.txt", g_dir);
    sq_status st;
    assert_int_equal(sq_write_file_atomic(file, "x", 1, &st), SQ_ERR_IO);
    assert_non_null(strstr(st.msg, "missing-dir/out.txt.tmp."));
    assert_false(sq_file_exists(file));
    /* Rename onto a directory fails, and the temp file is removed. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/isdir", g_dir);
    assert_int_equal(sq_mkdirs(dir, &st), SQ_OK);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/keep", dir);
    assert_int_equal(sq_mkdirs(sub, &st), SQ_OK);
    int before = count_entries(g_dir);
    assert_int_equal(sq_write_file_atomic(dir, "x", 1, &st), SQ_ERR_IO);
    assert_non_null(strstr(st.msg, "cannot rename"));
    assert_int_equal(count_entries(g_dir), before);
}

static void test_read_missing_and_mkdirs_on_file(void **state) {
    (void)state;
    sq_status st;
    char *text = NULL;
    assert_int_equal(sq_read_file("/nonexistent/segqa/x", &text, NULL, &st), SQ_ERR_IO);
    assert_null(text);
    assert_non_null(strstr(st.msg, "/nonexistent/segqa/x: cannot open"));
    char file[512];
    snprintf(file, sizeof file, "%s/plainfile", g_dir);
    assert_int_equal(sq_write_file_atomic(file, "x", 1, &st), SQ_OK);
    assert_int_equal(sq_mkdirs(file, &st), SQ_ERR_IO);
    assert_non_null(strstr(st.msg, "not a directory"));
}

static void test_timer_and_median(void **state) {
    (void)state;
    sq_timer t;
    sq_timer_reset(&t);
    sq_timer_start(&t);
    usleep(2000);
    double dt = sq_timer_stop(&t);
    assert_true(dt >= 0.0015 && dt < 5.0);
    assert_int_equal(t.count, 1);
    double v[5] = {5, 1, 4, 2, 3};
    assert_true(sq_median(v, 5) == 3.0);
    assert_true(sq_median(v, 4) == 3.0); /* 1 2 4 5 -> 3 */
    assert_true(sq_median(v, 0) == 0.0);
    assert_true(sq_now() > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atomic_write_and_read),
        cmocka_unit_test(test_failed_write_leaves_nothing),
        cmocka_unit_test(test_read_missing_and_mkdirs_on_file),
        cmocka_unit_test(test_timer_and_median),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
