#!/usr/bin/env bash
# A one-machine SLURM cluster (Debian's slurm-wlm + munge) for trying and testing the SLURM scripts:
#   bash scripts/slurm_local.sh start    # install if missing, write the config, start munged/slurmctld/slurmd
#   export SLURM_CONF=/tmp/naas-slurm/slurm.conf   # (start prints it) then sbatch/srun/squeue/sinfo as usual
#   bash scripts/slurm_local.sh status
#   bash scripts/slurm_local.sh stop     # cancels this cluster's jobs, stops exactly the daemons it started
# Everything lives under $NAAS_SLURM_DIR (default /tmp/naas-slurm): slurm.conf, its own munge key and socket,
# state, spool, logs and pid files. One node, "localhost", with this machine's CPU count and memory; daemons run
# as root; no cgroup plugins (proctrack/linuxproc, task/none), so it works inside a container. Ports:
# $NAAS_SLURM_PORT (slurmctld, default 6817) and the next one (slurmd). Needs root (apt-get, daemons as root).
# cred_expire=15: a requeued job may start again 16 s after its requeue (SLURM's default wait: 121 s).
set -euo pipefail

DIR="${NAAS_SLURM_DIR:-/tmp/naas-slurm}"
PORT="${NAAS_SLURM_PORT:-6817}"
CONF="$DIR/slurm.conf"
WAIT_S="${NAAS_SLURM_WAIT_S:-60}"
export SLURM_CONF="$CONF"

die() { echo "slurm_local.sh: $*" >&2; exit 1; }
cpus() { env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc; }  # GNU nproc obeys OMP_NUM_THREADS

# whether process $1 is alive and runs program $2 (a recycled pid runs something else)
alive() { [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }

# pid of a daemon we started (its pid file names a live process running that program), else nothing
running() {
    local name=$1 pidfile="$DIR/$1.pid" pid
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    alive "$pid" "$name" && echo "$pid"
}

install_if_missing() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || die "slurm-wlm/munge are missing and installing them needs root:" \
        "sudo apt-get install -y slurm-wlm munge"
    echo "slurm_local.sh: installing slurm-wlm and munge (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_config() {
    local cpus mem_mb
    cpus=$(cpus)
    mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    chmod 0755 "$DIR"
    cat > "$CONF.tmp" <<EOF
# Written by scripts/slurm_local.sh: a one-node cluster on this machine.
ClusterName=naas-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
AuthInfo=socket=$DIR/munge.socket,cred_expire=15
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
JobRequeue=1
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start_munge() {
    [ -s "$DIR/munge.key" ] || { dd if=/dev/urandom of="$DIR/munge.key.tmp" bs=1024 count=1 status=none \
        && chmod 0400 "$DIR/munge.key.tmp" && mv "$DIR/munge.key.tmp" "$DIR/munge.key"; }
    running munged >/dev/null && return
    munged --force --key-file="$DIR/munge.key" --socket="$DIR/munge.socket" --pid-file="$DIR/munged.pid" \
        --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge.seed" \
        || die "munged did not start; log: $DIR/log/munged.log"
}

log_tails() {
    local f
    for f in "$DIR"/log/*.log; do
        if [ -f "$f" ]; then echo "--- $f"; tail -n 20 "$f"; fi
    done
}

node_state() { sinfo -h -n localhost -o %T 2>/dev/null | head -n 1; }

start() {
    install_if_missing
    if running slurmctld >/dev/null && running slurmd >/dev/null && running munged >/dev/null; then
        echo "slurm_local.sh: already running ($DIR)"
        echo "export SLURM_CONF=$CONF"
        return
    fi
    [ "$(id -u)" = 0 ] || die "the daemons run as root here (SlurmUser=root); run start as root"
    write_config
    start_munge
    running slurmctld >/dev/null || slurmctld -c -f "$CONF" || { log_tails >&2; die "slurmctld did not start"; }
    running slurmd >/dev/null || slurmd -f "$CONF" -N localhost || { log_tails >&2; die "slurmd did not start"; }
    local deadline=$((SECONDS + WAIT_S)) state=""
    while [ $SECONDS -lt $deadline ]; do
        state=$(node_state)
        case "$state" in idle|mixed|allocated) break ;; esac
        sleep 0.5
    done
    case "$state" in
        idle|mixed|allocated) ;;
        *) log_tails >&2
           die "node 'localhost' not idle after ${WAIT_S}s (state '${state:-none}'); logs in $DIR/log;" \
               "'bash scripts/slurm_local.sh stop' cleans up" ;;
    esac
    echo "slurm_local.sh: cluster up ($(cpus) CPUs, node $state); state, logs and config in $DIR"
    echo "export SLURM_CONF=$CONF"
}

stop() {
    local name pid jobs deadline
    if running slurmctld >/dev/null; then  # cancel this cluster's jobs, so no job step outlives its daemons
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            deadline=$((SECONDS + 20))
            while [ -n "$(squeue -h -o %i 2>/dev/null || true)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
        fi
    fi
    for name in slurmd slurmctld munged; do
        pid=$(running "$name") || continue
        kill "$pid"
        deadline=$((SECONDS + 15))
        while alive "$pid" "$name" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
        if alive "$pid" "$name"; then kill -9 "$pid"; fi
        rm -f "$DIR/$name.pid"
        echo "slurm_local.sh: stopped $name ($pid)"
    done
}

status() {
    local name pid rc=0
    for name in munged slurmctld slurmd; do
        if pid=$(running "$name"); then echo "$name: running ($pid)"; else echo "$name: stopped"; rc=3; fi
    done
    if [ $rc = 0 ]; then
        sinfo
        squeue
        echo "export SLURM_CONF=$CONF"
    fi
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status (cluster folder: \$NAAS_SLURM_DIR, default /tmp/naas-slurm)" ;;
esac
