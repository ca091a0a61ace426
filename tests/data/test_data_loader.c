/* test_data_loader.c — the streaming loader on two small site files: batches identical for 1 and
 * 3 workers and with or without the case cache, per-rank shards that together equal the one-rank
 * epoch, targets equal to the stored Dice without augmentation, early shutdown mid-epoch and
 * epoch restarts (run under the sanitizer build for leaks and races). */
#include "../tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "data/loader.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D = 6, H = 24, W = 20, NV = D * H * W };
static char g_dir[256];
static char g_site[2][512];

static void write_site(const char *path, const char *name, int ncases, int seed) {
    sq_site_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.site, sizeof info.site, "%s", name);
    info.shape[0] = D, info.shape[1] = H, info.shape[2] = W;
    info.spacing[0] = 3, info.spacing[1] = info.spacing[2] = 0.8;
    sq_site_writer *w;
    sq_status st;
    assert_int_equal(sq_site_writer_open(path, &info, &w, &st), SQ_OK);
    for (int c = 0; c < ncases; c++) {
        sq_case k;
        memset(&k, 0, sizeof k);
        snprintf(k.id, sizeof k.id, "%s_%02d", name, c);
        snprintf(k.patient, sizeof k.patient, "p%d", c / 2);
        assert_int_equal(sq_volume_alloc(&k.image, SQ_F32, D, H, W, &st), SQ_OK);
        assert_int_equal(sq_volume_alloc(&k.gt, SQ_U8, D, H, W, &st), SQ_OK);
        double r = 5 + (c + seed) % 4;
        for (int z = 0; z < D; z++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    size_t i = ((size_t)z * H + y) * W + x;
                    sq_volume_f32(&k.image)[i] = (float)(x * 3 + y * 2 + z + c * 7 + seed);
                    sq_volume_u8(&k.gt)[i] = (x - 10) * (x - 10) + (y - 12) * (y - 12) < r * r;
                }
        for (int m = 0; m < 2; m++) {
            sq_volume v;
            assert_int_equal(sq_volume_alloc(&v, SQ_U8, D, H, W, &st), SQ_OK);
            for (size_t i = 0; i < NV; i++) {
                int x = (int)(i % W), y = (int)(i / W % H);
                ((uint8_t *)v.data)[i] =
                    (x - 10 - m - 1) * (x - 10 - m - 1) + (y - 12) * (y - 12) < r * r;
            }
            double dice = sq_dice_u8(v.data, k.gt.data, NV);
            char nm[16];
            snprintf(nm, sizeof nm, "c%d", m);
            assert_int_equal(sq_case_add_contour(&k, nm, "test", NULL, dice, &v, &st), SQ_OK);
        }
        assert_int_equal(sq_site_writer_add(w, &k, &st), SQ_OK);
        sq_case_free(&k);
    }
    assert_int_equal(sq_site_writer_commit(w, &st), SQ_OK);
}

static int setup(void **state) {
    (void)state;
    if (sq_test_mkdtemp(g_dir, sizeof g_dir, "loader")) return -1;
    snprintf(g_site[0], sizeof g_site[0], "%s/a.h5", g_dir);
    snprintf(g_site[1], sizeof g_site[1], "%s/b.h5", g_dir);
    write_site(g_site[0], "a", 7, 0);
    write_site(g_site[1], "b", 5, 3);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return sq_test_rmtree(g_dir);
}

typedef struct epoch_dump {
    int steps, n;
    float *x, *y;
    uint32_t *pos;
    int *sample;
} epoch_dump;

static void dump_free(epoch_dump *e) {
    free(e->x), free(e->y), free(e->pos), free(e->sample);
}

static void run_epoch(sq_dataset *ds, sq_loader_config cfg, uint32_t epoch, epoch_dump *e) {
    sq_loader *L;
    sq_status st;
    assert_int_equal(sq_loader_create(ds, &cfg, &L, &st), SQ_OK);
    assert_int_equal(sq_loader_start_epoch(L, epoch, &st), SQ_OK);
    e->steps = sq_loader_steps(L);
    e->n = e->steps * cfg.batch;
    e->x = malloc(sizeof(float) * 2 * NV * (size_t)e->n);
    e->y = malloc(sizeof(float) * (size_t)e->n);
    e->pos = malloc(sizeof(uint32_t) * (size_t)e->n);
    e->sample = malloc(sizeof(int) * (size_t)e->n);
    int k = 0;
    for (;;) {
        sq_batch *b;
        assert_int_equal(sq_loader_next(L, &b, &st), SQ_OK);
        if (!b) break;
        assert_int_equal(b->n, cfg.batch);
        for (int j = 0; j < b->n; j++, k++) {
            memcpy(e->x + (size_t)k * 2 * NV, b->x + (size_t)j * 2 * NV, sizeof(float) * 2 * NV);
            e->y[k] = b->y[j];
            e->pos[k] = b->position[j];
            e->sample[k] = b->sample[j];
        }
        sq_loader_release(L, b);
    }
    assert_int_equal(k, e->n);
    sq_loader_destroy(L);
}

static sq_dataset *open_ds(void) {
    const char *paths[2] = {g_site[0], g_site[1]};
    sq_dataset *ds;
    sq_status st;
    assert_int_equal(sq_dataset_open(paths, 2, &ds, &st), SQ_OK);
    assert_int_equal(sq_dataset_nsamples(ds), (7 + 5) * 2);
    return ds;
}

