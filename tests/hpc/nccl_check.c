/* nccl_check.c — the NCCL part of hpc/ on real GPUs without MPI (the GPU machine has no Open MPI):
 * communicators come from sq_nccl_create_raw with an id shared in-process.
 *
 *   nccl_check allreduce   1 rank: ncclAvg/ncclSum of a float buffer, the bucketed gradient path
 *                          (events, comm stream) and the double sums leave the values bitwise
 *                          unchanged; every bucket reports complete.
 *   nccl_check step        1 rank: 4 training steps with the NCCL gradient hook and NCCL sync BN
 *                          (the trainer's glue) equal the same steps with no communication
 *                          (parameters and BN statistics): bitwise expected, 1e-5 relative
 *                          allowed (the synced BN finalises in its own kernel) and reported.
 *   nccl_check syncbn      2 GPUs, one thread each: 2 data-parallel ranks with batch 2 each and
 *                          sync BN against 1 rank with the batch of 4, 4 Adam steps, at the CPU
 *                          test's tolerances (tests/train/test_dp_sync.sh: 1e-2 of the parameters'
 *                          motion, 1e-3 relative for BN statistics). Exit 77 with fewer than 2
 * GPUs. Exit 0 passed, 1 failed, 77 skipped (no GPU, or no NCCL in this build).
 */
#include "cuda/cuda_backend.h"
#include "hpc/nccl.h"
#include "model/model.h"
#include "nn/registry.h"
#include "optim/optim.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKIP 77
enum { D = 32, H = 48, W = 32, STEPS = 4 };

/* One data-parallel member: backend, model, optimiser, communicator and the trainer's glue. */
typedef struct member {
    int device, rank, nranks, batch, use_nccl, no_sync_bn;
    const unsigned char *id;
    const float *x, *y; /* this member's share of the batch */
    sq_backend *be;
    sq_model *m;
    sq_adam_opt *opt;
    sq_nccl *nc;
    void *ev;
    sq_bn_sync bns;
    float *params, *state; /* after the steps */
    float *init;           /* parameters before them */
    size_t np, ns;
    sq_status st;
    sq_code rc;
} member;

static sq_code hook(void *ctx, size_t from, sq_status *st) {
    member *mb = ctx;
    SQ_TRY(mb->be->event_record(mb->be, mb->ev, st));
    return sq_nccl_grad_ready(mb->nc, from, mb->ev, st);
}

static sq_code bn_sum(void *ctx, sq_backend *be, sq_buf *buf, size_t off, int n, sq_status *st) {
    member *mb = ctx;
    return sq_nccl_sum_doubles(mb->nc, (char *)be->buf_native(be, buf) + off, (size_t)n,
                               be->stream(be), "ncclAllReduce of synchronised-BN sums", st);
}

static sq_model_config config(void) {
    sq_model_config c = sq_model_config_default();
    c.in_channels = 2, c.depth = D, c.height = H, c.width = W;
    c.fpn_channels = 16, c.fpn_repeats = 1;
    return c;
}

static sq_code setup(member *mb) {
    sq_status *st = &mb->st;
    sq_backend_opts bo = sq_backend_opts_default();
    bo.device = mb->device;
    mb->be = sq_backend_create("cuda", &bo, NULL, 0, st);
    if (!mb->be) return st->code;
    sq_model_config c = config();
    SQ_TRY(sq_model_create(&c, mb->be, &mb->m, st));
    SQ_TRY(sq_model_init(mb->m, 7, st));
    SQ_TRY(sq_model_plan(mb->m, mb->batch, 1, st));
    sq_model_set_training(mb->m, 1);
    mb->np = sq_model_params_floats(mb->m);
    mb->ns = sq_model_state_floats(mb->m);
    mb->init = malloc(mb->np * sizeof(float));
    if (!mb->init) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    SQ_TRY(sq_model_get_params(mb->m, mb->init, st));
    sq_adam_config ac = sq_adam_config_default();
    SQ_TRY(sq_adam_create(mb->be, mb->np, &ac, &mb->opt, st));
    if (!mb->use_nccl) return SQ_OK;
    SQ_TRY(sq_nccl_create_raw(mb->id, mb->nranks, mb->rank, mb->device, 0, &mb->nc, st));
    SQ_TRY(mb->be->event_create(mb->be, &mb->ev, st));
    SQ_TRY(sq_nccl_grad_init(mb->nc, mb->be->buf_native(mb->be, sq_model_grads_buf(mb->m)), mb->np,
                             (size_t)1 << 18, st));
    sq_model_set_grad_hook(mb->m, hook, mb);
    mb->bns.sum = bn_sum;
    mb->bns.ctx = mb;
    if (!mb->no_sync_bn) sq_model_set_bn_sync(mb->m, &mb->bns);
    return SQ_OK;
}

