/* conv_cudnn.c — dense and grouped 3D convolutions of the CUDA backend through cuDNN's legacy
 * convolution API, with cuBLAS GEMMs for dense 1x1x1 convolutions (stride 1, pad 0) where they
 * measure faster.
 *
 * One plan per (input shape, cout, kernel, stride, pad, groups), cached in a list for the life of
 * the backend. A plan holds the cuDNN descriptors (5-D NCDHW float tensors, OIDHW filter,
 * cross-correlation, dilation 1, group count) and, per direction (forward, backward data,
 * backward filter), the algorithm chosen the first time that direction runs:
 *  - cuDNN Find (…AlgorithmEx) on real device memory: forward writes the caller's y and backward
 *    data the caller's dx (both are overwritten anyway); backward filter writes a scratch, never
 *    the caller's dw (which accumulates). The fastest result with status SUCCESS, an allowed math
 *    type (CUDNN_FMA_MATH for strict FP32; with TF32 allowed also CUDNN_DEFAULT_MATH and
 *    CUDNN_TENSOR_OP_MATH) and, in deterministic mode, CUDNN_DETERMINISTIC wins;
 *  - for 1x1x1 shapes, both the cuDNN algorithm and the cuBLAS GEMM (conv_gemm_math.h) are timed
 *    with CUDA events on the same outputs/scratch, and the faster one is kept.
 * Forward: y = conv(x, w) (beta 0) + bias (cudnnAddTensor). Backward: dx overwritten (beta 0), dw
 * and db accumulated (beta 1), as backend.h says. Workspaces come from sq_cuda_workspace.
 * Plan creation synchronises (Find, timing); steady-state calls only enqueue on c->stream.
 */
#include "cuda/conv_gemm_math.h"
#include "cuda/cuda_impl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define FIND_WS_CAP ((size_t)256 << 20) /* most workspace offered to Find */
#define MAX_PERF    64                  /* most Find results read */
#define TIME_REPS   5                   /* timed repetitions per path (after one warm-up) */

typedef struct dir_plan {
    int ready;            /* the choice below is made */
    int cudnn_ok;         /* a usable cuDNN algorithm was found */
    int n_found;          /* Find results returned */
    size_t find_cap;      /* workspace Find was offered */
    int algo;             /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t, -1 if none */
    cudnnMathType_t math; /* the math type the algorithm was found with */
    size_t ws;            /* its workspace bytes */
    int use_gemm;         /* cuBLAS is faster (1x1x1 only) */
    float ms_cudnn, ms_gemm;
} dir_plan;

typedef struct conv_plan {
    sq_conv_key key;
    uint64_t hash;
    sq_conv3d p;
    int groups;
    int gemm;  /* sq_conv_is_gemm */
    size_t nw; /* filter floats */
    cudnnTensorDescriptor_t xd, yd, bd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    dir_plan dir[SQ_CONV_DIRS];
    char desc[128]; /* sq_conv_desc, for messages */
    struct conv_plan *next;
} conv_plan;

struct sq_cuda_conv {
    conv_plan *head;
    int count;
};

static const char *const dir_op[SQ_CONV_DIRS] = {"conv3d_fwd", "conv3d_bwd_data",
                                                 "conv3d_bwd_filter"};
static const char *const dir_gemm_op[SQ_CONV_DIRS] = {"conv3d_fwd gemm", "conv3d_bwd_data gemm",
                                                      "conv3d_bwd_filter gemm"};
static const char *const dir_find_op[SQ_CONV_DIRS] = {"conv3d_fwd find", "conv3d_bwd_data find",
                                                      "conv3d_bwd_filter find"};

/* --- errors: the message names the op and the plan's shape (built only on failure) ----------- */
static sq_code dnn_ok(cudnnStatus_t s, const conv_plan *pl, const char *op, sq_status *st) {
    if (s == CUDNN_STATUS_SUCCESS) return SQ_OK;
    char what[192];
    snprintf(what, sizeof what, "%s %s", op, pl->desc);
    return sq_cudnn_ok(s, what, st);
}
static sq_code blas_ok(cublasStatus_t s, const conv_plan *pl, const char *op, sq_status *st) {
    if (s == CUBLAS_STATUS_SUCCESS) return SQ_OK;
    char what[192];
    snprintf(what, sizeof what, "%s %s", op, pl->desc);
    return sq_cublas_ok(s, what, st);
}
static sq_code rt_ok(cudaError_t e, const conv_plan *pl, const char *op, sq_status *st) {
    if (e == cudaSuccess) return SQ_OK;
    char what[192];
    snprintf(what, sizeof what, "%s %s", op, pl->desc);
    return sq_cuda_ok(e, what, st);
}

/* --- lifetime -----------------------------------------------------------------------------------
 */
