"""check_predictions.py SITE.h5 RUN — recompute with h5py/numpy what `segqa baseline` wrote in
RUN/predictions.csv: each patient's target is the mean Dice of its contours, the naive prediction
of a patient is the mean target of the other folds, and every fold holds about n/K patients."""
import csv
import sys

import h5py
import numpy as np

site, run = sys.argv[1], sys.argv[2]
dice = {}
with h5py.File(site, "r") as f:
    for cid, g in f["cases"].items():
        p = g.attrs["patient"]
        p = p.decode() if isinstance(p, bytes) else p  # fixed-length UTF-8 (data-format.md)
        p = p.decode() if isinstance(p, bytes) else p
        dice.setdefault(p, []).extend(float(c.attrs["dice"]) for c in g["contours"].values())
rows = list(csv.DictReader(open(f"{run}/predictions.csv")))
assert len(rows) == len(dice), (len(rows), len(dice))
target = np.array([float(r["target"]) for r in rows])
fold = np.array([int(r["fold"]) for r in rows])
naive = np.array([float(r["naive"]) for r in rows])
want = np.array([np.mean(dice[r["patient"]]) for r in rows])
assert np.abs(target - want).max() < 1e-6, "targets are not the mean Dice per patient"
assert all(int(r["contours"]) == len(dice[r["patient"]]) for r in rows)
for k in np.unique(fold):
    m = target[fold != k].mean()
    assert np.abs(naive[fold == k] - m).max() < 1e-6, f"fold {k}: naive is not the training mean"
counts = np.bincount(fold)
assert counts.max() - counts.min() <= 1, counts
print(f"ok {len(rows)} patients, {len(counts)} folds {counts.tolist()}, "
      f"{sum(len(v) > 1 for v in dice.values())} with several contours")
