#!/usr/bin/env bash
# test_sites_sweep.sh SEGQA — multi-site studies and sweeps without Slurm (the Slurm side is in
# tests/slurm/test_slurm_jobs.sh):
#   * synth --sites 3: the sites differ in intensity scale, bias field and resolution (read back
#     with h5py); cv --split-by site holds out one site per fold and reports every site beside the
#     pooled numbers;
#   * segqa sweep: the grid is every combination; random search is seeded (same seed, same file;
#     another seed, another file); a bad spec is one clear line;
#   * report --sweep on a sweep folder with one finished task, one running and one never started.
set -u
segqa=$1
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/segqa-sites-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../lib.sh"
net=(--fpn-channels 8 --fpn-repeats 1 --threads 1 --workers 1 --no-figures --val-every 1 --epochs 1 --no-failures)
cd "$tmp" || exit 1

"$segqa" synth --sites 3 --cases 5 --shape 16x24x16 -o study.h5 -q >synth.log || bad "synth --sites"
if "$py" - <<'PY'; then
import h5py, json, numpy as np
sites = [h5py.File(f"study-site{k}.h5") for k in (1, 2, 3)]
names = [f.attrs["site"].decode() for f in sites]  # fixed-length strings: bytes in h5py
names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
assert names == ["synth-site1", "synth-site2", "synth-site3"], names
sp = [tuple(np.asarray(f.attrs["spacing"]).ravel()) for f in sites]
assert sp[0][1] < sp[1][1] < sp[2][1], sp
means = [np.mean([f["cases"][c]["image"][()].mean() for c in f["cases"]]) for f in sites]
assert means[0] < 0.8 * means[1] and means[1] < 0.8 * means[2], means
pre = [json.loads(f.attrs["preprocessing"]) for f in sites]
assert [p["bias_extra"] for p in pre] == [0, 0.175, 0.35], pre
PY
    ok "synth --sites 3: names, in-plane spacing, intensity scale and bias differ per site"
else
    bad "synth --sites: sites do not differ as documented"
fi

out=$("$segqa" cv study-site1.h5 study-site2.h5 study-site3.h5 --split-by site --out loso "${net[@]}" 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q "real contours per site" <<<"$out" && "$py" - <<'PY'; then
import json
sp = json.load(open("loso/splits.json"))
for c in sp["cases"]:
    site = c["case"].split("/")[0]
    assert int(site[-1]) - 1 == c["fold"], c
m = json.load(open("loso/metrics.json"))
assert sorted(m["per_site"]) == ["synth-site1", "synth-site2", "synth-site3"], m["per_site"]
assert len(m["per_fold"]) == 3 and len(m["validation"]["per_fold"]) == 3
for f in m["per_fold"]:
    assert f["segqa"]["n"] == m["per_site"][f"synth-site{f['fold'] + 1}"]["segqa"]["n"]
PY
    ok "cv --split-by site: fold f = site f, per-site metrics beside the pooled ones"
else
    bad "cv --split-by site (exit $rc)"; echo "$out" | tail -5
fi
msg=$("$segqa" cv study-site1.h5 --split-by site --out x "${net[@]}" 2>&1)
[ $? -eq 2 ] && grep -q "needs at least 2 site files, got 1" <<<"$msg" && ok "--split-by site with one site: usage error" || bad "one site: $msg"

# sweep files
echo '{"lr": [0.001, 0.01], "augment": ["paper", "robust"], "no-failures": [true, false]}' >grid.json
"$segqa" sweep --grid grid.json -o grid.txt >/dev/null
[ "$(wc -l <grid.txt)" -eq 8 ] && [ "$(sort -u grid.txt | wc -l)" -eq 8 ] &&
    [ "$(head -n1 grid.txt)" = "--lr 0.001 --augment paper --no-failures" ] &&
    [ "$(sed -n 2p grid.txt)" = "--lr 0.001 --augment paper" ] &&
    ok "sweep --grid: 8 distinct combinations, last key fastest, true is a flag" || { bad "grid"; cat grid.txt; }
echo '{"lr": {"min": 1e-4, "max": 1e-2, "log": true}, "fpn-repeats": {"min": 1, "max": 3, "int": true}, "augment": ["paper", "robust"]}' >rand.json
"$segqa" sweep --random 6 --seed 5 rand.json -o r1.txt >/dev/null
"$segqa" sweep --random 6 --seed 5 rand.json -o r2.txt >/dev/null
"$segqa" sweep --random 6 --seed 6 rand.json -o r3.txt >/dev/null
if cmp -s r1.txt r2.txt && ! cmp -s r1.txt r3.txt && "$py" - <<'PY'; then
for line in open("r1.txt"):
    t = line.split()
    o = dict(zip(t[0::2], t[1::2]))
    assert 1e-4 <= float(o["--lr"]) <= 1e-2, line
    assert o["--fpn-repeats"] in ("1", "2", "3"), line
    assert o["--augment"] in ("paper", "robust"), line
PY
    ok "sweep --random: seeded (same seed same file, other seed other file), values inside the ranges"
else
    bad "random sweep"; cat r1.txt r3.txt
fi
echo '{"lr": {"min": 1e-4, "max": 1e-2}}' >range.json
msg=$("$segqa" sweep --grid range.json -o x.txt 2>&1)
[ $? -ne 0 ] && [ "$(wc -l <<<"$msg")" -eq 1 ] && grep -q "range.json: key 'lr' is a range: ranges need --random N" <<<"$msg" && [ ! -e x.txt ] &&
    ok "a range in --grid: one clear line, no file" || bad "range in grid: $msg"
echo '{"LR": [1]}' >badkey.json
msg=$("$segqa" sweep --grid badkey.json -o x.txt 2>&1)
[ $? -ne 0 ] && grep -q "badkey.json: key 'LR' is not an option name" <<<"$msg" && ok "bad key: one clear line" || bad "bad key: $msg"

# report on a folder with one finished task, one running, one never started
mkdir -p sw/task-0 sw/task-1
printf -- '--lr 0.002\n--lr 0.005\n--lr 0.01\n' >sw/sweep.txt
"$segqa" cv study-site1.h5 study-site2.h5 --folds 2 --out sw/task-0 "${net[@]}" --lr 0.002 >/dev/null 2>&1 || bad "task-0 run"
echo '{"task": 0, "job": "7_0", "state": "done", "exit": 0}' >sw/task-0/task.json
echo '{"task": 1, "job": "7_1", "state": "running", "exit": null}' >sw/task-1/task.json
"$segqa" report --sweep sw >report.log 2>&1
rc=$?
if [ $rc -eq 1 ] && [ -s sw/sweep-report.png ] && "$py" - <<'PY'; then
import csv
rows = {r["task"]: r for r in csv.DictReader(open("sw/sweep-report.csv"))}
assert rows["0"]["rank"] == "1" and rows["0"]["state"] == "done" and float(rows["0"]["val_mae"]) > 0, rows
assert rows["1"]["state"] == "running" and rows["1"]["rank"] == "", rows
assert rows["2"]["state"] == "never started" and rows["2"]["rank"] == "", rows
PY
    ok "report --sweep: finished task ranked, running and never-started tasks marked, exit 1"
else
    bad "report on a partial sweep (exit $rc)"; cat report.log
fi
msg=$("$segqa" report --sweep nowhere 2>&1)
[ $? -ne 0 ] && grep -q "nowhere/sweep.txt" <<<"$msg" && ok "report on a folder without sweep.txt: one clear line" || bad "no sweep.txt: $msg"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
