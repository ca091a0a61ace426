#!/usr/bin/env bash
# test_predict.sh SEGQA — `segqa predict` on real segmentation outputs, end to end with a real
# (tiny) checkpoint trained here on 12 bundled hippocampus cases:
#   * label maps: refused by default (naming --label); --label 1 gives exactly the estimate of the
#     binary file of label 1; int16 and float datatypes; a float map cut at --mask-threshold;
#   * a contour on another grid (stored flipped in x): refused naming --resample, and with
#     --resample nearest the same estimate as the contour on the image grid;
#   * --pairs goes on past bad rows (missing file, short row, label map): error rows with id and
#     reason, the good rows estimated, exit 6 (also when others are rejected), 3 / 0 otherwise;
#   * --stdin: good and bad request lines, one result line each, the same estimate as a one-shot
#     run, the server going on after each bad line;
#   * --report: one PNG per estimated pair and an index.html listing failed pairs first, then
#     by estimate ascending; in headless Chromium the page renders, every image loads
#     (complete, naturalWidth > 0) and the rows are worst first (a copy of the page with a
#     checking script appended writes its verdict into the DOM, read with --dump-dom).
set -u
segqa=$1
here=$(cd "$(dirname "$0")/../.." && pwd)
data=$here/datasets/msd-hippocampus
py=/usr/bin/python3
. "$(dirname "$0")/../lib.sh"
test_tmpdir predict
est() { $py -c 'import json,sys; print(json.loads(sys.stdin.readline())["estimated_dice"])'; }

"$segqa" ingest "$data" -o "$tmp/gt.h5" --shape 16x24x16 --limit 12 -q &&
    "$segqa" contours "$tmp/gt.h5" -o "$tmp/site.h5" --perturb 1 --near 0 -q &&
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "$segqa" train "$tmp/site.h5" --out "$tmp/run" --epochs 6 --fpn-channels 16 --fpn-repeats 1 \
        --threads 1 --workers 1 --no-figures --val-every 1 -q >/dev/null 2>&1 ||
    { bad "ingest/contours/train"; echo "$pass passed, $fail failed"; exit 1; }
ck=$tmp/run/all/best.h5
img=$data/images/hippocampus_004.nii.gz

"$py" - "$data" "$tmp" <<'PY'
import nibabel as nib, numpy as np, sys
d, t = sys.argv[1], sys.argv[2]
lab = nib.load(f"{d}/labels/hippocampus_004.nii.gz")
L = np.asarray(lab.dataobj)
A = lab.affine
save = lambda a, name, aff=A: nib.save(nib.Nifti1Image(a, aff), f"{t}/{name}")
save((L > 0).astype(np.uint8), "bin.nii.gz")
save(np.zeros_like(L, dtype=np.uint8), "empty.nii.gz")
save((L == 1).astype(np.uint8), "bin1.nii.gz")
save(L.astype(np.int16), "labels16.nii.gz")
save((L > 0).astype(np.int16), "bin16.nii.gz")
save(np.where(L > 0, 0.7, 0.2).astype(np.float32), "prob.nii.gz")
save(np.where(L > 0, 0.7, 0.2).astype(np.float64), "prob64.nii.gz")
flip = np.ascontiguousarray((L > 0).astype(np.uint8)[::-1])     # x reversed
F = A.copy(); F[:, 0] = -A[:, 0]; F[:3, 3] = A[:3, 3] + A[:3, 0] * (L.shape[0] - 1)
save(flip, "flip.nii.gz", F)
with open(f"{t}/pairs.csv", "w") as f:
    f.write("id,image,contour\n")
    f.write(f"good-a,{d}/images/hippocampus_004.nii.gz,bin.nii.gz\n")
    f.write(f"missing,{d}/images/hippocampus_004.nii.gz,nope.nii.gz\n")
    f.write("short-row\n")
    f.write(f"labelmap,{d}/images/hippocampus_004.nii.gz,labels16.nii.gz\n")
    f.write(f"good-b,{d}/images/hippocampus_004.nii.gz,bin1.nii.gz\n")
with open(f"{t}/good.csv", "w") as f:
    f.write("id,image,contour\n")
    f.write(f"good-a,{d}/images/hippocampus_004.nii.gz,bin.nii.gz\n")
    f.write(f"good-b,{d}/images/hippocampus_004.nii.gz,bin1.nii.gz\n")
PY

