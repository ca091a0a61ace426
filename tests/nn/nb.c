/* nb.c — the conformance harness (see nb.h): labels and filtering, checkers and their report
 * lines, the per-op summary, guarded device tensors, host data and finite differences.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nb_env nb;

/* ---- labels, filter ------------------------------------------------------------------------ */

static char g_op[24] = "-";
static char g_label[200] = "";

typedef struct nb_row {
    char op[24], dir[8];
    long checks, fails;
    double worst, maxdiff;
    char worst_at[200];
} nb_row;

typedef struct nb_opcount {
    char op[24];
    long small, large;
} nb_opcount;

static nb_row g_rows[96];
static int g_nrows;
static nb_opcount g_ops[32];
static int g_nops;

static nb_opcount *op_entry(const char *op) {
    for (int i = 0; i < g_nops; i++)
        if (!strcmp(g_ops[i].op, op)) return &g_ops[i];
    if (g_nops == (int)(sizeof g_ops / sizeof *g_ops)) return NULL;
    nb_opcount *e = &g_ops[g_nops++];
    memset(e, 0, sizeof *e);
    snprintf(e->op, sizeof e->op, "%s", op);
    return e;
}

int nb_begin(const char *op, int large, const char *fmt, ...) {
    char body[160], full[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (nb.tag)
        snprintf(g_label, sizeof g_label, "%.150s [%.40s]", body, nb.tag);
    else
        snprintf(g_label, sizeof g_label, "%s", body);
    snprintf(g_op, sizeof g_op, "%s", op);
    snprintf(full, sizeof full, "%.20s %.200s", op, g_label);
    if (large && nb.small_only) return 0;
    if (nb.filter && !strstr(full, nb.filter)) return 0;
    if (!nb.quiet && !nb.tag) { /* tagged reruns (ISA, extras) are not table cases */
        nb_opcount *e = op_entry(op);
        if (e) *(large ? &e->large : &e->small) += 1;
    }
    return 1;
}

void nb_label(const char *op, const char *label) {
    snprintf(g_op, sizeof g_op, "%s", op);
    snprintf(g_label, sizeof g_label, "%s", label);
}

/* ---- summary --------------------------------------------------------------------------------- */

static nb_row *row_entry(const char *dir) {
    for (int i = 0; i < g_nrows; i++)
        if (!strcmp(g_rows[i].op, g_op) && !strcmp(g_rows[i].dir, dir)) return &g_rows[i];
    if (g_nrows == (int)(sizeof g_rows / sizeof *g_rows)) return NULL;
    nb_row *r = &g_rows[g_nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "%s", g_op);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    return r;
}

static void record(const char *dir, const char *name, double ratio, double maxdiff) {
    const int pass = ratio <= 1.0;
    nb.checks++;
    if (!pass) nb.fails++;
    if (nb.quiet) return;
    nb_row *r = row_entry(dir);
    if (!r) return;
    r->checks++;
    if (!pass) r->fails++;
    if (!(ratio <= r->worst) || r->checks == 1) {
        r->worst = ratio;
        snprintf(r->worst_at, sizeof r->worst_at, "%.150s %.40s", g_label, name);
    }
    if (maxdiff > r->maxdiff) r->maxdiff = maxdiff;
}

void nb_summary(void) {
    printf("\nsummary (%s%s%s): per op and direction, worst ratio |diff|/tol over all checks\n",
           nb.be ? nb.be->name : "?", nb.ref ? " vs oracle " : " vs float64 references",
           nb.ref ? nb.ref->name : "");
    printf("%-9s %5s %5s  %-4s %6s %5s  %-10s %-11s %s\n", "op", "small", "large", "dir", "checks",
           "fail", "worst", "max|diff|", "worst at");
    for (int o = 0; o < g_nops; o++)
        for (int i = 0; i < g_nrows; i++) {
            const nb_row *r = &g_rows[i];
            if (strcmp(r->op, g_ops[o].op)) continue;
            printf("%-9s %5ld %5ld  %-4s %6ld %5ld  %-10.3g %-11.3e %s%s\n", r->op, g_ops[o].small,
                   g_ops[o].large, r->dir, r->checks, r->fails, r->worst, r->maxdiff, r->worst_at,
                   r->fails ? "  FAIL" : "");
        }
    printf("total: %ld checks, %ld failed\n", nb.checks, nb.fails);
}

/* ---- checkers -------------------------------------------------------------------------------- */

static void tol_str(nb_tol t, char *s, size_t n) {
    int k = snprintf(s, n, "%.0e", t.atol);
    if (t.rtol > 0) k += snprintf(s + k, n - (size_t)k, "+%.0e|r|", t.rtol);
    if (t.mrel > 0) snprintf(s + k, n - (size_t)k, "+%.0e max|r|", t.mrel);
}

static void report(const char *dir, const char *name, size_t n, double maxdiff, double ratio,
                   const char *tol) {
    record(dir, name, ratio, maxdiff);
    if (nb.quiet) return;
    printf("%-9s %-4s %-50s %-16s n=%-9zu max|diff| %.2e  ratio %-8.3g tol %-22s %s\n", g_op, dir,
           g_label, name, n, maxdiff, ratio, tol, ratio <= 1.0 ? "PASS" : "FAIL");
}

/* The core of both checkers: ref values come from rd (double) or rf (float). */
static double check_core(const char *dir, const char *name, const float *got, const double *rd,
                         const float *rf, const size_t *idx, size_t n, nb_tol tol) {
    double maxref = 0.0;
    for (size_t k = 0; k < n; k++) {
        const double r = rd ? rd[k] : (double)rf[k];
        if (fabs(r) > maxref) maxref = fabs(r);
    }
    double worst = 0.0, maxdiff = 0.0, wg = 0, wr = 0, wb = 0;
    size_t at = 0;
    for (size_t k = 0; k < n; k++) {
        const double r = rd ? rd[k] : (double)rf[k], g = got[idx ? idx[k] : k];
        const double d = fabs(g - r), bound = tol.atol + tol.rtol * fabs(r) + tol.mrel * maxref;
        double q = bound > 0 ? d / bound : (d > 0 ? INFINITY : 0.0);
        if (isnan(d)) q = maxdiff = INFINITY;
        if (d > maxdiff) maxdiff = d;
        if (q > worst || k == 0) {
            worst = q, at = idx ? idx[k] : k, wg = g, wr = r, wb = bound;
        }
    }
    char ts[64];
    tol_str(tol, ts, sizeof ts);
    report(dir, name, n, maxdiff, worst, ts);
    if (!(worst <= 1.0) && !nb.quiet)
        printf("          worst at %zu: got %.9g ref %.9g |diff| %.3g bound %.3g\n", at, wg, wr,
               fabs(wg - wr), wb);
    return worst;
}

double nb_check(const char *dir, const char *name, const float *got, const double *ref,
                const size_t *idx, size_t n, nb_tol tol) {
    return check_core(dir, name, got, ref, NULL, idx, n, tol);
}

double nb_check_f(const char *dir, const char *name, const float *got, const float *ref, size_t n,
                  nb_tol tol) {
    return check_core(dir, name, got, NULL, ref, NULL, n, tol);
}

double nb_check2(const char *dir, const char *name, const float *got, const float *oracle,
                 const double *ref, size_t n, nb_tol xt, nb_tol rt) {
    return nb.ref ? nb_check_f(dir, name, got, oracle, n, xt)
                  : nb_check(dir, name, got, ref, NULL, n, rt);
}

void nb_expect(const char *dir, const char *name, int ok) {
    record(dir, name, ok ? 0.0 : INFINITY, 0.0);
    if (!nb.quiet)
        printf("%-9s %-4s %-50s %-58s %s\n", g_op, dir, g_label, name, ok ? "PASS" : "FAIL");
}

void nb_fail_check(const char *dir, const char *name, const char *why) {
    record(dir, name, INFINITY, INFINITY);
    if (!nb.quiet) printf("%-9s %-4s %-50s %-16s %s  FAIL\n", g_op, dir, g_label, name, why);
}

int nb_rc(sq_code rc, const sq_status *st, const char *op) {
    if (rc == SQ_OK) return 1;
    char why[SQ_STATUS_MSG_MAX + 64];
    snprintf(why, sizeof why, "returned %s: %s", sq_code_name(rc), st->msg);
    nb_fail_check("call", op, why);
    return 0;
}

int nb_has(const void *fn, const char *op) {
    if (fn) return 1;
    nb_fail_check("call", op, "not implemented by this backend (NULL)");
    return 0;
}

/* ---- device tensors ------------------------------------------------------------------------ */

#define GUARD_BYTE 0x5A

nb_dt nb_in(sq_backend *be, const float *h, size_t n) {
    sq_status st;
    sq_status_clear(&st);
    nb_dt d = {be, NULL, n};
    const size_t G = NB_GUARD * sizeof(float), bytes = n * sizeof(float);
    if (be->buf_alloc(be, bytes + 2 * G, &d.b, &st) != SQ_OK)
        fail_msg("%s buf_alloc(%zu): %s", be->name, bytes + 2 * G, st.msg);
    int ok = nb_rc(be->fill(be, d.b, 0, GUARD_BYTE, G, &st), &st, "fill") &&
             nb_rc(be->fill(be, d.b, G + bytes, GUARD_BYTE, G, &st), &st, "fill");
    if (ok && bytes)
        ok = h ? nb_rc(be->upload(be, d.b, G, h, bytes, &st), &st, "upload")
               : nb_rc(be->fill(be, d.b, G, 0xFF, bytes, &st), &st, "fill");
    /* host memory given to upload must stay valid until sync() */
    if (ok) nb_rc(be->sync(be, &st), &st, "sync");
    return d;
}

nb_dt nb_out(sq_backend *be, size_t n) {
    return nb_in(be, NULL, n);
}

static int guard_intact(const unsigned char *g) {
    for (size_t i = 0; i < NB_GUARD * sizeof(float); i++)
        if (g[i] != GUARD_BYTE) return 0;
    return 1;
}

/* Control: moves every value by 5% of the tensor's scale, far beyond any tolerance here. */
static void perturb(float *h, size_t n) {
    const double s = 0.05 * (nb_maxabs_f(h, n) + 1.0);
    for (size_t i = 0; i < n; i++)
        h[i] = (float)(h[i] + s);
}

void nb_get(nb_dt d, float *h) {
    sq_backend *be = d.be;
    sq_status st;
    sq_status_clear(&st);
    const size_t G = NB_GUARD * sizeof(float), bytes = d.n * sizeof(float);
    unsigned char g0[NB_GUARD * sizeof(float)], g1[NB_GUARD * sizeof(float)];
    if (!nb_rc(be->download(be, g0, d.b, 0, G, &st), &st, "download") ||
        !nb_rc(be->download(be, g1, d.b, G + bytes, G, &st), &st, "download") ||
        (bytes && !nb_rc(be->download(be, h, d.b, G, bytes, &st), &st, "download"))) {
        nb_fill(h, d.n, NAN);
        return;
    }
    if (!guard_intact(g0) || !guard_intact(g1))
        nb_fail_check("mem", "guard",
                      !guard_intact(g0) ? "written before the tensor's start"
                                        : "written past the tensor's end");
    if (nb.perturb && be == nb.be) perturb(h, d.n);
}

void nb_free(nb_dt *d) {
    if (d->b) d->be->buf_free(d->be, d->b);
    d->b = NULL;
}

/* ---- host data ----------------------------------------------------------------------------- */

const char *nb_act_name(sq_act a) {
    static const char *n[] = {"none", "relu", "sigmoid", "swish"};
    return (unsigned)a < 4 ? n[a] : "?";
}

void nb_free_all(void **p, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(p[i]);
}

float *nb_alloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) fail_msg("out of memory (%zu floats)", n);
    return p;
}

