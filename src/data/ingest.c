/* ingest.c — builds a site file from NIfTI files (see ingest.h). */
#include "data/ingest.h"

#include "core/fileio.h"
#include "core/log.h"
#include "core/timer.h"
#include "data/nifti.h"
#include "data/site.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct in_contour {
    char name[SQ_NAME_MAX];
    char path[SQ_PATH_MAX];
} in_contour;

typedef struct in_case {
    char id[SQ_NAME_MAX];
    char patient[SQ_NAME_MAX];
    char image[SQ_PATH_MAX];
    char gt[SQ_PATH_MAX];
    int nc;
    in_contour *contours;
} in_case;

typedef struct case_list {
    int n, cap;
    in_case *v;
} case_list;

static void free_cases(case_list *l) {
    for (int i = 0; i < l->n; i++)
        free(l->v[i].contours);
    free(l->v);
}

static in_case *push_case(case_list *l) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        in_case *nv = realloc(l->v, sizeof *nv * (size_t)cap);
        if (!nv) return NULL;
        l->v = nv, l->cap = cap;
    }
    in_case *c = &l->v[l->n++];
    memset(c, 0, sizeof *c);
    return c;
}

/* 0 ok, -1 out of memory, -2 name longer than SQ_NAME_MAX - 1 */
static int push_contour(in_case *c, const char *name, const char *path) {
    if (strlen(name) >= SQ_NAME_MAX) return -2;
    in_contour *nc = realloc(c->contours, sizeof *nc * (size_t)(c->nc + 1));
    if (!nc) return -1;
    c->contours = nc;
    const size_t k = strlen(name);
    memcpy(nc[c->nc].name, name, k);
    nc[c->nc].name[k] = '\0';
    snprintf(nc[c->nc].path, SQ_PATH_MAX, "%s", path);
    c->nc++;
    return 0;
}