sq_code sq_cuda_conv_init(sq_cuda *c, sq_status *st) {
    c->conv = calloc(1, sizeof *c->conv);
    if (!c->conv) return sq_fail(st, SQ_ERR_NOMEM, "cuda: convolution plan cache: out of memory");
    return SQ_OK;
}

/* Destroy results are ignored: this runs on teardown, where nothing can be done about them. */
static void plan_free(conv_plan *pl) {
    if (pl->xd) (void)cudnnDestroyTensorDescriptor(pl->xd);
    if (pl->yd) (void)cudnnDestroyTensorDescriptor(pl->yd);
    if (pl->bd) (void)cudnnDestroyTensorDescriptor(pl->bd);
    if (pl->wd) (void)cudnnDestroyFilterDescriptor(pl->wd);
    if (pl->cd) (void)cudnnDestroyConvolutionDescriptor(pl->cd);
    free(pl);
}

void sq_cuda_conv_destroy(sq_cuda *c) {
    if (!c->conv) return;
    conv_plan *pl = c->conv->head;
    while (pl) {
        conv_plan *next = pl->next;
        plan_free(pl);
        pl = next;
    }
    free(c->conv);
    c->conv = NULL;
}

int sq_cuda_conv_cache_size(sq_backend *be) {
    const sq_cuda *c = sq_cuda_of(be);
    return c->conv ? c->conv->count : 0;
}

/* --- validation ----------------------------------------------------------------------------------
 */
static int64_t filter_numel(const sq_conv3d *p, int groups) {
    return (int64_t)p->cout * (p->in.c / groups) * p->k[0] * p->k[1] * p->k[2];
}

static sq_code check_params(const sq_conv3d *p, int groups, sq_status *st) {
    SQ_TRY(sq_conv3d_check(p, 0, st));
    if (groups < 1 || p->in.c % groups != 0 || p->cout % groups != 0)
        return sq_fail(st, SQ_ERR_RANGE,
                       "conv3d: groups %d must divide input channels %d and output channels %d",
                       groups, p->in.c, p->cout);
    const int64_t nx = sq_shape5_numel(p->in), ny = sq_shape5_numel(sq_conv3d_out(p));
    if (nx > INT_MAX || ny > INT_MAX || filter_numel(p, groups) > INT_MAX)
        return sq_fail(st, SQ_ERR_UNSUPPORTED,
                       "cuda: conv3d: tensors of more than 2^31-1 elements are not supported "
                       "(input %lld, output %lld)",
                       (long long)nx, (long long)ny);
    return SQ_OK;
}

/* A view of n floats; `required`: a none view is an error. Failures name the op and shape. */
static sq_code check_view(sq_view v, int64_t n, int required, const char *name, const char *op,
                          const sq_conv3d *p, int groups, sq_status *st) {
    char d[128];
    if (!v.buf) {
        if (!required) return SQ_OK;
        return sq_fail(st, SQ_ERR_RANGE, "cuda: %s %s: %s is required", op,
                       sq_conv_desc(p, groups, d, sizeof d), name);
    }
    if (sq_cuda_check_view(v, n, name, st) == SQ_OK) return SQ_OK;
    return sq_context(st, "%s %s", op, sq_conv_desc(p, groups, d, sizeof d));
}

/* --- plans --------------------------------------------------------------------------------------
 */
