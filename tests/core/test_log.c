/* test_log.c — level and rank filtering, message format, progress-line formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *capture(void (*fn)(void)) {
    FILE *f = tmpfile();
    assert_non_null(f);
    sq_log_set_stream(f);
    fn();
    sq_log_set_stream(NULL);
    long n = ftell(f);
    rewind(f);
    char *buf = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

static void emit_all(void) {
    sq_error("e%d", 1);
    sq_warn("w%d", 2);
    sq_info("i%d", 3);
    sq_debug("d%d", 4);
}

static void test_levels_single_process(void **state) {
    (void)state;
    sq_log_set_rank(-1, 0);
    sq_log_set_level(SQ_LOG_INFO);
    char *s = capture(emit_all);
    assert_string_equal(s, "segqa error: e1\nsegqa warning: w2\nsegqa info: i3\n");
    free(s);
    sq_log_set_level(SQ_LOG_WARN); /* --quiet */
    s = capture(emit_all);
    assert_string_equal(s, "segqa error: e1\nsegqa warning: w2\n");
    free(s);
    sq_log_set_level(SQ_LOG_DEBUG); /* --verbose */
    s = capture(emit_all);
    assert_non_null(strstr(s, "segqa debug: d4\n"));
    free(s);
}

static void test_rank_prefix_and_filter(void **state) {
    (void)state;
    sq_log_set_level(SQ_LOG_INFO);
    sq_log_set_rank(0, 0);
    char *s = capture(emit_all);
    assert_non_null(strstr(s, "segqa[r0] info: i3\n"));
    free(s);
    sq_log_set_rank(3, 0); /* non-zero ranks: warnings and errors only */
    s = capture(emit_all);
    assert_string_equal(s, "segqa[r3] error: e1\nsegqa[r3] warning: w2\n");
    free(s);
    sq_log_set_rank(3, 1); /* all ranks print info */
    s = capture(emit_all);
    assert_non_null(strstr(s, "segqa[r3] info: i3\n"));
    free(s);
    sq_log_set_rank(2, 0);
    sq_log_set_level(SQ_LOG_DEBUG); /* --verbose: every rank */
    s = capture(emit_all);
    assert_non_null(strstr(s, "segqa[r2] debug: d4\n"));
    free(s);
    sq_log_set_rank(-1, 0);
    sq_log_set_level(SQ_LOG_INFO);
}

static void test_progress_format(void **state) {
    (void)state;
    char buf[256];
    sq_progress_format(buf, sizeof buf, "train", 25, 100, 10.0, "loss 0.0123");
    assert_string_equal(buf, "train  25.0% 25/100 2.5/s elapsed 0:10 ETA 0:30 loss 0.0123");
    sq_progress_format(buf, sizeof buf, "ingest", 0, 208, 0.0, NULL);
    assert_string_equal(buf, "ingest   0.0% 0/208 0/s elapsed 0:00 ETA --:--");
    sq_progress_format(buf, sizeof buf, "read", 50, 0, 5.0, NULL);
    assert_string_equal(buf, "read 50 10/s elapsed 0:05");
    sq_progress_format(buf, sizeof buf, "x", 120, 100, 1.0, NULL); /* clamps */
    assert_non_null(strstr(buf, "100.0%"));
    sq_format_duration(buf, sizeof buf, 3725);
    assert_string_equal(buf, "1:02:05");
    sq_format_duration(buf, sizeof buf, -1);
    assert_string_equal(buf, "--:--");
}

static void run_progress(void) {
    sq_progress p;
    sq_progress_begin(&p, "steps", 10);
    p.period = 0; /* print every update (non-tty) */
    for (int i = 1; i <= 3; i++)
        sq_progress_update(&p, i, "ok");
    sq_progress_end(&p, "done");
}

static void test_progress_plain_lines_off_tty(void **state) {
    (void)state;
    sq_log_set_rank(-1, 0);
    sq_log_set_level(SQ_LOG_INFO);
    char *s = capture(run_progress);
    int lines = 0;
    for (char *c = s; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 4);
    assert_null(strchr(s, '\r'));
    assert_non_null(strstr(s, "steps  10.0% 1/10"));
    assert_non_null(strstr(s, "steps  30.0% 3/10"));
    assert_non_null(strstr(s, "done\n"));
    free(s);
    sq_log_set_rank(1, 0); /* inactive on non-zero ranks */
    s = capture(run_progress);
    assert_string_equal(s, "");
    free(s);
    sq_log_set_rank(-1, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_single_process),
        cmocka_unit_test(test_rank_prefix_and_filter),
        cmocka_unit_test(test_progress_format),
        cmocka_unit_test(test_progress_plain_lines_off_tty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
