/* test_cuda_dwconv_host.cu — host-only check of the CUDA depthwise-convolution kernels
 * (cuda/dwconv.cu): runs the kernels' per-thread functions from cuda/dwconv_math.cuh in loops that
 * emulate their grids and blocks (including stage 1's per-block partial sums with the warp tree
 * and stage 2's fixed-order combine) and compares forward, backward data, weight and bias
 * gradients with the CPU backend (the oracle) and with a double-precision reference, at the
 * network's shapes and odd small ones. dw / db start non-zero on both sides (accumulation), dx
 * starts as garbage (overwrite). Fast paths are also checked bitwise against the generic ones.
 * No GPU needed. Prints one line per case and check; returns 0 on success, 1 on failure.
 */
#include "cuda/dwconv_math.cuh"

/* nn/cpu/cpu_backend.h does not compile as C++ today (its extern "C" block closes early and a
 * stray brace follows), so its one declaration is repeated here. */
extern "C" sq_backend *sq_backend_cpu_create(int threads, sq_status *st);

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <vector>

typedef std::vector<float> fvec;
typedef std::vector<double> dvec;

static const double U = 5.9604644775390625e-8; /* 2^-24, float unit roundoff */

enum { WANT_DX = 1, WANT_DW = 2, WANT_DB = 4, WANT_ALL = 7 };

struct tcase {
    int n, c, d, h, w;
    int k[3], s[3], p[3]; /* p[0] < 0: pad k/2 on every axis */
    int bias;             /* forward with a bias */
    int want;             /* WANT_* of the backward */
};

static int g_fail = 0;

/* ---- data --------------------------------------------------------------------------------------
 */

static unsigned g_rng = 12345u;
static float urand(void) { /* [-1, 1) */
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((g_rng >> 8) * (1.0 / 8388608.0)) - 1.0f;
}
static fvec rand_vec(size_t n) {
    fvec v(n);
    for (size_t i = 0; i < n; i++)
        v[i] = urand();
    return v;
}

/* ---- emulated kernels ---------------------------------------------------------------------------
 */

/* A kernel over grid (gx, C, N) x DW_TPB threads: f(n, c, idx) per thread. */
template <typename F> static void emu_grid_planes(const dw_geo &g, int items, F f) {
    const int gx = dw_ceil_div(items, DW_TPB);
    for (int n = 0; n < g.N; n++)
        for (int c = 0; c < g.C; c++)
            for (int bx = 0; bx < gx; bx++)
                for (int t = 0; t < DW_TPB; t++)
                    f(n, c, bx * DW_TPB + t);
}

static void emu_fwd(const dw_geo &g, int fast, const float *x, const float *w, const float *b,
                    float *y) {
    const int k = dw_fast_k(g);
    if (!fast) {
        emu_grid_planes(g, g.out_plane, [&](int n, int c, int i) {
            dw_fwd_generic_thread(g, x, w, b, y, n, c, i);
        });
        return;
    }
    const int items = g.Do * g.Ho * dw_nseg(g.Wo, DW_VW);
    emu_grid_planes(g, items, [&](int n, int c, int i) {
        if (k == 3 && g.sw == 1) dw_fwd_fast_thread<3, 1>(g, x, w, b, y, n, c, i);
        if (k == 3 && g.sw == 2) dw_fwd_fast_thread<3, 2>(g, x, w, b, y, n, c, i);
        if (k == 5 && g.sw == 1) dw_fwd_fast_thread<5, 1>(g, x, w, b, y, n, c, i);
        if (k == 5 && g.sw == 2) dw_fwd_fast_thread<5, 2>(g, x, w, b, y, n, c, i);
    });
}

static void emu_bwdd(const dw_geo &g, int fast, const float *dy, const float *w, float *dx) {
    const int k = dw_fast_k(g);
    if (!fast) {
        emu_grid_planes(g, g.in_plane, [&](int n, int c, int i) {
            dw_bwdd_generic_thread(g, dy, w, dx, n, c, i);
        });
        return;
    }
    emu_grid_planes(g, g.D * g.H * dw_nseg(g.W, DW_VW), [&](int n, int c, int i) {
        if (k == 3) dw_bwdd_fast_thread<3>(g, dy, w, dx, n, c, i);
        if (k == 5) dw_bwdd_fast_thread<5>(g, dy, w, dx, n, c, i);
    });
}

