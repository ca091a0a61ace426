/* synth.c — synthetic prostate-like site generator (see synth.h). */
#include "data/synth.h"

#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/contours.h"
#include "data/nifti.h"
#include "data/site.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sq_synth_opts sq_synth_opts_default(void) {
    sq_synth_opts o;
    memset(&o, 0, sizeof o);
    o.n_cases = 60;
    o.shape[0] = 28, o.shape[1] = 160, o.shape[2] = 160;
    o.spacing[0] = 3.9, o.spacing[1] = 0.59, o.spacing[2] = 0.59;
    o.two_contour_frac = 1.0 / 3.0;
    o.seed = 2022;
    o.intensity_scale = 1.0;
    return o;
}

void sq_synth_site_variant(sq_synth_opts *o, int k, int n, char *name, size_t name_size) {
    double t = n > 1 ? (double)k / (n - 1) : 0.0;
    o->intensity_scale = 0.6 + 0.8 * t;
    o->bias_extra = 0.35 * t;
    o->spacing[1] *= 1.0 + 0.5 * t;
    o->spacing[2] *= 1.0 + 0.5 * t;
    o->seed += 1000ull * (unsigned long long)k;
    snprintf(name, name_size, "synth-site%d", k + 1);
    o->site_name = name;
}

enum { STREAM_CASE = 0x53594e54u /* "SYNT" */ };

/* --off-centre F: the organ's in-plane centre moved towards a corner (random per case) by F times
 * the room between its radius and the volume's edge, from its own stream so that F = 0 leaves
 * every other draw as it was. */
static void off_centre(const sq_synth_opts *o, int i, double ay, double ax, double *cy,
                       double *cx) {
    sq_rng g;
    sq_rng_init(&g, o->seed, STREAM_CASE ^ 0x0FFCu, (uint32_t)i);
    const double room_y = (o->shape[1] - 1) / 2.0 * o->spacing[1] - ay;
    const double room_x = (o->shape[2] - 1) / 2.0 * o->spacing[2] - ax;
    const double sy = sq_rng_uniform(&g) < 0.5 ? -1 : 1, sx = sq_rng_uniform(&g) < 0.5 ? -1 : 1;
    if (room_y > 0) *cy += sy * o->off_centre * room_y;
    if (room_x > 0) *cx += sx * o->off_centre * room_x;
}

