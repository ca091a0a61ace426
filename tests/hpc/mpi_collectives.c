/* mpi_collectives.c — run under real `mpirun -np N` (1..3 ranks, oversubscribed): fold groups,
 * parameter broadcast, bucketed gradient averaging, gather to rank 0, and the collective stop flag.
 * Usage: mpi_collectives NFOLDS. Prints "N passed, M failed" on rank 0; exit 1 on any failure. */
#include "hpc/comm.h"
#include "hpc/signals.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

static int g_pass, g_fail;

static void check(int cond, const char *what, int rank) {
    if (cond) {
        g_pass++;
    } else {
        g_fail++;
        fprintf(stderr, "rank %d: FAIL %s\n", rank, what);
    }
}

int main(int argc, char **argv) {
    sq_world w;
    sq_status st;
    sq_status_clear(&st);
    if (sq_world_init(&argc, &argv, &w, &st) != SQ_OK) {
        fprintf(stderr, "rank ?: %s\n", st.msg);
        sq_world_finalize(&w);
        return 3;
    }
    int K = argc > 1 ? atoi(argv[1]) : 0;
    if (argc > 2 && !strcmp(argv[2], "kill")) {
        /* A rank dies mid-run (SIGKILL: no cleanup) while the others are in a gradient all-reduce:
         * the launcher must end the whole job instead of leaving the survivors hanging. */
        float buf[256] = {0};
        sq_group world = {w.comm, w.rank, w.size, 0};
        for (int step = 0; step < 1000000; step++) {
            if (w.rank == w.size - 1 && step == 50) raise(SIGKILL);
            if (sq_allreduce_mean(&world, buf, 256, &st) != SQ_OK) {
                fprintf(stderr, "rank %d: step %d: %s\n", w.rank, step, st.msg);
                sq_world_finalize(&w);
                return 1;
            }
        }
        sq_world_finalize(&w);
        return 0;
    }
    sq_layout lay;
    check(sq_layout_plan(w.size, K, w.rank, &lay, &st) == SQ_OK, "layout", w.rank);
    sq_group g;
    check(sq_group_create(&w, &lay, &g, &st) == SQ_OK, "group split matches plan", w.rank);

    /* Broadcast: group rank 0's parameters reach every member. */
    enum { NP = 1000 };
    float params[NP];
    for (int i = 0; i < NP; i++)
        params[i] = g.rank == 0 ? (float)(i * 0.5 + lay.group) : -1.0f;
    check(sq_bcast_floats(&g, params, NP, 0, &st) == SQ_OK, "bcast", w.rank);
    int ok = 1;
    for (int i = 0; i < NP; i++)
        ok &= params[i] == (float)(i * 0.5 + lay.group);
    check(ok, "bcast values", w.rank);

    /* Gradient mean with small buckets (uneven last bucket), started as "backward" finishes them.
     */
    enum { NG = 1037 };
    float grad[NG];
    for (int i = 0; i < NG; i++)
        grad[i] = (float)(g.rank + 1) * (float)(i % 13);
    sq_allreduce ar;
    check(sq_allreduce_init(&ar, &g, grad, NG, 100, &st) == SQ_OK, "allreduce init", w.rank);
    check(ar.nbuckets == 11, "bucket count", w.rank);
    /* "backward" has finished [537, 1037): buckets 0..4 ([937,1037) ... [537,637)) start, the
     * one covering [437, 537) does not (537 is not its low end). */
    check(sq_allreduce_ready(&ar, 537, &st) == SQ_OK && ar.started == 5,
          "ready starts 5 tail buckets", w.rank);
    check(sq_allreduce_ready(&ar, 500, &st) == SQ_OK && ar.started == 5,
          "ready waits for a whole bucket", w.rank);
    check(sq_allreduce_start(&ar, 7, &st) == SQ_ERR_INTERNAL, "out-of-order bucket refused",
          w.rank);
    check(sq_allreduce_finish(&ar, &st) == SQ_OK, "allreduce finish", w.rank);
    sq_allreduce_free(&ar);
    double mean_factor = (g.size + 1) / 2.0; /* mean of 1..size */
    ok = 1;
    for (int i = 0; i < NG; i++)
        ok &= fabs(grad[i] - mean_factor * (i % 13)) < 1e-4;
    check(ok, "gradient mean values", w.rank);
    /* A second round reuses the same plan (started counter reset). */
    float ones[10];
    for (int i = 0; i < 10; i++)
        ones[i] = 1.0f;
    check(sq_allreduce_mean(&g, ones, 10, &st) == SQ_OK && ones[3] == 1.0f, "mean of ones", w.rank);

    /* Gather: every rank sends rank+1 values; rank 0 sees them in rank order. */
    double mine[4];
    for (int i = 0; i <= w.rank && i < 4; i++)
        mine[i] = w.rank * 10 + i;
    double *all = NULL;
    int total = 0;
    check(sq_gather_doubles(&w, mine, w.rank + 1 < 4 ? w.rank + 1 : 4, &all, &total, &st) == SQ_OK,
          "gather", w.rank);
    if (w.rank == 0) {
        int expect = 0;
        for (int r = 0; r < w.size; r++)
            expect += r + 1 < 4 ? r + 1 : 4;
        check(total == expect, "gather total", w.rank);
        int k = 0;
        ok = 1;
        for (int r = 0; r < w.size; r++)
            for (int i = 0; i < (r + 1 < 4 ? r + 1 : 4); i++)
                ok &= all[k++] == r * 10 + i;
        check(ok, "gather order", w.rank);
    } else {
        check(all == NULL && total == 0, "gather non-root", w.rank);
    }
    free(all);

    /* Records: rank r sends r structs {rank, i, value}. */
    typedef struct {
        int rank, i;
        double v;
    } rec;
    rec mine_r[3];
    int nmine = w.rank < 3 ? w.rank : 3;
    for (int i = 0; i < nmine; i++)
        mine_r[i] = (rec){w.rank, i, w.rank + 0.25 * i};
    void *allr = NULL;
    int nrec = 0;
    check(sq_gather_records(&w, mine_r, nmine, sizeof(rec), &allr, &nrec, &st) == SQ_OK,
          "gather records", w.rank);
    if (w.rank == 0) {
        int expect = 0, k = 0;
        for (int r = 0; r < w.size; r++)
            expect += r < 3 ? r : 3;
        check(nrec == expect, "record count", w.rank);
        ok = 1;
        for (int r = 0; r < w.size; r++)
            for (int i = 0; i < (r < 3 ? r : 3); i++, k++) {
                const rec *q = (const rec *)allr + k;
                ok &= q->rank == r && q->i == i && q->v == r + 0.25 * i;
            }
        check(ok, "record order and content", w.rank);
    }
    free(allr);

    /* Stop flag: one rank (the last) is "signalled"; every rank agrees to stop. */
    int stop = -1;
    sq_stop_set(0);
    check(sq_stop_agreed(w.comm, &stop, &st) == SQ_OK && stop == 0, "no stop", w.rank);
    sq_signals_install();
    if (w.rank == w.size - 1) raise(SIGUSR1);
    check(sq_stop_agreed(w.comm, &stop, &st) == SQ_OK && stop == 1, "stop agreed", w.rank);

    int fails = g_fail, passes = g_pass, tf = 0, tp = 0;
    MPI_Reduce(&fails, &tf, 1, MPI_INT, MPI_SUM, 0, w.comm);
    MPI_Reduce(&passes, &tp, 1, MPI_INT, MPI_SUM, 0, w.comm);
    if (w.rank == 0) printf("mpi_collectives W=%d K=%d: %d passed, %d failed\n", w.size, K, tp, tf);
    MPI_Bcast(&tf, 1, MPI_INT, 0, w.comm);
    sq_group_destroy(&g);
    sq_world_finalize(&w);
    return tf ? 1 : 0;
}
