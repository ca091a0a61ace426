/* comm.c — world, layout, groups and collectives (see comm.h). */
#include "hpc/comm.h"

#include "core/log.h"
#include "hpc/watchdog.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static sq_code mpi_fail(sq_status *st, int err, const char *what) {
    return sq_mpi_fail(st, err, what);
}

/* Errors handler, rank and size of a communicator, every return code checked. */
static sq_code comm_info(MPI_Comm comm, int *rank, int *size, const char *what, sq_status *st) {
    int rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(comm, rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(comm, size);
    return rc == MPI_SUCCESS ? SQ_OK : mpi_fail(st, rc, what);
}

sq_code sq_check_world_size(int size, const char *env_ntasks, sq_status *st) {
    if (!env_ntasks || !*env_ntasks) return SQ_OK;
    char *end;
    errno = 0;
    long n = strtol(env_ntasks, &end, 10);
    if (*end || errno || n <= 0)
        return sq_fail(st, SQ_ERR_MPI, "SLURM_NTASKS='%s': expected a positive integer",
                       env_ntasks);
    if (n != size)
        return sq_fail(
            st, SQ_ERR_MPI,
            "MPI world size %d differs from SLURM_NTASKS=%ld: the ranks were not started "
            "as one MPI job (use srun --mpi=pmix or mpirun inside the allocation)",
            size, n);
    return SQ_OK;
}

int sq_local_rank_from_env(void) {
    const char *names[] = {"SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) {
            char *end;
            long r = strtol(v, &end, 10);
            if (!*end && r >= 0 && r < INT_MAX) return (int)r;
        }
    }
    return -1;
}

sq_code sq_world_init(int *argc, char ***argv, sq_world *w, sq_status *st) {
    memset(w, 0, sizeof *w);
    int inited = 0;
    int rc0 = MPI_Initialized(&inited);
    if (rc0 != MPI_SUCCESS) return mpi_fail(st, rc0, "MPI_Initialized");
    if (!inited) {
        int provided = 0;
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail(st, rc, "MPI_Init_thread");
        w->owns_mpi = 1;
    }
    w->comm = MPI_COMM_WORLD;
    SQ_TRY(comm_info(w->comm, &w->rank, &w->size, "MPI_COMM_WORLD setup", st));
    w->local_rank = sq_local_rank_from_env();
    sq_watchdog_configure(sq_watchdog_timeout(), w->rank, -1);
    return sq_check_world_size(w->size, getenv("SLURM_NTASKS"), st);
}

void sq_world_finalize(sq_world *w) {
    int fin = 0;
    if (MPI_Finalized(&fin) != MPI_SUCCESS) fin = 1;
    if (w->owns_mpi && !fin && MPI_Finalize() != MPI_SUCCESS)
        sq_warn("MPI_Finalize failed on rank %d", w->rank);
    w->owns_mpi = 0;
}

sq_code sq_layout_plan(int world_size, int nfolds, int rank, sq_layout *lay, sq_status *st) {
    memset(lay, 0, sizeof *lay);
    if (world_size < 1 || rank < 0 || rank >= world_size)
        return sq_fail(st, SQ_ERR_RANGE, "rank %d of world size %d", rank, world_size);
    if (nfolds < 0 || nfolds == 1 || nfolds > SQ_MAX_FOLDS)
        return sq_fail(st, SQ_ERR_USAGE, "folds = %d: expected 0 (train on all data) or 2..%d",
                       nfolds, SQ_MAX_FOLDS);
    lay->world_size = world_size;
    lay->nfolds = nfolds;
    if (nfolds == 0) {
        lay->ngroups = 1;
        lay->group = 0;
        lay->group_rank = rank;
        lay->group_size = world_size;
        lay->nmine = 1;
        lay->mine[0] = -1;
    } else if (world_size >= nfolds) {
        lay->ngroups = nfolds;
        lay->group = rank % nfolds;
        lay->group_rank = rank / nfolds;
        lay->group_size = world_size / nfolds + (lay->group < world_size % nfolds ? 1 : 0);
        lay->nmine = 1;
        lay->mine[0] = lay->group;
    } else {
        lay->ngroups = world_size;
        lay->group = rank;
        lay->group_rank = 0;
        lay->group_size = 1;
        for (int f = rank; f < nfolds; f += world_size)
            lay->mine[lay->nmine++] = f;
    }
    return SQ_OK;
}

