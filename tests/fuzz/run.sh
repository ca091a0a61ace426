#!/usr/bin/env bash
# run.sh [SECONDS] — build the libFuzzer targets in build-fuzz/ (clang, -fsanitize=fuzzer-no-link,
# address,undefined on all of segqa) and run each for SECONDS (default 25), seeded with real files
# (-Wno-pass-failed: clang cannot vectorise the omp simd loops under ASan, a remark, not a bug)
# (the bundled NIfTI, a site file, a checkpoint and CSV/JSON made here by the normal segqa binary)
# and the regression inputs kept in tests/fuzz/corpus/<target>/ (every crash once found). Prints the
# executions per target; exits non-zero when any target finds a crash in segqa's code (saved in
# build-fuzz/crashes). A stop inside libhdf5 1.10.8 on a corrupt file (classify.py) is counted and
# printed, and fuzzing resumes; a slowest input takes well under a second, so -timeout is 2 s.
#   SEGQA_BIN  segqa used to make the seeds (default build/src/cli/segqa)
#   SEGQA_FUZZ_TARGETS  subset to run, e.g. "nifti csv"
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-25}
bin=${SEGQA_BIN:-$here/build/src/cli/segqa}
out=$here/build-fuzz
targets=${SEGQA_FUZZ_TARGETS:-nifti site checkpoint config csv}
data=$here/datasets/msd-hippocampus

CC=clang cmake -S "$here" -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEGQA_CUDA=OFF \
  -DSEGQA_WERROR=ON -DSEGQA_SANITIZE=address,undefined -DSEGQA_FUZZ=ON \
  "-DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link -Wno-pass-failed" >/dev/null
# shellcheck disable=SC2046
cmake --build "$out" -j"$(nproc)" --target $(for t in $targets; do echo fuzz_$t; done) >/dev/null

seeds=$out/seeds
rm -rf "$seeds" && mkdir -p "$seeds"/{nifti,site,checkpoint,config,csv} "$out/crashes"
cp "$data"/images/hippocampus_00{4,6}.nii.gz "$seeds/nifti/"
cp "$data"/labels/hippocampus_004.nii.gz "$seeds/nifti/label_004.nii.gz"
/usr/bin/python3 - "$data/images/hippocampus_004.nii.gz" "$seeds/nifti" <<'PY'
import sys, nibabel as nib, numpy as np
img = nib.load(sys.argv[1])
small = np.asarray(img.dataobj)[:6, :5, :4]
for name, arr, cls in (("i16.nii", small.astype(np.int16), nib.Nifti1Image),
                       ("f32_n2.nii", small.astype(np.float32), nib.Nifti2Image),
                       ("u8.nii", (small > small.mean()).astype(np.uint8), nib.Nifti1Image)):
    nib.save(cls(arr, img.affine), f"{sys.argv[2]}/{name}")
PY
w=$seeds/work && mkdir -p "$w"
"$bin" ingest "$data" -o "$w/gt.h5" --shape 8x8x8 --limit 2 -q >/dev/null
"$bin" contours "$w/gt.h5" -o "$seeds/site/site.h5" --atlas 1 --perturb 1 -q >/dev/null
"$bin" train "$seeds/site/site.h5" --out "$w/run" --epochs 1 --fpn-channels 8 --fpn-repeats 1 \
  --threads 1 --workers 1 --no-figures --val-every 1 -q >/dev/null
cp "$w/run/all/last.h5" "$seeds/checkpoint/last.h5"
cp "$w/run/config.json" "$seeds/config/train.json"
printf '{"epochs": 3, "lr": 1e-3, "no-figures": true, "device": "cuda", "out": "r"}\n' >"$seeds/config/small.json"
printf '\0case,patient,image,gt,contour_a\nc1,p1,i.nii.gz,g.nii.gz,a.nii.gz\n' >"$seeds/csv/manifest.csv"
printf '\1case,age,sex\r\nc1,61,M\r\nc2,70,F\r\n' >"$seeds/csv/clinical.csv"
printf '\1\xef\xbb\xbfpatient,psa\np1,4.5\n' >"$seeds/csv/clinical_bom.csv"

export ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:fast_unwind_on_malloc=0:abort_on_error=0:allocator_may_return_null=1}:suppressions=$here/tests/fuzz/asan-fuzz.supp
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
cat "$here/tests/sanitizer/lsan.supp" "$here/tests/fuzz/lsan-fuzz.supp" >"$out/lsan.supp"
export LSAN_OPTIONS=suppressions=$out/lsan.supp:print_suppressions=0
export SEGQA_FUZZ_MODEL_FROM=$seeds/checkpoint/last.h5
# A stop that is libhdf5's own bug (tests/fuzz/classify.py says which) does not end a target's run.
/usr/bin/python3 "$here/tests/fuzz/classify.py" --self-test

# fuzz_target T: runs fuzz_T for $secs s in all. A stop that is libhdf5's own (classify.py)
# is counted and fuzzing resumes from the grown corpus, so such a bug cannot end a target's run
# after a few hundred inputs; a segqa finding fails the target.
fuzz_target() {
  local t=$1 corpus=$out/corpus/$1 regress=$here/tests/fuzz/corpus/$1 log=$out/fuzz_$1.log
  local end=$((SECONDS + secs)) execs=0 lib=0 round=0 rc n why unit
  mkdir -p "$corpus" "$regress" && rm -f "$out/fuzz_$t.libhdf5" "$out/fuzz_$t".libhdf5-*.log
  while [ $((end - SECONDS)) -ge 2 ] && [ $round -lt 30 ]; do
    round=$((round + 1))
    set +e
    (cd "$out" && TMPDIR=$out ./tests/fuzz/fuzz_$t -max_total_time=$((end - SECONDS)) -timeout=2 \
       -rss_limit_mb=3072 -max_len=400000 -print_final_stats=1 -artifact_prefix="$out/crashes/$t-" \
       "$corpus" "$seeds/$t" "$regress") >"$log" 2>&1
    rc=$?
    set -e
    n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    execs=$((execs + n))
    [ $rc -eq 0 ] && break
    why=$(/usr/bin/python3 "$here/tests/fuzz/classify.py" "$log")
    if [ -z "$why" ]; then
      echo "fuzz_$t: CRASH after $execs executions (exit $rc); input in $out/crashes/, log $log:"
      grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' "$log" | awk 'NR <= 20' # not head: SIGPIPE
      return 1
    fi
    lib=$((lib + 1))
    cp "$log" "$out/fuzz_$t.libhdf5-$lib.log"
    echo "${why%%:*}" >>"$out/fuzz_$t.libhdf5"
    # libhdf5's state differs between runs: an input kept in the corpus may crash it on the next
    # start's corpus load, so the stopping input leaves the corpus (its copy stays in crashes/)
    unit=$(grep -o 'Test unit written to .*' "$log" | grep -oE '[0-9a-f]{40}$' || true)
    [ -n "$unit" ] && rm -f "$corpus/$unit"
  done
  if [ $lib -eq 0 ]; then
    echo "fuzz_$t: $execs executions in ${secs} s, no crash"
    return 0
  fi
  echo "fuzz_$t: $execs executions in ${secs} s, no crash in segqa code; $lib stops inside libhdf5" \
    "(not segqa code; inputs in $out/crashes/, logs $out/fuzz_$t.libhdf5-N.log)"
  sort "$out/fuzz_$t.libhdf5" | uniq -c | sed "s/^/  fuzz_$t libhdf5: /"
}

status=0
for t in $targets; do
  fuzz_target "$t" || status=1
done
exit $status