static cudnnMathType_t requested_math(const sq_cuda *c) {
    return c->allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

/* Strict FP32 allows only FMA kernels; TF32 mode allows tensor cores too, never FP16
 * down-conversion (CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION). */
static int math_allowed(const sq_cuda *c, cudnnMathType_t m) {
    if (!c->allow_tf32) return m == CUDNN_FMA_MATH;
    return m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH || m == CUDNN_TENSOR_OP_MATH;
}

static sq_code plan_create_descs(conv_plan *pl, sq_status *st) {
    const char *op = "conv3d descriptors";
    SQ_TRY(dnn_ok(cudnnCreateTensorDescriptor(&pl->xd), pl, op, st));
    SQ_TRY(dnn_ok(cudnnCreateTensorDescriptor(&pl->yd), pl, op, st));
    SQ_TRY(dnn_ok(cudnnCreateTensorDescriptor(&pl->bd), pl, op, st));
    SQ_TRY(dnn_ok(cudnnCreateFilterDescriptor(&pl->wd), pl, op, st));
    return dnn_ok(cudnnCreateConvolutionDescriptor(&pl->cd), pl, op, st);
}

/* x (N,Cin,D,H,W), y (N,Cout,Do,Ho,Wo), bias (1,Cout,1,1,1), w (Cout,Cin/g,kD,kH,kW). */
static sq_code plan_set_descs(const sq_cuda *c, conv_plan *pl, sq_status *st) {
    const char *op = "conv3d descriptors";
    const sq_conv3d *p = &pl->p;
    const sq_shape5 o = sq_conv3d_out(p);
    const int xdim[5] = {p->in.n, p->in.c, p->in.d, p->in.h, p->in.w};
    const int ydim[5] = {o.n, o.c, o.d, o.h, o.w};
    const int bdim[5] = {1, p->cout, 1, 1, 1};
    const int wdim[5] = {p->cout, p->in.c / pl->groups, p->k[0], p->k[1], p->k[2]};
    const int dil[3] = {1, 1, 1};
    const cudnnTensorFormat_t f = CUDNN_TENSOR_NCHW; /* with 5 dims: NCDHW, fully packed */
    SQ_TRY(dnn_ok(cudnnSetTensorNdDescriptorEx(pl->xd, f, CUDNN_DATA_FLOAT, 5, xdim), pl, op, st));
    SQ_TRY(dnn_ok(cudnnSetTensorNdDescriptorEx(pl->yd, f, CUDNN_DATA_FLOAT, 5, ydim), pl, op, st));
    SQ_TRY(dnn_ok(cudnnSetTensorNdDescriptorEx(pl->bd, f, CUDNN_DATA_FLOAT, 5, bdim), pl, op, st));
    SQ_TRY(dnn_ok(cudnnSetFilterNdDescriptor(pl->wd, CUDNN_DATA_FLOAT, f, 5, wdim), pl, op, st));
    SQ_TRY(dnn_ok(cudnnSetConvolutionNdDescriptor(pl->cd, 3, p->pad, p->stride, dil,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                  pl, op, st));
    SQ_TRY(dnn_ok(cudnnSetConvolutionGroupCount(pl->cd, pl->groups), pl, op, st));
    SQ_TRY(dnn_ok(cudnnSetConvolutionMathType(pl->cd, requested_math(c)), pl, op, st));
    int odim[5] = {0};
    SQ_TRY(
        dnn_ok(cudnnGetConvolutionNdForwardOutputDim(pl->cd, pl->xd, pl->wd, 5, odim), pl, op, st));
    if (memcmp(odim, ydim, sizeof odim) != 0)
        return sq_fail(st, SQ_ERR_INTERNAL,
                       "cuda: conv3d %s: cuDNN output %dx%dx%dx%dx%d differs from %dx%dx%dx%dx%d",
                       pl->desc, odim[0], odim[1], odim[2], odim[3], odim[4], ydim[0], ydim[1],
                       ydim[2], ydim[3], ydim[4]);
    return SQ_OK;
}

static sq_code plan_create(sq_cuda *c, const sq_conv3d *p, int groups, const sq_conv_key *key,
                           uint64_t hash, conv_plan **out, sq_status *st) {
    conv_plan *pl = calloc(1, sizeof *pl);
    if (!pl) return sq_fail(st, SQ_ERR_NOMEM, "cuda: convolution plan: out of memory");
    pl->key = *key;
    pl->hash = hash;
    pl->p = *p;
    pl->groups = groups;
    pl->gemm = sq_conv_is_gemm(p, groups);
    pl->nw = (size_t)filter_numel(p, groups);
    sq_conv_desc(p, groups, pl->desc, sizeof pl->desc);
    for (int d = 0; d < SQ_CONV_DIRS; d++) {
        pl->dir[d].algo = -1;
        pl->dir[d].ms_cudnn = pl->dir[d].ms_gemm = -1.0f;
    }
    sq_code rc = plan_create_descs(pl, st);
    if (rc == SQ_OK) rc = plan_set_descs(c, pl, st);
    if (rc != SQ_OK) {
        plan_free(pl);
        return rc;
    }
    pl->next = c->conv->head;
    c->conv->head = pl;
    c->conv->count++;
    *out = pl;
    return SQ_OK;
}

static conv_plan *plan_find(const sq_cuda *c, const sq_conv3d *p, int groups) {
    const sq_conv_key key = sq_conv_key_make(p, groups);
    const uint64_t hash = sq_conv_key_hash(&key);
    for (conv_plan *pl = c->conv->head; pl; pl = pl->next)
        if (pl->hash == hash && sq_conv_key_eq(&pl->key, &key)) return pl;
    return NULL;
}

static sq_code plan_get(sq_cuda *c, const sq_conv3d *p, int groups, conv_plan **out,
                        sq_status *st) {
    if (!c->conv) return sq_fail(st, SQ_ERR_INTERNAL, "cuda: conv3d: plan cache not initialised");
    *out = plan_find(c, p, groups);
    if (*out) return SQ_OK;
    const sq_conv_key key = sq_conv_key_make(p, groups);
    return plan_create(c, p, groups, &key, sq_conv_key_hash(&key), out, st);
}

/* --- running one direction ----------------------------------------------------------------------
 */
/* The operands of a direction, indexed SQ_GEMM_X / _W / _Y: fwd {x, w, y}, bwd data {dx, w, dy},
 * bwd filter {x, dw, dy}. Only the direction's output (y, dx, dw) is written. */
typedef float *operands[3];

static sq_code cudnn_run(sq_cuda *c, const conv_plan *pl, int dir, const operands t, void *ws,
                         sq_status *st) {
    const dir_plan *d = &pl->dir[dir];
    const float one = 1.0f, zero = 0.0f;
    SQ_TRY(dnn_ok(cudnnSetConvolutionMathType(pl->cd, d->math), pl, dir_op[dir], st));
    const float *x = t[SQ_GEMM_X], *w = t[SQ_GEMM_W], *y = t[SQ_GEMM_Y];
    cudnnStatus_t s;
    if (dir == SQ_CONV_FWD)
        s = cudnnConvolutionForward(c->cudnn, &one, pl->xd, x, pl->wd, w, pl->cd,
                                    (cudnnConvolutionFwdAlgo_t)d->algo, ws, d->ws, &zero, pl->yd,
                                    t[SQ_GEMM_Y]);
    else if (dir == SQ_CONV_BWD_DATA)
        s = cudnnConvolutionBackwardData(c->cudnn, &one, pl->wd, w, pl->yd, y, pl->cd,
                                         (cudnnConvolutionBwdDataAlgo_t)d->algo, ws, d->ws, &zero,
                                         pl->xd, t[SQ_GEMM_X]);
    else
        s = cudnnConvolutionBackwardFilter(c->cudnn, &one, pl->xd, x, pl->yd, y, pl->cd,
                                           (cudnnConvolutionBwdFilterAlgo_t)d->algo, ws, d->ws,
                                           &one, pl->wd, t[SQ_GEMM_W]);
    return dnn_ok(s, pl, dir_op[dir], st);
}

/* The GEMM of sq_conv_gemm_args: one strided-batched call, or (filter) one sgemm per sample in
 * order, each accumulating (beta 1) into dw. */
static sq_code gemm_run(sq_cuda *c, const conv_plan *pl, int dir, const operands t, sq_status *st) {
    const char *op = dir_gemm_op[dir];
    const sq_gemm_args g = sq_conv_gemm_args(&pl->p, dir);
    const cublasMath_t math = c->allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    SQ_TRY(blas_ok(cublasSetMathMode(c->cublas, math), pl, op, st));
    SQ_TRY(blas_ok(cublasSetPointerMode(c->cublas, CUBLAS_POINTER_MODE_HOST), pl, op, st));
    const cublasOperation_t ta = g.transa ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t tb = g.transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const float *a = t[g.a], *b = t[g.b];
    float *out = t[g.c];
    if (!g.sequential)
        return blas_ok(cublasSgemmStridedBatched(c->cublas, ta, tb, g.m, g.n, g.k, &g.alpha, a,
                                                 g.lda, g.stride_a, b, g.ldb, g.stride_b, &g.beta,
                                                 out, g.ldc, g.stride_c, g.batch),
                       pl, op, st);
    for (int i = 0; i < g.batch; i++)
        SQ_TRY(blas_ok(cublasSgemm(c->cublas, ta, tb, g.m, g.n, g.k, &g.alpha, a + i * g.stride_a,
                                   g.lda, b + i * g.stride_b, g.ldb, &g.beta, out + i * g.stride_c,
                                   g.ldc),
                       pl, op, st));
    return SQ_OK;
}

static sq_code path_run(sq_cuda *c, const conv_plan *pl, int dir, int gemm, const operands t,
                        void *ws, sq_status *st) {
    return gemm ? gemm_run(c, pl, dir, t, st) : cudnn_run(c, pl, dir, t, ws, st);
}

/* --- planning one direction: Find, then (1x1x1) cuDNN against cuBLAS ---------------------------
 */
typedef struct find_out {
    int n;
    int algo[MAX_PERF];
    cudnnMathType_t math[MAX_PERF];
    sq_conv_algo_cand cand[MAX_PERF];
} find_out;

static void find_put(const sq_cuda *c, find_out *f, int i, int algo, cudnnStatus_t s,
                     cudnnDeterminism_t det, cudnnMathType_t math, float ms, size_t mem) {
    f->algo[i] = algo;
    f->math[i] = math;
    f->cand[i].success = s == CUDNN_STATUS_SUCCESS;
    f->cand[i].deterministic = det == CUDNN_DETERMINISTIC;
    f->cand[i].math_ok = math_allowed(c, math);
    f->cand[i].ms = ms;
    f->cand[i].memory = mem;
}

static sq_code find_fwd(sq_cuda *c, const conv_plan *pl, const operands t, void *ws, size_t cap,
                        find_out *f, sq_status *st) {
    const char *op = dir_find_op[SQ_CONV_FWD];
    cudnnConvolutionFwdAlgoPerf_t perf[MAX_PERF];
    int req = 0, got = 0;
    SQ_TRY(dnn_ok(cudnnGetConvolutionForwardAlgorithmMaxCount(c->cudnn, &req), pl, op, st));
    req = req < 1 ? CUDNN_CONVOLUTION_FWD_ALGO_COUNT : req > MAX_PERF ? MAX_PERF : req;
    SQ_TRY(dnn_ok(cudnnFindConvolutionForwardAlgorithmEx(c->cudnn, pl->xd, t[SQ_GEMM_X], pl->wd,
                                                         t[SQ_GEMM_W], pl->cd, pl->yd, t[SQ_GEMM_Y],
                                                         req, &got, perf, ws, cap),
                  pl, op, st));
    f->n = got < 0 ? 0 : got > req ? req : got;
    for (int i = 0; i < f->n; i++)
        find_put(c, f, i, (int)perf[i].algo, perf[i].status, perf[i].determinism, perf[i].mathType,
                 perf[i].time, perf[i].memory);
    return SQ_OK;
}

static sq_code find_bwd_data(sq_cuda *c, const conv_plan *pl, const operands t, void *ws,
                             size_t cap, find_out *f, sq_status *st) {
    const char *op = dir_find_op[SQ_CONV_BWD_DATA];
    cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_PERF];
    int req = 0, got = 0;
    SQ_TRY(dnn_ok(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(c->cudnn, &req), pl, op, st));
    req = req < 1 ? CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT : req > MAX_PERF ? MAX_PERF : req;
    SQ_TRY(dnn_ok(cudnnFindConvolutionBackwardDataAlgorithmEx(
                      c->cudnn, pl->wd, t[SQ_GEMM_W], pl->yd, t[SQ_GEMM_Y], pl->cd, pl->xd,
                      t[SQ_GEMM_X], req, &got, perf, ws, cap),
                  pl, op, st));
    f->n = got < 0 ? 0 : got > req ? req : got;
    for (int i = 0; i < f->n; i++)
        find_put(c, f, i, (int)perf[i].algo, perf[i].status, perf[i].determinism, perf[i].mathType,
                 perf[i].time, perf[i].memory);
    return SQ_OK;
}

static sq_code find_bwd_filter(sq_cuda *c, const conv_plan *pl, const operands t, void *ws,
                               size_t cap, find_out *f, sq_status *st) {
    const char *op = dir_find_op[SQ_CONV_BWD_FILTER];
    cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_PERF];
    int req = 0, got = 0;
    SQ_TRY(dnn_ok(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(c->cudnn, &req), pl, op, st));
    req = req < 1 ? CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT : req > MAX_PERF ? MAX_PERF : req;
    SQ_TRY(dnn_ok(cudnnFindConvolutionBackwardFilterAlgorithmEx(
                      c->cudnn, pl->xd, t[SQ_GEMM_X], pl->yd, t[SQ_GEMM_Y], pl->cd, pl->wd,
                      t[SQ_GEMM_W], req, &got, perf, ws, cap),
                  pl, op, st));
    f->n = got < 0 ? 0 : got > req ? req : got;
    for (int i = 0; i < f->n; i++)
        find_put(c, f, i, (int)perf[i].algo, perf[i].status, perf[i].determinism, perf[i].mathType,
                 perf[i].time, perf[i].memory);
    return SQ_OK;
}

