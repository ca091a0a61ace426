#!/usr/bin/env bash
# local-cluster.sh — a real one-node Slurm (slurmctld + slurmd on localhost) for tests and demos.
#   local-cluster.sh start [DIR]    write DIR/slurm.conf, start both daemons, wait until the node is idle
#   local-cluster.sh stop [DIR]     stop the daemons started in DIR (by the PIDs they wrote there)
#   local-cluster.sh status [DIR]   print each daemon's PID and the node state; exit 0 when up
# DIR defaults to $SEGQA_SLURM_DIR, else /tmp/segqa-slurm. Then use the cluster with
#   export SLURM_CONF=DIR/slurm.conf; sbatch/srun/squeue as usual.
# Ports: SEGQA_SLURMCTLD_PORT / SEGQA_SLURMD_PORT (default 16817/16818). SEGQA_SLURMCTLD_PORT=auto
# picks a block no socket uses, in [10000, 32000), below the kernel's ephemeral range (32768+, where
# any client connection of a parallel test may hold a port), and retries start on a new block if a
# daemon does not come up; the tests use auto so that clusters can run side by side. Facts this relies on (../shared/TOOLCHAIN.md): Slurm 22.05 runs as
# root with auth/none and cred/none (no munge), cons_tres with CR_Core, MpiDefault=pmix,
# EnforcePartLimits=ALL (an oversized request fails at submission instead of pending forever).
# Requeue: slurmd refuses to relaunch a job whose credential it revoked until the credential
# expires, and slurmctld holds a requeued job for cred_expire + 1 s for that reason (default 120:
# two minutes); cred_expire=5 with a 1 s scheduler interval restarts a requeued job in ~6 s.
# SEGQA_SLURM_NODES=N (default 1) starts N slurmd on this machine as nodes node1..nodeN (each with
# its own port, spool, pid file and TmpFS: PMIx puts its per-step folder under TmpFS, and two
# stepds of one step on one machine collide on a shared /tmp), the CPUs split between them.
set -euo pipefail
cmd=${1:?usage: local-cluster.sh start|stop|status [DIR]}
dir=${2:-${SEGQA_SLURM_DIR:-/tmp/segqa-slurm}}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf

nodes=${SEGQA_SLURM_NODES:-1}
daemons() { # slurmd first so that stop ends the nodes before the controller
    local i
    if [ -f "$dir/nodes" ]; then nodes=$(cat "$dir/nodes"); fi
    if [ "$nodes" -le 1 ]; then echo slurmd; else for i in $(seq "$nodes"); do echo "slurmd-node$i"; done; fi
    echo slurmctld
}

