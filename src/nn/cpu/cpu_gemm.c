/* cpu_gemm.c — dense convolutions as GEMMs on NCDHW: 1x1x1 ones directly, small-patch ones (the
 * stem) through tiles of an im2col matrix.
 *
 * 1x1x1, stride 1, no padding (no reorder at all): *
 * With S = D*H*W, sample n's input is a Cin x S matrix X_n and its output a Cout x S matrix Y_n:
 *   forward        Y_n  = W X_n (+ b)          (Cout x Cin) (Cin x S)
 *   backward data  dX_n = W^T dY_n             (Cin x Cout) (Cout x S)
 *   backward wts   dW  += sum_n dY_n X_n^T     (Cout x S) (S x Cin), db += row sums of dY_n
 * Every product is split into tiles of columns of a fixed width that depends only on the shape
 * (never on the thread count); OpenMP hands the tiles to threads and each tile is one
 * single-threaded oneDNN sgemm (oneDNN runs sequentially inside a parallel region, on the same
 * OpenMP pool as every other op: no second thread pool). The weight gradient's tiles write their
 * own partial product; the partials are then summed in tile order, in double, per element. So the
 * results are bit-identical whatever the thread count.
 *
 * Other kernels with a small patch (Cin*kD*kH*kW <= PATCH_MAX, e.g. the stem's 2x3x3x3 = 54):
 * forward and weight gradient on tiles of whole output rows; each thread gathers its tile's
 * patch matrix P (Cin*k^3 x T, zeros where the window leaves the input) into its scratch, then
 * Y_tile = W P and dW_tile = dY_tile P^T, the latter summed over tiles in order as above. The
 * data gradient of those (the model needs none: the stem reads the network input) stays on
 * oneDNN's backward-data primitive (cpu_dnnl.c), as does any larger patch. On AVX2 the stem's
 * forward is direct instead (cpu_direct.c); the im2col forward serves the portable ISA and
 * SEGQA_CPU_DIRECT=0.
 */
#include "nn/cpu/cpu.h"

#include "core/tensor.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <string.h>

#define NT num_threads(sq_cpu_of(be)->threads)

/* oneDNN's sgemm runs sequentially inside an active parallel region, but a team of one thread is
 * not active: there it would open a nested region of omp_get_max_threads() threads, and the
 * results would depend on the thread count. Setting this task's thread count to 1 keeps every
 * tile's sgemm sequential in any team. */
#define SEQUENTIAL_SGEMM() omp_set_num_threads(1)

/* Columns per tile: forward / backward data (their K is a channel count, so a tile is small and
 * streams), and weight gradient (its K is the columns, long tiles amortise the partials). Both are
 * multiples of 16 floats, so every tile starts 64-byte aligned within a plane. */
#define TILE_COLS    2048
#define TILE_COLS_DW 8192

#define PATCH_MAX 256 /* largest Cin*kD*kH*kW of the im2col path */

int sq_cpu_gemm1x1_applies(const sq_conv3d *p) {
    for (int a = 0; a < 3; a++)
        if (p->k[a] != 1 || p->stride[a] != 1 || p->pad[a] != 0) return 0;
    return 1;
}

int sq_cpu_im2col_applies(const sq_conv3d *p) {
    return !sq_cpu_gemm1x1_applies(p) && p->in.c * p->k[0] * p->k[1] * p->k[2] <= PATCH_MAX;
}

static sq_code gemm_check(dnnl_status_t s, sq_status *st) {
    if (s == dnnl_success) return SQ_OK;
    return sq_fail(st, SQ_ERR_UNSUPPORTED, "oneDNN: sgemm failed (status %d)", (int)s);
}

typedef struct tiles {
    size_t S;      /* columns per sample plane */
    int per_plane; /* tiles per sample */
    int count;     /* tiles in all: n * per_plane */
    size_t cols;   /* tile width */
} tiles;

static tiles tiles_of(const sq_conv3d *p, size_t cols) {
    tiles t;
    t.S = (size_t)p->in.d * p->in.h * p->in.w;
    t.cols = cols;
    t.per_plane = (int)((t.S + cols - 1) / cols);
    t.count = p->in.n * t.per_plane;
    return t;
}

