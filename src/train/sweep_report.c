/* sweep_report.c — `segqa report --sweep DIR`: every task's state and metrics, ranked (sweep.h). */
#include "train/sweep.h"

#include "core/fileio.h"
#include "core/json.h"

#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_PARAMS 32

static const char *k_metric_names[] = {"val_mae", "test_mae", "test_spearman"};

int sq_sweep_metric_parse(const char *name) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, k_metric_names[i])) return i;
    return -1;
}

typedef struct task {
    char line[1024];
    char state[32];  /* done, failed, running, requeued, never started */
    char detail[96]; /* exit code, job id, why metrics are missing */
    double m[3];     /* val_mae, test_mae, test_spearman (NAN: missing) */
    char value[MAX_PARAMS][64];
    int rank; /* 1-based; 0: not ranked */
} task;

typedef struct sweep {
    const char *dir;
    int ntasks;
    task *t;
    int nparams;
    char param[MAX_PARAMS][64];
    double val_fraction;
} sweep;

/* The options of a sweep line as parameter columns ("--flag" alone: "on"). */
static void parse_line(sweep *s, task *t) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", t->line);
    char *save = NULL, *tok = strtok_r(buf, " \t", &save);
    while (tok) {
        char *next = strtok_r(NULL, " \t", &save);
        if (strncmp(tok, "--", 2) != 0) {
            tok = next;
            continue;
        }
        const char *val = "on";
        if (next && strncmp(next, "--", 2) != 0) {
            val = next;
            next = strtok_r(NULL, " \t", &save);
        }
        int p = 0;
        while (p < s->nparams && strcmp(s->param[p], tok + 2) != 0)
            p++;
        if (p == s->nparams && p < MAX_PARAMS) snprintf(s->param[s->nparams++], 64, "%s", tok + 2);
        if (p < MAX_PARAMS) snprintf(t->value[p], 64, "%s", val);
        tok = next;
    }
}

static sq_code read_lines(sweep *s, sq_status *st) {
    char path[SQ_PATH_MAX], *text = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/sweep.txt", s->dir);
    SQ_TRY(sq_read_file(path, &text, &n, st));
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    if (n > 0 && text[n - 1] != '\n') lines++;
    s->t = calloc((size_t)(lines ? lines : 1), sizeof *s->t);
    if (!s->t) {
        free(text);
        return sq_fail(st, SQ_ERR_NOMEM, "report: out of memory");
    }
    char *cur = text;
    for (int i = 0; i < lines; i++) {
        char *nl = strchr(cur, '\n');
        if (nl) *nl = 0;
        snprintf(s->t[i].line, sizeof s->t[i].line, "%s", cur);
        cur = nl ? nl + 1 : cur + strlen(cur);
    }
    s->ntasks = lines;
    free(text);
    if (lines == 0) return sq_fail(st, SQ_ERR_FORMAT, "%s: no hyperparameter sets", path);
    for (int i = 0; i < lines; i++)
        parse_line(s, &s->t[i]);
    return SQ_OK;
}

static double number_at(const cJSON *o, const char *a, const char *b, const char *c) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (c) x = cJSON_GetObjectItemCaseSensitive(x, c);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static void read_metrics(sweep *s, task *t, const char *run) {
    char path[SQ_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.json", run);
    cJSON *m = NULL;
    sq_status st;
    sq_status_clear(&st);
    if (!sq_file_exists(path)) { /* `segqa train` tasks: all/state.json holds the best val MAE */
        snprintf(path, sizeof path, "%s/all/state.json", run);
        if (sq_json_read_file(path, &m, &st) == SQ_OK) {
            t->m[SQ_SWEEP_VAL_MAE] = number_at(m, "best_val_mae", NULL, NULL);
            cJSON_Delete(m);
            return;
        }
    }
    if (sq_json_read_file(path, &m, &st) != SQ_OK) {
        snprintf(t->state, sizeof t->state, "failed");
        snprintf(t->detail, sizeof t->detail, "ended without a readable metrics.json");
        return;
    }
    t->m[SQ_SWEEP_VAL_MAE] = number_at(m, "validation", "mean_best_val_mae", NULL);
    const cJSON *seg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "summary"),
                                         "real_contours"),
        "segqa");
    t->m[SQ_SWEEP_TEST_MAE] = number_at(seg, "mae", NULL, NULL);
    t->m[SQ_SWEEP_TEST_SPEARMAN] = number_at(seg, "spearman", NULL, NULL);
    double vf = number_at(m, "validation", "val_fraction", NULL);
    if (isfinite(vf)) s->val_fraction = vf;
    cJSON_Delete(m);
}

