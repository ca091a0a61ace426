#!/usr/bin/env bash
# test_cv.sh SEGQA MPIRUN... — the training job end to end on real data, under real mpirun:
#   * W < K (2 ranks, 3 folds, round robin) and W >= K with uneven groups (3 ranks, 2 folds):
#     every test case is predicted exactly once, in its own fold, with every failure category;
#   * resume: a run preempted after 3 steps (exit 75) and restarted ends bitwise equal to an
#     uninterrupted run;
#   * predict: exit 0 when accepted, 3 when rejected, and clear errors for a missing checkpoint,
#     a shape mismatch and a non-binary contour.
set -u
segqa=$1
shift
mpirun=("$@")
here=$(cd "$(dirname "$0")/../.." && pwd)
data=$here/datasets/msd-hippocampus
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/segqa-cv-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../lib.sh"
# small network and volumes so that the whole file runs in a minute or two
net=(--fpn-channels 16 --fpn-repeats 1 --threads 1 --workers 1 --no-figures --val-every 1)

"$segqa" ingest "$data" -o "$tmp/gt.h5" --shape 16x24x16 --limit 18 -q || { bad ingest; echo "$pass passed, $fail failed"; exit 1; }
"$segqa" contours "$tmp/gt.h5" -o "$tmp/site.h5" --atlas 1 --perturb 1 --near 0 -q || { bad contours; echo "$pass passed, $fail failed"; exit 1; }

check_run() { # NAME RUN K: predictions.csv covers every case once per category, in its fold
    "$py" - "$2" "$3" <<'PY'
import csv, json, sys, collections
run, k = sys.argv[1], int(sys.argv[2])
rows = list(csv.DictReader(open(f"{run}/predictions.csv")))
splits = json.load(open(f"{run}/splits.json"))
fold_of = {c["case"].split("/", 1)[1]: c["fold"] for c in splits["cases"]}
cats = collections.Counter(r["category"] for r in rows)
ids = collections.Counter(r["case"] for r in rows)
errors = []
if len(fold_of) != 18: errors.append(f"{len(fold_of)} cases in splits")
if cats["real"] != 36: errors.append(f"{cats['real']} real predictions, expected 36")
for c in ("empty", "noise", "all-ones", "shifted-gt", "gt"):
    if cats[c] != 18: errors.append(f"{cats[c]} {c} predictions, expected 18")
dups = [i for i, n in ids.items() if n > 1]
if dups: errors.append(f"predicted twice: {dups[:3]}")
for r in rows:
    case = r["case"].split(":")[0]
    if int(r["fold"]) != fold_of[case]: errors.append(f"{case} predicted in fold {r['fold']}, belongs to {fold_of[case]}")
    if not 0 <= float(r["predicted"]) <= 1: errors.append(f"prediction {r['predicted']} outside [0,1]")
if sorted({int(r["fold"]) for r in rows}) != list(range(k)): errors.append("folds missing")
m = json.load(open(f"{run}/metrics.json"))
if list(m)[0] != "summary": errors.append("metrics.json does not start with the summary")
if m["summary"]["real_contours"]["segqa"]["n"] != 36: errors.append("summary n")
print("; ".join(errors) if errors else "consistent")
sys.exit(1 if errors else 0)
PY
}

out=$("${mpirun[@]}" -np 2 "$segqa" cv "$tmp/site.h5" --out "$tmp/w2k3" --folds 3 --epochs 2 "${net[@]}" 2>&1)
rc=$?
if [ $rc -eq 0 ] && check_run w2k3 "$tmp/w2k3" 3; then ok "W=2 < K=3: every fold's predictions exactly once"; else bad "W=2 K=3 (exit $rc)"; echo "$out" | tail -20; fi
echo "$out" | grep -q "^real " && ok "summary table printed" || bad "no summary table"

out=$("${mpirun[@]}" -np 3 "$segqa" cv "$tmp/site.h5" --out "$tmp/w3k2" --folds 2 --epochs 2 "${net[@]}" 2>&1)
rc=$?
if [ $rc -eq 0 ] && check_run w3k2 "$tmp/w3k2" 2; then ok "W=3 >= K=2 (groups of 2 and 1, uneven shards): predictions exactly once"; else bad "W=3 K=2 (exit $rc)"; echo "$out" | tail -20; fi

# resume: uninterrupted vs preempted after 3 steps and restarted with the same command
common=(cv "$tmp/site.h5" --folds 2 --epochs 2 "${net[@]}" --no-failures)
"${mpirun[@]}" -np 1 "$segqa" "${common[@]}" --out "$tmp/ref" >/dev/null 2>&1
rc_ref=$?
"${mpirun[@]}" -np 1 "$segqa" "${common[@]}" --out "$tmp/res" --stop-after-steps 3 >"$tmp/stop.log" 2>&1
rc_stop=$?
"${mpirun[@]}" -np 1 "$segqa" "${common[@]}" --out "$tmp/res" >"$tmp/resume.log" 2>&1
rc_res=$?
if [ $rc_ref -eq 0 ] && [ $rc_stop -eq 75 ] && [ $rc_res -eq 0 ] && grep -q "resuming from" "$tmp/resume.log"; then
    ok "preempted run exits 75 and resumes"
else
    bad "resume exit codes ref=$rc_ref stop=$rc_stop resume=$rc_res"; tail -5 "$tmp/stop.log" "$tmp/resume.log"
