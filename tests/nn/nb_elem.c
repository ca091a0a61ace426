/* nb_elem.c — conformance drivers of the element-wise and per-channel ops: act_fwd/bwd (every
 * activation, out of place and in place), prelu, gap, chscale, add (y new, y == a, y == b), axpy,
 * scale (in place too), sumsq, mse_fwd/bwd and adam (several steps on the same buffers).
 *
 * Oracles and tolerances (|got - ref| <= atol + rtol|ref| + mrel max|ref|):
 *  - float64 reference (cpu): element-wise forwards and analytic backwards <= 1e-6 + 2e-6|ref|;
 *    add <= 1e-7 + 1e-7|ref|, axpy <= 1e-6 + 1e-6|ref|, scale <= 1e-7|ref| (one rounding);
 *    sumsq <= 2e-7|ref| (the contract: accumulated in double, rounded once); mse forward <=
 *    1e-7 + 1e-6|ref|, backward <= 1e-8 + 1e-6|ref|; reductions into parameters (dalpha,
 *    dscale) <= 1e-6 * terms + 1e-5 + 1e-5|ref|; adam after its steps: params 1e-6 + 1e-6|ref|,
 *    m 1e-7 + 1e-5|ref|, v 1e-9 + 1e-5|ref|. Small cases also against central finite differences:
 *    non-linear (activations, PReLU dx, MSE) h = 1e-2, |fd - an| <= 2e-3 + 2e-3|an| (MSE 2e-4);
 *    linear in the probed input (GAP, chscale, PReLU alpha) h = 0.25, <= 1e-4 + 1e-4|an|.
 *  - oracle backend (cuda vs cpu): element-wise <= 1e-6|ref| + 1e-6 max|ref|; reductions (gap,
 *    dalpha, dscale, mse forward) <= 1e-5|ref| + 1e-5 max|ref|; sumsq <= 1e-6|ref| (double
 *    accumulation is part of the contract).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nb.h"
#include "nb_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACC0 0.5f

static const nb_tol X_ELEM = {0, 1e-6, 1e-6}, X_RED = {0, 1e-5, 1e-5};
static const nb_tol T_ELEM = {1e-6, 2e-6, 0};

static nb_tol t_param(double terms) {
    return (nb_tol){1e-6 * terms + 1e-5, 1e-5, 0};
}

/* ---- activations ------------------------------------------------------------------------------
 */

