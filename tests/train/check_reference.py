#!/usr/bin/python3
"""check_reference.py RUN_DIR — the committed reference run (results/hippocampus-reference/):

* metrics.json has every category (real, empty, noise, all-ones, shifted-gt, gt) and every Dice
  band of the real contours, with counts that add up to predictions.csv;
* the interval coverage in metrics.json equals a numpy recomputation from predictions.csv (fit the
  Mondrian split-conformal offsets on the other folds, score each held-out fold);
* that coverage against the issue's target of 3 points of nominal (0.8, 0.9, 0.95), overall and in
  every estimate band with at least 100 samples: more than 3 points off fails.
Prints 'N passed, M failed'."""
import csv
import json
import sys

import numpy as np

from conformal_ref import band_of, fit_bands

run = sys.argv[1]
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


BANDS = ["[0, 0.5)", "[0.5, 0.85)", "[0.85, 1]"]
CATS = ["real", "empty", "noise", "all-ones", "shifted-gt", "gt"]


def fit(y, p, cov):
    return [cell[2:] for cell in fit_bands(y, p, cov)]


misses = []
targets = 0


def judge(name, got, nominal, n):
    """The issue's target, +-3 points, is the bound. (It was loosened to 7, then 10, while one fold
    model per run failed on all-ones and noise masks and put the lowest estimate band's coverage up
    to 9.2 points under; with --bn-freeze-epochs the run of 2026-12-01 22:25 misses no cell,
    results/hippocampus-reference/README.md.)"""
    global targets
    targets += 1
    if abs(got - nominal) > 0.03:
        misses.append(f"{name} (n {n}): {got:.4f}, {100 * (got - nominal):+.1f} points")
    check(f"{name} (n {n}): {got:.4f}, within 3 points of nominal", abs(got - nominal) <= 0.03)


m = json.load(open(run + "/metrics.json"))
rows = list(csv.DictReader(open(run + "/predictions.csv")))
s = m["summary"]
cat = np.array([r["category"] for r in rows])
y = np.array([float(r["target"]) for r in rows])
p = np.array([float(r["predicted"]) for r in rows])
fold = np.array([int(r["fold"]) for r in rows])

for c in CATS:
    n = s["by_category"].get(c, {}).get("segqa", {}).get("n", 0)
    check(f"category {c}: n = {n} = predictions.csv", n > 0 and n == (cat == c).sum())
real = cat == "real"
for k, b in enumerate(BANDS):
    n = s["real_by_band"][b]["segqa"]["n"]
    want = int((real & (band_of(y) == k)).sum())
    mae = s["real_by_band"][b]["segqa"]["mae"]
    ok = n == want and n > 0 and abs(mae - np.abs(p - y)[real & (band_of(y) == k)].mean()) < 1e-5
    check(f"band {b}: n = {n}, MAE {mae:.4f} agree with predictions.csv", ok, (n, want))

for iv in m["intervals"]:
    cov = iv["nominal"]
    covered = np.zeros(len(y), bool)
    for f in np.unique(fold):
        te = fold == f
        off = fit(y[~te], p[~te], cov)
        lo = np.array([off[b][0] for b in band_of(p[te])])
        hi = np.array([off[b][1] for b in band_of(p[te])])
        covered[te] = (np.maximum(0, p[te] + lo) - 1e-6 <= y[te]) & \
                      (y[te] <= np.minimum(1, p[te] + hi) + 1e-6)
    got = iv["all"]["coverage"]
    check(f"coverage {cov:.2f}: metrics.json {got:.4f} = numpy {covered.mean():.4f}",
          abs(got - covered.mean()) < 2.0 / len(y))
    judge(f"coverage {cov:.2f} overall", got, cov, iv["all"]["n"])
    for k, b in enumerate(BANDS):
        cell = iv["by_estimate_band"][b]
        if cell["n"] < 100:
            print(f"--   coverage {cov:.2f} estimate band {b}: n = {cell['n']} < 100, not judged")
            continue
        judge(f"coverage {cov:.2f} estimate band {b}", cell["coverage"], cov, cell["n"])

print(f"issue 12's +-3-point target: {len(misses)} of {targets} cells missed" +
      "".join(f"\n     {m}" for m in misses))
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
