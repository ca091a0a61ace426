#!/usr/bin/env bash
# test_baseline.sh SEGQA PYTHON MPIRUN... — `segqa baseline` end to end on a small synthetic site
# whose age is tied to difficulty (synth --clinical-signal 1): the GBDT beats the naive mean, on
# shuffled targets it does not, the search is reproducible for a seed and the same on 1 and 2 MPI
# ranks (and differs for another seed), and bad clinical CSVs fail with one line and no run folder.
set -u
SEGQA=$1
PY=$2
shift 2
MPIRUN=("$@")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../lib.sh"

# small and fast: 12 trials (8 random, then TPE in rounds of 4), 2 search repeats, 8 final repeats
FAST=(--trials 12 --startup 8 --batch 4 --repeats-search 2 --repeats-final 8 -q)
mae() { "$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['models'][sys.argv[2]]['mae_mean'])" "$1" "$2"; }
# a < f * b
lt() { "$PY" -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[3]) * float(sys.argv[2]) else 1)" "$1" "$2" "$3"; }

"$SEGQA" synth -q -o "$tmp/s.h5" --shape 12x48x48 -n 60 --clinical-signal 1 >/dev/null || { echo "FAIL synth"; exit 1; }

# 1. the GBDT finds the tie: MAE well below naive's
"$SEGQA" baseline "${FAST[@]}" "$tmp/s.h5" --out "$tmp/g1"
g=$(mae "$tmp/g1/table2.json" gbdt) n=$(mae "$tmp/g1/table2.json" naive)
if lt "$g" "$n" 0.8; then ok "gbdt-beats-naive ($g < 0.8 x $n)"; else bad "gbdt-beats-naive ($g vs $n)"; fi
for f in table2.md table2.json best_params.json trials.csv importance.csv predictions.csv pred_vs_target.png config.json; do
    [ -s "$tmp/g1/$f" ] || bad "run folder lacks $f"
done
[ "$(wc -l <"$tmp/g1/trials.csv")" -eq 13 ] && grep -q ',tpe,' "$tmp/g1/trials.csv" && ok "trials.csv: 12 trials, TPE used" || bad "trials.csv"
head -c 8 "$tmp/g1/pred_vs_target.png" | od -An -c | grep -q 'P   N   G' && ok "figure is a PNG" || bad "figure is a PNG"
out=$("$PY" "$(dirname "$0")/check_predictions.py" "$tmp/s.h5" "$tmp/g1" 2>&1) && ok "predictions.csv vs h5py: $out" ||
    { bad "predictions.csv vs h5py"; echo "$out"; }
# age carries the signal: the largest total gain
top=$(sort -t, -k4 -g -r <(tail -n +2 "$tmp/g1/importance.csv") | head -1 | cut -d, -f1)
[ "$top" = age ] && ok "importance: age first" || bad "importance: top is '$top', expected age"

# 2. shuffled targets: nothing to find
"$SEGQA" baseline "${FAST[@]}" --shuffle-targets "$tmp/s.h5" --out "$tmp/sh" --no-figures
g=$(mae "$tmp/sh/table2.json" gbdt) n=$(mae "$tmp/sh/table2.json" naive)
if lt "$n" "$g" 1.02; then ok "shuffled: gbdt does not beat naive ($g vs $n)"; else bad "shuffled: gbdt $g beats naive $n"; fi

# 3. reproducible for a seed, the same on 2 ranks, different for another seed
"$SEGQA" baseline "${FAST[@]}" "$tmp/s.h5" --out "$tmp/g2" --no-figures
"${MPIRUN[@]}" -np 2 "$SEGQA" baseline "${FAST[@]}" "$tmp/s.h5" --out "$tmp/g3" --no-figures
"$SEGQA" baseline "${FAST[@]}" --seed 7 "$tmp/s.h5" --out "$tmp/g4" --no-figures
for f in trials.csv best_params.json predictions.csv importance.csv; do
    cmp -s "$tmp/g1/$f" "$tmp/g2/$f" && ok "same seed: $f identical" || bad "same seed: $f differs"
    cmp -s "$tmp/g1/$f" "$tmp/g3/$f" && ok "2 ranks: $f identical" || bad "2 ranks: $f differs"
done
strip() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); [d.pop(k) for k in ('search_seconds','final_seconds')]; print(json.dumps(d,sort_keys=True))" "$1"; }
[ "$(strip "$tmp/g1/table2.json")" = "$(strip "$tmp/g3/table2.json")" ] && ok "2 ranks: table2.json identical" || bad "2 ranks: table2.json differs"
cmp -s "$tmp/g1/trials.csv" "$tmp/g4/trials.csv" && bad "seed 7 gives the same trials" || ok "another seed: other trials"

