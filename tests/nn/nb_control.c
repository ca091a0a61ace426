/* nb_control.c — controls that prove the suite's checks can fail, and a sweep that runs the
 * cross-backend comparison path (the one `test_nn_backend cuda` takes) on this machine:
 *  1. the checkers report FAIL for a NaN and for a value just outside the tolerance;
 *  2. a byte written into a tensor's guard zone is reported;
 *  3. sweep: every small case, the backend under test against a second CPU backend as the oracle
 *     (skipped where the run already has an oracle backend): all must pass;
 *  4. perturbation: the first small case of every op, with every tensor downloaded from the
 *     backend under test moved by 5% of its scale, must FAIL — against the float64 references
 *     (cpu) and against the oracle backend (a second CPU backend here, the CPU under cuda);
 *  5. faulty backends (cpu runs): copies of a CPU backend with one contract violation each (a
 *     write past the output, accumulating into an overwritten output, overwriting an
 *     accumulated gradient, ignoring the BN sync callback) must be caught.
 * The controls' own checks are counted; the deliberately failed ones are not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nb.h"

#include "nn/registry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs fn quietly; returns its failed and total checks and restores the counters. */
typedef struct quiet_run {
    long checks, fails;
} quiet_run;

static quiet_run quietly(void (*fn)(void *), void *ctx) {
    const long c0 = nb.checks, f0 = nb.fails;
    const int q0 = nb.quiet;
    nb.quiet = 1;
    fn(ctx);
    nb.quiet = q0;
    quiet_run r = {nb.checks - c0, nb.fails - f0};
    nb.checks = c0, nb.fails = f0;
    return r;
}

static void control_line(const char *what, int ok) {
    nb_label("control", "the checks can fail");
    nb_expect("ctl", what, ok);
}

/* ---- 1. checkers ------------------------------------------------------------------------------
 */

static void checkers_fn(void *ctx) {
    (void)ctx;
    const float nan = NAN, off = 1.0f + 2.1e-6f, same = 1.0f;
    const double one = 1.0;
    const nb_tol t = {1e-6, 1e-6, 0};
    nb_check("ctl", "nan", &nan, &one, NULL, 1, t);
    nb_check("ctl", "just outside", &off, &one, NULL, 1, t);
    nb_check_f("ctl", "just outside (float)", &off, &same, 1, t);
}

static void control_checkers(void) {
    const quiet_run r = quietly(checkers_fn, NULL);
    control_line("checkers catch a NaN and 2.1e-6 off at tol 2e-6", r.checks == 3 && r.fails == 3);
}

/* ---- 2. guards ------------------------------------------------------------------------------- */

static void guard_fn(void *ctx) {
    int *hit_end = ctx;
    sq_backend *be = nb.be;
    float h[10], junk = 3.0f;
    sq_status st;
    sq_status_clear(&st);
    nb_dt d = nb_out(be, 10);
    const size_t at = *hit_end ? (NB_GUARD + 10) * sizeof(float) : (NB_GUARD - 1) * sizeof(float);
    if (nb_rc(be->upload(be, d.b, at, &junk, sizeof junk, &st), &st, "upload") &&
        nb_rc(be->sync(be, &st), &st, "sync"))
        nb_get(d, h);
    nb_free(&d);
}

static void control_guards(void) {
    int end = 0;
    const quiet_run a = quietly(guard_fn, &end);
    end = 1;
    const quiet_run b = quietly(guard_fn, &end);
    control_line("guard: a write just before / just past a tensor is caught",
                 a.fails == 1 && b.fails == 1);
}

/* ---- 3. the cross path on CPU ------------------------------------------------------------------
 */

static void small_cases_fn(void *ctx) {
    (void)ctx;
    for (size_t i = 0; i < nb_ncases; i++)
        if (!nb_cases[i].large) nb_run_case(&nb_cases[i]);
}

static sq_backend *second_cpu(void) {
    sq_backend_opts o = sq_backend_opts_default();
    o.threads = 2;
    sq_status st;
    sq_status_clear(&st);
    sq_backend *be = sq_backend_create("cpu", &o, NULL, 0, &st);
    if (!be) fail_msg("second cpu backend: %s", st.msg);
    return be;
}

static void control_sweep(sq_backend *cpu2) {
    if (nb.ref) return; /* this run already compares against an oracle backend */
    const char *f0 = nb.filter;
    nb.ref = cpu2, nb.filter = NULL;
    const quiet_run r = quietly(small_cases_fn, NULL);
    nb.ref = NULL, nb.filter = f0;
    char what[96];
    snprintf(what, sizeof what, "sweep: %ld checks of small cases vs 2nd cpu, %ld failed", r.checks,
             r.fails);
    control_line(what, r.checks > 0 && r.fails == 0);
}

/* ---- 4. perturbation --------------------------------------------------------------------------
 */

static void perturbed_fn(void *ctx) {
    nb.perturb = 1;
    nb_run_case(ctx);
    nb.perturb = 0;
}

