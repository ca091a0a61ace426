#!/usr/bin/env bash
# test_dp_sync.sh SEGQA MPIRUN... — data parallelism is exact: 1 rank with batch 4 and 2 ranks
# with batch 2 each (the same 4 samples per step, the loader's sharding) under real mpirun end
# with the same parameters and BN statistics after 4 Adam steps when BatchNorm is synchronised,
# and with clearly different ones when it is not (the control that shows the check can fail).
#
# Metric: ||p_1rank - p_2ranks|| / ||p_1rank - p_init|| over every parameter (float64), i.e. the
# disagreement relative to how far training moved the parameters; and the relative L2 difference
# of all BN running statistics together (running means near 0, ~1e-5, make per-tensor ratios
# meaningless). Tolerances (measured 7.7e-4 and 8.3e-5 on this machine): 1e-2 and 1e-3. Exactness is not expected: the group sums add per-rank partial
# sums, and Adam turns gradients that are zero in theory (a BN bias feeding a 1x1x1 conv and
# another BN) into +-lr steps whose sign is set by rounding. The input is 32x48x32, so the deepest
# BN layers normalise over at least 4 values; at 16x24x16 with 2 samples (BN over 2 values at
# 1x1x1) training amplifies 3e-8 of rounding to 3e-3 in one step (docs/training.md).
set -u
segqa=$1
shift
mpirun=("$@")
here=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/segqa-dp-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../lib.sh"
net=(--fpn-channels 16 --fpn-repeats 1 --threads 1 --workers 1 --no-figures --augment none
     --val-fraction 0 --epochs 1 -q)

"$segqa" ingest "$here/datasets/msd-hippocampus" -o "$tmp/gt.h5" --shape 32x48x32 --limit 8 -q &&
  "$segqa" contours "$tmp/gt.h5" -o "$tmp/site.h5" --atlas 1 --perturb 1 --near 0 -q ||
  { bad "ingest/contours"; echo "$pass passed, $fail failed"; exit 1; }

# --stop-after-steps N acts as a preemption: checkpoint after step N, exit 75
"$segqa" train "$tmp/site.h5" -o "$tmp/init" -b 4 "${net[@]}" --stop-after-steps 1 --lr 1e-9 2>/dev/null
"$segqa" train "$tmp/site.h5" -o "$tmp/one" -b 4 "${net[@]}" --stop-after-steps 4 2>/dev/null
rc1=$?
"${mpirun[@]}" -np 2 "$segqa" train "$tmp/site.h5" -o "$tmp/two" -b 2 "${net[@]}" -v --stop-after-steps 4 >"$tmp/two.log" 2>&1
rc2=$?
"${mpirun[@]}" -np 2 "$segqa" train "$tmp/site.h5" -o "$tmp/local" -b 2 --sync-bn off "${net[@]}" --stop-after-steps 4 >/dev/null 2>&1
[ $rc1 -eq 75 ] && ok "1 rank stopped after 4 steps (exit 75)" || bad "1 rank exit $rc1"
[ $rc2 -ne 0 ] && grep -q "stopped after step 4" "$tmp/two.log" && ok "2 ranks stopped after 4 steps" || { bad "2 ranks (exit $rc2)"; tail -5 "$tmp/two.log"; }

# overlap: buckets are started from the backward pass's gradient hook while backward still has
# ops to run (the first bucket of the buffer is only final after the last op, so at most n - 1)
ov=$(grep -o "gradient all-reduce: [0-9.]* of [0-9]* buckets started while backward ran" "$tmp/two.log" | head -1)
echo "${ov:-no all-reduce report}"
set -- $ov
if [ -n "$ov" ] && "$py" -c "import sys; e, n = float('$3'), int('$5'); sys.exit(0 if n >= 2 and 1 <= e < n else 1)"; then
  ok "gradient buckets start during backward (overlap)"
else bad "no overlap: '$ov'"; fi

compare() { # A B INIT -> "param_ratio buffer_rel"
  "$py" - "$1" "$2" "$3" <<'PY'
import h5py, numpy as np, sys
a, b, z = (h5py.File(p, "r") for p in sys.argv[1:4])
assert a.attrs["step"] == b.attrs["step"] == 4, (a.attrs["step"], b.attrs["step"])
num = den = 0.0
for k in a["params"]:
    x, y, x0 = (f["params"][k][()].astype(np.float64) for f in (a, b, z))
    num += ((x - y) ** 2).sum(); den += ((x - x0) ** 2).sum()
bn = bd = 0.0
for k in a["buffers"]:
    x, y = (f["buffers"][k][()].astype(np.float64) for f in (a, b))
    bn += ((x - y) ** 2).sum(); bd += (x ** 2).sum()
print("%.3e %.3e" % (np.sqrt(num / den), np.sqrt(bn / bd)))
PY
}
read -r pr br < <(compare "$tmp/one/all/last.h5" "$tmp/two/all/last.h5" "$tmp/init/all/last.h5")
echo "synchronised BN: parameter difference / movement $pr, BN statistics $br"
"$py" -c "import sys; sys.exit(0 if float('$pr') < 1e-2 and float('$br') < 1e-3 else 1)" &&
  ok "1 rank x 4 == 2 ranks x 2 with synchronised BN" || bad "synchronised BN: $pr $br (limits 1e-2 1e-3)"
read -r pr2 br2 < <(compare "$tmp/one/all/last.h5" "$tmp/local/all/last.h5" "$tmp/init/all/last.h5")
echo "per-rank BN:     parameter difference / movement $pr2, BN statistics $br2"
"$py" -c "import sys; sys.exit(0 if float('$pr2') > 0.1 and float('$br2') > 0.1 else 1)" &&
  ok "control: per-rank BN differs (the check can fail)" || bad "control did not differ: $pr2 $br2"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
