// A SiLU pass over a float32 array, in place: the second pass of the unfused
// GroupNorm-then-SiLU sequence the fused kernels are measured against.
#pragma once

#include <cstdint>

namespace groupnorm::bench {

void silu_pass(float *y, int64_t n);

}  // namespace groupnorm::bench
