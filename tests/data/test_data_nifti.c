/* test_data_nifti.c — NIfTI reading of the bundled real files (float32 and uint8 images, uint8 and
 * float32 labels), round trip through sq_nifti_write checked by nibabel, Dice against numpy,
 * crop/pad and percentile normalisation on small known inputs. */
#include "../tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/fileio.h"
#include "data/nifti.h"
#include "data/volume.h"

#include <zlib.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_dir[256];
static char g_data[1024];

static int setup(void **state) {
    (void)state;
    const char *src = getenv("SEGQA_SOURCE_DIR");
    snprintf(g_data, sizeof g_data, "%s/datasets/msd-hippocampus", src ? src : ".");
    return sq_test_mkdtemp(g_dir, sizeof g_dir, "nifti");
}

static int teardown(void **state) {
    (void)state;
    return sq_test_rmtree(g_dir);
}

static void test_read_real_files(void **state) {
    (void)state;
    /* hippocampus_243: float32 label; _004: float32 image; an uint8 image case is found below */
    char p[2048];
    sq_status st;
    sq_volume img, lab;
    snprintf(p, sizeof p, "%s/images/hippocampus_004.nii.gz", g_data);
    assert_int_equal(sq_nifti_read_image(p, &img, &st), SQ_OK);
    assert_int_equal(img.w, 36);
    assert_int_equal(img.h, 52);
    assert_int_equal(img.d, 38);
    assert_true(fabs(img.spacing[0] - 1.0) < 1e-9);
    snprintf(p, sizeof p, "%s/labels/hippocampus_004.nii.gz", g_data);
    assert_int_equal(sq_nifti_read_mask(p, &lab, &st), SQ_OK);
    char ip[2048];
    snprintf(ip, sizeof ip, "%s/images/hippocampus_004.nii.gz", g_data);
    assert_int_equal(sq_nifti_check_pair(&img, ip, &lab, p, &st), SQ_OK);
    size_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < sq_volume_numel(&lab); i++) {
        c1 += sq_volume_u8(&lab)[i] == 1;
        c2 += sq_volume_u8(&lab)[i] == 2;
    }
    assert_int_equal(c1, 1832); /* MANIFEST.tsv */
    assert_int_equal(c2, 1866);
    sq_volume_free(&img);
    sq_volume_free(&lab);
    snprintf(p, sizeof p, "%s/labels/hippocampus_243.nii.gz", g_data); /* float32 labels */
    assert_int_equal(sq_nifti_read_mask(p, &lab, &st), SQ_OK);
    assert_true(sq_mask_count(&lab) > 1000);
    sq_volume_free(&lab);
}

/* first case whose image is uint8 according to MANIFEST.tsv */
static int find_u8_case(char *name, size_t n) {
    char p[2048];
    snprintf(p, sizeof p, "%s/MANIFEST.tsv", g_data);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    char line[1024];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "\tuint8\tuint8\t") || strstr(line, "\tuint8\tfloat32\t")) {
            size_t k = strcspn(line, "\t");
            if (k >= n) break;
            memcpy(name, line, k);
            name[k] = 0;
            found = 1;
            break;
        }
    fclose(f);
    return found;
}

