/* gbdt.h — the two clinical baselines behind one call: the naive mean and gradient-boosted trees
 * through XGBoost's C API (Debian libxgboost-dev 1.7).
 *
 * GBDT: squared error, histogram trees, categorical variables split natively (feature type 'c':
 * XGBoost partitions the categories at a node, one-hot splits below max_cat_to_onehot = 4 labels),
 * missing values routed by learnt default directions, boosting from the training mean (as CatBoost
 * does for RMSE), a fixed learning rate (the study left CatBoost's at its default). The search
 * knobs are n_estimators, max_depth, lambda (L2 on leaf weights, CatBoost's l2_leaf_reg) and
 * colsample_bynode (the random feature subset each split may choose from: XGBoost's nearest
 * randomisation of split selection, standing in for CatBoost's random_strength). Every fit is
 * deterministic in (params, seed, rows).
 *
 * Not for: the parameter search (search.h) or cross-validation (cv.h).
 */
#ifndef SEGQA_BASELINE_GBDT_H
#define SEGQA_BASELINE_GBDT_H

#include "baseline/table.h"
#include "core/status.h"

#include <stdint.h>

typedef enum sq_bl_model { SQ_BL_NAIVE = 0, SQ_BL_GBDT = 1 } sq_bl_model;

typedef struct sq_gbdt_params {
    int n_estimators;        /* 1..256 */
    int max_depth;           /* 1..6 */
    double lambda;           /* L2 regularisation, 1e-3..10 */
    double colsample_bynode; /* 0.2..1 */
    double eta;              /* learning rate (fixed, not searched) */
    uint64_t seed;
    int nthread;
} sq_gbdt_params;

sq_gbdt_params sq_gbdt_params_default(void);
const char *sq_bl_model_name(sq_bl_model m);

/* Fit on rows train[0..ntrain) of t and predict rows test[0..ntest) into pred. */
sq_code sq_bl_fit_predict(sq_bl_model model, const sq_bl_table *t, const sq_gbdt_params *p,
                          const int *train, int ntrain, const int *test, int ntest, double *pred,
                          sq_status *st);

/* Fit the GBDT on every row; gain[j] (average gain per split) and total_gain[j] of feature j
 * (0 for a feature no tree uses). */
sq_code sq_gbdt_importance(const sq_bl_table *t, const sq_gbdt_params *p, double *gain,
                           double *total_gain, sq_status *st);

/* "XGBoost 1.7.4" */
void sq_gbdt_version(char *buf, int n);

#endif
