#!/usr/bin/env bash
# Stops a one-node Slurm started by local-slurm-start.sh and removes its
# folder: cancels its jobs (so no job step outlives the daemons), stops
# slurmd, slurmctld and munged by the pids in the folder, then deletes it.
#
#   bash slurm/testing/local-slurm-stop.sh DIR [--keep]   (--keep: leave DIR, e.g. to read its logs)
set -uo pipefail

dir=""
keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) dir="$arg" ;;
  esac
done
[ -n "$dir" ] || { echo "local-slurm-stop: which cluster? pass its folder (\$DIFFSEARCH_SLURM_DIR)" >&2; exit 2; }
[ -d "$dir" ] || exit 0
[ -f "$dir/slurm.conf" ] || { echo "local-slurm-stop: $dir holds no slurm.conf; not a local Slurm folder" >&2; exit 2; }
export SLURM_CONF="$dir/slurm.conf"
export PATH="$PATH:/usr/sbin:/sbin"

pid_of() { [ -f "$dir/$1.pid" ] && cat "$dir/$1.pid" 2>/dev/null; }
# A zombie (exited, waiting for a parent that may never reap it) counts as gone.
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }

# Jobs first: their steps (slurmstepd and the job's processes) would outlive slurmd.
if alive "$(pid_of slurmctld)"; then
  jobs="$(squeue -h -o '%A' 2>/dev/null | sort -u)"
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 1 40); do
      [ -z "$(squeue -h -t running,completing -o '%A' 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
fi

for daemon in watchdog slurmd slurmctld munged; do
  pid="$(pid_of "$daemon")"
  alive "$pid" || continue
  # The watchdog may be what runs this script (bash execs it in place).
  [ "$daemon" = watchdog ] && { [ "$pid" = "$$" ] || [ "$pid" = "$PPID" ]; } && continue
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do
    alive "$pid" || break
    sleep 0.1
  done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
done

if [ "$keep" -eq 0 ]; then
  rm -rf "$dir"
fi
exit 0
