/* table.h — the clinical baselines' data: one row per patient, its clinical variables and target.
 *
 * Rows come from the site files' case metadata (no volumes are read): a patient's target is the
 * mean Dice of all its contours over all its cases (the study: "for the 20 images with two
 * segmentations, we used the mean value of the Dice coefficients"). Variables come from the
 * cases' `clinical` JSON (the patient's first case that has any) or, with a clinical CSV, from
 * that file: a header with a column `patient` or `case` plus one column per variable.
 *
 * Each variable is numeric or categorical. Declared types (`age:num`, `risk:cat`) are checked;
 * undeclared ones are numeric when every present value is a number and categorical when none is;
 * a mix is an error (a typo in a numeric column must not turn it into categories silently).
 * Empty cells, NA and NaN are missing values (XGBoost routes them natively). Categories are coded
 * 0..k-1 in sorted label order: the code depends on the labels only, never on targets.
 *
 * Not for: model fitting (gbdt.h) or cross-validation (cv.h).
 */
#ifndef SEGQA_BASELINE_TABLE_H
#define SEGQA_BASELINE_TABLE_H

#include "core/status.h"

#define SQ_BL_NAME_MAX 128

typedef enum sq_bl_ftype { SQ_BL_NUMERIC = 0, SQ_BL_CATEGORICAL = 1 } sq_bl_ftype;

typedef struct sq_bl_feature {
    char name[SQ_BL_NAME_MAX];
    sq_bl_ftype type;
    int ncat;    /* categorical: number of labels */
    char **cats; /* categorical: sorted labels; code = index */
} sq_bl_feature;

typedef struct sq_bl_table {
    int nrows, nfeat;
    char (*patient)[SQ_BL_NAME_MAX];
    char (*site)[SQ_BL_NAME_MAX];
    int *ncontours;
    double *target; /* mean Dice of the patient's contours */
    sq_bl_feature *feat;
    float *x; /* nrows x nfeat, row-major; NaN = missing; categorical = code */
} sq_bl_table;

typedef struct sq_bl_source {
    const char *const *sites; /* site .h5 files */
    int nsites;
    const char *clinical_csv; /* NULL/"": the site files' clinical JSON */
    const char *features;     /* "a,b:cat,c:num" or NULL/"": every variable found */
    int targets_only;         /* the naive model: patients and targets, no variables needed */
} sq_bl_source;

sq_code sq_bl_table_load(const sq_bl_source *src, sq_bl_table *t, sq_status *st);
void sq_bl_table_free(sq_bl_table *t);
const char *sq_bl_ftype_name(sq_bl_ftype t);

#endif