static sq_code train(member *mb) {
    sq_status *st = &mb->st;
    for (int s = 0; s < STEPS; s++) {
        SQ_TRY(sq_model_forward(mb->m, mb->x, NULL, st));
        SQ_TRY(sq_model_loss(mb->m, mb->y, NULL, st));
        SQ_TRY(sq_model_backward(mb->m, st));
        if (mb->nc) {
            void *done = NULL;
            SQ_TRY(mb->be->event_record(mb->be, mb->ev, st));
            SQ_TRY(sq_nccl_grad_finish(mb->nc, mb->ev, &done, NULL, st));
            SQ_TRY(mb->be->stream_wait(mb->be, done, st));
        }
        SQ_TRY(sq_adam_step(mb->opt, sq_model_params_buf(mb->m), sq_model_grads_buf(mb->m), 1e-3f,
                            st));
    }
    mb->params = malloc(mb->np * sizeof(float));
    mb->state = malloc(mb->ns * sizeof(float));
    if (!mb->params || !mb->state) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    SQ_TRY(sq_model_get_params(mb->m, mb->params, st));
    SQ_TRY(sq_model_get_state(mb->m, mb->state, st));
    if (mb->nc) SQ_TRY(sq_nccl_quiesce(mb->nc, st));
    return SQ_OK;
}

static void *member_main(void *arg) {
    member *mb = arg;
    sq_status_clear(&mb->st);
    mb->rc = setup(mb);
    if (mb->rc == SQ_OK) mb->rc = train(mb);
    return NULL;
}

static void member_free(member *mb) {
    if (mb->m) sq_model_set_grad_hook(mb->m, NULL, NULL);
    sq_nccl_destroy(mb->nc);
    if (mb->ev) mb->be->event_destroy(mb->be, mb->ev);
    sq_adam_destroy(mb->opt);
    sq_model_destroy(mb->m);
    if (mb->be) mb->be->destroy(mb->be);
    free(mb->params);
    free(mb->state);
    free(mb->init);
}

static void make_batch(float *x, float *y, int n) {
    uint64_t s = 12345;
    size_t nx = (size_t)n * 2 * D * H * W;
    for (size_t i = 0; i < nx; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float u = (float)((s >> 40) & 0xFFFFFF) / 16777216.0f;
        x[i] = (i / ((size_t)D * H * W)) % 2 ? (u > 0.6f ? 1.0f : 0.0f) : 2.0f * u - 1.0f;
    }
    for (int k = 0; k < n; k++)
        y[k] = 0.2f + 0.15f * (float)k;
}

static int report(const char *what, int ok, const char *fmt, double v) {
    printf("%s %s: ", ok ? "PASS" : "FAIL", what);
    printf(fmt, v);
    printf("\n");
    return ok ? 0 : 1;
}

static int fail_status(const char *what, const sq_status *st) {
    printf("FAIL %s: %s\n", what, st->msg);
    return 1;
}

