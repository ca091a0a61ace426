/* site.c — HDF5 site files (see site.h and docs/data-format.md): writer with temp-file commit,
 * validating reader, per-volume reads. Only one thread at a time may call into this file. */
#include "data/site.h"
#include "data/h5attr.h"

#include "core/fileio.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *xstrdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static void quiet_hdf5(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void sq_case_free(sq_case *c) {
    if (!c) return;
    free(c->clinical);
    free(c->source);
    sq_volume_free(&c->image);
    sq_volume_free(&c->gt);
    for (int i = 0; i < c->ncontours; i++) {
        free(c->contours[i].params);
        sq_volume_free(&c->contours[i].mask);
    }
    free(c->contours);
    memset(c, 0, sizeof *c);
}

sq_code sq_case_add_contour(sq_case *c, const char *name, const char *method, char *params,
                            double dice, sq_volume *mask, sq_status *st) {
    sq_contour *nc = realloc(c->contours, sizeof *nc * (size_t)(c->ncontours + 1));
    if (!nc) {
        free(params);
        sq_volume_free(mask);
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    }
    c->contours = nc;
    sq_contour *k = &nc[c->ncontours++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    snprintf(k->method, sizeof k->method, "%s", method);
    k->params = params;
    k->dice = dice;
    if (mask) {
        k->mask = *mask;
        memset(mask, 0, sizeof *mask);
    }
    return SQ_OK;
}

/* ---------------- attributes ---------------- */

/* A fixed-length, null-padded UTF-8 string (one byte at least: HDF5 refuses size 0). Not
 * variable-length: those live in the file's global heap, and libhdf5 1.10.8 hangs, segfaults or
 * copies onto itself on a corrupt one (fuzz_site, docs/data-format.md). Readers accept both. */
static int attr_str(hid_t loc, const char *name, const char *value) {
    const char *v = value ? value : "";
    size_t n = strlen(v);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, n ? n : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    const char nul[1] = {0};
    herr_t e = a < 0 ? -1 : H5Awrite(a, t, n ? v : nul);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return e < 0 ? -1 : 0;
}

static int attr_num(hid_t loc, const char *name, hid_t mem_t, hid_t file_t, int n,
                    const void *value) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    hid_t a = H5Acreate2(loc, name, file_t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, mem_t, value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

/* Read a numeric attribute of exactly n elements (n = 1 accepts a scalar) as doubles. */
static int read_attr_doubles(hid_t loc, const char *name, double *out, int n) {
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a), ft = H5Aget_type(a);
    hssize_t cnt = H5Sget_simple_extent_npoints(sp);
    H5T_class_t cls = H5Tget_class(ft);
    int rc = -1;
    if (cnt == n && (cls == H5T_INTEGER || cls == H5T_FLOAT))
        rc = H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0 ? -1 : 0;
    H5Tclose(ft);
    H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

/* ---------------- writer ---------------- */

struct sq_site_writer {
    char path[SQ_PATH_MAX];
    char tmp[SQ_PATH_MAX];
    hid_t file, cases;
    sq_site_info info;
    int n_cases;
};

void sq_site_writer_abort(sq_site_writer *w) {
    if (!w) return;
    if (w->cases >= 0) H5Gclose(w->cases);
    if (w->file >= 0) H5Fclose(w->file);
    remove(w->tmp);
    free(w);
}

sq_code sq_site_writer_open(const char *path, const sq_site_info *info, sq_site_writer **out,
                            sq_status *st) {
    quiet_hdf5();
    *out = NULL;
    sq_site_writer *w = calloc(1, sizeof *w);
    if (!w) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    w->file = w->cases = -1;
    snprintf(w->path, sizeof w->path, "%s", path);
    if (sq_tmp_path(path, w->tmp, sizeof w->tmp, st) != SQ_OK) {
        free(w);
        return st->code;
    }
    w->info = *info;
    w->info.preprocessing = NULL;
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        sq_site_writer_abort(w);
        return sq_fail(st, SQ_ERR_IO, "%s: cannot create HDF5 file %s", path, w->tmp);
    }
    int v = SQ_SITE_FORMAT_VERSION;
    int e = 0;
    e |= attr_str(w->file, "format", SQ_SITE_FORMAT);
    e |= attr_num(w->file, "format_version", H5T_NATIVE_INT, H5T_STD_I32LE, 0, &v);
    e |= attr_str(w->file, "site", info->site);
    e |= attr_num(w->file, "shape", H5T_NATIVE_INT, H5T_STD_I32LE, 3, info->shape);
    e |= attr_num(w->file, "spacing", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 3, info->spacing);
    e |= attr_str(w->file, "axes", "zyx");
    e |= attr_str(w->file, "preprocessing", info->preprocessing ? info->preprocessing : "{}");
    w->cases = H5Gcreate2(w->file, "cases", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (e || w->cases < 0) {
        sq_site_writer_abort(w);
        return sq_fail(st, SQ_ERR_IO, "%s: cannot write the root attributes", path);
    }
    *out = w;
    return SQ_OK;
}

static int write_volume(hid_t loc, const char *name, const sq_volume *v) {
    hsize_t dims[3] = {(hsize_t)v->d, (hsize_t)v->h, (hsize_t)v->w};
    hid_t sp = H5Screate_simple(3, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, dims);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 4);
    hid_t ft = v->dtype == SQ_F32 ? H5T_IEEE_F32LE : H5T_STD_U8LE;
    hid_t mt = v->dtype == SQ_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
    hid_t ds = H5Dcreate2(loc, name, ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t e = ds < 0 ? -1 : H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->data);
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

static int valid_name(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (; *s; s++)
        if (*s == '/') return 0;
    return 1;
}

/* clinical_<key> attributes from a flat JSON object of numbers/strings (best effort). */
#include <cjson/cJSON.h>
static int write_clinical(hid_t g, const char *json) {
    cJSON *o = cJSON_Parse(json);
    if (!o) return -1;
    int e = 0;
    for (cJSON *it = o->child; it; it = it->next) {
        char name[256];
        snprintf(name, sizeof name, "clinical_%s", it->string);
        if (cJSON_IsNumber(it))
            e |= attr_num(g, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 0, &it->valuedouble);
        else if (cJSON_IsString(it))
            e |= attr_str(g, name, it->valuestring);
    }
    cJSON_Delete(o);
    return e;
}

sq_code sq_site_writer_add(sq_site_writer *w, const sq_case *c, sq_status *st) {
    const int *s = w->info.shape;
    if (!valid_name(c->id))
        return sq_fail(st, SQ_ERR_FORMAT, "case id '%s': expected a non-empty name without '/'",
                       c->id);
    const sq_volume *vols[2] = {&c->image, &c->gt};
    for (int i = 0; i < 2; i++)
        if (vols[i]->d != s[0] || vols[i]->h != s[1] || vols[i]->w != s[2])
            return sq_fail(st, SQ_ERR_INTERNAL, "case %s: volume shape differs from the site's",
                           c->id);
    hid_t g = H5Gcreate2(w->cases, c->id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: case '%s' cannot be created (duplicate id?)",
                       w->path, c->id);
    int e = 0;
    e |= attr_str(g, "patient", c->patient[0] ? c->patient : c->id);
    e |= attr_str(g, "source", c->source ? c->source : "{}");
    e |= attr_str(g, "clinical", c->clinical ? c->clinical : "{}");
    if (c->clinical) e |= write_clinical(g, c->clinical);
    e |= write_volume(g, "image", &c->image);
    e |= write_volume(g, "gt", &c->gt);
    hid_t cg = H5Gcreate2(g, "contours", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (cg < 0) e = -1;
    for (int i = 0; cg >= 0 && i < c->ncontours && !e; i++) {
        const sq_contour *k = &c->contours[i];
        if (!valid_name(k->name)) {
            H5Gclose(cg);
            H5Gclose(g);
            return sq_fail(st, SQ_ERR_FORMAT, "case %s: contour name '%s' is not valid", c->id,
                           k->name);
        }
        e |= write_volume(cg, k->name, &k->mask);
        hid_t ds = H5Dopen2(cg, k->name, H5P_DEFAULT);
        if (ds < 0) {
            e = -1;
            break;
        }
        e |= attr_str(ds, "method", k->method);
        e |= attr_str(ds, "params", k->params ? k->params : "{}");
        e |= attr_num(ds, "dice", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 0, &k->dice);
        H5Dclose(ds);
    }
    if (cg >= 0) H5Gclose(cg);
    H5Gclose(g);
    if (e) return sq_fail(st, SQ_ERR_IO, "%s: writing case '%s' failed", w->path, c->id);
    w->n_cases++;
    return SQ_OK;
}

sq_code sq_site_writer_commit(sq_site_writer *w, sq_status *st) {
    int e = attr_num(w->file, "n_cases", H5T_NATIVE_INT, H5T_STD_I32LE, 0, &w->n_cases);
    H5Gclose(w->cases);
    w->cases = -1;
    if (H5Fclose(w->file) < 0) e = -1;
    w->file = -1;
    if (e) {
        sq_fail(st, SQ_ERR_IO, "%s: closing the HDF5 file failed", w->path);
        sq_site_writer_abort(w);
        return SQ_ERR_IO;
    }
    sq_code rc = sq_commit_file(w->tmp, w->path, st);
    if (rc != SQ_OK) remove(w->tmp);
    free(w);
    return rc;
}

/* ---------------- reader ---------------- */

struct sq_site {
    char path[SQ_PATH_MAX];
    hid_t file;
    sq_site_info info;
    int n;
    sq_case *cases; /* metadata only */
};

const sq_site_info *sq_site_get_info(const sq_site *s) {
    return &s->info;
}
const char *sq_site_path(const sq_site *s) {
    return s->path;
}
int sq_site_ncases(const sq_site *s) {
    return s->n;
}
const sq_case *sq_site_case_meta(const sq_site *s, int i) {
    return i >= 0 && i < s->n ? &s->cases[i] : NULL;
}

void sq_site_close(sq_site *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++)
        sq_case_free(&s->cases[i]);
    free(s->cases);
    free(s->info.preprocessing);
    if (s->file >= 0) H5Fclose(s->file);
    free(s);
}

typedef struct name_list {
    int n, cap;
    char **names;
} name_list;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g, (void)info;
    name_list *l = data;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **nn = realloc(l->names, sizeof *nn * (size_t)cap);
        if (!nn) return -1;
        l->names = nn, l->cap = cap;
    }
    l->names[l->n] = xstrdup(name);
    if (!l->names[l->n]) return -1;
    l->n++;
    return 0;
}

