#!/usr/bin/env bash
# test_watchdog.sh MODE TIMEOUT NP PROG MPIRUN...: one rank stops (SIGSTOP on itself) before the
# collective MODE names; the job must end within TIMEOUT + 20 s with exit 76 (SQ_EXIT_COMM_FAULT)
# and a watchdog line naming rank, group, the collective and step 5.
set -u
mode=$1 timeout_s=$2 np=$3 prog=$4; shift 4
log=$(mktemp /tmp/segqa-watchdog-XXXXXX.log)
start=$(date +%s.%N)
timeout 120 "$@" -np "$np" "$prog" "$mode" "$timeout_s" >"$log" 2>&1
rc=$?
took=$(echo "$(date +%s.%N) - $start" | bc)
echo "--- job output (exit $rc after ${took} s):"; cat "$log"; echo "---"
pass=0 fail=0
ok() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
case $mode in
  grad) coll="MPI_Iallreduce of [0-9]+ gradient buckets \([0-9]+ floats\)" ;;
  bn) coll="MPI_Iallreduce of synchronised-BN sums" ;;
  stop) coll="MPI_Iallreduce of the stop flag" ;;
esac
ok "exit code 76 (got $rc)" '[ "$rc" -eq 76 ]'
ok "ended within ${timeout_s} + 20 s (took $took)" "[ \$(echo \"$took < $timeout_s + 20\" | bc) -eq 1 ]"
ok "not before the timeout" "[ \$(echo \"$took >= $timeout_s\" | bc) -eq 1 ]"
ok "fault line names rank, group, collective and step" \
  "grep -Eq '^segqa: comm fault: rank [0-9]+ group 0, $coll at step 5: not complete after $timeout_s s \(--comm-timeout\); aborting the job \(exit 76\)$' '$log'"
ok "the stopped rank ($((np - 1))) is not the one reporting" "! grep -q 'comm fault: rank $((np - 1)) ' '$log'"
n=$(grep -c 'comm fault:' "$log")
ok "one line per reporting rank (got $n for $((np - 1)) survivors)" "[ $n -ge 1 ] && [ $n -le $((np - 1)) ]"
rm -f "$log"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
