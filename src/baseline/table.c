/* table.c — patients, targets and clinical variables from site files and a clinical CSV (table.h).
 *
 * Phases: collect patients from the sites' case metadata; gather each patient's raw variables as
 * text (from the site JSON or the CSV, with the place each came from for error messages); pick
 * the columns (all, or the --features list); type and encode every column. */
#include "baseline/table.h"

#include "core/fileio.h"
#include "core/log.h"
#include "data/site.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_COLS 256

/* Raw rows while loading: per patient its variables as text and where they came from. */
typedef struct raw_table {
    sq_bl_table *t;
    cJSON **vars;  /* per row: object {name: text} */
    char **origin; /* per row: "clin.csv:7" or "site.h5 case X" */
    char (*first_case)[SQ_BL_NAME_MAX];
    char **clinical_json; /* per row: the first case's non-empty clinical JSON (site mode) */
    int ncases;
    char (*case_id)[SQ_BL_NAME_MAX];
    int *case_row;
    char cols[MAX_COLS][SQ_BL_NAME_MAX]; /* variable names in order of first appearance */
    int ncols;
} raw_table;

const char *sq_bl_ftype_name(sq_bl_ftype t) {
    return t == SQ_BL_CATEGORICAL ? "categorical" : "numeric";
}

void sq_bl_table_free(sq_bl_table *t) {
    if (!t) return;
    for (int j = 0; j < t->nfeat && t->feat; j++) {
        for (int c = 0; c < t->feat[j].ncat; c++)
            free(t->feat[j].cats[c]);
        free(t->feat[j].cats);
    }
    free(t->feat), free(t->patient), free(t->site), free(t->ncontours), free(t->target);
    free(t->x);
    memset(t, 0, sizeof *t);
}

static void raw_free(raw_table *r) {
    for (int i = 0; i < r->t->nrows; i++) {
        if (r->vars) cJSON_Delete(r->vars[i]);
        if (r->origin) free(r->origin[i]);
        if (r->clinical_json) free(r->clinical_json[i]);
    }
    free(r->vars), free(r->origin), free(r->clinical_json), free(r->first_case);
    free(r->case_id), free(r->case_row);
}

static int find_row(const sq_bl_table *t, const char *patient) {
    for (int i = 0; i < t->nrows; i++)
        if (!strcmp(t->patient[i], patient)) return i;
    return -1;
}

static int grow(void **p, size_t elem, int n) {
    void *q = realloc(*p, elem * (size_t)(n + 1));
    if (!q) return -1;
    *p = q;
    return 0;
}

/* A new row for `patient` of `site`; -1 on out-of-memory. */
static int add_row(raw_table *r, const char *patient, const char *site) {
    sq_bl_table *t = r->t;
    int n = t->nrows;
    if (grow((void **)&t->patient, sizeof *t->patient, n) ||
        grow((void **)&t->site, sizeof *t->site, n) ||
        grow((void **)&t->ncontours, sizeof *t->ncontours, n) ||
        grow((void **)&t->target, sizeof *t->target, n) ||
        grow((void **)&r->first_case, sizeof *r->first_case, n) ||
        grow((void **)&r->clinical_json, sizeof *r->clinical_json, n))
        return -1;
    snprintf(t->patient[n], SQ_BL_NAME_MAX, "%s", patient);
    snprintf(t->site[n], SQ_BL_NAME_MAX, "%s", site);
    t->ncontours[n] = 0, t->target[n] = 0, r->clinical_json[n] = NULL, r->first_case[n][0] = 0;
    t->nrows = n + 1;
    return n;
}

/* One case's metadata into its patient's row. */
static sq_code add_case(raw_table *r, const char *path, const sq_case *c, const char *site_of_row,
                        sq_status *st) {
    sq_bl_table *t = r->t;
    int row = find_row(t, c->patient);
    if (row >= 0 && strcmp(t->site[row], site_of_row))
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: case '%s': patient '%s' is also in %s; expected patient ids unique "
                       "across the site files",
                       path, c->id, c->patient, t->site[row]);
    if (row < 0 && (row = add_row(r, c->patient, site_of_row)) < 0)
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    for (int k = 0; k < c->ncontours; k++)
        t->target[row] += c->contours[k].dice, t->ncontours[row]++;
    if (!r->clinical_json[row] && c->clinical && strcmp(c->clinical, "{}")) {
        r->clinical_json[row] = strdup(c->clinical);
        snprintf(r->first_case[row], SQ_BL_NAME_MAX, "%s", c->id);
    }
    int n = r->ncases;
    if (grow((void **)&r->case_id, sizeof *r->case_id, n) ||
        grow((void **)&r->case_row, sizeof *r->case_row, n))
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    snprintf(r->case_id[n], SQ_BL_NAME_MAX, "%s", c->id);
    r->case_row[n] = row;
    r->ncases = n + 1;
    return SQ_OK;
}

