/* metrics_tool.c — reads "y pred" pairs (one per line) from stdin and prints the metrics as JSON;
 * check_metrics.py compares it against numpy/scipy.stats on fixed and random vectors with ties.
 * `metrics_tool bands`: the real-contour metrics per Dice band (report.h) instead.
 * `metrics_tool conformal P`: "y pred fold" lines; the calibration fitted on all of them at
 * coverage P (per band: n, pooled, lower and upper offset) and the coverage on held-out folds.
 * `metrics_tool recal`: the estimate map (train/recal.h) fitted on the pairs, and the map applied
 * to 0.01, 0.5 and 0.99. */
#include "train/calibration.h"
#include "train/metrics.h"
#include "train/recal.h"
#include "train/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void jnum(const char *k, double v, int last) {
    if (isnan(v))
        printf("\"%s\": null%s", k, last ? "" : ", ");
    else
        printf("\"%s\": %.17g%s", k, v, last ? "" : ", ");
}

static void print_metrics(const sq_metrics *m) {
    printf("{\"n\": %d, ", m->n);
    jnum("mae", m->mae, 0);
    jnum("mae_sd", m->mae_sd, 0);
    jnum("mape", m->mape, 0);
    jnum("max_err", m->max_err, 0);
    jnum("spearman", m->spearman, 0);
    jnum("pearson", m->pearson, 0);
    jnum("accuracy", m->accuracy, 0);
    printf("\"n_failed\": %d}", m->n_failed);
}

static sq_prediction *as_predictions(const double *y, const double *p, const int *fold, int n) {
    sq_prediction *v = calloc((size_t)(n ? n : 1), sizeof *v);
    for (int i = 0; v && i < n; i++) {
        v[i].category = SQ_CAT_REAL;
        v[i].target = y[i], v[i].pred = p[i], v[i].fold = fold ? fold[i] : 0;
    }
    return v;
}

static int bands_main(const double *y, const double *p, int n) {
    sq_prediction *v = as_predictions(y, p, NULL, n);
    sq_report_summary s;
    sq_status st;
    if (!v || sq_report_summarise(v, n, SQ_ACCURACY_RULE_PAPER, &s, &st) != SQ_OK) return 1;
    printf("[");
    for (int b = 0; b < SQ_BAND_COUNT; b++) {
        print_metrics(&s.band[b]);
        printf(b + 1 < SQ_BAND_COUNT ? ", " : "]\n");
    }
    free(v);
    return 0;
}

static int conformal_main(const double *y, const double *p, const int *fold, int n, double cov) {
    sq_calibration c;
    sq_status st;
    if (sq_calib_fit(y, p, n, &c, &st) != SQ_OK) return 1;
    int k = sq_calib_level(cov);
    printf("{\"bands\": [");
    for (int b = 0; b < SQ_BAND_COUNT; b++)
        printf("{\"n\": %d, \"pooled\": %d, \"lo\": %.9g, \"hi\": %.9g}%s", c.n[b], c.pooled[b],
               c.lo[b][k], c.hi[b][k], b + 1 < SQ_BAND_COUNT ? ", " : "], ");
    sq_prediction *v = as_predictions(y, p, fold, n);
    sq_coverage_table t;
    if (!v || sq_calib_crossfold(v, n, cov, &t, &st) != SQ_OK) return 1;
    printf("\"covered\": %d, \"n\": %d}\n", t.all.covered, t.all.n);
    free(v);
    return 0;
}

static int recal_main(const double *y, const double *p, int n) {
    const sq_recal r = sq_recal_fit(p, y, n);
    printf("{");
    jnum("a", r.a, 0);
    jnum("b", r.b, 0);
    printf("\"n\": %d, ", r.n);
    jnum("mse_raw", r.mse_raw, 0);
    jnum("mse", r.mse, 0);
    jnum("at01", sq_recal_apply(&r, 0.01), 0);
    jnum("at50", sq_recal_apply(&r, 0.5), 0);
    jnum("at99", sq_recal_apply(&r, 0.99), 1);
    printf("}\n");
    return 0;
}

int main(int argc, char **argv) {
    int mode = argc > 1 ? (argv[1][0] == 'b' ? 1 : argv[1][0] == 'r' ? 3 : 2) : 0;
    int cap = 1024, n = 0;
    int *fold = malloc(sizeof(int) * (size_t)cap);
    double *y = malloc(sizeof(double) * (size_t)cap), *p = malloc(sizeof(double) * (size_t)cap);
    while (y && p && fold && scanf("%lf %lf", &y[n], &p[n]) == 2) {
        if (mode == 2 && scanf("%d", &fold[n]) != 1) return 1;
        if (++n == cap) {
            cap *= 2;
            y = realloc(y, sizeof(double) * (size_t)cap);
            p = realloc(p, sizeof(double) * (size_t)cap);
            fold = realloc(fold, sizeof(int) * (size_t)cap);
        }
    }
    if (!y || !p || !fold) return 1;
    if (mode) {
        int rc = mode == 1   ? bands_main(y, p, n)
                 : mode == 3 ? recal_main(y, p, n)
                             : conformal_main(y, p, fold, n, atof(argv[2]));
        free(y), free(p), free(fold);
        return rc;
    }
    sq_metrics m;
    sq_status st;
    if (sq_metrics_compute(y, p, n, SQ_ACCURACY_RULE_PAPER, &m, &st) != SQ_OK) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    print_metrics(&m);
    printf("\n");
    free(y);
    free(p);
    free(fold);
    return 0;
}
