#!/usr/bin/env bash
# Stop the single-node SLURM started by scripts/slurm/start.sh: cancel every job, stop
# slurmd and slurmctld (by their pid files), then munged. Never fails: meant for cleanup.
set -uo pipefail

[[ $(id -u) -eq 0 ]] || {
    echo "stop.sh: needs root" >&2
    exit 1
}

if command -v scancel >/dev/null && [[ -f /etc/slurm/slurm.conf ]]; then
    # Every job of this test cluster, whoever submitted it.
    timeout 20 scancel --full --quiet --nodelist=localhost 2>/dev/null || true
    timeout 20 scancel --quiet --state=PENDING 2>/dev/null || true
fi

stop_pidfile() {
    # Stop the daemon named by a pid file, SIGTERM first, SIGKILL after 10 s.
    local pidfile=$1 pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$pidfile"
}

stop_pidfile /run/slurmd.pid
stop_pidfile /run/slurmctld.pid
stop_pidfile /run/munge/munged.pid
echo "SLURM stopped"