static void test_workers_and_cache_agree(void **state) {
    (void)state;
    sq_dataset *ds = open_ds();
    sq_loader_config c = sq_loader_config_default();
    c.aug.fail_rate = 0.25f;
    c.workers = 1, c.cache = 1;
    epoch_dump a, b, d;
    run_epoch(ds, c, 3, &a);
    c.workers = 3, c.cache = 0, c.ring = 2;
    run_epoch(ds, c, 3, &b);
    assert_int_equal(a.steps, 12);
    assert_memory_equal(a.x, b.x, sizeof(float) * 2 * NV * (size_t)a.n);
    assert_memory_equal(a.y, b.y, sizeof(float) * (size_t)a.n);
    assert_memory_equal(a.sample, b.sample, sizeof(int) * (size_t)a.n);
    /* another epoch: another order */
    run_epoch(ds, c, 4, &d);
    assert_true(memcmp(a.sample, d.sample, sizeof(int) * (size_t)a.n) != 0);
    /* every sample exactly once in an epoch (24 samples, 12 steps of 2) */
    int seen[24] = {0};
    for (int i = 0; i < a.n; i++)
        seen[a.sample[i]]++;
    for (int i = 0; i < 24; i++)
        assert_int_equal(seen[i], 1);
    for (int i = 0; i < a.n; i++)
        assert_true(a.y[i] >= 0 && a.y[i] <= 1);
    dump_free(&a), dump_free(&b), dump_free(&d);
    sq_dataset_close(ds);
}

static void test_no_augmentation_targets(void **state) {
    (void)state;
    sq_dataset *ds = open_ds();
    sq_loader_config c = sq_loader_config_default();
    c.augment = 0, c.swap_pairs = 0, c.shuffle = 0, c.batch = 4;
    epoch_dump a;
    run_epoch(ds, c, 0, &a);
    assert_int_equal(a.n, 24);
    for (int i = 0; i < a.n; i++) {
        assert_int_equal(a.sample[i], i);
        const sq_sample_ref *r = sq_dataset_sample(ds, i);
        assert_true(fabs(a.y[i] - r->dice) < 1e-6);
        /* channel 1 holds the stored contour unchanged */
        sq_volume v;
        sq_status st;
        char what[64];
        snprintf(what, sizeof what, "contours/c%d", r->contour);
        assert_int_equal(
            sq_site_read_volume(sq_dataset_site(ds, r->site), r->case_idx, what, &v, &st), SQ_OK);
        const float *xc = a.x + ((size_t)i * 2 + 1) * NV;
        for (int k = 0; k < NV; k++)
            assert_true(xc[k] == (float)sq_volume_u8(&v)[k]);
        sq_volume_free(&v);
    }
    dump_free(&a);
    sq_dataset_close(ds);
}

static void test_shards_union(void **state) {
    (void)state;
    sq_dataset *ds = open_ds();
    sq_loader_config c = sq_loader_config_default();
    c.swap_pairs = 0, c.batch = 2;
    epoch_dump one, r0, r1;
    run_epoch(ds, c, 2, &one); /* positions 0..23 */
    c.world = 2, c.batch = 1;
    c.rank = 0;
    run_epoch(ds, c, 2, &r0);
    c.rank = 1;
    run_epoch(ds, c, 2, &r1);
    assert_int_equal(r0.steps, 12);
    assert_int_equal(r0.n + r1.n, one.n);
    for (int i = 0; i < one.n; i++) {
        epoch_dump *r = (one.pos[i] % 2) ? &r1 : &r0;
        int k = (int)(one.pos[i] / 2);
        assert_int_equal(r->pos[k], one.pos[i]);
        assert_int_equal(r->sample[k], one.sample[i]);
        assert_memory_equal(r->x + (size_t)k * 2 * NV, one.x + (size_t)i * 2 * NV,
                            sizeof(float) * 2 * NV);
        assert_true(r->y[k] == one.y[i]);
    }
    dump_free(&one), dump_free(&r0), dump_free(&r1);
    sq_dataset_close(ds);
}

static void test_early_shutdown_and_restart(void **state) {
    (void)state;
    sq_dataset *ds = open_ds();
    sq_loader_config c = sq_loader_config_default();
    c.workers = 2, c.ring = 2, c.cache = 0;
    sq_loader *L;
    sq_status st;
    assert_int_equal(sq_loader_create(ds, &c, &L, &st), SQ_OK);
    for (uint32_t ep = 0; ep < 3; ep++) {
        assert_int_equal(sq_loader_start_epoch(L, ep, &st), SQ_OK);
        sq_batch *b;
        assert_int_equal(sq_loader_next(L, &b, &st), SQ_OK);
        assert_non_null(b);
        sq_loader_release(L, b); /* abandon the rest of the epoch */
    }
    assert_int_equal(sq_loader_start_epoch(L, 9, &st), SQ_OK);
    sq_loader_destroy(L); /* mid-epoch, batches in flight */
    /* created and destroyed without any epoch */
    assert_int_equal(sq_loader_create(ds, &c, &L, &st), SQ_OK);
    sq_loader_destroy(L);
    /* a bad config and a missing site are clear errors */
    c.workers = 0;
    assert_int_not_equal(sq_loader_create(ds, &c, &L, &st), SQ_OK);
    assert_non_null(strstr(st.msg, "workers"));
    sq_dataset_close(ds);
    const char *bad[2] = {g_site[0], "/nonexistent/x.h5"};
    sq_dataset *d2;
    assert_int_equal(sq_dataset_open(bad, 2, &d2, &st), SQ_ERR_IO);
    assert_non_null(strstr(st.msg, "/nonexistent/x.h5"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_and_cache_agree),
        cmocka_unit_test(test_no_augmentation_targets),
        cmocka_unit_test(test_shards_union),
        cmocka_unit_test(test_early_shutdown_and_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
