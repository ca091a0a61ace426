#!/usr/bin/env bash
# test_slurm_jobs.sh SEGQA — slurm/cv.sbatch and slurm/sweep.sbatch on a real one-node Slurm
# (slurm/local-cluster.sh, started and stopped here) with the bundled data at 16x24x16:
#   * a 2-task CV job finishes with complete metrics (test folds and validation);
#   * a 3-task array sweep (one task made to fail) and `segqa report --sweep` ranking the two that
#     finished on validation MAE, the failed one marked, CSV + Markdown + PNG;
#   * a job requeued while running (`scontrol requeue`) resumes from its checkpoint and ends with
#     the same parameters as an uninterrupted run;
#   * USR1 to the batch shell (what --signal=B:USR1@120 sends) is forwarded, segqa exits 75, the
#     script requeues itself and the requeued job completes;
#   * an oversized request fails at submission instead of pending;
#   * the MPI world must match SLURM_NTASKS: segqa cv as 1 rank in a 2-task job fails loudly.
set -u
segqa=$1
here=$(cd "$(dirname "$0")/../.." && pwd)
data=$here/datasets/msd-hippocampus
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/segqa-slurm-jobs-XXXXXX)
export SEGQA_SLURMCTLD_PORT=auto # a free block below the ephemeral range (local-cluster.sh)
trap '"$here/slurm/local-cluster.sh" stop "$tmp/cluster"; rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { echo "ok   $1 [$(date +%T)]"; pass=$((pass + 1)); }
bad() { echo "FAIL $1 [$(date +%T)]"; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; exit $?; }

"$segqa" ingest "$data" -o "$tmp/gt.h5" --shape 16x24x16 --limit 8 -q &&
    "$segqa" contours "$tmp/gt.h5" -o "$tmp/site.h5" --atlas 1 --perturb 1 --near 0 -q || { bad "data"; finish; }
"$here/slurm/local-cluster.sh" start "$tmp/cluster" || { bad "cluster start"; finish; }
export SLURM_CONF=$tmp/cluster/slurm.conf
export SEGQA=$segqa SEGQA_RUN_ROOT=$tmp/runs SEGQA_DEVICE=cpu
net=(--folds 2 --fpn-channels 8 --fpn-repeats 1 --workers 1 --no-figures --val-every 1 --val-fraction 0.25)
cd "$tmp" || exit 1

job_state() { scontrol show job "$1" 2>/dev/null | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p' | head -n1; }
# wait_job ID [SECONDS]: poll scontrol until the job has ended; echo its final state. A requeued
# job is held cred_expire + 1 s (local-cluster.sh: 6 s) before it starts again.
wait_job() {
    local s=
    for _ in $(seq $((${2:-240} * 10))); do
        s=$(job_state "$1")
        case $s in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) break ;; esac
        sleep 0.1
    done
    echo "$s"
}

# --- a 2-task CV job ---------------------------------------------------------------------------
id=$(sbatch --parsable --ntasks=2 "$here/slurm/cv.sbatch" "${net[@]}" --epochs 2 "$tmp/site.h5")
state=$(wait_job "$id")
if [ "$state" = COMPLETED ] && "$py" - "$tmp/runs/cv-$id" <<'PY'; then
import json, sys
m = json.load(open(f"{sys.argv[1]}/metrics.json"))
s = m["summary"]["real_contours"]["segqa"]
v = m["validation"]
assert s["n"] == 16 and 0 <= s["mae"] <= 1, s
assert len(m["per_fold"]) == 2 and len(v["per_fold"]) == 2, m["per_fold"]
assert all(f["best_val_mae"] is not None for f in v["per_fold"]), v
assert v["mean_best_val_mae"] > 0, v
for c in ("empty", "noise", "all-ones", "shifted-gt", "gt"):
    assert m["summary"]["by_category"][c]["segqa"]["n"] == 8, c
PY
    ok "cv.sbatch, 2 tasks: COMPLETED, run folder cv-<job id> with complete metrics (test + validation)"
else
    bad "cv.sbatch job $id ended $state"; tail -20 "segqa-cv_$id.out"
fi
[ -s "segqa-cv_$id.out" ] && grep -q "2 task(s)" "segqa-cv_$id.out" && ok "output named %x_%j (segqa-cv_$id.out)" || bad "output file segqa-cv_$id.out"

