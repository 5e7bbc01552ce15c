// Running a registry variant (registry.h) on a validated problem: Halide buffers over the
// canonical views, the call, Halide's error codes mapped to gn_status.
#pragma once

#include "HalideRuntime.h"
#include "canonicalise.h"
#include "registry.h"

namespace groupnorm::detail {

// Signature of every AOT forward variant (inputs, then outputs).
// x_rows: the statistics' view of x (run_forward). eps has the compute type: float, or
// double for the float64 variants (ForwardF64Fn). prefetch: 1 lets the CPU schedules
// prefetch ahead, 0 not (prefetch_policy.h; GPU variants ignore it).
using ForwardFn = int (*)(halide_buffer_t *x, halide_buffer_t *x_rows, halide_buffer_t *gamma,
                          halide_buffer_t *beta, int32_t groups, float eps, int32_t activation,
                          int32_t prefetch, halide_buffer_t *y, halide_buffer_t *mean,
                          halide_buffer_t *rstd);
using ForwardF64Fn = int (*)(halide_buffer_t *x, halide_buffer_t *x_rows, halide_buffer_t *gamma,
                             halide_buffer_t *beta, int32_t groups, double eps,
                             int32_t activation, int32_t prefetch, halide_buffer_t *y,
                             halide_buffer_t *mean, halide_buffer_t *rstd);
// The residual forward (CPU, float32 compute): the forward's arguments, then the prologue's
// inputs (skip; skip_nc per (c, n); skip_bias; has_skip = 0: skip is x, not added), then
// the outputs and sum (spatial extent 0: not written).
using ForwardResidualFn = int (*)(halide_buffer_t *x, halide_buffer_t *x_rows,
                                  halide_buffer_t *gamma, halide_buffer_t *beta, int32_t groups,
                                  float eps, int32_t activation, int32_t prefetch,
                                  halide_buffer_t *skip, halide_buffer_t *skip_nc,
                                  halide_buffer_t *skip_bias, int32_t has_skip,
                                  halide_buffer_t *y, halide_buffer_t *mean,
                                  halide_buffer_t *rstd, halide_buffer_t *sum);
// GPU variants (target feature user_context) take the user_context first.
using ForwardGpuFn = int (*)(const void *user_context, halide_buffer_t *x,
                             halide_buffer_t *x_rows, halide_buffer_t *gamma,
                             halide_buffer_t *beta, int32_t groups, float eps,
                             int32_t activation, int32_t prefetch, halide_buffer_t *y,
                             halide_buffer_t *mean, halide_buffer_t *rstd);

// Every AOT backward variant: inputs dy, x, mean, rstd, gamma, groups; outputs dx (spatial
// extent 0: not computed), dgamma, dbeta.
// beta and activation: the forward's (a fused activation is differentiated through);
// prefetch as the forward's.
using BackwardFn = int (*)(halide_buffer_t *dy, halide_buffer_t *x, halide_buffer_t *mean,
                           halide_buffer_t *rstd, halide_buffer_t *gamma, halide_buffer_t *beta,
                           int32_t groups, int32_t activation, int32_t prefetch,
                           halide_buffer_t *dx, halide_buffer_t *dgamma, halide_buffer_t *dbeta);
using BackwardGpuFn = int (*)(const void *user_context, halide_buffer_t *dy, halide_buffer_t *x,
                              halide_buffer_t *mean, halide_buffer_t *rstd,
                              halide_buffer_t *gamma, halide_buffer_t *beta, int32_t groups,
                              int32_t activation, int32_t prefetch, halide_buffer_t *dx,
                              halide_buffer_t *dgamma, halide_buffer_t *dbeta);

// A halide_buffer_t over memory of the given extents and element strides (mins 0).
struct HalideBuffer {
    halide_buffer_t buf{};
    halide_dimension_t dim[3]{};
    HalideBuffer(const void *data, gn_dtype dtype, int dims, const int64_t *extent,
                 const int64_t *stride);
    HalideBuffer(const HalideBuffer &) = delete;  // buf.dim points into this object
    HalideBuffer &operator=(const HalideBuffer &) = delete;
};

// A forward pipeline's buffer arguments over a validated, non-empty problem: x, x_rows (the
// statistics' row view of x), gamma and beta (neutral per-thread scratch when omitted), y,
// mean and rstd (per-thread scratch when not requested). Also what the JIT correctness gate
// passes to a candidate schedule.
struct ForwardArgs {
    int64_t param_extent[1], stat_extent[2], dense_stat_stride[2];
    View3 rows;
    HalideBuffer x, x_rows, gamma, beta, y, mean, rstd;
    explicit ForwardArgs(const Problem &p);
};

// The residual forward's extra buffers (built only for it: plain calls pay nothing): skip
// (x when absent: not added), skip_nc (a row of C zeros, n stride 0, when absent),
// skip_bias (zeros when absent), sum (spatial extent 0 at y's address when not requested).
struct ResidualArgs {
    int64_t param_extent[1], nc_extent[2], zero_nc_stride[2], sum_extent[3];
    HalideBuffer skip, skip_nc, skip_bias, sum;
    explicit ResidualArgs(const Problem &p);
};

// A backward pipeline's buffer arguments over a validated, non-empty problem: gamma neutral
// when omitted, dx of spatial extent 0 when not requested, dgamma/dbeta scratch when not.
struct BackwardArgs {
    int64_t param_extent[1], stat_stride[2][2], stat_extent[2], dx_extent[3];
    HalideBuffer dy, x, mean, rstd, gamma, beta, dx, dgamma, dbeta;
    explicit BackwardArgs(const Problem &p);
};

// Runs a backward variant on a validated, non-empty problem (GPU: as run_forward).
gn_status run_backward(const Variant &variant, const Problem &problem,
                       const gn_config *config = nullptr);

// Runs a forward variant on a validated, non-empty problem. GPU variants take the context
// and stream from config (CUDA) or run on host buffers (OpenCL, tests). eps is rounded to
// the variant's compute type (float32 but for float64 x).
gn_status run_forward(const Variant &variant, const Problem &problem, double eps,
                      const gn_config *config = nullptr);

}  // namespace groupnorm::detail
