#!/usr/bin/python3
"""make_nifti_variants.py OUT_DIR — writes NIfTI files of the datatypes and flavours segqa must
read (NIfTI-2, float64, int16 with scl_slope/scl_inter, uint16, big-endian float32, int8 and
float32 label masks) with nibabel, plus for each X.nii[.gz] the expected voxel values as float32
in C order [z][y][x] (X.f32) and a line in index.tsv: file, kind, nx, ny, nz, dx, dy, dz,
affine[0][3], affine[1][3], affine[2][3]."""
import os, sys

import nibabel as nib
import numpy as np


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(5)
    shape = (7, 6, 5)  # x, y, z
    zooms = (0.5, 0.75, 2.5)
    aff = np.diag(list(zooms) + [1.0])
    aff[:3, 3] = [-10.0, 4.5, 30.0]
    rows = []

    def save(img, name, kind, expected):
        path = os.path.join(out, name)
        nib.save(img, path)
        exp = np.asarray(expected, dtype=np.float64).transpose(2, 1, 0)  # -> z, y, x
        exp.astype("<f4").tofile(path.split(".nii")[0] + ".f32")
        rows.append([name, kind, *shape, *zooms, *aff[:3, 3]])

    base = rng.normal(100, 30, shape)
    i16 = np.round(base).astype(np.int16)
    img = nib.Nifti1Image(i16, aff)
    img.header.set_zooms(zooms)
    img.header.set_slope_inter(0.5, 10.0)
    save(img, "int16_scaled.nii.gz", "image", i16.astype(np.float64) * 0.5 + 10.0)

    f64 = base.astype(np.float64)
    img = nib.Nifti2Image(f64, aff)
    img.header.set_zooms(zooms)
    save(img, "nifti2_float64.nii", "image", f64)

    u16 = np.abs(np.round(base * 10)).astype(np.uint16)
    img = nib.Nifti1Image(u16, aff)
    img.header.set_zooms(zooms)
    save(img, "uint16.nii", "image", u16)

    f32 = base.astype(np.float32)
    hdr = nib.Nifti1Header(endianness=">")
    img = nib.Nifti1Image(f32, aff, header=hdr)
    img.header.set_zooms(zooms)
    save(img, "bigendian_float32.nii.gz", "image", f32)

    lab = rng.integers(0, 3, shape)
    img = nib.Nifti1Image(lab.astype(np.int8), aff)
    img.header.set_zooms(zooms)
    save(img, "int8_labels.nii.gz", "mask", lab)
    img = nib.Nifti2Image(lab.astype(np.float32), aff)
    img.header.set_zooms(zooms)
    save(img, "nifti2_float32_labels.nii.gz", "mask", lab)

    with open(os.path.join(out, "index.tsv"), "w") as f:
        for r in rows:
            f.write("\t".join(str(v) for v in r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
