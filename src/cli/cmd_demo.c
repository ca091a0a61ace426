/* cmd_demo.c — `segqa demo`: the main job on the bundled real data, end to end.
 *
 * 1. ingest datasets/msd-hippocampus (208 MRI crops with expert labels) into one HDF5 site file,
 * 2. add automatic contours (an atlas transfer and a perturbed GT per case) with known Dice,
 * 3. run 5-fold cross-validation (folds per patient) as one MPI job of --ranks ranks on CPU, with
 *    the failure-case study on every test fold,
 * 4. print the summary table (segqa vs the naive baseline) and where the run folder is.
 * Steps 1–2 are skipped when their output exists (delete the folder to start over).
 */
#include "cli.h"

#include "core/fileio.h"
#include "core/log.h"
#include "core/timer.h"
#include "data/contours.h"
#include "data/ingest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SEGQA_DEFAULT_DATA_DIR
#define SEGQA_DEFAULT_DATA_DIR "datasets/msd-hippocampus"
#endif
#ifndef SEGQA_MPIEXEC
#define SEGQA_MPIEXEC "mpirun"
#endif

int sq_cmd_demo(int argc, char **argv) {
    char data[SQ_PATH_MAX] = SEGQA_DEFAULT_DATA_DIR, out[SQ_PATH_MAX] = "runs/demo";
    char shape_text[64] = "40x56x40";
    long long ranks = 2, folds = 5, epochs = 12, threads = 1, seed = 20221, limit = 0, batch = 8,
              decay_epoch = 9;
    double lr = 5e-3, lr_decayed = 5e-4;
    char augment[16] = "robust", device[8] = "cpu", comm[8] = "auto";
    double comm_timeout = 300;
    const sq_option opts[] = {
        {"data", 'd', SQ_OPT_STRING, data, sizeof data, "DIR",
         "bundled data set (images/, labels/, MANIFEST.tsv)", NULL, 0, 0},
        {"out", 'o', SQ_OPT_STRING, out, sizeof out, "DIR", "demo folder", NULL, 0, 0},
        {"shape", 0, SQ_OPT_STRING, shape_text, sizeof shape_text, "DxHxW",
         "crop/pad every volume to this shape", NULL, 0, 0},
        {"ranks", 'n', SQ_OPT_INT, &ranks, 0, "W", "MPI ranks", NULL, 1, 256},
        {"folds", 'k', SQ_OPT_INT, &folds, 0, "K", "cross-validation folds", NULL, 2, 64},
        {"epochs", 'e', SQ_OPT_INT, &epochs, 0, "N", "training epochs per fold", NULL, 1, 100000},
        {"threads", 't', SQ_OPT_INT, &threads, 0, "N", "compute threads per rank", NULL, 1, 1024},
        {"batch", 'b', SQ_OPT_INT, &batch, 0, "N", "samples per step on each rank", NULL, 1, 64},
        {"lr", 0, SQ_OPT_DOUBLE, &lr, 0, "X", "learning rate", NULL, 1e-9, 10},
        {"lr-decayed", 0, SQ_OPT_DOUBLE, &lr_decayed, 0, "X", "learning rate after decay", NULL,
         1e-12, 10},
        {"decay-epoch", 0, SQ_OPT_INT, &decay_epoch, 0, "N", "epoch of the step decay", NULL, 0,
         100000},
        {"seed", 's', SQ_OPT_INT, &seed, 0, "N", "seed", NULL, 0, 9.0e15},
        {"augment", 'a', SQ_OPT_CHOICE, augment, sizeof augment, "PRESET",
         "augmentation: paper, robust (paper + failure-case injection) or none",
         "paper|robust|none", 0, 0},
        {"limit", 0, SQ_OPT_INT, &limit, 0, "N", "use the first N cases only (0: all)", NULL, 0,
         100000},
        {"device", 0, SQ_OPT_CHOICE, device, sizeof device, "DEV", SQ_CLI_DEVICE_HELP,
         "cpu|cuda|auto", 0, 0},
        {"comm", 0, SQ_OPT_CHOICE, comm, sizeof comm, "LIB", SQ_CLI_COMM_HELP, "auto|nccl|mpi", 0,
         0},
        {"comm-timeout", 0, SQ_OPT_DOUBLE, &comm_timeout, 0, "S", SQ_CLI_COMM_TIMEOUT_HELP, NULL,
         0.1, 1e6},
    };
    const sq_cli_spec spec = {
        .command = "demo",
        .usage = "segqa demo [options]",
        .description =
            "The main job on the bundled real hippocampus MRI data: ingest, automatic contours,\n"
            "K-fold cross-validation on W MPI ranks (CPU) with the failure-case study, and the\n"
            "summary table of segqa against the naive baseline. Writes OUT/hippocampus.h5 and the\n"
            "run folder OUT/cv.",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 0,
        .max_pos = 0,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("demo", &st);
    if (a.help) return 0;
    double t0 = sq_now();

    int64_t shape[5];
    int nd = 0;
    if (sq_parse_shape(shape_text, shape, &nd, &st) != SQ_OK || nd != 3) {
        if (st.code == SQ_OK)
            sq_fail(&st, SQ_ERR_USAGE, "--shape '%s': expected DxHxW", shape_text);
        return sq_cli_report("demo", &st);
    }
    if (sq_mkdirs(out, &st) != SQ_OK) return sq_cli_report("demo", &st);
    char raw[SQ_PATH_MAX + 32], site[SQ_PATH_MAX + 32], run[SQ_PATH_MAX + 32];
    snprintf(raw, sizeof raw, "%s/hippocampus-gt.h5", out);
    snprintf(site, sizeof site, "%s/hippocampus.h5", out);
    snprintf(run, sizeof run, "%s/cv", out);

    if (!sq_file_exists(site)) {
        sq_ingest_opts io;
        memset(&io, 0, sizeof io);
        io.input = data;
        io.output = raw;
        io.site = "msd-hippocampus";
        io.shape[0] = (int)shape[0];
        io.shape[1] = (int)shape[1];
        io.shape[2] = (int)shape[2];
        io.lo_pct = 0;
        io.hi_pct = 99;
        io.labels.all = 1;
        io.limit = (int)limit;
        io.progress = 1;
        sq_ingest_stats is;
        if (sq_ingest(&io, &is, &st) != SQ_OK) return sq_cli_report("demo", &st);
        printf("ingest:   %d cases from %s -> %s (%.1f s)\n", is.n_cases, data, raw, is.seconds);
        sq_contours_opts co;
        memset(&co, 0, sizeof co);
        co.input = raw;
        co.output = site;
        co.n_atlas = 1;
        co.n_perturb = 1;
        co.seed = (unsigned long long)seed;
        co.strength = 1.0f;
        co.progress = 1;
        sq_contours_stats cs;
        if (sq_contours_run(&co, &cs, &st) != SQ_OK) return sq_cli_report("demo", &st);
        printf("contours: %d automatic contours, Dice %.3f..%.3f (mean %.3f) -> %s (%.1f s)\n",
               cs.n_contours, cs.dice_min, cs.dice_max, cs.dice_mean, site, cs.seconds);
        unlink(raw);
    } else {
        printf("using the existing site file %s\n", site);
    }
    fflush(stdout);

    /* The cross-validation runs as its own MPI job: mpirun -np W <this binary> cv ... */
    char self[SQ_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        sq_fail(&st, SQ_ERR_IO, "/proc/self/exe: cannot find the segqa binary: %s",
                strerror(errno));
        return sq_cli_report("demo", &st);
    }
    self[n] = '\0';
    char np[16], ep[16], kf[16], th[16], sd[32], bs[16], lrs[32], lrd[32], de[16], ct[32];
    snprintf(bs, sizeof bs, "%lld", batch);
    snprintf(lrs, sizeof lrs, "%.9g", lr);
    snprintf(lrd, sizeof lrd, "%.9g", lr_decayed);
    snprintf(de, sizeof de, "%lld", decay_epoch);
    snprintf(ct, sizeof ct, "%g", comm_timeout);
    snprintf(np, sizeof np, "%lld", ranks);
    snprintf(ep, sizeof ep, "%lld", epochs);
    snprintf(kf, sizeof kf, "%lld", folds);
    snprintf(th, sizeof th, "%lld", threads);
    snprintf(sd, sizeof sd, "%lld", seed);
    char *args[] = {SEGQA_MPIEXEC,
                    "--oversubscribe",
                    "--bind-to",
                    "none",
                    "--mca",
                    "pml",
                    "ob1",
                    "--mca",
                    "btl",
                    "self,vader",
                    "-np",
                    np,
                    self,
                    "cv",
                    site,
                    "--out",
                    run,
                    "--folds",
                    kf,
                    "--epochs",
                    ep,
                    "--threads",
                    th,
                    "--seed",
                    sd,
                    "--val-every",
                    "2",
                    "--augment",
                    augment,
                    "--batch",
                    bs,
                    "--lr",
                    lrs,
                    "--lr-decayed",
                    lrd,
                    "--decay-epoch",
                    de,
                    "--device",
                    device,
                    "--comm",
                    comm,
                    "--comm-timeout",
                    ct,
                    NULL};
    if (getuid() == 0) { /* Open MPI refuses root without it */
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    }
    printf(
        "running:  %s -np %s segqa cv %s --out %s --folds %s --epochs %s --augment %s --batch %s "
        "--lr %s --lr-decayed %s --decay-epoch %s --device %s --comm %s --comm-timeout %s\n",
        SEGQA_MPIEXEC, np, site, run, kf, ep, augment, bs, lrs, lrd, de, device, comm, ct);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        sq_fail(&st, SQ_ERR_IO, "fork: %s", strerror(errno));
        return sq_cli_report("demo", &st);
    }
    if (pid == 0) {
        execvp(args[0], args);
        fprintf(stderr, "segqa demo: cannot run %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    if (code != 0) {
        fprintf(stderr, "segqa demo: the cross-validation job failed (exit %d)\n", code);
        return code;
    }
    printf("demo finished in %.1f min; figures: %s/pred_vs_target.png, %s/failure_mae.png, "
           "%s/curves.png\n",
           (sq_now() - t0) / 60.0, run, run, run);
    return 0;
}