static void test_roundtrip_and_dice_vs_python(void **state) {
    (void)state;
    char tsv[512];
    snprintf(tsv, sizeof tsv, "%s/checks.tsv", g_dir);
    FILE *f = fopen(tsv, "w");
    assert_non_null(f);
    char u8case[256];
    assert_true(find_u8_case(u8case, sizeof u8case));
    const char *cases[4] = {"hippocampus_004.nii.gz", "hippocampus_243.nii.gz", u8case,
                            "hippocampus_006.nii.gz"};
    sq_status st;
    for (int i = 0; i < 4; i++) {
        char in[2048], out[2048];
        sq_volume v;
        /* image round trip (.nii.gz and plain .nii) */
        snprintf(in, sizeof in, "%s/images/%s", g_data, cases[i]);
        assert_int_equal(sq_nifti_read_image(in, &v, &st), SQ_OK);
        snprintf(out, sizeof out, "%s/img%d%s", g_dir, i, i % 2 ? ".nii" : ".nii.gz");
        assert_int_equal(sq_nifti_write(out, &v, &st), SQ_OK);
        fprintf(f, "roundtrip\t%s\t%s\n", in, out);
        sq_volume back;
        assert_int_equal(sq_nifti_read_image(out, &back, &st), SQ_OK);
        assert_memory_equal(back.data, v.data, sq_volume_numel(&v) * 4);
        sq_volume_free(&back);
        sq_volume_free(&v);
        /* mask round trip */
        snprintf(in, sizeof in, "%s/labels/%s", g_data, cases[i]);
        assert_int_equal(sq_nifti_read_mask(in, &v, &st), SQ_OK);
        snprintf(out, sizeof out, "%s/lab%d.nii.gz", g_dir, i);
        assert_int_equal(sq_nifti_write(out, &v, &st), SQ_OK);
        fprintf(f, "roundtrip\t%s\t%s\n", in, out);
        /* Dice of label selections within the file, and against the next case (cropped to a
         * common shape is not needed: compare label 1 vs all, label 2 vs all, 1 vs 2) */
        const char *sets[3][2] = {{"1", "all"}, {"2", "all"}, {"1", "1,2"}};
        for (int k = 0; k < 3; k++) {
            sq_label_set a, b;
            assert_int_equal(sq_label_set_parse(sets[k][0], &a, &st), SQ_OK);
            assert_int_equal(sq_label_set_parse(sets[k][1], &b, &st), SQ_OK);
            sq_volume va, vb;
            assert_int_equal(sq_nifti_read_mask(in, &va, &st), SQ_OK);
            assert_int_equal(sq_nifti_read_mask(in, &vb, &st), SQ_OK);
            sq_label_set_apply(&a, &va);
            sq_label_set_apply(&b, &vb);
            double d = sq_dice_u8(va.data, vb.data, sq_volume_numel(&va));
            fprintf(f, "dice\t%s\t%s\t%s\t%s\t%.17g\n", in, sets[k][0], in, sets[k][1], d);
            sq_volume_free(&va);
            sq_volume_free(&vb);
        }
        sq_volume_free(&v);
    }
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s/nifti_check.py %s", SEGQA_PYTHON, SEGQA_TEST_DIR, tsv);
    assert_int_equal(system(cmd), 0);
}

static void test_crop_pad_and_normalise(void **state) {
    (void)state;
    sq_status st;
    sq_volume v, o;
    assert_int_equal(sq_volume_alloc(&v, SQ_F32, 3, 4, 5, &st), SQ_OK);
    for (size_t i = 0; i < 60; i++)
        sq_volume_f32(&v)[i] = (float)i;
    /* crop 3->1 (start 1), pad 4->6 (at 1), crop 5->3 (start 1) */
    assert_int_equal(sq_volume_crop_pad(&v, 1, 6, 3, &o, &st), SQ_OK);
    const float *x = sq_volume_f32(&o);
    assert_true(x[0 * 3 + 0] == 0.0f);                /* padded row y=0 */
    assert_true(x[1 * 3 + 0] == (float)(20 + 0 + 1)); /* z=1, y=0, x=1 */
    assert_true(x[4 * 3 + 2] == (float)(20 + 15 + 3));
    assert_true(x[5 * 3 + 1] == 0.0f);
    /* origin moved: output voxel (0,0,0) is input (1,-1,1) */
    assert_true(fabs(o.affine[0][3] - 1.0) < 1e-12 && fabs(o.affine[1][3] + 1.0) < 1e-12 &&
                fabs(o.affine[2][3] - 1.0) < 1e-12);
    sq_volume_free(&o);
    /* percentiles: 0..59 -> p0 = 0, p99 = 58.41 (numpy linear) */
    double lo, hi;
    assert_int_equal(sq_volume_normalise_percentile(&v, 0, 99, &lo, &hi, &st), SQ_OK);
    assert_true(fabs(lo) < 1e-9 && fabs(hi - 58.41) < 1e-4);
    assert_true(fabs(sq_volume_f32(&v)[59] - 59 * 255.0 / 58.41) < 1e-3);
    sq_volume_free(&v);
}