/* Workspace the chosen algorithm needs with its math type set on the descriptor. */
static sq_code query_ws(sq_cuda *c, const conv_plan *pl, int dir, size_t *bytes, sq_status *st) {
    const int a = pl->dir[dir].algo;
    cudnnStatus_t s;
    if (dir == SQ_CONV_FWD)
        s = cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, pl->xd, pl->wd, pl->cd, pl->yd,
                                                    (cudnnConvolutionFwdAlgo_t)a, bytes);
    else if (dir == SQ_CONV_BWD_DATA)
        s = cudnnGetConvolutionBackwardDataWorkspaceSize(c->cudnn, pl->wd, pl->yd, pl->cd, pl->xd,
                                                         (cudnnConvolutionBwdDataAlgo_t)a, bytes);
    else
        s = cudnnGetConvolutionBackwardFilterWorkspaceSize(
            c->cudnn, pl->xd, pl->yd, pl->cd, pl->wd, (cudnnConvolutionBwdFilterAlgo_t)a, bytes);
    return dnn_ok(s, pl, dir_find_op[dir], st);
}

static size_t align_up(size_t n, size_t a) {
    return (n + a - 1) / a * a;
}

/* Bytes of scratch output a direction's Find/timing needs in front of its workspace: only the
 * filter gradient (the caller's dw accumulates and must not be touched). */
