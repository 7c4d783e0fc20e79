#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (controller and compute node in one), to try a sweep
# before going to a real cluster, and for the `slurm` tests.
#
#   sudo bash scripts/slurm_local.sh          # install (apt) when missing, configure, start, wait
#   sudo bash scripts/slurm_local.sh stop     # stop the daemons again
#   bash scripts/slurm_local.sh status        # what is running
#
# Idempotent: a running, healthy cluster is left as it is. Needs root (apt, /etc/slurm, daemons).
# The node gets this machine's CPU count and memory, one partition (`local`), and process tracking
# and task plugins that need no cgroup set-up (proctrack/linuxproc, task/none): fine for trying
# sweeps, not a model of a production cluster's isolation.
set -euo pipefail
ACTION=${1:-start}
CONF_DIR=/etc/slurm
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
PARTITION=${SLURM_LOCAL_PARTITION:-local}

say() { echo "slurm_local: $*"; }
fail() { echo "slurm_local: error: $*" >&2; exit 1; }

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -1; }

stop() {
  for daemon in slurmd slurmctld; do
    if pgrep -x "$daemon" >/dev/null; then say "stopping $daemon"; pkill -x "$daemon" || true; fi
  done
  for _ in $(seq 1 20); do pgrep -x 'slurmd|slurmctld' >/dev/null || break; sleep 0.5; done
  if pgrep -x munged >/dev/null; then say "stopping munged"; pkill -x munged || true; fi
}

case "$ACTION" in
  stop) stop; exit 0 ;;
  status) pgrep -ax 'munged|slurmctld|slurmd' || say "no daemon running"; sinfo 2>/dev/null || true; exit 0 ;;
  start) ;;
  *) fail "unknown action '$ACTION' (valid: start, stop, status)" ;;
esac

[ "$(id -u)" = 0 ] || fail "needs root (apt, /etc/slurm, the daemons); run it with sudo"

if [ "$(node_state)" = idle ] || [ "$(node_state)" = mixed ] || [ "$(node_state)" = allocated ]; then
  say "cluster already up: node $(node_state)"; sinfo; exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || fail "slurm-wlm and munge are missing and there is no apt-get to install them"
  say "installing slurm-wlm and munge with apt (a minute or two)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed (no package registry reachable?)"
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || fail "apt-get install slurm-wlm munge failed"
fi
say "$(slurmctld -V)"

HOST=$(hostname -s)
# The node's CPUs and memory as slurmd itself measures them (RealMemory must not exceed it).
read -r CPUS MEM_MB < <(slurmd -C | awk '/^NodeName/ {for (i = 1; i <= NF; i++) {split($i, kv, "=");
  if (kv[1] == "CPUs") c = kv[2]; if (kv[1] == "RealMemory") m = kv[2]}} END {print c, m}')
[ -n "$CPUS" ] && [ -n "$MEM_MB" ] || fail "could not read this node's CPUs and memory from 'slurmd -C'"

mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS" /run/munge /var/log/munge /var/lib/munge /etc/munge
CONF="$CONF_DIR/slurm.conf"
NEW=$(cat <<EOF
# Written by meekbench scripts/slurm_local.sh: a one-node cluster on $HOST.
ClusterName=meekbench-local
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# A job may be cancelled and requeued (submitit's timeout handling relies on it).
JobRequeue=1
KillWait=10
MinJobAge=600
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$NEW" ]; then
  say "writing $CONF (node $HOST: $CPUS CPUs, $MEM_MB MB; partition $PARTITION)"
  echo "$NEW" > "$CONF"
fi

if [ ! -s /etc/munge/munge.key ]; then
  say "creating the munge key"
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /var/log/munge /var/lib/munge /run/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
chmod 0700 /etc/munge

pgrep -x munged >/dev/null || { say "starting munged"; runuser -u munge -- /usr/sbin/munged || /usr/sbin/munged --force; }
pgrep -x slurmctld >/dev/null || { say "starting slurmctld"; slurmctld; }
pgrep -x slurmd >/dev/null || { say "starting slurmd"; slurmd; }

say "waiting for the node to be idle"
for _ in $(seq 1 60); do
  state=$(node_state)
  case "$state" in
    idle|mixed|allocated) say "cluster up: node $HOST $state"; sinfo; exit 0 ;;
    down*|drain*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 1
done
tail -5 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
fail "the node did not become idle within 60 s (logs above)"
