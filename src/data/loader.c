/* loader.c — reader thread + augmentation workers + ordered ring of batches (see loader.h). */
#include "data/loader.h"

#include "core/rng.h"
#include "core/tensor.h"
#include "data/volume.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- dataset ---------------- */

struct sq_dataset {
    int nsites;
    sq_site **sites;
    int shape[3];
    int nsamples;
    sq_sample_ref *samples;
};

sq_code sq_dataset_open(const char *const *paths, int n, sq_dataset **out, sq_status *st) {
    *out = NULL;
    if (n < 1) return sq_fail(st, SQ_ERR_USAGE, "no site files given");
    sq_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->sites = calloc((size_t)n, sizeof *ds->sites))) {
        free(ds);
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    }
    sq_code rc = SQ_OK;
    int total = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = sq_site_open(paths[i], &ds->sites[i], st);
        if (rc) break;
        ds->nsites = i + 1;
        const sq_site_info *info = sq_site_get_info(ds->sites[i]);
        if (i == 0)
            memcpy(ds->shape, info->shape, sizeof ds->shape);
        else if (memcmp(ds->shape, info->shape, sizeof ds->shape))
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s: shape %dx%dx%d differs from %s (%dx%dx%d)",
                         paths[i], info->shape[0], info->shape[1], info->shape[2], paths[0],
                         ds->shape[0], ds->shape[1], ds->shape[2]);
        for (int c = 0; c < sq_site_ncases(ds->sites[i]); c++)
            total += sq_site_case_meta(ds->sites[i], c)->ncontours;
    }
    if (!rc && !(ds->samples = calloc((size_t)total + 1, sizeof *ds->samples)))
        rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    if (rc) {
        sq_dataset_close(ds);
        return rc;
    }
    for (int i = 0; i < n; i++)
        for (int c = 0; c < sq_site_ncases(ds->sites[i]); c++) {
            const sq_case *m = sq_site_case_meta(ds->sites[i], c);
            for (int k = 0; k < m->ncontours; k++)
                ds->samples[ds->nsamples++] = (sq_sample_ref){i, c, k, m->contours[k].dice};
        }
    *out = ds;
    return SQ_OK;
}

void sq_dataset_close(sq_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->nsites; i++)
        sq_site_close(ds->sites[i]);
    free(ds->sites);
    free(ds->samples);
    free(ds);
}

int sq_dataset_nsites(const sq_dataset *ds) {
    return ds->nsites;
}
sq_site *sq_dataset_site(sq_dataset *ds, int i) {
    return ds->sites[i];
}
int sq_dataset_nsamples(const sq_dataset *ds) {
    return ds->nsamples;
}
const sq_sample_ref *sq_dataset_sample(const sq_dataset *ds, int i) {
    return &ds->samples[i];
}
const char *sq_dataset_patient(const sq_dataset *ds, int i) {
    const sq_sample_ref *r = &ds->samples[i];
    return sq_site_case_meta(ds->sites[r->site], r->case_idx)->patient;
}
void sq_dataset_shape(const sq_dataset *ds, int shape[3]) {
    memcpy(shape, ds->shape, sizeof ds->shape);
}

/* ---------------- loader ---------------- */

sq_loader_config sq_loader_config_default(void) {
    sq_loader_config c;
    memset(&c, 0, sizeof c);
    c.batch = 2, c.workers = 2, c.ring = 4;
    c.seed = 1234;
    c.rank = 0, c.world = 1;
    c.augment = 1, c.swap_pairs = 1, c.shuffle = 1, c.cache = 1;
    c.aug = sq_aug_config_default();
    return c;
}

typedef struct case_vols {
    int loaded;
    sq_volume image, gt;
    sq_volume *contours; /* ncontours of the case's metadata */
} case_vols;

typedef struct job {
    int slot, j, sample, swapped;
    uint32_t pos;
    const float *img;
    const uint8_t *gt, *ct;
    sq_volume own[3]; /* non-cache mode: buffers the worker frees */
} job;

enum { SLOT_FREE = 0, SLOT_FILLING, SLOT_READY, SLOT_HELD };

typedef struct slot {
    sq_batch b;
    int state, remaining;
} slot;