p=("$segqa" predict -c "$ck" -i "$img" --threshold 0 -f json)
e_bin=$("${p[@]}" -m "$tmp/bin.nii.gz" | est)
e_bin1=$("${p[@]}" -m "$tmp/bin1.nii.gz" | est)

# --- label maps and datatypes
"${p[@]}" -m "$tmp/labels16.nii.gz" >"$tmp/o" 2>"$tmp/e"
rc=$?
[ $rc -eq 5 ] && grep -q "labels16.nii.gz: contour value 2 .*expected a binary mask.*--label" "$tmp/e" &&
    [ "$(wc -l <"$tmp/e")" -eq 1 ] && ok "label map without --label: exit 5, one line naming --label" ||
    { bad "label map default (exit $rc)"; cat "$tmp/e"; }
e=$("${p[@]}" -m "$tmp/labels16.nii.gz" --label 1 | est)
[ -n "$e" ] && [ "$e" = "$e_bin1" ] && [ "$e" != "$e_bin" ] &&
    ok "--label 1 on an int16 label map = the binary file of label 1 ($e; all labels $e_bin)" ||
    bad "--label 1: $e vs $e_bin1"
e=$("${p[@]}" -m "$tmp/labels16.nii.gz" --label all | est)
e2=$("${p[@]}" -m "$tmp/labels16.nii.gz" --label 1,2 | est)
[ "$e" = "$e_bin" ] && [ "$e2" = "$e_bin" ] && ok "--label all and --label 1,2 = the union" ||
    bad "--label all: $e / $e2 vs $e_bin"
e=$("${p[@]}" -m "$tmp/bin16.nii.gz" | est)
[ "$e" = "$e_bin" ] && ok "int16 binary mask = uint8 binary mask" || bad "int16: $e vs $e_bin"
e=$("${p[@]}" -m "$tmp/prob.nii.gz" | est)
e2=$("${p[@]}" -m "$tmp/prob64.nii.gz" | est)
[ "$e" = "$e_bin" ] && [ "$e2" = "$e_bin" ] && ok "float32/float64 map cut at 0.5 = the binary mask" ||
    bad "float map: $e / $e2 vs $e_bin"
e=$("${p[@]}" -m "$tmp/prob.nii.gz" --mask-threshold 0.1 | est)
e2=$("${p[@]}" -m "$tmp/prob.nii.gz" --mask-threshold 0.9 | est)
[ -n "$e" ] && [ "$e" != "$e_bin" ] && [ -n "$e2" ] && [ "$e2" != "$e_bin" ] && [ "$e" != "$e2" ] &&
    ok "--mask-threshold moves the cut (0.1: all ones, 0.9: empty)" || bad "mask threshold: $e $e2"

# --- another grid
"${p[@]}" -m "$tmp/flip.nii.gz" >"$tmp/o" 2>"$tmp/e"
rc=$?
[ $rc -eq 5 ] && grep -q "flip.nii.gz: affine.*--resample nearest" "$tmp/e" &&
    ok "contour on another grid: exit 5 naming the file and --resample" || { bad "grid (exit $rc)"; cat "$tmp/e"; }
e=$("${p[@]}" -m "$tmp/flip.nii.gz" --resample nearest | est)
[ "$e" = "$e_bin" ] && ok "--resample nearest maps a flipped contour back exactly ($e)" ||
    bad "resample: $e vs $e_bin"

# --- crop policy from the checkpoint: a copy of the checkpoint whose preprocessing says "contour"
cp "$ck" "$tmp/contour-crop.h5"
"$py" - "$tmp/contour-crop.h5" <<'PY'
import h5py, json, numpy as np, sys
with h5py.File(sys.argv[1], "r+") as f:
    pp = json.loads(f.attrs["preproc_config"].decode() if isinstance(f.attrs["preproc_config"], bytes) else f.attrs["preproc_config"])
    assert pp["crop"] == "center", pp
    pp["crop"] = "contour"
    del f.attrs["preproc_config"]
    f.attrs["preproc_config"] = np.bytes_(json.dumps(pp))
PY
pc=("$segqa" predict -c "$tmp/contour-crop.h5" -i "$img" --threshold 0 -f json)
e=$("${pc[@]}" -m "$tmp/bin.nii.gz" --crop contour | est)
e_empty=$("${p[@]}" -m "$tmp/empty.nii.gz" | est)
e2=$("${pc[@]}" -m "$tmp/empty.nii.gz" | est)
[ -n "$e" ] && [ "$e" != "$e_bin" ] && [ -n "$e2" ] && [ "$e2" = "$e_empty" ] &&
    ok "crop contour from the checkpoint: another input than the centre crop ($e vs $e_bin); an empty contour falls back to the centre ($e2)" ||
    bad "crop contour: $e vs $e_bin, empty $e2 vs $e_empty"
