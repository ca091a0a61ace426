#!/usr/bin/python3
"""check_metrics.py TOOL — segqa's metrics against numpy / scipy.stats on fixed and random vectors
(with ties, constants and failure-rule edge cases). Prints 'N passed, M failed'."""
import json
import subprocess
import sys

import numpy as np
from scipy import stats

tool = sys.argv[1]
passed = failed = 0


def run(y, p):
    text = "".join(f"{a!r} {b!r}\n" for a, b in zip(y, p))
    out = subprocess.run([tool], input=text, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def close(name, got, want, tol=1e-12):
    global passed, failed
    if want is None or (isinstance(want, float) and np.isnan(want)):
        ok = got is None
    else:
        ok = got is not None and abs(got - want) <= tol * max(1.0, abs(want))
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: segqa {got!r}, reference {want!r}")


def reference(y, p):
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    e = np.abs(p - y)
    nz = y != 0
    fails = ((p < 0.75) & (y > 0.8)) | ((p > 0.8) & (y < 0.75))
    const = np.ptp(y) == 0 or np.ptp(p) == 0
    return {
        "n": len(y),
        "mae": e.mean(),
        "mae_sd": e.std(),
        "mape": 100 * (e[nz] / np.abs(y[nz])).mean() if nz.any() else None,
        "max_err": e.max(),
        "spearman": None if const else stats.spearmanr(y, p).correlation,
        "pearson": None if const else stats.pearsonr(y, p)[0],
        "accuracy": 1 - fails.mean(),
        "n_failed": int(fails.sum()),
    }


cases = {
    # the paper's situation: Dice in [0.85, 0.95] and estimates around them, with ties
    "fixed-ties": ([0.9, 0.9, 0.85, 0.93, 0.88, 0.9, 0.91],
                   [0.89, 0.92, 0.92, 0.9, 0.87, 0.89, 0.95]),
    # the accuracy rule's edges: exactly at the thresholds does not fail
    "rule-edges": ([0.81, 0.74, 0.8, 0.75, 0.9, 0.1, 0.0],
                   [0.74, 0.81, 0.7, 0.9, 0.75, 0.8, 0.0]),
    "constant-pred": ([0.1, 0.5, 0.9], [0.7, 0.7, 0.7]),
}
rng = np.random.default_rng(20221)
for k in range(5):
    y = np.round(rng.uniform(0, 1, 200), 2)          # many ties
    p = np.round(np.clip(y + rng.normal(0, 0.1, 200), 0, 1), 2)
    cases[f"random-{k}"] = (y.tolist(), p.tolist())

for name, (y, p) in cases.items():
    got, want = run(y, p), reference(y, p)
    for key in want:
        close(f"{name}.{key}", got[key], want[key], 1e-9 if key in ("spearman", "pearson") else 1e-12)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
