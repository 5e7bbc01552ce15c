// The residual prologue (gn_config.skip, skip_bias, sum): every compiled residual CPU
// variant, run directly, against the float64 reference of the unfused composition
// (s = x + skip + skip_bias, then GroupNorm of s, then the activation), on the core shapes
// and every layout the variant serves, outputs poisoned; then the C API's validation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <optional>
#include <string>

#include "canonicalise.h"
#include "dispatch.h"
#include "expect_fails.h"
#include "forward_case.h"
#include "groupnorm/groupnorm.h"
#include "isa.h"
#include "reference.h"
#include "registry.h"
#include "registry_cases.h"

using namespace gntest;

namespace {

namespace gd = groupnorm::detail;

std::string variant_name(const ::testing::TestParamInfo<const gd::Variant *> &info) {
    return info.param->name;
}

// Which residual terms a case adds: skip of x's shape, skip per (n, c), skip_bias.
struct Terms {
    bool full, per_nc, bias;
};
constexpr Terms kTerms[] = {
    {true, false, true}, {true, false, false}, {false, true, true}, {false, false, true},
    {false, true, false},
};

std::string describe(const Terms &t) {
    std::string s;
    if (t.full) s += "skip ";
    if (t.per_nc) s += "skip(n,c) ";
    if (t.bias) s += "skip_bias ";
    return s;
}

// One residual call's tensors: a ForwardCase plus the terms and the sum output.
struct ResidualCase {
    ForwardCase base;
    Tensor skip, skip_nc, sum;
    std::optional<Param> skip_bias;
    Terms terms;
    bool want_sum;

    ResidualCase(const Shape &shape, DType dt, DType pt, Layout layout, bool affine,
                 double data_mean, Terms t, bool want_sum, std::mt19937_64 &rng)
        : base(shape, dt, pt, layout, affine, data_mean, rng), skip(shape.dims, dt, layout),
          skip_nc({shape.dims[0], shape.dims[1]}, dt), sum(shape.dims, dt, layout), terms(t),
          want_sum(want_sum) {
        // The residual moves the data: the group statistics are those of the sum.
        skip.fill_normal(rng, -0.5 * data_mean, 1.5);
        skip_nc.fill_normal(rng, 0.25, 2.0);
        sum.poison();
        if (t.bias) skip_bias.emplace(random_param(base.x.C(), pt, rng, 0.5, 1.0));
    }

    // The sum in float64, exactly: what `sum` is checked against.
    double exact_sum(int64_t n, int64_t c, int64_t s) const {
        double v = base.x.get(n, c, s);
        if (terms.full) v += skip.get(n, c, s);
        if (terms.per_nc) v += skip_nc.get(n, c, 0);
        if (terms.bias) v += (*skip_bias)[c];
        return v;
    }
    // The terms' magnitude: the scale of a float32 sum's rounding.
    double magnitude(int64_t n, int64_t c, int64_t s) const {
        double v = std::fabs(base.x.get(n, c, s));
        if (terms.full) v += std::fabs(skip.get(n, c, s));
        if (terms.per_nc) v += std::fabs(skip_nc.get(n, c, 0));
        if (terms.bias) v += std::fabs((*skip_bias)[c]);
        return v;
    }

    // What the kernels normalize (the documented numerics, as the forward fuzzer's
    // reference): the float32 sum (x + skip) + (skip(n,c) + skip_bias), absent terms 0, each
    // operand exact in float32. An (N, C) skip of a rank-2 x has x's shape: the runtime
    // passes it as the full skip. Normalizing the exact sum instead held a group of two
    // values with std 1/200 of their magnitude to bounds the float32 sum's own rounding
    // exceeds (rstd 1.2e-5 off, seed 6308837829647216840).
    double formed_sum(int64_t n, int64_t c, int64_t s) const {
        const bool nc_is_full = terms.per_nc && base.x.shape().size() == 2;
        float a = (float)base.x.get(n, c, s);
        if (terms.full) a = a + (float)skip.get(n, c, s);
        if (nc_is_full) a = a + (float)skip_nc.get(n, c, 0);
        const float nc = terms.per_nc && !nc_is_full ? (float)skip_nc.get(n, c, 0) : 0.0f;
        const float sb = terms.bias ? (float)(*skip_bias)[c] : 0.0f;
        return (double)(a + (nc + sb));
    }

