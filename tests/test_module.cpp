// The C++ module mirrors torch.nn.GroupNorm; its documented examples are reproduced.
#include <gtest/gtest.h>

#include "groupnorm/groupnorm.hpp"
#include "reference.h"

using namespace gntest;

namespace {

// torch.nn.GroupNorm docs: input = torch.randn(20, 6, 10, 10); separate 6 channels into 3
// groups, into 6 groups (InstanceNorm), and put all 6 into one group (LayerNorm).
TEST(Module, TorchDocumentedExamples) {
    std::mt19937_64 rng(fresh_seed());
    for (int64_t groups : {3, 6, 1}) {
        SCOPED_TRACE("num_groups " + std::to_string(groups));
        Tensor x({20, 6, 10, 10}, DType::F32), y({20, 6, 10, 10}, DType::F32);
        x.fill_normal(rng, 0.7, 1.0);
        y.poison();
        groupnorm::GroupNorm m(groups, 6);
        EXPECT_EQ(m.eps(), 1e-5);
        EXPECT_TRUE(m.affine());
        EXPECT_EQ(m.weight(), std::vector<float>(6, 1.0f));
        EXPECT_EQ(m.bias(), std::vector<float>(6, 0.0f));
        m.forward(*x.dl(), *y.dl());
        EXPECT_TRUE(matches_reference(y, reference_group_norm(x, nullptr, nullptr, groups, 1e-5)));
    }
}

// backward returns dx and accumulates the parameter gradients across calls, like autograd.
TEST(Module, BackwardAccumulatesParameterGradients) {
    std::mt19937_64 rng(fresh_seed());
    Tensor x({2, 8, 6, 6}, DType::F32), y({2, 8, 6, 6}, DType::F32), dy({2, 8, 6, 6}, DType::F32);
    Tensor dx({2, 8, 6, 6}, DType::F32), mean({2, 4}, DType::F32), rstd({2, 4}, DType::F32);
    x.fill_normal(rng, 1.0, 2.0);
    dy.fill_normal(rng, 0.0, 1.0);
    groupnorm::GroupNorm m(4, 8);
    Param w = random_param(8, DType::F32, rng, 1, 0.5);
    std::vector<float> wv(8);
    for (int i = 0; i < 8; i++) wv[i] = (float)w[i];
    m.set_weight(wv);
    m.forward(*x.dl(), *y.dl(), mean.dl(), rstd.dl());
    const BackwardReference ref = reference_group_norm_backward(dy, x, &w, 4, 1e-5);
    m.backward(*dy.dl(), *x.dl(), *mean.dl(), *rstd.dl(), dx.dl());
    EXPECT_TRUE(matches_backward_reference(ref, &dx, nullptr, nullptr, 4));
    m.backward(*dy.dl(), *x.dl(), *mean.dl(), *rstd.dl(), nullptr);  // accumulates again
    for (int c = 0; c < 8; c++) {
        EXPECT_NEAR(m.weight_grad()[c], 2 * ref.dgamma[c], 1e-5 * (2 * ref.dgamma_abs[c])) << c;
        EXPECT_NEAR(m.bias_grad()[c], 2 * ref.dbeta[c], 1e-5 * (2 * ref.dbeta_abs[c])) << c;
    }
    m.zero_grad();
    EXPECT_EQ(m.weight_grad(), std::vector<float>(8, 0.0f));
    Tensor dy_bad({2, 8, 6, 5}, DType::F32);
    EXPECT_THROW(m.backward(*dy_bad.dl(), *x.dl(), *mean.dl(), *rstd.dl(), dx.dl()), groupnorm::Error);
    EXPECT_EQ(m.weight_grad(), std::vector<float>(8, 0.0f)) << "a failed call accumulates nothing";
}

// float64 x: served without affine (the module's parameters are float32, which the C API
// does not mix with float64 x); with affine the call is refused with the C API's message.
TEST(Module, Float64WithoutAffine) {
    std::mt19937_64 rng(fresh_seed());
    Tensor x({2, 6, 5, 5}, DType::F64), y({2, 6, 5, 5}, DType::F64);
    x.fill_normal(rng, 3.0, 2.0);
    y.poison();
    groupnorm::GroupNorm plain(3, 6, 1e-5, /*affine=*/false);
    plain.forward(*x.dl(), *y.dl());
    EXPECT_TRUE(matches_reference(y, reference_group_norm(x, nullptr, nullptr, 3, 1e-5)));
    groupnorm::GroupNorm affine(3, 6);
    try {
        affine.forward(*x.dl(), *y.dl());
        ADD_FAILURE() << "float32 parameters with float64 x were accepted";
    } catch (const groupnorm::Error &e) {
        EXPECT_EQ(e.status(), GN_STATUS_UNSUPPORTED);
        EXPECT_NE(std::string(e.what()).find("gamma has dtype float32"), std::string::npos) << e.what();
    }
}

TEST(Module, WeightBiasStatsAndEps) {
    std::mt19937_64 rng(fresh_seed());
    Tensor x({3, 8, 5, 5}, DType::BF16, Layout::ChannelsLast), y({3, 8, 5, 5}, DType::BF16, Layout::ChannelsLast);
    x.fill_normal(rng, -2.0, 3.0);
    y.poison();
    Param w = random_param(8, DType::F32, rng, 1, 0.5), b = random_param(8, DType::F32, rng, 0, 1);
    groupnorm::GroupNorm m(2, 8, 1e-3);
    std::vector<float> wv(8), bv(8);
    for (int i = 0; i < 8; i++) {
        wv[i] = (float)w[i];
        bv[i] = (float)b[i];
    }
    m.set_weight(wv);
    m.set_bias(bv);
    Tensor mean({3, 2}, DType::F32), rstd({3, 2}, DType::F32);
    m.forward(*x.dl(), *y.dl(), mean.dl(), rstd.dl());
    EXPECT_TRUE(matches_reference(y, reference_group_norm(x, &w, &b, 2, 1e-3), &mean, &rstd));
}

TEST(Module, NoAffine) {
    std::mt19937_64 rng(fresh_seed());
    Tensor x({2, 4, 7}, DType::F16), y({2, 4, 7}, DType::F16);
    x.fill_normal(rng, 5.0, 2.0);
    y.poison();
    groupnorm::GroupNorm m(2, 4, 1e-5, /*affine=*/false);
    EXPECT_TRUE(m.weight().empty());
    m.forward(*x.dl(), *y.dl());
    EXPECT_TRUE(matches_reference(y, reference_group_norm(x, nullptr, nullptr, 2, 1e-5)));
    EXPECT_THROW(m.set_weight(std::vector<float>(4, 1.0f)), groupnorm::Error);
}

// nn.GroupNorm(..., bias=False) (PyTorch 2.x): a weight and no bias; forward adds none and
// backward accumulates the weight gradient only (gn_backward without dbeta).
TEST(Module, AffineWithoutBias) {
    std::mt19937_64 rng(fresh_seed());
    Tensor x({3, 6, 4, 5}, DType::F32), y({3, 6, 4, 5}, DType::F32), dy({3, 6, 4, 5}, DType::F32);
    Tensor dx({3, 6, 4, 5}, DType::F32), mean({3, 3}, DType::F32), rstd({3, 3}, DType::F32);
    x.fill_normal(rng, -1.0, 2.0);
    dy.fill_normal(rng, 0.0, 1.0);
    y.poison();
    groupnorm::GroupNorm m(3, 6, 1e-3, /*affine=*/true, /*bias=*/false);
    EXPECT_TRUE(m.affine());
    EXPECT_FALSE(m.has_bias());
    EXPECT_EQ(m.weight(), std::vector<float>(6, 1.0f));
    EXPECT_TRUE(m.bias().empty());
    EXPECT_TRUE(m.bias_grad().empty());
    EXPECT_THROW(m.set_bias(std::vector<float>(6, 0.0f)), groupnorm::Error);
    Param w = random_param(6, DType::F32, rng, 1, 0.5);
    std::vector<float> wv(6);
    for (int i = 0; i < 6; i++) wv[i] = (float)w[i];
    m.set_weight(wv);
    m.forward(*x.dl(), *y.dl(), mean.dl(), rstd.dl());
    EXPECT_TRUE(matches_reference(y, reference_group_norm(x, &w, nullptr, 3, 1e-3), &mean, &rstd));
    const BackwardReference ref = reference_group_norm_backward(dy, x, &w, 3, 1e-3);
    m.backward(*dy.dl(), *x.dl(), *mean.dl(), *rstd.dl(), dx.dl());
    EXPECT_TRUE(matches_backward_reference(ref, &dx, nullptr, nullptr, 3));
    for (int c = 0; c < 6; c++) {
        EXPECT_NEAR(m.weight_grad()[c], ref.dgamma[c], 1e-5 * ref.dgamma_abs[c]) << c;
    }
    EXPECT_TRUE(m.bias_grad().empty());
    // affine = false ignores bias, as torch does (no parameters at all).
    EXPECT_FALSE(groupnorm::GroupNorm(3, 6, 1e-5, false, true).has_bias());
}

gn_status status_of(void (*fn)()) {
    try {
        fn();
    } catch (const groupnorm::Error &e) {
        return e.status();
    }
    return GN_STATUS_SUCCESS;
}

TEST(Module, InvalidConstructionThrows) {
    EXPECT_EQ(status_of([] { groupnorm::GroupNorm(3, 8); }), GN_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(status_of([] { groupnorm::GroupNorm(0, 8); }), GN_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(status_of([] { groupnorm::GroupNorm(-1, 8); }), GN_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(status_of([] { groupnorm::GroupNorm(2, 0); }), GN_STATUS_INVALID_ARGUMENT);
    // A negative eps is valid, as in torch.nn.GroupNorm.
    EXPECT_EQ(status_of([] { groupnorm::GroupNorm(2, 8, -0.5); }), GN_STATUS_SUCCESS);
    EXPECT_EQ(status_of([] { groupnorm::GroupNorm(2, 8).set_bias(std::vector<float>(7)); }),
              GN_STATUS_INVALID_ARGUMENT);
}

TEST(Module, ForwardErrorsThrowWithStatus) {
    groupnorm::GroupNorm m(2, 8);
    Tensor x({2, 6, 3}, DType::F32), y({2, 6, 3}, DType::F32);
    try {
        m.forward(*x.dl(), *y.dl());
        FAIL() << "channel mismatch not reported";
    } catch (const groupnorm::Error &e) {
        EXPECT_EQ(e.status(), GN_STATUS_INVALID_ARGUMENT);
        EXPECT_NE(std::string(e.what()).find("expects 8"), std::string::npos) << e.what();
    }
    Tensor x8({2, 8, 3}, DType::F32), y8({2, 8, 4}, DType::F32);
    try {
        m.forward(*x8.dl(), *y8.dl());
        FAIL() << "shape mismatch not reported";
    } catch (const groupnorm::Error &e) {
        EXPECT_EQ(e.status(), GN_STATUS_INVALID_ARGUMENT);
        EXPECT_NE(std::string(e.what()).find("y must have x's shape"), std::string::npos);
    }
}

}  // namespace
