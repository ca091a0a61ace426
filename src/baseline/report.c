/* report.c — the baseline run folder (report.h). */
#include "baseline/report.h"

#include "core/fileio.h"
#include "core/json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct row_stats {
    double mae, mae_sd, rho, rho_sd;
    int n, n_rho;
} row_stats;

static row_stats stats_of(const sq_bl_repeat *r, int n) {
    row_stats s;
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1)),
           *w = v ? malloc(sizeof(double) * (size_t)(n ? n : 1)) : NULL;
    memset(&s, 0, sizeof s);
    s.n = n;
    if (!v || !w) {
        free(v);
        s.mae = s.mae_sd = s.rho = s.rho_sd = NAN;
        return s;
    }
    for (int i = 0; i < n; i++)
        v[i] = r[i].mae, w[i] = r[i].spearman;
    sq_bl_mean_sd(v, n, &s.mae, &s.mae_sd, NULL);
    sq_bl_mean_sd(w, n, &s.rho, &s.rho_sd, &s.n_rho);
    free(v), free(w);
    return s;
}

/* Text built in memory, then written atomically. */
static sq_code write_text(const char *dir, const char *name,
                          void (*fill)(FILE *, const sq_bl_report *), const sq_bl_report *rep,
                          sq_status *st) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    fill(f, rep);
    fclose(f);
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sq_code rc = sq_write_file_atomic(path, buf, len, st);
    free(buf);
    return rc;
}

static void md_row(FILE *f, const char *name, row_stats s, int show_rho) {
    fprintf(f, "| %s | %.4f (± %.1e) |", name, s.mae, s.mae_sd);
    if (show_rho && s.n_rho > 0)
        fprintf(f, " %.2f (± %.2f) |\n", s.rho, s.rho_sd);
    else
        fprintf(f, " n/a |\n");
}

void sq_bl_report_print_table(FILE *f, const sq_bl_report *rep) {
    const sq_bl_result *r = rep->result;
    fprintf(f, "| model | MAE | Corr (Spearman) |\n|---|---|---|\n");
    if (rep->model == SQ_BL_GBDT) md_row(f, "GBDT (XGBoost)", stats_of(r->gbdt, r->nrep), 1);
    md_row(f, "Naive (training mean)", stats_of(r->naive, r->nrep), 1);
}

static void fill_table_md(FILE *f, const sq_bl_report *rep) {
    const sq_bl_table *t = rep->table;
    const sq_bl_search_opts *o = rep->opts;
    fprintf(f, "# Clinical-variable baselines (the study's Table 2 for this data)\n\n");
    fprintf(f,
            "Mean (± SD, ddof 0) over %d repeated random %d-fold cross-validations of %d "
            "patients; the target is each patient's mean Dice over its contours.\n\n",
            rep->result->nrep, o->nfolds, t->nrows);
    sq_bl_report_print_table(f, rep);
    fprintf(f, "\nThe naive model's Spearman comes only from its fold-to-fold differences of the "
               "training mean (the study gives n/a).\n");
    if (rep->model != SQ_BL_GBDT) return;
    const sq_bl_result *r = rep->result;
    const sq_gbdt_params *p = &r->best_params;
    fprintf(f,
            "\nBest of %d trials (trial %d, search MAE %.5f ± %.1e over %d repeats): "
            "n_estimators %d, max_depth %d, lambda %.4g, colsample_bynode %.3f, eta %.3g.\n",
            r->ntrials, r->best, r->trials[r->best].mae, r->trials[r->best].mae_sd,
            o->repeats_search, p->n_estimators, p->max_depth, p->lambda, p->colsample_bynode,
            p->eta);
    double tot = 0;
    for (int j = 0; j < t->nfeat; j++)
        tot += rep->total_gain[j];
    fprintf(f, "\n| variable | type | gain | total gain | share |\n|---|---|---|---|---|\n");
    for (int j = 0; j < t->nfeat; j++)
        fprintf(f, "| %s | %s | %.4g | %.4g | %.1f %% |\n", t->feat[j].name,
                sq_bl_ftype_name(t->feat[j].type), rep->gain[j], rep->total_gain[j],
                tot > 0 ? 100 * rep->total_gain[j] / tot : 0.0);
    fprintf(f, "\nSearch: %.1f s, final evaluation: %.1f s.\n", r->search_seconds,
            r->final_seconds);
}