/* red[w * slots + s] = the warp tree of value(t, s) over the lanes of warp w (device: shuffles). */
template <typename V> static void emu_warp_trees(int slots, V value, double *red) {
    double lanes[DW_WARP];
    for (int w = 0; w < DW_NWARPS; w++)
        for (int s = 0; s < slots; s++) {
            for (int l = 0; l < DW_WARP; l++)
                lanes[l] = value(w * DW_WARP + l, s);
            red[w * slots + s] = dw_lane_tree(lanes);
        }
}

/* Stage 1, fast path, block (b, c): dw_wgt_fast_kernel. */
template <int K, int SW>
static void emu_wgt_fast_block(const dw_geo &g, const float *x, const float *dy, int c, int b,
                               int nblk, double *ws) {
    const int KV = K * K * K, SLOTS = KV + 1;
    static thread_local fvec acc;
    acc.assign((size_t)DW_TPB * KV, 0.0f);
    double bsum[DW_TPB];
    for (int t = 0; t < DW_TPB; t++) {
        bsum[t] = 0.0;
        dw_wgt_fast_accum<K, SW>(g, x, dy, c, b, t, &acc[(size_t)t * KV], &bsum[t]);
    }
    std::vector<double> red((size_t)DW_NWARPS * SLOTS);
    emu_warp_trees(
        SLOTS, [&](int t, int s) { return s < KV ? (double)acc[(size_t)t * KV + s] : bsum[t]; },
        red.data());
    /* __syncthreads(); then thread t writes slots t, t + DW_TPB, ... */
    for (int t = 0; t < DW_TPB; t++)
        for (int s = t; s < SLOTS; s += DW_TPB)
            ws[dw_ws_index(c, b, s, nblk, SLOTS)] = dw_block_sum(red.data(), SLOTS, s);
}

/* Stage 1, generic path, block (b, c, tap): dw_wgt_generic_kernel. */
static void emu_wgt_generic_block(const dw_geo &g, const float *x, const float *dy, int c, int b,
                                  int tap, int nblk, int do_w, int do_b, double *ws) {
    const int with_b = do_b && tap == 0;
    float acc[DW_TPB];
    double bsum[DW_TPB];
    for (int t = 0; t < DW_TPB; t++) {
        acc[t] = 0.0f;
        bsum[t] = 0.0;
        dw_wgt_generic_accum(g, x, dy, c, b, t, tap, do_w, with_b, &acc[t], &bsum[t]);
    }
    double red[DW_NWARPS * 2];
    emu_warp_trees(
        2, [&](int t, int s) { return s == 0 ? (double)acc[t] : bsum[t]; }, red);
    const int slots = g.kvol + 1;
    if (do_w) ws[dw_ws_index(c, b, tap, nblk, slots)] = dw_block_sum(red, 2, 0);
    if (with_b) ws[dw_ws_index(c, b, g.kvol, nblk, slots)] = dw_block_sum(red, 2, 1);
}

/* Both stages, as dw_weight_grads; fast_ok = 0 forces the generic stage 1. */
static void emu_wgt(const dw_geo &g, int fast_ok, const float *x, const float *dy, float *dw,
                    float *db) {
    const int fast = fast_ok && dw != nullptr && dw_fwd_fast(g);
    const int nblk = dw_wgt_nblk(g, fast), k = dw_fast_k(g);
    dvec ws(dw_ws_bytes(g, nblk) / sizeof(double), NAN); /* unwritten slots poison the result */
    for (int c = 0; c < g.C; c++)
        for (int b = 0; b < nblk; b++) {
            if (!fast) {
                for (int z = 0; z < (dw ? g.kvol : 1); z++)
                    emu_wgt_generic_block(g, x, dy, c, b, z, nblk, dw != nullptr, db != nullptr,
                                          ws.data());
            } else if (k == 3 && g.sw == 1) {
                emu_wgt_fast_block<3, 1>(g, x, dy, c, b, nblk, ws.data());
            } else if (k == 3 && g.sw == 2) {
                emu_wgt_fast_block<3, 2>(g, x, dy, c, b, nblk, ws.data());
            } else if (k == 5 && g.sw == 1) {
                emu_wgt_fast_block<5, 1>(g, x, dy, c, b, nblk, ws.data());
            } else {
                emu_wgt_fast_block<5, 2>(g, x, dy, c, b, nblk, ws.data());
            }
        }
    const int threads = g.C * (g.kvol + 1);
    for (int i = 0; i < dw_ceil_div(threads, DW_TPB) * DW_TPB; i++)
        dw_combine_thread(ws.data(), g, nblk, dw, db, i);
}

