/* nb.h — the harness of the backend conformance suite (test_nn_backend): the environment
 * (backend under test and its oracle), the case table's types, device tensors that travel only
 * through upload/download with guard zones around them, checkers that print one report line per
 * checked tensor and feed the per-op summary, central finite differences and deterministic
 * inputs. The op drivers (nb_conv.c, nb_norm.c, nb_elem.c, nb_spatial.c) use nothing else.
 */
#ifndef SEGQA_TESTS_NN_NB_H
#define SEGQA_TESTS_NN_NB_H

#include "nn/backend.h"

#include <stddef.h>
#include <stdint.h>

/* ---- environment ------------------------------------------------------------------------- */

typedef struct nb_env {
    sq_backend *be;     /* the backend under test */
    sq_backend *ref;    /* oracle backend (cuda mode: the CPU backend); NULL: float64 references */
    int small_only;     /* --small: large (real-shape) cases are skipped */
    const char *filter; /* --filter: only cases whose "op label" contains this */
    const char *tag;    /* appended to case labels (e.g. "isa portable"), or NULL */
    int quiet;          /* control sweeps: no report lines, no summary entries */
    int perturb;        /* control: every tensor downloaded from `be` is perturbed */
    long checks, fails; /* checks run and failed so far */
} nb_env;

extern nb_env nb;

/* ---- the case table ------------------------------------------------------------------------ */

typedef enum nb_op {
    NB_CONV3D,
    NB_DWCONV3D,
    NB_BN,
    NB_ACT,
    NB_PRELU,
    NB_GAP,
    NB_CHSCALE,
    NB_MAXPOOL,
    NB_RESIZE,
    NB_FUSE,
    NB_ADD,
    NB_AXPY,
    NB_SCALE,
    NB_SUMSQ,
    NB_MSE,
    NB_ADAM,
    NB_OP_COUNT
} nb_op;

typedef struct nb_conv_case {
    int n, c, d, h, w, cout;
    int k[3], s[3], p[3];
    int bias;
} nb_conv_case;

typedef struct nb_bn_case {
    sq_shape5 s;
    sq_act act;
    int residual; /* fused residual add */
    int training;
    int running;  /* training: 1 = running stats updated, 0 = none views (no update) */
    int sync;     /* synchronised statistics through a callback that doubles the sums (2 ranks) */
    float offset; /* added to every input value (a large one: one-pass statistics must not
                     cancel) */
} nb_bn_case;

typedef struct nb_vec_case {
    int64_t n;
    sq_act act;  /* act */
    int alias;   /* add: 0 y new, 1 y == a, 2 y == b; scale/act: 1 in place */
    float alpha; /* axpy, scale; mse_bwd: the loss scale */
    int steps;   /* adam */
    float wd;    /* adam weight decay */
} nb_vec_case;

typedef struct nb_fuse_case {
    sq_shape5 s;
    int k;
    float w[8];
} nb_fuse_case;

typedef struct nb_case {
    nb_op op;
    int large;        /* a real (paper-shape) case; skipped by --small */
    const char *note; /* where the shape comes from, or what edge it probes */
    union {
        nb_conv_case conv; /* conv3d, dwconv3d */
        nb_bn_case bn;     /* bn */
        nb_vec_case vec;   /* act, add, axpy, scale, sumsq, mse, adam */
        sq_shape5 shape;   /* prelu, gap, chscale */
        struct {           /* maxpool */
            sq_pool3d p;
            int ties;
        } pool;
        sq_resize3d rs;    /* resize */
        nb_fuse_case fuse; /* fuse */
    } u;
} nb_case;

extern const nb_case nb_cases[];
extern const size_t nb_ncases;
const char *nb_op_name(nb_op op);

/* Runs one case (all its directions) through its op's driver. */
void nb_run_case(const nb_case *c);
/* Runs every table case of `op` (respecting --small and --filter). */
void nb_run_op(nb_op op);

/* Op drivers (one per op family). */
void nb_conv_run(const nb_case *c); /* conv3d, dwconv3d */
void nb_bn_run(const nb_case *c);   /* bn */
void nb_elem_run(
    const nb_case *c); /* act, prelu, gap, chscale, add, axpy, scale, sumsq, mse, adam */
void nb_spatial_run(const nb_case *c); /* maxpool, resize, fuse */

/* Contract checks outside the table (nb_memory.c), controls (nb_control.c) and the CPU-only part
 * (nb_cpu_only.c), as cmocka tests. */
void nb_test_memory(void **state);
void nb_test_bad_shapes(void **state);
void nb_test_pure_rules(void **state);
void nb_test_control(void **state);
void nb_test_cpu_isa(void **state);
void nb_test_cpu_onednn_grouped(void **state);
void nb_test_cpu_primitive_cache(void **state);
void nb_test_cuda_plan_cache(void **state);

/* ---- case bookkeeping and report --------------------------------------------------------- */

