/* cmd_demo.c — `segqa demo`: the main job on the bundled real data, end to end.
 *
 * 1. ingest datasets/msd-hippocampus (208 MRI crops with expert labels) into one HDF5 site file,
 * 2. add automatic contours (`segqa contours`' defaults: an atlas transfer, a perturbed GT and two
 *    near-GT contours per case) with known Dice,
 * 3. run 5-fold cross-validation (folds per patient, `--recipe demo`) as one MPI job of --ranks
 *    ranks on CPU, with the failure-case study on every test fold,
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

/* The demo's options. The schedule comes from `cv --recipe demo` (cmd_train.c); epochs, batch,
 * lr, lr-decayed, decay-epoch and augment are passed on only when given (0 / "" = not given). */
typedef struct demo_opts {
    char data[SQ_PATH_MAX], out[SQ_PATH_MAX], shape_text[64];
    long long ranks, folds, epochs, threads, seed, limit, batch, decay_epoch;
    double lr, lr_decayed, comm_timeout;
    char augment[16], device[8], comm[8], recipe[16];
} demo_opts;

static void demo_defaults(demo_opts *d) {
    memset(d, 0, sizeof *d);
    snprintf(d->data, sizeof d->data, "%s", SEGQA_DEFAULT_DATA_DIR);
    snprintf(d->out, sizeof d->out, "runs/demo");
    snprintf(d->shape_text, sizeof d->shape_text, "40x56x40");
    d->ranks = 2, d->folds = 5, d->threads = 1, d->seed = 20221, d->comm_timeout = 300;
    d->decay_epoch = -1;
    snprintf(d->recipe, sizeof d->recipe, "demo");
    snprintf(d->device, sizeof d->device, "cpu");
    snprintf(d->comm, sizeof d->comm, "auto");
}

