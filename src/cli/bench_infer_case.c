/* bench_infer_case.c — `segqa bench infer --per-case`: the latency of one deployment case,
 * NIfTI read and preprocessing included, as `segqa predict --stdin` pays it with the model
 * loaded (see bench.h). A randomly initialised model of the asked shape is saved as a checkpoint
 * and opened through the predictor, so the timed path is predict's own. */
#include "bench.h"
#include "cli.h"

#include "core/rng.h"
#include "core/fileio.h"
#include "core/timer.h"
#include "data/nifti.h"
#include "train/checkpoint.h"
#include "train/predictor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An image of smooth structure plus noise and an ellipsoid contour, both larger than the model
 * shape (so the crop is exercised), written as .nii.gz. */
static sq_code write_case(const char *dir, const sq_model_config *c, sq_status *st) {
    int d = c->depth + 4, h = c->height + 32, w = c->width + 32;
    sq_volume img, con;
    SQ_TRY(sq_volume_alloc(&img, SQ_F32, d, h, w, st));
    sq_code rc = sq_volume_alloc(&con, SQ_U8, d, h, w, st);
    sq_rng r;
    sq_rng_init(&r, 7, 0, 0);
    for (int z = 0; rc == SQ_OK && z < d; z++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double ez = (z - d / 2.0) / (d / 4.0), ey = (y - h / 2.0) / (h / 5.0),
                       ex = (x - w / 2.0) / (w / 6.0);
                size_t i = ((size_t)z * (size_t)h + (size_t)y) * (size_t)w + (size_t)x;
                int in = ez * ez + ey * ey + ex * ex < 1.0;
                sq_volume_f32(&img)[i] =
                    (float)(300 + 200 * in + 80 * sin(0.1 * x + 0.07 * y) + 20 * sq_rng_normal(&r));
                sq_volume_u8(&con)[i] = (uint8_t)in;
            }
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/image.nii.gz", dir);
    if (rc == SQ_OK) rc = sq_nifti_write(path, &img, st);
    snprintf(path, sizeof path, "%s/contour.nii.gz", dir);
    if (rc == SQ_OK) rc = sq_nifti_write(path, &con, st);
    sq_volume_free(&img);
    sq_volume_free(&con);
    return rc;
}

static sq_code write_checkpoint(const char *dir, const sq_model_config *c, sq_backend *be,
                                sq_status *st) {
    sq_model *m = NULL;
    sq_ckpt_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.preproc_config, sizeof info.preproc_config,
             "{\"shape_zyx\":[%d,%d,%d],\"norm_lo_percentile\":0,\"norm_hi_percentile\":99}",
             c->depth, c->height, c->width);
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/model.h5", dir);
    sq_code rc = sq_model_create(c, be, &m, st);
    if (rc == SQ_OK) rc = sq_model_init(m, 1, st);
    if (rc == SQ_OK) rc = sq_checkpoint_save(path, m, NULL, &info, st);
    sq_model_destroy(m);
    return rc;
}

/* Timed cases: ms[i] for i < steps after `warmup` untimed ones. */
static sq_code time_cases(const char *dir, sq_backend *be, long long warmup, long long steps,
                          double *ms, double phase[3], sq_status *st) {
    char ck[SQ_PATH_MAX], im[SQ_PATH_MAX], co[SQ_PATH_MAX];
    snprintf(ck, sizeof ck, "%s/model.h5", dir);
    snprintf(im, sizeof im, "%s/image.nii.gz", dir);
    snprintf(co, sizeof co, "%s/contour.nii.gz", dir);
    sq_predictor *p = NULL;
    SQ_TRY(sq_predictor_open(ck, be, &p, st));
    sq_mask_policy mp = sq_mask_policy_default();
    sq_code rc = SQ_OK;
    for (long long i = 0; rc == SQ_OK && i < warmup + steps; i++) {
        float y;
        double t0 = sq_now();
        rc = sq_predictor_estimate(p, im, co, &mp, &y, st);
        if (i < warmup) continue;
        ms[i - warmup] = (sq_now() - t0) * 1e3;
        double ph[3];
        sq_predictor_last_ms(p, ph);
        for (int k = 0; k < 3; k++)
            phase[k] += ph[k] / (double)steps;
    }
    sq_predictor_close(p);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double default_target(const sq_model_config *c) {
    if (c->depth == 40 && c->height == 56 && c->width == 40) return 50;
    if (c->depth == 28 && c->height == 160 && c->width == 160) return 150;
    return 0;
}

static void print_result(const sq_model_config *c, const char *backend, int threads, double *ms,
                         const double phase[3], long long n, double target) {
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    double med = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
    printf("per case (NIfTI .nii.gz read of a %dx%dx%d image + contour, crop, normalise, "
           "forward): median %.1f ms, min %.1f, max %.1f over %lld cases; %s, %d threads\n",
           c->depth + 4, c->height + 32, c->width + 32, med, ms[0], ms[n - 1], n, backend, threads);
    printf("mean per phase: read %.1f ms, preprocess %.1f ms, forward %.1f ms\n", phase[0],
           phase[1], phase[2]);
    double load[3];
    if (getloadavg(load, 3) == 3)
        printf("load average now %.2f (2-core machine: > 2 is contention)\n", load[0]);
    if (target > 0)
        printf("target %.0f ms per case at %dx%dx%d: %.2fx the target (%s)\n", target, c->depth,
               c->height, c->width, med / target, med <= target ? "met" : "NOT met");
}

int sq_bench_infer_per_case(const sq_model_config *c, const char *device, int threads,
                            long long warmup, long long steps, double target_ms) {
    sq_status st;
    sq_status_clear(&st);
    char dir[] = "/tmp/segqa-bench-case-XXXXXX", chosen[512], cmd[SQ_PATH_MAX + 16];
    if (!mkdtemp(dir)) {
        sq_fail(&st, SQ_ERR_IO, "bench: cannot create a temporary folder");
        return sq_cli_report("bench infer", &st);
    }
    sq_backend *be = sq_cli_backend(device, threads, 0, chosen, sizeof chosen, &st);
    double *ms = calloc((size_t)steps, sizeof *ms);
    sq_code rc = be ? SQ_OK : (st.code ? st.code : SQ_ERR_INTERNAL);
    if (rc == SQ_OK && !ms) rc = sq_fail(&st, SQ_ERR_NOMEM, "out of memory");
    if (rc == SQ_OK) rc = write_case(dir, c, &st);
    if (rc == SQ_OK) rc = write_checkpoint(dir, c, be, &st);
    double phase[3] = {0, 0, 0};
    if (rc == SQ_OK) rc = time_cases(dir, be, warmup, steps, ms, phase, &st);
    if (rc == SQ_OK)
        print_result(c, chosen, threads, ms, phase, steps,
                     target_ms > 0 ? target_ms : default_target(c));
    free(ms);
    if (be) be->destroy(be);
    const char *names[] = {"image.nii.gz", "contour.nii.gz", "model.h5"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s/%s", dir, names[i]);
        unlink(cmd);
    }
    rmdir(dir);
    return rc == SQ_OK ? 0 : sq_cli_report("bench infer", &st);
}
