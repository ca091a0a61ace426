/* cmd_bench.c — `segqa bench <what>`: dispatch to one benchmark per file (bench_*.c).
 *
 * Every benchmark prints its numbers as a ratio against a named peer or hardware limit measured in
 * the same run (never a bare time), and can write its table as Markdown with --out FILE.md.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} sq_bench;

static const sq_bench k_benches[] = {
    {"ops", "every op of the network at the paper shape vs oneDNN and the sgemm peak",
     sq_bench_ops},
    {"data", "augmentation and loader throughput vs a scipy.ndimage pipeline", sq_bench_data},
    {"train", "training step (batch 2, paper shape) vs the PyTorch reference", sq_bench_train},
    {"infer", "inference (batch 1, paper shape) vs the PyTorch reference", sq_bench_infer},
    {"comm", "gradient all-reduce (MPI / NCCL) busBW vs a bandwidth measured in the same run",
     sq_bench_comm},
};
static const int k_nbenches = (int)(sizeof k_benches / sizeof k_benches[0]);

static void usage(FILE *f) {
    fprintf(f, "usage: segqa bench <what> [options]\n\nbenchmarks:\n");
    for (int i = 0; i < k_nbenches; i++)
        fprintf(f, "  %-8s %s\n", k_benches[i].name, k_benches[i].summary);
    fprintf(f, "\n'segqa bench <what> --help' lists its options.\n");
}

int sq_cmd_bench(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < k_nbenches; i++)
        if (!strcmp(argv[1], k_benches[i].name)) return k_benches[i].run(argc - 1, argv + 1);
    fprintf(stderr, "segqa bench: unknown benchmark '%s' (see segqa bench --help)\n", argv[1]);
    return 2;
}
