/* test_data_loader_crop.c — the loader's `crop: contour` (loader.h sq_loader_crop) on a synthetic
 * site whose organs lie off-centre (synth --off-centre 0.8):
 *  - without augmentation every sample equals predict's preprocessing of the same image and
 *    contour (sq_volume_crop_contour, then the percentile map), bit for bit: train and predict
 *    crop alike;
 *  - the crop keeps the structure (voxels of the cropped contour times the box's voxel size over
 *    the contour's voxels: within 10 % of 1) where the centre crop of the same shape loses most
 *    of it on some cases (the control that shows the sites are off-centre);
 *  - the target stays the stored Dice over the whole structure, not a Dice over the crop;
 *  - with augmentation (box jittered) the batches are the same for 1 and 3 workers, and differ
 *    from the unjittered ones.
 */
#include "../tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "data/loader.h"
#include "data/synth.h"
#include "data/volume.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SD = 12, SH = 64, SW = 64, CD = 12, CH = 32, CW = 32, CVOX = CD * CH * CW };
static char g_dir[256], g_site[320];

static int setup(void **state) {
    (void)state;
    if (sq_test_mkdtemp(g_dir, sizeof g_dir, "loader-crop")) return -1;
    snprintf(g_site, sizeof g_site, "%s/site.h5", g_dir);
    sq_synth_opts o = sq_synth_opts_default();
    o.output = g_site;
    o.n_cases = 6;
    o.shape[0] = SD, o.shape[1] = SH, o.shape[2] = SW;
    o.spacing[0] = 4, o.spacing[1] = o.spacing[2] = 1.5;
    o.off_centre = 0.8;
    o.seed = 5;
    sq_synth_stats ss;
    sq_status st;
    return sq_synth(&o, &ss, &st) == SQ_OK ? 0 : -1;
}
static int teardown(void **state) {
    (void)state;
    return sq_test_rmtree(g_dir);
}

static sq_loader_config crop_cfg(int augment, int workers) {
    sq_loader_config lc = sq_loader_config_default();
    lc.batch = 2, lc.workers = workers;
    lc.augment = augment, lc.swap_pairs = augment, lc.shuffle = 0;
    lc.crop = (sq_loader_crop){1, {CD, CH, CW}, 0.1, 0.1, 0, 99};
    return lc;
}

static size_t count(const uint8_t *m, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += m[i] != 0;
    return k;
}

/* Predict's preprocessing of sample s (the site's stored image and contour) into x. */
static void predict_side(sq_dataset *ds, int s, float *x, double *kept, double *kept_centre) {
    const sq_sample_ref *r = sq_dataset_sample(ds, s);
    sq_site *site = sq_dataset_site(ds, r->site);
    char what[160];
    snprintf(what, sizeof what, "contours/%s",
             sq_site_case_meta(site, r->case_idx)->contours[r->contour].name);
    sq_volume img = {0}, con = {0}, ci = {0}, cc = {0}, centre = {0};
    sq_status st;
    assert_int_equal(sq_site_read_volume(site, r->case_idx, "image", &img, &st), SQ_OK);
    assert_int_equal(sq_site_read_volume(site, r->case_idx, what, &con, &st), SQ_OK);
    assert_int_equal(sq_volume_crop_contour(&img, &con, CD, CH, CW, 0.1, &ci, &cc, &st), SQ_OK);
    assert_int_equal(sq_volume_normalise_percentile(&ci, 0, 99, NULL, NULL, &st), SQ_OK);
    memcpy(x, sq_volume_f32(&ci), CVOX * sizeof(float));
    for (int i = 0; i < CVOX; i++)
        x[CVOX + i] = sq_volume_u8(&cc)[i] ? 1.0f : 0.0f;
    int lo[3], hi[3];
    assert_true(sq_crop_box(&con, 0.1, lo, hi));
    double box_vox = 1; /* full-grid voxels per crop voxel */
    const int shape[3] = {CD, CH, CW};
    for (int a = 0; a < 3; a++)
        box_vox *= (double)(hi[a] - lo[a] + 1) / shape[a];
    const double full = (double)count(sq_volume_u8(&con), sq_volume_numel(&con));
    *kept = (double)count(sq_volume_u8(&cc), CVOX) * box_vox / full;
    assert_int_equal(sq_volume_crop_pad(&con, CD, CH, CW, &centre, &st), SQ_OK);
    *kept_centre = (double)count(sq_volume_u8(&centre), CVOX) / full;
    sq_volume_free(&img), sq_volume_free(&con), sq_volume_free(&ci), sq_volume_free(&cc);
    sq_volume_free(&centre);
}

