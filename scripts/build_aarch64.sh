#!/usr/bin/env bash
# Cross-builds the ARM64 tree into build-aarch64/ (g++-aarch64-linux-gnu, qemu-user for
# running) with the Halide generator taken from a host build tree (default: build/, which
# scripts/build.sh makes; only its gn_generator target is needed). Then, with --test, runs
# the ARM ctest suite under qemu. Extra arguments go to the CMake configure step.
#   scripts/build_aarch64.sh [--host-build DIR] [--dir DIR] [--test] [cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
host=build dir=build-aarch64 test=0
while (($#)); do
  case "$1" in
    --host-build) host=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --test) test=1; shift ;;
    *) break ;;
  esac
done
host=$(realpath "$host")
jobs=$(( $(nproc) < 2 ? $(nproc) : 2 ))
venv=$PWD/.venv
halide=$("$venv/bin/python" -c 'import halide; print(halide.install_dir())')

# The generator (x86, runs here) carries the ARM schedules; build it if the host tree lacks it.
"$venv/bin/cmake" --build "$host" --target gn_generator -j "$jobs" >/dev/null

"$venv/bin/cmake" -S . -B "$dir" -G Ninja \
  --toolchain "$PWD/cmake/aarch64-linux-gnu.cmake" \
  -DCMAKE_MAKE_PROGRAM="$venv/bin/ninja" \
  -DHalide_DIR="$halide/lib64/cmake/Halide" \
  -DHalideHelpers_DIR="$halide/lib64/cmake/HalideHelpers" \
  -DGroupNorm-halide_generators_ROOT="$host" \
  -DGN_BUILD_TESTS=ON -DGN_BUILD_TOOLS=OFF -DGN_BUILD_BENCH=OFF -DGN_ANDROID_OBJECTS=ON \
  "$@" >/dev/null
# Halide warns that bfloat16 conversions are emulated (as on x86); keep the log readable.
set +e
"$venv/bin/cmake" --build "$dir" -j "$jobs" 2>&1 | grep -v "type operation is emulated"
status=${PIPESTATUS[0]}
set -e
((status == 0)) || exit "$status"
if ((test)); then
  "$venv/bin/ctest" --test-dir "$dir" --output-on-failure -j "$jobs"
fi
