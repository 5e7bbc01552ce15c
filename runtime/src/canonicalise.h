// Validation of gn_forward's arguments and the canonical 3-D view (s, c, n) of any
// (N, C, *) tensor: contiguous NC* -> s dense; channels-last N*C -> c dense.
#pragma once

#include <cstdint>

#include "groupnorm/groupnorm.h"

namespace groupnorm::detail {

// The operations the registry holds variants of.
// FORWARD_RESIDUAL: the forward with gn_config's residual prologue (skip, skip_bias, sum).
enum gn_op { GN_OP_FORWARD, GN_OP_FORWARD_RESIDUAL, GN_OP_BACKWARD };
const char *op_name(gn_op op);

enum gn_dtype { GN_DTYPE_F32, GN_DTYPE_F16, GN_DTYPE_BF16, GN_DTYPE_F64 };
enum gn_layout { GN_LAYOUT_NCHW, GN_LAYOUT_NHWC };
// OPENCL: variants only tests call (host buffers; schedules/gpu.h run on PoCL); no DLPack
// device maps to it.
enum gn_device { GN_DEVICE_CPU, GN_DEVICE_CUDA, GN_DEVICE_OPENCL };
const char *device_name(gn_device d);

const char *dtype_name(gn_dtype t);
int dtype_bytes(gn_dtype t);
// The kernels' arithmetic type for x's dtype, which mean and rstd have: float64 for float64
// x (PyTorch's choice), float32 for the others.
gn_dtype stat_dtype(gn_dtype x_dtype);
const char *layout_name(gn_layout l);

// A tensor as the kernels see it: extents and element strides of (s, c, n).
struct View3 {
    void *data = nullptr;
    int64_t extent[3] = {0, 0, 0};  // S, C, N
    int64_t stride[3] = {0, 0, 0};
};

// Everything dispatch needs, produced once by validation: what the registry matches on (op,
// device, dtypes, layout, sizes) and the op's canonical tensors.
struct Problem {
    gn_op op = GN_OP_FORWARD;
    gn_device device = GN_DEVICE_CPU;
    int device_id = 0;  // DLPack device_id (CUDA ordinal)
    gn_dtype dtype = GN_DTYPE_F32;
    gn_dtype param_dtype = GN_DTYPE_F32;  // of gamma/beta (stat_dtype(dtype) when neither is given)
    gn_layout layout = GN_LAYOUT_NCHW;
    int64_t N = 0, C = 0, S = 0, G = 0;
    // Forward: x -> y, optional gamma/beta, optional outputs mean/rstd.
    // Backward: dy, x, inputs mean/rstd, optional gamma -> optional dx, dgamma, dbeta.
    View3 x, y, dy, dx;                            // dx.data null: not requested
    const void *gamma = nullptr, *beta = nullptr;  // contiguous (C,), or null (backward: the
                                                   // forward's beta, with an activation)
    void *dgamma = nullptr, *dbeta = nullptr;      // contiguous (C,), or null
    void *mean = nullptr, *rstd = nullptr;         // (N, G) of stat_dtype(dtype), or null
    int64_t mean_stride[2] = {0, 0}, rstd_stride[2] = {0, 0};  // (g, n) element strides
    int32_t activation = 0;  // gn_activation: fused into y (forward), differentiated (backward)
    // FORWARD_RESIDUAL: skip of x's shape (data null: none), skip per (n, c) (null: none;
    // (c, n) element strides, c's 1), skip_bias (C,) of param_dtype (null: none), the sum
    // output (data null: not written).
    View3 skip, sum;
    const void *skip_nc = nullptr;
    int64_t skip_nc_stride[2] = {0, 0};
    const void *skip_bias = nullptr;
    bool empty() const { return N == 0 || S == 0; }
};

// Check every argument of an op; on success fill `problem`. On failure they return the
// status and set the thread's error message (naming the argument).
gn_status validate_forward(const DLTensor *x, const DLTensor *gamma, const DLTensor *beta,
                           int64_t num_groups, double eps, const DLTensor *y,
                           const DLTensor *mean, const DLTensor *rstd, Problem *problem);
gn_status validate_backward(const DLTensor *dy, const DLTensor *x, const DLTensor *mean,
                            const DLTensor *rstd, const DLTensor *gamma, int64_t num_groups,
                            const DLTensor *dx, const DLTensor *dgamma, const DLTensor *dbeta,
                            Problem *problem);

// gn_forward's residual prologue (gn_config.skip, skip_bias, sum; any may be null), after
// validate_forward: makes the problem a FORWARD_RESIDUAL one.
gn_status validate_residual(const DLTensor *x, const DLTensor *skip, const DLTensor *skip_bias,
                            const DLTensor *sum, Problem *problem);

// gn_backward's fused activation (gn_config.activation, already range-checked) and the
// forward's beta it needs (gn_config.beta, may be null), after validate_backward.
gn_status validate_backward_activation(int32_t activation, const DLTensor *beta, Problem *problem);

// A fused activation (problem.activation) for x of a dtype whose variants compile none
// (float64): GN_STATUS_UNSUPPORTED with the reason. Both ops call it.
gn_status check_activation_dtype(const Problem &problem);

}  // namespace groupnorm::detail
