#!/usr/bin/env bash
# What isolation (--isolate on: evaluations in a child process per worker)
# costs: the same search with --isolate on and off, interleaved, REPS times.
#   null:  mpirun -np NP, the null evaluator, exhaustive, --num-samples 1
#          over --filter FILTER: the per-unit cost (a socket round trip and
#          the CBOR of a unit and a record), read as rank 0's units/s.
#   demo:  the demo's search (scripts/run-demo.sh: tiny models on the CPU,
#          the engine, mpirun -np 3, frontier), wall time: what a real
#          evaluator pays (a child start with libtorch per worker).
# Writes JSON (default docs/bench/isolation.json).
#
#   bash bench/bench_isolation.sh [--bin build/diffsearch] [--np 3] [--reps 2]
#        [--demo-reps 1] [--filter sd15/ddim/20/deepcache+tgate/] [--no-demo] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/diffsearch np=3 reps=2 demo_reps=1 filter=sd15/ddim/20/deepcache+tgate/ demo=1 json=docs/bench/isolation.json
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --np) np="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --demo-reps) demo_reps="$2"; shift 2 ;;
    --filter) filter="$2"; shift 2 ;;
    --no-demo) demo=0; shift ;;
    --json) json="$2"; shift 2 ;;
    *) echo "bench_isolation: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "bench_isolation: $bin not built (bash scripts/build.sh)" >&2; exit 2; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
cases=()
for rep in $(seq "$reps"); do
  for iso in on off; do
    rm -f "$work/n.h5" "$work/n.h5.journal"
    start=$(now)
    mpirun --oversubscribe -np "$np" "$bin" search --grid 4 --filter "$filter" --out "$work/n.h5" \
      --evaluator null --strategy exhaustive --num-samples 1 --progress-interval 1 --isolate "$iso" \
      > "$work/log.txt" 2>&1 || { tail -20 "$work/log.txt"; exit 1; }
    wall=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
    last=$(grep "progress:" "$work/log.txt" | tail -1)
    units=$(echo "$last" | sed -n 's/.* \([0-9]*\)\/\([0-9]*\) items released.*/\2/p')
    rate=$(echo "$last" | sed -n 's/.*, \([0-9.]*\) items\/s.*/\1/p')
    printf 'null  isolate %-3s rep %d: %6s units, %9s units/s through rank 0, %6.1f s wall\n' "$iso" "$rep" "$units" "$rate" "$wall"
    cases+=("{\"case\": \"null\", \"isolate\": \"$iso\", \"rep\": $rep, \"processes\": $np, \"units\": $units, \"units_per_s\": $rate, \"wall_s\": $wall}")
  done
done
if [ "$demo" = 1 ]; then
  "$bin" grid --category 4 | grep "DDIM sampler with 20 steps" > "$work/tasks.txt"
  for rep in $(seq "$demo_reps"); do
    for iso in on off; do
      rm -f "$work/d.h5" "$work/d.h5.journal"
      start=$(now)
      mpirun --oversubscribe -np 3 "$bin" search --tasks "$work/tasks.txt" \
        --models data/demo/models.json --clip tests/data/fixtures/models/tiny-clip \
        --space data/demo/space.json --out "$work/d.h5" --num-samples 2 --batch-size 2 --speed-measure macs \
        --resolution SD1.5=64 --resolution SD2.1=64 --resolution SDXL=64 --progress-interval 600 --isolate "$iso" \
        > "$work/log.txt" 2>&1 || { tail -20 "$work/log.txt"; exit 1; }
      wall=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
      rows=$(grep -c '"kind":"evaluation"' "$work/d.h5.journal" || true)
      printf 'demo  isolate %-3s rep %d: %6s rows, %6.1f s wall\n' "$iso" "$rep" "$rows" "$wall"
      cases+=("{\"case\": \"demo\", \"isolate\": \"$iso\", \"rep\": $rep, \"processes\": 3, \"rows\": $rows, \"wall_s\": $wall}")
    done
  done
fi
mkdir -p "$(dirname "$json")"
{
  echo "{\"filter\": \"$filter\", \"cores\": $(nproc), \"load_average\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
  echo " \"host\": \"$(hostname)\", \"date\": \"$(date -u +%FT%TZ)\","
  echo " \"cases\": [$(IFS=,; echo "${cases[*]}")]}"
} > "$json"
echo "written $json"
