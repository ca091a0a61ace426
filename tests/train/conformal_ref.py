"""conformal_ref.py — the numpy reference of segqa's Dice bands and Mondrian split-conformal
offsets (train/report.h, train/calibration.h), shared by check_metrics.py and check_reference.py."""
import numpy as np

EDGES = [0.0, 0.5, 0.85]  # [0, 0.5), [0.5, 0.85), [0.85, 1]
MIN_BAND = 30  # SQ_CALIB_MIN_BAND: a band with fewer residuals uses the pooled ones


def band_of(v):
    return np.searchsorted(EDGES, v, side="right") - 1


def offsets(r, cov):
    """The interval's offsets at coverage cov from residuals r: 1-based order statistics
    floor((n + 1) a / 2) and ceil((n + 1)(1 - a / 2)), open (-1, +1) outside 1..n."""
    r = np.sort(r)
    n, a = len(r), 1 - cov
    kl = int(np.floor((n + 1) * a / 2 + 1e-9))
    kh = int(np.ceil((n + 1) * (1 - a / 2) - 1e-9))
    return (-1.0 if kl < 1 else r[kl - 1]), (1.0 if kh > n else r[kh - 1])


def fit_bands(y, p, cov):
    """Per estimate band: (n, pooled, lo, hi)."""
    r = y - p
    pooled = offsets(r, cov)
    out = []
    for k in range(3):
        m = band_of(p) == k
        small = m.sum() < MIN_BAND
        out.append((int(m.sum()), bool(small), *(pooled if small else offsets(r[m], cov))))
    return out