static void test_label_sets(void **state) {
    (void)state;
    sq_label_set ls;
    sq_status st;
    assert_int_equal(sq_label_set_parse("1,2", &ls, &st), SQ_OK);
    assert_true(sq_label_set_has(&ls, 1) && sq_label_set_has(&ls, 2) && !sq_label_set_has(&ls, 3));
    assert_int_equal(sq_label_set_parse("all", &ls, &st), SQ_OK);
    assert_true(sq_label_set_has(&ls, 7) && !sq_label_set_has(&ls, 0));
    assert_int_not_equal(sq_label_set_parse("1,x", &ls, &st), SQ_OK);
    assert_non_null(strstr(st.msg, "1,x"));
    uint8_t a[4] = {1, 1, 0, 0}, b[4] = {1, 0, 1, 0}, z[4] = {0};
    assert_true(fabs(sq_dice_u8(a, b, 4) - 0.5) < 1e-12);
    assert_true(sq_dice_u8(a, z, 4) == 0.0);
    assert_true(sq_dice_u8(z, z, 4) == 1.0);
}

/* NIfTI-2, float64, int16 with scaling, uint16, big-endian, int8/float32 labels, all written by
 * nibabel (make_nifti_variants.py) with the expected values beside them. */
static void test_datatype_variants(void **state) {
    (void)state;
    char dir[512], cmd[4096];
    snprintf(dir, sizeof dir, "%s/variants", g_dir);
    snprintf(cmd, sizeof cmd, "%s %s/make_nifti_variants.py %s", SEGQA_PYTHON, SEGQA_TEST_DIR, dir);
    assert_int_equal(system(cmd), 0);
    char idx[600];
    snprintf(idx, sizeof idx, "%s/index.tsv", dir);
    FILE *f = fopen(idx, "r");
    assert_non_null(f);
    char name[256], kind[16];
    int nx, ny, nz;
    double dx, dy, dz, ox, oy, oz;
    int n = 0;
    while (fscanf(f, "%255s %15s %d %d %d %lf %lf %lf %lf %lf %lf", name, kind, &nx, &ny, &nz, &dx,
                  &dy, &dz, &ox, &oy, &oz) == 11) {
        char path[1024], exp_path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        snprintf(exp_path, sizeof exp_path, "%s/%.*s.f32", dir, (int)(strstr(name, ".nii") - name),
                 name);
        sq_volume v;
        sq_status st;
        int is_mask = !strcmp(kind, "mask");
        sq_code rc =
            is_mask ? sq_nifti_read_mask(path, &v, &st) : sq_nifti_read_image(path, &v, &st);
        if (rc) print_error("%s\n", st.msg);
        assert_int_equal(rc, SQ_OK);
        assert_int_equal(v.w, nx);
        assert_int_equal(v.h, ny);
        assert_int_equal(v.d, nz);
        assert_true(fabs(v.spacing[2] - dx) < 1e-6 && fabs(v.spacing[1] - dy) < 1e-6 &&
                    fabs(v.spacing[0] - dz) < 1e-6);
        assert_true(fabs(v.affine[0][3] - ox) < 1e-4 && fabs(v.affine[1][3] - oy) < 1e-4 &&
                    fabs(v.affine[2][3] - oz) < 1e-4);
        size_t nv = sq_volume_numel(&v);
        float *e = malloc(sizeof(float) * nv);
        FILE *g = fopen(exp_path, "rb");
        assert_non_null(g);
        assert_int_equal(fread(e, sizeof(float), nv, g), nv);
        fclose(g);
        for (size_t i = 0; i < nv; i++) {
            float got = is_mask ? (float)sq_volume_u8(&v)[i] : sq_volume_f32(&v)[i];
            if (fabsf(got - e[i]) > 1e-4f * (1 + fabsf(e[i])))
                fail_msg("%s voxel %zu: %g, expected %g", name, i, got, e[i]);
        }
        free(e);
        sq_volume_free(&v);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 6);
}

static void test_selfcheck(void **state) {
    (void)state;
    char detail[512] = "";
    sq_status st;
    assert_int_equal(sq_nifti_selfcheck(g_data, NULL, detail, sizeof detail, &st), SQ_OK);
    /* MANIFEST.tsv: 1832 + 1866 voxels; Dice(1 vs 1+2) = 2*1832/(1832+3698) */
    assert_non_null(strstr(detail, "3698 GT voxels"));
    char want[64];
    snprintf(want, sizeof want, "%.4f", 2.0 * 1832 / (1832 + 3698));
    assert_non_null(strstr(detail, want));
    assert_int_not_equal(sq_nifti_selfcheck(g_dir, NULL, detail, sizeof detail, &st), SQ_OK);
    assert_non_null(strstr(st.msg, "hippocampus_004.nii.gz: no such file"));
}

