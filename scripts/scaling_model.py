#!/usr/bin/env python3
"""scaling_model.py — projected data-parallel efficiency of segqa training (docs/scaling.md).

A model, not a measurement: per-step compute time (measured on the CPU, a target on the GPU),
the real gradient size, ring all-reduce time 2(W-1)/W * bytes / busBW + latency per bucket with
published bus bandwidths, the overlap of the bucketed all-reduce with backward, and the
synchronised-BN sums (small, latency-bound, on the critical path). Prints a Markdown table.

    python3 scripts/scaling_model.py [--bn-sync on|off]
"""
import argparse
import math

PARAMS = 1_625_808            # flat parameter count at the paper configuration (segqa bench comm)
GRAD_BYTES = PARAMS * 4       # float32 gradients
BUCKET = 1 << 18              # floats per bucket (trainer.c GRAD_BUCKET_FLOATS)
NBUCKETS = math.ceil(PARAMS / BUCKET)   # 7
OVERLAPPED = NBUCKETS - 1     # started while backward runs; the stem's bucket only after the last op
BN_LAYERS = 154               # BatchNorm layers of the paper network (docs/training.md)
BN_CALLS = 3 * BN_LAYERS      # sums per step: 2 in each BN forward, 1 in each backward
BWD_SHARE = 2.0 / 3.0         # backward ~ 2x the forward FLOPs: the window the buckets overlap with

# Published bus bandwidths (issue 11): NVLink inside one 8-GPU H100/H200 node 370-475 GB/s (the low
# end is used); across nodes about 45 GB/s per node over 400 Gb/s InfiniBand.
BUS_NVLINK = 370e9
BUS_IB = 45e9
# Latency of one NCCL all-reduce (assumed, order of published nccl-tests small-message figures):
# 15 us inside a node; across nodes a tree adds ~6 us per InfiniBand hop up and down.
LAT_NODE = 15e-6
LAT_HOP = 6e-6
GPUS_PER_NODE = 8


def latency(w):
    if w <= 1:
        return 0.0
    if w <= GPUS_PER_NODE:
        return LAT_NODE
    nodes = math.ceil(w / GPUS_PER_NODE)
    return LAT_NODE + 2 * math.ceil(math.log2(nodes)) * LAT_HOP


def busbw(w):
    return BUS_NVLINK if w <= GPUS_PER_NODE else BUS_IB


def ring_time(w, nbytes):
    """One ring all-reduce of nbytes over w ranks: 2(W-1)/W * bytes / busBW + latency."""
    if w <= 1:
        return 0.0
    return 2 * (w - 1) / w * nbytes / busbw(w) + latency(w)


def step_overhead(w, step_s, bn_sync):
    """Seconds one step of a group of w ranks spends on communication the compute does not hide."""
    if w <= 1:
        return 0.0, 0.0, 0.0
    per_bucket = ring_time(w, GRAD_BYTES / NBUCKETS)
    hidden_part = OVERLAPPED * per_bucket
    exposed = per_bucket + max(0.0, hidden_part - BWD_SHARE * step_s)
    bn = BN_CALLS * latency(w) if bn_sync else 0.0
    return exposed, bn, NBUCKETS * per_bucket


def efficiency_dp(w, step_s, bn_sync):
    exposed, bn, _ = step_overhead(w, step_s, bn_sync)
    return step_s / (step_s + exposed + bn)


def group_sizes(w, k):
    """Fold groups as hpc/comm.c lays them out (color = rank % K)."""
    if w < k:
        return [1] * w
    return [w // k + (1 if g < w % k else 0) for g in range(k)]


def efficiency_folds(w, k, step_s, bn_sync):
    """K folds of equal work on W ranks: the slowest group sets the time (weak scaling inside a
    group: a group of g ranks does a fold in 1/g of the steps)."""
    if w < k:  # round robin: ceil(K/W) folds on the busiest rank, no communication
        return (k / w) / math.ceil(k / w)
    sizes = group_sizes(w, k)
    worst = max((1.0 / g) * (step_s + sum(step_overhead(g, step_s, bn_sync)[:2])) / step_s
                for g in sizes)
    ideal = k / w
    return ideal / worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bn-sync", default="on", choices=["on", "off"])
    args = ap.parse_args()
    bn = args.bn_sync == "on"
    cases = [("GPU, target 10 ms/step (issue 10; not yet measured)", 10e-3),
             ("GPU, batch 8 per GPU: 4 x the target, 40 ms/step (assumed linear)", 40e-3),
             ("CPU, measured 714 ms/step (results/bench/train-cpu.md)", 714.2e-3)]
    print(f"gradient: {PARAMS} floats = {GRAD_BYTES / 1e6:.2f} MB in {NBUCKETS} buckets "
          f"({OVERLAPPED} overlap backward); sync BN {'on' if bn else 'off'}: {BN_CALLS} sums/step\n")
    print("| compute | W | ring all-reduce of the gradient, ms | exposed grad ms | sync-BN ms "
          "| data-parallel eff. | fold-parallel (K=5) eff. |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, step in cases:
        for w in (8, 64, 512):
            exposed, bns, total = step_overhead(w, step, bn)
            print(f"| {name} | {w} | {total * 1e3:.3f} | {exposed * 1e3:.3f} | {bns * 1e3:.2f} "
                  f"| {100 * efficiency_dp(w, step, bn):.1f} % "
                  f"| {100 * efficiency_folds(w, 5, step, bn):.1f} % |")


if __name__ == "__main__":
    main()
