/* report.c — see report.h. */
#include "train/report.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *k_cat_names[SQ_CAT_COUNT] = {"real",     "empty",      "noise",
                                                "all-ones", "shifted-gt", "gt"};

const char *sq_category_name(sq_category c) {
    return (unsigned)c < SQ_CAT_COUNT ? k_cat_names[c] : "?";
}

int sq_category_parse(const char *name) {
    for (int c = 0; c < SQ_CAT_COUNT; c++)
        if (!strcmp(name, k_cat_names[c])) return c;
    return -1;
}

const double sq_band_edges[SQ_BAND_COUNT + 1] = {0.0, 0.5, 0.85, 1.0};
static const char *k_band_names[SQ_BAND_COUNT] = {"[0, 0.5)", "[0.5, 0.85)", "[0.85, 1]"};

int sq_band_of(double dice) {
    int b = 0;
    while (b + 1 < SQ_BAND_COUNT && dice >= sq_band_edges[b + 1])
        b++;
    return b;
}

const char *sq_band_name(int band) {
    return band >= 0 && band < SQ_BAND_COUNT ? k_band_names[band] : "?";
}

typedef int (*sq_pred_filter)(const sq_prediction *p, const void *arg);

static sq_code metrics_where(const sq_prediction *p, int n, sq_pred_filter keep, const void *arg,
                             sq_accuracy_rule rule, sq_metrics *m, sq_metrics *naive,
                             sq_status *st) {
    double *y = malloc(sizeof(double) * (size_t)(n ? n : 1));
    double *a = malloc(sizeof(double) * (size_t)(n ? n : 1));
    double *b = malloc(sizeof(double) * (size_t)(n ? n : 1));
    sq_code rc = SQ_OK;
    if (!y || !a || !b) rc = sq_fail(st, SQ_ERR_NOMEM, "report: out of memory");
    int k = 0;
    for (int i = 0; rc == SQ_OK && i < n; i++) {
        if (keep && !keep(&p[i], arg)) continue;
        y[k] = p[i].target;
        a[k] = p[i].pred;
        b[k] = p[i].naive;
        k++;
    }
    if (rc == SQ_OK) rc = sq_metrics_compute(y, a, k, rule, m, st);
    if (rc == SQ_OK && naive) rc = sq_metrics_compute(y, b, k, rule, naive, st);
    free(y);
    free(a);
    free(b);
    return rc;
}

static int is_cat(const sq_prediction *p, const void *arg) {
    return p->category == *(const int *)arg;
}
static int is_band_real(const sq_prediction *p, const void *arg) {
    return p->category == SQ_CAT_REAL && sq_band_of(p->target) == *(const int *)arg;
}
static int is_fold_real(const sq_prediction *p, const void *arg) {
    return p->category == SQ_CAT_REAL && p->fold == *(const int *)arg;
}
static int is_site_real(const sq_prediction *p, const void *arg) {
    return p->category == SQ_CAT_REAL && !strcmp(p->site, (const char *)arg);
}

sq_code sq_report_summarise(const sq_prediction *p, int n, sq_accuracy_rule rule,
                            sq_report_summary *s, sq_status *st) {
    memset(s, 0, sizeof *s);
    for (int c = 0; c < SQ_CAT_COUNT; c++)
        SQ_TRY(metrics_where(p, n, is_cat, &c, rule, &s->cat[c], &s->cat_naive[c], st));
    s->real = s->cat[SQ_CAT_REAL];
    s->real_naive = s->cat_naive[SQ_CAT_REAL];
    for (int b = 0; b < SQ_BAND_COUNT; b++)
        SQ_TRY(metrics_where(p, n, is_band_real, &b, rule, &s->band[b], &s->band_naive[b], st));
    return metrics_where(p, n, NULL, NULL, rule, &s->all, &s->all_naive, st);
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *metrics_json(const sq_metrics *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", m->n);
    add_num(o, "mae", m->mae);
    add_num(o, "mae_sd", m->mae_sd);
    add_num(o, "mape_percent", m->mape);
    add_num(o, "max_error", m->max_err);
    add_num(o, "spearman", m->spearman);
    add_num(o, "pearson", m->pearson);
    add_num(o, "accuracy", m->accuracy);
    cJSON_AddNumberToObject(o, "misclassified", m->n_failed);
    return o;
}

static cJSON *pair_json(const sq_metrics *a, const sq_metrics *naive) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "segqa", metrics_json(a));
    cJSON_AddItemToObject(o, "naive", metrics_json(naive));
    return o;
}