static size_t scratch_bytes(const conv_plan *pl, int dir) {
    return dir == SQ_CONV_BWD_FILTER ? align_up(pl->nw * sizeof(float), 256) : 0;
}

/* One block of [scratch | workspace of ws bytes]; t's output redirected to the scratch. */
static sq_code plan_block(sq_cuda *c, const conv_plan *pl, int dir, size_t ws_bytes,
                          const operands caller, operands t, void **ws, sq_status *st) {
    const size_t scratch = scratch_bytes(pl, dir);
    void *blk = NULL;
    memcpy(t, caller, sizeof(operands));
    if (scratch + ws_bytes > 0) SQ_TRY(sq_cuda_workspace(c, scratch + ws_bytes, &blk, st));
    *ws = blk ? (char *)blk + scratch : NULL;
    if (dir == SQ_CONV_BWD_FILTER) t[SQ_GEMM_W] = (float *)blk;
    return SQ_OK;
}

/* What Find may use: 256 MiB, or half the free device memory where less is free. */
static sq_code find_cap(const conv_plan *pl, int dir, size_t *cap, sq_status *st) {
    size_t free_b = 0, total_b = 0;
    SQ_TRY(rt_ok(cudaMemGetInfo(&free_b, &total_b), pl, dir_find_op[dir], st));
    const size_t half = free_b / 2;
    *cap = half < FIND_WS_CAP ? half : FIND_WS_CAP;
    return SQ_OK;
}