static sq_code load_sites(raw_table *r, const sq_bl_source *src, sq_status *st) {
    for (int s = 0; s < src->nsites; s++) {
        sq_site *site;
        SQ_TRY(sq_site_open(src->sites[s], &site, st));
        sq_code rc = SQ_OK;
        for (int i = 0; i < sq_site_ncases(site) && rc == SQ_OK; i++)
            rc = add_case(r, src->sites[s], sq_site_case_meta(site, i), src->sites[s], st);
        sq_site_close(site);
        SQ_TRY(rc);
    }
    /* patients without contours have no target */
    sq_bl_table *t = r->t;
    int kept = 0, dropped = 0;
    for (int i = 0; i < t->nrows; i++) {
        if (t->ncontours[i] == 0) {
            dropped++;
            free(r->clinical_json[i]);
            for (int c = 0; c < r->ncases; c++)
                if (r->case_row[c] == i) r->case_row[c] = -1;
            continue;
        }
        for (int c = 0; c < r->ncases; c++)
            if (r->case_row[c] == i) r->case_row[c] = kept;
        memmove(t->patient[kept], t->patient[i], SQ_BL_NAME_MAX);
        memmove(t->site[kept], t->site[i], SQ_BL_NAME_MAX);
        memmove(r->first_case[kept], r->first_case[i], SQ_BL_NAME_MAX);
        t->ncontours[kept] = t->ncontours[i];
        t->target[kept] = t->target[i] / t->ncontours[i];
        r->clinical_json[kept] = r->clinical_json[i];
        kept++;
    }
    t->nrows = kept;
    if (dropped) sq_warn("baseline: %d patients without contours left out (no target)", dropped);
    if (kept < 2)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: %d patients with contours; expected at least 2",
                       src->sites[0], kept);
    r->vars = calloc((size_t)kept, sizeof *r->vars);
    r->origin = calloc((size_t)kept, sizeof *r->origin);
    if (!r->vars || !r->origin) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    return SQ_OK;
}

static void note_column(raw_table *r, const char *name) {
    for (int j = 0; j < r->ncols; j++)
        if (!strcmp(r->cols[j], name)) return;
    if (r->ncols < MAX_COLS) snprintf(r->cols[r->ncols++], SQ_BL_NAME_MAX, "%s", name);
}

/* Site mode: every row's variables from its first case's clinical JSON. */
static sq_code vars_from_sites(raw_table *r, sq_status *st) {
    sq_bl_table *t = r->t;
    for (int i = 0; i < t->nrows; i++) {
        r->vars[i] = cJSON_CreateObject();
        char where[2 * SQ_BL_NAME_MAX + 16];
        snprintf(where, sizeof where, "%s case %s", t->site[i], r->first_case[i]);
        r->origin[i] = strdup(where);
        if (!r->vars[i] || !r->origin[i]) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
        if (!r->clinical_json[i]) continue;
        cJSON *o = cJSON_Parse(r->clinical_json[i]);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            return sq_fail(st, SQ_ERR_FORMAT, "%s: attribute 'clinical' is not a JSON object",
                           where);
        }
        for (cJSON *it = o->child; it; it = it->next) {
            char text[64];
            const char *v = NULL;
            if (cJSON_IsNumber(it))
                snprintf(text, sizeof text, "%.17g", it->valuedouble), v = text;
            else if (cJSON_IsString(it))
                v = it->valuestring;
            else
                continue; /* null/nested: missing */
            cJSON_AddStringToObject(r->vars[i], it->string, v);
            note_column(r, it->string);
        }
        cJSON_Delete(o);
    }
    if (r->ncols == 0)
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: no clinical variables in any case; expected them in the site file "
                       "(segqa ingest --clinical) or a --clinical FILE.csv",
                       t->site[0]);
    return SQ_OK;
}

