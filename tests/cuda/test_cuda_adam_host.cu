// test_cuda_adam_host.cu — host check of the CUDA Adam (cuda/adam.cu) against the CPU backend's.
//
// Runs adam_math.cuh's per-element update in host loops that emulate the kernel's work split
// (every block and thread of the grid-stride loop, for the H200's 132 SMs and for 1 SM), checks
// that each element is visited exactly once, and compares params, m and v with the CPU backend's
// adam() after several steps (1..5, then 1000 and 1001), bit for bit. No GPU needed.
// Prints one line per case; returns 0 when all pass.
#include "cuda/adam_math.cuh"
#include "nn/backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

// nn/cpu/cpu_backend.h does not compile as C++ (its extern "C" block is closed early), so the one
// function needed is declared here.
extern "C" sq_backend *sq_backend_cpu_create(int threads, sq_status *st);

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double uniform01() { // xorshift64*
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

// Gradients over many magnitudes (1e-8 .. 1e2), some exact zeros, both signs.
static float random_grad() {
    const double u = uniform01();
    if (u < 0.02) return 0.0f;
    const double mag = pow(10.0, -8.0 + 10.0 * uniform01());
    return (float)(uniform01() < 0.5 ? -mag : mag);
}

struct state {
    std::vector<float> p, g, m, v;
};

// Distance in units in the last place (bit patterns ordered as integers).
static int64_t ulp_diff(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    const int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia;
    const int64_t ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return oa > ob ? oa - ob : ob - oa;
}

// The kernel's work split, on the host: block b, thread t visits t + b*T, then strides by grid.
static bool emulate_kernel(const sq_adam *a, int64_t n, int sm_count, state &s,
                           std::vector<unsigned char> &visits) {
    const sq_adam_coef k = sq_adam_coef_of(a);
    const unsigned blocks = sq_adam_blocks(n, sm_count);
    const int64_t stride = (int64_t)blocks * SQ_ADAM_THREADS;
    visits.assign((size_t)n, 0);
    for (unsigned b = 0; b < blocks; b++)
        for (int t = 0; t < SQ_ADAM_THREADS; t++)
            for (int64_t i = (int64_t)b * SQ_ADAM_THREADS + t; i < n; i += stride) {
                float pi = s.p[i], mi = s.m[i], vi = s.v[i];
                sq_adam_update(k, s.g[i], pi, mi, vi);
                s.p[i] = pi;
                s.m[i] = mi;
                s.v[i] = vi;
                visits[i]++;
            }
    for (int64_t i = 0; i < n; i++)
        if (visits[i] != 1) return false;
    return true;
}

struct cpu_bufs {
    sq_buf *p, *g, *m, *v;
};

static bool cpu_step(sq_backend *be, const sq_adam *a, int64_t n, cpu_bufs &b, state &s) {
    sq_status st;
    const size_t bytes = (size_t)n * sizeof(float);
    bool ok = be->upload(be, b.g, 0, s.g.data(), bytes, &st) == SQ_OK;
    ok = ok && be->adam(be, a, n, sq_view_of(b.p, 0), sq_view_of(b.g, 0), sq_view_of(b.m, 0),
                        sq_view_of(b.v, 0), &st) == SQ_OK;
    ok = ok && be->download(be, s.p.data(), b.p, 0, bytes, &st) == SQ_OK;
    ok = ok && be->download(be, s.m.data(), b.m, 0, bytes, &st) == SQ_OK;
    ok = ok && be->download(be, s.v.data(), b.v, 0, bytes, &st) == SQ_OK;
    if (!ok) fprintf(stderr, "cpu backend: %s\n", st.msg);
    return ok;
}

struct diff {
    int64_t max_ulp = 0;
    double max_abs = 0.0;
};

static void compare(const std::vector<float> &x, const std::vector<float> &y, diff &d) {
    for (size_t i = 0; i < x.size(); i++) {
        const int64_t u = ulp_diff(x[i], y[i]);
        if (u > d.max_ulp) d.max_ulp = u;
        const double a = fabs((double)x[i] - (double)y[i]);
        if (a > d.max_abs || a != a) d.max_abs = a;
    }
}

struct hyper {
    float lr, b1, b2, eps, wd;
};

static int run_case(sq_backend *be, int64_t n, int sm_count, hyper h, bool warm_state) {
    state ref, dev;
    ref.p.resize((size_t)n);
    ref.g.resize((size_t)n);
    ref.m.assign((size_t)n, 0.0f);
    ref.v.assign((size_t)n, 0.0f);
    for (int64_t i = 0; i < n; i++) {
        ref.p[i] = (float)(2.0 * uniform01() - 1.0);
        if (warm_state) { // a state as after many steps: m of either sign, v >= 0
            ref.m[i] = random_grad() * 0.1f;
            ref.v[i] = fabsf(random_grad()) * fabsf(random_grad());
        }
    }
    dev = ref;
    const size_t bytes = (size_t)n * sizeof(float);
    cpu_bufs b = {};
    sq_status st;
    bool ok = be->buf_alloc(be, bytes, &b.p, &st) == SQ_OK &&
              be->buf_alloc(be, bytes, &b.g, &st) == SQ_OK &&
              be->buf_alloc(be, bytes, &b.m, &st) == SQ_OK &&
              be->buf_alloc(be, bytes, &b.v, &st) == SQ_OK;
    ok = ok && be->upload(be, b.p, 0, ref.p.data(), bytes, &st) == SQ_OK &&
         be->upload(be, b.m, 0, ref.m.data(), bytes, &st) == SQ_OK &&
         be->upload(be, b.v, 0, ref.v.data(), bytes, &st) == SQ_OK;
    const long steps[] = {1, 2, 3, 4, 5, 1000, 1001};
    std::vector<unsigned char> visits;
    bool covered = true;
    for (long t : steps) {
        if (!ok) break;
        for (int64_t i = 0; i < n; i++)
            ref.g[i] = random_grad();
        dev.g = ref.g;
        const sq_adam a = {h.lr, h.b1, h.b2, h.eps, h.wd, t};
        ok = cpu_step(be, &a, n, b, ref);
        covered = emulate_kernel(&a, n, sm_count, dev, visits) && covered;
    }
    be->buf_free(be, b.p);
    be->buf_free(be, b.g);
    be->buf_free(be, b.m);
    be->buf_free(be, b.v);
    diff d;
    compare(ref.p, dev.p, d);
    compare(ref.m, dev.m, d);
    compare(ref.v, dev.v, d);
    const bool pass = ok && covered && d.max_ulp == 0;
    printf("adam n=%-7lld sms=%-3d lr=%g b=(%g,%g) eps=%g wd=%g %s: max |diff| %.3g, max ulp %lld "
           "(tol 0: bitwise)%s %s\n",
           (long long)n, sm_count, h.lr, h.b1, h.b2, h.eps, h.wd, warm_state ? "warm" : "zero",
           d.max_abs, (long long)d.max_ulp, covered ? "" : " COVERAGE", pass ? "ok" : "FAILED");
    return pass ? 0 : 1;
}

int main() {
    sq_status st;
    sq_backend *be = sq_backend_cpu_create(1, &st);
    if (!be) {
        fprintf(stderr, "cpu backend: %s\n", st.msg);
        return 1;
    }
    const hyper hs[] = {{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f},
                        {3e-4f, 0.9f, 0.999f, 1e-8f, 1e-4f},
                        {1e-2f, 0.8f, 0.99f, 1e-6f, 5e-2f}};
    const int64_t sizes[] = {1, 3, 5, 7, 255, 256, 257, 100000};
    int fails = 0;
    for (const hyper &h : hs)
        for (int64_t n : sizes)
            fails += run_case(be, n, 132, h, false);
    fails += run_case(be, 100000, 132, hs[1], true);
    fails += run_case(be, 100003, 1, hs[2], true);
    fails += run_case(be, 1 << 20, 132, hs[0], true);
    // step 0 is refused, as on the CPU backend
    const sq_adam bad = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0};
    sq_buf *x = NULL;
    be->buf_alloc(be, 16, &x, &st);
    const sq_code rc = be->adam(be, &bad, 1, sq_view_of(x, 0), sq_view_of(x, 1), sq_view_of(x, 2),
                                sq_view_of(x, 3), &st);
    be->buf_free(be, x);
    printf("adam step 0: SQ_ERR_RANGE on the CPU backend (sq_cuda_adam has the same check): %s\n",
           rc == SQ_ERR_RANGE ? "ok" : "FAILED");
    fails += rc != SQ_ERR_RANGE;
    be->destroy(be);
    printf("%s\n", fails ? "FAILED" : "all adam checks passed");
    return fails ? 1 : 0;
}