static sq_code write_predictions_csv(const char *path, const sq_prediction *p, int n,
                                     sq_status *st) {
    char tmp[SQ_PATH_MAX];
    SQ_TRY(sq_tmp_path(path, tmp, sizeof tmp, st));
    FILE *f = fopen(tmp, "w");
    if (!f) return sq_fail(st, SQ_ERR_IO, "%s: cannot create", tmp);
    fprintf(f, "case,site,fold,category,target,predicted,naive,abs_error\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s,%s,%d,%s,%.6f,%.6f,%.6f,%.6f\n", p[i].case_id, p[i].site, p[i].fold,
                sq_category_name((sq_category)p[i].category), p[i].target, p[i].pred, p[i].naive,
                fabs(p[i].pred - p[i].target));
    if (fclose(f) != 0) {
        unlink(tmp);
        return sq_fail(st, SQ_ERR_IO, "%s: write failed", path);
    }
    return sq_commit_file(tmp, path, st);
}

static sq_code run_gnuplot(const char *run_dir, const char *png, const char *script,
                           sq_status *st) {
    char final_png[SQ_PATH_MAX], tmp_png[SQ_PATH_MAX], gp[SQ_PATH_MAX];
    snprintf(final_png, sizeof final_png, "%s/%s", run_dir, png);
    SQ_TRY(sq_tmp_path(final_png, tmp_png, sizeof tmp_png, st));
    snprintf(gp, sizeof gp, "%s/.%s.gp", run_dir, png);
    FILE *f = fopen(gp, "w");
    if (!f) return sq_fail(st, SQ_ERR_IO, "%s: cannot create", gp);
    fprintf(f, "set terminal pngcairo size 900,700 font 'sans,11'\nset output '%s'\ncd '%s'\n%s",
            tmp_png, run_dir, script);
    fclose(f);
    char cmd[3 * SQ_PATH_MAX];
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>'%s.err'", gp, gp);
    int rc = system(cmd);
    if (rc != 0) {
        unlink(tmp_png);
        return sq_fail(st, SQ_ERR_IO, "%s: gnuplot failed (exit %d), see %s.err", final_png, rc,
                       gp);
    }
    unlink(gp);
    char err[SQ_PATH_MAX + 8];
    snprintf(err, sizeof err, "%s.err", gp);
    unlink(err);
    return sq_commit_file(tmp_png, final_png, st);
}