    Reference reference(int64_t G, double eps) const {
        Tensor formed(base.x.shape(), DType::F64);
        for (int64_t n = 0; n < base.x.N(); n++) {
            for (int64_t c = 0; c < base.x.C(); c++) {
                for (int64_t s = 0; s < base.x.S(); s++) formed.set(n, c, s, formed_sum(n, c, s));
            }
        }
        return reference_group_norm(formed, base.gamma ? &*base.gamma : nullptr,
                                    base.beta ? &*base.beta : nullptr, G, eps);
    }

    // sum within the float32 arithmetic's rounding of the exact one (two roundings of at
    // most the terms' magnitude); the half types also within 1 ulp of the rounded exact sum,
    // or (near zero, where their ulp is finer than that arithmetic) within its rounding
    // plus their own (half an ulp: 2^-11 relative for float16, 2^-8 for bfloat16).
    ::testing::AssertionResult sum_matches() const {
        const DType dt = base.x.dtype();
        const double own = dt == DType::F32 ? 0.0 : dt == DType::F16 ? 0x1p-11 : 0x1p-8;
        for (int64_t n = 0; n < base.x.N(); n++) {
            for (int64_t c = 0; c < base.x.C(); c++) {
                for (int64_t s = 0; s < base.x.S(); s++) {
                    const double got = sum.get(n, c, s), want = exact_sum(n, c, s);
                    const double bound = 0x1p-22 * magnitude(n, c, s) + own * std::fabs(got);
                    const bool ok = std::fabs(got - want) <= bound ||
                                    (dt != DType::F32 && ulp_distance(dt, got, round_to(dt, want)) <= 1);
                    if (!ok) {
                        return ::testing::AssertionFailure()
                               << "sum(" << n << ", " << c << ", " << s << ") = " << got
                               << ", want " << want;
                    }
                }
            }
        }
        return ::testing::AssertionSuccess();
    }