/* Split one CSV line in place (double quotes allowed around a field); returns the field count. */
static int split_csv_line(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    size_t l = strlen(line);
    if (l && line[l - 1] == '\r') line[l - 1] = 0;
    for (;;) {
        if (n == max) return max + 1;
        if (*p == '"') {
            f[n++] = ++p;
            while (*p && *p != '"')
                p++;
            if (*p) *p++ = 0;
            while (*p && *p != ',')
                p++;
        } else {
            f[n++] = p;
            while (*p && *p != ',')
                p++;
        }
        if (!*p) break;
        *p++ = 0;
    }
    for (int i = 0; i < n; i++) { /* trim spaces */
        while (*f[i] == ' ')
            f[i]++;
        char *e = f[i] + strlen(f[i]);
        while (e > f[i] && e[-1] == ' ')
            *--e = 0;
    }
    return n;
}

/* The row a CSV key names, or -1. by_case: the key is a case id. */
static int csv_key_row(const raw_table *r, const char *key, int by_case) {
    if (!by_case) return find_row(r->t, key);
    for (int c = 0; c < r->ncases; c++)
        if (!strcmp(r->case_id[c], key)) return r->case_row[c] >= 0 ? r->case_row[c] : -2;
    return -1;
}

static sq_code csv_row(raw_table *r, const char *csv, int lineno, char **hdr, int nh, int key,
                       char **f, int by_case, int *first_line, sq_status *st) {
    const char *kind = by_case ? "case" : "patient";
    int row = csv_key_row(r, f[key], by_case);
    if (row == -1)
        return sq_fail(st, SQ_ERR_FORMAT, "%s:%d: unknown %s '%s': not in any of the site files",
                       csv, lineno, kind, f[key]);
    if (row == -2) return SQ_OK; /* a case without contours */
    if (r->vars[row]) {
        if (first_line[row] < 0) return SQ_OK; /* another case of a patient already given */
        return sq_fail(st, SQ_ERR_FORMAT, "%s:%d: duplicate %s '%s' (first on line %d)", csv,
                       lineno, kind, f[key], first_line[row]);
    }
    r->vars[row] = cJSON_CreateObject();
    char where[SQ_PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:%d", csv, lineno);
    r->origin[row] = strdup(where);
    if (!r->vars[row] || !r->origin[row]) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    first_line[row] = by_case ? -1 : lineno;
    for (int k = 0; k < nh; k++)
        if (k != key) cJSON_AddStringToObject(r->vars[row], hdr[k], f[k]);
    return SQ_OK;
}

/* A case-keyed CSV may list several cases of one patient: only the first row of a patient is
 * used; a duplicate case id is still an error. */
static sq_code csv_check_duplicate_case(char (*seen)[SQ_BL_NAME_MAX], int nseen, int *seen_line,
                                        const char *key, const char *csv, int lineno,
                                        sq_status *st) {
    for (int i = 0; i < nseen; i++)
        if (!strcmp(seen[i], key))
            return sq_fail(st, SQ_ERR_FORMAT, "%s:%d: duplicate case '%s' (first on line %d)", csv,
                           lineno, key, seen_line[i]);
    return SQ_OK;
}

static sq_code csv_header(raw_table *r, const char *csv, char **hdr, int nh, int *key, int *by_case,
                          sq_status *st) {
    *key = -1;
    for (int k = 0; k < nh; k++)
        if (!strcmp(hdr[k], "patient")) *key = k;
    *by_case = 0;
    for (int k = 0; k < nh && *key < 0; k++)
        if (!strcmp(hdr[k], "case")) *key = k, *by_case = 1;
    if (*key < 0)
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s:1: header needs a column 'patient' or 'case'; found '%s'", csv,
                       nh ? hdr[0] : "");
    for (int k = 0; k < nh; k++) {
        if (k == *key) continue;
        if (!*hdr[k]) return sq_fail(st, SQ_ERR_FORMAT, "%s:1: column %d has no name", csv, k + 1);
        for (int j = 0; j < r->ncols; j++)
            if (!strcmp(r->cols[j], hdr[k]))
                return sq_fail(st, SQ_ERR_FORMAT, "%s:1: column '%s' appears twice", csv, hdr[k]);
        note_column(r, hdr[k]);
    }
    return SQ_OK;
}

