#!/usr/bin/env bash
# One call on the GPU machine (the `device` tool): build against PyTorch's CUDA
# libtorch, run the engine tests (their CUDA twins included), then benchmark a
# full-size random SD1.5 at 512x512, fp16, 50 DDIM steps, batch 1 with CFG,
# the baseline and the accelerations timed in one run. Results land in $OUT.
set -uo pipefail
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
nvidia-smi -L | tee "$out/gpu.txt"
prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
cmake -S . -B build-gpu-check -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DDIFFSEARCH_BUILD_BENCH=ON > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu-check -j "$(nproc)" > "$out/build.log" 2>&1 || { grep -E "error" "$out/build.log" | head -30; exit 1; }
echo "build ok"
export DIFFSEARCH_CUDA_REPORT="$out/cuda-report.txt"
# The CPU float64 tests run on the CPU machine; here only the CUDA twins, with
# few threads each (16 threads x parallel tests thrash the cores).
export OMP_NUM_THREADS=4
(cd build-gpu-check && ctest -R "${CTEST_FILTER:-Cuda}" -j 2 --timeout 300 --output-on-failure > "$out/ctest.log" 2>&1)
grep -E "tests passed|tests failed" "$out/ctest.log"
grep -A30 "The following tests FAILED" "$out/ctest.log" | head -30
model=/tmp/sd15-full-check; rm -rf "$model"
build-gpu-check/diffsearch synth-model --like sd15 --full-size --dtype fp16 --out "$model" --log-level warn
build-gpu-check/bench/bench_engine --model "$model" --steps 50 --rounds "${ROUNDS:-10}" --json "$out/bench_sd15.json" \
  --variant "deepcache_i3_b0=deepcache:cache_interval=3,cache_branch_id=0" \
  --variant "deepcache_i5_b0=deepcache:cache_interval=5,cache_branch_id=0" \
  --variant "tome_0.5=tome:ratio=0.5" \
  --variant "tgate_gate20=tgate:gate_step=20" \
  "$@" 2>&1 | tee "$out/bench_sd15.txt"
cat "$out/cuda-report.txt" 2>/dev/null
