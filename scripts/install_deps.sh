#!/usr/bin/env bash
# Installs what the build needs and is missing, non-interactively:
#   Debian packages with apt-get; Halide 21, CMake >= 3.28 and ninja from PyPI into the
#   git-ignored .venv (Debian has Halide 14 and CMake 3.25, both too old); for the Python
#   package's tests, nanobind (the extension), pytest, PyTorch and torchvision from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  g++ libgtest-dev libbenchmark-dev       # toolchain, tests, bench
  libdlpack-dev                           # DLTensor, the API's tensor type
  libcli11-dev                            # the groupnorm CLI (options)
  nlohmann-json3-dev                      # groupnorm-tune's tuning tables
  pocl-opencl-icd ocl-icd-opencl-dev      # GPU schedules run through OpenCL on PoCL (tests)
  g++-aarch64-linux-gnu qemu-user-static  # ARM64 tree: cross compiler, tests under qemu
  pkgconf                                 # tests: a C program built with `pkg-config`
  clang-15                                # sanitizer trees and libFuzzer (scripts/ci_*.sh;
                                          # clang 14 lacks _Float16 on x86)
  libomp-15-dev                           # OpenMP for clang (the tools' rooflines there)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The venv's Python must have its headers (Halide's CMake config looks for them).
if ! python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  missing+=(python3-dev)
fi
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "install_deps: apt-get install ${missing[*]}"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! .venv/bin/python -c 'import halide, numpy' 2>/dev/null || [[ ! -x .venv/bin/cmake || ! -x .venv/bin/ninja ]]; then
  echo "install_deps: creating .venv with Halide 21, CMake, ninja"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "halide==21.*" "cmake>=3.28,<5" ninja numpy
fi

# The Python package (python/, tested by ./test.sh): nanobind builds the extension, pytest
# runs the tests against PyTorch 2.x as PyPI ships it. That wheel needs its ~3 GB of CUDA
# libraries even to import on a CPU (about 2 minutes to install on CI; kept in .venv, so
# later runs skip this). torchvision (~8 MB) for the ResNet-50 client test; expecttest for
# torch.testing._internal (PyTorch's own OpInfo / ModuleInfo cases, test_conformance.py).
# (`pip install .` fetches its own build requirements: scikit-build-core, nanobind, Halide.)
if ! .venv/bin/python -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None
             for m in ("torch", "torchvision", "pytest", "nanobind", "expecttest")))'; then
  echo "install_deps: PyTorch, torchvision, pytest, nanobind, expecttest into .venv"
  .venv/bin/pip install -q --disable-pip-version-check torch torchvision pytest nanobind expecttest
fi