sq_code sq_group_create(const sq_world *w, const sq_layout *lay, sq_group *g, sq_status *st) {
    int rc = MPI_Comm_split(w->comm, lay->group, lay->group_rank, &g->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(st, rc, "MPI_Comm_split");
    SQ_TRY(comm_info(g->comm, &g->rank, &g->size, "group communicator setup", st));
    g->index = lay->group;
    sq_watchdog_configure(sq_watchdog_timeout(), w->rank, lay->group);
    if (g->rank != lay->group_rank || g->size != lay->group_size)
        return sq_fail(st, SQ_ERR_INTERNAL, "group %d: rank %d/%d, planned %d/%d", lay->group,
                       g->rank, g->size, lay->group_rank, lay->group_size);
    return SQ_OK;
}

void sq_group_destroy(sq_group *g) {
    if (g->comm != MPI_COMM_NULL && g->comm != MPI_COMM_WORLD &&
        MPI_Comm_free(&g->comm) != MPI_SUCCESS)
        sq_warn("MPI_Comm_free of group %d failed", g->index);
    g->comm = MPI_COMM_NULL;
}

sq_code sq_bcast_floats(const sq_group *g, float *buf, size_t n, int root, sq_status *st) {
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += chunk) {
        int cnt = (int)(n - off < chunk ? n - off : chunk);
        MPI_Request r = MPI_REQUEST_NULL;
        int rc = MPI_Ibcast(buf + off, cnt, MPI_FLOAT, root, g->comm, &r);
        if (rc != MPI_SUCCESS) return mpi_fail(st, rc, "MPI_Ibcast of parameters");
        SQ_TRY(sq_comm_wait(&r, 1, "MPI_Ibcast of parameters", st));
    }
    return SQ_OK;
}

sq_code sq_allreduce_init(sq_allreduce *ar, const sq_group *g, float *buf, size_t n,
                          size_t bucket_elems, sq_status *st) {
    memset(ar, 0, sizeof *ar);
    if (bucket_elems == 0 || bucket_elems > (size_t)INT_MAX) bucket_elems = (size_t)1 << 22;
    ar->g = g;
    ar->buf = buf;
    ar->n = n;
    ar->bucket = bucket_elems;
    ar->nbuckets = n ? (int)((n + bucket_elems - 1) / bucket_elems) : 0;
    ar->req = calloc((size_t)(ar->nbuckets ? ar->nbuckets : 1), sizeof *ar->req);
    if (!ar->req) return sq_fail(st, SQ_ERR_NOMEM, "all-reduce: out of memory");
    for (int b = 0; b < ar->nbuckets; b++)
        ar->req[b] = MPI_REQUEST_NULL;
    return SQ_OK;
}

/* Bucket b covers [lo, hi) counted from the END of the buffer: bucket 0 holds the last
 * `bucket` floats, which the backward pass finishes first. */
static void bucket_range(const sq_allreduce *ar, int b, size_t *lo, size_t *hi) {
    const size_t from_end = (size_t)b * ar->bucket;
    *hi = ar->n - from_end;
    *lo = *hi > ar->bucket ? *hi - ar->bucket : 0;
}

sq_code sq_allreduce_start(sq_allreduce *ar, int b, sq_status *st) {
    if (b != ar->started || b >= ar->nbuckets)
        return sq_fail(st, SQ_ERR_INTERNAL,
                       "all-reduce bucket %d started out of order (next %d of %d)", b, ar->started,
                       ar->nbuckets);
    if (ar->g->size > 1) {
        size_t lo, hi;
        bucket_range(ar, b, &lo, &hi);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, ar->buf + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM,
                                ar->g->comm, &ar->req[b]);
        if (rc != MPI_SUCCESS) return mpi_fail(st, rc, "MPI_Iallreduce of gradients");
    }
    ar->started++;
    return SQ_OK;
}

sq_code sq_allreduce_ready(sq_allreduce *ar, size_t from, sq_status *st) {
    while (ar->started < ar->nbuckets) {
        size_t lo, hi;
        bucket_range(ar, ar->started, &lo, &hi);
        if (lo < from) break;
        SQ_TRY(sq_allreduce_start(ar, ar->started, st));
    }
    if (ar->g->size > 1 && ar->started > 0) { /* let MPI progress the buckets in flight */
        int done = 0;
        int rc = MPI_Testall(ar->started, ar->req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(st, rc, "MPI_Testall of gradient buckets");
    }
    return SQ_OK;
}

sq_code sq_allreduce_finish(sq_allreduce *ar, sq_status *st) {
    while (ar->started < ar->nbuckets)
        SQ_TRY(sq_allreduce_start(ar, ar->started, st));
    if (ar->g->size > 1) {
        char what[96];
        snprintf(what, sizeof what, "MPI_Iallreduce of %d gradient buckets (%zu floats)",
                 ar->nbuckets, ar->n);
        SQ_TRY(sq_comm_wait(ar->req, ar->nbuckets, what, st));
        float inv = 1.0f / (float)ar->g->size;
        for (size_t i = 0; i < ar->n; i++)
            ar->buf[i] *= inv;
    }
    ar->started = 0;
    return SQ_OK;
}

void sq_allreduce_free(sq_allreduce *ar) {
    free(ar->req);
    ar->req = NULL;
}

sq_code sq_allreduce_mean(const sq_group *g, float *buf, size_t n, sq_status *st) {
    sq_allreduce ar;
    SQ_TRY(sq_allreduce_init(&ar, g, buf, n, 0, st));
    sq_code rc = sq_allreduce_finish(&ar, st);
    sq_allreduce_free(&ar);
    return rc;
}

sq_code sq_allreduce_sum_doubles(const sq_group *g, double *buf, int n, sq_status *st) {
    return sq_allreduce_sum_doubles_named(g, buf, n, "MPI_Iallreduce of statistics", st);
}

sq_code sq_allreduce_sum_doubles_named(const sq_group *g, double *buf, int n, const char *what,
                                       sq_status *st) {
    if (g->size == 1) return SQ_OK;
    MPI_Request r = MPI_REQUEST_NULL;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, g->comm, &r);
    if (rc != MPI_SUCCESS) return mpi_fail(st, rc, what);
    return sq_comm_wait(&r, 1, what, st);
}

