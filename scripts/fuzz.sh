#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) and runs
# each for SECONDS (default 600), one after the other, then prints a summary
# (also written to $WORK/summary.md). Exit 1 when any target found something;
# the reproducer is in $WORK/findings/ (rerun it: `fuzz_<target> FILE`).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# TARGET: safetensors task space models search_params results tokenizer
# (default: all). WORK (default /tmp/diffsearch-fuzz) holds the build, the
# seeds (made by fuzz_make_seeds from the project's own code and test data),
# the corpora, which grow from run to run, the logs and the findings. JOBS
# (default nproc) is for the build, BUILD_DIR (default $WORK/build) where it goes; the fuzzers run one at a time under
# `nice -n 5`. Not part of CI: see docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors task space models search_params results tokenizer)
work="${WORK:-/tmp/diffsearch-fuzz}"
build="${BUILD_DIR:-$work/build}"
jobs="${JOBS:-$(nproc)}"

# libFuzzer ships with clang's compiler-rt (Debian: libclang-rt-14-dev).
if ! command -v clang++ > /dev/null || [ ! -f "$(clang++ -print-runtime-dir)/libclang_rt.fuzzer-x86_64.a" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz: needs clang and its libFuzzer runtime: apt-get install clang libclang-rt-14-dev (as root)" >&2
    exit 2
  fi
  echo "fuzz: installing clang and libclang-rt-14-dev"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev
fi

mkdir -p "$build" "$work/corpus" "$work/findings" "$work/logs"
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DDIFFSEARCH_BUILD_TESTS=OFF \
  -DDIFFSEARCH_BUILD_FUZZERS=ON -DDIFFSEARCH_CUDA_KERNELS=OFF > "$work/configure.log" 2>&1 \
  || { cat "$work/configure.log"; exit 1; }
build_targets=(fuzz_make_seeds)
for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build "$build" -j "$jobs" --target "${build_targets[@]}"

# Seeds are regenerated each time (cheap); corpora keep what earlier runs found.
rm -rf "$work/seeds"
ASAN_OPTIONS=detect_leaks=0 "$build/fuzz/fuzz_make_seeds" "$work/seeds"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
summary="$work/summary.md"
{
  echo "| target | seconds | runs | exec/s | corpus files | new units | peak RSS MB | result |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$summary"
status=0
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  mkdir -p "$corpus"
  seeds="$work/seeds/$t"
  mkdir -p "$seeds"
  log="$work/logs/$t.log"
  echo "fuzz: $t for ${seconds}s (log: $log)"
  set +e
  # -timeout: one input taking 25 s is a finding (a hang); -rss_limit_mb:
  # a file that makes a reader allocate 2 GB is one too.
  nice -n 5 "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/findings/$t-" "$corpus" "$seeds" > "$log" 2>&1
  rc=$?
  set -e
  stat() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}'; }
  runs="$(stat number_of_executed_units)"
  rate="$(stat average_exec_per_sec)"
  added="$(stat new_units_added)"
  rss="$(stat peak_rss_mb)"
  files="$(find "$corpus" -type f | wc -l)"
  if [ "$rc" -eq 0 ]; then
    result="clean"
  else
    result="FINDING (exit $rc; see $log and $work/findings/)"
    status=1
  fi
  echo "| $t | $seconds | ${runs:-?} | ${rate:-?} | $files | ${added:-?} | ${rss:-?} | $result |" >> "$summary"
  echo "fuzz: $t: $result, ${runs:-?} runs at ${rate:-?}/s, corpus $files files"
done
echo
cat "$summary"
exit "$status"
