/* contours.c — atlas-transfer and perturbed-GT automatic contours (see contours.h). */
#include "data/contours.h"

#include "core/log.h"
#include "core/timer.h"
#include "data/site.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1D squared distance transform (Felzenszwalb & Huttenlocher) on samples spaced `s` apart. */
static void edt1d(const float *f, int n, float s, float *d, int *v, float *z) {
    int k = 0;
    v[0] = 0;
    z[0] = -FLT_MAX, z[1] = FLT_MAX;
    float s2 = s * s;
    for (int q = 1; q < n; q++) {
        float sq;
        for (;;) {
            int p = v[k];
            sq = ((f[q] + s2 * (float)q * q) - (f[p] + s2 * (float)p * p)) /
                 (2 * s2 * (float)(q - p));
            if (sq <= z[k] && k > 0)
                k--;
            else
                break;
        }
        if (sq <= z[k]) { /* k == 0 and the new parabola dominates: replace */
            v[0] = q;
            z[0] = -FLT_MAX, z[1] = FLT_MAX;
            continue;
        }
        k++;
        v[k] = q;
        z[k] = sq;
        z[k + 1] = FLT_MAX;
    }
    k = 0;
    for (int q = 0; q < n; q++) {
        while (z[k + 1] < (float)q)
            k++;
        float dq = s * (float)(q - v[k]);
        d[q] = dq * dq + f[v[k]];
    }
}

/* Squared EDT in mm² of the set where `feature` is set. */
static sq_code edt3d(const sq_volume *m, int want, float *out, sq_status *st) {
    int D = m->d, H = m->h, W = m->w;
    int nmax = D > H ? D : H;
    nmax = nmax > W ? nmax : W;
    float *f = malloc(sizeof *f * (size_t)nmax), *dd = malloc(sizeof *dd * (size_t)nmax);
    float *z = malloc(sizeof *z * (size_t)(nmax + 1));
    int *v = malloc(sizeof *v * (size_t)nmax);
    if (!f || !dd || !z || !v) {
        free(f), free(dd), free(z), free(v);
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    }
    const uint8_t *x = sq_volume_u8(m);
    size_t n = sq_volume_numel(m);
    const float INF = 1e20f;
    for (size_t i = 0; i < n; i++)
        out[i] = ((x[i] != 0) == want) ? 0.0f : INF;
    float sz = (float)m->spacing[0], sy = (float)m->spacing[1], sx = (float)m->spacing[2];
    for (int a = 0; a < D * H; a++) { /* x rows */
        float *row = out + (size_t)a * W;
        memcpy(f, row, sizeof *f * (size_t)W);
        edt1d(f, W, sx, row, v, z);
    }
    for (int zz = 0; zz < D; zz++)
        for (int xx = 0; xx < W; xx++) {
            for (int y = 0; y < H; y++)
                f[y] = out[((size_t)zz * H + y) * W + xx];
            edt1d(f, H, sy, dd, v, z);
            for (int y = 0; y < H; y++)
                out[((size_t)zz * H + y) * W + xx] = dd[y];
        }
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++) {
            for (int zz = 0; zz < D; zz++)
                f[zz] = out[((size_t)zz * H + y) * W + xx];
            edt1d(f, D, sz, dd, v, z);
            for (int zz = 0; zz < D; zz++)
                out[((size_t)zz * H + y) * W + xx] = dd[zz];
        }
    free(f), free(dd), free(z), free(v);
    return SQ_OK;
}

sq_code sq_signed_distance(const sq_volume *mask, float *sd, sq_status *st) {
    size_t n = sq_volume_numel(mask);
    if (sq_mask_count(mask) == 0) {
        for (size_t i = 0; i < n; i++)
            sd[i] = 1e9f;
        return SQ_OK;
    }
    float *in = malloc(sizeof *in * n);
    if (!in) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    sq_code rc = edt3d(mask, 1, sd, st); /* distance to the inside (for outside voxels) */
    if (!rc) rc = edt3d(mask, 0, in, st);
    if (!rc) {
        const uint8_t *x = sq_volume_u8(mask);
        for (size_t i = 0; i < n; i++)
            sd[i] = x[i] ? -sqrtf(in[i]) : sqrtf(sd[i]);
    }
    free(in);
    return rc;
}

