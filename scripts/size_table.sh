#!/usr/bin/env bash
# Prints docs/SIZES.md's tables (markdown) from existing build trees: code + data bytes
# (`size`: text + data) of each variant's objects (all ISA levels of its multi-target and
# the dispatch wrapper), of the Halide runtime, of the whole libgroupnorm.a, and of a
# stripped C application (tests/consumer/c_main.c) linked with libgroupnorm_cpu.a and with
# libgroupnorm.a (-Wl,--gc-sections; file size and text + data).
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
    size_tool=aarch64-linux-gnu-size strip_tool=aarch64-linux-gnu-strip cc=aarch64-linux-gnu-gcc
    arch="ARM64" options="ARM_TARGETS"
  else
    size_tool=size strip_tool=strip cc=cc arch="x86-64" options="X86_TARGETS|GPU_VARIANTS"
  fi
  opts=$(grep -E "^GN_(OPS|VARIANTS|NO_THREADS|CPU_TUNING|$options):" "$dir/CMakeCache.txt" |
         sed 's/:[A-Z]*=/=/; s/-large_buffers//g' | tr '\n' ' ')
  echo "### $arch: \`$dir\` ($opts)"
  echo
  echo "| variant | bytes |"
  echo "|---|---:|"
  total=0
  # Rows served by their own function (a tuned class may share another's: counted once).
  for v in $(sed -n 's/^GN_VARIANT(\([a-z0-9_]*\), \1, [A-Z_]*, CPU,.*/\1/p' "$dir/generators/gn_variants.inc"); do
    # multi-target: one object per level + the wrapper; one target: $v.o
    b=$(bytes $(ls "$dir"/generators/"$v"-*.o "$dir/generators/${v}_wrapper.o" \
                   "$dir/generators/$v.o" 2>/dev/null))
    total=$((total + b))
    echo "| \`$v\` | $b |"
  done
  echo "| all CPU variants | $total |"
  echo "| Halide runtime (\`gn_runtime_cpu\`) | $(bytes "$dir/generators/gn_runtime_cpu.o") |"
  gpu=$(sed -n 's/^GN_VARIANT(\([a-z0-9_]*\), \1, [A-Z_]*, \(CUDA\|OPENCL\),.*/\1/p' "$dir/generators/gn_variants.inc")
  if [[ -n $gpu ]]; then  # x86 trees built with GPU variants (CUDA/OpenCL, host side + kernels)
    gb=0
    for v in $gpu; do gb=$((gb + $(bytes "$dir/generators/$v.o"))); done
    echo "| $(wc -w <<<"$gpu") GPU variants + GPU runtime | $((gb + $(bytes "$dir/generators/gn_runtime_gpu.o"))) |"
  fi
  lib=$dir/runtime/libgroupnorm.a
  echo "| **libgroupnorm.a** (code + data; file size $(stat -c %s "$lib")) | **$(bytes "$lib")** |"
  libs=libgroupnorm_cpu.a
  [[ -z $gpu ]] || libs+=" libgroupnorm.a"  # else the same variants
  for lib in $libs; do
    app=$(mktemp)
    "$cc" -O2 tests/consumer/c_main.c -Iruntime/include -I"$dir/cross_deps/dlpack/include" \
      "$dir/runtime/$lib" -lstdc++ -lm -lpthread -ldl -Wl,--gc-sections -o "$app"
    "$strip_tool" "$app"
    echo "| **C app + \`$lib\`**, stripped (file size $(stat -c %s "$app")) | **$(bytes "$app")** |"
    rm -f "$app"
  done
  echo
done
