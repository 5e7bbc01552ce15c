// gn_backward: every backward variant of the registry against a float64 reference of the
// gradients, central differences of our own forward, the numerics cases (|mean| = 1e4 std,
// NaN in one group), determinism across thread counts, in place, partial outputs, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>

#include "canonicalise.h"
#include "dispatch.h"
#include "isa.h"
#include "backward_case.h"
#include "reference.h"
#include "registry_cases.h"
#include "registry.h"
#include "test_shapes.h"
#include "groupnorm/groupnorm.h"

using namespace gntest;
namespace gd = groupnorm::detail;

namespace {

class BackwardVariant : public ::testing::TestWithParam<const gd::Variant *> {};

// The variant itself, on every core shape and test layout it can run, at this process's
// ISA level.
TEST_P(BackwardVariant, MatchesFloat64Reference) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    ASSERT_EQ(gd::install_cpu_isa_cap(), GN_STATUS_SUCCESS);
    int ran = 0;
    for (Layout layout : test_layouts(v.layout)) {
        for (const Shape &shape : core_shapes()) {
            for (bool affine : {true, false}) {
                SCOPED_TRACE(to_string(shape.dims) + " G=" + std::to_string(shape.G) + " " +
                             name(layout) + (affine ? " gamma" : " no gamma"));
                BackwardCase c(shape, dt, pt, layout, affine,
                               std::uniform_real_distribution<double>(-3, 3)(rng), 1.5, rng);
                if (!c.run_variant(v)) continue;
                EXPECT_TRUE(matches_backward_reference(c.reference(), &c.dx, &c.dgamma, &c.dbeta, c.G));
                EXPECT_TRUE(c.dx.gaps_untouched()) << "wrote outside dx's view";
                ran++;
            }
        }
    }
    EXPECT_GE(ran, 16) << "too few shapes ran this variant";
}

INSTANTIATE_TEST_SUITE_P(Registry, BackwardVariant, ::testing::ValuesIn(variants_of(gd::GN_DEVICE_CPU, gd::GN_OP_BACKWARD)),
                         [](const auto &info) { return std::string(info.param->name); });

// |mean| = 1e4 std: the sums about the mean (and its rounding corrected) hold the
// contract; dy * x sums would be off by ~1e-3 relative in float32 (~1e-12 in float64).
TEST(Backward, LargeMean) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    for (DType dt : {DType::F32, DType::F64})
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        for (const Shape &shape : {Shape{{2, 8, 33, 17}, 4}, Shape{{1, 64, 40, 40}, 32}, Shape{{2, 4, 1000}, 1}}) {
            SCOPED_TRACE(to_string(shape.dims) + " " + name(layout) + " " + name(dt));
            BackwardCase c(shape, dt, dt, layout, true, -1e4, 1.0, rng);
            ASSERT_EQ(c.run(), GN_STATUS_SUCCESS) << gn_last_error_message();
            EXPECT_TRUE(matches_backward_reference(c.reference(), &c.dx, &c.dgamma, &c.dbeta, c.G));
        }
    }
}

// Long channel sums of correlated terms (BackwardCase::fill_correlated), data like the
// backward fuzzer's first finding (S = 432, dx 2 ulp off in float16): with one running
// float32 sum per lane, nchw dx left the contract at S = 2^17 here (and by up to 10x at
// S = 2^18, dgamma too). Every CPU variant.
TEST_P(BackwardVariant, LongCorrelatedSums) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    ASSERT_EQ(gd::install_cpu_isa_cap(), GN_STATUS_SUCCESS);
    for (Layout layout : test_layouts(v.layout)) {
        for (const Shape &shape : {Shape{{2, 4, 12, 4, 9}, 1}, Shape{{1, 2, 512, 256}, 1},
                                   Shape{{1, 16, 4099}, 4}}) {
            SCOPED_TRACE(to_string(shape.dims) + " " + name(layout));
            BackwardCase c(shape, dt, pt, layout, true, 0.0, 1.0, rng);
            c.fill_correlated(dt == DType::F16 || dt == DType::BF16 ? 3.0 : 30.0, rng);
            if (!c.run_variant(v)) continue;
            EXPECT_TRUE(matches_backward_reference(c.reference(), &c.dx, &c.dgamma, &c.dbeta, c.G));
        }
    }
}

