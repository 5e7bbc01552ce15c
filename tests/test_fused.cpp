// Fused activations (gn_config.activation): every compiled CPU variant, run directly, with
// every activation against the float64 reference of the unfused composition (GroupNorm, then
// the activation), on the core shapes and all layouts the variant serves, outputs poisoned;
// |mean| = 1e4 std data; NaN / Inf behaviour of each activation; the versioned config.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>

#include "backward_case.h"
#include "canonicalise.h"
#include "dispatch.h"
#include "forward_case.h"
#include "expect_fails.h"
#include "groupnorm/groupnorm.h"
#include "groupnorm/groupnorm.hpp"
#include "isa.h"
#include "reference.h"
#include "registry.h"
#include "registry_cases.h"

using namespace gntest;

namespace {

namespace gd = groupnorm::detail;

constexpr int kActivations[] = {GN_ACTIVATION_SILU, GN_ACTIVATION_RELU, GN_ACTIVATION_GELU,
                                GN_ACTIVATION_GELU_TANH};

const char *activation_name(int a) {
    switch (a) {
    case GN_ACTIVATION_SILU: return "silu";
    case GN_ACTIVATION_RELU: return "relu";
    case GN_ACTIVATION_GELU: return "gelu";
    case GN_ACTIVATION_GELU_TANH: return "gelu_tanh";
    default: return "none";
    }
}

std::string variant_name(const ::testing::TestParamInfo<const gd::Variant *> &info) {
    return info.param->name;
}

// The CPU variants of an op that compile the activations: all but float64's (which have none;
// ApiErrors.Float64 checks the refusal).
std::vector<const gd::Variant *> fused_variants(gd::gn_op op) {
    std::vector<const gd::Variant *> out;
    for (const gd::Variant *v : variants_of(gd::GN_DEVICE_CPU, op)) {
        if (v->dtype != gd::GN_DTYPE_F64) out.push_back(v);
    }
    return out;
}

class CpuFusedVariant : public ::testing::TestWithParam<const gd::Variant *> {};

// Runs variant v directly on case c with the activation; false when v cannot run it.
bool run_case(const gd::Variant &v, ForwardCase &c, const Shape &shape, bool stats, int act) {
    gd::Problem p;
    EXPECT_EQ(gd::validate_forward(c.x.dl(), c.g(), c.b(), shape.G, 1e-5, c.y.dl(),
                                   stats ? c.mean.dl() : nullptr, stats ? c.rstd.dl() : nullptr, &p),
              GN_STATUS_SUCCESS)
        << gn_last_error_message();
    if (p.layout != v.layout || !gd::can_run(v, p)) return false;
    p.activation = act;
    EXPECT_EQ(gd::install_cpu_isa_cap(), GN_STATUS_SUCCESS);
    EXPECT_EQ(gd::run_forward(v, p, 1e-5), GN_STATUS_SUCCESS) << gn_last_error_message();
    return true;
}

// Every core shape and layout, with and without gamma/beta, each case with one activation in
// turn from a random start (all four on every variant, a quarter of the cases each; over runs
// every pairing).
TEST_P(CpuFusedVariant, ActivationsMatchFloat64Reference) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    size_t turn = rng() % 4;
    int ran = 0, ran_with[4] = {};
    for (Layout layout : test_layouts(v.layout)) {
        for (const Shape &shape : core_shapes()) {
            for (bool affine : {true, false}) {
                if (!affine && pt != DType::F32) continue;
                const int act = kActivations[turn++ % 4];
                SCOPED_TRACE(std::string(activation_name(act)) + " " + to_string(shape.dims) +
                             " G=" + std::to_string(shape.G) + " " + name(layout) +
                             (affine ? " affine" : " no affine"));
                ForwardCase c(shape, dt, pt, layout, affine,
                              std::uniform_real_distribution<double>(-3.0, 3.0)(rng), rng);
                if (!run_case(v, c, shape, affine, act)) continue;
                Reference ref = c.reference(shape.G, 1e-5);
                apply_activation(ref, act);
                // mean and rstd are the normalization's, whatever the activation.
                EXPECT_TRUE(matches_reference(c.y, ref, affine ? &c.mean : nullptr,
                                              affine ? &c.rstd : nullptr));
                EXPECT_TRUE(c.y.gaps_untouched()) << "wrote outside y's view";
                ran++;
                ran_with[(turn - 1) % 4]++;
            }
        }
    }
    EXPECT_GE(ran, 20) << "too few shapes ran this variant";
    for (int a = 0; a < 4; a++) EXPECT_GE(ran_with[a], 4) << activation_name(kActivations[a]);
}

