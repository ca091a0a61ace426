#!/usr/bin/env bash
# test_slurm.sh MPI_COLLECTIVES — segqa's ranks under a real one-node Slurm (slurmctld + slurmd
# started here by slurm/local-cluster.sh): srun --mpi=pmix launches, a batch job, and the loud
# failure when ranks are started without PMIx (each a world of 1 while SLURM_NTASKS=2).
set -u
prog=$1
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d /tmp/segqa-slurm-XXXXXX)
export SEGQA_SLURMCTLD_PORT=auto # a free block below the ephemeral range (local-cluster.sh)
trap '"$here/slurm/local-cluster.sh" stop "$dir"; rm -rf "$dir"' EXIT
. "$(dirname "$0")/../lib.sh"

if ! "$here/slurm/local-cluster.sh" start "$dir"; then
    echo "0 passed, 1 failed"; exit 1
fi
export SLURM_CONF=$dir/slurm.conf

out=$(timeout 60 srun -n 2 --mpi=pmix "$prog" 2 2>&1)
grep -q "W=2 K=2: [1-9][0-9]* passed, 0 failed" <<<"$out" && ok "srun --mpi=pmix: 2 ranks, 2 fold groups" || { bad "srun pmix"; echo "$out"; }

# run_job NAME SCRIPT-BODY: submit a 2-task batch job, poll scontrol until it ends, echo its state.
run_job() {
    local name=$1 body=$2
    printf '#!/bin/bash\n#SBATCH --ntasks=2\n#SBATCH --output=%s\n%s\n' "$dir/$name.out" "$body" >"$dir/$name.sh"
    local jobid state=
    jobid=$(sbatch --parsable "$dir/$name.sh") || { echo SUBMIT_FAILED; return; }
    for _ in $(seq 600); do
        state=$(scontrol show job "$jobid" 2>/dev/null | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p')
        case $state in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
        sleep 0.1
    done
    echo "$state"
}

state=$(run_job pmix "srun --mpi=pmix $prog 5")
if [ "$state" = COMPLETED ] && grep -q "W=2 K=5: [1-9][0-9]* passed, 0 failed" "$dir/pmix.out"; then
    ok "sbatch --ntasks=2 + srun --mpi=pmix: 5 folds round-robin, COMPLETED"
else
    bad "sbatch pmix job ended $state"; cat "$dir/pmix.out" 2>/dev/null
fi

# A launcher misconfiguration: one MPI rank started in a 2-task allocation must fail loudly.
state=$(run_job mismatch "mpirun --allow-run-as-root -np 1 $prog 0")
if [ "$state" = FAILED ] && grep -q "MPI world size 1 differs from SLURM_NTASKS=2" "$dir/mismatch.out"; then
    ok "1 rank in a 2-task allocation fails loudly (job FAILED)"
else
    bad "launcher mismatch: job ended $state"; cat "$dir/mismatch.out" 2>/dev/null
fi

state=$(run_job mpirun "mpirun --allow-run-as-root $prog 2")
if [ "$state" = COMPLETED ] && grep -q "W=2 K=2: [1-9][0-9]* passed, 0 failed" "$dir/mpirun.out"; then
    ok "mpirun inside the allocation takes its 2 slots from Slurm"
else
    bad "mpirun job ended $state"; cat "$dir/mpirun.out" 2>/dev/null
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
