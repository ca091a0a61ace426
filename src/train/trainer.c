/* trainer.c — cross-validation and training over MPI ranks (see trainer.h). */
#include "train/trainer.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "data/loader.h"
#include "data/volume.h"
#include "hpc/nccl.h"
#include "hpc/progress_hub.h"
#include "hpc/signals.h"
#include "hpc/watchdog.h"
#include "nn/registry.h"
#include "train/checkpoint.h"
#include "train/calibration.h"
#include "train/feed.h"
#include "train/recal.h"
#include "train/report.h"
#include "train/splits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sq_train_opts sq_train_opts_default(void) {
    sq_train_opts o;
    memset(&o, 0, sizeof o);
    o.nfolds = 5;
    o.run_dir = "runs/cv";
    o.epochs = 200;
    o.batch = 2;
    o.val_every = 5;
    o.val_fraction = 0.1;
    o.workers = 1;
    o.threads = 1;
    o.device = "cpu";
    o.seed = 20221;
    o.lr = sq_lr_schedule_paper();
    o.clip = 0;
    o.augment = "paper";
    o.fail_rate = 0.2;
    o.failures = 1;
    o.figures = 1;
    o.sync_bn = 1;
    o.comm = "auto";
    o.comm_timeout = SQ_COMM_TIMEOUT_DEFAULT;
    o.rule = SQ_ACCURACY_RULE_PAPER;
    o.crop_margin = 0.1;
    o.recalibrate = 1;
    o.model = sq_model_config_default();
    return o;
}

/* ---- the job's shared state ------------------------------------------------------------- */

typedef struct job {
    const sq_train_opts *o;
    const sq_world *w;
    sq_dataset *ds; /* the loader's (its reader thread owns HDF5 while an epoch runs) */
    sq_dataset *ev; /* a second handle for evaluation reads on this thread */
    int nsamples, ncases;
    int *sample_case;            /* sample -> case */
    int *case_site, *case_index; /* case -> site, case index in the site */
    char (*case_key)[SQ_ID_MAX]; /* "site/case" */
    char (*patient_key)[SQ_ID_MAX];
    int *case_fold;      /* -1 when training on all data */
    int shape[3];        /* the site files' grid */
    int in_shape[3];     /* the model's input: shape, or the crop's with --crop contour */
    sq_loader_crop crop; /* --crop contour as the loader and the evaluator apply it */
    double spacing[3];
    sq_layout lay;
    sq_group g;
    sq_hub hub;
    /* this rank's predictions */
    sq_prediction *pred; /* test folds */
    int npred, cappred;
    char *calibration;    /* --calibration: JSON stored in every checkpoint (NULL: none) */
    sq_prediction *vpred; /* validation patients, after training, with the failure study */
    int nvpred, capvpred;
} job;

typedef struct idx_list {
    int *v;
    int n;
} idx_list;

static sq_code list_push(idx_list *l, int x, sq_status *st) {
    if ((l->n & (l->n - 1)) == 0 || l->n == 0) {
        int cap = l->n ? 2 * l->n : 16;
        int *nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv) return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
        l->v = nv;
    }
    l->v[l->n++] = x;
    return SQ_OK;
}

static void job_free(job *j) {
    free(j->sample_case);
    free(j->case_site);
    free(j->case_index);
    free(j->case_key);
    free(j->patient_key);
    free(j->case_fold);
    free(j->pred);
    free(j->vpred);
    free(j->calibration);
    sq_dataset_close(j->ds);
    sq_dataset_close(j->ev);
}

/* Cases are the distinct (site, case) pairs of the samples; keys are qualified by the site name so
 * ids may repeat across sites. */
static sq_code build_cases(job *j, sq_status *st) {
    int n = sq_dataset_nsamples(j->ds);
    j->nsamples = n;
    j->sample_case = calloc((size_t)(n ? n : 1), sizeof *j->sample_case);
    j->case_site = calloc((size_t)(n ? n : 1), sizeof *j->case_site);
    j->case_index = calloc((size_t)(n ? n : 1), sizeof *j->case_index);
    j->case_key = calloc((size_t)(n ? n : 1), sizeof *j->case_key);
    j->patient_key = calloc((size_t)(n ? n : 1), sizeof *j->patient_key);
    j->case_fold = calloc((size_t)(n ? n : 1), sizeof *j->case_fold);
    if (!j->sample_case || !j->case_site || !j->case_index || !j->case_key || !j->patient_key ||
        !j->case_fold)
        return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    int nc = 0;
    for (int i = 0; i < n; i++) {
        const sq_sample_ref *r = sq_dataset_sample(j->ds, i);
        int c = nc - 1; /* samples come in site, case order: a new case starts a new entry */
        if (nc == 0 || j->case_site[c] != r->site || j->case_index[c] != r->case_idx) {
            c = nc++;
            j->case_site[c] = r->site;
            j->case_index[c] = r->case_idx;
            sq_site *s = sq_dataset_site(j->ds, r->site);
            const char *site = sq_site_get_info(s)->site;
            const sq_case *meta = sq_site_case_meta(s, r->case_idx);
            snprintf(j->case_key[c], SQ_ID_MAX, "%.60s/%.60s", site, meta->id);
            snprintf(j->patient_key[c], SQ_ID_MAX, "%.60s/%.60s", site,
                     sq_dataset_patient(j->ds, i));
        }
        j->sample_case[i] = c;
    }
    j->ncases = nc;
    return SQ_OK;
}

static sq_code make_splits(job *j, sq_status *st) {
    const sq_train_opts *o = j->o;
    if (o->nfolds == 0) {
        for (int c = 0; c < j->ncases; c++)
            j->case_fold[c] = -1;
        return SQ_OK;
    }
    const char **ck = malloc((size_t)j->ncases * sizeof *ck);
    const char **pk = malloc((size_t)j->ncases * sizeof *pk);
    if (!ck || !pk) {
        free(ck);
        free(pk);
        return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    }
    for (int c = 0; c < j->ncases; c++) {
        ck[c] = j->case_key[c];
        pk[c] = j->patient_key[c];
    }
    sq_splits sp;
    sq_code rc;
    if (o->splits_path && o->splits_path[0]) {
        rc = sq_splits_load(o->splits_path, &sp, st);
        if (rc == SQ_OK) rc = sq_splits_check_cases(&sp, ck, pk, j->ncases, o->splits_path, st);
        if (rc == SQ_OK && sp.nfolds != o->nfolds)
            rc = sq_fail(st, SQ_ERR_USAGE, "%s: has %d folds but --folds is %d", o->splits_path,
                         sp.nfolds, o->nfolds);
    } else if (o->split_by_site) {
        if (o->nfolds != o->nsites)
            rc = sq_fail(st, SQ_ERR_USAGE, "--split-by site: %d folds for %d site files", o->nfolds,
                         o->nsites);
        else
            rc = sq_splits_by_group(ck, pk, j->case_site, j->ncases, o->nsites, &sp, st);
    } else {
        rc = sq_splits_make(ck, pk, j->ncases, o->nfolds, o->seed, &sp, st);
    }
    free(ck);
    free(pk);
    if (rc != SQ_OK) return rc;
    for (int c = 0; c < j->ncases; c++)
        j->case_fold[c] = sq_splits_fold_of(&sp, j->case_key[c]);
    if (j->w->rank == 0) {
        char path[SQ_PATH_MAX];
        snprintf(path, sizeof path, "%s/splits.json", o->run_dir);
        rc = sq_splits_save(&sp, path, st);
    }
    sq_splits_free(&sp);
    return rc;
}

/* Validation patients of a fold: a seeded share of its training patients. */
static sq_code split_fold(job *j, int fold, idx_list *train, idx_list *val, idx_list *test_cases,
                          sq_status *st) {
    const sq_train_opts *o = j->o;
    /* distinct training patients, in case order */
    int *pat_of_case = malloc((size_t)j->ncases * sizeof *pat_of_case);
    int *first = malloc((size_t)j->ncases * sizeof *first);
    if (!pat_of_case || !first) {
        free(pat_of_case);
        free(first);
        return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    }
    int np = 0;
    for (int c = 0; c < j->ncases; c++) {
        pat_of_case[c] = -1;
        if (fold >= 0 && j->case_fold[c] == fold) continue;
        int p = -1;
        for (int q = 0; q < np && p < 0; q++)
            if (!strcmp(j->patient_key[first[q]], j->patient_key[c])) p = q;
        if (p < 0) {
            p = np;
            first[np++] = c;
        }
        pat_of_case[c] = p;
    }
    int nval = 0;
    if (o->val_fraction > 0 && np >= 2) {
        nval = (int)ceil(o->val_fraction * np);
        if (nval >= np) nval = np - 1;
    }
    uint32_t *perm = malloc((size_t)(np ? np : 1) * sizeof *perm);
    char *is_val = calloc((size_t)(np ? np : 1), 1);
    sq_code rc = SQ_OK;
    if (!perm || !is_val) rc = sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    if (rc == SQ_OK) {
        sq_rng_permutation(o->seed, 0x7a11u + (uint32_t)(fold + 1), perm, (uint32_t)np);
        for (int k = 0; k < nval; k++)
            is_val[perm[k]] = 1;
        for (int i = 0; i < j->nsamples && rc == SQ_OK; i++) {
            int c = j->sample_case[i];
            if (fold >= 0 && j->case_fold[c] == fold) continue;
            rc = list_push(is_val[pat_of_case[c]] ? val : train, i, st);
        }
        for (int c = 0; c < j->ncases && rc == SQ_OK; c++)
            if (fold >= 0 && j->case_fold[c] == fold) rc = list_push(test_cases, c, st);
    }
    free(perm);
    free(is_val);
    free(pat_of_case);
    free(first);
    if (rc == SQ_OK && train->n == 0)
        rc = sq_fail(st, SQ_ERR_USAGE, "fold %d has no training samples", fold);
    return rc;
}

