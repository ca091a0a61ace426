/* bench_comm.c — `segqa bench comm`: the gradient all-reduce of the real gradient buffer (the QA
 * network's flat parameter count at the given configuration) over whatever is there: MPI over
 * the ranks of `mpirun` on host memory (--device cpu), NCCL over the ranks' GPUs on device memory
 * (--device cuda). The trainer's own code runs: comm.h's fixed-order 1 MiB buckets (MPI) or
 * nccl.h's (NCCL, ncclAvg), plus one whole-buffer all-reduce for comparison.
 *
 * Figures as nccl-tests defines them: algorithm bandwidth algBW = bytes / time, bus bandwidth
 * busBW = algBW * 2 (W - 1) / W (what each link of a ring carries). The limit is measured in the
 * same run: MPI: the point-to-point bandwidth of rank 0 -> rank 1 with a 64 MiB message
 * (ping-pong, one way) and this rank's memcpy bandwidth at the buffer size; NCCL: the device's
 * copy bandwidth (read + write). Prints the ratio busBW / limit.
 */
#include "cli.h"

#include "core/fileio.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "hpc/comm.h"
#include "hpc/nccl.h"
#include "model/model.h"
#include "nn/registry.h"
#ifdef SEGQA_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct copts {
    long long repeat, warmup, fpn_channels, fpn_repeats;
    char shape[64], device[8], out[1024];
} copts;

typedef struct cres {
    size_t n;            /* floats reduced */
    int world, buckets;  /* ranks, buckets of the bucketed path */
    double t_bucket;     /* median seconds of one bucketed all-reduce */
    double t_whole;      /* median seconds of one whole-buffer all-reduce */
    double limit_gbs;    /* the measured limit, GB/s */
    char limit_name[96]; /* what the limit is */
    double memcpy_gbs;   /* MPI path: host memcpy at the buffer size */
    double t_small;      /* seconds of one small all-reduce (129 doubles: one BN layer's sums) */
    char lib[64];
} cres;

static double busbw(double bytes, double t, int w) {
    return w > 1 && t > 0 ? bytes / t * 2.0 * (w - 1) / w / 1e9 : 0;
}

/* The flat parameter count of the network at the configuration (a CPU model, no plan). */
static sq_code param_count(const copts *o, size_t *n, sq_status *st) {
    sq_model_config c = sq_model_config_default();
    int64_t shp[SQ_MAX_DIMS];
    int nd = 0;
    SQ_TRY(sq_parse_shape(o->shape, shp, &nd, st));
    if (nd != 3) return sq_fail(st, SQ_ERR_USAGE, "--shape: expected DxHxW, got '%s'", o->shape);
    c.depth = (int)shp[0], c.height = (int)shp[1], c.width = (int)shp[2];
    c.fpn_channels = (int)o->fpn_channels;
    c.fpn_repeats = (int)o->fpn_repeats;
    SQ_TRY(sq_model_config_check(&c, st));
    sq_backend_opts bo = sq_backend_opts_default();
    bo.threads = 1;
    char chosen[256];
    sq_backend *be = sq_backend_create("cpu", &bo, chosen, sizeof chosen, st);
    if (!be) return st->code;
    sq_model *m = NULL;
    sq_code rc = sq_model_create(&c, be, &m, st);
    if (rc == SQ_OK) *n = sq_model_params_floats(m);
    sq_model_destroy(m);
    be->destroy(be);
    return rc;
}

/* Median over the repeats of fn's seconds, every repeat started together (barrier). */
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median_d(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- MPI over host memory ------------------------------------------------------------------ */

static sq_code mpi_bucketed(const sq_group *g, float *buf, size_t n, int *nb, sq_status *st) {
    sq_allreduce ar;
    SQ_TRY(sq_allreduce_init(&ar, g, buf, n, (size_t)1 << 18, st)); /* the trainer's buckets */
    *nb = ar.nbuckets;
    sq_code rc = sq_allreduce_finish(&ar, st);
    sq_allreduce_free(&ar);
    return rc;
}

static sq_code mpi_whole(const sq_group *g, float *buf, size_t n, sq_status *st) {
    if (g->size < 2) return SQ_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, g->comm);
    return rc == MPI_SUCCESS ? SQ_OK : sq_fail(st, SQ_ERR_MPI, "MPI_Allreduce failed");
}