static void test_crop_equals_predict_and_keeps_the_structure(void **state) {
    (void)state;
    sq_status st;
    sq_dataset *ds = NULL, *ev = NULL;
    const char *sites[1] = {g_site};
    assert_int_equal(sq_dataset_open(sites, 1, &ds, &st), SQ_OK);
    assert_int_equal(sq_dataset_open(sites, 1, &ev, &st), SQ_OK);
    sq_loader_config lc = crop_cfg(0, 2);
    sq_loader *L = NULL;
    assert_int_equal(sq_loader_create(ds, &lc, &L, &st), SQ_OK);
    assert_int_equal(sq_loader_start_epoch(L, 0, &st), SQ_OK);
    float *ref = malloc(2 * CVOX * sizeof(float));
    int n = 0, centre_lost = 0;
    for (sq_batch *b = NULL;;) {
        assert_int_equal(sq_loader_next(L, &b, &st), SQ_OK);
        if (!b) break;
        for (int j = 0; j < b->n; j++, n++) {
            double kept = 0, kept_centre = 0;
            predict_side(ev, b->sample[j], ref, &kept, &kept_centre);
            assert_memory_equal(b->x + (size_t)j * 2 * CVOX, ref, 2 * CVOX * sizeof(float));
            assert_float_equal(b->y[j], sq_dataset_sample(ds, b->sample[j])->dice, 1e-6);
            printf("sample %d: contour crop keeps %.3f of the structure, the centre crop %.3f\n",
                   b->sample[j], kept, kept_centre);
            assert_true(kept > 0.9 && kept < 1.1);
            centre_lost += kept_centre < 0.7;
        }
        sq_loader_release(L, b);
    }
    assert_true(n >= 6);
    assert_true(centre_lost >= 2); /* the control: these organs are off-centre */
    free(ref);
    sq_loader_destroy(L);
    sq_dataset_close(ds);
    sq_dataset_close(ev);
}

/* The first batch of epoch 3 with `augment` and `workers` into out (2 samples). */
static void first_batch(int augment, int workers, float *out) {
    sq_status st;
    sq_dataset *ds = NULL;
    const char *sites[1] = {g_site};
    assert_int_equal(sq_dataset_open(sites, 1, &ds, &st), SQ_OK);
    sq_loader_config lc = crop_cfg(augment, workers);
    sq_loader *L = NULL;
    assert_int_equal(sq_loader_create(ds, &lc, &L, &st), SQ_OK);
    assert_int_equal(sq_loader_start_epoch(L, 3, &st), SQ_OK);
    sq_batch *b = NULL;
    assert_int_equal(sq_loader_next(L, &b, &st), SQ_OK);
    assert_non_null(b);
    memcpy(out, b->x, 2 * 2 * CVOX * sizeof(float));
    for (int j = 0; j < 2; j++)
        assert_true(b->y[j] >= 0 && b->y[j] <= 1);
    sq_loader_release(L, b);
    sq_loader_destroy(L);
    sq_dataset_close(ds);
}

static void test_augmented_crop_is_reproducible(void **state) {
    (void)state;
    const size_t n = 2 * 2 * CVOX;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)),
          *c = malloc(n * sizeof(float));
    first_batch(1, 1, a);
    first_batch(1, 3, b);
    first_batch(0, 1, c);
    assert_memory_equal(a, b, n * sizeof(float));
    assert_memory_not_equal(a, c, n * sizeof(float));
    free(a), free(b), free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crop_equals_predict_and_keeps_the_structure),
        cmocka_unit_test(test_augmented_crop_is_reproducible),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
