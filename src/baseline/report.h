/* report.h — the baseline run folder: the study's Table 2 for this data and what explains it.
 *
 * Files (each written under a temporary name and renamed): table2.md and table2.json (MAE and
 * Spearman, mean ± SD over the final repeats, GBDT and naive), best_params.json, trials.csv (every
 * search trial), importance.csv (gain and total gain per variable of the best model fitted on all
 * patients), predictions.csv (out-of-fold predictions of final repeat 0, one row per patient),
 * pred_vs_target.png (gnuplot, spawned with an argv), config.json (the resolved options).
 */
#ifndef SEGQA_BASELINE_REPORT_H
#define SEGQA_BASELINE_REPORT_H

#include "baseline/search.h"

#include <cjson/cJSON.h>
#include <stdio.h>

typedef struct sq_bl_report {
    const char *run_dir;
    sq_bl_model model;
    const sq_bl_table *table;
    const sq_bl_search_opts *opts;
    const sq_bl_result *result;
    const double *gain, *total_gain; /* GBDT only, per feature */
    const cJSON *config;
    int figures;
} sq_bl_report;

sq_code sq_bl_report_write(const sq_bl_report *rep, sq_status *st);
/* The Table 2 lines (Markdown) to f. */
void sq_bl_report_print_table(FILE *f, const sq_bl_report *rep);

#endif
