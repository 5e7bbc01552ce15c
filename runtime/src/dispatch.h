// Running a registry variant (registry.h) on a validated problem: Halide buffers over the
// canonical views, the call, Halide's error codes mapped to gn_status.
#pragma once

#include "HalideRuntime.h"
#include "canonicalise.h"
#include "registry.h"

namespace groupnorm::detail {

// Signature of every AOT forward variant (inputs, then outputs).
// x_rows: the statistics' view of x (run_forward).
using ForwardFn = int (*)(halide_buffer_t *x, halide_buffer_t *x_rows, halide_buffer_t *gamma,
                          halide_buffer_t *beta, int32_t groups, float eps, halide_buffer_t *y,
                          halide_buffer_t *mean, halide_buffer_t *rstd);
// GPU variants (target feature user_context) take the user_context first.
using ForwardGpuFn = int (*)(const void *user_context, halide_buffer_t *x,
                             halide_buffer_t *x_rows, halide_buffer_t *gamma,
                             halide_buffer_t *beta, int32_t groups, float eps,
                             halide_buffer_t *y, halide_buffer_t *mean, halide_buffer_t *rstd);

// Runs a forward variant on a validated, non-empty problem. GPU variants take the context
// and stream from config (CUDA) or run on host buffers (OpenCL, tests).
gn_status run_forward(const Variant &variant, const Problem &problem, float eps,
                      const gn_config *config = nullptr);

}  // namespace groupnorm::detail
