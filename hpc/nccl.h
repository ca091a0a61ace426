/* nccl.h — one NCCL communicator per data-parallel group, on flat device buffers.
 *
 * The device counterpart of comm.h's MPI collectives (docs/distribution.md, "NCCL"). hpc/ knows no
 * model and no backend: buffers are device pointers, streams and events are opaque `void *`
 * (cudaStream_t / cudaEvent_t of the device current at creation).
 *
 *  - Creation: group rank 0's ncclUniqueId is broadcast over the group's MPI communicator; the
 *    device is the one current on the calling thread (the CUDA backend set it from the local rank)
 *    or `device` when >= 0; the communicator is created non-blocking (ncclConfig_t blocking = 0)
 *    and its initialisation polled against --comm-timeout, so a peer that never arrives aborts it
 *    (ncclCommAbort) instead of hanging. sq_nccl_create_raw takes the id directly: 1-rank checks
 *    and one-process multi-GPU tests need no MPI.
 *  - Gradients: the flat buffer is averaged (ncclAvg) in the fixed-order buckets of comm.h (bucket
 *    0 is the END of the buffer) on the communicator's own stream. The caller records an event on
 *    its compute stream after the ops that finished [from, n) and passes it; the comm stream waits
 *    for it (cudaStreamWaitEvent), so no host synchronisation is needed and NCCL overlaps the rest
 *    of backward. finish returns an event on the comm stream that the compute stream must wait
 *    for before the optimiser reads the gradients.
 *  - Sums in place on a caller's stream (synchronised BN statistics in the backend's own memory).
 *  - Watchdog: every collective enqueued is followed by an event; a thread polls those events and
 *    ncclCommGetAsyncError. An asynchronous error, or a collective not complete --comm-timeout
 *    seconds after it was enqueued, aborts the communicator and ends the job through
 *    sq_comm_fatal (one line naming rank, group, collective and step; exit SQ_EXIT_COMM_FAULT).
 *
 * Built with CUDA only (target segqa_hpc_nccl: nccl.c when the CUDA toolkit and NCCL are found,
 * else nccl_none.c, where sq_nccl_available() is 0 and creation fails with SQ_ERR_UNSUPPORTED).
 */
#ifndef SEGQA_HPC_NCCL_H
#define SEGQA_HPC_NCCL_H

#include "core/status.h"
#include "hpc/comm.h"

#include <stddef.h>

#define SQ_NCCL_ID_BYTES 128 /* sizeof(ncclUniqueId) */

typedef struct sq_nccl sq_nccl;

/* 1 when this build has NCCL. */
int sq_nccl_available(void);
/* "NCCL 2.28.9" or "NCCL not built". */
void sq_nccl_version(char *buf, size_t n);

/* A new unique id (on one rank; the others receive it). */
sq_code sq_nccl_unique_id(unsigned char id[SQ_NCCL_ID_BYTES], sq_status *st);
/* Rank `rank` of `nranks` with a shared id; device < 0: the current device. `group` is named in
 * fault lines. */
sq_code sq_nccl_create_raw(const unsigned char id[SQ_NCCL_ID_BYTES], int nranks, int rank,
                           int device, int group, sq_nccl **out, sq_status *st);
/* Over an MPI group: group rank 0 makes the id and broadcasts it. */
sq_code sq_nccl_create(const sq_group *g, int device, sq_nccl **out, sq_status *st);
/* Waits for the work in flight (against the deadline), then frees. NULL is a no-op. */
void sq_nccl_destroy(sq_nccl *c);
int sq_nccl_size(const sq_nccl *c);
int sq_nccl_rank(const sq_nccl *c);

/* --- gradient averaging of one flat float buffer in device memory ------------------------- */
sq_code sq_nccl_grad_init(sq_nccl *c, float *dev_buf, size_t n, size_t bucket_elems, sq_status *st);
int sq_nccl_grad_buckets(const sq_nccl *c);
int sq_nccl_grad_started(const sq_nccl *c); /* buckets started this step */
/* [from, n) is final once `ready_ev` (recorded by the caller after the ops that produced it)
 * completes: start, in order, every bucket inside that range on the comm stream. */
sq_code sq_nccl_grad_ready(sq_nccl *c, size_t from, void *ready_ev, sq_status *st);
/* Start the remaining buckets after `ready_ev`; *done_ev completes when every bucket is averaged
 * (the caller's compute stream waits for it). Returns the number of buckets started before this
 * call in *early (may be NULL). */
sq_code sq_nccl_grad_finish(sq_nccl *c, void *ready_ev, void **done_ev, int *early, sq_status *st);

/* --- sums in place on a stream ------------------------------------------------------------- */
/* n doubles (or floats) at dev summed over the group, enqueued on `stream` (a cudaStream_t). */
sq_code sq_nccl_sum_doubles(sq_nccl *c, void *dev, size_t n, void *stream, const char *what,
                            sq_status *st);
/* n floats at dev averaged (avg != 0) or summed over the group on `stream` (benchmarks, tests). */
sq_code sq_nccl_allreduce_floats(sq_nccl *c, float *dev, size_t n, int avg, void *stream,
                                 const char *what, sq_status *st);
/* Host wait (against the deadline) until every collective enqueued so far has completed. */
sq_code sq_nccl_quiesce(sq_nccl *c, sq_status *st);

#endif