// |mean| = 1e4 std: the activation sees the same well-centred z as plain GroupNorm.
TEST_P(CpuFusedVariant, FarFromZeroMean) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    if (dt != DType::F32) GTEST_SKIP() << "|mean| = 1e4 std is below a half type's resolution";
    int ran = 0;
    for (int act : kActivations) {
        for (Layout layout : test_layouts(v.layout)) {
            for (const Shape &shape : {Shape{{2, 32, 9, 9}, 8}, Shape{{1, 64, 130}, 32},
                                       Shape{{2, 8, 33, 17}, 8}}) {
                Tensor x(shape.dims, dt, layout), y(shape.dims, dt, layout);
                x.fill_normal(rng, (act % 2 ? 1 : -1) * 1e4, 1.0);
                y.poison();
                Param gamma = random_param(x.C(), pt, rng, 1.0, 0.5);
                Param beta = random_param(x.C(), pt, rng, 0.0, 1.0);
                gd::Problem p;
                ASSERT_EQ(gd::validate_forward(x.dl(), gamma.dl(), beta.dl(), shape.G, 1e-5,
                                               y.dl(), nullptr, nullptr, &p),
                          GN_STATUS_SUCCESS);
                if (p.layout != v.layout || !gd::can_run(v, p)) continue;
                p.activation = act;
                ASSERT_EQ(gd::run_forward(v, p, 1e-5), GN_STATUS_SUCCESS) << gn_last_error_message();
                Reference ref = reference_group_norm(x, &gamma, &beta, shape.G, 1e-5);
                apply_activation(ref, act);
                EXPECT_TRUE(matches_reference(y, ref))
                    << activation_name(act) << " " << to_string(shape.dims) << " " << name(layout);
                EXPECT_TRUE(y.gaps_untouched());
                ran++;
            }
        }
    }
    EXPECT_GE(ran, 4 * 3);
}

INSTANTIATE_TEST_SUITE_P(Registry, CpuFusedVariant,
                         ::testing::ValuesIn(fused_variants(gd::GN_OP_FORWARD)), variant_name);

class CpuFusedBackward : public ::testing::TestWithParam<const gd::Variant *> {};

// Every core shape and layout, with gamma and beta and without, each case with one activation
// in turn from a random start (as the forward test above).
TEST_P(CpuFusedBackward, MatchesFloat64Reference) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    ASSERT_EQ(gd::install_cpu_isa_cap(), GN_STATUS_SUCCESS);
    size_t turn = rng() % 4;
    int ran = 0, ran_with[4] = {};
    for (Layout layout : test_layouts(v.layout)) {
        for (const Shape &shape : core_shapes()) {
            for (bool affine : {true, false}) {
                const size_t which = turn++ % 4;
                const int act = kActivations[which];
                SCOPED_TRACE(std::string(activation_name(act)) + " " + to_string(shape.dims) +
                             " G=" + std::to_string(shape.G) + " " + name(layout) +
                             (affine ? " gamma, beta" : " no gamma/beta"));
                BackwardCase c(shape, dt, pt, layout, affine,
                               std::uniform_real_distribution<double>(-3, 3)(rng), 1.5, rng);
                std::optional<Param> beta;
                if (affine) beta.emplace(random_param(c.x.C(), pt, rng, 0.0, 1.0));
                if (act == GN_ACTIVATION_RELU) c.avoid_kink(beta ? &*beta : nullptr);
                // A two-value group's own std can be tiny beside its mean.
                if (!c.inside_fused_contract()) continue;
                gd::Problem p;
                ASSERT_EQ(c.validate(act, beta ? &*beta : nullptr, &p), GN_STATUS_SUCCESS)
                    << gn_last_error_message();
                if (p.layout != v.layout || p.param_dtype != v.param_dtype || !gd::can_run(v, p)) {
                    continue;
                }
                ASSERT_EQ(gd::run_backward(v, p), GN_STATUS_SUCCESS) << gn_last_error_message();
                EXPECT_TRUE(matches_backward_reference(
                    c.fused_reference(beta ? &*beta : nullptr, act), &c.dx, &c.dgamma,
                    &c.dbeta, c.G));
                EXPECT_TRUE(c.dx.gaps_untouched()) << "wrote outside dx's view";
                ran++;
                ran_with[which]++;
            }
        }
    }
    EXPECT_GE(ran, 16) << "too few shapes ran this variant";
    for (int a = 0; a < 4; a++) EXPECT_GE(ran_with[a], 3) << activation_name(kActivations[a]);
}

