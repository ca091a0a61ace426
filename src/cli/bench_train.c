/* bench_train.c — `segqa bench train` and `segqa bench infer`: the whole QA network on a backend
 * (--device cpu|cuda|auto) against the PyTorch reference of the same configuration on the same
 * device (tests/parity/segqa_ref.py, run by --python with the same thread count, in the same run on
 * the same machine; on CUDA both sides use the same math mode, strict FP32 unless --tf32).
 *
 * train: batch 2 (forward + MSE + backward + Adam), training mode. infer: batch 1, eval mode,
 * forward only, no gradient arena. Both at the paper shape by default (2 x 28 x 160 x 160 at
 * 3.9 x 0.59 x 0.59 mm, anisotropic depth rule). Prints median and min/max ms over --steps steps
 * after --warmup steps, GFLOP/s (training counts 3x the forward FLOPs: forward + data and weight
 * gradients) and its share of the OpenBLAS sgemm peak measured at the end of the same run (CPU),
 * the ratio of our median to PyTorch's, and the peak resident memory of both processes.
 * Several PyTorch builds can be run side by side: --python (Debian's 1.13 by default) and every
 * interpreter of --torch-python (comma-separated; default $SEGQA_TORCH_PYTHON), e.g. a current
 * PyTorch 2.x in a virtual environment of its own; the targets hold against the fastest of them.
 * --out FILE.md writes the table as Markdown.
 */
#include "bench.h"
#include "cli.h"

#include "core/fileio.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "model/model.h"
#include "nn/registry.h"
#include "optim/optim.h"
#ifdef SEGQA_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct bopts {
    long long steps, warmup, threads, batch;
    char shape[64], spacing[64], rule[16], out[1024], python[1024], ref[1024], torch_python[2048];
    int no_torch, profile, tf32, per_case, loader;
    long long workers;
    char site[1024];
    double target_ms;
    char device[8];
} bopts;

/* What our side measured besides the step times. */
typedef struct ours_info {
    size_t arena;       /* activation arena bytes */
    size_t device_peak; /* bytes the backend took from the device at most (CUDA), else 0 */
    char backend[512];  /* the backend's description */
} ours_info;

/* Peak device bytes of a CUDA backend; 0 on the CPU. */
static size_t device_peak_bytes(sq_backend *be) {
#ifdef SEGQA_HAVE_CUDA
    if (be->device_memory) return sq_cuda_peak_bytes(be);
#endif
    (void)be;
    return 0;
}

