#!/usr/bin/python3
"""bench_scipy_augment.py — the scipy.ndimage reference for `segqa bench data`: the same
augmentation as src/data/augment.c (flip, in-plane rotation, translation, zoom, elastic in-plane
displacement from a coarse grid, contour scaling about its centroid, one resampling with
map_coordinates: order 1 for the image, order 0 for the masks, then Dice) on a D x H x W sample,
one thread. Prints one JSON line; samples_per_s is per CPU-second (per core)."""
import json, os, sys, time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
from scipy import ndimage


def make_sample(D, H, W, rng):
    z, y, x = np.meshgrid(np.arange(D), np.arange(H), np.arange(W), indexing="ij")
    r = ((z - D / 2) / (D / 3)) ** 2 + ((y - H / 2) / (H / 4)) ** 2 + ((x - W / 2) / (W / 4)) ** 2
    gt = (r < 1).astype(np.uint8)
    ct = (((z - D / 2) / (D / 3)) ** 2 + ((y - H / 2 - 2) / (H / 4)) ** 2 +
          ((x - W / 2) / (W / 4)) ** 2 < 1).astype(np.uint8)
    img = (rng.random((D, H, W)) * 255).astype(np.float32)
    return img, gt, ct


def augment(img, gt, ct, spacing, rng, swapped):
    D, H, W = img.shape
    sz, sy, sx = spacing
    flip = rng.random() < 0.5
    rot = rng.uniform(-np.pi / 12, np.pi / 12)
    tx = rng.uniform(-0.1, 0.1) * W * sx
    ty = rng.uniform(-0.1, 0.1) * H * sy
    zoom = 1 + rng.uniform(-0.1, 0.1)
    scale = rng.uniform(0.55, 1.8)
    cell = np.maximum(1.0, 16.0 / np.array(spacing))
    gd, gh, gw = (int(np.ceil((n - 1) / c)) + 2 for n, c in zip((D, H, W), cell))
    gx = rng.standard_normal((gd, gh, gw)) * 1.5 / sx
    gy = rng.standard_normal((gd, gh, gw)) * 1.5 / sy
    z, y, x = np.meshgrid(np.arange(D, dtype=np.float32), np.arange(H, dtype=np.float32),
                          np.arange(W, dtype=np.float32), indexing="ij")
    cx, cy = (W - 1) / 2, (H - 1) / 2
    px, py = (x - cx) * sx - tx, (y - cy) * sy - ty
    c, s = np.cos(rot), np.sin(rot)
    qx = (c * px + s * py) / zoom
    qy = (-s * px + c * py) / zoom
    if flip:
        qx = -qx
    node = np.stack([z / cell[0], y / cell[1], x / cell[2]])
    xs = qx / sx + cx + ndimage.map_coordinates(gx, node, order=1)
    ys = qy / sy + cy + ndimage.map_coordinates(gy, node, order=1)
    coords = np.stack([z, ys, xs])
    out_img = ndimage.map_coordinates(img, coords, order=1, cval=0.0)
    out_gt = ndimage.map_coordinates(gt, coords, order=0, cval=0)
    if swapped:
        cz, cyy, cxx = ndimage.center_of_mass(ct)
        cc = np.stack([cz + (z - cz) / scale, cyy + (ys - cyy) / scale, cxx + (xs - cxx) / scale])
        out_ct = ndimage.map_coordinates(ct, cc, order=0, cval=0)
    else:
        out_ct = ndimage.map_coordinates(ct, coords, order=0, cval=0)
    a, b = out_gt > 0, out_ct > 0
    dice = 2.0 * np.sum(a & b) / max(1, np.sum(a) + np.sum(b))
    return out_img, out_gt, out_ct, dice


def main():
    D, H, W = (int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "28x160x160").split("x"))
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    rng = np.random.default_rng(0)
    img, gt, ct = make_sample(D, H, W, rng)
    spacing = (3.9, 0.59, 0.59)
    augment(img, gt, ct, spacing, rng, True)  # warm-up
    # per core: CPU time of this (single-threaded) process, best of 3 rounds of n samples, the
    # same rule as the C side (the machine is shared)
    best, wall = 1e30, 0.0
    for r in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            augment(img, gt, ct, spacing, rng, i % 2 == 1)
        best = min(best, time.process_time() - c0)
        wall += time.perf_counter() - t0
    print(json.dumps({"samples_per_s": n / best, "wall_samples_per_s": 3 * n / wall,
                      "best_round_cpu_seconds": best, "samples_per_round": n}))


if __name__ == "__main__":
    main()
