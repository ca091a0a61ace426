#!/usr/bin/env bash
# expect_fail.sh PATTERN CMD...: passes when CMD exits non-zero by itself (not by a signal or a
# crash: exit codes 128 and up fail) and its output matches the extended regex PATTERN.
set -u
pattern=$1
shift
out=$("$@" 2>&1)
rc=$?
echo "$out"
echo "exit code $rc"
[ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -Eq -- "$pattern" <<<"$out"
