/* cmd_sweep.c — `segqa sweep` (a sweep file from a JSON spec: grid or seeded random search) and
 * `segqa report --sweep DIR` (every task of a Slurm sweep ranked on validation numbers); see
 * src/train/sweep.h and slurm/sweep.sbatch. */
#include "cli.h"

#include "train/sweep.h"

#include <stdio.h>
#include <string.h>

int sq_cmd_sweep(int argc, char **argv) {
    char out[4096] = "sweep.txt";
    int grid = 0;
    long long random_n = 0, seed = 1;
    const sq_option opts[] = {
        {"grid", 0, SQ_OPT_FLAG, &grid, 0, NULL, "every combination of the spec's lists", NULL, 0,
         0},
        {"random", 0, SQ_OPT_INT, &random_n, 0, "N", "N sets drawn from the spec (seeded)", NULL, 1,
         100000},
        {"seed", 's', SQ_OPT_INT, &seed, 0, "N", "seed of the random search", NULL, 0, 9.0e15},
        {"out", 'o', SQ_OPT_STRING, out, sizeof out, "FILE", "sweep file to write", NULL, 0, 0},
    };
    const sq_cli_spec spec = {
        .command = "sweep",
        .usage = "segqa sweep --grid|--random N [options] SPEC.json",
        .description =
            "Write a sweep file: one hyperparameter set per line, any `segqa train`/`cv` options,\n"
            "for slurm/sweep.sbatch (array task i runs line i+1). SPEC.json maps option names to\n"
            "a list of values ({\"lr\": [0.001, 0.005], \"augment\": [\"paper\", \"robust\"]}) "
            "or,\n"
            "for --random, a range ({\"lr\": {\"min\": 1e-4, \"max\": 1e-2, \"log\": true},\n"
            "\"fpn-repeats\": {\"min\": 1, \"max\": 3, \"int\": true}); true is a flag.",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 1,
        .max_pos = 1,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("sweep", &st);
    if (a.help) return 0;
    if (grid == (random_n > 0)) {
        sq_fail(&st, SQ_ERR_USAGE, "give exactly one of --grid and --random N");
        return sq_cli_report("sweep", &st);
    }
    int n = 0;
    if (sq_sweep_make(a.pos[0], (int)random_n, (uint64_t)seed, out, &n, &st) != SQ_OK)
        return sq_cli_report("sweep", &st);
    printf("%d hyperparameter set(s) -> %s (submit: sbatch --array=0-%d%%4 slurm/sweep.sbatch %s "
           "SITE.h5...)\n",
           n, out, n - 1, out);
    return 0;
}

int sq_cmd_report(int argc, char **argv) {
    char dir[4096] = "", metric[32] = "val_mae";
    int no_figure = 0;
    const sq_option opts[] = {
        {"sweep", 0, SQ_OPT_STRING, dir, sizeof dir, "DIR",
         "sweep folder (sweep.txt and task-<i>/ run folders)", NULL, 0, 0},
        {"metric", 'm', SQ_OPT_CHOICE, metric, sizeof metric, "NAME",
         "rank by: val_mae (validation patients, default), test_mae or test_spearman (test "
         "folds: flagged, not for choosing)",
         "val_mae|test_mae|test_spearman", 0, 0},
        {"no-figure", 0, SQ_OPT_FLAG, &no_figure, 0, NULL, "do not draw sweep-report.png", NULL, 0,
         0},
    };
    const sq_cli_spec spec = {
        .command = "report",
        .usage = "segqa report --sweep DIR [options]",
        .description =
            "Gather every task of a sweep (slurm/sweep.sbatch) into one table ranked by a metric:\n"
            "DIR/sweep-report.csv, sweep-report.md and sweep-report.png (the metric against each\n"
            "swept parameter). Tasks that failed, are still running, were requeued or never\n"
            "started are listed with their state and not ranked. Exit 0 when every task finished,\n"
            "1 when some did not.",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 0,
        .max_pos = 0,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("report", &st);
    if (a.help) return 0;
    if (!dir[0]) {
        sq_fail(&st, SQ_ERR_USAGE, "--sweep DIR is required");
        return sq_cli_report("report", &st);
    }
    int nranked = 0, nbad = 0;
    if (sq_sweep_report(dir, (sq_sweep_metric)sq_sweep_metric_parse(metric), !no_figure, stdout,
                        &nranked, &nbad, &st) != SQ_OK)
        return sq_cli_report("report", &st);
    printf("\n%d task(s) ranked, %d not finished -> %s/sweep-report.{csv,md%s}\n", nranked, nbad,
           dir, no_figure || nranked == 0 ? "" : ",png");
    return nbad > 0 ? 1 : 0;
}
