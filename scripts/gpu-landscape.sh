#!/usr/bin/env bash
# One call on the GPU machine (the `device` tool): record an exhaustive
# landscape for the frontier strategy's benchmark (bench/bench_search_cost.cc,
# --evaluator replay:FILE). Full-size random SD1.5 weights in fp16, DDIM
# ${STEPS:-10} steps, 8 prompts at batch 8, --quality ssim (random weights make
# CLIP scores meaningless; SSIM against the baseline image is not):
#   singles.h5  every DeepCache, ToMe and T-GATE setting of the default spaces;
#   product.h5  a reduced DeepCache+ToMe product (data/landscape/product-space.json).
# Timed eagerly (DIFFSEARCH_CUDA_GRAPHS=0): a capture per setting would cost
# two more samples each, and at batch 8 the GPU, not the launches, sets the
# time. Expects a built diffsearch in $BUILD (scripts/gpu-batch.sh builds it)
# or builds it. Results land in $OUT (gzipped journals too).
set -uo pipefail
out="${OUT:-/tmp/gpu-landscape}"
mkdir -p "$out"
root="$PWD"
if [ -n "${SRC:-}" ]; then
  [ -d /tmp/src ] || { mkdir -p /tmp/src && tar -xzf "$SRC" -C /tmp/src; }
  cd /tmp/src
fi
build="${BUILD:-/tmp/build-gpu-batch}"
if [ ! -x "$build/diffsearch" ]; then
  prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  nvcc_path="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DDIFFSEARCH_CUDA_KERNELS=ON -DCMAKE_CUDA_COMPILER="$nvcc_path" > /tmp/configure.log 2>&1 \
    || { tail -30 /tmp/configure.log; exit 1; }
  cmake --build "$build" -j "$(nproc)" --target diffsearch > "$out/build.log" 2>&1 \
    || { grep -E "error" "$out/build.log" | head -30; exit 1; }
fi
bin="$build/diffsearch"
model=/tmp/sd15-full
[ -d "$model" ] || "$bin" synth-model --like sd15 --full-size --dtype fp16 --out "$model" --log-level warn
echo "{\"SD1.5\": \"$model\"}" > /tmp/models.json
steps="${STEPS:-10}"
# One task per space: the spaces, not the targets, are what is recorded.
task="Generate a SD1.5 pipeline using the DDIM sampler with $steps steps, accelerated by"
printf '%s\n' "$task DeepCache" "$task ToMe" "$task T-GATE" > /tmp/singles.txt
printf '%s\n' "$task DeepCache and ToMe" > /tmp/product.txt
common=(--models /tmp/models.json --clip tests/data/fixtures/models/tiny-clip --device cuda --dtype float16
  --num-samples 8 --batch-size 8 --quality ssim --strategy exhaustive --progress-interval 60)
t0=$(date +%s)
for part in ${PARTS:-singles product}; do
  tp=$(date +%s)
  space=()
  [ "$part" = product ] && space=(--space "$root/data/landscape/product-space.json")
  DIFFSEARCH_CUDA_GRAPHS=0 "$bin" search --tasks "/tmp/$part.txt" "${common[@]}" "${space[@]}" \
    --out "/tmp/$part.h5" --isolate off 2>&1 | tee "$out/$part.log" | grep -E "progress|search:|error" | tail -4
  echo "$part: rc ${PIPESTATUS[0]} in $(( $(date +%s) - tp )) s ($(( $(date +%s) - t0 )) s in all)"
  "$bin" status "/tmp/$part.h5" | tee "$out/$part-status.txt" | head -12
  cp "/tmp/$part.h5" "$out/$part.h5"
done
if [ "${ISOLATION_CHECK:-0}" = 1 ]; then
  # The cost of isolation on the GPU: the product part again, each worker's
  # units in a child process (--isolate on, the CLI's default), against the
  # run above without it. Same units, same card, same call.
  t1=$(date +%s)
  DIFFSEARCH_CUDA_GRAPHS=0 "$bin" search --tasks /tmp/product.txt "${common[@]}" \
    --space "$root/data/landscape/product-space.json" --out /tmp/product-isolated.h5 --isolate on \
    > "$out/product-isolated.log" 2>&1
  echo "product isolated: rc $? after $(( $(date +%s) - t1 )) s"
  "$bin" status /tmp/product-isolated.h5 --json > "$out/product-isolated-status.json"
  "$bin" status /tmp/product.h5 --json > "$out/product-status.json"
fi
ls -la "$out"