static sq_code write_figures(const char *run_dir, const sq_report_summary *s, sq_status *st) {
    /* predicted vs target, one colour per category, with the x = y line */
    char script[4096];
    snprintf(script, sizeof script,
             "set datafile separator ','\nset key left top\nset xlabel 'true Dice'\n"
             "set ylabel 'estimated Dice'\nset xrange [0:1]\nset yrange [0:1]\nset size square\n"
             "set grid\nset title 'segqa: estimated vs true Dice (test folds)'\n"
             "set arrow from 0.5,0 to 0.5,1 nohead dt 3 lw 1.5 lc rgb 'gray40'\n"
             "set arrow from 0.85,0 to 0.85,1 nohead dt 3 lw 1.5 lc rgb 'gray40'\n"
             "set label 'Dice bands [0, 0.5) [0.5, 0.85) [0.85, 1]' at 0.02,0.03 tc 'gray'\n"
             "plot x title 'x = y' lt -1 dt 2, \\\n");
    size_t w = strlen(script);
    for (int c = 0; c < SQ_CAT_COUNT; c++)
        w += (size_t)snprintf(script + w, sizeof script - w,
                              "  'predictions.csv' using (strcol(4) eq '%s' ? $5 : NaN):6 "
                              "every ::1 with points pt 7 ps 0.6 title '%s'%s\n",
                              sq_category_name((sq_category)c), sq_category_name((sq_category)c),
                              c + 1 < SQ_CAT_COUNT ? ", \\" : "");
    SQ_TRY(run_gnuplot(run_dir, "pred_vs_target.png", script, st));

    /* MAE bars per Dice band of the real contours and per category, segqa vs naive */
    char data[2048];
    w = 0;
    for (int b = 0; b < SQ_BAND_COUNT; b++)
        w += (size_t)snprintf(data + w, sizeof data - w, "\"real %s\" %.6f %.6f\n", sq_band_name(b),
                              isfinite(s->band[b].mae) ? s->band[b].mae : 0.0,
                              isfinite(s->band_naive[b].mae) ? s->band_naive[b].mae : 0.0);
    for (int c = 1; c < SQ_CAT_COUNT; c++)
        w += (size_t)snprintf(data + w, sizeof data - w, "\"%s\" %.6f %.6f\n",
                              sq_category_name((sq_category)c),
                              isfinite(s->cat[c].mae) ? s->cat[c].mae : 0.0,
                              isfinite(s->cat_naive[c].mae) ? s->cat_naive[c].mae : 0.0);
    snprintf(script, sizeof script,
             "$d << EOD\n%sEOD\nset style data histogram\nset style histogram cluster gap 1\n"
             "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset ylabel 'MAE of Dice'\n"
             "set xtics rotate by -30\nset yrange [0:*]\nset grid ytics\n"
             "set title 'MAE per Dice band (real contours) and per category (test folds)'\n"
             "plot $d using 2:xtic(1) title 'segqa', '' using 3 title 'naive (training mean)'\n",
             data);
    SQ_TRY(run_gnuplot(run_dir, "failure_mae.png", script, st));

    char curves[SQ_PATH_MAX];
    snprintf(curves, sizeof curves, "%s/curves.csv", run_dir);
    if (sq_file_exists(curves)) {
        /* curves.csv: fold,epoch,train_loss,val_mae */
        snprintf(script, sizeof script,
                 "set datafile separator ','\nset datafile missing NaN\nset key right top\n"
                 "set xlabel 'epoch'\n"
                 "set ylabel 'loss / MAE'\nset logscale y\nset grid\n"
                 "set title 'training loss and validation MAE'\n"
                 "stats 'curves.csv' using 1 every ::1 nooutput\nnf = int(STATS_max) + 1\n"
                 "plot for [f=0:nf-1] 'curves.csv' using (column(1)==f ? $2 : NaN):3 every ::1 "
                 "with lines title sprintf('fold %%d train loss', f), \\\n"
                 "     for [f=0:nf-1] 'curves.csv' using (column(1)==f && $4 >= 0 ? $2 : NaN):4 "
                 "every ::1 with linespoints pt 7 ps 0.5 title sprintf('fold %%d val MAE', f)\n");
        SQ_TRY(run_gnuplot(run_dir, "curves.png", script, st));
    }
    return SQ_OK;
}