/* ---- --crop contour: the policy, as the loader, the evaluator and the checkpoint see it ------ */

/* A number of the site's preprocessing JSON (the percentiles of its normalisation). */
static double preproc_number(const job *j, const char *key, double fallback) {
    const char *pp = sq_site_get_info(sq_dataset_site(j->ds, 0))->preprocessing;
    cJSON *o = pp ? cJSON_Parse(pp) : NULL;
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    const double x = cJSON_IsNumber(v) ? v->valuedouble : fallback;
    cJSON_Delete(o);
    return x;
}

static sq_loader_crop crop_policy(const job *j) {
    sq_loader_crop c;
    memset(&c, 0, sizeof c);
    if (!j->o->crop_contour) return c;
    c.on = 1;
    memcpy(c.shape, j->in_shape, sizeof c.shape);
    c.margin = j->o->crop_margin;
    c.jitter = 0.1; /* centre and size, share of the box extent (docs/predict.md) */
    c.lo_pct = preproc_number(j, "norm_lo_percentile", 0);
    c.hi_pct = preproc_number(j, "norm_hi_percentile", 99);
    return c;
}

/* The model's input shape: the crop's (default: the site's) with --crop contour. */
static sq_code input_shape(job *j, sq_status *st) {
    memcpy(j->in_shape, j->shape, sizeof j->in_shape);
    if (!j->o->crop_contour) return SQ_OK;
    const int *c = j->o->crop_shape;
    if (c[0] > 0 || c[1] > 0 || c[2] > 0) {
        if (c[0] < 1 || c[1] < 1 || c[2] < 1)
            return sq_fail(st, SQ_ERR_USAGE, "--crop-shape %dx%dx%d: expected DxHxW, all >= 1",
                           c[0], c[1], c[2]);
        memcpy(j->in_shape, c, sizeof j->in_shape);
    }
    if (!(j->o->crop_margin >= 0 && j->o->crop_margin <= 2))
        return sq_fail(st, SQ_ERR_USAGE, "--crop-margin %g: expected 0..2", j->o->crop_margin);
    j->crop = crop_policy(j);
    return SQ_OK;
}

/* The site's preprocessing with the crop policy, as predict reads it from the checkpoint. */
static void preproc_with_crop(const job *j, const char *pp, char *out, size_t n) {
    cJSON *o = cJSON_Parse(pp && *pp ? pp : "{}");
    if (!o) o = cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(o, "crop");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "crop_margin");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "shape_zyx");
    cJSON_AddStringToObject(o, "crop", "contour");
    cJSON_AddNumberToObject(o, "crop_margin", j->o->crop_margin);
    const int s[3] = {j->in_shape[0], j->in_shape[1], j->in_shape[2]};
    cJSON_AddItemToObject(o, "shape_zyx", cJSON_CreateIntArray(s, 3));
    char *txt = cJSON_PrintUnformatted(o);
    snprintf(out, n, "%s", txt ? txt : "{}");
    free(txt);
    cJSON_Delete(o);
}

/* ---- evaluation: predictions for given inputs, batched at the model's planned size ---------- */

typedef struct evaluator {
    job *j;
    sq_model *m;
    int batch;
    size_t vox; /* D*H*W */
    float *x;   /* [batch][2][vox] */
    float y[64];
    sq_prediction meta[64];
    int n;
    sq_prediction *out; /* appended results */
    int nout, capout;
} evaluator;

static sq_code ev_flush(evaluator *e, sq_status *st) {
    if (e->n == 0) return SQ_OK;
    /* pad a short batch with copies of its last sample (eval-mode BN: no cross-sample effect) */
    for (int k = e->n; k < e->batch; k++)
        memcpy(e->x + (size_t)k * 2 * e->vox, e->x + (size_t)(e->n - 1) * 2 * e->vox,
               2 * e->vox * sizeof(float));
    SQ_TRY(sq_model_forward(e->m, e->x, e->y, st));
    for (int k = 0; k < e->n; k++) {
        if (e->nout == e->capout) {
            int cap = e->capout ? 2 * e->capout : 64;
            sq_prediction *np = realloc(e->out, (size_t)cap * sizeof *np);
            if (!np) return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
            e->out = np;
            e->capout = cap;
        }
        e->meta[k].pred = e->y[k];
        e->out[e->nout++] = e->meta[k];
    }
    e->n = 0;
    return SQ_OK;
}

/* --crop contour: x (2 x in_shape) = predict's preprocessing of the site-grid image and contour
 * (the contour's box, no jitter; sq_volume_crop_contour, then the percentile map). */
