/* calibration.c — Mondrian split-conformal intervals by estimate band (see calibration.h). */
#include "train/calibration.h"

#include "core/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double level_coverage(int k) {
    return 0.50 + 0.01 * k;
}

int sq_calib_level(double coverage) {
    if (!(coverage >= 0.5 - 1e-9) || coverage > 0.99 + 1e-9) return -1;
    int k = (int)ceil((coverage - 0.50) * 100.0 - 1e-6);
    return k < 0 ? 0 : k >= SQ_CALIB_LEVELS ? SQ_CALIB_LEVELS - 1 : k;
}

/* Offsets of one sorted residual vector r[0..n-1] at every level. */
static void offsets(const double *r, int n, float *lo, float *hi) {
    for (int k = 0; k < SQ_CALIB_LEVELS; k++) {
        double a = 1.0 - level_coverage(k);
        long kl = (long)floor((n + 1) * a / 2.0 + 1e-9);
        long kh = (long)ceil((n + 1) * (1.0 - a / 2.0) - 1e-9);
        lo[k] = kl < 1 ? -1.0f : (float)r[kl - 1];
        hi[k] = kh > n ? 1.0f : (float)r[kh - 1];
    }
}

sq_code sq_calib_fit(const double *y, const double *est, int n, sq_calibration *c, sq_status *st) {
    memset(c, 0, sizeof *c);
    if (n < 1) return sq_fail(st, SQ_ERR_USAGE, "calibration: no held-out predictions");
    double *all = malloc(sizeof(double) * (size_t)n);
    double *band = malloc(sizeof(double) * (size_t)n);
    if (!all || !band) {
        free(all), free(band);
        return sq_fail(st, SQ_ERR_NOMEM, "calibration: out of memory");
    }
    for (int i = 0; i < n; i++)
        all[i] = y[i] - est[i];
    qsort(all, (size_t)n, sizeof *all, cmp_double);
    float plo[SQ_CALIB_LEVELS], phi[SQ_CALIB_LEVELS];
    offsets(all, n, plo, phi);
    for (int b = 0; b < SQ_BAND_COUNT; b++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (sq_band_of(est[i]) == b) band[m++] = y[i] - est[i];
        c->n[b] = m;
        c->pooled[b] = m < SQ_CALIB_MIN_BAND;
        if (c->pooled[b]) {
            memcpy(c->lo[b], plo, sizeof plo), memcpy(c->hi[b], phi, sizeof phi);
            continue;
        }
        qsort(band, (size_t)m, sizeof *band, cmp_double);
        offsets(band, m, c->lo[b], c->hi[b]);
    }
    free(all), free(band);
    return SQ_OK;
}

void sq_calib_interval(const sq_calibration *c, double est, int level, double *lo, double *hi) {
    int b = sq_band_of(est);
    double l = est + c->lo[b][level], h = est + c->hi[b][level];
    *lo = l < 0 ? 0 : l > 1 ? 1 : l;
    *hi = h < 0 ? 0 : h > 1 ? 1 : h;
}

/* ---- JSON ---- */

static cJSON *float_array(const float *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        char num[32];
        snprintf(num, sizeof num, "%.5f", v[i]);
        cJSON_AddItemToArray(a, cJSON_CreateNumber(atof(num)));
    }
    return a;
}

cJSON *sq_calib_to_json(const sq_calibration *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(
        o, "method", "split-conformal, Mondrian by the estimate's Dice band, signed residuals");
    cJSON_AddNumberToObject(o, "coverage_first", 0.50);
    cJSON_AddNumberToObject(o, "coverage_step", 0.01);
    cJSON *bands = cJSON_AddArrayToObject(o, "bands");
    for (int b = 0; b < SQ_BAND_COUNT; b++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "band", sq_band_name(b));
        cJSON_AddNumberToObject(e, "n", c->n[b]);
        cJSON_AddBoolToObject(e, "pooled", c->pooled[b]);
        cJSON_AddItemToObject(e, "lo", float_array(c->lo[b], SQ_CALIB_LEVELS));
        cJSON_AddItemToObject(e, "hi", float_array(c->hi[b], SQ_CALIB_LEVELS));
        cJSON_AddItemToArray(bands, e);
    }
    return o;
}

