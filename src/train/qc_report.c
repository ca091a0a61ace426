/* qc_report.c — per-pair QC pictures and the index.html of `segqa predict --report` (see
 * qc_report.h). */
#include "train/qc_report.h"

#include "core/fileio.h"
#include "train/png.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QC_PANELS    3
#define QC_BAND      24  /* text band above the panels, px */
#define QC_TARGET_PX 200 /* slices are enlarged (integer factor) to about this size */

void sq_qc_png_name(int index, const char *id, char *out, size_t n) {
    int k = snprintf(out, n, "%04d-", index);
    size_t j = k > 0 ? (size_t)k : 0;
    for (const char *p = id; *p && j + 5 < n && j < 200; p++)
        out[j++] = (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_') ? *p : '_';
    snprintf(out + j, n - j, ".png");
}

/* The (up to) 3 axial slices with the most contour voxels, in z order; the middle ones when the
 * contour is empty. Returns how many. */
static int pick_slices(const sq_volume *con, int z[QC_PANELS]) {
    int n = con->d < QC_PANELS ? con->d : QC_PANELS, got = 0;
    size_t plane = (size_t)con->h * (size_t)con->w;
    size_t *count = calloc((size_t)con->d, sizeof *count);
    const uint8_t *m = sq_volume_u8(con);
    for (int s = 0; count && s < con->d; s++)
        for (size_t i = 0; i < plane; i++)
            count[s] += m[(size_t)s * plane + i] != 0;
    for (; count && got < n; got++) { /* the largest remaining slice, lowest z on ties */
        int best = -1;
        for (int s = 0; s < con->d; s++)
            if (count[s] && (best < 0 || count[s] > count[best])) best = s;
        if (best < 0) break;
        z[got] = best;
        count[best] = 0;
    }
    free(count);
    if (got == 0) {
        for (int i = 0; i < n; i++)
            z[i] = con->d / 2 - n / 2 + i;
        return n;
    }
    for (int i = 1; i < got; i++) /* z order */
        for (int j = i; j > 0 && z[j - 1] > z[j]; j--) {
            int t = z[j];
            z[j] = z[j - 1], z[j - 1] = t;
        }
    return got;
}

/* Grey levels: the 0.5th..99.5th percentile of the image mapped to 0..255. */
static sq_code grey_volume(const sq_volume *img, sq_volume *out, sq_status *st) {
    SQ_TRY(sq_volume_alloc(out, SQ_F32, img->d, img->h, img->w, st));
    memcpy(out->data, img->data, sq_volume_numel(img) * sizeof(float));
    double lo, hi;
    return sq_volume_normalise_percentile(out, 0.5, 99.5, &lo, &hi, st);
}

/* One slice enlarged by `s` at (x0, y0), with the contour's outline. */
static void draw_slice(sq_canvas *c, const sq_volume *grey, const sq_volume *con, int z, int s,
                       int x0, int y0) {
    const float *g = sq_volume_f32(grey) + (size_t)z * (size_t)grey->h * (size_t)grey->w;
    const uint8_t *m = sq_volume_u8(con) + (size_t)z * (size_t)con->h * (size_t)con->w;
    int W = grey->w * s, H = grey->h * s;
    for (int py = 0; py < H; py++)
        for (int px = 0; px < W; px++) {
            /* rows are drawn top = highest y (radiological display of the y axis upward) */
            int vx = px / s, vy = grey->h - 1 - py / s;
            float v = g[(size_t)vy * (size_t)grey->w + (size_t)vx];
            uint8_t k = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            sq_canvas_put(c, x0 + px, y0 + py, k, k, k);
            if (!m[(size_t)vy * (size_t)con->w + (size_t)vx]) continue;
            int edge = 0;
            for (int d = 0; d < 4 && !edge; d++) {
                int qx = px + (d == 0) - (d == 1), qy = py + (d == 2) - (d == 3);
                if (qx < 0 || qy < 0 || qx >= W || qy >= H) {
                    edge = 1;
                    break;
                }
                int ux = qx / s, uy = grey->h - 1 - qy / s;
                edge = !m[(size_t)uy * (size_t)con->w + (size_t)ux];
            }
            if (edge) sq_canvas_put(c, x0 + px, y0 + py, 255, 215, 0);
        }
}

static void draw_band(sq_canvas *c, const sq_qc_item *item, const int *z, int n, int panel_w) {
    char text[96];
    if (item->has_interval)
        snprintf(text, sizeof text, "EST. DICE %.3f [%.2f, %.2f]  %s", item->estimate, item->lo,
                 item->hi, item->accept ? "ACCEPT" : "REJECT");
    else
        snprintf(text, sizeof text, "EST. DICE %.3f  %s", item->estimate,
                 item->accept ? "ACCEPT" : "REJECT");
    uint8_t r = item->accept ? 90 : 255, g = item->accept ? 220 : 80, b = item->accept ? 90 : 80;
    sq_canvas_text(c, 6, 5, 2, text, r, g, b);
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof text, "Z=%d", z[i]);
        sq_canvas_text(c, i * (panel_w + 4) + 4, QC_BAND + 4, 1, text, 255, 255, 255);
    }
}