static sq_code ev_crop_input(const job *j, const float *image, const uint8_t *contour, float *x,
                             sq_status *st) {
    sq_volume img, con, ci = {0}, cc = {0};
    memset(&img, 0, sizeof img);
    img.dtype = SQ_F32, img.d = j->shape[0], img.h = j->shape[1], img.w = j->shape[2];
    img.data = (void *)image;
    for (int a = 0; a < 4; a++)
        img.affine[a][a] = 1;
    con = img;
    con.dtype = SQ_U8, con.data = (void *)contour;
    const sq_loader_crop c = j->crop;
    sq_code rc = sq_volume_crop_contour(&img, &con, c.shape[0], c.shape[1], c.shape[2], c.margin,
                                        &ci, &cc, st);
    if (rc == SQ_OK) rc = sq_volume_normalise_percentile(&ci, c.lo_pct, c.hi_pct, NULL, NULL, st);
    if (rc == SQ_OK) {
        const size_t n = sq_volume_numel(&ci);
        memcpy(x, sq_volume_f32(&ci), n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            x[n + i] = sq_volume_u8(&cc)[i] ? 1.0f : 0.0f;
    }
    sq_volume_free(&ci);
    sq_volume_free(&cc);
    return rc;
}

/* Queue one input: the image and a binary contour. */
static sq_code ev_add(evaluator *e, const float *image, const uint8_t *contour,
                      const sq_prediction *meta, sq_status *st) {
    float *x = e->x + (size_t)e->n * 2 * e->vox;
    if (e->j->o->crop_contour) {
        SQ_TRY(ev_crop_input(e->j, image, contour, x, st));
    } else {
        memcpy(x, image, e->vox * sizeof(float));
        for (size_t i = 0; i < e->vox; i++)
            x[e->vox + i] = contour[i] ? 1.0f : 0.0f;
    }
    e->meta[e->n++] = *meta;
    if (e->n == e->batch) return ev_flush(e, st);
    return SQ_OK;
}

/* Predict every real contour of `cases` (this rank's share of them), and with `study` the failure
 * cases and the GT of each case. */
static sq_code evaluate_cases(evaluator *e, const int *cases, int ncases, int fold, int study,
                              double naive, sq_status *st) {
    job *j = e->j;
    const size_t grid = (size_t)j->shape[0] * j->shape[1] * j->shape[2]; /* the site's grid */
    uint8_t *tmp = sq_alloc(grid);
    if (!tmp) return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    sq_code rc = SQ_OK;
    for (int k = j->g.rank; k < ncases && rc == SQ_OK; k += j->g.size) {
        int c = cases[k];
        sq_site *site = sq_dataset_site(j->ev, j->case_site[c]);
        const sq_case *meta = sq_site_case_meta(site, j->case_index[c]);
        sq_volume img = {0}, gt = {0};
        rc = sq_site_read_volume(site, j->case_index[c], "image", &img, st);
        if (rc == SQ_OK) rc = sq_site_read_volume(site, j->case_index[c], "gt", &gt, st);
        sq_prediction p;
        memset(&p, 0, sizeof p);
        snprintf(p.site, sizeof p.site, "%.63s", sq_site_get_info(site)->site);
        p.fold = fold;
        p.naive = naive;
        for (int t = 0; t < meta->ncontours && rc == SQ_OK; t++) {
            char what[2 * SQ_ID_MAX];
            snprintf(what, sizeof what, "contours/%s", meta->contours[t].name);
            sq_volume cv = {0};
            rc = sq_site_read_volume(site, j->case_index[c], what, &cv, st);
            if (rc == SQ_OK) {
                snprintf(p.case_id, sizeof p.case_id, "%.60s:%.60s", meta->id,
                         meta->contours[t].name);
                p.category = SQ_CAT_REAL;
                p.target = meta->contours[t].dice;
                rc = ev_add(e, sq_volume_f32(&img), sq_volume_u8(&cv), &p, st);
            }
            sq_volume_free(&cv);
        }
        if (study && rc == SQ_OK) {
            static const int kinds[4] = {SQ_FAIL_EMPTY, SQ_FAIL_NOISE, SQ_FAIL_ONES, SQ_FAIL_SHIFT};
            static const int cats[4] = {SQ_CAT_EMPTY, SQ_CAT_NOISE, SQ_CAT_ONES, SQ_CAT_SHIFTED};
            sq_rng r;
            sq_rng_init(&r, j->o->seed ^ 0xFA11FA11ull, (uint32_t)(fold + 1), (uint32_t)c);
            for (int f = 0; f < 4 && rc == SQ_OK; f++) {
                sq_aug_record rec;
                memset(&rec, 0, sizeof rec);
                sq_failure_contour(kinds[f], &r, sq_volume_u8(&gt), img.d, img.h, img.w, tmp, &rec);
                snprintf(p.case_id, sizeof p.case_id, "%.60s:%s", meta->id,
                         sq_category_name((sq_category)cats[f]));
                p.category = cats[f];
                p.target = sq_dice_u8(tmp, sq_volume_u8(&gt), grid);
                rc = ev_add(e, sq_volume_f32(&img), tmp, &p, st);
            }
            if (rc == SQ_OK) {
                snprintf(p.case_id, sizeof p.case_id, "%.60s:gt", meta->id);
                p.category = SQ_CAT_GT;
                p.target = 1.0;
                rc = ev_add(e, sq_volume_f32(&img), sq_volume_u8(&gt), &p, st);
            }
        }
        sq_volume_free(&img);
        sq_volume_free(&gt);
    }
    if (rc == SQ_OK) rc = ev_flush(e, st);
    sq_free(tmp);
    return rc;
}

/* ---- one fold ----------------------------------------------------------------------------- */

typedef struct fold_state {
    double best_val;
    int best_epoch;
} fold_state;

static void fold_dir(const job *j, int fold, char *buf, size_t n) {
    if (fold < 0)
        snprintf(buf, n, "%s/all", j->o->run_dir);
    else
        snprintf(buf, n, "%s/fold-%d", j->o->run_dir, fold);
}

static sq_code save_fold_state(const char *dir, const fold_state *fs, sq_status *st) {
    char path[SQ_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "best_val_mae", fs->best_val);
    cJSON_AddNumberToObject(o, "best_epoch", fs->best_epoch);
    sq_code rc = sq_json_write_file(path, o, st);
    cJSON_Delete(o);
    return rc;
}

static void load_fold_state(const char *dir, fold_state *fs) {
    char path[SQ_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *o = NULL;
    if (sq_json_read_file(path, &o, NULL) != SQ_OK) return;
    double v = fs->best_val;
    long long e = fs->best_epoch;
    sq_json_get_number(o, "best_val_mae", &v, 1, path, NULL);
    sq_json_get_int(o, "best_epoch", &e, 1, path, NULL);
    fs->best_val = v;
    fs->best_epoch = (int)e;
    cJSON_Delete(o);
}

static sq_code append_curve(const char *dir, int fold, int epoch, double loss, double val,
                            sq_status *st) {
    char path[SQ_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/curves.csv", dir);
    FILE *f = fopen(path, "a");
    if (!f) return sq_fail(st, SQ_ERR_IO, "%s: cannot append", path);
    fprintf(f, "%d,%d,%.8g,%.8g\n", fold < 0 ? 0 : fold, epoch, loss, val);
    if (fclose(f) != 0) return sq_fail(st, SQ_ERR_IO, "%s: write failed", path);
    return SQ_OK;
}

/* Gradient averaging over the data-parallel group (docs/distribution.md, "Collectives").
 *  - MPI, host memory (CPU backend: its native pointer is what MPI reads): the buckets are
 *    all-reduced in place, started from the backward pass's gradient hook as soon as they are
 *    final (overlap).
 *  - MPI, device memory (--comm mpi with CUDA): a host copy after backward, all-reduced, uploaded
 *    back. The oracle of the NCCL path.
 *  - NCCL (--comm nccl, or auto with CUDA): in place on the device buffer on the communicator's
 *    stream, started from the hook after an event on the compute stream (no host sync), averaged
 *    with ncclAvg; the compute stream waits for the comm stream's event before the optimiser. */
#define GRAD_BUCKET_FLOATS ((size_t)1 << 18) /* 1 MiB buckets: 7 for the 1.6 M parameters */

typedef struct grad_sync {
    const sq_group *g;
    sq_backend *be;
    sq_allreduce ar;
    sq_nccl *nc;    /* the NCCL communicator (NCCL path), else NULL */
    void *ready_ev; /* NCCL: recorded on the compute stream at each hook call */
    float *gp;      /* MPI: the buffer being reduced (backend memory or the host copy); NULL when
                       nothing is reduced (one rank, MPI) */
    int overlap;    /* buckets started from the backward hook */
    long steps;     /* statistics: steps, and buckets started while backward still had ops to run */
    long early;
    int mid; /* this step: buckets started by hook calls with from > 0 */
} grad_sync;

static int grad_sync_active(const grad_sync *gs) {
    return gs->nc || gs->gp;
}

static int grad_sync_buckets(const grad_sync *gs) {
    return gs->nc ? sq_nccl_grad_buckets(gs->nc) : gs->ar.nbuckets;
}

static sq_code grad_hook(void *ctx, size_t from, sq_status *st) {
    grad_sync *gs = ctx;
    if (gs->nc) {
        SQ_TRY(gs->be->event_record(gs->be, gs->ready_ev, st));
        SQ_TRY(sq_nccl_grad_ready(gs->nc, from, gs->ready_ev, st));
        if (from > 0) gs->mid = sq_nccl_grad_started(gs->nc);
        return SQ_OK;
    }
    SQ_TRY(sq_allreduce_ready(&gs->ar, from, st));
    if (from > 0) gs->mid = gs->ar.started;
    return SQ_OK;
}

/* Synchronised-BN sums over the group: NCCL in place on the backend's stream; MPI in place on
 * host memory, or staged through the host for device memory (the oracle). */
static sq_code bn_sync_sum(void *ctx, sq_backend *be, sq_buf *buf, size_t off, int n,
                           sq_status *st) {
    const grad_sync *gs = ctx;
    static const char what[] = "MPI_Iallreduce of synchronised-BN sums";
    if (gs->nc)
        return sq_nccl_sum_doubles(gs->nc, (char *)be->buf_native(be, buf) + off, (size_t)n,
                                   be->stream(be), "ncclAllReduce of synchronised-BN sums", st);
    if (!be->device_memory) {
        SQ_TRY(be->sync(be, st));
        return sq_allreduce_sum_doubles_named(
            gs->g, (double *)(void *)((char *)be->buf_native(be, buf) + off), n, what, st);
    }
    double *h = malloc((size_t)n * sizeof *h);
    if (!h) return sq_fail(st, SQ_ERR_NOMEM, "synchronised BN: out of memory (%d sums)", n);
    sq_code rc = be->download(be, h, buf, off, (size_t)n * sizeof *h, st);
    if (rc == SQ_OK) rc = sq_allreduce_sum_doubles_named(gs->g, h, n, what, st);
    if (rc == SQ_OK) rc = be->upload(be, buf, off, h, (size_t)n * sizeof *h, st);
    if (rc == SQ_OK) rc = be->sync(be, st); /* h is freed next */
    free(h);
    return rc;
}

/* --comm: "nccl" needs device memory and an NCCL build; "auto" takes NCCL where both hold and
 * the group has more than one rank. An explicit "nccl" runs NCCL even on one rank (checks). */
static sq_code comm_choice(const job *j, const sq_backend *be, int *use_nccl, sq_status *st) {
    const char *c = j->o->comm ? j->o->comm : "auto";
    *use_nccl = 0;
    if (!strcmp(c, "mpi")) return SQ_OK;
    int can = be->device_memory && sq_nccl_available();
    if (!strcmp(c, "nccl")) {
        if (!be->device_memory)
            return sq_fail(st, SQ_ERR_USAGE, "--comm nccl: needs --device cuda (backend is %s)",
                           be->name);
        if (!sq_nccl_available())
            return sq_fail(st, SQ_ERR_UNSUPPORTED,
                           "--comm nccl: this segqa was built without NCCL");
        *use_nccl = 1;
        return SQ_OK;
    }
    *use_nccl = can && j->g.size > 1;
    return SQ_OK;
}

static sq_code grad_sync_init_nccl(grad_sync *gs, job *j, sq_model *m, size_t n, sq_status *st) {
    SQ_TRY(sq_nccl_create(&j->g, -1, &gs->nc, st)); /* the device the backend chose */
    SQ_TRY(gs->be->event_create(gs->be, &gs->ready_ev, st));
    SQ_TRY(sq_nccl_grad_init(gs->nc, gs->be->buf_native(gs->be, sq_model_grads_buf(m)), n,
                             GRAD_BUCKET_FLOATS, st));
    gs->overlap = 1;
    sq_model_set_grad_hook(m, grad_hook, gs);
    return SQ_OK;
}

static sq_code grad_sync_init(grad_sync *gs, job *j, sq_model *m, float *host, size_t n,
                              sq_status *st) {
    memset(gs, 0, sizeof *gs);
    gs->g = &j->g;
    gs->be = sq_model_backend(m);
    int use_nccl = 0;
    SQ_TRY(comm_choice(j, gs->be, &use_nccl, st));
    if (use_nccl) return grad_sync_init_nccl(gs, j, m, n, st);
    if (j->g.size == 1) return SQ_OK;
    gs->overlap = !gs->be->device_memory;
    gs->gp = gs->overlap ? gs->be->buf_native(gs->be, sq_model_grads_buf(m)) : host;
    sq_code rc = sq_allreduce_init(&gs->ar, &j->g, gs->gp, n, GRAD_BUCKET_FLOATS, st);
    if (rc != SQ_OK) {
        gs->gp = NULL;
        return rc;
    }
    if (gs->overlap) sq_model_set_grad_hook(m, grad_hook, gs);
    return SQ_OK;
}

/* After backward: finish (or, without overlap, do) the average. */
static sq_code grad_sync_finish(grad_sync *gs, sq_model *m, size_t n, sq_status *st) {
    if (!grad_sync_active(gs)) return SQ_OK;
    sq_backend *be = gs->be;
    gs->steps++;
    gs->early += gs->mid;
    gs->mid = 0;
    if (gs->nc) { /* the compute stream waits for the comm stream: still no host sync */
        void *done = NULL;
        SQ_TRY(be->event_record(be, gs->ready_ev, st));
        SQ_TRY(sq_nccl_grad_finish(gs->nc, gs->ready_ev, &done, NULL, st));
        return be->stream_wait(be, done, st);
    }
    if (!gs->overlap) SQ_TRY(sq_model_get_grads(m, gs->gp, st));
    SQ_TRY(sq_allreduce_finish(&gs->ar, st));
    if (!gs->overlap)
        SQ_TRY(be->upload(be, sq_model_grads_buf(m), 0, gs->gp, n * sizeof(float), st));
    return SQ_OK;
}

static void grad_sync_report(const grad_sync *gs, int fold) {
    if (!grad_sync_active(gs) || gs->steps == 0) return;
    sq_info("fold %d: gradient all-reduce: %.2f of %d buckets started while backward ran, per "
            "step (%ld steps, %s, %s)",
            fold, (double)gs->early / (double)gs->steps, grad_sync_buckets(gs), gs->steps,
            gs->overlap ? "overlapped" : "after backward", gs->nc ? "NCCL" : "MPI");
}

static void grad_sync_free(grad_sync *gs, sq_model *m) {
    if (gs->overlap && m) sq_model_set_grad_hook(m, NULL, NULL);
    if (gs->gp) sq_allreduce_free(&gs->ar);
    if (gs->nc) {
        sq_status st;
        sq_status_clear(&st);
        (void)sq_nccl_quiesce(gs->nc, &st);
        sq_nccl_destroy(gs->nc);
    }
    if (gs->ready_ev) gs->be->event_destroy(gs->be, gs->ready_ev);
    memset(gs, 0, sizeof *gs);
}

/* Mean absolute error of the real contours of `cases`, over the whole group. */
static sq_code validate(job *j, evaluator *e, const int *cases, int ncases, double *mae,
                        sq_status *st) {
    e->nout = 0;
    SQ_TRY(evaluate_cases(e, cases, ncases, -1, 0, 0.0, st));
    double acc[2] = {0, 0};
    for (int i = 0; i < e->nout; i++) {
        acc[0] += fabs(e->out[i].pred - e->out[i].target);
        acc[1] += 1;
    }
    SQ_TRY(sq_allreduce_sum_doubles_named(&j->g, acc, 2, "MPI_Iallreduce of validation sums", st));
    *mae = acc[1] > 0 ? acc[0] / acc[1] : -1;
    return SQ_OK;
}

static sq_code push_to(sq_prediction **list, int *len, int *cap, const sq_prediction *p, int n,
                       sq_status *st) {
    if (n == 0) return SQ_OK; /* p may be NULL then (an evaluator that produced nothing) */
    if (*len + n > *cap) {
        int c = *cap ? *cap : 64;
        while (c < *len + n)
            c *= 2;
        sq_prediction *np = realloc(*list, (size_t)c * sizeof *np);
        if (!np) return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
        *list = np;
        *cap = c;
    }
    memcpy(*list + *len, p, (size_t)n * sizeof *p);
    *len += n;
    return SQ_OK;
}

static sq_code push_predictions(job *j, const sq_prediction *p, int n, sq_status *st) {
    return push_to(&j->pred, &j->npred, &j->cappred, p, n, st);
}

/* Cases that hold the given samples, in case order without repeats. */
static sq_code cases_of(job *j, const idx_list *samples, idx_list *cases, sq_status *st) {
    int last = -1;
    for (int k = 0; k < samples->n; k++) {
        int c = j->sample_case[samples->v[k]];
        if (c != last) SQ_TRY(list_push(cases, c, st));
        last = c;
    }
    return SQ_OK;
}

/* The checkpoint's record of the step and of the site files' preprocessing (for `predict`). */
static void ckpt_info(const job *j, long gstep, int epoch, sq_ckpt_info *info) {
    memset(info, 0, sizeof *info);
    info->step = gstep;
    info->epoch = epoch;
    const char *pp = sq_site_get_info(sq_dataset_site(j->ds, 0))->preprocessing;
    if (j->o->crop_contour)
        preproc_with_crop(j, pp, info->preproc_config, sizeof info->preproc_config);
    else
        snprintf(info->preproc_config, sizeof info->preproc_config, "%s", pp ? pp : "{}");
    if (j->calibration) snprintf(info->calibration, sizeof info->calibration, "%s", j->calibration);
}

/* The fold's backend, by name (--device); the rank's GPU follows its local rank. */
static sq_code create_backend(job *j, int fold, sq_backend **be, sq_status *st) {
    sq_backend_opts bo = sq_backend_opts_default();
    bo.threads = j->o->threads;
    bo.local_rank = j->w->local_rank;
    bo.deterministic = j->o->deterministic;
    char chosen[512];
    *be = sq_backend_create(j->o->device ? j->o->device : "cpu", &bo, chosen, sizeof chosen, st);
    if (!*be) return st->code ? st->code : SQ_ERR_INTERNAL;
    sq_debug("fold %d: backend %s", fold, chosen);
    return SQ_OK;
}

/* ---- non-finite steps (--on-nan stop|skip) ----
 * After the gradient all-reduce every member of a group holds the same gradients, so the norm
 * check agrees by itself; the loss is local, so the flag is reduced over the group, and the rank
 * whose own loss was not finite names its batch's cases. A skipped step applies no Adam update and
 * puts back the BatchNorm running statistics its forward pass updated. */
typedef struct nan_guard {
    float *state; /* BN running statistics before the step (skip mode) */
    size_t ns;
    long skipped;
} nan_guard;

static void batch_cases(const job *j, const sq_batch *b, char *out, size_t n) {
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < b->n && k + 1 < n; i++) {
        int w = snprintf(out + k, n - k, "%s%s", i ? ", " : "",
                         j->case_key[j->sample_case[b->sample[i]]]);
        if (w < 0) break;
        k += (size_t)w;
    }
}

static sq_code nan_guard_begin(nan_guard *g, const sq_train_opts *o, sq_model *m, sq_status *st) {
    if (!o->on_nan_skip || !g->state) return SQ_OK;
    return sq_model_get_state(m, g->state, st);
}

/* *bad: 0 fine, 1 not finite. The culprit rank (own loss not finite) or, when no loss was, every
 * rank (the gradient) logs one line naming its cases. */
static sq_code step_check(job *j, sq_backend *be, sq_model *m, size_t np, float loss,
                          const char *cases, int fold, long step, int *bad, sq_status *st) {
    double norm = 0;
    SQ_TRY(sq_grad_norm(be, sq_model_grads_buf(m), np, &norm, st));
    double flags[2] = {isfinite(loss) ? 0 : 1, isfinite(norm) ? 0 : 1};
    int mine = flags[0] > 0;
    if (j->g.size > 1) SQ_TRY(sq_allreduce_sum_doubles(&j->g, flags, 2, st));
    *bad = flags[0] > 0 || flags[1] > 0;
    if (*bad && (mine || flags[0] == 0))
        sq_warn("fold %d step %ld: %s is not finite (loss %g, gradient norm %g) for the batch of "
                "cases %s",
                fold, step, mine ? "the loss" : "the gradient", (double)loss, norm, cases);
    return SQ_OK;
}

static sq_code nan_guard_reject(nan_guard *g, const sq_train_opts *o, sq_model *m, int fold,
                                long step, const char *cases, sq_status *st) {
    if (!o->on_nan_skip)
        return sq_fail(st, SQ_ERR_RANGE,
                       "fold %d step %ld: non-finite loss or gradient (this rank's cases %s); "
                       "stopped as --on-nan stop says (--on-nan skip drops such steps)",
                       fold, step, cases);
    g->skipped++;
    return g->state ? sq_model_set_state(m, g->state, st) : SQ_OK;
}

/* Everything one fold's training holds, so that its phases are separate functions. */
typedef struct fold_run {
    job *j;
    int fold;
    char dir[SQ_PATH_MAX], last[SQ_PATH_MAX + 16], best[SQ_PATH_MAX + 16];
    idx_list train, val, test_cases, val_cases;
    double naive; /* mean Dice of the training samples */
    sq_backend *be;
    sq_model *m;
    sq_adam_opt *opt;
    sq_loader *L;
    sq_feed feed; /* loader batches into the model's input (pinned + copy stream on a GPU) */
    float *host;  /* np or ns floats: broadcasts and host-staged all-reduce */
    size_t np, ns;
    evaluator ev;
    grad_sync gs;
    sq_bn_sync bns;
    nan_guard ng;
    long gstep;
    int spe; /* steps per epoch */
    fold_state fs;
    double last_loss;
    sq_recal recal; /* the estimate's map, fitted after training (identity until then) */
} fold_run;

/* Splits, the naive mean, backend, model, optimiser. */
static sq_code fold_setup(fold_run *f, sq_status *st) {
    job *j = f->j;
    const sq_train_opts *o = j->o;
    fold_dir(j, f->fold, f->dir, sizeof f->dir);
    snprintf(f->last, sizeof f->last, "%s/last.h5", f->dir);
    snprintf(f->best, sizeof f->best, "%s/best.h5", f->dir);
    if (j->g.rank == 0) SQ_TRY(sq_mkdirs(f->dir, st));
    SQ_TRY(split_fold(j, f->fold, &f->train, &f->val, &f->test_cases, st));
    SQ_TRY(cases_of(j, &f->val, &f->val_cases, st));
    for (int k = 0; k < f->train.n; k++)
        f->naive += sq_dataset_sample(j->ds, f->train.v[k])->dice;
    f->naive = f->train.n ? f->naive / f->train.n : 0;

    sq_model_config mc = o->model;
    mc.in_channels = 2;
    mc.depth = j->in_shape[0];
    mc.height = j->in_shape[1];
    mc.width = j->in_shape[2];
    memcpy(mc.spacing, j->spacing, sizeof mc.spacing);
    SQ_TRY(create_backend(j, f->fold, &f->be, st));
    SQ_TRY(sq_model_create(&mc, f->be, &f->m, st));
    SQ_TRY(sq_model_init(f->m, o->seed, st));
    SQ_TRY(sq_model_plan(f->m, o->batch, 1, st));
    f->np = sq_model_params_floats(f->m);
    f->ns = sq_model_state_floats(f->m);
    sq_adam_config ac = sq_adam_config_default();
    SQ_TRY(sq_adam_create(f->be, f->np, &ac, &f->opt, st));
    f->host = malloc((f->np > f->ns ? f->np : f->ns) * sizeof(float) + 64);
    return f->host ? SQ_OK : sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
}

/* Resume from last.h5, or start every member from group rank 0's parameters. */
static sq_code fold_resume(fold_run *f, sq_status *st) {
    job *j = f->j;
    if (j->g.rank == 0 &&
        sq_checkpoint_remove_stale(f->last) + sq_checkpoint_remove_stale(f->best) > 0)
        sq_warn("fold %d: removed the temporary checkpoint of a writer that died", f->fold);
    if (sq_file_exists(f->last)) {
        sq_ckpt_info info;
        SQ_TRY(sq_checkpoint_load(f->last, f->m, f->opt, &info, st));
        f->gstep = info.step;
        load_fold_state(f->dir, &f->fs);
        sq_info("fold %d: resuming from %s at step %ld", f->fold, f->last, f->gstep);
        return SQ_OK;
    }
    if (j->g.size == 1) return SQ_OK;
    SQ_TRY(sq_model_get_params(f->m, f->host, st));
    SQ_TRY(sq_bcast_floats(&j->g, f->host, f->np, 0, st));
    SQ_TRY(sq_model_set_params(f->m, f->host, st));
    SQ_TRY(sq_model_get_state(f->m, f->host, st));
    SQ_TRY(sq_bcast_floats(&j->g, f->host, f->ns, 0, st));
    return sq_model_set_state(f->m, f->host, st);
}

/* The loader (its batch ring pinned where the backend can) and the feed into the model. */
static sq_code fold_loader_create(fold_run *f, sq_loader_config *lc, sq_status *st) {
    const int *s = f->j->in_shape;
    lc->ring_alloc = sq_feed_ring_allocator(f->be);
    lc->crop = f->j->crop;
    SQ_TRY(sq_loader_create(f->j->ds, lc, &f->L, st));
    f->spe = sq_loader_steps(f->L);
    const size_t xbytes = (size_t)lc->batch * 2 * (size_t)s[0] * s[1] * s[2] * sizeof(float);
    return sq_feed_init(&f->feed, f->be, f->L, xbytes, st);
}

/* The loader of the fold's training shard, the evaluator, gradient and BN sync, the NaN guard. */
static sq_code fold_pipeline(fold_run *f, sq_status *st) {
    job *j = f->j;
    const sq_train_opts *o = j->o;
    sq_loader_config lc = sq_loader_config_default();
    lc.batch = o->batch;
    lc.workers = o->workers;
    lc.seed = o->seed + (uint64_t)(f->fold + 1) * 0x9E3779B97F4A7C15ull;
    lc.rank = j->g.rank;
    lc.world = j->g.size;
    lc.subset = f->train.v;
    lc.nsubset = f->train.n;
    if (!strcmp(o->augment, "none")) {
        lc.augment = 0;
        lc.swap_pairs = 0;
    } else if (!strcmp(o->augment, "robust")) {
        lc.aug.fail_rate = (float)o->fail_rate;
        lc.aug.fail_kinds = SQ_FAIL_ALL;
    }
    if (lc.augment) lc.aug.gt_rate = (float)o->gt_rate;
    SQ_TRY(fold_loader_create(f, &lc, st));

    f->ev.j = j;
    f->ev.m = f->m;
    f->ev.batch = o->batch;
    f->ev.vox = (size_t)j->in_shape[0] * j->in_shape[1] * j->in_shape[2];
    f->ev.x = sq_alloc((size_t)o->batch * 2 * f->ev.vox * sizeof(float));
    if (!f->ev.x) return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");

    f->bns.sum = bn_sync_sum;
    f->bns.ctx = &f->gs;
    SQ_TRY(grad_sync_init(&f->gs, j, f->m, f->host, f->np, st));
    if ((j->g.size > 1 || f->gs.nc) && o->sync_bn) sq_model_set_bn_sync(f->m, &f->bns);

    f->ng.ns = f->ns;
    if (o->on_nan_skip) {
        f->ng.state = malloc((f->ns ? f->ns : 1) * sizeof(float));
        if (!f->ng.state) return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    }
    return SQ_OK;
}

/* One training step on batch b (released here). *taken: the step updated the parameters (0 when
 * --on-nan skip rejected it). */
static sq_code fold_step(fold_run *f, sq_batch *b, int epoch, float *loss, int *taken,
                         sq_status *st) {
    job *j = f->j;
    const sq_train_opts *o = j->o;
    sq_model *m = f->m;
    *taken = 0;
    sq_watchdog_set_step(f->gstep);
    char cases[512];
    batch_cases(j, b, cases, sizeof cases);
    sq_code rc = nan_guard_begin(&f->ng, o, m, st);
    if (rc == SQ_OK) rc = sq_feed_forward(&f->feed, m, b, st);
    if (rc == SQ_OK) rc = sq_model_loss(m, b->y, loss, st);
    const sq_code released = sq_feed_release(&f->feed, b, st);
    SQ_TRY(rc);
    SQ_TRY(released);
    SQ_TRY(sq_model_backward(m, st));
    SQ_TRY(grad_sync_finish(&f->gs, m, f->np, st));
    int bad = 0;
    SQ_TRY(step_check(j, f->be, m, f->np, *loss, cases, f->fold, f->gstep, &bad, st));
    if (bad) {
        SQ_TRY(nan_guard_reject(&f->ng, o, m, f->fold, f->gstep, cases, st));
        f->gstep++; /* the batch is consumed: resume arithmetic counts it */
        return SQ_OK;
    }
    if (o->clip > 0)
        SQ_TRY(sq_clip_grad_norm(f->be, sq_model_grads_buf(m), f->np, o->clip, NULL, st));
    const float lr = (float)sq_lr_at(&o->lr, epoch, f->gstep);
    SQ_TRY(sq_adam_step(f->opt, sq_model_params_buf(m), sq_model_grads_buf(m), lr, st));
    f->gstep++;
    *taken = 1;
    return SQ_OK;
}

/* The steps of one epoch; loss_acc gets the sum and count of the losses. *skip: batches still to
 * skip after a resume. */
static sq_code fold_epoch_steps(fold_run *f, int epoch, int *skip, double loss_acc[2],
                                int *interrupted, sq_status *st) {
    job *j = f->j;
    SQ_TRY(sq_feed_start_epoch(&f->feed, (uint32_t)epoch, st));
    for (;;) {
        sq_batch *b = NULL;
        SQ_TRY(sq_feed_next(&f->feed, &b, st));
        if (!b) return SQ_OK;
        if (*skip > 0) { /* batches done before the interruption */
            (*skip)--;
            SQ_TRY(sq_feed_release(&f->feed, b, st));
            continue;
        }
        float loss = 0;
        int taken = 0;
        SQ_TRY(fold_step(f, b, epoch, &loss, &taken, st));
        if (!taken) continue;
        loss_acc[0] += loss;
        loss_acc[1] += 1;
        if (j->o->max_steps > 0 && f->gstep >= j->o->max_steps) sq_stop_set(1);
        int stop = 0;
        SQ_TRY(sq_stop_agreed(j->g.comm, &stop, st));
        if (stop) *interrupted = 1;
        if (j->w->rank == 0) sq_hub_poll(&j->hub, st);
        if (*interrupted) return SQ_OK;
    }
}

/* Stopped by a signal (or --stop-after-steps): checkpoint on group rank 0, then every member waits.
 */
static sq_code fold_checkpoint_stop(fold_run *f, sq_status *st) {
    job *j = f->j;
    sq_code rc = SQ_OK;
    if (j->g.rank == 0) {
        sq_ckpt_info info;
        ckpt_info(j, f->gstep, (int)(f->gstep / f->spe), &info);
        rc = sq_checkpoint_save(f->last, f->m, f->opt, &info, st);
        if (rc == SQ_OK) rc = save_fold_state(f->dir, &f->fs, st);
        sq_warn("fold %d: stopped after step %ld; checkpoint %s", f->fold, f->gstep, f->last);
    }
    sq_code r2 = sq_comm_barrier(j->g.comm, "MPI_Ibarrier after the checkpoint", st);
    return rc == SQ_OK ? r2 : rc;
}

/* After epoch `done` (1-based): the group's mean loss, validation when due, checkpoints, curve. */
static sq_code fold_end_epoch(fold_run *f, int done, double loss_acc[2], sq_status *st) {
    job *j = f->j;
    const sq_train_opts *o = j->o;
    SQ_TRY(
        sq_allreduce_sum_doubles_named(&j->g, loss_acc, 2, "MPI_Iallreduce of the epoch loss", st));
    const double loss = loss_acc[1] > 0 ? loss_acc[0] / loss_acc[1] : NAN;
    f->last_loss = loss;
    double vmae = -1;
    if (f->val_cases.n > 0 &&
        (done % (o->val_every > 0 ? o->val_every : 1) == 0 || done == o->epochs)) {
        sq_model_set_training(f->m, 0);
        SQ_TRY(validate(j, &f->ev, f->val_cases.v, f->val_cases.n, &vmae, st));
        sq_model_set_training(f->m, 1);
    }
    if (j->g.rank != 0) return SQ_OK;
    sq_ckpt_info info;
    ckpt_info(j, f->gstep, done, &info);
    if (vmae >= 0 && vmae < f->fs.best_val) {
        f->fs.best_val = vmae;
        f->fs.best_epoch = done;
        SQ_TRY(sq_checkpoint_save(f->best, f->m, NULL, &info, st));
    }
    SQ_TRY(sq_checkpoint_save(f->last, f->m, f->opt, &info, st));
    SQ_TRY(save_fold_state(f->dir, &f->fs, st));
    SQ_TRY(append_curve(f->dir, f->fold, done, loss, vmae, st));
    sq_fold_status s = {f->fold, done, o->epochs, 0, loss, vmae};
    SQ_TRY(sq_hub_post(&j->hub, &s, st));
    sq_debug("fold %d epoch %d/%d loss %.5f val MAE %.4f", f->fold, done, o->epochs, loss, vmae);
    return SQ_OK;
}

/* The epochs from the resume point on. */
static sq_code fold_train(fold_run *f, int *interrupted, sq_status *st) {
    const int start_epoch = (int)(f->gstep / f->spe);
    int skip = (int)(f->gstep % f->spe);
    const sq_train_opts *o = f->j->o;
    for (int epoch = start_epoch; epoch < o->epochs && !*interrupted; epoch++) {
        /* --bn-freeze-epochs: BN on the running statistics the model is evaluated with */
        sq_model_set_training(f->m, epoch < o->epochs - o->bn_freeze_epochs);
        double loss_acc[2] = {0, 0};
        SQ_TRY(fold_epoch_steps(f, epoch, &skip, loss_acc, interrupted, st));
        if (*interrupted) return fold_checkpoint_stop(f, st);
        SQ_TRY(fold_end_epoch(f, epoch + 1, loss_acc, st));
    }
    return SQ_OK;
}

/* The last model on the fold's validation patients: real contours and, with the failure study,
 * failures and the GT, kept apart from the test predictions (run_dir/validation/). This is what a
 * method is chosen on: per Dice band and per category, without touching a test fold. */
static sq_code fold_validation_study(fold_run *f, sq_status *st) {
    job *j = f->j;
    if (f->val_cases.n == 0) return SQ_OK;
    sq_model_set_training(f->m, 0);
    f->ev.nout = 0;
    SQ_TRY(evaluate_cases(&f->ev, f->val_cases.v, f->val_cases.n, f->fold < 0 ? 0 : f->fold,
                          j->o->failures, f->naive, st));
    return push_to(&j->vpred, &j->nvpred, &j->capvpred, f->ev.out, f->ev.nout, st);
}

/* The estimate's map (recal.h) from this rank's share of the fold's validation predictions
 * (raw, the last model's): gathered on group rank 0, fitted there, shared with the group. The
 * identity with --recalibrate off or without validation patients. */
static sq_code fold_fit_recal(fold_run *f, const sq_prediction *val, int nval, sq_status *st) {
    job *j = f->j;
    f->recal = sq_recal_identity();
    if (!j->o->recalibrate) return SQ_OK;
    const sq_world gw = {j->g.comm, j->g.rank, j->g.size, -1, 0};
    sq_prediction *all = NULL;
    int nall = 0;
    SQ_TRY(sq_gather_records(&gw, val, nval, sizeof *val, (void **)&all, &nall, st));
    double prm[5] = {0, 0, 0, 0, 0}; /* a, b, n, mse_raw, mse: group rank 0's, 0 elsewhere */
    if (j->g.rank == 0) {
        sq_recal r = sq_recal_identity();
        double *xy = malloc(sizeof(double) * 2 * (size_t)(nall ? nall : 1));
        if (xy) { /* out of memory: the identity */
            for (int i = 0; i < nall; i++)
                xy[i] = all[i].pred, xy[nall + i] = all[i].target;
            r = sq_recal_fit(xy, xy + nall, nall);
        }
        free(xy);
        prm[0] = r.a, prm[1] = r.b, prm[2] = r.n, prm[3] = r.mse_raw, prm[4] = r.mse;
    }
    free(all);
    SQ_TRY(
        sq_allreduce_sum_doubles_named(&j->g, prm, 5, "MPI_Iallreduce of the recalibration", st));
    f->recal =
        (sq_recal){.a = prm[0], .b = prm[1], .n = (int)prm[2], .mse_raw = prm[3], .mse = prm[4]};
    if (j->g.rank == 0)
        sq_info("fold %d: estimate map sigmoid(%.3f logit + %.3f) from %d validation samples "
                "(their MSE %.4f -> %.4f)",
                f->fold, f->recal.a, f->recal.b, f->recal.n, f->recal.mse_raw, f->recal.mse);
    return SQ_OK;
}

/* The map into the fold's last.h5, and into best.h5 when that holds the same (last) weights;
 * an older best.h5 keeps none (identity): the map was fitted on the last model's estimates. */
static sq_code fold_store_recal(fold_run *f, sq_status *st) {
    job *j = f->j;
    if (j->g.rank != 0 || !j->o->recalibrate) return SQ_OK;
    char text[512], path[SQ_PATH_MAX + 32];
    sq_recal_to_text(&f->recal, text, sizeof text);
    snprintf(path, sizeof path, "%s/estimate_map.json", f->dir); /* for metrics.json */
    SQ_TRY(sq_write_file_atomic(path, text, strlen(text), st));
    if (sq_file_exists(f->last)) SQ_TRY(sq_checkpoint_set_attr(f->last, "recalibration", text, st));
    if (f->fs.best_epoch == j->o->epochs && sq_file_exists(f->best))
        SQ_TRY(sq_checkpoint_set_attr(f->best, "recalibration", text, st));
    return SQ_OK;
}

/* After training: the validation study (raw estimates), the map fitted on it, then the test fold
 * (real contours and the failure study) through the map; post the fold's final status. */
static sq_code fold_test(fold_run *f, sq_code rc, int interrupted, sq_status *st) {
    job *j = f->j;
    const sq_train_opts *o = j->o;
    if (rc == SQ_OK && !interrupted) {
        f->ev.nout = 0;
        rc = fold_validation_study(f, st);
        if (rc == SQ_OK) rc = fold_fit_recal(f, f->ev.out, f->ev.nout, st);
        if (rc == SQ_OK) rc = fold_store_recal(f, st);
    }
    if (rc == SQ_OK && !interrupted && f->fold >= 0) {
        sq_model_set_training(f->m, 0);
        f->ev.nout = 0;
        rc = evaluate_cases(&f->ev, f->test_cases.v, f->test_cases.n, f->fold, o->failures,
                            f->naive, st);
        for (int i = 0; rc == SQ_OK && i < f->ev.nout; i++)
            f->ev.out[i].pred = sq_recal_apply(&f->recal, f->ev.out[i].pred);
        if (rc == SQ_OK) rc = push_predictions(j, f->ev.out, f->ev.nout, st);
    }
    if (j->g.rank == 0 && !interrupted) {
        sq_fold_status s = {f->fold,      o->epochs,
                            o->epochs,    1,
                            f->last_loss, isfinite(f->fs.best_val) ? f->fs.best_val : -1.0};
        sq_code r2 = sq_hub_post_final(&j->hub, &s, st);
        if (rc == SQ_OK) rc = r2;
    }
    return rc;
}

static void fold_free(fold_run *f) {
    if (f->j->g.rank == 0) grad_sync_report(&f->gs, f->fold);
    if (f->j->g.rank == 0 && f->ng.skipped > 0)
        sq_warn("fold %d: %ld step(s) skipped for a non-finite loss or gradient (--on-nan skip)",
                f->fold, f->ng.skipped);
    sq_feed_free(&f->feed);
    sq_loader_destroy(f->L);
    free(f->ng.state);
    grad_sync_free(&f->gs, f->m);
    if (f->m) sq_model_set_bn_sync(f->m, NULL);
    free(f->ev.out);
    sq_free(f->ev.x);
    free(f->host);
    sq_adam_destroy(f->opt);
    sq_model_destroy(f->m);
    if (f->be) f->be->destroy(f->be);
    free(f->train.v);
    free(f->val.v);
    free(f->test_cases.v);
    free(f->val_cases.v);
}

/* One fold (or the one model of K = 0) on this rank's group: set up, resume, train, test. */
static sq_code train_fold(job *j, int fold, int *interrupted, sq_status *st) {
    fold_run *f = calloc(1, sizeof *f);
    if (!f) return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    f->j = j;
    f->fold = fold;
    f->fs.best_val = INFINITY;
    f->fs.best_epoch = -1;
    sq_code rc = fold_setup(f, st);
    if (rc == SQ_OK) rc = fold_resume(f, st);
    if (rc == SQ_OK) rc = fold_pipeline(f, st);
    if (rc == SQ_OK) rc = fold_train(f, interrupted, st);
    sq_feed_free(&f->feed);
    sq_loader_destroy(f->L); /* its reader thread owns HDF5: the test reads through ev */
    f->L = NULL;
    rc = fold_test(f, rc, *interrupted, st);
    fold_free(f);
    free(f);
    return rc;
}

/* Merge the per-fold curves into run_dir/curves.csv (rank 0). */
static sq_code merge_curves(const job *j, sq_status *st) {
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/curves.csv", j->o->run_dir);
    size_t cap = 4096, len = 0;
    char *all = malloc(cap);
    if (!all) return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    len = (size_t)snprintf(all, cap, "fold,epoch,train_loss,val_mae\n");
    int nf = j->o->nfolds ? j->o->nfolds : 1;
    for (int f = 0; f < nf; f++) {
        char dir[SQ_PATH_MAX], file[SQ_PATH_MAX + 16];
        fold_dir(j, j->o->nfolds ? f : -1, dir, sizeof dir);
        snprintf(file, sizeof file, "%s/curves.csv", dir);
        char *text = NULL;
        size_t n = 0;
        if (sq_read_file(file, &text, &n, NULL) != SQ_OK) continue;
        if (len + n + 1 > cap) {
            while (len + n + 1 > cap)
                cap *= 2;
            char *na = realloc(all, cap);
            if (!na) {
                free(text);
                free(all);
                return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
            }
            all = na;
        }
        memcpy(all + len, text, n);
        len += n;
        free(text);
    }
    sq_code rc = sq_write_file_atomic(path, all, len, st);
    free(all);
    return rc;
}

/* Each fold's best validation MAE (its state.json) into metrics.json (rank 0, after the report). */
static sq_code write_validation(const job *j, sq_status *st) {
    int nf = j->o->nfolds;
    double *best = malloc((size_t)nf * sizeof *best);
    int *epoch = malloc((size_t)nf * sizeof *epoch);
    char **map = calloc((size_t)nf, sizeof *map);
    sq_code rc = best && epoch && map ? SQ_OK : sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    for (int f = 0; rc == SQ_OK && f < nf; f++) {
        char dir[SQ_PATH_MAX], path[SQ_PATH_MAX + 32];
        fold_dir(j, f, dir, sizeof dir);
        fold_state fs = {INFINITY, -1};
        load_fold_state(dir, &fs);
        best[f] = fs.best_val;
        epoch[f] = fs.best_epoch;
        snprintf(path, sizeof path, "%s/estimate_map.json", dir);
        size_t len;
        if (sq_file_exists(path)) sq_read_file(path, &map[f], &len, NULL); /* absent: off */
    }
    if (rc == SQ_OK)
        rc = sq_report_add_validation(j->o->run_dir, best, epoch, (const char *const *)map, nf,
                                      j->o->val_fraction, st);
    for (int f = 0; map && f < nf; f++)
        free(map[f]);
    free(map);
    free(best);
    free(epoch);
    return rc;
}

/* --calibration: checked now (a bad file leaves no run folder), kept as compact JSON for the
 * checkpoints. */
static sq_code load_calibration(job *j, sq_status *st) {
    const char *path = j->o->calibration_path;
    if (!path || !*path) return SQ_OK;
    sq_calibration c;
    SQ_TRY(sq_calib_read_file(path, &c, st));
    cJSON *cj = sq_calib_to_json(&c);
    j->calibration = cj ? cJSON_PrintUnformatted(cj) : NULL;
    cJSON_Delete(cj);
    if (!j->calibration) return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    if (strlen(j->calibration) >= sizeof((sq_ckpt_info *)0)->calibration)
        return sq_fail(st, SQ_ERR_INTERNAL, "%s: calibration too large for a checkpoint", path);
    return SQ_OK;
}

/* Interval coverage on held-out folds at 0.8, 0.9 and 0.95 into metrics.json; the 0.9 table is
 * printed. */
static sq_code write_coverage(const job *j, const sq_prediction *all, int nall, sq_status *st) {
    static const double levels[3] = {0.8, 0.9, 0.95};
    cJSON *arr = cJSON_CreateArray();
    sq_code rc = SQ_OK;
    for (int k = 0; k < 3 && rc == SQ_OK; k++) {
        sq_coverage_table t;
        rc = sq_calib_crossfold(all, nall, levels[k], &t, st);
        if (rc != SQ_OK) break;
        cJSON_AddItemToArray(arr, sq_coverage_to_json(&t));
        if (k == 1) {
            printf("\n");
            sq_coverage_print(stdout, &t);
        }
    }
    if (rc == SQ_OK)
        rc = sq_report_add_section(j->o->run_dir, "intervals", arr, st);
    else
        cJSON_Delete(arr);
    return rc;
}

/* The intervals: fitted on every test prediction (out of fold), written to run_dir/calibration.json
 * and into each fold's checkpoints; their coverage on held-out folds goes to metrics.json. */
static sq_code write_calibration(const job *j, const sq_prediction *all, int nall, sq_status *st) {
    double *y = malloc(sizeof(double) * (size_t)(nall ? nall : 1));
    double *e = malloc(sizeof(double) * (size_t)(nall ? nall : 1));
    if (!y || !e) {
        free(y), free(e);
        return sq_fail(st, SQ_ERR_NOMEM, "trainer: out of memory");
    }
    for (int i = 0; i < nall; i++)
        y[i] = all[i].target, e[i] = all[i].pred;
    sq_calibration c;
    sq_code rc = sq_calib_fit(y, e, nall, &c, st);
    free(y), free(e);
    if (rc != SQ_OK) return rc;
    cJSON *cj = sq_calib_to_json(&c);
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/calibration.json", j->o->run_dir);
    rc = sq_json_write_file(path, cj, st);
    char *text = cJSON_PrintUnformatted(cj);
    cJSON_Delete(cj);
    for (int f = 0; rc == SQ_OK && text && f < j->o->nfolds; f++) {
        char dir[SQ_PATH_MAX], file[SQ_PATH_MAX + 16];
        fold_dir(j, f, dir, sizeof dir);
        for (int k = 0; k < 2 && rc == SQ_OK; k++) {
            snprintf(file, sizeof file, "%s/%s", dir, k ? "last.h5" : "best.h5");
            if (sq_file_exists(file)) rc = sq_checkpoint_set_calibration(file, text, st);
        }
    }
    free(text);
    return rc == SQ_OK ? write_coverage(j, all, nall, st) : rc;
}

/* The end-of-job rendezvous (the interrupted flag, then the gathers) also waits for the ranks
 * that still train: with W < K folds go round robin, and a rank with fewer folds waits for the
 * others' last fold, which can take far longer than --comm-timeout (a 20-epoch fold did: exit
 * 76). Its deadline is --comm-timeout plus 3x this rank's own time per fold (at least a minute
 * per epoch: a resumed run may have trained nothing here) for every fold the busiest rank has
 * beyond this one's (the folds share one schedule), so a hang is still caught, just later. */
static void finish_deadline(const job *j, double train_seconds) {
    const sq_train_opts *o = j->o;
    int most = 0;
    for (int r = 0; r < j->w->size; r++) {
        sq_layout l;
        sq_status s;
        if (sq_layout_plan(j->w->size, o->nfolds, r, &l, &s) == SQ_OK && l.nmine > most)
            most = l.nmine;
    }
    if (most <= j->lay.nmine || j->lay.nmine < 1) return;
    /* a resumed run may have trained nothing here: at least a minute per epoch */
    double per_fold = fmax(train_seconds / j->lay.nmine, 60.0 * o->epochs);
    double base = o->comm_timeout > 0 ? o->comm_timeout : SQ_COMM_TIMEOUT_DEFAULT;
    sq_watchdog_set_timeout(base + 3.0 * per_fold * (most - j->lay.nmine));
    sq_debug("rank %d: %d fold(s) to wait for, end-of-job deadline %.0f s", j->w->rank,
             most - j->lay.nmine, sq_watchdog_timeout());
}

/* Gather the validation study of every fold and write run_dir/validation/ (its own
 * predictions.csv, metrics.json with bands and categories, and figures) on world rank 0. */
static sq_code write_validation_report(job *j, sq_status *st) {
    sq_prediction *all = NULL;
    int nall = 0;
    SQ_TRY(
        sq_gather_records(j->w, j->vpred, j->nvpred, sizeof *j->vpred, (void **)&all, &nall, st));
    sq_code rc = SQ_OK;
    if (j->w->rank == 0 && nall > 0) {
        char dir[SQ_PATH_MAX];
        snprintf(dir, sizeof dir, "%s/validation", j->o->run_dir);
        rc = sq_report_write(dir, all, nall, j->o->rule, j->o->figures, st);
        if (rc == SQ_OK) {
            sq_report_summary s;
            rc = sq_report_summarise(all, nall, j->o->rule, &s, st);
            if (rc == SQ_OK) {
                printf("\nvalidation patients (held out of training; choose methods on these), "
                       "last model:\n");
                sq_report_print_summary(stdout, &s);
                fflush(stdout);
            }
        }
    }
    free(all);
    return rc;
}

sq_code sq_train_run(const sq_train_opts *o, const sq_world *w, sq_status *st) {
    job j;
    memset(&j, 0, sizeof j);
    j.o = o;
    j.w = w;
    j.g.comm = MPI_COMM_NULL;
    double t0 = sq_now();
    sq_code rc = SQ_OK;
    if (o->nfolds == 1 || o->nfolds < 0)
        return sq_fail(st, SQ_ERR_USAGE, "--folds %d: expected 0 or at least 2", o->nfolds);
    if (o->batch < 1 || o->batch > 64)
        return sq_fail(st, SQ_ERR_USAGE, "--batch %d: expected 1..64", o->batch);
    /* sites first: a bad site file leaves no run folder behind */
    rc = sq_dataset_open(o->sites, o->nsites, &j.ds, st);
    if (rc == SQ_OK) rc = sq_dataset_open(o->sites, o->nsites, &j.ev, st);
    if (rc == SQ_OK) {
        sq_dataset_shape(j.ds, j.shape);
        memcpy(j.spacing, sq_site_get_info(sq_dataset_site(j.ds, 0))->spacing, sizeof j.spacing);
        rc = build_cases(&j, st);
    }
    if (rc == SQ_OK) rc = load_calibration(&j, st);
    if (rc == SQ_OK) rc = input_shape(&j, st);
    if (rc == SQ_OK && w->rank == 0) rc = sq_mkdirs(o->run_dir, st);
    if (rc == SQ_OK && w->rank == 0 && o->config) {
        char path[SQ_PATH_MAX];
        snprintf(path, sizeof path, "%s/config.json", o->run_dir);
        rc = sq_json_write_file(path, o->config, st);
    }
    /* every rank must see rank 0's directory and know whether it failed */
    int bad = rc != SQ_OK;
    sq_watchdog_configure(o->comm_timeout, w->rank, -1);
    sq_code r2 = sq_comm_max_int(w->comm, &bad, "MPI_Iallreduce of the run-folder check", st);
    if (r2 != SQ_OK) {
        job_free(&j);
        return r2;
    }
    if (bad) {
        if (rc == SQ_OK)
            sq_fail(st, SQ_ERR_IO, "another rank could not read the sites or create %s",
                    o->run_dir);
        job_free(&j);
        return st->code;
    }

    if (rc == SQ_OK) rc = make_splits(&j, st);
    if (rc == SQ_OK) rc = sq_layout_plan(w->size, o->nfolds, w->rank, &j.lay, st);
    if (rc == SQ_OK) rc = sq_group_create(w, &j.lay, &j.g, st);
    if (rc == SQ_OK)
        rc = sq_hub_init(&j.hub, w->comm, o->nfolds,
                         (double)o->epochs * (o->nfolds ? o->nfolds : 1), st);
    if (rc == SQ_OK && w->rank == 0)
        sq_info("%d site file(s), %d cases, %d samples, shape %dx%dx%d; %d rank(s), %s", o->nsites,
                j.ncases, j.nsamples, j.shape[0], j.shape[1], j.shape[2], w->size,
                o->nfolds ? "cross-validation" : "training on all data");
    int interrupted = 0;
    const double t_train = sq_now();
    for (int i = 0; rc == SQ_OK && i < j.lay.nmine && !interrupted; i++)
        rc = train_fold(&j, j.lay.mine[i], &interrupted, st);
    if (rc == SQ_OK) finish_deadline(&j, sq_now() - t_train);
    if (rc != SQ_OK) {
        sq_context(st, "rank %d", w->rank);
        job_free(&j);
        return rc; /* the caller aborts the MPI job: other ranks may be inside a collective */
    }
    int any_int = interrupted;
    rc = sq_comm_max_int(w->comm, &any_int, "MPI_Iallreduce of the interrupted flag", st);
    if (rc == SQ_OK && !any_int && w->rank == 0) rc = sq_hub_drain(&j.hub, st);
    sq_prediction *all = NULL;
    int nall = 0;
    if (rc == SQ_OK && !any_int)
        rc = sq_gather_records(w, j.pred, j.npred, sizeof *j.pred, (void **)&all, &nall, st);
    if (rc == SQ_OK && !any_int) rc = write_validation_report(&j, st);
    if (rc == SQ_OK && !any_int && w->rank == 0) {
        rc = merge_curves(&j, st);
        if (rc == SQ_OK && o->nfolds > 0)
            rc = sq_report_write(o->run_dir, all, nall, o->rule, o->figures, st);
        if (rc == SQ_OK && o->nfolds > 0) rc = write_validation(&j, st);
        if (rc == SQ_OK && o->nfolds > 0) rc = write_calibration(&j, all, nall, st);
        if (rc == SQ_OK && o->nfolds > 0) {
            sq_report_summary s;
            rc = sq_report_summarise(all, nall, o->rule, &s, st);
            if (rc == SQ_OK) {
                printf(
                    "\nsegqa %d-fold cross-validation on %d cases (%d test predictions), %.1f s\n",
                    o->nfolds, j.ncases, nall, sq_now() - t0);
                sq_report_print_summary(stdout, &s);
                sq_report_print_sites(stdout, all, nall, o->rule);
                printf("\nrun folder: %s (metrics.json, predictions.csv, figures *.png)\n",
                       o->run_dir);
                fflush(stdout);
            }
        }
    }
    free(all);
    sq_hub_free(&j.hub);
    sq_group_destroy(&j.g);
    job_free(&j);
    if (rc == SQ_OK && any_int)
        return sq_fail(st, SQ_ERR_INTERRUPTED,
                       "stopped by a signal after a checkpoint; run the same command to resume");
    return rc;
}
