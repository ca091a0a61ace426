/* main.c — `segqa <command> [options]`: dispatch to one file per subcommand (see cli.h). */
#include "cli.h"

#include "core/log.h"

#include <stdio.h>
#include <string.h>

typedef struct sq_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} sq_command;

static const sq_command k_commands[] = {
    {"demo", "the main job: bundled real MRI -> contours -> 5-fold CV on 2 MPI ranks", sq_cmd_demo},
    {"ingest", "NIfTI images + masks (+ contours, clinical CSV) -> one HDF5 site file",
     sq_cmd_ingest},
    {"contours", "add automatic contours (atlas transfer, GT perturbations) to a site file",
     sq_cmd_contours},
    {"cv", "K-fold cross-validation over MPI ranks, folds per patient, failure-case study",
     sq_cmd_cv},
    {"train", "train one model on all given sites (data-parallel over MPI ranks)", sq_cmd_train},
    {"predict", "estimated Dice + accept/reject of contours from a checkpoint (exit 3: rejected)",
     sq_cmd_predict},
    {"monitor", "drift of a deployed model's estimates against its CV reference (exit 3: drift)",
     sq_cmd_monitor},
    {"baseline", "clinical-variable baselines: naive mean and XGBoost GBDT with the study's search",
     sq_cmd_baseline},
    {"sweep", "a sweep file (one hyperparameter set per line) from a spec: grid or seeded random",
     sq_cmd_sweep},
    {"report", "--sweep DIR: every sweep task's metrics ranked on validation numbers",
     sq_cmd_report},
    {"synth", "write a synthetic prostate-like MRI site file at the paper's shape", sq_cmd_synth},
    {"bench", "benchmarks against a named peer measured in the same run (ops, data)", sq_cmd_bench},
    {"check", "self-test of this installation: RNG, BLAS, libraries, bundled data", sq_cmd_check},
    {"version", "print the version and the compiled-in features", sq_cmd_version},
};
static const int k_ncommands = (int)(sizeof k_commands / sizeof k_commands[0]);

static void print_usage(FILE *f) {
    fprintf(
        f,
        "usage: segqa <command> [options]\n\n"
        "segqa estimates the Dice score of an automatic organ contour from the image and the\n"
        "contour alone, so a deployed segmentation model can be quality-assured without a ground\n"
        "truth (Isaksson et al., Insights into Imaging 13, 137, 2022).\n\ncommands:\n");
    for (int i = 0; i < k_ncommands; i++)
        fprintf(f, "  %-12s %s\n", k_commands[i].name, k_commands[i].summary);
    fprintf(f, "\n'segqa <command> --help' describes a command and its options; every option can\n"
               "also be given in a JSON file with --config FILE.json.\n"
               "  -h, --help       show this help\n"
               "  -V, --version    show version and compiled-in features\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        if (!strcmp(cmd, "help") && argc > 2) {
            for (int i = 0; i < k_ncommands; i++)
                if (!strcmp(argv[2], k_commands[i].name)) {
                    char *sub[] = {argv[2], "--help", NULL};
                    return k_commands[i].run(2, sub);
                }
            fprintf(stderr, "segqa: unknown command '%s' (see segqa --help)\n", argv[2]);
            return 2;
        }
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        sq_print_version(stdout);
        return 0;
    }
    if (cmd[0] == '-') {
        fprintf(stderr, "segqa: unknown option '%s' (see segqa --help)\n", cmd);
        return 2;
    }
    for (int i = 0; i < k_ncommands; i++)
        if (!strcmp(cmd, k_commands[i].name)) return k_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "segqa: unknown command '%s' (see segqa --help)\n", cmd);
    return 2;
}