/* image, gt and clinical JSON of case i */
static sq_code make_case(const sq_synth_opts *o, int i, double difficulty, sq_case *c,
                         sq_status *st) {
    const int D = o->shape[0], H = o->shape[1], W = o->shape[2];
    const size_t n = (size_t)D * H * W;
    sq_rng r;
    sq_rng_init(&r, o->seed, STREAM_CASE, (uint32_t)i * 8u);
    SQ_TRY(sq_volume_alloc(&c->image, SQ_F32, D, H, W, st));
    SQ_TRY(sq_volume_alloc(&c->gt, SQ_U8, D, H, W, st));
    for (int a = 0; a < 3; a++)
        c->image.spacing[a] = c->gt.spacing[a] = o->spacing[a];
    c->image.affine[0][0] = c->gt.affine[0][0] = o->spacing[2];
    c->image.affine[1][1] = c->gt.affine[1][1] = o->spacing[1];
    c->image.affine[2][2] = c->gt.affine[2][2] = o->spacing[0];
    float *shape_f = malloc(sizeof(float) * n * 4);
    if (!shape_f) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    float *tex = shape_f + n, *bias = tex + n, *fine = bias + n;
    double cell_shape[3], cell_tex[3], cell_bias[3], cell_fine[3];
    for (int a = 0; a < 3; a++) {
        cell_shape[a] = fmax(1.0, 18.0 / o->spacing[a]);
        cell_tex[a] = fmax(1.0, 6.0 / o->spacing[a]);
        cell_bias[a] = fmax(1.0, 60.0 / o->spacing[a]);
        cell_fine[a] = fmax(1.0, 2.0 / o->spacing[a]);
    }
    sq_smooth_field(&r, D, H, W, cell_shape, 1.0f, shape_f);
    sq_smooth_field(&r, D, H, W, cell_tex, 1.0f, tex);
    sq_smooth_field(&r, D, H, W, cell_bias, 1.0f, bias);
    sq_smooth_field(&r, D, H, W, cell_fine, 1.0f, fine);
    /* organ: ellipsoid (mm radii) with a smooth random radial modulation */
    double ax = sq_rng_uniform_range(&r, 17, 25), ay = sq_rng_uniform_range(&r, 13, 19),
           az = sq_rng_uniform_range(&r, 15, 22);
    double cz = (D - 1) / 2.0 * o->spacing[0] + sq_rng_uniform_range(&r, -4, 4);
    double cy = (H - 1) / 2.0 * o->spacing[1] + sq_rng_uniform_range(&r, -5, 5);
    double cx = (W - 1) / 2.0 * o->spacing[2] + sq_rng_uniform_range(&r, -5, 5);
    if (o->off_centre > 0) off_centre(o, i, ay, ax, &cy, &cx);
    double contrast = 90 * (1.0 - 0.5 * difficulty), noise = 8 + 14 * difficulty;
    double bias_amp = 0.15 + 0.2 * difficulty + o->bias_extra;
    float *img = sq_volume_f32(&c->image);
    uint8_t *gt = sq_volume_u8(&c->gt);
    size_t inside = 0;
    for (int z = 0; z < D; z++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t k = ((size_t)z * H + y) * W + x;
                double pz = (z * o->spacing[0] - cz) / az, py = (y * o->spacing[1] - cy) / ay,
                       px = (x * o->spacing[2] - cx) / ax;
                double rr = sqrt(pz * pz + py * py + px * px);
                double lim = 1.0 + 0.12 * shape_f[k];
                int in = rr < lim;
                gt[k] = (uint8_t)in;
                inside += (size_t)in;
                /* anatomy: body ellipse, a darker rectum-like blob behind, fat/muscle texture */
                double by = (y * o->spacing[1] - cy) / 42, bx = (x * o->spacing[2] - cx) / 46;
                double body = by * by + bx * bx < 1 ? 1 : 0.15;
                double ry = (y * o->spacing[1] - cy - ay - 9) / 8,
                       rx = (x * o->spacing[2] - cx) / 10;
                double rect = ry * ry + rx * rx < 1 ? -60 : 0;
                double soft = 1.0 / (1.0 + exp((rr - lim) * 25)); /* soft organ edge */
                double v = body * (150 + 35 * tex[k]) + rect + soft * (contrast + 20 * fine[k]);
                v *= exp(bias_amp * bias[k]);
                v += noise * sq_rng_normal(&r);
                img[k] = (float)fabs(v); /* magnitude image */
            }
    free(shape_f);
    double lo, hi;
    SQ_TRY(sq_volume_normalise_percentile(&c->image, 0, 99, &lo, &hi, st));
    if (o->intensity_scale != 1.0) /* the site's scanner gain survives the normalisation */
        for (size_t k = 0; k < n; k++)
            img[k] = (float)(img[k] * o->intensity_scale);
    /* clinical variables, weakly tied to difficulty */
    double vox_ml = o->spacing[0] * o->spacing[1] * o->spacing[2] / 1000.0;
    double volume = (double)inside * vox_ml;
    const double sig = o->clinical_signal;
    double age = 66 + 7 * (1 - sig) * sq_rng_normal(&r) + (4 + 26 * sig) * difficulty;
    int isup = 1 + (int)fmin(4, fmax(0, floor(2.2 * sq_rng_uniform(&r) +
                                              2.0 * difficulty * sq_rng_uniform(&r))));
    int pirads = 2 + (int)fmin(3, fmax(0, floor(isup * 0.5 + 1.5 * sq_rng_uniform(&r))));
    double ipsa = exp(log(6.0) + 0.5 * sq_rng_normal(&r) + 0.15 * (isup - 1) + 0.004 * volume);
    int risk = (isup >= 4 || ipsa > 20) ? 3 : (isup == 1 && ipsa < 10) ? 1 : 2;
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"age\":%.1f,\"volume_ml\":%.2f,\"isup\":%d,\"pirads\":%d,\"ipsa\":%.2f,"
             "\"risk_class\":%d}",
             age, volume, isup, pirads, ipsa, risk);
    c->clinical = strdup(buf);
    snprintf(buf, sizeof buf,
             "{\"generator\":\"segqa synth\",\"seed\":%llu,\"index\":%d,\"difficulty\":%.4f,"
             "\"norm_p_lo\":%.3f,\"norm_p_hi\":%.3f}",
             o->seed, i, difficulty, lo, hi);
    c->source = strdup(buf);
    return SQ_OK;
}

