/* metrics.c — see metrics.h. Sums in double with compensated-free two-pass formulas. */
#include "train/metrics.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    double v;
    int i;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return x->i - y->i;
}

sq_code sq_rank_average(const double *x, int n, double *ranks, sq_status *st) {
    if (n <= 0) return SQ_OK;
    keyed *k = malloc((size_t)n * sizeof *k);
    if (!k) return sq_fail(st, SQ_ERR_NOMEM, "ranks: out of memory");
    for (int i = 0; i < n; i++) {
        if (isnan(x[i])) {
            free(k);
            return sq_fail(st, SQ_ERR_FORMAT, "ranks: value %d is NaN", i);
        }
        k[i].v = x[i];
        k[i].i = i;
    }
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
    for (int a = 0; a < n;) {
        int b = a;
        while (b + 1 < n && k[b + 1].v == k[a].v)
            b++;
        double r = 0.5 * ((a + 1) + (b + 1));
        for (int j = a; j <= b; j++)
            ranks[k[j].i] = r;
        a = b + 1;
    }
    free(k);
    return SQ_OK;
}

static int is_constant(const double *x, int n) {
    for (int i = 1; i < n; i++)
        if (x[i] != x[0]) return 0;
    return 1;
}

double sq_pearson(const double *x, const double *y, int n) {
    if (n < 2 || is_constant(x, n) || is_constant(y, n)) return NAN;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= n;
    my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (sxx <= 0 || syy <= 0) return NAN;
    double r = sxy / sqrt(sxx * syy);
    return r > 1 ? 1 : (r < -1 ? -1 : r);
}

double sq_spearman(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double *rx = malloc((size_t)n * sizeof *rx), *ry = malloc((size_t)n * sizeof *ry);
    double r = NAN;
    if (rx && ry && sq_rank_average(x, n, rx, NULL) == SQ_OK &&
        sq_rank_average(y, n, ry, NULL) == SQ_OK)
        r = sq_pearson(rx, ry, n);
    free(rx);
    free(ry);
    return r;
}

int sq_accuracy_fails(double y, double pred, sq_accuracy_rule rule) {
    return (pred < rule.low && y > rule.high) || (pred > rule.high && y < rule.low);
}

sq_code sq_metrics_compute(const double *y, const double *pred, int n, sq_accuracy_rule rule,
                           sq_metrics *m, sq_status *st) {
    m->n = n;
    m->mae = m->mae_sd = m->mape = m->max_err = m->spearman = m->pearson = m->accuracy = NAN;
    m->n_mape = 0;
    m->n_failed = 0;
    if (n < 0) return sq_fail(st, SQ_ERR_RANGE, "metrics: negative sample count %d", n);
    if (n == 0) return SQ_OK;
    for (int i = 0; i < n; i++)
        if (!isfinite(y[i]) || !isfinite(pred[i]))
            return sq_fail(st, SQ_ERR_FORMAT, "metrics: sample %d is not finite (y=%g, pred=%g)", i,
                           y[i], pred[i]);
    double sum = 0, maxe = 0, sum_pct = 0;
    int failed = 0, npct = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(pred[i] - y[i]);
        sum += e;
        if (e > maxe) maxe = e;
        if (y[i] != 0) {
            sum_pct += e / fabs(y[i]);
            npct++;
        }
        failed += sq_accuracy_fails(y[i], pred[i], rule);
    }
    double mae = sum / n, ss = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(pred[i] - y[i]) - mae;
        ss += d * d;
    }
    m->mae = mae;
    m->mae_sd = sqrt(ss / n);
    m->max_err = maxe;
    m->n_mape = npct;
    m->mape = npct ? 100.0 * sum_pct / npct : NAN;
    m->spearman = sq_spearman(y, pred, n);
    m->pearson = sq_pearson(y, pred, n);
    m->n_failed = failed;
    m->accuracy = (double)(n - failed) / n;
    return SQ_OK;
}
