/* test_tensor.c — descriptors, strides, formatting, shape parsing and aligned allocation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/tensor.h"

#include <stdint.h>
#include <string.h>

static void test_make_and_sizes(void **state) {
    (void)state;
    sq_tdesc d;
    sq_status st;
    sq_status_clear(&st);
    int64_t shape[5] = {2, 2, 28, 160, 160};
    assert_int_equal(sq_tdesc_make(&d, SQ_F32, 5, shape, &st), SQ_OK);
    assert_int_equal(sq_tdesc_numel(&d), 2LL * 2 * 28 * 160 * 160);
    assert_int_equal(sq_tdesc_nbytes(&d), 4ULL * 2 * 2 * 28 * 160 * 160);
    int64_t s[5];
    sq_tdesc_strides(&d, s);
    assert_int_equal(s[4], 1);
    assert_int_equal(s[3], 160);
    assert_int_equal(s[2], 160 * 160);
    assert_int_equal(s[1], 28 * 160 * 160);
    assert_int_equal(s[0], 2 * 28 * 160 * 160);
    sq_tdesc e = sq_tdesc_5d(SQ_F32, 2, 2, 28, 160, 160);
    assert_true(sq_tdesc_equal(&d, &e));
    e.shape[2] = 27;
    assert_false(sq_tdesc_equal(&d, &e));
    char buf[64];
    sq_tdesc_format(&d, buf, sizeof buf);
    assert_string_equal(buf, "f32[2x2x28x160x160]");
    assert_int_equal(sq_dtype_size(SQ_U8), 1);
    assert_int_equal(sq_dtype_size(SQ_F64), 8);
    assert_string_equal(sq_dtype_name(SQ_I16), "i16");
}

static void test_make_rejects_bad_shapes(void **state) {
    (void)state;
    sq_tdesc d;
    sq_status st;
    int64_t shape[6] = {1, 2, 3, 4, 5, 6};
    assert_int_equal(sq_tdesc_make(&d, SQ_F32, 6, shape, &st), SQ_ERR_RANGE);
    assert_non_null(strstr(st.msg, "rank 6"));
    assert_int_equal(sq_tdesc_make(&d, SQ_F32, 0, shape, &st), SQ_ERR_RANGE);
    int64_t zero[3] = {4, 0, 2};
    assert_int_equal(sq_tdesc_make(&d, SQ_F32, 3, zero, &st), SQ_ERR_RANGE);
    assert_non_null(strstr(st.msg, "extent 1 is 0"));
    assert_int_equal(sq_tdesc_make(&d, (sq_dtype)99, 3, shape, &st), SQ_ERR_RANGE);
}

static void test_parse_shape(void **state) {
    (void)state;
    int64_t s[5];
    int n = 0;
    sq_status st;
    assert_int_equal(sq_parse_shape("2x28x160x160", s, &n, &st), SQ_OK);
    assert_int_equal(n, 4);
    assert_int_equal(s[0], 2);
    assert_int_equal(s[3], 160);
    assert_int_equal(sq_parse_shape("40,56,40", s, &n, &st), SQ_OK);
    assert_int_equal(n, 3);
    const char *bad[] = {"", "2x", "x2", "2xx3", "2x-3", "2x0", "1x2x3x4x5x6", "2x3a", "abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sq_parse_shape(bad[i], s, &n, &st), SQ_ERR_USAGE);
        assert_true(strlen(st.msg) > 0);
    }
}

static void test_aligned_alloc(void **state) {
    (void)state;
    for (size_t n = 0; n < 300; n += 37) {
        unsigned char *p = sq_alloc(n);
        assert_non_null(p);
        assert_int_equal(((uintptr_t)p) % SQ_ALIGN, 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(p[i], 0);
        memset(p, 0xab, n);
        sq_free(p);
    }
    assert_int_equal(sq_round_up(0, 64), 0);
    assert_int_equal(sq_round_up(1, 64), 64);
    assert_int_equal(sq_round_up(64, 64), 64);
    assert_int_equal(sq_round_up(65, 16), 80);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_and_sizes),
        cmocka_unit_test(test_make_rejects_bad_shapes),
        cmocka_unit_test(test_parse_shape),
        cmocka_unit_test(test_aligned_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
