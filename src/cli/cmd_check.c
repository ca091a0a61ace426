/* cmd_check.c — `segqa check`: a quick self-test of an installation.
 *
 * Each check exercises a real dependency, not just its presence: Philox known answers, an OpenBLAS
 * sgemm against a double-precision loop, the bundled data set's manifest and files, the MPI
 * library. Prints one PASS/FAIL line per check and exits 1 when any fails.
 */
#include "cli.h"

#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "data/nifti.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SEGQA_DEFAULT_DATA_DIR
#define SEGQA_DEFAULT_DATA_DIR "datasets/msd-hippocampus"
#endif

static int report(const char *name, int ok, const char *detail) {
    printf("%-10s %-6s %s\n", name, ok ? "PASS" : "FAIL", detail);
    return ok;
}

static int check_rng(void) {
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        sq_philox4x32_10(kat[i], kat[i] + 4, out);
        ok &= !memcmp(out, kat[i] + 6, sizeof out);
    }
    return report("rng", ok, "Philox4x32-10 against the 3 Random123 known-answer vectors");
}

static int check_blas(void) {
    enum { M = 67, N = 45, K = 93 };
    float *a = sq_alloc(sizeof(float) * M * K), *b = sq_alloc(sizeof(float) * K * N);
    float *c = sq_alloc(sizeof(float) * M * N);
    if (!a || !b || !c) {
        sq_free(a), sq_free(b), sq_free(c);
        return report("blas", 0, "out of memory");
    }
    sq_rng r;
    sq_rng_init(&r, 7, 0, 0);
    for (int i = 0; i < M * K; i++)
        a[i] = sq_rng_normal(&r);
    for (int i = 0; i < K * N; i++)
        b[i] = sq_rng_normal(&r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    double maxerr = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)a[i * K + k] * b[k * N + j];
            double e = fabs(s - c[i * N + j]);
            if (e > maxerr) maxerr = e;
        }
    sq_free(a), sq_free(b), sq_free(c);
    char d[128];
    snprintf(d, sizeof d, "OpenBLAS sgemm 67x45x93 vs double loop: max |err| %.2e (limit 1e-3)",
             maxerr);
    return report("blas", maxerr < 1e-3, d);
}

static int check_data(const char *dir) {
    char path[SQ_PATH_MAX];
    snprintf(path, sizeof path, "%s/MANIFEST.tsv", dir);
    char *text = NULL;
    size_t len = 0;
    sq_status st;
    sq_status_clear(&st);
    if (sq_read_file(path, &text, &len, &st) != SQ_OK) return report("data", 0, st.msg);
    int cases = 0, missing = 0;
    char first_missing[SQ_PATH_MAX] = "";
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "file\t", 5) || !*line) continue;
        char *tab = strchr(line, '\t');
        if (tab) *tab = '\0';
        cases++;
        const char *sub[2] = {"images", "labels"};
        for (int s = 0; s < 2; s++) {
            char f[SQ_PATH_MAX];
            snprintf(f, sizeof f, "%s/%s/%s", dir, sub[s], line);
            if (!sq_file_exists(f)) {
                if (!missing) snprintf(first_missing, sizeof first_missing, "%s", f);
                missing++;
            }
        }
    }
    free(text);
    char d[SQ_PATH_MAX + 128];
    if (missing)
        snprintf(d, sizeof d, "%s: %d of %d cases have missing files, first %s", dir, missing,
                 cases, first_missing);
    else
        snprintf(d, sizeof d, "%s: %d image/label pairs present", dir, cases);
    return report("data", missing == 0 && cases > 0, d);
}

static int check_nifti(const char *dir) {
    char detail[512] = "";
    sq_status st;
    sq_status_clear(&st);
    if (sq_nifti_selfcheck(dir, NULL, detail, sizeof detail, &st) != SQ_OK)
        return report("nifti", 0, st.msg);
    return report("nifti", 1, detail);
}

int sq_cmd_check(int argc, char **argv) {
    char data_dir[SQ_PATH_MAX] = SEGQA_DEFAULT_DATA_DIR;
    const sq_option opts[] = {
        {"data", 'd', SQ_OPT_STRING, data_dir, sizeof data_dir, "DIR",
         "bundled data set folder (MANIFEST.tsv, images/, labels/)", NULL, 0, 0},
    };
    const sq_cli_spec spec = {
        .command = "check",
        .usage = "segqa check [options]",
        .description = "Self-test of this installation: RNG known answers, BLAS numerics, the\n"
                       "bundled real data set (files present; one case read through libnifti and\n"
                       "checked). Exits 1 if any check fails.",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 0,
        .max_pos = 0,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("check", &st);
    if (a.help) return 0;
    double t0 = sq_now();
    int ok = 1;
    ok &= check_rng();
    ok &= check_blas();
    ok &= check_data(data_dir);
    ok &= check_nifti(data_dir);
    printf("%s in %.2f s\n", ok ? "all checks passed" : "SOME CHECKS FAILED", sq_now() - t0);
    return ok ? 0 : 1;
}
