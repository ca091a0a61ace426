/* watchdog.h — collectives that never hang: waits against a deadline and the one-line fault exit.
 *
 * Every collective segqa waits for during training (gradient buckets, synchronised-BN sums, loss
 * and metric sums, the stop flag, barriers) is started non-blocking and completed by
 * sq_comm_wait, a test loop (MPI_Testall, then a short sleep) against the deadline
 * `--comm-timeout` seconds after the wait began. The NCCL part (hpc/nccl.h) polls the
 * communicator's asynchronous error and its outstanding work against the same deadline.
 *
 * On an error or a passed deadline the job cannot continue (the other ranks are inside the same
 * collective), so sq_comm_fatal prints ONE line naming the rank, group, collective and step,
 * calls the registered abort hook (the NCCL part aborts its communicator), and ends the whole
 * job with MPI_Abort(MPI_COMM_WORLD, SQ_EXIT_COMM_FAULT) — or _exit where MPI is not
 * initialised. This is the one place in the library that ends the process (docs/distribution.md).
 */
#ifndef SEGQA_HPC_WATCHDOG_H
#define SEGQA_HPC_WATCHDOG_H

#include "core/status.h"

#include <mpi.h>

#define SQ_COMM_TIMEOUT_DEFAULT 300.0 /* seconds (PyTorch's NCCL watchdog: 600) */

/* Who this rank is, for the fault line, and the deadline of every wait. timeout_s <= 0: the
 * default. Called once per job (and again with the group when it is known). */
void sq_watchdog_configure(double timeout_s, int world_rank, int group);
double sq_watchdog_timeout(void);
/* Change the deadline only (e.g. for a rendezvous that legitimately waits longer). */
void sq_watchdog_set_timeout(double timeout_s);
/* The training step in progress (named in the fault line); -1 before training. */
void sq_watchdog_set_step(long step);
long sq_watchdog_step(void);
/* Called first by sq_comm_fatal (e.g. ncclCommAbort of the live communicators); NULL clears. */
void sq_watchdog_on_fault(void (*fn)(void *ctx), void *ctx);

/* Wait for n requests, testing them until all completed or the deadline passed. `what` names the
 * collective ("MPI_Iallreduce of gradient bucket 3"). Returns SQ_OK; never returns on a fault. */
sq_code sq_comm_wait(MPI_Request *req, int n, const char *what, sq_status *st);

/* Print the fault line ("segqa: comm fault: rank R group G, <what> at step S: <why>; aborting
 * the job (exit 76)") and end the job. Thread-safe: the first caller wins. */
_Noreturn void sq_comm_fatal(const char *what, const char *why);

/* Watched blocking collectives on host memory, for the few places outside comm.c. */
sq_code sq_comm_barrier(MPI_Comm comm, const char *what, sq_status *st);
sq_code sq_comm_max_int(MPI_Comm comm, int *v, const char *what, sq_status *st);

/* The MPI error string of rc as "what failed: <string>" in *st (SQ_ERR_MPI). */
sq_code sq_mpi_fail(sq_status *st, int rc, const char *what);

#endif