sq_code sq_qc_write_case_png(const char *dir, const sq_qc_item *item, const sq_volume *img,
                             const sq_volume *con, sq_status *st) {
    if (img->d != con->d || img->h != con->h || img->w != con->w)
        return sq_fail(st, SQ_ERR_INTERNAL, "QC picture: image and contour grids differ");
    int z[QC_PANELS];
    int n = pick_slices(con, z);
    int big = img->h > img->w ? img->h : img->w;
    int s = big >= QC_TARGET_PX ? 1 : (QC_TARGET_PX + big - 1) / big;
    int pw = img->w * s, ph = img->h * s;
    int text_w = 6 * 2 * 26 + 12, w = n * (pw + 4) - 4;
    if (w < text_w) w = text_w;
    sq_volume grey = {0};
    sq_canvas c = {0};
    sq_code rc = grey_volume(img, &grey, st);
    if (rc == SQ_OK) rc = sq_canvas_alloc(&c, w, ph + QC_BAND, 24, 24, 24, st);
    if (rc == SQ_OK) {
        for (int i = 0; i < n; i++)
            draw_slice(&c, &grey, con, z[i], s, i * (pw + 4), QC_BAND);
        draw_band(&c, item, z, n, pw);
        char path[SQ_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, item->png);
        rc = sq_png_write(path, &c, st);
    }
    sq_canvas_free(&c);
    sq_volume_free(&grey);
    return rc;
}

/* ---- index.html ---------------------------------------------------------------------------- */

typedef struct strbuf {
    char *s;
    size_t len, cap;
    int oom;
} strbuf;

static void put(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(strbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0 || b->oom) return;
        if (b->s && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t nc = (b->cap + (size_t)k + 1) * 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns, b->cap = nc;
    }
}

static void put_escaped(strbuf *b, const char *t) {
    for (; *t; t++) {
        switch (*t) {
        case '<': put(b, "&lt;"); break;
        case '>': put(b, "&gt;"); break;
        case '&': put(b, "&amp;"); break;
        case '"': put(b, "&quot;"); break;
        default: put(b, "%c", *t);
        }
    }
}