static sq_code read_offsets(const cJSON *e, const char *key, const char *origin, int b, float *out,
                            sq_status *st) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != SQ_CALIB_LEVELS)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: calibration band %d: '%s' must be an array of %d",
                       origin, b, key, SQ_CALIB_LEVELS);
    int k = 0;
    for (const cJSON *v = a->child; v; v = v->next, k++) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1)
            return sq_fail(st, SQ_ERR_FORMAT,
                           "%s: calibration band %d: '%s'[%d] must be a number in [-1, 1]", origin,
                           b, key, k);
        out[k] = (float)v->valuedouble;
    }
    return SQ_OK;
}

sq_code sq_calib_from_json(const cJSON *j, const char *origin, sq_calibration *c, sq_status *st) {
    memset(c, 0, sizeof *c);
    const cJSON *bands = cJSON_GetObjectItemCaseSensitive(j, "bands");
    if (!cJSON_IsArray(bands) || cJSON_GetArraySize(bands) != SQ_BAND_COUNT)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: calibration: 'bands' must be an array of %d", origin,
                       SQ_BAND_COUNT);
    int b = 0;
    for (const cJSON *e = bands->child; e; e = e->next, b++) {
        long long n = 0;
        SQ_TRY(sq_json_get_int(e, "n", &n, 0, origin, st));
        c->n[b] = (int)n;
        c->pooled[b] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "pooled"));
        SQ_TRY(read_offsets(e, "lo", origin, b, c->lo[b], st));
        SQ_TRY(read_offsets(e, "hi", origin, b, c->hi[b], st));
    }
    return SQ_OK;
}

sq_code sq_calib_read_file(const char *path, sq_calibration *c, sq_status *st) {
    cJSON *j = NULL;
    SQ_TRY(sq_json_read_file(path, &j, st));
    sq_code rc = sq_calib_from_json(j, path, c, st);
    cJSON_Delete(j);
    return rc;
}

/* ---- coverage on held-out folds ---- */

static void cell_add(sq_coverage_cell *c, int covered, double width) {
    c->n++;
    c->covered += covered;
    c->width += width;
}

/* Fit on every fold but k, score fold k into t. */
static sq_code score_fold(const sq_prediction *p, int n, int k, int level, double *y, double *e,
                          sq_coverage_table *t, sq_status *st) {
    int m = 0, held = 0;
    for (int i = 0; i < n; i++)
        if (p[i].fold != k)
            y[m] = p[i].target, e[m] = p[i].pred, m++;
        else
            held++;
    if (held == 0 || m == 0) return SQ_OK;
    sq_calibration c;
    SQ_TRY(sq_calib_fit(y, e, m, &c, st));
    t->nfolds++;
    for (int i = 0; i < n; i++) {
        if (p[i].fold != k) continue;
        double lo, hi;
        sq_calib_interval(&c, p[i].pred, level, &lo, &hi);
        int cov = p[i].target >= lo - 1e-12 && p[i].target <= hi + 1e-12;
        double w = hi - lo;
        cell_add(&t->all, cov, w);
        cell_add(&t->est_band[sq_band_of(p[i].pred)], cov, w);
        if ((unsigned)p[i].category < SQ_CAT_COUNT) cell_add(&t->cat[p[i].category], cov, w);
        if (p[i].category == SQ_CAT_REAL) cell_add(&t->true_band[sq_band_of(p[i].target)], cov, w);
    }
    return SQ_OK;
}

static void cell_finish(sq_coverage_cell *c) {
    if (c->n) c->width /= c->n;
}

