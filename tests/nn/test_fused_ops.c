/* test_fused_ops.c — the CPU backend's optional fusions (nn/backend.h) against float64 references
 * and against the separate ops they replace:
 *  - conv1x1_scaled_fwd/bwd: y = W (s * x) + b and its gradients dx, dscale, dw, db, at shapes
 * whose planes are not a multiple of the GEMM tiles (2048 / 8192 columns) and with 1-3 samples;
 *    references in double, tolerance 2e-6 * sqrt(terms summed) relative to max |ref| per tensor;
 * the same op on 1 and 2 threads bit-identical; a wrong kernel or stride is refused;
 *  - gap_bwd_add: dx += dy / S bit-identical to gap_bwd into a temporary then add (the unfused
 *    path it replaces in the model).
 * A perturbed reference must fail (the control), so the comparisons can fail.
 */
#include "nn/cpu/cpu_backend.h"
#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_fail;

typedef struct dev {
    sq_backend *be;
    sq_buf *b;
} dev;

static dev put(sq_backend *be, const float *h, size_t n) {
    sq_status st;
    sq_status_clear(&st);
    dev d = {be, NULL};
    if (be->buf_alloc(be, n * sizeof(float), &d.b, &st) != SQ_OK) {
        printf("FAIL alloc: %s\n", st.msg);
        exit(1);
    }
    if (h)
        be->upload(be, d.b, 0, h, n * sizeof(float), &st);
    else
        be->fill(be, d.b, 0, 0, n * sizeof(float), &st);
    return d;
}
static void get(dev d, float *h, size_t n) {
    sq_status st;
    sq_status_clear(&st);
    d.be->download(d.be, h, d.b, 0, n * sizeof(float), &st);
}
static sq_view V(dev d) {
    return sq_view_of(d.b, 0);
}
static void drop(dev *d) {
    d->be->buf_free(d->be, d->b);
    d->b = NULL;
}

static float *rnd(size_t n, float lo, float hi, uint64_t seed) {
    sq_rng r;
    sq_rng_init(&r, seed, 0, 0);
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = sq_rng_uniform_range(&r, lo, hi);
    return p;
}

/* max |got - ref| <= tol * max |ref|; perturb: the control (ref[0] moved), must fail. */
static int close_to(const char *label, const char *what, const float *got, const double *ref,
                    size_t n, double tol, int quiet) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(got[i] - ref[i]));
        m = fmax(m, fabs(ref[i]));
    }
    const int ok = d <= tol * (m > 0 ? m : 1);
    if (!quiet)
        printf("  %-28s %-8s max|diff| %.3e  max|ref| %.3e  tol %.1e rel  %s\n", label, what, d, m,
               tol, ok ? "PASS" : "FAIL");
    return ok;
}

typedef struct scase {
    int n, cin, cout, d, h, w, bias;
} scase;

typedef struct sref {
    double *y, *dx, *ds, *dw, *db;
} sref;

/* Float64 references of the fused op at case k. */
static sref reference(const scase *k, const float *x, const float *s, const float *w,
                      const float *b, const float *dy) {
    const size_t S = (size_t)k->d * k->h * k->w;
    sref r = {calloc((size_t)k->n * k->cout * S, 8), calloc((size_t)k->n * k->cin * S, 8),
              calloc((size_t)k->n * k->cin, 8), calloc((size_t)k->cout * k->cin, 8),
              calloc((size_t)k->cout, 8)};
    for (int n = 0; n < k->n; n++)
        for (int co = 0; co < k->cout; co++)
            for (int ci = 0; ci < k->cin; ci++) {
                const double wk = w[co * k->cin + ci], sc = s[n * k->cin + ci];
                const float *xr = x + ((size_t)n * k->cin + ci) * S;
                const float *gr = dy + ((size_t)n * k->cout + co) * S;
                double *yr = r.y + ((size_t)n * k->cout + co) * S;
                double *dxr = r.dx + ((size_t)n * k->cin + ci) * S;
                double g = 0;
                for (size_t p = 0; p < S; p++) {
                    yr[p] += wk * sc * xr[p];
                    dxr[p] += wk * sc * gr[p];
                    g += (double)gr[p] * xr[p];
                }
                r.dw[co * k->cin + ci] += g * sc;
                r.ds[n * k->cin + ci] += g * wk;
            }
    for (int n = 0; n < k->n; n++)
        for (int co = 0; co < k->cout; co++)
            for (size_t p = 0; p < S; p++) {
                const double bb = k->bias ? b[co] : 0;
                r.y[((size_t)n * k->cout + co) * S + p] += bb;
                r.db[co] += dy[((size_t)n * k->cout + co) * S + p];
            }
    return r;
}

