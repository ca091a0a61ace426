#!/usr/bin/python3
"""bad_inputs.py — the bad-input corpus: each KIND makes one bad file (NIfTI, mask, HDF5 site file,
checkpoint, JSON config, CSV) or one bad command line, runs the real `segqa` on it and checks
  * exactly one line on stderr, naming the file (or option), the field and what was expected
    (a regular expression per kind);
  * the documented exit code (2 usage, 4 I/O, 5 bad input data; docs/architecture.md);
  * no partial output: the output file or run folder does not exist, no temporary file is left in
    its folder, inputs edited in place are unchanged, and `predict` printed no result row.
A few kinds are inputs segqa tolerates by design (a UTF-8 byte-order mark, CRLF line ends, an
scl_slope of 0 or NaN, which the NIfTI standard and nibabel read as "unscaled"): those must
succeed with the expected output.

  bad_inputs.py --segqa BIN --work DIR --fixtures        make the shared good files (once)
  bad_inputs.py --segqa BIN --work DIR KIND...           run kinds (ctest runs one per test)
  bad_inputs.py --list                                   the kinds, one per line
Bad files are made here (numpy/nibabel/h5py from Debian's python3), never committed.
"""
import argparse
import gzip
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys

import h5py
import nibabel as nib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "datasets", "msd-hippocampus")
CASE = "hippocampus_004"
NET = ["--epochs", "1", "--fpn-channels", "8", "--fpn-repeats", "1", "--threads", "1",
       "--workers", "1", "--no-figures", "--val-every", "1", "-q"]
KINDS = {}


def kind(fn):
    KINDS[fn.__name__.replace("_", "-")] = fn
    return fn


class Ctx:
    def __init__(self, segqa, work, name):
        self.segqa, self.fx = segqa, os.path.join(work, "fixtures")
        self.dir = os.path.join(work, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)

    def p(self, *parts):
        return os.path.join(self.dir, *parts)

    def f(self, name):
        return os.path.join(self.fx, name)


# ---- fixtures: one good tiny site, a checkpoint trained on it, uncompressed NIfTI copies ----

def make_fixtures(segqa, work):
    fx = os.path.join(work, "fixtures")
    shutil.rmtree(fx, ignore_errors=True)
    os.makedirs(fx)
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    run = lambda *a: subprocess.run([segqa, *a], check=True, stdout=subprocess.DEVNULL, env=env)
    run("ingest", DATA, "-o", f"{fx}/gt.h5", "--shape", "16x24x16", "--limit", "6", "-q")
    run("contours", f"{fx}/gt.h5", "-o", f"{fx}/site.h5", "--atlas", "1", "--perturb", "1", "-q")
    run("train", f"{fx}/site.h5", "--out", f"{fx}/run", *NET)
    img = nib.load(f"{DATA}/images/{CASE}.nii.gz")
    lab = nib.load(f"{DATA}/labels/{CASE}.nii.gz")
    f32 = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    f32.header.set_zooms(img.header.get_zooms())
    nib.save(f32, f"{fx}/img.nii")
    con = np.asarray(lab.dataobj) > 0
    c = nib.Nifti1Image(con.astype(np.uint8), lab.affine)
    c.header.set_zooms(lab.header.get_zooms())
    nib.save(c, f"{fx}/con.nii")
    print(f"fixtures in {fx}")


# ---- helpers that make bad files ----

def patch(src, dst, off, fmt, value):
    """copy an uncompressed NIfTI and overwrite one header field (struct format, little-endian)"""
    b = bytearray(open(src, "rb").read())
    struct.pack_into("<" + fmt, b, off, *(value if isinstance(value, tuple) else (value,)))
    open(dst, "wb").write(b)
    return dst


def nifti_like(ctx, name, data, ref="img.nii", dtype=None):
    ref_img = nib.load(ctx.f(ref))
    a = np.asarray(data if dtype is None else np.asarray(data).astype(dtype))
    im = nib.Nifti1Image(a, ref_img.affine)
    im.header.set_zooms(ref_img.header.get_zooms())
    path = ctx.p(name)
    nib.save(im, path)
    return path


def img_data(ctx):
    return np.asarray(nib.load(ctx.f("img.nii")).dataobj, dtype=np.float32)


