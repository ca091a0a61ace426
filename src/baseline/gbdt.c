/* gbdt.c — naive mean and XGBoost gradient-boosted trees on the clinical table (gbdt.h). */
#include "baseline/gbdt.h"

#include <xgboost/c_api.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sq_gbdt_params sq_gbdt_params_default(void) {
    sq_gbdt_params p;
    memset(&p, 0, sizeof p);
    p.n_estimators = 100;
    p.max_depth = 3;
    p.lambda = 1.0;
    p.colsample_bynode = 1.0;
    p.eta = 0.1;
    p.seed = 2022;
    p.nthread = 1;
    return p;
}

const char *sq_bl_model_name(sq_bl_model m) {
    return m == SQ_BL_GBDT ? "gbdt" : "naive";
}

void sq_gbdt_version(char *buf, int n) {
    int a = 0, b = 0, c = 0;
    XGBoostVersion(&a, &b, &c);
    snprintf(buf, (size_t)n, "XGBoost %d.%d.%d", a, b, c);
}

static sq_code xgb_fail(sq_status *st, const char *what) {
    return sq_fail(st, SQ_ERR_INTERNAL, "xgboost: %s: %s", what, XGBGetLastError());
}

#define XGB_TRY(call, what)                                                                        \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            rc = xgb_fail(st, what);                                                               \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

/* A DMatrix of the given rows with names, types ('q' numeric, 'c' categorical) and labels. */
static sq_code make_dmatrix(const sq_bl_table *t, const int *rows, int n, int nthread,
                            DMatrixHandle *out, sq_status *st) {
    const int nf = t->nfeat;
    float *x = malloc(sizeof(float) * (size_t)nf * (size_t)n);
    float *y = malloc(sizeof(float) * (size_t)n);
    const char **names = malloc(sizeof(char *) * (size_t)nf);
    const char **types = malloc(sizeof(char *) * (size_t)nf);
    sq_code rc = SQ_OK;
    *out = NULL;
    if (!x || !y || !names || !types) {
        rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        memcpy(x + (size_t)i * nf, t->x + (size_t)rows[i] * nf, sizeof(float) * (size_t)nf);
        y[i] = (float)t->target[rows[i]];
    }
    for (int j = 0; j < nf; j++) {
        names[j] = t->feat[j].name;
        types[j] = t->feat[j].type == SQ_BL_CATEGORICAL ? "c" : "q";
    }
    XGB_TRY(XGDMatrixCreateFromMat_omp(x, (bst_ulong)n, (bst_ulong)nf, NAN, out, nthread),
            "DMatrix");
    XGB_TRY(XGDMatrixSetFloatInfo(*out, "label", y, (bst_ulong)n), "labels");
    XGB_TRY(XGDMatrixSetStrFeatureInfo(*out, "feature_name", names, (bst_ulong)nf), "names");
    XGB_TRY(XGDMatrixSetStrFeatureInfo(*out, "feature_type", types, (bst_ulong)nf), "types");
done:
    if (rc != SQ_OK && *out) XGDMatrixFree(*out), *out = NULL;
    free(x), free(y), free(names), free(types);
    return rc;
}

static double mean_target(const sq_bl_table *t, const int *rows, int n) {
    double s = 0;
    for (int i = 0; i < n; i++)
        s += t->target[rows[i]];
    return n ? s / n : NAN;
}

/* A trained booster on the given rows. */
static sq_code train_booster(const sq_bl_table *t, const sq_gbdt_params *p, const int *rows, int n,
                             BoosterHandle *out, sq_status *st) {
    DMatrixHandle d;
    SQ_TRY(make_dmatrix(t, rows, n, p->nthread, &d, st));
    sq_code rc = SQ_OK;
    BoosterHandle b = NULL;
    char v[64];
    XGB_TRY(XGBoosterCreate(&d, 1, &b), "booster");
    const char *fixed[][2] = {{"objective", "reg:squarederror"},
                              {"tree_method", "hist"},
                              {"verbosity", "0"},
                              {"max_cat_to_onehot", "4"}};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        XGB_TRY(XGBoosterSetParam(b, fixed[k][0], fixed[k][1]), fixed[k][0]);
#define SET(name, fmt, val)                                                                        \
    snprintf(v, sizeof v, fmt, val);                                                               \
    XGB_TRY(XGBoosterSetParam(b, name, v), name)
    SET("base_score", "%.9g", mean_target(t, rows, n));
    SET("eta", "%.9g", p->eta);
    SET("max_depth", "%d", p->max_depth);
    SET("lambda", "%.9g", p->lambda);
    SET("colsample_bynode", "%.9g", p->colsample_bynode);
    SET("seed", "%llu", (unsigned long long)(p->seed & 0x7fffffffULL));
    SET("nthread", "%d", p->nthread);
#undef SET
    for (int it = 0; it < p->n_estimators; it++)
        XGB_TRY(XGBoosterUpdateOneIter(b, it, d), "boosting round");
done:
    XGDMatrixFree(d);
    if (rc != SQ_OK && b) XGBoosterFree(b), b = NULL;
    *out = b;
    return rc;
}