static sq_code find_dir(sq_cuda *c, conv_plan *pl, int dir, const operands caller, sq_status *st) {
    dir_plan *d = &pl->dir[dir];
    size_t cap = 0;
    SQ_TRY(find_cap(pl, dir, &cap, st));
    operands t;
    void *ws = NULL;
    SQ_TRY(plan_block(c, pl, dir, cap, caller, t, &ws, st));
    SQ_TRY(
        dnn_ok(cudnnSetConvolutionMathType(pl->cd, requested_math(c)), pl, dir_find_op[dir], st));
    find_out f;
    memset(&f, 0, sizeof f);
    if (dir == SQ_CONV_FWD) SQ_TRY(find_fwd(c, pl, t, ws, cap, &f, st));
    if (dir == SQ_CONV_BWD_DATA) SQ_TRY(find_bwd_data(c, pl, t, ws, cap, &f, st));
    if (dir == SQ_CONV_BWD_FILTER) SQ_TRY(find_bwd_filter(c, pl, t, ws, cap, &f, st));
    const int best = sq_conv_pick_algo(f.cand, f.n, c->deterministic, cap);
    d->n_found = f.n;
    d->find_cap = cap;
    d->cudnn_ok = best >= 0;
    if (best < 0) return SQ_OK;
    d->algo = f.algo[best];
    d->math = f.math[best];
    size_t need = 0;
    SQ_TRY(dnn_ok(cudnnSetConvolutionMathType(pl->cd, d->math), pl, dir_find_op[dir], st));
    SQ_TRY(query_ws(c, pl, dir, &need, st));
    d->ws = need > f.cand[best].memory ? need : f.cand[best].memory;
    return SQ_OK;
}

/* Mean time of TIME_REPS runs of one path, after one warm-up run. */
static sq_code time_path(sq_cuda *c, const conv_plan *pl, int dir, int gemm, const operands t,
                         void *ws, float *ms, sq_status *st) {
    const char *op = gemm ? dir_gemm_op[dir] : dir_op[dir];
    cudaEvent_t ev[2] = {NULL, NULL};
    float total = 0.0f;
    sq_code rc = rt_ok(cudaEventCreate(&ev[0]), pl, op, st);
    if (rc == SQ_OK) rc = rt_ok(cudaEventCreate(&ev[1]), pl, op, st);
    if (rc == SQ_OK) rc = path_run(c, pl, dir, gemm, t, ws, st);
    if (rc == SQ_OK) rc = rt_ok(cudaEventRecord(ev[0], c->stream), pl, op, st);
    for (int r = 0; r < TIME_REPS && rc == SQ_OK; r++)
        rc = path_run(c, pl, dir, gemm, t, ws, st);
    if (rc == SQ_OK) rc = rt_ok(cudaEventRecord(ev[1], c->stream), pl, op, st);
    if (rc == SQ_OK) rc = rt_ok(cudaEventSynchronize(ev[1]), pl, op, st);
    if (rc == SQ_OK) rc = rt_ok(cudaEventElapsedTime(&total, ev[0], ev[1]), pl, op, st);
    for (int i = 0; i < 2; i++) {
        if (!ev[i]) continue;
        const cudaError_t e = cudaEventDestroy(ev[i]);
        if (rc == SQ_OK) rc = rt_ok(e, pl, op, st);
    }
    if (rc == SQ_OK) *ms = total / TIME_REPS;
    return rc;
}

