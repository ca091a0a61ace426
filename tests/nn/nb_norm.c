/* nb_norm.c — conformance driver of bn_fwd / bn_bwd: training and inference, fused activation
 * (none / relu / swish), fused residual add, running-statistics update or none running views,
 * and synchronised statistics through an sq_bn_sync callback that doubles every sum on the
 * backend's own memory (download, x2, upload): two identical ranks, so the batch statistics stay
 * those of the local batch while the group count doubles (running_var's unbiased factor 2M/(2M-1)
 * shows it), and the callback must be called twice per forward and once per backward.
 *
 * The backward gets save_mean / save_invstd computed on the host (float64, rounded), so both
 * backends see identical inputs.
 *
 * Oracles and tolerances (|got - ref| <= atol + rtol|ref| + mrel max|ref|):
 *  - float64 reference (cpu): y <= 2e-6 g + 1e-5|ref|; running stats and save_* <= 1e-6 +
 *    2e-6|ref|; dx (analytic) <= 1e-5 g + 1e-5|ref|; dgamma, dbeta <= 1e-6 * M + 1e-5 + 1e-5|ref|
 *    (M = N*D*H*W summed terms). g = max(1, max_c gamma_c * invstd_c) is how much the op
 *    amplifies the float rounding of x - mean: below 1 for spread data, up to 1/sqrt(eps) = 32 for
 *    a channel of 2 close values (the 2x640x1x1x1 SE-sized case). Small cases also against central
 * finite differences of the float forward: dx and dgamma h = 1e-2, dbeta h = 1e-3, |fd - an| <=
 * 2e-3 + 2e-3|an| (the forward's float rounding divided by 2h dominates); not dx/dgamma through
 * ReLU (kinks).
 *  - oracle backend (cuda vs cpu): everything <= 1e-5|ref| + 1e-5 max|ref| (reductions), plus
 *    for y an absolute 2e-6 g and for dgamma/dbeta 2e-6 g sqrt(M) (the amplified rounding of
 *    either backend, summed over M terms for the parameter gradients).
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

static const nb_tol X_RED = {0, 1e-5, 1e-5};

/* ---- the synchronisation callback: two identical ranks ------------------------------------ */

typedef struct sync_ctx {
    int calls;
} sync_ctx;

static sq_code sync_double(void *ctx, sq_backend *be, sq_buf *buf, size_t off, int n,
                           sq_status *st) {
    ((sync_ctx *)ctx)->calls++;
    double *h = malloc((size_t)(n > 0 ? n : 1) * sizeof *h);
    if (!h) return sq_fail(st, SQ_ERR_NOMEM, "sync_double: out of memory");
    sq_code rc = be->download(be, h, buf, off, (size_t)n * sizeof *h, st);
    for (int i = 0; rc == SQ_OK && i < n; i++)
        h[i] *= 2.0;
    if (rc == SQ_OK) rc = be->upload(be, buf, off, h, (size_t)n * sizeof *h, st);
    if (rc == SQ_OK) rc = be->sync(be, st); /* h must outlive the upload */
    free(h);
    return rc;
}

/* ---- host tensors of one case -------------------------------------------------------------- */

typedef struct bn_io {
    sq_bn p;
    nb_bn_case cc;
    size_t n, C;
    float *x, *g, *b, *rm, *rv, *res, *dy, *sm, *si;
    nb_bn_ref_in ri;
} bn_io;

typedef struct bn_out {
    float *y, *rm, *rv, *sm, *si;
} bn_out;

static bn_out out_new(const bn_io *c) {
    bn_out o = {nb_alloc(c->n), nb_alloc(c->C), nb_alloc(c->C), nb_alloc(c->C), nb_alloc(c->C)};
    return o;
}

static void out_free(bn_out *o) {
    free(o->y), free(o->rm), free(o->rv), free(o->sm), free(o->si);
}

/* The sync callback's call count against the contract (2 per forward, 1 per backward). */
static void check_calls(const char *dir, int calls, int want) {
    char nm[64];
    snprintf(nm, sizeof nm, "sync callback called %d times (contract %d)", calls, want);
    nb_expect(dir, nm, calls == want);
}

/* ---- running the ops on a backend ---------------------------------------------------------- */