static void free_names(name_list *l) {
    for (int i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
}

/* Check a dataset's dtype class/size and shape. */
static int check_dataset(hid_t loc, const char *name, H5T_class_t cls, size_t size,
                         const int shape[3]) {
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return -1;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
    hsize_t dims[3] = {0, 0, 0};
    int ok =
        H5Tget_class(t) == cls && H5Tget_size(t) == size && H5Sget_simple_extent_ndims(sp) == 3;
    if (ok) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        ok = dims[0] == (hsize_t)shape[0] && dims[1] == (hsize_t)shape[1] &&
             dims[2] == (hsize_t)shape[2];
    }
    H5Sclose(sp);
    H5Tclose(t);
    H5Dclose(ds);
    return ok ? 0 : -2;
}

static sq_code load_case_meta(sq_site *s, hid_t cases, const char *id, sq_case *c, sq_status *st) {
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    hid_t g = H5Gopen2(cases, id, H5P_DEFAULT);
    if (g < 0) return sq_fail(st, SQ_ERR_FORMAT, "%s: /cases/%s is not a group", s->path, id);
    sq_code rc = SQ_OK;
    char *p = sq_h5_attr_read_str(g, "patient");
    snprintf(c->patient, sizeof c->patient, "%s", p ? p : id);
    free(p);
    c->clinical = sq_h5_attr_read_str(g, "clinical");
    c->source = sq_h5_attr_read_str(g, "source");
    const char *what[2] = {"image", "gt"};
    H5T_class_t cls[2] = {H5T_FLOAT, H5T_INTEGER};
    size_t sz[2] = {4, 1};
    for (int i = 0; i < 2 && !rc; i++) {
        int e = check_dataset(g, what[i], cls[i], sz[i], s->info.shape);
        if (e)
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s: /cases/%s/%s %s, expected %s [%d][%d][%d]",
                         s->path, id, what[i], e == -1 ? "is missing" : "has the wrong type/shape",
                         i ? "uint8" : "float32", s->info.shape[0], s->info.shape[1],
                         s->info.shape[2]);
    }
    if (!rc && H5Lexists(g, "contours", H5P_DEFAULT) > 0) {
        hid_t cg = H5Gopen2(g, "contours", H5P_DEFAULT);
        name_list l = {0, 0, NULL};
        if (cg < 0 || H5Literate(cg, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &l) < 0)
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s: /cases/%s/contours is not readable", s->path, id);
        for (int i = 0; i < l.n && !rc; i++) {
            if (check_dataset(cg, l.names[i], H5T_INTEGER, 1, s->info.shape)) {
                rc = sq_fail(st, SQ_ERR_FORMAT,
                             "%s: /cases/%s/contours/%s: expected uint8 [%d][%d][%d]", s->path, id,
                             l.names[i], s->info.shape[0], s->info.shape[1], s->info.shape[2]);
                break;
            }
            hid_t ds = H5Dopen2(cg, l.names[i], H5P_DEFAULT);
            double dice = -1;
            char *method = sq_h5_attr_read_str(ds, "method");
            char *params = sq_h5_attr_read_str(ds, "params");
            int de = read_attr_doubles(ds, "dice", &dice, 1);
            H5Dclose(ds);
            if (de || !method || !(dice >= 0 && dice <= 1)) {
                free(method);
                free(params);
                rc = sq_fail(st, SQ_ERR_FORMAT,
                             "%s: /cases/%s/contours/%s: expected attrs method (string) and dice "
                             "(number in [0,1])",
                             s->path, id, l.names[i]);
                break;
            }
            rc = sq_case_add_contour(c, l.names[i], method, params, dice, NULL, st);
            free(method);
        }
        free_names(&l);
        if (cg >= 0) H5Gclose(cg);
    }
    H5Gclose(g);
    return rc;
}

