/* test_feed.c — the training input pipeline (src/train/feed.h) on a synthetic site file.
 *
 * CPU backend: the feed is a pass-through (no ring allocator, no staging), and the model's input
 * after sq_feed_forward is the loader's batch, bit for bit.
 * Copy-stream path: there is no GPU here, so the CPU backend is given the optional copy-stream
 * entries of nn/backend.h by this test, with every upload DEFERRED until an event that follows it
 * is waited for (the latest moment a real copy stream may run it) and the ring in counted host
 * memory. Then a batch slot given back too early, staging overwritten before the compute stream
 * copied it, or a skipped batch that loses the prefetch would show as a model input that differs
 * from the reference loader's batch. Checked over two epochs with 3 batches skipped at the start
 * (a resume), and every ring buffer freed at the end.
 */
#include "../tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/tensor.h"
#include "data/loader.h"
#include "data/synth.h"
#include "model/model.h"
#include "nn/registry.h"
#include "train/feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D = 16, H = 24, W = 16, BATCH = 2 };
static char g_dir[256], g_site[320];

/* ---- the emulated copy stream: deferred uploads, counted pinned memory --------------------- */
typedef struct pending {
    sq_buf *dst;
    size_t off, bytes;
    const void *src;
} pending;
static pending g_pend[8];
static int g_npend, g_live_host, g_host_allocs, g_uploads;
static sq_code (*g_cpu_upload)(sq_backend *, sq_buf *, size_t, const void *, size_t, sq_status *);

static sq_code flush(sq_backend *be, sq_status *st) {
    for (int i = 0; i < g_npend; i++)
        if (g_cpu_upload(be, g_pend[i].dst, g_pend[i].off, g_pend[i].src, g_pend[i].bytes, st))
            return st->code;
    g_npend = 0;
    return SQ_OK;
}
static sq_code emu_upload_async(sq_backend *be, sq_buf *dst, size_t off, const void *src,
                                size_t bytes, sq_status *st) {
    (void)be, (void)st;
    assert_true(g_npend < 8);
    g_pend[g_npend++] = (pending){dst, off, bytes, src};
    g_uploads++;
    return SQ_OK;
}
static sq_code emu_noop(sq_backend *be, void *ev, sq_status *st) {
    (void)be, (void)ev, (void)st;
    return SQ_OK;
}
static sq_code emu_wait(sq_backend *be, void *ev, sq_status *st) { /* compute waits: copies land */
    (void)ev;
    return flush(be, st);
}
static sq_code emu_host_alloc(sq_backend *be, size_t bytes, void **out, sq_status *st) {
    (void)be, (void)st;
    *out = sq_alloc(bytes);
    g_live_host++, g_host_allocs++;
    return *out ? SQ_OK : SQ_ERR_NOMEM;
}
static void emu_host_free(sq_backend *be, void *p) {
    (void)be;
    if (p) g_live_host--, sq_free(p);
}

static sq_backend *emu_backend(sq_backend *cpu) {
    g_cpu_upload = cpu->upload;
    cpu->device_memory = 1;
    cpu->host_alloc = emu_host_alloc;
    cpu->host_free = emu_host_free;
    cpu->upload_async = emu_upload_async;
    cpu->copy_event_record = emu_noop;
    cpu->copy_stream_wait = emu_noop;
    cpu->stream_wait = emu_wait;
    cpu->event_sync = emu_wait;
    return cpu;
}

/* ---- fixtures ------------------------------------------------------------------------------ */
static int setup(void **state) {
    (void)state;
    if (sq_test_mkdtemp(g_dir, sizeof g_dir, "feed")) return -1;
    snprintf(g_site, sizeof g_site, "%s/site.h5", g_dir);
    sq_synth_opts o = sq_synth_opts_default();
    o.output = g_site;
    o.n_cases = 7;
    o.shape[0] = D, o.shape[1] = H, o.shape[2] = W;
    o.spacing[0] = 2, o.spacing[1] = o.spacing[2] = 1;
    sq_synth_stats ss;
    sq_status st;
    return sq_synth(&o, &ss, &st) == SQ_OK ? 0 : -1;
}
static int teardown(void **state) {
    (void)state;
    return sq_test_rmtree(g_dir);
}

static sq_loader_config loader_cfg(sq_backend *be) {
    sq_loader_config lc = sq_loader_config_default();
    lc.batch = BATCH;
    lc.workers = 2;
    lc.ring_alloc = sq_feed_ring_allocator(be);
    return lc;
}

