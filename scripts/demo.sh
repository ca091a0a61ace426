#!/usr/bin/env bash
# demo.sh — README's first command: set up segqa on a fresh Debian 12 machine and run the main job,
# `segqa demo`: the bundled real hippocampus MRI data is ingested, given automatic contours, and
# cross-validated (5 folds, per patient) on 2 MPI ranks on CPU with the failure-case study.
# Extra arguments go to `segqa demo` (e.g. --epochs 4 for a quicker run).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
segqa="${SEGQA_BUILD_DIR:-$here/build}/src/cli/segqa"
"$segqa" --version
"$segqa" check --data "$here/datasets/msd-hippocampus"
cd "$here"
"$segqa" demo --data "$here/datasets/msd-hippocampus" --out "${SEGQA_DEMO_DIR:-runs/demo}" "$@"