static sq_code predict_rows(BoosterHandle b, const sq_bl_table *t, const int *rows, int n,
                            int nthread, double *pred, sq_status *st) {
    DMatrixHandle d;
    SQ_TRY(make_dmatrix(t, rows, n, nthread, &d, st));
    sq_code rc = SQ_OK;
    const bst_ulong *shape;
    bst_ulong dim;
    const float *res;
    XGB_TRY(XGBoosterPredictFromDMatrix(b, d,
                                        "{\"type\":0,\"training\":false,\"iteration_begin\":0,"
                                        "\"iteration_end\":0,\"strict_shape\":false}",
                                        &shape, &dim, &res),
            "predict");
    if (dim != 1 || shape[0] != (bst_ulong)n) {
        rc = sq_fail(st, SQ_ERR_INTERNAL, "xgboost: prediction of %d rows came back as %llu", n,
                     (unsigned long long)shape[0]);
        goto done;
    }
    for (int i = 0; i < n; i++)
        pred[i] = res[i];
done:
    XGDMatrixFree(d);
    return rc;
}

sq_code sq_bl_fit_predict(sq_bl_model model, const sq_bl_table *t, const sq_gbdt_params *p,
                          const int *train, int ntrain, const int *test, int ntest, double *pred,
                          sq_status *st) {
    if (ntrain < 1) return sq_fail(st, SQ_ERR_RANGE, "baseline: empty training fold");
    if (model == SQ_BL_NAIVE) {
        double m = mean_target(t, train, ntrain);
        for (int i = 0; i < ntest; i++)
            pred[i] = m;
        return SQ_OK;
    }
    BoosterHandle b;
    SQ_TRY(train_booster(t, p, train, ntrain, &b, st));
    sq_code rc = predict_rows(b, t, test, ntest, p->nthread, pred, st);
    XGBoosterFree(b);
    return rc;
}

static sq_code feature_scores(BoosterHandle b, const sq_bl_table *t, const char *type, double *out,
                              sq_status *st) {
    char cfg[64];
    snprintf(cfg, sizeof cfg, "{\"importance_type\":\"%s\"}", type);
    bst_ulong nfeat, dim;
    const char **names;
    const bst_ulong *shape;
    const float *scores;
    if (XGBoosterFeatureScore(b, cfg, &nfeat, &names, &dim, &shape, &scores) != 0)
        return xgb_fail(st, "feature scores");
    /* the booster names features f<j> (1.7 does not carry the DMatrix names over) */
    for (int j = 0; j < t->nfeat; j++)
        out[j] = 0;
    for (bst_ulong k = 0; k < nfeat; k++) {
        int j = -1;
        char tail;
        for (int i = 0; i < t->nfeat && j < 0; i++)
            if (!strcmp(names[k], t->feat[i].name)) j = i;
        if (j < 0 && (sscanf(names[k], "f%d%c", &j, &tail) != 1 || j >= t->nfeat)) j = -1;
        if (j < 0) return sq_fail(st, SQ_ERR_INTERNAL, "xgboost: unknown feature '%s'", names[k]);
        out[j] = scores[k];
    }
    return SQ_OK;
}

sq_code sq_gbdt_importance(const sq_bl_table *t, const sq_gbdt_params *p, double *gain,
                           double *total_gain, sq_status *st) {
    int *rows = malloc(sizeof(int) * (size_t)t->nrows);
    if (!rows) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->nrows; i++)
        rows[i] = i;
    BoosterHandle b;
    sq_code rc = train_booster(t, p, rows, t->nrows, &b, st);
    free(rows);
    if (rc != SQ_OK) return rc;
    rc = feature_scores(b, t, "gain", gain, st);
    if (rc == SQ_OK) rc = feature_scores(b, t, "total_gain", total_gain, st);
    XGBoosterFree(b);
    return rc;
}
