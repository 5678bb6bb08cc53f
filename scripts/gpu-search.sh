#!/usr/bin/env bash
# One call on the GPU machine (the `device` tool): build diffsearch against
# PyTorch's CUDA libtorch, then run the distributed search for real on a
# full-size random SD1.5 in fp16: one coordinator and one worker per GPU
# (NWORKERS to override; on a one-GPU machine they share it), a DDIM 50-step
# DeepCache/ToMe slice with wall-clock speedups, then distill and a check
# that the results file is complete and every worker measured. Also the CUDA
# twins of the engine tests. Results land in $OUT.
set -uo pipefail
out="${OUT:-/tmp/gpu-search}"
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
nvidia-smi -L | tee "$out/gpu.txt"
gpus=$(nvidia-smi -L | wc -l)
workers="${NWORKERS:-$gpus}"
prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
build=build-gpu-search
t0=$(date +%s)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" > "$out/configure.log" 2>&1 \
  || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target diffsearch ${TEST_TARGETS:-} > "$out/build.log" 2>&1 \
  || { grep -E "error" "$out/build.log" | head -30; exit 1; }
echo "build ok in $(( $(date +%s) - t0 )) s"
if [ -n "${TEST_TARGETS:-}" ]; then
  (cd "$build" && OMP_NUM_THREADS=4 ctest -R Cuda --timeout 300 --output-on-failure > "$out/ctest.log" 2>&1)
  grep -E "tests passed|tests failed" "$out/ctest.log"
fi
model=/tmp/sd15-full; [ -d "$model" ] || "$build/diffsearch" synth-model --like sd15 --full-size --dtype fp16 --out "$model" --log-level warn
echo "{\"SD1.5\": \"$model\"}" > "$out/models.json"
echo '{"deepcache": {"cache_interval": [2, 3, 5], "cache_branch_id": [0]}, "tome": {"ratio": [0.3, 0.5], "max_downsample": [1]}}' > "$out/space.json"
"$build/diffsearch" grid --category 4 | grep "DDIM sampler with 50 steps" | grep "SD1.5" \
  | grep -E "accelerated by (DeepCache|ToMe|DeepCache and ToMe) with" > "$out/tasks.txt"
echo "$(wc -l < "$out/tasks.txt") tasks"
t0=$(date +%s)
mpirun --oversubscribe -np $((workers + 1)) "$build/diffsearch" search --tasks "$out/tasks.txt" \
  --models "$out/models.json" --clip tests/data/fixtures/models/tiny-clip --space "$out/space.json" \
  --out "$out/results.h5" --device cuda --dtype float16 --num-samples "${SAMPLES:-4}" --batch-size 2 \
  --progress-interval 10 2>&1 | tee "$out/search.log" | grep -E "progress|search:|error|warn" | tail -8
echo "search rc ${PIPESTATUS[0]} in $(( $(date +%s) - t0 )) s"
"$build/diffsearch" distill "$out/results.h5" --tasks "$out/tasks.txt" -o "$out/search_params.json" --table | tail -30
"$build/diffsearch" status "$out/results.h5" | tee "$out/status.txt"
python3 - "$out/results.h5" <<'PY' | tee "$out/check.txt"
import sys, collections
try:
    import h5py
except ImportError:
    sys.exit("h5py is not on this machine: the check ran on the CPU machine instead")
f = h5py.File(sys.argv[1], "r")
ev = f["evaluations"][:]
by = collections.Counter((int(r["rank"]), r["device"].decode()) for r in ev)
print("rows", len(ev), "ok", int(sum(r["status"] == b"ok" for r in ev)))
for (rank, dev), n in sorted(by.items()):
    print(f"rank {rank} on {dev}: {n} rows")
PY