void sq_smooth_field(sq_rng *r, int d, int h, int w, const double cell[3], float amp, float *out) {
    int gd = (int)ceil((d - 1) / cell[0]) + 2, gh = (int)ceil((h - 1) / cell[1]) + 2,
        gw = (int)ceil((w - 1) / cell[2]) + 2;
    float *g = malloc(sizeof *g * (size_t)gd * gh * gw);
    if (!g) {
        memset(out, 0, sizeof *out * (size_t)d * h * w);
        return;
    }
    for (int i = 0; i < gd * gh * gw; i++)
        g[i] = sq_rng_normal(r) * amp;
    for (int z = 0; z < d; z++) {
        double fz = z / cell[0];
        int z0 = (int)fz;
        float tz = (float)(fz - z0);
        for (int y = 0; y < h; y++) {
            double fy = y / cell[1];
            int y0 = (int)fy;
            float ty = (float)(fy - y0);
            for (int x = 0; x < w; x++) {
                double fx = x / cell[2];
                int x0 = (int)fx;
                float tx = (float)(fx - x0);
#define G(a, b, c) g[((size_t)(z0 + (a)) * gh + (y0 + (b))) * gw + (x0 + (c))]
                float c00 = G(0, 0, 0) * (1 - tx) + G(0, 0, 1) * tx;
                float c01 = G(0, 1, 0) * (1 - tx) + G(0, 1, 1) * tx;
                float c10 = G(1, 0, 0) * (1 - tx) + G(1, 0, 1) * tx;
                float c11 = G(1, 1, 0) * (1 - tx) + G(1, 1, 1) * tx;
#undef G
                float c0 = c00 * (1 - ty) + c01 * ty, c1 = c10 * (1 - ty) + c11 * ty;
                out[((size_t)z * h + y) * w + x] = c0 * (1 - tz) + c1 * tz;
            }
        }
    }
    free(g);
}

void sq_perturb_draw(sq_rng *r, float strength, sq_perturb_params *p) {
    p->radius_mm = sq_rng_uniform_range(r, -2.0f, 2.0f) * strength;
    p->noise_mm = sq_rng_uniform_range(r, 0.0f, 1.5f) * strength;
    p->noise_cell_mm = 8.0f;
    p->shift_mm = sq_rng_uniform_range(r, 0.0f, 2.5f) * strength;
    p->shift_cell_mm = 12.0f;
}

static int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

sq_code sq_contour_perturb(const sq_volume *gt, const sq_perturb_params *p, sq_rng *r,
                           sq_volume *out, char **params_json, sq_status *st) {
    int D = gt->d, H = gt->h, W = gt->w;
    size_t n = sq_volume_numel(gt);
    *params_json = NULL;
    float *sd = malloc(sizeof *sd * n), *noise = malloc(sizeof *noise * n);
    float *u = malloc(sizeof *u * n * 3);
    if (!sd || !noise || !u) {
        free(sd), free(noise), free(u);
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    }
    sq_code rc = sq_signed_distance(gt, sd, st);
    if (!rc) rc = sq_volume_alloc(out, SQ_U8, D, H, W, st);
    if (rc) {
        free(sd), free(noise), free(u);
        return rc;
    }
    sq_volume_copy_geometry(out, gt);
    double nc[3], sc[3];
    for (int a = 0; a < 3; a++) {
        nc[a] = fmax(1.0, p->noise_cell_mm / gt->spacing[a]);
        sc[a] = fmax(1.0, p->shift_cell_mm / gt->spacing[a]);
    }
    sq_smooth_field(r, D, H, W, nc, p->noise_mm, noise);
    for (int a = 0; a < 3; a++)
        sq_smooth_field(r, D, H, W, sc, p->shift_mm / (float)gt->spacing[a], u + n * a);
    uint8_t *o = sq_volume_u8(out);
    for (int z = 0; z < D; z++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = ((size_t)z * H + y) * W + x;
                int zs = clampi((int)lrintf(z + u[i]), 0, D - 1);
                int ys = clampi((int)lrintf(y + u[n + i]), 0, H - 1);
                int xs = clampi((int)lrintf(x + u[2 * n + i]), 0, W - 1);
                float s = sd[((size_t)zs * H + ys) * W + xs];
                o[i] = s + noise[i] < p->radius_mm;
            }
    free(sd), free(noise), free(u);
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"radius_mm\":%.4f,\"noise_mm\":%.4f,\"noise_cell_mm\":%.1f,\"shift_mm\":%.4f,"
             "\"shift_cell_mm\":%.1f}",
             p->radius_mm, p->noise_mm, p->noise_cell_mm, p->shift_mm, p->shift_cell_mm);
    *params_json = strdup(buf);
    return SQ_OK;
}

