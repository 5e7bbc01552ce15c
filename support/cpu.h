// CPU feature queries the tools and tests share.
#pragma once

namespace groupnorm::support {

// Whether the CPU has F16C (x86-64; false elsewhere). From CPUID leaf 1, ECX bit 29: clang
// before 16 has no "f16c" for __builtin_cpu_supports.
bool cpu_has_f16c();

}  // namespace groupnorm::support