static sq_code csv_rows(raw_table *r, const char *csv, char *text, sq_status *st) {
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    char *hdr[MAX_COLS + 1], *f[MAX_COLS + 1];
    int nh = line ? split_csv_line(line, hdr, MAX_COLS) : 0, key, by_case;
    if (nh > MAX_COLS)
        return sq_fail(st, SQ_ERR_FORMAT, "%s:1: more than %d columns", csv, MAX_COLS);
    SQ_TRY(csv_header(r, csv, hdr, nh, &key, &by_case, st));
    int n = r->t->nrows, lineno = 1, nseen = 0;
    int *first_line = malloc(sizeof(int) * (size_t)n);
    int *seen_line = malloc(sizeof(int) * (size_t)(r->ncases + 1));
    char(*seen)[SQ_BL_NAME_MAX] = malloc(sizeof *seen * (size_t)(r->ncases + 1));
    sq_code rc =
        first_line && seen && seen_line ? SQ_OK : sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    while (rc == SQ_OK && (line = strtok_r(NULL, "\n", &save))) {
        lineno++;
        if (!*line || !strcmp(line, "\r")) continue;
        int nf = split_csv_line(line, f, MAX_COLS);
        if (nf != nh) {
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s:%d: %d fields, expected %d as in the header", csv,
                         lineno, nf, nh);
            break;
        }
        if (by_case) {
            rc = csv_check_duplicate_case(seen, nseen, seen_line, f[key], csv, lineno, st);
            if (rc == SQ_OK && nseen <= r->ncases) {
                snprintf(seen[nseen], SQ_BL_NAME_MAX, "%s", f[key]);
                seen_line[nseen++] = lineno;
            }
        }
        if (rc == SQ_OK) rc = csv_row(r, csv, lineno, hdr, nh, key, f, by_case, first_line, st);
    }
    for (int i = 0; rc == SQ_OK && i < n; i++)
        if (!r->vars[i])
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s: no row for patient '%s' of %s", csv,
                         r->t->patient[i], r->t->site[i]);
    free(first_line), free(seen), free(seen_line);
    return rc;
}

static sq_code vars_from_csv(raw_table *r, const char *csv, sq_status *st) {
    char *text;
    size_t len;
    SQ_TRY(sq_read_file(csv, &text, &len, st));
    sq_code rc = csv_rows(r, csv, text, st);
    free(text);
    return rc;
}

/* ---- columns: selection, typing, encoding ---- */

static int is_missing(const char *v) {
    return !v || !*v || !strcasecmp(v, "na") || !strcasecmp(v, "nan");
}

static int parse_number(const char *v, double *out) {
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d)) return 0;
    *out = d;
    return 1;
}

static const char *cell(const raw_table *r, int row, const char *col) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(r->vars[row], col);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* The type of column `col`: declared (-1: infer) and checked against every present value. */
static sq_code column_type(const raw_table *r, const char *col, int declared, sq_bl_ftype *type,
                           sq_status *st) {
    int nnum = 0, first_text = -1, first_num = -1;
    for (int i = 0; i < r->t->nrows; i++) {
        const char *v = cell(r, i, col);
        double d;
        if (is_missing(v)) continue;
        if (parse_number(v, &d)) {
            nnum++;
            if (first_num < 0) first_num = i;
        } else if (first_text < 0) {
            first_text = i;
        }
    }
    if (declared == SQ_BL_CATEGORICAL || (declared < 0 && nnum == 0)) {
        *type = SQ_BL_CATEGORICAL;
        return SQ_OK;
    }
    *type = SQ_BL_NUMERIC;
    if (first_text < 0) return SQ_OK;
    const char *bad = cell(r, first_text, col);
    if (declared == SQ_BL_NUMERIC)
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: column '%s': '%s' is not a number (declared numeric)",
                       r->origin[first_text], col, bad);
    return sq_fail(st, SQ_ERR_FORMAT,
                   "%s: column '%s': '%s' is not a number, but %s has %s (numbers in %d rows; "
                   "declare %s:cat in --features for a categorical column)",
                   r->origin[first_text], col, bad, r->origin[first_num], cell(r, first_num, col),
                   nnum, col);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static sq_code encode_categories(const raw_table *r, const char *col, sq_bl_feature *f,
                                 sq_status *st) {
    f->cats = malloc(sizeof(char *) * (size_t)r->t->nrows);
    if (!f->cats) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    for (int i = 0; i < r->t->nrows; i++) {
        const char *v = cell(r, i, col);
        if (is_missing(v)) continue;
        int seen = 0;
        for (int c = 0; c < f->ncat && !seen; c++)
            seen = !strcmp(f->cats[c], v);
        if (!seen && !(f->cats[f->ncat++] = strdup(v)))
            return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    }
    qsort(f->cats, (size_t)f->ncat, sizeof(char *), cmp_str);
    return SQ_OK;
}

static float encode_cell(const sq_bl_feature *f, const char *v) {
    if (is_missing(v)) return NAN;
    if (f->type == SQ_BL_NUMERIC) {
        double d = 0;
        parse_number(v, &d);
        return (float)d;
    }
    for (int c = 0; c < f->ncat; c++)
        if (!strcmp(f->cats[c], v)) return (float)c;
    return NAN;
}

