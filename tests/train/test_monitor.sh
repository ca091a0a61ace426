#!/usr/bin/env bash
# test_monitor.sh SEGQA — `segqa monitor` on estimate streams with a known truth.
#   * reference: a run folder's predictions.csv (real rows from a clipped normal, mean 0.78,
#     SD 0.08; failure-case rows that must be ignored), found from --model RUN/fold-0/best.h5;
#   * false alarms: 100 fresh streams of 200 cases from the reference distribution at alpha 0.05:
#     at most 12 raise an alarm (binomial(100, 0.05) exceeds 12 with probability < 0.2 %);
#   * drift: the mean estimate falls 0.01 (1/8 SD) more every 20 cases: detected, within 100
#     cases, exit 3, the PNG written; a collapse of one site of two is found on that site only;
#   * bad input: an error row is skipped and counted, a line without an estimate is one clear line.
set -u
segqa=$1
py=/usr/bin/python3
. "$(dirname "$0")/../lib.sh"
test_tmpdir monitor
mkdir -p "$tmp/run/fold-0"
touch "$tmp/run/fold-0/best.h5" # only its place matters: the reference is the run's predictions.csv

"$py" - "$tmp" <<'PY'
import numpy as np, json, sys
t = sys.argv[1]
rng = np.random.default_rng(5)
draw = lambda n: np.clip(rng.normal(0.78, 0.08, n), 0, 1)
with open(f"{t}/run/predictions.csv", "w") as f:
    f.write("case,site,fold,category,target,predicted,naive,abs_error\n")
    for i, y in enumerate(draw(300)):
        f.write(f"c{i},s,{i % 5},real,0.8,{y:.6f},0.7,0.1\n")
    for i in range(60):
        f.write(f"c{i},s,{i % 5},empty,0,0.05,0.7,0.1\n")
def write(name, ys, sites=None):
    with open(f"{t}/{name}", "w") as f:
        for i, y in enumerate(ys):
            r = {"id": f"p{i}", "estimated_dice": float(y), "threshold": 0.8, "accept": bool(y >= 0.8)}
            if sites: r["site"] = sites[i]
            f.write(json.dumps(r) + "\n")
for k in range(100):
    write(f"ref{k}.jsonl", draw(200))
write("drift.jsonl", draw(200) - 0.01 * (np.arange(200) // 20))
ys = draw(200); sites = ["a" if i % 2 else "b" for i in range(200)]
ys[100:][np.array(sites[100:]) == "b"] -= 0.15
write("sites.jsonl", ys, sites)
with open(f"{t}/bad.jsonl", "w") as f:
    f.write('{"id":"x","error":"x.nii.gz: no such file"}\n')
    for y in draw(30): f.write(json.dumps({"id": "y", "estimated_dice": float(y)}) + "\n")
with open(f"{t}/worse.jsonl", "w") as f:
    f.write('{"id":"x","estimated_dice":0.7}\n{"id":"y","accept":true}\n')
PY

alarms=0
for k in $(seq 0 99); do
    "$segqa" monitor "$tmp/ref$k.jsonl" --model "$tmp/run/fold-0/best.h5" --alpha 0.05 >"$tmp/o" 2>&1
    rc=$?
    [ $rc -eq 3 ] && alarms=$((alarms + 1))
    [ $rc -ne 0 ] && [ $rc -ne 3 ] && { cat "$tmp/o"; break; }
done
[ $alarms -le 12 ] && [ $rc -le 3 ] && ok "reference streams: $alarms of 100 raise an alarm at alpha 0.05" ||
    bad "reference streams: $alarms of 100 alarms (last exit $rc)"

"$segqa" monitor "$tmp/drift.jsonl" --model "$tmp/run/fold-0/best.h5" --alpha 0.05 >"$tmp/o" 2>&1
rc=$?
first=$(grep -o "first alarm at case [0-9]*" "$tmp/o" | grep -o "[0-9]*$")
[ $rc -eq 3 ] && [ -n "$first" ] && [ "$first" -le 100 ] && [ -s "$tmp/drift.jsonl.png" ] &&
    ok "drift of -0.01 per 20 cases: detected at case $first (<= 100), exit 3, PNG written" ||
    { bad "drift (exit $rc, first $first)"; cat "$tmp/o"; }

"$segqa" monitor "$tmp/sites.jsonl" --reference "$tmp/run/predictions.csv" --alpha 0.05 >"$tmp/o" 2>&1
rc=$?
[ $rc -eq 3 ] && grep -q "site b .*DRIFT: first alarm at case" "$tmp/o" && grep -q "site a .*no drift" "$tmp/o" &&
    [ -s "$tmp/sites.jsonl-a.png" ] && [ -s "$tmp/sites.jsonl-b.png" ] &&
    ok "per site: the collapsed site b alarms, site a does not; one PNG per site" ||
    { bad "per site (exit $rc)"; cat "$tmp/o"; }

"$segqa" monitor "$tmp/bad.jsonl" --model "$tmp/run/fold-0/best.h5" >"$tmp/o" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "1 error rows skipped" "$tmp/o" && ok "error rows are skipped and counted" ||
    { bad "error rows (exit $rc)"; cat "$tmp/o"; }
"$segqa" monitor "$tmp/worse.jsonl" --model "$tmp/run/fold-0/best.h5" >"$tmp/o" 2>&1
rc=$?
[ $rc -eq 5 ] && grep -q "worse.jsonl:2: expected a number 'estimated_dice'" "$tmp/o" &&
    [ "$(wc -l <"$tmp/o")" -eq 1 ] && ok "a row without an estimate: exit 5, one line naming file:line" ||
    { bad "bad row (exit $rc)"; cat "$tmp/o"; }
"$segqa" monitor "$tmp/bad.jsonl" --model "$tmp/nowhere/best.h5" >"$tmp/o" 2>&1
rc=$?
[ $rc -eq 4 ] && grep -q "no predictions.csv" "$tmp/o" && ok "no reference: exit 4 saying where it looked" ||
    { bad "no reference (exit $rc)"; cat "$tmp/o"; }

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
