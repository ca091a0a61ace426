/* cmd_monitor.c — `segqa monitor PRED.jsonl --model CKPT`: watch the estimates a deployed model's
 * contours got from `segqa predict -f json` (or --stdin) for drift against the out-of-fold CV
 * estimates of the model's run, per site when rows carry a "site". Method and false-alarm rate in
 * train/monitor.h and docs/predict.md. Exit 0 no drift, 3 drift on any site.
 */
#include "cli.h"

#include "core/fileio.h"
#include "core/json.h"
#include "train/monitor.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct stream {
    char site[64];
    double *y;
    int *row; /* line number of each estimate */
    int n, cap;
} stream;

typedef struct streams {
    stream *s;
    int n, skipped;
} streams;

static stream *site_stream(streams *ss, const char *site) {
    for (int i = 0; i < ss->n; i++)
        if (!strcmp(ss->s[i].site, site)) return &ss->s[i];
    stream *ns = realloc(ss->s, (size_t)(ss->n + 1) * sizeof *ns);
    if (!ns) return NULL;
    ss->s = ns;
    stream *s = &ss->s[ss->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->site, sizeof s->site, "%s", site);
    return s;
}

static sq_code push(stream *s, double y, int line, sq_status *st) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        double *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (ny) s->y = ny;
        int *nr = ny ? realloc(s->row, (size_t)cap * sizeof *nr) : NULL;
        if (!nr) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
        s->row = nr, s->cap = cap;
    }
    s->y[s->n] = y, s->row[s->n++] = line;
    return SQ_OK;
}

/* One JSON line: an estimate goes to its site's stream; an error row is skipped and counted. */
static sq_code read_line(char *line, int line_no, const char *path, streams *ss, sq_status *st) {
    char origin[SQ_PATH_MAX + 16];
    snprintf(origin, sizeof origin, "%s:%d", path, line_no);
    cJSON *j = NULL;
    SQ_TRY(sq_json_parse(line, origin, &j, st));
    sq_code rc = SQ_OK;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "estimated_dice");
    const cJSON *site = cJSON_GetObjectItemCaseSensitive(j, "site");
    if (cJSON_GetObjectItemCaseSensitive(j, "error")) {
        ss->skipped++;
    } else if (!cJSON_IsNumber(e)) {
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: expected a number 'estimated_dice' (or an 'error')",
                     origin);
    } else {
        stream *s = site_stream(ss, cJSON_IsString(site) ? site->valuestring : "");
        rc = s ? push(s, e->valuedouble, line_no, st) : sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    }
    cJSON_Delete(j);
    return rc;
}

static sq_code read_stream(const char *path, streams *ss, sq_status *st) {
    char *text = NULL;
    SQ_TRY(sq_read_file(path, &text, NULL, st));
    sq_code rc = SQ_OK;
    int line_no = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l && rc == SQ_OK; l = strtok_r(NULL, "\n", &save))
        if (++line_no, l[strspn(l, " \t\r")]) rc = read_line(l, line_no, path, ss, st);
    free(text);
    if (rc == SQ_OK && ss->n == 0)
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: no estimates (expected predict -f json lines)", path);
    return rc;
}

/* RUN/predictions.csv for RUN/<fold>/best.h5 (or the checkpoint's own folder). */
static sq_code find_reference(const char *ckpt, char *out, size_t n, sq_status *st) {
    char a[SQ_PATH_MAX], b[SQ_PATH_MAX];
    snprintf(a, sizeof a, "%s", ckpt);
    char *d1 = dirname(a);
    snprintf(out, n, "%s/predictions.csv", d1);
    if (sq_file_exists(out)) return SQ_OK;
    snprintf(b, sizeof b, "%s", d1);
    snprintf(out, n, "%s/predictions.csv", dirname(b));
    if (sq_file_exists(out)) return SQ_OK;
    return sq_fail(st, SQ_ERR_IO,
                   "%s: no predictions.csv of its CV run beside it or one folder up (the "
                   "reference of out-of-fold estimates); give --reference RUN/predictions.csv",
                   ckpt);
}

typedef struct monitor_args {
    char model[SQ_PATH_MAX], reference[SQ_PATH_MAX], plot[SQ_PATH_MAX];
    sq_monitor_config c;
    long long window, bootstrap;
} monitor_args;