/* One-way bandwidth rank 0 -> 1 of a 64 MiB message (ping-pong / 2), GB/s; 0 on one rank. */
static sq_code mpi_p2p(const sq_group *g, int reps, double *gbs, sq_status *st) {
    *gbs = 0;
    if (g->size < 2) return SQ_OK;
    const int cnt = 16 << 20; /* floats: 64 MiB */
    float *b = calloc((size_t)cnt, sizeof *b);
    if (!b) return sq_fail(st, SQ_ERR_NOMEM, "bench comm: out of memory");
    double *t = calloc((size_t)reps, sizeof *t);
    int rc = MPI_SUCCESS;
    for (int r = 0; r < reps && rc == MPI_SUCCESS; r++) {
        rc = MPI_Barrier(g->comm);
        double t0 = sq_now();
        if (g->rank == 0 && rc == MPI_SUCCESS) {
            rc = MPI_Send(b, cnt, MPI_FLOAT, 1, 7, g->comm);
            if (rc == MPI_SUCCESS)
                rc = MPI_Recv(b, cnt, MPI_FLOAT, 1, 7, g->comm, MPI_STATUS_IGNORE);
        } else if (g->rank == 1 && rc == MPI_SUCCESS) {
            rc = MPI_Recv(b, cnt, MPI_FLOAT, 0, 7, g->comm, MPI_STATUS_IGNORE);
            if (rc == MPI_SUCCESS) rc = MPI_Send(b, cnt, MPI_FLOAT, 0, 7, g->comm);
        }
        t[r] = (sq_now() - t0) / 2;
    }
    if (rc == MPI_SUCCESS) *gbs = (double)cnt * sizeof(float) / median_d(t, reps) / 1e9;
    free(b);
    free(t);
    return rc == MPI_SUCCESS ? SQ_OK : sq_fail(st, SQ_ERR_MPI, "bench comm: ping-pong failed");
}

static double memcpy_gbs(size_t bytes, int reps) {
    char *a = malloc(bytes), *b = malloc(bytes);
    if (!a || !b) {
        free(a);
        free(b);
        return 0;
    }
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = sq_now();
        memcpy(b, a, bytes);
        double t = sq_now() - t0;
        best = t < best ? t : best;
        a[r % bytes] = b[(r * 7) % bytes]; /* keep the copy observable */
    }
    free(a);
    free(b);
    return (double)bytes / best / 1e9; /* bytes copied per second */
}

/* One synchronised-BN sum (2C + 1 doubles, C = 64), as the trainer issues 462 per step. */
static sq_code mpi_small(const sq_group *g, double *sec, sq_status *st) {
    double v[129] = {0}, t[200];
    for (int i = 0; i < 200; i++) {
        double t0 = sq_now();
        SQ_TRY(sq_allreduce_sum_doubles_named(g, v, 129, "bench: small all-reduce", st));
        t[i] = sq_now() - t0;
    }
    *sec = median_d(t, 200);
    return SQ_OK;
}