"${p[@]}" -m "$tmp/bin.nii.gz" --crop contour >"$tmp/o" 2>"$tmp/e"
rc=$?
[ $rc -eq 2 ] && grep -q "trained with crop center" "$tmp/e" &&
    ok "--crop contour against a centre-cropped checkpoint: refused, exit 2" || { bad "crop mismatch (exit $rc)"; cat "$tmp/e"; }

# --- --pairs goes on past bad pairs
"$segqa" predict -c "$ck" --pairs "$tmp/pairs.csv" -f json --threshold 0 >"$tmp/o" 2>"$tmp/e"
rc=$?
"$py" - "$tmp/o" "$e_bin" "$e_bin1" <<'PY' >"$tmp/chk" 2>&1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ids = [r["id"] for r in rows]
assert ids == ["good-a", "missing", "short-row", "labelmap", "good-b"], ids
assert str(rows[0]["estimated_dice"]) == sys.argv[2] and str(rows[4]["estimated_dice"]) == sys.argv[3], rows
assert "nope.nii.gz: no such file" in rows[1]["error"], rows[1]
assert "expected 3 columns" in rows[2]["error"], rows[2]
assert "expected a binary mask" in rows[3]["error"], rows[3]
assert all("estimated_dice" not in r for r in rows[1:4])
print("checked")
PY
[ $rc -eq 6 ] && grep -q checked "$tmp/chk" && [ "$(wc -l <"$tmp/e")" -eq 3 ] &&
    ok "--pairs: 3 bad rows get error rows (id, reason), the 2 good ones estimated, exit 6" ||
    { bad "--pairs past bad pairs (exit $rc)"; cat "$tmp/chk" "$tmp/o" "$tmp/e"; }
"$segqa" predict -c "$ck" --pairs "$tmp/pairs.csv" --threshold 1 >"$tmp/o" 2>/dev/null
rc=$?
[ $rc -eq 6 ] && [ "$(grep -c ERROR "$tmp/o")" -eq 3 ] && [ "$(grep -c REJECT "$tmp/o")" -eq 2 ] &&
    ok "--pairs table: failed and rejected together -> exit 6 (failure takes precedence)" ||
    { bad "failed+rejected (exit $rc)"; cat "$tmp/o"; }
"$segqa" predict -c "$ck" --pairs "$tmp/good.csv" --threshold 1 >/dev/null 2>&1
rc1=$?
"$segqa" predict -c "$ck" --pairs "$tmp/good.csv" --threshold 0 >/dev/null 2>&1
rc2=$?
[ $rc1 -eq 3 ] && [ $rc2 -eq 0 ] && ok "--pairs all estimated: exit 3 when any rejected, 0 when all accepted" ||
    bad "exit codes $rc1 $rc2"

# --- --stdin
{
    echo "{\"id\":\"s1\",\"image\":\"$img\",\"contour\":\"$tmp/bin.nii.gz\"}"
    echo "not json"
    echo "{\"id\":\"s3\",\"image\":\"$img\"}"
    echo "{\"id\":\"s4\",\"image\":\"$img\",\"contour\":\"$tmp/bin.nii.gz\",\"colour\":1}"
    echo ""
    echo "{\"id\":\"s6\",\"image\":\"$img\",\"contour\":\"$tmp/nope.nii.gz\"}"
    echo "{\"id\":7,\"image\":\"$img\",\"contour\":\"$tmp/labels16.nii.gz\",\"label\":1,\"threshold\":0}"
    echo "{\"id\":\"s8\",\"image\":\"$img\",\"contour\":\"$tmp/flip.nii.gz\",\"resample\":\"nearest\"}"
} | "$segqa" predict -c "$ck" --stdin >"$tmp/o" 2>"$tmp/e"
rc=$?
"$py" - "$tmp/o" "$e_bin" "$e_bin1" <<'PY' >"$tmp/chk" 2>&1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["id"] for r in rows] == ["s1", None, "s3", "s4", "s6", "7", "s8"], rows
assert str(rows[0]["estimated_dice"]) == sys.argv[2] and rows[0]["accept"] is False
assert "stdin:2" in rows[1]["error"] and rows[1]["line"] == 2, rows[1]
assert "'contour'" in rows[2]["error"], rows[2]
assert "unknown key 'colour'" in rows[3]["error"], rows[3]
assert "nope.nii.gz: no such file" in rows[4]["error"] and rows[4]["line"] == 6, rows[4]
assert str(rows[5]["estimated_dice"]) == sys.argv[3] and rows[5]["accept"] is True, rows[5]
assert str(rows[6]["estimated_dice"]) == sys.argv[2], rows[6]
print("checked")
PY
[ $rc -eq 0 ] && grep -q checked "$tmp/chk" &&
    ok "--stdin: 7 requests -> 7 lines (3 estimates equal to one-shot runs, 4 error lines), exit 0" ||
    { bad "--stdin (exit $rc)"; cat "$tmp/chk" "$tmp/o" "$tmp/e"; }