/* Write bytes [a, b) of buf to path as one gzip member, appended when `append`. */
static void gz_member(const char *path, const char *buf, size_t a, size_t b, int append) {
    gzFile g = gzopen(path, append ? "ab" : "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, buf + a, (unsigned)(b - a)), (int)(b - a));
    assert_int_equal(gzclose(g), Z_OK);
}

/* One image as .nii and as gzip forms a .nii.gz can take: two members and trailing bytes after the
 * member (read, equal to the plain file, through libdeflate when built), a wrong CRC and a
 * truncated stream (libdeflate refuses them, znzlib then fails with a line naming the file). */
static void test_gzip_forms(void **state) {
    (void)state;
    sq_volume v, r, plain;
    sq_status st;
    assert_int_equal(sq_volume_alloc(&v, SQ_F32, 5, 7, 9, &st), SQ_OK);
    for (size_t i = 0; i < sq_volume_numel(&v); i++)
        sq_volume_f32(&v)[i] = (float)(i % 97) * 1.5f - 20.0f;
    char nii[512], gz[512];
    snprintf(nii, sizeof nii, "%s/forms.nii", g_dir);
    assert_int_equal(sq_nifti_write(nii, &v, &st), SQ_OK);
    assert_int_equal(sq_nifti_read_image(nii, &plain, &st), SQ_OK);
    size_t n = 0;
    char *raw = NULL;
    assert_int_equal(sq_read_file(nii, &raw, &n, &st), SQ_OK);
    const size_t bytes = sq_volume_numel(&v) * sizeof(float);
    const char *forms[] = {"two-members", "trailing", "bad-crc", "truncated"};
    for (int f = 0; f < 4; f++) {
        snprintf(gz, sizeof gz, "%s/forms-%s.nii.gz", g_dir, forms[f]);
        gz_member(gz, raw, 0, f == 0 ? n / 2 : n, 0);
        if (f == 0) gz_member(gz, raw, n / 2, n, 1);
        char *z = NULL;
        size_t zn = 0;
        assert_int_equal(sq_read_file(gz, &z, &zn, &st), SQ_OK);
        FILE *fp = fopen(gz, "wb");
        assert_non_null(fp);
        if (f == 2) z[zn - 6] ^= 0x5a; /* inside the CRC-32 of the trailer */
        fwrite(z, 1, f == 3 ? zn / 2 : zn, fp);
        if (f == 1) fputs("trailing bytes, not gzip", fp);
        fclose(fp);
        free(z);
        long fast = sq_nifti_fast_gz_reads();
        sq_code rc = sq_nifti_read_image(gz, &r, &st);
        if (f >= 2) {
            assert_int_not_equal(rc, SQ_OK);
            assert_non_null(
                strstr(st.msg, f == 2 ? "forms-bad-crc.nii.gz" : "forms-truncated.nii.gz"));
            assert_int_equal(sq_nifti_fast_gz_reads(), fast);
            continue;
        }
        if (rc != SQ_OK) print_error("%s: %s\n", forms[f], st.msg);
        assert_int_equal(rc, SQ_OK);
        assert_memory_equal(sq_volume_f32(&r), sq_volume_f32(&plain), bytes);
        sq_volume_free(&r);
#ifdef SEGQA_HAVE_LIBDEFLATE
        assert_int_equal(sq_nifti_fast_gz_reads() - fast, 1);
#else
        assert_int_equal(sq_nifti_fast_gz_reads() - fast, 0);
#endif
    }
    free(raw);
    sq_volume_free(&v);
    sq_volume_free(&plain);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_real_files),
        cmocka_unit_test(test_roundtrip_and_dice_vs_python),
        cmocka_unit_test(test_crop_pad_and_normalise),
        cmocka_unit_test(test_label_sets),
        cmocka_unit_test(test_datatype_variants),
        cmocka_unit_test(test_selfcheck),
        cmocka_unit_test(test_gzip_forms),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
