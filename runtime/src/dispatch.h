// The variant registry: one table (generated from generators/CMakeLists.txt's variant
// table) maps (device, op, dtype, layout, gamma dtype) + a shape predicate to a function.
#pragma once

#include <cstddef>

#include "HalideRuntime.h"
#include "canonicalise.h"

namespace groupnorm::detail {

// Signature shared by every AOT forward variant (inputs, then outputs).
// x_rows: the statistics' view of x (run_forward).
using ForwardFn = int (*)(halide_buffer_t *x, halide_buffer_t *x_rows, halide_buffer_t *gamma,
                          halide_buffer_t *beta,
                          int32_t groups, float eps, halide_buffer_t *y, halide_buffer_t *mean,
                          halide_buffer_t *rstd);
// GPU variants (target feature user_context) take the user_context first.
using ForwardGpuFn = int (*)(const void *user_context, halide_buffer_t *x,
                             halide_buffer_t *x_rows, halide_buffer_t *gamma,
                             halide_buffer_t *beta, int32_t groups, float eps,
                             halide_buffer_t *y, halide_buffer_t *mean, halide_buffer_t *rstd);

struct ForwardVariant {
    const char *name;
    gn_device device;
    gn_dtype dtype;
    gn_layout layout;
    gn_dtype param_dtype;
    const char *family;  // target family: "x86", "cuda", "opencl", ...
    ForwardFn fn;        // CPU variants
    ForwardGpuFn gpu_fn; // GPU variants
    bool (*serves)(const ForwardProblem &);   // shape class this variant is chosen for
    bool (*can_run)(const ForwardProblem &);  // hard limits (grid, shared memory); tests
                                              // run a variant on every shape it can run
};

// Every compiled forward variant, in lookup order.
const ForwardVariant *forward_variants(size_t *count);

// The variant that serves the problem, or nullptr (with the error message set).
const ForwardVariant *find_forward_variant(const ForwardProblem &problem,
                                           gn_status *status = nullptr);

// Runs a variant on a validated, non-empty problem. GPU variants take the context and
// stream from config (CUDA) or run on host buffers (OpenCL, tests).
gn_status run_forward(const ForwardVariant &variant, const ForwardProblem &problem, float eps,
                      const gn_config *config = nullptr);

}  // namespace groupnorm::detail