/* a perturbed-GT contour whose Dice is near `target`: bisection on the perturbation strength,
 * the random field and the sign of the radius fixed by the rng key */
static sq_code make_contour(const sq_synth_opts *o, int i, int k, const sq_volume *gt,
                            double target, sq_volume *out, char **params, double *dice,
                            sq_status *st) {
    double lo = 0.0, hi = 3.0, best_err = 1e9;
    sq_volume best = {0};
    char *best_params = NULL;
    double best_dice = 0;
    for (int it = 0; it < 10; it++) {
        double s = 0.5 * (lo + hi);
        sq_rng r;
        sq_rng_init(&r, o->seed, STREAM_CASE, (uint32_t)i * 8u + 1u + (uint32_t)k);
        sq_perturb_params p;
        sq_perturb_draw(&r, 1.0f, &p);
        p.radius_mm = (float)((p.radius_mm >= 0 ? 1 : -1) * (0.3 + fabs(p.radius_mm)) * s);
        p.noise_mm = (float)((0.3 + p.noise_mm) * s);
        p.shift_mm = (float)((0.3 + p.shift_mm) * s);
        sq_volume m;
        char *pj = NULL;
        SQ_TRY(sq_contour_perturb(gt, &p, &r, &m, &pj, st));
        double d = sq_dice_u8(sq_volume_u8(&m), sq_volume_u8(gt), sq_volume_numel(gt));
        if (fabs(d - target) < best_err) {
            sq_volume_free(&best);
            free(best_params);
            best = m, best_params = pj, best_dice = d, best_err = fabs(d - target);
        } else {
            sq_volume_free(&m);
            free(pj);
        }
        if (d > target)
            lo = s;
        else
            hi = s;
        if (best_err < 0.002) break;
    }
    *out = best, *params = best_params, *dice = best_dice;
    return SQ_OK;
}

static sq_code write_nifti_case(const char *dir, const sq_case *c, sq_status *st) {
    char p[SQ_PATH_MAX];
    snprintf(p, sizeof p, "%s/images/%s.nii.gz", dir, c->id);
    SQ_TRY(sq_nifti_write(p, &c->image, st));
    snprintf(p, sizeof p, "%s/labels/%s.nii.gz", dir, c->id);
    SQ_TRY(sq_nifti_write(p, &c->gt, st));
    for (int k = 0; k < c->ncontours; k++) {
        snprintf(p, sizeof p, "%s/contours/%s/%s.nii.gz", dir, c->contours[k].name, c->id);
        sq_volume m = c->contours[k].mask;
        sq_volume_copy_geometry(&m, &c->gt);
        SQ_TRY(sq_nifti_write(p, &m, st));
    }
    return SQ_OK;
}