# --- an oversized request fails at submission --------------------------------------------------
out=$(sbatch --parsable --ntasks=64 "$here/slurm/cv.sbatch" "$tmp/site.h5" 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -qi "submission failed" <<<"$out" && [ -z "$(squeue -h)" ]; then
    ok "64 tasks on a 2-CPU cluster: refused at submission ($out)"
else
    bad "oversized request: exit $rc, '$out', queue: $(squeue -h)"
fi

# --- the start-up check through sbatch: one rank in a 2-task allocation is a world of 1 --------
# (srun --mpi=none is refused by Open MPI itself inside MPI_Init, before segqa's check)
id=$(sbatch --parsable --ntasks=2 -o "$tmp/nopmix.out" --wrap "mpirun --allow-run-as-root -np 1 $segqa cv ${net[*]} --epochs 1 --out $tmp/nopmix $tmp/site.h5")
state=$(wait_job "$id")
if [ "$state" = FAILED ] && grep -q "MPI world size 1 differs from SLURM_NTASKS=2" "$tmp/nopmix.out" && [ ! -e "$tmp/nopmix/fold-0" ]; then
    ok "mpirun -np 1 in a 2-task job: segqa refuses to start (world 1 vs SLURM_NTASKS=2), job FAILED"
else
    bad "world-size check: state $state"; tail -5 "$tmp/nopmix.out"
fi

# --- a 3-task array sweep, one task failing on purpose -----------------------------------------
echo '{"lr": [0.002, 0.005, 0.01]}' >spec.json
"$segqa" sweep --grid spec.json -o sweep.txt >/dev/null || bad "segqa sweep --grid"
sed -i '2s/$/ --fpn-channels 2/' sweep.txt # below the option's minimum: task 1 fails at once
export SEGQA_SWEEP_DIR=$tmp/sweep
id=$(sbatch --parsable --array=0-2%2 "$here/slurm/sweep.sbatch" sweep.txt "${net[@]}" --epochs 1 --no-failures "$tmp/site.h5")
states=
for t in 0 1 2; do states="$states $(wait_job "${id}_$t")"; done
unset SEGQA_SWEEP_DIR
"$segqa" report --sweep "$tmp/sweep" >report.log 2>&1
rc=$?
sed 's/^/    /' report.log # the test sweep's report, for the log
if [ "$states" = " COMPLETED FAILED COMPLETED" ] && [ $rc -eq 1 ] && [ -s "$tmp/sweep/sweep-report.png" ] &&
    "$py" - "$tmp/sweep" <<'PY'; then
import csv, json, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/sweep-report.csv")))
assert [r["task"] for r in rows][2] == "1", rows
ranked = [r for r in rows if r["rank"]]
assert [r["rank"] for r in ranked] == ["1", "2"], rows
assert sorted(r["task"] for r in ranked) == ["0", "2"], rows
vals = [float(r["val_mae"]) for r in ranked]
assert vals == sorted(vals), vals
for r in ranked:
    t = json.load(open(f"{d}/task-{r['task']}/metrics.json"))
    assert abs(t["validation"]["mean_best_val_mae"] - float(r["val_mae"])) < 1e-4, r
assert rows[2]["state"] == "failed" and "exit 2" in rows[2]["detail"], rows[2]
assert {r["lr"] for r in rows} == {"0.002", "0.005", "0.01"}, rows
md = open(f"{d}/sweep-report.md").read()
assert "Ranked by **val_mae**" in md and "validation patients" in md and "not used to choose" in md
PY
    ok "sweep array (%2 throttle): report --sweep ranks the 2 finished tasks on val MAE, task 1 marked failed, CSV + MD + PNG"
else
    bad "sweep: states$states, report exit $rc"; cat report.log; tail -5 segqa-sweep_"${id}"_1.out
fi
"$segqa" report --sweep "$tmp/sweep" --metric test_mae --no-figure 2>&1 | grep -q "WARNING: ranked by test_mae, a TEST-fold number" &&
    ok "ranking on test folds is flagged in the report" || bad "test-fold ranking not flagged"
[ -s "segqa-sweep_${id}_0.out" ] && ok "array output named %x_%A_%a" || bad "no segqa-sweep_${id}_0.out"

# --- requeued while running: resumes from its checkpoint, ends equal to an uninterrupted run ---
long=("${net[@]}" --epochs 6 --no-failures)
"$segqa" cv "${long[@]}" --threads 1 --device cpu --out "$tmp/ref" "$tmp/site.h5" >ref.log 2>&1 || bad "reference run"
id=$(sbatch --parsable --ntasks=1 "$here/slurm/cv.sbatch" "${long[@]}" "$tmp/site.h5")
run=$tmp/runs/cv-$id
for _ in $(seq 1200); do [ -s "$run/fold-0/curves.csv" ] && break; sleep 0.05; done
scontrol requeue "$id"
state=$(wait_job "$id")
restarts=$(scontrol show job "$id" | sed -nE 's/.*Restarts=([0-9]+).*/\1/p')
if [ "$state" = COMPLETED ] && [ "${restarts:-0}" -ge 1 ] && grep -q "resuming from" "segqa-cv_$id.out"; then
    ok "scontrol requeue while running: job restarted ($restarts), resumed from its checkpoint, COMPLETED"
else
    bad "requeue: state $state, restarts ${restarts:-?}"; tail -20 "segqa-cv_$id.out"
fi
if "$py" - "$tmp/ref" "$run" <<'PY'; then
import h5py, numpy as np, sys
for fold in (0, 1):
    with h5py.File(f"{sys.argv[1]}/fold-{fold}/last.h5") as a, h5py.File(f"{sys.argv[2]}/fold-{fold}/last.h5") as b:
        assert a.attrs["step"] == b.attrs["step"]
        for grp in ("params", "buffers", "optim/m", "optim/v"):
            for name in a[grp]:
                assert np.array_equal(a[grp][name][()], b[grp][name][()]), f"fold {fold} {grp}/{name}"
PY
    ok "the requeued job's final parameters equal the uninterrupted run's (bitwise)"
else
    bad "requeued run differs from the uninterrupted one"
fi

# --- USR1 to the batch shell: forwarded, exit 75, the script requeues itself -------------------
id=$(sbatch --parsable --ntasks=1 "$here/slurm/cv.sbatch" "${long[@]}" "$tmp/site.h5")
run=$tmp/runs/cv-$id
for _ in $(seq 1200); do [ -s "$run/fold-0/curves.csv" ] && break; sleep 0.05; done
scancel --batch --signal=USR1 "$id"
state=$(wait_job "$id")
log=segqa-cv_$id.out
if [ "$state" = COMPLETED ] && grep -q "USR1 at" "$log" && grep -q "stopped after step" "$log" &&
    grep -q "requeue $id (restart 1 of 3)" "$log" && grep -q "restart 1, run folder" "$log" &&
    grep -q "resuming from" "$log" && [ -s "$run/metrics.json" ]; then
    ok "USR1 (--signal=B:USR1) forwarded to the step: checkpoint, exit 75, self-requeue, resumed, COMPLETED"
else
    bad "USR1 requeue: state $state"; tail -20 "$log"
fi
finish
