#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job: a reference check of
# `groupnorm run` against float64 numpy, then `groupnorm bench` on the default suite.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install_deps.sh
scripts/build.sh
echo "== reference check: groupnorm run vs a float64 numpy GroupNorm"
for case in f32_affine f32_channels_last f16; do
  .venv/bin/python tools/tests/cli_test.py build/tools/groupnorm build/run_check/$case $case
done
echo "== groupnorm bench (default suite, f32 NCHW, all cores)"
build/tools/groupnorm bench --shapes default "$@"
