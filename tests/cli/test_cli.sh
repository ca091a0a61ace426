#!/usr/bin/env bash
# test_cli.sh SEGQA — the command-line contract: help, version, exit codes, one-line errors,
# --config JSON underneath the command line. Usage: test_cli.sh path/to/segqa
set -u
SEGQA=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

# expect NAME RC PATTERN -- command...: exit code RC and PATTERN (grep -E) in stdout+stderr.
expect() {
    local name=$1 rc=$2 pat=$3
    shift 4
    "$@" >"$tmp/out" 2>"$tmp/err"
    local got=$?
    if [ "$got" -ne "$rc" ]; then
        echo "FAIL $name: exit $got, expected $rc"; cat "$tmp/out" "$tmp/err"; fail=$((fail + 1)); return
    fi
    if [ -n "$pat" ] && ! cat "$tmp/out" "$tmp/err" | grep -Eq -- "$pat"; then
        echo "FAIL $name: output lacks /$pat/"; cat "$tmp/out" "$tmp/err"; fail=$((fail + 1)); return
    fi
    echo "ok   $name"
    pass=$((pass + 1))
}

# errors are exactly one line on stderr and nothing on stdout
one_line_error() {
    local name=$1
    if [ "$(wc -l <"$tmp/err")" -ne 1 ] || [ -s "$tmp/out" ]; then
        echo "FAIL $name: expected one stderr line and empty stdout"; cat "$tmp/out" "$tmp/err"
        fail=$((fail + 1)); return
    fi
    echo "ok   $name (one line)"
    pass=$((pass + 1))
}

expect version 0 '^segqa [0-9]+\.[0-9]+\.[0-9]+ \(git [0-9a-f]{7,}|^segqa [0-9.]+ \(git unknown' -- "$SEGQA" --version
expect version-features 0 '^mpi: +compiled in \(Open MPI' -- "$SEGQA" --version
expect version-cuda 0 '^cuda: +(compiled in \(CUDA runtime [0-9.]+, cuDNN [0-9.]+, NCCL [0-9.]+|not compiled in)' -- "$SEGQA" --version
expect version-cmd 0 '^cpu: +oneDNN 2\.' -- "$SEGQA" version
expect help 0 'commands:' -- "$SEGQA" --help
expect help-lists-check 0 '^  check ' -- "$SEGQA" --help
expect no-args 2 'usage: segqa' -- "$SEGQA"
expect unknown-command 2 "^segqa: unknown command 'frobnicate' \(see segqa --help\)$" -- "$SEGQA" frobnicate
one_line_error unknown-command
expect unknown-global-option 2 "unknown option '--bogus'" -- "$SEGQA" --bogus
one_line_error unknown-global-option
expect unknown-option 2 "^segqa check: unknown option '--bogus' \(see segqa check --help\)$" -- "$SEGQA" check --bogus
one_line_error unknown-option
expect unknown-short-option 2 "unknown option '-Z'" -- "$SEGQA" check -Z
expect missing-value 2 "option '--data' needs a value" -- "$SEGQA" check --data
one_line_error missing-value
expect extra-argument 2 "unexpected argument 'extra'" -- "$SEGQA" check extra
expect cmd-help 0 '--config FILE.json' -- "$SEGQA" check --help
expect help-cmd 0 'usage: segqa check' -- "$SEGQA" help check
expect help-unknown 2 "unknown command 'nope'" -- "$SEGQA" help nope
expect bench-unknown 2 "unknown benchmark 'nope'" -- "$SEGQA" bench nope
# --device: where there is no GPU (every CI machine), cuda fails with one line, auto falls back
expect device-bogus 2 "device" -- "$SEGQA" bench ops --device tpu
one_line_error device-bogus
expect device-cuda-no-gpu 1 "^segqa bench ops: --device cuda: (no usable GPU \(.+\)|this segqa was built without the CUDA backend)" -- "$SEGQA" bench ops --device cuda
one_line_error device-cuda-no-gpu
expect device-help 0 "--device DEV" -- "$SEGQA" train --help

echo '{"data": "/nonexistent/segqa-data"}' >"$tmp/cfg.json"
expect config-applies 1 'FAIL +/nonexistent/segqa-data/MANIFEST.tsv: cannot open' -- "$SEGQA" check --config "$tmp/cfg.json"
data_dir=$(cd "$(dirname "$0")/../../datasets/msd-hippocampus" && pwd)
expect cmdline-overrides-config 0 '208 image/label pairs' -- "$SEGQA" check --config "$tmp/cfg.json" --data "$data_dir"
expect config-equals-form 1 'FAIL' -- "$SEGQA" check --config="$tmp/cfg.json"
expect config-missing 2 "^segqa check: $tmp/none.json: cannot open: No such file or directory$" -- "$SEGQA" check --config "$tmp/none.json"
one_line_error config-missing
echo '{"dta": "x"}' >"$tmp/typo.json"
expect config-unknown-key 2 "typo.json: unknown key 'dta' \(did you mean 'data'\?\)" -- "$SEGQA" check --config "$tmp/typo.json"
one_line_error config-unknown-key
echo '{"data": 3}' >"$tmp/type.json"
expect config-wrong-type 2 "type.json: key 'data' must be a string, found number" -- "$SEGQA" check --config "$tmp/type.json"
printf '{"data": \n' >"$tmp/mal.json"
expect config-malformed 2 "mal.json:2:1: malformed JSON" -- "$SEGQA" check --config "$tmp/mal.json"
one_line_error config-malformed
expect config-no-arg 2 "needs a FILE.json" -- "$SEGQA" check --config
expect check-runs 0 'all checks passed' -- "$SEGQA" check --data "$data_dir"
expect check-rng 0 '^rng +PASS' -- "$SEGQA" check --data "$data_dir"
expect quiet-flag 0 'all checks passed' -- "$SEGQA" check -q --data "$data_dir"

# bench train --loader: the loader-fed step against synthetic input, one row per worker count
# (speed is not asserted here: the ratio is the benchmark's figure); --device cuda without a GPU
# says so and exits 77 (skipped).
expect bench-loader-cpu 0 '^\| 1 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$' -- "$SEGQA" bench train --loader --shape 16x24x16 --spacing 2x1x1 --steps 2 --warmup 1 --workers 1 --threads 1
cp "$tmp/out" "$tmp/loader.out"
expect bench-loader-cpu-verdict 0 'within 10 %: (met|NOT met) with' -- cat "$tmp/loader.out"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    expect bench-loader-cuda-no-gpu 77 '^SKIPPED: --device cuda: no usable GPU on this machine \(.+\); nothing measured' -- "$SEGQA" bench train --loader --device cuda --steps 1
fi
expect bench-loader-infer 2 '--loader is an option of bench train' -- "$SEGQA" bench infer --loader

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