struct sq_loader {
    sq_dataset *ds;
    sq_loader_config cfg;
    sq_aug_config aug;
    int D, H, W;
    size_t vox;   /* voxels of the site's grid */
    size_t ovox;  /* voxels of one batch sample (the crop's shape with cfg.crop.on) */
    float **wimg; /* crop: each worker's augmented image on the full grid */
    int *sel, nsel;
    uint32_t *perm;
    slot *slots;
    job *queue;
    int qcap, qhead, qlen, busy;
    pthread_mutex_t mu;
    pthread_cond_t cv_free, cv_job, cv_ready, cv_idle;
    pthread_t reader, *workers;
    int nworkers, reader_running;
    int stop, cancel;
    uint32_t epoch;
    int steps, next_step;
    int failed;
    sq_status err;
    case_vols **cache; /* [site][case] */
    uint8_t **wgt, **wct;
};

int sq_loader_steps(const sq_loader *L) {
    return L->steps;
}

static void fail_locked(sq_loader *L, const sq_status *st) {
    if (!L->failed) {
        L->failed = 1;
        L->err = *st;
    }
    pthread_cond_broadcast(&L->cv_ready);
    pthread_cond_broadcast(&L->cv_free);
}

static void *worker_main(void *arg);

static sq_code load_case(sq_loader *L, int site, int ci, case_vols **out, sq_status *st) {
    case_vols *cv = &L->cache[site][ci];
    *out = cv;
    if (cv->loaded) return SQ_OK;
    sq_site *s = L->ds->sites[site];
    const sq_case *m = sq_site_case_meta(s, ci);
    cv->contours = calloc((size_t)m->ncontours + 1, sizeof *cv->contours);
    if (!cv->contours) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    SQ_TRY(sq_site_read_volume(s, ci, "image", &cv->image, st));
    SQ_TRY(sq_site_read_volume(s, ci, "gt", &cv->gt, st));
    for (int k = 0; k < m->ncontours; k++) {
        char what[SQ_NAME_MAX + 16];
        snprintf(what, sizeof what, "contours/%s", m->contours[k].name);
        SQ_TRY(sq_site_read_volume(s, ci, what, &cv->contours[k], st));
    }
    cv->loaded = 1;
    return SQ_OK;
}

static sq_code read_contour(sq_loader *L, const sq_sample_ref *r, sq_volume *v, sq_status *st) {
    sq_site *s = L->ds->sites[r->site];
    char what[SQ_NAME_MAX + 16];
    snprintf(what, sizeof what, "contours/%s",
             sq_site_case_meta(s, r->case_idx)->contours[r->contour].name);
    return sq_site_read_volume(s, r->case_idx, what, v, st);
}

/* Fill job for global position pos (HDF5 reads happen here, on the reader thread only). */
static sq_code prepare_job(sq_loader *L, int step, int j, job *jb, sq_status *st) {
    const sq_loader_config *c = &L->cfg;
    uint32_t pos = (uint32_t)(((size_t)step * c->world + c->rank) * c->batch + j);
    int si = L->sel[L->perm[pos % (uint32_t)L->nsel]];
    memset(jb, 0, sizeof *jb);
    jb->j = j, jb->pos = pos, jb->sample = si;
    const sq_sample_ref *r = &L->ds->samples[si];
    const sq_sample_ref *pr = r;
    if (c->swap_pairs && (j & 1) && L->nsel > 1) {
        sq_rng g;
        sq_rng_init(&g, c->seed ^ 0x5357415053574150ull, L->epoch, pos);
        uint32_t cur = L->perm[pos % (uint32_t)L->nsel];
        uint32_t k = sq_rng_below(&g, (uint32_t)L->nsel - 1);
        if (k >= cur) k++;
        int pk = L->sel[k];
        pr = &L->ds->samples[pk];
        jb->swapped = 1;
    }
    if (c->cache) {
        case_vols *cv, *pv;
        SQ_TRY(load_case(L, r->site, r->case_idx, &cv, st));
        SQ_TRY(load_case(L, pr->site, pr->case_idx, &pv, st));
        jb->img = cv->image.data, jb->gt = cv->gt.data, jb->ct = pv->contours[pr->contour].data;
        return SQ_OK;
    }
    sq_site *s = L->ds->sites[r->site];
    SQ_TRY(sq_site_read_volume(s, r->case_idx, "image", &jb->own[0], st));
    sq_code rc = sq_site_read_volume(s, r->case_idx, "gt", &jb->own[1], st);
    if (!rc) rc = read_contour(L, pr, &jb->own[2], st);
    if (rc) {
        for (int k = 0; k < 3; k++)
            sq_volume_free(&jb->own[k]);
        return rc;
    }
    jb->img = jb->own[0].data, jb->gt = jb->own[1].data, jb->ct = jb->own[2].data;
    return SQ_OK;
}