static sq_code run_mpi(const copts *o, const sq_group *g, cres *r, sq_status *st) {
    float *buf = calloc(r->n, sizeof *buf);
    int reps = (int)o->repeat;
    double *tb = calloc((size_t)reps, sizeof *tb), *tw = calloc((size_t)reps, sizeof *tw);
    sq_code rc = buf && tb && tw ? SQ_OK : sq_fail(st, SQ_ERR_NOMEM, "bench comm: out of memory");
    for (long long i = 0; rc == SQ_OK && i < o->warmup + o->repeat; i++) {
        if (MPI_Barrier(g->comm) != MPI_SUCCESS) rc = sq_fail(st, SQ_ERR_MPI, "MPI_Barrier");
        double t0 = sq_now();
        if (rc == SQ_OK) rc = mpi_bucketed(g, buf, r->n, &r->buckets, st);
        double t1 = sq_now();
        if (rc == SQ_OK && MPI_Barrier(g->comm) != MPI_SUCCESS)
            rc = sq_fail(st, SQ_ERR_MPI, "MPI_Barrier");
        double t2 = sq_now();
        if (rc == SQ_OK) rc = mpi_whole(g, buf, r->n, st);
        if (i >= o->warmup) {
            tb[i - o->warmup] = t1 - t0;
            tw[i - o->warmup] = sq_now() - t2;
        }
    }
    if (rc == SQ_OK) {
        r->t_bucket = median_d(tb, reps);
        r->t_whole = median_d(tw, reps);
        rc = mpi_p2p(g, 5, &r->limit_gbs, st);
        snprintf(r->limit_name, sizeof r->limit_name,
                 "MPI point-to-point rank 0 -> 1, 64 MiB message (one way)");
        r->memcpy_gbs = memcpy_gbs(r->n * sizeof(float), 10);
        if (rc == SQ_OK && g->size > 1) rc = mpi_small(g, &r->t_small, st);
    }
    free(buf);
    free(tb);
    free(tw);
    return rc;
}

/* ---- NCCL over device memory ---------------------------------------------------------------- */

/* R back-to-back bucketed all-reduces on the backend's device buffer as the trainer runs them
 * (event on the compute stream, buckets on the comm stream, compute waits), then one sync. */
static sq_code nccl_loop(sq_backend *be, sq_nccl *nc, float *dev, size_t n, int reps, int bucketed,
                         double *sec, sq_status *st) {
    void *ev = NULL;
    SQ_TRY(be->event_create(be, &ev, st));
    sq_code rc = sq_nccl_grad_init(nc, dev, n, (size_t)1 << 18, st);
    double t0 = sq_now();
    for (int i = 0; rc == SQ_OK && i < reps; i++) {
        if (bucketed) {
            void *done = NULL;
            rc = be->event_record(be, ev, st);
            if (rc == SQ_OK) rc = sq_nccl_grad_finish(nc, ev, &done, NULL, st);
            if (rc == SQ_OK) rc = be->stream_wait(be, done, st);
        } else {
            rc = sq_nccl_allreduce_floats(nc, dev, n, 1, be->stream(be), "ncclAllReduce (bench)",
                                          st);
        }
    }
    if (rc == SQ_OK) rc = be->sync(be, st);
    *sec = (sq_now() - t0) / reps;
    be->event_destroy(be, ev);
    return rc;
}

