#!/usr/bin/env bash
# Sets up, builds and runs the main job on the embedded default: a real
# distributed search (mpirun -np 3, CPU, the frontier strategy) over the DDIM
# 20-step slice of the category-4 grid on the tiny models, what it saved
# against an exhaustive search, then distill, a table of answers, a
# diffusers script per answered task (codegen) and the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin="$PWD/build/diffsearch"
work="${DEMO_DIR:-$PWD/build/demo}"
rm -rf "$work" && mkdir -p "$work"

echo "== category 4: $($bin grid --category 4 | wc -l) tasks; this demo answers the DDIM 20-step slice"
$bin grid --category 4 | grep "DDIM sampler with 20 steps" > "$work/tasks.txt"
$bin plan --tasks "$work/tasks.txt" --space data/demo/space.json --samples 2 --workers 2
echo
echo "== search (frontier strategy): 1 coordinator + 2 workers on the CPU, tiny models at 64x64, MAC speedups"
mpirun --oversubscribe -np 3 "$bin" search --tasks "$work/tasks.txt" \
  --models data/demo/models.json --clip tests/data/fixtures/models/tiny-clip \
  --space data/demo/space.json --out "$work/results.h5" \
  --num-samples 2 --batch-size 2 --speed-measure macs \
  --resolution SD1.5=64 --resolution SD2.1=64 --resolution SDXL=64
echo
echo "== what the frontier strategy spent, against measuring every setting (diffsearch status)"
$bin status "$work/results.h5" | grep -E '^(strategy|spaces):'
echo
echo "== the same tasks at the documented default spaces (about 89,000 settings per model), on the simulated"
echo "   landscape of --evaluator synthetic: what the frontier strategy saves at the scale it exists for"
$bin search --tasks "$work/tasks.txt" --evaluator synthetic --out "$work/synthetic.h5" --progress-interval 600 \
  2> "$work/synthetic.log"
$bin status "$work/synthetic.h5" | grep -E '^(strategy|spaces):'
echo
echo "== distill -> $work/search_params.json"
$bin distill "$work/results.h5" --tasks "$work/tasks.txt" -o "$work/search_params.json" --table
echo
echo "== codegen -> $work/code (a diffusers script per answered task)"
# Exit 1 only means some tasks have no ok answer (infeasible on the demo's
# small space); codegen names each one in its log and writes the rest.
code_rc=0
$bin codegen --params "$work/search_params.json" --tasks "$work/tasks.txt" -o "$work/code" \
  --results "$work/results.h5" 2> "$work/codegen.log" || code_rc=$?
if [ "$code_rc" -gt 1 ]; then cat "$work/codegen.log"; exit "$code_rc"; fi
echo "wrote $(ls "$work/code" | grep -c '\.py$') scripts (table: $work/code/README.md)"
if [ "$code_rc" -eq 1 ]; then
  echo "$(grep -m1 '^error: ' "$work/codegen.log" | sed 's/^error: //; s/:$//') (why: $work/codegen.log)"
fi
echo
echo "== report -> $work/report.html (one self-contained page: planes, fronts, answers, timeline; open it in a browser)"
$bin report "$work/results.h5" --tasks "$work/tasks.txt" -o "$work/report.html"