static void *reader_main(void *arg) {
    sq_loader *L = arg;
    sq_status st;
    sq_status_clear(&st);
    for (int s = 0; s < L->steps; s++) {
        int si = s % L->cfg.ring;
        pthread_mutex_lock(&L->mu);
        while (L->slots[si].state != SLOT_FREE && !L->stop && !L->cancel && !L->failed)
            pthread_cond_wait(&L->cv_free, &L->mu);
        if (L->stop || L->cancel || L->failed) {
            pthread_mutex_unlock(&L->mu);
            break;
        }
        slot *sl = &L->slots[si];
        sl->state = SLOT_FILLING;
        sl->remaining = L->cfg.batch;
        sl->b.step = s;
        sl->b.n = L->cfg.batch;
        pthread_mutex_unlock(&L->mu);
        for (int j = 0; j < L->cfg.batch; j++) {
            job jb;
            sq_code rc = prepare_job(L, s, j, &jb, &st);
            jb.slot = si;
            pthread_mutex_lock(&L->mu);
            if (rc) {
                fail_locked(L, &st);
                pthread_mutex_unlock(&L->mu);
                return NULL;
            }
            while (L->qlen == L->qcap && !L->stop && !L->cancel)
                pthread_cond_wait(&L->cv_free, &L->mu);
            if (L->stop || L->cancel) {
                for (int k = 0; k < 3; k++)
                    sq_volume_free(&jb.own[k]);
                pthread_mutex_unlock(&L->mu);
                return NULL;
            }
            L->queue[(L->qhead + L->qlen++) % L->qcap] = jb;
            pthread_cond_signal(&L->cv_job);
            pthread_mutex_unlock(&L->mu);
        }
    }
    return NULL;
}

/* Contour channel of the sample at x (the image is already there), or with cfg.crop.on the crop
 * of worker id's augmented image and contour around the contour's (jittered) box. */
static sq_code write_sample(sq_loader *L, int id, uint32_t pos, float *x, sq_status *st) {
    const sq_loader_crop *c = &L->cfg.crop;
    if (!c->on) {
        const uint8_t *ct = L->wct[id];
        for (size_t i = 0; i < L->vox; i++)
            x[L->vox + i] = (float)ct[i];
        return SQ_OK;
    }
    sq_volume img, con, ci = {0}, cc = {0};
    memset(&img, 0, sizeof img);
    img.dtype = SQ_F32, img.d = L->D, img.h = L->H, img.w = L->W, img.data = L->wimg[id];
    for (int a = 0; a < 4; a++)
        img.affine[a][a] = 1;
    con = img;
    con.dtype = SQ_U8, con.data = L->wct[id];
    int lo[3], hi[3];
    sq_code rc;
    if (!sq_crop_box(&con, c->margin, lo, hi)) {
        rc = sq_volume_crop_pad(&img, c->shape[0], c->shape[1], c->shape[2], &ci, st);
        if (rc == SQ_OK)
            rc = sq_volume_crop_pad(&con, c->shape[0], c->shape[1], c->shape[2], &cc, st);
    } else {
        if (L->cfg.augment && c->jitter > 0) {
            sq_rng g;
            sq_rng_init(&g, L->cfg.seed ^ 0x43524f5043524f50ull, L->epoch, pos); /* "CROP" */
            double u[6];
            for (int k = 0; k < 6; k++)
                u[k] = 2.0 * sq_rng_uniform(&g) - 1.0;
            const int dims[3] = {L->D, L->H, L->W};
            sq_crop_box_jitter(dims, u, c->jitter, lo, hi);
        }
        rc = sq_volume_crop_box(&img, &con, lo, hi, c->shape[0], c->shape[1], c->shape[2], &ci, &cc,
                                st);
    }
    if (rc == SQ_OK) rc = sq_volume_normalise_percentile(&ci, c->lo_pct, c->hi_pct, NULL, NULL, st);
    if (rc == SQ_OK) {
        memcpy(x, sq_volume_f32(&ci), L->ovox * sizeof(float));
        const uint8_t *m = sq_volume_u8(&cc);
        for (size_t i = 0; i < L->ovox; i++)
            x[L->ovox + i] = m[i] ? 1.0f : 0.0f;
    }
    sq_volume_free(&ci);
    sq_volume_free(&cc);
    return rc;
}