static const sq_qc_item *sort_base;
static int worst_first(const void *a, const void *b) {
    const sq_qc_item *x = &sort_base[*(const int *)a], *y = &sort_base[*(const int *)b];
    if (x->ok != y->ok) return x->ok - y->ok; /* failed pairs first */
    if (x->ok && x->estimate != y->estimate) return x->estimate < y->estimate ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>segqa QC report</title>\n<style>\n"
    "body{font-family:sans-serif;margin:1.5em;background:#fafafa;color:#222}\n"
    "table{border-collapse:collapse}td,th{border-bottom:1px solid #ccc;padding:6px 10px;"
    "text-align:left;vertical-align:middle}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    ".reject{color:#b00;font-weight:bold}.accept{color:#070}.failed{color:#b00;"
    "background:#fee}\n"
    "img.thumb{height:120px;image-rendering:pixelated;border:1px solid #999}\n"
    "code{font-size:85%;color:#555}\n</style></head><body>\n";

static void put_row(strbuf *b, int rank, const sq_qc_item *it) {
    const char *cls = !it->ok ? "failed" : it->accept ? "accept" : "reject";
    put(b, "<tr class=\"pair %s\" data-id=\"", cls);
    put_escaped(b, it->id);
    if (it->ok)
        put(b, "\" data-estimate=\"%.6f\"><td class=\"num\">%d</td><td>", it->estimate, rank);
    else
        put(b, "\" data-estimate=\"\"><td class=\"num\">%d</td><td>", rank);
    put_escaped(b, it->id);
    put(b, "<br><code>");
    put_escaped(b, it->contour);
    put(b, "</code></td>");
    if (!it->ok) {
        put(b, "<td class=\"num\">&ndash;</td><td class=\"failed\">failed</td><td>");
        put_escaped(b, it->error);
        put(b, "</td></tr>\n");
        return;
    }
    if (it->has_interval)
        put(b, "<td class=\"num\">%.3f <span class=\"interval\">[%.3f, %.3f]</span></td>",
            it->estimate, it->lo, it->hi);
    else
        put(b, "<td class=\"num\">%.3f</td>", it->estimate);
    put(b, "<td class=\"%s\">%s</td><td>", cls, it->accept ? "accept" : "REJECT");
    if (it->png[0]) {
        put(b, "<a href=\"");
        put_escaped(b, it->png);
        put(b, "\"><img class=\"thumb\" alt=\"slices of ");
        put_escaped(b, it->id);
        put(b, "\" src=\"");
        put_escaped(b, it->png);
        put(b, "\"></a>");
    }
    put(b, "</td></tr>\n");
}

static const char *intervals_note(const sq_qc_item *items, int n) {
    static char note[160];
    for (int i = 0; i < n; i++)
        if (items[i].ok && items[i].has_interval) {
            snprintf(note, sizeof note,
                     "Intervals: calibrated to cover the true Dice with probability %.0f %%.",
                     100 * items[i].coverage);
            return note;
        }
    return "Intervals: not available from this checkpoint.";
}

static void put_summary(strbuf *b, const sq_qc_item *items, int n, double threshold) {
    int acc = 0, rej = 0, fail = 0;
    for (int i = 0; i < n; i++)
        acc += items[i].ok && items[i].accept, rej += items[i].ok && !items[i].accept,
            fail += !items[i].ok;
    put(b,
        "<h1>segqa QC report</h1>\n<p id=\"summary\">%d pairs: %d accepted, %d rejected, "
        "%d failed. A contour is accepted when its estimated Dice is at least %.4g. Worst "
        "first; the outline is drawn on the 3 axial slices where the contour is largest. "
        "%s</p>\n",
        n, acc, rej, fail, threshold, intervals_note(items, n));
    put(b, "<table id=\"pairs\"><thead><tr><th>#</th><th>pair</th><th>est. Dice</th>"
           "<th>decision</th><th>slices</th></tr></thead><tbody>\n");
}

sq_code sq_qc_write_index(const char *dir, const sq_qc_item *items, int n, double threshold,
                          sq_status *st) {
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        order[i] = i;
    sort_base = items;
    qsort(order, (size_t)n, sizeof *order, worst_first);
    strbuf b = {0};
    put(&b, "%s", page_head);
    put_summary(&b, items, n, threshold);
    for (int i = 0; i < n; i++)
        put_row(&b, i + 1, &items[order[i]]);
    put(&b, "</tbody></table>\n</body></html>\n");
    free(order);
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/index.html", dir);
    sq_code rc = b.oom ? sq_fail(st, SQ_ERR_NOMEM, "out of memory")
                       : sq_write_file_atomic(path, b.s, b.len, st);
    free(b.s);
    return rc;
}