/* ---- double-precision reference (value and sum of |terms|) -------------------------------------
 */

static void ref_fwd(const dw_geo &g, const float *x, const float *w, const float *b, dvec &ref,
                    dvec &mag) {
    size_t o = 0;
    for (int n = 0; n < g.N; n++)
        for (int c = 0; c < g.C; c++) {
            const float *xp = x + dw_plane(g, n, c) * g.in_plane, *wc = w + (size_t)c * g.kvol;
            for (int od = 0; od < g.Do; od++)
                for (int oh = 0; oh < g.Ho; oh++)
                    for (int ow = 0; ow < g.Wo; ow++, o++) {
                        double s = b ? b[c] : 0.0, m = fabs(s);
                        for (int kd = 0; kd < g.kd; kd++)
                            for (int kh = 0; kh < g.kh; kh++)
                                for (int kw = 0; kw < g.kw; kw++) {
                                    const int id = od * g.sd - g.pd + kd,
                                              ih = oh * g.sh - g.ph + kh,
                                              iw = ow * g.sw - g.pw + kw;
                                    if (id < 0 || id >= g.D || ih < 0 || ih >= g.H || iw < 0 ||
                                        iw >= g.W)
                                        continue;
                                    const double t = (double)wc[(kd * g.kh + kh) * g.kw + kw] *
                                                     xp[((size_t)id * g.H + ih) * g.W + iw];
                                    s += t;
                                    m += fabs(t);
                                }
                        ref[o] = s;
                        mag[o] = m;
                    }
        }
}

/* The backward references by scatter (independent of the gather formulation). */
static void ref_bwd(const dw_geo &g, const float *x, const float *w, const float *dy, dvec &dx,
                    dvec &dxm, dvec &dw, dvec &dwm, dvec &db, dvec &dbm) {
    size_t o = 0;
    for (int n = 0; n < g.N; n++)
        for (int c = 0; c < g.C; c++) {
            const size_t pl = dw_plane(g, n, c);
            const float *xp = x + pl * g.in_plane, *wc = w + (size_t)c * g.kvol;
            for (int od = 0; od < g.Do; od++)
                for (int oh = 0; oh < g.Ho; oh++)
                    for (int ow = 0; ow < g.Wo; ow++, o++) {
                        const double d = dy[o];
                        db[c] += d;
                        dbm[c] += fabs(d);
                        for (int kd = 0; kd < g.kd; kd++)
                            for (int kh = 0; kh < g.kh; kh++)
                                for (int kw = 0; kw < g.kw; kw++) {
                                    const int id = od * g.sd - g.pd + kd,
                                              ih = oh * g.sh - g.ph + kh,
                                              iw = ow * g.sw - g.pw + kw;
                                    if (id < 0 || id >= g.D || ih < 0 || ih >= g.H || iw < 0 ||
                                        iw >= g.W)
                                        continue;
                                    const size_t xi = ((size_t)id * g.H + ih) * g.W + iw;
                                    const int tap = (kd * g.kh + kh) * g.kw + kw;
                                    const double tx = d * wc[tap], tw = d * xp[xi];
                                    dx[pl * g.in_plane + xi] += tx;
                                    dxm[pl * g.in_plane + xi] += fabs(tx);
                                    dw[(size_t)c * g.kvol + tap] += tw;
                                    dwm[(size_t)c * g.kvol + tap] += fabs(tw);
                                }
                    }
        }
}

/* ---- comparisons -------------------------------------------------------------------------------
 */

/* max |a - b| and max |a - b| / tol_i, tol_i = rel * mag[i] + abs_rel * |base[i]| (+ 1e-30);
 * any NaN counts as a failure. Returns 1 when every element is within its tolerance. */