static sq_code run_nccl(const copts *o, const sq_group *g, cres *r, sq_status *st) {
    char chosen[512];
    sq_backend *be = sq_cli_backend(o->device, 1, 0, chosen, sizeof chosen, st);
    if (!be) return st->code;
    if (!be->device_memory) {
        be->destroy(be);
        return sq_fail(st, SQ_ERR_USAGE, "bench comm --device %s: NCCL needs a CUDA backend",
                       o->device);
    }
    sq_buf *buf = NULL;
    sq_nccl *nc = NULL;
    sq_code rc = be->buf_alloc(be, r->n * sizeof(float), &buf, st);
    if (rc == SQ_OK) rc = sq_nccl_create(g, -1, &nc, st);
    float *dev = buf ? be->buf_native(be, buf) : NULL;
    double sec = 0;
    if (rc == SQ_OK) rc = nccl_loop(be, nc, dev, r->n, (int)o->warmup + 1, 1, &sec, st);
    if (rc == SQ_OK) rc = nccl_loop(be, nc, dev, r->n, (int)o->repeat, 1, &r->t_bucket, st);
    if (rc == SQ_OK) rc = nccl_loop(be, nc, dev, r->n, (int)o->repeat, 0, &r->t_whole, st);
    if (rc == SQ_OK) {
        double t0 = sq_now();
        for (int i = 0; rc == SQ_OK && i < 200; i++)
            rc = sq_nccl_sum_doubles(nc, dev, 129, be->stream(be), "bench: small all-reduce", st);
        if (rc == SQ_OK) rc = be->sync(be, st);
        r->t_small = (sq_now() - t0) / 200;
    }
    r->buckets = sq_nccl_grad_buckets(nc);
    sq_nccl_version(r->lib, sizeof r->lib);
#ifdef SEGQA_HAVE_CUDA
    if (rc == SQ_OK) rc = sq_cuda_copy_bandwidth(be, (size_t)256 << 20, &r->limit_gbs, st);
    snprintf(r->limit_name, sizeof r->limit_name,
             "device copy bandwidth, 256 MiB (read + write counted)");
#endif
    if (nc) (void)sq_nccl_quiesce(nc, st);
    sq_nccl_destroy(nc);
    be->buf_free(be, buf);
    be->destroy(be);
    return rc;
}

/* ---- report ---------------------------------------------------------------------------------- */

static void report(FILE *f, const copts *o, const cres *r, int nccl) {
    const double bytes = (double)r->n * sizeof(float);
    fprintf(f, "\n### segqa bench comm — %s, %d rank(s)\n\n", nccl ? r->lib : "MPI (host memory)",
            r->world);
    fprintf(f,
            "Gradient buffer of the network at %s (fpn %lld x %lld): %zu floats, %.2f MiB; "
            "%lld warm-up + %lld repeats (median%s).\n\n",
            o->shape, o->fpn_channels, o->fpn_repeats, r->n, bytes / 1048576.0, o->warmup,
            o->repeat, nccl ? " = mean of back-to-back calls" : "");
    fprintf(f, "| all-reduce | ms | algBW GB/s | busBW GB/s | busBW / limit "
               "|\n|---|---:|---:|---:|---:|\n");
    const char *names[2] = {"bucketed (trainer, 1 MiB buckets)", "whole buffer, one call"};
    const double t[2] = {r->t_bucket, r->t_whole};
    for (int k = 0; k < 2; k++) {
        double bb = busbw(bytes, t[k], r->world);
        char ratio[32] = "n/a";
        if (r->limit_gbs > 0 && r->world > 1)
            snprintf(ratio, sizeof ratio, "%.3f", bb / r->limit_gbs);
        if (r->world == 1 && !nccl) {
            fprintf(f, "| %s | n/a | n/a | n/a | n/a (one rank: nothing to reduce) |\n", names[k]);
            continue;
        }
        fprintf(f, "| %s | %.3f | %.2f | %.2f | %s |\n", names[k], t[k] * 1e3,
                t[k] > 0 ? bytes / t[k] / 1e9 : 0, bb, ratio);
    }
    fprintf(f, "\nbuckets: %d. busBW = algBW * 2(W-1)/W (nccl-tests); W = %d%s.\n", r->buckets,
            r->world, r->world == 1 ? ": a 1-rank all-reduce moves nothing over a link" : "");
    if (r->limit_gbs > 0)
        fprintf(f, "limit measured in this run: %s = %.2f GB/s.\n", r->limit_name, r->limit_gbs);
    if (r->t_small > 0)
        fprintf(f,
                "one synchronised-BN sum (129 doubles): %.1f us; x 462 per step (154 BN layers) = "
                "%.2f ms per step on the critical path.\n",
                r->t_small * 1e6, 462 * r->t_small * 1e3);
    if (r->memcpy_gbs > 0)
        fprintf(f, "host memcpy at the buffer size on rank 0: %.2f GB/s.\n", r->memcpy_gbs);
    double load[3] = {-1, -1, -1};
    if (getloadavg(load, 3) > 0)
        fprintf(f, "1-minute load average at the end: %.2f (%ld cores online).\n", load[0],
                sysconf(_SC_NPROCESSORS_ONLN));
}

