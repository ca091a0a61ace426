/* beside.h — the clinical GBDT beside the network in `segqa cv`'s summary.
 *
 * After a cross-validation, on the run's own folds (RUN/splits.json): for each test fold a small
 * TPE search (16 trials, 2 repeated CVs) runs on the training patients only, the best GBDT is
 * fitted on them and predicts the fold's patients; every real contour of a patient gets its
 * patient's estimate. MAE and Spearman over the real contours of RUN/predictions.csv are then set
 * beside the network's and the naive mean's, in RUN/clinical_baseline.json and on stdout. Sites
 * without clinical variables are skipped (done = 0). Not for: the study's own protocol (search.h,
 * `segqa baseline`).
 */
#ifndef SEGQA_BASELINE_BESIDE_H
#define SEGQA_BASELINE_BESIDE_H

#include "core/status.h"

#include <stdint.h>
#include <stdio.h>

typedef struct sq_bl_beside {
    int done;                    /* 0: no clinical variables, nothing written */
    int n;                       /* real contours compared */
    double mae[3], spearman[3];  /* network, naive, gbdt */
    char why[SQ_STATUS_MSG_MAX]; /* when not done */
} sq_bl_beside;

sq_code sq_bl_cv_beside(const char *run_dir, const char *const *sites, int nsites, uint64_t seed,
                        sq_bl_beside *out, sq_status *st);
void sq_bl_beside_print(FILE *f, const sq_bl_beside *b);

#endif