static void fill_trials_csv(FILE *f, const sq_bl_report *rep) {
    const sq_bl_result *r = rep->result;
    fprintf(f, "trial,proposal,n_estimators,max_depth,lambda,colsample_bynode,mae,mae_sd\n");
    for (int i = 0; i < r->ntrials; i++) {
        const sq_bl_trial *tr = &r->trials[i];
        fprintf(f, "%d,%s,%d,%d,%.9g,%.9g,%.9g,%.9g\n", i, tr->tpe ? "tpe" : "random",
                (int)tr->x[0], (int)tr->x[1], tr->x[2], tr->x[3], tr->mae, tr->mae_sd);
    }
}

static void fill_importance_csv(FILE *f, const sq_bl_report *rep) {
    const sq_bl_table *t = rep->table;
    fprintf(f, "variable,type,gain,total_gain\n");
    for (int j = 0; j < t->nfeat; j++)
        fprintf(f, "%s,%s,%.9g,%.9g\n", t->feat[j].name, sq_bl_ftype_name(t->feat[j].type),
                rep->gain[j], rep->total_gain[j]);
}

static void fill_predictions_csv(FILE *f, const sq_bl_report *rep) {
    const sq_bl_table *t = rep->table;
    const sq_bl_result *r = rep->result;
    fprintf(f, "patient,site,contours,target,fold,gbdt,naive\n");
    for (int i = 0; i < t->nrows; i++) {
        fprintf(f, "%s,%s,%d,%.6f,%d,", t->patient[i], t->site[i], t->ncontours[i], t->target[i],
                r->fold[i]);
        if (rep->model == SQ_BL_GBDT)
            fprintf(f, "%.6f", r->oof_gbdt[i]);
        else
            fprintf(f, "NaN");
        fprintf(f, ",%.6f\n", r->oof_naive[i]);
    }
}

static cJSON *row_json(row_stats s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mae_mean", s.mae);
    cJSON_AddNumberToObject(o, "mae_sd", s.mae_sd);
    if (s.n_rho > 0) {
        cJSON_AddNumberToObject(o, "spearman_mean", s.rho);
        cJSON_AddNumberToObject(o, "spearman_sd", s.rho_sd);
    } else {
        cJSON_AddNullToObject(o, "spearman_mean");
        cJSON_AddNullToObject(o, "spearman_sd");
    }
    cJSON_AddNumberToObject(o, "repeats", s.n);
    return o;
}

static cJSON *params_json(const sq_gbdt_params *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n_estimators", p->n_estimators);
    cJSON_AddNumberToObject(o, "max_depth", p->max_depth);
    cJSON_AddNumberToObject(o, "lambda", p->lambda);
    cJSON_AddNumberToObject(o, "colsample_bynode", p->colsample_bynode);
    cJSON_AddNumberToObject(o, "eta", p->eta);
    return o;
}

static cJSON *table_json(const sq_bl_report *rep) {
    const sq_bl_result *r = rep->result;
    const sq_bl_table *t = rep->table;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "segqa-baseline-table2");
    cJSON_AddNumberToObject(root, "patients", t->nrows);
    cJSON_AddNumberToObject(root, "folds", rep->opts->nfolds);
    cJSON_AddNumberToObject(root, "repeats_final", r->nrep);
    cJSON_AddNumberToObject(root, "seed", (double)rep->opts->seed);
    cJSON *rows = cJSON_AddObjectToObject(root, "models");
    if (rep->model == SQ_BL_GBDT)
        cJSON_AddItemToObject(rows, "gbdt", row_json(stats_of(r->gbdt, r->nrep)));
    cJSON_AddItemToObject(rows, "naive", row_json(stats_of(r->naive, r->nrep)));
    cJSON *vars = cJSON_AddArrayToObject(root, "variables");
    for (int j = 0; j < t->nfeat; j++) {
        cJSON *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "name", t->feat[j].name);
        cJSON_AddStringToObject(v, "type", sq_bl_ftype_name(t->feat[j].type));
        if (rep->model == SQ_BL_GBDT) {
            cJSON_AddNumberToObject(v, "gain", rep->gain[j]);
            cJSON_AddNumberToObject(v, "total_gain", rep->total_gain[j]);
        }
        cJSON_AddItemToArray(vars, v);
    }
    if (rep->model == SQ_BL_GBDT) {
        cJSON_AddItemToObject(root, "best_params", params_json(&r->best_params));
        cJSON_AddNumberToObject(root, "trials", r->ntrials);
        cJSON_AddNumberToObject(root, "search_seconds", r->search_seconds);
    }
    cJSON_AddNumberToObject(root, "final_seconds", r->final_seconds);
    return root;
}

