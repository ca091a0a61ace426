/* bench_ops.c — `segqa bench ops`: every op of the network on a backend (--device cpu|cuda) at the
 * shapes of the paper input (batch 2 of 2x28x160x160, anisotropic downsampling of DESIGN.md §3),
 * with time, GFLOP/s or GB/s, and ratios to limits measured in the same run: on the CPU the
 * OpenBLAS sgemm peak (FLOP-bound ops) and a parallel copy bandwidth (memory-bound ops); on CUDA
 * the device's measured copy bandwidth for every kernel (bytes = tensors read once + written once).
 * Depthwise convolutions are run side by side with the library's grouped convolution on the same
 * shapes (oneDNN on the CPU, cuDNN on CUDA), forward and both backward passes (the library gets a
 * 40 s wall-time budget so that a busy machine cannot push the whole bench past two minutes).
 * Times are the best of --repeat runs after a warm-up call, each synchronised. Writes the table as
 * Markdown to --out when given.
 */
#include "bench.h"
#include "cli.h"

#include "core/fileio.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "nn/backend.h"
#include "nn/cpu/cpu.h"
#ifdef SEGQA_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct bench {
    sq_backend *be;
    int repeat;
    const char *only; /* all | depthwise | dense | memory */
    FILE *md;
    double peak_gflops, copy_gbs;  /* peak_gflops 0: no FLOP limit measured (CUDA) */
    int cuda;                      /* the backend is CUDA (device memory) */
    sq_buf *A, *B, *C, *D, *E, *W; /* big scratch tensors and a parameter buffer */
    size_t big;                    /* floats in A..E */
} bench;

/* One op call, selected by kind. */
typedef enum kind {
    K_CONV,
    K_DW,
    K_DNNL_DW,
    K_BN,
    K_ACT,
    K_PRELU,
    K_GAP,
    K_CHS,
    K_POOL,
    K_RESIZE,
    K_FUSE,
    K_ADD,
    K_MSE,
    K_ADAM
} kind;
typedef enum pass { P_FWD, P_BWD_DATA, P_BWD_WEIGHTS, P_BWD } pass;

typedef struct job {
    kind k;
    pass ps;
    sq_conv3d conv;
    sq_bn bn;
    sq_act act;
    sq_shape5 s;
    sq_pool3d pool;
    sq_resize3d rs;
    int nfuse, bias, residual;
    int64_t n;
} job;