/* ---- moments ---- */

typedef struct moments {
    double c[3];    /* centroid, mm, (z, y, x) */
    double e[3][3]; /* e[k] = k-th principal axis (unit), descending variance */
    double l[3];    /* variances along the axes, mm² */
} moments;

/* Jacobi eigen-decomposition of a symmetric 3x3 matrix: a -> diag, v columns = vectors. */
static void jacobi3(double a[3][3], double v[3][3]) {
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            v[i][j] = i == j;
    for (int sweep = 0; sweep < 50; sweep++) {
        double off = fabs(a[0][1]) + fabs(a[0][2]) + fabs(a[1][2]);
        if (off < 1e-12) break;
        for (int p = 0; p < 2; p++)
            for (int q = p + 1; q < 3; q++) {
                if (fabs(a[p][q]) < 1e-15) continue;
                double th = (a[q][q] - a[p][p]) / (2 * a[p][q]);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < 3; k++) { /* a = J^T a J */
                    double akp = a[k][p], akq = a[k][q];
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < 3; k++) {
                    double apk = a[p][k], aqk = a[q][k];
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 3; k++) {
                    double vkp = v[k][p], vkq = v[k][q];
                    v[k][p] = c * vkp - s * vkq;
                    v[k][q] = s * vkp + c * vkq;
                }
            }
    }
}

/* Intensity moments of the voxels above the image's mean (the brighter anatomy). */
static void image_moments(const sq_volume *img, moments *m) {
    const float *x = sq_volume_f32(img);
    size_t n = sq_volume_numel(img);
    double mean = 0;
    for (size_t i = 0; i < n; i++)
        mean += x[i];
    mean /= (double)n;
    double s = 0, c[3] = {0, 0, 0}, cc[3][3] = {{0}};
    for (int z = 0; z < img->d; z++)
        for (int y = 0; y < img->h; y++)
            for (int xx = 0; xx < img->w; xx++) {
                double wgt = x[((size_t)z * img->h + y) * img->w + xx] - mean;
                if (wgt <= 0) continue;
                double p[3] = {z * img->spacing[0], y * img->spacing[1], xx * img->spacing[2]};
                s += wgt;
                for (int a = 0; a < 3; a++) {
                    c[a] += wgt * p[a];
                    for (int b = 0; b < 3; b++)
                        cc[a][b] += wgt * p[a] * p[b];
                }
            }
    if (s <= 0) s = 1;
    for (int a = 0; a < 3; a++)
        m->c[a] = c[a] / s;
    double cov[3][3], v[3][3];
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            cov[a][b] = cc[a][b] / s - m->c[a] * m->c[b];
    jacobi3(cov, v);
    int order[3] = {0, 1, 2};
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (cov[order[j]][order[j]] > cov[order[i]][order[i]]) {
                int t = order[i];
                order[i] = order[j], order[j] = t;
            }
    for (int k = 0; k < 3; k++) {
        m->l[k] = fmax(cov[order[k]][order[k]], 1e-6);
        for (int a = 0; a < 3; a++)
            m->e[k][a] = v[a][order[k]];
    }
}