struct cmp_res {
    double maxdiff, maxratio;
    int ok;
};
template <typename A, typename B>
static cmp_res compare(size_t n, const A *a, const B *b, const dvec &mag, double rel,
                       const float *base, double abs_rel) {
    cmp_res r = {0.0, 0.0, 1};
    for (size_t i = 0; i < n; i++) {
        const double diff = fabs((double)a[i] - (double)b[i]);
        const double tol = rel * mag[i] + (base ? abs_rel * fabs((double)base[i]) : 0.0) + 1e-30;
        if (!(diff <= tol)) r.ok = 0;
        if (!(diff <= r.maxdiff)) r.maxdiff = diff; /* NaN sticks */
        if (!(diff / tol <= r.maxratio)) r.maxratio = diff / tol;
    }
    return r;
}

static void report(const char *label, const char *shape, const char *check, cmp_res r,
                   const char *tol) {
    printf("%-4s %-44s %-10s max|diff| %.3e  max diff/tol %.3f  (tol %s)  %s\n", label, shape,
           check, r.maxdiff, r.maxratio, tol, r.ok ? "ok" : "FAIL");
    if (!r.ok) g_fail = 1;
}

static int bitwise_equal(size_t n, const float *a, const float *b) {
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i])) return 0;
    return 1;
}

/* ---- CPU backend -------------------------------------------------------------------------------
 */

struct cpu_bufs {
    sq_backend *be;
    std::vector<sq_buf *> bufs;
    sq_view put(const fvec &v, sq_status *st) {
        sq_buf *b = nullptr;
        if (be->buf_alloc(be, v.size() * sizeof(float) + 64, &b, st) != SQ_OK)
            return sq_view_none();
        bufs.push_back(b);
        be->upload(be, b, 0, v.data(), v.size() * sizeof(float), st);
        return sq_view_of(b, 0);
    }
    void get(sq_view v, fvec &out, sq_status *st) {
        be->download(be, out.data(), v.buf, 0, out.size() * sizeof(float), st);
    }
    ~cpu_bufs() {
        for (sq_buf *b : bufs)
            be->buf_free(be, b);
    }
};

/* ---- one case ----------------------------------------------------------------------------------
 */

static const char *path_name(int fast, int k, int sw) {
    static char buf[32];
    if (!fast) return "generic";
    snprintf(buf, sizeof buf, "fast k%d sw%d", k, sw);
    return buf;
}

