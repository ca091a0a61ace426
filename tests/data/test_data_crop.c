/* test_data_crop.c — the contour-box crop (sq_volume_crop_contour): an off-centre structure that a
 * centre crop cuts is kept whole; an empty contour falls back to the centre crop exactly; an
 * all-ones contour's box is the whole volume (corners map to corners); the affine follows the box
 * (an output voxel's centre in mm is where the input's trilinear sample was taken). */
#include "data/volume.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

enum { D = 20, H = 60, W = 60 };

static void make(sq_volume *img, sq_volume *con, int cz, int cy, int cx, int r) {
    assert_int_equal(sq_volume_alloc(img, SQ_F32, D, H, W, NULL), SQ_OK);
    assert_int_equal(sq_volume_alloc(con, SQ_U8, D, H, W, NULL), SQ_OK);
    for (int z = 0; z < D; z++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = ((size_t)z * H + y) * W + x;
                sq_volume_f32(img)[i] = (float)(x + 100 * y + 10000 * z); /* linear: exact */
                int dz = z - cz, dy = y - cy, dx = x - cx;
                sq_volume_u8(con)[i] = dz * dz + dy * dy + dx * dx <= r * r;
            }
}

static void test_off_centre_kept(void **s) {
    (void)s;
    sq_volume img, con, ci, cc, pi, pc;
    make(&img, &con, 10, 8, 50, 6); /* near a corner in y/x */
    size_t n = sq_mask_count(&con);
    assert_int_equal(sq_volume_crop_pad(&con, 16, 24, 24, &pc, NULL), SQ_OK);
    assert_true(sq_mask_count(&pc) < n / 10); /* the centre crop loses it */
    assert_int_equal(sq_volume_crop_contour(&img, &con, 16, 24, 24, 0.1, &ci, &cc, NULL), SQ_OK);
    /* whole structure inside: no contour voxel on the box border */
    const uint8_t *m = sq_volume_u8(&cc);
    size_t inside = 0, border = 0;
    for (int z = 0; z < 16; z++)
        for (int y = 0; y < 24; y++)
            for (int x = 0; x < 24; x++) {
                int v = m[((size_t)z * 24 + y) * 24 + x];
                inside += v;
                border += v && (z == 0 || y == 0 || x == 0 || z == 15 || y == 23 || x == 23);
            }
    assert_true(inside > 16 * 24 * 24 / 10);
    assert_int_equal(border, 0);
    /* the affine follows the box: output voxel (x, y, z) sits where its sample was taken; the
     * image is linear in the index, so its value tells the input coordinate */
    for (int k = 0; k < 3; k++) {
        int x = 3 + 7 * k, y = 5 + 6 * k, z = 2 + 5 * k;
        float v = sq_volume_f32(&ci)[((size_t)z * 24 + y) * 24 + x];
        double ix = ci.affine[0][0] * x + ci.affine[0][3]; /* identity input affine */
        double iy = ci.affine[1][1] * y + ci.affine[1][3];
        double iz = ci.affine[2][2] * z + ci.affine[2][3];
        assert_float_equal(v, ix + 100 * iy + 10000 * iz, 1e-2);
    }
    sq_volume_free(&img), sq_volume_free(&con), sq_volume_free(&ci), sq_volume_free(&cc);
    sq_volume_free(&pc);
    (void)pi;
}

static void test_empty_falls_back(void **s) {
    (void)s;
    sq_volume img, con, ci, cc, pi, pc;
    make(&img, &con, 10, 8, 50, 0);
    memset(con.data, 0, sq_volume_numel(&con));
    assert_int_equal(sq_volume_crop_contour(&img, &con, 16, 24, 24, 0.1, &ci, &cc, NULL), SQ_OK);
    assert_int_equal(sq_volume_crop_pad(&img, 16, 24, 24, &pi, NULL), SQ_OK);
    assert_memory_equal(ci.data, pi.data, 16 * 24 * 24 * sizeof(float));
    assert_memory_equal(ci.affine, pi.affine, sizeof ci.affine);
    assert_int_equal(sq_mask_count(&cc), 0);
    sq_volume_free(&img), sq_volume_free(&con), sq_volume_free(&ci), sq_volume_free(&cc);
    sq_volume_free(&pi);
    (void)pc;
}

static void test_all_ones_whole_volume(void **s) {
    (void)s;
    sq_volume img, con, ci, cc;
    make(&img, &con, 0, 0, 0, 0);
    memset(con.data, 1, sq_volume_numel(&con));
    assert_int_equal(sq_volume_crop_contour(&img, &con, 10, 30, 30, 0.1, &ci, &cc, NULL), SQ_OK);
    /* step 2 on every axis: output voxel o samples input 2o + 0.5 */
    assert_float_equal(ci.spacing[0], 2.0, 1e-12);
    assert_float_equal(ci.spacing[2], 2.0, 1e-12);
    float first = sq_volume_f32(&ci)[0], last = sq_volume_f32(&ci)[10 * 30 * 30 - 1];
    assert_float_equal(first, 0.5 + 100 * 0.5 + 10000 * 0.5, 1e-2);
    assert_float_equal(last, 58.5 + 100 * 58.5 + 10000 * 18.5, 1e-1);
    assert_int_equal(sq_mask_count(&cc), 10 * 30 * 30);
    sq_volume_free(&img), sq_volume_free(&con), sq_volume_free(&ci), sq_volume_free(&cc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_centre_kept),
        cmocka_unit_test(test_empty_falls_back),
        cmocka_unit_test(test_all_ones_whole_volume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
