/* watchdog.c — deadlines for collectives and the one-line fault exit (see watchdog.h). */
#include "hpc/watchdog.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double g_timeout = SQ_COMM_TIMEOUT_DEFAULT;
static int g_rank = -1, g_group = -1;
static atomic_long g_step = -1;
static void (*g_fault_fn)(void *) = NULL;
static void *g_fault_ctx = NULL;
static atomic_flag g_fatal = ATOMIC_FLAG_INIT;

void sq_watchdog_configure(double timeout_s, int world_rank, int group) {
    g_timeout = timeout_s > 0 ? timeout_s : SQ_COMM_TIMEOUT_DEFAULT;
    g_rank = world_rank;
    g_group = group;
}

void sq_watchdog_set_timeout(double timeout_s) {
    if (timeout_s > 0) g_timeout = timeout_s;
}

double sq_watchdog_timeout(void) {
    return g_timeout;
}

void sq_watchdog_set_step(long step) {
    atomic_store(&g_step, step);
}

long sq_watchdog_step(void) {
    return atomic_load(&g_step);
}

void sq_watchdog_on_fault(void (*fn)(void *ctx), void *ctx) {
    g_fault_fn = fn;
    g_fault_ctx = ctx;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

_Noreturn void sq_comm_fatal(const char *what, const char *why) {
    if (atomic_flag_test_and_set(&g_fatal)) /* another thread is already ending the job */
        for (;;)
            pause();
    long step = sq_watchdog_step();
    char stepbuf[32];
    if (step >= 0)
        snprintf(stepbuf, sizeof stepbuf, "step %ld", step);
    else
        snprintf(stepbuf, sizeof stepbuf, "setup");
    fprintf(stderr,
            "segqa: comm fault: rank %d group %d, %s at %s: %s; aborting the job (exit %d)\n",
            g_rank, g_group, what, stepbuf, why, SQ_EXIT_COMM_FAULT);
    fflush(stderr);
    if (g_fault_fn) g_fault_fn(g_fault_ctx);
    int inited = 0, fin = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&fin);
    if (inited && !fin) MPI_Abort(MPI_COMM_WORLD, SQ_EXIT_COMM_FAULT);
    _exit(SQ_EXIT_COMM_FAULT);
}

static void mpi_error_string(int rc, char *buf, int n) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = '\0';
    snprintf(buf, (size_t)n, "%s", len ? msg : "unknown MPI error");
}

sq_code sq_mpi_fail(sq_status *st, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    mpi_error_string(rc, msg, sizeof msg);
    return sq_fail(st, SQ_ERR_MPI, "%s failed: %s", what, msg);
}

/* Between tests: spin first (as a blocking MPI call does: no added latency for the many small
 * synchronised-BN sums), then yield the core, then after 20 ms sleep 1 ms per test (a long wait,
 * e.g. for a slower rank, costs no CPU). */
static void backoff(double waited) {
    if (waited < 2e-4) return;
    if (waited < 2e-2) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

sq_code sq_comm_wait(MPI_Request *req, int n, const char *what, sq_status *st) {
    (void)st;
    const double t0 = now_s(), deadline = t0 + g_timeout;
    for (;;) {
        int done = 0;
        int rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            char msg[MPI_MAX_ERROR_STRING + 32];
            mpi_error_string(rc, msg, sizeof msg);
            sq_comm_fatal(what, msg);
        }
        if (done) return SQ_OK;
        const double t = now_s();
        if (t > deadline) {
            char why[96];
            snprintf(why, sizeof why, "not complete after %.0f s (--comm-timeout)", g_timeout);
            sq_comm_fatal(what, why);
        }
        backoff(t - t0);
    }
}

sq_code sq_comm_barrier(MPI_Comm comm, const char *what, sq_status *st) {
    MPI_Request r = MPI_REQUEST_NULL;
    int rc = MPI_Ibarrier(comm, &r);
    if (rc != MPI_SUCCESS) return sq_mpi_fail(st, rc, what);
    return sq_comm_wait(&r, 1, what, st);
}

sq_code sq_comm_max_int(MPI_Comm comm, int *v, const char *what, sq_status *st) {
    MPI_Request r = MPI_REQUEST_NULL;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, v, 1, MPI_INT, MPI_MAX, comm, &r);
    if (rc != MPI_SUCCESS) return sq_mpi_fail(st, rc, what);
    return sq_comm_wait(&r, 1, what, st);
}
