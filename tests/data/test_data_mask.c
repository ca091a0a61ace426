/* test_data_mask.c — contours as segmentation tools write them (data/mask.h): label maps through
 * a label set, float maps through the threshold, the binary-only default, and contours on other
 * grids mapped by nearest neighbour through both affines (flipped axes and a cropped, shifted
 * grid must map back voxel for voxel; a contour outside the image is an error). Files are real
 * NIfTI written by sq_nifti_write. */
#include "data/mask.h"
#include "data/nifti.h"
#include "../tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static char g_dir[256];

static int setup(void **s) {
    (void)s;
    return sq_test_mkdtemp(g_dir, sizeof g_dir, "mask");
}
static int teardown(void **s) {
    (void)s;
    return sq_test_rmtree(g_dir);
}

/* A 6x7x8 (z, y, x) label map: label 1 in a box, label 2 in another. Spacing 2 mm, origin set. */
static void make_labels(sq_volume *v) {
    assert_int_equal(sq_volume_alloc(v, SQ_U8, 6, 7, 8, NULL), SQ_OK);
    v->affine[0][0] = 2, v->affine[1][1] = 2, v->affine[2][2] = 2;
    v->affine[0][3] = -10, v->affine[1][3] = 5, v->affine[2][3] = 3;
    uint8_t *m = sq_volume_u8(v);
    for (int z = 1; z < 4; z++)
        for (int y = 2; y < 5; y++)
            for (int x = 1; x < 6; x++)
                m[(z * 7 + y) * 8 + x] = x < 4 ? 1 : 2;
}

static size_t count_value(const sq_volume *v, int value) {
    size_t c = 0;
    for (size_t i = 0; i < sq_volume_numel(v); i++)
        c += sq_volume_u8(v)[i] == value;
    return c;
}

static void test_label_sets(void **s) {
    (void)s;
    sq_volume lab, img, out;
    make_labels(&lab);
    assert_int_equal(sq_volume_alloc(&img, SQ_F32, 6, 7, 8, NULL), SQ_OK);
    sq_volume_copy_geometry(&img, &lab);
    char path[512];
    snprintf(path, sizeof path, "%s/labels.nii.gz", g_dir);
    assert_int_equal(sq_nifti_write(path, &lab, NULL), SQ_OK);
    sq_mask_policy p = sq_mask_policy_default();
    sq_status st;
    sq_status_clear(&st);
    /* default: a label map is refused, naming the file and pointing at --label */
    assert_int_not_equal(sq_contour_read(path, &img, "img", &p, &out, &st), SQ_OK);
    assert_non_null(strstr(st.msg, "labels.nii.gz"));
    assert_non_null(strstr(st.msg, "expected a binary mask"));
    assert_non_null(strstr(st.msg, "--label"));
    p.has_labels = 1;
    assert_int_equal(sq_label_set_parse("2", &p.labels, NULL), SQ_OK);
    assert_int_equal(sq_contour_read(path, &img, "img", &p, &out, NULL), SQ_OK);
    assert_int_equal(count_value(&out, 1), 3 * 3 * 2); /* x 4..5 */
    sq_volume_free(&out);
    assert_int_equal(sq_label_set_parse("all", &p.labels, NULL), SQ_OK);
    assert_int_equal(sq_contour_read(path, &img, "img", &p, &out, NULL), SQ_OK);
    assert_int_equal(count_value(&out, 1), 3 * 3 * 5);
    assert_int_equal(count_value(&out, 0), 6 * 7 * 8 - 3 * 3 * 5);
    sq_volume_free(&out);
    sq_volume_free(&lab);
    sq_volume_free(&img);
}

static void test_float_threshold(void **s) {
    (void)s;
    sq_volume prob, img, out;
    assert_int_equal(sq_volume_alloc(&prob, SQ_F32, 2, 3, 4, NULL), SQ_OK);
    assert_int_equal(sq_volume_alloc(&img, SQ_F32, 2, 3, 4, NULL), SQ_OK);
    float *x = sq_volume_f32(&prob);
    for (int i = 0; i < 24; i++)
        x[i] = (float)i / 23.0f; /* 0 .. 1 */
    char path[512];
    snprintf(path, sizeof path, "%s/prob.nii", g_dir);
    assert_int_equal(sq_nifti_write(path, &prob, NULL), SQ_OK);
    sq_mask_policy p = sq_mask_policy_default();
    assert_int_equal(sq_contour_read(path, &img, "img", &p, &out, NULL), SQ_OK);
    assert_int_equal(count_value(&out, 1), 12); /* i >= 11.5 */
    assert_int_equal(sq_volume_u8(&out)[11], 0);
    assert_int_equal(sq_volume_u8(&out)[12], 1);
    sq_volume_free(&out);
    p.threshold = 0.9;
    assert_int_equal(sq_contour_read(path, &img, "img", &p, &out, NULL), SQ_OK);
    assert_int_equal(count_value(&out, 1), 3); /* 21/23, 22/23, 1 */
    sq_volume_free(&out);
    /* a float file with a label set is a label map: 0.04 is not an integer label */
    p.has_labels = 1;
    assert_int_equal(sq_label_set_parse("1", &p.labels, NULL), SQ_OK);
    sq_status st;
    sq_status_clear(&st);
    assert_int_equal(sq_contour_read(path, &img, "img", &p, &out, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "expected integer label values"));
    sq_volume_free(&prob);
    sq_volume_free(&img);
}

