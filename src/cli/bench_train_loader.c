/* bench_train_loader.c — `segqa bench train --loader`: the training step fed by the real input
 * pipeline (HDF5 site file, reader thread, augmentation workers, batch ring; on a GPU the pinned
 * ring and the copy stream of train/feed.h) against the same step on synthetic input already in
 * the model's input tensor. Prints both medians and their ratio (target <= 1.10) for 1, 2, ...
 * --workers augmentation workers, the smallest worker count that meets it, and the augmentation
 * time per sample, from which the workers a GPU needs are estimated (docs/gpu.md).
 *
 * The site is --site FILE, else a synthetic site (data/synth.h) at the bench shape written to a
 * temporary folder and removed afterwards. Not for: speed against PyTorch (bench train).
 */
#include "bench.h"
#include "cli.h"

#include "core/fileio.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/loader.h"
#include "data/synth.h"
#include "nn/registry.h"
#include "optim/optim.h"
#include "train/feed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct lb_ctx {
    const sq_bench_loader_opts *o;
    const sq_model_config *c;
    sq_backend *be;
    sq_model *m;
    sq_adam_opt *opt;
    sq_dataset *ds;
    float *t;      /* synthetic targets */
    sq_buf *synth; /* synthetic input, one batch */
    double *ms, *ms2;
} lb_ctx;

/* One training step after the input is in place: loss, backward, Adam, and a sync for timing. */
static sq_code step_rest(lb_ctx *x, const float *target, sq_status *st) {
    SQ_TRY(sq_model_loss(x->m, target, NULL, st));
    SQ_TRY(sq_model_backward(x->m, st));
    SQ_TRY(sq_adam_step(x->opt, sq_model_params_buf(x->m), sq_model_grads_buf(x->m), 0.002f, st));
    return x->be->sync(x->be, st);
}

/* Synthetic input: a backend buffer filled once; each step copies it into the model's input on
 * the backend (memcpy on the CPU, device-to-device on a GPU: the same copy the feed makes from its
 * staging buffer), so the two sides differ only by where the batch came from. */
static sq_code synthetic_input(lb_ctx *x, sq_status *st) {
    const sq_model_config *c = x->c;
    const size_t vox = (size_t)c->depth * c->height * c->width;
    const size_t nx = (size_t)x->o->batch * c->in_channels * vox;
    float *in = malloc(nx * sizeof(float));
    if (!in) return sq_fail(st, SQ_ERR_NOMEM, "bench: out of memory");
    sq_rng r;
    sq_rng_init(&r, 1, 0, 0);
    for (size_t i = 0; i < nx; i++)
        in[i] = (i / vox) % 2 ? (float)(sq_rng_uniform(&r) < 0.2) : 255.0f * sq_rng_uniform(&r);
    sq_code rc = x->be->buf_alloc(x->be, nx * sizeof(float), &x->synth, st);
    if (rc == SQ_OK) rc = x->be->upload(x->be, x->synth, 0, in, nx * sizeof(float), st);
    if (rc == SQ_OK) rc = x->be->sync(x->be, st);
    free(in);
    return rc;
}

static sq_code synthetic_step(lb_ctx *x, double *ms, sq_status *st) {
    const double t0 = sq_now();
    const sq_view in = sq_model_input(x->m);
    SQ_TRY(x->be->copy(x->be, in.buf, in.off * sizeof(float), x->synth, 0,
                       x->be->buf_size(x->be, x->synth), st));
    SQ_TRY(sq_model_forward(x->m, NULL, NULL, st));
    SQ_TRY(step_rest(x, x->t, st));
    *ms = (sq_now() - t0) * 1e3;
    return SQ_OK;
}

/* The loader's configuration for `workers` augmentation threads (the trainer's defaults). */
static sq_loader_config loader_config(const lb_ctx *x, int workers) {
    sq_loader_config lc = sq_loader_config_default();
    lc.batch = x->o->batch;
    lc.workers = workers;
    lc.seed = 20221;
    lc.ring_alloc = sq_feed_ring_allocator(x->be);
    return lc;
}