/* y = act(x) (inplace: y is x's buffer). */
static void act_fwd_on(sq_backend *be, sq_act a, size_t n, const float *x, int inplace, float *y) {
    nb_fill(y, n, NAN);
    if (!NB_HAS(be, act_fwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), yd = inplace ? xd : nb_out(be, n);
    if (nb_rc(be->act_fwd(be, a, (int64_t)n, nb_v(xd), nb_v(yd), &st), &st, "act_fwd"))
        nb_get(yd, y);
    nb_free(&xd);
    if (!inplace) nb_free(&yd);
}

/* dx = dy * act'(x) (inplace: dx is dy's buffer). */
static void act_bwd_on(sq_backend *be, sq_act a, size_t n, const float *x, const float *dy,
                       int inplace, float *dx) {
    nb_fill(dx, n, NAN);
    if (!NB_HAS(be, act_bwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), dyd = nb_in(be, dy, n), dxd = inplace ? dyd : nb_out(be, n);
    if (nb_rc(be->act_bwd(be, a, (int64_t)n, nb_v(xd), nb_v(dyd), nb_v(dxd), &st), &st, "act_bwd"))
        nb_get(dxd, dx);
    nb_free(&xd), nb_free(&dyd);
    if (!inplace) nb_free(&dxd);
}

typedef struct act_fd {
    sq_act a;
    size_t n;
    float *x, *y;
    const float *r;
} act_fd;

static double act_loss(void *v) {
    act_fd *f = v;
    act_fwd_on(nb.be, f->a, f->n, f->x, 0, f->y);
    return nb_dot(f->y, f->r, f->n);
}

static void act_case(const nb_case *k) {
    const nb_vec_case *v = &k->u.vec;
    const size_t n = (size_t)v->n;
    if (!nb_begin("act", k->large, "%s n=%zu %s", nb_act_name(v->act), n, k->note ? k->note : ""))
        return;
    float *x = nb_rand_new(n, -6, 6, 21), *dy = nb_rand_new(n, -1, 1, 22);
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) < 0.05f) x[i] = 0.5f; /* away from the ReLU kink */
    float *y = nb_alloc(n), *dx = nb_alloc(n), *oy = NULL, *odx = NULL;
    double *ry = NULL, *rdx = NULL;
    if (nb.ref) {
        oy = nb_alloc(n), odx = nb_alloc(n);
        act_fwd_on(nb.ref, v->act, n, x, 0, oy);
        act_bwd_on(nb.ref, v->act, n, x, dy, 0, odx);
    } else {
        ry = nb_dalloc(n), rdx = nb_dalloc(n);
        for (size_t i = 0; i < n; i++) {
            ry[i] = nb_ref_act(v->act, x[i]);
            rdx[i] = dy[i] * nb_ref_act_grad(v->act, x[i]);
        }
    }
    for (int inplace = 0; inplace < 2; inplace++) {
        act_fwd_on(nb.be, v->act, n, x, inplace, y);
        nb_check2("fwd", inplace ? "y (y == x)" : "y", y, oy, ry, n, X_ELEM, T_ELEM);
        act_bwd_on(nb.be, v->act, n, x, dy, inplace, dx);
        nb_check2("bwd", inplace ? "dx (dx == dy)" : "dx", dx, odx, rdx, n, X_ELEM, T_ELEM);
    }
    if (!k->large && !nb.ref) {
        act_fd f = {v->act, n, x, y, dy};
        double *g = nb_minus(dx, n, 0.0f);
        nb_fd("dx", act_loss, &f, x, n, g, 1e-2f, 200, 2e-3, 2e-3);
        free(g);
    }
    NB_FREE_ALL(x, dy, y, dx, oy, odx, ry, rdx);
}

/* ---- PReLU ---------------------------------------------------------------------------------- */