/* upd: pass the running views (training with running updates; always in inference). */
static void bn_fwd_on(sq_backend *be, const bn_io *c, int upd, bn_out *o) {
    nb_fill(o->y, c->n, NAN), nb_fill(o->sm, c->C, NAN), nb_fill(o->si, c->C, NAN);
    memcpy(o->rm, c->rm, c->C * sizeof(float)), memcpy(o->rv, c->rv, c->C * sizeof(float));
    if (!NB_HAS(be, bn_fwd)) return;
    sq_status st;
    sq_status_clear(&st);
    sync_ctx sc = {0};
    const sq_bn_sync sync = {sync_double, &sc};
    sq_bn p = c->p;
    p.sync = c->cc.sync ? &sync : NULL;
    nb_dt x = nb_in(be, c->x, c->n), g = nb_in(be, c->g, c->C), b = nb_in(be, c->b, c->C),
          rm = nb_in(be, c->rm, c->C), rv = nb_in(be, c->rv, c->C), res = nb_in(be, c->res, c->n),
          y = nb_out(be, c->n), sm = nb_out(be, c->C), si = nb_out(be, c->C);
    const int run = !p.training || upd;
    const sq_code rc =
        be->bn_fwd(be, &p, nb_v(x), nb_v(g), nb_v(b), run ? nb_v(rm) : sq_view_none(),
                   run ? nb_v(rv) : sq_view_none(), c->cc.residual ? nb_v(res) : sq_view_none(),
                   nb_v(y), nb_v(sm), nb_v(si), &st);
    if (nb_rc(rc, &st, "bn_fwd")) {
        nb_get(y, o->y), nb_get(sm, o->sm), nb_get(si, o->si);
        if (run) nb_get(rm, o->rm), nb_get(rv, o->rv);
    }
    if (be == nb.be && p.sync && p.training && upd) check_calls("fwd", sc.calls, 2);
    nb_dt *all[] = {&x, &g, &b, &rm, &rv, &res, &y, &sm, &si};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        nb_free(all[i]);
}