/* The next batch, starting a new epoch at the end of one. */
static sq_code next_batch(sq_feed *f, uint32_t *epoch, sq_batch **b, sq_status *st) {
    SQ_TRY(sq_feed_next(f, b, st));
    if (*b) return SQ_OK;
    SQ_TRY(sq_feed_start_epoch(f, ++*epoch, st));
    return sq_feed_next(f, b, st);
}

static sq_code loader_step(lb_ctx *x, sq_feed *f, uint32_t *epoch, double *ms, sq_status *st) {
    const double t0 = sq_now();
    sq_batch *b = NULL;
    sq_code rc = next_batch(f, epoch, &b, st);
    if (rc == SQ_OK) rc = sq_feed_forward(f, x->m, b, st);
    if (rc == SQ_OK) rc = step_rest(x, b->y, st);
    const sq_code r2 = b ? sq_feed_release(f, b, st) : SQ_OK;
    *ms = (sq_now() - t0) * 1e3;
    return rc == SQ_OK ? r2 : rc;
}

/* `workers` workers: blocks of loader-fed and synthetic steps alternate (2 rounds of steps/2 each,
 * after --warmup of each), so a change in the machine's load touches both sides alike. Medians
 * of both, and the host's wait for the loader per loader-fed step. */
static sq_code run_pair(lb_ctx *x, int workers, double med[2], double *wait_ms, sq_status *st) {
    sq_loader_config lc = loader_config(x, workers);
    sq_loader *L = NULL;
    sq_feed f;
    memset(&f, 0, sizeof f);
    const size_t xbytes = x->be->buf_size(x->be, x->synth);
    sq_code rc = sq_loader_create(x->ds, &lc, &L, st);
    if (rc == SQ_OK) rc = sq_feed_init(&f, x->be, L, xbytes, st);
    uint32_t epoch = 0;
    if (rc == SQ_OK) rc = sq_feed_start_epoch(&f, epoch, st);
    double dummy, waited = 0;
    for (long long i = 0; rc == SQ_OK && i < x->o->warmup; i++) {
        rc = loader_step(x, &f, &epoch, &dummy, st);
        if (rc == SQ_OK) rc = synthetic_step(x, &dummy, st);
    }
    const int n = (int)x->o->steps, half = (n + 1) / 2;
    int ns = 0, nl = 0;
    for (int round = 0; rc == SQ_OK && round < 2; round++) {
        for (int i = 0; rc == SQ_OK && i < half && ns < n; i++)
            rc = synthetic_step(x, &x->ms[ns++], st);
        const double w0 = f.wait_ms;
        for (int i = 0; rc == SQ_OK && i < half && nl < n; i++)
            rc = loader_step(x, &f, &epoch, &x->ms2[nl++], st);
        waited += f.wait_ms - w0;
    }
    if (rc == SQ_OK) {
        med[0] = sq_median(x->ms2, nl);
        med[1] = sq_median(x->ms, ns);
        *wait_ms = waited / (nl ? nl : 1);
    }
    sq_feed_free(&f);
    sq_loader_destroy(L);
    return rc;
}

/* The loader alone, one worker, no model: ms of augmentation (and cached reads) per sample. */
static sq_code augment_ms_per_sample(lb_ctx *x, double *ms, sq_status *st) {
    sq_loader_config lc = loader_config(x, 1);
    lc.ring_alloc = (sq_ring_allocator){NULL, NULL, NULL};
    lc.ring = 1; /* nothing runs ahead: each batch is timed on its own */
    sq_loader *L = NULL;
    SQ_TRY(sq_loader_create(x->ds, &lc, &L, st));
    sq_code rc = SQ_OK;
    int timed = 0, want = 2 * (int)x->o->steps;
    double total = 0;
    for (uint32_t epoch = 0; rc == SQ_OK && timed < want; epoch++) {
        rc = sq_loader_start_epoch(L, epoch, st);
        for (sq_batch *b = NULL; rc == SQ_OK && timed < want;) {
            const double t0 = sq_now();
            rc = sq_loader_next(L, &b, st);
            if (rc != SQ_OK || !b) break;
            if (epoch > 0) total += (sq_now() - t0) * 1e3, timed++; /* epoch 0 fills the cache */
            sq_loader_release(L, b);
        }
    }
    sq_loader_destroy(L);
    *ms = timed ? total / timed / x->o->batch : 0;
    return rc;
}