// A tensor of 2^21 values in groups of 2^16 (G = 32 of 64 channels, 128x256): the nchw
// variants' sums prefetch dx there (generators/tuning.h dx_prefetch_*, both bounds met
// exactly; the prefetch allowed whatever this CPU's policy), a path no smaller test takes.
// Every nchw CPU variant of each x dtype: the rows with float32 gamma for half x differ only
// in gamma's type, which that loop does not read (the test data's generation is most of
// this test's time: seconds under ASan and qemu).
TEST_P(BackwardVariant, LargeTensorWithDxPrefetch) {
    const gd::Variant &v = *GetParam();
    if (v.layout != gd::GN_LAYOUT_NCHW) GTEST_SKIP() << "the prefetch is the nchw schedule's";
    if (v.param_dtype != v.dtype) GTEST_SKIP() << "the same chunk loop as x's own-dtype row";
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    ASSERT_EQ(gd::install_cpu_isa_cap(), GN_STATUS_SUCCESS);
    BackwardCase c({{1, 64, 128, 256}, 32}, dt, pt, Layout::Contiguous, true, 2.0, 1.5, rng);
    PrefetchForcedOn prefetch;
    ASSERT_TRUE(c.run_variant(v));
    EXPECT_TRUE(matches_backward_reference(c.reference(), &c.dx, &c.dgamma, &c.dbeta, c.G));
    EXPECT_TRUE(c.dx.gaps_untouched()) << "wrote outside dx's view";
}

// Central differences of our own forward: L = sum(w * y), dL/dx = dx(dy = w), dL/dgamma, dL/dbeta.
TEST(Backward, MatchesFiniteDifferencesOfForward) {
    std::mt19937_64 rng(fresh_seed());
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        const Shape shape{{2, 4, 3, 3}, 2};
        Tensor x(shape.dims, DType::F32, layout), w(shape.dims, DType::F32, layout), y(shape.dims, DType::F32, layout);
        Tensor dx(shape.dims, DType::F32, layout), mean({2, 2}, DType::F32), rstd({2, 2}, DType::F32);
        x.fill_normal(rng, 1.0, 1.0);
        w.fill_normal(rng, 0.0, 1.0);
        Param gamma = random_param(4, DType::F32, rng, 1.0, 0.5), beta = random_param(4, DType::F32, rng, 0, 1);
        auto loss = [&](Tensor &xx, const Param &gm, const Param &bt) {
            EXPECT_EQ(gn_forward(xx.dl(), gm.dl(), bt.dl(), 2, 1e-5, y.dl(), nullptr, nullptr, nullptr),
                      GN_STATUS_SUCCESS);
            double l = 0;
            for (int64_t n = 0; n < 2; n++)
                for (int64_t c = 0; c < 4; c++)
                    for (int64_t s = 0; s < 9; s++) l += w.get(n, c, s) * y.get(n, c, s);
            return l;
        };
        ASSERT_EQ(gn_forward(x.dl(), gamma.dl(), beta.dl(), 2, 1e-5, y.dl(), mean.dl(), rstd.dl(), nullptr),
                  GN_STATUS_SUCCESS);
        ParamGrad dgamma(4, DType::F32), dbeta(4, DType::F32);
        ASSERT_EQ(gn_backward(w.dl(), x.dl(), mean.dl(), rstd.dl(), gamma.dl(), 2, dx.dl(), dgamma.dl(),
                              dbeta.dl(), nullptr),
                  GN_STATUS_SUCCESS)
            << gn_last_error_message();
        const double h = 1e-2;
        for (int64_t n = 0; n < 2; n++) {
            for (int64_t c = 0; c < 4; c++) {
                for (int64_t s = 0; s < 9; s += 4) {
                    const double x0 = x.get(n, c, s);
                    x.set(n, c, s, x0 + h);
                    const double lp = loss(x, gamma, beta);
                    x.set(n, c, s, x0 - h);
                    const double lm = loss(x, gamma, beta);
                    x.set(n, c, s, x0);
                    const double fd = (lp - lm) / (2 * h);
                    EXPECT_NEAR(dx.get(n, c, s), fd, 2e-3 * (std::fabs(fd) + 1)) << n << " " << c << " " << s;
                }
            }
        }
        for (int64_t c = 0; c < 4; c++) {
            std::vector<double> gp(4), gm(4), b(4);
            for (int64_t k = 0; k < 4; k++) gp[k] = gm[k] = gamma[k], b[k] = beta[k];
            gp[c] += h, gm[c] -= h;
            const double fd_g = (loss(x, Param(gp, DType::F32), beta) - loss(x, Param(gm, DType::F32), beta)) / (2 * h);
            EXPECT_NEAR(dgamma.get(c), fd_g, 2e-3 * (std::fabs(fd_g) + 1)) << "dgamma " << c;
            std::vector<double> bp = b, bm = b;
            bp[c] += h, bm[c] -= h;
            const double fd_b = (loss(x, gamma, Param(bp, DType::F32)) - loss(x, gamma, Param(bm, DType::F32))) / (2 * h);
            EXPECT_NEAR(dbeta.get(c), fd_b, 2e-3 * (std::fabs(fd_b) + 1)) << "dbeta " << c;
        }
    }
}

