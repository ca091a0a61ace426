#!/usr/bin/env bash
# gpu-check.sh — the whole GPU verification of segqa in one run on the GPU machine (DESIGN §7).
#
# Prepared here by hpc/gpu-pack.sh (programs built for sm_90 plus their non-CUDA shared libraries,
# gpu-pack/segqa-gpu.tar.xz); run there from the repository root:
#     device run: carry gpu-pack, command  bash hpc/gpu-check.sh
# Stages, each printed as PASS/FAIL/SKIP with its figures, all into one log:
#   (a) device, driver and library versions; every program's libraries resolved
#   (b) the conformance suite, CUDA against CPU, every op (tests/nn)
#   (c) the whole network forward, backward and one Adam step, CUDA against CPU, small and paper
#       shape (tests/model/test_model_backends)
#   (d) compute-sanitizer memcheck of the conformance suite at small shapes
#   (e) segqa bench ops / infer / train --device cuda against PyTorch on the same device
#   (f) NCCL (tests/hpc/nccl_check, no MPI: the machine has no Open MPI): 1-rank all-reduce sanity,
#       1-rank NCCL training steps equal to the steps without communication, and where 2 or more
#       GPUs are visible 2 data-parallel ranks with sync BN against 1 rank with twice the batch
#       (skipped, and said so, on one GPU)
#   (g) segqa bench train --loader --device cuda: the step fed by the real loader (synthetic HDF5
#       site, augmentation workers, pinned ring, copy stream) against synthetic input, per worker
#       count; target within 10 %
# Writes $OUT/gpu-check.log and $OUT/summary.md (or results/gpu/ when OUT is unset). Stages have
# their own time limits so that the whole run stays under 8 minutes. Exit 0 only when every stage
# passed.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$here/results/gpu}
mkdir -p "$out"
log=$out/gpu-check.log
summary=$out/summary.md
: > "$log"
t_start=$(date +%s)
declare -a rows
status_all=0

say() { echo "$*" | tee -a "$log"; }
stage() { # stage NAME RESULT FIGURES
  rows+=("| $1 | $2 | $3 |")
  say "== stage $1: $2 — $3"
  [ "$2" = PASS ] || status_all=1
}
stage_skip() { # stage_skip NAME WHY: a stage this machine cannot run (not a failure)
  rows+=("| $1 | SKIP | $2 |")
  say "== stage $1: SKIP — $2"
}

# ---- unpack and find the libraries --------------------------------------------------------------
pack_tar=$here/gpu-pack/segqa-gpu.tar.xz
work=/tmp/segqa-gpu
if [ ! -f "$pack_tar" ]; then
  stage "a: load" FAIL "no $pack_tar: run hpc/gpu-pack.sh here and carry gpu-pack"
else
  rm -rf "$work" && mkdir -p "$work" && tar -C "$work" -xJf "$pack_tar"
fi
bin=$work/segqa-gpu/bin
py=$(command -v python3 || echo python3)
wheel_libs=$("$py" - <<'PY' 2>/dev/null
import importlib, os
dirs = []
for mod in ("nvidia.cudnn", "nvidia.cublas", "nvidia.nccl", "nvidia.cuda_runtime", "nvidia.cu13"):
    try:
        m = importlib.import_module(mod)
    except Exception:
        continue
    for p in getattr(m, "__path__", []):
        for sub in ("lib", "lib64"):
            d = os.path.join(p, sub)
            if os.path.isdir(d):
                dirs.append(d)
print(":".join(dirs))
PY
)
export LD_LIBRARY_PATH=$work/segqa-gpu/lib${wheel_libs:+:$wheel_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# PyTorch must not see our packed libraries (another libstdc++): a clean-environment wrapper.
cat > /tmp/segqa-python <<PYW
#!/bin/sh
unset LD_LIBRARY_PATH
exec "$py" "\$@"
PYW
chmod +x /tmp/segqa-python

# ---- (a) versions -------------------------------------------------------------------------------
{
  say "gpu-check started $(date -u +%FT%TZ) in $here"
  [ -f "$work/segqa-gpu/MANIFEST.txt" ] && cat "$work/segqa-gpu/MANIFEST.txt" >> "$log"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1 | tee -a "$log"
  nvcc --version 2>&1 | tail -2 | tee -a "$log"
  /tmp/segqa-python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "device", torch.cuda.get_device_name(0))' 2>&1 | tee -a "$log"
  "$py" -m pip list 2>/dev/null | grep -Ei '^nvidia-(cudnn|cublas|nccl|cuda-runtime)' | tee -a "$log"
  say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
}
missing=""
for p in segqa test_nn_backend test_model_backends nccl_check; do
  if [ ! -x "$bin/$p" ]; then missing="$missing $p(not packed)"; continue; fi
  m=$(ldd "$bin/$p" 2>&1 | awk '/not found/ {print $1}' | tr '\n' ' ')
  [ -n "$m" ] && missing="$missing $p: $m"
done
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" -lt 1 ]; then
  stage "a: versions and libraries" FAIL "no GPU visible (nvidia-smi -L lists none): every GPU stage below is SKIPPED, not passed"
elif [ -z "$missing" ] && [ -x "$bin/segqa" ]; then
  ver=$("$bin/segqa" --version 2>&1 | tr '\n' ' ')
  say "$ver"
  stage "a: versions and libraries" PASS "$gpus GPU(s): $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1); every library resolved"
else
  stage "a: versions and libraries" FAIL "missing:$missing"