typedef struct worker_arg {
    sq_loader *L;
    int id;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    sq_loader *L = wa->L;
    int id = wa->id;
    free(wa);
    sq_status st;
    sq_status_clear(&st);
    for (;;) {
        pthread_mutex_lock(&L->mu);
        while (L->qlen == 0 && !L->stop)
            pthread_cond_wait(&L->cv_job, &L->mu);
        if (L->stop && L->qlen == 0) {
            pthread_mutex_unlock(&L->mu);
            return NULL;
        }
        job jb = L->queue[L->qhead];
        L->qhead = (L->qhead + 1) % L->qcap;
        L->qlen--;
        L->busy++;
        pthread_cond_broadcast(&L->cv_free); /* queue space for the reader */
        int skip = L->cancel || L->stop;
        pthread_mutex_unlock(&L->mu);
        slot *sl = &L->slots[jb.slot];
        sq_code rc = SQ_OK;
        if (!skip) {
            sq_aug_input in = {L->D, L->H, L->W, {1, 1, 1}, jb.img, jb.gt, jb.ct, jb.swapped};
            const sq_site_info *info =
                sq_site_get_info(L->ds->sites[L->ds->samples[jb.sample].site]);
            memcpy(in.spacing, info->spacing, sizeof in.spacing);
            float *x = sl->b.x + (size_t)jb.j * 2 * L->ovox;
            sq_aug_output out = {L->cfg.crop.on ? L->wimg[id] : x, L->wct[id], L->wgt[id], 0, {0}};
            rc = sq_augment(&L->aug, L->cfg.seed, L->epoch, jb.pos, &in, &out, &st);
            if (rc == SQ_OK) rc = write_sample(L, id, jb.pos, x, &st);
            sl->b.y[jb.j] = (float)out.dice;
            sl->b.sample[jb.j] = jb.sample;
            sl->b.position[jb.j] = jb.pos;
            sl->b.rec[jb.j] = out.rec;
        }
        for (int k = 0; k < 3; k++)
            sq_volume_free(&jb.own[k]);
        pthread_mutex_lock(&L->mu);
        L->busy--;
        if (rc) fail_locked(L, &st);
        if (--sl->remaining == 0) {
            sl->state = SLOT_READY;
            pthread_cond_broadcast(&L->cv_ready);
        }
        if (L->busy == 0 && L->qlen == 0) pthread_cond_broadcast(&L->cv_idle);
        pthread_mutex_unlock(&L->mu);
    }
}

/* The batch ring's x buffers, from the configured allocator (pinned memory on a GPU). */
static float *ring_x_alloc(const sq_loader *L, size_t bytes) {
    const sq_ring_allocator *a = &L->cfg.ring_alloc;
    return a->alloc ? a->alloc(a->ctx, bytes) : sq_alloc(bytes);
}

static void ring_x_free(const sq_loader *L, float *x) {
    const sq_ring_allocator *a = &L->cfg.ring_alloc;
    if (!x) return;
    if (a->alloc)
        a->release(a->ctx, x);
    else
        sq_free(x);
}

void sq_loader_destroy(sq_loader *L) {
    if (!L) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv_job);
    pthread_cond_broadcast(&L->cv_free);
    pthread_cond_broadcast(&L->cv_ready);
    pthread_mutex_unlock(&L->mu);
    if (L->reader_running) pthread_join(L->reader, NULL);
    for (int i = 0; i < L->nworkers; i++)
        pthread_join(L->workers[i], NULL);
    /* jobs left in the queue own buffers in non-cache mode */
    for (int i = 0; i < L->qlen; i++)
        for (int k = 0; k < 3; k++)
            sq_volume_free(&L->queue[(L->qhead + i) % L->qcap].own[k]);
    if (L->cache) {
        for (int s = 0; s < L->ds->nsites; s++) {
            if (!L->cache[s]) continue;
            for (int c = 0; c < sq_site_ncases(L->ds->sites[s]); c++) {
                case_vols *cv = &L->cache[s][c];
                sq_volume_free(&cv->image);
                sq_volume_free(&cv->gt);
                if (cv->contours)
                    for (int k = 0; k < sq_site_case_meta(L->ds->sites[s], c)->ncontours; k++)
                        sq_volume_free(&cv->contours[k]);
                free(cv->contours);
            }
            free(L->cache[s]);
        }
        free(L->cache);
    }
    for (int r = 0; L->slots && r < L->cfg.ring; r++) {
        ring_x_free(L, L->slots[r].b.x);
        free(L->slots[r].b.y);
        free(L->slots[r].b.sample);
        free(L->slots[r].b.position);
        free(L->slots[r].b.rec);
    }
    for (int w = 0; w < L->cfg.workers; w++) {
        if (L->wgt) sq_free(L->wgt[w]);
        if (L->wct) sq_free(L->wct[w]);
        if (L->wimg) sq_free(L->wimg[w]);
    }
    free(L->wgt), free(L->wct), free(L->wimg);
    free(L->slots), free(L->queue), free(L->workers), free(L->sel), free(L->perm);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv_free);
    pthread_cond_destroy(&L->cv_job);
    pthread_cond_destroy(&L->cv_ready);
    pthread_cond_destroy(&L->cv_idle);
    free(L);
}

