/* nb_spatial.c — conformance drivers of maxpool3d (floor and ceil mode, padding, anisotropic
 * strides, first-max routing of ties), resize3d (nearest, non-integer ratios up and down) and
 * fuse (fast normalised fusion of k = 2, 3 inputs, negative weights; a none view among dxs).
 *
 * Oracles and tolerances (|got - ref| <= atol + rtol|ref| + mrel max|ref|):
 *  - float64 reference (cpu): pooling and resize forwards are copies (<= 1e-7|ref|), their
 *    backwards (routing, scatter-add) <= 1e-6 + 1e-6|ref|; fusion y and dxs <= 1e-6 + 2e-6|ref|,
 *    dw <= 1e-6 * n + 1e-5 + 1e-5|ref|. Small cases also against central finite differences:
 *    pooling h = 1e-3 on values 0.01 apart (no ties), resize and fusion inputs h = 0.25, all
 *    <= 1e-4 + 1e-4|an|; fusion weights h = 1e-3, <= 2e-3 + 2e-3|an|.
 *  - oracle backend (cuda vs cpu): pooling and resize forwards bit-exact (they copy); backwards
 *    and fusion dw <= 1e-5|ref| + 1e-5 max|ref| (sums in another order); fusion y, dxs <=
 *    1e-6|ref| + 1e-6 max|ref|.
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

static const nb_tol X_EXACT = {0, 0, 0}, X_ELEM = {0, 1e-6, 1e-6}, X_RED = {0, 1e-5, 1e-5};

/* ---- max pooling ------------------------------------------------------------------------------
 */