INSTANTIATE_TEST_SUITE_P(Registry, CpuFusedBackward,
                         ::testing::ValuesIn(fused_variants(gd::GN_OP_BACKWARD)), variant_name);

// Through the public API: a mean far from zero and in place (dx = dy), each activation.
// (Not |mean| = 1e4 std: there the saved float32 mean is up to 5e-4 std off, and z, which the
// fused backward recomputes from it, moves by as much; plain GroupNorm's backward corrects
// its sums for that offset, the activation's derivative does not yet: docs/DESIGN.md.)
TEST(FusedBackward, FarMeanAndInPlace) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    for (int act : kActivations) {
        for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
            for (bool in_place : {false, true}) {
                SCOPED_TRACE(std::string(activation_name(act)) + " " + name(layout) +
                             (in_place ? " in place" : ""));
                const Shape shape{{2, 8, 33, 17}, 4};
                BackwardCase c(shape, DType::F32, DType::F32, layout, true,
                               in_place ? 2.0 : -30.0, 1.0, rng);
                Param beta = random_param(8, DType::F32, rng, 0.0, 1.0);
                if (act == GN_ACTIVATION_RELU) c.avoid_kink(&beta);
                const BackwardReference ref = c.fused_reference(&beta, act);
                gn_config config = GN_CONFIG_INIT;
                config.activation = act;
                config.beta = beta.dl();
                Tensor &dx = in_place ? c.dy : c.dx;
                ASSERT_EQ(gn_backward(c.dy.dl(), c.x.dl(), c.mean.dl(), c.rstd.dl(), c.g(), c.G,
                                      dx.dl(), c.dgamma.dl(), c.dbeta.dl(), &config),
                          GN_STATUS_SUCCESS)
                    << gn_last_error_message();
                EXPECT_TRUE(matches_backward_reference(ref, &dx, &c.dgamma, &c.dbeta, c.G));
            }
        }
    }
}

// gn_backward's new arguments: beta only with an activation, of the parameters' dtype and
// shape, never overlapping an output.
TEST(FusedBackward, Validation) {
    std::mt19937_64 rng(fresh_seed());
    BackwardCase c({{2, 8, 4, 4}, 4}, DType::F32, DType::F32, Layout::Contiguous, true, 0.0, 1.0, rng);
    Param beta(std::vector<double>(8, 0.5), DType::F32);
    auto run = [&](const gn_config &config) {
        return gn_backward(c.dy.dl(), c.x.dl(), c.mean.dl(), c.rstd.dl(), c.g(), c.G, c.dx.dl(),
                           c.dgamma.dl(), c.dbeta.dl(), &config);
    };
    gn_config config = GN_CONFIG_INIT;
    config.beta = beta.dl();
    EXPECT_FAILS(run(config), GN_STATUS_INVALID_ARGUMENT, "config->beta is used only with an activation");
    config.activation = 9;
    EXPECT_FAILS(run(config), GN_STATUS_INVALID_ARGUMENT, "config->activation");
    config.activation = GN_ACTIVATION_SILU;
    Param half_beta(std::vector<double>(8, 0.5), DType::F16);
    config.beta = half_beta.dl();
    EXPECT_FAILS(run(config), GN_STATUS_UNSUPPORTED, "config->beta has dtype float16");
    Param short_beta(std::vector<double>(4, 0.5), DType::F32);
    config.beta = short_beta.dl();
    EXPECT_FAILS(run(config), GN_STATUS_INVALID_ARGUMENT, "config->beta must have shape (C,)");
    config.beta = c.dbeta.dl();  // the output dbeta as the input beta
    EXPECT_FAILS(run(config), GN_STATUS_INVALID_ARGUMENT, "overlaps config->beta");
    config.beta = beta.dl();
    EXPECT_EQ(run(config), GN_STATUS_SUCCESS) << gn_last_error_message();
    config.beta = nullptr;  // the forward had no beta: 0
    EXPECT_EQ(run(config), GN_STATUS_SUCCESS) << gn_last_error_message();
}

