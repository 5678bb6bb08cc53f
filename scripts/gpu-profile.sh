#!/usr/bin/env bash
# One call on the GPU machine (the `device` tool): build the engine benchmark
# against PyTorch's CUDA libtorch and break a full-size SD1.5 512px fp16 run
# down into its phases and steps (encode, each step, decode), with and
# without accelerations; with nsys when the machine has it, the GPU's own
# busy time. Results land in $OUT.
set -uo pipefail
out="${OUT:-/tmp/gpu-profile}"
mkdir -p "$out"
nvidia-smi -L | tee "$out/gpu.txt"
prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
build="${BUILD:-build-gpu-profile}"
t0=$(date +%s)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DDIFFSEARCH_BUILD_BENCH=ON > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target diffsearch bench_engine > "$out/build.log" 2>&1 \
  || { grep -E "error" "$out/build.log" | head -30; exit 1; }
echo "build ok in $(( $(date +%s) - t0 )) s"
model=/tmp/sd15-full; [ -d "$model" ] || "$build/diffsearch" synth-model --like sd15 --full-size --dtype fp16 --out "$model" --log-level warn
bench="$build/bench/bench_engine --model $model --steps 50"
variants=(--variant "deepcache_i3_b0=deepcache:cache_interval=3,cache_branch_id=0"
  --variant "deepcache_i5_b0=deepcache:cache_interval=5,cache_branch_id=0"
  --variant "tome_0.5=tome:ratio=0.5"
  --variant "tgate_gate20=tgate:gate_step=20")
variants+=(--variant "tome_0.5_norand=tome:ratio=0.5,use_rand=false")
if [ -n "${KERNEL_CONFIGS:-}" ]; then
  # Each "SDPA:CHANNELS_LAST" configuration of the engine's kernel knobs in turn.
  for cfg in $KERNEL_CONFIGS; do
    echo "== DIFFSEARCH_SDPA=${cfg%%:*} DIFFSEARCH_CHANNELS_LAST=${cfg##*:}"
    DIFFSEARCH_SDPA="${cfg%%:*}" DIFFSEARCH_CHANNELS_LAST="${cfg##*:}" \
      $bench --rounds "${ROUNDS:-5}" --json "$out/kernels-${cfg/:/-}.json" "${variants[@]}" "$@" 2>&1 \
      | tee "$out/kernels-${cfg/:/-}.txt"
  done
  exit 0
fi
$bench --rounds "${ROUNDS:-5}" --json "$out/plain.json" "${variants[@]}" "$@" 2>&1 | tee "$out/plain.txt"
$bench --rounds 3 --breakdown --json "$out/breakdown.json" "${variants[@]}" \
  --variant "deepcache_i50_b0=deepcache:cache_interval=50,cache_branch_id=0" "$@" 2>&1 | tee "$out/breakdown.txt"
if command -v nsys > /dev/null; then
  for v in baseline "deepcache_i5_b0=deepcache:cache_interval=5,cache_branch_id=0"; do
    name="${v%%=*}"
    args=(); [ "$v" != baseline ] && args=(--variant "$v")
    nsys profile -o "$out/nsys-$name" --force-overwrite true -t cuda,nvtx $bench --rounds 2 "${args[@]}" \
      > "$out/nsys-$name.log" 2>&1
    nsys stats -q --report cuda_gpu_kern_sum --format csv "$out/nsys-$name.nsys-rep" > "$out/nsys-$name-kern.csv" 2>&1
    nsys stats -q --report cuda_api_sum --format csv "$out/nsys-$name.nsys-rep" > "$out/nsys-$name-api.csv" 2>&1
    rm -f "$out/nsys-$name.nsys-rep" "$out/nsys-$name.sqlite"
  done
else
  echo "no nsys on this machine"
fi
