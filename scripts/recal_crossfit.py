#!/usr/bin/python3
"""recal_crossfit.py RUN... — how much the estimate map (src/train/recal.h) helps, measured on
validation patients only.

For every run folder, RUN/validation/predictions.csv holds each fold model's raw estimates of its
own validation patients (held out of its training; `segqa train|cv --val-fraction F`). Per fold
model, its validation patients are split in two halves by a seeded shuffle; the map
sigmoid(a logit(est) + b) is fitted by least squares on one half and applied to the other, and
the other way round. The table is MAE per Dice band of the real contours and per category, raw
against mapped, so the map is judged on patients it was not fitted on and never on a test fold.

    scripts/recal_crossfit.py runs/abl-a runs/abl-b [--seed 0] [--map sigmoid|isotonic|hinge]

--map picks the family fitted on each half: `sigmoid` (the product's), `isotonic` (pool-adjacent-
violators on the raw estimate, linear between the pooled blocks) or `hinge` (sigmoid(a z + b +
c max(z - k, 0)), z = logit(est), c >= -0.09 so it stays increasing, k the best of -1, 0, 1, 2):
the richer families are how the product's choice was checked (docs/training.md).
"""
import argparse
import csv
import os

import numpy as np
from scipy import optimize

BANDS = [(0.0, 0.5), (0.5, 0.85), (0.85, 1.0 + 1e-9)]
CATS = ["gt", "empty", "noise", "all-ones", "shifted-gt"]


def logit(p):
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def fit(p, y, tol=1e-8):
    """The least-squares map, as sq_recal_fit; the identity when it is degenerate. tol: scipy's
    x/f/g tolerances (tests/train/check_metrics.py checks the C fit against this one at 1e-15)."""
    z = logit(p)
    if len(p) < 10 or np.var(z) <= 1e-6:
        return 1.0, 0.0
    a, b = optimize.least_squares(lambda ab: sigmoid(ab[0] * z + ab[1]) - y, [1.0, 0.0],
                                  xtol=tol, ftol=tol, gtol=tol).x
    if not 0.1 <= a <= 10 or np.mean((sigmoid(a * z + b) - y) ** 2) >= np.mean((p - y) ** 2):
        return 1.0, 0.0
    return a, b


def isotonic(p, y):
    """Pool-adjacent-violators fit of y on p; returns the increasing map (linear between the
    pooled blocks' centres, constant outside)."""
    o = np.argsort(p)
    blocks = []  # [mean, weight, lowest p, highest p]
    for x, v in zip(p[o], y[o]):
        blocks.append([float(v), 1.0, x, x])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, _, hi = blocks.pop()
            v1, w1, lo, _ = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, lo, hi])
    kx = np.array([(b[2] + b[3]) / 2 for b in blocks])
    ky = np.array([b[0] for b in blocks])
    return lambda q: np.interp(q, kx, ky)


def hinge(p, y):
    """sigmoid(a z + b + c max(z - k, 0)) by least squares, k the best of a few knots."""
    z = logit(p)
    best = None
    for k in (-1.0, 0.0, 1.0, 2.0):
        r = optimize.least_squares(
            lambda t: sigmoid(t[0] * z + t[1] + t[2] * np.maximum(z - k, 0)) - y, [1.0, 0.0, 0.0],
            bounds=([0.1, -10, -0.09], [10, 10, 10]))
        if best is None or r.cost < best[0]:
            best = (r.cost, r.x, k)
    (a, b, c), k = best[1], best[2]
    return lambda q: sigmoid(a * logit(q) + b + c * np.maximum(logit(q) - k, 0))


def sigmoid_map(p, y):
    a, b = fit(p, y)
    return lambda q: sigmoid(a * logit(q) + b) if (a, b) != (1.0, 0.0) else q


MAPS = {"sigmoid": sigmoid_map, "isotonic": isotonic, "hinge": hinge}


def crossfit(rows, seed, family=sigmoid_map):
    """Mapped estimates of every row, each from a map fitted on the other half of its fold's
    validation patients."""
    p = np.array([float(r["predicted"]) for r in rows])
    y = np.array([float(r["target"]) for r in rows])
    out = p.copy()
    patient = np.array([r["case"].split(":")[0] for r in rows])
    fold = np.array([r["fold"] for r in rows])
    rng = np.random.default_rng(seed)
    for f in sorted(set(fold)):
        pats = sorted(set(patient[fold == f]))
        rng.shuffle(pats)
        halves = [set(pats[0::2]), set(pats[1::2])]
        for k in range(2):
            fit_on = (fold == f) & np.isin(patient, list(halves[k]))
            score = (fold == f) & np.isin(patient, list(halves[1 - k]))
            out[score] = family(p[fit_on], y[fit_on])(p[score])
    return p, out, y


def row_of(name, est, y, cat):
    err = np.abs(est - y)
    real = cat == "real"
    cells = [name, "%.3f" % err[real].mean()]
    for lo, hi in BANDS:
        m = real & (y >= lo) & (y < hi)
        cells.append("%.3f" % err[m].mean() if m.any() else "-")
    for c in CATS:
        m = cat == c
        cells.append("%.3f" % err[m].mean() if m.any() else "-")
    cells.append("%.3f" % err.mean())
    return cells


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--map", choices=sorted(MAPS), default="sigmoid")
    args = ap.parse_args()
    head = ["run", "real", "[0, 0.5)", "[0.5, 0.85)", "[0.85, 1]", *CATS, "all"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for run in args.runs:
        path = os.path.join(run, "validation", "predictions.csv")
        rows = list(csv.DictReader(open(path)))
        cat = np.array([r["category"] for r in rows])
        raw, mapped, y = crossfit(rows, args.seed, MAPS[args.map])
        name = os.path.basename(os.path.normpath(run))
        print("| " + " | ".join(row_of(name + " raw", raw, y, cat)) + " |")
        print("| " + " | ".join(row_of(name + " " + args.map, mapped, y, cat)) + " |")


if __name__ == "__main__":
    main()
