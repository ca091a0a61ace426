/* nccl.c — NCCL communicators, bucketed gradient averaging and the NCCL watchdog (see nccl.h). */
#include "hpc/nccl.h"

#include "hpc/watchdog.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Static_assert(sizeof(ncclUniqueId) == SQ_NCCL_ID_BYTES, "ncclUniqueId size");

#define RING 1024 /* collectives tracked by the watchdog (one event each) */

typedef struct pending {
    cudaEvent_t ev;
    double t0;
    long step;
    char what[96];
} pending;

struct sq_nccl {
    ncclComm_t comm;
    int nranks, rank, device, group;
    cudaStream_t stream; /* the communication stream */
    /* gradient buckets */
    float *grad;
    size_t n, bucket;
    int nbuckets, started;
    cudaEvent_t done_ev;
    /* watchdog: ring of outstanding collectives, polled by a thread */
    pending ring[RING];
    int head, count; /* oldest slot, entries in flight */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int thread_on, stop;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static sq_code cuda_fail(sq_status *st, cudaError_t e, const char *what) {
    return sq_fail(st, SQ_ERR_DEVICE, "%s failed: %s (%s)", what, cudaGetErrorName(e),
                   cudaGetErrorString(e));
}

static void on_fault_abort(void *ctx) {
    sq_nccl *c = ctx;
    if (c && c->comm) (void)ncclCommAbort(c->comm); /* ends kernels stuck waiting for peers */
}

/* An NCCL call's result on a non-blocking communicator: ncclInProgress is polled (against the
 * deadline) until the call has been issued; any error ends the job. */
static sq_code settle(sq_nccl *c, ncclResult_t r, const char *what) {
    const double deadline = now_s() + sq_watchdog_timeout();
    while (r == ncclInProgress) {
        if (now_s() > deadline) sq_comm_fatal(what, "still in progress at --comm-timeout");
        struct timespec ts = {0, 100000L};
        nanosleep(&ts, NULL);
        if (ncclCommGetAsyncError(c->comm, &r) != ncclSuccess) break;
    }
    if (r != ncclSuccess) {
        char why[256];
        snprintf(why, sizeof why, "%s (%s)", ncclGetErrorString(r), ncclGetLastError(c->comm));
        sq_comm_fatal(what, why);
    }
    return SQ_OK;
}

/* ---- watchdog ------------------------------------------------------------------------------- */

/* Pops completed collectives; a failed event, an asynchronous NCCL error or a collective older
 * than the timeout ends the job. */
static void *watchdog_main(void *arg) {
    sq_nccl *c = arg;
    (void)cudaSetDevice(c->device);
    for (;;) {
        pthread_mutex_lock(&c->mu);
        if (c->stop && c->count == 0) {
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
        while (c->count > 0) {
            pending *p = &c->ring[c->head];
            cudaError_t e = cudaEventQuery(p->ev);
            if (e == cudaErrorNotReady) {
                if (now_s() - p->t0 > sq_watchdog_timeout()) {
                    char why[96];
                    snprintf(why, sizeof why, "not complete after %.0f s (--comm-timeout)",
                             sq_watchdog_timeout());
                    pthread_mutex_unlock(&c->mu);
                    sq_watchdog_set_step(p->step);
                    sq_comm_fatal(p->what, why);
                }
                break;
            }
            if (e != cudaSuccess) {
                pthread_mutex_unlock(&c->mu);
                sq_comm_fatal(p->what, cudaGetErrorString(e));
            }
            c->head = (c->head + 1) % RING;
            c->count--;
            pthread_cond_broadcast(&c->cv);
        }
        pthread_mutex_unlock(&c->mu);
        ncclResult_t ar = ncclSuccess;
        if (ncclCommGetAsyncError(c->comm, &ar) == ncclSuccess && ar != ncclSuccess &&
            ar != ncclInProgress)
            sq_comm_fatal("NCCL communicator", ncclGetErrorString(ar));
        struct timespec ts = {0, 2000000L}; /* 2 ms */
        nanosleep(&ts, NULL);
    }
}

/* Track the collective just enqueued on `stream`: an event after it joins the ring. */
static sq_code track(sq_nccl *c, cudaStream_t stream, const char *what, sq_status *st) {
    pthread_mutex_lock(&c->mu);
    while (c->count == RING) /* the thread frees slots (or ends the job at the deadline) */
        pthread_cond_wait(&c->cv, &c->mu);
    pending *p = &c->ring[(c->head + c->count) % RING];
    cudaError_t e = cudaEventRecord(p->ev, stream);
    if (e == cudaSuccess) {
        p->t0 = now_s();
        p->step = sq_watchdog_step();
        snprintf(p->what, sizeof p->what, "%s", what);
        c->count++;
    }
    pthread_mutex_unlock(&c->mu);
    return e == cudaSuccess ? SQ_OK : cuda_fail(st, e, "NCCL watchdog: cudaEventRecord");
}

/* ---- creation ------------------------------------------------------------------------------- */

int sq_nccl_available(void) {
    return 1;
}

void sq_nccl_version(char *buf, size_t n) {
    int v = 0;
    if (ncclGetVersion(&v) != ncclSuccess) v = 0;
    snprintf(buf, n, "NCCL %d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
}

sq_code sq_nccl_unique_id(unsigned char id[SQ_NCCL_ID_BYTES], sq_status *st) {
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess)
        return sq_fail(st, SQ_ERR_MPI, "ncclGetUniqueId failed: %s", ncclGetErrorString(r));
    memcpy(id, &u, sizeof u);
    return SQ_OK;
}

static sq_code make_sync_objects(sq_nccl *c, sq_status *st) {
    int lo = 0, hi = 0;
    cudaError_t e = cudaDeviceGetStreamPriorityRange(&lo, &hi);
    if (e == cudaSuccess) e = cudaStreamCreateWithPriority(&c->stream, cudaStreamNonBlocking, hi);
    if (e != cudaSuccess) return cuda_fail(st, e, "NCCL: create the communication stream");
    e = cudaEventCreateWithFlags(&c->done_ev, cudaEventDisableTiming);
    for (int i = 0; i < RING && e == cudaSuccess; i++)
        e = cudaEventCreateWithFlags(&c->ring[i].ev, cudaEventDisableTiming);
    if (e != cudaSuccess) return cuda_fail(st, e, "NCCL: cudaEventCreate");
    return SQ_OK;
}

/* Non-blocking init, polled against the deadline (ncclCommAbort on timeout, in settle's fault). */
static sq_code init_comm(sq_nccl *c, const unsigned char *id, sq_status *st) {
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    ncclResult_t r = ncclCommInitRankConfig(&c->comm, c->nranks, u, c->rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) {
        if (c->comm) (void)ncclCommAbort(c->comm);
        c->comm = NULL;
        return sq_fail(st, SQ_ERR_MPI, "ncclCommInitRankConfig (rank %d of %d) failed: %s", c->rank,
                       c->nranks, ncclGetErrorString(r));
    }
    sq_watchdog_on_fault(on_fault_abort, c);
    if (r == ncclInProgress) {
        ncclResult_t a = ncclInProgress;
        if (ncclCommGetAsyncError(c->comm, &a) != ncclSuccess) a = ncclInternalError;
        SQ_TRY(settle(c, a, "ncclCommInitRankConfig"));
    }
    return SQ_OK;
}

sq_code sq_nccl_create_raw(const unsigned char id[SQ_NCCL_ID_BYTES], int nranks, int rank,
                           int device, int group, sq_nccl **out, sq_status *st) {
    *out = NULL;
    sq_nccl *c = calloc(1, sizeof *c);
    if (!c) return sq_fail(st, SQ_ERR_NOMEM, "NCCL: out of memory");
    c->nranks = nranks;
    c->rank = rank;
    c->group = group;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    cudaError_t e = device >= 0 ? cudaSetDevice(device) : cudaGetDevice(&device);
    c->device = device;
    sq_code rc = e == cudaSuccess ? SQ_OK : cuda_fail(st, e, "NCCL: select the device");
    if (rc == SQ_OK) rc = make_sync_objects(c, st);
    if (rc == SQ_OK) rc = init_comm(c, id, st);
    if (rc == SQ_OK) {
        if (pthread_create(&c->thread, NULL, watchdog_main, c) != 0)
            rc = sq_fail(st, SQ_ERR_INTERNAL, "NCCL: cannot start the watchdog thread");
        else
            c->thread_on = 1;
    }
    if (rc != SQ_OK) {
        sq_nccl_destroy(c);
        return rc;
    }
    *out = c;
    return SQ_OK;
}

sq_code sq_nccl_create(const sq_group *g, int device, sq_nccl **out, sq_status *st) {
    unsigned char id[SQ_NCCL_ID_BYTES];
    memset(id, 0, sizeof id);
    if (g->rank == 0) SQ_TRY(sq_nccl_unique_id(id, st));
    if (g->size > 1) {
        MPI_Request r = MPI_REQUEST_NULL;
        int rc = MPI_Ibcast(id, SQ_NCCL_ID_BYTES, MPI_BYTE, 0, g->comm, &r);
        if (rc != MPI_SUCCESS) return sq_mpi_fail(st, rc, "MPI_Ibcast of the NCCL unique id");
        SQ_TRY(sq_comm_wait(&r, 1, "MPI_Ibcast of the NCCL unique id", st));
    }
    return sq_nccl_create_raw(id, g->size, g->rank, device, g->index, out, st);
}

void sq_nccl_destroy(sq_nccl *c) {
    if (!c) return;
    (void)cudaSetDevice(c->device);
    if (c->thread_on) {
        pthread_mutex_lock(&c->mu);
        c->stop = 1;
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL); /* returns once the ring drained (or the job ends) */
    }
    sq_watchdog_on_fault(NULL, NULL);
    if (c->comm) {
        ncclResult_t r = ncclCommFinalize(c->comm);
        if (r == ncclInProgress) {
            ncclResult_t a = ncclInProgress;
            if (ncclCommGetAsyncError(c->comm, &a) != ncclSuccess) a = ncclInternalError;
            r = a;
        }
        (void)settle(c, r, "ncclCommFinalize");
        (void)ncclCommDestroy(c->comm);
    }
    if (c->stream) (void)cudaStreamDestroy(c->stream);
    if (c->done_ev) (void)cudaEventDestroy(c->done_ev);
    for (int i = 0; i < RING; i++)
        if (c->ring[i].ev) (void)cudaEventDestroy(c->ring[i].ev);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

int sq_nccl_size(const sq_nccl *c) {
    return c ? c->nranks : 0;
}
int sq_nccl_rank(const sq_nccl *c) {
    return c ? c->rank : -1;
}

/* ---- collectives ---------------------------------------------------------------------------- */

static sq_code allreduce(sq_nccl *c, void *dev, size_t n, ncclDataType_t t, ncclRedOp_t op,
                         cudaStream_t stream, const char *what, sq_status *st) {
    if (n == 0) return SQ_OK;
    SQ_TRY(settle(c, ncclAllReduce(dev, dev, n, t, op, c->comm, stream), what));
    return track(c, stream, what, st);
}

sq_code sq_nccl_sum_doubles(sq_nccl *c, void *dev, size_t n, void *stream, const char *what,
                            sq_status *st) {
    return allreduce(c, dev, n, ncclFloat64, ncclSum, (cudaStream_t)stream, what, st);
}

sq_code sq_nccl_allreduce_floats(sq_nccl *c, float *dev, size_t n, int avg, void *stream,
                                 const char *what, sq_status *st) {
    return allreduce(c, dev, n, ncclFloat32, avg ? ncclAvg : ncclSum, (cudaStream_t)stream, what,
                     st);
}

sq_code sq_nccl_quiesce(sq_nccl *c, sq_status *st) {
    pthread_mutex_lock(&c->mu);
    while (c->count > 0) /* the thread pops completed entries or ends the job */
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return SQ_OK;
}

sq_code sq_nccl_grad_init(sq_nccl *c, float *dev_buf, size_t n, size_t bucket_elems,
                          sq_status *st) {
    if (bucket_elems == 0) bucket_elems = (size_t)1 << 22;
    c->grad = dev_buf;
    c->n = n;
    c->bucket = bucket_elems;
    c->nbuckets = n ? (int)((n + bucket_elems - 1) / bucket_elems) : 0;
    c->started = 0;
    return SQ_OK;
}

int sq_nccl_grad_buckets(const sq_nccl *c) {
    return c ? c->nbuckets : 0;
}

int sq_nccl_grad_started(const sq_nccl *c) {
    return c ? c->started : 0;
}

/* Bucket b covers [lo, hi) counted from the END of the buffer (as comm.c's). */
static void bucket_range(const sq_nccl *c, int b, size_t *lo, size_t *hi) {
    *hi = c->n - (size_t)b * c->bucket;
    *lo = *hi > c->bucket ? *hi - c->bucket : 0;
}

static sq_code start_bucket(sq_nccl *c, sq_status *st) {
    size_t lo, hi;
    bucket_range(c, c->started, &lo, &hi);
    char what[96];
    snprintf(what, sizeof what, "ncclAllReduce(avg) of gradient bucket %d of %d", c->started,
             c->nbuckets);
    SQ_TRY(allreduce(c, c->grad + lo, hi - lo, ncclFloat32, ncclAvg, c->stream, what, st));
    c->started++;
    return SQ_OK;
}

/* The comm stream starts after `ev` (compute stream) completed. */
static sq_code wait_compute(sq_nccl *c, void *ev, sq_status *st) {
    if (!ev) return SQ_OK;
    cudaError_t e = cudaStreamWaitEvent(c->stream, (cudaEvent_t)ev, 0);
    return e == cudaSuccess ? SQ_OK : cuda_fail(st, e, "NCCL: cudaStreamWaitEvent");
}

sq_code sq_nccl_grad_ready(sq_nccl *c, size_t from, void *ready_ev, sq_status *st) {
    int waited = 0;
    while (c->started < c->nbuckets) {
        size_t lo, hi;
        bucket_range(c, c->started, &lo, &hi);
        if (lo < from) break;
        if (!waited) SQ_TRY(wait_compute(c, ready_ev, st));
        waited = 1;
        SQ_TRY(start_bucket(c, st));
    }
    return SQ_OK;
}

sq_code sq_nccl_grad_finish(sq_nccl *c, void *ready_ev, void **done_ev, int *early, sq_status *st) {
    if (early) *early = c->started;
    if (c->started < c->nbuckets) SQ_TRY(wait_compute(c, ready_ev, st));
    while (c->started < c->nbuckets)
        SQ_TRY(start_bucket(c, st));
    cudaError_t e = cudaEventRecord(c->done_ev, c->stream);
    if (e != cudaSuccess) return cuda_fail(st, e, "NCCL: cudaEventRecord");
    c->started = 0;
    *done_ev = c->done_ev;
    return SQ_OK;
}
