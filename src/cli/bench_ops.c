/* bench_ops.c — `segqa bench ops` (placeholder until its layer lands). */
#include "cli.h"

#include <stdio.h>

int sq_bench_ops(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "segqa bench ops: not available in this build yet\n");
    return 1;
}
