#!/usr/bin/python3
"""check_metrics.py TOOL — segqa's metrics against numpy / scipy.stats on fixed and random vectors
(with ties, constants and failure-rule edge cases), the same per Dice band ([0, 0.5), [0.5, 0.85),
[0.85, 1]), the split-conformal offsets and held-out-fold coverage against a numpy
implementation of the order statistics, and the estimate map sigmoid(a logit(p) + b)
(train/recal.h) against scipy.optimize.least_squares. Prints 'N passed, M failed'."""
import json
import os
import subprocess
import sys

import numpy as np
from scipy import stats

from conformal_ref import band_of, fit_bands as fit

tool = sys.argv[1]
passed = failed = 0


def run(y, p, *mode, folds=None):
    if folds is None:
        text = "".join(f"{a!r} {b!r}\n" for a, b in zip(y, p))
    else:
        text = "".join(f"{a!r} {b!r} {int(f)}\n" for a, b, f in zip(y, p, folds))
    out = subprocess.run([tool, *mode], input=text, capture_output=True, text=True,
                         check=True).stdout
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

# ---- per Dice band of the true Dice: the same metrics on each band's subset ----
def empty_reference():
    return {"n": 0, "mae": None, "mae_sd": None, "mape": None, "max_err": None,
            "spearman": None, "pearson": None, "accuracy": None, "n_failed": 0}


band_cases = dict(cases)
band_cases["edges"] = ([0.0, 0.4999, 0.5, 0.8499, 0.85, 1.0, 0.3, 0.6, 0.9],
                       [0.1, 0.5, 0.45, 0.8, 0.9, 0.97, 0.2, 0.7, 0.95])
for name, (y, p) in band_cases.items():
    got = run(y, p, "bands")
    y, p = np.asarray(y), np.asarray(p)
    b = band_of(y)
    for k in range(3):
        m = b == k
        want = reference(y[m], p[m]) if m.any() else empty_reference()
        for key in want:
            if want["n"] == 0 and key in ("accuracy",):
                continue
            close(f"{name}.band{k}.{key}", got[k][key], want[key],
                  1e-9 if key in ("spearman", "pearson") else 1e-12)


# ---- split-conformal (Mondrian by the estimate's band), reference: conformal_ref.py ----
rng = np.random.default_rng(7)
for k, cov in enumerate([0.8, 0.9, 0.95]):
    n = 600
    y = rng.uniform(0, 1, n)
    p = np.clip(y + rng.normal(0, 0.05 + 0.1 * (y < 0.5), n) - 0.03 * (y > 0.85), 0, 1)
    p = np.round(p, 6)  # C reads what Python writes
    folds = rng.integers(0, 5, n)
    got = run(y.tolist(), p.tolist(), "conformal", str(cov), folds=folds)
    want = fit(y, p, cov)
    for b in range(3):
        gb = got["bands"][b]
        close(f"conformal{k}.band{b}.n", gb["n"], want[b][0])
        close(f"conformal{k}.band{b}.pooled", int(gb["pooled"]), int(want[b][1]))
        close(f"conformal{k}.band{b}.lo", gb["lo"], want[b][2], 1e-6)
        close(f"conformal{k}.band{b}.hi", gb["hi"], want[b][3], 1e-6)
    covered = 0
    for f in range(5):
        tr, te = folds != f, folds == f
        w = fit(y[tr], p[tr], cov)
        for yi, pi in zip(y[te], p[te]):
            _, _, lo, hi = w[band_of(pi)]
            covered += max(0.0, pi + lo) - 1e-12 <= yi <= min(1.0, pi + hi) + 1e-12
    close(f"conformal{k}.covered", got["covered"], covered)
    close(f"conformal{k}.n", got["n"], n)
    # exchangeable data: the held-out coverage is at least nominal, up to sampling error
    close(f"conformal{k}.coverage>=nominal-3%", int(covered / n >= cov - 0.03), 1)


# ---- the estimate map: least squares of sigmoid(a logit(clip(p)) + b) on y, the numpy/scipy
# implementation of scripts/recal_crossfit.py as reference ----
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts"))
from recal_crossfit import fit as recal_fit, logit, sigmoid as sig  # noqa: E402


def recal_ref(y, p):
    return recal_fit(p, y, tol=1e-15)


rng = np.random.default_rng(11)
first = None
for k, (a0, b0, noise) in enumerate([(0.6, 0.2, 0.0), (0.7, -0.3, 0.05), (1.5, 0.4, 0.08)]):
    n = 300
    y = np.concatenate([rng.uniform(0, 1, n - 60), np.zeros(30), np.ones(30)])
    p = np.round(np.clip(sig(a0 * logit(np.clip(y, 0.02, 0.98)) + b0) + rng.normal(0, noise, n),
                         0, 1), 6)
    got = run(y.tolist(), p.tolist(), "recal")
    first = first or got
    a, b = recal_ref(y, p)
    close(f"recal{k}.a", got["a"], a, 1e-5)
    close(f"recal{k}.b", got["b"], b, 1e-5)
    close(f"recal{k}.n", got["n"], n)
    close(f"recal{k}.mse_raw", got["mse_raw"], float(np.mean((p - y) ** 2)), 1e-6)
    close(f"recal{k}.mse", got["mse"], float(np.mean((sig(a * logit(p) + b) - y) ** 2)), 1e-6)
    close(f"recal{k}.at50", got["at50"], float(sig(a * logit(0.5) + b)), 1e-5)
    close(f"recal{k}.improves", int(got["mse"] < got["mse_raw"]), 1)
# a compressed estimate (the network's sag) is expanded: the map is steeper than the identity
close("recal0.expands", int(first["a"] > 1.2), 1)
# too few samples, or a constant estimate: the identity
few = run([0.1, 0.9, 0.5], [0.3, 0.7, 0.5], "recal")
close("recal.few.a", few["a"], 1.0)
close("recal.few.b", few["b"], 0.0)
close("recal.few.n", few["n"], 3)
close("recal.few.identity", few["at99"], 0.99)
const = run(list(np.linspace(0, 1, 50)), [0.6] * 50, "recal")
close("recal.constant.at01", const["at01"], 0.01)
close("recal.constant.at99", const["at99"], 0.99)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