/* 1 rank: every collective leaves the data bitwise unchanged. */
static int check_allreduce(void) {
    sq_status st;
    sq_status_clear(&st);
    const size_t n = 1625808; /* the paper network's parameter count */
    sq_backend_opts bo = sq_backend_opts_default();
    bo.device = 0;
    sq_backend *be = sq_backend_create("cuda", &bo, NULL, 0, &st);
    if (!be) return fail_status("backend", &st);
    float *h = malloc(n * sizeof *h), *back = malloc(n * sizeof *back);
    double hd[40], bd[40];
    for (size_t i = 0; i < n; i++)
        h[i] = sinf((float)i * 0.001f) * 3.0f;
    for (int i = 0; i < 40; i++)
        hd[i] = 1.0 / (i + 1);
    unsigned char id[SQ_NCCL_ID_BYTES];
    sq_buf *buf = NULL, *dbuf = NULL;
    sq_nccl *nc = NULL;
    void *ev = NULL, *done = NULL;
    sq_code rc = be->buf_alloc(be, n * sizeof(float), &buf, &st);
    if (rc == SQ_OK) rc = be->buf_alloc(be, sizeof hd, &dbuf, &st);
    if (rc == SQ_OK) rc = be->upload(be, buf, 0, h, n * sizeof(float), &st);
    if (rc == SQ_OK) rc = be->upload(be, dbuf, 0, hd, sizeof hd, &st);
    if (rc == SQ_OK) rc = sq_nccl_unique_id(id, &st);
    if (rc == SQ_OK) rc = sq_nccl_create_raw(id, 1, 0, -1, 0, &nc, &st);
    if (rc == SQ_OK) rc = be->event_create(be, &ev, &st);
    float *dev = buf ? be->buf_native(be, buf) : NULL;
    if (rc == SQ_OK) rc = sq_nccl_allreduce_floats(nc, dev, n, 0, be->stream(be), "sum", &st);
    if (rc == SQ_OK) rc = sq_nccl_allreduce_floats(nc, dev, n, 1, be->stream(be), "avg", &st);
    if (rc == SQ_OK) rc = sq_nccl_grad_init(nc, dev, n, (size_t)1 << 18, &st);
    for (size_t from = n; rc == SQ_OK && from > 0;) { /* the hook's calls, 100000 floats apart */
        from = from > 100000 ? from - 100000 : 0;
        rc = be->event_record(be, ev, &st);
        if (rc == SQ_OK) rc = sq_nccl_grad_ready(nc, from, ev, &st);
    }
    int early = 0;
    if (rc == SQ_OK) rc = be->event_record(be, ev, &st);
    if (rc == SQ_OK) rc = sq_nccl_grad_finish(nc, ev, &done, &early, &st);
    if (rc == SQ_OK) rc = be->stream_wait(be, done, &st);
    if (rc == SQ_OK)
        rc = sq_nccl_sum_doubles(nc, be->buf_native(be, dbuf), 40, be->stream(be), "sum d", &st);
    if (rc == SQ_OK) rc = be->download(be, back, buf, 0, n * sizeof(float), &st);
    if (rc == SQ_OK) rc = be->download(be, bd, dbuf, 0, sizeof bd, &st);
    if (rc == SQ_OK) rc = sq_nccl_quiesce(nc, &st);
    int bad = 0;
    if (rc != SQ_OK) {
        bad = fail_status("1-rank all-reduce", &st);
    } else {
        size_t diff = 0;
        for (size_t i = 0; i < n; i++)
            diff += memcmp(&h[i], &back[i], sizeof(float)) != 0;
        bad |= report("1-rank ncclSum + ncclAvg + 7 bucketed ncclAvg, 1625808 floats", diff == 0,
                      "%.0f floats differ", (double)diff);
        bad |= report("bucketed path: buckets started by the hook before finish",
                      early == sq_nccl_grad_buckets(nc), "%.0f of 7", (double)early);
        bad |= report("1-rank ncclSum of 40 doubles", !memcmp(hd, bd, sizeof hd), "%.0f", 0);
    }
    if (ev) be->event_destroy(be, ev);
    sq_nccl_destroy(nc);
    be->buf_free(be, buf);
    be->buf_free(be, dbuf);
    be->destroy(be);
    free(h);
    free(back);
    return bad;
}

/* Relative disagreement of two runs: ||a - b|| / ||a - a0|| for parameters (a0: the init), and
 * ||a - b|| / ||a|| for the BN statistics. */
static double rel(const float *a, const float *b, const float *a0, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i], e = a0 ? (double)a[i] - a0[i] : (double)a[i];
        num += d * d;
        den += e * e;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* 1 rank: NCCL on (hook + sync BN) against no communication, bitwise. */
static int check_step(void) {
    float *x = malloc((size_t)2 * 2 * D * H * W * sizeof *x), y[2];
    make_batch(x, y, 2);
    unsigned char id[SQ_NCCL_ID_BYTES];
    sq_status st;
    sq_status_clear(&st);
    if (sq_nccl_unique_id(id, &st) != SQ_OK) return fail_status("unique id", &st);
    member a = {
        .device = 0, .rank = 0, .nranks = 1, .batch = 2, .use_nccl = 1, .id = id, .x = x, .y = y};
    member b = a;
    b.use_nccl = 0;
    member_main(&a);
    member_main(&b);
    int bad = 0;
    if (a.rc != SQ_OK) bad = fail_status("NCCL step", &a.st);
    if (b.rc != SQ_OK) bad = fail_status("plain step", &b.st);
    if (!bad) {
        /* expected bitwise (a sum over one rank is a copy, ncclAvg divides by 1); the synced BN
         * finalises in a separate kernel from the fused one, so 1e-5 is allowed and reported */
        double rp = rel(b.params, a.params, b.init, a.np), rs = rel(b.state, a.state, NULL, a.ns);
        int pe = !memcmp(a.params, b.params, a.np * sizeof(float));
        int se = !memcmp(a.state, b.state, a.ns * sizeof(float));
        bad |= report(pe ? "1-rank NCCL steps == no-communication steps (parameters, bitwise)"
                         : "1-rank NCCL steps ~ no-communication steps (parameters, not bitwise)",
                      pe || rp <= 1e-5, "%.3g of the parameters' motion (tolerance 1e-5)", rp);
        bad |=
            report(se ? "1-rank NCCL steps == no-communication steps (BN statistics, bitwise)"
                      : "1-rank NCCL steps ~ no-communication steps (BN statistics, not bitwise)",
                   se || rs <= 1e-5, "relative %.3g (tolerance 1e-5)", rs);
    }
    member_free(&a);
    member_free(&b);
    free(x);
    return bad;
}