double *nb_dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) fail_msg("out of memory (%zu doubles)", n);
    return p;
}

static inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline double u01(uint32_t seed, uint64_t i) {
    return (double)(mix64(((uint64_t)seed << 40) ^ i) >> 40) * (1.0 / 16777216.0);
}

void nb_rand(float *h, size_t n, float lo, float hi, uint32_t seed) {
    const double span = (double)hi - lo;
    for (size_t i = 0; i < n; i++)
        h[i] = (float)(lo + span * u01(seed, i));
}

float *nb_rand_new(size_t n, float lo, float hi, uint32_t seed) {
    float *h = nb_alloc(n);
    nb_rand(h, n, lo, hi, seed);
    return h;
}

void nb_fill(float *h, size_t n, float v) {
    for (size_t i = 0; i < n; i++)
        h[i] = v;
}

size_t *nb_sample(size_t n, size_t max, size_t *count) {
    if (n <= max || max < 2) {
        *count = n;
        return NULL;
    }
    size_t *idx = malloc(max * sizeof *idx);
    if (!idx) fail_msg("out of memory");
    idx[0] = 0;
    for (size_t k = 1; k + 1 < max; k++) {
        const size_t i = (size_t)(((double)k + u01(77, k)) * (double)n / (double)max);
        idx[k] = i < n ? i : n - 1;
    }
    idx[max - 1] = n - 1;
    *count = max;
    return idx;
}