sq_code sq_site_open(const char *path, sq_site **out, sq_status *st) {
    quiet_hdf5();
    *out = NULL;
    if (!sq_file_exists(path)) return sq_fail(st, SQ_ERR_IO, "%s: no such file", path);
    if (H5Fis_hdf5(path) <= 0) return sq_fail(st, SQ_ERR_FORMAT, "%s: not an HDF5 file", path);
    sq_site *s = calloc(1, sizeof *s);
    if (!s) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    snprintf(s->path, sizeof s->path, "%s", path);
    s->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    sq_code rc = SQ_OK;
    hid_t cases = -1;
    name_list l = {0, 0, NULL};
    if (s->file < 0) {
        rc = sq_fail(st, SQ_ERR_IO, "%s: cannot open the HDF5 file", path);
        goto fail;
    }
    char *fmt = sq_h5_attr_read_str(s->file, "format");
    int fmt_ok = fmt && !strcmp(fmt, SQ_SITE_FORMAT);
    free(fmt);
    if (!fmt_ok) {
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: root attribute format: expected \"%s\"", path,
                     SQ_SITE_FORMAT);
        goto fail;
    }
    double ver = 0;
    if (read_attr_doubles(s->file, "format_version", &ver, 1) || ver != SQ_SITE_FORMAT_VERSION) {
        rc = sq_fail(st, SQ_ERR_FORMAT,
                     "%s: root attribute format_version is %g, expected %d (this segqa reads "
                     "version %d only)",
                     path, ver, SQ_SITE_FORMAT_VERSION, SQ_SITE_FORMAT_VERSION);
        goto fail;
    }
    double shape[3], spacing[3];
    if (read_attr_doubles(s->file, "shape", shape, 3) ||
        read_attr_doubles(s->file, "spacing", spacing, 3) || shape[0] < 1 || shape[1] < 1 ||
        shape[2] < 1 || shape[0] > 4096 || shape[1] > 4096 || shape[2] > 4096) {
        rc = sq_fail(st, SQ_ERR_FORMAT,
                     "%s: root attributes shape (3 positive integers) and spacing (3 numbers) "
                     "expected",
                     path);
        goto fail;
    }
    for (int a = 0; a < 3; a++)
        s->info.shape[a] = (int)shape[a], s->info.spacing[a] = spacing[a];
    char *site = sq_h5_attr_read_str(s->file, "site");
    snprintf(s->info.site, sizeof s->info.site, "%s", site ? site : "");
    free(site);
    s->info.preprocessing = sq_h5_attr_read_str(s->file, "preprocessing");
    if (H5Lexists(s->file, "cases", H5P_DEFAULT) <= 0 ||
        (cases = H5Gopen2(s->file, "cases", H5P_DEFAULT)) < 0) {
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: group /cases expected", path);
        goto fail;
    }
    if (H5Literate(cases, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &l) < 0) {
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: /cases cannot be listed", path);
        goto fail;
    }
    s->cases = calloc((size_t)l.n + 1, sizeof *s->cases);
    if (!s->cases) {
        rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < l.n; i++) {
        rc = load_case_meta(s, cases, l.names[i], &s->cases[i], st);
        s->n = i + 1;
        if (rc) goto fail;
    }
    s->info.n_cases = s->n;
    free_names(&l);
    H5Gclose(cases);
    *out = s;
    return SQ_OK;