sq_code sq_contour_atlas(const sq_volume *target_img, const sq_volume *atlas_img,
                         const sq_volume *atlas_gt, const char *atlas_id, sq_volume *out,
                         char **params_json, sq_status *st) {
    *params_json = NULL;
    moments mt, ma;
    image_moments(target_img, &mt);
    image_moments(atlas_img, &ma);
    /* match each target axis to the atlas axis it is most parallel to, and fix signs */
    double ea[3][3], la[3];
    int used[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        int best = -1;
        double bd = -1, sign = 1;
        for (int j = 0; j < 3; j++) {
            if (used[j]) continue;
            double dot = 0;
            for (int a = 0; a < 3; a++)
                dot += mt.e[k][a] * ma.e[j][a];
            if (fabs(dot) > bd) bd = fabs(dot), best = j, sign = dot < 0 ? -1 : 1;
        }
        used[best] = 1;
        for (int a = 0; a < 3; a++)
            ea[k][a] = sign * ma.e[best][a];
        la[k] = ma.l[best];
    }
    /* q = c_a + sum_k ea_k * sqrt(la_k / lt_k) * <et_k, p - c_t>  (all in mm) */
    double A[3][3];
    double scale[3];
    for (int k = 0; k < 3; k++)
        scale[k] = sqrt(la[k] / mt.l[k]);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            A[a][b] = 0;
            for (int k = 0; k < 3; k++)
                A[a][b] += ea[k][a] * scale[k] * mt.e[k][b];
        }
    SQ_TRY(sq_volume_alloc(out, SQ_U8, target_img->d, target_img->h, target_img->w, st));
    sq_volume_copy_geometry(out, target_img);
    uint8_t *o = sq_volume_u8(out);
    const uint8_t *g = sq_volume_u8(atlas_gt);
    for (int z = 0; z < out->d; z++)
        for (int y = 0; y < out->h; y++)
            for (int x = 0; x < out->w; x++) {
                double p[3] = {z * target_img->spacing[0] - mt.c[0],
                               y * target_img->spacing[1] - mt.c[1],
                               x * target_img->spacing[2] - mt.c[2]};
                int qi[3];
                int inside = 1;
                int ext[3] = {atlas_gt->d, atlas_gt->h, atlas_gt->w};
                for (int a = 0; a < 3; a++) {
                    double q = ma.c[a] + A[a][0] * p[0] + A[a][1] * p[1] + A[a][2] * p[2];
                    qi[a] = (int)lrint(q / atlas_gt->spacing[a]);
                    if (qi[a] < 0 || qi[a] >= ext[a]) inside = 0;
                }
                o[((size_t)z * out->h + y) * out->w + x] =
                    inside ? g[((size_t)qi[0] * atlas_gt->h + qi[1]) * atlas_gt->w + qi[2]] != 0
                           : 0;
            }
    cJSON *pj = cJSON_CreateObject();
    cJSON_AddStringToObject(pj, "atlas", atlas_id);
    cJSON_AddStringToObject(pj, "alignment", "intensity moments");
    cJSON_AddItemToObject(pj, "scale", cJSON_CreateDoubleArray(scale, 3));
    cJSON_AddItemToObject(pj, "target_centroid_mm", cJSON_CreateDoubleArray(mt.c, 3));
    cJSON_AddItemToObject(pj, "atlas_centroid_mm", cJSON_CreateDoubleArray(ma.c, 3));
    *params_json = cJSON_PrintUnformatted(pj);
    cJSON_Delete(pj);
    return SQ_OK;
}

/* ---- the command ---- */

static void drop_contour(sq_case *c, const char *name) {
    for (int i = 0; i < c->ncontours; i++)
        if (!strcmp(c->contours[i].name, name)) {
            free(c->contours[i].params);
            sq_volume_free(&c->contours[i].mask);
            memmove(&c->contours[i], &c->contours[i + 1],
                    sizeof *c->contours * (size_t)(c->ncontours - i - 1));
            c->ncontours--;
            return;
        }
}

static void count_contour(sq_contours_stats *stt, double dice) {
    stt->dice_min = fmin(stt->dice_min, dice), stt->dice_max = fmax(stt->dice_max, dice);
    stt->dice_mean += dice, stt->n_contours++;
}

/* Contour <kind>_<k> of case i: the GT perturbed at `strength`, from the stream keyed by tag. */
static sq_code add_perturbed(int i, int k, const char *kind, uint32_t tag, float strength,
                             const sq_contours_opts *o, sq_case *c, sq_contours_stats *stt,
                             sq_status *st) {
    char name[32];
    snprintf(name, sizeof name, "%s_%d", kind, k);
    drop_contour(c, name);
    sq_rng r;
    sq_rng_init(&r, o->seed, tag, (uint32_t)(i * 64 + k));
    sq_perturb_params p;
    sq_perturb_draw(&r, strength, &p);
    sq_volume m;
    char *params = NULL;
    SQ_TRY(sq_contour_perturb(&c->gt, &p, &r, &m, &params, st));
    double dice = sq_dice_u8(sq_volume_u8(&m), sq_volume_u8(&c->gt), sq_volume_numel(&m));
    SQ_TRY(sq_case_add_contour(c, name, kind, params, dice, &m, st));
    count_contour(stt, dice);
    return SQ_OK;
}