/* The columns to use: every one found, or the --features list ("a,b:cat,c:num"). */
static sq_code select_columns(raw_table *r, const sq_bl_source *src, char (*names)[SQ_BL_NAME_MAX],
                              int *declared, int *n, sq_status *st) {
    const char *where = src->clinical_csv && *src->clinical_csv ? src->clinical_csv : src->sites[0];
    *n = 0;
    if (!src->features || !*src->features) {
        for (int j = 0; j < r->ncols; j++) {
            snprintf(names[*n], SQ_BL_NAME_MAX, "%s", r->cols[j]);
            declared[(*n)++] = -1;
        }
        if (*n == 0)
            return sq_fail(st, SQ_ERR_FORMAT, "%s: no clinical variable columns besides the key",
                           where);
        return SQ_OK;
    }
    char list[4096];
    snprintf(list, sizeof list, "%s", src->features);
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok && *n < MAX_COLS;
         tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        int d = -1;
        if (colon) {
            *colon = 0;
            if (!strcmp(colon + 1, "num"))
                d = SQ_BL_NUMERIC;
            else if (!strcmp(colon + 1, "cat"))
                d = SQ_BL_CATEGORICAL;
            else
                return sq_fail(st, SQ_ERR_USAGE,
                               "--features: '%s:%s': expected the type 'num' or 'cat'", tok,
                               colon + 1);
        }
        int found = 0;
        for (int j = 0; j < r->ncols && !found; j++)
            found = !strcmp(r->cols[j], tok);
        if (!found)
            return sq_fail(st, SQ_ERR_FORMAT, "%s: missing column '%s' (asked for by --features)",
                           where, tok);
        snprintf(names[*n], SQ_BL_NAME_MAX, "%s", tok);
        declared[(*n)++] = d;
    }
    return SQ_OK;
}

static sq_code fill_columns(raw_table *r, const char (*names)[SQ_BL_NAME_MAX], const int *declared,
                            int n, sq_status *st);

static sq_code build_columns(raw_table *r, const sq_bl_source *src, sq_status *st) {
    char(*names)[SQ_BL_NAME_MAX] = malloc(sizeof *names * MAX_COLS);
    int declared[MAX_COLS], n;
    if (!names) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    sq_code rc = select_columns(r, src, names, declared, &n, st);
    if (rc == SQ_OK) rc = fill_columns(r, (const char(*)[SQ_BL_NAME_MAX])names, declared, n, st);
    free(names);
    return rc;
}

static sq_code fill_columns(raw_table *r, const char (*names)[SQ_BL_NAME_MAX], const int *declared,
                            int n, sq_status *st) {
    sq_bl_table *t = r->t;
    t->feat = calloc((size_t)(n ? n : 1), sizeof *t->feat);
    t->x = malloc(sizeof(float) * (size_t)(n ? n : 1) * (size_t)t->nrows);
    if (!t->feat || !t->x) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    for (int j = 0; j < n; j++) {
        sq_bl_feature *f = &t->feat[j];
        snprintf(f->name, sizeof f->name, "%s", names[j]);
        t->nfeat = j + 1;
        SQ_TRY(column_type(r, names[j], declared[j], &f->type, st));
        if (f->type == SQ_BL_CATEGORICAL) SQ_TRY(encode_categories(r, names[j], f, st));
        for (int i = 0; i < t->nrows; i++)
            t->x[(size_t)i * n + j] = encode_cell(f, cell(r, i, names[j]));
    }
    return SQ_OK;
}

sq_code sq_bl_table_load(const sq_bl_source *src, sq_bl_table *t, sq_status *st) {
    memset(t, 0, sizeof *t);
    if (src->nsites < 1) return sq_fail(st, SQ_ERR_USAGE, "baseline: no site file given");
    raw_table r;
    memset(&r, 0, sizeof r);
    r.t = t;
    sq_code rc = load_sites(&r, src, st);
    if (rc == SQ_OK && src->targets_only) {
        raw_free(&r);
        return SQ_OK;
    }
    if (rc == SQ_OK)
        rc = src->clinical_csv && *src->clinical_csv ? vars_from_csv(&r, src->clinical_csv, st)
                                                     : vars_from_sites(&r, st);
    if (rc == SQ_OK) rc = build_columns(&r, src, st);
    raw_free(&r);
    if (rc != SQ_OK) sq_bl_table_free(t);
    return rc;
}
