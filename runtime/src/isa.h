// The ISA level of the multi-target CPU variants. Halide's wrapper asks
// halide_can_use_target_features once, at a variant's first call, and keeps the answer;
// our hook answers it: it refuses levels above the process-wide cap (environment variable
// GN_CPU_ISA = sse41 | avx2 | avx512 | auto on x86-64, armv8 | arm_fp16 | auto on ARM64)
// and otherwise defers to Halide's CPU check.
#pragma once

#include "groupnorm/groupnorm.h"

namespace groupnorm::detail {

// Ordered within an architecture; AUTO (no cap) is above every level.
enum CpuIsa { CPU_ISA_NONE = -1, CPU_ISA_SSE41 = 0, CPU_ISA_AVX2 = 1, CPU_ISA_AVX512 = 2,
              CPU_ISA_ARMV8 = 10, CPU_ISA_ARM_FP16 = 11, CPU_ISA_AUTO = 100 };

// The levels of the architecture this library was built for, lowest (baseline) first.
const CpuIsa *cpu_isa_levels(int *count);

// Reads GN_CPU_ISA and installs the hook, once; INVALID_ARGUMENT for a bad value.
gn_status install_cpu_isa_cap();

// The cap in force (CPU_ISA_AUTO when unset), and the highest level the wrappers chose
// so far (CPU_ISA_NONE before any variant ran). Names as in GN_CPU_ISA.
CpuIsa cpu_isa_cap();
CpuIsa selected_cpu_isa();
// The level the multi-target wrappers will choose under the cap in force, asked of Halide's
// CPU check the way they ask it (nothing runs).
CpuIsa expected_cpu_isa();
const char *cpu_isa_name(CpuIsa isa);

}  // namespace groupnorm::detail
