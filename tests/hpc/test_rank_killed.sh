#!/usr/bin/env bash
# test_rank_killed.sh MPIRUN... -- PROG: a rank killed mid-run makes the job exit non-zero within
# 60 s instead of hanging the survivors in a collective.
set -u
start=$(date +%s)
timeout 90 "$@" 0 kill >/tmp/segqa-kill-$$.log 2>&1
rc=$?
took=$(( $(date +%s) - start ))
rm -f /tmp/segqa-kill-$$.log
echo "job exit code $rc after ${took} s"
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $took -le 60 ]; then echo "1 passed, 0 failed"; exit 0; fi
echo "0 passed, 1 failed"; exit 1
