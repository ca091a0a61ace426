#!/usr/bin/python3
"""check_site.py — runs `segqa ingest` + `segqa contours` on the bundled hippocampus data and
checks the site file independently with h5py, nibabel and numpy (Debian's system python3):
schema (format name/version, shapes, dtypes, chunking/compression), the preprocessing (centre
crop/pad, 0th/99th percentile -> [0,255]) against a numpy re-implementation on the original
NIfTI files, and every stored contour Dice against numpy. Writes only under --work."""
import argparse, json, os, shutil, subprocess, sys, time

import h5py
import nibabel as nib
import numpy as np


def crop_pad(a, shape):
    out = np.zeros(shape, a.dtype)
    src, dst = [], []
    for n_in, n_out in zip(a.shape, shape):
        if n_in >= n_out:
            s = (n_in - n_out) // 2
            src.append(slice(s, s + n_out)); dst.append(slice(0, n_out))
        else:
            d = (n_out - n_in) // 2
            src.append(slice(0, n_in)); dst.append(slice(d, d + n_in))
    out[tuple(dst)] = a[tuple(src)]
    return out


def string_attrs(f):
    """(object, name, is_vlen) of every string attribute in an open h5py file."""
    out = []
    def visit(obj):
        for name in obj.attrs:
            t = obj.attrs.get_id(name).get_type()
            if isinstance(t, h5py.h5t.TypeStringID):
                out.append((obj, name, t.is_variable_str()))
    visit(f)
    f.visititems(lambda _, obj: visit(obj))
    return out