/* 1x1x1: cuBLAS if it measures faster than the cuDNN choice (or if cuDNN has none). */
static sq_code choose_gemm(sq_cuda *c, conv_plan *pl, int dir, const operands caller,
                           sq_status *st) {
    dir_plan *d = &pl->dir[dir];
    if (!d->cudnn_ok) {
        d->use_gemm = 1;
        return SQ_OK;
    }
    operands t;
    void *ws = NULL;
    SQ_TRY(plan_block(c, pl, dir, d->ws, caller, t, &ws, st));
    if (dir == SQ_CONV_BWD_FILTER) /* the scratch accumulates: start from finite values */
        SQ_TRY(rt_ok(cudaMemsetAsync(t[SQ_GEMM_W], 0, pl->nw * sizeof(float), c->stream), pl,
                     dir_gemm_op[dir], st));
    SQ_TRY(time_path(c, pl, dir, 0, t, ws, &d->ms_cudnn, st));
    SQ_TRY(time_path(c, pl, dir, 1, t, ws, &d->ms_gemm, st));
    d->use_gemm = d->ms_gemm < d->ms_cudnn;
    return SQ_OK;
}

static sq_code fail_no_algo(const sq_cuda *c, const conv_plan *pl, int dir, sq_status *st) {
    const dir_plan *d = &pl->dir[dir];
    return sq_fail(st, SQ_ERR_UNSUPPORTED,
                   "cuda: %s %s: cuDNN Find returned no usable algorithm (%d results; needed "
                   "status SUCCESS, %s%s, workspace within %zu bytes)",
                   dir_op[dir], pl->desc, d->n_found,
                   c->allow_tf32 ? "FP32 or TF32 math" : "strict FP32 math (CUDNN_FMA_MATH)",
                   c->deterministic ? ", deterministic" : "", d->find_cap);
}

static sq_code plan_dir(sq_cuda *c, conv_plan *pl, int dir, const operands caller, sq_status *st) {
    dir_plan *d = &pl->dir[dir];
    d->ms_cudnn = d->ms_gemm = -1.0f;
    d->use_gemm = 0;
    SQ_TRY(find_dir(c, pl, dir, caller, st));
    if (pl->gemm) SQ_TRY(choose_gemm(c, pl, dir, caller, st));
    if (!d->cudnn_ok && !d->use_gemm) return fail_no_algo(c, pl, dir, st);
    d->ready = 1;
    return SQ_OK;
}

/* Plans the direction on first use, then runs it (cuBLAS only where allowed and chosen). */
static sq_code dir_run(sq_cuda *c, conv_plan *pl, int dir, int allow_gemm, const operands t,
                       sq_status *st) {
    dir_plan *d = &pl->dir[dir];
    if (!d->ready) SQ_TRY(plan_dir(c, pl, dir, t, st));
    const int gemm = allow_gemm && d->use_gemm;
    if (!gemm && !d->cudnn_ok) return fail_no_algo(c, pl, dir, st);
    void *ws = NULL;
    if (!gemm && d->ws > 0) SQ_TRY(sq_cuda_workspace(c, d->ws, &ws, st));
    return path_run(c, pl, dir, gemm, t, ws, st);
}

/* --- the ops ------------------------------------------------------------------------------------
 */
static sq_code conv_fwd(sq_backend *be, const sq_conv3d *p, int groups, int allow_gemm, sq_view x,
                        sq_view w, sq_view b, sq_view y, sq_status *st) {
    const char *op = dir_op[SQ_CONV_FWD];
    SQ_TRY(check_params(p, groups, st));
    SQ_TRY(check_view(x, sq_shape5_numel(p->in), 1, "x", op, p, groups, st));
    SQ_TRY(check_view(w, filter_numel(p, groups), 1, "w", op, p, groups, st));
    SQ_TRY(check_view(b, p->cout, 0, "b", op, p, groups, st));
    SQ_TRY(check_view(y, sq_shape5_numel(sq_conv3d_out(p)), 1, "y", op, p, groups, st));
    sq_cuda *c = sq_cuda_of(be);
    conv_plan *pl;
    SQ_TRY(plan_get(c, p, groups, &pl, st));
    const operands t = {sq_cuda_f(x), sq_cuda_f(w), sq_cuda_f(y)};
    SQ_TRY(dir_run(c, pl, SQ_CONV_FWD, allow_gemm, t, st));
    if (!b.buf) return SQ_OK;
    const float one = 1.0f;
    return dnn_ok(cudnnAddTensor(c->cudnn, &one, pl->bd, sq_cuda_f(b), &one, pl->yd, sq_cuda_f(y)),
                  pl, "conv3d_fwd_bias", st);
}