def con_data(ctx):
    return np.asarray(nib.load(ctx.f("con.nii")).dataobj).astype(np.uint8)


def predict(ctx, image=None, contour=None, ckpt=None, extra=()):
    return [ctx.segqa, "predict", "-c", ckpt or ctx.f("run/all/best.h5"),
            "-i", image or ctx.f("img.nii"), "-m", contour or ctx.f("con.nii"), *extra]


def case_folder(ctx, image=None, label=None, contour=None):
    """ingest folder with one case c1 (good files unless given); returns (folder, output)"""
    root = ctx.p("in")
    for sub in ("images", "labels", "out"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    shutil.copy(image or f"{DATA}/images/{CASE}.nii.gz", f"{root}/images/c1.nii" +
                (".gz" if (image or ".gz").endswith(".gz") else ""))
    shutil.copy(label or f"{DATA}/labels/{CASE}.nii.gz", f"{root}/labels/c1.nii" +
                (".gz" if (label or ".gz").endswith(".gz") else ""))
    if contour:
        os.makedirs(f"{root}/contours/auto", exist_ok=True)
        shutil.copy(contour, f"{root}/contours/auto/c1.nii.gz")
    return root, f"{root}/out/site.h5"


def ingest(ctx, src, out, extra=()):
    return [ctx.segqa, "ingest", src, "-o", out, "--shape", "16x24x16", "-q", *extra]


def train(ctx, site, run=None, extra=()):
    run = run or ctx.p("run")
    return [ctx.segqa, "train", site, "--out", run, *NET, *extra], run


def manifest(ctx, text, name="manifest.csv", raw=None):
    """a manifest next to copies of the bundled case (image/gt paths relative to it)"""
    shutil.copy(f"{DATA}/images/{CASE}.nii.gz", ctx.p("a_img.nii.gz"))
    shutil.copy(f"{DATA}/labels/{CASE}.nii.gz", ctx.p("a_gt.nii.gz"))
    path = ctx.p(name)
    open(path, "wb").write(raw if raw is not None else text.encode())
    os.makedirs(ctx.p("out"), exist_ok=True)
    return path, ctx.p("out", "site.h5")


GOOD_MANIFEST = "case,patient,image,gt\nc1,p1,a_img.nii.gz,a_gt.nii.gz\n"


def site_copy(ctx, edit):
    path = ctx.p("bad.h5")
    shutil.copy(ctx.f("site.h5"), path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def ckpt_copy(ctx, edit):
    path = ctx.p("bad.h5")
    shutil.copy(ctx.f("run/all/best.h5"), path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


# Each kind returns dict(argv, code, line (regex), absent=[paths], unchanged=[paths],
#                        predict=bool (no result rows), ok_output=path (tolerated kinds)).

# ---- NIfTI ----

@kind
def nifti_truncated_gzip(ctx):
    p = ctx.p("t.nii.gz")
    open(p, "wb").write(open(f"{DATA}/images/{CASE}.nii.gz", "rb").read()[:30000])
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"t\.nii\.gz: voxel data truncated or corrupt: read \d+ of \d+ bytes")


@kind
def nifti_bad_magic(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("m.nii"), 344, "4s", b"xx1\0")
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"m\.nii: magic is not \"n\+1\" .*expected a NIfTI file")


@kind
def nifti_dim0_zero(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("d.nii"), 40, "h", 0)
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"d\.nii: dim\[0\] = 0, expected 1\.\.7 dimensions")


@kind
def nifti_dim0_too_big(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("d.nii"), 40, "h", 9)
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"d\.nii: dim\[0\] = 9, expected 1\.\.7 dimensions")


@kind
def nifti_negative_dim(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("d.nii"), 44, "h", -5)
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"d\.nii: dim\[2\] = -5, expected 1\.\.4096 voxels per axis")


@kind
def nifti_absurd_dim(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("d.nii"), 42, "h", 30000)
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"d\.nii: dim\[1\] = 30000, expected 1\.\.4096 voxels per axis")


@kind
def nifti_unsupported_datatype(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("c.nii"), 70, "hh", (32, 64))  # COMPLEX64
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"c\.nii: datatype COMPLEX64 \(32\) not supported, expected an integer or float")


@kind
def nifti_rgb_datatype(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("c.nii"), 70, "hh", (128, 24))  # RGB24
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"c\.nii: datatype RGB24 \(128\) not supported")


