/* test_model_backends.c — the whole QA network on one backend against the CPU backend: forward,
 * MSE, backward and one Adam step on identical weights and inputs, at a small shape and at the
 * paper shape (2 x 2 x 28 x 160 x 160). Stage (c) of hpc/gpu-check.sh.
 *
 *   test_model_backends cuda [--small]   CUDA against CPU (exit 77 = SKIPPED where no GPU)
 *   test_model_backends cpu  [--small]   a second CPU backend, on 1 thread, against the first
 *                                        on 2: every difference must be exactly 0 (the results
 *                                        do not depend on the thread count; CI runs this, and a
 *                                        control that perturbs one weight and must FAIL)
 *   test_model_backends cpu-unfused      a CPU backend without its optional fusions
 *                                        (conv1x1_scaled, gap_bwd_add: the model then plans the
 *                                        channel scale as its own op and its tensor) against the
 *                                        fused one, at the CUDA tolerances (training mode at
 *                                        the paper shape only, no Adam step: same code); the
 *                                        fused plan's arena must be the smaller
 *
 * Reported per stage: max |diff| / max |ref| over the tensor and the tolerance (a readable report,
 * as llm.c's parity check). Tolerances for CUDA (strict FP32; summation orders differ):
 *  - eval-mode output 1e-4 relative; eval-mode flat gradient 2e-3 of max |g|;
 *  - parameters after one Adam step (eval-mode gradients): max |dp_cuda - dp_cpu| <= 0.05 lr,
 *    except where a gradient is ~0 and Adam turns it into +-lr (counted; at most 0.5 % of them);
 *  - training-mode output and gradients (batch statistics; ill-conditioned where BN sees few
 *    values, see docs/model.md): output 1e-3, gradients 2e-2 of max |g| at the paper shape,
 *    reported but only loosely bounded (0.2) at the small shape.
 */
#include "model/model.h"
#include "nn/cpu/cpu_backend.h"
#include "nn/registry.h"
#include "optim/optim.h"
#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKIP 77

typedef struct side {
    sq_backend *be;
    sq_model *m;
    sq_adam_opt *opt;
    float *y, *g, *p0, *p1;
} side;

typedef struct shape_case {
    const char *name;
    int n, d, h, w;
    double sd, sh, sw;
} shape_case;

static int g_fail;
static int g_arena_smaller = -1; /* cpu-unfused: 1 if the fused side's arena is the smaller */
static int g_unfused;            /* cpu-unfused mode (see run_case) */

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* max |a - b| / max |b| (or absolute when b is ~0), printed against tol. */
static double report(const char *shape, const char *what, const float *a, const float *b, size_t n,
                     double tol) {
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fabs((double)a[i] - b[i]) > d ? fabs((double)a[i] - b[i]) : d;
    const double ref = max_abs(b, n), rel = ref > 0 ? d / ref : d;
    const int ok = rel <= tol;
    printf("  %-14s %-34s max|diff| %.3e  max|ref| %.3e  rel %.3e  tol %.1e  %s\n", shape, what, d,
           ref, rel, tol, ok ? "PASS" : "FAIL");
    g_fail += !ok;
    return rel;
}

static int check(sq_code rc, const sq_status *st, const char *what) {
    if (rc == SQ_OK) return 0;
    printf("FAIL %s: %s\n", what, st->msg);
    g_fail++;
    return 1;
}

static void side_free(side *s) {
    sq_adam_destroy(s->opt);
    sq_model_destroy(s->m);
    if (s->be) s->be->destroy(s->be);
    free(s->y);
    free(s->g);
    free(s->p0);
    free(s->p1);
    memset(s, 0, sizeof *s);
}

static sq_code side_make(sq_backend *be, const sq_model_config *c, int n, side *s, sq_status *st) {
    memset(s, 0, sizeof *s);
    s->be = be;
    SQ_TRY(sq_model_create(c, be, &s->m, st));
    SQ_TRY(sq_model_init(s->m, 7, st));
    SQ_TRY(sq_model_plan(s->m, n, 1, st));
    const size_t np = sq_model_params_floats(s->m);
    sq_adam_config ac = sq_adam_config_default();
    SQ_TRY(sq_adam_create(be, np, &ac, &s->opt, st));
    s->y = calloc((size_t)n, sizeof(float));
    s->g = calloc(np, sizeof(float));
    s->p0 = calloc(np, sizeof(float));
    s->p1 = calloc(np, sizeof(float));
    if (!s->y || !s->g || !s->p0 || !s->p1) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    return SQ_OK;
}

