// Every compiled forward variant against the float64 reference on fresh random data with
// a non-zero mean, poisoned outputs, odd shapes, all layouts the variant serves.
#include <gtest/gtest.h>

#include "canonicalise.h"
#include "dispatch.h"
#include "forward_case.h"
#include "groupnorm/groupnorm.h"
#include "reference.h"

using namespace gntest;

namespace {

struct VariantCase {
    DType dtype;
    DType param;
    Layout layout;
};

std::string case_name(const ::testing::TestParamInfo<VariantCase> &info) {
    return std::string(name(info.param.dtype)) + "_gamma_" + name(info.param.param) + "_" +
           name(info.param.layout);
}

// Runs gn_forward on fresh data and checks y (and mean/rstd when asked for).
void check_forward(const Shape &shape, DType dtype, DType param_dtype, Layout layout,
                   bool affine, bool stats, std::mt19937_64 &rng, double data_mean = 0) {
    if (data_mean == 0) data_mean = std::uniform_real_distribution<double>(-3.0, 3.0)(rng);
    ForwardCase c(shape, dtype, param_dtype, layout, affine, data_mean, rng);
    const double eps = 1e-5;
    gn_status st = gn_forward(c.x.dl(), c.g(), c.b(), shape.G, eps, c.y.dl(),
                              stats ? c.mean.dl() : nullptr, stats ? c.rstd.dl() : nullptr,
                              nullptr);
    ASSERT_EQ(st, GN_STATUS_SUCCESS) << gn_last_error_message();
    EXPECT_TRUE(matches_reference(c.y, c.reference(shape.G, eps), stats ? &c.mean : nullptr,
                                  stats ? &c.rstd : nullptr));
    EXPECT_TRUE(c.y.gaps_untouched()) << "wrote outside y's view";
    if (!stats) {
        EXPECT_TRUE(c.mean.all_poison());
    }
}

class Variant : public ::testing::TestWithParam<VariantCase> {};

TEST_P(Variant, MatchesFloat64Reference) {
    const VariantCase vc = GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    for (const Shape &shape : core_shapes()) {
        for (bool affine : {true, false}) {
            if (!affine && vc.param != vc.dtype && vc.dtype != DType::F32) continue;
            SCOPED_TRACE(to_string(shape.dims) + " G=" + std::to_string(shape.G) +
                         (affine ? " affine" : " no affine"));
            check_forward(shape, vc.dtype, vc.param, vc.layout, affine, /*stats=*/affine, rng);
        }
    }
}

#if defined(__aarch64__)
const char *const kFamilySuffix = "_arm";
#else
const char *const kFamilySuffix = "_x86";
#endif

// The registry serves this case with the variant of the matching name, so every compiled
// variant is the one under test in exactly one of these cases.
TEST_P(Variant, DispatchesToItsVariant) {
    const VariantCase vc = GetParam();
    Tensor x({2, 8, 5, 5}, vc.dtype, vc.layout), y({2, 8, 5, 5}, vc.dtype, vc.layout);
    Param gamma(std::vector<double>(8, 1.0), vc.param), beta(std::vector<double>(8, 0.0), vc.param);
    groupnorm::detail::Problem problem;
    ASSERT_EQ(groupnorm::detail::validate_forward(x.dl(), gamma.dl(), beta.dl(), 4, 1e-5, y.dl(),
                                                  nullptr, nullptr, &problem),
              GN_STATUS_SUCCESS)
        << gn_last_error_message();
    const auto *variant = groupnorm::detail::find_variant(problem);
    ASSERT_NE(variant, nullptr) << gn_last_error_message();
    const bool nhwc = vc.layout == Layout::ChannelsLast || vc.layout == Layout::PaddedBatchNhwc;
    std::string expected = std::string("gn_fwd_") + name(vc.dtype) +
                           (vc.param != vc.dtype ? std::string("_g") + name(vc.param) : "") +
                           (nhwc ? "_nhwc" : "_nchw") + kFamilySuffix;
    EXPECT_EQ(variant->name, expected);
}

std::vector<VariantCase> all_cases() {
    std::vector<VariantCase> cases;
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast, Layout::ChannelSlice,
                          Layout::PaddedBatchNhwc, Layout::PaddedRowsNchw}) {
        for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
            cases.push_back({dt, dt, layout});
            if (dt != DType::F32) cases.push_back({dt, DType::F32, layout});
        }
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(AllVariants, Variant, ::testing::ValuesIn(all_cases()), case_name);

TEST(Forward, EveryCpuVariantIsCovered) {
    size_t count = 0, cpu = 0;
    const auto *variants = groupnorm::detail::all_variants(&count);
    for (size_t i = 0; i < count; i++) cpu += variants[i].device == groupnorm::detail::GN_DEVICE_CPU;
    // 3 dtypes x 2 layouts, plus float32 gamma for the two half types.
    EXPECT_EQ(cpu, 10u) << "a CPU variant was added: extend all_cases()";
}

TEST(Forward, HugeGroup) {
    // 4M elements in one group: the cascaded sums must hold the contract.
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        SCOPED_TRACE(name(layout));
        check_forward({{1, 4, 1024, 1024}, 1}, DType::F32, DType::F32, layout, true, true, rng);
    }
}

TEST(Forward, EmptyTensorsWriteNothing) {
    for (std::vector<int64_t> dims : {std::vector<int64_t>{0, 8, 4, 4}, {2, 8, 0, 4}, {2, 8, 0}}) {
        SCOPED_TRACE(to_string(dims));
        Tensor x(dims, DType::F32), y(dims, DType::F32);
        Tensor mean({dims[0], 4}, DType::F32);
        y.poison();
        mean.poison();
        EXPECT_EQ(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, y.dl(), mean.dl(), nullptr, nullptr),
                  GN_STATUS_SUCCESS);
        EXPECT_TRUE(y.all_poison());
        EXPECT_TRUE(mean.all_poison());
    }
}

TEST(Forward, InPlace) {
    std::mt19937_64 rng(fresh_seed());
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        Tensor x({2, 16, 9, 11}, DType::F32, layout);
        x.fill_normal(rng, 2.0, 1.5);
        Reference ref = reference_group_norm(x, nullptr, nullptr, 4, 1e-5);
        ASSERT_EQ(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, x.dl(), nullptr, nullptr, nullptr),
                  GN_STATUS_SUCCESS)
            << gn_last_error_message();
        EXPECT_TRUE(matches_reference(x, ref));
    }
}

TEST(Forward, GammaOnlyAndBetaOnly) {
    std::mt19937_64 rng(fresh_seed());
    for (DType dt : {DType::F32, DType::F16}) {
        Tensor x({2, 12, 6, 6}, dt), y({2, 12, 6, 6}, dt);
        x.fill_normal(rng, -1.0, 2.0);
        Param gamma = random_param(12, dt, rng, 1.0, 0.5), beta = random_param(12, dt, rng, 0, 1);
        y.poison();
        ASSERT_EQ(gn_forward(x.dl(), gamma.dl(), nullptr, 3, 1e-5, y.dl(), nullptr, nullptr, nullptr),
                  GN_STATUS_SUCCESS);
        EXPECT_TRUE(matches_reference(y, reference_group_norm(x, &gamma, nullptr, 3, 1e-5)));
        y.poison();
        ASSERT_EQ(gn_forward(x.dl(), nullptr, beta.dl(), 3, 1e-5, y.dl(), nullptr, nullptr, nullptr),
                  GN_STATUS_SUCCESS);
        EXPECT_TRUE(matches_reference(y, reference_group_norm(x, nullptr, &beta, 3, 1e-5)));
    }
}

}  // namespace