/* Column range [*c0, c0 + *len) of tile i within its sample; returns the sample. */
static int tile_range(const tiles *t, int i, size_t *c0, size_t *len) {
    const int n = i / t->per_plane;
    *c0 = (size_t)(i % t->per_plane) * t->cols;
    *len = t->S - *c0 < t->cols ? t->S - *c0 : t->cols;
    return n;
}

/* Y_n = W_n X_n (+ b) tile by tile, with W_n = pw + n * wstride (wstride 0: one W for all). */
static sq_code fwd_tiles(sq_backend *be, const sq_conv3d *p, const float *px, const float *pw,
                         size_t wstride, const float *pb, float *py, sq_status *st) {
    const int Cin = p->in.c, Cout = p->cout;
    const tiles t = tiles_of(p, TILE_COLS);
    int bad = 0;
#pragma omp parallel for schedule(static) NT reduction(| : bad)
    for (int i = 0; i < t.count; i++) {
        SEQUENTIAL_SGEMM();
        size_t c0, len;
        const int n = tile_range(&t, i, &c0, &len);
        const float *xt = px + (size_t)n * Cin * t.S + c0;
        float *yt = py + (size_t)n * Cout * t.S + c0;
        bad |= dnnl_sgemm('N', 'N', Cout, (dnnl_dim_t)len, Cin, 1.0f, pw + n * wstride, Cin, xt,
                          (dnnl_dim_t)t.S, 0.0f, yt, (dnnl_dim_t)t.S) != dnnl_success;
        if (pb)
            for (int co = 0; co < Cout; co++) {
                float *row = yt + (size_t)co * t.S;
                const float bias = pb[co];
#pragma omp simd
                for (size_t j = 0; j < len; j++)
                    row[j] += bias;
            }
    }
    return gemm_check(bad ? dnnl_runtime_error : dnnl_success, st);
}

sq_code sq_cpu_gemm1x1_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                           sq_view y, sq_status *st) {
    return fwd_tiles(be, p, sq_cpu_f(x), sq_cpu_f(w), 0, sq_cpu_f(b), sq_cpu_f(y), st);
}

/* dX_n = W_n^T dY_n tile by tile (W_n as in fwd_tiles). */
static sq_code bwd_data(sq_backend *be, const sq_conv3d *p, const float *pw, size_t wstride,
                        const float *pdy, float *pdx, sq_status *st) {
    const int Cin = p->in.c, Cout = p->cout;
    const tiles t = tiles_of(p, TILE_COLS);
    int bad = 0;
#pragma omp parallel for schedule(static) NT reduction(| : bad)
    for (int i = 0; i < t.count; i++) {
        SEQUENTIAL_SGEMM();
        size_t c0, len;
        const int n = tile_range(&t, i, &c0, &len);
        bad |= dnnl_sgemm('T', 'N', Cin, (dnnl_dim_t)len, Cout, 1.0f, pw + n * wstride, Cin,
                          pdy + (size_t)n * Cout * t.S + c0, (dnnl_dim_t)t.S, 0.0f,
                          pdx + (size_t)n * Cin * t.S + c0, (dnnl_dim_t)t.S) != dnnl_success;
    }
    return gemm_check(bad ? dnnl_runtime_error : dnnl_success, st);
}

/* db[co] += sum over samples and columns of dy, in fixed blocks summed in double. */
static void bias_grad(sq_backend *be, const sq_conv3d *p, const float *pdy, float *pdb) {
    const int Cout = p->cout;
    const size_t S = (size_t)p->in.d * p->in.h * p->in.w;
#pragma omp parallel for schedule(static) NT
    for (int co = 0; co < Cout; co++) {
        double s = 0.0;
        for (int n = 0; n < p->in.n; n++) {
            const float *row = pdy + ((size_t)n * Cout + co) * S;
            for (size_t lo = 0; lo < S; lo += 2048) {
                const size_t hi = lo + 2048 < S ? lo + 2048 : S;
                float part = 0.0f;
#pragma omp simd reduction(+ : part)
                for (size_t j = lo; j < hi; j++)
                    part += row[j];
                s += part;
            }
        }
        pdb[co] += (float)s;
    }
}

