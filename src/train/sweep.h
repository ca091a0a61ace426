/* sweep.h — hyperparameter sweeps (`segqa sweep`, `segqa report --sweep`, slurm/sweep.sbatch).
 *
 * A sweep file holds one hyperparameter set per line, each a list of `segqa train`/`cv` options
 * ("--lr 0.002 --fpn-channels 16 --augment robust"); task i of a Slurm job array runs line i+1.
 * It is made from a JSON spec: every key an option name, its value a list (grid: every
 * combination, in key order with the last key fastest; random: one value drawn per line) or, for
 * random search only, a range {"min": a, "max": b, "log": true, "int": true}. Random search is
 * seeded (Philox stream keyed by seed and line). true is a flag (present), false leaves it out.
 *
 * The report reads DIR/sweep.txt and, per task i, DIR/task-<i>/task.json (written by sweep.sbatch:
 * state running|done|failed|preempted, exit code, job id) and the run folder's metrics.json. It
 * ranks the finished tasks by a metric — by default `val_mae`, metrics.json's validation
 * mean_best_val_mae (validation patients held out of the training folds) — and writes
 * sweep-report.csv, sweep-report.md and sweep-report.png (metric against each swept parameter,
 * drawn by gnuplot spawned with argv). Failed, running, requeued and never-started tasks are listed
 * with their state and never ranked.
 */
#ifndef SEGQA_TRAIN_SWEEP_H
#define SEGQA_TRAIN_SWEEP_H

#include "core/status.h"

#include <stdint.h>
#include <stdio.h>

/* Write the sweep file `out` from the spec: random_n > 0 draws that many sets (seeded), 0 makes
 * the full grid. *nlines gets the number of lines written. */
sq_code sq_sweep_make(const char *spec_path, int random_n, uint64_t seed, const char *out,
                      int *nlines, sq_status *st);

/* The metrics a sweep can be ranked by. */
typedef enum sq_sweep_metric {
    SQ_SWEEP_VAL_MAE = 0, /* validation: mean over folds of the best real-contour val MAE */
    SQ_SWEEP_TEST_MAE,    /* test folds, real contours (information; flagged when ranked on) */
    SQ_SWEEP_TEST_SPEARMAN
} sq_sweep_metric;

/* -1 when unknown. */
int sq_sweep_metric_parse(const char *name);

/* Gather DIR's tasks and write DIR/sweep-report.{csv,md,png} (figure: 0 skips the PNG). The
 * Markdown table is also printed on `f` (may be NULL). *nranked / *nbad: ranked tasks, and tasks
 * failed, running, requeued or never started. */
sq_code sq_sweep_report(const char *dir, sq_sweep_metric metric, int figure, FILE *f, int *nranked,
                        int *nbad, sq_status *st);

#endif
