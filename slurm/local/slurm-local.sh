#!/usr/bin/env bash
# slurm-local.sh — a real one-node Slurm (slurmctld + slurmd on localhost) for tests and demos.
#   slurm-local.sh start DIR    write DIR/slurm.conf, start both daemons, wait until the node is idle
#   slurm-local.sh stop DIR     stop the daemons started in DIR
# Then use the cluster with: export SLURM_CONF=DIR/slurm.conf; sbatch/srun/squeue as usual.
# Facts this relies on (../shared/TOOLCHAIN.md): Slurm 22.05 runs as root with auth/none and
# cred/none (no munge), cons_tres with CR_Core, MpiDefault=pmix, EnforcePartLimits=ALL.
set -euo pipefail
cmd=${1:?usage: slurm-local.sh start|stop DIR}
dir=${2:?usage: slurm-local.sh start|stop DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf

stop() {
    for d in slurmd slurmctld; do
        if [ -f "$dir/$d.pid" ]; then
            pid=$(cat "$dir/$d.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$dir/$d.pid"
        fi
    done
}

case $cmd in
stop) stop; exit 0 ;;
start) ;;
*) echo "slurm-local.sh: unknown command '$cmd' (expected start or stop)" >&2; exit 2 ;;
esac

for b in slurmctld slurmd sinfo; do
    command -v "$b" >/dev/null || { echo "slurm-local.sh: $b not found (apt-get install slurm-wlm)" >&2; exit 1; }
done
# The node line as slurmd sees this machine, renamed to localhost.
node=$(slurmd -C | head -n1 | sed -E 's/^NodeName=[^ ]+/NodeName=localhost/')
cpus=$(sed -E 's/.*CPUs=([0-9]+).*/\1/' <<<"$node")
mkdir -p "$dir/state" "$dir/spool"
cat >"$conf" <<CONF
ClusterName=segqa-local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/none
CredType=cred/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=pmix
SchedulerParameters=batch_sched_delay=0
EnforcePartLimits=ALL
ReturnToService=2
SlurmctldPort=${SEGQA_SLURMCTLD_PORT:-16817}
SlurmdPort=${SEGQA_SLURMD_PORT:-16818}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
KillWait=5
$node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF

stop
export SLURM_CONF=$conf
slurmctld -c -f "$conf"
slurmd -N localhost -f "$conf"
for _ in $(seq 100); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
    if [ "$state" = idle ]; then
        echo "slurm-local: localhost idle with $cpus CPUs (SLURM_CONF=$conf)"
        exit 0
    fi
    sleep 0.1
done
echo "slurm-local.sh: node did not become idle (state '${state:-none}'); see $dir/slurmctld.log and $dir/slurmd.log" >&2
stop
exit 1
