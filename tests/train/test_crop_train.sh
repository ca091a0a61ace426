#!/usr/bin/env bash
# test_crop_train.sh SEGQA — training with `--crop contour` and predict on the same cases.
#   * a synthetic site whose organs lie off-centre (synth --off-centre 0.8, 12x64x64 at
#     4x1.5x1.5 mm, NIfTI copies), a 2-fold CV with --crop contour --crop-shape 12x32x32;
#   * the checkpoint stores the policy (crop contour, crop_margin, shape_zyx = the crop's shape);
#   * train and predict crop alike: `segqa predict` on each test-fold case's NIfTI image and
#     contour (read, cropped and normalised by predict's own code) gives the CV's out-of-fold
#     estimate of that contour (predictions.csv, 6 decimals);
#   * the control: the same weights with the policy rewritten to `center` give other estimates,
#     so the comparison above can fail;
#   * --crop center against that checkpoint, and --crop-shape without --crop contour, are refused.
set -u
segqa=$1
py=${2:-/usr/bin/python3}
. "$(dirname "$0")/../lib.sh"
test_tmpdir crop
cd "$tmp" || exit 1

"$segqa" synth -o site.h5 -n 10 --shape 12x64x64 --spacing 4x1.5x1.5 --off-centre 0.8 --seed 5 \
    --nifti nii >synth.log 2>&1 || { bad "synth"; cat synth.log; }
"$segqa" cv site.h5 --folds 2 --epochs 4 --lr 0.02 --crop contour --crop-shape 12x32x32 \
    --threads 2 --workers 1 --val-fraction 0 --no-failures --no-figures -o run >cv.log 2>&1
if [ $? -eq 0 ] && [ -f run/fold-0/last.h5 ]; then ok "cv --crop contour"; else bad "cv --crop contour"; tail -5 cv.log; fi

# the policy in the checkpoint, as predict reads it
if "$py" - run/fold-0/last.h5 <<'PY'
import h5py, json, sys
p = json.loads(h5py.File(sys.argv[1], "r").attrs["preproc_config"])
assert p["crop"] == "contour", p
assert p["shape_zyx"] == [12, 32, 32], p
assert abs(p["crop_margin"] - 0.1) < 1e-12, p
PY
then ok "checkpoint stores crop contour, margin 0.1, shape 12x32x32"; else bad "checkpoint policy"; fi

# predict on every fold-0 real contour against the CV's out-of-fold estimate
estimate() { # estimate CKPT CASE CONTOUR -> the estimate, full precision
    "$segqa" predict --checkpoint "$1" --image "nii/images/$2.nii.gz" \
        --contour "nii/contours/$3/$2.nii.gz" -f json 2>/dev/null |
        "$py" -c 'import json, sys; print(json.loads(sys.stdin.readline())["estimated_dice"])'
}
"$py" - run/last-center.h5 run/fold-0/last.h5 <<'PY'
import h5py, json, shutil, sys
shutil.copy(sys.argv[2], sys.argv[1])
with h5py.File(sys.argv[1], "r+") as f:
    p = json.loads(f.attrs["preproc_config"])
    p["crop"] = "center"
    f.attrs["preproc_config"] = json.dumps(p)
PY
n=0 agree=0 differ=0
while IFS=, read -r case site fold cat target predicted rest; do
    [ "$fold" = 0 ] && [ "$cat" = real ] || continue
    id=${case%%:*} name=${case#*:}
    e=$(estimate run/fold-0/last.h5 "$id" "$name")
    c=$(estimate run/last-center.h5 "$id" "$name")
    n=$((n + 1))
    "$py" -c "import sys; sys.exit(0 if abs($e - $predicted) <= 1.5e-6 else 1)" && agree=$((agree + 1))
    "$py" -c "import sys; sys.exit(0 if abs($c - $predicted) > 1e-5 else 1)" && differ=$((differ + 1))
    echo "     $case: cv $predicted, predict $e, centre-crop control $c"
done < run/predictions.csv
if [ "$n" -ge 5 ] && [ "$agree" -eq "$n" ]; then ok "predict == CV estimate on $agree of $n contours"; else bad "predict vs CV: $agree of $n agree"; fi
if [ "$differ" -ge $((n / 2 + 1)) ]; then ok "control: centre crop changes $differ of $n estimates"; else bad "control: only $differ of $n differ"; fi

"$segqa" predict --checkpoint run/fold-0/last.h5 --image nii/images/synth_000.nii.gz \
    --contour nii/contours/synth_0/synth_000.nii.gz --crop center >out 2>&1
if [ $? -eq 2 ] && grep -q "trained with crop contour" out; then ok "predict --crop center refused"; else bad "predict --crop center"; cat out; fi
"$segqa" train site.h5 --epochs 1 --crop-shape 12x32x32 -o run-bad >out 2>&1
if [ $? -eq 2 ] && grep -q -- "--crop-shape needs --crop contour" out; then ok "--crop-shape alone refused"; else bad "--crop-shape alone"; cat out; fi

finish
