// The float64 reference GroupNorm and the numerics contract (docs/DESIGN.md section 1) as a
// gtest predicate. (Compensated sums about each group's first value: accurate enough to
// judge float64 kernels too, reference.cpp.)
#pragma once

#include <vector>

#include <gtest/gtest.h>

#include "test_tensor.h"

namespace gntest {

// The contract's relative bounds. float32 (and the half types' float32 arithmetic): 1e-5,
// about 84 units of float32's rounding (2^-23). float64: the same 84 units of float64's
// (2^-52), 1e-5 * 2^-29 = 1.86e-14: the same algorithm, its every rounding 2^29 times finer.
constexpr double kBound32 = 1e-5;
constexpr double kBound64 = kBound32 * 0x1p-29;
// The bound for values of dtype t (float64: kBound64; every other dtype: kBound32).
double contract_bound(DType t);

// gamma or beta: (C,) in float32 or x's dtype, values rounded to that dtype.
class Param {
public:
    Param(std::vector<double> values, DType dtype);
    const DLTensor *dl() const;  // points at this object's storage, also after a move
    double operator[](size_t i) const { return values_[i]; }
    DType dtype() const { return dtype_; }

private:
    std::vector<double> values_;
    DType dtype_;
    std::vector<uint8_t> storage_;
    int64_t shape_[1];
    mutable DLTensor dl_{};
};

Param random_param(int64_t C, DType dtype, std::mt19937_64 &rng, double mean, double stddev);

struct Reference {
    std::vector<double> y;                  // (n, c, s) row-major
    std::vector<double> mean, rstd, stddev; // (n, g)
};

Reference reference_group_norm(const Tensor &x, const Param *gamma, const Param *beta,
                               int64_t G, double eps);

// The fused activations (gn_activation) in float64, as the unfused composition computes
// them (PyTorch's formulas): act(z) and d act / dz.
double activation_ref(int activation, double z);
double activation_grad_ref(int activation, double z);
// ref.y = act(ref.y): the reference of GroupNorm followed by the activation.
void apply_activation(Reference &ref, int activation);

// y within the contract: float32 |y - ref| <= 1e-5 (|ref| + 1), float64 the same with
// kBound64; float16 / bfloat16 within 1 ulp of the rounded reference (or, near zero, the
// float32 bound). mean/rstd ((N, G) of the compute type, may be null): mean within the
// bound times the group's std (plus one unit of its own rounding), rstd within the bound
// relative.
::testing::AssertionResult matches_reference(const Tensor &y, const Reference &ref,
                                             const Tensor *mean = nullptr,
                                             const Tensor *rstd = nullptr);

// Gradients of GroupNorm in float64 (the statistics recomputed from x in float64).
// dx_scale: per (n, g), the rms of rstd * gamma * dy, the terms dx is formed from (the "+1"
// of the forward contract: dx is O(rstd), not O(1), and cancels to ~0 in tiny groups);
// dgamma_abs, dbeta_abs: per channel, the sum of the absolute values of the terms summed (a
// float32 sum's error scales with it; for dgamma |dy| (|xhat| + 1): xhat carries an
// absolute error like y's "+1").
struct BackwardReference {
    std::vector<double> dx;                      // (n, c, s) row-major
    std::vector<double> dgamma, dbeta;           // (C,)
    std::vector<double> dx_scale;                // (n, g)
    std::vector<double> dgamma_abs, dbeta_abs;   // (C,)
};

BackwardReference reference_group_norm_backward(const Tensor &dy, const Tensor &x,
                                                const Param *gamma, int64_t G, double eps);

// A (C,) output tensor (dgamma, dbeta) in any test dtype, poisoned at first.
class ParamGrad {
public:
    ParamGrad(int64_t C, DType dtype);
    ParamGrad(const ParamGrad &) = delete;
    ParamGrad &operator=(const ParamGrad &) = delete;
    DLTensor *dl() { return &dl_; }
    double get(int64_t c) const;
    bool all_poison() const;
    DType dtype() const { return dtype_; }
    const std::vector<uint8_t> &bytes() const { return storage_; }

private:
    DType dtype_;
    int64_t shape_[1];
    std::vector<uint8_t> storage_;
    DLTensor dl_{};
};

// The gradients within the contract: float32 dx within 1e-5 (|ref| + dx_scale), dgamma and
// dbeta within 1e-5 (|ref| + abs-sum); float64 the same with kBound64; float16 / bfloat16
// within 1 ulp of the rounded reference or the float32 bound. Any of the three may be null
// (not checked).
::testing::AssertionResult matches_backward_reference(const BackwardReference &ref,
                                                      const Tensor *dx, const ParamGrad *dgamma,
                                                      const ParamGrad *dbeta, int64_t G);

// A fresh seed per run (printed in traces so a failure can be replayed via GN_TEST_SEED).
uint64_t fresh_seed();

}  // namespace gntest