// dgamma and dbeta reduce over the samples in a fixed order: the same bits at 1 and 2
// threads and across runs; dx too.
TEST(Backward, BitIdenticalAcrossThreadCountsAndRuns) {
    std::mt19937_64 rng(fresh_seed());
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        BackwardCase c({{4, 64, 20, 20}, 8}, DType::F32, DType::F32, layout, true, 0.5, 1.0, rng);
        std::vector<std::vector<uint8_t>> runs;
        for (int threads : {1, 2, 2, 1}) {
            ASSERT_EQ(gn_set_num_threads(threads), GN_STATUS_SUCCESS);
            ASSERT_EQ(c.run(), GN_STATUS_SUCCESS);
            std::vector<uint8_t> bits = c.dgamma.bytes();
            bits.insert(bits.end(), c.dbeta.bytes().begin(), c.dbeta.bytes().end());
            for (int64_t n = 0; n < 4; n++)
                for (int64_t ch = 0; ch < 64; ch++)
                    for (int64_t s = 0; s < 400; s += 7) {
                        const float v = (float)c.dx.get(n, ch, s);
                        const uint8_t *b = reinterpret_cast<const uint8_t *>(&v);
                        bits.insert(bits.end(), b, b + 4);
                    }
            runs.push_back(bits);
        }
        gn_set_num_threads(0);
        for (size_t i = 1; i < runs.size(); i++) EXPECT_EQ(runs[i], runs[0]) << "run " << i;
    }
}

TEST(Backward, InPlaceOnDy) {
    std::mt19937_64 rng(fresh_seed());
    for (DType dt : {DType::F32, DType::F64})
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        BackwardCase c({{2, 16, 9, 11}, 4}, dt, dt, layout, true, 2.0, 1.5, rng);
        const BackwardReference ref = c.reference();
        ASSERT_EQ(gn_backward(c.dy.dl(), c.x.dl(), c.mean.dl(), c.rstd.dl(), c.g(), c.G, c.dy.dl(),
                              c.dgamma.dl(), c.dbeta.dl(), nullptr),
                  GN_STATUS_SUCCESS)
            << gn_last_error_message();
        EXPECT_TRUE(matches_backward_reference(ref, &c.dy, &c.dgamma, &c.dbeta, c.G));
    }
}

// Any output may be omitted; the others are the same as with all three.
TEST(Backward, PartialOutputs) {
    std::mt19937_64 rng(fresh_seed());
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        BackwardCase c({{2, 12, 7, 7}, 3}, DType::F32, DType::F32, layout, true, 1.0, 1.0, rng);
        const BackwardReference ref = c.reference();
        ASSERT_EQ(c.run(false, true, true), GN_STATUS_SUCCESS) << gn_last_error_message();
        EXPECT_TRUE(c.dx.all_poison()) << "dx not requested but written";
        EXPECT_TRUE(matches_backward_reference(ref, nullptr, &c.dgamma, &c.dbeta, c.G));
        ParamGrad g2(12, DType::F32), b2(12, DType::F32);
        ASSERT_EQ(gn_backward(c.dy.dl(), c.x.dl(), c.mean.dl(), c.rstd.dl(), c.g(), c.G, c.dx.dl(),
                              nullptr, nullptr, nullptr),
                  GN_STATUS_SUCCESS);
        EXPECT_TRUE(matches_backward_reference(ref, &c.dx, nullptr, nullptr, c.G));
        ASSERT_EQ(gn_backward(c.dy.dl(), c.x.dl(), c.mean.dl(), c.rstd.dl(), c.g(), c.G, nullptr,
                              nullptr, b2.dl(), nullptr),
                  GN_STATUS_SUCCESS);
        EXPECT_TRUE(matches_backward_reference(ref, nullptr, nullptr, &b2, c.G));
        EXPECT_TRUE(g2.all_poison());
    }
}

