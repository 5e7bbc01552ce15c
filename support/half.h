// float16 and bfloat16 as raw bits, for the tests' references and the benchmarks' inputs.
#pragma once

#include <cstdint>

namespace groupnorm::support {

// Round to nearest even from float64 in one step, subnormals, overflow to infinity and NaN
// (quiet, sign and top payload bits kept) included; a float argument converts exactly.
uint16_t to_f16_bits(double v);
double from_f16_bits(uint16_t b);

// Round to nearest even from float32; every NaN becomes 0x7FC0. A double argument rounds
// to float first (twice rounded, within the 1-ulp bfloat16 contract the tests use).
uint16_t to_bf16_bits(float f);
double from_bf16_bits(uint16_t b);

}  // namespace groupnorm::support
