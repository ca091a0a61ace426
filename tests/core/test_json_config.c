/* test_json_config.c — JSON files and `--config FILE.json` option tables, including bad input:
 * a missing file, malformed JSON, a wrong type for a key, an unknown key, out-of-range values.
 * Each must be one clear error naming the file and the key, never a crash. */
#include "../tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[256];

static int setup(void **state) {
    (void)state;
    return sq_test_mkdtemp(g_dir, sizeof g_dir, "json");
}

static int teardown(void **state) {
    (void)state;
    return sq_test_rmtree(g_dir);
}

static const char *write_tmp(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* A command's option table, as src/cli declares one. */
typedef struct {
    long long epochs;
    double lr;
    int sync_bn;
    char out[64];
    char preset[16];
    sq_option opts[5];
} fixture;

static void fixture_init(fixture *f) {
    memset(f, 0, sizeof *f);
    f->epochs = 200;
    f->lr = 0.002;
    strcpy(f->out, "runs/x");
    strcpy(f->preset, "paper");
    sq_option o[5] = {
        {"epochs", 'e', SQ_OPT_INT, &f->epochs, 0, "N", "epochs", NULL, 1, 100000},
        {"lr", 0, SQ_OPT_DOUBLE, &f->lr, 0, "X", "learning rate", NULL, 0, 0},
        {"sync-bn", 0, SQ_OPT_FLAG, &f->sync_bn, 0, NULL, "synchronised BN", NULL, 0, 0},
        {"out", 'o', SQ_OPT_STRING, f->out, sizeof f->out, "DIR", "run folder", NULL, 0, 0},
        {"augment", 0, SQ_OPT_CHOICE, f->preset, sizeof f->preset, "P", "preset",
         "paper|robust|none", 0, 0},
    };
    memcpy(f->opts, o, sizeof o);
}

static void test_valid_config_applies_every_type(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f);
    sq_status st;
    sq_status_clear(&st);
    const char *p = write_tmp("ok.json", "{\"epochs\": 12, \"lr\": 1e-3, \"sync-bn\": true,\n"
                                         " \"out\": \"runs/cv\", \"augment\": \"robust\"}\n");
    assert_int_equal(sq_options_apply_file(f.opts, 5, p, &st), SQ_OK);
    assert_int_equal(f.epochs, 12);
    assert_true(f.lr == 1e-3);
    assert_int_equal(f.sync_bn, 1);
    assert_string_equal(f.out, "runs/cv");
    assert_string_equal(f.preset, "robust");
    /* The command line overrides afterwards. */
    assert_int_equal(sq_option_set_text(&f.opts[0], "7", "--epochs", &st), SQ_OK);
    assert_int_equal(f.epochs, 7);
    /* And the resolved values serialise back, round trip through a file. */
    cJSON *j = sq_options_to_json(f.opts, 5);
    char out[512];
    snprintf(out, sizeof out, "%s/resolved.json", g_dir);
    assert_int_equal(sq_json_write_file(out, j, &st), SQ_OK);
    cJSON_Delete(j);
    fixture g;
    fixture_init(&g);
    assert_int_equal(sq_options_apply_file(g.opts, 5, out, &st), SQ_OK);
    assert_int_equal(g.epochs, 7);
    assert_string_equal(g.preset, "robust");
    assert_int_equal(g.sync_bn, 1);
}

static void expect_error(const char *name, const char *text, const char *needle1,
                         const char *needle2) {
    fixture f;
    fixture_init(&f);
    sq_status st;
    sq_status_clear(&st);
    const char *p = text ? write_tmp(name, text) : name;
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    sq_code rc = sq_options_apply_file(f.opts, 5, path, &st);
    assert_int_equal(rc, SQ_ERR_USAGE);
    assert_int_equal(st.code, SQ_ERR_USAGE);
    if (!strstr(st.msg, needle1) || (needle2 && !strstr(st.msg, needle2)))
        fail_msg("message '%s' lacks '%s' / '%s'", st.msg, needle1, needle2 ? needle2 : "");
    assert_non_null(strstr(st.msg, path)); /* always names the file */
    assert_null(strchr(st.msg, '\n'));     /* one line */
}

static void test_missing_file(void **state) {
    (void)state;
    expect_error("/nonexistent/segqa/config.json", NULL, "cannot open", "No such file");
}

static void test_malformed_json_gives_line_and_column(void **state) {
    (void)state;
    expect_error("bad.json", "{\n  \"epochs\": 12,\n  \"lr\": ,\n}\n",
                 "bad.json:3:", "malformed JSON");
    expect_error("trunc.json", "{\"epochs\": 12", "malformed JSON", NULL);
    expect_error("empty.json", "", "malformed JSON", NULL);
    expect_error("trailing.json", "{\"epochs\": 1} extra", "malformed JSON", NULL);
}