@kind
def nifti_scl_slope_inf(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("s.nii"), 112, "f", float("inf"))
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"s\.nii: scl_slope = inf, scl_inter = 0, expected finite values")


@kind
def nifti_scl_inter_nan(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("s.nii"), 112, "ff", (2.0, float("nan")))
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"s\.nii: scl_slope = 2, scl_inter = nan, expected finite values")


@kind
def nifti_scl_slope_zero_tolerated(ctx):
    """NIfTI: scl_slope 0 means 'unscaled'; the estimate equals the one of the unpatched image"""
    p = patch(ctx.f("img.nii"), ctx.p("s.nii"), 112, "ff", (0.0, 50.0))
    q = patch(ctx.f("img.nii"), ctx.p("n.nii"), 112, "ff", (float("nan"), 0.0))
    return dict(argv=predict(ctx, image=p), code=None, same_as=[predict(ctx), predict(ctx, image=q)])


@kind
def nifti_4d(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("t.nii"), 40, "hhhhh", (4, 35, 51, 35, 2))
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"t\.nii: dim\[4\] = 2, expected 1 \(a single 3D volume\)")


@kind
def nifti_affine_mismatch(ctx):
    ref = nib.load(ctx.f("con.nii"))
    aff = ref.affine.copy()
    aff[0, 3] += 5
    im = nib.Nifti1Image(np.asarray(ref.dataobj), aff)
    p = ctx.p("shifted.nii")
    nib.save(im, p)
    return dict(argv=predict(ctx, contour=p), code=5, predict=True,
                line=r"shifted\.nii: affine\[0\]\[3\] = [-0-9.]+ differs from image .*img\.nii")


@kind
def nifti_vox_offset_past_eof(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("v.nii"), 108, "f", 1.0e6)
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"v\.nii: vox_offset 1e\+06 \+ voxel data needs \d+ bytes, the file has \d+")


@kind
def nifti_nan_voxel(ctx):
    a = img_data(ctx)
    a[3, 4, 5] = np.nan
    p = nifti_like(ctx, "nan.nii", a)
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"nan\.nii: voxel \(x=3, y=4, z=5\) is nan, expected finite intensities")


@kind
def nifti_inf_voxel(ctx):
    a = img_data(ctx)
    a[1, 2, 3] = -np.inf
    p = nifti_like(ctx, "inf.nii.gz", a)
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"inf\.nii\.gz: voxel \(x=1, y=2, z=3\) is -inf, expected finite intensities")


@kind
def nifti_header_truncated(ctx):
    p = ctx.p("h.nii")
    open(p, "wb").write(open(ctx.f("img.nii"), "rb").read()[:200])
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"h\.nii: header truncated: 200 of 348 bytes")


@kind
def nifti_empty_file(ctx):
    p = ctx.p("e.nii")
    open(p, "wb").close()
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"e\.nii: header truncated: 0 bytes")


@kind
def nifti_bad_sizeof_hdr(ctx):
    p = patch(ctx.f("img.nii"), ctx.p("z.nii"), 0, "i", 1234)
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"z\.nii: sizeof_hdr = 1234, expected 348 \(NIfTI-1\) or 540 \(NIfTI-2\)")


@kind
def nifti_missing_file(ctx):
    return dict(argv=predict(ctx, image=ctx.p("none.nii.gz")), code=4, predict=True,
                line=r"none\.nii\.gz: no such file")


@kind
def nifti_gzip_claims_gigabytes(ctx):
    """a small .nii.gz whose header claims 4096x4096x64 float64 (8.6 GB): refused on the short
    read, without allocating what the header claims (found by fuzz_nifti)"""
    raw = bytearray(open(ctx.f("img.nii"), "rb").read())
    struct.pack_into("<hhhh", raw, 40, 3, 4096, 4096, 64)
    struct.pack_into("<hh", raw, 70, 64, 64)
    p = ctx.p("huge.nii.gz")
    with gzip.open(p, "wb") as f:
        f.write(bytes(raw))
    return dict(argv=predict(ctx, image=p), code=5, predict=True,
                line=r"huge\.nii\.gz: voxel data truncated or corrupt: read \d+ of 8589934592 bytes")


