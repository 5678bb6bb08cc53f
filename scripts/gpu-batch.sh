#!/usr/bin/env bash
# One call on the GPU machine (the `device` tool): the engine at batch 1 and
# batch 8 on full-size random fp16 SD1.5, SD2.1 and SDXL (50 DDIM steps, CFG,
# decode included), per image, with the share of the fp16 matrix rate its MACs
# imply, beside diffusers timed in the same call on the same folders
# (bench/diffusers_bench.py, its sources carried in .device/ and unpacked by
# scripts/diffusers-env.sh). ENGINE="sd15:1 sd15:8 sdxl:8:1" picks the
# engine's runs, MODEL:BATCH[:ROUNDS] (default MODELS x BATCHES, all three
# models at 1 and 8), DIFFUSERS_RUNS diffusers' (see below); ROUNDS=3;
# BREAKDOWN_MODELS="sd15" adds an eager phase-by-phase run at batch 8;
# PROFILE_MODELS="sd15 sdxl" one eager 5-step run at batch 8 under the
# profiler, its GPU time by region and by kind of kernel
# (scripts/trace_summary.py --classes); PEAK=1 what cuBLAS and cuDNN reach on
# the card for the UNet's shapes (bench/peak_rate.py); FIT=1 also
# checks that `evaluate` fits a smaller batch when the card is made small
# (DIFFSEARCH_CUDA_MEMORY_FRACTION) and that a search takes each model
# folder's own resolution. SRC=FILE.tar.gz builds from that snapshot instead
# of the working tree. TEST_TARGETS="test_x test_y" builds and runs those test
# binaries first (tests.log). AB="NAME=V1,V2" runs each engine run once per
# value of the environment variable NAME, alternating AB_REPEAT (default 1)
# times: a switch timed against itself in one call (e.g.
# AB="DIFFSEARCH_GEGLU_KERNELS=1,0"). Results land in $OUT.
set -uo pipefail
out="${OUT:-/tmp/gpu-batch}"
mkdir -p "$out"
root="$PWD"
if [ -n "${SRC:-}" ]; then
  rm -rf /tmp/src && mkdir -p /tmp/src && tar -xzf "$SRC" -C /tmp/src && cd /tmp/src