/* State of task i from task-i/task.json (written by slurm/sweep.sbatch) and its metrics. */
static void read_task(sweep *s, int i) {
    task *t = &s->t[i];
    for (int k = 0; k < 3; k++)
        t->m[k] = NAN;
    char run[SQ_PATH_MAX], path[SQ_PATH_MAX + 32];
    snprintf(run, sizeof run, "%s/task-%d", s->dir, i);
    snprintf(path, sizeof path, "%s/task.json", run);
    cJSON *j = NULL;
    sq_status st;
    sq_status_clear(&st);
    if (!sq_file_exists(path) || sq_json_read_file(path, &j, &st) != SQ_OK) {
        snprintf(t->state, sizeof t->state, "never started");
        return;
    }
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(j, "state");
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(j, "job");
    double code = number_at(j, "exit", NULL, NULL);
    const char *sv = cJSON_IsString(state) ? state->valuestring : "?";
    const char *jv = cJSON_IsString(job) ? job->valuestring : "?";
    if (!strcmp(sv, "done")) {
        snprintf(t->state, sizeof t->state, "done");
        snprintf(t->detail, sizeof t->detail, "job %s", jv);
        read_metrics(s, t, run);
    } else if (!strcmp(sv, "failed")) {
        snprintf(t->state, sizeof t->state, "failed");
        snprintf(t->detail, sizeof t->detail, "job %s, exit %.0f", jv, isfinite(code) ? code : -1);
    } else if (!strcmp(sv, "preempted")) {
        snprintf(t->state, sizeof t->state, "requeued");
        snprintf(t->detail, sizeof t->detail, "job %s, checkpointed (exit 75)", jv);
    } else {
        snprintf(t->state, sizeof t->state, "running");
        snprintf(t->detail, sizeof t->detail, "job %s", jv);
    }
    cJSON_Delete(j);
}

static sq_sweep_metric g_metric; /* qsort's comparator has no context argument */

static int cmp_task(const void *a, const void *b) {
    const task *x = *(const task *const *)a, *y = *(const task *const *)b;
    double u = x->m[g_metric], v = y->m[g_metric];
    if (g_metric == SQ_SWEEP_TEST_SPEARMAN) u = -u, v = -v; /* higher is better */
    return u < v ? -1 : u > v ? 1 : 0;
}

static int rank_tasks(sweep *s, sq_sweep_metric metric, task **order, int *nbad) {
    int nr = 0, nb = 0;
    for (int i = 0; i < s->ntasks; i++)
        if (!strcmp(s->t[i].state, "done") && isfinite(s->t[i].m[metric])) order[nr++] = &s->t[i];
    g_metric = metric;
    qsort(order, (size_t)nr, sizeof *order, cmp_task);
    for (int k = 0; k < nr; k++)
        order[k]->rank = k + 1;
    int n = nr;
    for (int i = 0; i < s->ntasks; i++)
        if (s->t[i].rank == 0) {
            order[n++] = &s->t[i];
            nb += strcmp(s->t[i].state, "done") != 0;
        }
    *nbad = nb;
    return nr;
}

static void fmt_num(char *b, size_t n, double v) {
    if (isfinite(v))
        snprintf(b, n, "%.4f", v);
    else
        snprintf(b, n, "-");
}

/* What the ranking used, in words (the head of the Markdown report). */
static void chosen_on(const sweep *s, sq_sweep_metric metric, char *b, size_t n) {
    if (metric == SQ_SWEEP_VAL_MAE && !isfinite(s->val_fraction))
        snprintf(b, n,
                 "Ranked by **val_mae**: the best real-contour MAE on the validation patients "
                 "(--val-fraction of the training patients, held out of training; metrics.json "
                 "`validation`, or all/state.json for `segqa train` tasks). Test-fold numbers "
                 "are shown for information only and were not used to choose.");
    else if (metric == SQ_SWEEP_VAL_MAE)
        snprintf(b, n,
                 "Ranked by **val_mae**: the mean over folds of each fold's best real-contour MAE "
                 "on its validation patients (%.0f %% of the fold's training patients, held out "
                 "of training; metrics.json `validation`). Test-fold numbers are shown for "
                 "information only and were not used to choose.",
                 100 * s->val_fraction);
    else
        snprintf(b, n,
                 "**WARNING: ranked by %s, a TEST-fold number** (--metric %s). Choosing "
                 "hyperparameters on test folds overstates accuracy; rank by val_mae to choose.",
                 k_metric_names[metric], k_metric_names[metric]);
}

