#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest, then the Python package's
# pytest), then the reliability jobs: the suite under ASan + UBSan, the concurrency stress
# under TSan, bounded fuzzing.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install_deps.sh
scripts/build.sh
.venv/bin/ctest --test-dir build --output-on-failure -j "$(nproc)"
# The Python package: its extension was built into build/python (scripts/build.sh), linking
# the kernels above, so this tests what `pip install .` builds without building it twice.
PYTHONPATH=build/python .venv/bin/python -m pytest -q -p no:cacheprovider python/tests
# ARM64: cross-built into build-aarch64/ with build/'s generator, tested under qemu.
scripts/build_aarch64.sh --test
# Reliability (docs/RELIABILITY.md): sanitizer trees, then the fuzzers for a bounded time.
scripts/ci_sanitizers.sh
scripts/ci_fuzz.sh "${GN_FUZZ_SECONDS:-90}"