@kind
def nifti_ingest_truncated_gzip(ctx):
    t = ctx.p("t.nii.gz")
    open(t, "wb").write(open(f"{DATA}/images/{CASE}.nii.gz", "rb").read()[:20000])
    root, out = case_folder(ctx, image=t)
    return dict(argv=ingest(ctx, root, out), code=5, absent=[out],
                line=r"images/c1\.nii\.gz: voxel data truncated or corrupt")


# ---- masks ----

@kind
def mask_contour_not_binary(ctx):
    c = con_data(ctx)
    c[c > 0] = 2
    p = nifti_like(ctx, "two.nii", c, ref="con.nii")
    return dict(argv=predict(ctx, contour=p), code=5, predict=True,
                line=r"two\.nii: contour value 2 at voxel \(x=\d+, y=\d+, z=\d+\), expected a binary mask \(0 or 1\); give --label")


@kind
def mask_negative_label(ctx):
    c = con_data(ctx).astype(np.int16)
    c[0, 0, 0] = -1
    p = nifti_like(ctx, "neg.nii.gz", c, ref="con.nii")
    root, out = case_folder(ctx, label=p)
    return dict(argv=ingest(ctx, root, out), code=5, absent=[out],
                line=r"labels/c1\.nii\.gz: voxel \(x=0, y=0, z=0\) has value -1, expected integer "
                     r"label values 0\.\.255")


@kind
def mask_label_over_255(ctx):
    c = con_data(ctx).astype(np.int16)
    c[c > 0] = 300
    p = nifti_like(ctx, "big.nii.gz", c, ref="con.nii")
    root, out = case_folder(ctx, label=p)
    return dict(argv=ingest(ctx, root, out), code=5, absent=[out],
                line=r"labels/c1\.nii\.gz: voxel .* has value 300, expected integer label values")


@kind
def mask_float_half(ctx):
    c = con_data(ctx).astype(np.float32)
    c[c > 0] = 0.5
    p = nifti_like(ctx, "half.nii.gz", c, ref="con.nii")
    root, out = case_folder(ctx, label=p)
    return dict(argv=ingest(ctx, root, out), code=5, absent=[out],
                line=r"labels/c1\.nii\.gz: voxel .* has value 0\.5, expected integer label values")


@kind
def mask_all_zero_gt(ctx):
    p = nifti_like(ctx, "zero.nii.gz", np.zeros_like(con_data(ctx)), ref="con.nii")
    root, out = case_folder(ctx, label=p)
    return dict(argv=ingest(ctx, root, out), code=5, absent=[out],
                line=r"labels/c1\.nii\.gz.*(empty|no voxel)")


@kind
def mask_labels_outside_selected_set(ctx):
    root, out = case_folder(ctx)
    return dict(argv=ingest(ctx, root, out, ["--label", "7"]), code=5, absent=[out],
                line=r"labels/c1\.nii\.gz.*(empty|no voxel|label)")


@kind
def mask_contour_other_grid(ctx):
    c = con_data(ctx)[:-3]
    p = nifti_like(ctx, "small.nii.gz", c, ref="con.nii")
    root, out = case_folder(ctx, contour=p)
    return dict(argv=ingest(ctx, root, out), code=5, absent=[out],
                line=r"contours/auto/c1\.nii\.gz: shape \d+x\d+x\d+ differs from image")


@kind
def mask_predict_contour_other_grid(ctx):
    p = nifti_like(ctx, "small.nii", con_data(ctx)[:, :-4], ref="con.nii")
    return dict(argv=predict(ctx, contour=p), code=5, predict=True,
                line=r"small\.nii: shape \d+x\d+x\d+ differs from image")


# ---- HDF5 site files ----

def site_kind(ctx, edit, line, code=5):
    p = site_copy(ctx, edit)
    argv, run = train(ctx, p)
    return dict(argv=argv, code=code, absent=[run], unchanged=[p], line=line)


@kind
def site_not_hdf5(ctx):
    p = ctx.p("text.h5")
    open(p, "w").write("case,image\n")
    argv, run = train(ctx, p)
    return dict(argv=argv, code=None, codes=(4, 5), absent=[run], line=r"text\.h5: .*HDF5")


