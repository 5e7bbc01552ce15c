#!/usr/bin/env bash
# Prints docs/SIZES.md's tables (markdown) from existing build trees: code + data bytes
# (`size`: text + data) of each variant's objects (all ISA levels of its multi-target and
# the dispatch wrapper), of the Halide runtime, and of the whole libgroupnorm.a.
#   scripts/size_table.sh [BUILD_DIR...]    (default: build build-aarch64 build-aarch64-min)
set -euo pipefail
cd "$(dirname "$0")/.."
(($#)) || set -- build build-aarch64 build-aarch64-min

bytes() {  # text + data of object files or archives
  "$size_tool" -B -t "$@" 2>/dev/null | awk 'END { print $1 + $2 }'
}

for dir in "$@"; do
  [[ -f $dir/generators/gn_variants.inc ]] || { echo "skipping $dir: not built" >&2; continue; }
  if grep -q ', CPU, .*, arm, ' "$dir/generators/gn_variants.inc"; then
    size_tool=aarch64-linux-gnu-size arch="ARM64 (arm-64-linux: arm_fp16 + baseline)"
  else
    size_tool=size arch="x86-64 (avx512_skylake + avx2 + sse41)"
  fi
  opts=$(grep -E '^GN_(VARIANTS|NO_THREADS):' "$dir/CMakeCache.txt" | sed 's/:[A-Z]*=/=/' | tr '\n' ' ')
  echo "### $arch: \`$dir\` ($opts)"
  echo
  echo "| variant | bytes |"
  echo "|---|---:|"
  total=0
  for v in $(sed -n 's/^GN_VARIANT(\([a-z0-9_]*\), [A-Z]*, CPU,.*/\1/p' "$dir/generators/gn_variants.inc"); do
    b=$(bytes "$dir"/generators/"$v"-*.o "$dir/generators/${v}_wrapper.o")
    total=$((total + b))
    echo "| \`$v\` | $b |"
  done
  echo "| all CPU variants | $total |"
  echo "| Halide runtime (\`gn_runtime_cpu\`) | $(bytes "$dir/generators/gn_runtime_cpu.o") |"
  gpu=$(sed -n 's/^GN_VARIANT(\([a-z0-9_]*\), [A-Z]*, \(CUDA\|OPENCL\),.*/\1/p' "$dir/generators/gn_variants.inc")
  if [[ -n $gpu ]]; then  # x86 trees built with GPU variants (CUDA/OpenCL, host side + kernels)
    gb=0
    for v in $gpu; do gb=$((gb + $(bytes "$dir/generators/$v.o"))); done
    echo "| $(wc -w <<<"$gpu") GPU variants + GPU runtime | $((gb + $(bytes "$dir/generators/gn_runtime_gpu.o"))) |"
  fi
  lib=$dir/runtime/libgroupnorm.a
  echo "| **libgroupnorm.a** (code + data; file size $(stat -c %s "$lib")) | **$(bytes "$lib")** |"
  echo
done
