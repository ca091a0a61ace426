#!/usr/bin/env bash
# test_intervals.sh SEGQA — the accuracy issue's pipeline end to end on 16 bundled hippocampus cases
# at 16x24x16, through `segqa demo` (so the demo's wiring is tested too):
#   * `segqa contours` with its defaults: atlas, perturb and two near-GT contours per case, the
#     near ones at the top of the Dice range;
#   * `segqa demo --recipe demo` (2 folds, 1 epoch): the CV job gets --recipe demo, metrics.json
#     has the three Dice bands for real contours and the interval coverage on held-out folds,
#     validation/ holds the validation patients' own report, calibration.json is written and
#     stored in every fold checkpoint;
#   * `segqa predict`: `estimate [lo, hi]` in the table and in JSON at --coverage, lo <= hi;
#     --accept-if lower rejects where the estimate alone accepts; --calibration from a file;
#     a checkpoint without a calibration refuses --accept-if lower with one line;
#   * `segqa train --calibration` stores it; a bad calibration file is one line and no run folder;
#   * `--recipe`: options beside it override it (config.json);
#   * the estimate map (train/recal.h): every fold's last.h5 holds it after the CV, predict
#     applies a checkpoint's map exactly (sigmoid(a logit(raw) + b)), a bad map is one line, and
#     `train --recalibrate off` stores none.
set -u
segqa=$1
here=$(cd "$(dirname "$0")/../.." && pwd)
data=$here/datasets/msd-hippocampus
py=/usr/bin/python3
. "$(dirname "$0")/../lib.sh"
test_tmpdir intervals
finish() { echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; exit $?; }
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 # Open MPI's own leaks

