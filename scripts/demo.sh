#!/usr/bin/env bash
# demo.sh — README's first command: set up segqa on a fresh Debian 12 machine and run the main job.
# Today the main job is the installation self-test on the bundled real hippocampus data; `segqa demo`
# (ingest, automatic contours, 5-fold cross-validation on 2 MPI ranks) replaces it when it lands.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
segqa="${SEGQA_BUILD_DIR:-$here/build}/src/cli/segqa"
"$segqa" --help
"$segqa" --version
"$segqa" check --data "$here/datasets/msd-hippocampus"
