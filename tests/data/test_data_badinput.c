/* test_data_badinput.c — every bad input gives one clear error naming the file, and no site file
 * (final or temporary) is left behind: truncated .nii.gz, image/mask shape mismatch, non-label
 * mask values, NaN image, empty GT, missing files in a manifest, wrong HDF5 schema or version. */
#include "../tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/fileio.h"
#include "data/ingest.h"
#include "data/nifti.h"
#include "data/site.h"

#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char g_dir[256];
static char g_data[1024];

static int setup(void **state) {
    (void)state;
    const char *src = getenv("SEGQA_SOURCE_DIR");
    snprintf(g_data, sizeof g_data, "%s/datasets/msd-hippocampus", src ? src : ".");
    return sq_test_mkdtemp(g_dir, sizeof g_dir, "badinput");
}

static int teardown(void **state) {
    (void)state;
    return sq_test_rmtree(g_dir);
}

/* fresh case folder DIR/<name>/{images,labels,out} holding one good case "c1" */
static void make_case_dir(const char *name, char *dir, size_t n) {
    snprintf(dir, n, "%s/%s", g_dir, name);
    char p[1024];
    sq_status st;
    snprintf(p, sizeof p, "%s/images", dir);
    assert_int_equal(sq_mkdirs(p, &st), SQ_OK);
    snprintf(p, sizeof p, "%s/labels", dir);
    assert_int_equal(sq_mkdirs(p, &st), SQ_OK);
    snprintf(p, sizeof p, "%s/out", dir);
    assert_int_equal(sq_mkdirs(p, &st), SQ_OK);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cp '%s/images/hippocampus_004.nii.gz' '%s/images/c1.nii.gz' && "
             "cp '%s/labels/hippocampus_004.nii.gz' '%s/labels/c1.nii.gz'",
             g_data, dir, g_data, dir);
    assert_int_equal(system(cmd), 0);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* run ingest on dir, expect failure with `needle` (a file name) in the message, nothing left */
static void expect_ingest_error(const char *dir, const char *input, const char *needle,
                                const char *what) {
    char out[1100], outdir[1024];
    snprintf(outdir, sizeof outdir, "%s/out", dir);
    snprintf(out, sizeof out, "%s/site.h5", outdir);
    sq_ingest_opts o;
    memset(&o, 0, sizeof o);
    o.input = input;
    o.output = out;
    o.shape[0] = 40, o.shape[1] = 56, o.shape[2] = 40;
    o.lo_pct = 0, o.hi_pct = 99;
    o.labels.all = 1;
    sq_status st;
    sq_status_clear(&st);
    sq_ingest_stats s;
    sq_code rc = sq_ingest(&o, &s, &st);
    print_message("  %s -> %s\n", what, st.msg);
    assert_int_not_equal(rc, SQ_OK);
    assert_non_null(strstr(st.msg, needle));
    assert_int_equal(count_files(outdir), 0); /* neither site.h5 nor a temp file */
}

static void test_good_case_ingests(void **state) {
    (void)state;
    char dir[512], out[1024];
    make_case_dir("good", dir, sizeof dir);
    snprintf(out, sizeof out, "%s/out/site.h5", dir);
    sq_ingest_opts o;
    memset(&o, 0, sizeof o);
    o.input = dir, o.output = out;
    o.shape[0] = 40, o.shape[1] = 56, o.shape[2] = 40;
    o.hi_pct = 99;
    o.labels.all = 1;
    sq_status st;
    sq_ingest_stats s;
    assert_int_equal(sq_ingest(&o, &s, &st), SQ_OK);
    assert_int_equal(s.n_cases, 1);
    char odir[1024];
    snprintf(odir, sizeof odir, "%s/out", dir);
    assert_int_equal(count_files(odir), 1);
    sq_site *site;
    assert_int_equal(sq_site_open(out, &site, &st), SQ_OK);
    assert_int_equal(sq_site_ncases(site), 1);
    assert_string_equal(sq_site_case_meta(site, 0)->id, "c1");
    sq_site_close(site);
}