static void control_perturb(sq_backend *oracle, const char *mode) {
    for (int op = 0; op < NB_OP_COUNT; op++) {
        const nb_case *c = NULL;
        for (size_t i = 0; i < nb_ncases && !c; i++)
            if (nb_cases[i].op == (nb_op)op && !nb_cases[i].large) c = &nb_cases[i];
        if (!c) continue;
        sq_backend *r0 = nb.ref;
        nb.ref = oracle;
        const char *f0 = nb.filter;
        nb.filter = NULL;
        const quiet_run r = quietly(perturbed_fn, (void *)c);
        nb.ref = r0, nb.filter = f0;
        char what[96];
        snprintf(what, sizeof what, "perturbed %s vs %s: %ld/%ld checks caught",
                 nb_op_name((nb_op)op), mode, r.fails, r.checks);
        control_line(what, r.fails > 0);
    }
}

/* ---- 5. faulty backends -----------------------------------------------------------------------
 */

static sq_backend g_real; /* the ops of the CPU backend that the faulty copies wrap */

/* Writes one float past y. */
static sq_code fault_oob(sq_backend *be, sq_act a, int64_t n, sq_view x, sq_view y, sq_status *st) {
    static const float junk = 1.0f;
    SQ_TRY(g_real.act_fwd(be, a, n, x, y, st));
    SQ_TRY(be->upload(be, y.buf, (y.off + (size_t)n) * sizeof(float), &junk, sizeof junk, st));
    return be->sync(be, st);
}

/* Accumulates into y (y += alpha x) where the contract says overwrite. */
static sq_code fault_accumulate(sq_backend *be, int64_t n, float alpha, sq_view x, sq_view y,
                                sq_status *st) {
    return g_real.axpy(be, n, alpha, x, y, st);
}

/* Overwrites dw where the contract says accumulate. */
static sq_code fault_overwrite(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                               sq_view dx, sq_view dw, sq_view db, sq_status *st) {
    const size_t nw = (size_t)p->cout * p->in.c * p->k[0] * p->k[1] * p->k[2];
    if (dw.buf) SQ_TRY(be->fill(be, dw.buf, dw.off * sizeof(float), 0, nw * sizeof(float), st));
    return g_real.conv3d_bwd(be, p, x, w, dy, dx, dw, db, st);
}

/* Ignores the synchronisation callback (local statistics only). */
static sq_code fault_nosync(sq_backend *be, const sq_bn *p, sq_view x, sq_view g, sq_view b,
                            sq_view rm, sq_view rv, sq_view res, sq_view y, sq_view sm, sq_view si,
                            sq_status *st) {
    sq_bn q = *p;
    q.sync = NULL;
    return g_real.bn_fwd(be, &q, x, g, b, rm, rv, res, y, sm, si, st);
}

typedef struct fault {
    const char *what;
    nb_op op;
    int sync; /* the case must use synchronised BN */
} fault;

static const fault k_faults[] = {
    {"act_fwd writes 1 float past y", NB_ACT, 0},
    {"scale accumulates into y", NB_SCALE, 0},
    {"conv3d_bwd overwrites dw", NB_CONV3D, 0},
    {"bn_fwd ignores the sync callback", NB_BN, 1},
};

static void install(sq_backend *be, int i) {
    if (i == 0) be->act_fwd = fault_oob;
    if (i == 1) be->scale = fault_accumulate;
    if (i == 2) be->conv3d_bwd = fault_overwrite;
    if (i == 3) be->bn_fwd = fault_nosync;
}

static const nb_case *first_small(nb_op op, int sync) {
    for (size_t i = 0; i < nb_ncases; i++) {
        const nb_case *c = &nb_cases[i];
        if (c->op == op && !c->large && (!sync || c->u.bn.sync)) return c;
    }
    return NULL;
}

static void run_case_fn(void *ctx) {
    nb_run_case(ctx);
}

/* Each fault in a copy of the 2nd CPU backend, run as the backend under test (float64 mode). */
static void control_faults(sq_backend *cpu2) {
    sq_backend *be0 = nb.be, *r0 = nb.ref;
    const char *f0 = nb.filter;
    g_real = *cpu2;
    for (int i = 0; i < (int)(sizeof k_faults / sizeof *k_faults); i++) {
        sq_backend fake = *cpu2;
        install(&fake, i);
        nb.be = &fake, nb.ref = NULL, nb.filter = NULL;
        const quiet_run r =
            quietly(run_case_fn, (void *)first_small(k_faults[i].op, k_faults[i].sync));
        nb.be = be0, nb.ref = r0, nb.filter = f0;
        char what[96];
        snprintf(what, sizeof what, "faulty backend, %s: %ld/%ld checks caught", k_faults[i].what,
                 r.fails, r.checks);
        control_line(what, r.fails > 0);
    }
}

void nb_test_control(void **state) {
    (void)state;
    const long f0 = nb.fails;
    if (!nb_begin("control", 0, "the checks can fail")) return;
    control_checkers();
    control_guards();
    sq_backend *cpu2 = nb.ref ? NULL : second_cpu();
    control_sweep(cpu2);
    if (!nb.ref) control_perturb(NULL, "float64 references");
    control_perturb(nb.ref ? nb.ref : cpu2, nb.ref ? "oracle backend" : "2nd cpu backend");
    if (cpu2) control_faults(cpu2);
    if (cpu2) cpu2->destroy(cpu2);
    assert_int_equal(nb.fails - f0, 0);
}
