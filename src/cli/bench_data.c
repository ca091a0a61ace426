/* bench_data.c — `segqa bench data` (placeholder until its layer lands). */
#include "cli.h"

#include <stdio.h>

int sq_bench_data(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "segqa bench data: not available in this build yet\n");
    return 1;
}