/* Watched gathers to rank 0 (a test loop against --comm-timeout instead of a blocking call). */
static int gather_watched(const void *mine, int n, MPI_Datatype t, void *all, int *counts,
                          int *displs, MPI_Comm comm, const char *what, sq_status *st) {
    MPI_Request r = MPI_REQUEST_NULL;
    int rc = displs ? MPI_Igatherv(mine, n, t, all, counts, displs, t, 0, comm, &r)
                    : MPI_Igather(mine, n, t, all, n, t, 0, comm, &r);
    if (rc == MPI_SUCCESS) sq_comm_wait(&r, 1, what, st);
    return rc;
}

sq_code sq_gather_doubles(const sq_world *w, const double *mine, int n, double **out, int *total,
                          sq_status *st) {
    *out = NULL;
    *total = 0;
    int *counts = NULL, *displs = NULL;
    if (w->rank == 0) {
        counts = calloc((size_t)w->size, sizeof *counts);
        displs = calloc((size_t)w->size, sizeof *displs);
        if (!counts || !displs) {
            free(counts);
            free(displs);
            return sq_fail(st, SQ_ERR_NOMEM, "gather: out of memory");
        }
    }
    int rc =
        gather_watched(&n, 1, MPI_INT, counts, NULL, NULL, w->comm, "MPI_Igather of counts", st);
    if (rc != MPI_SUCCESS) {
        free(counts);
        free(displs);
        return mpi_fail(st, rc, "MPI_Gather of counts");
    }
    double *all = NULL;
    if (w->rank == 0) {
        long sum = 0;
        for (int r = 0; r < w->size; r++) {
            displs[r] = (int)sum;
            sum += counts[r];
        }
        all = malloc((size_t)(sum ? sum : 1) * sizeof *all);
        if (!all) {
            free(counts);
            free(displs);
            return sq_fail(st, SQ_ERR_NOMEM, "gather: out of memory");
        }
        *total = (int)sum;
    }
    rc = gather_watched(mine, n, MPI_DOUBLE, all, counts, displs, w->comm,
                        "MPI_Igatherv of predictions", st);
    free(counts);
    free(displs);
    if (rc != MPI_SUCCESS) {
        free(all);
        *total = 0;
        return mpi_fail(st, rc, "MPI_Gatherv of predictions");
    }
    *out = all;
    return SQ_OK;
}

sq_code sq_gather_records(const sq_world *w, const void *mine, int n, size_t size, void **out,
                          int *total, sq_status *st) {
    *out = NULL;
    *total = 0;
    if (size == 0 || size > (size_t)INT_MAX / 4096)
        return sq_fail(st, SQ_ERR_RANGE, "gather: record size %zu", size);
    int *counts = NULL, *displs = NULL;
    if (w->rank == 0) {
        counts = calloc((size_t)w->size, sizeof *counts);
        displs = calloc((size_t)w->size, sizeof *displs);
        if (!counts || !displs) {
            free(counts);
            free(displs);
            return sq_fail(st, SQ_ERR_NOMEM, "gather: out of memory");
        }
    }
    int bytes = (int)((size_t)n * size);
    int rc = gather_watched(&bytes, 1, MPI_INT, counts, NULL, NULL, w->comm,
                            "MPI_Igather of record counts", st);
    char *all = NULL;
    if (rc == MPI_SUCCESS && w->rank == 0) {
        long sum = 0;
        for (int r = 0; r < w->size; r++) {
            displs[r] = (int)sum;
            sum += counts[r];
        }
        if (sum > INT_MAX) {
            free(counts);
            free(displs);
            return sq_fail(st, SQ_ERR_RANGE, "gather: %ld bytes exceed one MPI message", sum);
        }
        all = malloc((size_t)(sum ? sum : 1));
        if (!all) {
            free(counts);
            free(displs);
            return sq_fail(st, SQ_ERR_NOMEM, "gather: out of memory");
        }
        *total = (int)((size_t)sum / size);
    }
    if (rc == MPI_SUCCESS)
        rc = gather_watched(mine, bytes, MPI_BYTE, all, counts, displs, w->comm,
                            "MPI_Igatherv of records", st);
    free(counts);
    free(displs);
    if (rc != MPI_SUCCESS) {
        free(all);
        *total = 0;
        return mpi_fail(st, rc, "MPI_Gatherv of records");
    }
    *out = all;
    return SQ_OK;
}
