/* mpi_watchdog.c — under real `mpirun -np N`: the last rank stops taking part (SIGSTOP on itself)
 * at step 5 of a training-like loop; the survivors must end the job through the watchdog within
 * the timeout (one line naming rank, group, collective and step; exit SQ_EXIT_COMM_FAULT) instead
 * of hanging. Usage: mpi_watchdog MODE TIMEOUT_S, MODE = grad | bn | stop (the collective the
 * survivors are in when the peer stops). With MODE = none nobody stops and the loop completes
 * (prints "1 passed, 0 failed"). */
#include "hpc/comm.h"
#include "hpc/signals.h"
#include "hpc/watchdog.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NG = 5000, STEPS = 20, STOP_AT = 5 };

static sq_code one_step(const char *mode, sq_group *g, float *grad, sq_status *st) {
    double bn[6] = {1, 2, 3, 4, 5, 6};
    SQ_TRY(sq_allreduce_sum_doubles_named(g, bn, 6, "MPI_Iallreduce of synchronised-BN sums", st));
    sq_allreduce ar;
    SQ_TRY(sq_allreduce_init(&ar, g, grad, NG, 1000, st));
    sq_code rc = sq_allreduce_ready(&ar, NG / 2, st);
    if (rc == SQ_OK) rc = sq_allreduce_finish(&ar, st);
    sq_allreduce_free(&ar);
    int stop = 0;
    if (rc == SQ_OK) rc = sq_stop_agreed(g->comm, &stop, st);
    (void)mode;
    return rc;
}

int main(int argc, char **argv) {
    sq_world w;
    sq_status st;
    sq_status_clear(&st);
    if (sq_world_init(&argc, &argv, &w, &st) != SQ_OK) {
        fprintf(stderr, "rank ?: %s\n", st.msg);
        return 3;
    }
    const char *mode = argc > 1 ? argv[1] : "none";
    double timeout = argc > 2 ? atof(argv[2]) : 3;
    sq_watchdog_configure(timeout, w.rank, -1);
    sq_layout lay;
    sq_group g;
    if (sq_layout_plan(w.size, 0, w.rank, &lay, &st) != SQ_OK ||
        sq_group_create(&w, &lay, &g, &st) != SQ_OK) {
        fprintf(stderr, "rank %d: %s\n", w.rank, st.msg);
        return 3;
    }
    static float grad[NG];
    for (long step = 0; step < STEPS; step++) {
        sq_watchdog_set_step(step);
        if (w.rank == w.size - 1 && step == STOP_AT && strcmp(mode, "none")) {
            /* stop taking part right before the collective named by MODE */
            if (!strcmp(mode, "bn")) raise(SIGSTOP);
            double bn[6] = {0};
            if (!strcmp(mode, "grad") || !strcmp(mode, "stop"))
                sq_allreduce_sum_doubles_named(&g, bn, 6, "MPI_Iallreduce of synchronised-BN sums",
                                               &st);
            if (!strcmp(mode, "grad")) raise(SIGSTOP);
            if (!strcmp(mode, "stop")) {
                sq_allreduce ar;
                sq_allreduce_init(&ar, &g, grad, NG, 1000, &st);
                sq_allreduce_finish(&ar, &st);
                sq_allreduce_free(&ar);
                raise(SIGSTOP);
            }
        }
        if (one_step(mode, &g, grad, &st) != SQ_OK) {
            fprintf(stderr, "rank %d: step %ld: %s\n", w.rank, step, st.msg);
            return 1;
        }
    }
    if (w.rank == 0) printf("1 passed, 0 failed\n");
    sq_group_destroy(&g);
    sq_world_finalize(&w);
    return 0;
}