/* dgamma and dbeta come back accumulated onto ACC0. */
static void bn_bwd_on(sq_backend *be, const bn_io *c, float *dx, float *dg, float *db) {
    nb_fill(dx, c->n, NAN), nb_fill(dg, c->C, NAN), nb_fill(db, c->C, NAN);
    if (!NB_HAS(be, bn_bwd)) return;
    sq_status st;
    sq_status_clear(&st);
    sync_ctx sc = {0};
    const sq_bn_sync sync = {sync_double, &sc};
    sq_bn p = c->p;
    p.sync = c->cc.sync ? &sync : NULL;
    float *a0 = nb_alloc(c->C);
    nb_fill(a0, c->C, ACC0);
    nb_dt x = nb_in(be, c->x, c->n), g = nb_in(be, c->g, c->C), b = nb_in(be, c->b, c->C),
          sm = nb_in(be, c->sm, c->C), si = nb_in(be, c->si, c->C), dy = nb_in(be, c->dy, c->n),
          dxd = nb_out(be, c->n), dgd = nb_in(be, a0, c->C), dbd = nb_in(be, a0, c->C);
    const sq_code rc = be->bn_bwd(be, &p, nb_v(x), nb_v(g), nb_v(b), nb_v(sm), nb_v(si), nb_v(dy),
                                  nb_v(dxd), nb_v(dgd), nb_v(dbd), &st);
    if (nb_rc(rc, &st, "bn_bwd")) nb_get(dxd, dx), nb_get(dgd, dg), nb_get(dbd, db);
    if (be == nb.be && p.sync && p.training) check_calls("bwd", sc.calls, 1);
    nb_dt *all[] = {&x, &g, &b, &sm, &si, &dy, &dxd, &dgd, &dbd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        nb_free(all[i]);
    free(a0);
}

/* ---- checks -------------------------------------------------------------------------------------
 */

/* max over channels of gamma * invstd: how much y and dx amplify the rounding of x - mean (about
 * 0.7 for unit variance; up to 1/sqrt(eps) = 32 where a channel has 2 values close together). */
static double gain(const bn_io *c) {
    double k = 1.0;
    for (size_t i = 0; i < c->C; i++)
        k = fmax(k, fabs((double)c->g[i] * c->si[i]));
    return k;
}

/* y's absolute tolerance: 2e-6 of the gain, plus, for an offset input, the float rounding of
 * a * x + b at that magnitude (several roundings of 1.2e-7 |offset|; the kernels' operation order,
 * FMA or not, differs between builds). */
static double y_atol(const bn_io *c) {
    return (2e-6 + 1e-6 * fabs((double)c->cc.offset)) * gain(c);
}

static void check_fwd(const bn_io *c, const bn_out *o) {
    const nb_tol ty = {y_atol(c), 1e-5, 0}, ts = {1e-6, 2e-6, 0};
    const int upd = !c->cc.training || c->cc.running;
    if (nb.ref) {
        bn_out r = out_new(c);
        bn_fwd_on(nb.ref, c, 1, &r);
        nb_check_f("fwd", "y", o->y, r.y, c->n, (nb_tol){y_atol(c), 1e-5, 1e-5});
        if (upd) nb_check_f("fwd", "running_mean", o->rm, r.rm, c->C, X_RED);
        if (upd) nb_check_f("fwd", "running_var", o->rv, r.rv, c->C, X_RED);
        nb_check_f("fwd", "save_mean", o->sm, r.sm, c->C, X_RED);
        nb_check_f("fwd", "save_invstd", o->si, r.si, c->C, X_RED);
        out_free(&r);
        return;
    }
    double *y = nb_dalloc(c->n), *rm = nb_dalloc(c->C), *rv = nb_dalloc(c->C),
           *sm = nb_dalloc(c->C), *si = nb_dalloc(c->C);
    nb_ref_bn_fwd(&c->ri, y, rm, rv, sm, si);
    nb_check("fwd", "y", o->y, y, NULL, c->n, ty);
    if (upd) nb_check("fwd", "running_mean", o->rm, rm, NULL, c->C, ts);
    if (upd) nb_check("fwd", "running_var(unb)", o->rv, rv, NULL, c->C, ts);
    nb_check("fwd", "save_mean", o->sm, sm, NULL, c->C, ts);
    nb_check("fwd", "save_invstd", o->si, si, NULL, c->C, ts);
    free(y), free(rm), free(rv), free(sm), free(si);
}

static void check_bwd(const bn_io *c, const float *dx, const float *dg, const float *db) {
    if (nb.ref) {
        float *rx = nb_alloc(c->n), *rg = nb_alloc(c->C), *rb = nb_alloc(c->C);
        bn_bwd_on(nb.ref, c, rx, rg, rb);
        const nb_tol tp = {2e-6 * gain(c) * sqrt((double)c->n / (double)c->C), 1e-5, 1e-5};
        nb_check_f("bwd", "dx", dx, rx, c->n, X_RED);
        nb_check_f("bwd", "dgamma(acc)", dg, rg, c->C, tp);
        nb_check_f("bwd", "dbeta(acc)", db, rb, c->C, tp);
        free(rx), free(rg), free(rb);
        return;
    }
    const double M = (double)c->n / (double)c->C;
    const nb_tol tx = {1e-5 * gain(c), 1e-5, 0}, tp = {1e-6 * M + 1e-5, 1e-5, 0};
    double *rx = nb_dalloc(c->n), *rg = nb_dalloc(c->C), *rb = nb_dalloc(c->C);
    nb_ref_bn_bwd(&c->ri, c->sm, c->si, c->dy, rx, rg, rb);
    for (size_t i = 0; i < c->C; i++)
        rg[i] += ACC0, rb[i] += ACC0;
    nb_check("bwd", "dx", dx, rx, NULL, c->n, tx);
    nb_check("bwd", "dgamma(acc)", dg, rg, NULL, c->C, tp);
    nb_check("bwd", "dbeta(acc)", db, rb, NULL, c->C, tp);
    free(rx), free(rg), free(rb);
}

/* ---- finite differences --------------------------------------------------------------------- */

typedef struct bn_fd {
    const bn_io *c;
    bn_out o;
} bn_fd;

static double bn_loss(void *v) {
    bn_fd *f = v;
    bn_fwd_on(nb.be, f->c, 0, &f->o); /* no running update while probing */
    return nb_dot(f->o.y, f->c->dy, f->c->n);
}

static void bn_fd_checks(const bn_io *c, const float *dx, const float *dg, const float *db) {
    bn_fd f = {c, out_new(c)};
    double *gx = nb_minus(dx, c->n, 0.0f), *gg = nb_minus(dg, c->C, ACC0),
           *gb = nb_minus(db, c->C, ACC0);
    /* dx by differences needs x + h exact enough: not at an offset input (there the float64
     * reference checks dx) */
    if (c->cc.act != SQ_ACT_RELU) {
        if (c->cc.offset == 0) nb_fd("dx", bn_loss, &f, c->x, c->n, gx, 1e-2f, 24, 2e-3, 2e-3);
        nb_fd("dgamma", bn_loss, &f, c->g, c->C, gg, 1e-2f, 8, 2e-3, 2e-3);
    }
    nb_fd("dbeta", bn_loss, &f, c->b, c->C, gb, 1e-3f, 8, 2e-3, 2e-3);
    free(gx), free(gg), free(gb);
    out_free(&f.o);
}

/* ---- one case ----------------------------------------------------------------------------------
 */

static bn_io bn_setup(const nb_bn_case *cc) {
    bn_io c = {.p = {cc->s, 1e-3f, 0.1f, cc->training, cc->act, NULL}, .cc = *cc};
    c.n = (size_t)sq_shape5_numel(cc->s);
    c.C = (size_t)cc->s.c;
    c.x = nb_rand_new(c.n, -2, 3, 11);
    for (size_t i = 0; i < c.n; i++)
        c.x[i] += cc->offset;
    c.g = nb_rand_new(c.C, 0.5f, 1.5f, 12);
    c.b = nb_rand_new(c.C, -0.5f, 0.5f, 13);
    c.rm = nb_rand_new(c.C, -0.2f, 0.2f, 14);
    c.rv = nb_rand_new(c.C, 0.5f, 2.0f, 15);
    c.res = nb_rand_new(c.n, -1, 1, 16);
    c.dy = nb_rand_new(c.n, -1, 1, 17);
    /* the float eps and momentum the op sees; the group is 2 identical ranks under sync */
    c.ri = (nb_bn_ref_in){.s = cc->s,
                          .eps = c.p.eps,
                          .momentum = c.p.momentum,
                          .training = cc->training,
                          .replicas = cc->sync ? 2 : 1,
                          .act = cc->act,
                          .x = c.x,
                          .gamma = c.g,
                          .beta = c.b,
                          .rm = c.rm,
                          .rv = c.rv,
                          .res = cc->residual ? c.res : NULL};
    /* save_* for the backward, from the float64 forward */
    double *y = nb_dalloc(c.n), *rm = nb_dalloc(c.C), *rv = nb_dalloc(c.C), *sm = nb_dalloc(c.C),
           *si = nb_dalloc(c.C);
    nb_ref_bn_fwd(&c.ri, y, rm, rv, sm, si);
    c.sm = nb_alloc(c.C), c.si = nb_alloc(c.C);
    for (size_t i = 0; i < c.C; i++)
        c.sm[i] = (float)sm[i], c.si[i] = (float)si[i];
    free(y), free(rm), free(rv), free(sm), free(si);
    return c;
}

void nb_bn_run(const nb_case *k) {
    const nb_bn_case *cc = &k->u.bn;
    const sq_shape5 s = cc->s;
    if (!nb_begin("bn", k->large, "%dx%dx%dx%dx%d %s act %s%s%s%s %s", s.n, s.c, s.d, s.h, s.w,
                  cc->training ? "train" : "infer", nb_act_name(cc->act),
                  cc->residual ? " +res" : "",
                  cc->training ? (cc->running ? " running" : " no-running") : "",
                  cc->sync ? " sync x2" : "", k->note ? k->note : ""))
        return;
    bn_io c = bn_setup(cc);
    bn_out o = out_new(&c);
    bn_fwd_on(nb.be, &c, 1, &o);
    check_fwd(&c, &o);
    float *dx = nb_alloc(c.n), *dg = nb_alloc(c.C), *db = nb_alloc(c.C);
    bn_bwd_on(nb.be, &c, dx, dg, db);
    check_bwd(&c, dx, dg, db);
    if (!k->large && !nb.ref) bn_fd_checks(&c, dx, dg, db);
    out_free(&o);
    NB_FREE_ALL(dx, dg, db, c.x, c.g, c.b, c.rm, c.rv, c.res, c.dy, c.sm, c.si);
}