static void pool_fwd_on(sq_backend *be, const sq_pool3d *p, const float *x, float *y) {
    const size_t n = (size_t)sq_shape5_numel(p->in), no = (size_t)sq_shape5_numel(sq_pool3d_out(p));
    nb_fill(y, no, NAN);
    if (!NB_HAS(be, maxpool3d_fwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), yd = nb_out(be, no);
    if (nb_rc(be->maxpool3d_fwd(be, p, nb_v(xd), nb_v(yd), &st), &st, "maxpool3d_fwd"))
        nb_get(yd, y);
    nb_free(&xd), nb_free(&yd);
}

static void pool_bwd_on(sq_backend *be, const sq_pool3d *p, const float *x, const float *dy,
                        float *dx) {
    const size_t n = (size_t)sq_shape5_numel(p->in), no = (size_t)sq_shape5_numel(sq_pool3d_out(p));
    nb_fill(dx, n, NAN);
    if (!NB_HAS(be, maxpool3d_bwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), dyd = nb_in(be, dy, no), dxd = nb_out(be, n);
    if (nb_rc(be->maxpool3d_bwd(be, p, nb_v(xd), nb_v(dyd), nb_v(dxd), &st), &st, "maxpool3d_bwd"))
        nb_get(dxd, dx);
    nb_free(&xd), nb_free(&dyd), nb_free(&dxd);
}

typedef struct sp_fd {
    const sq_pool3d *pool;
    const sq_resize3d *rs;
    int k;
    sq_shape5 s;
    float **xs, *w, *y;
    const float *r;
    size_t ny;
} sp_fd;

static void rs_fwd_on(sq_backend *be, const sq_resize3d *p, const float *x, float *y);
static void fuse_fwd_on(sq_backend *be, sq_shape5 s, int k, float *const *xs, const float *w,
                        float *y);

static double sp_loss(void *v) {
    sp_fd *f = v;
    if (f->pool) pool_fwd_on(nb.be, f->pool, f->xs[0], f->y);
    if (f->rs) rs_fwd_on(nb.be, f->rs, f->xs[0], f->y);
    if (!f->pool && !f->rs) fuse_fwd_on(nb.be, f->s, f->k, f->xs, f->w, f->y);
    return nb_dot(f->y, f->r, f->ny);
}

/* Distinct values 0.01 apart (a permutation), or three levels with many ties. */
static float *pool_input(size_t n, int ties) {
    float *x = nb_alloc(n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((i * 7919) % n) * 0.01f - 1.0f;
    if (ties)
        for (size_t i = 0; i < n; i++)
            x[i] = floorf((x[i] + 1.0f) * 3.0f / ((float)n * 0.01f));
    return x;
}

static void pool_case(const nb_case *k) {
    const sq_pool3d *p = &k->u.pool.p;
    const sq_shape5 s = p->in, o = sq_pool3d_out(p);
    if (!nb_begin("maxpool", k->large,
                  "%dx%dx%dx%dx%d k%d,%d,%d s%d,%d,%d p%d,%d,%d %s -> %dx%dx%d%s %s", s.n, s.c, s.d,
                  s.h, s.w, p->k[0], p->k[1], p->k[2], p->stride[0], p->stride[1], p->stride[2],
                  p->pad[0], p->pad[1], p->pad[2], p->ceil_mode ? "ceil" : "floor", o.d, o.h, o.w,
                  k->u.pool.ties ? " ties" : "", k->note ? k->note : ""))
        return;
    const size_t n = (size_t)sq_shape5_numel(s), no = (size_t)sq_shape5_numel(o);
    float *x = pool_input(n, k->u.pool.ties), *dy = nb_rand_new(no, -1, 1, 51);
    float *y = nb_alloc(no), *dx = nb_alloc(n), *oy = nb_alloc(no), *odx = nb_alloc(n);
    double *ry = nb_dalloc(no), *rdx = nb_dalloc(n);
    if (nb.ref)
        pool_fwd_on(nb.ref, p, x, oy), pool_bwd_on(nb.ref, p, x, dy, odx);
    else
        nb_ref_pool(p, x, dy, ry, rdx);
    pool_fwd_on(nb.be, p, x, y);
    nb_check2("fwd", "y", y, oy, ry, no, X_EXACT, (nb_tol){0, 1e-7, 0});
    pool_bwd_on(nb.be, p, x, dy, dx);
    nb_check2("bwd", "dx (first max)", dx, odx, rdx, n, X_RED, (nb_tol){1e-6, 1e-6, 0});
    if (!k->large && !nb.ref && !k->u.pool.ties) {
        sp_fd f = {.pool = p, .xs = &x, .y = y, .r = dy, .ny = no};
        double *g = nb_minus(dx, n, 0.0f);
        nb_fd("dx", sp_loss, &f, x, n, g, 1e-3f, 60, 1e-4, 1e-4);
        free(g);
    }
    NB_FREE_ALL(x, dy, y, dx, oy, odx, ry, rdx);
}

/* ---- nearest resize ----------------------------------------------------------------------------
 */

static size_t rs_out_n(const sq_resize3d *p) {
    return (size_t)p->in.n * p->in.c * p->out[0] * p->out[1] * p->out[2];
}

static void rs_fwd_on(sq_backend *be, const sq_resize3d *p, const float *x, float *y) {
    const size_t n = (size_t)sq_shape5_numel(p->in), no = rs_out_n(p);
    nb_fill(y, no, NAN);
    if (!NB_HAS(be, resize3d_fwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd = nb_in(be, x, n), yd = nb_out(be, no);
    if (nb_rc(be->resize3d_fwd(be, p, nb_v(xd), nb_v(yd), &st), &st, "resize3d_fwd")) nb_get(yd, y);
    nb_free(&xd), nb_free(&yd);
}

static void rs_bwd_on(sq_backend *be, const sq_resize3d *p, const float *dy, float *dx) {
    const size_t n = (size_t)sq_shape5_numel(p->in), no = rs_out_n(p);
    nb_fill(dx, n, NAN);
    if (!NB_HAS(be, resize3d_bwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt dyd = nb_in(be, dy, no), dxd = nb_out(be, n);
    if (nb_rc(be->resize3d_bwd(be, p, nb_v(dyd), nb_v(dxd), &st), &st, "resize3d_bwd"))
        nb_get(dxd, dx);
    nb_free(&dyd), nb_free(&dxd);
}

static void rs_case(const nb_case *k) {
    const sq_resize3d *p = &k->u.rs;
    const sq_shape5 s = p->in;
    if (!nb_begin("resize", k->large, "%dx%dx%dx%dx%d -> %dx%dx%d %s", s.n, s.c, s.d, s.h, s.w,
                  p->out[0], p->out[1], p->out[2], k->note ? k->note : ""))
        return;
    const size_t n = (size_t)sq_shape5_numel(s), no = rs_out_n(p);
    float *x = nb_rand_new(n, -1, 1, 61), *dy = nb_rand_new(no, -1, 1, 62);
    float *y = nb_alloc(no), *dx = nb_alloc(n), *oy = nb_alloc(no), *odx = nb_alloc(n);
    double *ry = nb_dalloc(no), *rdx = nb_dalloc(n);
    if (nb.ref)
        rs_fwd_on(nb.ref, p, x, oy), rs_bwd_on(nb.ref, p, dy, odx);
    else
        nb_ref_resize(p, x, dy, ry, rdx);
    rs_fwd_on(nb.be, p, x, y);
    nb_check2("fwd", "y", y, oy, ry, no, X_EXACT, (nb_tol){0, 1e-7, 0});
    rs_bwd_on(nb.be, p, dy, dx);
    nb_check2("bwd", "dx (scatter-add)", dx, odx, rdx, n, X_RED, (nb_tol){1e-6, 1e-6, 0});
    if (!k->large && !nb.ref) {
        sp_fd f = {.rs = p, .xs = &x, .y = y, .r = dy, .ny = no};
        double *g = nb_minus(dx, n, 0.0f);
        nb_fd("dx", sp_loss, &f, x, n, g, 0.25f, 40, 1e-4, 1e-4);
        free(g);
    }
    NB_FREE_ALL(x, dy, y, dx, oy, odx, ry, rdx);
}

/* ---- fast normalised fusion -------------------------------------------------------------------
 */

static void fuse_fwd_on(sq_backend *be, sq_shape5 s, int k, float *const *xs, const float *w,
                        float *y) {
    const size_t n = (size_t)sq_shape5_numel(s);
    nb_fill(y, n, NAN);
    if (!NB_HAS(be, fuse_fwd)) return;
    sq_status st;
    sq_status_clear(&st);
    nb_dt xd[8], wd = nb_in(be, w, (size_t)k), yd = nb_out(be, n);
    sq_view xv[8];
    for (int i = 0; i < k; i++)
        xd[i] = nb_in(be, xs[i], n), xv[i] = nb_v(xd[i]);
    if (nb_rc(be->fuse_fwd(be, s, k, xv, nb_v(wd), nb_v(yd), &st), &st, "fuse_fwd")) nb_get(yd, y);
    for (int i = 0; i < k; i++)
        nb_free(&xd[i]);
    nb_free(&wd), nb_free(&yd);
}

/* dxs[i] NULL: a none view; dw comes back accumulated onto ACC0. */
static void fuse_bwd_on(sq_backend *be, sq_shape5 s, int k, float *const *xs, const float *w,
                        const float *dy, float **dxs, float *dw) {
    const size_t n = (size_t)sq_shape5_numel(s);
    for (int i = 0; i < k; i++)
        if (dxs[i]) nb_fill(dxs[i], n, NAN);
    nb_fill(dw, (size_t)k, NAN);
    if (!NB_HAS(be, fuse_bwd)) return;
    sq_status st;
    sq_status_clear(&st);
    float a0[8];
    nb_fill(a0, (size_t)k, ACC0);
    nb_dt xd[8], dxd[8], wd = nb_in(be, w, (size_t)k), dyd = nb_in(be, dy, n),
                         dwd = nb_in(be, a0, (size_t)k);
    sq_view xv[8], dxv[8];
    for (int i = 0; i < k; i++) {
        xd[i] = nb_in(be, xs[i], n), dxd[i] = nb_out(be, n);
        xv[i] = nb_v(xd[i]), dxv[i] = dxs[i] ? nb_v(dxd[i]) : sq_view_none();
    }
    if (nb_rc(be->fuse_bwd(be, s, k, xv, nb_v(wd), nb_v(dyd), dxv, nb_v(dwd), &st), &st,
              "fuse_bwd")) {
        for (int i = 0; i < k; i++)
            if (dxs[i]) nb_get(dxd[i], dxs[i]);
        nb_get(dwd, dw);
    }
    for (int i = 0; i < k; i++)
        nb_free(&xd[i]), nb_free(&dxd[i]);
    nb_free(&wd), nb_free(&dyd), nb_free(&dwd);
}

typedef struct fuse_data {
    size_t n;
    int k;
    float *xs[8], *dx[8], *odx[8];
    double *rdx[8];
} fuse_data;

static void fuse_data_free(fuse_data *d) {
    for (int i = 0; i < d->k; i++)
        NB_FREE_ALL(d->xs[i], d->dx[i], d->odx[i], d->rdx[i]);
}

static void fuse_checks_dx(const fuse_data *d, const char *v, int skip) {
    char nm[40];
    for (int i = 0; i < d->k; i++) {
        if (i == skip) continue;
        snprintf(nm, sizeof nm, "dx%d%s", i, v);
        nb_check2("bwd", nm, d->dx[i], d->odx[i], d->rdx[i], d->n, X_ELEM, (nb_tol){1e-6, 2e-6, 0});
    }
}

static void fuse_fd_checks(const nb_case *c, fuse_data *d, float *w, float *y, const float *dy,
                           const float *dw) {
    const nb_fuse_case *f = &c->u.fuse;
    sp_fd fd = {.k = f->k, .s = f->s, .xs = d->xs, .w = w, .y = y, .r = dy, .ny = d->n};
    for (int i = 0; i < f->k; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "dx%d", i);
        double *g = nb_minus(d->dx[i], d->n, 0.0f);
        nb_fd(nm, sp_loss, &fd, d->xs[i], d->n, g, 0.25f, 20, 1e-4, 1e-4);
        free(g);
    }
    double *gw = nb_minus(dw, (size_t)f->k, ACC0);
    nb_fd("dw (0 where w <= 0)", sp_loss, &fd, w, (size_t)f->k, gw, 1e-3f, f->k, 2e-3, 2e-3);
    free(gw);
}

static void fuse_case(const nb_case *c) {
    const nb_fuse_case *f = &c->u.fuse;
    const sq_shape5 s = f->s;
    char ws[96];
    int at = 0;
    for (int i = 0; i < f->k && at < (int)sizeof ws - 12; i++)
        at += snprintf(ws + at, sizeof ws - (size_t)at, "%s%g", i ? "," : "", (double)f->w[i]);
    if (!nb_begin("fuse", c->large, "%dx%dx%dx%dx%d k=%d w %s %s", s.n, s.c, s.d, s.h, s.w, f->k,
                  ws, c->note ? c->note : ""))
        return;
    fuse_data d = {(size_t)sq_shape5_numel(s), f->k, {0}, {0}, {0}, {0}};
    float w[8], dw[8], odw[8];
    memcpy(w, f->w, sizeof w);
    for (int i = 0; i < f->k; i++) {
        d.xs[i] = nb_rand_new(d.n, -1, 1, 70 + (uint32_t)i);
        d.dx[i] = nb_alloc(d.n), d.odx[i] = nb_alloc(d.n), d.rdx[i] = nb_dalloc(d.n);
    }
    float *dy = nb_rand_new(d.n, -1, 1, 79), *y = nb_alloc(d.n), *oy = nb_alloc(d.n);
    double *ry = nb_dalloc(d.n), rdw[8];
    nb_ref_fuse(d.n, f->k, (const float *const *)d.xs, w, dy, ry, d.rdx, rdw);
    for (int i = 0; i < f->k; i++)
        rdw[i] += ACC0;
    if (nb.ref)
        fuse_fwd_on(nb.ref, s, f->k, d.xs, w, oy),
            fuse_bwd_on(nb.ref, s, f->k, d.xs, w, dy, d.odx, odw);
    fuse_fwd_on(nb.be, s, f->k, d.xs, w, y);
    nb_check2("fwd", "y", y, oy, ry, d.n, X_ELEM, (nb_tol){1e-6, 2e-6, 0});
    fuse_bwd_on(nb.be, s, f->k, d.xs, w, dy, d.dx, dw);
    fuse_checks_dx(&d, "", -1);
    nb_check2("bwd", "dw(acc)", dw, odw, rdw, (size_t)f->k, X_RED,
              (nb_tol){1e-6 * (double)d.n + 1e-5, 1e-5, 0});
    if (!c->large) { /* dxs[0] a none view */
        float *keep = d.dx[0];
        d.dx[0] = NULL;
        fuse_bwd_on(nb.be, s, f->k, d.xs, w, dy, d.dx, dw);
        d.dx[0] = keep;
        fuse_checks_dx(&d, " (dx0 none)", 0);
    }
    if (!c->large && !nb.ref) {
        fuse_bwd_on(nb.be, s, f->k, d.xs, w, dy, d.dx, dw);
        fuse_fd_checks(c, &d, w, y, dy, dw);
    }
    fuse_data_free(&d);
    NB_FREE_ALL(dy, y, oy, ry);
}

/* ---- dispatch ----------------------------------------------------------------------------------
 */

void nb_spatial_run(const nb_case *k) {
    switch (k->op) {
    case NB_MAXPOOL: pool_case(k); break;
    case NB_RESIZE: rs_case(k); break;
    case NB_FUSE: fuse_case(k); break;
    default: fail_msg("nb_spatial_run: op %d is not spatial", (int)k->op);
    }
}