static sq_code parse(int argc, char **argv, monitor_args *a, sq_cli_args *ca, sq_status *st) {
    const sq_option opts[] = {
        {"model", 'c', SQ_OPT_STRING, a->model, sizeof a->model, "CKPT",
         "the deployed checkpoint (its run's predictions.csv is the reference)", NULL, 0, 0},
        {"reference", 0, SQ_OPT_STRING, a->reference, sizeof a->reference, "FILE.csv",
         "out-of-fold estimates (a run's predictions.csv) instead of the model's", NULL, 0, 0},
        {"alpha", 0, SQ_OPT_DOUBLE, &a->c.alpha, 0, "P", "false-alarm probability per site stream",
         NULL, 1e-6, 0.5},
        {"threshold", 0, SQ_OPT_DOUBLE, &a->c.threshold, 0, "X",
         "accept/reject threshold of the estimates", NULL, 0, 1},
        {"window", 0, SQ_OPT_INT, &a->window, 0, "N", "cases per window of the plotted mean", NULL,
         1, 100000},
        {"bootstrap", 0, SQ_OPT_INT, &a->bootstrap, 0, "B", "bootstrap streams for the limits",
         NULL, 100, 1000000},
        {"plot", 0, SQ_OPT_STRING, a->plot, sizeof a->plot, "FILE.png",
         "picture of the estimates over time (default: PRED.jsonl's name + .png)", NULL, 0, 0},
    };
    const sq_cli_spec spec = {
        .command = "monitor",
        .usage = "segqa monitor PRED.jsonl --model CKPT [--reference RUN/predictions.csv]",
        .description = "Drift of a deployed model's contour quality: bootstrap-calibrated CUSUMs\n"
                       "of the mean estimate and of the rejection rate against the run's\n"
                       "out-of-fold CV estimates, per site. Exit 0 no drift, 3 drift.",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 1,
        .max_pos = 1,
    };
    SQ_TRY(sq_cli_parse(&spec, argc, argv, ca, st));
    if (ca->help) return SQ_OK;
    if (!a->model[0] && !a->reference[0])
        return sq_fail(st, SQ_ERR_USAGE, "give --model CKPT (or --reference FILE.csv)");
    if (!a->reference[0]) SQ_TRY(find_reference(a->model, a->reference, sizeof a->reference, st));
    if (!a->plot[0]) snprintf(a->plot, sizeof a->plot, "%.4000s.png", ca->pos[0]);
    a->c.window = (int)a->window, a->c.bootstrap = (int)a->bootstrap;
    return SQ_OK;
}

static void report_site(const stream *s, const sq_monitor_result *r, const sq_monitor_ref *ref) {
    printf("site %-16s n %5d  mean %.3f (ref %.3f)  reject %.1f %% (ref %.1f %%)  limits h %.2f / "
           "%.2f  ",
           s->site[0] ? s->site : "(all)", s->n, r->mean, ref->mean, 100 * r->reject_rate,
           100 * ref->reject_rate, r->h_mean, r->h_reject);
    if (r->first_alarm < 0)
        printf("no drift\n");
    else
        printf("DRIFT: first alarm at case %d (line %d), %d alarms\n", r->first_alarm + 1,
               s->row[r->first_alarm], r->alarms);
}

/* One picture per site when there are several: PLOT.png -> PLOT-<site>.png. */
static void plot_name(const char *plot, const char *site, char *out, size_t n) {
    size_t len = strlen(plot);
    if (!site) {
        snprintf(out, n, "%s", plot);
        return;
    }
    if (len > 4 && !strcmp(plot + len - 4, ".png")) len -= 4;
    char safe[64];
    size_t j = 0;
    for (const char *p = site; *p && j + 1 < sizeof safe; p++)
        safe[j++] = (*p == '/' || *p == ' ') ? '_' : *p;
    safe[j] = '\0';
    snprintf(out, n, "%.*s-%s.png", (int)(len < 4000 ? len : 4000), plot, safe[0] ? safe : "none");
}

int sq_cmd_monitor(int argc, char **argv) {
    monitor_args a;
    memset(&a, 0, sizeof a);
    a.c = sq_monitor_config_default();
    a.window = a.c.window, a.bootstrap = a.c.bootstrap;
    sq_status st;
    sq_status_clear(&st);
    sq_cli_args ca;
    if (parse(argc, argv, &a, &ca, &st) != SQ_OK) return sq_cli_report("monitor", &st);
    if (ca.help) return 0;
    sq_monitor_ref ref;
    streams ss = {0};
    if (sq_monitor_ref_read(a.reference, a.c.threshold, &ref, &st) != SQ_OK)
        return sq_cli_report("monitor", &st);
    sq_code rc = read_stream(ca.pos[0], &ss, &st);
    int drift = 0;
    if (rc == SQ_OK)
        printf("reference %s: %d out-of-fold estimates; alpha %g per site stream, k %.2f SD, "
               "%d bootstrap streams; %d error rows skipped\n",
               a.reference, ref.n, a.c.alpha, a.c.k, a.c.bootstrap, ss.skipped);
    for (int i = 0; rc == SQ_OK && i < ss.n; i++) {
        sq_monitor_result r;
        uint8_t *alarm = calloc((size_t)ss.s[i].n, 1);
        rc = alarm ? sq_monitor_run(&ref, &a.c, ss.s[i].y, ss.s[i].n, alarm, &r, &st)
                   : sq_fail(&st, SQ_ERR_NOMEM, "out of memory");
        if (rc == SQ_OK) report_site(&ss.s[i], &r, &ref);
        drift |= rc == SQ_OK && r.first_alarm >= 0;
        char png[SQ_PATH_MAX];
        plot_name(a.plot, ss.n > 1 ? ss.s[i].site : NULL, png, sizeof png);
        if (rc == SQ_OK) rc = sq_monitor_plot(png, &ref, &a.c, ss.s[i].y, alarm, ss.s[i].n, &st);
        free(alarm);
    }
    for (int i = 0; i < ss.n; i++)
        free(ss.s[i].y), free(ss.s[i].row);
    free(ss.s);
    sq_monitor_ref_free(&ref);
    if (rc != SQ_OK) return sq_cli_report("monitor", &st);
    return drift ? 3 : 0;
}