static sq_code add_contours(sq_site *s, int i, const sq_contours_opts *o, sq_case *c,
                            sq_contours_stats *stt, sq_status *st) {
    int n = sq_site_ncases(s);
    for (int k = 0; k < o->n_atlas; k++) {
        char name[32];
        snprintf(name, sizeof name, "atlas_%d", k);
        drop_contour(c, name);
        if (n < 2) break;
        sq_rng r;
        sq_rng_init(&r, o->seed, 0x41544c53u /* "ATLS" */, (uint32_t)(i * 64 + k));
        int j = (int)sq_rng_below(&r, (uint32_t)(n - 1));
        if (j >= i) j++;
        sq_volume aimg, agt, m;
        SQ_TRY(sq_site_read_volume(s, j, "image", &aimg, st));
        sq_code rc = sq_site_read_volume(s, j, "gt", &agt, st);
        char *params = NULL;
        if (!rc)
            rc = sq_contour_atlas(&c->image, &aimg, &agt, sq_site_case_meta(s, j)->id, &m, &params,
                                  st);
        sq_volume_free(&aimg), sq_volume_free(&agt);
        if (rc) return rc;
        double dice = sq_dice_u8(sq_volume_u8(&m), sq_volume_u8(&c->gt), sq_volume_numel(&m));
        SQ_TRY(sq_case_add_contour(c, name, "atlas", params, dice, &m, st));
        count_contour(stt, dice);
    }
    for (int k = 0; k < o->n_perturb; k++)
        SQ_TRY(
            add_perturbed(i, k, "perturb", 0x50455254u /* "PERT" */, o->strength, o, c, stt, st));
    for (int k = 0; k < o->n_near; k++) {
        sq_rng r;
        sq_rng_init(&r, o->seed, 0x4e454152u /* "NEAR" */, (uint32_t)(i * 64 + k));
        float strength = sq_rng_uniform_range(&r, o->near_lo, o->near_hi);
        SQ_TRY(add_perturbed(i, k, "near", 0x4e454150u /* "NEAP" */, strength, o, c, stt, st));
    }
    return SQ_OK;
}

sq_contours_opts sq_contours_opts_default(void) {
    sq_contours_opts o;
    memset(&o, 0, sizeof o);
    o.n_atlas = 1, o.n_perturb = 1, o.n_near = 2;
    o.seed = 1234;
    o.strength = 1.0f;
    o.near_lo = 0.2f, o.near_hi = 0.8f;
    return o;
}

sq_code sq_contours_run(const sq_contours_opts *o, sq_contours_stats *stats, sq_status *st) {
    double t0 = sq_now();
    sq_site *s = NULL;
    SQ_TRY(sq_site_open(o->input, &s, st));
    sq_site_info info = *sq_site_get_info(s);
    sq_site_writer *w = NULL;
    sq_code rc = sq_site_writer_open(o->output, &info, &w, st);
    if (rc) {
        sq_site_close(s);
        return rc;
    }
    sq_contours_stats stt;
    memset(&stt, 0, sizeof stt);
    stt.dice_min = 1, stt.dice_max = 0;
    int n = sq_site_ncases(s);
    sq_progress p;
    if (o->progress) sq_progress_begin(&p, "contours", n);
    for (int i = 0; i < n && !rc; i++) {
        sq_case c;
        rc = sq_site_read_case(s, i, &c, st);
        if (rc) break;
        rc = add_contours(s, i, o, &c, &stt, st);
        if (!rc) rc = sq_site_writer_add(w, &c, st);
        sq_case_free(&c);
        if (o->progress) sq_progress_update(&p, i + 1, NULL);
    }
    sq_site_close(s);
    if (rc) {
        sq_site_writer_abort(w);
        return rc;
    }
    SQ_TRY(sq_site_writer_commit(w, st));
    if (o->progress) sq_progress_end(&p, NULL);
    if (stats) {
        stt.n_cases = n;
        if (stt.n_contours) stt.dice_mean /= stt.n_contours;
        stt.seconds = sq_now() - t0;
        *stats = stt;
    }
    return SQ_OK;
}
