/* test_model_registry.c — the C parameter registry equals the PyTorch reference's state_dict.
 *
 * For the paper config (anisotropic) and a small isotropic one, builds the registry (no backend),
 * runs tests/parity/segqa_ref.py names --flops on the same config, and checks: the same names in
 * the same order with the same shapes (parameters and BN buffers), the same stride plan, the same
 * FLOP count; every view 64-byte aligned and disjoint; the paper shape costs about 3.1 GFLOP.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SEGQA_PYTHON
#define SEGQA_PYTHON "/usr/bin/python3"
#endif

static char *run_capture(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (cap - n < 4096) buf = realloc(buf, cap *= 2);
    }
    int rc = pclose(p);
    if (!buf || rc != 0) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

static cJSON *reference_names(const sq_model_config *c) {
    char dir[] = "/tmp/segqa_reg_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cfgpath[256], cmd[1024];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
    cJSON *j = sq_model_config_to_json(c);
    char *txt = cJSON_Print(j);
    FILE *f = fopen(cfgpath, "w");
    assert_non_null(f);
    fputs(txt, f);
    fclose(f);
    free(txt);
    cJSON_Delete(j);
    const char *src = getenv("SEGQA_SOURCE_DIR");
    snprintf(cmd, sizeof cmd, "%s %s/tests/parity/segqa_ref.py names --flops %s", SEGQA_PYTHON,
             src ? src : ".", cfgpath);
    char *out = run_capture(cmd);
    unlink(cfgpath);
    rmdir(dir);
    assert_non_null(out);
    cJSON *r = cJSON_Parse(out);
    free(out);
    assert_non_null(r);
    return r;
}

static void check_list(const sq_model *m, int kind, const cJSON *list) {
    int n = kind ? sq_model_nstate(m) : sq_model_nparams(m);
    int nref = cJSON_GetArraySize(list);
    int bad = 0;
    for (int i = 0; i < n || i < nref; i++) {
        const sq_param_info *pi =
            i < n ? (kind ? sq_model_state(m, i) : sq_model_param(m, i)) : NULL;
        const cJSON *e = i < nref ? cJSON_GetArrayItem(list, i) : NULL;
        const char *rname = e ? cJSON_GetArrayItem(e, 0)->valuestring : "(none)";
        const cJSON *rshape = e ? cJSON_GetArrayItem(e, 1) : NULL;
        int same = pi && e && !strcmp(pi->name, rname) && cJSON_GetArraySize(rshape) == pi->ndim;
        for (int a = 0; same && a < pi->ndim; a++)
            same = cJSON_GetArrayItem(rshape, a)->valueint == pi->shape[a];
        if (!same && bad++ < 10)
            fprintf(stderr, "%s %d: C '%s' vs PyTorch '%s'\n", kind ? "buffer" : "param", i,
                    pi ? pi->name : "(none)", rname);
    }
    assert_int_equal(bad, 0);
    assert_int_equal(n, nref);
}

static void check_config(const sq_model_config *c, double expect_gflop) {
    sq_status st;
    sq_status_clear(&st);
    sq_model *m = NULL;
    assert_int_equal(sq_model_create(c, NULL, &m, &st), SQ_OK);
    cJSON *ref = reference_names(c);
    check_list(m, 0, cJSON_GetObjectItem(ref, "params"));
    check_list(m, 1, cJSON_GetObjectItem(ref, "buffers"));
    /* alignment and order of the flat views */
    size_t end = 0;
    for (int i = 0; i < sq_model_nparams(m); i++) {
        const sq_param_info *pi = sq_model_param(m, i);
        assert_int_equal(pi->off % 16, 0);
        assert_true(pi->off >= end);
        end = pi->off + (size_t)pi->numel;
    }
    assert_true(end <= sq_model_params_floats(m));
    /* stride plan */
    int dhw[3] = {c->depth, c->height, c->width}, s[SQ_MODEL_STEPS][3], z[SQ_MODEL_STEPS][3];
    sq_model_stride_plan(c, dhw, s, z);
    const cJSON *plan = cJSON_GetObjectItem(ref, "plan");
    assert_int_equal(cJSON_GetArraySize(plan), SQ_MODEL_STEPS);
    for (int i = 0; i < SQ_MODEL_STEPS; i++)
        for (int a = 0; a < 3; a++) {
            const cJSON *step = cJSON_GetArrayItem(plan, i);
            assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(step, 0), a)->valueint, s[i][a]);
            assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(step, 1), a)->valueint, z[i][a]);
        }
    int64_t flops = 0;
    assert_int_equal(sq_model_flops(c, &flops, &st), SQ_OK);
    double ref_flops = cJSON_GetObjectItem(ref, "flops")->valuedouble;
    printf("config %dx%dx%d %s: %d params (%lld scalars), %d buffers, %.3f GFLOP/sample (PyTorch "
           "%.3f)\n",
           c->depth, c->height, c->width, sq_depth_rule_name(c->depth_rule), sq_model_nparams(m),
           (long long)sq_model_param_count(m), sq_model_nstate(m), flops / 1e9, ref_flops / 1e9);
    assert_true((double)flops == ref_flops);
    if (expect_gflop > 0)
        assert_true(flops / 1e9 > expect_gflop * 0.95 && flops / 1e9 < expect_gflop * 1.05);
    cJSON_Delete(ref);
    sq_model_destroy(m);
}

static void test_paper_anisotropic(void **state) {
    (void)state;
    sq_model_config c = sq_model_config_default();
    check_config(&c, 3.1);
    /* the anisotropic plan keeps the 28 slices for the first two steps */
    int dhw[3] = {28, 160, 160}, s[SQ_MODEL_STEPS][3], z[SQ_MODEL_STEPS][3];
    sq_model_stride_plan(&c, dhw, s, z);
    assert_int_equal(s[0][0], 1);
    assert_int_equal(s[1][0], 1);
    assert_int_equal(s[2][0], 2);
    assert_int_equal(z[6][0], 1);
    assert_int_equal(z[6][1], 2);
}

static void test_small_isotropic(void **state) {
    (void)state;
    sq_model_config c = sq_model_config_default();
    c.depth = 40, c.height = 56, c.width = 40;
    c.spacing[0] = c.spacing[1] = c.spacing[2] = 1.0;
    c.depth_rule = SQ_DEPTH_ISOTROPIC;
    check_config(&c, 0);
}

static void test_config_json_roundtrip(void **state) {
    (void)state;
    sq_status st;
    sq_status_clear(&st);
    sq_model_config c = sq_model_config_default(), d = sq_model_config_default();
    c.depth = 16, c.depth_rule = SQ_DEPTH_ISOTROPIC, c.spacing[1] = 0.7;
    cJSON *j = sq_model_config_to_json(&c);
    assert_int_equal(sq_model_config_from_json(j, &d, "test", &st), SQ_OK);
    assert_int_equal(memcmp(&c, &d, sizeof c), 0);
    cJSON_AddNumberToObject(j, "bogus", 1);
    assert_int_not_equal(sq_model_config_from_json(j, &d, "test", &st), SQ_OK);
    assert_non_null(strstr(st.msg, "bogus"));
    cJSON_Delete(j);
    c.fpn_channels = 0;
    assert_int_equal(sq_model_config_check(&c, &st), SQ_ERR_RANGE);
    assert_non_null(strstr(st.msg, "fpn_channels"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paper_anisotropic),
        cmocka_unit_test(test_small_isotropic),
        cmocka_unit_test(test_config_json_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
