#!/usr/bin/env bash
# Configures and builds into build/ with the .venv's CMake, ninja and Halide.
# Extra arguments go to the CMake configure step. With nanobind in the .venv it also
# builds the Python extension into build/python/groupnorm (the package ./test.sh tests,
# without a second build of the kernels that `pip install .` would do).
set -euo pipefail
cd "$(dirname "$0")/.."
python_ext=OFF
.venv/bin/python -c 'import nanobind' 2>/dev/null && python_ext=ON
.venv/bin/cmake -S . -B build -G Ninja \
  -DCMAKE_MAKE_PROGRAM="$PWD/.venv/bin/ninja" \
  -DCMAKE_PREFIX_PATH="$PWD/.venv" \
  -DPython3_EXECUTABLE="$PWD/.venv/bin/python" -DPython_EXECUTABLE="$PWD/.venv/bin/python" \
  -DGN_BUILD_TESTS=ON -DGN_BUILD_TOOLS=ON -DGN_BUILD_BENCH=ON -DGN_BUILD_PYTHON=$python_ext \
  "$@" >/dev/null
# Halide warns that bfloat16 conversions are emulated on x86 (they are: integer ops);
# keep the log readable.
set +e
.venv/bin/cmake --build build -j "$(nproc)" 2>&1 | grep -v "type operation is emulated"
status=${PIPESTATUS[0]}
set -e
exit "$status"