/* The label map stored flipped in x and cropped/shifted, each with the affine that keeps every
 * voxel at the same place in mm: nearest resampling must give back the original exactly. */
static void test_resample_exact(void **s) {
    (void)s;
    sq_volume lab, img, flip, crop, out;
    make_labels(&lab);
    assert_int_equal(sq_volume_alloc(&img, SQ_F32, 6, 7, 8, NULL), SQ_OK);
    sq_volume_copy_geometry(&img, &lab);
    assert_int_equal(sq_volume_alloc(&flip, SQ_U8, 6, 7, 8, NULL), SQ_OK);
    sq_volume_copy_geometry(&flip, &lab);
    for (int i = 0; i < 6 * 7; i++)
        for (int x = 0; x < 8; x++)
            sq_volume_u8(&flip)[i * 8 + x] = sq_volume_u8(&lab)[i * 8 + 7 - x];
    flip.affine[0][0] = -2, flip.affine[0][3] = -10 + 2 * 7; /* x' = 7 - x */
    /* crop: z 1..4, y 1..5, x 0..6 -> origin moves by (0, 1, 1) voxels */
    assert_int_equal(sq_volume_alloc(&crop, SQ_U8, 4, 5, 7, NULL), SQ_OK);
    sq_volume_copy_geometry(&crop, &lab);
    for (int z = 0; z < 4; z++)
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 7; x++)
                sq_volume_u8(&crop)[(z * 5 + y) * 7 + x] =
                    sq_volume_u8(&lab)[((z + 1) * 7 + y + 1) * 8 + x];
    crop.affine[1][3] += 2, crop.affine[2][3] += 2;
    sq_mask_policy p = sq_mask_policy_default();
    p.has_labels = 1;
    assert_int_equal(sq_label_set_parse("all", &p.labels, NULL), SQ_OK);
    sq_volume ref;
    assert_int_equal(sq_mask_binarise(&img, 0, &p, "x", &ref, NULL), SQ_OK); /* zeros */
    memcpy(ref.data, lab.data, sq_volume_numel(&lab));
    sq_label_set_apply(&p.labels, &ref);
    const sq_volume *cases[2] = {&flip, &crop};
    const char *names[2] = {"flip.nii.gz", "crop.nii.gz"};
    for (int c = 0; c < 2; c++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", g_dir, names[c]);
        assert_int_equal(sq_nifti_write(path, cases[c], NULL), SQ_OK);
        sq_status st;
        sq_status_clear(&st);
        p.resample = SQ_RESAMPLE_NONE;
        assert_int_equal(sq_contour_read(path, &img, "img.nii", &p, &out, &st), SQ_ERR_FORMAT);
        assert_non_null(strstr(st.msg, names[c]));
        assert_non_null(strstr(st.msg, "--resample nearest"));
        p.resample = SQ_RESAMPLE_NEAREST;
        assert_int_equal(sq_contour_read(path, &img, "img.nii", &p, &out, NULL), SQ_OK);
        assert_memory_equal(out.data, ref.data, sq_volume_numel(&ref));
        sq_volume_free(&out);
    }
    /* moved 100 mm away: nothing lands on the image */
    char path[512];
    snprintf(path, sizeof path, "%s/far.nii.gz", g_dir);
    lab.affine[0][3] += 100;
    assert_int_equal(sq_nifti_write(path, &lab, NULL), SQ_OK);
    sq_status st;
    sq_status_clear(&st);
    assert_int_equal(sq_contour_read(path, &img, "img.nii", &p, &out, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "no contour voxel lands"));
    sq_volume_free(&ref);
    sq_volume_free(&crop);
    sq_volume_free(&flip);
    sq_volume_free(&lab);
    sq_volume_free(&img);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_sets),
        cmocka_unit_test(test_float_threshold),
        cmocka_unit_test(test_resample_exact),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
