#!/usr/bin/env bash
# hippocampus.sh — build the segqa site file of the bundled real data set (datasets/msd-hippocampus):
# ingest (checks, centre crop/pad to 40x56x40 = z x y x x, 0th/99th percentile -> [0,255], GT = labels
# 1 and 2 merged), then automatic contours (1 atlas transfer + 2 perturbed GTs per case, each with its
# true Dice). About 12 s on one core. Usage: datasets/hippocampus.sh [OUT.h5] [SEGQA_BINARY]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-hippocampus.h5}"
segqa="${2:-${SEGQA:-segqa}}"
mkdir -p "$(dirname "$out")"
"$segqa" ingest --shape 40x56x40 --label all -o "$out" "$here/msd-hippocampus"
"$segqa" contours --atlas 1 --perturb 2 --seed 1234 "$out"
echo "site file: $out"