// A NaN in one group makes that group's dx NaN and its channels' dgamma/dbeta NaN; every
// other group and channel stays finite.
TEST(Backward, NanConfinedToItsGroup) {
    std::mt19937_64 rng(fresh_seed());
    for (DType dt : {DType::F32, DType::F64})
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        SCOPED_TRACE(std::string(name(layout)) + " " + name(dt));
        BackwardCase c({{2, 8, 5, 5}, 4}, dt, dt, layout, true, 0.0, 1.0, rng);
        c.x.set(1, 2, 3, NAN);  // sample 1, group 1 (channels 2, 3)
        Tensor y({2, 8, 5, 5}, dt, layout);
        ASSERT_EQ(gn_forward(c.x.dl(), c.g(), nullptr, 4, 1e-5, y.dl(), c.mean.dl(), c.rstd.dl(), nullptr),
                  GN_STATUS_SUCCESS);
        ASSERT_EQ(c.run(), GN_STATUS_SUCCESS);
        for (int64_t n = 0; n < 2; n++)
            for (int64_t ch = 0; ch < 8; ch++)
                for (int64_t s = 0; s < 25; s++) {
                    const bool poisoned_group = n == 1 && ch / 2 == 1;
                    EXPECT_EQ(std::isnan(c.dx.get(n, ch, s)), poisoned_group) << n << " " << ch << " " << s;
                }
        for (int64_t ch = 0; ch < 8; ch++) {
            EXPECT_EQ(std::isnan(c.dgamma.get(ch)), ch / 2 == 1) << ch;
            EXPECT_FALSE(std::isinf(c.dbeta.get(ch))) << ch;
        }
    }
}

TEST(Backward, EmptyTensorsZeroTheParameterGradients) {
    for (std::vector<int64_t> dims : {std::vector<int64_t>{0, 8, 4, 4}, {2, 8, 0, 4}}) {
        Tensor x(dims, DType::F32), dy(dims, DType::F32), dx(dims, DType::F32);
        Tensor mean({dims[0], 4}, DType::F32), rstd({dims[0], 4}, DType::F32);
        ParamGrad dgamma(8, DType::F32), dbeta(8, DType::F32);
        dx.poison();
        ASSERT_EQ(gn_backward(dy.dl(), x.dl(), mean.dl(), rstd.dl(), nullptr, 4, dx.dl(), dgamma.dl(),
                              dbeta.dl(), nullptr),
                  GN_STATUS_SUCCESS)
            << gn_last_error_message();
        EXPECT_TRUE(dx.all_poison());
        for (int64_t c = 0; c < 8; c++) {
            EXPECT_EQ(dgamma.get(c), 0.0);
            EXPECT_EQ(dbeta.get(c), 0.0);
        }
    }
}

struct ErrorCase {
    const char *what;
    gn_status want;
    const char *message;  // a fragment of gn_last_error_message()
};