def check_string_attrs(a, site):
    """segqa writes fixed-length UTF-8 strings (no global heap: docs/data-format.md) and still reads
    the variable-length strings of older site files and of h5py (which writes str as vlen)."""
    with h5py.File(site, "r") as f:
        attrs = string_attrs(f)
        assert len(attrs) > 10 and not any(v for _, _, v in attrs), [n for _, n, v in attrs if v][:5]
    small, legacy = os.path.join(a.work, "small.h5"), os.path.join(a.work, "legacy.h5")
    subprocess.run([a.segqa, "ingest", "-q", "-o", small, "--shape", "16x16x16", "--limit", "3",
                    a.data], check=True)
    with h5py.File(small, "r+") as f:
        for obj, name, _ in string_attrs(f):
            value = obj.attrs[name].decode()
            del obj.attrs[name]
            obj.attrs[name] = value  # a str: variable-length
        assert all(v for _, _, v in string_attrs(f))
    subprocess.run([a.segqa, "contours", "-q", "--atlas", "1", "--perturb", "0", "--near", "0",
                    small, "-o", legacy], check=True)
    with h5py.File(legacy, "r") as f:
        assert f.attrs["format"] == b"segqa-site" and len(f["cases"]) == 3
        methods = sorted(ds.attrs["method"].decode() for g in f["cases"].values()
                         for ds in g["contours"].values())
        assert methods == ["atlas"] * 3, methods
        assert json.loads(f["cases"][sorted(f["cases"])[0]].attrs["source"])["shape_zyx"]
    print(f"string attributes: {len(attrs)} fixed-length; a variable-length (older) file reads back")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--segqa", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    site = os.path.join(a.work, "hippo.h5")
    # command-line errors: one line naming the problem, exit 2 for usage, nothing written
    missing = os.path.join(a.work, "no-such-folder")
    for args, code, needle in (([missing, "-o", site], 4, "no-such-folder: no such folder"),
                               ([a.data], 2, "--output"),
                               ([a.data, "-o", site, "--shape", "40x56"], 2, "--shape"),
                               ([a.data, "-o", site, "--label", "1,x"], 2, "--label")):
        p = subprocess.run([a.segqa, "ingest"] + args, capture_output=True, text=True)
        assert p.returncode == code and needle in p.stderr and p.stderr.count("\n") == 1, \
            (args, p.returncode, p.stderr)
    assert os.listdir(a.work) == [], os.listdir(a.work)
    t0 = time.time()
    cmd = [a.segqa, "ingest", "-q", "-o", site, "--shape", "40x56x40", a.data]
    if a.limit:
        cmd += ["--limit", str(a.limit)]
    subprocess.run(cmd, check=True)
    t1 = time.time()
    subprocess.run([a.segqa, "contours", "-q", "--atlas", "1", "--perturb", "2", "--near", "0", site], check=True)
    t2 = time.time()
    print(f"ingest {t1 - t0:.2f} s, contours {t2 - t1:.2f} s")
    leftovers = [f for f in os.listdir(a.work) if ".tmp" in f]
    assert not leftovers, leftovers

    f = h5py.File(site, "r")
    assert f.attrs["format"] == b"segqa-site", f.attrs["format"]  # fixed-length: bytes
    assert int(f.attrs["format_version"]) == 1
    shape = tuple(int(v) for v in f.attrs["shape"])
    assert shape == (40, 56, 40), shape
    assert f.attrs["axes"] == b"zyx"
    pre = json.loads(f.attrs["preprocessing"])
    assert pre["norm_lo_percentile"] == 0 and pre["norm_hi_percentile"] == 99
    cases = sorted(f["cases"].keys())
    n_expected = a.limit or len([x for x in os.listdir(os.path.join(a.data, "images")) if x.endswith(".nii.gz")])
    assert len(cases) == n_expected == int(f.attrs["n_cases"]), (len(cases), n_expected)
    dices = {}
    max_img_err = 0.0
    for cid in cases:
        g = f["cases"][cid]
        img, gt = g["image"], g["gt"]
        assert img.dtype == np.float32 and gt.dtype == np.uint8
        assert img.shape == shape and gt.shape == shape
        assert img.chunks == shape and img.compression == "gzip"
        # independent preprocessing from the original NIfTI (nibabel is x,y,z; we store z,y,x)
        ni = nib.load(os.path.join(a.data, "images", cid + ".nii.gz"))
        nl = nib.load(os.path.join(a.data, "labels", cid + ".nii.gz"))
        x = np.asarray(ni.get_fdata(dtype=np.float32)).transpose(2, 1, 0)
        lab = np.asarray(nl.get_fdata()).transpose(2, 1, 0)
        xc = crop_pad(x, shape).astype(np.float64)
        lo, hi = np.percentile(xc, 0), np.percentile(xc, 99)
        ref = (xc - lo) * (255.0 / (hi - lo))
        err = np.max(np.abs(ref - img[()])) / 255.0
        max_img_err = max(max_img_err, err)
        assert err < 1e-4, (cid, err)
        gref = crop_pad((lab != 0).astype(np.uint8), shape)
        assert np.array_equal(gref, gt[()]), cid
        src = json.loads(g.attrs["source"])
        assert src["shape_zyx"] == list(x.shape), (src, x.shape)
        gtb = gt[()] > 0
        assert len(g["contours"]) == 3
        for name, ds in g["contours"].items():
            c = ds[()] > 0
            d = 2.0 * np.sum(c & gtb) / (np.sum(c) + np.sum(gtb))
            assert abs(d - float(ds.attrs["dice"])) < 1e-9, (cid, name, d, ds.attrs["dice"])
            json.loads(ds.attrs["params"])
            dices.setdefault(ds.attrs["method"].decode(), []).append(d)
    for m, v in sorted(dices.items()):
        v = np.array(v)
        print(f"{m}: n={len(v)} Dice min {v.min():.3f} p10 {np.percentile(v, 10):.3f} "
              f"median {np.median(v):.3f} p90 {np.percentile(v, 90):.3f} max {v.max():.3f}")
    allv = np.concatenate([np.array(v) for v in dices.values()])
    # a realistic spread: not all near 1, not all near 0
    assert allv.min() < 0.6 and allv.max() > 0.85 and 0.5 < np.median(allv) < 0.95, allv
    check_string_attrs(a, site)
    print(f"OK: {len(cases)} cases, image preprocessing max rel err {max_img_err:.2e}, "
          f"{len(allv)} contour Dice values match numpy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
