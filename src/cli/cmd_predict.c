/* cmd_predict.c — `segqa predict`: deployment QA. A checkpoint plus an image and a contour (NIfTI)
 * or a CSV of pairs -> the estimated Dice of each contour and accept/reject.
 *
 * Preprocessing (crop/pad shape, percentile normalisation) comes from the checkpoint, never from
 * the user, so a contour is seen exactly as in training. A contour is accepted when its estimated
 * Dice is at least --threshold. Exit code: 0 when every contour is accepted, 3 when any is
 * rejected (so it can gate a clinical pipeline), other non-zero codes for errors.
 */
#include "cli.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "data/nifti.h"
#include "data/volume.h"
#include "model/model.h"
#include "nn/backend.h"
#include "train/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pair {
    char id[256];
    char image[SQ_PATH_MAX];
    char contour[SQ_PATH_MAX];
} pair;

typedef struct preproc {
    int shape[3];
    double lo, hi;
} preproc;

static sq_code parse_preproc(const char *ckpt, const char *text, preproc *p, sq_status *st) {
    if (!text || !*text || !strcmp(text, "{}"))
        return sq_fail(st, SQ_ERR_FORMAT, "%s: no preprocessing config in the checkpoint", ckpt);
    cJSON *j = NULL;
    char origin[SQ_PATH_MAX + 32];
    snprintf(origin, sizeof origin, "%s: preproc_config", ckpt);
    SQ_TRY(sq_json_parse(text, origin, &j, st));
    sq_code rc = sq_json_get_number(j, "norm_lo_percentile", &p->lo, 0, origin, st);
    if (rc == SQ_OK) rc = sq_json_get_number(j, "norm_hi_percentile", &p->hi, 0, origin, st);
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape_zyx");
    if (rc == SQ_OK && (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) != 3))
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: key 'shape_zyx' must be an array of 3 integers",
                     origin);
    for (int i = 0; rc == SQ_OK && i < 3; i++) {
        const cJSON *v = cJSON_GetArrayItem(sh, i);
        if (!cJSON_IsNumber(v) || v->valueint < 1)
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s: shape_zyx[%d] must be a positive integer", origin,
                         i);
        else
            p->shape[i] = v->valueint;
    }
    cJSON_Delete(j);
    return rc;
}

/* CSV with a header naming columns image and contour (and optionally id); paths relative to the
 * CSV's folder. */