static sq_code write_tables(const sweep *s, sq_sweep_metric metric, task **order, FILE *out,
                            sq_status *st) {
    char csv[SQ_PATH_MAX], md[SQ_PATH_MAX], tcsv[SQ_PATH_MAX], tmd[SQ_PATH_MAX];
    snprintf(csv, sizeof csv, "%s/sweep-report.csv", s->dir);
    snprintf(md, sizeof md, "%s/sweep-report.md", s->dir);
    SQ_TRY(sq_tmp_path(csv, tcsv, sizeof tcsv, st));
    SQ_TRY(sq_tmp_path(md, tmd, sizeof tmd, st));
    FILE *c = fopen(tcsv, "w"), *m = fopen(tmd, "w");
    if (!c || !m) {
        if (c) fclose(c);
        if (m) fclose(m);
        unlink(tcsv);
        return sq_fail(st, SQ_ERR_IO, "%s: cannot create the report files", s->dir);
    }
    char head[1024];
    chosen_on(s, metric, head, sizeof head);
    fprintf(m, "# Sweep report: %s\n\n%s\n\n| rank | task | state | %s (chosen) |", s->dir, head,
            k_metric_names[metric]);
    fprintf(c, "rank,task,state,detail,ranked_by,val_mae,test_mae,test_spearman");
    for (int k = 0; k < 3; k++)
        if (k != (int)metric) fprintf(m, " %s |", k_metric_names[k]);
    for (int p = 0; p < s->nparams; p++) {
        fprintf(m, " %s |", s->param[p]);
        fprintf(c, ",%s", s->param[p]);
    }
    fprintf(m, " detail |\n|---|---|---|---|---|---|");
    for (int p = 0; p <= s->nparams; p++)
        fprintf(m, "---|");
    fprintf(m, "\n");
    fprintf(c, "\n");
    for (int i = 0; i < s->ntasks; i++) {
        const task *t = order[i];
        int idx = (int)(t - s->t);
        char r[16], v[3][32];
        snprintf(r, sizeof r, t->rank ? "%d" : "-", t->rank);
        for (int k = 0; k < 3; k++)
            fmt_num(v[k], sizeof v[k], t->m[k]);
        fprintf(m, "| %s | %d | %s | %s |", r, idx, t->state, v[metric]);
        for (int k = 0; k < 3; k++)
            if (k != (int)metric) fprintf(m, " %s |", v[k]);
        fprintf(c, "%s,%d,%s,\"%s\",%s,%s,%s,%s", t->rank ? r : "", idx, t->state, t->detail,
                k_metric_names[metric], v[0], v[1], v[2]);
        for (int p = 0; p < s->nparams; p++) {
            fprintf(m, " %s |", t->value[p][0] ? t->value[p] : "(default)");
            fprintf(c, ",%s", t->value[p]);
        }
        fprintf(m, " %s |\n", t->detail);
        fprintf(c, "\n");
    }
    int bad = ferror(c) | ferror(m);
    bad |= fclose(c) != 0;
    bad |= fclose(m) != 0;
    if (bad) {
        unlink(tcsv);
        unlink(tmd);
        return sq_fail(st, SQ_ERR_IO, "%s: write failed", s->dir);
    }
    SQ_TRY(sq_commit_file(tcsv, csv, st));
    SQ_TRY(sq_commit_file(tmd, md, st));
    if (out) {
        char *text = NULL;
        size_t n = 0;
        if (sq_read_file(md, &text, &n, NULL) == SQ_OK) fwrite(text, 1, n, out);
        free(text);
    }
    return SQ_OK;
}