static sq_code write_json(const char *dir, const char *name, cJSON *root, sq_status *st) {
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sq_code rc =
        root ? sq_json_write_file(path, root, st) : sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    cJSON_Delete(root);
    return rc;
}

/* Run `gnuplot SCRIPT` with stderr into ERR; no shell. */
static sq_code spawn_gnuplot(const char *script, const char *err, sq_status *st) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char *argv[] = {"gnuplot", (char *)script, NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) return sq_fail(st, SQ_ERR_IO, "gnuplot: cannot start: %s", strerror(e));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return sq_fail(st, SQ_ERR_IO, "gnuplot %s failed (status %d), see %s", script, status, err);
    return SQ_OK;
}

static sq_code write_figure(const sq_bl_report *rep, sq_status *st) {
    char png[SQ_PATH_MAX], tmp[SQ_PATH_MAX], gp[SQ_PATH_MAX], err[SQ_PATH_MAX + 8];
    snprintf(png, sizeof png, "%s/pred_vs_target.png", rep->run_dir);
    SQ_TRY(sq_tmp_path(png, tmp, sizeof tmp, st));
    snprintf(gp, sizeof gp, "%s/.pred_vs_target.gp", rep->run_dir);
    snprintf(err, sizeof err, "%s.err", gp);
    FILE *f = fopen(gp, "w");
    if (!f) return sq_fail(st, SQ_ERR_IO, "%s: cannot create", gp);
    /* gnuplot quotes: paths go in as data of the script, with ' doubled */
    fprintf(f, "set terminal pngcairo size 800,760 font 'sans,11'\nset output '");
    for (const char *c = tmp; *c; c++)
        fputs(*c == '\'' ? "''" : (char[]){*c, 0}, f);
    fprintf(f, "'\ncd '");
    for (const char *c = rep->run_dir; *c; c++)
        fputs(*c == '\'' ? "''" : (char[]){*c, 0}, f);
    fprintf(f,
            "'\nset datafile separator ','\nset key left top\nset size square\nset grid\n"
            "set xlabel 'target (mean Dice of the patient)'\nset ylabel 'predicted Dice'\n"
            "stats 'predictions.csv' using 4 every ::1 nooutput\n"
            "lo = STATS_min - 0.01; hi = STATS_max + 0.01\nset xrange [lo:hi]\nset yrange [lo:hi]\n"
            "set title 'clinical baselines: out-of-fold predictions (one CV repeat)'\n"
            "plot x title 'x = y' lt -1 dt 2, \\\n");
    if (rep->model == SQ_BL_GBDT)
        fprintf(f, "  'predictions.csv' using 4:6 every ::1 with points pt 7 ps 0.8 title "
                   "'GBDT', \\\n");
    fprintf(f, "  'predictions.csv' using 4:7 every ::1 with points pt 6 ps 0.8 title 'naive'\n");
    fclose(f);
    sq_code rc = spawn_gnuplot(gp, err, st);
    if (rc != SQ_OK) {
        unlink(tmp);
        return rc;
    }
    unlink(gp), unlink(err);
    return sq_commit_file(tmp, png, st);
}

sq_code sq_bl_report_write(const sq_bl_report *rep, sq_status *st) {
    const char *d = rep->run_dir;
    SQ_TRY(sq_mkdirs(d, st));
    if (rep->config) SQ_TRY(write_json(d, "config.json", cJSON_Duplicate(rep->config, 1), st));
    SQ_TRY(write_text(d, "predictions.csv", fill_predictions_csv, rep, st));
    if (rep->model == SQ_BL_GBDT) {
        SQ_TRY(write_text(d, "trials.csv", fill_trials_csv, rep, st));
        SQ_TRY(write_text(d, "importance.csv", fill_importance_csv, rep, st));
        SQ_TRY(write_json(d, "best_params.json", params_json(&rep->result->best_params), st));
    }
    SQ_TRY(write_json(d, "table2.json", table_json(rep), st));
    if (rep->figures) SQ_TRY(write_figure(rep, st));
    /* the table last: its presence says the run folder is complete */
    return write_text(d, "table2.md", fill_table_md, rep, st);
}