/* 2 ranks x batch 2 (threads, one GPU each) against 1 rank x batch 4; sync BN off is the control
 * that must disagree. Returns the two disagreements. */
static int run_pair(const float *x, const float *y, int sync_bn, const member *one, double *dp,
                    double *ds) {
    unsigned char id[SQ_NCCL_ID_BYTES];
    sq_status st;
    sq_status_clear(&st);
    if (sq_nccl_unique_id(id, &st) != SQ_OK) return fail_status("unique id", &st);
    member r[2];
    pthread_t t[2];
    const size_t per = (size_t)2 * 2 * D * H * W;
    for (int k = 0; k < 2; k++) {
        member m = {.device = k,
                    .rank = k,
                    .nranks = 2,
                    .batch = 2,
                    .use_nccl = 1,
                    .no_sync_bn = !sync_bn,
                    .id = id,
                    .x = x + k * per,
                    .y = y + 2 * k};
        r[k] = m;
    }
    for (int k = 0; k < 2; k++)
        pthread_create(&t[k], NULL, member_main, &r[k]);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    int bad = 0;
    for (int k = 0; k < 2; k++)
        if (r[k].rc != SQ_OK) bad = fail_status(k ? "rank 1" : "rank 0", &r[k].st);
    if (!bad) {
        *dp = rel(one->params, r[0].params, one->init, one->np);
        *ds = rel(one->state, r[0].state, NULL, one->ns);
        if (memcmp(r[0].params, r[1].params, one->np * sizeof(float)))
            bad = report("the 2 ranks hold the same parameters", 0, "%.0f", 0);
    }
    for (int k = 0; k < 2; k++)
        member_free(&r[k]);
    return bad;
}

static int check_syncbn(void) {
    char why[256] = "";
    int ngpu = sq_cuda_device_count(why, sizeof why);
    if (ngpu < 2) {
        printf("SKIP 2-rank sync BN: %d GPU(s) visible, needs 2\n", ngpu);
        return SKIP;
    }
    float *x = malloc((size_t)4 * 2 * D * H * W * sizeof *x), y[4];
    make_batch(x, y, 4);
    member one = {.device = 0, .rank = 0, .nranks = 1, .batch = 4, .x = x, .y = y};
    member_main(&one);
    int bad = one.rc != SQ_OK ? fail_status("1 rank x batch 4", &one.st) : 0;
    double dp = 0, ds = 0, cp = 0, cs = 0;
    if (!bad) bad |= run_pair(x, y, 1, &one, &dp, &ds);
    if (!bad) bad |= run_pair(x, y, 0, &one, &cp, &cs);
    if (!bad) {
        bad |= report("2 ranks x 2 (NCCL, sync BN) vs 1 rank x 4: parameters", dp <= 1e-2,
                      "%.3g of the parameters' motion (tolerance 1e-2)", dp);
        bad |= report("2 ranks x 2 (NCCL, sync BN) vs 1 rank x 4: BN statistics", ds <= 1e-3,
                      "relative %.3g (tolerance 1e-3)", ds);
        bad |= report("control, sync BN off: BN statistics disagree", cs > 1e-3,
                      "relative %.3g (must exceed 1e-3)", cs);
        printf("control parameters without sync BN: %.3g of the motion\n", cp);
    }
    member_free(&one);
    free(x);
    return bad;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "allreduce";
    char why[256] = "";
    if (!sq_nccl_available()) {
        printf("SKIP nccl_check: this build has no NCCL\n");
        return SKIP;
    }
    if (!sq_backend_cuda_usable(why, sizeof why)) {
        printf("SKIP nccl_check %s: no usable GPU (%s)\n", mode, why);
        return SKIP;
    }
    char ver[64];
    sq_nccl_version(ver, sizeof ver);
    printf("nccl_check %s (%s)\n", mode, ver);
    int bad;
    if (!strcmp(mode, "allreduce"))
        bad = check_allreduce();
    else if (!strcmp(mode, "step"))
        bad = check_step();
    else if (!strcmp(mode, "syncbn"))
        bad = check_syncbn();
    else {
        fprintf(stderr, "usage: nccl_check allreduce|step|syncbn\n");
        return 2;
    }
    if (bad == SKIP) return SKIP;
    printf("%s\n", bad ? "FAIL" : "PASS");
    return bad ? 1 : 0;
}