TEST(Backward, ErrorsNameTheArgument) {
    Tensor x({2, 8, 4, 4}, DType::F32), dy({2, 8, 4, 4}, DType::F32), dx({2, 8, 4, 4}, DType::F32);
    Tensor dy_bad({2, 8, 4, 5}, DType::F32), dy_f16({2, 8, 4, 4}, DType::F16);
    Tensor mean({2, 4}, DType::F32), rstd({2, 4}, DType::F32), mean_bad({2, 3}, DType::F32);
    ParamGrad dgamma(8, DType::F32), dgamma_short(7, DType::F32), dgamma_f16(8, DType::F16);
    Param gamma(std::vector<double>(8, 1.0), DType::F32);
    auto call = [&](const DLTensor *dy_, const DLTensor *mean_, DLTensor *dx_, DLTensor *dg,
                    int64_t G = 4, const DLTensor *x_ = nullptr, const DLTensor *gm = nullptr) {
        return gn_backward(dy_, x_ ? x_ : x.dl(), mean_, rstd.dl(), gm, G, dx_, dg, nullptr, nullptr);
    };
    struct Row { gn_status got; gn_status want; const char *fragment; };
    const Row rows[] = {
        {call(nullptr, mean.dl(), dx.dl(), nullptr), GN_STATUS_INVALID_ARGUMENT, "dy is NULL"},
        {call(dy.dl(), nullptr, dx.dl(), nullptr), GN_STATUS_INVALID_ARGUMENT, "mean is NULL"},
        {call(dy_bad.dl(), mean.dl(), dx.dl(), nullptr), GN_STATUS_INVALID_ARGUMENT, "dy must have x's shape"},
        {call(dy_f16.dl(), mean.dl(), dx.dl(), nullptr), GN_STATUS_INVALID_ARGUMENT, "dy must have x's dtype"},
        {call(dy.dl(), mean_bad.dl(), dx.dl(), nullptr), GN_STATUS_INVALID_ARGUMENT, "mean must have shape"},
        {call(dy.dl(), mean.dl(), dx.dl(), dgamma_short.dl()), GN_STATUS_INVALID_ARGUMENT, "dgamma must have shape"},
        {call(dy.dl(), mean.dl(), dx.dl(), dgamma_f16.dl(), 4, nullptr, gamma.dl()), GN_STATUS_UNSUPPORTED, "dgamma has dtype float16"},
        {call(dy.dl(), mean.dl(), dx.dl(), nullptr, 3), GN_STATUS_INVALID_ARGUMENT, "num_groups (3) must divide"},
        {call(dy.dl(), mean.dl(), x.dl(), nullptr), GN_STATUS_INVALID_ARGUMENT, "dx overlaps x"},
    };
    for (const Row &r : rows) {
        EXPECT_EQ(r.got, r.want) << r.fragment;
    }
    // Messages: re-run each failing call for its message (the message is the last call's).
    EXPECT_EQ(call(dy.dl(), mean.dl(), x.dl(), nullptr), GN_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(gn_last_error_message()).find("dx overlaps x"), std::string::npos)
        << gn_last_error_message();
    EXPECT_EQ(call(dy_bad.dl(), mean.dl(), dx.dl(), nullptr), GN_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(gn_last_error_message()).find("dy must have x's shape"), std::string::npos)
        << gn_last_error_message();
}

// Outputs that overlap an argument or each other give wrong answers: refused, naming both.
TEST(Backward, OverlappingOutputsAreRefused) {
    std::mt19937_64 rng(fresh_seed());
    BackwardCase c({{2, 8, 4, 4}, 4}, DType::F32, DType::F32, Layout::Contiguous, true, 0.0, 1.0, rng);
    struct Row { DLTensor *dx, *dgamma, *dbeta; const char *message; };
    DLTensor dgamma_on_gamma = *c.dgamma.dl();
    dgamma_on_gamma.data = const_cast<void *>(c.g()->data);
    DLTensor dbeta_in_mean = *c.dbeta.dl();  // 8 floats over mean's (2, 4)
    dbeta_in_mean.data = c.mean.dl()->data;
    for (const Row &r : {Row{c.dx.dl(), c.dgamma.dl(), c.dgamma.dl(), "dbeta overlaps dgamma"},
                         Row{c.x.dl(), nullptr, nullptr, "dx overlaps x"},
                         Row{nullptr, &dgamma_on_gamma, nullptr, "dgamma overlaps gamma"},
                         Row{nullptr, nullptr, &dbeta_in_mean, "dbeta overlaps mean"}}) {
        EXPECT_EQ(gn_backward(c.dy.dl(), c.x.dl(), c.mean.dl(), c.rstd.dl(), c.g(), c.G, r.dx,
                              r.dgamma, r.dbeta, nullptr),
                  GN_STATUS_INVALID_ARGUMENT)
            << r.message;
        EXPECT_NE(std::string(gn_last_error_message()).find(r.message), std::string::npos)
            << gn_last_error_message();
    }
}

}  // namespace