static void prelu_fwd_on(sq_backend *be, sq_shape5 s, const float *x, const float *a, float *y) {
    const size_t n = (size_t)sq_shape5_numel(s);
    nb_fill(y, n, NAN);
    if (!NB_HAS(be, prelu_fwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), ad = nb_in(be, a, (size_t)s.c), yd = nb_out(be, n);
    if (nb_rc(be->prelu_fwd(be, s, nb_v(xd), nb_v(ad), nb_v(yd), &st), &st, "prelu_fwd"))
        nb_get(yd, y);
    nb_free(&xd), nb_free(&ad), nb_free(&yd);
}

/* dalpha comes back accumulated onto ACC0. */
static void prelu_bwd_on(sq_backend *be, sq_shape5 s, const float *x, const float *a,
                         const float *dy, float *dx, float *da) {
    const size_t n = (size_t)sq_shape5_numel(s), C = (size_t)s.c;
    nb_fill(dx, n, NAN), nb_fill(da, C, NAN);
    if (!NB_HAS(be, prelu_bwd)) return;
    sq_status st;
    sq_status_clear(&st);
    float *a0 = nb_alloc(C);
    nb_fill(a0, C, ACC0);
    nb_dt xd = nb_in(be, x, n), ad = nb_in(be, a, C), dyd = nb_in(be, dy, n), dxd = nb_out(be, n),
          dad = nb_in(be, a0, C);
    if (nb_rc(be->prelu_bwd(be, s, nb_v(xd), nb_v(ad), nb_v(dyd), nb_v(dxd), nb_v(dad), &st), &st,
              "prelu_bwd"))
        nb_get(dxd, dx), nb_get(dad, da);
    nb_free(&xd), nb_free(&ad), nb_free(&dyd), nb_free(&dxd), nb_free(&dad);
    free(a0);
}

typedef struct se_fd {
    sq_shape5 s;
    float *x, *p, *y; /* p: alpha (prelu) or scale (chscale) */
    const float *r;
    size_t ny;
    int op; /* 0 prelu, 1 gap, 2 chscale */
} se_fd;

static void chscale_fwd_on(sq_backend *be, sq_shape5 s, const float *x, const float *sc, float *y);
static void gap_fwd_on(sq_backend *be, sq_shape5 s, const float *x, float *y);

static double se_loss(void *v) {
    se_fd *f = v;
    if (f->op == 0) prelu_fwd_on(nb.be, f->s, f->x, f->p, f->y);
    if (f->op == 1) gap_fwd_on(nb.be, f->s, f->x, f->y);
    if (f->op == 2) chscale_fwd_on(nb.be, f->s, f->x, f->p, f->y);
    return nb_dot(f->y, f->r, f->ny);
}

static void shape_label(const char *op, const nb_case *k, int *run) {
    const sq_shape5 s = k->u.shape;
    *run = nb_begin(op, k->large, "%dx%dx%dx%dx%d %s", s.n, s.c, s.d, s.h, s.w,
                    k->note ? k->note : "");
}

static void prelu_case(const nb_case *k) {
    int run;
    shape_label("prelu", k, &run);
    if (!run) return;
    const sq_shape5 s = k->u.shape;
    const size_t n = (size_t)sq_shape5_numel(s), C = (size_t)s.c, S = n / ((size_t)s.n * C);
    float *x = nb_rand_new(n, -1, 1, 31), *a = nb_rand_new(C, 0.05f, 0.4f, 32),
          *dy = nb_rand_new(n, -1, 1, 33);
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) < 0.05f) x[i] = -0.5f;
    float *y = nb_alloc(n), *dx = nb_alloc(n), *da = nb_alloc(C);
    float *oy = nb_alloc(n), *odx = nb_alloc(n), *oda = nb_alloc(C);
    double *ry = nb_dalloc(n), *rdx = nb_dalloc(n), *rda = nb_dalloc(C);
    if (nb.ref) {
        prelu_fwd_on(nb.ref, s, x, a, oy);
        prelu_bwd_on(nb.ref, s, x, a, dy, odx, oda);
    }
    for (size_t i = 0; i < C; i++)
        rda[i] = ACC0;
    for (size_t i = 0; i < n; i++) {
        const size_t ch = i / S % C;
        ry[i] = x[i] > 0 ? x[i] : (double)a[ch] * x[i];
        rdx[i] = x[i] > 0 ? dy[i] : (double)a[ch] * dy[i];
        if (x[i] <= 0) rda[ch] += (double)dy[i] * x[i];
    }
    prelu_fwd_on(nb.be, s, x, a, y);
    nb_check2("fwd", "y", y, oy, ry, n, X_ELEM, T_ELEM);
    prelu_bwd_on(nb.be, s, x, a, dy, dx, da);
    nb_check2("bwd", "dx", dx, odx, rdx, n, X_ELEM, T_ELEM);
    nb_check2("bwd", "dalpha(acc)", da, oda, rda, C, X_RED, t_param((double)n / C));
    if (!k->large && !nb.ref) {
        se_fd f = {s, x, a, y, dy, n, 0};
        double *gx = nb_minus(dx, n, 0.0f), *ga = nb_minus(da, C, ACC0);
        nb_fd("dx", se_loss, &f, x, n, gx, 1e-2f, 60, 2e-3, 2e-3);
        nb_fd("dalpha", se_loss, &f, a, C, ga, 0.25f, 3, 1e-4, 1e-4);
        free(gx), free(ga);
    }
    NB_FREE_ALL(x, a, dy, y, dx, da, oy, odx, oda, ry, rdx, rda);
}

/* ---- GAP and channel scaling ------------------------------------------------------------------
 */

