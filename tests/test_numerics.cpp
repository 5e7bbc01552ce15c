// The numerics contract's hard cases (docs/DESIGN.md section 1).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "groupnorm/groupnorm.h"
#include "reference.h"

using namespace gntest;

namespace {

void expect_contract(Tensor &x, int64_t G, double eps, const Param *gamma, const Param *beta) {
    Tensor y(x.shape(), x.dtype(), x.layout()), mean({x.N(), G}, stat_dtype(x.dtype())),
        rstd({x.N(), G}, stat_dtype(x.dtype()));
    y.poison();
    mean.poison();
    rstd.poison();
    ASSERT_EQ(gn_forward(x.dl(), gamma ? gamma->dl() : nullptr, beta ? beta->dl() : nullptr, G,
                         eps, y.dl(), mean.dl(), rstd.dl(), nullptr),
              GN_STATUS_SUCCESS)
        << gn_last_error_message();
    EXPECT_TRUE(matches_reference(y, reference_group_norm(x, gamma, beta, G, eps), &mean, &rstd));
}

// The float32 and float64 kernels (each against its own bound, reference.h).
constexpr DType kFloatTypes[] = {DType::F32, DType::F64};

TEST(Numerics, LargeMeanSmallStd) {
    // |mean| = 1e4 * std: raw sum / sum-of-squares or x*scale + (beta - mean*scale) fail here.
    std::mt19937_64 rng(fresh_seed());
    for (DType dt : kFloatTypes)
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        for (double mean : {1e4, -1e4}) {
            SCOPED_TRACE(std::string(name(layout)) + " " + name(dt) + " mean " + std::to_string(mean));
            Tensor x({2, 32, 24, 24}, dt, layout);
            x.fill_normal(rng, mean, 1.0);
            Param gamma = random_param(32, dt, rng, 1, 0.5);
            Param beta = random_param(32, dt, rng, 0, 1);
            expect_contract(x, 8, 1e-5, &gamma, &beta);
        }
    }
}

TEST(Numerics, LargeMeanSmallGroups) {
    // Few values per group (8 to 1008): a rounding error in a sum's centring (x - pivot
    // reassociated into (acc + x) - pivot, say) moves the mean by ~ulp(1e4) / sqrt(count).
    std::mt19937_64 rng(fresh_seed());
    for (DType dt : kFloatTypes)
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        for (auto shape : {std::vector<int64_t>{2, 8, 2, 2}, std::vector<int64_t>{3, 16, 4, 4},
                           std::vector<int64_t>{2, 64, 9, 7}}) {
            SCOPED_TRACE(std::string(name(layout)) + " " + name(dt) + " S " +
                         std::to_string(shape[2] * shape[3]));
            Tensor x(shape, dt, layout);
            x.fill_normal(rng, 1e4, 1.0);
            expect_contract(x, 4, 1e-5, nullptr, nullptr);
        }
    }
}

TEST(Numerics, FarFromZeroUpTo1e7Std) {
    // |mean| from 1e5 to 1e7 std: x's own rounding unit reaches the std (1 at 1e7), so any
    // step that adds the pivot back before the statistics are centred (x - (pivot + m)
    // instead of (x - pivot) - m) rounds the block mean to x's unit. Groups of one block,
    // of several blocks with a tail, and of fewer values than a vector.
    std::mt19937_64 rng(fresh_seed());
    for (DType dt : kFloatTypes)
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        for (auto shape : {std::vector<int64_t>{2, 32, 24, 24}, std::vector<int64_t>{1, 4, 100, 101},
                           std::vector<int64_t>{3, 8, 3, 3}}) {
            for (double mean : {1e5, -3e5, 1e6, 1e7, -1e7}) {
                SCOPED_TRACE(std::string(name(layout)) + " " + name(dt) + " " + to_string(shape) +
                             " mean " + std::to_string(mean));
                Tensor x(shape, dt, layout);
                x.fill_normal(rng, mean, 1.0);
                Param gamma = random_param(shape[1], dt, rng, 1, 0.5);
                Param beta = random_param(shape[1], dt, rng, 0, 1);
                expect_contract(x, 2, 1e-5, &gamma, &beta);
                expect_contract(x, 2, 1e-5, nullptr, nullptr);
            }
        }
    }
}

TEST(Numerics, HalfInputsAboveSquareOverflow) {
    // |x| > 256: x^2 overflows float16; statistics must be float32.
    std::mt19937_64 rng(fresh_seed());
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        Tensor x({2, 16, 12, 12}, DType::F16, layout);
        x.fill_normal(rng, 300.0, 40.0);
        expect_contract(x, 4, 1e-5, nullptr, nullptr);
        Tensor b({2, 16, 12, 12}, DType::BF16, layout);
        b.fill_normal(rng, 1e4, 300.0);
        expect_contract(b, 4, 1e-5, nullptr, nullptr);
    }
}

