#!/usr/bin/env bash
# CI: the test suite under AddressSanitizer + UndefinedBehaviorSanitizer, and the
# concurrency stress test under ThreadSanitizer. Two clang trees, build-asan/ and
# build-tsan/, instrument the runtime, tests and tools (-DGN_SANITIZE); the kernels are
# Halide's code, never instrumented, so they link build/'s CPU kernel objects
# (-DGN_KERNELS_FROM) instead of generating them again.
# build-asan/ also holds the libFuzzer targets that scripts/ci_fuzz.sh runs.
#   scripts/ci_sanitizers.sh [asan] [tsan]     (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$PWD/.venv
host=$PWD/build
jobs=$(( $(nproc) < 2 ? $(nproc) : 2 ))
what=("$@")
((${#what[@]})) || what=(asan tsan)

configure() {
  local dir=$1
  shift
  "$venv/bin/cmake" -S . -B "$dir" -G Ninja \
    -DCMAKE_MAKE_PROGRAM="$venv/bin/ninja" \
    -DCMAKE_PREFIX_PATH="$venv" \
    -DPython3_EXECUTABLE="$venv/bin/python" \
    -DCMAKE_C_COMPILER=clang-15 -DCMAKE_CXX_COMPILER=clang++-15 \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGroupNorm-halide_generators_ROOT="$host" -DGN_KERNELS_FROM="$host" \
    -DGN_GPU_VARIANTS=OFF -DGN_BUILD_BENCH=OFF -DGN_BUILD_TESTS=ON \
    -DGN_BUILD_SHARED=OFF "$@" >/dev/null  # instrumented code: no shared libraries
}

build() {
  set +e
  "$venv/bin/cmake" --build "$@" -j "$jobs" 2>&1 | grep -v "type operation is emulated" | tail -n 5
  local status=${PIPESTATUS[0]}
  set -e
  return "$status"
}

build "$host" --target gn_generator gn_cpu_kernels

for w in "${what[@]}"; do
  case "$w" in
    asan)
      echo "== ASan + UBSan: build-asan/"
      configure build-asan -DGN_SANITIZE=address,undefined,fuzzer-no-link \
        -DGN_BUILD_FUZZERS=ON -DGN_BUILD_TOOLS=ON
      build build-asan
      # Install.ConsumerProject links the instrumented library into an uninstrumented
      # project: it belongs to the plain tree.
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$venv/bin/ctest" --test-dir build-asan --output-on-failure -j "$jobs" \
          -E '^Install\.'
      ;;
    tsan)
      echo "== TSan: build-tsan/ (Stress.concurrency)"
      # The stress test calls gn_forward only: the backward variants are not needed here.
      configure build-tsan -DGN_SANITIZE=thread -DGN_BUILD_TOOLS=OFF -DGN_OPS=fwd
      build build-tsan --target gn_stress_tests
      # tests/tsan.supp: Halide's uninstrumented runtime synchronises through atomics.
      symbolizer=$(command -v llvm-symbolizer-15 || command -v llvm-symbolizer || true)
      TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp${symbolizer:+:external_symbolizer_path=$symbolizer}" \
        GN_STRESS_ROUNDS=4 build-tsan/tests/gn_stress_tests
      ;;
    *) echo "unknown: $w (asan, tsan)" >&2; exit 2 ;;
  esac
done