static void run_case(sq_backend *be, const tcase &tc) {
    sq_conv3d p;
    memset(&p, 0, sizeof p);
    p.in = sq_shape5{tc.n, tc.c, tc.d, tc.h, tc.w};
    p.cout = tc.c;
    for (int a = 0; a < 3; a++) {
        p.k[a] = tc.k[a];
        p.stride[a] = tc.s[a];
        p.pad[a] = tc.p[0] < 0 ? tc.k[a] / 2 : tc.p[a];
    }
    sq_status st;
    dw_geo g;
    if (dw_validate(&p, &g, &st) != SQ_OK) {
        printf("case validation failed: %s\n", st.msg);
        g_fail = 1;
        return;
    }
    char shape[96];
    snprintf(shape, sizeof shape, "%dx%dx%dx%dx%d k%d%d%d s%d%d%d p%d%d%d", tc.n, tc.c, tc.d, tc.h,
             tc.w, p.k[0], p.k[1], p.k[2], p.stride[0], p.stride[1], p.stride[2], p.pad[0],
             p.pad[1], p.pad[2]);
    const size_t nin = (size_t)g.N * g.C * g.in_plane, nout = (size_t)g.N * g.C * g.out_plane;
    const size_t nw = (size_t)g.C * g.kvol;
    const fvec x = rand_vec(nin), w = rand_vec(nw), b = rand_vec(g.C), dy = rand_vec(nout);
    const fvec dw0 = rand_vec(nw), db0 = rand_vec(g.C);
    const int small = (double)nout * g.kvol < 2e7;
    const int kf = dw_fast_k(g);

    /* CPU oracle */
    cpu_bufs cb{be, {}};
    const sq_view vx = cb.put(x, &st), vw = cb.put(w, &st), vb = cb.put(b, &st);
    const sq_view vy = cb.put(fvec(nout, 0.0f), &st), vdy = cb.put(dy, &st);
    const sq_view vdx = cb.put(fvec(nin, 7.0f), &st), vdw = cb.put(dw0, &st),
                  vdb = cb.put(db0, &st);
    fvec y_cpu(nout), dx_cpu(nin), dw_cpu(nw), db_cpu(g.C);
    if (be->dwconv3d_fwd(be, &p, vx, vw, tc.bias ? vb : sq_view_none(), vy, &st) != SQ_OK ||
        be->dwconv3d_bwd(be, &p, vx, vw, vdy, (tc.want & WANT_DX) ? vdx : sq_view_none(),
                         (tc.want & WANT_DW) ? vdw : sq_view_none(),
                         (tc.want & WANT_DB) ? vdb : sq_view_none(), &st) != SQ_OK) {
        printf("%s: CPU backend failed: %s\n", shape, st.msg);
        g_fail = 1;
        return;
    }
    cb.get(vy, y_cpu, &st);
    cb.get(vdx, dx_cpu, &st);
    cb.get(vdw, dw_cpu, &st);
    cb.get(vdb, db_cpu, &st);

    /* double reference */
    dvec yr(nout), ym(nout), dxr(nin, 0.0), dxm(nin, 0.0), dwr(nw, 0.0), dwm(nw, 0.0);
    dvec dbr(g.C, 0.0), dbm(g.C, 0.0);
    const float *bp = tc.bias ? b.data() : nullptr;
    ref_fwd(g, x.data(), w.data(), bp, yr, ym);
    ref_bwd(g, x.data(), w.data(), dy.data(), dxr, dxm, dwr, dwm, dbr, dbm);

    /* forward: emulated kernels vs CPU (both float, <= kvol+1 roundings each) and vs double */
    const int ffast = dw_fwd_fast(g);
    fvec y(nout, NAN);
    emu_fwd(g, ffast, x.data(), w.data(), bp, y.data());
    char tol[64];
    const double rf = (g.kvol + 2) * U;
    snprintf(tol, sizeof tol, "%.1e*sum|w*x|", 2 * rf);
    report("fwd", shape, "vs cpu", compare(nout, y.data(), y_cpu.data(), ym, 2 * rf, nullptr, 0),
           tol);
    snprintf(tol, sizeof tol, "%.1e*sum|w*x|", rf);
    report("fwd", shape, "vs double", compare(nout, y.data(), yr.data(), ym, rf, nullptr, 0), tol);
    if (ffast && small) {
        fvec yg(nout, NAN);
        emu_fwd(g, 0, x.data(), w.data(), bp, yg.data());
        const int eq = bitwise_equal(nout, y.data(), yg.data());
        printf("fwd  %-44s %s == generic: %s\n", shape, path_name(1, kf, g.sw),
               eq ? "bitwise ok" : "FAIL");
        if (!eq) g_fail = 1;
    }

    /* backward data */
    if (tc.want & WANT_DX) {
        const int bfast = dw_bwdd_fast(g);
        fvec dx(nin, NAN);
        emu_bwdd(g, bfast, dy.data(), w.data(), dx.data());
        snprintf(tol, sizeof tol, "%.1e*sum|w*dy|", 2 * rf);
        report("dx", shape, "vs cpu",
               compare(nin, dx.data(), dx_cpu.data(), dxm, 2 * rf, nullptr, 0), tol);
        snprintf(tol, sizeof tol, "%.1e*sum|w*dy|", rf);
        report("dx", shape, "vs double", compare(nin, dx.data(), dxr.data(), dxm, rf, nullptr, 0),
               tol);
        if (bfast && small) {
            fvec dxg(nin, NAN);
            emu_bwdd(g, 0, dy.data(), w.data(), dxg.data());
            const int eq = bitwise_equal(nin, dx.data(), dxg.data());
            printf("dx   %-44s %s == generic: %s\n", shape, path_name(1, kf, 1),
                   eq ? "bitwise ok" : "FAIL");
            if (!eq) g_fail = 1;
        }
    }

    /* weight and bias gradients, accumulated onto dw0 / db0.
     * Ours: <= 32 float products per thread and tap, then double; the CPU sums a whole output
     * slice per 8-lane float accumulator (up to Ho*Wo terms), then double. */
    if (tc.want & (WANT_DW | WANT_DB)) {
        fvec dw = dw0, db = db0;
        float *pdw = (tc.want & WANT_DW) ? dw.data() : nullptr;
        float *pdb = (tc.want & WANT_DB) ? db.data() : nullptr;
        emu_wgt(g, 1, x.data(), dy.data(), pdw, pdb);
        const int wfast = pdw && dw_fwd_fast(g);
        const double r_ours = 40 * U, r_cpu = ((double)g.Ho * g.Wo + 4) * U;
        dvec dwref(nw), dbref(g.C), dwmag(nw), dbmag(g.C);
        for (size_t i = 0; i < nw; i++) {
            dwref[i] = pdw ? dw0[i] + dwr[i] : dw0[i];
            dwmag[i] = pdw ? dwm[i] + fabs(dw0[i]) : 0.0;
        }
        for (int c = 0; c < g.C; c++) {
            dbref[c] = pdb ? db0[c] + dbr[c] : db0[c];
            dbmag[c] = pdb ? dbm[c] + fabs(db0[c]) : 0.0;
        }
        snprintf(tol, sizeof tol, "%.1e*mag", r_ours + r_cpu);
        report("dw", shape, "vs cpu",
               compare(nw, dw.data(), dw_cpu.data(), dwmag, r_ours + r_cpu, nullptr, 0), tol);
        snprintf(tol, sizeof tol, "%.1e*mag", r_ours);
        report("dw", shape, "vs double",
               compare(nw, dw.data(), dwref.data(), dwmag, r_ours, nullptr, 0), tol);
        report("db", shape, "vs cpu",
               compare(g.C, db.data(), db_cpu.data(), dbmag, 8 * U, nullptr, 0), "4.8e-7*mag");
        report("db", shape, "vs double",
               compare(g.C, db.data(), dbref.data(), dbmag, 4 * U, nullptr, 0), "2.4e-7*mag");
        if (wfast && small) {
            fvec dwg = dw0, dbg = db0;
            emu_wgt(g, 0, x.data(), dy.data(), pdw ? dwg.data() : nullptr,
                    pdb ? dbg.data() : nullptr);
            report("dw", shape, "fast~gen",
                   compare(nw, dw.data(), dwg.data(), dwmag, 2 * r_ours, nullptr, 0), "8e-6*mag");
        }
        printf("     %-44s paths: fwd %s, dx %s, dw %s, nblk %d\n", shape,
               path_name(ffast, kf, g.sw), path_name(dw_bwdd_fast(g), kf, 1),
               path_name(wfast, kf, g.sw), dw_wgt_nblk(g, wfast));
    }
    fflush(stdout);
}

