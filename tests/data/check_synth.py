#!/usr/bin/python3
"""check_synth.py — `segqa synth` on a small shape with --nifti, then `segqa ingest` of the written
NIfTI folder (contours/<name>/ sub-folders + clinical.csv): checks with h5py/numpy that the
contour Dice values are right and within about [0.85, 0.95], that clinical variables arrive, and
that the re-ingested site keeps the same GT. Writes only under --work."""
import argparse, json, os, shutil, subprocess, sys

import h5py
import numpy as np


def dice(a, b):
    a, b = a > 0, b > 0
    return 2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--segqa", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    site, nii = os.path.join(a.work, "synth.h5"), os.path.join(a.work, "nii")
    subprocess.run([a.segqa, "synth", "-q", "-o", site, "-n", "6", "--shape", "12x96x96",
                    "--two-contours", "0.5", "--nifti", nii], check=True)
    f = h5py.File(site, "r")
    assert f.attrs["format"] == b"segqa-site" and tuple(f.attrs["shape"]) == (12, 96, 96)
    assert np.allclose(f.attrs["spacing"], [3.9, 0.59, 0.59])
    ds = []
    for cid, g in f["cases"].items():
        clin = json.loads(g.attrs["clinical"])
        assert set(clin) == {"age", "volume_ml", "isup", "pirads", "ipsa", "risk_class"}, clin
        assert 1 <= clin["isup"] <= 5 and 2 <= clin["pirads"] <= 5 and clin["risk_class"] in (1, 2, 3)
        gt = g["gt"][()]
        assert gt.sum() > 0
        for name, c in g["contours"].items():
            d = dice(c[()], gt)
            assert abs(d - c.attrs["dice"]) < 1e-9
            ds.append(d)
    ds = np.array(ds)
    print(f"synth: {len(f['cases'])} cases, {len(ds)} contours, Dice {ds.min():.3f}..{ds.max():.3f}")
    assert ds.min() > 0.83 and ds.max() < 0.97, ds
    # re-ingest the NIfTI copy with its clinical CSV
    site2 = os.path.join(a.work, "reingest.h5")
    subprocess.run([a.segqa, "ingest", "-q", "-o", site2, "--shape", "12x96x96", "--clinical",
                    os.path.join(nii, "clinical.csv"), nii], check=True)
    f2 = h5py.File(site2, "r")
    assert sorted(f2["cases"]) == sorted(f["cases"])
    for cid, g in f2["cases"].items():
        g1 = f["cases"][cid]
        assert np.array_equal(g["gt"][()], g1["gt"][()]), cid
        assert sorted(g["contours"]) == sorted(g1["contours"]), cid
        for name, c in g["contours"].items():
            assert abs(c.attrs["dice"] - g1["contours"][name].attrs["dice"]) < 1e-12
            assert c.attrs["method"] == b"given"
        assert abs(float(g.attrs["clinical_age"]) - json.loads(g1.attrs["clinical"])["age"]) < 0.051
    print("OK: synth site and its NIfTI re-ingest agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
