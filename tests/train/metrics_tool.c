/* metrics_tool.c — reads "y pred" pairs (one per line) from stdin and prints the metrics as JSON;
 * check_metrics.py compares it against numpy/scipy.stats on fixed and random vectors with ties. */
#include "train/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void jnum(const char *k, double v, int last) {
    if (isnan(v))
        printf("\"%s\": null%s", k, last ? "" : ", ");
    else
        printf("\"%s\": %.17g%s", k, v, last ? "" : ", ");
}

int main(void) {
    int cap = 1024, n = 0;
    double *y = malloc(sizeof(double) * (size_t)cap), *p = malloc(sizeof(double) * (size_t)cap);
    while (y && p && scanf("%lf %lf", &y[n], &p[n]) == 2) {
        if (++n == cap) {
            cap *= 2;
            y = realloc(y, sizeof(double) * (size_t)cap);
            p = realloc(p, sizeof(double) * (size_t)cap);
        }
    }
    if (!y || !p) return 1;
    sq_metrics m;
    sq_status st;
    if (sq_metrics_compute(y, p, n, SQ_ACCURACY_RULE_PAPER, &m, &st) != SQ_OK) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    printf("{\"n\": %d, ", m.n);
    jnum("mae", m.mae, 0);
    jnum("mae_sd", m.mae_sd, 0);
    jnum("mape", m.mape, 0);
    jnum("max_err", m.max_err, 0);
    jnum("spearman", m.spearman, 0);
    jnum("pearson", m.pearson, 0);
    jnum("accuracy", m.accuracy, 0);
    printf("\"n_failed\": %d}\n", m.n_failed);
    free(y);
    free(p);
    return 0;
}