/* Forward (+ loss + backward) in the given mode; y and g filled. */
static sq_code run_pass(side *s, int training, const float *x, const float *t, sq_status *st) {
    sq_model_set_training(s->m, training);
    SQ_TRY(sq_model_forward(s->m, x, s->y, st));
    SQ_TRY(sq_model_loss(s->m, t, NULL, st));
    SQ_TRY(sq_model_backward(s->m, st));
    return sq_model_get_grads(s->m, s->g, st);
}

static sq_code adam_step(side *s, float lr, sq_status *st) {
    SQ_TRY(sq_model_get_params(s->m, s->p0, st));
    SQ_TRY(sq_adam_step(s->opt, sq_model_params_buf(s->m), sq_model_grads_buf(s->m), lr, st));
    return sq_model_get_params(s->m, s->p1, st);
}

/* Adam moves every parameter by about lr: compare the moves, allowing the sign flips of ~0
 * gradients (counted, bounded). */
static void report_adam(const char *shape, const side *a, const side *b, size_t np, float lr,
                        double tol_lr, int exact) {
    double worst = 0;
    size_t flips = 0;
    for (size_t i = 0; i < np; i++) {
        const double d = fabs(((double)a->p1[i] - a->p0[i]) - ((double)b->p1[i] - b->p0[i]));
        if (!exact && d > 0.5 * lr) {
            flips++;
            continue;
        }
        worst = d > worst ? d : worst;
    }
    const double share = (double)flips / (double)np;
    const int ok = worst <= tol_lr * lr && share <= 0.005;
    printf("  %-14s %-34s max|dmove| %.3e  tol %.1e (%.2f lr)  sign flips %zu (%.3f %%)  %s\n",
           shape, "params after 1 Adam step", worst, tol_lr * lr, tol_lr, flips, 100.0 * share,
           ok ? "PASS" : "FAIL");
    g_fail += !ok;
}

static void fill_inputs(float *x, float *t, size_t nx, int n) {
    sq_rng r;
    sq_rng_init(&r, 11, 0, 0);
    for (size_t i = 0; i < nx; i++)
        x[i] = sq_rng_uniform_range(&r, 0.0f, 255.0f);
    for (size_t i = 0; i < nx / 2; i++) /* the contour half of each sample is binary */
        x[nx / 2 + i] = x[nx / 2 + i] > 127.5f ? 1.0f : 0.0f;
    for (int i = 0; i < n; i++)
        t[i] = sq_rng_uniform(&r);
}

