/* bench.h — what the bench_*.c files of src/cli share. Private to src/cli. */
#ifndef SEGQA_CLI_BENCH_H
#define SEGQA_CLI_BENCH_H

#include "model/model.h"

/* `segqa bench infer --per-case`: one deployment case end to end (NIfTI read of image and
 * contour, contour rules, crop/pad, normalisation, forward) through train/predictor.h, on
 * synthetic .nii.gz files a little larger than the model shape; ms per case against target_ms
 * (0: 50 ms at the demo shape 40x56x40, 150 ms at the paper shape 28x160x160, else none). */
int sq_bench_infer_per_case(const sq_model_config *c, const char *device, int threads,
                            long long warmup, long long steps, double target_ms);

/* `segqa bench train --loader` (bench_train_loader.c): the training step fed by the real loader
 * (HDF5 + augmentation workers; pinned ring + copy stream on a GPU) against synthetic input in
 * place, for 1..workers workers. Exit 0, 77 when --device cuda finds no GPU, else an error. */
typedef struct sq_bench_loader_opts {
    const sq_model_config *config;
    const char *device, *site; /* site NULL or "": a synthetic site at the bench shape */
    int threads, batch, workers;
    long long warmup, steps;
} sq_bench_loader_opts;
int sq_bench_train_loader(const sq_bench_loader_opts *o);

/* OpenBLAS cblas_sgemm 1536^3 on `threads` threads, best of 3 after one warm-up: the FLOP limit of
 * this machine that `bench ops` and `bench train|infer` report against (GFLOP/s). */
double sq_bench_sgemm_gflops(int threads);

#endif
