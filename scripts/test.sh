#!/usr/bin/env bash
# test.sh — README's test command: install packages, then build twice and run the whole ctest suite
# on both builds:
#   build/       warnings as errors, CUDA backend compiled when nvcc is found (SEGQA_CUDA=ON forces it)
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer, CPU only
#   build-fuzz/  clang + libFuzzer: each fuzz target (NIfTI, site file, checkpoint, JSON config, CSV)
#                runs SEGQA_FUZZ_SECONDS (default 20) s on real seeds (tests/fuzz/run.sh)
# Exits non-zero on the first failure. SEGQA_TEST_ONLY=normal|asan|fuzz runs one of them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
"$here/scripts/setup.sh" --deps

jobs=$(nproc)
only=${SEGQA_TEST_ONLY:-all}
t0=$(date +%s)

if [ "$only" = all ] || [ "$only" = normal ]; then
  echo "== normal build (warnings are errors, CUDA=${SEGQA_CUDA:-AUTO})"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEGQA_WERROR=ON -DSEGQA_CUDA="${SEGQA_CUDA:-AUTO}"
  cmake --build build -j"$jobs"
  if grep -q '^SEGQA_HAVE_CUDA:INTERNAL=ON' build/CMakeCache.txt 2>/dev/null || [ -f build/cuda/libsegqa_cuda.a ]; then
    echo "== CUDA backend compiled and linked: $(ls build/cuda/libsegqa_cuda.a)"
  fi
  (cd build && ctest --output-on-failure -j"$jobs" --timeout 900)
fi

if [ "$only" = all ] || [ "$only" = asan ]; then
  echo "== sanitizer build (address,undefined)"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSEGQA_WERROR=ON -DSEGQA_CUDA=OFF \
        -DSEGQA_SANITIZE=address,undefined
  cmake --build build-asan -j"$jobs"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/tests/sanitizer/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  (cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 900)
fi
if [ "$only" = all ] || [ "$only" = fuzz ]; then
  echo "== fuzzing (libFuzzer + ASan/UBSan, ${SEGQA_FUZZ_SECONDS:-20} s per target)"
  SEGQA_BIN=$here/build/src/cli/segqa "$here/tests/fuzz/run.sh" "${SEGQA_FUZZ_SECONDS:-20}"
fi
echo "== all tests passed in $(( $(date +%s) - t0 )) s"
