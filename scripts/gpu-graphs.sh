#!/usr/bin/env bash
# One call on the GPU machine (the `device` tool): build against PyTorch's CUDA
# libtorch, check CUDA-graph replays against eager runs (every sampler and
# acceleration, tests/worker/engine/pipeline/sample_runner_test.cc), then benchmark a
# full-size random SD1.5 at 512x512, fp16, 50 DDIM steps, batch 1 with CFG:
# every variant replayed from CUDA graphs (EAGER_TOO=1: and run eagerly, in
# the same rounds). PROFILE=1 adds one eager run of a few variants under the
# profiler, summed by region (scripts/trace_summary.py); MODE=diag stops
# before the benchmark; ATEN_TOO=0 skips the second process that times the
# runs with the engine's kernels switched off. Results land in $OUT.
set -uo pipefail
out="${OUT:-/tmp/gpu-graphs}"
mkdir -p "$out"
nvidia-smi -L | tee "$out/gpu.txt"
prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
build="${BUILD:-build-gpu-graphs}"
t0=$(date +%s)
# The engine's own CUDA kernels (ToMe's matching, GroupNorm) are built unless
# KERNELS=0; where built, the same runs are also timed with them switched off.
kernels=(-DDIFFSEARCH_CUDA_KERNELS=OFF)
if [ "${KERNELS:-1}" = 1 ]; then
  nvcc_path="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  kernels=(-DDIFFSEARCH_CUDA_KERNELS=ON -DCMAKE_CUDA_COMPILER="$nvcc_path")
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DDIFFSEARCH_BUILD_BENCH=ON "${kernels[@]}" > /tmp/configure.log 2>&1 \
  || { tail -30 /tmp/configure.log; exit 1; }
cmake --build "$build" -j "$(nproc)" --target diffsearch bench_engine test_worker_engine_pipeline_sample_runner \
  test_worker_engine_pipeline_graph_ops_cuda test_worker_engine_core_nn test_worker_engine_models_unet test_worker_engine_models_vae \
  test_worker_engine_core_device test_worker_engine_kernels_tome_kernels test_worker_engine_kernels_group_norm_kernels \
  test_worker_engine_kernels_cuda_kernels \
  > "$out/build.log" 2>&1 || { grep -E "error" "$out/build.log" | head -30; exit 1; }
echo "build ok in $(( $(date +%s) - t0 )) s"
# Each test in its own process (a device-side assertion ends a process).
(cd "$build" && OMP_NUM_THREADS=4 ctest -R "SampleRunner|GraphOps|GroupNorm|Conv2dWeights|ChannelsLast|Cuda|ToMeKernels|NormKernels" --timeout 300 --output-on-failure > "$out/sample_runner_test.log" 2>&1)
grep -E "tests passed|tests failed|\*\*\*Failed|Exception|SEGFAULT" "$out/sample_runner_test.log" | head -30
grep -E "run [0-9]: |Failure|rel_err|Which is|capture" "$out/sample_runner_test.log" | head -60
model=/tmp/sd15-full; [ -d "$model" ] || "$build/diffsearch" synth-model --like sd15 --full-size --dtype fp16 --out "$model" --log-level warn
# The VAE decoder alone (the fixed cost that bounds DeepCache's ratios).
"$build/bench/bench_engine" --model "$model" --decode-only 30 2>&1 | tee "$out/decode.txt"
if [ "${PROFILE:-0}" = 1 ]; then
  # One eager run of each variant under the profiler (10 steps keep the traces
  # small), its GPU time summed by the engine's regions.
  mkdir -p /tmp/prof
  "$build/bench/bench_engine" --model "$model" --steps 10 --profile /tmp/prof \
    --variant "deepcache_i3_b0=deepcache:cache_interval=3,cache_branch_id=0" \
    --variant "tome_0.5=tome:ratio=0.5" 2>&1 | tail -5
  # One file for all (at most 8 files come back from the machine).
  for f in /tmp/prof/*.json; do
    echo "=== $(basename "$f" .json)"
    python3 scripts/trace_summary.py "$f" --top unet --top vae_decode --top transformer_begin \
      --top tome_merge --top tome_unmerge --top attn1 --top resnet --top transformer 2>&1
  done > "$out/profile.txt"
fi
[ "${MODE:-all}" = diag ] && exit 0
variants=(--variant "deepcache_i3_b0=deepcache:cache_interval=3,cache_branch_id=0"
  --variant "deepcache_i5_b0=deepcache:cache_interval=5,cache_branch_id=0"
  --variant "deepcache_i50_b0=deepcache:cache_interval=50,cache_branch_id=0"
  --variant "tgate_gate20=tgate:gate_step=20")
if grep -q "tests failed out" "$out/sample_runner_test.log" && grep -q "setting2 .*Failed\|setting2 .*SegFault" "$out/sample_runner_test.log"; then
  echo "ToMe replays failed their test: benchmark without ToMe"
else
  variants+=(--variant "tome_0.5=tome:ratio=0.5" --variant "tome_0.5_norand=tome:ratio=0.5,use_rand=false")
fi
eager=(); [ "${EAGER_TOO:-0}" = 1 ] && eager=(--eager-too)
"$build/bench/bench_engine" --model "$model" --steps 50 "${eager[@]}" --rounds "${ROUNDS:-10}" \
  --json "$out/graphs.json" "${variants[@]}" "$@" 2>&1 | tee "$out/graphs.txt"
if [ "${KERNELS:-1}" = 1 ] && [ "${ATEN_TOO:-1}" = 1 ]; then
  # The same runs on ATen's kernels alone, in a process of their own (a graph
  # is keyed by the setting, not by the kernels inside it).
  DIFFSEARCH_TOME_KERNELS=0 DIFFSEARCH_NORM_KERNELS=0 "$build/bench/bench_engine" --model "$model" --steps 50 \
    --rounds "${ROUNDS:-10}" --json /tmp/graphs-aten.json \
    --variant "deepcache_i5_b0=deepcache:cache_interval=5,cache_branch_id=0" \
    --variant "tome_0.5=tome:ratio=0.5" \
    --variant "tome_0.5_norand=tome:ratio=0.5,use_rand=false" 2>&1 | tee "$out/graphs-aten.txt"
  DIFFSEARCH_NORM_KERNELS=0 "$build/bench/bench_engine" --model "$model" --decode-only 30 2>&1 \
    | sed 's/^/ATen GroupNorm: /' | tee -a "$out/decode.txt"
fi