static void out(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(bench *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (b->md) {
        va_start(ap, fmt);
        vfprintf(b->md, fmt, ap);
        va_end(ap);
    }
    fflush(stdout);
}

static sq_view V(sq_buf *buf) {
    return sq_view_of(buf, 0);
}

/* The library's grouped convolution: oneDNN's on the CPU, cuDNN's on CUDA. */
static sq_code ref_conv_fwd(bench *b, const sq_conv3d *p, int g, sq_view x, sq_view w, sq_view bb,
                            sq_view y, sq_status *st) {
#ifdef SEGQA_HAVE_CUDA
    if (b->cuda) return sq_cuda_cudnn_conv_fwd(b->be, p, g, x, w, bb, y, st);
#endif
    return sq_cpu_dnnl_conv_fwd(b->be, p, g, x, w, bb, y, st);
}

static sq_code ref_conv_bwd(bench *b, const sq_conv3d *p, int g, sq_view x, sq_view w, sq_view dy,
                            sq_view dx, sq_view dw, sq_view db, sq_status *st) {
#ifdef SEGQA_HAVE_CUDA
    if (b->cuda) return sq_cuda_cudnn_conv_bwd(b->be, p, g, x, w, dy, dx, dw, db, st);
#endif
    return sq_cpu_dnnl_conv_bwd(b->be, p, g, x, w, dy, dx, dw, db, st);
}

static const char *ref_conv_name(const bench *b) {
    return b->cuda ? "cuDNN grouped" : "oneDNN grouped";
}

static sq_code run_job(bench *b, const job *j, sq_status *st) {
    sq_backend *be = b->be;
    const sq_view none = sq_view_none();
    /* W holds small per-channel vectors at fixed offsets: weights 0, bias / gamma 1M, beta,
     * running stats, save_* further on. */
    const sq_view w = sq_view_of(b->W, 0), bias = sq_view_of(b->W, 1 << 20),
                  beta = sq_view_of(b->W, (1 << 20) + 4096),
                  rm = sq_view_of(b->W, (1 << 20) + 2 * 4096),
                  rv = sq_view_of(b->W, (1 << 20) + 3 * 4096),
                  sm = sq_view_of(b->W, (1 << 20) + 4 * 4096),
                  si = sq_view_of(b->W, (1 << 20) + 5 * 4096), dw = sq_view_of(b->W, 2 << 20),
                  db = sq_view_of(b->W, (3 << 20));
    switch (j->k) {
    case K_CONV:
    case K_DW:
    case K_DNNL_DW: {
        const int g = j->k == K_CONV ? 1 : j->conv.in.c;
        const sq_view bb = j->bias ? bias : none;
        if (j->ps == P_FWD)
            return j->k == K_DW     ? be->dwconv3d_fwd(be, &j->conv, V(b->A), w, bb, V(b->B), st)
                   : j->k == K_CONV ? be->conv3d_fwd(be, &j->conv, V(b->A), w, bb, V(b->B), st)
                                    : ref_conv_fwd(b, &j->conv, g, V(b->A), w, bb, V(b->B), st);
        const sq_view dx = j->ps == P_BWD_DATA ? V(b->C) : none;
        const sq_view dwv = j->ps == P_BWD_WEIGHTS ? dw : none;
        const sq_view dbv = j->ps == P_BWD_WEIGHTS && j->bias ? db : none;
        return j->k == K_DW ? be->dwconv3d_bwd(be, &j->conv, V(b->A), w, V(b->B), dx, dwv, dbv, st)
               : j->k == K_CONV
                   ? be->conv3d_bwd(be, &j->conv, V(b->A), w, V(b->B), dx, dwv, dbv, st)
                   : ref_conv_bwd(b, &j->conv, g, V(b->A), w, V(b->B), dx, dwv, dbv, st);
    }
    case K_BN:
        if (j->ps == P_FWD)
            return be->bn_fwd(be, &j->bn, V(b->A), bias, beta, rm, rv, j->residual ? V(b->C) : none,
                              V(b->B), sm, si, st);
        return be->bn_bwd(be, &j->bn, V(b->A), bias, beta, sm, si, V(b->B), V(b->C), dw, db, st);
    case K_ACT:
        if (j->ps == P_FWD) return be->act_fwd(be, j->act, j->n, V(b->A), V(b->B), st);
        return be->act_bwd(be, j->act, j->n, V(b->A), V(b->B), V(b->C), st);
    case K_PRELU:
        if (j->ps == P_FWD) return be->prelu_fwd(be, j->s, V(b->A), rv, V(b->B), st);
        return be->prelu_bwd(be, j->s, V(b->A), rv, V(b->B), V(b->C), dw, st);
    case K_GAP:
        if (j->ps == P_FWD) return be->gap_fwd(be, j->s, V(b->A), V(b->B), st);
        return be->gap_bwd(be, j->s, V(b->B), V(b->C), st);
    case K_CHS:
        if (j->ps == P_FWD) return be->chscale_fwd(be, j->s, V(b->A), rv, V(b->B), st);
        return be->chscale_bwd(be, j->s, V(b->A), rv, V(b->B), V(b->C), dw, st);
    case K_POOL:
        if (j->ps == P_FWD) return be->maxpool3d_fwd(be, &j->pool, V(b->A), V(b->B), st);
        return be->maxpool3d_bwd(be, &j->pool, V(b->A), V(b->B), V(b->C), st);
    case K_RESIZE:
        if (j->ps == P_FWD) return be->resize3d_fwd(be, &j->rs, V(b->A), V(b->B), st);
        return be->resize3d_bwd(be, &j->rs, V(b->B), V(b->C), st);
    case K_FUSE: {
        sq_view xs[3] = {V(b->A), V(b->D), V(b->E)}, dxs[3] = {V(b->C), V(b->D), V(b->E)};
        if (j->ps == P_FWD) return be->fuse_fwd(be, j->s, j->nfuse, xs, bias, V(b->B), st);
        /* gradients of inputs 2, 3 overwrite those inputs' buffers: fine for timing */
        sq_view xs2[3] = {V(b->A), V(b->A), V(b->A)};
        return be->fuse_bwd(be, j->s, j->nfuse, xs2, bias, V(b->B), dxs, dw, st);
    }
    case K_ADD: return be->add(be, j->n, V(b->A), V(b->B), V(b->C), st);
    case K_MSE:
        if (j->ps == P_FWD) return be->mse_fwd(be, j->n, V(b->A), V(b->B), db, st);
        return be->mse_bwd(be, j->n, V(b->A), V(b->B), 1.0f, V(b->C), st);
    case K_ADAM: {
        sq_adam a = {2e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1};
        return be->adam(be, &a, j->n, V(b->A), V(b->B), V(b->C), V(b->D), st);
    }
    }
    return SQ_OK;
}

/* Best (minimum) seconds of up to `repeat` calls after one warm-up call (which creates the cached
 * primitives and workspaces); calls slower than 1 s are timed once. */
static sq_code run_synced(bench *b, const job *j, sq_status *st) {
    SQ_TRY(run_job(b, j, st));
    return b->be->sync(b->be, st);
}

static sq_code time_job(bench *b, const job *j, double *sec, sq_status *st) {
    const double w0 = sq_now();
    SQ_TRY(run_synced(b, j, st));
    const double warm = sq_now() - w0;
    if (warm > 1.0) {
        /* a call of over a second (oneDNN's grouped convolution on a busy machine): the first
         * call is the measurement; primitive creation is milliseconds of it */
        *sec = warm;
        return SQ_OK;
    }
    double t[64] = {0};
    const int r = b->repeat < 64 ? b->repeat : 64;
    int done = 0;
    double spent = 0.0;
    /* at most `repeat` runs, and no more once 0.6 s were spent on this op (oneDNN's grouped
     * convolutions would otherwise dominate the bench's run time) */
    while (done < r && (done == 0 || spent < 0.6)) {
        const double t0 = sq_now();
        SQ_TRY(run_synced(b, j, st));
        t[done] = sq_now() - t0;
        spent += t[done++];
    }
    /* best of the runs: the machine is shared, and the minimum is the least disturbed run */
    double best = t[0];
    for (int i = 1; i < done; i++)
        if (t[i] < best) best = t[i];
    *sec = best;
    return SQ_OK;
}

static const char *pass_name(pass p) {
    switch (p) {
    case P_FWD: return "fwd";
    case P_BWD_DATA: return "bwd-data";
    case P_BWD_WEIGHTS: return "bwd-weights";
    default: return "bwd";
    }
}

static void shape_str(char *buf, size_t n, sq_shape5 s) {
    snprintf(buf, n, "%dx%dx%dx%dx%d", s.n, s.c, s.d, s.h, s.w);
}

static double conv_flops(const sq_conv3d *p, int depthwise) {
    const sq_shape5 o = sq_conv3d_out(p);
    const double cin = depthwise ? 1 : p->in.c;
    return 2.0 * (double)sq_shape5_numel(o) * cin * p->k[0] * p->k[1] * p->k[2];
}

/* Bytes a convolution pass moves at least: its input, output and weights once each. */
static double conv_bytes(const sq_conv3d *p, int depthwise) {
    const double w = (double)p->cout * (depthwise ? 1 : p->in.c) * p->k[0] * p->k[1] * p->k[2];
    return 4.0 * ((double)sq_shape5_numel(p->in) + (double)sq_shape5_numel(sq_conv3d_out(p)) + w);
}

/* A FLOP-bound row: against the sgemm peak (CPU), or the copy bandwidth (CUDA: `bytes`). */
static void row_flops(bench *b, const char *op, const char *shape, pass ps, double sec,
                      double flops, double bytes, const char *extra) {
    const double gf = flops / sec * 1e-9;
    if (b->peak_gflops > 0)
        out(b, "| %s | %s | %s | %.3f | %.1f GFLOP/s | %.1f %% of sgemm | %s |\n", op, shape,
            pass_name(ps), sec * 1e3, gf, 100.0 * gf / b->peak_gflops, extra ? extra : "");
    else
        out(b, "| %s | %s | %s | %.3f | %.1f GFLOP/s | %.0f %% of copy (%.0f GB/s) | %s |\n", op,
            shape, pass_name(ps), sec * 1e3, gf, 100.0 * bytes / sec * 1e-9 / b->copy_gbs,
            bytes / sec * 1e-9, extra ? extra : "");
}

/* A memory-bound row: bytes = each input read once + each output written once. */
static void row_bytes(bench *b, const char *op, const char *shape, pass ps, double sec,
                      double bytes) {
    const double gbs = bytes / sec * 1e-9;
    out(b, "| %s | %s | %s | %.3f | %.1f GB/s | %.0f %% of copy | |\n", op, shape, pass_name(ps),
        sec * 1e3, gbs, 100.0 * gbs / b->copy_gbs);
}

static sq_conv3d conv_of(int n, int c, int d, int h, int w, int cout, int k, int sd, int sh, int sw,
                         int kd) {
    sq_conv3d p = {.in = {n, c, d, h, w}, .cout = cout};
    p.k[0] = kd;
    p.k[1] = p.k[2] = k;
    p.stride[0] = sd;
    p.stride[1] = sh;
    p.stride[2] = sw;
    for (int a = 0; a < 3; a++)
        p.pad[a] = p.k[a] / 2;
    return p;
}

double sq_bench_sgemm_gflops(int threads) {
    openblas_set_num_threads(threads);
    const int n = 1536;
    float *a = sq_alloc((size_t)n * n * 4), *bm = sq_alloc((size_t)n * n * 4),
          *c = sq_alloc((size_t)n * n * 4);
    if (!a || !bm || !c) return 0;
    for (size_t i = 0; i < (size_t)n * n; i++)
        a[i] = bm[i] = (float)(i % 13) * 0.1f;
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        const double t0 = sq_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, bm, n, 0.0f, c,
                    n);
        const double t = sq_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    sq_free(a);
    sq_free(bm);
    sq_free(c);
    return 2.0 * n * n * (double)n / best * 1e-9;
}

