#!/usr/bin/env bash
# CI: a real single-node Slurm cluster (Debian's slurm-wlm 22.05 + munge) on this machine, so the
# slurm test tier submits real job arrays. Debian bookworm, root.
#
#   eval "$(.ci/slurm.sh)"        # from the repository root
#   .ci/slurm.sh stop             # stop the daemons this script started (by their pid files)
#
# Prints only export lines on stdout (LEMBENCH_SLURM_DIR, the partition to use); progress goes to
# stderr. Idempotent: installed packages are kept, running daemons that answer are kept, the
# configuration is rewritten only when it changed (then the daemons are restarted).
#
# Steps (see ci-notes.md): apt-get install slurm-wlm munge; munged as the munge user with the
# key the package ships; /etc/slurm/slurm.conf for one node (this host, CPUs = nproc, RealMemory
# from /proc/meminfo minus headroom) in partition `debug`; slurmctld and slurmd as root with pid
# files under $LEMBENCH_SLURM_DIR; wait until sinfo shows the node idle.
#
# Environment: LEMBENCH_SLURM_DIR (default /var/tmp/lembench-slurm: state, spool, logs, pids).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${LEMBENCH_SLURM_DIR:-/var/tmp/lembench-slurm}
conf=/etc/slurm/slurm.conf
log() { printf '[slurm.sh %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }
logged() {
  local name=$1; shift
  if ! "$@" > "$dir/$name.log" 2>&1; then
    tail -n 40 "$dir/$name.log" >&2
    die "$name failed (full log: $dir/$name.log)"
  fi
}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

mkdir -p "$dir"

if [ "${1:-}" = "stop" ]; then
  for name in slurmd slurmctld munged; do
    if alive "$dir/$name.pid"; then
      log "stopping $name (pid $(cat "$dir/$name.pid"))"
      kill "$(cat "$dir/$name.pid")" || true
    fi
    rm -f "$dir/$name.pid"
  done
  exit 0
fi

# 1. Packages.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for pkg in slurm-wlm munge; do installed "$pkg" || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  logged apt-update apt-get update
  logged apt-install apt-get install -y "${missing[@]}"
fi
log "slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm)"

# 2. munge (authentication between the Slurm commands and daemons).
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
if alive "$dir/munged.pid" || pgrep -x munged >/dev/null; then
  log "munged running"
else
  log "starting munged"
  su -s /bin/sh munge -c "munged --pid-file=/run/munge/munged.pid" || die "munged did not start"
  for _ in $(seq 1 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$dir/munged.pid"
fi

# 3. slurm.conf for one node: every CPU of this machine, its memory less 1 GiB for the system.
host=$(hostname -s)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024) - 1024}' /proc/meminfo)
mkdir -p "$dir/state" "$dir/spool" /etc/slurm
new=$(cat <<EOF
# Written by lembench's .ci/slurm.sh: a single-node cluster for the slurm test tier.
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
ReturnToService=2
MaxArraySize=1001
# Array tasks count against MaxJobCount (default 10,000) while finished ones are kept for
# MinJobAge: room for the 10,000-task scale benchmark next to the tier's jobs.
MaxJobCount=50000
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MinJobAge=3600
KillWait=5
NodeName=$host CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)
restart=0
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$new" ]; then
  log "writing $conf"
  printf '%s\n' "$new" > "$conf"
  restart=1
fi

# 4. The daemons.
for name in slurmctld slurmd; do
  if alive "$dir/$name.pid" && [ $restart = 1 ]; then
    log "restarting $name (configuration changed)"
    kill "$(cat "$dir/$name.pid")"
    for _ in $(seq 1 50); do alive "$dir/$name.pid" || break; sleep 0.1; done
  fi
  if alive "$dir/$name.pid"; then
    log "$name running (pid $(cat "$dir/$name.pid"))"
  else
    log "starting $name"
    logged "$name-start" "$name"
  fi
done

# 5. Wait for the node to accept work.
for _ in $(seq 1 60); do
  state=$(sinfo --noheader -n "$host" -o %t 2>/dev/null | head -n1 || true)
  case "$state" in idle|mix|alloc) break ;; esac
  sleep 0.5
done
case "${state:-}" in
  idle|mix|alloc) log "ready: node $host is $state in partition debug" ;;
  *) die "node $host is '${state:-unknown}' (see $dir/slurmctld.log, $dir/slurmd.log)" ;;
esac

echo "export LEMBENCH_SLURM_DIR=$dir"
echo "export LEMBENCH_SLURM_PARTITION=debug"