    // Validates the problem with the terms of this case (gn_forward's steps).
    gn_status validate(int64_t G, bool stats, gd::Problem *p) {
        gn_status st = gd::validate_forward(base.x.dl(), base.g(), base.b(), G, 1e-5, base.y.dl(),
                                            stats ? base.mean.dl() : nullptr,
                                            stats ? base.rstd.dl() : nullptr, p);
        if (st != GN_STATUS_SUCCESS) return st;
        const DLTensor *skip_arg = terms.full ? skip.dl() : terms.per_nc ? skip_nc.dl() : nullptr;
        return gd::validate_residual(base.x.dl(), skip_arg,
                                     skip_bias ? skip_bias->dl() : nullptr,
                                     want_sum ? sum.dl() : nullptr, p);
    }
};

std::vector<const gd::Variant *> residual_variants() {
    return variants_of(gd::GN_DEVICE_CPU, gd::GN_OP_FORWARD_RESIDUAL);
}

class CpuResidualVariant : public ::testing::TestWithParam<const gd::Variant *> {};

// Every core shape and layout, with and without gamma/beta; each case with one combination
// of terms, with or without the sum, and one activation (none included), in turn from a
// random start.
TEST_P(CpuResidualVariant, MatchesFloat64ReferenceOfTheComposition) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    size_t turn = rng() % 60;
    int ran = 0, ran_with_sum = 0, ran_without_sum = 0;
    for (Layout layout : test_layouts(v.layout)) {
        for (const Shape &shape : core_shapes()) {
            for (bool affine : {true, false}) {
                if (!affine && pt != DType::F32) continue;
                const Terms terms = kTerms[turn % 5];
                const bool want_sum = (turn / 5) % 2 == 0;
                const int act = (int)(turn % 3 == 0 ? GN_ACTIVATION_NONE : 1 + turn % 4);
                turn++;
                SCOPED_TRACE(describe(terms) + (want_sum ? "sum " : "") + "act=" +
                             std::to_string(act) + " " + to_string(shape.dims) + " G=" +
                             std::to_string(shape.G) + " " + name(layout) +
                             (affine ? " affine" : " no affine"));
                ResidualCase c(shape, dt, pt, layout, affine,
                               std::uniform_real_distribution<double>(-3.0, 3.0)(rng), terms,
                               want_sum, rng);
                gd::Problem p;
                ASSERT_EQ(c.validate(shape.G, affine, &p), GN_STATUS_SUCCESS)
                    << gn_last_error_message();
                if (p.layout != v.layout || !gd::can_run(v, p)) continue;
                p.activation = act;
                ASSERT_EQ(gd::install_cpu_isa_cap(), GN_STATUS_SUCCESS);
                ASSERT_EQ(gd::run_forward(v, p, 1e-5), GN_STATUS_SUCCESS) << gn_last_error_message();
                Reference ref = c.reference(shape.G, 1e-5);
                apply_activation(ref, act);
                EXPECT_TRUE(matches_reference(c.base.y, ref, affine ? &c.base.mean : nullptr,
                                              affine ? &c.base.rstd : nullptr));
                EXPECT_TRUE(c.base.y.gaps_untouched()) << "wrote outside y's view";
                if (want_sum) {
                    EXPECT_TRUE(c.sum_matches());
                    EXPECT_TRUE(c.sum.gaps_untouched()) << "wrote outside sum's view";
                    ran_with_sum++;
                } else {
                    EXPECT_TRUE(c.sum.all_poison()) << "wrote a sum nobody asked for";
                    ran_without_sum++;
                }
                ran++;
            }
        }
    }
    EXPECT_GE(ran, 20) << "too few shapes ran this variant";
    EXPECT_GE(ran_with_sum, 5);
    EXPECT_GE(ran_without_sum, 5);
}

// A residual that cancels most of x's mean: |mean of x| = 1e4 std, skip = -1e4 + noise.
// The statistics are the sum's, computed about its own pivot.
TEST_P(CpuResidualVariant, LargeCancellingResidual) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    if (dt != DType::F32) GTEST_SKIP() << "1e4 std is below a half type's resolution";
    int ran = 0;
    for (Layout layout : test_layouts(v.layout)) {
        const Shape shape{{2, 32, 9, 9}, 8};
        ResidualCase c(shape, dt, pt, layout, true, 0.0, Terms{true, false, true}, true, rng);
        c.base.x.fill_normal(rng, 1e4, 1.0);
        c.skip.fill_normal(rng, -1e4 + 3.0, 1.0);
        gd::Problem p;
        ASSERT_EQ(c.validate(shape.G, true, &p), GN_STATUS_SUCCESS) << gn_last_error_message();
        if (p.layout != v.layout) continue;
        ASSERT_EQ(gd::run_forward(v, p, 1e-5), GN_STATUS_SUCCESS) << gn_last_error_message();
        // x + skip is exact in float32 (Sterbenz: -skip is within a factor 2 of x); the
        // statistics must then be as good as for data of mean ~3.
        EXPECT_TRUE(c.sum_matches());
        EXPECT_TRUE(matches_reference(c.base.y, c.reference(shape.G, 1e-5), &c.base.mean,
                                      &c.base.rstd));
        ran++;
    }
    EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(Registry, CpuResidualVariant, ::testing::ValuesIn(residual_variants()),
                         variant_name);