typedef struct sout {
    float *y, *dx, *ds, *dw, *db;
} sout;

/* The fused op on backend be; dw and db start from 0.25 (accumulated), as the model's buffers. */
static sout run_fused(sq_backend *be, const scase *k, const float *x, const float *s,
                      const float *w, const float *b, const float *dy) {
    const size_t S = (size_t)k->d * k->h * k->w, nx = (size_t)k->n * k->cin * S,
                 ny = (size_t)k->n * k->cout * S, nw = (size_t)k->cout * k->cin;
    sq_conv3d p = {{k->n, k->cin, k->d, k->h, k->w}, k->cout, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    float *acc0 = malloc(nw * sizeof(float));
    for (size_t i = 0; i < nw; i++)
        acc0[i] = 0.25f;
    dev X = put(be, x, nx), Sd = put(be, s, (size_t)k->n * k->cin), W = put(be, w, nw),
        B = put(be, b, (size_t)k->cout), Y = put(be, NULL, ny), DY = put(be, dy, ny),
        DX = put(be, NULL, nx), DS = put(be, NULL, (size_t)k->n * k->cin), DW = put(be, acc0, nw),
        DB = put(be, acc0, (size_t)k->cout);
    sq_status st;
    sq_status_clear(&st);
    sq_code rc = be->conv1x1_scaled_fwd(be, &p, V(X), V(Sd), V(W), k->bias ? V(B) : sq_view_none(),
                                        V(Y), &st);
    if (rc == SQ_OK)
        rc = be->conv1x1_scaled_bwd(be, &p, V(X), V(Sd), V(W), V(DY), V(DX), V(DS), V(DW), V(DB),
                                    &st);
    if (rc != SQ_OK) printf("FAIL conv1x1_scaled: %s\n", st.msg), g_fail++;
    sout o = {malloc(ny * 4), malloc(nx * 4), malloc((size_t)k->n * k->cin * 4), malloc(nw * 4),
              malloc((size_t)k->cout * 4)};
    get(Y, o.y, ny), get(DX, o.dx, nx), get(DS, o.ds, (size_t)k->n * k->cin), get(DW, o.dw, nw),
        get(DB, o.db, (size_t)k->cout);
    for (size_t i = 0; i < nw; i++)
        o.dw[i] -= 0.25f;
    for (int i = 0; i < k->cout; i++)
        o.db[i] -= 0.25f;
    dev *all[] = {&X, &Sd, &W, &B, &Y, &DY, &DX, &DS, &DW, &DB};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        drop(all[i]);
    free(acc0);
    return o;
}

static void sout_free(sout *o) {
    free(o->y), free(o->dx), free(o->ds), free(o->dw), free(o->db);
}

static int same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void scaled_case(sq_backend *be1, sq_backend *be2, const scase *k, int control) {
    const size_t S = (size_t)k->d * k->h * k->w, nx = (size_t)k->n * k->cin * S,
                 ny = (size_t)k->n * k->cout * S, nw = (size_t)k->cout * k->cin;
    char label[96];
    snprintf(label, sizeof label, "%dx%d->%d x %dx%dx%d%s", k->n, k->cin, k->cout, k->d, k->h, k->w,
             k->bias ? " +b" : "");
    float *x = rnd(nx, -1, 1, 1), *s = rnd((size_t)k->n * k->cin, 0, 1, 2), *w = rnd(nw, -1, 1, 3),
          *b = rnd((size_t)k->cout, -1, 1, 4), *dy = rnd(ny, -1, 1, 5);
    sref r = reference(k, x, s, w, b, dy);
    if (control) r.dw[0] += 0.01 * (1 + fabs(r.dw[0]));
    sout o = run_fused(be2, k, x, s, w, b, dy);
    const double tS = 2e-6 * sqrt((double)S * k->n), tC = 2e-6 * sqrt((double)k->cout + k->cin);
    int ok = close_to(label, "y", o.y, r.y, ny, tC, control);
    ok &= close_to(label, "dx", o.dx, r.dx, nx, tC, control);
    ok &= close_to(label, "dscale", o.ds, r.ds, (size_t)k->n * k->cin, tS, control);
    ok &= close_to(label, "dw", o.dw, r.dw, nw, tS, control);
    ok &= close_to(label, "db", o.db, r.db, (size_t)k->cout, tS, control);
    if (control) {
        printf("  control (dw reference perturbed, must FAIL): %s\n", ok ? "FAIL" : "PASS");
        g_fail += ok;
    } else {
        g_fail += !ok;
        sout o1 = run_fused(be1, k, x, s, w, b, dy);
        const int bits = same_bits(o.y, o1.y, ny) && same_bits(o.dx, o1.dx, nx) &&
                         same_bits(o.ds, o1.ds, (size_t)k->n * k->cin) &&
                         same_bits(o.dw, o1.dw, nw) && same_bits(o.db, o1.db, (size_t)k->cout);
        printf("  %-28s 1 thread vs 2: %s\n", label, bits ? "bit-identical PASS" : "differ FAIL");
        g_fail += !bits;
        sout_free(&o1);
    }
    sout_free(&o);
    free(r.y), free(r.dx), free(r.ds), free(r.dw), free(r.db);
    free(x), free(s), free(w), free(b), free(dy);
}

static void refuses_non_1x1(sq_backend *be) {
    sq_conv3d p = {{1, 4, 4, 4, 4}, 4, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}};
    sq_status st;
    sq_status_clear(&st);
    const sq_view none = sq_view_none();
    const sq_code rc = be->conv1x1_scaled_fwd(be, &p, none, none, none, none, none, &st);
    const int ok = rc == SQ_ERR_UNSUPPORTED && strstr(st.msg, "expected a 1x1x1 kernel");
    printf("  conv1x1_scaled refuses a 3x3x3 kernel: %s (%s)\n", ok ? "PASS" : "FAIL", st.msg);
    g_fail += !ok;
}

