#!/usr/bin/env bash
# Sets up, builds and runs the main job on the embedded default: today the
# category-4 task grid (the original 1134 tasks) and the plan for searching it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bin=build/diffsearch
echo
echo "== category 4: $($bin grid --category 4 | wc -l) tasks; the first three:"
$bin grid --category 4 | head -n 3
echo
echo "== plan for category 4 on 8 workers"
$bin plan --grid 4 --workers 8
