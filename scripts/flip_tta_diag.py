#!/usr/bin/env python3
"""flip_tta_diag.py — would averaging with flipped inputs (test-time augmentation) help? (docs/training.md)

    flip_tta_diag.py RUN SITE.h5 [--ckpt all/last.h5] [--map A B]

Loads RUN/CKPT (a `segqa train --val-fraction F` run's last model) into the PyTorch reference
(tests/parity/segqa_ref.py) and estimates the real contours and the GT of the run's VALIDATION
patients (RUN/validation/predictions.csv; never a test fold) as they are and flipped along W
(the augmentation's flip), H and D. Prints the MAE per Dice band for each and for the averages,
raw and, with --map A B, through the estimate map sigmoid(A logit + B) of the run's log.
The first line checks that the reference reproduces segqa's raw predictions of the file.
Needs numpy, h5py and torch (Debian's python3).
"""
import argparse, csv, os, sys
import h5py, numpy as np, torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
import segqa_ref as R  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run"), ap.add_argument("site")
    ap.add_argument("--ckpt", default="all/last.h5")
    ap.add_argument("--map", nargs=2, type=float, default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    site = h5py.File(a.site, "r")
    rows = [r for r in csv.DictReader(open(os.path.join(a.run, "validation", "predictions.csv")))
            if r["category"] in ("real", "gt")]
    cfg, t = R.read_ckpt(os.path.join(a.run, a.ckpt))
    m = R.QANet(cfg)
    R.load_weights(m, t)
    m.eval()
    xs = []
    for r in rows:
        case, name = r["case"].split(":")
        g = site["cases"][case]
        ct = g["gt"] if r["category"] == "gt" else g["contours"][name]
        xs.append(np.stack([np.array(g["image"]), np.array(ct).astype(np.float32)]))
    x = torch.from_numpy(np.stack(xs))
    tg = np.array([float(r["target"]) for r in rows])
    cat = np.array([r["category"] for r in rows])

    def pred(xx):
        with torch.no_grad():
            return np.concatenate([m(xx[i:i + 8]).numpy().ravel() for i in range(0, len(xx), 8)])

    out = {"none": pred(x), "W": pred(torch.flip(x, dims=[4])), "H": pred(torch.flip(x, dims=[3])),
           "D": pred(torch.flip(x, dims=[2]))}
    print("raw predictions vs segqa's: max |diff| %.2e" %
          np.abs(out["none"] - np.array([float(r["predicted"]) for r in rows])).max())
    out["mean(none, W)"] = (out["none"] + out["W"]) / 2

    def mapped(p):
        if not a.map:
            return p
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return 1 / (1 + np.exp(-(a.map[0] * np.log(p / (1 - p)) + a.map[1])))

    real = cat == "real"
    bands = [real & (tg < 0.5), real & (tg >= 0.5) & (tg < 0.85), real & (tg >= 0.85)]
    print("%-16s %7s %7s %7s %7s %7s" % ("input", "real", "[0,.5)", "[.5,.85)", "[.85,1]", "GT"))
    for k, p in out.items():
        e = np.abs(mapped(p) - tg)
        print("%-16s %7.4f %7.4f %7.4f %7.4f %7.4f" %
              ((k, e[real].mean()) + tuple(e[b].mean() for b in bands) + (e[cat == "gt"].mean(),)))


if __name__ == "__main__":
    main()
