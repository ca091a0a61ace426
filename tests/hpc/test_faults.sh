#!/usr/bin/env bash
# test_faults.sh SEGQA MPIRUN... — fault injection on real training jobs (real mpirun ranks, real
# signals, a real full file system):
#   * SIGKILL of one rank of `segqa train` at a random moment after the first checkpoint: the job
#     exits non-zero within 60 s, the log names the dead rank, last.h5 loads (predict) and the same
#     command resumes from it to the end;
#   * SIGKILL while a checkpoint is being written (the temporary file exists): the previous last.h5
#     loads and the run resumes;
#   * ENOSPC: the run folder on a 32 MB tmpfs (mounted here; as non-root a file-size limit with
#     SIGXFSZ ignored gives EFBIG instead): one clear error line, the earlier checkpoints load;
#   * a NaN voxel in a site file (edited with h5py): --on-nan stop ends the run with a line naming
#     the case; --on-nan skip drops those steps on 2 ranks (agreed) and ends with finite curves;
#   * the site file overwritten mid-run (before the loader has read and cached it): a clear error
#     from the rank that read it, the job ends.
set -u
segqa=$1
shift
mpirun=("$@")
here=$(cd "$(dirname "$0")/../.." && pwd)
data=$here/datasets/msd-hippocampus
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/segqa-faults-XXXXXX)
mnt=$tmp/full
cleanup() { mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"; rm -rf "$tmp"; }
trap cleanup EXIT
. "$(dirname "$0")/../lib.sh"
bad() { echo "FAIL $1"; fail=$((fail + 1)); [ -n "${2:-}" ] && [ -f "$2" ] && sed 's/^/     | /' "$2" | tail -25; }
net=(--fpn-channels 8 --fpn-repeats 1 --threads 1 --workers 1 --no-figures --val-every 1 -q)

"$segqa" ingest "$data" -o "$tmp/gt.h5" --shape 16x24x16 --limit 8 -q >/dev/null &&
  "$segqa" contours "$tmp/gt.h5" -o "$tmp/site.h5" --atlas 1 --perturb 1 --near 0 -q >/dev/null ||
  { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
"$py" - "$data" "$tmp" <<'PY'
import sys, nibabel as nib, numpy as np
d, t = sys.argv[1:]
lab = nib.load(f"{d}/labels/hippocampus_004.nii.gz")
nib.save(nib.Nifti1Image((np.asarray(lab.dataobj) > 0).astype(np.uint8), lab.affine), f"{t}/con.nii.gz")
PY
img=$data/images/hippocampus_004.nii.gz
loads() { # CKPT: predict with it works (exit 0 accepted or 3 rejected)
  "$segqa" predict -c "$1" -i "$img" -m "$tmp/con.nii.gz" >/dev/null 2>&1
  local r=$?
  [ $r -eq 0 ] || [ $r -eq 3 ]
}
wait_for() { # FILE SECONDS
  local n=0
  while [ ! -e "$1" ] && [ $n -lt $(($2 * 10)) ]; do sleep 0.1; n=$((n + 1)); done
  [ -e "$1" ]
}
rank_pid() { # PATTERN RANK: pid of the process of that MPI rank whose command line matches
  local p
  for p in $(pgrep -f -- "$1"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}

# ---- 1. SIGKILL of one rank at a random moment --------------------------------------------------
run=$tmp/killed
log=$tmp/killed.log
cmd=("${mpirun[@]}" -np 3 "$segqa" train "$tmp/site.h5" --out "$run" --epochs 8 "${net[@]}")
start=$(date +%s)
"${cmd[@]}" >"$log" 2>&1 &
job=$!
if wait_for "$run/all/last.h5" 60; then
  sleep "0.$((RANDOM % 10))"
  victim=$(rank_pid "train $tmp/site.h5 --out $run" 1)
  [ -n "$victim" ] && kill -KILL "$victim"
fi
( sleep 60; kill -KILL $job 2>/dev/null ) &
guard=$!
wait $job
rc=$?
took=$(( $(date +%s) - start ))
kill $guard 2>/dev/null
if [ -n "${victim:-}" ] && [ $rc -ne 0 ] && [ $took -le 60 ] && grep -Eq "process rank 1 with PID [0-9]+ on node .* exited on signal 9" "$log"; then
  ok "rank 1 killed (pid $victim): job exit $rc after ${took} s, log: $(grep -Eo 'process rank 1 .*signal 9' "$log" | head -1)"
else
  bad "rank kill: victim '${victim:-none}', exit $rc after ${took} s" "$log"
fi
if loads "$run/all/last.h5"; then ok "last.h5 after the kill loads"; else bad "last.h5 after the kill does not load"; fi
"${cmd[@]:0:${#cmd[@]}-1}" >"$log" 2>&1  # without -q: the "resuming from" line
rc=$?
if [ $rc -eq 0 ] && grep -q "resuming from $run/all/last.h5 at step [1-9]" "$log"; then
  ok "the killed run resumes from last.h5 and finishes"
else
  bad "resume after the kill: exit $rc" "$log"
fi

# ---- 2. SIGKILL during a checkpoint write --------------------------------------------------------
run=$tmp/midwrite
log=$tmp/midwrite.log
"$segqa" train "$tmp/site.h5" --out "$run" --epochs 12 "${net[@]}" >"$log" 2>&1 &
job=$!
seen=$("$py" - "$run/all" "$job" <<'PY'
import os, sys, time, signal
d, pid = sys.argv[1], int(sys.argv[2])
end = time.time() + 60
have_last = False
while time.time() < end:
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        continue
    have_last = have_last or "last.h5" in names
    if have_last and any(n.startswith("last.h5.tmp") for n in names):
        os.kill(pid, signal.SIGKILL)
        print("hit")
        break
else:
    os.kill(pid, signal.SIGKILL)
    print("missed")
PY
)
wait $job 2>/dev/null
left=$(ls "$run/all" | grep -c '\.tmp\.' || true)
if [ "$seen" = hit ] && loads "$run/all/last.h5"; then
  ok "killed while last.h5.tmp was being written ($left temp file left): the previous last.h5 loads"
else
  bad "kill during a checkpoint write: window $seen, last.h5 loads: $(loads "$run/all/last.h5" && echo yes || echo no)" "$log"
fi
if "$segqa" train "$tmp/site.h5" --out "$run" --epochs 12 "${net[@]}" >"$log" 2>&1 && loads "$run/all/last.h5" &&
   ! ls "$run/all" | grep -q '\.tmp\.'; then
  ok "that run resumes, removes the dead writer's temp file and finishes"
else
  bad "resume after the mid-write kill" "$log"
fi

# ---- 3. ENOSPC -----------------------------------------------------------------------------------
mkdir -p "$mnt"
log=$tmp/full.log
if mount -t tmpfs -o size=32m tmpfs "$mnt" 2>/dev/null; then
  how="a 32 MB tmpfs"
  "$segqa" train "$tmp/site.h5" --out "$mnt/run" --epochs 4 "${net[@]}" >"$log" 2>&1
  rc=$?
else
  how="a 32 MB file-size limit (EFBIG; mount not permitted)"
  (trap '' XFSZ; ulimit -f 32768; exec "$segqa" train "$tmp/site.h5" --out "$mnt/run" --epochs 4 "${net[@]}") >"$log" 2>&1
  rc=$?
fi
lines=$(grep -c . "$log")
if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && grep -Eq "h5(\.tmp\.[0-9]+)?: .*(No space left|File too large|cannot (write|create|close))" "$log"; then
  ok "disk full on $how: exit $rc, one line: $(cat "$log")"
else
  bad "disk full on $how: exit $rc, $lines lines" "$log"
fi
if loads "$mnt/run/all/best.h5" && loads "$mnt/run/all/last.h5"; then
  ok "the checkpoints written before the disk filled load"
else
  bad "earlier checkpoints on the full disk do not load"
fi
ls "$mnt/run/all" | grep -q '\.tmp\.' && bad "temporary checkpoint left on the full disk" || ok "no temporary file left on the full disk"
mountpoint -q "$mnt" && umount "$mnt"

# ---- 4. NaN / Inf in a step ----------------------------------------------------------------------
cp "$tmp/site.h5" "$tmp/nan.h5"
"$py" -c "
import h5py, numpy as np
with h5py.File('$tmp/nan.h5', 'r+') as f:
    d = f['cases/hippocampus_006/image']; a = d[...]; a[3, 4, 5] = np.nan; d[...] = a"
log=$tmp/nan.log
"$segqa" train "$tmp/nan.h5" --out "$tmp/nan-stop" --epochs 2 "${net[@]}" >"$log" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q "segqa train: .*non-finite loss or gradient (this rank's cases .*hippocampus_006.*--on-nan stop" "$log"; then
  ok "--on-nan stop: exit $rc, the error names hippocampus_006"
else
  bad "--on-nan stop: exit $rc" "$log"
fi
"${mpirun[@]}" -np 2 "$segqa" train "$tmp/nan.h5" --out "$tmp/nan-skip" --epochs 3 --on-nan skip "${net[@]}" >"$log" 2>&1
rc=$?
skipped=$(grep -Eo '[0-9]+ step\(s\) skipped' "$log" | head -1)
if [ $rc -eq 0 ] && [ -n "$skipped" ] && grep -q "not finite .*hippocampus_006" "$log" &&
   "$py" -c "
import csv, math, sys
rows = list(csv.reader(open('$tmp/nan-skip/all/curves.csv')))  # fold,epoch,train_loss,val_mae
sys.exit(0 if len(rows) == 3 and all(math.isfinite(float(r[2])) for r in rows) else 1)" &&
   loads "$tmp/nan-skip/all/last.h5"; then
  ok "--on-nan skip on 2 ranks: $skipped, warnings name hippocampus_006, finite curves, checkpoint loads"
else
  bad "--on-nan skip: exit $rc ($skipped)" "$log"
fi

# ---- 5. the site file overwritten mid-run --------------------------------------------------------
cp "$tmp/site.h5" "$tmp/vanish.h5"
run=$tmp/vanish
log=$tmp/vanish.log
start=$(date +%s)
"${mpirun[@]}" -np 2 "$segqa" train "$tmp/vanish.h5" --out "$run" --epochs 20 --val-every 1 "${net[@]}" >"$log" 2>&1 &
job=$!
# the ranks have opened the file once config.json exists; the loader reads (and caches) each
# case on its first use in epoch 1, so the chunks are overwritten before most are read
size=$(stat -c %s "$tmp/vanish.h5")
wait_for "$run/config.json" 60 &&
  head -c $((size - 8192)) /dev/urandom | dd of="$tmp/vanish.h5" conv=notrunc bs=8192 seek=1 2>/dev/null
( sleep 60; kill -KILL $job 2>/dev/null ) &
guard=$!
wait $job
rc=$?
took=$(( $(date +%s) - start ))
kill $guard 2>/dev/null
if [ $rc -ne 0 ] && [ $took -le 60 ] && grep -Eq "segqa train: rank [0-9]+: .*vanish\.h5: " "$log"; then
  ok "site file overwritten mid-run: exit $rc after ${took} s: $(grep -Eo 'rank [0-9]+: .*vanish\.h5: .*' "$log" | head -1)"
else
  bad "site file overwritten mid-run: exit $rc after ${took} s" "$log"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
