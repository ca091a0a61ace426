/* cmd_ingest.c — `segqa ingest` (placeholder until the data layer lands; see issue "Data"). */
#include "cli.h"

#include <stdio.h>

int sq_cmd_ingest(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "segqa ingest: not available in this build yet\n");
    return 1;
}