static void gap_add_case(sq_backend *be, sq_shape5 s) {
    const size_t n = (size_t)sq_shape5_numel(s), nc = (size_t)s.n * s.c;
    float *dy = rnd(nc, -1, 1, 7), *base = rnd(n, -1, 1, 8);
    float *fused = malloc(n * 4), *sep = malloc(n * 4);
    dev DY = put(be, dy, nc), A = put(be, base, n), B = put(be, base, n), T = put(be, NULL, n);
    sq_status st;
    sq_status_clear(&st);
    sq_code rc = be->gap_bwd_add(be, s, V(DY), V(A), &st);
    if (rc == SQ_OK) rc = be->gap_bwd(be, s, V(DY), V(T), &st);
    if (rc == SQ_OK) rc = be->add(be, (int64_t)n, V(B), V(T), V(B), &st);
    get(A, fused, n), get(B, sep, n);
    const int ok = rc == SQ_OK && same_bits(fused, sep, n);
    printf("  gap_bwd_add %dx%dx%dx%dx%d = gap_bwd + add: %s\n", s.n, s.c, s.d, s.h, s.w,
           ok ? "bit-identical PASS" : "FAIL");
    g_fail += !ok;
    drop(&DY), drop(&A), drop(&B), drop(&T);
    free(dy), free(base), free(fused), free(sep);
}

int main(void) {
    sq_status st;
    sq_status_clear(&st);
    sq_backend *be1 = sq_backend_cpu_create(1, &st), *be2 = sq_backend_cpu_create(2, &st);
    if (!be1 || !be2 || !be2->conv1x1_scaled_fwd || !be2->conv1x1_scaled_bwd || !be2->gap_bwd_add) {
        printf("FAIL: the CPU backend lacks its fusions (%s)\n", st.msg);
        return 1;
    }
    printf("conv1x1_scaled (the squeeze-excitation's scale folded into the projection):\n");
    const scase cases[] = {
        {2, 32, 16, 7, 20, 20, 0},  /* 2800 columns: one full and one partial tile */
        {3, 24, 40, 3, 61, 50, 1},  /* 9150 columns: beyond one weight-gradient tile */
        {1, 5, 3, 1, 3, 7, 1},      /* tiny */
        {2, 48, 24, 14, 20, 20, 0}, /* a model shape (P3) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        scaled_case(be1, be2, &cases[i], 0);
    scaled_case(be1, be2, &cases[0], 1);
    refuses_non_1x1(be2);
    printf("gap_bwd_add:\n");
    gap_add_case(be2, (sq_shape5){2, 32, 7, 20, 20});
    gap_add_case(be1, (sq_shape5){3, 5, 1, 3, 7});
    be1->destroy(be1);
    be2->destroy(be2);
    printf("%s\n", g_fail ? "FAIL" : "PASS");
    return g_fail ? 1 : 0;
}