/* Parse argv into d. Returns -1 to go on, else the exit code (help printed: 0). */
static int demo_parse(int argc, char **argv, demo_opts *d) {
    const sq_option opts[] = {
        {"data", 'd', SQ_OPT_STRING, d->data, sizeof d->data, "DIR",
         "bundled data set (images/, labels/, MANIFEST.tsv)", NULL, 0, 0},
        {"out", 'o', SQ_OPT_STRING, d->out, sizeof d->out, "DIR", "demo folder", NULL, 0, 0},
        {"shape", 0, SQ_OPT_STRING, d->shape_text, sizeof d->shape_text, "DxHxW",
         "crop/pad every volume to this shape", NULL, 0, 0},
        {"ranks", 'n', SQ_OPT_INT, &d->ranks, 0, "W", "MPI ranks", NULL, 1, 256},
        {"folds", 'k', SQ_OPT_INT, &d->folds, 0, "K", "cross-validation folds", NULL, 2, 64},
        {"recipe", 0, SQ_OPT_CHOICE, d->recipe, sizeof d->recipe, "NAME",
         "training recipe of the CV (docs/training.md); the options below override it",
         "demo|reference|none", 0, 0},
        {"epochs", 'e', SQ_OPT_INT, &d->epochs, 0, "N",
         "training epochs per fold (0: the recipe's)", NULL, 0, 100000},
        {"threads", 't', SQ_OPT_INT, &d->threads, 0, "N", "compute threads per rank", NULL, 1,
         1024},
        {"batch", 'b', SQ_OPT_INT, &d->batch, 0, "N",
         "samples per step on each rank (0: the recipe's)", NULL, 0, 64},
        {"lr", 0, SQ_OPT_DOUBLE, &d->lr, 0, "X", "learning rate (0: the recipe's)", NULL, 0, 10},
        {"lr-decayed", 0, SQ_OPT_DOUBLE, &d->lr_decayed, 0, "X",
         "learning rate after decay (0: the recipe's)", NULL, 0, 10},
        {"decay-epoch", 0, SQ_OPT_INT, &d->decay_epoch, 0, "N",
         "epoch of the step decay (-1: the recipe's)", NULL, -1, 100000},
        {"seed", 's', SQ_OPT_INT, &d->seed, 0, "N", "seed", NULL, 0, 9.0e15},
        {"augment", 'a', SQ_OPT_CHOICE, d->augment, sizeof d->augment, "PRESET",
         "augmentation: paper, robust (paper + failure-case injection) or none (default: the "
         "recipe's)",
         "paper|robust|none", 0, 0},
        {"limit", 0, SQ_OPT_INT, &d->limit, 0, "N", "use the first N cases only (0: all)", NULL, 0,
         100000},
        {"device", 0, SQ_OPT_CHOICE, d->device, sizeof d->device, "DEV", SQ_CLI_DEVICE_HELP,
         "cpu|cuda|auto", 0, 0},
        {"comm", 0, SQ_OPT_CHOICE, d->comm, sizeof d->comm, "LIB", SQ_CLI_COMM_HELP,
         "auto|nccl|mpi", 0, 0},
        {"comm-timeout", 0, SQ_OPT_DOUBLE, &d->comm_timeout, 0, "S", SQ_CLI_COMM_TIMEOUT_HELP, NULL,
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
    return a.help ? 0 : -1;
}

static sq_code demo_shape(const demo_opts *d, int64_t shape[5], sq_status *st) {
    int nd = 0;
    if (sq_parse_shape(d->shape_text, shape, &nd, st) != SQ_OK || nd != 3)
        return sq_fail(st, SQ_ERR_USAGE, "--shape '%s': expected DxHxW", d->shape_text);
    return SQ_OK;
}

/* Steps 1-2: the site file with automatic contours (kept when it exists). */
static sq_code demo_site(const demo_opts *d, const int64_t shape[5], const char *site,
                         sq_status *st) {
    if (sq_file_exists(site)) {
        printf("using the existing site file %s\n", site);
        return SQ_OK;
    }
    char raw[SQ_PATH_MAX + 32];
    snprintf(raw, sizeof raw, "%s/hippocampus-gt.h5", d->out);
    sq_ingest_opts io;
    memset(&io, 0, sizeof io);
    io.input = d->data;
    io.output = raw;
    io.site = "msd-hippocampus";
    for (int k = 0; k < 3; k++)
        io.shape[k] = (int)shape[k];
    io.lo_pct = 0;
    io.hi_pct = 99;
    io.labels.all = 1;
    io.limit = (int)d->limit;
    io.progress = 1;
    sq_ingest_stats is;
    SQ_TRY(sq_ingest(&io, &is, st));
    printf("ingest:   %d cases from %s -> %s (%.1f s)\n", is.n_cases, d->data, raw, is.seconds);
    sq_contours_opts co = sq_contours_opts_default(); /* what the recipes expect */
    co.input = raw;
    co.output = site;
    co.seed = (unsigned long long)d->seed;
    co.progress = 1;
    sq_contours_stats cs;
    SQ_TRY(sq_contours_run(&co, &cs, st));
    printf("contours: %d automatic contours, Dice %.3f..%.3f (mean %.3f) -> %s (%.1f s)\n",
           cs.n_contours, cs.dice_min, cs.dice_max, cs.dice_mean, site, cs.seconds);
    unlink(raw);
    return SQ_OK;
}

/* The CV job's argv: mpirun -np W <this binary> cv SITE --out RUN --recipe R ..., then the
 * schedule options the user gave (strings kept in `num`). */
enum { DEMO_NUMS = 16, DEMO_ARGS = 64 };
typedef struct argv_builder {
    char **args;
    int n;
    char (*num)[32];
    int nnum;
} argv_builder;

static void push(argv_builder *b, const char *a) {
    if (b->n < DEMO_ARGS - 1) b->args[b->n++] = (char *)a;
}
static void push_ll(argv_builder *b, const char *opt, long long v) {
    snprintf(b->num[b->nnum], 32, "%lld", v);
    push(b, opt), push(b, b->num[b->nnum++]);
}
static void push_d(argv_builder *b, const char *opt, double v) {
    snprintf(b->num[b->nnum], 32, "%.9g", v);
    push(b, opt), push(b, b->num[b->nnum++]);
}

static void demo_cv_argv(const demo_opts *d, const char *self, const char *site, const char *run,
                         char num[DEMO_NUMS][32], char **args) {
    argv_builder b = {args, 0, num, 0};
    static const char *const mpi[] = {
        SEGQA_MPIEXEC, "--oversubscribe", "--bind-to", "none",      "--mca", "pml",
        "ob1",         "--mca",           "btl",       "self,vader"};
    for (size_t i = 0; i < sizeof mpi / sizeof *mpi; i++)
        push(&b, mpi[i]);
    push_ll(&b, "-np", d->ranks);
    push(&b, self), push(&b, "cv"), push(&b, site), push(&b, "--out"), push(&b, run);
    push(&b, "--recipe"), push(&b, d->recipe);
    push_ll(&b, "--folds", d->folds);
    push_ll(&b, "--threads", d->threads);
    push_ll(&b, "--seed", d->seed);
    if (d->epochs > 0) push_ll(&b, "--epochs", d->epochs);
    if (d->batch > 0) push_ll(&b, "--batch", d->batch);
    if (d->lr > 0) push_d(&b, "--lr", d->lr);
    if (d->lr_decayed > 0) push_d(&b, "--lr-decayed", d->lr_decayed);
    if (d->decay_epoch >= 0) push_ll(&b, "--decay-epoch", d->decay_epoch);
    if (d->augment[0]) push(&b, "--augment"), push(&b, d->augment);
    push(&b, "--device"), push(&b, d->device);
    push(&b, "--comm"), push(&b, d->comm);
    push_d(&b, "--comm-timeout", d->comm_timeout);
    args[b.n] = NULL;
}

/* The command line of the CV job as one line, for the console. */
static void print_argv(char **args) {
    printf("running: ");
    for (int i = 0; args[i]; i++)
        printf(" %s", args[i]);
    printf("\n");
}

/* Run argv as a child and wait; its exit code (127: could not start). */
static int run_child(char **args, sq_status *st) {
    pid_t pid = fork();
    if (pid < 0) return sq_fail(st, SQ_ERR_IO, "fork: %s", strerror(errno)), -1;
    if (pid == 0) {
        execvp(args[0], args);
        fprintf(stderr, "segqa demo: cannot run %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int sq_cmd_demo(int argc, char **argv) {
    demo_opts d;
    demo_defaults(&d);
    const int parsed = demo_parse(argc, argv, &d);
    if (parsed >= 0) return parsed;
    sq_status st;
    sq_status_clear(&st);
    const double t0 = sq_now();
    int64_t shape[5];
    if (demo_shape(&d, shape, &st) != SQ_OK || sq_mkdirs(d.out, &st) != SQ_OK)
        return sq_cli_report("demo", &st);
    char site[SQ_PATH_MAX + 32], run[SQ_PATH_MAX + 32];
    snprintf(site, sizeof site, "%s/hippocampus.h5", d.out);
    snprintf(run, sizeof run, "%s/cv", d.out);
    if (demo_site(&d, shape, site, &st) != SQ_OK) return sq_cli_report("demo", &st);
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
    char num[DEMO_NUMS][32], *args[DEMO_ARGS] = {NULL};
    demo_cv_argv(&d, self, site, run, num, args);
    if (getuid() == 0) { /* Open MPI refuses root without it */
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    }
    print_argv(args);
    fflush(stdout);
    const int code = run_child(args, &st);
    if (code < 0) return sq_cli_report("demo", &st);
    if (code != 0) {
        fprintf(stderr, "segqa demo: the cross-validation job failed (exit %d)\n", code);
        return code;
    }
    printf("demo finished in %.1f min; figures: %s/pred_vs_target.png, %s/failure_mae.png, "
           "%s/curves.png\n",
           (sq_now() - t0) / 60.0, run, run, run);
    return 0;
}
