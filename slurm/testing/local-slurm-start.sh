#!/usr/bin/env bash
# Starts a one-node Slurm on this machine from Debian's packages (munge,
# slurmctld, slurmd), for the tests and for trying diffsearch's batch scripts.
#
#   eval "$(bash slurm/testing/local-slurm-start.sh [DIR] [--stop-with PID])"
#   sbatch job.sh; squeue; ...
#   bash slurm/testing/local-slurm-stop.sh "$DIFFSEARCH_SLURM_DIR"
#
# Everything lives in DIR (default: a new folder under $TMPDIR or /tmp):
# slurm.conf (generated for this machine's cores and memory, as `slurmd -C`
# reports them), the munge key and socket, state, spool, logs, pid files.
# Ports are the first two free ones from 16817 + 2 * (pid mod 500) up
# ($DIFFSEARCH_SLURM_PORT to choose), so several clusters can run side by
# side. On success it prints the `export` lines (SLURM_CONF,
# DIFFSEARCH_SLURM_DIR) for eval and exits 0; on failure it prints the
# daemons' logs to stderr, stops what it started and exits 1.
# --stop-with PID: stop the cluster when process PID ends (a test that dies
# without its teardown leaves no daemons behind).
#
# Made for containers: no systemd (the daemons are started directly), no
# cgroups (proctrack/linuxproc, task/none). Run it as root: slurmd must be.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dir=""
stop_with=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stop-with) stop_with="${2:?--stop-with needs a PID}"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "local-slurm-start: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) dir="$1"; shift ;;
  esac
done

for tool in munged slurmctld slurmd sinfo; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    echo "local-slurm-start: $tool not found; install the Debian packages slurm-wlm and munge" \
         "(bash scripts/setup.sh does)" >&2
    exit 1
  fi
done
export PATH="$PATH:/usr/sbin:/sbin"

if [ -z "$dir" ]; then
  dir="$(mktemp -d "${TMPDIR:-/tmp}/diffsearch-slurm.XXXXXX")"
else
  mkdir -p "$dir"
fi
dir="$(cd "$dir" && pwd)"
case "$dir" in
  *[[:space:]]*) echo "local-slurm-start: '$dir' has blanks, which slurm.conf cannot hold; choose another folder" >&2
                 exit 2 ;;
esac
# munged insists that every folder above its socket is searchable by all.
chmod 711 "$dir"
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log" "$dir/tmp"
chmod 755 "$dir/munge"

fail() {
  echo "local-slurm-start: $*" >&2
  for log in "$dir"/log/*.log; do
    [ -f "$log" ] && { echo "== $log" >&2; tail -n 20 "$log" >&2; }
  done
  bash "$here/local-slurm-stop.sh" --keep "$dir" >&2 || true
  exit 1
}

# Two consecutive free TCP ports (slurmctld, slurmd). The search starts at a
# place that depends on our pid, so clusters started at the same moment (tests
# run in parallel) are unlikely to race for the same ports.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port="${DIFFSEARCH_SLURM_PORT:-$((16817 + ($$ % 500) * 2))}"
first_port="$port"
while ! { port_free "$port" && port_free $((port + 1)); }; do
  port=$((port + 2))
  [ "$port" -lt 65000 ] || fail "no two free ports from $first_port up"
done

# munge: a key of our own, a socket in DIR (slurm.conf's AuthInfo points at it).
if [ ! -f "$dir/munge/munge.key" ]; then
  head -c 1024 /dev/urandom > "$dir/munge/munge.key"
fi
chmod 400 "$dir/munge/munge.key"
munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
  || fail "munged did not start"

# The node as slurmd sees the hardware ("NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105").
node_line="$(slurmd -C 2>/dev/null | head -n 1)"
case "$node_line" in
  NodeName=*) ;;
  *) node_line="NodeName=$(hostname -s) CPUs=$(nproc) RealMemory=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)" ;;
esac
node="${node_line#NodeName=}"
node="${node%% *}"
mpi_default=none
if [ -n "$(find /usr/lib /usr/lib64 -name mpi_pmix.so -print -quit 2>/dev/null)" ]; then
  mpi_default=pmix
fi

cat > "$dir/slurm.conf" <<EOF
# A one-node Slurm for diffsearch's tests, written by slurm/testing/local-slurm-start.sh.
ClusterName=diffsearch-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No cgroups in a container: processes tracked by their parent links.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=$mpi_default
JobRequeue=1
# Clusters side by side (parallel tests) must not share job ids: the PMIx
# plugin names its folders after them. Its folders go to TmpFS, ours too.
FirstJobId=$((port * 10))
TmpFS=$dir/tmp
ReturnToService=2
KillWait=30
MinJobAge=600
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"

# Ready when the node is idle (slurmd registered, nothing running).
for _ in $(seq 1 60); do
  state="$(sinfo -h -n "$node" -o '%T' 2>/dev/null || true)"
  [ "$state" = "idle" ] && break
  sleep 0.5
done
[ "$state" = "idle" ] || fail "the node did not become idle within 30 s (sinfo says '${state:-nothing}')"

if [ -n "$stop_with" ]; then
  # Detached from our stdout, so `eval "$(...)"` does not wait for it.
  # shellcheck disable=SC2016  # $1.. expand in the watchdog's shell, not here
  nohup bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; bash "$2" "$3"' \
    watchdog "$stop_with" "$here/local-slurm-stop.sh" "$dir" >"$dir/log/watchdog.log" 2>&1 &
  echo $! > "$dir/watchdog.pid"
fi

cat > "$dir/env.sh" <<EOF
export SLURM_CONF=$dir/slurm.conf
export DIFFSEARCH_SLURM_DIR=$dir
EOF
echo "local-slurm-start: one node ($node_line) up; state in $dir" >&2
cat "$dir/env.sh"
