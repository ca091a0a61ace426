/* signals.h — preemption: SIGUSR1/SIGTERM (Slurm --signal) ask every rank to stop at the next step.
 *
 * The handler only sets a flag. sq_stop_agreed() is collective over a communicator: it returns 1 on
 * every rank when any rank saw a signal, so all ranks finish the same step, checkpoint and exit
 * together (exit code 75, EX_TEMPFAIL, for requeue).
 */
#ifndef SEGQA_HPC_SIGNALS_H
#define SEGQA_HPC_SIGNALS_H

#include "core/status.h"

#include <mpi.h>

void sq_signals_install(void);
/* The local flag (async-signal-safe read). */
int sq_stop_requested(void);
/* For tests: set or clear the local flag. */
void sq_stop_set(int value);
/* Collective OR of the local flags over `comm`. */
sq_code sq_stop_agreed(MPI_Comm comm, int *stop, sq_status *st);

#endif
