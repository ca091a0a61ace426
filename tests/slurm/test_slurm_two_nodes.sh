#!/usr/bin/env bash
# test_slurm_two_nodes.sh SEGQA — slurm/train.sbatch on 2 nodes: two slurmd on this machine
# (SEGQA_SLURM_NODES=2 slurm/local-cluster.sh: node1 and node2, each with its own port, spool and
# TmpFS), one rank per node (--nodes=2 --ntasks-per-node=1), data-parallel retraining over two
# synthetic sites that differ in intensity, bias field and resolution. Checks that the job
# completes on both nodes as one world of 2 (not two worlds of 1) and leaves all/best.h5.
set -u
segqa=$1
here=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/segqa-slurm-2n-XXXXXX)
export SEGQA_SLURMCTLD_PORT=auto # a free block below the ephemeral range (local-cluster.sh)
trap '"$here/slurm/local-cluster.sh" stop "$tmp/cluster"; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../lib.sh"
finish() { echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; exit $?; }

"$segqa" synth --sites 2 --cases 6 --shape 16x24x16 -o "$tmp/study.h5" -q >/dev/null || { bad synth; finish; }
SEGQA_SLURM_NODES=2 "$here/slurm/local-cluster.sh" start "$tmp/cluster" || { bad "2-node cluster start"; finish; }
export SLURM_CONF=$tmp/cluster/slurm.conf
[ "$(sinfo -h -N -o %N | sort | tr '\n' ' ')" = "node1 node2 " ] && ok "two slurmd on one machine: node1 and node2 idle" || bad "nodes: $(sinfo -N)"
cd "$tmp" || exit 1
export SEGQA=$segqa SEGQA_RUN_ROOT=$tmp/runs SEGQA_DEVICE=cpu
id=$(sbatch --parsable --nodes=2 --ntasks-per-node=1 "$here/slurm/train.sbatch" --epochs 2 \
    --fpn-channels 8 --fpn-repeats 1 --workers 1 "$tmp/study-site1.h5" "$tmp/study-site2.h5")
state=
for _ in $(seq 1800); do
    state=$(scontrol show job "$id" 2>/dev/null | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p')
    case $state in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL) break ;; esac
    sleep 0.1
done
log=segqa-train_$id.out
nodes=$(scontrol show job "$id" | sed -nE 's/^ *NodeList=([^ ]+).*/\1/p')
if [ "$state" = COMPLETED ] && [ "$nodes" = "node[1-2]" ] && grep -q "2 site file(s), 12 cases.*2 rank(s), training on all data" "$log" &&
    [ -s "$tmp/runs/train-$id/all/best.h5" ] && [ -s "$tmp/runs/train-$id/all/last.h5" ]; then
    ok "train.sbatch --nodes=2 --ntasks-per-node=1: one world of 2 ranks on $nodes, all/best.h5 written"
else
    bad "train.sbatch: state $state on '$nodes'"; tail -20 "$log"
fi
finish
