#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (controller and compute node in one), to try a sweep
# before going to a real cluster, and for the `slurm` tests.
#
#   sudo bash scripts/slurm_local.sh          # install (apt) when missing, configure, start, wait
#   sudo bash scripts/slurm_local.sh install  # only install the packages (scripts/setup.sh, MEEKBENCH_SLURM=1)
#   sudo bash scripts/slurm_local.sh stop     # stop the daemons again
#   bash scripts/slurm_local.sh status        # what is running
#
# Idempotent: a running cluster on the same configuration is left as it is. Needs root (apt,
# /etc/slurm, the daemons). The node gets this machine's CPU count and memory, one partition
# (`local`), and process tracking and task plugins that need no cgroup set-up
# (proctrack/linuxproc, task/none): fine for trying sweeps, not a model of a production
# cluster's isolation. Accounting is real (slurmdbd over a local MariaDB), as on a lab cluster:
# submitit reads job states with `sacct`, and without it a cancelled job would leave the
# launcher waiting forever. SLURM_LOCAL_NO_INSTALL=1 makes a missing package an error instead
# of an apt run (the tests: set-up installs, a test never runs apt).
set -euo pipefail
ACTION=${1:-start}
CONF_DIR=/etc/slurm
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
PARTITION=${SLURM_LOCAL_PARTITION:-local}
CLUSTER=meekbench-local
PACKAGES="slurm-wlm munge slurmdbd mariadb-server"

say() { echo "slurm_local: $*"; }
fail() { echo "slurm_local: error: $*" >&2; exit 1; }
node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -1; }

stop_daemon() {  # TERM, then wait up to 10 s
  pgrep -x "$1" >/dev/null || return 0
  say "stopping $1"
  pkill -x "$1" || true
  for _ in $(seq 1 20); do pgrep -x "$1" >/dev/null || return 0; sleep 0.5; done
}

stop() {
  for daemon in slurmd slurmctld slurmdbd; do stop_daemon "$daemon"; done
  if command -v mariadb-admin >/dev/null && mariadb-admin ping >/dev/null 2>&1; then
    say "stopping mariadb"
    mariadb-admin shutdown || true
  fi
  stop_daemon munged
}

installed() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null
}

install() {
  installed && return 0
  [ "${SLURM_LOCAL_NO_INSTALL:-}" != 1 ] || fail "$PACKAGES: not installed; run 'bash scripts/slurm_local.sh install' \
as root, or scripts/setup.sh with MEEKBENCH_SLURM=1 (scripts/test.sh does)"
  [ "$(id -u)" = 0 ] || fail "installing $PACKAGES needs root (apt); run it with sudo"
  command -v apt-get >/dev/null || fail "$PACKAGES: missing, and there is no apt-get to install them"
  say "installing $PACKAGES with apt (a minute or two)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed (no package registry reachable?)"
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null || fail "apt-get install $PACKAGES failed"
}

case "$ACTION" in
  install) install; say "$(slurmctld -V)"; exit 0 ;;
  stop) stop; exit 0 ;;
  status) pgrep -ax 'munged|mariadbd|slurmdbd|slurmctld|slurmd' || say "no daemon running"
          sinfo 2>/dev/null || true; exit 0 ;;
  start) ;;
  *) fail "unknown action '$ACTION' (valid: start, install, stop, status)" ;;
esac

[ "$(id -u)" = 0 ] || fail "needs root (apt, /etc/slurm, the daemons); run it with sudo"

install
say "$(slurmctld -V)"

HOST=$(hostname -s)
# The node's CPUs and memory as slurmd itself measures them (RealMemory must not exceed it).
read -r CPUS MEM_MB < <(slurmd -C | awk '/^NodeName/ {for (i = 1; i <= NF; i++) {split($i, kv, "=");
  if (kv[1] == "CPUs") c = kv[2]; if (kv[1] == "RealMemory") m = kv[2]}} END {print c, m}')