// NaN in x makes its group NaN under every activation; an infinite beta makes its channel's
// z infinite, and each activation gives what its formula gives in IEEE arithmetic (PyTorch's
// answers: SiLU(+inf) = GELU(+inf) = +inf, SiLU(-inf) = GELU(-inf) = NaN, ReLU(-inf) = 0);
// every other group stays within the contract, group 3 with finite z near -100 and +100,
// past the sigmoid's clamps (where its 2^t is infinite or 0).
TEST(Fused, NonFiniteBehaviourOfEachActivation) {
    std::mt19937_64 rng(fresh_seed());
    const double inf = std::numeric_limits<double>::infinity();
    for (int act : {GN_ACTIVATION_NONE, GN_ACTIVATION_SILU, GN_ACTIVATION_RELU, GN_ACTIVATION_GELU,
                    GN_ACTIVATION_GELU_TANH}) {
        for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
            for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
                SCOPED_TRACE(std::string(activation_name(act)) + " " + name(layout) + " " +
                             std::to_string((int)dt));
                Tensor x({2, 8, 5, 5}, dt, layout), y({2, 8, 5, 5}, dt, layout);
                x.fill_normal(rng, 1.0, 1.0);
                x.set(1, 5, 7, std::numeric_limits<double>::quiet_NaN());  // sample 1, group 2
                std::vector<double> b(8, 0.25);
                b[0] = inf;   // group 0
                b[3] = -inf;  // group 1
                b[6] = -100;  // group 3: finite, far out
                b[7] = 100;
                Param beta(b, DType::F32);
                y.poison();
                gn_config config = GN_CONFIG_INIT;
                config.activation = act;
                ASSERT_EQ(gn_forward(x.dl(), nullptr, beta.dl(), 4, 1e-5, y.dl(), nullptr,
                                     nullptr, &config),
                          GN_STATUS_SUCCESS)
                    << gn_last_error_message();
                Reference ref = reference_group_norm(x, nullptr, &beta, 4, 1e-5);
                apply_activation(ref, act);
                EXPECT_TRUE(matches_reference(y, ref));
                // The reference's own answers at the infinities and in the NaN group.
                EXPECT_EQ(y.get(0, 0, 3), activation_ref(act, inf));
                const double at_minus_inf = y.get(0, 3, 3);
                if (std::isnan(activation_ref(act, -inf))) {
                    EXPECT_TRUE(std::isnan(at_minus_inf)) << at_minus_inf;
                } else {
                    EXPECT_EQ(at_minus_inf, activation_ref(act, -inf));
                }
                for (int64_t c = 4; c < 6; c++) {
                    for (int64_t s = 0; s < 25; s++) {
                        EXPECT_TRUE(std::isnan(y.get(1, c, s))) << y.get(1, c, s);
                    }
                }
            }
        }
    }
}

// Each activation served by dispatch through the public API, and in place (y = x).
TEST(Fused, DispatchAndInPlace) {
    std::mt19937_64 rng(fresh_seed());
    for (int act : kActivations) {
        for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
            Tensor x({2, 16, 9, 11}, DType::F32, layout);
            x.fill_normal(rng, 2.0, 1.5);
            Reference ref = reference_group_norm(x, nullptr, nullptr, 4, 1e-5);
            apply_activation(ref, act);
            gn_config config = GN_CONFIG_INIT;
            config.activation = act;
            ASSERT_EQ(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, x.dl(), nullptr, nullptr, &config),
                      GN_STATUS_SUCCESS)
                << gn_last_error_message();
            EXPECT_TRUE(matches_reference(x, ref)) << activation_name(act) << " " << name(layout);
        }
    }
}


