// Whether the CPU kernels may prefetch ahead: the `prefetch` input of every generated
// function (the nchw forward's next group while this one is written, the nchw backward's dx
// lines in its sums). The prefetch is non-temporal, Halide's only kind: it ran the forward
// 1.05-1.25x faster on AMD Zen, and on an Intel Xeon (Emerald Rapids) the forward 1.2-1.3x
// and the backward 1.2-1.5x slower (Intel's non-temporal prefetches fill the first-level
// cache only: lines fetched a group ahead are gone before they are read).
//   GN_CPU_PREFETCH = auto (default: off on Intel CPUs, on elsewhere) | on | off.
#pragma once

#include <cstdint>

#include "groupnorm/groupnorm.h"

namespace groupnorm::detail {

// Reads GN_CPU_PREFETCH once; INVALID_ARGUMENT (with the message) for a bad value.
gn_status install_prefetch_policy();

// 1 or 0: the `prefetch` argument of the generated functions.
int32_t prefetch_ahead();

// What decided prefetch_ahead(), for `groupnorm info`: "GN_CPU_PREFETCH=on", "auto: off on
// Intel CPUs", ...
const char *prefetch_reason();

// Tests: force 1 or 0; -1 returns to the environment's choice.
void set_prefetch_ahead_for_testing(int value);

}  // namespace groupnorm::detail