sq_code sq_synth(const sq_synth_opts *o, sq_synth_stats *stats, sq_status *st) {
    double t0 = sq_now();
    sq_site_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.site, sizeof info.site, "%s", o->site_name ? o->site_name : "synth-prostate");
    memcpy(info.shape, o->shape, sizeof info.shape);
    memcpy(info.spacing, o->spacing, sizeof info.spacing);
    char pre[512];
    snprintf(pre, sizeof pre,
             "{\"generator\":\"segqa synth\",\"normalisation\":\"percentile linear map to "
             "[0,255]\",\"norm_lo_percentile\":0,\"norm_hi_percentile\":99,\"seed\":%llu,"
             "\"intensity_scale\":%g,\"bias_extra\":%g}",
             o->seed, o->intensity_scale, o->bias_extra);
    info.preprocessing = pre;
    FILE *clin = NULL;
    if (o->nifti_dir && *o->nifti_dir) {
        const char *sub[4] = {"images", "labels", "contours/synth_0", "contours/synth_1"};
        for (int s = 0; s < 4; s++) {
            char p[SQ_PATH_MAX];
            snprintf(p, sizeof p, "%s/%s", o->nifti_dir, sub[s]);
            SQ_TRY(sq_mkdirs(p, st));
        }
        char p[SQ_PATH_MAX];
        snprintf(p, sizeof p, "%s/clinical.csv", o->nifti_dir);
        clin = fopen(p, "w");
        if (!clin) return sq_fail(st, SQ_ERR_IO, "%s: cannot write", p);
        fprintf(clin, "case,age,volume_ml,isup,pirads,ipsa,risk_class\n");
    }
    sq_site_writer *w;
    sq_code rc = sq_site_writer_open(o->output, &info, &w, st);
    if (rc) {
        if (clin) fclose(clin);
        return rc;
    }
    sq_synth_stats s;
    memset(&s, 0, sizeof s);
    s.dice_min = 1, s.dice_max = 0;
    sq_progress pg;
    if (o->progress) sq_progress_begin(&pg, "synth", o->n_cases);
    for (int i = 0; i < o->n_cases && !rc; i++) {
        sq_rng r;
        sq_rng_init(&r, o->seed, STREAM_CASE + 1, (uint32_t)i);
        double difficulty = sq_rng_uniform(&r);
        int ncont = sq_rng_uniform(&r) < o->two_contour_frac ? 2 : 1;
        sq_case c;
        memset(&c, 0, sizeof c);
        snprintf(c.id, sizeof c.id, "synth_%03d", i);
        snprintf(c.patient, sizeof c.patient, "synth_%03d", i);
        rc = make_case(o, i, difficulty, &c, st);
        for (int k = 0; k < ncont && !rc; k++) {
            /* easier cases get better contours: target in [0.85, 0.95] */
            double target = 0.95 - 0.10 * (0.6 * difficulty + 0.4 * sq_rng_uniform(&r));
            sq_volume m;
            char *params = NULL;
            double dice = 0;
            rc = make_contour(o, i, k, &c.gt, target, &m, &params, &dice, st);
            if (rc) break;
            char name[32];
            snprintf(name, sizeof name, "synth_%d", k);
            rc = sq_case_add_contour(&c, name, "synth-perturb", params, dice, &m, st);
            s.dice_min = fmin(s.dice_min, dice), s.dice_max = fmax(s.dice_max, dice);
            s.n_contours++;
        }
        if (!rc) rc = sq_site_writer_add(w, &c, st);
        if (!rc && clin) {
            rc = write_nifti_case(o->nifti_dir, &c, st);
            fprintf(clin, "%s", c.id);
            const char *keys[6] = {"age", "volume_ml", "isup", "pirads", "ipsa", "risk_class"};
            for (int k = 0; k < 6; k++) {
                const char *v = strstr(c.clinical, keys[k]);
                fprintf(clin, ",%g", v ? atof(v + strlen(keys[k]) + 2) : 0.0);
            }
            fprintf(clin, "\n");
        }
        sq_case_free(&c);
        if (o->progress) sq_progress_update(&pg, i + 1, NULL);
    }
    if (clin) fclose(clin);
    if (rc) {
        sq_site_writer_abort(w);
        return rc;
    }
    SQ_TRY(sq_site_writer_commit(w, st));
    if (o->progress) sq_progress_end(&pg, NULL);
    s.n_cases = o->n_cases;
    s.seconds = sq_now() - t0;
    if (stats) *stats = s;
    return SQ_OK;
}