static sq_code read_pairs_csv(const char *path, pair **out, int *n, sq_status *st) {
    char *text = NULL;
    SQ_TRY(sq_read_file(path, &text, NULL, st));
    char dir[SQ_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int col_img = -1, col_con = -1, col_id = -1, line_no = 0, cap = 0;
    pair *v = NULL;
    *n = 0;
    sq_code rc = SQ_OK;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == SQ_OK;
         line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = '\0';
        if (!len) continue;
        char *fields[16];
        int nf = 0;
        char *fs = NULL;
        for (char *f = strtok_r(line, ",", &fs); f && nf < 16; f = strtok_r(NULL, ",", &fs))
            fields[nf++] = f;
        if (col_img < 0) {
            for (int i = 0; i < nf; i++) {
                if (!strcmp(fields[i], "image")) col_img = i;
                if (!strcmp(fields[i], "contour")) col_con = i;
                if (!strcmp(fields[i], "id") || !strcmp(fields[i], "case")) col_id = i;
            }
            if (col_img < 0 || col_con < 0)
                rc = sq_fail(st, SQ_ERR_FORMAT,
                             "%s:1: header must name the columns 'image' and 'contour'", path);
            continue;
        }
        if (nf <= col_img || nf <= col_con || (col_id >= 0 && nf <= col_id)) {
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s:%d: expected %d columns, found %d", path, line_no,
                         (col_img > col_con ? col_img : col_con) + 1, nf);
            break;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            pair *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        pair *p = &v[(*n)++];
        const char *im = fields[col_img], *co = fields[col_con];
        snprintf(p->image, sizeof p->image, "%s%s%s", im[0] == '/' ? "" : dir,
                 im[0] == '/' ? "" : "/", im);
        snprintf(p->contour, sizeof p->contour, "%s%s%s", co[0] == '/' ? "" : dir,
                 co[0] == '/' ? "" : "/", co);
        snprintf(p->id, sizeof p->id, "%.255s", col_id >= 0 ? fields[col_id] : co);
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

/* Read, check and preprocess one pair into x (2 x D x H x W). */
static sq_code load_pair(const pair *p, const preproc *pp, float *x, sq_status *st) {
    sq_volume img = {0}, con = {0}, ci = {0}, cc = {0};
    sq_code rc = sq_nifti_read_image(p->image, &img, st);
    if (rc == SQ_OK) rc = sq_nifti_read_mask(p->contour, &con, st);
    if (rc == SQ_OK) rc = sq_nifti_check_pair(&img, p->image, &con, p->contour, st);
    if (rc == SQ_OK) {
        const uint8_t *m = sq_volume_u8(&con);
        for (size_t i = 0; i < sq_volume_numel(&con); i++)
            if (m[i] > 1) {
                rc = sq_fail(st, SQ_ERR_FORMAT,
                             "%s: contour value %d at voxel %zu, expected a binary mask (0 or 1)",
                             p->contour, m[i], i);
                break;
            }
    }
    if (rc == SQ_OK)
        rc = sq_volume_crop_pad(&img, pp->shape[0], pp->shape[1], pp->shape[2], &ci, st);
    if (rc == SQ_OK)
        rc = sq_volume_crop_pad(&con, pp->shape[0], pp->shape[1], pp->shape[2], &cc, st);
    double plo, phi;
    if (rc == SQ_OK) rc = sq_volume_normalise_percentile(&ci, pp->lo, pp->hi, &plo, &phi, st);
    if (rc == SQ_OK) {
        size_t vox = sq_volume_numel(&ci);
        memcpy(x, sq_volume_f32(&ci), vox * sizeof(float));
        const uint8_t *m = sq_volume_u8(&cc);
        for (size_t i = 0; i < vox; i++)
            x[vox + i] = m[i] ? 1.0f : 0.0f;
    }
    sq_volume_free(&img);
    sq_volume_free(&con);
    sq_volume_free(&ci);
    sq_volume_free(&cc);
    return rc;
}

int sq_cmd_predict(int argc, char **argv) {
    char ckpt[SQ_PATH_MAX] = "", image[SQ_PATH_MAX] = "", contour[SQ_PATH_MAX] = "",
         pairs_csv[SQ_PATH_MAX] = "", format[16] = "table";
    double threshold = 0.8;
    long long threads = 1;
    char device[8] = "cpu";
    const sq_option opts[] = {
        {"checkpoint", 'c', SQ_OPT_STRING, ckpt, sizeof ckpt, "FILE.h5",
         "trained model (best.h5 or last.h5 of a run)", NULL, 0, 0},
        {"image", 'i', SQ_OPT_STRING, image, sizeof image, "FILE", "image (NIfTI)", NULL, 0, 0},
        {"contour", 'm', SQ_OPT_STRING, contour, sizeof contour, "FILE",
         "binary contour (NIfTI) on the image's grid", NULL, 0, 0},
        {"pairs", 'p', SQ_OPT_STRING, pairs_csv, sizeof pairs_csv, "FILE.csv",
         "CSV with columns image, contour (and id): many pairs", NULL, 0, 0},
        {"threshold", 0, SQ_OPT_DOUBLE, &threshold, 0, "X",
         "accept a contour when its estimated Dice is at least X", NULL, 0, 1},
        {"format", 'f', SQ_OPT_CHOICE, format, sizeof format, "FMT", "output", "table|json", 0, 0},
        {"threads", 't', SQ_OPT_INT, &threads, 0, "N", "compute threads", NULL, 1, 1024},
        {"device", 0, SQ_OPT_CHOICE, device, sizeof device, "DEV", SQ_CLI_DEVICE_HELP,
         "cpu|cuda|auto", 0, 0},
    };
    const sq_cli_spec spec = {
        .command = "predict",
        .usage =
            "segqa predict --checkpoint FILE.h5 (--image IMG --contour MASK | --pairs FILE.csv)",
        .description =
            "Estimate the Dice score of each contour without a ground truth, and accept\n"
            "or reject it. Preprocessing is read from the checkpoint. Exit code 0 when\n"
            "every contour is accepted, 3 when any is rejected.",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 0,
        .max_pos = 0,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("predict", &st);
    if (a.help) return 0;
    if (!ckpt[0]) {
        sq_fail(&st, SQ_ERR_USAGE, "--checkpoint FILE.h5 is required");
        return sq_cli_report("predict", &st);
    }
    if (!!pairs_csv[0] == (image[0] || contour[0]) ||
        (!pairs_csv[0] && (!image[0] || !contour[0]))) {
        sq_fail(&st, SQ_ERR_USAGE, "give either --image and --contour, or --pairs FILE.csv");
        return sq_cli_report("predict", &st);
    }
    pair *pairs = NULL;
    int npairs = 0;
    sq_code rc = SQ_OK;
    if (pairs_csv[0]) {
        rc = read_pairs_csv(pairs_csv, &pairs, &npairs, &st);
    } else {
        pairs = calloc(1, sizeof *pairs);
        if (!pairs) rc = sq_fail(&st, SQ_ERR_NOMEM, "out of memory");
        if (rc == SQ_OK) {
            npairs = 1;
            snprintf(pairs[0].image, sizeof pairs[0].image, "%s", image);
            snprintf(pairs[0].contour, sizeof pairs[0].contour, "%s", contour);
            snprintf(pairs[0].id, sizeof pairs[0].id, "%.255s", contour);
        }
    }
    if (rc == SQ_OK && !sq_file_exists(ckpt))
        rc = sq_fail(&st, SQ_ERR_IO, "%s: no such checkpoint", ckpt);

    sq_model_config mc;
    sq_backend *be = NULL;
    sq_model *m = NULL;
    sq_ckpt_info info;
    preproc pp;
    float *x = NULL;
    if (rc == SQ_OK) rc = sq_checkpoint_read_config(ckpt, &mc, &st);
    if (rc == SQ_OK) {
        char chosen[512];
        be = sq_cli_backend(device, (int)threads, 0, chosen, sizeof chosen, &st);
        if (!be)
            rc = st.code ? st.code : SQ_ERR_INTERNAL;
        else
            sq_debug("predict: backend %s", chosen);
    }
    if (rc == SQ_OK) rc = sq_model_create(&mc, be, &m, &st);
    if (rc == SQ_OK) rc = sq_checkpoint_load(ckpt, m, NULL, &info, &st);
    if (rc == SQ_OK) rc = parse_preproc(ckpt, info.preproc_config, &pp, &st);
    if (rc == SQ_OK &&
        (pp.shape[0] != mc.depth || pp.shape[1] != mc.height || pp.shape[2] != mc.width))
        rc = sq_fail(&st, SQ_ERR_FORMAT,
                     "%s: preprocessing shape %dx%dx%d differs from the model input %dx%dx%d", ckpt,
                     pp.shape[0], pp.shape[1], pp.shape[2], mc.depth, mc.height, mc.width);
    if (rc == SQ_OK) rc = sq_model_plan(m, 1, 0, &st);
    if (rc == SQ_OK) {
        sq_model_set_training(m, 0);
        x = sq_alloc(2 * (size_t)mc.depth * mc.height * mc.width * sizeof(float));
        if (!x) rc = sq_fail(&st, SQ_ERR_NOMEM, "out of memory");
    }
    int rejected = 0;
    if (rc == SQ_OK && !strcmp(format, "table"))
        printf("%-40s %9s  %s\n", "contour", "est. Dice", "decision");
    for (int i = 0; rc == SQ_OK && i < npairs; i++) {
        float y = 0;
        rc = load_pair(&pairs[i], &pp, x, &st);
        if (rc == SQ_OK) rc = sq_model_forward(m, x, &y, &st);
        if (rc != SQ_OK) break;
        int accept = y >= threshold;
        rejected += !accept;
        if (!strcmp(format, "table")) {
            printf("%-40s %9.4f  %s\n", pairs[i].id, y, accept ? "accept" : "REJECT");
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", pairs[i].id);
            cJSON_AddStringToObject(o, "image", pairs[i].image);
            cJSON_AddStringToObject(o, "contour", pairs[i].contour);
            cJSON_AddNumberToObject(o, "estimated_dice", y);
            cJSON_AddNumberToObject(o, "threshold", threshold);
            cJSON_AddBoolToObject(o, "accept", accept);
            char *t = cJSON_PrintUnformatted(o);
            if (t) printf("%s\n", t);
            cJSON_free(t);
            cJSON_Delete(o);
        }
        fflush(stdout);
    }
    sq_free(x);
    sq_model_destroy(m);
    if (be) be->destroy(be);
    free(pairs);
    if (rc != SQ_OK) return sq_cli_report("predict", &st);
    return rejected ? 3 : 0;
}