sq_code sq_loader_create(sq_dataset *ds, const sq_loader_config *cfg, sq_loader **out,
                         sq_status *st) {
    *out = NULL;
    if (cfg->batch < 1 || cfg->workers < 1 || cfg->ring < 1 || cfg->world < 1 || cfg->rank < 0 ||
        cfg->rank >= cfg->world)
        return sq_fail(st, SQ_ERR_USAGE,
                       "loader: batch (%d), workers (%d), ring (%d) must be >= 1 and rank (%d) in "
                       "[0, world = %d)",
                       cfg->batch, cfg->workers, cfg->ring, cfg->rank, cfg->world);
    sq_loader *L = calloc(1, sizeof *L);
    if (!L) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_free, NULL);
    pthread_cond_init(&L->cv_job, NULL);
    pthread_cond_init(&L->cv_ready, NULL);
    pthread_cond_init(&L->cv_idle, NULL);
    L->ds = ds;
    L->cfg = *cfg;
    L->cfg.subset = NULL;
    L->aug = cfg->augment ? cfg->aug : sq_aug_config_identity();
    if (!cfg->augment) L->aug.fail_rate = 0;
    L->D = ds->shape[0], L->H = ds->shape[1], L->W = ds->shape[2];
    L->vox = (size_t)L->D * L->H * L->W;
    L->ovox = cfg->crop.on ? (size_t)cfg->crop.shape[0] * cfg->crop.shape[1] * cfg->crop.shape[2]
                           : L->vox;
    L->nsel = cfg->subset ? cfg->nsubset : ds->nsamples;
    /* known before the first epoch, so callers can plan (and resume) by steps */
    L->steps = L->nsel / (cfg->world * cfg->batch);
    if (L->steps < 1) L->steps = 1;
    sq_code rc = SQ_OK;
    L->sel = malloc(sizeof *L->sel * ((size_t)L->nsel + 1));
    L->perm = malloc(sizeof *L->perm * ((size_t)L->nsel + 1));
    L->slots = calloc((size_t)cfg->ring, sizeof *L->slots);
    L->qcap = cfg->batch * cfg->ring;
    L->queue = calloc((size_t)L->qcap, sizeof *L->queue);
    L->workers = calloc((size_t)cfg->workers, sizeof *L->workers);
    L->wgt = calloc((size_t)cfg->workers, sizeof *L->wgt);
    L->wct = calloc((size_t)cfg->workers, sizeof *L->wct);
    L->wimg = calloc((size_t)cfg->workers, sizeof *L->wimg);
    if (!L->sel || !L->perm || !L->slots || !L->queue || !L->workers || !L->wgt || !L->wct ||
        !L->wimg) {
        rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (cfg->crop.on &&
        (cfg->crop.shape[0] < 1 || cfg->crop.shape[1] < 1 || cfg->crop.shape[2] < 1)) {
        rc = sq_fail(st, SQ_ERR_USAGE, "loader: crop shape %dx%dx%d must be positive",
                     cfg->crop.shape[0], cfg->crop.shape[1], cfg->crop.shape[2]);
        goto fail;
    }
    if (L->nsel < 1) {
        rc = sq_fail(st, SQ_ERR_USAGE, "loader: no samples (cases with contours) to load");
        goto fail;
    }
    for (int i = 0; i < L->nsel; i++) {
        int s = cfg->subset ? cfg->subset[i] : i;
        if (s < 0 || s >= ds->nsamples) {
            rc = sq_fail(st, SQ_ERR_RANGE, "loader: subset index %d outside 0..%d", s,
                         ds->nsamples - 1);
            goto fail;
        }
        L->sel[i] = s;
    }
    for (int r = 0; r < cfg->ring; r++) {
        sq_batch *b = &L->slots[r].b;
        b->x = ring_x_alloc(L, sizeof(float) * L->ovox * 2 * (size_t)cfg->batch);
        b->y = calloc((size_t)cfg->batch, sizeof *b->y);
        b->sample = calloc((size_t)cfg->batch, sizeof *b->sample);
        b->position = calloc((size_t)cfg->batch, sizeof *b->position);
        b->rec = calloc((size_t)cfg->batch, sizeof *b->rec);
        if (!b->x || !b->y || !b->sample || !b->position || !b->rec) {
            rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory for the batch ring");
            goto fail;
        }
    }
    for (int w = 0; w < cfg->workers; w++) {
        L->wgt[w] = sq_alloc(L->vox);
        L->wct[w] = sq_alloc(L->vox);
        if (cfg->crop.on) L->wimg[w] = sq_alloc(L->vox * sizeof(float));
        if (!L->wgt[w] || !L->wct[w] || (cfg->crop.on && !L->wimg[w])) {
            rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    if (cfg->cache) {
        L->cache = calloc((size_t)ds->nsites, sizeof *L->cache);
        if (!L->cache) {
            rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int s = 0; s < ds->nsites; s++)
            if (!(L->cache[s] =
                      calloc((size_t)sq_site_ncases(ds->sites[s]) + 1, sizeof **L->cache))) {
                rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
                goto fail;
            }
    }
    for (int w = 0; w < cfg->workers; w++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) {
            rc = sq_fail(st, SQ_ERR_NOMEM, "out of memory");
            goto fail;
        }
        wa->L = L, wa->id = w;
        if (pthread_create(&L->workers[w], NULL, worker_main, wa)) {
            free(wa);
            rc = sq_fail(st, SQ_ERR_INTERNAL, "loader: cannot start a worker thread");
            goto fail;
        }
        L->nworkers++;
    }
    *out = L;
    return SQ_OK;
fail:
    sq_loader_destroy(L);
    return rc;
}

/* Stop the current epoch's reader, let workers drain, free every slot. */
static void finish_epoch(sq_loader *L) {
    pthread_mutex_lock(&L->mu);
    L->cancel = 1;
    pthread_cond_broadcast(&L->cv_free);
    pthread_mutex_unlock(&L->mu);
    if (L->reader_running) pthread_join(L->reader, NULL);
    L->reader_running = 0;
    pthread_mutex_lock(&L->mu);
    while (L->qlen > 0 || L->busy > 0)
        pthread_cond_wait(&L->cv_idle, &L->mu);
    for (int r = 0; r < L->cfg.ring; r++)
        L->slots[r].state = SLOT_FREE;
    L->cancel = 0;
    pthread_mutex_unlock(&L->mu);
}

sq_code sq_loader_start_epoch(sq_loader *L, uint32_t epoch, sq_status *st) {
    finish_epoch(L);
    if (L->failed) {
        *st = L->err;
        return L->err.code;
    }
    L->epoch = epoch;
    if (L->cfg.shuffle)
        sq_rng_permutation(L->cfg.seed, epoch, L->perm, (uint32_t)L->nsel);
    else
        for (int i = 0; i < L->nsel; i++)
            L->perm[i] = (uint32_t)i;
    int per = L->cfg.world * L->cfg.batch;
    L->steps = L->nsel / per;
    if (L->steps < 1) L->steps = 1;
    L->next_step = 0;
    if (pthread_create(&L->reader, NULL, reader_main, L))
        return sq_fail(st, SQ_ERR_INTERNAL, "loader: cannot start the reader thread");
    L->reader_running = 1;
    return SQ_OK;
}

sq_code sq_loader_next(sq_loader *L, sq_batch **b, sq_status *st) {
    *b = NULL;
    if (L->next_step >= L->steps) return SQ_OK;
    slot *sl = &L->slots[L->next_step % L->cfg.ring];
    pthread_mutex_lock(&L->mu);
    while (sl->state != SLOT_READY && !L->failed && !L->stop)
        pthread_cond_wait(&L->cv_ready, &L->mu);
    if (L->failed) {
        *st = L->err;
        pthread_mutex_unlock(&L->mu);
        return L->err.code;
    }
    sl->state = SLOT_HELD;
    pthread_mutex_unlock(&L->mu);
    L->next_step++;
    *b = &sl->b;
    return SQ_OK;
}

void sq_loader_release(sq_loader *L, sq_batch *b) {
    if (!b) return;
    pthread_mutex_lock(&L->mu);
    for (int r = 0; r < L->cfg.ring; r++)
        if (&L->slots[r].b == b) L->slots[r].state = SLOT_FREE;
    pthread_cond_broadcast(&L->cv_free);
    pthread_mutex_unlock(&L->mu);
}