@kind
def site_truncated(ctx):
    p = ctx.p("half.h5")
    b = open(ctx.f("site.h5"), "rb").read()
    open(p, "wb").write(b[: len(b) // 2])
    argv, run = train(ctx, p)
    return dict(argv=argv, code=None, codes=(4, 5), absent=[run], line=r"half\.h5: ")


@kind
def site_wrong_format(ctx):
    return site_kind(ctx, lambda f: f.attrs.__setitem__("format", "other-format"),
                     r"bad\.h5: .*format.*segqa-site")


@kind
def site_wrong_version(ctx):
    return site_kind(ctx, lambda f: f.attrs.__setitem__("format_version", np.int32(99)),
                     r"bad\.h5: .*version.*99")


@kind
def site_missing_dataset(ctx):
    return site_kind(ctx, lambda f: f.__delitem__(f"cases/{CASE}/image"),
                     r"bad\.h5: .*hippocampus_004/image")


def _replace(f, path, data):
    del f[path]
    f.create_dataset(path, data=data)


@kind
def site_wrong_dtype(ctx):
    return site_kind(ctx, lambda f: _replace(f, f"cases/{CASE}/image",
                                             np.zeros((16, 24, 16), np.int16)),
                     r"bad\.h5: .*hippocampus_004/image.*(float|type)")


@kind
def site_wrong_shape(ctx):
    return site_kind(ctx, lambda f: _replace(f, f"cases/{CASE}/gt", np.zeros((8, 8, 8), np.uint8)),
                     r"bad\.h5: .*hippocampus_004/gt.*(shape|16x24x16)")


@kind
def site_corrupt_chunk(ctx):
    p = ctx.p("bad.h5")
    shutil.copy(ctx.f("site.h5"), p)
    with h5py.File(p, "r") as f:
        info = f[f"cases/{CASE}/image"].id.get_chunk_info(0)
    b = bytearray(open(p, "rb").read())
    for i in range(info.byte_offset + 8, info.byte_offset + min(info.size, 200)):
        b[i] ^= 0x5A
    open(p, "wb").write(b)
    argv, run = train(ctx, p)
    # read by the loader during epoch 1: the run folder exists, but no checkpoint (or temp file)
    return dict(argv=argv, code=None, codes=(4, 5), unchanged=[p],
                absent=[f"{run}/all/last.h5", f"{run}/all/best.h5"],
                line=r"bad\.h5: /cases/hippocampus_004/image could not be read")


# ---- checkpoints ----

def ckpt_kind(ctx, edit, line, code=5):
    p = ckpt_copy(ctx, edit)
    return dict(argv=predict(ctx, ckpt=p), code=code, predict=True, unchanged=[p], line=line)


@kind
def ckpt_truncated(ctx):
    p = ctx.p("half.h5")
    b = open(ctx.f("run/all/best.h5"), "rb").read()
    open(p, "wb").write(b[: len(b) // 2])
    return dict(argv=predict(ctx, ckpt=p), code=None, codes=(4, 5), predict=True,
                line=r"half\.h5: ")


@kind
def ckpt_not_hdf5(ctx):
    p = ctx.p("model.h5")
    open(p, "w").write("not a model\n")
    return dict(argv=predict(ctx, ckpt=p), code=None, codes=(4, 5), predict=True,
                line=r"model\.h5: .*HDF5")


@kind
def ckpt_missing_tensor(ctx):
    return ckpt_kind(ctx, lambda f: f.__delitem__("params/backbone.s1.b1.dw.weight"),
                     r"bad\.h5: tensor 'params/backbone\.s1\.b1\.dw\.weight' \(shape [0-9x]+\) is "
                     r"missing")


def _nan_weight(f):
    d = f["params/head.conv.weight"] if "params/head.conv.weight" in f else None
    if d is None:
        d = f["params/" + sorted(f["params"].keys())[-1]]
    a = d[...]
    a.flat[0] = np.nan
    d[...] = a


@kind
def ckpt_nan_weights(ctx):
    return ckpt_kind(ctx, _nan_weight, r"bad\.h5: tensor 'params/.*' element 0 is nan, expected "
                                       r"finite values")


@kind
def ckpt_unsupported_version(ctx):
    return ckpt_kind(ctx, lambda f: f.attrs.__setitem__("version", np.int32(99)),
                     r"bad\.h5: attribute 'version' is 99, expected \d+")


@kind
def ckpt_other_config(ctx):
    """resuming a run folder with another network config: refused, the run folder untouched"""
    run = ctx.p("run")
    shutil.copytree(ctx.f("run"), run)
    argv, _ = train(ctx, ctx.f("site.h5"), run, ["--fpn-channels", "16", "--epochs", "2"])
    argv[argv.index("--epochs") + 1] = "2"
    return dict(argv=argv, code=5, unchanged=[f"{run}/all/last.h5", f"{run}/all/best.h5"],
                line=r"last\.h5: .*fpn_channels")


# ---- configs (JSON) ----

def config_kind(ctx, raw, line, code=2):
    p = ctx.p("cfg.json")
    open(p, "wb").write(raw)
    argv, run = train(ctx, ctx.f("site.h5"), extra=["--config", p])
    return dict(argv=argv, code=code, absent=[run], line=line)


@kind
def config_malformed(ctx):
    return config_kind(ctx, b'{"epochs": 1,\n  "lr": }\n', r"cfg\.json:2:9: malformed JSON near")


@kind
def config_unknown_key(ctx):
    return config_kind(ctx, b'{"epocs": 1}', r"cfg\.json: unknown key 'epocs' \(did you mean "
                                             r"'epochs'\?\)")


@kind
def config_wrong_type(ctx):
    return config_kind(ctx, b'{"epochs": "ten"}', r"cfg\.json: key 'epochs' must be .*found string")


@kind
def config_out_of_range(ctx):
    return config_kind(ctx, b'{"batch": 0}', r"cfg\.json: .*batch.*")


@kind
def config_non_utf8(ctx):
    return config_kind(ctx, b'{"out": "caf\xe9"}',
                       r"cfg\.json:1: byte 0xe9 at offset 12 is not UTF-8, expected UTF-8 text")


@kind
def config_nul_byte(ctx):
    return config_kind(ctx, b'{"epochs": 1}\0junk', r"cfg\.json:1: NUL byte at offset 13")


@kind
def config_missing_file(ctx):
    argv, run = train(ctx, ctx.f("site.h5"), extra=["--config", ctx.p("none.json")])
    return dict(argv=argv, code=2, absent=[run], line=r"none\.json: cannot open")


@kind
def config_bom_tolerated(ctx):
    p = ctx.p("cfg.json")
    open(p, "wb").write(b'\xef\xbb\xbf{"shape": "16x24x16"}\r\n')
    path, out = manifest(ctx, GOOD_MANIFEST)
    return dict(argv=[ctx.segqa, "ingest", path, "-o", out, "--config", p, "-q"], code=0,
                ok_output=out)


# ---- CSVs: ingest manifest, clinical CSV, predict pairs ----

def manifest_kind(ctx, text, line, code=5, raw=None):
    path, out = manifest(ctx, text, raw=raw)
    return dict(argv=ingest(ctx, path, out), code=code, absent=[out], line=line)


@kind
def csv_manifest_missing_columns(ctx):
    return manifest_kind(ctx, "case,image\nc1,a_img.nii.gz\n",
                         r"manifest\.csv: header must have columns case, image, gt")


@kind
def csv_manifest_field_count(ctx):
    return manifest_kind(ctx, GOOD_MANIFEST + "c2,p2,a_img.nii.gz\n",
                         r"manifest\.csv:3: 3 fields, expected 4 as in the header")


@kind
def csv_manifest_duplicate_case(ctx):
    return manifest_kind(ctx, GOOD_MANIFEST + "c1,p2,a_img.nii.gz,a_gt.nii.gz\n",
                         r"manifest\.csv:3: column 'case': case id 'c1' repeats an earlier row")


@kind
def csv_manifest_missing_file(ctx):
    return manifest_kind(ctx, GOOD_MANIFEST + "c2,p2,gone.nii.gz,a_gt.nii.gz\n",
                         r"manifest\.csv:3: .*gone\.nii\.gz: no such file \(image of case c2\)",
                         code=4)


@kind
def csv_manifest_non_utf8(ctx):
    return manifest_kind(ctx, None, r"manifest\.csv:2: byte 0xe9 at offset \d+ is not UTF-8",
                         raw=b"case,patient,image,gt\nc\xe9,p1,a_img.nii.gz,a_gt.nii.gz\n")


@kind
def csv_manifest_no_rows(ctx):
    return manifest_kind(ctx, "case,patient,image,gt\n", r"manifest\.csv: no cases listed")


@kind
def csv_manifest_crlf_bom_tolerated(ctx):
    raw = b"\xef\xbb\xbf" + GOOD_MANIFEST.replace("\n", "\r\n").encode()
    path, out = manifest(ctx, None, raw=raw)
    return dict(argv=ingest(ctx, path, out), code=0, ok_output=out, ok_cases=["c1"])


def clinical_kind(ctx, raw, line, code=5):
    path, out = manifest(ctx, GOOD_MANIFEST)
    clin = ctx.p("clinical.csv")
    open(clin, "wb").write(raw)
    return dict(argv=ingest(ctx, path, out, ["--clinical", clin]), code=code, absent=[out],
                line=line)


@kind
def csv_clinical_no_key_column(ctx):
    return clinical_kind(ctx, b"id,age\nc1,60\n",
                         r"clinical\.csv: header needs a column 'case' or 'patient'")


@kind
def csv_clinical_duplicate_id(ctx):
    return clinical_kind(ctx, b"case,age\nc1,60\nc1,61\n",
                         r"clinical\.csv:3: column 'case': case 'c1' is repeated, expected unique")


@kind
def csv_clinical_non_utf8(ctx):
    return clinical_kind(ctx, b"case,sex\nc1,f\xf6\n", r"clinical\.csv:2: byte 0xf6 .*not UTF-8")


@kind
def csv_clinical_field_count(ctx):
    return clinical_kind(ctx, b"case,age,psa\nc1,60\n", r"clinical\.csv:2: 2 fields, expected 3")


@kind
def csv_clinical_missing_file(ctx):
    path, out = manifest(ctx, GOOD_MANIFEST)
    return dict(argv=ingest(ctx, path, out, ["--clinical", ctx.p("none.csv")]), code=4,
                absent=[out], line=r"none\.csv: ")


@kind
def csv_pairs_missing_columns(ctx):
    p = ctx.p("pairs.csv")
    open(p, "w").write("img,mask\na.nii,b.nii\n")
    return dict(argv=[ctx.segqa, "predict", "-c", ctx.f("run/all/best.h5"), "--pairs", p],
                code=5, predict=True,
                line=r"pairs\.csv:1: header must name the columns 'image' and 'contour'")


# ---- command lines ----

def cli_kind(ctx, argv, line, code=2, absent=()):
    return dict(argv=argv, code=code, line=line, absent=list(absent), predict=argv[1] == "predict")


@kind
def cli_negative_epochs(ctx):
    argv, run = train(ctx, ctx.f("site.h5"), extra=["--epochs", "-1"])
    return cli_kind(ctx, argv, r"--epochs.*-1", absent=[run])


@kind
def cli_zero_batch(ctx):
    argv, run = train(ctx, ctx.f("site.h5"), extra=["--batch", "0"])
    return cli_kind(ctx, argv, r"--batch.*0", absent=[run])


@kind
def cli_not_a_number(ctx):
    argv, run = train(ctx, ctx.f("site.h5"), extra=["--epochs", "ten"])
    return cli_kind(ctx, argv, r"--epochs.*ten", absent=[run])


@kind
def cli_val_fraction_above_one(ctx):
    argv, run = train(ctx, ctx.f("site.h5"), extra=["--val-fraction", "1.5"])
    return cli_kind(ctx, argv, r"--val-fraction.*1\.5", absent=[run])


@kind
def cli_lr_nan(ctx):
    argv, run = train(ctx, ctx.f("site.h5"), extra=["--lr", "nan"])
    return cli_kind(ctx, argv, r"--lr.*nan", absent=[run])


@kind
def cli_threshold_above_one(ctx):
    return cli_kind(ctx, predict(ctx, extra=["--threshold", "2"]), r"--threshold.*2")


@kind
def cli_bad_shape(ctx):
    path, out = manifest(ctx, GOOD_MANIFEST)
    return cli_kind(ctx, [ctx.segqa, "ingest", path, "-o", out, "--shape", "0x24x16", "-q"],
                    r"--shape.*0x24x16", absent=[out])


@kind
def cli_shape_two_axes(ctx):
    path, out = manifest(ctx, GOOD_MANIFEST)
    return cli_kind(ctx, [ctx.segqa, "ingest", path, "-o", out, "--shape", "16x24", "-q"],
                    r"--shape '16x24': expected DxHxW", absent=[out])


@kind
def cli_percentiles_conflict(ctx):
    path, out = manifest(ctx, GOOD_MANIFEST)
    return cli_kind(ctx, ingest(ctx, path, out, ["--lo-pct", "50", "--hi-pct", "10"]),
                    r"--hi-pct \(10\) must be above --lo-pct \(50\)", absent=[out])


@kind
def cli_pairs_and_image_conflict(ctx):
    return cli_kind(ctx, predict(ctx, extra=["--pairs", ctx.p("p.csv")]),
                    r"give exactly one of: --image and --contour, --pairs FILE\.csv, --stdin")


@kind
def cli_contours_too_many(ctx):
    out = ctx.p("out.h5")
    return cli_kind(ctx, [ctx.segqa, "contours", ctx.f("gt.h5"), "-o", out, "--atlas", "99"],
                    r"--atlas.*99", absent=[out])


# ---- the checks ----

def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def tmp_left(path):
    d = os.path.dirname(path)
    return [n for n in os.listdir(d) if ".tmp" in n] if os.path.isdir(d) else []


def check(name, ctx, spec):
    errors = []
    before = {p: sha(p) for p in spec.get("unchanged", [])}
    env = dict(os.environ)
    if spec["argv"][1] == "train":  # MPI is initialised: its dlopen'ed components leak unnamed
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"  # (tests/hpc)
    r = subprocess.run(spec["argv"], capture_output=True, text=True, errors="replace",
                       timeout=240, env=env)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    print(f"{name}: exit {r.returncode}; stderr: {' | '.join(lines) or '(none)'}")
    if "same_as" in spec:  # tolerated: same estimate as the reference commands
        want = [subprocess.run(a, capture_output=True, text=True).stdout for a in spec["same_as"]]
        if r.returncode not in (0, 3) or any(w != r.stdout for w in want):
            errors.append(f"output differs from the unscaled image:\n{r.stdout}\nvs\n{want}")
        return errors
    codes = spec.get("codes") or (spec["code"],)
    if r.returncode not in codes:
        errors.append(f"exit code {r.returncode}, expected {' or '.join(map(str, codes))}")
    if spec["code"] == 0:
        if lines:
            errors.append("expected no message on stderr")
        if not os.path.exists(spec["ok_output"]):
            errors.append(f"{spec['ok_output']} was not written")
        elif spec.get("ok_cases"):
            with h5py.File(spec["ok_output"]) as f:
                if sorted(f["cases"].keys()) != spec["ok_cases"]:
                    errors.append(f"cases {sorted(f['cases'].keys())}")
        return errors
    if len(lines) != 1:
        errors.append(f"{len(lines)} lines on stderr, expected exactly one")
    if not lines or not re.match(r"^segqa [a-z]+: ", lines[0]) or not re.search(spec["line"],
                                                                               lines[0]):
        errors.append(f"message does not match /{spec['line']}/")
    for p in spec.get("absent", []):
        if os.path.exists(p):
            errors.append(f"partial output: {p} exists")
        if tmp_left(p):
            errors.append(f"temporary files left: {tmp_left(p)}")
    for p, h in before.items():
        if sha(p) != h:
            errors.append(f"{p} was modified")
    if spec.get("predict") and len(r.stdout.splitlines()) > 1:
        errors.append(f"predict printed result rows: {r.stdout!r}")
    return errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--segqa")
    ap.add_argument("--work")
    ap.add_argument("--fixtures", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("kinds", nargs="*")
    a = ap.parse_args()
    if a.list:
        print("\n".join(KINDS))
        return 0
    if a.fixtures:
        make_fixtures(a.segqa, a.work)
        return 0
    names = a.kinds or list(KINDS)
    failed = 0
    for name in names:
        ctx = Ctx(a.segqa, a.work, name)
        errors = check(name, ctx, KINDS[name](ctx))
        for e in errors:
            print(f"  FAIL {name}: {e}")
        failed += bool(errors)
        if not errors:
            shutil.rmtree(ctx.dir, ignore_errors=True)
    print(f"{len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