// The new fields are validated with a message naming them; a caller built against the
// older, smaller gn_config (struct_size up to cuda_stream) gets no activation, whatever
// lies beyond its struct.
TEST(Fused, ConfigValidationAndVersioning) {
    std::mt19937_64 rng(fresh_seed());
    Tensor x({2, 8, 4, 4}, DType::F32), y({2, 8, 4, 4}, DType::F32);
    x.fill_normal(rng, 0.5, 2.0);
    for (int bad : {-1, 5, 1000}) {
        gn_config config = GN_CONFIG_INIT;
        config.activation = bad;
        EXPECT_FAILS(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, y.dl(), nullptr, nullptr, &config),
                     GN_STATUS_INVALID_ARGUMENT, "config->activation must be a gn_activation");
    }
    gn_config reserved = GN_CONFIG_INIT;
    reserved.reserved = 3;
    EXPECT_FAILS(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, y.dl(), nullptr, nullptr, &reserved),
                 GN_STATUS_INVALID_ARGUMENT, "config->reserved");
    Param beta(std::vector<double>(8, 0.0), DType::F32);
    gn_config with_beta = GN_CONFIG_INIT;
    with_beta.beta = beta.dl();
    EXPECT_FAILS(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, y.dl(), nullptr, nullptr, &with_beta),
                 GN_STATUS_INVALID_ARGUMENT, "config->beta");

    gn_config old = GN_CONFIG_INIT;
    old.struct_size = offsetof(gn_config, cuda_stream) + sizeof(void *);
    old.activation = 77;  // beyond the old struct: never read
    old.reserved = 5;
    y.poison();
    ASSERT_EQ(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, y.dl(), nullptr, nullptr, &old),
              GN_STATUS_SUCCESS)
        << gn_last_error_message();
    EXPECT_TRUE(matches_reference(y, reference_group_norm(x, nullptr, nullptr, 4, 1e-5)));
}

// The C++ module with an activation: forward as GroupNorm then SiLU, backward through it
// (the module passes its bias as the forward's beta).
TEST(Fused, ModuleWithActivation) {
    std::mt19937_64 rng(fresh_seed());
    BackwardCase c({{2, 8, 6, 6}, 4}, DType::F32, DType::F32, Layout::Contiguous, true, 1.0, 2.0, rng);
    Param beta = random_param(8, DType::F32, rng, 0.0, 1.0);
    std::vector<float> w(8), b(8);
    for (int i = 0; i < 8; i++) w[i] = (float)(*c.gamma)[i], b[i] = (float)beta[i];
    groupnorm::GroupNorm m(4, 8, 1e-5, true, true, GN_ACTIVATION_SILU);
    EXPECT_EQ(m.activation(), GN_ACTIVATION_SILU);
    m.set_weight(w);
    m.set_bias(b);
    Tensor y({2, 8, 6, 6}, DType::F32);
    y.poison();
    m.forward(*c.x.dl(), *y.dl(), c.mean.dl(), c.rstd.dl());
    Reference ref = reference_group_norm(c.x, &*c.gamma, &beta, 4, 1e-5);
    apply_activation(ref, GN_ACTIVATION_SILU);
    EXPECT_TRUE(matches_reference(y, ref));
    m.backward(*c.dy.dl(), *c.x.dl(), *c.mean.dl(), *c.rstd.dl(), c.dx.dl());
    const BackwardReference bref = c.fused_reference(&beta, GN_ACTIVATION_SILU);
    EXPECT_TRUE(matches_backward_reference(bref, &c.dx, nullptr, nullptr, 4));
    for (int ch = 0; ch < 8; ch++) {
        EXPECT_NEAR(m.weight_grad()[ch], bref.dgamma[ch], 1e-5 * (std::fabs(bref.dgamma[ch]) + bref.dgamma_abs[ch]));
        EXPECT_NEAR(m.bias_grad()[ch], bref.dbeta[ch], 1e-5 * (std::fabs(bref.dbeta[ch]) + bref.dbeta_abs[ch]));
    }
    EXPECT_THROW(m.set_activation((gn_activation)7), groupnorm::Error);
}

}  // namespace
