/* test_nn_backend.c — the backend conformance suite of src/nn/backend.h, in the manner of ggml's
 * test-backend-ops: one table of (op, shape, parameters) cases (nb_cases.c) covering every op
 * forward and backward, run on the backend named on the command line:
 *
 *   test_nn_backend cpu|cuda [--small] [--filter SUBSTR] [--cross]
 *
 *  cpu    each op against float64 references written in the tests (nb_ref.c) and, on small
 *         cases, central finite differences; large (paper-shape) convolutions are checked at
 *         sampled points (see nb_conv.c); plus the CPU-only checks (ISA paths, oneDNN).
 *  cuda   each op against the CPU backend on identical inputs (both created through the
 *         registry, TF32 off). Exits 77 (ctest: SKIPPED) where this build has no CUDA or no GPU
 *         is usable. Tolerances, strict FP32, |cuda - cpu| <= atol + rtol|cpu| + mrel max|cpu|:
 *           conv3d, dwconv3d y, dx, dw, db                        mrel 1e-4 (summation order)
 *           act, prelu y/dx, gap dx, chscale y/dx, fuse y/dxs,
 *             add, axpy, scale, mse dpred, adam params/m/v      rtol 1e-6 + mrel 1e-6
 *           bn everything, gap y, prelu dalpha, chscale dscale,
 *             fuse dw, mse loss, maxpool dx, resize dx          rtol 1e-5 + mrel 1e-5
 *             (bn y also atol 2e-6 g, dgamma/dbeta 2e-6 g sqrt(M): see nb_norm.c)
 *           maxpool y, resize y                                 bit-exact (copies)
 *           sumsq                                               rtol 1e-6 (double accumulation)
 *         The reasoning per op is at the top of each driver file (nb_conv.c, nb_norm.c,
 *         nb_elem.c, nb_spatial.c), next to the float64-mode tolerances.
 *  --small   only the small cases (compute-sanitizer runs);
 *  --filter  only cases whose "op label" contains SUBSTR (e.g. "dwconv3d", "k5", "sync");
 *  --cross   cpu against a second CPU backend through the cuda mode's comparison path.
 *
 * All data reaches a backend through upload/download only (never buf_host), in tensors with
 * guard zones; outputs that the contract says are overwritten start as NaN, accumulated
 * gradients start at 0.5. Every check prints one line (op, direction, case, tensor, max|diff|,
 * worst ratio to the tolerance, the tolerance, PASS/FAIL); a summary per op and direction
 * follows. Controls (nb_control.c) show that the checks can fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nb.h"

#include "nn/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SKIP_CODE 77

/* One cmocka test per op of the table: runs its cases, fails if any check failed. */
#define OP_TEST(fn, op)                                                                            \
    static void fn(void **state) {                                                                 \
        (void)state;                                                                               \
        const long f0 = nb.fails;                                                                  \
        nb_run_op(op);                                                                             \
        assert_int_equal(nb.fails - f0, 0);                                                        \
    }

OP_TEST(t_conv3d, NB_CONV3D)
OP_TEST(t_dwconv3d, NB_DWCONV3D)
OP_TEST(t_bn, NB_BN)
OP_TEST(t_act, NB_ACT)
OP_TEST(t_prelu, NB_PRELU)
OP_TEST(t_gap, NB_GAP)
OP_TEST(t_chscale, NB_CHSCALE)
OP_TEST(t_maxpool, NB_MAXPOOL)
OP_TEST(t_resize, NB_RESIZE)
OP_TEST(t_fuse, NB_FUSE)
OP_TEST(t_add, NB_ADD)
OP_TEST(t_axpy, NB_AXPY)
OP_TEST(t_scale, NB_SCALE)
OP_TEST(t_sumsq, NB_SUMSQ)
OP_TEST(t_mse, NB_MSE)
OP_TEST(t_adam, NB_ADAM)

typedef struct args {
    const char *backend;
    int small, cross;
    const char *filter;
} args;

static int usage(const char *prog) {
    fprintf(stderr, "usage: %s cpu|cuda [--small] [--filter SUBSTR] [--cross]\n", prog);
    return 2;
}

static int parse(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--small"))
            a->small = 1;
        else if (!strcmp(argv[i], "--cross"))
            a->cross = 1;
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            a->filter = argv[++i];
        else if (!a->backend && (!strcmp(argv[i], "cpu") || !strcmp(argv[i], "cuda")))
            a->backend = argv[i];
        else
            return 0;
    }
    return a->backend != NULL;
}

/* The CPU backend with 2 threads (the tests' machine) or OpenMP's default (oracle under cuda). */
static sq_backend *create(const char *name, int threads) {
    sq_backend_opts o = sq_backend_opts_default();
    o.threads = threads;
    o.allow_tf32 = 0; /* strict FP32 */
    char chosen[256] = "";
    sq_status st;
    sq_status_clear(&st);
    sq_backend *be = sq_backend_create(name, &o, chosen, sizeof chosen, &st);
    if (!be) fprintf(stderr, "test_nn_backend: %s: %s\n", name, st.msg);
    return be;
}

static int run_suite(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nb_test_memory),
        cmocka_unit_test(nb_test_pure_rules),
        cmocka_unit_test(nb_test_bad_shapes),
        cmocka_unit_test(t_conv3d),
        cmocka_unit_test(t_dwconv3d),
        cmocka_unit_test(t_bn),
        cmocka_unit_test(t_act),
        cmocka_unit_test(t_prelu),
        cmocka_unit_test(t_gap),
        cmocka_unit_test(t_chscale),
        cmocka_unit_test(t_maxpool),
        cmocka_unit_test(t_resize),
        cmocka_unit_test(t_fuse),
        cmocka_unit_test(t_add),
        cmocka_unit_test(t_axpy),
        cmocka_unit_test(t_scale),
        cmocka_unit_test(t_sumsq),
        cmocka_unit_test(t_mse),
        cmocka_unit_test(t_adam),
        cmocka_unit_test(nb_test_cpu_isa),
        cmocka_unit_test(nb_test_cpu_onednn_grouped),
        cmocka_unit_test(nb_test_cpu_primitive_cache),
        cmocka_unit_test(nb_test_cuda_plan_cache),
        cmocka_unit_test(nb_test_control),
    };
    return cmocka_run_group_tests_name("test_nn_backend", tests, NULL, NULL);
}

int main(int argc, char **argv) {
    args a;
    if (!parse(argc, argv, &a)) return usage(argv[0]);
    const int cuda = !strcmp(a.backend, "cuda");
    if (cuda) {
        char why[256] = "";
        if (!sq_backend_cuda_usable(why, sizeof why)) {
            printf("test_nn_backend cuda: SKIPPED: %s\n", why);
            return SKIP_CODE;
        }
    }
    nb.be = create(a.backend, cuda ? 0 : 2);
    if (!nb.be) return 1;
    if (cuda || a.cross) nb.ref = create("cpu", cuda ? 0 : 2);
    if ((cuda || a.cross) && !nb.ref) return 1;
    nb.small_only = a.small;
    nb.filter = a.filter;
    printf("backend under test: %s\noracle: %s%s%s\n", nb.be->description,
           nb.ref ? nb.ref->description : "float64 references and finite differences",
           a.small ? "\n--small: large (paper-shape) cases skipped" : "",
           a.filter ? "\n--filter given: only matching cases" : "");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int failed = run_suite();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    nb_summary();
    printf("wall time %.1f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    if (nb.ref) nb.ref->destroy(nb.ref);
    nb.be->destroy(nb.be);
    return failed ? 1 : 0;
}