static double median_of(const double *v, int n) {
    return sq_median(v, n);
}
static double min_of(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}
static double max_of(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

static long peak_rss_kib(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return ru.ru_maxrss;
}

static sq_code parse_config(const bopts *o, sq_model_config *c, sq_status *st) {
    *c = sq_model_config_default();
    int64_t shp[SQ_MAX_DIMS];
    int nd;
    SQ_TRY(sq_parse_shape(o->shape, shp, &nd, st));
    if (nd != 3) return sq_fail(st, SQ_ERR_USAGE, "--shape: expected DxHxW, got '%s'", o->shape);
    c->depth = (int)shp[0], c->height = (int)shp[1], c->width = (int)shp[2];
    if (sscanf(o->spacing, "%lfx%lfx%lf", &c->spacing[0], &c->spacing[1], &c->spacing[2]) != 3)
        return sq_fail(st, SQ_ERR_USAGE, "--spacing: expected DxHxW in mm, got '%s'", o->spacing);
    SQ_TRY(sq_depth_rule_parse(o->rule, &c->depth_rule, st));
    return sq_model_config_check(c, st);
}

/* Our side: per-step milliseconds into ms[0..steps). */
static sq_code run_ours(const bopts *o, const sq_model_config *c, int train, double *ms,
                        ours_info *info, sq_status *st) {
    sq_backend_opts bo = sq_backend_opts_default();
    bo.threads = (int)o->threads;
    bo.allow_tf32 = o->tf32;
    sq_backend *be = sq_backend_create(o->device, &bo, info->backend, sizeof info->backend, st);
    if (!be) return st->code;
    sq_model *m = NULL;
    sq_adam_opt *opt = NULL;
    float *x = NULL, *t = NULL;
    int n = train ? (int)o->batch : 1;
    sq_code rc = sq_model_create(c, be, &m, st);
    if (rc == SQ_OK) rc = sq_model_plan(m, n, train, st);
    size_t nx = (size_t)n * c->in_channels * c->depth * c->height * c->width;
    if (rc == SQ_OK) {
        x = malloc(nx * sizeof(float));
        t = malloc((size_t)n * sizeof(float));
        if (!x || !t) rc = sq_fail(st, SQ_ERR_NOMEM, "bench: out of memory");
    }
    if (rc == SQ_OK) {
        sq_rng r;
        sq_rng_init(&r, 1, 0, 0);
        for (size_t i = 0; i < nx; i++)
            x[i] = sq_rng_normal(&r);
        for (int i = 0; i < n; i++)
            t[i] = sq_rng_uniform(&r);
        sq_model_set_training(m, train);
        info->arena = sq_model_arena_bytes(m);
    }
    if (rc == SQ_OK && train) {
        sq_adam_config ac = sq_adam_config_default();
        rc = sq_adam_create(be, sq_model_params_floats(m), &ac, &opt, st);
    }
    for (long long i = 0; rc == SQ_OK && i < o->warmup + o->steps; i++) {
        if (o->profile && i == o->warmup) sq_model_set_profile(m, 1);
        double t0 = sq_now();
        rc = sq_model_forward(m, x, NULL, st);
        if (train) {
            if (rc == SQ_OK) rc = sq_model_loss(m, t, NULL, st);
            if (rc == SQ_OK) rc = sq_model_backward(m, st);
            if (rc == SQ_OK)
                rc = sq_adam_step(opt, sq_model_params_buf(m), sq_model_grads_buf(m), 0.002f, st);
        }
        if (rc == SQ_OK) rc = be->sync(be, st);
        if (i >= o->warmup) ms[i - o->warmup] = (sq_now() - t0) * 1e3;
    }
    info->device_peak = device_peak_bytes(be);
    if (rc == SQ_OK && o->profile) {
        printf("per-op time over %lld steps (with a sync after every op):\n", o->steps);
        sq_model_profile_print(m, stdout);
    }
    free(x);
    free(t);
    sq_adam_destroy(opt);
    sq_model_destroy(m);
    be->destroy(be);
    return rc;
}

/* The reference's script: --ref, else $SEGQA_SOURCE_DIR, else the source tree this was built from.
 */
static void ref_script(const bopts *o, char *buf, size_t n) {
    if (o->ref[0]) {
        snprintf(buf, n, "%s", o->ref);
        return;
    }
    const char *src = getenv("SEGQA_SOURCE_DIR");
    char tree[1024] = "";
#ifdef SEGQA_DEFAULT_DATA_DIR
    snprintf(tree, sizeof tree, "%s", SEGQA_DEFAULT_DATA_DIR);
    char *cut = strstr(tree, "/datasets/");
    if (cut) *cut = 0;
#endif
    snprintf(buf, n, "%s/tests/parity/segqa_ref.py", src ? src : tree[0] ? tree : ".");
}

typedef struct torch_info {
    size_t device_peak; /* torch.cuda.max_memory_allocated, 0 on the CPU */
    long rss_kib;       /* the reference process's own peak RSS (0: it did not say) */
    char version[64];
} torch_info;

static sq_code run_torch(const bopts *o, const char *python, const sq_model_config *c, int train,
                         double *ms, int *nms, torch_info *ti, sq_status *st) {
    char dir[] = "/tmp/segqa_bench_XXXXXX";
    if (!mkdtemp(dir)) return sq_fail(st, SQ_ERR_IO, "bench: cannot create a temporary folder");
    char cfg[256], script[1200], cmd[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    cJSON *j = sq_model_config_to_json(c);
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    FILE *f = fopen(cfg, "w");
    if (!f || !txt) {
        free(txt);
        if (f) fclose(f);
        rmdir(dir);
        return sq_fail(st, SQ_ERR_IO, "%s: cannot write", cfg);
    }
    fputs(txt, f);
    fclose(f);
    free(txt);
    ref_script(o, script, sizeof script);
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%lld %s %s bench %s --threads %lld --batch %lld --warmup %lld "
             "--train-steps %lld --infer-steps %lld --device %s --tf32 %d",
             o->threads, python, script, cfg, o->threads, o->batch, o->warmup, train ? o->steps : 0,
             train ? 0 : o->steps, strcmp(o->device, "cpu") ? "cuda" : "cpu", o->tf32);
    FILE *p = popen(cmd, "r");
    char *buf = calloc(1 << 20, 1);
    size_t got = 0, r;
    while (p && buf && (r = fread(buf + got, 1, (1 << 20) - 1 - got, p)) > 0)
        got += r;
    int prc = p ? pclose(p) : -1;
    unlink(cfg);
    rmdir(dir);
    if (!buf) return sq_fail(st, SQ_ERR_NOMEM, "bench: out of memory");
    cJSON *res = prc == 0 ? cJSON_Parse(buf) : NULL;
    free(buf);
    if (!res)
        return sq_fail(st, SQ_ERR_UNSUPPORTED, "PyTorch reference failed (%s); --no-torch skips it",
                       cmd);
    cJSON *pk = cJSON_GetObjectItem(res, train ? "train_peak_bytes" : "infer_peak_bytes");
    ti->device_peak = cJSON_IsNumber(pk) ? (size_t)pk->valuedouble : 0;
    cJSON *rss = cJSON_GetObjectItem(res, "peak_rss_kib");
    ti->rss_kib = cJSON_IsNumber(rss) ? (long)rss->valuedouble : 0;
    cJSON *ver = cJSON_GetObjectItem(res, "torch");
    snprintf(ti->version, sizeof ti->version, "%s", cJSON_IsString(ver) ? ver->valuestring : "?");
    cJSON *arr = cJSON_GetObjectItem(res, train ? "train_ms" : "infer_ms");
    *nms = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (*nms < 4096) ms[(*nms)++] = e->valuedouble;
    }
    cJSON_Delete(res);
    return *nms > 0 ? SQ_OK : sq_fail(st, SQ_ERR_FORMAT, "PyTorch reference returned no times");
}