[ -n "$CPUS" ] && [ -n "$MEM_MB" ] || fail "could not read this node's CPUs and memory from 'slurmd -C'"

mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS" /run/munge /var/log/munge /var/lib/munge /etc/munge /run/mysqld
CONF="$CONF_DIR/slurm.conf"
DBD_CONF="$CONF_DIR/slurmdbd.conf"
# The accounting database's password: made once, kept in slurmdbd.conf (readable by root only).
DB_PASS=$(sed -n 's/^StoragePass=//p' "$DBD_CONF" 2>/dev/null || true)
[ -n "$DB_PASS" ] || DB_PASS=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')

SLURM_CONF_TEXT="# Written by meekbench scripts/slurm_local.sh: a one-node cluster on $HOST.
ClusterName=$CLUSTER
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
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# A job may be requeued (submitit requeues on a timeout); scancel's TERM turns into KILL after 10 s.
JobRequeue=1
KillWait=10
MinJobAge=600
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP"

DBD_CONF_TEXT="# Written by meekbench scripts/slurm_local.sh: job accounting for the one-node cluster.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
LogFile=$LOGS/slurmdbd.log
PidFile=/run/slurmdbd.pid"

case "$(node_state)" in
  idle|mixed|allocated)
    if [ "$(cat "$CONF" 2>/dev/null)" = "$SLURM_CONF_TEXT" ] && [ "$(cat "$DBD_CONF" 2>/dev/null)" = "$DBD_CONF_TEXT" ] \
       && sacct -n -X -S now >/dev/null 2>&1; then
      say "cluster already up: node $(node_state), accounting answers"; sinfo; exit 0
    fi ;;
esac
if [ "$(cat "$CONF" 2>/dev/null)" != "$SLURM_CONF_TEXT" ] || [ "$(cat "$DBD_CONF" 2>/dev/null)" != "$DBD_CONF_TEXT" ]; then
  stop  # a configuration change: restart everything on the new one
  say "writing $CONF (node $HOST: $CPUS CPUs, $MEM_MB MB; partition $PARTITION) and $DBD_CONF"
  echo "$SLURM_CONF_TEXT" > "$CONF"
  (umask 077; echo "$DBD_CONF_TEXT" > "$DBD_CONF")
fi

if [ ! -s /etc/munge/munge.key ]; then
  say "creating the munge key"
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /var/log/munge /var/lib/munge /run/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
chmod 0700 /etc/munge
pgrep -x munged >/dev/null || { say "starting munged"; runuser -u munge -- /usr/sbin/munged || /usr/sbin/munged --force; }

if ! mariadb-admin ping >/dev/null 2>&1; then
  say "starting mariadb (the accounting database)"
  chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
  (mariadbd-safe --user=mysql >/dev/null 2>&1 &)
  for _ in $(seq 1 60); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.5; done
  mariadb-admin ping >/dev/null 2>&1 || fail "mariadb did not start"
fi
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
  ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

pgrep -x slurmdbd >/dev/null || { say "starting slurmdbd"; slurmdbd; }
for _ in $(seq 1 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
sacctmgr -n list cluster >/dev/null 2>&1 || fail "slurmdbd does not answer (see $LOGS/slurmdbd.log)"
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
  say "registering cluster $CLUSTER with the accounting database"
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

pgrep -x slurmctld >/dev/null || { say "starting slurmctld"; slurmctld; }
pgrep -x slurmd >/dev/null || { say "starting slurmd"; slurmd; }

say "waiting for the node to be idle"
for _ in $(seq 1 60); do
  case "$(node_state)" in
    idle|mixed|allocated) say "cluster up: node $HOST $(node_state)"; sinfo; exit 0 ;;
    down*|drain*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 1
done
tail -5 "$LOGS/slurmdbd.log" "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
fail "the node did not become idle within 60 s (logs above)"
