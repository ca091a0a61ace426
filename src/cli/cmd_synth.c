/* cmd_synth.c — `segqa synth` (placeholder until the data layer lands; see issue "Data"). */
#include "cli.h"

#include <stdio.h>

int sq_cmd_synth(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "segqa synth: not available in this build yet\n");
    return 1;
}
