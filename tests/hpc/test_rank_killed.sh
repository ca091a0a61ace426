#!/usr/bin/env bash
# test_rank_killed.sh MPIRUN... -- PROG: a rank killed mid-run (the last rank SIGKILLs itself at step
# 50 of a gradient all-reduce loop) makes the job exit non-zero within 60 s instead of hanging the
# survivors in a collective, and the job's log says which rank died and why (Open MPI's "process
# rank 2 ... exited on signal 9"). The log is printed when the check fails.
set -u
log=$(mktemp /tmp/segqa-kill-XXXXXX.log)
trap 'rm -f "$log"' EXIT
np=0
prev=
for a in "$@"; do [ "$prev" = -np ] && np=$a; prev=$a; done
killed=$((np - 1))
start=$(date +%s)
timeout 90 "$@" 0 kill >"$log" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
echo "job exit code $rc after ${took} s"
fail=0
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { echo "FAIL: exit code $rc (124: timed out, the job hung)"; fail=1; }
[ $took -le 60 ] || { echo "FAIL: took ${took} s, expected at most 60"; fail=1; }
if grep -Eq "process rank $killed with PID [0-9]+ on node .* exited on signal 9" "$log"; then
  echo "log names the killed rank: $(grep -Eo "process rank $killed .* exited on signal 9[^.]*" "$log" | head -1)"
else
  echo "FAIL: the log does not say that rank $killed died of signal 9"; fail=1
fi
if [ $fail -ne 0 ]; then echo "---- job log ----"; cat "$log"; echo "0 passed, 1 failed"; exit 1; fi
echo "1 passed, 0 failed"
