#!/usr/bin/env bash
# Assembles one PTX file (Halide's DEVICE_CODE output) for each given architecture with
# ptxas -v; prints each kernel's registers and spills; any spill fails. Exit 77 (ctest
# SKIP) when ptxas is absent.
set -euo pipefail
ptx=$1; shift
PTXAS=${PTXAS:-/usr/local/cuda/bin/ptxas}
[[ -x $PTXAS ]] || PTXAS=$(command -v ptxas || true)
if [[ -z $PTXAS ]]; then echo "SKIP: ptxas not found (install the CUDA toolkit)"; exit 77; fi
status=0
for arch in "$@"; do
  out=$("$PTXAS" -arch="$arch" -v "$ptx" -o /dev/null 2>&1) || { echo "$out"; echo "FAIL: ptxas $arch"; exit 1; }
  # ptxas -v: "Compiling entry function 'k'", "N bytes spill stores, M bytes spill loads",
  # "Used R registers".
  echo "$out" | awk -v arch="$arch" '
    /Compiling entry function/ { match($0, /\047[^\047]+\047/); k = substr($0, RSTART+1, RLENGTH-2) }
    /spill stores/ { st = $5; ld = $9 }
    /Used [0-9]+ registers/ { for (i = 1; i <= NF; i++) if ($i == "Used") r = $(i+1);
      printf "%-6s %-48s regs %3d  spill stores %s B  spill loads %s B\n", arch, k, r, st, ld;
      if (st + 0 > 0 || ld + 0 > 0) bad = 1 }
    END { exit bad }' || { echo "FAIL: spills for $arch"; status=1; }
done
exit $status