/* dw += the sum over the tiles' partial weight gradients, element by element in tile order in
 * double: the same sum whichever threads computed the tiles (bit-identical across thread counts).
 */
static void add_partials(sq_backend *be, const float *part, int count, size_t nw, float *pdw) {
    const int64_t ne = (int64_t)nw;
#pragma omp parallel for schedule(static) NT
    for (int64_t e = 0; e < ne; e++) {
        double s = 0.0;
        for (int i = 0; i < count; i++)
            s += part[(size_t)i * nw + (size_t)e];
        pdw[e] += (float)s;
    }
}

/* part[i] = dY X^T over tile i's columns (Cout x Cin each), for every tile of every sample. */
static sq_code weight_partials(sq_backend *be, const sq_conv3d *p, const tiles *t, const float *px,
                               const float *pdy, float **part, sq_status *st) {
    const int Cin = p->in.c, Cout = p->cout;
    const size_t nw = (size_t)Cout * Cin;
    SQ_TRY(sq_cpu_scratch_grow(&sq_cpu_of(be)->gemm_part, nw * (size_t)t->count, st));
    float *pp = sq_cpu_of(be)->gemm_part.p;
    int bad = 0;
#pragma omp parallel for schedule(static) NT reduction(| : bad)
    for (int i = 0; i < t->count; i++) {
        SEQUENTIAL_SGEMM();
        size_t c0, len;
        const int n = tile_range(t, i, &c0, &len);
        bad |= dnnl_sgemm('N', 'T', Cout, Cin, (dnnl_dim_t)len, 1.0f,
                          pdy + (size_t)n * Cout * t->S + c0, (dnnl_dim_t)t->S,
                          px + (size_t)n * Cin * t->S + c0, (dnnl_dim_t)t->S, 0.0f,
                          pp + (size_t)i * nw, Cin) != dnnl_success;
    }
    *part = pp;
    return gemm_check(bad ? dnnl_runtime_error : dnnl_success, st);
}

static sq_code bwd_weights(sq_backend *be, const sq_conv3d *p, const float *px, const float *pdy,
                           float *pdw, sq_status *st) {
    const tiles t = tiles_of(p, TILE_COLS_DW);
    float *part;
    SQ_TRY(weight_partials(be, p, &t, px, pdy, &part, st));
    add_partials(be, part, t.count, (size_t)p->cout * p->in.c, pdw);
    return SQ_OK;
}

sq_code sq_cpu_gemm1x1_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                           sq_view dx, sq_view dw, sq_view db, sq_status *st) {
    const float *pdy = sq_cpu_f(dy);
    if (dx.buf) SQ_TRY(bwd_data(be, p, sq_cpu_f(w), 0, pdy, sq_cpu_f(dx), st));
    if (dw.buf) SQ_TRY(bwd_weights(be, p, sq_cpu_f(x), pdy, sq_cpu_f(dw), st));
    if (db.buf) bias_grad(be, p, pdy, sq_cpu_f(db));
    return SQ_OK;
}

/* ---- 1x1x1 convolution of a channel-scaled input (the squeeze-excitation's projection) -------
 *
 * With s_n the scale of sample n (Cin) and W_n = W diag(s_n):
 *   forward        Y_n  = W_n X_n (+ b)
 *   backward data  dX_n = W_n^T dY_n
 *   G_n = dY_n X_n^T (the unscaled weight gradient of sample n, its tiles summed in double)
 *   backward wts   dW[k,c]  += sum_n G_n[k,c] s_n[c]
 *   scale          ds_n[c]   = sum_k W[k,c] G_n[k,c]      (= sum over voxels of x * W^T dY_n)
 * All in a fixed order whatever the thread count. */

