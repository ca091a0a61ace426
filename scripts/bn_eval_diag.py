#!/usr/bin/env python3
"""bn_eval_diag.py — is a fold model's failure a train/eval BatchNorm mismatch? (docs/training.md)

    bn_eval_diag.py RUN SITE.h5 FOLD [--finetune STEPS --lr LR] [--precise BATCHES]

Loads RUN/fold-FOLD/last.h5 into the PyTorch reference (tests/parity/segqa_ref.py) and estimates,
on the fold's VALIDATION patients (RUN/validation/predictions.csv; never its test patients), real
contours, the GT, empty, noise and all-ones masks:
  * with eval-mode BN (the running statistics predictions use), and in train-mode BN with a batch of
    7 real contours and 1 all-ones mask (batch statistics, as training saw them);
  * --precise B: after re-estimating the running statistics as the cumulative average over B
    training-like batches (training patients of the fold minus its validation ones);
  * --finetune S: after S Adam steps with BN frozen (eval mode) on training-like batches: real
    contours, the GT at 10 %, failures at 20 % (empty, noise, all-ones, GT shifted by 8 voxels),
    random flips — a stand-in for segqa's augmentation, enough to see the effect.
Needs numpy, h5py and torch (Debian's python3).
"""
import argparse, csv, json, os, sys
import h5py, numpy as np, torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
import segqa_ref as R  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run"), ap.add_argument("site"), ap.add_argument("fold", type=int)
    ap.add_argument("--finetune", type=int, default=0), ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--precise", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    splits = json.load(open(os.path.join(a.run, "splits.json")))
    site = h5py.File(a.site, "r")
    vrows = csv.DictReader(open(os.path.join(a.run, "validation", "predictions.csv")))
    val = sorted({r["case"].split(":")[0] for r in vrows if int(r["fold"]) == a.fold})
    train = [c["case"].split("/")[-1] for c in splits["cases"] if c["fold"] != a.fold]
    train = [i for i in train if i not in val]

    def load(i):
        g = site["cases"][i]
        cts = [np.array(g["contours"][k]).astype(np.float32) for k in g["contours"]]
        return np.array(g["image"]), np.array(g["gt"]).astype(np.float32), cts

    def dice(c, g):
        s = c.sum() + g.sum()
        return 1.0 if s == 0 else 2.0 * (c * g).sum() / s

    def batch(n=8):
        xs, ys = [], []
        for i in rng.choice(train, n):
            img, gt, cts = load(i)
            ct = cts[rng.integers(len(cts))]
            if rng.random() < 0.2:
                ct = [np.zeros_like(gt), (rng.random(gt.shape) < 0.5).astype(np.float32),
                      np.ones_like(gt), np.roll(gt, 8, axis=2)][rng.integers(4)]
            elif rng.random() < 0.1:
                ct = gt
            if rng.random() < 0.5:
                img, ct, gt = img[:, :, ::-1].copy(), ct[:, :, ::-1].copy(), gt[:, :, ::-1].copy()
            xs.append(np.stack([img, ct])), ys.append(dice(ct, gt))
        return torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.float32)

    def inputs(kind):
        xs = []
        for i in val:
            img, gt, cts = load(i)
            ct = {"real": cts[-1], "gt": gt, "empty": np.zeros_like(gt), "all-ones": np.ones_like(gt),
                  "noise": (np.random.default_rng(1).random(gt.shape) < 0.5).astype(np.float32)}[kind]
            xs.append(np.stack([img, ct]))
        return torch.from_numpy(np.stack(xs))

    cfg, t = R.read_ckpt(os.path.join(a.run, "fold-%d" % a.fold, "last.h5"))
    m = R.QANet(cfg)
    R.load_weights(m, t)
    kinds = ("real", "gt", "empty", "noise", "all-ones")

    def report(tag):
        m.eval()
        with torch.no_grad():
            print("%-34s " % tag + ", ".join("%s %.3f" % (k, m(inputs(k)).numpy().mean()) for k in kinds))

    report("eval-mode BN (running statistics)")
    with torch.no_grad():
        m.train()
        mix = torch.cat([inputs("real")[:7], inputs("all-ones")[:1]])
        y = m(mix).numpy()
    R.load_weights(m, t)  # undo the running-statistics update of that train-mode pass
    print("%-34s real %.3f, all-ones %.3f" % ("train-mode BN, 7 real + 1 all-ones", y[:7].mean(), y[7]))
    if a.precise:
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm3d):
                mod.reset_running_stats(), setattr(mod, "momentum", None)
        m.train()
        with torch.no_grad():
            for _ in range(a.precise):
                m(batch()[0])
        report("precise BN (%d batches)" % a.precise)
        R.load_weights(m, t)
    if a.finetune:
        opt = torch.optim.Adam(m.parameters(), lr=a.lr)
        m.eval()
        for _ in range(a.finetune):
            x, y = batch()
            loss = ((m(x) - y) ** 2).mean()
            opt.zero_grad(), loss.backward(), opt.step()
        report("after %d frozen-BN steps" % a.finetune)


if __name__ == "__main__":
    main()