daemon_pid() { # NAME: the PID from its pid file when that process is alive
    local f=$dir/$1.pid pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

stop() {
    local d pid
    for d in $(daemons); do
        if pid=$(daemon_pid $d); then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$dir/$d.pid"
    done
}

status() {
    local up=0 d pid
    for d in $(daemons); do
        if pid=$(daemon_pid $d); then echo "$d: running, pid $pid"; else echo "$d: not running"; up=1; fi
    done
    if [ $up -eq 0 ]; then
        SLURM_CONF=$conf sinfo -h -N -o 'node %N: %T, %c CPUs' 2>/dev/null || echo "nodes: unreachable"
        echo "SLURM_CONF=$conf"
    fi
    return $up
}

node_lines() { # the NodeName and PartitionName lines
    local hw cpus per i port=$slurmd_port
    hw=$(slurmd -C | head -n1)
    if [ "$nodes" -le 1 ]; then # the node line as slurmd sees this machine, renamed to localhost
        echo "$(sed -E 's/^NodeName=[^ ]+/NodeName=localhost/; s/ UpTime=.*//' <<<"$hw") State=UNKNOWN"
        echo "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
        return
    fi
    cpus=$(sed -E 's/.*CPUs=([0-9]+).*/\1/' <<<"$hw")
    per=$((cpus / nodes > 0 ? cpus / nodes : 1))
    for i in $(seq "$nodes"); do
        echo "NodeName=node$i NodeHostname=localhost Port=$((port + i)) CPUs=$per State=UNKNOWN"
        mkdir -p "$dir/spool/node$i" "$dir/tmp/node$i"
    done
    echo "PartitionName=debug Nodes=node[1-$nodes] Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
}

write_conf() {
    local n=%n
    [ "$nodes" -le 1 ] && n=
    mkdir -p "$dir/state" "$dir/spool" "$dir/tmp"
    echo "$nodes" >"$dir/nodes"
    cat >"$conf" <<CONF
ClusterName=segqa-local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/none
AuthInfo=cred_expire=5
CredType=cred/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=pmix
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
MailProg=/bin/true
EnforcePartLimits=ALL
ReturnToService=2
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool${n:+/$n}
TmpFS=$dir/tmp${n:+/$n}
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd${n:+-$n}.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd${n:+-$n}.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
KillWait=10
MaxArraySize=1001
$(node_lines)
CONF
}

used_ports() { # every local TCP port some socket holds, one per line
    if command -v ss >/dev/null; then
        ss -Htan | awk '{n = split($4, a, ":"); print a[n]}'
    else # /proc/net/tcp*: local address is hex ADDR:PORT in the second column (no gawk needed)
        local hex
        for hex in $(awk 'FNR > 1 {n = split($2, a, ":"); print a[n]}' /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
            echo $((16#$hex))
        done
    fi
}

pick_ports() { # sets ctld_port and slurmd_port: explicit, the defaults, or a free block (auto)
    local base k busy free
    ctld_port=${SEGQA_SLURMCTLD_PORT:-16817}
    slurmd_port=${SEGQA_SLURMD_PORT:-16818}
    [ "$ctld_port" = auto ] || return 0
    busy=" $(used_ports | sort -un | tr '\n' ' ') "
    for _ in $(seq 200); do
        base=$((10000 + (RANDOM * 32768 + RANDOM) % 22000))
        free=1
        for k in $(seq 0 $((nodes + 1))); do [[ $busy == *" $((base + k)) "* ]] && free=0; done
        if [ $free -eq 1 ]; then ctld_port=$base slurmd_port=$((base + 1)); return 0; fi
    done
    echo "local-cluster.sh: no free block of $((nodes + 2)) ports in [10000, 32000)" >&2
    exit 1
}

launch() { # start slurmctld, wait until it answers, then every slurmd
    local i
    slurmctld -c -f "$conf"
    for _ in $(seq 100); do
        scontrol ping 2>/dev/null | grep -q "is UP" && break
        sleep 0.1
    done
    if [ "$nodes" -le 1 ]; then
        slurmd -N localhost -f "$conf"
    else
        for i in $(seq "$nodes"); do slurmd -N "node$i" -f "$conf"; done
    fi
}

wait_idle() { # up to 30 s for every node to register idle (slurmctld re-pings unknown nodes)
    local state= d k
    for k in $(seq 300); do
        if [ $((k % 10)) -eq 0 ]; then # a daemon that died (a port taken, a bad config) ends the wait
            for d in $(daemons); do daemon_pid "$d" >/dev/null || { state="$d exited"; break 2; }; done
        fi
        state=$(sinfo -h -N -o '%T' 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [ "$state" = "idle " ]; then
            echo "local-cluster: $nodes node(s) idle, $(sinfo -h -o %C | cut -d/ -f4) CPUs, ports $ctld_port-$((slurmd_port + (nodes > 1 ? nodes : 0))) (SLURM_CONF=$conf)"
            return 0
        fi
        sleep 0.1
    done
    echo "local-cluster.sh: nodes not idle (states '${state:-none}', ports $ctld_port/$slurmd_port):" >&2
    explain
    return 1
}

explain() { # each daemon: alive or not, and the last lines of its log
    local d
    SLURM_CONF=$conf sinfo -h -N -o '  node %N: %T' 2>/dev/null >&2 || true
    for d in $(daemons); do
        if daemon_pid "$d" >/dev/null; then echo "  $d: running" >&2; else echo "  $d: not running" >&2; fi
        [ -f "$dir/$d.log" ] && tail -n 3 "$dir/$d.log" | sed 's/^/    /' >&2
    done
}

start() {
    local b attempt
    for b in slurmctld slurmd sinfo scontrol; do
        command -v "$b" >/dev/null || { echo "local-cluster.sh: $b not found (apt-get install slurm-wlm)" >&2; exit 1; }
    done
    export SLURM_CONF=$conf
    for attempt in 1 2 3; do
        stop
        rm -f "$dir/nodes"
        nodes=${SEGQA_SLURM_NODES:-1}
        pick_ports
        write_conf
        launch
        wait_idle && return 0
        [ "${SEGQA_SLURMCTLD_PORT:-}" = auto ] || break
        echo "local-cluster.sh: retrying on new ports (attempt $((attempt + 1)) of 3)" >&2
    done
    echo "local-cluster.sh: the cluster in $dir did not start" >&2
    stop
    exit 1
}

case $cmd in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "local-cluster.sh: unknown command '$cmd' (expected start, stop or status)" >&2; exit 2 ;;
esac
