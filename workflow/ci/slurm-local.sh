#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for CI and for trying the `slurm` Snakemake profile.
#
#   workflow/ci/slurm-local.sh start    install (Debian: slurmctld slurmd slurm-client munge) if needed,
#                                        write the config, start munged + slurmctld + slurmd, wait for
#                                        the node to be idle
#   workflow/ci/slurm-local.sh status   which daemons (started by this script) run; sinfo
#   workflow/ci/slurm-local.sh stop     stop the daemons this script started, by PID
#
# Needs root on Debian/Ubuntu without systemd (daemons are started by hand). Everything listens on
# 127.0.0.1 only (CommunicationParameters=NoCtldInAddrAny,NoInAddrAny; the host name must resolve to
# 127.0.0.1, which `start` checks). Accounting (slurmdbd) is off, so `sacct` does not work: the
# profile polls with `squeue` (MinJobAge keeps finished jobs visible to it for an hour).
# Idempotent: `start` on a running cluster only checks it; `stop` on a stopped one does nothing.
#
# Environment:
#   SLURM_LOCAL_DIR       state, logs and PID files (default /var/tmp/sa4depth-slurm)
#   SLURM_LOCAL_PARTITION partition name (default debug)
#   SLURM_LOCAL_MEM_FRAC  fraction of `slurmd -C` RealMemory given to jobs (default 0.95)
#   SLURM_LOCAL_NO_INSTALL=1  never run apt-get (fail if the binaries are missing)
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/var/tmp/sa4depth-slurm}
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
MEM_FRAC=${SLURM_LOCAL_MEM_FRAC:-0.95}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by sa4depth workflow/ci/slurm-local.sh"
PKGS=(slurmctld slurmd slurm-client munge)

say() { echo "slurm-local: $*" >&2; }
die() { say "error: $*"; exit 1; }