# --- --report
"$segqa" predict -c "$ck" --pairs "$tmp/pairs.csv" --report "$tmp/qc" --threshold 0.4985 >/dev/null 2>&1
rc=$?
"$py" - "$tmp/qc" <<'PY' >"$tmp/chk" 2>&1
import os, re, sys, struct, zlib
d = sys.argv[1]
html = open(f"{d}/index.html").read()
rows = re.findall(r'<tr class="pair (\w+)" data-id="([^"]*)" data-estimate="([^"]*)"', html)
assert [r[0] for r in rows[:3]] == ["failed"] * 3, rows
est = [float(r[2]) for r in rows[3:]]
assert len(est) == 2 and est == sorted(est), rows
pngs = re.findall(r'<img class="thumb"[^>]* src="([^"]+)"', html)
assert len(pngs) == 2, pngs
for p in pngs:
    b = open(f"{d}/{p}", "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", b[16:24])
    assert w >= 3 * 38 and h > 52, (w, h)
assert not re.search(r'(src|href)="(https?:|//)', html), "external asset"
assert not any(f.startswith(".") or ".tmp" in f for f in os.listdir(d)), os.listdir(d)
print("checked", rows)
PY
[ $rc -eq 6 ] && grep -q checked "$tmp/chk" &&
    ok "--report: index.html failed first then worst first, 2 PNGs, no external asset" ||
    { bad "--report (exit $rc)"; cat "$tmp/chk"; }

# --- bench infer --per-case runs the predict path (the speed itself is a benchmark, not a test)
"$segqa" bench infer --per-case --shape 16x24x16 --spacing 1x1x1 --steps 2 --warmup 0 --target-ms 10000 >"$tmp/o" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "mean per phase: read" "$tmp/o" && grep -q "x the target (met)" "$tmp/o" &&
    ok "bench infer --per-case: read/preprocess/forward phases and the ratio to the target" ||
    { bad "bench infer --per-case (exit $rc)"; cat "$tmp/o"; }

# --- the report in a real headless browser
{
    cat "$tmp/qc/index.html"
    cat <<'JS'
<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const loaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const rows = [...document.querySelectorAll("tr.pair")];
  const est = rows.filter(r => r.dataset.estimate !== "").map(r => parseFloat(r.dataset.estimate));
  const failedFirst = rows.findIndex(r => r.dataset.estimate !== "") ===
                      rows.filter(r => r.dataset.estimate === "").length;
  const sorted = est.every((v, i) => i === 0 || est[i - 1] <= v);
  const visible = document.getElementById("pairs").getBoundingClientRect().height > 100;
  const d = document.createElement("div");
  d.id = "verdict";
  d.textContent = `images ${loaded}/${imgs.length} rows ${rows.length} failed-first ${failedFirst} ` +
                  `sorted ${sorted} visible ${visible}`;
  document.body.appendChild(d);
});
</script>
JS
} >"$tmp/qc/check.html"
udir=$(mktemp -d /tmp/segqa-chromium-XXXXXX)
timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$udir" --virtual-time-budget=5000 --dump-dom "file://$tmp/qc/check.html" \
    >"$tmp/dom" 2>"$tmp/chromium.err"
rm -rf "$udir"
grep -q 'id="verdict">images 2/2 rows 5 failed-first true sorted true visible true<' "$tmp/dom" &&
    ok "chromium: the report renders, 2/2 images load, failed first then worst first" ||
    { bad "chromium: $(grep -o '<div id="verdict">[^<]*' "$tmp/dom" || echo no verdict)"; tail -3 "$tmp/chromium.err"; }
rm -f "$tmp/qc/check.html"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
