/* search.h — the study's parameter search for the GBDT baseline, and the final evaluation.
 *
 * Space (the study's Table 1, XGBoost names): n_estimators {1..256}, max_depth {1..6}, lambda
 * log-uniform [1e-3, 10] (CatBoost l2_leaf_reg), colsample_bynode uniform [0.2, 1] (in place of
 * CatBoost's random_strength, see gbdt.h). Each trial is scored by the mean MAE of `repeats_search`
 * repeated random K-fold CVs, on the same repeats for every trial (common random numbers); the
 * best trial and the naive mean are then evaluated on `repeats_final` other repeats.
 *
 * Proposals: the first `startup` trials are drawn from the prior; later ones by a Tree-structured
 * Parzen Estimator (Bergstra et al. 2011, as Optuna's default sampler): the best quarter of the
 * trials so far (at most 25) and the rest each define a per-parameter Parzen density l(x), g(x)
 * (truncated Gaussians at the observations plus one prior component, hyperopt's bandwidths), 24
 * candidates are drawn from l and the one maximising l(x)/g(x) is taken.
 *
 * Trials run in rounds of `batch` proposals made from the trials of earlier rounds only, so the
 * sequence depends on (seed, batch) and never on the number of ranks. Within a round trial i runs
 * on rank i % size; the scores are summed over ranks (each entry has one non-zero contributor, so
 * the sum is exact) and every rank holds the same history. Final repeats are dealt the same way.
 * src/cli plugs MPI in through sq_bl_par; this layer knows no MPI.
 */
#ifndef SEGQA_BASELINE_SEARCH_H
#define SEGQA_BASELINE_SEARCH_H

#include "baseline/cv.h"
#include "baseline/gbdt.h"
#include "baseline/table.h"

#include <stdint.h>

#define SQ_BL_NPARAM 4

typedef struct sq_bl_par {
    int rank, size;
    /* element-wise sum of buf over all ranks, result on every rank; NULL for one process */
    sq_code (*sum)(void *ctx, double *buf, int n, sq_status *st);
    void *ctx;
} sq_bl_par;

typedef struct sq_bl_search_opts {
    int trials, startup, batch;
    int repeats_search, repeats_final, nfolds;
    uint64_t seed;
    sq_gbdt_params base; /* eta, nthread */
    int progress;
} sq_bl_search_opts;

sq_bl_search_opts sq_bl_search_opts_default(void);

typedef struct sq_bl_trial {
    double x[SQ_BL_NPARAM]; /* n_estimators, max_depth, lambda, colsample_bynode */
    int tpe;                /* 0: drawn from the prior, 1: TPE proposal */
    double mae, mae_sd;     /* over the search repeats */
} sq_bl_trial;

typedef struct sq_bl_result {
    int ntrials, best;
    sq_bl_trial *trials;
    sq_gbdt_params best_params;
    int nrep;
    sq_bl_repeat *gbdt, *naive;   /* per final repeat */
    double *oof_gbdt, *oof_naive; /* final repeat 0, per row */
    int *fold;                    /* final repeat 0, per row */
    double search_seconds, final_seconds;
} sq_bl_result;

const char *sq_bl_param_name(int k);
sq_gbdt_params sq_bl_trial_params(const sq_bl_trial *tr, const sq_gbdt_params *base);

/* model GBDT: search then final evaluation; model NAIVE: final evaluation of the naive only. */
sq_code sq_bl_run(sq_bl_model model, const sq_bl_table *t, const sq_bl_search_opts *o,
                  const sq_bl_par *par, sq_bl_result *r, sq_status *st);
void sq_bl_result_free(sq_bl_result *r);

/* TPE internals, exposed for tests: the next proposal of trial index `t` from `n` done trials. */
void sq_bl_propose(const sq_bl_trial *done, int n, int t, int startup, uint64_t seed,
                   double x[SQ_BL_NPARAM], int *tpe);

#endif