static void test_truncated_gz(void **state) {
    (void)state;
    char dir[512], p[1024], cmd[4096];
    make_case_dir("trunc", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/images/c1.nii.gz", dir);
    snprintf(cmd, sizeof cmd, "head -c 30000 '%s/images/hippocampus_004.nii.gz' > '%s'", g_data, p);
    assert_int_equal(system(cmd), 0);
    expect_ingest_error(dir, dir, "images/c1.nii.gz", "truncated .nii.gz");
    sq_volume v;
    sq_status st;
    assert_int_not_equal(sq_nifti_read_image(p, &v, &st), SQ_OK);
}

static void test_shape_mismatch(void **state) {
    (void)state;
    char dir[512], p[1024];
    make_case_dir("shape", dir, sizeof dir);
    sq_volume m;
    sq_status st;
    assert_int_equal(sq_volume_alloc(&m, SQ_U8, 38, 51, 36, &st), SQ_OK);
    m.affine[0][3] = m.affine[1][3] = m.affine[2][3] = 1;
    sq_volume_u8(&m)[1000] = 1;
    snprintf(p, sizeof p, "%s/labels/c1.nii.gz", dir);
    assert_int_equal(sq_nifti_write(p, &m, &st), SQ_OK);
    sq_volume_free(&m);
    expect_ingest_error(dir, dir, "labels/c1.nii.gz: shape 36x51x38 differs from image",
                        "shape mismatch");
}

static void test_non_label_values(void **state) {
    (void)state;
    char dir[512], p[1024];
    make_case_dir("nonlabel", dir, sizeof dir);
    sq_volume m;
    sq_status st;
    assert_int_equal(sq_volume_alloc(&m, SQ_F32, 38, 52, 36, &st), SQ_OK);
    m.affine[0][3] = m.affine[1][3] = m.affine[2][3] = 1;
    sq_volume_f32(&m)[5000] = 0.5f;
    snprintf(p, sizeof p, "%s/labels/c1.nii.gz", dir);
    assert_int_equal(sq_nifti_write(p, &m, &st), SQ_OK);
    sq_volume_free(&m);
    expect_ingest_error(dir, dir, "labels/c1.nii.gz: voxel", "non-label values");
}

static void test_nan_image(void **state) {
    (void)state;
    char dir[512], p[1024];
    make_case_dir("nan", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/images/c1.nii.gz", dir);
    sq_volume v;
    sq_status st;
    assert_int_equal(sq_nifti_read_image(p, &v, &st), SQ_OK);
    sq_volume_f32(&v)[1234] = NAN;
    assert_int_equal(sq_nifti_write(p, &v, &st), SQ_OK);
    sq_volume_free(&v);
    expect_ingest_error(dir, dir, "images/c1.nii.gz: voxel", "NaN image");
}

static void test_empty_gt(void **state) {
    (void)state;
    char dir[512], p[1024];
    make_case_dir("empty", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/labels/c1.nii.gz", dir);
    sq_volume v;
    sq_status st;
    assert_int_equal(sq_nifti_read_mask(p, &v, &st), SQ_OK);
    memset(v.data, 0, sq_volume_numel(&v));
    assert_int_equal(sq_nifti_write(p, &v, &st), SQ_OK);
    sq_volume_free(&v);
    expect_ingest_error(dir, dir, "labels/c1.nii.gz: ground truth is empty", "empty GT");
}

static void test_manifest_missing_file(void **state) {
    (void)state;
    char dir[512], csv[1024];
    make_case_dir("manifest", dir, sizeof dir);
    snprintf(csv, sizeof csv, "%s/cases.csv", dir);
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    fprintf(f, "case,patient,image,gt,contour,site\n");
    fprintf(f, "c1,p1,images/c1.nii.gz,labels/c1.nii.gz,,siteA\n");
    fprintf(f, "c2,p1,images/c2.nii.gz,labels/c1.nii.gz,,siteA\n");
    fclose(f);
    expect_ingest_error(dir, csv, "images/c2.nii.gz: no such file", "manifest missing image");
    f = fopen(csv, "w");
    fprintf(f, "case,patient,image,gt,contour,site\n");
    fprintf(f, "c1,p1,images/c1.nii.gz,labels/c1.nii.gz,contours/c1.nii.gz,siteA\n");
    fclose(f);
    expect_ingest_error(dir, csv, "contours/c1.nii.gz: no such file", "manifest missing contour");
    f = fopen(csv, "w");
    fprintf(f, "case,image\nc1,images/c1.nii.gz\n");
    fclose(f);
    expect_ingest_error(dir, csv, "cases.csv: header", "manifest without gt column");
}

/* a valid one-case site file, then broken copies of it */
static void write_site(const char *path) {
    sq_site_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.site, sizeof info.site, "t");
    info.shape[0] = 2, info.shape[1] = 3, info.shape[2] = 4;
    info.spacing[0] = info.spacing[1] = info.spacing[2] = 1;
    sq_site_writer *w;
    sq_status st;
    assert_int_equal(sq_site_writer_open(path, &info, &w, &st), SQ_OK);
    sq_case c;
    memset(&c, 0, sizeof c);
    snprintf(c.id, sizeof c.id, "a");
    assert_int_equal(sq_volume_alloc(&c.image, SQ_F32, 2, 3, 4, &st), SQ_OK);
    assert_int_equal(sq_volume_alloc(&c.gt, SQ_U8, 2, 3, 4, &st), SQ_OK);
    sq_volume_u8(&c.gt)[3] = 1;
    assert_int_equal(sq_site_writer_add(w, &c, &st), SQ_OK);
    assert_int_equal(sq_site_writer_commit(w, &st), SQ_OK);
    sq_case_free(&c);
}

static void test_wrong_hdf5_schema(void **state) {
    (void)state;
    char p[1024];
    sq_status st;
    sq_site *s;
    snprintf(p, sizeof p, "%s/site_ok.h5", g_dir);
    write_site(p);
    assert_int_equal(sq_site_open(p, &s, &st), SQ_OK);
    sq_site_close(s);
    /* version 2 */
    snprintf(p, sizeof p, "%s/site_v2.h5", g_dir);
    write_site(p);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    int v = 2;
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
    H5Fclose(f);
    assert_int_equal(sq_site_open(p, &s, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "site_v2.h5: root attribute format_version is 2"));
    /* wrong format name */
    snprintf(p, sizeof p, "%s/site_fmt.h5", g_dir);
    write_site(p);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "format");
    H5Fclose(f);
    assert_int_equal(sq_site_open(p, &s, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "site_fmt.h5: root attribute format"));
    /* a case without its gt */
    snprintf(p, sizeof p, "%s/site_nogt.h5", g_dir);
    write_site(p);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "cases/a/gt", H5P_DEFAULT);
    H5Fclose(f);
    assert_int_equal(sq_site_open(p, &s, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "site_nogt.h5: /cases/a/gt is missing"));
    /* not HDF5 at all */
    snprintf(p, sizeof p, "%s/notes.h5", g_dir);
    assert_int_equal(sq_write_file_atomic(p, "hello", 5, &st), SQ_OK);
    assert_int_equal(sq_site_open(p, &s, &st), SQ_ERR_FORMAT);
    assert_non_null(strstr(st.msg, "notes.h5: not an HDF5 file"));
    snprintf(p, sizeof p, "%s/missing.h5", g_dir);
    assert_int_equal(sq_site_open(p, &s, &st), SQ_ERR_IO);
    assert_non_null(strstr(st.msg, "missing.h5: no such file"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_case_ingests),
        cmocka_unit_test(test_truncated_gz),
        cmocka_unit_test(test_shape_mismatch),
        cmocka_unit_test(test_non_label_values),
        cmocka_unit_test(test_nan_image),
        cmocka_unit_test(test_empty_gt),
        cmocka_unit_test(test_manifest_missing_file),
        cmocka_unit_test(test_wrong_hdf5_schema),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
