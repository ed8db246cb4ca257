#!/usr/bin/env bash
# A real single-node SLURM for the tests: munged, slurmctld and slurmd as root, everything under one folder.
#
#   tests/slurm/cluster.sh start    # idempotent: does nothing when this cluster is already up
#   tests/slurm/cluster.sh stop     # cancels this cluster's jobs, stops the daemons it started (pid files)
#   tests/slurm/cluster.sh status
#   eval "$(tests/slurm/cluster.sh env)"   # SLURM_CONF for sbatch/squeue/scontrol in this shell
#
# Needs Debian's slurm-wlm and munge packages (apt-get install slurm-wlm munge). Folder: $NER_SLURM_DIR
# (default /tmp/ner-slurm): slurm.conf, munge key and socket, state, spool, logs and pid files.
# No cgroups (proctrack/linuxproc, task/none), no accounting; the node offers `NER_SLURM_GPUS` (default 2)
# fake "GPUs" (null devices) so job scripts can ask for --gpus-per-node as on a GPU cluster; jobs use the CPU.
set -euo pipefail

DIR="${NER_SLURM_DIR:-/tmp/ner-slurm}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GPUS="${NER_SLURM_GPUS:-2}"
CTLD_PORT="${NER_SLURM_CTLD_PORT:-16817}"
SLURMD_PORT="${NER_SLURM_SLURMD_PORT:-16818}"
export SLURM_CONF="$DIR/slurm.conf"

pid_of() { # the pid in pid file $1 when that process is alive
    local file="$DIR/$1" pid
    [[ -s "$file" ]] || return 1
    pid="$(<"$file")"
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

running() { pid_of munge/munged.pid >/dev/null && pid_of run/slurmctld.pid >/dev/null && pid_of run/slurmd.pid >/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND once a second
    local seconds="$1" what="$2"
    shift 2
    for ((i = 0; i < seconds; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "cluster.sh: timed out after ${seconds}s waiting for $what (logs: $DIR/log)" >&2
    return 1
}

node_idle() { [[ "$(sinfo -h -N -o %t 2>/dev/null)" =~ ^(idle|mix|alloc) ]]; }

configure() {
    local host hardware
    host="$(hostname -s)"
    # CPUs, sockets, cores, threads and memory as slurmd itself detects them (a mismatch drains the node).
    hardware="$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //')"
    mkdir -p "$DIR"/{munge,state,spool,log,run}
    chmod 755 "$DIR/munge" # clients reach the socket in it; the key itself is root-only
    sed -e "s|@DIR@|$DIR|g" -e "s|@HOST@|$host|g" -e "s|@GPUS@|$GPUS|g" -e "s|@NODE_HARDWARE@|$hardware|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" "$HERE/slurm.conf.in" >"$DIR/slurm.conf"
    sed -e "s|@HOST@|$host|g" -e "s|@DIR@|$DIR|g" -e "s|@LAST_GPU@|$((GPUS - 1))|g" "$HERE/gres.conf.in" >"$DIR/gres.conf"
    mkdir -p "$DIR/dev"
    for ((i = 0; i < GPUS; i++)); do # character devices like /dev/null (1:3): slurmd wants devices here
        [[ -e "$DIR/dev/gpu$i" ]] || mknod "$DIR/dev/gpu$i" c 1 3 || touch "$DIR/dev/gpu$i"
    done
    if [[ ! -s "$DIR/munge/munge.key" ]]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$DIR/munge/munge.key"
    fi
}

start() {
    if running; then
        echo "SLURM test cluster already running ($DIR)"
        return 0
    fi
    command -v slurmctld >/dev/null || { echo "cluster.sh: slurmctld not found: apt-get install slurm-wlm munge" >&2; exit 1; }
    stop_daemons # whatever part of an earlier start is still up
    configure
    munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket.2" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    wait_for 10 munged test -S "$DIR/munge/munge.socket.2"
    slurmctld -c -f "$SLURM_CONF" # -c: start with no jobs from an earlier cluster in this folder
    wait_for 30 slurmctld scontrol ping
    slurmd -f "$SLURM_CONF"
    wait_for 60 "the node to be idle" node_idle
    echo "SLURM test cluster up: SLURM_CONF=$SLURM_CONF"
    sinfo
}

stop_daemons() {
    local name pid
    for name in run/slurmd.pid run/slurmctld.pid munge/munged.pid; do
        if pid="$(pid_of "$name")"; then
            kill "$pid"
            for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
        rm -f "${DIR:?}/$name"
    done
}

stop() {
    if pid_of run/slurmctld.pid >/dev/null; then
        scancel --full --signal=KILL --quiet --user="$(id -un)" 2>/dev/null || true
        # Let slurmd reap what it started before it goes.
        wait_for 20 "jobs to end" bash -c '[[ -z "$(squeue -h -t R,CG 2>/dev/null)" ]]' || true
    fi
    stop_daemons
    echo "SLURM test cluster stopped ($DIR)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
    if running; then
        echo "running: SLURM_CONF=$SLURM_CONF"
        sinfo
        squeue
    else
        echo "not running ($DIR)"
        exit 3
    fi
    ;;
env) echo "export SLURM_CONF=$SLURM_CONF" ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