sq_code sq_calib_crossfold(const sq_prediction *p, int n, double coverage, sq_coverage_table *t,
                           sq_status *st) {
    memset(t, 0, sizeof *t);
    int level = sq_calib_level(coverage);
    if (level < 0) return sq_fail(st, SQ_ERR_USAGE, "coverage %g: expected 0.5..0.99", coverage);
    t->nominal = level_coverage(level);
    int maxfold = -1;
    for (int i = 0; i < n; i++)
        if (p[i].fold > maxfold) maxfold = p[i].fold;
    double *y = malloc(sizeof(double) * (size_t)(n ? n : 1));
    double *e = malloc(sizeof(double) * (size_t)(n ? n : 1));
    sq_code rc = y && e ? SQ_OK : sq_fail(st, SQ_ERR_NOMEM, "calibration: out of memory");
    for (int k = 0; k <= maxfold && rc == SQ_OK; k++)
        rc = score_fold(p, n, k, level, y, e, t, st);
    free(y), free(e);
    if (rc == SQ_OK && t->nfolds < 2)
        rc = sq_fail(st, SQ_ERR_USAGE, "coverage on held-out folds needs at least 2 folds");
    cell_finish(&t->all);
    for (int b = 0; b < SQ_BAND_COUNT; b++)
        cell_finish(&t->est_band[b]), cell_finish(&t->true_band[b]);
    for (int c = 0; c < SQ_CAT_COUNT; c++)
        cell_finish(&t->cat[c]);
    return rc;
}

static cJSON *cell_json(const sq_coverage_cell *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", c->n);
    if (c->n) {
        cJSON_AddNumberToObject(o, "coverage", (double)c->covered / c->n);
        cJSON_AddNumberToObject(o, "mean_width", c->width);
    }
    return o;
}

cJSON *sq_coverage_to_json(const sq_coverage_table *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", "fit on the other folds, scored on each held-out fold");
    cJSON_AddNumberToObject(o, "nominal", t->nominal);
    cJSON_AddNumberToObject(o, "folds", t->nfolds);
    cJSON_AddItemToObject(o, "all", cell_json(&t->all));
    cJSON *eb = cJSON_AddObjectToObject(o, "by_estimate_band");
    cJSON *tb = cJSON_AddObjectToObject(o, "real_by_true_band");
    for (int b = 0; b < SQ_BAND_COUNT; b++) {
        cJSON_AddItemToObject(eb, sq_band_name(b), cell_json(&t->est_band[b]));
        cJSON_AddItemToObject(tb, sq_band_name(b), cell_json(&t->true_band[b]));
    }
    cJSON *cj = cJSON_AddObjectToObject(o, "by_category");
    for (int c = 0; c < SQ_CAT_COUNT; c++)
        if (t->cat[c].n)
            cJSON_AddItemToObject(cj, sq_category_name((sq_category)c), cell_json(&t->cat[c]));
    return o;
}

static void cell_row(FILE *f, const char *name, const sq_coverage_cell *c) {
    if (!c->n) return;
    fprintf(f, "%-26s %6d  %7.1f%%  %8.3f\n", name, c->n, 100.0 * c->covered / c->n, c->width);
}

void sq_coverage_print(FILE *f, const sq_coverage_table *t) {
    fprintf(f, "interval coverage on held-out folds (nominal %.0f%%, %d folds):\n",
            100 * t->nominal, t->nfolds);
    fprintf(f, "%-26s %6s  %8s  %8s\n", "samples", "n", "covered", "width");
    cell_row(f, "all", &t->all);
    char name[64];
    for (int b = 0; b < SQ_BAND_COUNT; b++) {
        snprintf(name, sizeof name, "estimate in %s", sq_band_name(b));
        cell_row(f, name, &t->est_band[b]);
    }
    for (int b = 0; b < SQ_BAND_COUNT; b++) {
        snprintf(name, sizeof name, "real, true Dice %s", sq_band_name(b));
        cell_row(f, name, &t->true_band[b]);
    }
    for (int c = 0; c < SQ_CAT_COUNT; c++)
        cell_row(f, sq_category_name((sq_category)c), &t->cat[c]);
}
