#!/usr/bin/env bash
# test_bn_freeze.sh SEGQA PYTHON — `--bn-freeze-epochs N`: the last N epochs train with BatchNorm
# on its running statistics (eval-mode BN in forward and backward), which stay as they are.
#   * 2 epochs with the last one frozen end with exactly the BN running statistics of the same
#     run stopped after 1 epoch, while the parameters moved on (the frozen epoch trained);
#   * the control: 2 epochs without freezing end with other running statistics, so the
#     comparison above can fail;
#   * all epochs frozen: the running statistics stay at their initial values (mean 0, var 1);
#   * the recipes set it (demo 1 epoch, reference 2) and a value beside a recipe overrides it.
set -u
segqa=$1
py=${2:-/usr/bin/python3}
. "$(dirname "$0")/../lib.sh"
test_tmpdir bnfreeze
cd "$tmp" || exit 1

"$segqa" synth -o site.h5 -n 6 --shape 8x24x24 --seed 3 >synth.log 2>&1 || { bad "synth"; cat synth.log; }
run() { # run OUT EPOCHS FREEZE
    "$segqa" train site.h5 --epochs "$2" --bn-freeze-epochs "$3" --batch 2 --lr 0.01 \
        --decay-epoch 100 --val-fraction 0 --no-failures --no-figures --threads 2 --workers 1 \
        --seed 9 -o "$1" >"$1.log" 2>&1 && [ -f "$1/all/last.h5" ]
}
run e1 1 0 && run e2f1 2 1 && run e2 2 0 && run e2f2 2 2 && ok "train with --bn-freeze-epochs 0, 1, 2" ||
    { bad "train runs"; tail -3 ./*.log; }

compare() { # compare A B WHAT -> exit 0 if the WHAT ("buffers" or "params") are bit-identical
    "$py" - "$1" "$2" "$3" <<'PY'
import h5py, numpy as np, sys
a, b = h5py.File(sys.argv[1], "r")[sys.argv[3]], h5py.File(sys.argv[2], "r")[sys.argv[3]]
sys.exit(0 if all(np.array_equal(a[k], b[k]) for k in a) else 1)
PY
}
if compare e1/all/last.h5 e2f1/all/last.h5 buffers; then ok "frozen 2nd epoch: running statistics = after epoch 1"; else bad "frozen epoch moved the running statistics"; fi
if ! compare e1/all/last.h5 e2f1/all/last.h5 params; then ok "frozen 2nd epoch: parameters trained on"; else bad "frozen epoch did not train"; fi
if ! compare e1/all/last.h5 e2/all/last.h5 buffers; then ok "control: an unfrozen 2nd epoch moves the running statistics"; else bad "control: statistics unchanged without freezing"; fi
if "$py" - e2f2/all/last.h5 <<'PY'
import h5py, numpy as np, sys
b = h5py.File(sys.argv[1], "r")["buffers"]
means = [k for k in b if k.endswith("running_mean")]
vars_ = [k for k in b if k.endswith("running_var")]
assert means and vars_
assert all(np.all(np.array(b[k]) == 0) for k in means)
assert all(np.all(np.array(b[k]) == 1) for k in vars_)
PY
then ok "all epochs frozen: running statistics at their initial values"; else bad "all frozen: statistics moved"; fi

# the recipes and an override beside them, as config.json records the resolved options
"$segqa" train site.h5 --recipe demo --epochs 1 --val-fraction 0 --no-failures --no-figures \
    --threads 2 --workers 1 -o rd >rd.log 2>&1
"$segqa" train site.h5 --recipe reference --bn-freeze-epochs 0 --epochs 1 --val-fraction 0 \
    --no-failures --no-figures --threads 2 --workers 1 -o rr >rr.log 2>&1
if "$py" - rd/config.json rr/config.json <<'PY'
import json, sys
d, r = (json.load(open(p)) for p in sys.argv[1:3])
assert d["bn-freeze-epochs"] == 1, d.get("bn-freeze-epochs")
assert r["bn-freeze-epochs"] == 0, r.get("bn-freeze-epochs")
PY
then ok "recipe demo sets 1, an option beside recipe reference overrides its 2"; else bad "recipe values"; tail -3 rd.log rr.log; fi
finish