fi
nvidia-smi -L | tee "$out/gpu.txt"
prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
build="${BUILD:-/tmp/build-gpu-batch}"
t0=$(date +%s)
nvcc_path="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
if [ ! -x "$build/diffsearch" ] || [ "${REBUILD:-0}" = 1 ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DDIFFSEARCH_BUILD_BENCH=ON \
    -DDIFFSEARCH_CUDA_KERNELS=ON -DCMAKE_CUDA_COMPILER="$nvcc_path" > /tmp/configure.log 2>&1 \
    || { tail -30 /tmp/configure.log; exit 1; }
  cmake --build "$build" -j "$(nproc)" --target diffsearch bench_engine > "$out/build.log" 2>&1 \
    || { grep -E "error" "$out/build.log" | head -30; exit 1; }
  echo "build ok in $(( $(date +%s) - t0 )) s"
fi
bin="$build/diffsearch"
bench="$build/bench/bench_engine"

if [ -n "${TEST_TARGETS:-}" ]; then
  # shellcheck disable=SC2086
  cmake --build "$build" -j "$(nproc)" --target $TEST_TARGETS >> "$out/build.log" 2>&1 \
    || { grep -E "error" "$out/build.log" | head -30; exit 1; }
  for t in $TEST_TARGETS; do
    exe="$(find "$build" -name "$t" -type f -perm -u+x | head -1)"
    echo "== $t ($(date +%T))"
    timeout "${SEGMENT_S:-300}" "$exe" 2>&1 | tail -25
    echo "rc ${PIPESTATUS[0]}"
  done | tee "$out/tests.log"
fi

# Joins the JSON files that runs left (a run cut at SEGMENT_S leaves none or
# a partial one, skipped) into one list: join_json OUT FILE...
join_json() {
  python3 - "$@" <<'PY'
import json, os, sys
runs = []
for p in sys.argv[2:]:
    try:
        run = json.load(open(p))
    except (OSError, ValueError):
        continue
    if isinstance(run, dict):
        run["_file"] = os.path.basename(p)  # names the AB setting, if any
    runs.append(run)
json.dump(runs, open(sys.argv[1], "w"), indent=1)
PY
}

variants=(--variant "deepcache_i3=deepcache:cache_interval=3,cache_branch_id=0"
  --variant "deepcache_i5=deepcache:cache_interval=5,cache_branch_id=0"
  --variant "tome_0.5=tome:ratio=0.5"
  --variant "tgate_20=tgate:gate_step=20")
# ENGINE: the engine runs, MODEL:BATCH each; DIFFUSERS_RUNS: diffusers' runs,
# MODEL:BATCH[:VARIANT,VARIANT...] (all of bench/diffusers_bench.py's presets
# when none are named). Each run is cut at SEGMENT_S seconds, so a slow one
# costs its own numbers, not the call's.
engine_runs="${ENGINE:-}"
if [ -z "$engine_runs" ]; then
  for kind in ${MODELS:-sd15 sd21 sdxl}; do for b in ${BATCHES:-1 8}; do engine_runs+=" $kind:$b"; done; done
fi
if [ "${PEAK:-0}" = 1 ]; then
  echo "== what cuBLAS and cuDNN reach on this card ($(date +%T))"
  timeout "${SEGMENT_S:-300}" python3 "$root/bench/peak_rate.py" 2>&1 | tee "$out/peak-rate.txt"
fi
ab="${AB:-}"
ab_name="${ab%%=*}"
ab_values="plain"
repeats=1
if [ -n "$ab" ]; then ab_values="${ab#*=}"; ab_values="${ab_values//,/ }"; repeats="${AB_REPEAT:-1}"; fi
for run in $engine_runs; do
  IFS=: read -r kind b rounds <<< "$run"
  [ -d "/tmp/$kind-full" ] || "$bin" synth-model --like "$kind" --full-size --dtype fp16 --out "/tmp/$kind-full" --log-level warn
  for rep in $(seq "$repeats"); do
    for v in $ab_values; do
      setting=(); tag=""
      if [ -n "$ab" ]; then setting=("$ab_name=$v"); tag="-$ab_name-$v-$rep"; fi
      echo "== engine $kind batch $b ${setting[*]} ($(date +%T))"
      env "${setting[@]}" timeout "${SEGMENT_S:-300}" "$bench" --model "/tmp/$kind-full" --steps 50 --batch "$b" \
        --rounds "${rounds:-${ROUNDS:-3}}" --json "/tmp/engine-$kind-b$b$tag.json" "${variants[@]}" 2>&1 \
        | tee -a "$out/engine.txt" | tail -7
    done
  done
done
for kind in ${BREAKDOWN_MODELS:-}; do
  # Where the time goes at batch 8, eagerly, phase by phase.
  [ -d "/tmp/$kind-full" ] || "$bin" synth-model --like "$kind" --full-size --dtype fp16 --out "/tmp/$kind-full" --log-level warn
  timeout "${SEGMENT_S:-300}" "$bench" --model "/tmp/$kind-full" --steps 50 --batch 8 --rounds 1 --breakdown \
    --json "/tmp/breakdown-$kind.json" 2>&1 | tee -a "$out/engine-breakdown.txt" | tail -3
done
join_json "$out/engine.json" /tmp/engine-*.json /tmp/breakdown-*.json
for kind in ${PROFILE_MODELS:-}; do
  # Where the GPU time goes at batch 8, by region and by kind of kernel.
  [ -d "/tmp/$kind-full" ] || "$bin" synth-model --like "$kind" --full-size --dtype fp16 --out "/tmp/$kind-full" --log-level warn
  rm -rf "/tmp/prof-$kind" && mkdir -p "/tmp/prof-$kind"
  echo "== profile $kind batch 8 ($(date +%T))"
  timeout "${SEGMENT_S:-300}" "$bench" --model "/tmp/$kind-full" --steps 5 --batch 8 --profile "/tmp/prof-$kind" 2>&1 | tail -2
  for f in /tmp/prof-"$kind"/*.json; do
    echo "=== $kind batch 8, $(basename "$f" .json)"
    python3 "$root/scripts/trace_summary.py" "$f" --classes --depth 3 --top unet --top vae_decode 2>&1
  done >> "$out/profile.txt"
  grep -A8 "all GPU time by kind" "$out/profile.txt" | tail -9
done

if [ -n "${DIFFUSERS_RUNS:-}" ]; then
  # shellcheck disable=SC1091
  source "$root/scripts/diffusers-env.sh"
  for run in $DIFFUSERS_RUNS; do
    IFS=: read -r kind b names <<< "$run"
    [ -d "/tmp/$kind-full" ] || "$bin" synth-model --like "$kind" --full-size --dtype fp16 --out "/tmp/$kind-full" --log-level warn
    vs=(); [ -n "$names" ] && for v in ${names//,/ }; do vs+=(--variant "$v"); done
    echo "== diffusers $kind batch $b ${names:-all variants} ($(date +%T))"
    PYTHONUNBUFFERED=1 timeout "${SEGMENT_S:-300}" python3 "$root/bench/diffusers_bench.py" --model "/tmp/$kind-full" \
      --kind "$kind" --batch "$b" --steps 50 --rounds "${ROUNDS:-3}" "${vs[@]}" \
      --json "/tmp/diffusers-$kind-b$b.json" 2>&1 | tee -a "$out/diffusers.txt" | tail -8
  done
  join_json "$out/diffusers.json" /tmp/diffusers-*.json
fi

if [ "${FIT:-0}" = 1 ]; then
  # A card cut to FIT_GIB (default 4) GiB: the weights fit, a batch of 8 at 512 px does not.
  total_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
  fraction=$(python3 -c "print(min(1.0, ${FIT_GIB:-4} * 1024 / $total_mib))")
  [ -d /tmp/sd15-full ] || "$bin" synth-model --like sd15 --full-size --dtype fp16 --out /tmp/sd15-full --log-level warn
  echo "== batch fit: SD1.5 asked for batch 8 on a card cut to ${FIT_GIB:-4} GiB (fraction $fraction)"
  DIFFSEARCH_CUDA_MEMORY_FRACTION="$fraction" "$bin" evaluate --model /tmp/sd15-full \
    --clip tests/data/fixtures/models/tiny-clip --sampler ddim --steps 10 --num-samples 8 --batch-size 8 \
    --device cuda --dtype float16 --accel deepcache:cache_interval=3,cache_branch_id=0 --quality ssim --json \
    > /tmp/fit.json 2> "$out/fit.log"
  echo "rc $?"; tail -3 "$out/fit.log"
  python3 -c "import json; j=json.load(open('/tmp/fit.json')); print('batch used', j['batch_size'], 'peak GiB', j['acc']['peak_bytes']/2**30, 'ssim loss', j['loss'])" | tee -a "$out/fit.log"
fi
echo "total $(( $(date +%s) - t0 )) s"
