/* nb_conv.c — conformance driver of conv3d (dense) and dwconv3d (depthwise), forward and backward
 * (dx overwritten, dw/db accumulated onto 0.5, none views for the gradients not wanted).
 *
 * Oracles and tolerances (|got - ref| <= atol + rtol|ref| + mrel max|ref|):
 *  - float64 reference (cpu): forward and dx <= 1e-5 * max(1, K/125) + 1e-5|ref|, where K is the
 *    number of products behind one value (1e-5 covers 125 products of values in [-1, 1], as
 *    before; the 1x1x1 convolutions over 640 channels get proportionally more); dw and db <=
 *    1e-6 * terms + 1e-5 + 1e-5|ref| with terms = N*Do*Ho*Wo summed products. Small cases check
 *    every element; large (paper-shape) cases check 4096 sampled y and dx points, a sample of
 *    dw (about 4e7 reference products) and every db: the float64 reference of a whole stem
 *    convolution would cost minutes. Small cases are also checked with central finite differences
 *    (the ops are linear, h = 0.5): |fd - analytic| <= 2e-4 + 2e-4|analytic|.
 *  - oracle backend (cuda vs cpu): every element <= 1e-4 max|ref| (strict FP32, summation order
 *    differs between cuDNN/our kernels and oneDNN/our CPU kernels).
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

#define ACC0 0.5f /* accumulated gradients start here */

static const nb_tol X_CONV = {0, 0, 1e-4};

typedef struct conv_io {
    sq_conv3d p;
    int depthwise, bias, large;
    size_t nx, nw, ny, nb;
    float *x, *w, *b, *dy;
} conv_io;

/* ---- running the op on a backend (upload, call, download) -------------------------------- */

