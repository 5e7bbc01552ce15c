// ARM64 (NEON, 128-bit vectors) tunings of the CPU schedules (cpu_nchw.h, cpu_nhwc.h say
// why the loops are what they are); the constants are chosen for NEON and edge caches:
// - 4 f32 lanes per register, 32 registers: 4 independent accumulators per NCHW sum
//   (FADD latency 3-4 cycles, 1-2 pipes on Cortex-A53..A78), 2 per NHWC channel vector.
// - y is produced 8 values at a time: one 128-bit load/store of f16 (or two of f32) per
//   iteration. f16 <-> f32 conversion (FCVTL/FCVTN) is base ARMv8 NEON; the arm_fp16
//   sub-target adds f16 arithmetic, which the numerics contract rules out here (a float16
//   normalize step was measured at up to 244 ulp): statistics and normalize stay f32.
// - NHWC blocks stay at 512 rows as on x86, although 512 rows of 320 f32 channels
//   (640 KiB) overflow a 256-512 KiB edge L2.
#pragma once

#include "cpu_nchw.h"
#include "cpu_nhwc.h"

namespace groupnorm_gen {

constexpr int kArmLanes = 4;      // f32 lanes in a NEON register
constexpr int kArmOutVector = 8;  // y values per iteration (128 bits of f16)

inline NchwTuning arm_nchw_tuning() { return {kArmOutVector, 4 * kArmLanes}; }

// rows_per_step 4: as x86 (8) in spirit, untimed on hardware (qemu only here).
inline NhwcTuning arm_nhwc_tuning() { return {kArmOutVector, 2 * kArmLanes, 512, 4, 64, 32}; }

}  // namespace groupnorm_gen
