/* mpi_progress_hub.c — under mpirun: fold-group leaders post progress at different speeds without
 * waiting on each other; rank 0 ends with every fold's final record. Usage: mpi_progress_hub K. */
#include "hpc/comm.h"
#include "hpc/progress_hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    sq_world w;
    sq_status st;
    if (sq_world_init(&argc, &argv, &w, &st) != SQ_OK) {
        fprintf(stderr, "%s\n", st.msg);
        return 3;
    }
    int K = argc > 1 ? atoi(argv[1]) : 5;
    int epochs = 20;
    sq_layout lay;
    sq_hub h;
    int fails = 0;
    fails += sq_layout_plan(w.size, K, w.rank, &lay, &st) != SQ_OK;
    fails += sq_hub_init(&h, w.comm, K, (double)epochs * (K ? K : 1), &st) != SQ_OK;
    if (lay.group_rank == 0) {
        for (int i = 0; i < lay.nmine; i++) {
            int f = lay.mine[i];
            for (int e = 1; e <= epochs; e++) {
                /* groups run at different speeds: rank r sleeps (r+1) ms per epoch */
                struct timespec ts = {0, 1000000L * (w.rank + 1)};
                nanosleep(&ts, NULL);
                sq_fold_status s = {f, e, epochs, 0, 1.0 / e, e % 5 == 0 ? 0.1 / e : -1.0};
                fails += sq_hub_post(&h, &s, &st) != SQ_OK;
            }
            sq_fold_status fin = {f, epochs, epochs, 1, 1.0 / epochs, 0.005};
            fails += sq_hub_post_final(&h, &fin, &st) != SQ_OK;
        }
    }
    if (w.rank == 0) {
        fails += sq_hub_drain(&h, &st) != SQ_OK;
        char line[512];
        sq_hub_format(&h, line, sizeof line);
        printf("final: %s\n", line);
        int done = 0;
        for (int i = 0; i < h.nfolds; i++)
            done += h.seen[i] == 2 && h.table[i].epoch == epochs;
        if (done != h.nfolds) {
            fprintf(stderr, "FAIL: %d of %d folds reported done\n", done, h.nfolds);
            fails++;
        }
        if (!strstr(line, "f0 e20/20 loss 0.0500 val 0.0050 done")) {
            fprintf(stderr, "FAIL: unexpected line\n");
            fails++;
        }
    }
    sq_hub_free(&h);
    int total = 0;
    MPI_Reduce(&fails, &total, 1, MPI_INT, MPI_SUM, 0, w.comm);
    if (w.rank == 0)
        printf("progress hub W=%d K=%d: %d passed, %d failed\n", w.size, K, total ? 0 : 1,
               total ? 1 : 0);
    sq_world_finalize(&w);
    return total ? 1 : 0;
}
