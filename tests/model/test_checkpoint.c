/* test_checkpoint.c — HDF5 checkpoints: round trip of every tensor, the Adam state, step, epoch,
 * RNG state and configs; no temporary file left behind; loading into a model of another config or
 * from a file with a missing, extra or reshaped tensor fails with a message naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/rng.h"
#include "model/model.h"
#include "nn/cpu/cpu_backend.h"
#include "optim/optim.h"
#include "train/checkpoint.h"

#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OK(expr)                                                                                   \
    do {                                                                                           \
        sq_code rc_ = (expr);                                                                      \
        if (rc_ != SQ_OK) fprintf(stderr, "%s\n", st.msg);                                         \
        assert_int_equal(rc_, SQ_OK);                                                              \
    } while (0)

static sq_model_config small(void) {
    sq_model_config c = sq_model_config_default();
    c.depth = 8, c.height = 8, c.width = 8;
    c.spacing[0] = c.spacing[1] = c.spacing[2] = 1.0;
    c.depth_rule = SQ_DEPTH_ISOTROPIC;
    return c;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void test_roundtrip_and_mismatch(void **state) {
    (void)state;
    sq_status st;
    sq_status_clear(&st);
    sq_backend *be = sq_backend_cpu_create(1, &st);
    assert_non_null(be);
    sq_model_config c = small();
    sq_model *a, *b;
    OK(sq_model_create(&c, be, &a, &st));
    OK(sq_model_create(&c, be, &b, &st));
    OK(sq_model_init(a, 1, &st));
    OK(sq_model_init(b, 2, &st));
    size_t np = sq_model_params_floats(a), ns = sq_model_state_floats(a);
    float *pa = malloc(np * 4), *pb = malloc(np * 4), *m = malloc(np * 4), *v = malloc(np * 4);
    float *sa = malloc(ns * 4), *sb = malloc(ns * 4);
    for (size_t i = 0; i < np; i++)
        m[i] = (float)i, v[i] = (float)(2 * i);
    for (size_t i = 0; i < ns; i++)
        sa[i] = (float)i * 0.5f;
    OK(sq_model_set_state(a, sa, &st));
    sq_adam_config ac = sq_adam_config_default();
    sq_adam_opt *oa, *ob;
    OK(sq_adam_create(be, np, &ac, &oa, &st));
    OK(sq_adam_create(be, np, &ac, &ob, &st));
    OK(sq_adam_set_state(oa, m, v, 17, &st));

    char dir[] = "/tmp/segqa_ckpt_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/ckpt.h5", dir);
    sq_ckpt_info info, got;
    memset(&info, 0, sizeof info);
    info.step = 1234;
    info.epoch = 7;
    snprintf(info.preproc_config, sizeof info.preproc_config, "{\"crop\":[28,160,160]}");
    info.has_rng = 1;
    sq_rng_init(&info.rng, 77, 3, 4);
    (void)sq_rng_normal(&info.rng);
    OK(sq_checkpoint_save(path, a, oa, &info, &st));
    assert_int_equal(count_files(dir), 1); /* the temporary was renamed */

    sq_model_config rc;
    OK(sq_checkpoint_read_config(path, &rc, &st));
    cJSON *ja = sq_model_config_to_json(&rc), *jb = sq_model_config_to_json(&c);
    assert_true(cJSON_Compare(ja, jb, 1));
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    OK(sq_checkpoint_load(path, b, ob, &got, &st));
    OK(sq_model_get_params(a, pa, &st));
    OK(sq_model_get_params(b, pb, &st));
    assert_int_equal(memcmp(pa, pb, np * 4), 0);
    OK(sq_model_get_state(b, sb, &st));
    for (int i = 0; i < sq_model_nstate(a); i++) { /* padding is not stored: compare the views */
        const sq_param_info *si = sq_model_state(a, i);
        assert_int_equal(memcmp(sa + si->off, sb + si->off, (size_t)si->numel * 4), 0);
    }
    long step;
    float *m2 = malloc(np * 4), *v2 = malloc(np * 4);
    OK(sq_adam_get_state(ob, m2, v2, &step, &st));
    assert_int_equal(step, 17);
    for (int i = 0; i < sq_model_nparams(a); i++) { /* padding is not stored: compare the views */
        const sq_param_info *pi = sq_model_param(a, i);
        assert_int_equal(memcmp(m + pi->off, m2 + pi->off, (size_t)pi->numel * 4), 0);
        assert_int_equal(memcmp(v + pi->off, v2 + pi->off, (size_t)pi->numel * 4), 0);
    }
    assert_int_equal(got.step, 1234);
    assert_int_equal(got.epoch, 7);
    assert_string_equal(got.preproc_config, info.preproc_config);
    assert_true(got.has_rng);
    assert_int_equal(memcmp(&got.rng, &info.rng, sizeof got.rng), 0);

    /* another config: says which field */
    sq_model_config c2 = c;
    c2.fpn_channels = 32;
    sq_model *w;
    OK(sq_model_create(&c2, be, &w, &st));
    assert_int_equal(sq_checkpoint_load(path, w, NULL, NULL, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "fpn_channels"));
    sq_model_destroy(w);

    /* a missing tensor, a reshaped one and an extra one: each named */
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Ldelete(f, "params/head.conv.bias", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    assert_int_equal(sq_checkpoint_load(path, b, NULL, NULL, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "head.conv.bias"));
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t d2[1] = {2};
    float two[2] = {0, 0};
    hid_t sp = H5Screate_simple(1, d2, NULL);
    hid_t ds = H5Dcreate2(f, "params/head.conv.bias", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, two);
    H5Dclose(ds);
    H5Fclose(f);
    assert_int_equal(sq_checkpoint_load(path, b, NULL, NULL, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "head.conv.bias"));
    assert_non_null(strstr(st.msg, "shape 2"));
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "params/head.conv.bias", H5P_DEFAULT);
    hsize_t d1[1] = {1};
    hid_t sp1 = H5Screate_simple(1, d1, NULL);
    ds = H5Dcreate2(f, "params/head.conv.bias", H5T_IEEE_F32LE, sp1, H5P_DEFAULT, H5P_DEFAULT,
                    H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, two);
    H5Dclose(ds);
    ds = H5Dcreate2(f, "params/head.extra", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                    H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, two);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Sclose(sp1);
    H5Fclose(f);
    assert_int_equal(sq_checkpoint_load(path, b, NULL, NULL, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "head.extra"));
    /* not a checkpoint at all */
    FILE *t = fopen(path, "w");
    fputs("nope", t);
    fclose(t);
    assert_int_equal(sq_checkpoint_load(path, b, NULL, NULL, &st), SQ_ERR_IO);
    unlink(path);
    rmdir(dir);
    free(pa), free(pb), free(m), free(v), free(m2), free(v2), free(sa), free(sb);
    sq_adam_destroy(oa);
    sq_adam_destroy(ob);
    sq_model_destroy(a);
    sq_model_destroy(b);
    be->destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