fail:
    free_names(&l);
    if (cases >= 0) H5Gclose(cases);
    sq_site_close(s);
    return rc;
}

sq_code sq_site_read_volume(sq_site *s, int i, const char *what, sq_volume *out, sq_status *st) {
    memset(out, 0, sizeof *out);
    if (i < 0 || i >= s->n) return sq_fail(st, SQ_ERR_RANGE, "%s: no case %d", s->path, i);
    int is_img = !strcmp(what, "image");
    char path[512];
    snprintf(path, sizeof path, "cases/%s/%s", s->cases[i].id, what);
    SQ_TRY(sq_volume_alloc(out, is_img ? SQ_F32 : SQ_U8, s->info.shape[0], s->info.shape[1],
                           s->info.shape[2], st));
    out->spacing[0] = s->info.spacing[0], out->spacing[1] = s->info.spacing[1],
    out->spacing[2] = s->info.spacing[2];
    quiet_hdf5(); /* HDF5's error printing is per thread: this may be a loader thread */
    hid_t ds = H5Dopen2(s->file, path, H5P_DEFAULT);
    herr_t e = ds < 0 ? -1
                      : H5Dread(ds, is_img ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL,
                                H5P_DEFAULT, out->data);
    if (ds >= 0) H5Dclose(ds);
    if (e < 0) {
        sq_volume_free(out);
        return sq_fail(st, SQ_ERR_IO, "%s: /%s could not be read", s->path, path);
    }
    return SQ_OK;
}

sq_code sq_site_read_case(sq_site *s, int i, sq_case *c, sq_status *st) {
    memset(c, 0, sizeof *c);
    const sq_case *m = sq_site_case_meta(s, i);
    if (!m) return sq_fail(st, SQ_ERR_RANGE, "%s: no case %d", s->path, i);
    snprintf(c->id, sizeof c->id, "%s", m->id);
    snprintf(c->patient, sizeof c->patient, "%s", m->patient);
    c->clinical = xstrdup(m->clinical);
    c->source = xstrdup(m->source);
    sq_code rc = sq_site_read_volume(s, i, "image", &c->image, st);
    if (!rc) rc = sq_site_read_volume(s, i, "gt", &c->gt, st);
    for (int k = 0; !rc && k < m->ncontours; k++) {
        char what[SQ_NAME_MAX + 16];
        snprintf(what, sizeof what, "contours/%s", m->contours[k].name);
        sq_volume v;
        rc = sq_site_read_volume(s, i, what, &v, st);
        if (!rc)
            rc = sq_case_add_contour(c, m->contours[k].name, m->contours[k].method,
                                     xstrdup(m->contours[k].params), m->contours[k].dice, &v, st);
    }
    if (rc) sq_case_free(c);
    return rc;
}