/* ---- validation --------------------------------------------------------------------------------
 */

static void check_codes(sq_backend *be) {
    struct bad {
        int k, s, cout;
        sq_code want;
    } cases[] = {{8, 1, 4, SQ_ERR_UNSUPPORTED},
                 {3, 9, 4, SQ_ERR_UNSUPPORTED},
                 {3, 1, 5, SQ_ERR_RANGE},
                 {7, 8, 4, SQ_OK}};
    for (const bad &c : cases) {
        sq_conv3d p;
        memset(&p, 0, sizeof p);
        p.in = sq_shape5{1, 4, 9, 9, 9};
        p.cout = c.cout;
        for (int a = 0; a < 3; a++) {
            p.k[a] = a == 2 ? c.k : 3;
            p.stride[a] = a == 1 ? c.s : 1;
            p.pad[a] = p.k[a] / 2;
        }
        sq_status st;
        dw_geo g;
        const sq_code ours = dw_validate(&p, &g, &st);
        sq_code cpu = ours;
        if (c.want != SQ_OK) /* the CPU validates before touching the (none) views */
            cpu = be->dwconv3d_fwd(be, &p, sq_view_none(), sq_view_none(), sq_view_none(),
                                   sq_view_none(), &st);
        const int ok = ours == c.want && cpu == c.want;
        printf("validate k%d s%d cout%d: ours %s, cpu %s, want %s: %s\n", c.k, c.s, c.cout,
               sq_code_name(ours), sq_code_name(cpu), sq_code_name(c.want), ok ? "ok" : "FAIL");
        if (!ok) g_fail = 1;
    }
}

