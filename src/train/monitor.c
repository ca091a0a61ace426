/* monitor.c — bootstrap-calibrated CUSUMs on a stream of Dice estimates (see monitor.h). */
#include "train/monitor.h"

#include "core/fileio.h"
#include "core/rng.h"
#include "train/png.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sq_monitor_config sq_monitor_config_default(void) {
    sq_monitor_config c = {0.01, 0.5, 0.8, 2000, 20, 1};
    return c;
}

/* Column index of `name` in a CSV header line (modified in place), -1 if absent. */
static int column(char *header, const char *name) {
    int i = 0;
    for (char *f = header; f; i++) {
        char *comma = strchr(f, ',');
        size_t len = comma ? (size_t)(comma - f) : strcspn(f, "\r\n");
        if (len == strlen(name) && !strncmp(f, name, len)) return i;
        f = comma ? comma + 1 : NULL;
    }
    return -1;
}

static const char *field(const char *line, int idx, size_t *len) {
    for (int i = 0; i < idx && line; i++) {
        line = strchr(line, ',');
        if (line) line++;
    }
    if (!line) return NULL;
    *len = strcspn(line, ",\r\n");
    return line;
}

static void ref_stats(sq_monitor_ref *r, double threshold) {
    double s = 0, ss = 0;
    int rej = 0;
    for (int i = 0; i < r->n; i++)
        s += r->y[i], rej += r->y[i] < threshold;
    r->mean = s / r->n;
    for (int i = 0; i < r->n; i++)
        ss += (r->y[i] - r->mean) * (r->y[i] - r->mean);
    r->sd = r->n > 1 ? sqrt(ss / (r->n - 1)) : 0;
    r->reject_rate = (double)rej / r->n;
}

sq_code sq_monitor_ref_read(const char *path, double threshold, sq_monitor_ref *ref,
                            sq_status *st) {
    memset(ref, 0, sizeof *ref);
    char *text = NULL;
    SQ_TRY(sq_read_file(path, &text, NULL, st));
    char *body = strchr(text, '\n');
    if (body) *body++ = '\0';
    int cp = column(text, "predicted"), cc = column(text, "category");
    sq_code rc = SQ_OK;
    if (cp < 0 || cc < 0)
        rc = sq_fail(st, SQ_ERR_FORMAT,
                     "%s: header must name the columns 'predicted' and "
                     "'category' (a run folder's predictions.csv)",
                     path);
    size_t cap = 0;
    int line_no = 1;
    for (char *line = body; rc == SQ_OK && line && *line; line_no++) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        size_t lc = 0, lp = 0;
        const char *cat = field(line, cc, &lc), *pred = field(line, cp, &lp);
        if (cat && lc == 4 && !strncmp(cat, "real", 4) && pred) {
            char *end;
            double v = strtod(pred, &end);
            if (end == pred || !isfinite(v)) {
                rc = sq_fail(st, SQ_ERR_FORMAT, "%s:%d: column 'predicted' is not a number", path,
                             line_no + 1);
                break;
            }
            if ((size_t)ref->n == cap) {
                cap = cap ? 2 * cap : 256;
                double *ny = realloc(ref->y, cap * sizeof *ny);
                if (!ny) {
                    rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
                    break;
                }
                ref->y = ny;
            }
            ref->y[ref->n++] = v;
        }
        line = next;
    }
    free(text);
    if (rc == SQ_OK && ref->n < 10)
        rc = sq_fail(st, SQ_ERR_FORMAT,
                     "%s: %d rows of category 'real', expected at least 10 out-of-fold estimates",
                     path, ref->n);
    if (rc != SQ_OK) {
        sq_monitor_ref_free(ref);
        return rc;
    }
    ref_stats(ref, threshold);
    return SQ_OK;
}

void sq_monitor_ref_free(sq_monitor_ref *ref) {
    free(ref->y);
    memset(ref, 0, sizeof *ref);
}