static double measure_copy(int threads, float *src, float *dst, size_t n) {
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        const double t0 = sq_now();
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int part = 0; part < threads * 8; part++) {
            const size_t lo = n * part / (threads * 8), hi = n * (part + 1) / (threads * 8);
            memcpy(dst + lo, src + lo, (hi - lo) * sizeof(float));
        }
        const double t = sq_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    return 2.0 * n * sizeof(float) / best * 1e-9;
}

static sq_code bench_dense(bench *b, sq_status *st) {
    struct {
        const char *name;
        sq_conv3d p;
        int bias;
    } cs[] = {
        {"stem k3 s(1,2,2)", conv_of(2, 2, 28, 160, 160, 32, 3, 1, 2, 2, 3), 0},
        {"expand 1x1x1 (stage 2)", conv_of(2, 24, 28, 40, 40, 48, 1, 1, 1, 1, 1), 0},
        {"project 1x1x1 (stage 2)", conv_of(2, 48, 28, 40, 40, 24, 1, 1, 1, 1, 1), 0},
        {"expand 1x1x1 (stage 5)", conv_of(2, 112, 7, 10, 10, 224, 1, 1, 1, 1, 1), 0},
        {"BiFPN lateral 1x1x1 (P3)", conv_of(2, 40, 14, 20, 20, 64, 1, 1, 1, 1, 1), 0},
        {"BiFPN pointwise 1x1x1 (P3)", conv_of(2, 64, 14, 20, 20, 64, 1, 1, 1, 1, 1), 1},
    };
    out(b, "\n### Dense 3D convolution (%s, cached plans, plain NCDHW)\n\n",
        b->cuda ? "cuDNN / cuBLAS" : "oneDNN");
    out(b, "| op | input -> cout | pass | ms | rate | vs limit | note "
           "|\n|---|---|---|---:|---:|---:|---|\n");
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        char sh[96], s5[64];
        shape_str(s5, sizeof s5, cs[i].p.in);
        snprintf(sh, sizeof sh, "%s -> %d", s5, cs[i].p.cout);
        for (int ps = P_FWD; ps <= P_BWD_WEIGHTS; ps++) {
            job j = {.k = K_CONV, .ps = ps, .conv = cs[i].p, .bias = cs[i].bias};
            double sec;
            SQ_TRY(time_job(b, &j, &sec, st));
            row_flops(b, cs[i].name, sh, ps, sec, conv_flops(&cs[i].p, 0), conv_bytes(&cs[i].p, 0),
                      cs[i].bias ? "with bias" : NULL);
        }
    }
    return SQ_OK;
}

