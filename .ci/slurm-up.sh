#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (as root) for tests/slurm/: partitions `cpu`
# (default) and `gpu`, the node's real CPUs and memory, one fake GPU (gres on /dev/null)
# so that jobs asking `--gpus=1` are scheduled like on a real GPU partition. Idempotent: a second run
# finds the daemons up and the node idle and exits 0. Exits non-zero with a message on failure.
set -euo pipefail

die() {
    echo "slurm-up: $*" >&2
    for log in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log; do
        [[ -f $log ]] && { echo "--- last lines of $log" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}

[[ $(id -u) == 0 ]] || die "must run as root (installs Debian packages and starts daemons)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sinfo >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm-up: installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge \
        || die "apt-get install slurmctld slurmd slurm-client munge failed"
fi

# munge: every SLURM message is signed with this key; keep an existing one.
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    munged --force </dev/null >/dev/null 2>&1 || die "munged did not start"
fi
munge -n | unmunge >/dev/null || die "munge round trip failed (is munged running?)"

# slurm.conf for this host: the node line is what `slurmd -C` measures (CPUs, memory).
host=$(hostname -s)
node=$(slurmd -C | head -n 1) || die "slurmd -C failed"
[[ $node == NodeName=* ]] || die "unexpected slurmd -C output: $node"
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
conf=$(mktemp)
cat >"$conf" <<EOF
# Written by .ci/slurm-up.sh: a one-node test cluster, not a production configuration.
ClusterName=locallm
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue for an hour: the executor plugin polls with squeue.
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
$node Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
EOF
gres=$(mktemp)
# A fake device file: the GPU is a scheduling token here; jobs run on the CPU.
echo "NodeName=$host Name=gpu File=/dev/null" >"$gres"

changed=0
if ! cmp -s "$conf" /etc/slurm/slurm.conf; then
    install -m 644 "$conf" /etc/slurm/slurm.conf
    changed=1
fi
if ! cmp -s "$gres" /etc/slurm/gres.conf; then
    install -m 644 "$gres" /etc/slurm/gres.conf
    changed=1
fi
rm -f "$conf" "$gres"

# Restart only the daemons this script started before (their pid files), when the config changed.
stop_daemon() {
    local pidfile=$1 pid
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        ! kill -0 "$pid" 2>/dev/null || die "daemon $pid ($pidfile) did not stop"
    fi
}
if [[ $changed == 1 ]]; then
    stop_daemon /run/slurmd.pid
    stop_daemon /run/slurmctld.pid
fi
if ! pgrep -x slurmctld >/dev/null; then
    slurmctld </dev/null >/dev/null 2>&1 || die "slurmctld did not start"
fi
if ! pgrep -x slurmd >/dev/null; then
    slurmd </dev/null >/dev/null 2>&1 || die "slurmd did not start"
fi

# Wait until both partitions list the node idle (a node left down or drained is resumed once).
resumed=0
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
    states=$(timeout 5 sinfo -h -o '%P %T' 2>/dev/null || true)
    if [[ -n $states ]] && ! grep -qv ' idle$' <<<"$states"; then
        echo "slurm-up: cluster ready"
        sinfo
        exit 0
    fi
    if [[ $resumed == 0 ]] && grep -Eq 'down|drain' <<<"$states"; then
        scontrol update NodeName="$host" State=RESUME 2>/dev/null || true
        resumed=1
    fi
    sleep 1
done
die "node $host not idle after 60 s; sinfo says: ${states:-nothing (slurmctld unreachable)}"
