/* cmd_baseline.c — `segqa baseline`: the study's clinical-variable baselines (naive mean, GBDT
 * through XGBoost with its 64-trial search) on site files; trials spread over MPI ranks when run
 * under mpirun (src/baseline/search.h). */
#include "cli.h"

#include "baseline/report.h"
#include "baseline/search.h"
#include "core/log.h"
#include "core/rng.h"
#include "hpc/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct baseline_cli {
    char model[8], out[4096], clinical[4096], features[4096];
    long long trials, startup, batch, rep_search, rep_final, folds, seed, threads;
    double eta;
    int shuffle, no_figures;
} baseline_cli;

static void defaults(baseline_cli *c) {
    sq_bl_search_opts d = sq_bl_search_opts_default();
    memset(c, 0, sizeof *c);
    snprintf(c->model, sizeof c->model, "gbdt");
    snprintf(c->out, sizeof c->out, "runs/baseline");
    c->trials = d.trials, c->startup = d.startup, c->batch = d.batch;
    c->rep_search = d.repeats_search, c->rep_final = d.repeats_final, c->folds = d.nfolds;
    c->seed = (long long)d.seed, c->threads = d.base.nthread, c->eta = d.base.eta;
}

static sq_code mpi_sum(void *ctx, double *buf, int n, sq_status *st) {
    const sq_world *w = ctx;
    sq_group g = {w->comm, w->rank, w->size, 0};
    return sq_allreduce_sum_doubles(&g, buf, n, st);
}

/* The control of the tests: targets permuted across patients (the variables stay). */
static void shuffle_targets(sq_bl_table *t, uint64_t seed) {
    uint32_t *perm = malloc(sizeof(uint32_t) * (size_t)t->nrows);
    double *y = malloc(sizeof(double) * (size_t)t->nrows);
    if (perm && y) {
        sq_rng_permutation(seed, 0x53485546u /* "SHUF" */, perm, (uint32_t)t->nrows);
        for (int i = 0; i < t->nrows; i++)
            y[i] = t->target[perm[i]];
        memcpy(t->target, y, sizeof(double) * (size_t)t->nrows);
    }
    free(perm), free(y);
}

static sq_bl_search_opts search_opts(const baseline_cli *c, int rank) {
    sq_bl_search_opts o = sq_bl_search_opts_default();
    o.trials = (int)c->trials, o.startup = (int)c->startup, o.batch = (int)c->batch;
    o.repeats_search = (int)c->rep_search, o.repeats_final = (int)c->rep_final;
    o.nfolds = (int)c->folds, o.seed = (uint64_t)c->seed;
    o.base.eta = c->eta, o.base.nthread = (int)c->threads;
    o.progress = rank == 0 && sq_log_enabled(SQ_LOG_INFO);
    return o;
}

static sq_code run_baseline(const baseline_cli *c, const sq_cli_args *a, const sq_world *w,
                            cJSON *config, sq_status *st) {
    const sq_bl_model model = strcmp(c->model, "gbdt") ? SQ_BL_NAIVE : SQ_BL_GBDT;
    /* the naive model needs no variables, unless a CSV was given (then it is checked) */
    const int targets_only = model == SQ_BL_NAIVE && !*c->clinical && !*c->features;
    const sq_bl_source src = {(const char *const *)a->pos, a->npos, c->clinical, c->features,
                              targets_only};
    sq_bl_table t;
    SQ_TRY(sq_bl_table_load(&src, &t, st));
    if (c->shuffle) shuffle_targets(&t, (uint64_t)c->seed);
    sq_info("baseline %s: %d patients, %d variables, %d ranks", c->model, t.nrows, t.nfeat,
            w->size);
    sq_bl_search_opts o = search_opts(c, w->rank);
    sq_bl_par par = {w->rank, w->size, mpi_sum, (void *)w};
    sq_bl_result r;
    sq_code rc = sq_bl_run(model, &t, &o, &par, &r, st);
    double *gain = calloc((size_t)t.nfeat + 1, sizeof(double));
    double *total = calloc((size_t)t.nfeat + 1, sizeof(double));
    if (rc == SQ_OK && (!gain || !total)) rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    if (rc == SQ_OK && w->rank == 0 && model == SQ_BL_GBDT)
        rc = sq_gbdt_importance(&t, &r.best_params, gain, total, st);
    if (rc == SQ_OK && w->rank == 0) {
        sq_bl_report rep = {c->out, model, &t, &o, &r, gain, total, config, !c->no_figures};
        rc = sq_bl_report_write(&rep, st);
        if (rc == SQ_OK && sq_log_enabled(SQ_LOG_INFO)) {
            sq_bl_report_print_table(stdout, &rep);
            printf("search %.1f s, final %.1f s -> %s/table2.md\n", r.search_seconds,
                   r.final_seconds, c->out);
        }
    }
    free(gain), free(total);
    sq_bl_result_free(&r);
    sq_bl_table_free(&t);
    return rc;
}