int main(void) {
    sq_status st;
    sq_backend *be = sq_backend_cpu_create(1, &st);
    if (!be) {
        printf("cpu backend: %s\n", st.msg);
        return 1;
    }
    check_codes(be);
    const int A = WANT_ALL;
    const tcase cases[] = {
        /* network shapes (paper N=2, 28x160x160 input; some channel counts reduced for time) */
        {2, 32, 28, 80, 80, {3, 3, 3}, {1, 1, 1}, {-1}, 1, A},
        {2, 48, 28, 80, 80, {3, 3, 3}, {1, 2, 2}, {-1}, 1, A},
        {1, 2, 28, 160, 160, {3, 3, 3}, {1, 1, 1}, {-1}, 1, A}, /* full paper-like planes */
        {1, 2, 28, 160, 160, {3, 3, 3}, {1, 2, 2}, {-1}, 0, A},
        {2, 96, 14, 40, 40, {5, 5, 5}, {2, 2, 2}, {-1}, 1, A},
        {2, 160, 7, 20, 20, {5, 5, 5}, {1, 1, 1}, {-1}, 1, A},
        {1, 384, 4, 10, 10, {5, 5, 5}, {1, 1, 1}, {-1}, 1, A},
        {2, 640, 1, 5, 5, {3, 3, 3}, {1, 1, 1}, {-1}, 1, A},
        {2, 320, 2, 5, 5, {5, 5, 5}, {2, 2, 2}, {-1}, 0, A},
        {2, 2, 16, 24, 16, {3, 3, 3}, {1, 2, 2}, {-1}, 1, A},
        /* odd small shapes */
        {1, 3, 5, 7, 3, {3, 3, 3}, {2, 2, 2}, {-1}, 1, A},
        {2, 2, 1, 1, 1, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, A},
        {1, 5, 3, 5, 7, {5, 5, 5}, {2, 2, 2}, {-1}, 1, A},
        {2, 3, 7, 9, 13, {5, 5, 5}, {1, 1, 1}, {-1}, 0, A},
        {1, 3, 7, 1, 5, {3, 3, 3}, {1, 1, 2}, {-1}, 1, A},
        {2, 3, 6, 7, 9, {3, 3, 3}, {2, 1, 2}, {1, 0, 1}, 1, A},  /* pad 0 in H */
        {1, 2, 6, 8, 10, {3, 3, 3}, {2, 2, 2}, {0, 0, 0}, 1, A}, /* uncovered inputs: dx 0 */
        {1, 2, 5, 6, 7, {3, 3, 3}, {1, 1, 1}, {2, 2, 2}, 1, A},  /* pad > k/2 */
        /* k 7, stride 3, stride 8, anisotropic and k 1 (generic paths) */
        {1, 4, 9, 11, 13, {7, 7, 7}, {1, 1, 1}, {-1}, 1, A},
        {2, 3, 10, 11, 12, {7, 7, 7}, {3, 3, 3}, {-1}, 1, A},
        {2, 3, 7, 10, 11, {3, 3, 3}, {3, 3, 3}, {-1}, 1, A},
        {1, 3, 9, 13, 17, {5, 5, 5}, {3, 3, 3}, {-1}, 1, A},
        {1, 2, 9, 17, 20, {3, 5, 7}, {8, 8, 8}, {1, 2, 3}, 1, A},
        {2, 3, 5, 8, 9, {1, 3, 5}, {1, 2, 1}, {-1}, 1, A},
        {1, 4, 3, 6, 5, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, A},
        {1, 3, 6, 9, 11, {3, 3, 3}, {1, 1, 3}, {-1}, 1, A}, /* k3 but W stride 3: generic */
        /* subsets of the backward outputs (db alone: the bias-only stage 1) */
        {2, 5, 4, 6, 9, {3, 3, 3}, {1, 2, 2}, {-1}, 1, WANT_DB},
        {2, 5, 4, 6, 9, {5, 5, 5}, {1, 1, 1}, {-1}, 1, WANT_DW},
        {2, 5, 4, 6, 9, {3, 3, 3}, {1, 1, 1}, {-1}, 1, WANT_DX | WANT_DB},
        {2, 5, 4, 6, 9, {7, 7, 7}, {2, 1, 1}, {-1}, 1, WANT_DW | WANT_DB},
    };
    for (const tcase &tc : cases)
        run_case(be, tc);
    be->destroy(be);
    printf("%s\n", g_fail ? "FAILED" : "all dwconv host checks passed");
    return g_fail;
}