sq_code sq_report_write(const char *run_dir, const sq_prediction *p, int n, sq_accuracy_rule rule,
                        int figures, sq_status *st) {
    SQ_TRY(sq_mkdirs(run_dir, st));
    sq_report_summary s;
    SQ_TRY(sq_report_summarise(p, n, rule, &s, st));
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/predictions.csv", run_dir);
    SQ_TRY(write_predictions_csv(path, p, n, st));

    cJSON *root = cJSON_CreateObject();
    cJSON *sum = cJSON_AddObjectToObject(root, "summary");
    cJSON *rj = cJSON_AddObjectToObject(sum, "accuracy_rule");
    cJSON_AddNumberToObject(rj, "low", rule.low);
    cJSON_AddNumberToObject(rj, "high", rule.high);
    cJSON_AddItemToObject(sum, "real_contours", pair_json(&s.real, &s.real_naive));
    cJSON *bj = cJSON_AddObjectToObject(sum, "real_by_band");
    for (int b = 0; b < SQ_BAND_COUNT; b++)
        cJSON_AddItemToObject(bj, sq_band_name(b), pair_json(&s.band[b], &s.band_naive[b]));
    cJSON *fc = cJSON_AddObjectToObject(sum, "by_category");
    for (int c = 0; c < SQ_CAT_COUNT; c++)
        if (s.cat[c].n > 0)
            cJSON_AddItemToObject(fc, sq_category_name((sq_category)c),
                                  pair_json(&s.cat[c], &s.cat_naive[c]));
    cJSON_AddItemToObject(sum, "all_samples", pair_json(&s.all, &s.all_naive));

    int maxfold = -1;
    for (int i = 0; i < n; i++)
        if (p[i].fold > maxfold) maxfold = p[i].fold;
    cJSON *pf = cJSON_AddArrayToObject(root, "per_fold");
    sq_code rc = SQ_OK;
    for (int f = 0; f <= maxfold && rc == SQ_OK; f++) {
        sq_metrics m, nv;
        rc = metrics_where(p, n, is_fold_real, &f, rule, &m, &nv, st);
        if (rc != SQ_OK || m.n == 0) continue;
        cJSON *o = pair_json(&m, &nv);
        cJSON_AddNumberToObject(o, "fold", f);
        cJSON_AddItemToArray(pf, o);
    }
    cJSON *ps = cJSON_AddObjectToObject(root, "per_site");
    for (int i = 0; i < n && rc == SQ_OK; i++) {
        if (cJSON_GetObjectItemCaseSensitive(ps, p[i].site)) continue;
        sq_metrics m, nv;
        rc = metrics_where(p, n, is_site_real, p[i].site, rule, &m, &nv, st);
        if (rc == SQ_OK && m.n > 0) cJSON_AddItemToObject(ps, p[i].site, pair_json(&m, &nv));
    }
    cJSON *samples = cJSON_AddArrayToObject(root, "per_sample");
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "case", p[i].case_id);
        cJSON_AddStringToObject(o, "site", p[i].site);
        cJSON_AddNumberToObject(o, "fold", p[i].fold);
        cJSON_AddStringToObject(o, "category", sq_category_name((sq_category)p[i].category));
        cJSON_AddNumberToObject(o, "target", p[i].target);
        cJSON_AddNumberToObject(o, "predicted", p[i].pred);
        cJSON_AddNumberToObject(o, "naive", p[i].naive);
        cJSON_AddItemToArray(samples, o);
    }
    if (rc == SQ_OK) {
        snprintf(path, sizeof path, "%s/metrics.json", run_dir);
        rc = sq_json_write_file(path, root, st);
    }
    cJSON_Delete(root);
    if (rc == SQ_OK && figures) rc = write_figures(run_dir, &s, st);
    return rc;
}

static void row(FILE *f, const char *name, const sq_metrics *a, const sq_metrics *b) {
    if (a->n == 0) return;
    fprintf(f, "%-13s %5d  %.4f ± %.4f  %.4f ± %.4f  %8.3f  %8.3f  %6.1f%%  %6.1f%%\n", name, a->n,
            a->mae, a->mae_sd, b->mae, b->mae_sd, a->spearman, b->spearman, 100 * a->accuracy,
            100 * b->accuracy);
}

void sq_report_print_summary(FILE *f, const sq_report_summary *s) {
    fprintf(f, "%-13s %5s  %-15s  %-15s  %8s  %8s  %7s  %7s\n", "samples", "n", "MAE segqa",
            "MAE naive", "rho seg", "rho nai", "acc seg", "acc nai");
    for (int c = 0; c < SQ_CAT_COUNT; c++) {
        row(f, sq_category_name((sq_category)c), &s->cat[c], &s->cat_naive[c]);
        if (c != SQ_CAT_REAL) continue;
        for (int b = 0; b < SQ_BAND_COUNT; b++) {
            char name[32];
            snprintf(name, sizeof name, " %s", sq_band_name(b));
            row(f, name, &s->band[b], &s->band_naive[b]);
        }
    }
    row(f, "all", &s->all, &s->all_naive);
}