int sq_cmd_baseline(int argc, char **argv) {
    baseline_cli c;
    defaults(&c);
    const sq_option opts[] = {
        {"model", 'm', SQ_OPT_CHOICE, c.model, sizeof c.model, "MODEL",
         "naive (training mean) or gbdt (XGBoost on the clinical variables)", "naive|gbdt", 0, 0},
        {"out", 'o', SQ_OPT_STRING, c.out, sizeof c.out, "DIR", "run folder", NULL, 0, 0},
        {"clinical", 0, SQ_OPT_STRING, c.clinical, sizeof c.clinical, "FILE.csv",
         "variables from this CSV (column 'patient' or 'case' + one per variable) instead of "
         "the site files",
         NULL, 0, 0},
        {"features", 0, SQ_OPT_STRING, c.features, sizeof c.features, "LIST",
         "variables to use, e.g. age,isup:cat,ipsa:num (default: all; type inferred)", NULL, 0, 0},
        {"trials", 0, SQ_OPT_INT, &c.trials, 0, "N", "search trials (study: 64)", NULL, 1, 4096},
        {"startup", 0, SQ_OPT_INT, &c.startup, 0, "N", "random trials before TPE proposals", NULL,
         0, 4096},
        {"batch", 0, SQ_OPT_INT, &c.batch, 0, "N",
         "proposals per round (spread over ranks; part of the result, unlike the rank count)", NULL,
         1, 256},
        {"repeats-search", 0, SQ_OPT_INT, &c.rep_search, 0, "N",
         "repeated CVs scoring each trial (study: 8)", NULL, 1, 1024},
        {"repeats-final", 0, SQ_OPT_INT, &c.rep_final, 0, "N",
         "repeated CVs evaluating the best trial and naive (study: 64)", NULL, 1, 4096},
        {"folds", 'k', SQ_OPT_INT, &c.folds, 0, "K", "folds per CV (per patient)", NULL, 2, 64},
        {"eta", 0, SQ_OPT_DOUBLE, &c.eta, 0, "X", "GBDT learning rate (not searched)", NULL, 1e-4,
         1},
        {"seed", 's', SQ_OPT_INT, &c.seed, 0, "N", "seed of folds, proposals and trees", NULL, 0,
         9.0e15},
        {"threads", 't', SQ_OPT_INT, &c.threads, 0, "N", "XGBoost threads per rank", NULL, 1, 256},
        {"shuffle-targets", 0, SQ_OPT_FLAG, &c.shuffle, 0, NULL,
         "control: permute the targets across patients (a GBDT should then not beat naive)", NULL,
         0, 0},
        {"no-figures", 0, SQ_OPT_FLAG, &c.no_figures, 0, NULL, "do not draw the figure", NULL, 0,
         0},
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    const sq_cli_spec spec = {
        .command = "baseline",
        .usage = "segqa baseline [--model naive|gbdt] [options] SITE.h5... --out RUN",
        .description =
            "The study's baselines from clinical variables alone, one row per patient (target:\n"
            "the mean Dice of its contours). gbdt: a TPE search (first --startup trials random)\n"
            "over n_estimators 1..256, max_depth 1..6, lambda log-uniform [1e-3, 10] and\n"
            "colsample_bynode [0.2, 1], each trial scored by MAE over --repeats-search repeated\n"
            "random K-fold CVs; the best and the naive mean are then evaluated over\n"
            "--repeats-final repeats. Under mpirun the trials are spread over the ranks; the\n"
            "result does not depend on their number. Writes table2.md/.json (MAE and Spearman,\n"
            "mean ± SD), best_params.json, trials.csv, importance.csv, predictions.csv,\n"
            "pred_vs_target.png and config.json into RUN.",
        .opts = opts,
        .nopts = nopts,
        .min_pos = 1,
        .max_pos = -1,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("baseline", &st);
    if (a.help) return 0;
    sq_world w;
    if (sq_world_init(NULL, NULL, &w, &st) != SQ_OK) {
        int code = sq_cli_report("baseline", &st);
        sq_world_finalize(&w);
        return code;
    }
    if (w.size > 1) sq_log_set_rank(w.rank, 0);
    cJSON *config = sq_options_to_json(opts, nopts);
    if (config) {
        cJSON *sites = cJSON_AddArrayToObject(config, "sites");
        for (int i = 0; i < a.npos; i++)
            cJSON_AddItemToArray(sites, cJSON_CreateString(a.pos[i]));
        cJSON_AddNumberToObject(config, "ranks", w.size);
    }
    sq_code rc = run_baseline(&c, &a, &w, config, &st);
    cJSON_Delete(config);
    /* every rank meets the same input error; one line from rank 0 */
    int code = rc == SQ_OK ? 0 : w.rank == 0 ? sq_cli_report("baseline", &st) : sq_exit_code(rc);
    sq_world_finalize(&w);
    return code;
}
