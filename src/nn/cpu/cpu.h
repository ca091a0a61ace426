/* cpu.h — private to the CPU backend (src/nn/cpu): its state, buffer type and kernel entry points.
 *
 * Nothing outside src/nn/cpu includes this, except the benchmark (src/cli/bench_ops.c) and the
 * nn tests, which reach the oneDNN grouped-convolution comparison path and the ISA switch.
 * The model uses backend.h only.
 */
#ifndef SEGQA_NN_CPU_H
#define SEGQA_NN_CPU_H

#include "nn/cpu/cpu_backend.h"

#include <stddef.h>

struct sq_buf {
    float *p; /* 64-byte aligned host memory */
    size_t bytes;
};

/* Per-thread scratch, grown on demand and kept across calls (the per-shape workspace). */
typedef struct sq_cpu_scratch {
    float *p;
    size_t n; /* floats */
} sq_cpu_scratch;

#define SQ_CPU_MAX_THREADS 256

typedef struct sq_cpu_dnnl sq_cpu_dnnl; /* oneDNN engine, stream and primitive cache */

typedef struct sq_cpu {
    int threads;
    int isa;    /* SQ_ISA_* used by the hand-written kernels */
    int direct; /* the direct stem forward (cpu_direct.c) is on; SEGQA_CPU_DIRECT=0: off */
    sq_cpu_scratch scratch[SQ_CPU_MAX_THREADS];
    sq_cpu_dnnl *dnnl;
    sq_buf *stats;            /* synchronised-BN sums handed to sq_bn_sync.sum, grown on demand */
    sq_cpu_scratch gemm_part; /* 1x1x1 weight-gradient partials, one block per tile (cpu_gemm.c) */
    sq_cpu_scratch wscaled;   /* per-sample scaled 1x1x1 weights (conv1x1_scaled, cpu_gemm.c) */
    sq_cpu_scratch gsum;      /* conv1x1_scaled's per-sample weight gradients, as doubles */
    sq_cpu_scratch split; /* the direct convolution's padded, phase-split input (cpu_direct.c) */
} sq_cpu;

enum { SQ_ISA_PORTABLE = 0, SQ_ISA_AVX2 = 1 };

static inline float *sq_cpu_f(sq_view v) {
    return v.buf ? v.buf->p + v.off : NULL;
}
static inline sq_cpu *sq_cpu_of(sq_backend *be) {
    return (sq_cpu *)be->impl;
}

/* Grow one kept buffer to at least `n` floats (its contents are not kept). */
sq_code sq_cpu_scratch_grow(sq_cpu_scratch *s, size_t n, sq_status *st);
/* Grow every thread's scratch to at least `n` floats (call before a parallel region). */
sq_code sq_cpu_scratch_reserve(sq_cpu *c, size_t n, sq_status *st);

/* Force the kernel ISA (tests, benchmark): SQ_ISA_PORTABLE always works; SQ_ISA_AVX2 fails with
 * SQ_ERR_UNSUPPORTED where the CPU lacks AVX2+FMA. Returns the previous ISA through *prev. */
sq_code sq_cpu_set_isa(sq_backend *be, int isa, int *prev, sq_status *st);
const char *sq_cpu_isa_name(int isa);

/* oneDNN (cpu_dnnl.c). `groups` 1 = dense, groups = in.c = cout = depthwise through oneDNN's
 * grouped convolution (the comparison path of the benchmark). dx overwritten, dw/db accumulated. */
sq_code sq_cpu_dnnl_init(sq_cpu *c, sq_status *st);
void sq_cpu_dnnl_destroy(sq_cpu *c);
sq_code sq_cpu_dnnl_conv_fwd(sq_backend *be, const sq_conv3d *p, int groups, sq_view x, sq_view w,
                             sq_view b, sq_view y, sq_status *st);
sq_code sq_cpu_dnnl_conv_bwd(sq_backend *be, const sq_conv3d *p, int groups, sq_view x, sq_view w,
                             sq_view dy, sq_view dx, sq_view dw, sq_view db, sq_status *st);
/* Number of cached oneDNN primitives (tests check that repeated calls do not add any). */
int sq_cpu_dnnl_cache_size(sq_backend *be);

/* Dense 1x1x1 convolutions (stride 1, no padding) as tiled sgemms on NCDHW (cpu_gemm.c);
 * bit-identical across thread counts. dx overwritten, dw/db accumulated. */
int sq_cpu_gemm1x1_applies(const sq_conv3d *p);
sq_code sq_cpu_gemm1x1_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                           sq_view y, sq_status *st);
sq_code sq_cpu_gemm1x1_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                           sq_view dx, sq_view dw, sq_view db, sq_status *st);
/* Installs the optional fusions: conv1x1_scaled_fwd/bwd (the channel scale folded into the 1x1x1
 * GEMMs) and gap_bwd_add (cpu_ops.c). SEGQA_CPU_FUSIONS=0 leaves them out (benchmark A/B). */
void sq_cpu_gemm_register(sq_backend *be);
sq_code sq_cpu_gap_bwd_add(sq_backend *be, sq_shape5 s, sq_view dy, sq_view dx, sq_status *st);
/* Other dense convolutions with a small patch (the stem): forward and weight gradient on im2col
 * tiles (same determinism), data gradient through oneDNN. */
int sq_cpu_im2col_applies(const sq_conv3d *p);
sq_code sq_cpu_im2col_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                          sq_view y, sq_status *st);
sq_code sq_cpu_im2col_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                          sq_view dx, sq_view dw, sq_view db, sq_status *st);

/* Direct 3x3x3 convolution forward with few input channels (the stem) on AVX2 (cpu_direct.c;
 * bit-identical across thread counts); its backward stays on the im2col path. */
int sq_cpu_direct_applies(const sq_conv3d *p, int isa);
sq_code sq_cpu_direct_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                          sq_view y, sq_status *st);

/* Own depthwise kernels (cpu_dwconv.c). */
sq_code sq_cpu_dwconv3d_fwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view b,
                            sq_view y, sq_status *st);
sq_code sq_cpu_dwconv3d_bwd(sq_backend *be, const sq_conv3d *p, sq_view x, sq_view w, sq_view dy,
                            sq_view dx, sq_view dw, sq_view db, sq_status *st);

/* Max pooling by separable passes (cpu_pool.c). */
sq_code sq_cpu_maxpool3d_fwd(sq_backend *be, const sq_pool3d *p, sq_view x, sq_view y,
                             sq_status *st);
sq_code sq_cpu_maxpool3d_bwd(sq_backend *be, const sq_pool3d *p, sq_view x, sq_view dy, sq_view dx,
                             sq_status *st);

/* Element-wise, normalisation, pooling, fusion, loss, optimiser (cpu_ops.c). */
void sq_cpu_ops_fill(sq_backend *be);

/* The statistics buffer of synchronised BN: at least n doubles; *p its host address. */
sq_code sq_cpu_stats_reserve(sq_backend *be, size_t n, double **p, sq_status *st);

#endif