static void gap_fwd_on(sq_backend *be, sq_shape5 s, const float *x, float *y) {
    const size_t n = (size_t)sq_shape5_numel(s), nc = (size_t)s.n * s.c;
    nb_fill(y, nc, NAN);
    if (!NB_HAS(be, gap_fwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), yd = nb_out(be, nc);
    if (nb_rc(be->gap_fwd(be, s, nb_v(xd), nb_v(yd), &st), &st, "gap_fwd")) nb_get(yd, y);
    nb_free(&xd), nb_free(&yd);
}

static void gap_bwd_on(sq_backend *be, sq_shape5 s, const float *dy, float *dx) {
    const size_t n = (size_t)sq_shape5_numel(s), nc = (size_t)s.n * s.c;
    nb_fill(dx, n, NAN);
    if (!NB_HAS(be, gap_bwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt dyd = nb_in(be, dy, nc), dxd = nb_out(be, n);
    if (nb_rc(be->gap_bwd(be, s, nb_v(dyd), nb_v(dxd), &st), &st, "gap_bwd")) nb_get(dxd, dx);
    nb_free(&dyd), nb_free(&dxd);
}

static void gap_case(const nb_case *k) {
    int run;
    shape_label("gap", k, &run);
    if (!run) return;
    const sq_shape5 s = k->u.shape;
    const size_t n = (size_t)sq_shape5_numel(s), nc = (size_t)s.n * s.c, S = n / nc;
    float *x = nb_rand_new(n, -1, 1, 41), *dy = nb_rand_new(nc, -1, 1, 43);
    float *y = nb_alloc(nc), *dx = nb_alloc(n), *oy = nb_alloc(nc), *odx = nb_alloc(n);
    double *ry = nb_dalloc(nc), *rdx = nb_dalloc(n);
    if (nb.ref) gap_fwd_on(nb.ref, s, x, oy), gap_bwd_on(nb.ref, s, dy, odx);
    for (size_t pl = 0; pl < nc; pl++)
        for (size_t i = 0; i < S; i++) {
            ry[pl] += x[pl * S + i] / (double)S;
            rdx[pl * S + i] = dy[pl] / (double)S;
        }
    gap_fwd_on(nb.be, s, x, y);
    nb_check2("fwd", "y", y, oy, ry, nc, X_RED, T_ELEM);
    gap_bwd_on(nb.be, s, dy, dx);
    nb_check2("bwd", "dx", dx, odx, rdx, n, X_ELEM, T_ELEM);
    if (!k->large && !nb.ref) {
        se_fd f = {s, x, NULL, y, dy, nc, 1};
        double *gx = nb_minus(dx, n, 0.0f);
        nb_fd("dx", se_loss, &f, x, n, gx, 0.25f, 40, 1e-4, 1e-4);
        free(gx);
    }
    NB_FREE_ALL(x, dy, y, dx, oy, odx, ry, rdx);
}

static void chscale_fwd_on(sq_backend *be, sq_shape5 s, const float *x, const float *sc, float *y) {
    const size_t n = (size_t)sq_shape5_numel(s), nc = (size_t)s.n * s.c;
    nb_fill(y, n, NAN);
    if (!NB_HAS(be, chscale_fwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), sd = nb_in(be, sc, nc), yd = nb_out(be, n);
    if (nb_rc(be->chscale_fwd(be, s, nb_v(xd), nb_v(sd), nb_v(yd), &st), &st, "chscale_fwd"))
        nb_get(yd, y);
    nb_free(&xd), nb_free(&sd), nb_free(&yd);
}

/* dx and dscale (both overwritten); a NULL one is passed as a none view. */
static void chscale_bwd_on(sq_backend *be, sq_shape5 s, const float *x, const float *sc,
                           const float *dy, float *dx, float *ds) {
    const size_t n = (size_t)sq_shape5_numel(s), nc = (size_t)s.n * s.c;
    if (dx) nb_fill(dx, n, NAN);
    if (ds) nb_fill(ds, nc, NAN);
    if (!NB_HAS(be, chscale_bwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), sd = nb_in(be, sc, nc), dyd = nb_in(be, dy, n), dxd = nb_out(be, n),
          dsd = nb_out(be, nc);
    if (nb_rc(be->chscale_bwd(be, s, nb_v(xd), nb_v(sd), nb_v(dyd), dx ? nb_v(dxd) : sq_view_none(),
                              ds ? nb_v(dsd) : sq_view_none(), &st),
              &st, "chscale_bwd")) {
        if (dx) nb_get(dxd, dx);
        if (ds) nb_get(dsd, ds);
    }
    nb_free(&xd), nb_free(&sd), nb_free(&dyd), nb_free(&dxd), nb_free(&dsd);
}

static void chscale_case(const nb_case *k) {
    int run;
    shape_label("chscale", k, &run);
    if (!run) return;
    const sq_shape5 s = k->u.shape;
    const size_t n = (size_t)sq_shape5_numel(s), nc = (size_t)s.n * s.c, S = n / nc;
    float *x = nb_rand_new(n, -1, 1, 41), *sc = nb_rand_new(nc, 0, 1, 42),
          *dy = nb_rand_new(n, -1, 1, 44);
    float *y = nb_alloc(n), *dx = nb_alloc(n), *ds = nb_alloc(nc);
    float *oy = nb_alloc(n), *odx = nb_alloc(n), *ods = nb_alloc(nc);
    double *ry = nb_dalloc(n), *rdx = nb_dalloc(n), *rds = nb_dalloc(nc);
    if (nb.ref)
        chscale_fwd_on(nb.ref, s, x, sc, oy), chscale_bwd_on(nb.ref, s, x, sc, dy, odx, ods);
    for (size_t pl = 0; pl < nc; pl++)
        for (size_t i = 0; i < S; i++) {
            ry[pl * S + i] = (double)x[pl * S + i] * sc[pl];
            rdx[pl * S + i] = (double)dy[pl * S + i] * sc[pl];
            rds[pl] += (double)dy[pl * S + i] * x[pl * S + i];
        }
    chscale_fwd_on(nb.be, s, x, sc, y);
    nb_check2("fwd", "y", y, oy, ry, n, X_ELEM, T_ELEM);
    chscale_bwd_on(nb.be, s, x, sc, dy, dx, ds);
    nb_check2("bwd", "dx", dx, odx, rdx, n, X_ELEM, T_ELEM);
    nb_check2("bwd", "dscale", ds, ods, rds, nc, X_RED, t_param((double)S));
    if (!k->large) { /* none views: one gradient at a time */
        chscale_bwd_on(nb.be, s, x, sc, dy, dx, NULL);
        nb_check2("bwd", "dx (dscale none)", dx, odx, rdx, n, X_ELEM, T_ELEM);
        chscale_bwd_on(nb.be, s, x, sc, dy, NULL, ds);
        nb_check2("bwd", "dscale (dx none)", ds, ods, rds, nc, X_RED, t_param((double)S));
    }
    if (!k->large && !nb.ref) {
        se_fd f = {s, x, sc, y, dy, n, 2};
        double *gx = nb_minus(dx, n, 0.0f), *gs = nb_minus(ds, nc, 0.0f);
        nb_fd("dx", se_loss, &f, x, n, gx, 0.25f, 40, 1e-4, 1e-4);
        nb_fd("dscale", se_loss, &f, sc, nc, gs, 0.25f, 6, 1e-4, 1e-4);
        free(gx), free(gs);
    }
    NB_FREE_ALL(x, sc, dy, y, dx, ds, oy, odx, ods, ry, rdx, rds);
}

/* ---- add, axpy, scale, sumsq ------------------------------------------------------------------
 */

/* y = a + b; alias 1: y is a's buffer, 2: b's. */
static void add_on(sq_backend *be, size_t n, const float *a, const float *b, int alias, float *y) {
    nb_fill(y, n, NAN);
    if (!NB_HAS(be, add)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt ad = nb_in(be, a, n), bd = nb_in(be, b, n);
    nb_dt yd = alias == 1 ? ad : alias == 2 ? bd : nb_out(be, n);
    if (nb_rc(be->add(be, (int64_t)n, nb_v(ad), nb_v(bd), nb_v(yd), &st), &st, "add"))
        nb_get(yd, y);
    nb_free(&ad), nb_free(&bd);
    if (!alias) nb_free(&yd);
}

/* op 0: y += alpha x (axpy); 1: y = alpha x (scale, alias: in place). */
static void axpy_on(sq_backend *be, int op, size_t n, float alpha, const float *x, const float *y0,
                    int alias, float *y) {
    nb_fill(y, n, NAN);
    if (op == 0 ? !NB_HAS(be, axpy) : !NB_HAS(be, scale)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), yd = op == 0 ? nb_in(be, y0, n) : alias ? xd : nb_out(be, n);
    const sq_code rc = op == 0 ? be->axpy(be, (int64_t)n, alpha, nb_v(xd), nb_v(yd), &st)
                               : be->scale(be, (int64_t)n, alpha, nb_v(xd), nb_v(yd), &st);
    if (nb_rc(rc, &st, op == 0 ? "axpy" : "scale")) nb_get(yd, y);
    nb_free(&xd);
    if (op == 0 || !alias) nb_free(&yd);
}

static void sumsq_on(sq_backend *be, size_t n, const float *x, float *out) {
    *out = NAN;
    if (!NB_HAS(be, sumsq)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), od = nb_out(be, 1);
    if (nb_rc(be->sumsq(be, (int64_t)n, nb_v(xd), nb_v(od), &st), &st, "sumsq")) nb_get(od, out);
    nb_free(&xd), nb_free(&od);
}

static void add_case(const nb_case *k) {
    const nb_vec_case *v = &k->u.vec;
    const size_t n = (size_t)v->n;
    static const char *an[] = {"y new", "y == a", "y == b"};
    if (!nb_begin("add", k->large, "n=%zu %s %s", n, an[v->alias], k->note ? k->note : "")) return;
    float *a = nb_rand_new(n, -1, 1, 81), *b = nb_rand_new(n, -1, 1, 82), *y = nb_alloc(n),
          *o = nb_alloc(n);
    double *r = nb_dalloc(n);
    for (size_t i = 0; i < n; i++)
        r[i] = (double)a[i] + b[i];
    if (nb.ref) add_on(nb.ref, n, a, b, v->alias, o);
    add_on(nb.be, n, a, b, v->alias, y);
    nb_check2("fwd", "y", y, o, r, n, X_ELEM, (nb_tol){1e-7, 1e-7, 0});
    NB_FREE_ALL(a, b, y, o, r);
}

static void axpy_case(const nb_case *k, int op) {
    const nb_vec_case *v = &k->u.vec;
    const size_t n = (size_t)v->n;
    if (!nb_begin(op == 0 ? "axpy" : "scale", k->large, "n=%zu alpha %g%s %s", n, (double)v->alpha,
                  op == 1 && v->alias ? " in place" : "", k->note ? k->note : ""))
        return;
    float *x = nb_rand_new(n, -1, 1, 83), *y0 = nb_rand_new(n, -1, 1, 84), *y = nb_alloc(n),
          *o = nb_alloc(n);
    double *r = nb_dalloc(n);
    for (size_t i = 0; i < n; i++)
        r[i] = (op == 0 ? (double)y0[i] : 0.0) + (double)v->alpha * x[i];
    if (nb.ref) axpy_on(nb.ref, op, n, v->alpha, x, y0, v->alias, o);
    axpy_on(nb.be, op, n, v->alpha, x, y0, v->alias, y);
    const nb_tol rt = op == 0 ? (nb_tol){1e-6, 1e-6, 0} : (nb_tol){0, 1e-7, 0};
    nb_check2("fwd", "y", y, o, r, n, X_ELEM, rt);
    NB_FREE_ALL(x, y0, y, o, r);
}

static void sumsq_case(const nb_case *k) {
    const size_t n = (size_t)k->u.vec.n;
    if (!nb_begin("sumsq", k->large, "n=%zu %s", n, k->note ? k->note : "")) return;
    float *x = nb_rand_new(n, -1, 1, 85), got, o = NAN;
    double r = 0;
    for (size_t i = 0; i < n; i++)
        r += (double)x[i] * x[i];
    if (nb.ref) sumsq_on(nb.ref, n, x, &o);
    sumsq_on(nb.be, n, x, &got);
    nb_check2("fwd", "out", &got, &o, &r, 1, (nb_tol){0, 1e-6, 0}, (nb_tol){0, 2e-7, 0});
    free(x);
}

/* ---- MSE
 * ------------------------------------------------------------------------------------------ */

static void mse_fwd_on(sq_backend *be, size_t n, const float *p, const float *t, float *loss) {
    *loss = NAN;
    if (!NB_HAS(be, mse_fwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt pd = nb_in(be, p, n), td = nb_in(be, t, n), ld = nb_out(be, 1);
    if (nb_rc(be->mse_fwd(be, (int64_t)n, nb_v(pd), nb_v(td), nb_v(ld), &st), &st, "mse_fwd"))
        nb_get(ld, loss);
    nb_free(&pd), nb_free(&td), nb_free(&ld);
}

static void mse_bwd_on(sq_backend *be, size_t n, const float *p, const float *t, float scale,
                       float *dp) {
    nb_fill(dp, n, NAN);
    if (!NB_HAS(be, mse_bwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt pd = nb_in(be, p, n), td = nb_in(be, t, n), dd = nb_out(be, n);
    if (nb_rc(be->mse_bwd(be, (int64_t)n, nb_v(pd), nb_v(td), scale, nb_v(dd), &st), &st,
              "mse_bwd"))
        nb_get(dd, dp);
    nb_free(&pd), nb_free(&td), nb_free(&dd);
}

typedef struct mse_fd {
    size_t n;
    float *p;
    const float *t;
    float scale;
} mse_fd;

static double mse_loss(void *v) {
    mse_fd *f = v;
    float l;
    mse_fwd_on(nb.be, f->n, f->p, f->t, &l);
    return (double)f->scale * l;
}

static void mse_case(const nb_case *k) {
    const nb_vec_case *v = &k->u.vec;
    const size_t n = (size_t)v->n;
    if (!nb_begin("mse", k->large, "n=%zu scale %g %s", n, (double)v->alpha,
                  k->note ? k->note : ""))
        return;
    float *p = nb_rand_new(n, 0, 1, 83), *t = nb_rand_new(n, 0, 1, 84), loss, ol = NAN;
    float *dp = nb_alloc(n), *odp = nb_alloc(n);
    double rl = 0, *rdp = nb_dalloc(n);
    for (size_t i = 0; i < n; i++) {
        rl += ((double)p[i] - t[i]) * ((double)p[i] - t[i]) / (double)n;
        rdp[i] = (double)v->alpha * 2.0 * ((double)p[i] - t[i]) / (double)n;
    }
    if (nb.ref) mse_fwd_on(nb.ref, n, p, t, &ol), mse_bwd_on(nb.ref, n, p, t, v->alpha, odp);
    mse_fwd_on(nb.be, n, p, t, &loss);
    nb_check2("fwd", "loss (mean)", &loss, &ol, &rl, 1, X_RED, (nb_tol){1e-7, 1e-6, 0});
    mse_bwd_on(nb.be, n, p, t, v->alpha, dp);
    nb_check2("bwd", "dpred", dp, odp, rdp, n, X_ELEM, (nb_tol){1e-8, 1e-6, 0});
    if (!k->large && !nb.ref) {
        mse_fd f = {n, p, t, v->alpha};
        double *g = nb_minus(dp, n, 0.0f);
        nb_fd("dpred", mse_loss, &f, p, n, g, 1e-2f, 5, 2e-4, 2e-4);
        free(g);
    }
    NB_FREE_ALL(p, t, dp, odp, rdp);
}

/* ---- Adam
 * ------------------------------------------------------------------------------------------ */

/* `steps` updates (t = 1..steps) on the same buffers, grads[t-1] each; params, m, v back. */
static void adam_on(sq_backend *be, const sq_adam *a0, int steps, size_t n, const float *p0,
                    float *const *grads, float *p, float *m, float *v) {
    nb_fill(p, n, NAN), nb_fill(m, n, NAN), nb_fill(v, n, NAN);
    if (!NB_HAS(be, adam)) return;
    sq_status st;
    sq_status_clear(&st);
    float *z = nb_alloc(n);
    nb_fill(z, n, 0.0f);
    nb_dt pd = nb_in(be, p0, n), md = nb_in(be, z, n), vd = nb_in(be, z, n), gd[8];
    int ok = 1;
    for (int t = 0; t < steps; t++)
        gd[t] = nb_in(be, grads[t], n);
    for (int t = 0; t < steps && ok; t++) {
        sq_adam a = *a0;
        a.step = t + 1;
        ok = nb_rc(be->adam(be, &a, (int64_t)n, nb_v(pd), nb_v(gd[t]), nb_v(md), nb_v(vd), &st),
                   &st, "adam");
    }
    if (ok) nb_get(pd, p), nb_get(md, m), nb_get(vd, v);
    for (int t = 0; t < steps; t++)
        nb_free(&gd[t]);
    nb_free(&pd), nb_free(&md), nb_free(&vd);
    free(z);
}

/* The float64 Adam of the contract (with the float hyper-parameters the op sees). */
static void adam_ref(const sq_adam *a, int steps, size_t n, const float *p0, float *const *grads,
                     double *p, double *m, double *v) {
    const double b1 = a->beta1, b2 = a->beta2, lr = a->lr, eps = a->eps, wd = a->weight_decay;
    for (size_t i = 0; i < n; i++)
        p[i] = p0[i], m[i] = 0, v[i] = 0;
    for (int t = 1; t <= steps; t++)
        for (size_t i = 0; i < n; i++) {
            const double g = grads[t - 1][i] + wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            const double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
            p[i] -= lr * mh / (sqrt(vh) + eps);
        }
}

static void adam_case(const nb_case *k) {
    const nb_vec_case *c = &k->u.vec;
    const size_t n = (size_t)c->n;
    const int steps = c->steps < 1 ? 1 : c->steps > 8 ? 8 : c->steps;
    if (!nb_begin("adam", k->large, "n=%zu steps %d wd %g %s", n, steps, (double)c->wd,
                  k->note ? k->note : ""))
        return;
    const sq_adam a = {2e-3f, 0.9f, 0.999f, 1e-8f, c->wd, 1};
    float *p0 = nb_rand_new(n, -1, 1, 91), *g[8];
    for (int t = 0; t < steps; t++)
        g[t] = nb_rand_new(n, -1, 1, 92 + (uint32_t)t);
    float *p = nb_alloc(n), *m = nb_alloc(n), *v = nb_alloc(n);
    float *op = nb_alloc(n), *om = nb_alloc(n), *ov = nb_alloc(n);
    double *rp = nb_dalloc(n), *rm = nb_dalloc(n), *rv = nb_dalloc(n);
    if (nb.ref)
        adam_on(nb.ref, &a, steps, n, p0, g, op, om, ov);
    else
        adam_ref(&a, steps, n, p0, g, rp, rm, rv);
    adam_on(nb.be, &a, steps, n, p0, g, p, m, v);
    nb_check2("step", "params", p, op, rp, n, X_ELEM, (nb_tol){1e-6, 1e-6, 0});
    nb_check2("step", "m", m, om, rm, n, X_ELEM, (nb_tol){1e-7, 1e-5, 0});
    nb_check2("step", "v", v, ov, rv, n, X_ELEM, (nb_tol){1e-9, 1e-5, 0});
    for (int t = 0; t < steps; t++)
        free(g[t]);
    NB_FREE_ALL(p0, p, m, v, op, om, ov, rp, rm, rv);
}

/* ---- dispatch ----------------------------------------------------------------------------------
 */

void nb_elem_run(const nb_case *k) {
    switch (k->op) {
    case NB_ACT: act_case(k); break;
    case NB_PRELU: prelu_case(k); break;
    case NB_GAP: gap_case(k); break;
    case NB_CHSCALE: chscale_case(k); break;
    case NB_ADD: add_case(k); break;
    case NB_AXPY: axpy_case(k, 0); break;
    case NB_SCALE: axpy_case(k, 1); break;
    case NB_SUMSQ: sumsq_case(k); break;
    case NB_MSE: mse_case(k); break;
    case NB_ADAM: adam_case(k); break;
    default: fail_msg("nb_elem_run: op %d is not element-wise", (int)k->op);
    }
}