static void emit(FILE *md, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(FILE *md, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (md) {
        va_start(ap, fmt);
        vfprintf(md, fmt, ap);
        va_end(ap);
    }
}

#define MAX_PEERS 4

/* One PyTorch build's measurements. */
typedef struct peer_run {
    char python[1024];
    int n;
    double ms[4096];
    long rss; /* KiB */
    torch_info ti;
} peer_run;

/* One benchmark's measurements, all sides. */
typedef struct bench_run {
    int train, n, npeers, fastest; /* fastest: the peer with the lowest median */
    int64_t flops;
    double *ours;
    double load0[3], load1[3];
    double sgemm_gflops; /* CPU: measured after both sides, 0 on CUDA */
    long rss_ours;
    ours_info oi;
    peer_run peers[MAX_PEERS];
} bench_run;

/* The targets of issue 10 on an H100/H200 (ms per step at the paper shape). */
static double cuda_target_ms(int train) {
    return train ? 10.0 : 3.0;
}

/* Issue 17's CPU targets: ratio of our median step to the fastest PyTorch's, our share of the
 * sgemm peak (training), our peak RSS against PyTorch's (training). */
static double cpu_target_ratio(int train) {
    return train ? 0.10 : 0.08;
}
#define CPU_TARGET_PEAK_SHARE 0.25
#define CPU_TARGET_RSS_RATIO  0.5

static void emit_header(FILE *md, const bopts *o, const sq_model_config *c, const char *cmdname,
                        const bench_run *r) {
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    emit(md, "\n### segqa %s — %s\n\n", cmdname, when);
    emit(md,
         "Input %lldx%dx%dx%dx%d at %gx%gx%g mm, %s depth rule; %.3f GFLOP/sample forward "
         "(%s); backend %s; %lld threads; %s math; %lld warm-up + %lld timed steps.\n\n",
         r->train ? o->batch : 1, c->in_channels, c->depth, c->height, c->width, c->spacing[0],
         c->spacing[1], c->spacing[2], sq_depth_rule_name(c->depth_rule), r->flops / 1e9,
         r->train ? "a training step counts 3x forward" : "forward only", r->oi.backend, o->threads,
         o->tf32 ? "TF32" : "strict FP32", o->warmup, o->steps);
}

static void emit_rows(FILE *md, int cuda, double work, const bench_run *r) {
    const double med = median_of(r->ours, r->n);
    emit(md, "| impl | median ms | min ms | max ms | GFLOP/s | peak RSS MiB | peak device MiB | "
             "segqa / this (median) |\n");
    emit(md, "|---|---:|---:|---:|---:|---:|---:|---:|\n");
    emit(md, "| segqa (C, %s) | %.2f | %.2f | %.2f | %.1f | %.0f | %.0f | 1 |\n",
         cuda ? "cuDNN/cuBLAS + own kernels" : "oneDNN sgemm + own kernels", med,
         min_of(r->ours, r->n), max_of(r->ours, r->n), work / (med * 1e6), r->rss_ours / 1024.0,
         r->oi.device_peak / 1048576.0);
    for (int i = 0; i < r->npeers; i++) {
        const peer_run *p = &r->peers[i];
        const double tmed = median_of(p->ms, p->n);
        emit(md,
             "| PyTorch %s reference (`%s`) | %.2f | %.2f | %.2f | %.1f | %.0f | %.0f | %.3f |\n",
             p->ti.version, p->python, tmed, min_of(p->ms, p->n), max_of(p->ms, p->n),
             work / (tmed * 1e6), p->rss / 1024.0, p->ti.device_peak / 1048576.0, med / tmed);
    }
}

/* The ratios against the targets: time vs the fastest peer, share of the sgemm peak, memory. */
static void emit_targets(FILE *md, int cuda, double work, const bench_run *r, long long threads) {
    const double med = median_of(r->ours, r->n);
    if (r->npeers > 0) {
        const peer_run *f = &r->peers[r->fastest];
        const double tmed = median_of(f->ms, f->n);
        const double target = cuda ? 0.5 : cpu_target_ratio(r->train);
        emit(md,
             "\n**ratio segqa / fastest PyTorch (%s, median): %.3f** (target <= %.2f: %s); ratio "
             "of the minima: %.3f\n",
             f->ti.version, med / tmed, target, med / tmed <= target ? "met" : "NOT met",
             min_of(r->ours, r->n) / min_of(f->ms, f->n));
        if (cuda && f->ti.device_peak)
            emit(md, "\npeak device memory segqa / PyTorch: %.3f (target <= 1)\n",
                 (double)r->oi.device_peak / (double)f->ti.device_peak);
        for (int i = 0; !cuda && r->train && i < r->npeers; i++) {
            const peer_run *p = &r->peers[i];
            const double q = p->rss > 0 ? (double)r->rss_ours / (double)p->rss : 0;
            if (q > 0)
                emit(md, "\npeak RSS segqa / PyTorch %s: **%.2f** (target <= %.1f: %s)\n",
                     p->ti.version, q, CPU_TARGET_RSS_RATIO,
                     q <= CPU_TARGET_RSS_RATIO ? "met" : "NOT met");
        }
    }
    if (!cuda && r->sgemm_gflops > 0) {
        const double share = work / (med * 1e6) / r->sgemm_gflops;
        emit(md,
             "\nthroughput %.1f GFLOP/s = **%.1f %%** of OpenBLAS sgemm 1536^3 measured in this "
             "run (%.1f GFLOP/s, %lld threads)%s\n",
             work / (med * 1e6), 100.0 * share, r->sgemm_gflops, threads,
             r->train ? (share >= CPU_TARGET_PEAK_SHARE ? " (target >= 25 %: met)"
                                                        : " (target >= 25 %: NOT met)")
                      : "");
    }
    if (cuda)
        emit(md, "\nmedian %.2f ms against the target of %.0f ms (H100/H200): %s; %.2f TFLOP/s\n",
             med, cuda_target_ms(r->train), med <= cuda_target_ms(r->train) ? "met" : "NOT met",
             work / (med * 1e9));
}

static void emit_table(FILE *md, const bopts *o, const sq_model_config *c, const char *cmdname,
                       bench_run *r) {
    const int cuda = r->oi.device_peak > 0 || strcmp(o->device, "cpu") != 0;
    const double work =
        (double)r->flops * (double)(r->train ? o->batch : 1) * (r->train ? 3.0 : 1.0);
    emit_header(md, o, c, cmdname, r);
    emit_rows(md, cuda, work, r);
    emit_targets(md, cuda, work, r, o->threads);
    emit(md,
         "\n1-minute load average %.2f before, %.2f after (%ld cores online): above the thread "
         "count, other processes shared the cores and the times are inflated.\n",
         r->load0[0], r->load1[0], sysconf(_SC_NPROCESSORS_ONLN));
    emit(md, "\nActivation arena: %.0f MiB%s.\n", r->oi.arena / 1048576.0,
         r->train ? " (values + gradients)" : "");
}

/* Print the table, and append it to --out through a temp name renamed onto it when complete, so
 * the file is never half written. */
static sq_code write_report(const bopts *o, const sq_model_config *c, const char *cmdname,
                            bench_run *r, sq_status *st) {
    if (!o->out[0]) {
        emit_table(NULL, o, c, cmdname, r);
        return SQ_OK;
    }
    char tmp[SQ_PATH_MAX + 32] = "", *old = NULL;
    size_t oldlen = 0;
    SQ_TRY(sq_tmp_path(o->out, tmp, sizeof tmp, st));
    if (sq_file_exists(o->out)) SQ_TRY(sq_read_file(o->out, &old, &oldlen, st));
    FILE *md = fopen(tmp, "w");
    if (md && oldlen) fwrite(old, 1, oldlen, md);
    free(old);
    if (!md)
        return sq_fail(st, SQ_ERR_IO, "%s: cannot open for writing (%s)", o->out, strerror(errno));
    emit_table(md, o, c, cmdname, r);
    sq_code rc = SQ_OK;
    if (ferror(md) | fclose(md)) rc = sq_fail(st, SQ_ERR_IO, "%s: write failed", tmp);
    if (rc == SQ_OK) rc = sq_commit_file(tmp, o->out, st);
    if (rc != SQ_OK) unlink(tmp);
    return rc;
}

/* --loader: the step fed by the real input pipeline (bench_train_loader.c). */
static int bench_loader(const bopts *o, const sq_model_config *c, int train) {
    if (!train) {
        sq_status st;
        sq_status_clear(&st);
        sq_fail(&st, SQ_ERR_USAGE, "--loader is an option of bench train");
        return sq_cli_report("bench infer", &st);
    }
    sq_bench_loader_opts lo = {
        c,         o->device, o->site, (int)o->threads, (int)o->batch, (int)o->workers,
        o->warmup, o->steps};
    return sq_bench_train_loader(&lo);
}

/* Every PyTorch peer in turn: --python, then each of --torch-python (or $SEGQA_TORCH_PYTHON). */
static sq_code run_peers(const bopts *o, const sq_model_config *c, bench_run *r, sq_status *st) {
    char list[3200];
    const char *env = getenv("SEGQA_TORCH_PYTHON");
    snprintf(list, sizeof list, "%s,%s", o->python,
             o->torch_python[0] ? o->torch_python
             : env              ? env
                                : "");
    for (char *save = NULL, *py = strtok_r(list, ",", &save); py; py = strtok_r(NULL, ",", &save)) {
        if (!*py) continue;
        if (r->npeers == MAX_PEERS)
            return sq_fail(st, SQ_ERR_USAGE, "--torch-python: at most %d peers", MAX_PEERS - 1);
        peer_run *p = &r->peers[r->npeers];
        snprintf(p->python, sizeof p->python, "%s", py);
        printf("PyTorch peer %d: %s\n", r->npeers + 1, py);
        fflush(stdout);
        SQ_TRY(run_torch(o, py, c, r->train, p->ms, &p->n, &p->ti, st));
        p->rss = p->ti.rss_kib > 0 ? p->ti.rss_kib : peak_rss_kib(RUSAGE_CHILDREN);
        if (r->npeers > 0 &&
            median_of(p->ms, p->n) < median_of(r->peers[r->fastest].ms, r->peers[r->fastest].n))
            r->fastest = r->npeers;
        r->npeers++;
    }
    return SQ_OK;
}

static int bench_main(int train, int argc, char **argv) {
    const char *cmdname = train ? "bench train" : "bench infer";
    bopts o;
    memset(&o, 0, sizeof o);
    o.steps = 10, o.warmup = 2, o.threads = 2, o.batch = train ? 2 : 1, o.workers = 4;
    snprintf(o.shape, sizeof o.shape, "28x160x160");
    snprintf(o.spacing, sizeof o.spacing, "3.9x0.59x0.59");
    snprintf(o.rule, sizeof o.rule, "anisotropic");
    snprintf(o.python, sizeof o.python, "/usr/bin/python3");
    snprintf(o.device, sizeof o.device, "cpu");
    const sq_option opts[] = {
        {"steps", 'n', SQ_OPT_INT, &o.steps, 0, "N", "timed steps after warm-up", NULL, 1, 4096},
        {"warmup", 0, SQ_OPT_INT, &o.warmup, 0, "N", "untimed warm-up steps", NULL, 0, 1000},
        {"threads", 't', SQ_OPT_INT, &o.threads, 0, "N", "threads for both segqa and PyTorch", NULL,
         1, 256},
        {"batch", 'b', SQ_OPT_INT, &o.batch, 0, "N", "batch size", NULL, 1, 64},
        {"shape", 0, SQ_OPT_STRING, o.shape, sizeof o.shape, "DxHxW", "input size", NULL, 0, 0},
        {"spacing", 0, SQ_OPT_STRING, o.spacing, sizeof o.spacing, "DxHxW",
         "voxel spacing in mm (drives the anisotropic stride plan)", NULL, 0, 0},
        {"depth-rule", 0, SQ_OPT_CHOICE, o.rule, sizeof o.rule, "RULE", "downsampling rule",
         "anisotropic|isotropic", 0, 0},
        {"no-torch", 0, SQ_OPT_FLAG, &o.no_torch, 0, NULL, "skip the PyTorch reference", NULL, 0,
         0},
        {"profile", 0, SQ_OPT_FLAG, &o.profile, 0, NULL, "print the time of every op kind", NULL, 0,
         0},
        {"python", 0, SQ_OPT_STRING, o.python, sizeof o.python, "PATH",
         "python with torch (Debian's)", NULL, 0, 0},
        {"torch-python", 0, SQ_OPT_STRING, o.torch_python, sizeof o.torch_python, "PATH,...",
         "more PyTorch peers run side by side, e.g. a PyTorch 2.x venv's python (default "
         "$SEGQA_TORCH_PYTHON)",
         NULL, 0, 0},
        {"ref", 0, SQ_OPT_STRING, o.ref, sizeof o.ref, "FILE",
         "segqa_ref.py (default: from the source tree)", NULL, 0, 0},
        {"out", 'o', SQ_OPT_STRING, o.out, sizeof o.out, "FILE.md", "also write the table here",
         NULL, 0, 0},
        {"device", 0, SQ_OPT_CHOICE, o.device, sizeof o.device, "DEV", SQ_CLI_DEVICE_HELP,
         "cpu|cuda|auto", 0, 0},
        {"tf32", 0, SQ_OPT_FLAG, &o.tf32, 0, NULL,
         "CUDA: allow TF32 tensor cores on both sides (default strict FP32)", NULL, 0, 0},
        {"per-case", 0, SQ_OPT_FLAG, &o.per_case, 0, NULL,
         "infer: one deployment case end to end (NIfTI read + preprocessing + forward)", NULL, 0,
         0},
        {"loader", 0, SQ_OPT_FLAG, &o.loader, 0, NULL,
         "train: fed by the real loader (HDF5 + augmentation workers) vs synthetic input", NULL, 0,
         0},
        {"site", 0, SQ_OPT_STRING, o.site, sizeof o.site, "FILE.h5",
         "--loader: site file at --shape (default: a synthetic site, made and removed)", NULL, 0,
         0},
        {"workers", 0, SQ_OPT_INT, &o.workers, 0, "N", "--loader: try 1..N augmentation workers",
         NULL, 1, 64},
        {"target-ms", 0, SQ_OPT_DOUBLE, &o.target_ms, 0, "MS",
         "--per-case target (default 50 at 40x56x40, 150 at 28x160x160)", NULL, 0, 1e9},
    };
    sq_cli_spec spec = {train ? "bench train" : "bench infer",
                        train ? "segqa bench train [options]" : "segqa bench infer [options]",
                        train ? "Training step (forward + backward + Adam) of the QA network vs "
                                "the PyTorch reference, same threads, same machine."
                              : "Inference (forward, eval mode) of the QA network vs the PyTorch "
                                "reference, same threads, same machine.",
                        opts,
                        (int)(sizeof opts / sizeof opts[0]),
                        0,
                        0};
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report(cmdname, &st);
    if (a.help) return 0;
    sq_model_config c;
    if (parse_config(&o, &c, &st) != SQ_OK) return sq_cli_report(cmdname, &st);
    if (o.per_case && train) {
        sq_fail(&st, SQ_ERR_USAGE, "--per-case is an option of bench infer");
        return sq_cli_report(cmdname, &st);
    }
    if (o.loader) return bench_loader(&o, &c, train);
    if (o.per_case)
        return sq_bench_infer_per_case(&c, o.device, (int)o.threads, o.warmup, o.steps,
                                       o.target_ms);
    int64_t flops = 0;
    if (sq_model_flops(&c, &flops, &st) != SQ_OK) return sq_cli_report(cmdname, &st);
    bench_run r;
    memset(&r, 0, sizeof r);
    r.train = train;
    r.flops = flops;
    r.n = (int)o.steps;
    r.ours = calloc((size_t)r.n, sizeof(double));
    if (!r.ours) return 1;
    printf("segqa %s: batch %dx%dx%dx%dx%d at %gx%gx%g mm (%s), device %s, %lld threads, %lld "
           "warm-up + %lld steps\n",
           cmdname, (int)o.batch, c.in_channels, c.depth, c.height, c.width, c.spacing[0],
           c.spacing[1], c.spacing[2], sq_depth_rule_name(c.depth_rule), o.device, o.threads,
           o.warmup, o.steps);
    fflush(stdout);
    if (getloadavg(r.load0, 3) < 0) r.load0[0] = -1;
    sq_code rc = run_ours(&o, &c, train, r.ours, &r.oi, &st);
    r.rss_ours = peak_rss_kib(RUSAGE_SELF);
    if (rc == SQ_OK && !o.no_torch) rc = run_peers(&o, &c, &r, &st);
    if (rc == SQ_OK && strcmp(o.device, "cpu") == 0)
        r.sgemm_gflops = sq_bench_sgemm_gflops((int)o.threads);
    if (getloadavg(r.load1, 3) < 0) r.load1[0] = -1;
    if (rc == SQ_OK) rc = write_report(&o, &c, cmdname, &r, &st);
    free(r.ours);
    return rc == SQ_OK ? 0 : sq_cli_report(cmdname, &st);
}

int sq_bench_train(int argc, char **argv) {
    return bench_main(1, argc, argv);
}
int sq_bench_infer(int argc, char **argv) {
    return bench_main(0, argc, argv);
}
