/* comm.h — MPI world, fold groups and the collectives segqa needs on flat buffers.
 *
 * Layout (DESIGN §5): W ranks, K folds.
 *   K == 0  one model on all data: every rank in one data-parallel group.
 *   W >= K  ranks split into K fold groups (MPI_Comm_split, color = rank % K); each group trains
 * its fold data-parallel. W <  K  every rank is its own group and takes folds round-robin (rank r:
 * r, r+W, r+2W, ...). World rank 0 is the collector. This layer moves flat float buffers only; it
 * knows no model.
 *
 * Every wait is a test loop against --comm-timeout (hpc/watchdog.h): a rank that stops taking
 * part ends the job with one line and exit code SQ_EXIT_COMM_FAULT instead of a hang.
 *
 * Launch checks: the world size must equal SLURM_NTASKS when Slurm set it, so a launcher
 * misconfiguration fails loudly instead of training W independent copies. The rank's GPU comes
 * from SLURM_LOCALID or OMPI_COMM_WORLD_LOCAL_RANK.
 */
#ifndef SEGQA_HPC_COMM_H
#define SEGQA_HPC_COMM_H

#include "core/status.h"

#include <mpi.h>
#include <stddef.h>

#define SQ_MAX_FOLDS 64

typedef struct sq_world {
    MPI_Comm comm;
    int rank, size;
    int local_rank; /* from the launcher's environment, or -1 */
    int owns_mpi;   /* this process called MPI_Init (and must finalize) */
} sq_world;

typedef struct sq_layout {
    int world_size, nfolds;
    int group; /* this rank's group index (0..ngroups-1) */
    int ngroups;
    int group_rank; /* rank inside the group */
    int group_size;
    int nmine; /* folds this rank trains (K == 0: 1 pseudo-fold, index -1) */
    int mine[SQ_MAX_FOLDS];
} sq_layout;

typedef struct sq_group {
    MPI_Comm comm;
    int rank, size;
    int index; /* the layout's group index (named in fault lines) */
} sq_group;

/* MPI_Init_thread (FUNNELED) unless already initialised; fills *w; checks SLURM_NTASKS. */
sq_code sq_world_init(int *argc, char ***argv, sq_world *w, sq_status *st);
void sq_world_finalize(sq_world *w);

/* Pure launch checks, exposed for tests. `env_ntasks` is SLURM_NTASKS or NULL. */
sq_code sq_check_world_size(int size, const char *env_ntasks, sq_status *st);
/* Local rank from SLURM_LOCALID, then OMPI_COMM_WORLD_LOCAL_RANK; -1 when neither is set. */
int sq_local_rank_from_env(void);

/* Pure layout computation (no MPI), the same on every rank. */
sq_code sq_layout_plan(int world_size, int nfolds, int rank, sq_layout *lay, sq_status *st);
/* Split the world communicator according to the layout. */
sq_code sq_group_create(const sq_world *w, const sq_layout *lay, sq_group *g, sq_status *st);
void sq_group_destroy(sq_group *g);

/* Broadcast n floats from group rank `root`. */
sq_code sq_bcast_floats(const sq_group *g, float *buf, size_t n, int root, sq_status *st);

/* Gradient averaging of one flat buffer in fixed-order buckets (non-blocking MPI_Iallreduce, so a
 * caller can start buckets as the backward pass finishes them and wait once at the end). */
typedef struct sq_allreduce {
    const sq_group *g;
    float *buf;
    size_t n, bucket;
    int nbuckets, started;
    MPI_Request *req;
} sq_allreduce;

sq_code sq_allreduce_init(sq_allreduce *ar, const sq_group *g, float *buf, size_t n,
                          size_t bucket_elems, sq_status *st);
/* Start bucket b (buckets must be started in order 0..nbuckets-1). Bucket 0 is the END of the
 * buffer (the last `bucket_elems` floats), bucket 1 the ones before it, and so on: the order in
 * which a backward pass finishes the gradients of parameters laid out in forward order. */
sq_code sq_allreduce_start(sq_allreduce *ar, int b, sq_status *st);
/* The gradients at [from, n) are final: start, in order, every bucket lying inside that range,
 * and test the buckets in flight so MPI progresses them while the caller keeps computing. */
sq_code sq_allreduce_ready(sq_allreduce *ar, size_t from, sq_status *st);
/* Start every bucket not yet started, wait for all, divide by the group size. */
sq_code sq_allreduce_finish(sq_allreduce *ar, sq_status *st);
void sq_allreduce_free(sq_allreduce *ar);
/* Blocking convenience: average buf over the group. */
sq_code sq_allreduce_mean(const sq_group *g, float *buf, size_t n, sq_status *st);
/* Sum of doubles over the group (metrics, synchronised BN statistics); `what` names the
 * collective in a watchdog fault line (hpc/watchdog.h). */
sq_code sq_allreduce_sum_doubles(const sq_group *g, double *buf, int n, sq_status *st);
sq_code sq_allreduce_sum_doubles_named(const sq_group *g, double *buf, int n, const char *what,
                                       sq_status *st);

/* Gather variable-length double arrays from every world rank to world rank 0. On rank 0 *out
 * (malloc'd) holds the concatenation in rank order and *total its length; elsewhere NULL/0. */
sq_code sq_gather_doubles(const sq_world *w, const double *mine, int n, double **out, int *total,
                          sq_status *st);

/* The same for records of `size` bytes each (e.g. per-sample prediction structs): rank 0 receives
 * the concatenation in rank order, *total records. */
sq_code sq_gather_records(const sq_world *w, const void *mine, int n, size_t size, void **out,
                          int *total, sq_status *st);

#endif