fi
if "$py" - "$tmp/ref" "$tmp/res" <<'PY'
import h5py, numpy as np, sys
a, b = sys.argv[1], sys.argv[2]
worst = 0
for fold in (0, 1):
    with h5py.File(f"{a}/fold-{fold}/last.h5") as fa, h5py.File(f"{b}/fold-{fold}/last.h5") as fb:
        for grp in ("params", "buffers", "optim/m", "optim/v"):
            for name in fa[grp]:
                x, y = fa[grp][name][()], fb[grp][name][()]
                if x.shape != y.shape or not np.array_equal(x, y):
                    print(f"fold {fold} {grp}/{name} differs: max {np.max(np.abs(x - y))}")
                    sys.exit(1)
        if fa.attrs["step"] != fb.attrs["step"]: sys.exit(1)
print("bitwise equal")
PY
then ok "resumed run ends bitwise equal to the uninterrupted one"; else bad "resume equality"; fi

# a real signal: SIGUSR1 to mpirun is forwarded to the ranks, which stop after the same step,
# checkpoint and exit 75; rerunning the command finishes the run
"${mpirun[@]}" -np 2 "$segqa" cv "$tmp/site.h5" --folds 2 --epochs 12 "${net[@]}" --no-failures --out "$tmp/sig" >"$tmp/sig.log" 2>&1 &
job=$!
for _ in $(seq 600); do [ -s "$tmp/sig/fold-0/curves.csv" ] && break; sleep 0.05; done
kill -USR1 $job 2>/dev/null
wait $job
rc_sig=$?
"${mpirun[@]}" -np 2 "$segqa" cv "$tmp/site.h5" --folds 2 --epochs 12 "${net[@]}" --no-failures --out "$tmp/sig" >"$tmp/sig2.log" 2>&1
rc_sig2=$?
if [ $rc_sig -eq 75 ] && grep -q "stopped after step" "$tmp/sig.log" && [ $rc_sig2 -eq 0 ] &&
   grep -q "resuming from" "$tmp/sig2.log" && [ -s "$tmp/sig/predictions.csv" ]; then
    ok "SIGUSR1: every rank stops after the same step, exit 75; rerun completes"
else
    bad "SIGUSR1 exit $rc_sig, rerun exit $rc_sig2"; tail -5 "$tmp/sig.log" "$tmp/sig2.log"
fi

# predict
ck=$tmp/ref/fold-0/best.h5
img=$data/images/hippocampus_004.nii.gz
"$py" - "$data" "$tmp" <<'PY'
import nibabel as nib, numpy as np, sys
d, t = sys.argv[1], sys.argv[2]
lab = nib.load(f"{d}/labels/hippocampus_004.nii.gz")
m = (np.asarray(lab.dataobj) > 0).astype(np.uint8)
nib.save(nib.Nifti1Image(m, lab.affine), f"{t}/contour.nii.gz")
other = nib.load(f"{d}/labels/hippocampus_006.nii.gz")
nib.save(nib.Nifti1Image((np.asarray(other.dataobj) > 0).astype(np.uint8), other.affine), f"{t}/other.nii.gz")
with open(f"{t}/pairs.csv", "w") as f:
    f.write(f"id,image,contour\na,{d}/images/hippocampus_004.nii.gz,contour.nii.gz\nb,{d}/images/hippocampus_004.nii.gz,contour.nii.gz\n")
PY
"$segqa" predict -c "$ck" -i "$img" -m "$tmp/contour.nii.gz" --threshold 0 >"$tmp/p.out" 2>&1
[ $? -eq 0 ] && grep -q "accept" "$tmp/p.out" && ok "predict: accepted -> exit 0" || { bad "predict accept"; cat "$tmp/p.out"; }
"$segqa" predict -c "$ck" -i "$img" -m "$tmp/contour.nii.gz" --threshold 1 >"$tmp/p.out" 2>&1
[ $? -eq 3 ] && grep -q "REJECT" "$tmp/p.out" && ok "predict: rejected -> exit 3" || { bad "predict reject"; cat "$tmp/p.out"; }
"$segqa" predict -c "$ck" --pairs "$tmp/pairs.csv" --format json --threshold 0 >"$tmp/p.out" 2>&1
[ $? -eq 0 ] && [ "$(grep -c '"estimated_dice"' "$tmp/p.out")" -eq 2 ] && ok "predict: CSV of pairs, JSON lines" || { bad "predict pairs"; cat "$tmp/p.out"; }
"$segqa" predict -c "$tmp/none.h5" -i "$img" -m "$tmp/contour.nii.gz" >"$tmp/p.out" 2>&1
rc=$?
[ $rc -eq 4 ] && grep -q "none.h5: no such checkpoint" "$tmp/p.out" && ok "predict: missing checkpoint -> exit 4" || { bad "missing checkpoint (exit $rc)"; cat "$tmp/p.out"; }
"$segqa" predict -c "$ck" -i "$img" -m "$tmp/other.nii.gz" >"$tmp/p.out" 2>&1
rc=$?
[ $rc -eq 5 ] && grep -q "other.nii.gz" "$tmp/p.out" && ok "predict: shape mismatch -> exit 5 naming the file" || { bad "shape mismatch (exit $rc)"; cat "$tmp/p.out"; }
"$segqa" predict -c "$ck" -i "$img" -m "$data/labels/hippocampus_004.nii.gz" >"$tmp/p.out" 2>&1
rc=$?
[ $rc -eq 5 ] && grep -q "expected a binary mask" "$tmp/p.out" && ok "predict: non-binary contour -> exit 5" || { bad "non-binary (exit $rc)"; cat "$tmp/p.out"; }

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