# 4. naive alone
"$SEGQA" baseline -q --model naive --repeats-final 4 "$tmp/s.h5" --out "$tmp/nv" --no-figures
grep -q '^| Naive' "$tmp/nv/table2.md" && ! grep -q GBDT "$tmp/nv/table2.md" && ok "naive model" || bad "naive model"

# 5. a clinical CSV with a categorical column; then bad CSVs: one line, non-zero, no run folder
csv=$tmp/clin.csv
{
    echo "patient,age,grade"
    for i in $(seq 0 59); do printf 'synth_%03d,%d,%s\n' "$i" $((50 + i % 30)) "$(echo A B C | cut -d' ' -f$((i % 3 + 1)))"; done
} >"$csv"
"$SEGQA" baseline -q --trials 2 --repeats-search 1 --repeats-final 2 --clinical "$csv" "$tmp/s.h5" --out "$tmp/csv" --no-figures
grep -q '^grade,categorical,' "$tmp/csv/importance.csv" && grep -q '^age,numeric,' "$tmp/csv/importance.csv" &&
    ok "csv: grade categorical, age numeric" || bad "csv: types"

# expect_error NAME PATTERN CSV [extra options]
expect_error() {
    local name=$1 pat=$2 file=$3
    shift 3
    rm -rf "$tmp/badrun"
    "$SEGQA" baseline -q --trials 2 --repeats-search 1 --repeats-final 2 --clinical "$file" "$@" "$tmp/s.h5" \
        --out "$tmp/badrun" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -eq 0 ]; then bad "$name: exit 0"; return; fi
    if [ "$(wc -l <"$tmp/err")" -ne 1 ] || [ -s "$tmp/out" ]; then bad "$name: not one line"; cat "$tmp/out" "$tmp/err"; return; fi
    if ! grep -Eq -- "$pat" "$tmp/err"; then bad "$name: message lacks /$pat/"; cat "$tmp/err"; return; fi
    if [ -e "$tmp/badrun" ]; then bad "$name: run folder written"; return; fi
    ok "$name: $(cat "$tmp/err")"
}
expect_error missing-column "clin.csv: missing column 'psa'" "$csv" --features age,psa
sed '6s/,[0-9]*,/,abc,/' "$csv" >"$tmp/nonnum.csv"
expect_error non-numeric "nonnum.csv:6: column 'age': 'abc' is not a number" "$tmp/nonnum.csv"
expect_error non-numeric-declared "nonnum.csv:6: column 'age': 'abc' is not a number \(declared numeric\)" "$tmp/nonnum.csv" --features age:num,grade
{ cat "$csv"; echo "nobody,60,A"; } >"$tmp/unknown.csv"
expect_error unknown-patient "unknown.csv:62: unknown patient 'nobody'" "$tmp/unknown.csv"
{ cat "$csv"; echo "synth_003,61,B"; } >"$tmp/dup.csv"
expect_error duplicate-patient "dup.csv:62: duplicate patient 'synth_003' \(first on line 5\)" "$tmp/dup.csv"
head -n 30 "$csv" >"$tmp/short.csv"
expect_error missing-patient "short.csv: no row for patient 'synth_029'" "$tmp/short.csv"
sed '1s/patient/who/' "$csv" >"$tmp/nokey.csv"
expect_error no-key-column "nokey.csv:1: header needs a column 'patient' or 'case'" "$tmp/nokey.csv"

# 6. segqa cv on a site with clinical variables: the GBDT on the run's own folds beside the network
"$SEGQA" synth -q -o "$tmp/cv.h5" --shape 8x32x32 -n 30 --clinical-signal 1 >/dev/null
"$SEGQA" cv -q "$tmp/cv.h5" --out "$tmp/cvrun" --folds 3 --epochs 1 --fpn-channels 16 --fpn-repeats 1 \
    --threads 1 --workers 1 --no-figures --no-failures >"$tmp/cv.out" 2>&1
if grep -q '^  GBDT clinical  MAE' "$tmp/cv.out" && "$PY" - "$tmp/cvrun" <<'PYEOF'; then
import json, math, sys
b = json.load(open(sys.argv[1] + "/clinical_baseline.json"))
m = json.load(open(sys.argv[1] + "/metrics.json"))["summary"]["real_contours"]
assert b["real_contours"] == m["segqa"]["n"] == 40, b
assert b["network"]["mae"] == m["segqa"]["mae"] and b["naive"]["mae"] == m["naive"]["mae"]
assert math.isfinite(b["gbdt_clinical"]["mae"]) and 0 < b["gbdt_clinical"]["mae"] < 0.2, b
PYEOF
    ok "cv: GBDT beside the network ($(grep 'GBDT clinical' "$tmp/cv.out" | xargs))"
else
    bad "cv: GBDT beside the network"; cat "$tmp/cv.out"
fi

finish
