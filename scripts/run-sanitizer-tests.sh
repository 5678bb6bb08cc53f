#!/usr/bin/env bash
# Builds the tests with AddressSanitizer and UndefinedBehaviorSanitizer into a
# build folder of their own and runs the fast suite (`ctest -L fast`) there.
# Not part of CI: the instrumented libtorch build alone takes longer than CI's
# 30 minutes on a 2-core machine. Results: docs/fuzzing.md, "Sanitizer suite".
#
#   bash scripts/run-sanitizer-tests.sh [extra ctest arguments]
#
# BUILD_DIR (default /tmp/build-asan), JOBS (default nproc) and CC/CXX (the
# system gcc by default; clang works too) choose where and how. SCOPE=core
# builds and runs only the fast suites that do not link libtorch (support, io,
# partition, coordinator, render, codegen, slurm, report: every parser and
# the whole search but the engine), which an instrumented build reaches in a
# fraction of the time; SCOPE=engine the fast suites of worker/ and
# worker/engine/ (libtorch itself is not instrumented, only the engine's
# code); SCOPE=cli the fast suites of cli/ and scripts/, which run the
# instrumented executable as a subprocess (what the first two leave out);
# SCOPE=all (the default) is the whole fast label.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
build_dir="${BUILD_DIR:-/tmp/build-asan}"
jobs="${JOBS:-$(nproc)}"
mkdir -p "$build_dir"

# -O1 keeps the libtorch-heavy tests fast enough; no -DNDEBUG, so the
# assertions of internal invariants stay on. vptr is left out: libtorch and
# Open MPI are not instrumented and their classes' type info would give
# false reports at every dynamic_cast across the library boundary.
san="-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DDIFFSEARCH_CUDA_KERNELS=OFF > "$build_dir/configure.log" 2>&1 \
  || { cat "$build_dir/configure.log"; exit 1; }
scope="${SCOPE:-all}"
core_targets=()
if [ "$scope" = core ] || [ "$scope" = engine ] || [ "$scope" = cli ]; then
  # core: the fast suites of the folders whose libraries do not link Torch;
  # engine: those of worker/ and worker/engine/; cli: those of cli/ and
  # scripts/, with the executable they run (e2e suites are the slow label).
  folders='support|io|partition|coordinator|render|codegen|slurm|report'
  [ "$scope" = engine ] && folders='worker'
  [ "$scope" = cli ] && folders='cli|scripts'
  mapfile -t core_targets < <(cmake --build "$build_dir" --target help | sed -n 's/^\.\.\. \(test_[a-z0-9_]*\).*/\1/p' |
    grep -E "^test_($folders)_" | grep -v '_e2e$')
  [ "${#core_targets[@]}" -gt 0 ] || { echo "SCOPE=$scope: no test targets found"; exit 1; }
  extra=()
  [ "$scope" = cli ] && extra=(diffsearch)
  cmake --build "$build_dir" -j "$jobs" --target "${core_targets[@]}" "${extra[@]}"
elif [ "$scope" = all ]; then
  cmake --build "$build_dir" -j "$jobs"
else
  echo "SCOPE=$scope: expected all, core, engine or cli"; exit 2
fi

# Every finding fails its test: ASan aborts at the first error, UBSan too
# (-fno-sanitize-recover above, halt_on_error here). The leak checker stays on
# with a short list of leaks in libraries that are not ours (the file says
# which and why).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$root/scripts/sanitizer/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$build_dir"
if [ "$scope" != all ]; then
  failed=()
  for t in "${core_targets[@]}"; do
    note=""
    (cd tests && "./$t" "$@") > "$t.sanitizer.log" 2>&1 || { failed+=("$t"); note=", FAILED (see $build_dir/$t.sanitizer.log)"; }
    echo "$t: $(grep -oE 'PASSED  \] [0-9]+' "$t.sanitizer.log" | grep -oE '[0-9]+$' || echo 0) passed$note"
  done
  [ "${#failed[@]}" -eq 0 ] || { echo "sanitizer suite ($scope): ${#failed[@]} failed: ${failed[*]}"; exit 1; }
  echo "sanitizer suite: clean (ASan + UBSan, $scope scope: ${#core_targets[@]} fast suites, $build_dir)"
  exit 0
fi
ctest -L fast --output-on-failure -j "$jobs" --timeout 900 "$@"
echo "sanitizer suite: clean (ASan + UBSan, fast label, $build_dir)"
