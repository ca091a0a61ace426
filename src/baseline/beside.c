/* beside.c — the clinical GBDT on a cross-validation's own folds (beside.h). */
#include "baseline/beside.h"

#include "baseline/search.h"
#include "baseline/table.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "train/metrics.h"
#include "train/splits.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows `rows` of t as a table of their own (features deep-copied). */
static sq_code table_subset(const sq_bl_table *t, const int *rows, int n, sq_bl_table *s,
                            sq_status *st) {
    memset(s, 0, sizeof *s);
    s->nrows = n, s->nfeat = t->nfeat;
    s->patient = malloc(sizeof *s->patient * (size_t)n);
    s->site = malloc(sizeof *s->site * (size_t)n);
    s->ncontours = malloc(sizeof(int) * (size_t)n);
    s->target = malloc(sizeof(double) * (size_t)n);
    s->x = malloc(sizeof(float) * (size_t)n * (size_t)(t->nfeat ? t->nfeat : 1));
    s->feat = calloc((size_t)(t->nfeat ? t->nfeat : 1), sizeof *s->feat);
    if (!s->patient || !s->site || !s->ncontours || !s->target || !s->x || !s->feat) {
        sq_bl_table_free(s);
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        memcpy(s->patient[i], t->patient[rows[i]], sizeof s->patient[i]);
        memcpy(s->site[i], t->site[rows[i]], sizeof s->site[i]);
        s->ncontours[i] = t->ncontours[rows[i]], s->target[i] = t->target[rows[i]];
        memcpy(s->x + (size_t)i * t->nfeat, t->x + (size_t)rows[i] * t->nfeat,
               sizeof(float) * (size_t)t->nfeat);
    }
    for (int j = 0; j < t->nfeat; j++) { /* names and types; codes stay those of t */
        s->feat[j] = t->feat[j];
        s->feat[j].ncat = 0, s->feat[j].cats = NULL;
    }
    return SQ_OK;
}

/* One outer fold: search on its training patients, fit, predict its test patients into pred. */
static sq_code outer_fold(const sq_bl_table *t, const int *fold, int f, uint64_t seed, double *pred,
                          sq_status *st) {
    int *train = malloc(sizeof(int) * (size_t)t->nrows),
        *test = malloc(sizeof(int) * (size_t)t->nrows);
    double *p = malloc(sizeof(double) * (size_t)t->nrows);
    int ntr = 0, nte = 0;
    sq_code rc = train && test && p ? SQ_OK : sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    for (int i = 0; rc == SQ_OK && i < t->nrows; i++) {
        if (fold[i] == f)
            test[nte++] = i;
        else if (fold[i] >= 0)
            train[ntr++] = i;
    }
    sq_bl_table sub;
    sq_bl_result r;
    memset(&r, 0, sizeof r);
    if (rc == SQ_OK && nte > 0 && ntr >= 4 &&
        (rc = table_subset(t, train, ntr, &sub, st)) == SQ_OK) {
        sq_bl_search_opts o = sq_bl_search_opts_default();
        o.trials = 16, o.startup = 8, o.repeats_search = 2, o.repeats_final = 1;
        o.nfolds = ntr < 5 ? ntr : 5, o.seed = seed + (uint64_t)f;
        rc = sq_bl_run(SQ_BL_GBDT, &sub, &o, NULL, &r, st);
        if (rc == SQ_OK)
            rc = sq_bl_fit_predict(SQ_BL_GBDT, t, &r.best_params, train, ntr, test, nte, p, st);
        for (int i = 0; rc == SQ_OK && i < nte; i++)
            pred[test[i]] = p[i];
        sq_bl_result_free(&r);
        free(sub.feat), sub.feat = NULL, sub.nfeat = 0; /* the features' labels belong to t */
        sq_bl_table_free(&sub);
    }
    free(train), free(test), free(p);
    return rc;
}

/* splits.json names patients and cases "<site name>/<id>"; the table holds the bare patient id. */
static const char *bare_id(const char *s) {
    const char *p = strchr(s, '/');
    return p ? p + 1 : s;
}

/* Fold of every table row from the run's splits (-1: not in the run). */
static void row_folds(const sq_bl_table *t, const sq_splits *sp, int *fold) {
    for (int i = 0; i < t->nrows; i++) {
        fold[i] = -1;
        for (int c = 0; c < sp->ncases && fold[i] < 0; c++)
            if (!strcmp(bare_id(sp->patient[c]), t->patient[i])) fold[i] = sp->fold[c];
    }
}

/* The table row of a predictions.csv sample ("<case>:<contour>" of site `site`), or -1. */
static int row_of_sample(const sq_bl_table *t, const sq_splits *sp, const char *site,
                         const char *sample) {
    char key[512];
    snprintf(key, sizeof key, "%s/%s", site, sample);
    char *colon = strrchr(key, ':');
    if (colon) *colon = 0;
    for (int c = 0; c < sp->ncases; c++)
        if (!strcmp(sp->case_id[c], key))
            for (int i = 0; i < t->nrows; i++)
                if (!strcmp(t->patient[i], bare_id(sp->patient[c]))) return i;
    return -1;
}