static void run_case(const shape_case *sc, sq_backend *be_a, sq_backend *be_b, int exact,
                     int perturb) {
    sq_status st;
    sq_status_clear(&st);
    sq_model_config c = sq_model_config_default();
    c.depth = sc->d, c.height = sc->h, c.width = sc->w;
    c.spacing[0] = sc->sd, c.spacing[1] = sc->sh, c.spacing[2] = sc->sw;
    side a, b;
    const size_t nx = (size_t)sc->n * 2 * sc->d * sc->h * sc->w;
    float *x = malloc(nx * sizeof(float)), *t = malloc((size_t)sc->n * sizeof(float));
    int bad = !x || !t;
    bad = bad || check(side_make(be_a, &c, sc->n, &a, &st), &st, "model on the tested backend");
    bad = bad || check(side_make(be_b, &c, sc->n, &b, &st), &st, "model on the CPU backend");
    if (!bad) {
        fill_inputs(x, t, nx, sc->n);
        if (perturb) { /* the control: one weight differs, the comparison must FAIL */
            float *p = malloc(sq_model_params_floats(a.m) * sizeof(float));
            if (p && sq_model_get_params(a.m, p, &st) == SQ_OK) {
                p[0] += 0.5f;
                bad = check(sq_model_set_params(a.m, p, &st), &st, "perturb");
            }
            free(p);
        }
    }
    if (!bad)
        printf("  %-14s arena: tested %zu MiB, cpu %zu MiB\n", sc->name,
               sq_model_arena_bytes(a.m) >> 20, sq_model_arena_bytes(b.m) >> 20);
    if (!bad && g_arena_smaller != -1)
        g_arena_smaller = sq_model_arena_bytes(b.m) < sq_model_arena_bytes(a.m);
    const size_t np = bad ? 0 : sq_model_params_floats(a.m);
    /* cpu-unfused: one rounding order changes, 10x tighter than CUDA's bounds */
    const double tol_y = exact       ? 0
                         : g_unfused ? 1e-5
                                     : 1e-4,
                 tol_g = exact       ? 0
                         : g_unfused ? 2e-4
                                     : 2e-3;
    if (!bad && !check(run_pass(&a, 0, x, t, &st), &st, "eval pass (tested)") &&
        !check(run_pass(&b, 0, x, t, &st), &st, "eval pass (cpu)")) {
        report(sc->name, "eval output", a.y, b.y, (size_t)sc->n, tol_y);
        report(sc->name, "eval gradients (flat buffer)", a.g, b.g, np, tol_g);
        /* cpu-unfused: both sides run the same Adam, whose only difference would be its
         * amplification of ~0 gradients (the cuda mode's rule); not compared */
        if (!g_unfused && !check(adam_step(&a, 2e-3f, &st), &st, "adam (tested)") &&
            !check(adam_step(&b, 2e-3f, &st), &st, "adam (cpu)"))
            report_adam(sc->name, &a, &b, np, 2e-3f, exact ? 0 : 0.05, exact);
    }
    const int small = sc->d * sc->h * sc->w < 100000;
    if (g_unfused && small) /* batch statistics over 2x12x8 values: too ill-conditioned to say
                               anything about a rounding-level change; the paper shape does */
        printf("  %-14s training mode compared at the paper shape only\n", sc->name);
    else if (!bad && !check(run_pass(&a, 1, x, t, &st), &st, "train pass (tested)") &&
             !check(run_pass(&b, 1, x, t, &st), &st, "train pass (cpu)")) {
        report(sc->name, "train output", a.y, b.y, (size_t)sc->n, exact ? 0 : small ? 0.2 : 1e-3);
        report(sc->name, "train gradients (flat buffer)", a.g, b.g, np,
               exact   ? 0
               : small ? 0.2
                       : 2e-2);
    }
    a.be = NULL; /* the backends are the caller's */
    b.be = NULL;
    side_free(&a);
    side_free(&b);
    free(x);
    free(t);
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "cpu";
    const int small_only = argc > 2 && !strcmp(argv[2], "--small");
    char why[256] = "", chosen[512] = "";
    if (!strcmp(name, "cuda") && !sq_backend_cuda_usable(why, sizeof why)) {
        printf("SKIPPED: no usable GPU (%s)\n", why);
        return SKIP;
    }
    sq_status st;
    sq_status_clear(&st);
    sq_backend_opts o = sq_backend_opts_default();
    const int unfused = !strcmp(name, "cpu-unfused");
    o.threads = strcmp(name, "cpu") ? 2 : 1; /* cpu: 1 thread against 2 (bit-identical) */
    sq_backend *tested = sq_backend_create(unfused ? "cpu" : name, &o, chosen, sizeof chosen, &st);
    if (tested && unfused) {
        tested->conv1x1_scaled_fwd = NULL;
        tested->conv1x1_scaled_bwd = NULL;
        tested->gap_bwd_add = NULL;
        snprintf(chosen + strlen(chosen), sizeof chosen - strlen(chosen), " without fusions");
        g_arena_smaller = 0;
        g_unfused = 1;
    }
    sq_backend *cpu = sq_backend_cpu_create(2, &st);
    if (!tested || !cpu) {
        printf("FAIL: cannot create the backends: %s\n", st.msg);
        return 1;
    }
    const int exact = !tested->device_memory && !unfused;
    printf("whole network: %s against %s\n", chosen, cpu->description);
    const shape_case cases[] = {
        {"2x2x16x24x16", 2, 16, 24, 16, 3.0, 1.0, 1.0},
        {"2x2x28x160x160", 2, 28, 160, 160, 3.9, 0.59, 0.59},
    };
    const int ncases = small_only && !unfused ? 1 : 2;
    for (int i = 0; i < ncases; i++)
        run_case(&cases[i], tested, cpu, exact, 0);
    if (unfused) {
        printf("fused plan's arena smaller than the unfused one's: %s\n",
               g_arena_smaller == 1 ? "PASS" : "FAIL");
        g_fail += g_arena_smaller != 1;
    }
    const int failures = g_fail;
    if (exact) { /* the control: a perturbed weight must be caught */
        g_fail = 0;
        printf("control (one weight perturbed, must FAIL):\n");
        run_case(&cases[0], tested, cpu, exact, 1);
        if (g_fail == 0) {
            printf("FAIL: the control was not detected\n");
            return 1;
        }
        printf("control detected (%d failing checks): PASS\n", g_fail);
    }
    tested->destroy(tested);
    cpu->destroy(cpu);
    printf("%s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