/* W_n = W diag(s_n) for every sample, into the backend's kept buffer; returns it. */
static float *scaled_weights(sq_backend *be, const sq_conv3d *p, const float *pw, const float *ps,
                             sq_status *st) {
    sq_cpu *c = sq_cpu_of(be);
    const int N = p->in.n, Cin = p->in.c, Cout = p->cout;
    const size_t nw = (size_t)Cout * Cin;
    if (sq_cpu_scratch_grow(&c->wscaled, nw * N, st) != SQ_OK) return NULL;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < Cout; k++)
            for (int ci = 0; ci < Cin; ci++)
                c->wscaled.p[n * nw + (size_t)k * Cin + ci] =
                    pw[(size_t)k * Cin + ci] * ps[(size_t)n * Cin + ci];
    return c->wscaled.p;
}

static sq_code scaled_check(const sq_conv3d *p, sq_status *st) {
    SQ_TRY(sq_conv3d_check(p, 0, st));
    if (!sq_cpu_gemm1x1_applies(p))
        return sq_fail(st, SQ_ERR_UNSUPPORTED,
                       "conv1x1_scaled: kernel %dx%dx%d stride %d pad %d, expected a 1x1x1 kernel, "
                       "stride 1, no padding",
                       p->k[0], p->k[1], p->k[2], p->stride[0], p->pad[0]);
    return SQ_OK;
}

static sq_code conv1x1_scaled_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view scale,
                                  sq_view w, sq_view b, sq_view y, sq_status *st) {
    SQ_TRY(scaled_check(p, st));
    const float *wn = scaled_weights(be, p, sq_cpu_f(w), sq_cpu_f(scale), st);
    if (!wn) return st->code;
    return fwd_tiles(be, p, sq_cpu_f(x), wn, (size_t)p->cout * p->in.c, sq_cpu_f(b), sq_cpu_f(y),
                     st);
}

/* From the tile partials: dW += sum_n G_n diag(s_n) (if pdw), ds_n = column sums of W o G_n (if
 * pds). g holds G_n for all samples in double (N x Cout x Cin). */
static void scaled_reduce(sq_backend *be, const sq_conv3d *p, const tiles *t, const float *part,
                          const float *pw, const float *ps, double *g, float *pdw, float *pds) {
    const int N = p->in.n, Cin = p->in.c, Cout = p->cout;
    const int64_t nw = (int64_t)Cout * Cin;
#pragma omp parallel for schedule(static) NT
    for (int64_t e = 0; e < nw; e++) {
        double acc = 0.0;
        for (int n = 0; n < N; n++) {
            double gn = 0.0;
            for (int i = n * t->per_plane; i < (n + 1) * t->per_plane; i++)
                gn += part[(size_t)i * nw + e];
            g[n * nw + e] = gn;
            acc += gn * ps[(size_t)n * Cin + e % Cin];
        }
        if (pdw) pdw[e] += (float)acc;
    }
    if (!pds) return;
#pragma omp parallel for schedule(static) NT
    for (int nc = 0; nc < N * Cin; nc++) {
        const int n = nc / Cin, ci = nc % Cin;
        double acc = 0.0;
        for (int k = 0; k < Cout; k++)
            acc += (double)pw[(size_t)k * Cin + ci] * g[n * nw + (int64_t)k * Cin + ci];
        pds[nc] = (float)acc;
    }
}

static sq_code conv1x1_scaled_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view scale,
                                  sq_view w, sq_view dy, sq_view dx, sq_view dscale, sq_view dw,
                                  sq_view db, sq_status *st) {
    SQ_TRY(scaled_check(p, st));
    const float *pdy = sq_cpu_f(dy), *pw = sq_cpu_f(w), *ps = sq_cpu_f(scale);
    if (dx.buf) {
        const float *wn = scaled_weights(be, p, pw, ps, st);
        if (!wn) return st->code;
        SQ_TRY(bwd_data(be, p, wn, (size_t)p->cout * p->in.c, pdy, sq_cpu_f(dx), st));
    }
    if (dw.buf || dscale.buf) {
        const tiles t = tiles_of(p, TILE_COLS_DW);
        float *part;
        SQ_TRY(weight_partials(be, p, &t, sq_cpu_f(x), pdy, &part, st));
        const size_t ng = (size_t)p->in.n * p->cout * p->in.c; /* doubles */
        sq_cpu_scratch *g = &sq_cpu_of(be)->gsum;
        SQ_TRY(sq_cpu_scratch_grow(g, 2 * ng, st));
        scaled_reduce(be, p, &t, part, pw, ps, (double *)(void *)g->p, sq_cpu_f(dw),
                      sq_cpu_f(dscale));
    }
    if (db.buf) bias_grad(be, p, pdy, sq_cpu_f(db));
    return SQ_OK;
}

