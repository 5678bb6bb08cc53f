#!/usr/bin/env bash
# Coordinator benchmark: units per second through rank 0 with the null
# evaluator (no GPU work: what the dispatch loop, the protocol and the results
# file allow), with 7 workers by default, for each journal sync mode. The
# rate is the coordinator's own (its last progress line: units settled since
# dispatch began, over that time), so process start-up and planning do not
# count. Writes JSON (default docs/bench/coordinator.json).
#
#   bash bench/bench_coordinator.sh [--bin build/diffsearch] [--np 8]
#        [--filter sd15/ddim/20/] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/diffsearch np=8 filter=sd15/ddim/20/ json=docs/bench/coordinator.json
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --np) np="$2"; shift 2 ;;
    --filter) filter="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    *) echo "bench_coordinator: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "bench_coordinator: $bin not built (bash scripts/build.sh)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fixtures=tests/data/fixtures/models
printf '{"SD1.5": "%s", "SD2.1": "%s", "SDXL": "%s"}\n' "$PWD/$fixtures/tiny-sd15" \
  "$PWD/$fixtures/tiny-sd21" "$PWD/$fixtures/tiny-sdxl" > "$work/models.json"
cases=()
for sync in 0 0.05; do
  rm -f "$work/r.h5" "$work/r.h5.journal"
  start=$(date +%s.%N)
  mpirun --oversubscribe -np "$np" "$bin" search --grid 4 --filter "$filter" \
    --models "$work/models.json" --clip "$fixtures/tiny-clip" --out "$work/r.h5" \
    --evaluator null --strategy exhaustive --num-samples 1 --journal-sync "$sync" --progress-interval 1 \
    > "$work/log.txt" 2>&1 || { tail -20 "$work/log.txt"; exit 1; }
  wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  last=$(grep "progress:" "$work/log.txt" | tail -1)
  # "progress: S/S spaces (...), D/T items released so far, R items/s, ..."
  done_units=$(echo "$last" | sed -n 's/.* \([0-9]*\)\/\([0-9]*\) items released.*/\1/p')
  total_units=$(echo "$last" | sed -n 's/.* \([0-9]*\)\/\([0-9]*\) items released.*/\2/p')
  rate=$(echo "$last" | sed -n 's/.*, \([0-9.]*\) items\/s.*/\1/p')
  [ "$done_units" = "$total_units" ] || { echo "bench_coordinator: search incomplete: $last" >&2; exit 1; }
  rows=$(/usr/bin/python3 -c "import h5py,sys; print(len(h5py.File(sys.argv[1])['evaluations']))" "$work/r.h5")
  [ "$rows" = "$total_units" ] || { echo "bench_coordinator: $rows rows for $total_units units" >&2; exit 1; }
  printf 'journal sync %-5s %8s units, %2d processes: %9s units/s through rank 0 (%.1f s wall incl. start-up)\n' \
    "$sync" "$total_units" "$np" "$rate" "$wall"
  cases+=("{\"journal_sync_s\": $sync, \"units\": $total_units, \"processes\": $np, \"units_per_s\": $rate, \"wall_s\": $wall}")
done
mkdir -p "$(dirname "$json")"
{
  echo "{\"filter\": \"$filter\", \"cores\": $(nproc), \"host\": \"$(hostname)\", \"date\": \"$(date -u +%FT%TZ)\","
  echo " \"cases\": [$(IFS=,; echo "${cases[*]}")]}"
} > "$json"
echo "written $json"