static void conv_fwd_on(sq_backend *be, const conv_io *c, float *y) {
    nb_fill(y, c->ny, NAN);
    if (c->depthwise ? !NB_HAS(be, dwconv3d_fwd) : !NB_HAS(be, conv3d_fwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt x = nb_in(be, c->x, c->nx), w = nb_in(be, c->w, c->nw), b = nb_in(be, c->b, c->nb),
          yd = nb_out(be, c->ny);
    const sq_view bv = c->bias ? nb_v(b) : sq_view_none();
    const sq_code rc = c->depthwise
                           ? be->dwconv3d_fwd(be, &c->p, nb_v(x), nb_v(w), bv, nb_v(yd), &st)
                           : be->conv3d_fwd(be, &c->p, nb_v(x), nb_v(w), bv, nb_v(yd), &st);
    if (nb_rc(rc, &st, c->depthwise ? "dwconv3d_fwd" : "conv3d_fwd")) nb_get(yd, y);
    nb_free(&x), nb_free(&w), nb_free(&b), nb_free(&yd);
}

/* Gradients wanted are non-NULL; dw and db come back accumulated onto ACC0. */
static void conv_bwd_on(sq_backend *be, const conv_io *c, float *dx, float *dw, float *db) {
    if (dx) nb_fill(dx, c->nx, NAN);
    if (dw) nb_fill(dw, c->nw, NAN);
    if (db) nb_fill(db, c->nb, NAN);
    if (c->depthwise ? !NB_HAS(be, dwconv3d_bwd) : !NB_HAS(be, conv3d_bwd)) return;
    sq_status st;
    sq_status_clear(&st);
    float *a0 = nb_alloc(c->nw > c->nb ? c->nw : c->nb);
    nb_fill(a0, c->nw > c->nb ? c->nw : c->nb, ACC0);
    nb_dt x = nb_in(be, c->x, c->nx), w = nb_in(be, c->w, c->nw), dyd = nb_in(be, c->dy, c->ny);
    nb_dt dxd = nb_out(be, c->nx), dwd = nb_in(be, a0, c->nw), dbd = nb_in(be, a0, c->nb);
    const sq_view vdx = dx ? nb_v(dxd) : sq_view_none(), vdw = dw ? nb_v(dwd) : sq_view_none(),
                  vdb = db ? nb_v(dbd) : sq_view_none();
    const sq_code rc =
        c->depthwise ? be->dwconv3d_bwd(be, &c->p, nb_v(x), nb_v(w), nb_v(dyd), vdx, vdw, vdb, &st)
                     : be->conv3d_bwd(be, &c->p, nb_v(x), nb_v(w), nb_v(dyd), vdx, vdw, vdb, &st);
    if (nb_rc(rc, &st, c->depthwise ? "dwconv3d_bwd" : "conv3d_bwd")) {
        if (dx) nb_get(dxd, dx);
        if (dw) nb_get(dwd, dw);
        if (db) nb_get(dbd, db);
    }
    nb_dt *all[] = {&x, &w, &dyd, &dxd, &dwd, &dbd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        nb_free(all[i]);
    free(a0);
}

/* ---- the expected values: oracle floats or sampled float64 references -------------------- */

typedef struct conv_expect {
    /* oracle backend */
    float *y, *dx, *dw, *db;
    /* float64: values at idx_* (NULL: every element), n_* of them */
    double *ry, *rdx, *rdw, *rdb;
    size_t *iy, *ix, *iw, ny, nx, nw;
    nb_tol ty, tx, tw;
} conv_expect;

static double *ref_at(const nb_conv_ref *r, double (*f)(const nb_conv_ref *, size_t),
                      const size_t *idx, size_t n, float base) {
    double *v = nb_dalloc(n);
    for (size_t k = 0; k < n; k++)
        v[k] = base + f(r, idx ? idx[k] : k);
    return v;
}

static double db_at(const nb_conv_ref *r, size_t i) {
    return nb_ref_conv_db(r, (int)i);
}

static void expect_ref(const conv_io *c, conv_expect *e) {
    const sq_shape5 o = sq_conv3d_out(&c->p);
    const int groups = c->depthwise ? c->p.in.c : 1;
    const nb_conv_ref r = {&c->p, groups, c->x, c->w, c->bias ? c->b : NULL, c->dy};
    const double kk = (double)c->p.k[0] * c->p.k[1] * c->p.k[2];
    const double Ky = kk * (c->p.in.c / groups), Kx = kk * (c->p.cout / groups);
    const double terms = (double)o.n * o.d * o.h * o.w;
    e->ty = (nb_tol){1e-5 * fmax(1.0, Ky / 125.0), 1e-5, 0};
    e->tx = (nb_tol){1e-5 * fmax(1.0, Kx / 125.0), 1e-5, 0};
    e->tw = (nb_tol){1e-6 * terms + 1e-5, 1e-5, 0};
    const size_t wmax = c->large ? (size_t)fmax(16.0, 4e7 / terms) : c->nw;
    e->iy = nb_sample(c->ny, c->large ? 4096 : c->ny, &e->ny);
    e->ix = nb_sample(c->nx, c->large ? 4096 : c->nx, &e->nx);
    e->iw = nb_sample(c->nw, wmax, &e->nw);
    e->ry = ref_at(&r, nb_ref_conv_y, e->iy, e->ny, 0.0f);
    e->rdx = ref_at(&r, nb_ref_conv_dx, e->ix, e->nx, 0.0f);
    e->rdw = ref_at(&r, nb_ref_conv_dw, e->iw, e->nw, ACC0);
    e->rdb = ref_at(&r, db_at, NULL, c->nb, ACC0);
}

static void expect_oracle(const conv_io *c, conv_expect *e) {
    e->y = nb_alloc(c->ny), e->dx = nb_alloc(c->nx), e->dw = nb_alloc(c->nw);
    e->db = nb_alloc(c->nb);
    conv_fwd_on(nb.ref, c, e->y);
    conv_bwd_on(nb.ref, c, e->dx, e->dw, c->bias ? e->db : NULL);
}

static void expect_free(conv_expect *e) {
    NB_FREE_ALL(e->y, e->dx, e->dw, e->db, e->ry, e->rdx, e->rdw, e->rdb, e->iy, e->ix, e->iw);
}

static void check_y(const conv_io *c, const conv_expect *e, const float *y) {
    if (nb.ref)
        nb_check_f("fwd", "y", y, e->y, c->ny, X_CONV);
    else
        nb_check("fwd", "y", y, e->ry, e->iy, e->ny, e->ty);
}

static void check_grads(const conv_io *c, const conv_expect *e, const char *v, const float *dx,
                        const float *dw, const float *db) {
    char n[48];
    if (dx) {
        snprintf(n, sizeof n, "dx%s", v);
        if (nb.ref)
            nb_check_f("bwd", n, dx, e->dx, c->nx, X_CONV);
        else
            nb_check("bwd", n, dx, e->rdx, e->ix, e->nx, e->tx);
    }
    if (dw) {
        snprintf(n, sizeof n, "dw(acc)%s", v);
        if (nb.ref)
            nb_check_f("bwd", n, dw, e->dw, c->nw, X_CONV);
        else
            nb_check("bwd", n, dw, e->rdw, e->iw, e->nw, e->tw);
    }
    if (db) {
        snprintf(n, sizeof n, "db(acc)%s", v);
        if (nb.ref)
            nb_check_f("bwd", n, db, e->db, c->nb, X_CONV);
        else
            nb_check("bwd", n, db, e->rdb, NULL, c->nb, e->tw);
    }
}

/* ---- finite differences (float64-reference mode, small cases) ----------------------------- */

typedef struct conv_fd {
    const conv_io *c;
    float *y;
} conv_fd;

static double conv_loss(void *v) {
    conv_fd *f = v;
    conv_fwd_on(nb.be, f->c, f->y);
    return nb_dot(f->y, f->c->dy, f->c->ny);
}

static void conv_fd_checks(const conv_io *c, const float *dx, const float *dw, const float *db) {
    conv_fd f = {c, nb_alloc(c->ny)};
    double *gx = nb_minus(dx, c->nx, 0.0f), *gw = nb_minus(dw, c->nw, ACC0);
    nb_fd("dx", conv_loss, &f, c->x, c->nx, gx, 0.5f, 12, 2e-4, 2e-4);
    nb_fd("dw", conv_loss, &f, c->w, c->nw, gw, 0.5f, 12, 2e-4, 2e-4);
    if (c->bias) {
        double *gb = nb_minus(db, c->nb, ACC0);
        nb_fd("db", conv_loss, &f, c->b, c->nb, gb, 0.5f, 4, 2e-4, 2e-4);
        free(gb);
    }
    free(gx), free(gw), free(f.y);
}

/* ---- one case ----------------------------------------------------------------------------------
 */

static conv_io conv_setup(const nb_case *k) {
    const nb_conv_case *cc = &k->u.conv;
    conv_io c = {.p = {.in = {cc->n, cc->c, cc->d, cc->h, cc->w}, .cout = cc->cout}};
    for (int a = 0; a < 3; a++) {
        c.p.k[a] = cc->k[a];
        c.p.stride[a] = cc->s[a];
        c.p.pad[a] = cc->p[a];
    }
    c.depthwise = k->op == NB_DWCONV3D;
    c.bias = cc->bias;
    c.large = k->large;
    const int cig = c.depthwise ? 1 : cc->c;
    c.nx = (size_t)sq_shape5_numel(c.p.in);
    c.ny = (size_t)sq_shape5_numel(sq_conv3d_out(&c.p));
    c.nw = (size_t)cc->cout * cig * cc->k[0] * cc->k[1] * cc->k[2];
    c.nb = (size_t)cc->cout;
    c.x = nb_rand_new(c.nx, -1, 1, 1);
    c.w = nb_rand_new(c.nw, -1, 1, 2);
    c.b = nb_rand_new(c.nb, -1, 1, 3);
    c.dy = nb_rand_new(c.ny, -1, 1, 4);
    return c;
}

/* The none-view variants of the backward pass: dx alone, and dw alone. */
static void conv_partial(const conv_io *c, const conv_expect *e) {
    float *dx = nb_alloc(c->nx), *dw = nb_alloc(c->nw);
    conv_bwd_on(nb.be, c, dx, NULL, NULL);
    check_grads(c, e, " dx only", dx, NULL, NULL);
    conv_bwd_on(nb.be, c, NULL, dw, NULL);
    check_grads(c, e, " dw only", NULL, dw, NULL);
    free(dx), free(dw);
}

void nb_conv_run(const nb_case *k) {
    const nb_conv_case *cc = &k->u.conv;
    if (!nb_begin(nb_op_name(k->op), k->large,
                  "%dx%dx%dx%dx%d->%d k%d,%d,%d s%d,%d,%d p%d,%d,%d%s %s", cc->n, cc->c, cc->d,
                  cc->h, cc->w, cc->cout, cc->k[0], cc->k[1], cc->k[2], cc->s[0], cc->s[1],
                  cc->s[2], cc->p[0], cc->p[1], cc->p[2], cc->bias ? " bias" : "",
                  k->note ? k->note : ""))
        return;
    conv_io c = conv_setup(k);
    conv_expect e = {0};
    if (nb.ref)
        expect_oracle(&c, &e);
    else
        expect_ref(&c, &e);
    float *y = nb_alloc(c.ny), *dx = nb_alloc(c.nx), *dw = nb_alloc(c.nw), *db = nb_alloc(c.nb);
    conv_fwd_on(nb.be, &c, y);
    check_y(&c, &e, y);
    conv_bwd_on(nb.be, &c, dx, dw, c.bias ? db : NULL);
    check_grads(&c, &e, "", dx, dw, c.bias ? db : NULL);
    if (!k->large) conv_partial(&c, &e);
    if (!k->large && !nb.ref) conv_fd_checks(&c, dx, dw, db);
    expect_free(&e);
    NB_FREE_ALL(y, dx, dw, db, c.x, c.w, c.b, c.dy);
}