static sq_code write_out(const char *path, const copts *o, const cres *r, int nccl, sq_status *st) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return sq_fail(st, SQ_ERR_NOMEM, "bench comm: out of memory");
    report(f, o, r, nccl);
    fclose(f);
    sq_code rc = sq_write_file_atomic(path, text, len, st);
    free(text);
    return rc;
}

int sq_bench_comm(int argc, char **argv) {
    copts o;
    memset(&o, 0, sizeof o);
    o.repeat = 20, o.warmup = 3, o.fpn_channels = 64, o.fpn_repeats = 3;
    snprintf(o.shape, sizeof o.shape, "28x160x160");
    snprintf(o.device, sizeof o.device, "cpu");
    const sq_option opts[] = {
        {"repeat", 'n', SQ_OPT_INT, &o.repeat, 0, "N", "timed all-reduces", NULL, 1, 100000},
        {"warmup", 0, SQ_OPT_INT, &o.warmup, 0, "N", "untimed all-reduces first", NULL, 0, 1000},
        {"shape", 0, SQ_OPT_STRING, o.shape, sizeof o.shape, "DxHxW",
         "input size of the network whose gradient is reduced", NULL, 0, 0},
        {"fpn-channels", 0, SQ_OPT_INT, &o.fpn_channels, 0, "N", "BiFPN width", NULL, 4, 512},
        {"fpn-repeats", 0, SQ_OPT_INT, &o.fpn_repeats, 0, "N", "BiFPN cells", NULL, 1, 8},
        {"device", 0, SQ_OPT_CHOICE, o.device, sizeof o.device, "DEV",
         "cpu: MPI over host memory; cuda: NCCL over device memory", "cpu|cuda|auto", 0, 0},
        {"out", 'o', SQ_OPT_STRING, o.out, sizeof o.out, "FILE.md", "also write the table here",
         NULL, 0, 0},
    };
    const sq_cli_spec spec = {"bench comm",
                              "mpirun -np W segqa bench comm [options]",
                              "All-reduce of the real gradient buffer over the job's ranks (MPI on "
                              "host memory, NCCL on GPUs), algBW and busBW as nccl-tests defines "
                              "them, against a limit measured in the same run.",
                              opts,
                              (int)(sizeof opts / sizeof opts[0]),
                              0,
                              0};
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("bench comm", &st);
    if (a.help) return 0;
    sq_world w;
    if (sq_world_init(NULL, NULL, &w, &st) != SQ_OK) return sq_cli_report("bench comm", &st);
    sq_layout lay;
    sq_group g = {MPI_COMM_NULL, 0, 0, 0};
    cres r;
    memset(&r, 0, sizeof r);
    r.world = w.size;
    sq_code rc = param_count(&o, &r.n, &st);
    if (rc == SQ_OK) rc = sq_layout_plan(w.size, 0, w.rank, &lay, &st);
    if (rc == SQ_OK) rc = sq_group_create(&w, &lay, &g, &st);
    const int nccl = strcmp(o.device, "cpu") != 0;
    if (rc == SQ_OK) rc = nccl ? run_nccl(&o, &g, &r, &st) : run_mpi(&o, &g, &r, &st);
    if (rc == SQ_OK && w.rank == 0) {
        report(stdout, &o, &r, nccl);
        fflush(stdout);
        if (o.out[0]) rc = write_out(o.out, &o, &r, nccl, &st);
    }
    int code = rc == SQ_OK ? 0 : sq_cli_report("bench comm", &st);
    if (rc != SQ_OK && w.size > 1) MPI_Abort(MPI_COMM_WORLD, code);
    sq_group_destroy(&g);
    sq_world_finalize(&w);
    return code;
}