/* a + "/" + b into out; 0 when it does not fit (the caller reports it). */
static int join(char *out, size_t n, const char *a, const char *b) {
    int k = snprintf(out, n, "%s/%s", a, b);
    return k >= 0 && (size_t)k < n;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* "x.nii.gz" -> "x" into id; 0 when the name is not a NIfTI file name. */
static int nifti_stem(const char *name, char *id, size_t n) {
    size_t len = strlen(name);
    size_t k = 0;
    if (len > 7 && !strcmp(name + len - 7, ".nii.gz"))
        k = len - 7;
    else if (len > 4 && !strcmp(name + len - 4, ".nii"))
        k = len - 4;
    if (!k || name[0] == '.') return 0;
    snprintf(id, n, "%.*s", (int)k, name);
    return 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted NIfTI file names of a folder (caller frees each and the array). */
static sq_code list_nifti(const char *dir, char ***names, int *n, sq_status *st) {
    *names = NULL, *n = 0;
    DIR *d = opendir(dir);
    if (!d) return sq_fail(st, SQ_ERR_IO, "%s: cannot open folder", dir);
    int cap = 0;
    struct dirent *e;
    char stem[SQ_NAME_MAX];
    while ((e = readdir(d))) {
        if (!nifti_stem(e->d_name, stem, sizeof stem)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            char **nn = realloc(*names, sizeof *nn * (size_t)cap);
            if (!nn) break;
            *names = nn;
        }
        (*names)[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n) qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return SQ_OK;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static sq_code scan_folder(const char *dir, case_list *cl, sq_status *st) {
    char images[SQ_PATH_MAX], labels[SQ_PATH_MAX], contours[SQ_PATH_MAX];
    snprintf(images, sizeof images, "%s/images", dir);
    snprintf(labels, sizeof labels, "%s/labels", dir);
    snprintf(contours, sizeof contours, "%s/contours", dir);
    if (!is_dir(images) || !is_dir(labels))
        return sq_fail(st, SQ_ERR_IO, "%s: expected sub-folders images/ and labels/", dir);
    char **names;
    int n;
    SQ_TRY(list_nifti(images, &names, &n, st));
    if (n == 0) {
        free(names);
        return sq_fail(st, SQ_ERR_FORMAT, "%s: no .nii or .nii.gz files", images);
    }
    /* contour sets: files directly in contours/ ("given") and sub-folders (by their name) */
    char sets[64][SQ_NAME_MAX];
    char setdirs[64][SQ_PATH_MAX];
    int nsets = 0;
    if (is_dir(contours)) {
        snprintf(sets[nsets], SQ_NAME_MAX, "given");
        snprintf(setdirs[nsets++], SQ_PATH_MAX, "%s", contours);
        DIR *d = opendir(contours);
        struct dirent *e;
        while (d && (e = readdir(d)) && nsets < 64) {
            char p[SQ_PATH_MAX];
            if (e->d_name[0] == '.') continue;
            if (!join(p, sizeof p, contours, e->d_name) || !is_dir(p)) continue;
            if (strlen(e->d_name) >= SQ_NAME_MAX) continue;
            memcpy(sets[nsets], e->d_name, strlen(e->d_name) + 1);
            snprintf(setdirs[nsets++], SQ_PATH_MAX, "%s", p);
        }
        if (d) closedir(d);
    }
    sq_code rc = SQ_OK;
    for (int i = 0; i < n; i++) {
        in_case *c = push_case(cl);
        if (!c) {
            rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
            break;
        }
        nifti_stem(names[i], c->id, sizeof c->id);
        snprintf(c->patient, sizeof c->patient, "%s", c->id);
        if (!join(c->image, sizeof c->image, images, names[i]) ||
            !join(c->gt, sizeof c->gt, labels, names[i])) {
            rc = sq_fail(st, SQ_ERR_RANGE, "%s: path too long", images);
            break;
        }
        if (!sq_file_exists(c->gt)) {
            rc = sq_fail(st, SQ_ERR_IO, "%s: missing label file for image %s", c->gt, c->image);
            break;
        }
        for (int s = 0; s < nsets; s++) {
            char p[SQ_PATH_MAX];
            int pc = 0;
            if (join(p, sizeof p, setdirs[s], names[i]) && sq_file_exists(p) && !is_dir(p) &&
                (pc = push_contour(c, sets[s], p)) != 0) {
                rc = pc == -2 ? sq_fail(st, SQ_ERR_RANGE,
                                        "%s: contour set name '%s' longer than %d characters",
                                        setdirs[s], sets[s], SQ_NAME_MAX - 1)
                              : sq_fail(st, SQ_ERR_NOMEM, "out of memory");
                break;
            }
        }
    }
    free_list(names, n);
    return rc;
}

/* ---- CSV ---- */

/* Split a line in place on commas (no quoting); trims spaces and CR. Returns the field count. */
static int split_csv(char *line, char **f, int maxf) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *c = strchr(p, ',');
        if (c) *c = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        char *e = p + strlen(p);
        while (e > p && (e[-1] == ' ' || e[-1] == '\r' || e[-1] == '\n' || e[-1] == '\t'))
            *--e = 0;
        if (n < maxf) f[n++] = p;
        if (!c) break;
        p = c + 1;
    }
    return n;
}

static int col_index(char **hdr, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(hdr[i], name)) return i;
    return -1;
}

static void dirname_of(const char *path, char *out, size_t n) {
    const char *s = strrchr(path, '/');
    if (!s)
        snprintf(out, n, ".");
    else
        snprintf(out, n, "%.*s", (int)(s - path), path);
}

static void resolve(const char *base, const char *p, char *out, size_t n) {
    if (p[0] == '/')
        snprintf(out, n, "%s", p);
    else if (!join(out, n, base, p))
        out[0] = '\0';
}

/* Read a CSV whole and check it is UTF-8 text; *skip is the length of a byte-order mark. */
static sq_code read_csv_text(const char *csv, char **text, size_t *skip, sq_status *st) {
    size_t len = 0;
    SQ_TRY(sq_read_file(csv, text, &len, st));
    sq_code rc = sq_text_check(csv, *text, len, skip, st);
    if (rc != SQ_OK) {
        free(*text);
        *text = NULL;
    }
    return rc;
}

/* Index of an earlier case with this id, or -1. */
static int find_case(const case_list *cl, int before, const char *id) {
    for (int i = 0; i < before; i++)
        if (!strcmp(cl->v[i].id, id)) return i;
    return -1;
}

enum { MAXF = 256 };

static sq_code scan_manifest(const char *csv, case_list *cl, char *site, size_t site_n,
                             sq_status *st) {
    char *text = NULL;
    size_t skip = 0;
    SQ_TRY(read_csv_text(csv, &text, &skip, st));
    char base[SQ_PATH_MAX];
    dirname_of(csv, base, sizeof base);
    char *save = NULL;
    char *line = strtok_r(text + skip, "\n", &save);
    char *hdr[MAXF];
    int nh = line ? split_csv(line, hdr, MAXF) : 0;
    int ic = col_index(hdr, nh, "case"), ii = col_index(hdr, nh, "image"),
        ig = col_index(hdr, nh, "gt"), ip = col_index(hdr, nh, "patient"),
        is = col_index(hdr, nh, "site");
    sq_code rc = SQ_OK;
    if (ic < 0 || ii < 0 || ig < 0) {
        rc = sq_fail(st, SQ_ERR_FORMAT,
                     "%s: header must have columns case, image, gt "
                     "(and optionally patient, site, contour, contour_<name>)",
                     csv);
        goto done;
    }
    int lineno = 1;
    while ((line = strtok_r(NULL, "\n", &save))) {
        lineno++;
        char *f[MAXF];
        if (!*line || *line == '\r') continue;
        int nf = split_csv(line, f, MAXF);
        if (nf != nh) {
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s:%d: %d fields, expected %d as in the header", csv,
                         lineno, nf, nh);
            goto done;
        }
        in_case *c = push_case(cl);
        if (!c) {
            rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
            goto done;
        }
        snprintf(c->id, sizeof c->id, "%s", f[ic]);
        if (!*c->id || find_case(cl, cl->n - 1, c->id) >= 0) {
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s:%d: column 'case': %s%s%s, expected unique ids",
                         csv, lineno, *c->id ? "case id '" : "empty case id", c->id,
                         *c->id ? "' repeats an earlier row" : "");
            goto done;
        }
        snprintf(c->patient, sizeof c->patient, "%s", ip >= 0 && *f[ip] ? f[ip] : f[ic]);
        if (is >= 0 && *f[is] && !*site) snprintf(site, site_n, "%s", f[is]);
        resolve(base, f[ii], c->image, sizeof c->image);
        resolve(base, f[ig], c->gt, sizeof c->gt);
        const char *need[2] = {c->image, c->gt};
        for (int k = 0; k < 2; k++)
            if (!sq_file_exists(need[k])) {
                rc = sq_fail(st, SQ_ERR_IO, "%s:%d: %s: no such file (%s of case %s)", csv, lineno,
                             need[k], k ? "gt" : "image", c->id);
                goto done;
            }
        for (int k = 0; k < nh; k++) {
            const char *name = NULL;
            if (!strcmp(hdr[k], "contour"))
                name = "given";
            else if (!strncmp(hdr[k], "contour_", 8))
                name = hdr[k] + 8;
            if (!name || !*f[k]) continue;
            char p[SQ_PATH_MAX];
            resolve(base, f[k], p, sizeof p);
            if (!sq_file_exists(p)) {
                rc = sq_fail(st, SQ_ERR_IO, "%s:%d: %s: no such file (contour %s of case %s)", csv,
                             lineno, p, name, c->id);
                goto done;
            }
            const int pc = push_contour(c, name, p);
            if (pc != 0) {
                rc = pc == -2
                         ? sq_fail(st, SQ_ERR_FORMAT,
                                   "%s:%d: column '%s': contour name longer than %d characters",
                                   csv, lineno, hdr[k], SQ_NAME_MAX - 1)
                         : sq_fail(st, SQ_ERR_NOMEM, "out of memory");
                goto done;
            }
        }
    }
    if (cl->n == 0) rc = sq_fail(st, SQ_ERR_FORMAT, "%s: no cases listed", csv);
