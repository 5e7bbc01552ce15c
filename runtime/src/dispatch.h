// The variant registry: one table (generated from generators/CMakeLists.txt's variant
// table) maps (device, op, dtype, layout, gamma dtype) + a shape predicate to a function.
#pragma once

#include <cstddef>

#include "HalideRuntime.h"
#include "canonicalise.h"

namespace groupnorm::detail {

// Signature shared by every AOT forward variant (inputs, then outputs).
using ForwardFn = int (*)(halide_buffer_t *x, halide_buffer_t *gamma, halide_buffer_t *beta,
                          int32_t groups, float eps, halide_buffer_t *y, halide_buffer_t *mean,
                          halide_buffer_t *rstd);

struct ForwardVariant {
    const char *name;
    gn_device device;
    gn_dtype dtype;
    gn_layout layout;
    gn_dtype param_dtype;
    const char *family;  // target family: "x86", ...
    ForwardFn fn;
    bool (*serves)(const ForwardProblem &);  // shape class this variant is chosen for
};

// Every compiled forward variant, in lookup order.
const ForwardVariant *forward_variants(size_t *count);

// The variant that serves the problem, or nullptr (with the error message set).
const ForwardVariant *find_forward_variant(const ForwardProblem &problem);

// Runs a variant on a validated, non-empty problem.
gn_status run_forward(const ForwardVariant &variant, const ForwardProblem &problem, float eps);

}  // namespace groupnorm::detail