/* The real contours of RUN/predictions.csv, with the GBDT estimate of their patient. */
static sq_code compare(const char *run_dir, const sq_bl_table *t, const sq_splits *sp,
                       const double *gbdt, sq_bl_beside *out, sq_status *st) {
    char path[SQ_PATH_MAX], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/predictions.csv", run_dir);
    SQ_TRY(sq_read_file(path, &text, &len, st));
    int cap = 1;
    for (size_t k = 0; k < len; k++)
        cap += text[k] == '\n';
    double *y = malloc(sizeof(double) * (size_t)cap * 4), *v[3];
    if (!y) {
        free(text);
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    }
    v[0] = y + cap, v[1] = y + 2 * cap, v[2] = y + 3 * cap;
    int n = 0;
    char *save = NULL;
    strtok_r(text, "\n", &save); /* case,site,fold,category,target,predicted,naive,abs_error */
    for (char *line; (line = strtok_r(NULL, "\n", &save));) {
        char id[SQ_ID_MAX], site[256], cat[32];
        int fold, row;
        double tg, pr, nv;
        if (sscanf(line, "%127[^,],%255[^,],%d,%31[^,],%lf,%lf,%lf", id, site, &fold, cat, &tg, &pr,
                   &nv) != 7 ||
            strcmp(cat, "real") || (row = row_of_sample(t, sp, site, id)) < 0 ||
            !isfinite(gbdt[row]))
            continue;
        y[n] = tg, v[0][n] = pr, v[1][n] = nv, v[2][n] = gbdt[row];
        n++;
    }
    out->n = n;
    for (int m = 0; m < 3; m++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += fabs(v[m][i] - y[i]);
        out->mae[m] = n ? s / n : NAN;
        out->spearman[m] = sq_spearman(y, v[m], n);
    }
    free(y), free(text);
    return SQ_OK;
}

/* The network's and naive's numbers exactly as the run computed them (predictions.csv rounds to
 * 6 decimals, which can tie ranks): RUN/metrics.json summary.real_contours. */
static void exact_from_metrics(const char *run_dir, sq_bl_beside *b) {
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/metrics.json", run_dir);
    cJSON *root = NULL;
    sq_status st;
    if (sq_json_read_file(path, &root, &st) != SQ_OK) return;
    const cJSON *real = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "summary"), "real_contours");
    const char *keys[2] = {"segqa", "naive"};
    for (int m = 0; m < 2; m++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(real, keys[m]);
        const cJSON *mae = cJSON_GetObjectItemCaseSensitive(o, "mae");
        const cJSON *rho = cJSON_GetObjectItemCaseSensitive(o, "spearman");
        if (cJSON_IsNumber(mae)) b->mae[m] = mae->valuedouble;
        if (cJSON_IsNumber(rho)) b->spearman[m] = rho->valuedouble;
    }
    cJSON_Delete(root);
}

static sq_code write_json(const char *run_dir, const sq_bl_beside *b, sq_status *st) {
    static const char *names[3] = {"network", "naive", "gbdt_clinical"};
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "real_contours", b->n);
    for (int m = 0; m < 3; m++) {
        cJSON *o = cJSON_AddObjectToObject(root, names[m]);
        cJSON_AddNumberToObject(o, "mae", b->mae[m]);
        cJSON_AddNumberToObject(o, "spearman", b->spearman[m]);
    }
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/clinical_baseline.json", run_dir);
    sq_code rc = sq_json_write_file(path, root, st);
    cJSON_Delete(root);
    return rc;
}

sq_code sq_bl_cv_beside(const char *run_dir, const char *const *sites, int nsites, uint64_t seed,
                        sq_bl_beside *out, sq_status *st) {
    memset(out, 0, sizeof *out);
    const sq_bl_source src = {sites, nsites, NULL, NULL, 0};
    sq_bl_table t;
    sq_status quiet;
    sq_status_clear(&quiet);
    if (sq_bl_table_load(&src, &t, &quiet) != SQ_OK) { /* no variables: nothing to set beside */
        snprintf(out->why, sizeof out->why, "%s", quiet.msg);
        return SQ_OK;
    }
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/splits.json", run_dir);
    sq_splits sp;
    sq_code rc = sq_splits_load(path, &sp, st);
    if (rc != SQ_OK) {
        sq_bl_table_free(&t);
        return rc;
    }
    int *fold = malloc(sizeof(int) * (size_t)t.nrows);
    double *gbdt = malloc(sizeof(double) * (size_t)t.nrows);
    if (!fold || !gbdt) rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    if (rc == SQ_OK) {
        row_folds(&t, &sp, fold);
        for (int i = 0; i < t.nrows; i++)
            gbdt[i] = NAN;
    }
    for (int f = 0; rc == SQ_OK && f < sp.nfolds; f++)
        rc = outer_fold(&t, fold, f, seed, gbdt, st);
    if (rc == SQ_OK) rc = compare(run_dir, &t, &sp, gbdt, out, st);
    if (rc == SQ_OK) exact_from_metrics(run_dir, out);
    if (rc == SQ_OK && out->n > 0) rc = write_json(run_dir, out, st);
    out->done = rc == SQ_OK && out->n > 0;
    free(fold), free(gbdt);
    sq_splits_free(&sp);
    sq_bl_table_free(&t);
    return rc;
}

void sq_bl_beside_print(FILE *f, const sq_bl_beside *b) {
    static const char *names[3] = {"segqa network", "naive mean", "GBDT clinical"};
    fprintf(f, "\nreal contours (%d), MAE and Spearman beside the clinical-variable GBDT:\n", b->n);
    for (int m = 0; m < 3; m++)
        fprintf(f, "  %-14s MAE %.4f  rho %6.3f\n", names[m], b->mae[m], b->spearman[m]);
}
