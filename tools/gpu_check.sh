#!/usr/bin/env bash
# For a machine with an NVIDIA GPU and driver: builds, runs the GPU tests (the CUDA variants
# against the float64 reference, PTX, OpenCL) and the GPU bench against a device-to-device
# copy roofline, then PyTorch CUDA F.group_norm on the same shapes when torch imports.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${GN_GPU_BUILD:-build-gpu-check}
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
scripts/install_deps.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
.venv/bin/cmake -S . -B "$B" -G Ninja -DCMAKE_MAKE_PROGRAM="$PWD/.venv/bin/ninja" \
  -DCMAKE_PREFIX_PATH="$PWD/.venv" -DPython3_EXECUTABLE="$PWD/.venv/bin/python" -DGN_BUILD_BENCH=OFF
.venv/bin/ninja -C "$B" -j"$(nproc)"
# CUDA.dispatch runs CudaForward and CudaBackward (every CUDA variant on the device) when a
# driver is present.
.venv/bin/ctest --test-dir "$B" -L gpu --output-on-failure
"$NVCC" -O2 -std=c++17 -arch=native tools/gpu/gpu_bench.cu -Iruntime/include \
  "$B/runtime/libgroupnorm.a" -ldl -lpthread -o "$B/gn_gpu_bench"
"$B/gn_gpu_bench"
if python3 -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  python3 tools/gpu/torch_group_norm.py
else
  echo "PyTorch with CUDA not importable: no torch comparison"
fi
