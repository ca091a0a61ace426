/* test_parity.c — the C network against the PyTorch reference (tests/parity/segqa_ref.py).
 *
 * For train mode (batch 4) and eval mode (batch 2) on a small isotropic shape (N x 2 x 16 x 24 x 16
 * at 1 mm): initialise
 * the C model, save a segqa checkpoint, run forward, loss and backward, then 3 Adam steps, and
 * write the input, the target and every C result into io.h5 (all in a temporary folder). The
 * reference then loads the checkpoint with h5py, recomputes everything in float64 and prints the
 * max difference of each tensor (output, loss, every parameter gradient, BN running statistics,
 * every parameter after 3 Adam steps), failing above the stated tolerances (relative to max(1,
 * max|ref|)): output/loss/buffers 1e-4, gradients 1e-3, parameters after Adam 1e-4.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/rng.h"
#include "model/model.h"
#include "nn/cpu/cpu_backend.h"
#include "nn/backend.h"
#include "optim/optim.h"
#include "train/checkpoint.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SEGQA_PYTHON
#define SEGQA_PYTHON "/usr/bin/python3"
#endif

#define OK(expr)                                                                                   \
    do {                                                                                           \
        sq_code rc_ = (expr);                                                                      \
        if (rc_ != SQ_OK) fprintf(stderr, "%s\n", st.msg);                                         \
        assert_int_equal(rc_, SQ_OK);                                                              \
    } while (0)

static void h5_write(hid_t loc, const char *name, int ndim, const hsize_t *dims,
                     const float *data) {
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp);
}

static void write_flat(hid_t f, const char *prefix, const sq_model *m, int state,
                       const float *flat) {
    int n = state ? sq_model_nstate(m) : sq_model_nparams(m);
    for (int i = 0; i < n; i++) {
        const sq_param_info *pi = state ? sq_model_state(m, i) : sq_model_param(m, i);
        char name[256];
        hsize_t dims[5];
        for (int a = 0; a < pi->ndim; a++)
            dims[a] = (hsize_t)pi->shape[a];
        snprintf(name, sizeof name, "c/%s/%s", prefix, pi->name);
        h5_write(f, name, pi->ndim, dims, flat + pi->off);
    }
}

static void attr_str(hid_t f, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v));
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, v);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

static void attr_num(hid_t f, const char *name, hid_t type, const void *v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, type, v);
    H5Aclose(a);
    H5Sclose(sp);
}

static void run_parity(int training) {
    sq_status st;
    sq_status_clear(&st);
    enum { ADAM_STEPS = 3 };
    const int N = training ? 4 : 2; /* train: BN batch statistics at 1x1x1 need > 2 values */
    const float lr = 0.002f;
    sq_model_config c = sq_model_config_default();
    c.depth = 16, c.height = 24, c.width = 16;
    c.spacing[0] = c.spacing[1] = c.spacing[2] = 1.0;
    c.depth_rule = SQ_DEPTH_ISOTROPIC;

    sq_backend *be = sq_backend_cpu_create(1, &st);
    if (!be) fprintf(stderr, "%s\n", st.msg);
    assert_non_null(be);
    sq_model *m = NULL;
    OK(sq_model_create(&c, be, &m, &st));
    OK(sq_model_init(m, 1234, &st));
    size_t np = sq_model_params_floats(m), ns = sq_model_state_floats(m);
    float *p = calloc(np, sizeof(float)), *s = calloc(ns, sizeof(float));
    float *g = calloc(np, sizeof(float));
    sq_rng r;
    sq_rng_init(&r, 99, 1, 0);
    /* make the fusion weights, PReLU and the running statistics non-trivial */
    OK(sq_model_get_params(m, p, &st));
    for (int i = 0; i < sq_model_nparams(m); i++) {
        const sq_param_info *pi = sq_model_param(m, i);
        int fuse = strlen(pi->name) > 2 && !strcmp(pi->name + strlen(pi->name) - 2, ".w");
        int bn = strstr(pi->name, "bn.") != NULL || strstr(pi->name, "_bn.") != NULL;
        for (int64_t j = 0; j < pi->numel; j++) {
            if (fuse) p[pi->off + j] = sq_rng_uniform_range(&r, 0.5f, 1.5f);
            if (bn) p[pi->off + j] += sq_rng_uniform_range(&r, -0.2f, 0.2f);
        }
    }
    OK(sq_model_set_params(m, p, &st));
    OK(sq_model_get_state(m, s, &st));
    for (int i = 0; i < sq_model_nstate(m); i++) {
        const sq_param_info *si = sq_model_state(m, i);
        int var = strstr(si->name, "running_var") != NULL;
        for (int64_t j = 0; j < si->numel; j++)
            s[si->off + j] =
                var ? sq_rng_uniform_range(&r, 0.5f, 2.0f) : sq_rng_uniform_range(&r, -0.3f, 0.3f);
    }
    OK(sq_model_set_state(m, s, &st));

    char dir[] = "/tmp/segqa_parity_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ckpt[256], io[256], cmd[1024];
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", dir);
    snprintf(io, sizeof io, "%s/io.h5", dir);
    sq_ckpt_info info;
    memset(&info, 0, sizeof info);
    OK(sq_checkpoint_save(ckpt, m, NULL, &info, &st));

    size_t nx = (size_t)N * c.in_channels * c.depth * c.height * c.width;
    float *x = malloc(nx * sizeof(float)), y[8], t[8], loss;
    for (size_t i = 0; i < nx; i++)
        x[i] = sq_rng_normal(&r);
    for (int i = 0; i < N; i++)
        t[i] = sq_rng_uniform(&r);

    OK(sq_model_plan(m, N, 1, &st));
    sq_model_set_training(m, training);
    OK(sq_model_forward(m, x, y, &st));
    OK(sq_model_loss(m, t, &loss, &st));
    OK(sq_model_backward(m, &st));
    OK(sq_model_get_grads(m, g, &st));
    OK(sq_model_get_state(m, s, &st));

    hid_t f = H5Fcreate(io, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    hsize_t dx[5] = {(hsize_t)N, (hsize_t)c.in_channels, (hsize_t)c.depth, (hsize_t)c.height,
                     (hsize_t)c.width};
    hsize_t dn[1] = {(hsize_t)N}, d1[1] = {1};
    h5_write(f, "input", 5, dx, x);
    h5_write(f, "target", 1, dn, t);
    h5_write(f, "c/output", 1, dn, y);
    h5_write(f, "c/loss", 1, d1, &loss);
    write_flat(f, "grad", m, 0, g);
    write_flat(f, "buf", m, 1, s);

    /* 3 Adam steps: the first uses the gradients above */
    sq_adam_config ac = sq_adam_config_default();
    sq_adam_opt *opt = NULL;
    OK(sq_adam_create(be, np, &ac, &opt, &st));
    OK(sq_adam_step(opt, sq_model_params_buf(m), sq_model_grads_buf(m), lr, &st));
    for (int k = 1; k < ADAM_STEPS; k++) {
        OK(sq_model_forward(m, x, NULL, &st));
        OK(sq_model_loss(m, t, NULL, &st));
        OK(sq_model_backward(m, &st));
        OK(sq_adam_step(opt, sq_model_params_buf(m), sq_model_grads_buf(m), lr, &st));
    }
    OK(sq_model_get_params(m, p, &st));
    write_flat(f, "adam", m, 0, p);
    attr_str(f, "mode", training ? "train" : "eval");
    double lrd = lr;
    int steps = ADAM_STEPS;
    attr_num(f, "lr", H5T_NATIVE_DOUBLE, &lrd);
    attr_num(f, "adam_steps", H5T_NATIVE_INT, &steps);
    H5Fclose(f);

    const char *src = getenv("SEGQA_SOURCE_DIR");
    snprintf(cmd, sizeof cmd, "%s %s/tests/parity/segqa_ref.py parity %s %s", SEGQA_PYTHON,
             src ? src : ".", ckpt, io);
    fflush(stdout);
    int rc = system(cmd);
    if (!getenv("SEGQA_KEEP_TMP")) {
        unlink(ckpt);
        unlink(io);
        rmdir(dir);
    } else {
        printf("kept %s\n", dir);
    }
    sq_adam_destroy(opt);
    sq_model_destroy(m);
    be->destroy(be);
    free(p);
    free(s);
    free(g);
    free(x);
    assert_int_equal(rc, 0);
}

static void test_parity_train(void **state) {
    (void)state;
    run_parity(1);
}

static void test_parity_eval(void **state) {
    (void)state;
    run_parity(0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_train),
        cmocka_unit_test(test_parity_eval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