/* A synthetic site at the bench shape in a temporary folder (path into `site`). */
static sq_code make_site(const sq_model_config *c, char *dir, size_t dn, char *site, size_t sn,
                         sq_status *st) {
    snprintf(dir, dn, "/tmp/segqa_bench_loader_XXXXXX");
    if (!mkdtemp(dir)) return sq_fail(st, SQ_ERR_IO, "bench: cannot create a temporary folder");
    snprintf(site, sn, "%s/site.h5", dir);
    sq_synth_opts so = sq_synth_opts_default();
    so.output = site;
    so.n_cases = 8; /* about 11 samples: 5 steps per epoch at batch 2 */
    so.shape[0] = c->depth, so.shape[1] = c->height, so.shape[2] = c->width;
    memcpy(so.spacing, c->spacing, sizeof so.spacing);
    sq_synth_stats ss;
    return sq_synth(&so, &ss, st);
}

static void remove_site(const char *dir, const char *site) {
    if (!dir[0]) return;
    unlink(site);
    rmdir(dir);
}

/* Backend, model, optimiser and dataset; the site's shape must be the model's. */
static sq_code lb_open(lb_ctx *x, const char *site, char *backend, size_t bn, sq_status *st) {
    sq_backend_opts bo = sq_backend_opts_default();
    bo.threads = x->o->threads;
    x->be = sq_backend_create(x->o->device, &bo, backend, bn, st);
    if (!x->be) return st->code ? st->code : SQ_ERR_DEVICE;
    SQ_TRY(sq_dataset_open(&site, 1, &x->ds, st));
    int shape[3];
    sq_dataset_shape(x->ds, shape);
    if (shape[0] != x->c->depth || shape[1] != x->c->height || shape[2] != x->c->width)
        return sq_fail(st, SQ_ERR_USAGE, "%s: volumes are %dx%dx%d, expected --shape %dx%dx%d",
                       site, shape[0], shape[1], shape[2], x->c->depth, x->c->height, x->c->width);
    SQ_TRY(sq_model_create(x->c, x->be, &x->m, st));
    SQ_TRY(sq_model_init(x->m, 1, st));
    SQ_TRY(sq_model_plan(x->m, x->o->batch, 1, st));
    sq_model_set_training(x->m, 1);
    sq_adam_config ac = sq_adam_config_default();
    SQ_TRY(sq_adam_create(x->be, sq_model_params_floats(x->m), &ac, &x->opt, st));
    x->t = calloc((size_t)x->o->batch, sizeof(float));
    x->ms = calloc((size_t)x->o->steps, sizeof(double));
    x->ms2 = calloc((size_t)x->o->steps, sizeof(double));
    if (!x->t || !x->ms || !x->ms2) return sq_fail(st, SQ_ERR_NOMEM, "bench: out of memory");
    for (int i = 0; i < x->o->batch; i++)
        x->t[i] = 0.8f;
    return synthetic_input(x, st);
}

static void lb_close(lb_ctx *x) {
    free(x->t);
    free(x->ms);
    free(x->ms2);
    if (x->synth) x->be->buf_free(x->be, x->synth);
    sq_adam_destroy(x->opt);
    sq_model_destroy(x->m);
    sq_dataset_close(x->ds);
    if (x->be) x->be->destroy(x->be);
}