/* gnuplot run with argv in `dir` (no shell, no paths in a command string). */
static sq_code spawn_gnuplot(const char *dir, const char *script, sq_status *st) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addchdir_np(&fa, dir);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {"gnuplot", (char *)script, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return sq_fail(st, SQ_ERR_IO, "gnuplot: cannot start (%s)", strerror(rc));
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return sq_fail(st, SQ_ERR_IO, "%s/%s: gnuplot failed (exit %d)", dir, script,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return SQ_OK;
}

static int is_number(const char *v, double *x) {
    char *end;
    *x = strtod(v, &end);
    return v[0] && *end == 0;
}

/* DIR/.sweep-p<P>.dat: "x label metric" of the ranked tasks; categorical values get indexes. */
static sq_code write_param_data(const sweep *s, int p, sq_sweep_metric metric, int *categorical,
                                int *logx, sq_status *st) {
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/.sweep-p%d.dat", s->dir, p);
    FILE *f = fopen(path, "w");
    if (!f) return sq_fail(st, SQ_ERR_IO, "%s: cannot create", path);
    *categorical = 0;
    double lo = INFINITY, hi = -INFINITY, x;
    for (int i = 0; i < s->ntasks; i++) {
        const char *v = s->t[i].value[p][0] ? s->t[i].value[p] : "default";
        if (!is_number(v, &x))
            *categorical = 1;
        else
            lo = fmin(lo, x), hi = fmax(hi, x);
    }
    *logx = !*categorical && lo > 0 && hi / lo > 20;
    const char *seen[256];
    int nseen = 0;
    for (int i = 0; i < s->ntasks; i++) {
        const task *t = &s->t[i];
        const char *v = t->value[p][0] ? t->value[p] : "default";
        if (*categorical) {
            int k = 0;
            while (k < nseen && strcmp(seen[k], v) != 0)
                k++;
            if (k == nseen && nseen < 256) seen[nseen++] = v;
            x = k;
        } else {
            is_number(v, &x);
        }
        if (t->rank > 0) fprintf(f, "%.10g %s %.10g\n", x, v, t->m[metric]);
    }
    return fclose(f) == 0 ? SQ_OK : sq_fail(st, SQ_ERR_IO, "%s: write failed", path);
}

static sq_code write_figure(const sweep *s, sq_sweep_metric metric, sq_status *st) {
    char script[SQ_PATH_MAX];
    snprintf(script, sizeof script, "%s/.sweep-report.gp", s->dir);
    FILE *f = fopen(script, "w");
    if (!f) return sq_fail(st, SQ_ERR_IO, "%s: cannot create", script);
    int np = s->nparams;
    fprintf(f,
            "set terminal pngcairo size %d,420 font 'sans,10' noenhanced\n"
            "set output '.sweep-report.png.tmp'\nset multiplot layout 1,%d title "
            "'sweep: %s of each finished task against each swept parameter'\n"
            "set ylabel '%s'\nset grid\nset offsets graph 0.1, graph 0.1, graph 0.1, graph 0.1\n",
            320 * np + 80, np, k_metric_names[metric], k_metric_names[metric]);
    sq_code rc = SQ_OK;
    for (int p = 0; p < np && rc == SQ_OK; p++) {
        int cat = 0, logx = 0;
        rc = write_param_data(s, p, metric, &cat, &logx, st);
        fprintf(f, "%s\nset xlabel '%s'\nunset xtics\n%s\n",
                logx ? "set logscale x" : "unset logscale x", s->param[p],
                cat ? "set xtics norotate\nset format x '%g'"
                    : "set xtics rotate by -35 left\nset format x '%.3g'");
        fprintf(f, "plot '.sweep-p%d.dat' using 1:3%s with points pt 7 ps 1.2 notitle\n", p,
                cat ? ":xtic(2)" : "");
    }
    fprintf(f, "unset multiplot\n");
    if (fclose(f) != 0 && rc == SQ_OK) rc = sq_fail(st, SQ_ERR_IO, "%s: write failed", script);
    if (rc == SQ_OK) rc = spawn_gnuplot(s->dir, ".sweep-report.gp", st);
    char png[SQ_PATH_MAX], tmp[SQ_PATH_MAX + 32];
    snprintf(png, sizeof png, "%s/sweep-report.png", s->dir);
    snprintf(tmp, sizeof tmp, "%s/.sweep-report.png.tmp", s->dir);
    if (rc == SQ_OK) rc = sq_commit_file(tmp, png, st);
    unlink(tmp);
    unlink(script);
    for (int p = 0; p < np; p++) {
        char d[SQ_PATH_MAX + 32];
        snprintf(d, sizeof d, "%s/.sweep-p%d.dat", s->dir, p);
        unlink(d);
    }
    return rc;
}

sq_code sq_sweep_report(const char *dir, sq_sweep_metric metric, int figure, FILE *f, int *nranked,
                        int *nbad, sq_status *st) {
    sweep s;
    memset(&s, 0, sizeof s);
    s.dir = dir;
    s.val_fraction = NAN;
    sq_code rc = read_lines(&s, st);
    for (int i = 0; rc == SQ_OK && i < s.ntasks; i++)
        read_task(&s, i);
    task **order =
        rc == SQ_OK ? calloc((size_t)(s.ntasks > 0 ? s.ntasks : 1), sizeof *order) : NULL;
    if (rc == SQ_OK && !order) rc = sq_fail(st, SQ_ERR_NOMEM, "report: out of memory");
    int nr = 0, nb = 0;
    if (rc == SQ_OK) nr = rank_tasks(&s, metric, order, &nb);
    if (rc == SQ_OK) rc = write_tables(&s, metric, order, f, st);
    if (rc == SQ_OK && figure && nr > 0 && s.nparams > 0) rc = write_figure(&s, metric, st);
    if (nranked) *nranked = nr;
    if (nbad) *nbad = nb;
    free(order);
    free(s.t);
    return rc;
}