/* Standardised increments of both statistics for estimate y. */
static void increments(const sq_monitor_ref *r, const sq_monitor_config *c, double y, double *zm,
                       double *zr) {
    double sd = r->sd > 1e-6 ? r->sd : 1e-6;
    double p0 = r->reject_rate, sp = sqrt(p0 * (1 - p0));
    if (sp < 0.05) sp = 0.05; /* a reference with (almost) no rejections */
    *zm = (r->mean - y) / sd - c->k;
    *zr = ((y < c->threshold ? 1.0 : 0.0) - p0) / sp - c->k;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Limits: (1 - alpha/2) quantiles of max S over bootstrap streams of length n. */
static sq_code calibrate(const sq_monitor_ref *r, const sq_monitor_config *c, int n, double *hm,
                         double *hr, sq_status *st) {
    double *mm = malloc((size_t)c->bootstrap * sizeof *mm),
           *mr = malloc((size_t)c->bootstrap * sizeof *mr);
    if (!mm || !mr) {
        free(mm), free(mr);
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    }
    sq_rng g;
    sq_rng_init(&g, c->seed, 0x6d6f6e, (uint32_t)n);
    /* smoothed bootstrap (Silverman's bandwidth): a finite reference must not make every value
     * outside its observed range an alarm */
    double bw = 1.06 * r->sd * pow((double)r->n, -0.2);
    for (int b = 0; b < c->bootstrap; b++) {
        double sm = 0, sr = 0, xm = 0, xr = 0;
        for (int i = 0; i < n; i++) {
            double zm, zr;
            double v = r->y[sq_rng_below(&g, (uint32_t)r->n)] + bw * sq_rng_normal(&g);
            increments(r, c, v < 0 ? 0 : v > 1 ? 1 : v, &zm, &zr);
            sm = fmax(0, sm + zm), sr = fmax(0, sr + zr);
            xm = fmax(xm, sm), xr = fmax(xr, sr);
        }
        mm[b] = xm, mr[b] = xr;
    }
    qsort(mm, (size_t)c->bootstrap, sizeof *mm, cmp_double);
    qsort(mr, (size_t)c->bootstrap, sizeof *mr, cmp_double);
    int q = (int)ceil((1.0 - c->alpha / 2) * c->bootstrap) - 1;
    q = q < 0 ? 0 : q >= c->bootstrap ? c->bootstrap - 1 : q;
    /* strictly above the quantile alarms: a reference stream exceeds it with prob <= alpha/2 */
    *hm = mm[q] + 1e-9, *hr = mr[q] + 1e-9;
    free(mm), free(mr);
    return SQ_OK;
}

sq_code sq_monitor_run(const sq_monitor_ref *ref, const sq_monitor_config *c, const double *y,
                       int n, uint8_t *alarm, sq_monitor_result *res, sq_status *st) {
    memset(res, 0, sizeof *res);
    res->first_alarm = -1;
    if (n < 1) return SQ_OK;
    SQ_TRY(calibrate(ref, c, n, &res->h_mean, &res->h_reject, st));
    double sm = 0, sr = 0, sum = 0;
    int rej = 0;
    for (int i = 0; i < n; i++) {
        double zm, zr;
        increments(ref, c, y[i], &zm, &zr);
        sm = fmax(0, sm + zm), sr = fmax(0, sr + zr);
        int a = (sm > res->h_mean ? 1 : 0) | (sr > res->h_reject ? 2 : 0);
        if (a & 1) sm = 0;
        if (a & 2) sr = 0;
        if (a && res->first_alarm < 0) res->first_alarm = i;
        res->alarms += a != 0;
        if (alarm) alarm[i] = (uint8_t)a;
        sum += y[i], rej += y[i] < c->threshold;
    }
    res->mean = sum / n;
    res->reject_rate = (double)rej / n;
    return SQ_OK;
}

/* ---- the picture ---------------------------------------------------------------------------- */

#define PW 900
#define PH 320
#define ML 48 /* left margin (axis labels) */
#define MT 28
#define MB 24

static int px_of(int i, int n) {
    return ML + (n > 1 ? (int)((double)i / (n - 1) * (PW - ML - 12)) : 0);
}
static int py_of(double v) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return MT + (int)((1 - v) * (PH - MT - MB));
}

static void hline(sq_canvas *c, double v, int dashed, uint8_t r, uint8_t g, uint8_t b) {
    for (int x = ML; x < PW - 12; x++)
        if (!dashed || (x / 6) % 2 == 0) sq_canvas_put(c, x, py_of(v), r, g, b);
}

static void axes(sq_canvas *c) {
    const double ticks[] = {0, 0.25, 0.5, 0.75, 1};
    for (int i = 0; i < 5; i++) {
        char t[8];
        snprintf(t, sizeof t, "%.2f", ticks[i]);
        sq_canvas_text(c, 6, py_of(ticks[i]) - 3, 1, t, 60, 60, 60);
        hline(c, ticks[i], 0, 225, 225, 225);
    }
}

sq_code sq_monitor_plot(const char *png, const sq_monitor_ref *ref, const sq_monitor_config *c,
                        const double *y, const uint8_t *alarm, int n, sq_status *st) {
    sq_canvas cv;
    SQ_TRY(sq_canvas_alloc(&cv, PW, PH, 255, 255, 255, st));
    axes(&cv);
    hline(&cv, ref->mean, 1, 0, 150, 0);
    hline(&cv, c->threshold, 1, 200, 0, 0);
    for (int i = 0; i < n; i++) {
        if (alarm && alarm[i])
            for (int yy = MT; yy < PH - MB; yy++)
                sq_canvas_put(&cv, px_of(i, n), yy, 255, 150, 150);
        for (int d = -1; d <= 1; d++)
            for (int e = -1; e <= 1; e++)
                sq_canvas_put(&cv, px_of(i, n) + d, py_of(y[i]) + e, 110, 110, 110);
    }
    double run = 0, prev = 0;
    for (int i = 0; i < n; i++) { /* rolling mean of the last `window` cases, as a line */
        run += y[i] - (i >= c->window ? y[i - c->window] : 0);
        int m = i + 1 < c->window ? i + 1 : c->window;
        double v = run / m;
        int x0 = i ? px_of(i - 1, n) : px_of(0, n), x1 = px_of(i, n);
        for (int x = x0; x <= x1; x++) {
            double f = x1 > x0 ? (double)(x - x0) / (x1 - x0) : 1;
            int yy = py_of(i ? prev + f * (v - prev) : v);
            sq_canvas_put(&cv, x, yy, 20, 60, 220), sq_canvas_put(&cv, x, yy + 1, 20, 60, 220);
        }
        prev = v;
    }
    char foot[64];
    snprintf(foot, sizeof foot, "CASES 1..%d IN ARRIVAL ORDER", n);
    sq_canvas_text(&cv, ML, PH - MB + 8, 1, foot, 60, 60, 60);
    sq_canvas_text(&cv, ML, 8, 1,
                   "ESTIMATE PER CASE (GREY), ROLLING MEAN (BLUE), REFERENCE MEAN (GREEN), "
                   "THRESHOLD (RED), ALARMS (PINK)",
                   40, 40, 40);
    sq_code rc = sq_png_write(png, &cv, st);
    sq_canvas_free(&cv);
    return rc;
}