done:
    free(text);
    return rc;
}

/* Clinical CSV -> cJSON object {key: {col: value}} keyed by case or patient. */
static sq_code read_clinical(const char *csv, cJSON **out, int *by_case, sq_status *st) {
    char *text = NULL;
    size_t skip = 0;
    SQ_TRY(read_csv_text(csv, &text, &skip, st));
    char *save = NULL;
    char *line = strtok_r(text + skip, "\n", &save);
    char *hdr[MAXF];
    int nh = line ? split_csv(line, hdr, MAXF) : 0;
    int key = col_index(hdr, nh, "case");
    *by_case = key >= 0;
    if (key < 0) key = col_index(hdr, nh, "patient");
    if (key < 0) {
        free(text);
        return sq_fail(st, SQ_ERR_FORMAT, "%s: header needs a column 'case' or 'patient'", csv);
    }
    cJSON *root = cJSON_CreateObject();
    int lineno = 1;
    while ((line = strtok_r(NULL, "\n", &save))) {
        lineno++;
        char *f[MAXF];
        if (!*line || *line == '\r') continue;
        int nf = split_csv(line, f, MAXF);
        if (nf != nh) {
            cJSON_Delete(root);
            free(text);
            return sq_fail(st, SQ_ERR_FORMAT, "%s:%d: %d fields, expected %d", csv, lineno, nf, nh);
        }
        if (!*f[key] || cJSON_GetObjectItemCaseSensitive(root, f[key])) {
            cJSON_Delete(root);
            sq_fail(st, SQ_ERR_FORMAT, "%s:%d: column '%s': %s '%s' is %s, expected unique ids",
                    csv, lineno, hdr[key], hdr[key], f[key], *f[key] ? "repeated" : "empty");
            free(text);
            return st ? st->code : SQ_ERR_FORMAT;
        }
        cJSON *row = cJSON_CreateObject();
        for (int k = 0; k < nh; k++) {
            if (k == key || !*f[k]) continue;
            char *end;
            double v = strtod(f[k], &end);
            if (*end == '\0')
                cJSON_AddNumberToObject(row, hdr[k], v);
            else
                cJSON_AddStringToObject(row, hdr[k], f[k]);
        }
        cJSON_AddItemToObject(root, f[key], row);
    }
    free(text);
    *out = root;
    return SQ_OK;
}