/* The worker sweep: rows until the target is met or --workers is reached. */
static sq_code sweep(lb_ctx *x, int *fed_by, double *synth_ms, sq_status *st) {
    printf("| workers | loader-fed median ms | synthetic median ms | ratio | loader wait ms/step "
           "|\n|---:|---:|---:|---:|---:|\n");
    *fed_by = 0;
    for (int w = 1; w <= x->o->workers && !*fed_by; w++) {
        double med[2] = {0, 0}, wait = 0;
        SQ_TRY(run_pair(x, w, med, &wait, st));
        const double ratio = med[0] / med[1];
        *synth_ms = med[1];
        printf("| %d | %.2f | %.2f | %.3f | %.2f |\n", w, med[0], med[1], ratio, wait);
        fflush(stdout);
        if (ratio <= 1.10) *fed_by = w;
    }
    return SQ_OK;
}

static sq_code lb_run(lb_ctx *x, const char *site, sq_status *st) {
    char backend[512] = "";
    SQ_TRY(lb_open(x, site, backend, sizeof backend, st));
    const int gpu = x->be->device_memory;
    printf("backend %s; input pipeline: %s\n", backend,
           gpu ? (sq_backend_has_copy_stream(x->be)
                      ? "pinned batch ring + copy stream overlapped with compute"
                      : "device without a copy stream: synchronous uploads")
               : "host memory, no copy");
    double synth_ms = 0, aug_ms = 0, load[2] = {-1, -1};
    if (getloadavg(load, 1) < 1) load[0] = -1;
    int fed_by = 0;
    SQ_TRY(sweep(x, &fed_by, &synth_ms, st));
    if (getloadavg(load + 1, 1) < 1) load[1] = -1;
    SQ_TRY(augment_ms_per_sample(x, &aug_ms, st));
    if (fed_by)
        printf(
            "\n**loader-fed / synthetic within 10 %%: met with %d worker(s)** (target <= 1.10)\n",
            fed_by);
    else
        printf("\n**loader-fed / synthetic within 10 %%: NOT met with up to %d worker(s)**\n",
               x->o->workers);
    const double gpu_step = 10.0; /* docs/gpu.md: the training-step target on an H100/H200 */
    printf("augmentation %.2f ms per sample on one worker (reads cached); a %s step of %.1f ms "
           "at batch %d needs about %d worker(s) (batch x ms per sample / step ms, rounded up); "
           "the %.0f ms GPU step target needs about %d\n",
           aug_ms, gpu ? "GPU" : "CPU", synth_ms, x->o->batch,
           (int)ceil(x->o->batch * aug_ms / synth_ms), gpu_step,
           (int)ceil(x->o->batch * aug_ms / gpu_step));
    printf("1-minute load average %.2f before, %.2f after (%ld cores online)\n", load[0], load[1],
           sysconf(_SC_NPROCESSORS_ONLN));
    return SQ_OK;
}

int sq_bench_train_loader(const sq_bench_loader_opts *o) {
    sq_status st;
    sq_status_clear(&st);
    char dir[SQ_PATH_MAX] = "", site[SQ_PATH_MAX + 16] = "";
    printf("segqa bench train --loader: batch %dx%dx%dx%dx%d, device %s, %d threads, %lld warm-up "
           "+ %lld steps, up to %d augmentation worker(s)\n",
           o->batch, o->config->in_channels, o->config->depth, o->config->height, o->config->width,
           o->device, o->threads, o->warmup, o->steps, o->workers);
    fflush(stdout);
    if (!strcmp(o->device, "cuda")) {
        char why[256] = "";
        if (!sq_backend_cuda_usable(why, sizeof why)) {
            printf("SKIPPED: --device cuda: no usable GPU on this machine (%s); nothing measured\n",
                   why[0] ? why : "this segqa was built without the CUDA backend");
            return 77;
        }
    }
    sq_code rc = SQ_OK;
    if (o->site && o->site[0])
        snprintf(site, sizeof site, "%s", o->site);
    else
        rc = make_site(o->config, dir, sizeof dir, site, sizeof site, &st);
    lb_ctx x;
    memset(&x, 0, sizeof x);
    x.o = o, x.c = o->config;
    if (rc == SQ_OK) rc = lb_run(&x, site, &st);
    lb_close(&x);
    remove_site(dir, site);
    return rc == SQ_OK ? 0 : sq_cli_report("bench train --loader", &st);
}
