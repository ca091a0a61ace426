#!/usr/bin/env bash
# test_monitor_e2e.sh SEGQA — the drift monitor end to end on real images and a real trained model:
# the committed reference model (results/hippocampus-reference/model/fold-0.h5, fold 0 of the
# reference CV) estimates the contours of fold 0's own test patients (never trained on), through
# `segqa predict --pairs -f json`, and `segqa monitor` watches the stream against the reference
# run's out-of-fold estimates:
#   * degradation: the GT contours (both hippocampus labels) are eroded a little more every 20
#     cases (block b: b passes that each shave half of the boundary voxels): the true Dice falls per block,
#     the estimates follow, and the monitor alarms (exit 3) within 100 cases;
#   * control: the same cases with the same contours throughout (no degradation): no alarm (exit 0);
#   * the estimates fall with the degradation (block means decrease from the first to the last).
set -u
segqa=$1
here=$(cd "$(dirname "$0")/../.." && pwd)
data=$here/datasets/msd-hippocampus
ref=$here/results/hippocampus-reference
py=/usr/bin/python3
. "$(dirname "$0")/../lib.sh"
test_tmpdir monitor-e2e
finish() { echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; exit $?; }
[ -s "$ref/model/fold-0.h5" ] || { bad "no committed reference model $ref/model/fold-0.h5"; finish; }

# 120 pairs: fold 0's test cases in turn; block b = i // 20 of erosion
"$py" - "$data" "$ref/splits.json" "$tmp" <<'PY' || { bad "making the streams"; finish; }
import json, sys
import nibabel as nib
import numpy as np
from scipy import ndimage
data, splits, t = sys.argv[1:]
cases = [c["case"].split("/")[-1] for c in json.load(open(splits))["cases"] if c["fold"] == 0]
rng = np.random.default_rng(12)
rows = {"drift": [], "steady": []}
for i in range(120):
    case = cases[i % len(cases)]
    lab = nib.load(f"{data}/labels/{case}.nii.gz")
    gt = np.asarray(lab.dataobj) > 0
    for kind, passes in (("drift", i // 20), ("steady", 0)):
        m = gt.copy()
        for _ in range(passes):  # each pass shaves half of the current boundary voxels
            boundary = m & ~ndimage.binary_erosion(m)
            m &= ~(boundary & (rng.random(m.shape) < 0.5))
        path = f"{t}/{kind}_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(m.astype(np.uint8), lab.affine), path)
        dice = 2 * (m & gt).sum() / (m.sum() + gt.sum())
        rows[kind].append((f"{kind}{i:03d}", f"{data}/images/{case}.nii.gz", path, dice))
for kind, rs in rows.items():
    with open(f"{t}/{kind}.csv", "w") as f:
        f.write("id,image,contour\n")
        for r in rs:
            f.write(f"{r[0]},{r[1]},{r[2]}\n")
    with open(f"{t}/{kind}.dice", "w") as f:
        f.write(" ".join(f"{np.mean([r[3] for r in rs[b:b + 20]]):.3f}" for b in range(0, 120, 20)))
PY
echo "true Dice per block of 20, degraded stream: $(cat "$tmp/drift.dice")"

for kind in drift steady; do
    "$segqa" predict -c "$ref/model/fold-0.h5" --pairs "$tmp/$kind.csv" -f json >"$tmp/$kind.jsonl" 2>"$tmp/$kind.err"
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then bad "predict $kind: exit $rc: $(tail -2 "$tmp/$kind.err")"; finish; fi
done
means=$("$py" -c '
import json, sys
y = [json.loads(l)["estimated_dice"] for l in open(sys.argv[1])]
print(" ".join(f"{sum(y[b:b + 20]) / 20:.3f}" for b in range(0, 120, 20)))' "$tmp/drift.jsonl")
echo "estimates per block of 20, degraded stream: $means"
if "$py" -c "import sys; m = [float(x) for x in '$means'.split()]; sys.exit(not (m[-1] < m[0] - 0.02))"; then
    ok "the estimates follow the degradation ($means)"
else
    bad "the estimates do not fall with the degradation ($means)"
fi

"$segqa" monitor "$tmp/drift.jsonl" --reference "$ref/predictions.csv" --alpha 0.01 >"$tmp/o" 2>&1
rc=$?
first=$(grep -o "first alarm at case [0-9]*" "$tmp/o" | grep -o "[0-9]*$")
if [ $rc -eq 3 ] && [ -n "$first" ] && [ "$first" -le 100 ]; then
    ok "degradation detected at case $first (<= 100), exit 3"
else
    bad "degradation: exit $rc, first alarm '${first}': $(cat "$tmp/o")"
fi
"$segqa" monitor "$tmp/steady.jsonl" --reference "$ref/predictions.csv" --alpha 0.01 >"$tmp/o" 2>&1
rc=$?
if [ $rc -eq 0 ]; then ok "the steady stream raises no alarm"; else bad "steady stream: exit $rc: $(cat "$tmp/o")"; fi
finish