void sq_cpu_gemm_register(sq_backend *be) {
    be->conv1x1_scaled_fwd = conv1x1_scaled_fwd;
    be->conv1x1_scaled_bwd = conv1x1_scaled_bwd;
    be->gap_bwd_add = sq_cpu_gap_bwd_add;
}

/* ---- small-patch convolutions through im2col tiles --------------------------------------------
 */

typedef struct im2col {
    sq_shape5 o;   /* output shape */
    int kp;        /* patch rows: Cin*kD*kH*kW */
    int rows;      /* output rows (od, oh) per tile */
    int per_plane; /* tiles per sample */
    int count;     /* tiles in all */
    size_t So, Si; /* output and input plane sizes */
} im2col;

static im2col im2col_of(const sq_conv3d *p) {
    im2col g;
    g.o = sq_conv3d_out(p);
    g.kp = p->in.c * p->k[0] * p->k[1] * p->k[2];
    g.rows = (int)(TILE_COLS / (size_t)g.o.w);
    if (g.rows < 1) g.rows = 1;
    const int nrows = g.o.d * g.o.h;
    g.per_plane = (nrows + g.rows - 1) / g.rows;
    g.count = p->in.n * g.per_plane;
    g.So = (size_t)g.o.d * g.o.h * g.o.w;
    g.Si = (size_t)p->in.d * p->in.h * p->in.w;
    return g;
}

/* One patch row (ci, a, b, c) for output rows [r0, r0 + nr) into dst (nr * Wo floats). */
static void gather_row(const sq_conv3d *p, const im2col *g, const float *xc, int a, int b, int c,
                       int r0, int nr, float *dst) {
    const int Wo = g->o.w, sw = p->stride[2], w0 = c - p->pad[2];
    /* output columns whose input column lies inside [0, W) */
    int lo = w0 >= 0 ? 0 : (-w0 + sw - 1) / sw;
    int hi = (p->in.w - 1 - w0) / sw + 1;
    if (p->in.w - 1 - w0 < 0) hi = 0;
    if (hi > Wo) hi = Wo;
    if (lo > hi) lo = hi;
    for (int r = 0; r < nr; r++) {
        const int od = (r0 + r) / g->o.h, oh = (r0 + r) % g->o.h;
        const int id = od * p->stride[0] - p->pad[0] + a, ih = oh * p->stride[1] - p->pad[1] + b;
        float *d = dst + (size_t)r * Wo;
        if (id < 0 || id >= p->in.d || ih < 0 || ih >= p->in.h) {
            memset(d, 0, (size_t)Wo * sizeof(float));
            continue;
        }
        const float *src = xc + ((size_t)id * p->in.h + ih) * p->in.w + w0;
        for (int j = 0; j < lo; j++)
            d[j] = 0.0f;
        if (sw == 1)
            memcpy(d + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
        else
            for (int j = lo; j < hi; j++)
                d[j] = src[(size_t)j * sw];
        for (int j = hi; j < Wo; j++)
            d[j] = 0.0f;
    }
}

/* The patch matrix of tile i (kp x T, row pitch T) into P; returns the sample, *c0 its first
 * output column, *len its width. */
static int gather_tile(const sq_conv3d *p, const im2col *g, const float *px, int i, float *P,
                       size_t *c0, size_t *len) {
    const int n = i / g->per_plane, r0 = (i % g->per_plane) * g->rows;
    const int nrows = g->o.d * g->o.h, nr = r0 + g->rows < nrows ? g->rows : nrows - r0;
    *c0 = (size_t)r0 * g->o.w;
    *len = (size_t)nr * g->o.w;
    int r = 0;
    for (int ci = 0; ci < p->in.c; ci++) {
        const float *xc = px + ((size_t)n * p->in.c + ci) * g->Si;
        for (int a = 0; a < p->k[0]; a++)
            for (int b = 0; b < p->k[1]; b++)
                for (int c = 0; c < p->k[2]; c++, r++)
                    gather_row(p, g, xc, a, b, c, r0, nr, P + (size_t)r * *len);
    }
    return n;
}

sq_code sq_cpu_im2col_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                          sq_view y, sq_status *st) {
    const float *px = sq_cpu_f(x), *pw = sq_cpu_f(w), *pb = sq_cpu_f(b);
    float *py = sq_cpu_f(y);
    const im2col g = im2col_of(p);
    const int Cout = p->cout;
    sq_cpu *cs = sq_cpu_of(be);
    SQ_TRY(sq_cpu_scratch_reserve(cs, (size_t)g.kp * g.rows * g.o.w, st));
    int bad = 0;
#pragma omp parallel for schedule(static) NT reduction(| : bad)
    for (int i = 0; i < g.count; i++) {
        float *P = cs->scratch[omp_get_thread_num()].p;
        SEQUENTIAL_SGEMM();
        size_t c0, len;
        const int n = gather_tile(p, &g, px, i, P, &c0, &len);
        float *yt = py + (size_t)n * Cout * g.So + c0;
        bad |= dnnl_sgemm('N', 'N', Cout, (dnnl_dim_t)len, g.kp, 1.0f, pw, g.kp, P, (dnnl_dim_t)len,
                          0.0f, yt, (dnnl_dim_t)g.So) != dnnl_success;
        if (pb)
            for (int co = 0; co < Cout; co++) {
                float *row = yt + (size_t)co * g.So;
                const float bias = pb[co];
#pragma omp simd
                for (size_t j = 0; j < len; j++)
                    row[j] += bias;
            }
    }
    return gemm_check(bad ? dnnl_runtime_error : dnnl_success, st);
}

