/* splits.h — cross-validation folds made per patient (DESIGN §4), saved as JSON and reusable.
 *
 * All contours (cases) of one patient fall in one fold. Patients are shuffled with Philox keyed by
 * the seed, then each goes to the fold with the fewest cases so far, so folds stay balanced in
 * cases even when patients have several contours. The JSON file (`segqa-splits`, version 1) lists
 * every case with its patient and fold; `--splits FILE` reuses it, and loading checks that it is
 * well-formed, that no patient spans two folds, and that it covers exactly the cases of the run.
 * Leave-one-site-out folds (sq_splits_by_group) are one fold per site, saved the same way.
 */
#ifndef SEGQA_TRAIN_SPLITS_H
#define SEGQA_TRAIN_SPLITS_H

#include "core/status.h"

#include <stdint.h>

#define SQ_ID_MAX 128

typedef struct sq_splits {
    int nfolds;
    uint64_t seed;
    int ncases;
    char (*case_id)[SQ_ID_MAX];
    char (*patient)[SQ_ID_MAX];
    int *fold;
} sq_splits;

/* Make folds for n cases. patient_ids[i] may repeat (several contours of one patient). */
sq_code sq_splits_make(const char *const *case_ids, const char *const *patient_ids, int n,
                       int nfolds, uint64_t seed, sq_splits *out, sq_status *st);
/* Leave-one-group-out folds (--split-by site): case i goes to fold group_of[i] (0..ngroups-1).
 * Every group must hold a case, and no patient may span two groups. */
sq_code sq_splits_by_group(const char *const *case_ids, const char *const *patient_ids,
                           const int *group_of, int n, int ngroups, sq_splits *out, sq_status *st);
void sq_splits_free(sq_splits *s);

/* Fold of a case id, or -1. */
int sq_splits_fold_of(const sq_splits *s, const char *case_id);
/* Number of cases in fold f. */
int sq_splits_count(const sq_splits *s, int f);

sq_code sq_splits_save(const sq_splits *s, const char *path, sq_status *st);
sq_code sq_splits_load(const char *path, sq_splits *out, sq_status *st);
/* The splits must cover exactly these cases with these patients (order free). */
sq_code sq_splits_check_cases(const sq_splits *s, const char *const *case_ids,
                              const char *const *patient_ids, int n, const char *origin,
                              sq_status *st);

#endif
