/* pairs.c — the pairs CSV of `segqa predict --pairs` (see pairs.h). */
#include "data/pairs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct columns {
    int image, contour, id, site;
} columns;

static void csv_dir(const char *path, char *dir, size_t n) {
    snprintf(dir, n, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, n, ".");
}

static int split_fields(char *line, char **fields, int max) {
    int nf = 0;
    char *p = line;
    while (nf < max) {
        fields[nf++] = p;
        char *comma = strchr(p, ',');
        if (!comma) break;
        *comma = '\0';
        p = comma + 1;
    }
    return nf;
}

static int read_header(char **f, int nf, columns *c) {
    *c = (columns){-1, -1, -1, -1};
    for (int i = 0; i < nf; i++) {
        if (!strcmp(f[i], "image")) c->image = i;
        if (!strcmp(f[i], "contour")) c->contour = i;
        if (!strcmp(f[i], "id") || !strcmp(f[i], "case")) c->id = i;
        if (!strcmp(f[i], "site")) c->site = i;
    }
    return c->image >= 0 && c->contour >= 0;
}

static void join(char *out, size_t n, const char *dir, const char *p) {
    int k = p[0] == '/' ? snprintf(out, n, "%s", p) : snprintf(out, n, "%s/%s", dir, p);
    if (k < 0 || (size_t)k >= n) out[0] = '\0'; /* too long: reported as an empty path */
}

/* One data row into p (an error row when it is short or has an empty path). */
static void read_row(const char *path, int line_no, char **f, int nf, const columns *c,
                     const char *dir, sq_pair *p) {
    memset(p, 0, sizeof *p);
    int need = c->image > c->contour ? c->image : c->contour;
    if (c->id > need) need = c->id;
    if (c->site > need) need = c->site;
    if (c->id >= 0 && nf > c->id && f[c->id][0])
        snprintf(p->id, sizeof p->id, "%.255s", f[c->id]);
    else
        snprintf(p->id, sizeof p->id, "line %d", line_no);
    if (nf <= need) {
        snprintf(p->error, sizeof p->error, "%.400s:%d: expected %d columns, found %d", path,
                 line_no, need + 1, nf);
        return;
    }
    if (!f[c->image][0] || !f[c->contour][0]) {
        snprintf(p->error, sizeof p->error, "%.400s:%d: empty image or contour path", path,
                 line_no);
        return;
    }
    join(p->image, sizeof p->image, dir, f[c->image]);
    join(p->contour, sizeof p->contour, dir, f[c->contour]);
    if (!p->image[0] || !p->contour[0])
        snprintf(p->error, sizeof p->error, "%.400s:%d: path longer than %d characters", path,
                 line_no, SQ_PATH_MAX - 1);
    if (c->id < 0) snprintf(p->id, sizeof p->id, "%.255s", f[c->contour]);
    if (c->site >= 0) snprintf(p->site, sizeof p->site, "%.63s", f[c->site]);
}

static sq_code push(sq_pair **v, int *n, int *cap, sq_status *st) {
    if (*n < *cap) return SQ_OK;
    int nc = *cap ? 2 * *cap : 16;
    sq_pair *nv = realloc(*v, (size_t)nc * sizeof *nv);
    if (!nv) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    *v = nv, *cap = nc;
    return SQ_OK;
}

sq_code sq_pairs_read_csv(const char *path, sq_pair **out, int *n, sq_status *st) {
    char *text = NULL;
    *out = NULL, *n = 0;
    SQ_TRY(sq_read_file(path, &text, NULL, st));
    char dir[SQ_PATH_MAX];
    csv_dir(path, dir, sizeof dir);
    columns c = {-1, -1, -1, -1};
    int have_header = 0, line_no = 0, cap = 0;
    sq_pair *v = NULL;
    sq_code rc = SQ_OK;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == SQ_OK;
         line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = '\0';
        if (!len) continue;
        char *f[32];
        int nf = split_fields(line, f, 32);
        if (!have_header) {
            if (!read_header(f, nf, &c))
                rc = sq_fail(st, SQ_ERR_FORMAT,
                             "%s:%d: header must name the columns 'image' and 'contour'", path,
                             line_no);
            have_header = 1;
            continue;
        }
        rc = push(&v, n, &cap, st);
        if (rc == SQ_OK) read_row(path, line_no, f, nf, &c, dir, &v[(*n)++]);
    }
    free(text);
    if (rc == SQ_OK && *n == 0) rc = sq_fail(st, SQ_ERR_FORMAT, "%s: no image/contour pairs", path);
    if (rc != SQ_OK) {
        free(v);
        v = NULL;
        *n = 0;
    }
    *out = v;
    return rc;
}