static void test_wrong_types(void **state) {
    (void)state;
    expect_error("t1.json", "{\"epochs\": \"12\"}", "key 'epochs' must be an integer",
                 "found string");
    expect_error("t2.json", "{\"epochs\": 1.5}", "key 'epochs' must be an integer", "1.5");
    expect_error("t3.json", "{\"lr\": [1]}", "key 'lr' must be a number", "found array");
    expect_error("t4.json", "{\"sync-bn\": 1}", "key 'sync-bn' must be true or false", "number");
    expect_error("t5.json", "{\"out\": null}", "key 'out' must be a string", "found null");
    expect_error("t6.json", "[1, 2]", "expected a JSON object", "array");
}

static void test_unknown_key_suggests(void **state) {
    (void)state;
    expect_error("u1.json", "{\"epoch\": 3}", "unknown key 'epoch'", "did you mean 'epochs'");
    expect_error("u2.json", "{\"completely-different\": 3}", "unknown key 'completely-different'",
                 NULL);
}

static void test_bounds_and_choices(void **state) {
    (void)state;
    expect_error("b1.json", "{\"epochs\": 0}", "out of range", "1..100000");
    expect_error("b2.json", "{\"augment\": \"wild\"}", "'wild' is not one of", "paper|robust|none");
    char longv[200];
    memset(longv, 'a', 150);
    longv[150] = 0;
    char text[300];
    snprintf(text, sizeof text, "{\"out\": \"%s\"}", longv);
    expect_error("b3.json", text, "longer than 63", NULL);
}

static void test_set_text_errors(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f);
    sq_status st;
    assert_int_equal(sq_option_set_text(&f.opts[0], "12x", "--epochs", &st), SQ_ERR_USAGE);
    assert_non_null(strstr(st.msg, "--epochs: expected an integer, got '12x'"));
    assert_int_equal(sq_option_set_text(&f.opts[1], "fast", "--lr", &st), SQ_ERR_USAGE);
    assert_int_equal(sq_option_set_text(&f.opts[1], "nan", "--lr", &st), SQ_ERR_USAGE);
    assert_int_equal(sq_option_set_text(&f.opts[2], "maybe", "--sync-bn", &st), SQ_ERR_USAGE);
    assert_int_equal(sq_option_set_text(&f.opts[2], NULL, "--sync-bn", &st), SQ_OK);
    assert_int_equal(f.sync_bn, 1);
    assert_int_equal(sq_option_set_text(&f.opts[0], "", "--epochs", &st), SQ_ERR_USAGE);
}

static void test_typed_getters(void **state) {
    (void)state;
    cJSON *j = NULL;
    sq_status st;
    assert_int_equal(
        sq_json_parse("{\"a\": 3, \"b\": \"x\", \"c\": true, \"d\": 2.5}", "<t>", &j, &st), SQ_OK);
    long long i = 0;
    double d = 0;
    int b = 0;
    const char *s = NULL;
    assert_int_equal(sq_json_get_int(j, "a", &i, 0, "<t>", &st), SQ_OK);
    assert_int_equal(i, 3);
    assert_int_equal(sq_json_get_string(j, "b", &s, 0, "<t>", &st), SQ_OK);
    assert_string_equal(s, "x");
    assert_int_equal(sq_json_get_bool(j, "c", &b, 0, "<t>", &st), SQ_OK);
    assert_int_equal(b, 1);
    assert_int_equal(sq_json_get_number(j, "d", &d, 0, "<t>", &st), SQ_OK);
    assert_true(d == 2.5);
    assert_int_equal(sq_json_get_int(j, "d", &i, 0, "<t>", &st), SQ_ERR_FORMAT);
    assert_int_equal(sq_json_get_int(j, "zz", &i, 0, "<t>", &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "missing key 'zz'"));
    i = 77;
    assert_int_equal(sq_json_get_int(j, "zz", &i, 1, "<t>", &st), SQ_OK);
    assert_int_equal(i, 77);
    assert_int_equal(sq_json_get_string(j, "a", &s, 0, "<t>", &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "key 'a' must be a string, found number"));
    cJSON_Delete(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_config_applies_every_type),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_malformed_json_gives_line_and_column),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_unknown_key_suggests),
        cmocka_unit_test(test_bounds_and_choices),
        cmocka_unit_test(test_set_text_errors),
        cmocka_unit_test(test_typed_getters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
