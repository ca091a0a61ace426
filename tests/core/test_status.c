/* test_status.c — errors as values: messages, context chaining, exit codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/status.h"

#include <string.h>

static sq_code inner(sq_status *st) {
    return sq_fail(st, SQ_ERR_FORMAT, "field '%s': expected %d, got %d", "dims", 3, 4);
}

static sq_code outer(sq_status *st) {
    SQ_TRY(inner(st));
    return SQ_OK;
}

static void test_fail_sets_code_and_message(void **state) {
    (void)state;
    sq_status st;
    sq_status_clear(&st);
    assert_int_equal(st.code, SQ_OK);
    assert_int_equal(inner(&st), SQ_ERR_FORMAT);
    assert_string_equal(st.msg, "field 'dims': expected 3, got 4");
}

static void test_try_propagates_and_context_prepends(void **state) {
    (void)state;
    sq_status st;
    sq_status_clear(&st);
    assert_int_equal(outer(&st), SQ_ERR_FORMAT);
    assert_int_equal(sq_context(&st, "%s", "images/a.nii.gz"), SQ_ERR_FORMAT);
    assert_int_equal(sq_context(&st, "ingest"), SQ_ERR_FORMAT);
    assert_string_equal(st.msg, "ingest: images/a.nii.gz: field 'dims': expected 3, got 4");
}

static void test_context_on_ok_is_noop(void **state) {
    (void)state;
    sq_status st;
    sq_status_clear(&st);
    assert_int_equal(sq_context(&st, "anything"), SQ_OK);
    assert_string_equal(st.msg, "");
}

static void test_long_messages_truncate_safely(void **state) {
    (void)state;
    sq_status st;
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sq_fail(&st, SQ_ERR_IO, "%s", big);
    assert_int_equal(strlen(st.msg), SQ_STATUS_MSG_MAX - 1);
    sq_context(&st, "%s", big);
    assert_int_equal(strlen(st.msg), SQ_STATUS_MSG_MAX - 1);
    assert_int_equal(st.code, SQ_ERR_IO);
}

static void test_null_status_and_exit_codes(void **state) {
    (void)state;
    assert_int_equal(sq_fail(NULL, SQ_ERR_IO, "x"), SQ_ERR_IO);
    assert_int_equal(sq_exit_code(SQ_OK), 0);
    assert_int_equal(sq_exit_code(SQ_ERR_USAGE), 2);
    assert_int_equal(sq_exit_code(SQ_ERR_IO), 4);
    assert_int_equal(sq_exit_code(SQ_ERR_FORMAT), 5);
    assert_int_equal(sq_exit_code(SQ_ERR_INTERRUPTED), 75);
    assert_int_equal(sq_exit_code(SQ_ERR_INTERNAL), 1);
    for (int c = 0; c < SQ_CODE_COUNT; c++)
        assert_non_null(sq_code_name((sq_code)c));
    assert_string_equal(sq_code_name(SQ_ERR_IO), "i/o error");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_sets_code_and_message),
        cmocka_unit_test(test_try_propagates_and_context_prepends),
        cmocka_unit_test(test_context_on_ok_is_noop),
        cmocka_unit_test(test_long_messages_truncate_safely),
        cmocka_unit_test(test_null_status_and_exit_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
