# tests/lib.sh — what the shell tests share: pass/fail counters, ok/bad, and finish.
# Source it near the top of a test script: . "$(dirname "$0")/../lib.sh"
#   ok NAME        count and print a passed check
#   bad NAME       count and print a failed check (a script may redefine bad to show more)
#   finish         print "P passed, F failed" (ctest's PASS_REGULAR_EXPRESSION looks for it) and
#                  return non-zero when any check failed
#   test_tmpdir N  set tmp to a fresh /tmp/segqa-N-XXXXXX, removed at exit; with SEGQA_TEST_KEEP=DIR
#                  tmp is DIR instead (created, kept), to look at a failing run's files
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
test_tmpdir() {
  tmp=${SEGQA_TEST_KEEP:-$(mktemp -d "/tmp/segqa-$1-XXXXXX")}
  mkdir -p "$tmp"
  [ -n "${SEGQA_TEST_KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
}
