#!/usr/bin/env bash
# Records an exhaustive landscape of the tiny models on the CPU, for the
# frontier strategy's replay benchmark (bench_search_cost replay): all six
# method combinations of category 4's DDIM 20-step slice for the three
# models, the reduced space data/demo/replay-space.json, 8 prompts, MAC
# speedups. About 15 minutes on 2 cores. Usage: bench/record-tiny-landscape.sh OUT.h5
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: $0 OUT.h5}"
bin="${BIN:-build/diffsearch}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tasks="$(mktemp)"
"$bin" grid --category 4 | grep "DDIM sampler with 20 steps" > "$tasks"
mpirun --oversubscribe -np "${NP:-3}" "$bin" search --tasks "$tasks" --strategy exhaustive \
  --models data/demo/models.json --clip tests/data/fixtures/models/tiny-clip \
  --space data/demo/replay-space.json --out "$out" --num-samples 8 --batch-size 8 --speed-measure macs \
  --resolution SD1.5=64 --resolution SD2.1=64 --resolution SDXL=64 --progress-interval 30
echo "tasks: $tasks"