// Through the public entry point: dispatch serves the residual op with a residual variant,
// and a config without the residual fields is plain GroupNorm.
TEST(Residual, PublicApiDispatchesAndMatches) {
    std::mt19937_64 rng(fresh_seed());
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        const Shape shape{{2, 32, 6, 5}, 8};
        ResidualCase c(shape, DType::F32, DType::F32, layout, true, 1.0, Terms{true, false, true},
                       true, rng);
        gn_config cfg = GN_CONFIG_INIT;
        cfg.skip = c.skip.dl();
        cfg.skip_bias = c.skip_bias->dl();
        cfg.sum = c.sum.dl();
        cfg.activation = GN_ACTIVATION_SILU;
        ASSERT_EQ(gn_forward(c.base.x.dl(), c.base.g(), c.base.b(), shape.G, 1e-5, c.base.y.dl(),
                             c.base.mean.dl(), c.base.rstd.dl(), &cfg),
                  GN_STATUS_SUCCESS)
            << gn_last_error_message();
        Reference ref = c.reference(shape.G, 1e-5);
        apply_activation(ref, GN_ACTIVATION_SILU);
        EXPECT_TRUE(matches_reference(c.base.y, ref, &c.base.mean, &c.base.rstd));
        EXPECT_TRUE(c.sum_matches());
    }
}

// Without a sum, y may be x (in place), as in plain GroupNorm.
TEST(Residual, InPlaceWithoutSum) {
    std::mt19937_64 rng(fresh_seed());
    const Shape shape{{2, 16, 7, 7}, 4};
    ResidualCase c(shape, DType::F32, DType::F32, Layout::Contiguous, true, 1.0,
                   Terms{true, false, true}, false, rng);
    Reference ref = c.reference(shape.G, 1e-5);
    gn_config cfg = GN_CONFIG_INIT;
    cfg.skip = c.skip.dl();
    cfg.skip_bias = c.skip_bias->dl();
    ASSERT_EQ(gn_forward(c.base.x.dl(), c.base.g(), c.base.b(), shape.G, 1e-5, c.base.x.dl(),
                         nullptr, nullptr, &cfg),
              GN_STATUS_SUCCESS)
        << gn_last_error_message();
    EXPECT_TRUE(matches_reference(c.base.x, ref));
}

class ResidualErrors : public ::testing::Test {
protected:
    std::mt19937_64 rng{fresh_seed()};
    Shape shape{{2, 8, 4, 4}, 4};
    ResidualCase c{shape, DType::F32, DType::F32, Layout::Contiguous, true, 0.0,
                   Terms{true, false, true}, true, rng};
    gn_config cfg = GN_CONFIG_INIT;

    void SetUp() override {
        cfg.skip = c.skip.dl();
        cfg.skip_bias = c.skip_bias->dl();
        cfg.sum = c.sum.dl();
    }
    gn_status run(const DLTensor *y = nullptr) {
        return gn_forward(c.base.x.dl(), c.base.g(), c.base.b(), shape.G, 1e-5,
                          const_cast<DLTensor *>(y ? y : c.base.y.dl()), nullptr, nullptr, &cfg);
    }
    // Nothing may have been written on a refused call.
    void expect_untouched() {
        EXPECT_TRUE(c.base.y.all_poison());
        EXPECT_TRUE(c.sum.all_poison());
    }
};

TEST_F(ResidualErrors, SkipDtypeAndShape) {
    Tensor f16({2, 8, 4, 4}, DType::F16);
    cfg.skip = f16.dl();
    EXPECT_FAILS(run(), GN_STATUS_INVALID_ARGUMENT, "config->skip must have x's dtype");
    Tensor wrong({2, 8, 4, 5}, DType::F32);
    cfg.skip = wrong.dl();
    EXPECT_FAILS(run(), GN_STATUS_INVALID_ARGUMENT, "config->skip must have x's shape");
    Tensor wrong_nc({2, 4}, DType::F32);
    cfg.skip = wrong_nc.dl();
    EXPECT_FAILS(run(), GN_STATUS_INVALID_ARGUMENT, "(N, C) = (2, 8)");
    Tensor strided_nc({2, 8, 1, 1}, DType::F32, Layout::ChannelSlice);  // c stride 1, n (8+3)
    cfg.skip = strided_nc.dl();
    EXPECT_EQ(run(), GN_STATUS_SUCCESS) << gn_last_error_message();
    Tensor channels_last({2, 8, 4, 4}, DType::F32, Layout::ChannelsLast);
    cfg.skip = channels_last.dl();
    EXPECT_FAILS(run(), GN_STATUS_UNSUPPORTED, "config->skip must have x's layout");
}