static sq_code im2col_bwd_weights(sq_backend *be, const sq_conv3d *p, const float *px,
                                  const float *pdy, float *pdw, sq_status *st) {
    const im2col g = im2col_of(p);
    const int Cout = p->cout;
    const size_t nw = (size_t)Cout * g.kp;
    sq_cpu *cs = sq_cpu_of(be);
    SQ_TRY(sq_cpu_scratch_reserve(cs, (size_t)g.kp * g.rows * g.o.w, st));
    SQ_TRY(sq_cpu_scratch_grow(&cs->gemm_part, nw * (size_t)g.count, st));
    float *part = cs->gemm_part.p;
    int bad = 0;
#pragma omp parallel for schedule(static) NT reduction(| : bad)
    for (int i = 0; i < g.count; i++) {
        float *P = cs->scratch[omp_get_thread_num()].p;
        SEQUENTIAL_SGEMM();
        size_t c0, len;
        const int n = gather_tile(p, &g, px, i, P, &c0, &len);
        bad |= dnnl_sgemm('N', 'T', Cout, g.kp, (dnnl_dim_t)len, 1.0f,
                          pdy + (size_t)n * Cout * g.So + c0, (dnnl_dim_t)g.So, P, (dnnl_dim_t)len,
                          0.0f, part + (size_t)i * nw, g.kp) != dnnl_success;
    }
    SQ_TRY(gemm_check(bad ? dnnl_runtime_error : dnnl_success, st));
    add_partials(be, part, g.count, nw, pdw);
    return SQ_OK;
}

sq_code sq_cpu_im2col_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                          sq_view dx, sq_view dw, sq_view db, sq_status *st) {
    const float *pdy = sq_cpu_f(dy);
    if (dx.buf)
        SQ_TRY(sq_cpu_dnnl_conv_bwd(be, p, 1, x, w, dy, dx, sq_view_none(), sq_view_none(), st));
    if (dw.buf) SQ_TRY(im2col_bwd_weights(be, p, sq_cpu_f(x), pdy, sq_cpu_f(dw), st));
    if (db.buf) {
        sq_conv3d q = *p; /* the bias gradient sums dy over the output plane */
        q.in.d = sq_conv3d_out(p).d, q.in.h = sq_conv3d_out(p).h, q.in.w = sq_conv3d_out(p).w;
        bias_grad(be, &q, pdy, sq_cpu_f(db));
    }
    return SQ_OK;
}