static sq_model *tiny_model(sq_backend *be) {
    sq_model_config c = sq_model_config_default();
    c.depth = D, c.height = H, c.width = W;
    c.spacing[0] = 2, c.spacing[1] = c.spacing[2] = 1;
    c.image_scale = 1.0; /* forward scales channel 0 of its input in place otherwise */
    sq_model *m = NULL;
    sq_status st;
    assert_int_equal(sq_model_create(&c, be, &m, &st), SQ_OK);
    assert_int_equal(sq_model_init(m, 1, &st), SQ_OK);
    assert_int_equal(sq_model_plan(m, BATCH, 0, &st), SQ_OK);
    sq_model_set_training(m, 0);
    return m;
}

/* Two epochs through the feed, `skip` batches of epoch 0 given back unused; every forwarded
 * model input compared with the reference loader's batch of the same step. */
static void run_epochs(sq_backend *be, int skip) {
    sq_status st;
    sq_dataset *ds = NULL, *dref = NULL;
    const char *sites[1] = {g_site};
    assert_int_equal(sq_dataset_open(sites, 1, &ds, &st), SQ_OK);
    assert_int_equal(sq_dataset_open(sites, 1, &dref, &st), SQ_OK);
    sq_loader_config lc = loader_cfg(be), rc = loader_cfg(NULL);
    sq_loader *L = NULL, *R = NULL;
    assert_int_equal(sq_loader_create(ds, &lc, &L, &st), SQ_OK);
    assert_int_equal(sq_loader_create(dref, &rc, &R, &st), SQ_OK);
    sq_model *m = tiny_model(be);
    const size_t nx = (size_t)BATCH * 2 * D * H * W;
    float *seen = malloc(nx * sizeof(float));
    assert_non_null(seen);
    sq_feed f;
    assert_int_equal(sq_feed_init(&f, be, L, nx * sizeof(float), &st), SQ_OK);
    int compared = 0;
    for (uint32_t epoch = 0; epoch < 2; epoch++) {
        assert_int_equal(sq_feed_start_epoch(&f, epoch, &st), SQ_OK);
        assert_int_equal(sq_loader_start_epoch(R, epoch, &st), SQ_OK);
        int left = epoch == 0 ? skip : 0;
        for (;;) {
            sq_batch *b = NULL, *r = NULL;
            assert_int_equal(sq_feed_next(&f, &b, &st), SQ_OK);
            assert_int_equal(sq_loader_next(R, &r, &st), SQ_OK);
            assert_true((b == NULL) == (r == NULL));
            if (!b) break;
            assert_int_equal(b->step, r->step);
            if (left-- > 0) {
                assert_int_equal(sq_feed_release(&f, b, &st), SQ_OK);
                sq_loader_release(R, r);
                continue;
            }
            assert_int_equal(sq_feed_forward(&f, m, b, &st), SQ_OK);
            const sq_view in = sq_model_input(m);
            assert_int_equal(
                be->download(be, seen, in.buf, in.off * sizeof(float), nx * sizeof(float), &st),
                SQ_OK);
            for (int j = 0; j < BATCH; j++)
                assert_int_equal(b->sample[j], r->sample[j]);
            assert_memory_equal(seen, r->x, nx * sizeof(float));
            compared++;
            assert_int_equal(sq_feed_release(&f, b, &st), SQ_OK);
            sq_loader_release(R, r);
        }
    }
    const int steps = sq_loader_steps(L);
    assert_int_equal(compared, 2 * steps - skip);
    assert_int_equal(f.batches, 2 * steps);
    sq_feed_free(&f);
    free(seen);
    sq_model_destroy(m);
    sq_loader_destroy(L);
    sq_loader_destroy(R);
    sq_dataset_close(ds);
    sq_dataset_close(dref);
}

static void test_cpu_pass_through(void **state) {
    (void)state;
    sq_status st;
    sq_backend *be = sq_backend_create("cpu", NULL, NULL, 0, &st);
    assert_non_null(be);
    assert_null(sq_feed_ring_allocator(be).alloc);
    sq_feed f;
    assert_int_equal(sq_feed_init(&f, be, NULL, 64, &st), SQ_OK);
    assert_int_equal(f.device, 0);
    assert_null(f.stage);
    sq_feed_free(&f);
    run_epochs(be, 3);
    be->destroy(be);
}

static void test_copy_stream_path(void **state) {
    (void)state;
    sq_status st;
    sq_backend *be = emu_backend(sq_backend_create("cpu", NULL, NULL, 0, &st));
    g_live_host = g_host_allocs = g_uploads = g_npend = 0;
    run_epochs(be, 3);
    assert_int_equal(g_host_allocs, sq_loader_config_default().ring); /* the ring was pinned */
    assert_int_equal(g_live_host, 0);
    assert_true(g_uploads >= 6);
    be->destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_pass_through),
        cmocka_unit_test(test_copy_stream_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