TEST_F(ResidualErrors, SkipBiasAndSum) {
    Param short_bias = random_param(4, DType::F32, rng, 0.0, 1.0);
    cfg.skip_bias = short_bias.dl();
    EXPECT_FAILS(run(), GN_STATUS_INVALID_ARGUMENT, "config->skip_bias must have shape (C,)");
    Param f16_bias = random_param(8, DType::F16, rng, 0.0, 1.0);
    cfg.skip_bias = f16_bias.dl();
    EXPECT_FAILS(run(), GN_STATUS_UNSUPPORTED, "config->skip_bias has dtype float16");
    cfg.skip_bias = c.skip_bias->dl();
    Tensor wrong_sum({2, 8, 4, 5}, DType::F32);
    cfg.sum = wrong_sum.dl();
    EXPECT_FAILS(run(), GN_STATUS_INVALID_ARGUMENT, "config->sum must have x's shape");
    expect_untouched();
}

TEST_F(ResidualErrors, OverlapsWithASum) {
    // y = x is in place; with a sum it would hand sum the normalized values.
    EXPECT_FAILS(run(c.base.x.dl()), GN_STATUS_INVALID_ARGUMENT, "y overlaps x");
    cfg.sum = c.base.x.dl();
    EXPECT_FAILS(run(), GN_STATUS_INVALID_ARGUMENT, "config->sum overlaps x");
    cfg.sum = c.skip.dl();
    EXPECT_FAILS(run(), GN_STATUS_INVALID_ARGUMENT, "config->sum overlaps config->skip");
    cfg.sum = c.base.y.dl();
    EXPECT_FAILS(run(), GN_STATUS_INVALID_ARGUMENT, "config->sum overlaps y");
}

TEST_F(ResidualErrors, Float64AndBackward) {
    Tensor x64({2, 8, 4, 4}, DType::F64), y64({2, 8, 4, 4}, DType::F64);
    gn_config only_bias = GN_CONFIG_INIT;
    Param bias64 = random_param(8, DType::F64, rng, 0.0, 1.0);
    only_bias.skip_bias = bias64.dl();
    EXPECT_FAILS(gn_forward(x64.dl(), nullptr, nullptr, 4, 1e-5, y64.dl(), nullptr, nullptr,
                            &only_bias),
                 GN_STATUS_UNSUPPORTED, "not compiled for float64");
    Tensor dy({2, 8, 4, 4}, DType::F32), dx({2, 8, 4, 4}, DType::F32);
    dy.fill_normal(rng, 0.0, 1.0);
    c.base.mean.fill_normal(rng, 0.0, 1.0);
    c.base.rstd.fill_normal(rng, 1.0, 0.1);
    EXPECT_FAILS(gn_backward(dy.dl(), c.base.x.dl(), c.base.mean.dl(), c.base.rstd.dl(), nullptr,
                             4, dx.dl(), nullptr, nullptr, &cfg),
                 GN_STATUS_INVALID_ARGUMENT, "config->skip, skip_bias and sum are gn_forward's");
}

// A caller built against the gn_config before the residual fields passes a smaller
// struct_size: whatever follows it in memory is not read (plain GroupNorm).
TEST_F(ResidualErrors, OlderConfigIgnoresTheResidualFields) {
    cfg.struct_size = offsetof(gn_config, beta) + sizeof(void *);
    ASSERT_EQ(run(), GN_STATUS_SUCCESS) << gn_last_error_message();
    EXPECT_TRUE(matches_reference(c.base.y, c.base.reference(shape.G, 1e-5)));
    EXPECT_TRUE(c.sum.all_poison());
}

}  // namespace