/* Starts a case of `op`: builds its label from fmt, returns 0 (skip it) where --small or
 * --filter excludes it. Every report line until the next begin carries this label. */
int nb_begin(const char *op, int large, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sets the label of the report lines that follow without starting (or counting) a case. */
void nb_label(const char *op, const char *label);

/* |got - ref| <= atol + rtol * |ref| + mrel * max|ref| per element. */
typedef struct nb_tol {
    double atol, rtol, mrel;
} nb_tol;

/* Compares n values of got with a float64 reference (ref[k] belongs to got[idx[k]], or to
 * got[k] where idx is NULL), prints one line and records it; returns the worst ratio
 * |diff| / bound (<= 1: PASS; NaN counts as FAIL). */
double nb_check(const char *dir, const char *name, const float *got, const double *ref,
                const size_t *idx, size_t n, nb_tol tol);
/* The same against float values from the oracle backend. */
double nb_check_f(const char *dir, const char *name, const float *got, const float *ref, size_t n,
                  nb_tol tol);
/* A yes/no check of the contract (one report line). */
void nb_expect(const char *dir, const char *name, int ok);
/* nb_check_f against the oracle's floats where the run has an oracle backend (tolerance xt),
 * else nb_check against float64 values (tolerance rt). */
double nb_check2(const char *dir, const char *name, const float *got, const float *oracle,
                 const double *ref, size_t n, nb_tol xt, nb_tol rt);
/* Records a check that failed outright (an op returned an error, is missing, a guard was hit). */
void nb_fail_check(const char *dir, const char *name, const char *why);
/* Prints the per-op summary table (worst ratio, worst max|diff|, counts). */
void nb_summary(void);

/* ---- device tensors ------------------------------------------------------------------------ */

#define NB_GUARD 16 /* floats of guard pattern before and after every tensor */

typedef struct nb_dt {
    sq_backend *be;
    sq_buf *b;
    size_t n;
} nb_dt;

/* A tensor holding h[0..n) (uploaded); h NULL: NaN-filled, so an op that must overwrite it and
 * reads it instead is caught. Guards are filled with a byte pattern and checked by nb_get. */
nb_dt nb_in(sq_backend *be, const float *h, size_t n);
nb_dt nb_out(sq_backend *be, size_t n);
static inline sq_view nb_v(nb_dt d) {
    return sq_view_of(d.b, NB_GUARD);
}
/* Downloads into h (n floats) and checks both guards (a hit is a failed check). */
void nb_get(nb_dt d, float *h);
void nb_free(nb_dt *d);

/* Records the failure where rc != SQ_OK (the op's name and message) and returns rc == SQ_OK. */
int nb_rc(sq_code rc, const sq_status *st, const char *op);
/* 1 where the backend has the op; else a failed check "not implemented" and 0. */
int nb_has(const void *fn, const char *op);
#define NB_HAS(be, fn) nb_has((const void *)(uintptr_t)(be)->fn, #fn)

/* ---- host data ----------------------------------------------------------------------------- */

const char *nb_act_name(sq_act a);
void nb_free_all(void **p, size_t n);
#define NB_FREE_ALL(...)                                                                           \
    do {                                                                                           \
        void *all_[] = {__VA_ARGS__};                                                              \
        nb_free_all(all_, sizeof all_ / sizeof *all_);                                             \
    } while (0)

float *nb_alloc(size_t n);   /* malloc'd floats (aborts the test when out of memory) */
double *nb_dalloc(size_t n); /* calloc'd doubles */
/* Deterministic uniform values in [lo, hi) from (seed, index) (a hash: cheap for 23M values). */
void nb_rand(float *h, size_t n, float lo, float hi, uint32_t seed);
float *nb_rand_new(size_t n, float lo, float hi, uint32_t seed);
void nb_fill(float *h, size_t n, float v);
/* Sample indices for references of large tensors: NULL (all n) when n <= max, else `max`
 * indices spread over [0, n) with a jitter, first and last included; *count gets their number. */
size_t *nb_sample(size_t n, size_t max, size_t *count);
/* max |h[i]| (0 for n = 0). */
double nb_maxabs_f(const float *h, size_t n);

/* ---- finite differences -------------------------------------------------------------------- */

/* Probe loss of the current host inputs, computed through the backend under test. */
typedef double (*nb_loss_fn)(void *ctx);
/* L = sum r_j y_j in double. */
double nb_dot(const float *y, const float *r, size_t n);
/* Central differences (L(x_i + h) - L(x_i - h)) / 2h for up to max_pts elements of x (spread
 * evenly) against the analytic grad[i]: |fd - grad| <= atol + rtol |grad|. One report line. */
double nb_fd(const char *name, nb_loss_fn loss, void *ctx, float *x, size_t nx, const double *grad,
             float h, int max_pts, double atol, double rtol);
/* grad = got - base (accumulated parameter gradients started at `base`), as doubles. */
double *nb_minus(const float *got, size_t n, float base);

#endif
