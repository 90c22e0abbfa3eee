#!/usr/bin/env bash
# Start a single-node SLURM on this machine (localhost) for testing `--profile profiles/slurm`.
#
# Needs root. Installs Debian's slurmctld, slurmd, slurm-client and munge with apt-get when
# they are missing, writes /etc/slurm/slurm.conf (the compiled-in path: the jobstep plugin
# drops SLURM_CONF from the environment, so another path would not reach the inner srun),
# starts munged as the munge user, slurmctld and `slurmd -N localhost` without systemd, and
# waits until `sinfo` shows the node idle. Safe to run twice: running daemons are reused.
#
#   bash scripts/slurm/start.sh     # exit 0: SLURM is up; non-zero: it is not (reason on stderr)
#   bash scripts/slurm/stop.sh      # cancel every job and stop the daemons
#
# Environment: APERFLOW_SLURM_FORCE=1 overwrites an /etc/slurm/slurm.conf this script did not
# write (refused by default, so a real cluster node's config is never clobbered);
# APERFLOW_SLURM_WAIT (seconds, default 60) bounds the wait for the node to come up.
set -euo pipefail

MARKER="# written by aperflow scripts/slurm/start.sh"
CONF=/etc/slurm/slurm.conf
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGDIR=/var/log/slurm
WAIT=${APERFLOW_SLURM_WAIT:-60}

die() {
    echo "start.sh: $*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root (apt-get, munged as the munge user, slurmd as root)"

install_if_missing() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    echo "start.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be absent or stale on a fresh machine: update once, then install.
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge \
        >/dev/null || die "apt-get install of slurmctld slurmd slurm-client munge failed"
}

# Memory for SLURM: 90 % of the machine's, in MB, so slurmd never finds less than configured
# (it drains a node whose RealMemory exceeds what it sees).
real_memory_mb() {
    awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo
}

write_conf() {
    if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF" && [[ ${APERFLOW_SLURM_FORCE:-0} != 1 ]]; then
        die "$CONF exists and was not written by this script (set APERFLOW_SLURM_FORCE=1 to overwrite)"
    fi
    mkdir -p /etc/slurm "$STATE" "$SPOOL" "$LOGDIR"
    local cpus mem
    cpus=$(nproc)
    mem=$(real_memory_mb)
    cat >"$CONF.tmp" <<EOF
$MARKER
# Single-node test cluster: the node is "localhost" (slurmd -N localhost), whatever the
# machine's host name is. No accounting: sacct answers but knows nothing, so the Snakemake
# profile polls with squeue, and MinJobAge keeps finished jobs visible to squeue.
ClusterName=aperflow
SlurmctldHost=localhost
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=60
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

running() {
    # A daemon from its pid file, so an unrelated process of the same name never counts.
    local pidfile=$1
    [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start_slurm() {
    running /run/slurmctld.pid || /usr/sbin/slurmctld
    running /run/slurmd.pid || /usr/sbin/slurmd -N localhost
}

node_state() {
    sinfo -h -N -n localhost -o %T 2>/dev/null | head -n1
}

wait_idle() {
    local state=""
    for _ in $(seq "$WAIT"); do
        state=$(node_state)
        case $state in
            idle | mixed | allocated) return 0 ;;
            down* | drain* | fail*)
                # Left down by an earlier run (e.g. a killed slurmd): bring it back.
                scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    die "node localhost not idle after ${WAIT}s (state: '${state:-none}'); see $LOGDIR/"
}

install_if_missing
write_conf
start_munge
start_slurm
wait_idle
echo "SLURM is up: $(sinfo -h -N -o '%N %T cpus=%c mem=%mMB' | head -n1)"