fi

budget_s=${SEGQA_GPU_CHECK_BUDGET_S:-450} # later stages are not started past this (8-minute run)
run_stage() { # run_stage NAME TIMEOUT_S FIGURE_GREP cmd...
  local name=$1 limit=$2 grep_re=$3; shift 3
  local t0=$(date +%s) rc
  if [ $(( t0 - t_start )) -gt "$budget_s" ]; then
    stage "$name" FAIL "not started: the run's time budget of ${budget_s} s was spent"
    return
  fi
  say "-- $name: $*"
  timeout "$limit" "$@" > "$out/stage.tmp" 2>&1
  rc=$?
  cat "$out/stage.tmp" >> "$log"
  local fig
  fig=$(grep -E "$grep_re" "$out/stage.tmp" | tail -3 | tr '\n' ';' | cut -c1-400)
  local dt=$(( $(date +%s) - t0 ))
  case $rc in
    0) stage "$name" PASS "${fig:-ok} (${dt} s)" ;;
    77) stage "$name" SKIP "${fig:-skipped} (${dt} s)" ;;
    124) stage "$name" FAIL "timed out after ${limit} s" ;;
    *) stage "$name" FAIL "exit $rc: $(grep -E 'FAIL|error|Error' "$out/stage.tmp" | head -5 | tr '\n' ';' | cut -c1-400) (${dt} s)" ;;
  esac
}

# ---- (b) conformance, (c) whole network, (d) memcheck ---------------------------------------------
run_stage "b: conformance CUDA vs CPU" 120 'summary|worst|PASS$|FAIL' "$bin/test_nn_backend" cuda
run_stage "c: whole network CUDA vs CPU" 120 'params after|gradients|PASS$|FAIL$' "$bin/test_model_backends" cuda
san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ -n "$san" ]; then
  run_stage "d: compute-sanitizer memcheck (small shapes)" 150 'ERROR SUMMARY|FAIL' \
    "$san" --tool memcheck --leak-check full --error-exitcode 9 "$bin/test_nn_backend" cuda --small
else
  stage "d: compute-sanitizer memcheck (small shapes)" FAIL "compute-sanitizer not found"
fi

# ---- (e) benchmarks against PyTorch on the same device ---------------------------------------------
cd "$here"
export SEGQA_SOURCE_DIR=$here
run_stage "e1: bench ops --device cuda" 90 'summary|Total bench' "$bin/segqa" bench ops --device cuda --repeat 5 --out "$out/ops-cuda.md"
run_stage "e2: bench infer --device cuda (batch 1)" 60 'ratio|target|TFLOP' "$bin/segqa" bench infer --device cuda --steps 50 --warmup 10 --python /tmp/segqa-python --out "$out/infer-cuda.md"
run_stage "e3: bench train --device cuda (batch 2)" 90 'ratio|target|TFLOP' "$bin/segqa" bench train --device cuda --steps 30 --warmup 5 --python /tmp/segqa-python --out "$out/train-cuda.md"
run_stage "e4: bench infer --device cuda --tf32" 45 'ratio|target|TFLOP' "$bin/segqa" bench infer --device cuda --tf32 --steps 50 --warmup 10 --python /tmp/segqa-python --out "$out/infer-cuda.md"

# ---- (f) NCCL: 1-rank sanity and training step; 2 ranks with sync BN where 2+ GPUs are visible ------
run_stage "f1: NCCL 1-rank all-reduce sanity" 45 'PASS|FAIL' "$bin/nccl_check" allreduce
run_stage "f2: NCCL 1-rank training step == no communication" 60 'PASS|FAIL' "$bin/nccl_check" step
ngpu=${gpus:-0} # counted in stage (a)
if [ "$ngpu" -ge 2 ]; then
  run_stage "f3: NCCL 2 ranks x batch 2 + sync BN vs 1 rank x batch 4 ($ngpu GPUs)" 90 'PASS|FAIL|control' "$bin/nccl_check" syncbn
else
  stage_skip "f3: NCCL 2 ranks + sync BN vs 1 rank x 2 batch" "${ngpu:-0} GPU visible: needs 2 (a multi-GPU machine kind)"
fi
# ---- (g) the input pipeline: steps fed by the real loader vs synthetic input (issue 11 item 5) ----
# Last, so it never takes the NCCL stages' time; started only when its limit fits in 8 minutes.
if [ $(( $(date +%s) - t_start + 75 )) -le 480 ]; then
  run_stage "g: bench train --loader --device cuda (pinned ring + copy stream)" 75 '^\| [0-9]|within 10|augmentation' "$bin/segqa" bench train --loader --device cuda --steps 20 --warmup 5 --workers 4 --threads 4
else
  stage_skip "g: bench train --loader --device cuda" "not started: its 75 s limit would pass the 8-minute run"
fi
say "not run here (the GPU machine has no Open MPI, segqa train/bench comm call MPI_Init): segqa train --comm nccl on W ranks, segqa bench comm --device cuda"
rm -f "$out/stage.tmp"

# ---- summary -----------------------------------------------------------------------------------------
{
  echo "# segqa gpu-check — $(date -u +%F) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
  echo
  echo "| stage | result | figures |"
  echo "|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Whole run: $(( $(date +%s) - t_start )) s. Full log: gpu-check.log; benchmark tables: ops-cuda.md, infer-cuda.md, train-cuda.md."
} > "$summary"
cat "$summary" | tee -a "$log"
exit $status_all
