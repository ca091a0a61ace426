#!/usr/bin/python3
"""nifti_check.py — independent checks for test_data_nifti: reads a TSV written by the C test.
Lines:  roundtrip ORIGINAL WRITTEN   -> nibabel data and affine identical (float32/uint8 values)
        dice FILE_A LABELS_A FILE_B LABELS_B DICE -> numpy Dice of the label selections matches
LABELS is 'all' or a comma list."""
import sys

import nibabel as nib
import numpy as np


def sel(path, labels):
    a = np.asarray(nib.load(path).dataobj)
    if labels == "all":
        return a != 0
    return np.isin(a, [int(v) for v in labels.split(",")])


def main(tsv):
    n = 0
    for line in open(tsv):
        f = line.rstrip("\n").split("\t")
        if f[0] == "roundtrip":
            a, b = nib.load(f[1]), nib.load(f[2])
            assert a.shape == b.shape, (f, a.shape, b.shape)
            assert np.allclose(a.affine, b.affine, atol=1e-4), (f, a.affine, b.affine)
            assert np.allclose(a.header.get_zooms(), b.header.get_zooms()), f
            da = np.asarray(a.get_fdata(dtype=np.float32))
            db = np.asarray(b.get_fdata(dtype=np.float32))
            assert np.array_equal(da, db), (f, np.max(np.abs(da - db)))
            n += 1
        elif f[0] == "dice":
            x, y = sel(f[1], f[2]), sel(f[3], f[4])
            d = 2.0 * np.sum(x & y) / (np.sum(x) + np.sum(y))
            assert abs(d - float(f[5])) < 1e-12, (f, d)
            n += 1
    print(f"nifti_check: {n} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