static sq_code conv_bwd_check(const sq_conv3d *p, int groups, sq_view x, sq_view w, sq_view dy,
                              sq_view dx, sq_view dw, sq_view db, sq_status *st) {
    const char *op = "conv3d_bwd";
    const int64_t nx = sq_shape5_numel(p->in), nw = filter_numel(p, groups);
    SQ_TRY(check_params(p, groups, st));
    SQ_TRY(check_view(x, nx, dw.buf != NULL, "x", op, p, groups, st));
    SQ_TRY(check_view(w, nw, dx.buf != NULL, "w", op, p, groups, st));
    SQ_TRY(check_view(dy, sq_shape5_numel(sq_conv3d_out(p)), 1, "dy", op, p, groups, st));
    SQ_TRY(check_view(dx, nx, 0, "dx", op, p, groups, st));
    SQ_TRY(check_view(dw, nw, 0, "dw", op, p, groups, st));
    return check_view(db, p->cout, 0, "db", op, p, groups, st);
}

static sq_code conv_bwd(sq_backend *be, const sq_conv3d *p, int groups, int allow_gemm, sq_view x,
                        sq_view w, sq_view dy, sq_view dx, sq_view dw, sq_view db, sq_status *st) {
    SQ_TRY(conv_bwd_check(p, groups, x, w, dy, dx, dw, db, st));
    if (!dx.buf && !dw.buf && !db.buf) return SQ_OK;
    sq_cuda *c = sq_cuda_of(be);
    conv_plan *pl;
    SQ_TRY(plan_get(c, p, groups, &pl, st));
    if (dx.buf) {
        const operands t = {sq_cuda_f(dx), sq_cuda_f(w), sq_cuda_f(dy)};
        SQ_TRY(dir_run(c, pl, SQ_CONV_BWD_DATA, allow_gemm, t, st));
    }
    if (dw.buf) {
        const operands t = {sq_cuda_f(x), sq_cuda_f(dw), sq_cuda_f(dy)};
        SQ_TRY(dir_run(c, pl, SQ_CONV_BWD_FILTER, allow_gemm, t, st));
    }
    if (!db.buf) return SQ_OK;
    const float one = 1.0f;
    return dnn_ok(cudnnConvolutionBackwardBias(c->cudnn, &one, pl->yd, sq_cuda_f(dy), &one, pl->bd,
                                               sq_cuda_f(db)),
                  pl, "conv3d_bwd_bias", st);
}

sq_code sq_cuda_conv3d_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                           sq_view y, sq_status *st) {
    return conv_fwd(be, p, 1, 1, x, w, b, y, st);
}

sq_code sq_cuda_conv3d_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                           sq_view dx, sq_view dw, sq_view db, sq_status *st) {
    return conv_bwd(be, p, 1, 1, x, w, dy, dx, dw, db, st);
}

sq_code sq_cuda_cudnn_conv_fwd(sq_backend *be, const sq_conv3d *p, int groups, sq_view x, sq_view w,
                               sq_view b, sq_view y, sq_status *st) {
    return conv_fwd(be, p, groups, 0, x, w, b, y, st);
}

sq_code sq_cuda_cudnn_conv_bwd(sq_backend *be, const sq_conv3d *p, int groups, sq_view x, sq_view w,
                               sq_view dy, sq_view dx, sq_view dw, sq_view db, sq_status *st) {
    return conv_bwd(be, p, groups, 0, x, w, dy, dx, dw, db, st);
}

sq_code sq_cuda_conv_plan_info(sq_backend *be, const sq_conv3d *p, int groups, int dir,
                               sq_conv_plan_info *out, sq_status *st) {
    const sq_cuda *c = sq_cuda_of(be);
    const conv_plan *pl = c->conv ? plan_find(c, p, groups) : NULL;
    if (!pl || dir < 0 || dir >= SQ_CONV_DIRS)
        return sq_fail(st, SQ_ERR_RANGE, "cuda: conv3d: no plan for this shape/direction");
    const dir_plan *d = &pl->dir[dir];
    out->planned = d->ready;
    out->use_gemm = d->use_gemm;
    out->cudnn_ok = d->cudnn_ok;
    out->algo = d->algo;
    out->math = (int)d->math;
    out->ws = d->ws;
    out->ms_cudnn = d->ms_cudnn;
    out->ms_gemm = d->ms_gemm;
    return SQ_OK;
}