static char *json_source(const in_case *c, const sq_volume *img, double plo, double phi) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "image", c->image);
    cJSON_AddStringToObject(o, "gt", c->gt);
    int shp[3] = {img->d, img->h, img->w};
    cJSON_AddItemToObject(o, "shape_zyx", cJSON_CreateIntArray(shp, 3));
    cJSON_AddItemToObject(o, "spacing_zyx", cJSON_CreateDoubleArray(img->spacing, 3));
    cJSON_AddNumberToObject(o, "norm_p_lo", plo);
    cJSON_AddNumberToObject(o, "norm_p_hi", phi);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static sq_code ingest_case(const sq_ingest_opts *o, const in_case *ic, cJSON *clin, int by_case,
                           sq_site_writer *w, double spacing_out[3], int *ncont, sq_status *st) {
    sq_volume img = {0}, gt = {0}, cimg = {0}, cgt = {0};
    sq_case c;
    memset(&c, 0, sizeof c);
    sq_code rc = sq_nifti_read_image(ic->image, &img, st);
    if (!rc) rc = sq_nifti_read_mask(ic->gt, &gt, st);
    if (!rc) rc = sq_nifti_check_pair(&img, ic->image, &gt, ic->gt, st);
    if (rc) goto done;
    sq_label_set_apply(&o->labels, &gt);
    if (sq_mask_count(&gt) == 0) {
        rc = sq_fail(st, SQ_ERR_FORMAT,
                     "%s: ground truth is empty (no voxel with the selected "
                     "labels), expected a non-empty mask",
                     ic->gt);
        goto done;
    }
    rc = sq_volume_crop_pad(&img, o->shape[0], o->shape[1], o->shape[2], &cimg, st);
    if (!rc) rc = sq_volume_crop_pad(&gt, o->shape[0], o->shape[1], o->shape[2], &cgt, st);
    if (rc) goto done;
    if (sq_mask_count(&cgt) == 0) {
        rc = sq_fail(st, SQ_ERR_FORMAT,
                     "%s: ground truth is empty after the centre crop to "
                     "%dx%dx%d (DxHxW); expected a larger --shape",
                     ic->gt, o->shape[0], o->shape[1], o->shape[2]);
        goto done;
    }
    double plo, phi;
    rc = sq_volume_normalise_percentile(&cimg, o->lo_pct, o->hi_pct, &plo, &phi, st);
    if (rc) goto done;
    memcpy(spacing_out, img.spacing, sizeof img.spacing);
    snprintf(c.id, sizeof c.id, "%s", ic->id);
    snprintf(c.patient, sizeof c.patient, "%s", ic->patient);
    c.source = json_source(ic, &img, plo, phi);
    if (clin) {
        cJSON *row = cJSON_GetObjectItemCaseSensitive(clin, by_case ? ic->id : ic->patient);
        if (row) c.clinical = cJSON_PrintUnformatted(row);
    }
    c.image = cimg, c.gt = cgt;
    memset(&cimg, 0, sizeof cimg), memset(&cgt, 0, sizeof cgt);
    for (int k = 0; k < ic->nc && !rc; k++) {
        sq_volume m = {0}, cm = {0};
        rc = sq_nifti_read_mask(ic->contours[k].path, &m, st);
        if (!rc) rc = sq_nifti_check_pair(&img, ic->image, &m, ic->contours[k].path, st);
        if (!rc) {
            sq_label_set_apply(&o->labels, &m);
            rc = sq_volume_crop_pad(&m, o->shape[0], o->shape[1], o->shape[2], &cm, st);
        }
        sq_volume_free(&m);
        if (rc) break;
        double dice = sq_dice_u8(sq_volume_u8(&cm), sq_volume_u8(&c.gt), sq_volume_numel(&cm));
        cJSON *pj = cJSON_CreateObject();
        cJSON_AddStringToObject(pj, "file", ic->contours[k].path);
        char *params = cJSON_PrintUnformatted(pj);
        cJSON_Delete(pj);
        rc = sq_case_add_contour(&c, ic->contours[k].name, "given", params, dice, &cm, st);
    }
    if (!rc) rc = sq_site_writer_add(w, &c, st);
    if (!rc) *ncont += c.ncontours;
done:
    sq_volume_free(&img), sq_volume_free(&gt), sq_volume_free(&cimg), sq_volume_free(&cgt);
    sq_case_free(&c);
    return rc;
}