double nb_maxabs_f(const float *h, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(h[i]) > m) m = fabs(h[i]);
    return m;
}

/* ---- finite differences -------------------------------------------------------------------- */

double nb_dot(const float *y, const float *r, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)y[i] * r[i];
    return s;
}

double nb_fd(const char *name, nb_loss_fn loss, void *ctx, float *x, size_t nx, const double *grad,
             float h, int max_pts, double atol, double rtol) {
    double worst = 0.0, maxdiff = 0.0;
    const size_t step = nx > (size_t)max_pts ? nx / (size_t)max_pts : 1;
    int pts = 0;
    for (size_t i = (step > 1 ? step / 2 : 0); i < nx && pts < max_pts; i += step, pts++) {
        const float x0 = x[i];
        x[i] = x0 + h;
        const double lp = loss(ctx);
        x[i] = x0 - h;
        const double lm = loss(ctx);
        x[i] = x0;
        const double fd = (lp - lm) / ((double)(x0 + h) - (double)(x0 - h));
        const double d = fabs(fd - grad[i]);
        double q = d / (atol + rtol * fabs(grad[i]));
        if (isnan(d)) q = INFINITY;
        if (d > maxdiff || isnan(d)) maxdiff = isnan(d) ? INFINITY : d;
        if (!(q <= worst)) {
            if (q > 1.0 && !nb.quiet)
                printf("          fd at %zu: fd %.9g analytic %.9g\n", i, fd, grad[i]);
            worst = q;
        }
    }
    char ts[64], nm[64];
    snprintf(ts, sizeof ts, "%.0e+%.0e|an|", atol, rtol);
    snprintf(nm, sizeof nm, "%s h=%.0e pts=%d", name, (double)h, pts);
    report("fd", nm, nx, maxdiff, worst, ts);
    return worst;
}

double *nb_minus(const float *got, size_t n, float base) {
    double *g = nb_dalloc(n);
    for (size_t i = 0; i < n; i++)
        g[i] = (double)got[i] - base;
    return g;
}