sq_code sq_report_add_validation(const char *run_dir, const double *best_val, const int *best_epoch,
                                 const char *const *estimate_map, int nfolds, double val_fraction,
                                 sq_status *st) {
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/metrics.json", run_dir);
    cJSON *old = NULL;
    SQ_TRY(sq_json_read_file(path, &old, st));
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "metric", "real-contour MAE on the validation patients");
    cJSON_AddStringToObject(v, "split", "held out of each fold's training patients");
    cJSON_AddNumberToObject(v, "val_fraction", val_fraction);
    cJSON *pf = cJSON_AddArrayToObject(v, "per_fold");
    double sum = 0;
    int nv = 0;
    for (int f = 0; f < nfolds; f++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "fold", f);
        if (isfinite(best_val[f])) {
            cJSON_AddNumberToObject(o, "best_val_mae", best_val[f]);
            sum += best_val[f];
            nv++;
        } else {
            cJSON_AddNullToObject(o, "best_val_mae");
        }
        cJSON_AddNumberToObject(o, "best_epoch", best_epoch[f]);
        cJSON *map = estimate_map && estimate_map[f] ? cJSON_Parse(estimate_map[f]) : NULL;
        if (map) cJSON_AddItemToObject(o, "estimate_map", map);
        cJSON_AddItemToArray(pf, o);
    }
    if (nv == nfolds && nv > 0)
        cJSON_AddNumberToObject(v, "mean_best_val_mae", sum / nv);
    else
        cJSON_AddNullToObject(v, "mean_best_val_mae");
    /* rebuild the object: summary, validation, then the rest in order */
    cJSON *root = cJSON_CreateObject();
    cJSON *sum_item = cJSON_DetachItemFromObjectCaseSensitive(old, "summary");
    if (sum_item) cJSON_AddItemToObject(root, "summary", sum_item);
    cJSON_DeleteItemFromObjectCaseSensitive(old, "validation");
    cJSON_AddItemToObject(root, "validation", v);
    while (old->child) {
        cJSON *it = old->child;
        char *key = it->string;
        it->string = NULL;
        cJSON_DetachItemViaPointer(old, it);
        cJSON_AddItemToObject(root, key, it);
        free(key);
    }
    cJSON_Delete(old);
    sq_code rc = sq_json_write_file(path, root, st);
    cJSON_Delete(root);
    return rc;
}

sq_code sq_report_add_section(const char *run_dir, const char *key, cJSON *item, sq_status *st) {
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/metrics.json", run_dir);
    cJSON *root = NULL;
    sq_code rc = sq_json_read_file(path, &root, st);
    if (rc != SQ_OK) {
        cJSON_Delete(item);
        return rc;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON *after = cJSON_GetObjectItemCaseSensitive(root, "validation");
    if (!after) after = cJSON_GetObjectItemCaseSensitive(root, "summary");
    if (after && after->next) {
        item->string = strdup(key);
        item->prev = after, item->next = after->next;
        after->next->prev = item;
        after->next = item;
    } else {
        cJSON_AddItemToObject(root, key, item);
    }
    rc = sq_json_write_file(path, root, st);
    cJSON_Delete(root);
    return rc;
}

void sq_report_print_sites(FILE *f, const sq_prediction *p, int n, sq_accuracy_rule rule) {
    int nsites = 0;
    const char *seen[64];
    for (int i = 0; i < n && nsites < 64; i++) {
        int k = 0;
        while (k < nsites && strcmp(seen[k], p[i].site) != 0)
            k++;
        if (k == nsites) seen[nsites++] = p[i].site;
    }
    if (nsites < 2) return;
    fprintf(f, "\nreal contours per site (pooled above):\n");
    fprintf(f, "%-24s %5s  %-15s  %-15s  %8s\n", "site", "n", "MAE segqa", "MAE naive", "rho seg");
    for (int k = 0; k < nsites; k++) {
        sq_metrics m, nv;
        sq_status st;
        sq_status_clear(&st);
        if (metrics_where(p, n, is_site_real, seen[k], rule, &m, &nv, &st) != SQ_OK || m.n == 0)
            continue;
        fprintf(f, "%-24.24s %5d  %.4f ± %.4f  %.4f ± %.4f  %8.3f\n", seen[k], m.n, m.mae, m.mae_sd,
                nv.mae, nv.mae_sd, m.spearman);
    }
}