TEST(Numerics, EpsIsUsedAsGiven) {
    // A constant group has var = 0, so rstd = 1 / sqrt(eps) and y = beta exactly. float64
    // uses eps in float64 (float32 rounding of 0.1 would move rstd by 4e-9).
    for (DType dt : kFloatTypes)
    for (double eps : {0.1, 1e-5, 3.0}) {
        SCOPED_TRACE(std::string(name(dt)) + " eps " + std::to_string(eps));
        Tensor x({1, 4, 3, 3}, dt);
        for (int64_t c = 0; c < 4; c++)
            for (int64_t s = 0; s < 9; s++) x.set(0, c, s, 2.5);
        Param beta({0.5, -1, 2, 0}, dt);
        Tensor y({1, 4, 3, 3}, dt), rstd({1, 2}, stat_dtype(dt));
        y.poison();
        ASSERT_EQ(gn_forward(x.dl(), nullptr, beta.dl(), 2, eps, y.dl(), nullptr, rstd.dl(), nullptr),
                  GN_STATUS_SUCCESS)
            << gn_last_error_message();
        const double want = 1.0 / std::sqrt(eps);
        // float64: two roundings (sqrt, division) of 2^-53 relative each.
        EXPECT_NEAR(rstd.get(0, 0, 0), want, dt == DType::F64 ? 0x1p-52 * want : 1e-6 * want);
        EXPECT_EQ(y.get(0, 2, 4), 2.0);
    }
}

// Negative eps, as PyTorch takes it (its OpInfo samples use eps = -0.5): rstd = 1 / sqrt(var +
// eps), finite where var + eps > 0 (group 0, var ~ 4), NaN where not (group 1, var ~ 0.01).
TEST(Numerics, NegativeEpsAsPyTorch) {
    std::mt19937_64 rng(fresh_seed());
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        SCOPED_TRACE(name(layout));
        Tensor x({2, 4, 5, 5}, DType::F32, layout), y({2, 4, 5, 5}, DType::F32, layout);
        Tensor mean({2, 2}, DType::F32), rstd({2, 2}, DType::F32);
        std::normal_distribution<double> wide(3.0, 2.0), narrow(-1.0, 0.1);
        for (int64_t n = 0; n < 2; n++)
            for (int64_t c = 0; c < 4; c++)
                for (int64_t s = 0; s < 25; s++) x.set(n, c, s, c < 2 ? wide(rng) : narrow(rng));
        y.poison();
        ASSERT_EQ(gn_forward(x.dl(), nullptr, nullptr, 2, -0.5, y.dl(), mean.dl(), rstd.dl(), nullptr),
                  GN_STATUS_SUCCESS);
        const Reference ref = reference_group_norm(x, nullptr, nullptr, 2, -0.5);
        ASSERT_TRUE(std::isfinite(ref.rstd[0]) && std::isnan(ref.rstd[1]));
        EXPECT_TRUE(std::isfinite(rstd.get(0, 0, 0)) && std::isnan(rstd.get(0, 1, 0)));
        EXPECT_TRUE(matches_reference(y, ref, &mean, &rstd));
    }
}

// Every dtype: the 16-bit outputs too (Halide's emulated float32 -> float16 conversion, at
// the sse41 and armv8 levels, turned NaN into inf until the kernels re-made NaN from its bits).
TEST(Numerics, NonFinitePropagatesToItsGroupOnly) {
    std::mt19937_64 rng(fresh_seed());
    for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::F64})
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        for (double bad : {std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity()}) {
            SCOPED_TRACE(std::string(name(layout)) + " " + std::to_string(bad) + " " +
                         std::to_string(int(dt)));
            Tensor x({2, 8, 5, 5}, dt, layout), y({2, 8, 5, 5}, dt, layout);
            x.fill_normal(rng, 1.0, 1.0);
            x.set(1, 5, 7, bad);  // sample 1, group 2 of 4
            Reference ref = reference_group_norm(x, nullptr, nullptr, 4, 1e-5);
            y.poison();
            ASSERT_EQ(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, y.dl(), nullptr, nullptr, nullptr),
                      GN_STATUS_SUCCESS);
            // 16 bits: 1 ulp of y's type about |y| <= 4 (bfloat16: 2^-6), else the float32 bound.
            const double tol = dt == DType::F16 ? 4e-3 : dt == DType::BF16 ? 3.2e-2 : 0.0;
            const double bound = contract_bound(dt);
            for (int64_t n = 0; n < 2; n++) {
                for (int64_t c = 0; c < 8; c++) {
                    const bool hit = n == 1 && c / 2 == 2;
                    for (int64_t s = 0; s < 25; s++) {
                        const double got = y.get(n, c, s), want = ref.y[(n * 8 + c) * 25 + s];
                        if (hit) {
                            EXPECT_TRUE(std::isnan(got)) << n << "," << c << "," << s << ": " << got;
                        } else {
                            EXPECT_NEAR(got, want, bound * (std::fabs(want) + 1) + tol);
                        }
                    }
                }
            }
        }
    }
}

}  // namespace
