// The float64 reference GroupNorm and the numerics contract (docs/DESIGN.md section 1) as a
// gtest predicate.
#pragma once

#include <vector>

#include <gtest/gtest.h>

#include "test_tensor.h"

namespace gntest {

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

// y within the contract: float32 |y - ref| <= 1e-5 (|ref| + 1); float16 / bfloat16 within
// 1 ulp of the rounded reference (or, near zero, the float32 bound). mean/rstd (float32 (N, G), may be null): mean within
// 1e-5 of the group's std (plus its own rounding), rstd within 1e-5 relative.
::testing::AssertionResult matches_reference(const Tensor &y, const Reference &ref,
                                             const Tensor *mean = nullptr,
                                             const Tensor *rstd = nullptr);

// A fresh seed per run (printed in traces so a failure can be replayed via GN_TEST_SEED).
uint64_t fresh_seed();

}  // namespace gntest
