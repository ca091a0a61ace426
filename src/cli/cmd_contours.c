/* cmd_contours.c — `segqa contours` (placeholder until the data layer lands; see issue "Data"). */
#include "cli.h"

#include <stdio.h>

int sq_cmd_contours(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "segqa contours: not available in this build yet\n");
    return 1;
}
