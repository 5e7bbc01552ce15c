// The correctness gate for candidate schedules: JIT-compiles the forward generator for this
// machine with given GeneratorParams (tuning fields, layout, types) and checks the result on
// fresh data against the float64 reference, through the same buffer setup as the runtime.
// tests/test_jit_gate.cpp runs it on the defaults and on non-default tunings; the autotuner
// calls it for every candidate before timing it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "test_shapes.h"
#include "test_tensor.h"

namespace gntest {

struct GateResult {
    bool passed = false;
    int cases = 0;       // (shape, layout, affine) cases run
    std::string detail;  // the first failure, or what could not be built
};

// params: GeneratorParam name -> value, e.g. {{"layout", "nhwc"}, {"block_rows", "16"}};
// x/y/gamma/beta types follow dtype (gamma and beta in x's dtype).
GateResult jit_forward_gate(const std::map<std::string, std::string> &params, DType dtype,
                            const std::vector<Shape> &shapes, uint64_t seed);

}  // namespace gntest