static void base_name(const char *path, char *out, size_t n) {
    char tmp[SQ_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/')
        tmp[--l] = 0;
    const char *s = strrchr(tmp, '/');
    s = s ? s + 1 : tmp;
    snprintf(out, n, "%s", s);
    char *dot = strrchr(out, '.');
    if (dot && !strcmp(dot, ".csv")) *dot = 0;
}

sq_code sq_ingest(const sq_ingest_opts *o, sq_ingest_stats *stats, sq_status *st) {
    double t0 = sq_now();
    case_list cl = {0, 0, NULL};
    cJSON *clin = NULL;
    int by_case = 0;
    char site[SQ_NAME_MAX] = "";
    if (o->site && *o->site) snprintf(site, sizeof site, "%s", o->site);
    sq_code rc;
    if (is_dir(o->input))
        rc = scan_folder(o->input, &cl, st);
    else if (sq_file_exists(o->input))
        rc = scan_manifest(o->input, &cl, site, sizeof site, st);
    else
        rc = sq_fail(st, SQ_ERR_IO, "%s: no such folder or manifest", o->input);
    if (!rc && o->clinical && *o->clinical) rc = read_clinical(o->clinical, &clin, &by_case, st);
    if (rc) goto done;
    if (!*site) base_name(o->input, site, sizeof site);
    int n = o->limit > 0 && o->limit < cl.n ? o->limit : cl.n;
    sq_site_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.site, sizeof info.site, "%s", site);
    memcpy(info.shape, o->shape, sizeof info.shape);
    info.spacing[0] = info.spacing[1] = info.spacing[2] = 1.0;
    /* spacing of the first case goes in the root attribute: peek at it */
    {
        sq_volume v;
        rc = sq_nifti_read_image(cl.v[0].image, &v, st);
        if (rc) goto done;
        memcpy(info.spacing, v.spacing, sizeof info.spacing);
        sq_volume_free(&v);
    }
    cJSON *pp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "crop_pad", "centre crop / zero pad to shape (D,H,W = z,y,x)");
    cJSON_AddItemToObject(pp, "shape_zyx", cJSON_CreateIntArray(o->shape, 3));
    cJSON_AddStringToObject(pp, "crop", "center"); /* the policy predict reads (docs/predict.md) */
    cJSON_AddStringToObject(pp, "normalisation", "percentile linear map to [0,255]");
    cJSON_AddNumberToObject(pp, "norm_lo_percentile", o->lo_pct);
    cJSON_AddNumberToObject(pp, "norm_hi_percentile", o->hi_pct);
    if (o->labels.all)
        cJSON_AddStringToObject(pp, "gt_labels", "all non-zero");
    else
        cJSON_AddItemToObject(pp, "gt_labels", cJSON_CreateIntArray(o->labels.values, o->labels.n));
    cJSON_AddStringToObject(pp, "input", o->input);
    info.preprocessing = cJSON_PrintUnformatted(pp);
    cJSON_Delete(pp);
    sq_site_writer *w = NULL;
    rc = sq_site_writer_open(o->output, &info, &w, st);
    free(info.preprocessing);
    if (rc) goto done;
    sq_progress p;
    if (o->progress) sq_progress_begin(&p, "ingest", n);
    int ncont = 0;
    for (int i = 0; i < n && !rc; i++) {
        double sp[3] = {info.spacing[0], info.spacing[1], info.spacing[2]};
        rc = ingest_case(o, &cl.v[i], clin, by_case, w, sp, &ncont, st);
        if (!rc &&
            (sp[0] != info.spacing[0] || sp[1] != info.spacing[1] || sp[2] != info.spacing[2]))
            sq_warn("%s: spacing %gx%gx%g differs from the site's %gx%gx%g (z,y,x mm); kept "
                    "in the case's source attribute",
                    cl.v[i].image, sp[0], sp[1], sp[2], info.spacing[0], info.spacing[1],
                    info.spacing[2]);
        if (o->progress) sq_progress_update(&p, i + 1, NULL);
    }
    if (rc) {
        sq_site_writer_abort(w);
        goto done;
    }
    rc = sq_site_writer_commit(w, st);
    if (o->progress) sq_progress_end(&p, NULL);
    if (stats) {
        stats->n_cases = n;
        stats->n_contours = ncont;
        stats->seconds = sq_now() - t0;
    }
done:
    free_cases(&cl);
    cJSON_Delete(clin);
    return rc;
}
