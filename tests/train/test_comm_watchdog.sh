#!/usr/bin/env bash
# test_comm_watchdog.sh SEGQA MPIRUN... — the trainer never hangs on a rank that stops taking part:
# 2 data-parallel ranks train with --comm-timeout 3; once training runs (last.h5 written after the
# first epoch), rank 1 is stopped with SIGSTOP. Rank 0 must end the job through the watchdog
# within the timeout + 20 s: exit 76 and one line naming rank 0, group 0, the collective and the
# step (rank 1 may add its own line when mpirun wakes it to end the job). A control run without the stop finishes with exit 0 under the same timeout.
set -u
segqa=$1
shift
mpirun=("$@")
here=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/segqa-wd-XXXXXX)
mp=""
cleanup() { [ -n "$mp" ] && kill -CONT $(pgrep -P "$mp" 2>/dev/null) 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
. "$(dirname "$0")/../lib.sh"
net=(--fpn-channels 8 --fpn-repeats 1 --threads 1 --workers 1 --no-figures --augment none
     --val-fraction 0 -b 2 -q --comm-timeout 3)

"$segqa" ingest "$here/datasets/msd-hippocampus" -o "$tmp/gt.h5" --shape 16x24x16 --limit 8 -q &&
  "$segqa" contours "$tmp/gt.h5" -o "$tmp/site.h5" --atlas 1 --perturb 1 --near 0 -q ||
  { bad "ingest/contours"; echo "$pass passed, $fail failed"; exit 1; }

# --comm nccl on the CPU backend: one line, usage exit code, before any training
"$segqa" train "$tmp/site.h5" -o "$tmp/bad" --epochs 1 "${net[@]}" --comm nccl >"$tmp/bad.log" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--comm nccl: needs --device cuda (backend is cpu)" "$tmp/bad.log" &&
   [ "$(wc -l < "$tmp/bad.log")" -eq 1 ]; then ok "--comm nccl on the CPU: one line, exit 2"
else bad "--comm nccl on the CPU: exit $rc, $(cat "$tmp/bad.log")"; fi

# round robin (2 ranks, 3 folds): rank 1 has one fold fewer and waits at the end for rank 0's last
# fold, far longer than --comm-timeout 0.3 here; that wait is not a fault (it was: exit 76)
"${mpirun[@]}" -np 2 "$segqa" cv "$tmp/site.h5" -o "$tmp/rr" --folds 3 --epochs 3 "${net[@]}" --comm-timeout 0.3 >"$tmp/rr.log" 2>&1
rc=$?
if [ $rc -eq 0 ] && ! grep -q "comm fault" "$tmp/rr.log"; then ok "W < K round robin: the rank with fewer folds waits past --comm-timeout, exit 0"
else bad "W < K round robin: exit $rc, $(grep -m1 "comm fault" "$tmp/rr.log")"; fi

# control: the same job without a stopped rank completes
"${mpirun[@]}" -np 2 "$segqa" train "$tmp/site.h5" -o "$tmp/ctl" --epochs 2 "${net[@]}" >"$tmp/ctl.log" 2>&1
rc=$?
[ $rc -eq 0 ] && ok "control run exit 0" || { bad "control run exit $rc"; tail -5 "$tmp/ctl.log"; }

"${mpirun[@]}" -np 2 "$segqa" train "$tmp/site.h5" -o "$tmp/run" --epochs 100000 "${net[@]}" >"$tmp/run.log" 2>&1 &
mp=$!
for _ in $(seq 1 600); do [ -f "$tmp/run/all/last.h5" ] && break; sleep 0.1; done
victim=""
for p in $(pgrep -P "$mp"); do
  r=$(tr '\0' '\n' < /proc/$p/environ 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
  [ "$r" = 1 ] && victim=$p
done
if [ -z "$victim" ] || [ ! -f "$tmp/run/all/last.h5" ]; then
  bad "training did not start (victim '$victim')"; kill "$mp" 2>/dev/null; wait "$mp"
  cat "$tmp/run.log"; echo "$pass passed, $fail failed"; exit 1
fi
start=$(date +%s.%N)
kill -STOP "$victim"
( sleep 60; kill -KILL "$mp" 2>/dev/null ) & guard=$!
wait "$mp"
rc=$?
took=$(echo "$(date +%s.%N) - $start" | bc)
kill "$guard" 2>/dev/null
mp=""
echo "--- job output (exit $rc, ${took} s after SIGSTOP):"; cat "$tmp/run.log"; echo "---"
[ $rc -eq 76 ] && ok "exit code 76" || bad "exit code $rc (expected 76)"
[ "$(echo "$took < 23" | bc)" -eq 1 ] && ok "ended ${took} s after the stop (< timeout 3 + 20)" ||
  bad "took ${took} s"
re='^\[?.*segqa: comm fault: rank 0 group 0, (MPI_Iallreduce|ncclAllReduce)[^,]* at step [0-9]+: not complete after 3 s \(--comm-timeout\); aborting the job \(exit 76\)$'
grep -Eq "$re" "$tmp/run.log" && ok "one line names rank 0, group 0, the collective and the step" ||
  bad "no watchdog line"
# rank 0 prints one line; rank 1 may print its own when mpirun wakes it (SIGCONT, then SIGTERM)
# to end the job, since its own deadline passed while it was stopped
n=$(grep -c "comm fault: rank 0 " "$tmp/run.log")
[ "$n" -eq 1 ] && ok "exactly one fault line from rank 0" || bad "$n fault lines from rank 0"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
