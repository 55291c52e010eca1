#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the SLURM launcher's tests and for trying
# `run_all.py --launcher slurm` without a cluster. Needs root (Debian/Ubuntu: apt-get).
#
#   scripts/local_slurm.sh start    # install slurm-wlm + munge if missing, write the config, start
#   scripts/local_slurm.sh status   # exit 0 when the controller answers and the node is up
#   scripts/local_slurm.sh stop
#
# The config lives in /etc/slurm/slurm.conf (marked as ours; a foreign one is never overwritten);
# state, spool and logs under DCBENCH_SLURM_DIR (default /var/tmp/dcbench-slurm). One node with
# all CPUs (DCBENCH_SLURM_CPUS) and DCBENCH_SLURM_MEM_MB of memory (default: 80 % of RAM,
# at most 20000), one default partition "debug", no accounting (sacct is unavailable; submitit
# falls back to squeue), requeue allowed.
set -euo pipefail

DIR=${DCBENCH_SLURM_DIR:-/var/tmp/dcbench-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by deepcluster-bench scripts/local_slurm.sh"
HOST=$(hostname -s)

die() { echo "local_slurm.sh: $*" >&2; exit 1; }

install_packages() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null && return
    [ "$(id -u)" = 0 ] || die "slurm-wlm/munge are not installed and installing them needs root"
    command -v apt-get >/dev/null || die "slurm-wlm/munge are not installed and there is no apt-get"
    echo "installing slurm-wlm and munge (about a minute)" >&2
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null \
        || die "apt-get install slurm-wlm munge failed"
}

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; refusing to replace a real cluster's config"
    fi
    local cpus=${DCBENCH_SLURM_CPUS:-$(nproc)}
    local total_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
    local mem=${DCBENCH_SLURM_MEM_MB:-$(( total_mb * 8 / 10 < 20000 ? total_mb * 8 / 10 : 20000 ))}
    mkdir -p "$DIR/state" "$DIR/spool" /etc/slurm
    cat > "$CONF" <<CONF_EOF
$MARK
ClusterName=dcbench
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=300
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF_EOF
}

start_munge() {
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
    [ -s /etc/munge/munge.key ] || {
        if command -v mungekey >/dev/null; then mungekey --create --force; else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
    }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged --force || die "munged did not start"
    for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
    die "munge does not answer (see /var/log/munge/munged.log)"
}

node_up() {
    scontrol ping 2>/dev/null | grep -q UP || return 1
    local state
    state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null | head -1)
    case "$state" in idle*|mix*|alloc*|comp*) return 0 ;; *) return 1 ;; esac
}

start() {
    install_packages
    write_config
    start_munge
    if node_up; then echo "slurm already up on $HOST" >&2; return; fi
    pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld || die "slurmctld did not start (see $DIR/slurmctld.log)"
    pgrep -x slurmd >/dev/null || /usr/sbin/slurmd || die "slurmd did not start (see $DIR/slurmd.log)"
    for _ in $(seq 150); do
        if node_up; then echo "slurm up on $HOST" >&2; return; fi
        sinfo -h -n "$HOST" -o %t 2>/dev/null | grep -qE 'drain|down|inval' \
            && scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        sleep 0.2
    done
    die "the node did not come up: $(sinfo -h -o '%n %t %E' 2>&1 | head -3); logs in $DIR"
}

stop() {
    for daemon in slurmd slurmctld; do
        local pidfile="$DIR/$daemon.pid"
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
}

case "${1:-start}" in
    start) start ;;
    status) node_up ;;
    stop) stop ;;
    *) die "usage: $0 {start|status|stop}" ;;
esac
