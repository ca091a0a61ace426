/* predictor.c — checkpoint -> model kept loaded -> one estimate per (image, contour) pair. */
#include "train/predictor.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timer.h"
#include "data/nifti.h"
#include "model/model.h"
#include "train/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct preproc {
    int shape[3];
    double lo, hi;
    int crop_contour;   /* "crop": "contour" (else "center", the default of older checkpoints) */
    double crop_margin; /* "crop_margin", share of the box extent per side (default 0.1) */
} preproc;

struct sq_predictor {
    sq_model *model;
    preproc pp;
    float *x;          /* 2 x D x H x W input */
    sq_volume image;   /* last case, as read */
    sq_volume contour; /* last case, 0/1 on the image grid */
    double ms[3];      /* last case: read, preprocess, forward */
    char *calibration; /* the checkpoint's interval calibration (JSON), NULL if none */
    sq_recal recal;    /* the checkpoint's estimate map (identity if none) */
};

static sq_code parse_shape(const cJSON *j, const char *origin, preproc *p, sq_status *st) {
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape_zyx");
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) != 3)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: key 'shape_zyx' must be an array of 3 integers",
                       origin);
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetArrayItem(sh, i);
        if (!cJSON_IsNumber(v) || v->valueint < 1)
            return sq_fail(st, SQ_ERR_FORMAT, "%s: shape_zyx[%d] must be a positive integer",
                           origin, i);
        p->shape[i] = v->valueint;
    }
    return SQ_OK;
}

static sq_code parse_crop(const cJSON *j, const char *origin, preproc *p, sq_status *st) {
    const char *crop = "center";
    p->crop_margin = 0.1;
    SQ_TRY(sq_json_get_string(j, "crop", &crop, 1, origin, st));
    SQ_TRY(sq_json_get_number(j, "crop_margin", &p->crop_margin, 1, origin, st));
    if (strcmp(crop, "center") && strcmp(crop, "contour"))
        return sq_fail(st, SQ_ERR_FORMAT, "%s: key 'crop' is '%s', expected center or contour",
                       origin, crop);
    if (!(p->crop_margin >= 0 && p->crop_margin <= 2))
        return sq_fail(st, SQ_ERR_FORMAT, "%s: key 'crop_margin' is %g, expected 0..2", origin,
                       p->crop_margin);
    p->crop_contour = !strcmp(crop, "contour");
    return SQ_OK;
}

static sq_code parse_preproc(const char *ckpt, const char *text, preproc *p, sq_status *st) {
    if (!text || !*text || !strcmp(text, "{}"))
        return sq_fail(st, SQ_ERR_FORMAT, "%s: no preprocessing config in the checkpoint", ckpt);
    cJSON *j = NULL;
    char origin[SQ_PATH_MAX + 32];
    snprintf(origin, sizeof origin, "%s: preproc_config", ckpt);
    SQ_TRY(sq_json_parse(text, origin, &j, st));
    sq_code rc = sq_json_get_number(j, "norm_lo_percentile", &p->lo, 0, origin, st);
    if (rc == SQ_OK) rc = sq_json_get_number(j, "norm_hi_percentile", &p->hi, 0, origin, st);
    if (rc == SQ_OK) rc = parse_shape(j, origin, p, st);
    if (rc == SQ_OK) rc = parse_crop(j, origin, p, st);
    cJSON_Delete(j);
    return rc;
}

static sq_code load_model(sq_predictor *p, const char *ckpt, sq_backend *be, sq_status *st) {
    sq_model_config mc;
    sq_ckpt_info info;
    SQ_TRY(sq_checkpoint_read_config(ckpt, &mc, st));
    SQ_TRY(sq_model_create(&mc, be, &p->model, st));
    SQ_TRY(sq_checkpoint_load(ckpt, p->model, NULL, &info, st));
    SQ_TRY(parse_preproc(ckpt, info.preproc_config, &p->pp, st));
    if (info.calibration[0] && !(p->calibration = strdup(info.calibration)))
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    char origin[SQ_PATH_MAX + 32];
    snprintf(origin, sizeof origin, "%s: recalibration", ckpt);
    SQ_TRY(sq_recal_from_text(info.recalibration, origin, &p->recal, st));
    const int *s = p->pp.shape;
    if (s[0] != mc.depth || s[1] != mc.height || s[2] != mc.width)
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: preprocessing shape %dx%dx%d differs from the model input %dx%dx%d",
                       ckpt, s[0], s[1], s[2], mc.depth, mc.height, mc.width);
    SQ_TRY(sq_model_plan(p->model, 1, 0, st));
    sq_model_set_training(p->model, 0);
    p->x = sq_alloc(2 * (size_t)s[0] * s[1] * s[2] * sizeof(float));
    if (!p->x) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    return SQ_OK;
}

