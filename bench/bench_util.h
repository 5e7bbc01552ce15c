// What gn_bench's translation units share beyond support/: the shapes' input data.
#pragma once

#include "suite.h"

namespace groupnorm::bench {

// 3 + randn(numel) for the shape, generated at its first use; every benchmark of the shape
// reads the same data. The non-zero mean catches kernels that lose precision with the
// naive sum/sumsq variance.
const float *master_input(const SuiteShape &s);

}  // namespace groupnorm::bench