static sq_code bench_depthwise(bench *b, sq_status *st) {
    struct {
        const char *name;
        sq_conv3d p;
    } cs[] = {
        {"stage 1 k3", conv_of(2, 32, 28, 80, 80, 32, 3, 1, 1, 1, 3)},
        {"stage 2.1 k3 s(1,2,2)", conv_of(2, 32, 28, 80, 80, 32, 3, 1, 2, 2, 3)},
        {"stage 2.2 k3", conv_of(2, 48, 28, 40, 40, 48, 3, 1, 1, 1, 3)},
        {"stage 3.1 k5 s2", conv_of(2, 48, 28, 40, 40, 48, 5, 2, 2, 2, 5)},
        {"stage 3.2 k5", conv_of(2, 80, 14, 20, 20, 80, 5, 1, 1, 1, 5)},
        {"stage 4.1 k3 s2", conv_of(2, 80, 14, 20, 20, 80, 3, 2, 2, 2, 3)},
        {"stage 4.x k3", conv_of(2, 160, 7, 10, 10, 160, 3, 1, 1, 1, 3)},
        {"stage 5.x k5", conv_of(2, 224, 7, 10, 10, 224, 5, 1, 1, 1, 5)},
        {"stage 6.1 k5 s2", conv_of(2, 224, 7, 10, 10, 224, 5, 2, 2, 2, 5)},
        {"stage 6.x k5", conv_of(2, 384, 4, 5, 5, 384, 5, 1, 1, 1, 5)},
        {"stage 7 k3", conv_of(2, 384, 4, 5, 5, 384, 3, 1, 1, 1, 3)},
        {"BiFPN P3 k3", conv_of(2, 64, 14, 20, 20, 64, 3, 1, 1, 1, 3)},
        {"BiFPN P4 k3", conv_of(2, 64, 7, 10, 10, 64, 3, 1, 1, 1, 3)},
    };
    const int ncase = (int)(sizeof cs / sizeof *cs);
    /* oneDNN's grouped convolution gets a wall-time budget so that the bench stays under two
     * minutes even when its threads collapse on a busy machine (then later shapes are skipped) */
    const double dnnl_budget = 40.0;
    double dnnl_spent = 0.0, flops_tot = 0;
    double tot_ours[3] = {0}, cmp_ours[3] = {0}, cmp_dnnl[3] = {0}, logsum[3] = {0};
    int ncmp[3] = {0};
    out(b, "\n### Depthwise 3D convolution: ours (%s) vs %s convolution\n\n", b->be->description,
        ref_conv_name(b));
    out(b, "| op | input | pass | ms | rate | vs limit | %s |\n|---|---|---|---:|---:|---:|---|\n",
        ref_conv_name(b));
    for (int i = 0; i < ncase; i++) {
        char sh[64], note[128];
        shape_str(sh, sizeof sh, cs[i].p.in);
        const double fl = conv_flops(&cs[i].p, 1);
        flops_tot += fl;
        for (int ps = P_FWD; ps <= P_BWD_WEIGHTS; ps++) {
            job j = {.k = K_DW, .ps = ps, .conv = cs[i].p};
            double t_ours, t_dnnl;
            SQ_TRY(time_job(b, &j, &t_ours, st));
            tot_ours[ps] += t_ours;
            if (dnnl_spent > dnnl_budget) {
                snprintf(note, sizeof note, "skipped (%s time budget of %.0f s spent)",
                         ref_conv_name(b), dnnl_budget);
            } else {
                j.k = K_DNNL_DW;
                const double t0 = sq_now();
                SQ_TRY(time_job(b, &j, &t_dnnl, st));
                dnnl_spent += sq_now() - t0;
                cmp_ours[ps] += t_ours;
                cmp_dnnl[ps] += t_dnnl;
                logsum[ps] += log(t_dnnl / t_ours);
                ncmp[ps]++;
                snprintf(note, sizeof note, "%.3f ms, %.1f GFLOP/s: ours **%.1fx**", t_dnnl * 1e3,
                         fl / t_dnnl * 1e-9, t_dnnl / t_ours);
            }
            row_flops(b, cs[i].name, sh, ps, t_ours, fl, conv_bytes(&cs[i].p, 1), note);
        }
    }
    out(b, "\n**Depthwise summary** (all %d shapes, %.2f GFLOP per pass):\n\n", ncase,
        flops_tot * 1e-9);
    out(b,
        "| pass | ours total ms | ours GFLOP/s | shapes compared | library ms on those | ours ms "
        "on those | speed-up (total time) | speed-up (geo. mean) "
        "|\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int ps = P_FWD; ps <= P_BWD_WEIGHTS; ps++)
        out(b, "| %s | %.1f | %.1f | %d | %.1f | %.1f | **%.1fx** | %.1fx |\n", pass_name(ps),
            tot_ours[ps] * 1e3, flops_tot / tot_ours[ps] * 1e-9, ncmp[ps], cmp_dnnl[ps] * 1e3,
            cmp_ours[ps] * 1e3, ncmp[ps] ? cmp_dnnl[ps] / cmp_ours[ps] : 0.0,
            ncmp[ps] ? exp(logsum[ps] / ncmp[ps]) : 0.0);
    return SQ_OK;
}

static sq_code bench_memory_ops(bench *b, sq_status *st) {
    const sq_shape5 T = {2, 32, 28, 80, 80}; /* the largest activation (stage 1) */
    const sq_shape5 P3 = {2, 64, 14, 20, 20};
    const double nT = (double)sq_shape5_numel(T), nP = (double)sq_shape5_numel(P3);
    char sT[64], sP[64];
    shape_str(sT, sizeof sT, T);
    shape_str(sP, sizeof sP, P3);
    out(b, "\n### Memory-bound ops (bytes = each tensor read once + written once)\n\n");
    out(b, "| op | shape | pass | ms | rate | vs limit | |\n|---|---|---|---:|---:|---:|---|\n");
    struct {
        const char *name;
        job j;
        const char *shape;
        double bytes_fwd, bytes_bwd;
    } rows[] = {
        {"BN train + swish (fused)",
         {.k = K_BN, .bn = {T, 1e-3f, 0.1f, 1, SQ_ACT_SWISH}},
         sT,
         8 * nT,
         12 * nT},
        {"BN train + add (fused)",
         {.k = K_BN, .bn = {T, 1e-3f, 0.1f, 1, SQ_ACT_NONE}, .residual = 1},
         sT,
         12 * nT,
         12 * nT},
        {"BN inference + swish",
         {.k = K_BN, .bn = {T, 1e-3f, 0.1f, 0, SQ_ACT_SWISH}},
         sT,
         8 * nT,
         12 * nT},
        {"swish", {.k = K_ACT, .act = SQ_ACT_SWISH, .n = (int64_t)nT}, sT, 8 * nT, 12 * nT},
        {"sigmoid", {.k = K_ACT, .act = SQ_ACT_SIGMOID, .n = (int64_t)nT}, sT, 8 * nT, 12 * nT},
        {"ReLU", {.k = K_ACT, .act = SQ_ACT_RELU, .n = (int64_t)nT}, sT, 8 * nT, 12 * nT},
        {"PReLU (head)", {.k = K_PRELU, .s = P3}, sP, 8 * nP, 12 * nP},
        {"global avg pool (SE)", {.k = K_GAP, .s = T}, sT, 4 * nT, 4 * nT},
        {"channel scale (SE)", {.k = K_CHS, .s = T}, sT, 8 * nT, 12 * nT},
        {"add", {.k = K_ADD, .n = (int64_t)nT}, sT, 12 * nT, 0},
        {"fusion, 2 inputs (P3)", {.k = K_FUSE, .s = P3, .nfuse = 2}, sP, 12 * nP, 16 * nP},
        {"fusion, 3 inputs (P3)", {.k = K_FUSE, .s = P3, .nfuse = 3}, sP, 16 * nP, 24 * nP},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        for (int ps = P_FWD; ps <= P_BWD; ps += P_BWD) {
            if (ps == P_BWD && rows[i].bytes_bwd == 0) continue;
            job j = rows[i].j;
            j.ps = ps;
            double sec;
            SQ_TRY(time_job(b, &j, &sec, st));
            row_bytes(b, rows[i].name, rows[i].shape, ps, sec,
                      ps == P_FWD ? rows[i].bytes_fwd : rows[i].bytes_bwd);
        }
    /* pooling and resize: P3 -> P4 sizes */
    const sq_pool3d pool = {P3, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 1};
    const sq_shape5 po = sq_pool3d_out(&pool);
    const double npo = (double)sq_shape5_numel(po);
    for (int ps = P_FWD; ps <= P_BWD; ps += P_BWD) {
        job j = {.k = K_POOL, .ps = ps, .pool = pool};
        double sec;
        SQ_TRY(time_job(b, &j, &sec, st));
        row_bytes(b, "max pool k3 s2 ceil (P3->P4)", sP, ps, sec,
                  ps == P_FWD ? 4 * (nP + npo) : 4 * (2 * nP + npo));
    }
    const sq_resize3d rs = {{2, 64, 7, 10, 10}, {14, 20, 20}};
    for (int ps = P_FWD; ps <= P_BWD; ps += P_BWD) {
        job j = {.k = K_RESIZE, .ps = ps, .rs = rs};
        double sec;
        SQ_TRY(time_job(b, &j, &sec, st));
        row_bytes(b, "nearest resize (P4->P3)", "2x64x7x10x10 -> 14x20x20", ps, sec,
                  4 * (nP + nP / 8));
    }
    const int64_t nparam = 4 << 20;
    {
        job j = {.k = K_ADAM, .n = nparam};
        double sec;
        SQ_TRY(time_job(b, &j, &sec, st));
        row_bytes(b, "Adam (flat, 4 Mi params)", "4194304", P_FWD, sec, 4.0 * 7 * nparam);
        job m = {.k = K_MSE, .n = 2};
        SQ_TRY(time_job(b, &m, &sec, st));
        out(b, "| MSE loss | 2 | fwd | %.4f | - | - | |\n", sec * 1e3);
    }
    return SQ_OK;
}

static sq_code fill_random(bench *b, sq_buf *buf, size_t n, float lo, float hi, uint32_t seed,
                           sq_status *st) {
    float *p = sq_alloc(n * sizeof(float));
    if (!p) return sq_fail(st, SQ_ERR_NOMEM, "bench ops: out of memory");
    sq_rng r;
    sq_rng_init(&r, 7, seed, 0);
    for (size_t i = 0; i < n; i++)
        p[i] = sq_rng_uniform_range(&r, lo, hi);
    sq_code rc = b->be->upload(b->be, buf, 0, p, n * sizeof(float), st);
    if (rc == SQ_OK) rc = b->be->sync(b->be, st);
    sq_free(p);
    return rc;
}

/* The limits of this run: sgemm peak and parallel copy on the CPU; copy bandwidth on CUDA. */
static sq_code measure_limits(bench *b, int threads, sq_status *st) {
#ifdef SEGQA_HAVE_CUDA
    if (b->cuda) {
        b->peak_gflops = 0;
        return sq_cuda_copy_bandwidth(b->be, b->big * sizeof(float), &b->copy_gbs, st);
    }
#endif
    (void)st;
    b->peak_gflops = sq_bench_sgemm_gflops(threads);
    b->copy_gbs =
        measure_copy(threads, b->be->buf_host(b->be, b->A), b->be->buf_host(b->be, b->B), b->big);
    return SQ_OK;
}

static sq_code bench_run(bench *b, int threads, sq_status *st) {
    sq_backend *be = b->be;
    b->big = (size_t)2 * 32 * 28 * 80 * 80 + 4096;
    sq_buf **bufs[5] = {&b->A, &b->B, &b->C, &b->D, &b->E};
    for (int i = 0; i < 5; i++) {
        SQ_TRY(be->buf_alloc(be, b->big * sizeof(float), bufs[i], st));
        SQ_TRY(fill_random(b, *bufs[i], b->big, -1.0f, 1.0f, (uint32_t)i, st));
    }
    SQ_TRY(be->buf_alloc(be, (size_t)(4 << 20) * sizeof(float), &b->W, st));
    SQ_TRY(fill_random(b, b->W, (size_t)4 << 20, 0.1f, 1.0f, 9, st));
    SQ_TRY(measure_limits(b, threads, st));
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    out(b, "## segqa bench ops — %s, best of %d runs (%s)\n\n", be->description, b->repeat, when);
    if (b->cuda)
        out(b, "Limit measured in this run: device-to-device copy (read + write) **%.1f GB/s**.\n",
            b->copy_gbs);
    else
        out(b,
            "Limits measured in this run: OpenBLAS `cblas_sgemm` 1536^3 on %d threads **%.1f "
            "GFLOP/s**; parallel copy (read + write) **%.1f GB/s**. Depthwise kernels: %s.\n",
            threads, b->peak_gflops, b->copy_gbs, sq_cpu_isa_name(sq_cpu_of(be)->isa));
    out(b, "Shapes: the network at the paper input, batch 2 of 2x28x160x160, anisotropic rule "
           "(depth 28 kept for the first two stride-2 steps).\n");
    if (!strcmp(b->only, "all") || !strcmp(b->only, "depthwise")) SQ_TRY(bench_depthwise(b, st));
    if (!strcmp(b->only, "all") || !strcmp(b->only, "dense")) SQ_TRY(bench_dense(b, st));
    if (!strcmp(b->only, "all") || !strcmp(b->only, "memory")) SQ_TRY(bench_memory_ops(b, st));
    return SQ_OK;
}

int sq_bench_ops(int argc, char **argv) {
    long long threads = 2, repeat = 5;
    char outpath[4096] = "", only[32] = "all", device[8] = "cpu";
    const sq_option opts[] = {
        {"threads", 't', SQ_OPT_INT, &threads, 0, "N", "OpenMP / OpenBLAS threads", NULL, 1, 256},
        {"repeat", 'r', SQ_OPT_INT, &repeat, 0, "N", "timed runs per op (the best is reported)",
         NULL, 1, 64},
        {"out", 'o', SQ_OPT_STRING, outpath, sizeof outpath, "FILE.md",
         "also write the table as Markdown to this file", NULL, 0, 0},
        {"only", 0, SQ_OPT_CHOICE, only, sizeof only, "PART", "run only one part of the table",
         "all|depthwise|dense|memory", 0, 0},
        {"device", 0, SQ_OPT_CHOICE, device, sizeof device, "DEV", SQ_CLI_DEVICE_HELP,
         "cpu|cuda|auto", 0, 0},
    };
    const sq_cli_spec spec = {
        .command = "bench ops",
        .usage = "segqa bench ops [options]",
        .description =
            "Time every op of the network on a backend at the paper shapes (forward and\n"
            "backward), against limits measured in the same run (CPU: sgemm peak and copy\n"
            "bandwidth; CUDA: copy bandwidth), and the depthwise convolutions side by side with\n"
            "the library's grouped convolution (oneDNN on the CPU, cuDNN on CUDA).",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 0,
        .max_pos = 0,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("bench ops", &st);
    if (a.help) return 0;
    bench b = {.repeat = (int)repeat, .only = only};
    char tmp[SQ_PATH_MAX + 32] = "";
    if (*outpath) { /* written to a temp name and renamed when complete */
        if (sq_tmp_path(outpath, tmp, sizeof tmp, &st) != SQ_OK)
            return sq_cli_report("bench ops", &st);
        b.md = fopen(tmp, "w");
        if (!b.md) {
            sq_fail(&st, SQ_ERR_IO, "%s: cannot open for writing (%s)", outpath, strerror(errno));
            return sq_cli_report("bench ops", &st);
        }
    }
    const double t0 = sq_now();
    char chosen[512];
    b.be = sq_cli_backend(device, (int)threads, 0, chosen, sizeof chosen, &st);
    if (b.be) b.cuda = b.be->device_memory;
    sq_code rc = b.be ? bench_run(&b, (int)threads, &st) : st.code;
    if (rc == SQ_OK) out(&b, "\nTotal bench time %.1f s.\n", sq_now() - t0);
    if (b.be) {
        sq_buf *bufs[6] = {b.A, b.B, b.C, b.D, b.E, b.W};
        for (int i = 0; i < 6; i++)
            b.be->buf_free(b.be, bufs[i]);
        b.be->destroy(b.be);
    }
    if (b.md && fclose(b.md) != 0 && rc == SQ_OK)
        rc = sq_fail(&st, SQ_ERR_IO, "%s: write failed", tmp);
    if (b.md && rc == SQ_OK) rc = sq_commit_file(tmp, outpath, &st);
    if (b.md && rc != SQ_OK) unlink(tmp);
    if (rc != SQ_OK) return sq_cli_report("bench ops", &st);
    return 0;
}