# --- contours' defaults ---
"$segqa" ingest "$data" -o "$tmp/gt.h5" --shape 16x24x16 --limit 16 -q || { bad ingest; finish; }
line=$("$segqa" contours "$tmp/gt.h5" -o "$tmp/c.h5" -q)
if [[ "$line" == "64 contours on 16 cases"* ]]; then ok "contours defaults: 4 per case ($line)"; else bad "contours defaults: $line"; fi
near=$(h5dump -A "$tmp/c.h5" 2>/dev/null | "$py" -c '
import re, sys
t = sys.stdin.read()
d = [float(m) for m in re.findall(r"DATASET \"near_\d+\".*?ATTRIBUTE \"dice\".*?\(0\): ([0-9.e-]+)", t, re.S)]
print(len(d), sum(d) / max(1, len(d)), min(d) if d else 0)')
if "$py" -c "import sys; n, mean, lo = map(float, '$near'.split()); sys.exit(not (n == 32 and 0.85 <= mean <= 0.99 and lo >= 0.5))"; then
    ok "near-GT contours: n, mean, min = $near"
else
    bad "near-GT contours: n, mean, min = '$near'"
fi

# --- the demo, tiny ---
out=$("$segqa" demo --data "$data" --out "$tmp/demo" --limit 16 --shape 16x24x16 --folds 2 --epochs 1 2>&1)
rc=$?
run=$tmp/demo/cv
if [ $rc -eq 0 ] && grep -q -- "--recipe demo" <<<"$out"; then ok "demo ran cv --recipe demo"; else bad "demo (rc $rc): $(tail -5 <<<"$out")"; finish; fi
if grep -q "interval coverage on held-out folds (nominal 90%" <<<"$out" && grep -q "\[0.85, 1\]" <<<"$out"; then
    ok "summary prints the bands and the coverage table"
else
    bad "summary without bands or coverage"
fi
if "$py" - "$run" <<'PY'; then ok "metrics.json: bands, intervals, validation report with each fold's estimate map, config from the recipe"; else bad "metrics.json"; fi
import json, sys
run = sys.argv[1]
m = json.load(open(run + "/metrics.json"))
s = m["summary"]
assert list(s["real_by_band"]) == ["[0, 0.5)", "[0.5, 0.85)", "[0.85, 1]"], s["real_by_band"].keys()
n = sum(b["segqa"]["n"] for b in s["real_by_band"].values())
assert n == s["real_contours"]["segqa"]["n"], (n, s["real_contours"]["segqa"]["n"])
iv = m["intervals"]
assert [round(x["nominal"], 2) for x in iv] == [0.8, 0.9, 0.95], iv
assert iv[1]["all"]["n"] == s["all_samples"]["segqa"]["n"] and iv[1]["folds"] == 2, iv[1]
assert list(m)[:3] == ["summary", "validation", "intervals"], list(m)
maps = [f["estimate_map"] for f in m["validation"]["per_fold"]]
assert len(maps) == 2 and all(0.1 <= e["a"] <= 10 and e["n"] > 0 for e in maps), maps
v = json.load(open(run + "/validation/metrics.json"))["summary"]
assert v["by_category"]["gt"]["segqa"]["n"] >= 1 and "real_by_band" in v, v.keys()
c = json.load(open(run + "/config.json"))
assert c["recipe"] == "demo" and c["epochs"] == 1 and c["batch"] == 8 and c["decay-epoch"] == 5, c  # --epochs overrides
cal = json.load(open(run + "/calibration.json"))
assert len(cal["bands"]) == 3 and all(len(b["lo"]) == 50 for b in cal["bands"]), cal
PY
for f in 0 1; do
    if h5dump -a calibration "$run/fold-$f/best.h5" 2>/dev/null | grep -q "Mondrian"; then ok "fold-$f/best.h5 holds the calibration"; else bad "fold-$f/best.h5 has no calibration"; fi
done

# --- predict with intervals ---
ck=$run/fold-0/best.h5
img=$data/images/hippocampus_004.nii.gz
lab=$data/labels/hippocampus_004.nii.gz
tab=$("$segqa" predict -c "$ck" -i "$img" -m "$lab" --label all --threshold 0 2>&1)
if grep -qE '^contour +est. Dice +interval' <<<"$tab" && grep -qE '[0-9.]+ +\[[0-9.]+, [0-9.]+\] +accept' <<<"$tab"; then ok "table: estimate [lo, hi]"; else bad "table: $tab"; fi
js=$("$segqa" predict -c "$ck" -i "$img" -m "$lab" --label all --format json --coverage 0.8)
read -r est lo hi cov <<<"$("$py" -c 'import json,sys; j=json.loads(sys.stdin.read()); print(j["estimated_dice"], *j["interval"], j["coverage"])' <<<"$js")"
if "$py" -c "import sys; sys.exit(not (0 <= $lo <= $hi <= 1 and abs($cov - 0.8) < 1e-9))"; then ok "json: interval [$lo, $hi] at coverage $cov, estimate $est"; else bad "json: $js"; fi
js95=$("$segqa" predict -c "$ck" -i "$img" -m "$lab" --label all --format json --coverage 0.95)
w95=$("$py" -c 'import json,sys; j=json.loads(sys.stdin.read()); print(j["interval"][1]-j["interval"][0])' <<<"$js95")
if "$py" -c "import sys; sys.exit(not ($w95 >= $hi - $lo - 1e-9))"; then ok "a higher coverage gives a wider interval"; else bad "width at 0.95 $w95 < at 0.8"; fi
thr=$("$py" -c "print(($lo + $est) / 2)")
"$segqa" predict -c "$ck" -i "$img" -m "$lab" --label all --coverage 0.8 --threshold "$thr" >/dev/null 2>&1
rc_est=$?
"$segqa" predict -c "$ck" -i "$img" -m "$lab" --label all --coverage 0.8 --threshold "$thr" --accept-if lower >/dev/null 2>&1
rc_low=$?
if "$py" -c "import sys; sys.exit(not ($lo < $est))"; then
    if [ $rc_est -eq 0 ] && [ $rc_low -eq 3 ]; then ok "--accept-if lower rejects (3) where the estimate accepts (0)"; else bad "--accept-if: estimate rc $rc_est, lower rc $rc_low"; fi
else
    ok "--accept-if lower: interval starts at the estimate here, nothing to compare ($lo, $est)"
fi
js2=$("$segqa" predict -c "$ck" -i "$img" -m "$lab" --label all --format json --coverage 0.8 --calibration "$run/calibration.json")
if [ "$("$py" -c 'import json,sys; print(json.loads(sys.stdin.read())["interval"])' <<<"$js2")" = "$("$py" -c 'import json,sys; print(json.loads(sys.stdin.read())["interval"])' <<<"$js")" ]; then
    ok "--calibration FILE gives the checkpoint's interval"
else
    bad "--calibration FILE differs: $js2 vs $js"
fi

# --- train --calibration; a checkpoint without one ---
"$segqa" train "$tmp/c.h5" --out "$tmp/plain" --epochs 1 --fpn-channels 16 --fpn-repeats 1 --threads 1 --no-figures -q >/dev/null 2>&1
err=$("$segqa" predict -c "$tmp/plain/all/best.h5" -i "$img" -m "$lab" --label all --accept-if lower 2>&1)
rc=$?
if [ $rc -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q "no interval calibration" <<<"$err"; then ok "no calibration + --accept-if lower: one line, exit 2"; else bad "no calibration: rc $rc: $err"; fi
if "$segqa" predict -c "$tmp/plain/all/best.h5" -i "$img" -m "$lab" --label all 2>&1 | grep -qE '^contour +est. Dice +decision'; then ok "no calibration: the table has no interval column"; else bad "no calibration: table"; fi
"$segqa" train "$tmp/c.h5" --out "$tmp/cal" --epochs 1 --fpn-channels 16 --fpn-repeats 1 --threads 1 --no-figures -q --calibration "$run/calibration.json" >/dev/null 2>&1
if "$segqa" predict -c "$tmp/cal/all/last.h5" -i "$img" -m "$lab" --label all --format json | grep -q '"interval"'; then ok "train --calibration stores it in the checkpoint"; else bad "train --calibration"; fi
echo '{"bands": [1, 2]}' >"$tmp/badcal.json"
err=$("$segqa" train "$tmp/c.h5" --out "$tmp/badrun" --epochs 1 --calibration "$tmp/badcal.json" 2>&1)
rc=$?
if [ $rc -ne 0 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q "badcal.json" <<<"$err" && [ ! -e "$tmp/badrun" ]; then ok "bad calibration: one line naming the file, no run folder"; else bad "bad calibration: rc $rc, $err"; fi
# --- the estimate map ---
if h5dump -a recalibration "$run/fold-0/last.h5" 2>/dev/null | grep -q 'sigmoid(a\*logit(est)+b)'; then ok "fold-0/last.h5 holds the estimate map"; else bad "fold-0/last.h5 has no estimate map"; fi
for m in id mapped neg; do cp "$tmp/plain/all/last.h5" "$tmp/$m.h5"; done
"$py" - "$tmp" <<'PY' || bad "setting maps with h5py"
import sys, h5py, numpy as np
t = sys.argv[1]
for name, a, b in [("id", 1, 0), ("mapped", 2.0, 0.5), ("neg", -1.0, 0)]:
    with h5py.File(f"{t}/{name}.h5", "r+") as f:
        if "recalibration" in f.attrs: del f.attrs["recalibration"]
        f.attrs["recalibration"] = np.bytes_('{"a": %r, "b": %r, "n": 100}' % (a, b))
PY
e_id=$("$segqa" predict -c "$tmp/id.h5" -i "$img" -m "$lab" --label all --format json | "$py" -c 'import json,sys; print(json.loads(sys.stdin.read())["estimated_dice"])')
e_map=$("$segqa" predict -c "$tmp/mapped.h5" -i "$img" -m "$lab" --label all --format json | "$py" -c 'import json,sys; print(json.loads(sys.stdin.read())["estimated_dice"])')
if "$py" -c "
import math, sys
r = min(max($e_id, 1e-4), 1 - 1e-4); want = 1 / (1 + math.exp(-(2.0 * math.log(r / (1 - r)) + 0.5)))
sys.exit(not abs($e_map - want) < 2e-6)"; then ok "predict applies the map: $e_id -> $e_map"; else bad "map: raw $e_id, mapped $e_map"; fi
err=$("$segqa" predict -c "$tmp/neg.h5" -i "$img" -m "$lab" --label all 2>&1)
rc=$?
if [ $rc -ne 0 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q "neg.h5: recalibration: a = -1, b = 0, expected a in" <<<"$err"; then ok "a bad map: one line naming the checkpoint"; else bad "bad map: rc $rc: $err"; fi
"$segqa" train "$tmp/c.h5" --out "$tmp/norecal" --epochs 1 --fpn-channels 16 --fpn-repeats 1 --threads 1 --no-figures -q --recalibrate off >/dev/null 2>&1
if h5dump -A "$tmp/norecal/all/last.h5" 2>/dev/null | grep -q recalibration; then bad "--recalibrate off stored a map"; elif [ -s "$tmp/norecal/all/last.h5" ]; then ok "--recalibrate off: no map stored"; else bad "--recalibrate off: no checkpoint"; fi
finish
