#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest).
set -euo pipefail
cd "$(dirname "$0")"
scripts/install_deps.sh
scripts/build.sh
.venv/bin/ctest --test-dir build --output-on-failure -j "$(nproc)"
# ARM64: cross-built into build-aarch64/ with build/'s generator, tested under qemu.
scripts/build_aarch64.sh --test