sq_code sq_predictor_open(const char *ckpt, sq_backend *be, sq_predictor **out, sq_status *st) {
    *out = NULL;
    if (!sq_file_exists(ckpt)) return sq_fail(st, SQ_ERR_IO, "%s: no such checkpoint", ckpt);
    sq_predictor *p = calloc(1, sizeof *p);
    if (!p) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    sq_code rc = load_model(p, ckpt, be, st);
    if (rc != SQ_OK) {
        sq_predictor_close(p);
        return rc;
    }
    *out = p;
    return SQ_OK;
}

void sq_predictor_close(sq_predictor *p) {
    if (!p) return;
    sq_free(p->x);
    free(p->calibration);
    sq_model_destroy(p->model);
    sq_volume_free(&p->image);
    sq_volume_free(&p->contour);
    free(p);
}

void sq_predictor_shape(const sq_predictor *p, int shape[3]) {
    memcpy(shape, p->pp.shape, sizeof p->pp.shape);
}

/* Crop/pad and normalise image and contour into p->x (2 x D x H x W). */
static sq_code preprocess(sq_predictor *p, const sq_volume *img, const sq_volume *con,
                          sq_status *st) {
    const int *s = p->pp.shape;
    sq_volume ci = {0}, cc = {0};
    double plo, phi;
    sq_code rc;
    if (p->pp.crop_contour) {
        rc = sq_volume_crop_contour(img, con, s[0], s[1], s[2], p->pp.crop_margin, &ci, &cc, st);
    } else {
        rc = sq_volume_crop_pad(img, s[0], s[1], s[2], &ci, st);
        if (rc == SQ_OK) rc = sq_volume_crop_pad(con, s[0], s[1], s[2], &cc, st);
    }
    if (rc == SQ_OK) rc = sq_volume_normalise_percentile(&ci, p->pp.lo, p->pp.hi, &plo, &phi, st);
    if (rc == SQ_OK) {
        size_t vox = sq_volume_numel(&ci);
        memcpy(p->x, sq_volume_f32(&ci), vox * sizeof(float));
        const uint8_t *m = sq_volume_u8(&cc);
        for (size_t i = 0; i < vox; i++)
            p->x[vox + i] = m[i] ? 1.0f : 0.0f;
    }
    sq_volume_free(&ci);
    sq_volume_free(&cc);
    return rc;
}

sq_code sq_predictor_estimate(sq_predictor *p, const char *image, const char *contour,
                              const sq_mask_policy *mp, float *estimate, sq_status *st) {
    sq_volume img = {0}, con = {0};
    double t0 = sq_now();
    sq_code rc = sq_nifti_read_image(image, &img, st);
    if (rc == SQ_OK) rc = sq_contour_read(contour, &img, image, mp, &con, st);
    double t1 = sq_now();
    if (rc == SQ_OK) rc = preprocess(p, &img, &con, st);
    double t2 = sq_now();
    if (rc == SQ_OK) rc = sq_model_forward(p->model, p->x, estimate, st);
    if (rc == SQ_OK) *estimate = (float)sq_recal_apply(&p->recal, *estimate);
    double t3 = sq_now();
    p->ms[0] = (t1 - t0) * 1e3, p->ms[1] = (t2 - t1) * 1e3, p->ms[2] = (t3 - t2) * 1e3;
    if (rc != SQ_OK) {
        sq_volume_free(&img);
        sq_volume_free(&con);
        return rc;
    }
    sq_volume_free(&p->image);
    sq_volume_free(&p->contour);
    p->image = img;
    p->contour = con;
    return SQ_OK;
}

const sq_volume *sq_predictor_last_image(const sq_predictor *p) {
    return &p->image;
}
const sq_volume *sq_predictor_last_contour(const sq_predictor *p) {
    return &p->contour;
}

void sq_predictor_last_ms(const sq_predictor *p, double ms[3]) {
    memcpy(ms, p->ms, sizeof p->ms);
}

const char *sq_predictor_crop(const sq_predictor *p) {
    return p->pp.crop_contour ? "contour" : "center";
}

const sq_recal *sq_predictor_recal(const sq_predictor *p) {
    return &p->recal;
}

const char *sq_predictor_calibration(const sq_predictor *p) {
    return p->calibration ? p->calibration : "";
}
