#!/usr/bin/env bash
# PTX of the forward scheduled by Halide's GPU autoscheduler (Anderson2021) instead of the
# hand-written CUDA schedule: the generator run with autoscheduler=Anderson2021 for an sm_80
# target and one shape's estimates, then ptx_check.sh (assembled for sm_80 and sm_90, no
# spills). What `groupnorm tune` compares on CPUs; on a GPU it is compiled and checked here
# only (no GPU to time it on).
#   autoscheduled_ptx.sh <gn_generator> <libautoschedule_anderson2021.so> <work dir> <layout>
set -euo pipefail
generator=$1 plugin=$2 work=$3 layout=$4
mkdir -p "$work"
name=anderson2021_fwd_f32_$layout
"$generator" -g group_norm_forward -f "$name" -e device_code -o "$work" -p "$plugin" \
  target=x86-64-linux-sse41-cuda-cuda_capability_80-user_context-large_buffers \
  autoscheduler=Anderson2021 autoscheduler.parallelism=132 layout="$layout" \
  x.type=float32 x_rows.type=float32 y.type=float32 gamma.type=float32 beta.type=float32 \
  eps.type=float32 mean.type=float32 rstd.type=float32 \
  estimate_n=2 estimate_c=320 estimate_s=4096 estimate_groups=32
exec "$(dirname "$0")/ptx_check.sh" "$work/$name.device_code" sm_80 sm_90
