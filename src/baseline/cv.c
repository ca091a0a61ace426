/* cv.c — repeated random K-fold cross-validation over patients (cv.h). */
#include "baseline/cv.h"

#include "core/rng.h"
#include "train/metrics.h"

#include <math.h>
#include <stdlib.h>

void sq_bl_mean_sd(const double *v, int n, double *mean, double *sd, int *nvalid) {
    double s = 0, s2 = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) s += v[i], k++;
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = k ? sqrt(s2 / k) : NAN;
    if (nvalid) *nvalid = k;
}

/* Fit on every fold but f, predict fold f into oof. */
static sq_code run_fold(sq_bl_model model, const sq_bl_table *t, const sq_gbdt_params *p,
                        const int *fold_of, int f, int *train, int *test, double *pred, double *oof,
                        sq_status *st) {
    int ntr = 0, nte = 0;
    for (int i = 0; i < t->nrows; i++) {
        if (fold_of[i] == f)
            test[nte++] = i;
        else
            train[ntr++] = i;
    }
    if (nte == 0) return SQ_OK;
    SQ_TRY(sq_bl_fit_predict(model, t, p, train, ntr, test, nte, pred, st));
    for (int i = 0; i < nte; i++)
        oof[test[i]] = pred[i];
    return SQ_OK;
}

sq_code sq_bl_cv_repeat(sq_bl_model model, const sq_bl_table *t, const sq_gbdt_params *p,
                        int nfolds, uint64_t seed, uint32_t stream, double *oof, int *fold,
                        sq_bl_repeat *out, sq_status *st) {
    const int n = t->nrows;
    if (nfolds < 2 || nfolds > n)
        return sq_fail(st, SQ_ERR_RANGE, "baseline: %d folds for %d patients; expected 2..%d",
                       nfolds, n, n);
    uint32_t *perm = malloc(sizeof(uint32_t) * (size_t)n);
    int *fold_of = malloc(sizeof(int) * (size_t)n), *train = malloc(sizeof(int) * (size_t)n),
        *test = malloc(sizeof(int) * (size_t)n);
    double *pred = malloc(sizeof(double) * (size_t)n), *mine = malloc(sizeof(double) * (size_t)n);
    sq_code rc = perm && fold_of && train && test && pred && mine
                     ? SQ_OK
                     : sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    if (rc == SQ_OK) {
        sq_rng_permutation(seed, stream, perm, (uint32_t)n);
        for (int j = 0; j < n; j++)
            fold_of[perm[j]] = j % nfolds;
        /* each fold gets a seed of its own for the trees' column sampling */
        for (int f = 0; f < nfolds && rc == SQ_OK; f++) {
            sq_gbdt_params pf = *p;
            pf.seed = seed ^ ((uint64_t)stream << 20) ^ (uint64_t)(f + 1) * 0x9E3779B97F4A7C15ULL;
            rc = run_fold(model, t, &pf, fold_of, f, train, test, pred, mine, st);
        }
    }
    if (rc == SQ_OK) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += fabs(mine[i] - t->target[i]);
        out->mae = s / n;
        out->spearman = sq_spearman(t->target, mine, n);
        for (int i = 0; oof && i < n; i++)
            oof[i] = mine[i];
        for (int i = 0; fold && i < n; i++)
            fold[i] = fold_of[i];
    }
    free(perm), free(fold_of), free(train), free(test), free(pred), free(mine);
    return rc;
}