pid_alive() {  # pidfile -> 0 if the process it names runs
    local f=$1 pid
    [[ -s $f ]] || return 1
    pid=$(cat "$f")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

need_root() { [[ $(id -u) == 0 ]] || die "must run as root (it installs packages and starts daemons)"; }

install() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    ((${#missing[@]} == 0)) && return 0
    [[ ${SLURM_LOCAL_NO_INSTALL:-0} == 1 ]] && die "missing packages ${missing[*]} (SLURM_LOCAL_NO_INSTALL=1)"
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install Slurm + MUNGE yourself"
    say "installing ${PKGS[*]} (apt-get)"
    local t0=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$DIR/apt.log" 2>&1 || { cat "$DIR/apt.log" >&2; die "apt-get update failed"; }
    # policy-rc.d 101: the packages' postinst must not try to start daemons (no init system here)
    local prc=/usr/sbin/policy-rc.d made_prc=0
    if [[ ! -e $prc ]]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; made_prc=1; fi
    local rc=0
    apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >>"$DIR/apt.log" 2>&1 || rc=$?
    ((made_prc)) && rm -f "$prc"
    ((rc == 0)) || { tail -30 "$DIR/apt.log" >&2; die "apt-get install ${PKGS[*]} failed (log: $DIR/apt.log)"; }
    say "installed in $((SECONDS - t0)) s"
}

check_hosts() {
    local host ip
    host=$(hostname -s)
    ip=$(getent ahostsv4 "$host" | awk 'NR==1{print $1}') || true
    if [[ -z $ip ]]; then
        echo "127.0.0.1 $host" >>/etc/hosts
        say "added '127.0.0.1 $host' to /etc/hosts"
    elif [[ $ip != 127.* ]]; then
        die "host name $host resolves to $ip, not 127.0.0.1: the cluster must listen on 127.0.0.1 only (fix /etc/hosts)"
    fi
}

write_conf() {
    local host node_line cpus mem
    host=$(hostname -s)
    # `slurmd -C` prints the node's hardware as a slurm.conf line: keep CPUs/Boards/Sockets/... and
    # give jobs MEM_FRAC of its RealMemory.
    node_line=$(slurmd -C | head -1) || die "slurmd -C failed"
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")
    [[ -n $mem && -n $cpus ]] || die "cannot parse 'slurmd -C' output: $node_line"
    mem=$(awk -v m="$mem" -v f="$MEM_FRAC" 'BEGIN{printf "%d", m*f}')
    node_line=$(sed -e "s/NodeName=[^ ]*/NodeName=$host/" -e "s/RealMemory=[0-9]*/RealMemory=$mem/" \
        -e 's/ UpTime=.*//' <<<"$node_line")
    if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        cp "$CONF" "$CONF.before-sa4depth"
        say "kept the existing $CONF as $CONF.before-sa4depth"
    fi
    mkdir -p "$CONF_DIR" "$DIR/state" "$DIR/spool" "$DIR/log"
    cat >"$CONF.tmp" <<CONF
$MARK: a one-node cluster on 127.0.0.1
ClusterName=sa4depth-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# finished jobs stay in squeue's view for 1 h: the profile polls with squeue (no slurmdbd/sacct), and
# slurm-ci.sh checks each job's final state with scontrol after a workflow of several minutes
MinJobAge=3600
KillWait=30
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
Waittime=0
$node_line State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
    mv "$CONF.tmp" "$CONF"
    # cgroup.conf is not needed (no cgroup plugins) but some builds warn without it
    [[ -f $CONF_DIR/cgroup.conf ]] || echo "$MARK" >"$CONF_DIR/cgroup.conf"
}

munge_ok() { command -v munge >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if pid_alive "$DIR/munged.pid"; then return 0; fi
    if pid_alive /run/munge/munged.pid && munge_ok; then
        say "using the munged already running (pid $(cat /run/munge/munged.pid), not started here: stop leaves it)"
        return 0
    fi
    [[ -s /etc/munge/munge.key ]] || {
        if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
        else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; fi
    }
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge; chmod 0755 /run/munge
    rm -f "$DIR/munged.pid"
    # as the munge user (munged refuses to run as root by default)
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$DIR/munged.pid"
    munge -n | unmunge >/dev/null || die "munge does not work (munge -n | unmunge failed)"
}

start_daemon() {  # name -> started, its pid in $DIR/name.pid (written by the daemon itself)
    local name=$1
    if pid_alive "$DIR/$name.pid"; then return 0; fi
    rm -f "$DIR/$name.pid"
    "$name" -f "$CONF" >>"$DIR/log/$name.out" 2>&1 || { tail -20 "$DIR/log/$name.log" >&2 || true; die "$name did not start"; }
    for _ in $(seq 100); do pid_alive "$DIR/$name.pid" && return 0; sleep 0.1; done
    tail -20 "$DIR/log/$name.log" >&2 || true
    die "$name did not write $DIR/$name.pid"
}

wait_idle() {
    local host state t0=$SECONDS
    host=$(hostname -s)
    while :; do
        state=$(sinfo -h -n "$host" -o '%T' 2>/dev/null | head -1 || true)
        case $state in
            idle|mixed|allocated) return 0 ;;
            down*|drain*|fail*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        ((SECONDS - t0 > 60)) && { sinfo -N -l >&2 || true; tail -20 "$DIR/log/slurmd.log" >&2 || true; die "node $host not idle after 60 s (state '$state')"; }
        sleep 0.5
    done
}

cmd_start() {
    need_root
    local t0=$SECONDS
    mkdir -p "$DIR"
    install
    check_hosts
    if pid_alive "$DIR/slurmctld.pid" && pid_alive "$DIR/slurmd.pid" && munge_ok; then
        wait_idle
        say "already running (partition $PARTITION)"
        return 0
    fi
    # a half-running cluster (one daemon died): restart what this script started, then all of it
    cmd_stop quiet
    write_conf
    start_munge
    start_daemon slurmctld
    start_daemon slurmd
    wait_idle
    say "up in $((SECONDS - t0)) s: $(sinfo -h -o '%P %D nodes %c CPUs %m MB %T' | head -1)"
}

cmd_stop() {
    local quiet=${1:-} name pid any=0
    for name in slurmd slurmctld munged; do
        pid_alive "$DIR/$name.pid" || { rm -f "$DIR/$name.pid"; continue; }
        pid=$(cat "$DIR/$name.pid"); any=1
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then say "$name ($pid) ignored SIGTERM for 10 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
        rm -f "$DIR/$name.pid"
    done
    [[ -n $quiet ]] || { ((any)) && say "stopped" || say "not running"; }
}

cmd_status() {
    local name rc=0
    if pid_alive "$DIR/munged.pid"; then echo "munged: running (pid $(cat "$DIR/munged.pid"))"
    elif munge_ok; then echo "munged: running (not started by this script)"
    else echo "munged: not running"; rc=3; fi
    for name in slurmctld slurmd; do
        if pid_alive "$DIR/$name.pid"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"
        else echo "$name: not running"; rc=3; fi
    done
    ((rc == 0)) && sinfo
    return $rc
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
