// Every error path of the C API: the status, and a message naming the argument.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <string>

#include "expect_fails.h"
#include "groupnorm/groupnorm.h"
#include "reference.h"

using namespace gntest;

namespace {

// Valid arguments that each test breaks in one place.
struct Args {
    Tensor x{{2, 8, 4, 4}, DType::F32}, y{{2, 8, 4, 4}, DType::F32};
    Param gamma{std::vector<double>(8, 1.0), DType::F32}, beta{std::vector<double>(8, 0.0), DType::F32};
    Tensor mean{{2, 4}, DType::F32}, rstd{{2, 4}, DType::F32};
    DLTensor xd = *x.dl(), yd = *y.dl(), gd = *gamma.dl(), bd = *beta.dl(), md = *mean.dl(),
             rd = *rstd.dl();
    int64_t groups = 4;
    double eps = 1e-5;
    const gn_config *config = nullptr;

    gn_status run() {
        return gn_forward(&xd, &gd, &bd, groups, eps, &yd, &md, &rd, config);
    }
};

TEST(ApiErrors, ValidArgumentsSucceedAndClearTheMessage) {
    Args a;
    std::mt19937_64 rng(fresh_seed());
    a.x.fill_normal(rng, 1, 1);
    a.groups = 0;
    EXPECT_FAILS(a.run(), GN_STATUS_INVALID_ARGUMENT, "num_groups");
    a.groups = 4;
    EXPECT_EQ(a.run(), GN_STATUS_SUCCESS);
    EXPECT_STREQ(gn_last_error_message(), "");
}

TEST(ApiErrors, NullTensors) {
    Args a;
    EXPECT_FAILS(gn_forward(nullptr, nullptr, nullptr, 4, 1e-5, &a.yd, nullptr, nullptr, nullptr),
                 GN_STATUS_INVALID_ARGUMENT, "x is NULL");
    EXPECT_FAILS(gn_forward(&a.xd, nullptr, nullptr, 4, 1e-5, nullptr, nullptr, nullptr, nullptr),
                 GN_STATUS_INVALID_ARGUMENT, "y is NULL");
    a.xd.data = nullptr;
    EXPECT_FAILS(a.run(), GN_STATUS_INVALID_ARGUMENT, "x->data");
}

TEST(ApiErrors, Rank) {
    Args a;
    a.xd.ndim = 1;
    EXPECT_FAILS(a.run(), GN_STATUS_INVALID_ARGUMENT, "rank");
}

TEST(ApiErrors, Groups) {
    Args a;
    for (int64_t g : {0, -2}) {
        a.groups = g;
        EXPECT_FAILS(a.run(), GN_STATUS_INVALID_ARGUMENT, "num_groups");
    }
    a.groups = 3;
    EXPECT_FAILS(a.run(), GN_STATUS_INVALID_ARGUMENT, "must divide the channel count C (8)");
    int64_t zero_c[4] = {2, 0, 4, 4};
    a.xd.shape = zero_c;
    a.groups = 4;
    EXPECT_FAILS(a.run(), GN_STATUS_INVALID_ARGUMENT, "C = 0");
}

// eps is any value, as in PyTorch (its OpInfo samples use eps = -0.5): no refusal.
TEST(ApiErrors, EpsIsNeverRefused) {
    Args a;
    for (double eps : {-1.0, -0.5, 0.0, std::nan(""), (double)INFINITY, -(double)INFINITY}) {
        a.eps = eps;
        EXPECT_EQ(a.run(), GN_STATUS_SUCCESS) << "eps = " << eps << ": " << gn_last_error_message();
    }
}

TEST(ApiErrors, Dtypes) {
    Args a;
    a.xd.dtype = {kDLInt, 32, 1};
    EXPECT_FAILS(a.run(), GN_STATUS_UNSUPPORTED, "x has dtype int32");
    a.xd.dtype = {kDLFloat, 8, 1};
    EXPECT_FAILS(a.run(), GN_STATUS_UNSUPPORTED, "x has dtype float8; supported: float32, float16, bfloat16, float64");
    a.xd.dtype = {kDLFloat, 32, 4};
    EXPECT_FAILS(a.run(), GN_STATUS_UNSUPPORTED, "x has dtype");
    Args b;
    b.yd.dtype = {kDLFloat, 16, 1};
    EXPECT_FAILS(b.run(), GN_STATUS_INVALID_ARGUMENT, "y must have x's dtype");
    Args c;
    c.gd.dtype = {kDLFloat, 64, 1};
    EXPECT_FAILS(c.run(), GN_STATUS_UNSUPPORTED, "gamma has dtype float64");
    Args d;  // float16 gamma for float32 x: not x's dtype, not float32
    Param half_gamma(std::vector<double>(8, 1.0), DType::F16);
    d.gd = *half_gamma.dl();
    EXPECT_FAILS(d.run(), GN_STATUS_UNSUPPORTED, "gamma has dtype float16");
    Args e;
    Tensor hx({2, 8, 4, 4}, DType::F16), hy({2, 8, 4, 4}, DType::F16);
    Param hb(std::vector<double>(8, 0.0), DType::F16);
    e.xd = *hx.dl();
    e.yd = *hy.dl();
    e.bd = *hb.dl();  // gamma float32, beta float16
    EXPECT_FAILS(e.run(), GN_STATUS_INVALID_ARGUMENT, "gamma (float32) and beta (float16)");
    Args f;
    f.md.dtype = {kDLFloat, 16, 1};
    EXPECT_FAILS(f.run(), GN_STATUS_UNSUPPORTED, "mean must be float32");
    Args g;
    g.rd.dtype = {kDLBfloat, 16, 1};
    EXPECT_FAILS(g.run(), GN_STATUS_UNSUPPORTED, "rstd must be float32");
}

// float64 x: served (float64 kernels), with float64 gamma/beta and float64 mean/rstd, as
// PyTorch; float32 ones are refused, and so is a fused activation (none compiled).
struct Float64Tensors {
    Tensor x{{2, 8, 4, 4}, DType::F64}, y{{2, 8, 4, 4}, DType::F64};
    Param gamma{std::vector<double>(8, 1.0), DType::F64}, beta{std::vector<double>(8, 0.0), DType::F64};
    Tensor mean{{2, 4}, DType::F64}, rstd{{2, 4}, DType::F64};
    // a's arguments pointed at these (a's own float32 tensors stay for the refusals).
    void into(Args &a) {
        a.xd = *x.dl(), a.yd = *y.dl(), a.gd = *gamma.dl(), a.bd = *beta.dl(),
        a.md = *mean.dl(), a.rd = *rstd.dl();
    }
};

TEST(ApiErrors, Float64) {
    Float64Tensors t;
    std::mt19937_64 rng(fresh_seed());
    t.x.fill_normal(rng, 1, 1);
    Args a;
    t.into(a);
    EXPECT_EQ(a.run(), GN_STATUS_SUCCESS) << gn_last_error_message();
    EXPECT_EQ(gn_forward(&a.xd, nullptr, nullptr, 4, 1e-5, &a.yd, &a.md, nullptr, nullptr),
              GN_STATUS_SUCCESS)
        << gn_last_error_message();
    Args f32_gamma;
    t.into(f32_gamma);
    f32_gamma.gd = *f32_gamma.gamma.dl();
    EXPECT_FAILS(f32_gamma.run(), GN_STATUS_UNSUPPORTED,
                 "gamma has dtype float32; it must be x's dtype (float64)");
    EXPECT_EQ(std::string(gn_last_error_message()).find("or float32"), std::string::npos)
        << gn_last_error_message();
    Args f32_mean;
    t.into(f32_mean);
    f32_mean.md = *f32_mean.mean.dl();
    EXPECT_FAILS(f32_mean.run(), GN_STATUS_UNSUPPORTED, "mean must be float64 (for x float64), got float32");
    Args f64_stats;  // float32 x: float32 statistics
    f64_stats.rd = *t.rstd.dl();
    EXPECT_FAILS(f64_stats.run(), GN_STATUS_UNSUPPORTED, "rstd must be float32 (for x float32), got float64");
    Args fused;
    t.into(fused);
    gn_config config = GN_CONFIG_INIT;
    config.activation = GN_ACTIVATION_SILU;
    fused.config = &config;
    EXPECT_FAILS(fused.run(), GN_STATUS_UNSUPPORTED, "fused activations are not compiled for float64 x");
    ParamGrad dgamma(8, DType::F64), dgamma32(8, DType::F32);
    EXPECT_FAILS(gn_backward(&a.yd, &a.xd, &a.md, &a.rd, &a.gd, 4, nullptr, dgamma.dl(), nullptr, &config),
                 GN_STATUS_UNSUPPORTED, "fused activations are not compiled for float64 x");
    EXPECT_EQ(gn_backward(&a.yd, &a.xd, &a.md, &a.rd, &a.gd, 4, nullptr, dgamma.dl(), nullptr, nullptr),
              GN_STATUS_SUCCESS)
        << gn_last_error_message();
    EXPECT_FAILS(gn_backward(&a.yd, &a.xd, &a.md, &a.rd, nullptr, 4, nullptr, dgamma32.dl(), nullptr, nullptr),
                 GN_STATUS_UNSUPPORTED, "dgamma has dtype float32; it must be x's dtype (float64)");
}

TEST(ApiErrors, Shapes) {
    Args a;
    int64_t other[4] = {2, 8, 4, 5};
    a.yd.shape = other;
    EXPECT_FAILS(a.run(), GN_STATUS_INVALID_ARGUMENT, "y must have x's shape (2, 8, 4, 4)");
    Args b;
    b.yd.ndim = 3;
    EXPECT_FAILS(b.run(), GN_STATUS_INVALID_ARGUMENT, "y must have x's shape");
    Args c;
    int64_t seven[1] = {7};
    c.gd.shape = seven;
    EXPECT_FAILS(c.run(), GN_STATUS_INVALID_ARGUMENT, "gamma must have shape (C,) = (8,), got (7,)");
    Args d;
    d.bd.ndim = 2;
    int64_t two_d[2] = {8, 1};
    d.bd.shape = two_d;
    EXPECT_FAILS(d.run(), GN_STATUS_INVALID_ARGUMENT, "beta must have shape (C,)");
    Args e;
    int64_t stat_shape[2] = {2, 8};
    e.md.shape = stat_shape;
    EXPECT_FAILS(e.run(), GN_STATUS_INVALID_ARGUMENT, "mean must have shape (N, num_groups) = (2, 4)");
    Args f;
    f.rd.ndim = 1;
    EXPECT_FAILS(f.run(), GN_STATUS_INVALID_ARGUMENT, "rstd must have shape");
    Args g;
    int64_t negative[4] = {2, 8, -1, 4};
    g.xd.shape = negative;
    EXPECT_FAILS(g.run(), GN_STATUS_INVALID_ARGUMENT, "x has a negative extent");
}

TEST(ApiErrors, Strides) {
    Args a;
    int64_t transposed[4] = {128, 16, 1, 4};  // H and W swapped: neither layout
    a.xd.strides = transposed;
    EXPECT_FAILS(a.run(), GN_STATUS_UNSUPPORTED, "x strides are neither");
    Args b;
    int64_t nhwc[4] = {128, 1, 32, 8};
    b.yd.strides = nhwc;  // x is NCHW, y channels-last
    EXPECT_FAILS(b.run(), GN_STATUS_UNSUPPORTED, "y must have x's layout");
    Args c;
    int64_t negative[4] = {128, 16, -4, 1};
    c.xd.strides = negative;
    EXPECT_FAILS(c.run(), GN_STATUS_UNSUPPORTED, "x has a negative stride");
    Args d;
    int64_t strided_gamma[1] = {2};
    d.gd.strides = strided_gamma;
    EXPECT_FAILS(d.run(), GN_STATUS_UNSUPPORTED, "gamma must be contiguous");
    Args e;
    int64_t zero_n[4] = {0, 16, 4, 1};
    e.yd.strides = zero_n;
    EXPECT_FAILS(e.run(), GN_STATUS_INVALID_ARGUMENT, "y has a zero stride");
    Args f;
    f.yd.data = f.xd.data;
    f.yd.byte_offset = 4 * 16;  // y = x shifted by one channel
    EXPECT_FAILS(f.run(), GN_STATUS_INVALID_ARGUMENT, "y overlaps x");
}

TEST(ApiErrors, Sizes) {
    Args a;
    int64_t huge[3] = {1, 1, int64_t(1) << 31};  // fits 64 bits, not Halide's 32-bit extents
    a.xd.shape = huge;
    a.xd.ndim = 3;
    a.xd.strides = nullptr;
    a.yd = a.xd;
    EXPECT_FAILS(gn_forward(&a.xd, nullptr, nullptr, 1, 1e-5, &a.yd, nullptr, nullptr, nullptr),
                 GN_STATUS_UNSUPPORTED, "x is too large");
    int64_t empty_overflow[4] = {0, 1, int64_t(1) << 40, int64_t(1) << 40};  // N = 0
    a.xd.shape = empty_overflow;
    a.xd.ndim = 4;
    EXPECT_FAILS(gn_forward(&a.xd, nullptr, nullptr, 1, 1e-5, &a.yd, nullptr, nullptr, nullptr),
                 GN_STATUS_INVALID_ARGUMENT, "64-bit");
    int64_t overflow[4] = {int64_t(1) << 40, int64_t(1) << 40, 1, 1};
    a.xd.shape = overflow;
    a.xd.ndim = 4;
    EXPECT_FAILS(gn_forward(&a.xd, nullptr, nullptr, 1, 1e-5, &a.yd, nullptr, nullptr, nullptr),
                 GN_STATUS_INVALID_ARGUMENT, "64-bit");
}

TEST(ApiErrors, Devices) {
    Args a;
    a.xd.device = {kDLCUDA, 0};
    EXPECT_FAILS(a.run(), GN_STATUS_DEVICE_UNAVAILABLE, "x is a CUDA tensor");
    Args b;
    b.yd.device = {kDLCUDA, 0};
    EXPECT_FAILS(b.run(), GN_STATUS_DEVICE_UNAVAILABLE, "y is a CUDA tensor");
    Args c;
    c.gd.device = {kDLROCM, 0};
    EXPECT_FAILS(c.run(), GN_STATUS_DEVICE_UNAVAILABLE, "gamma is on DLPack device type");
    Args d;
    d.rd.device = {kDLVulkan, 0};
    EXPECT_FAILS(d.run(), GN_STATUS_DEVICE_UNAVAILABLE, "rstd is on DLPack device type");
}

TEST(ApiErrors, Config) {
    Args a;
    gn_config bad = GN_CONFIG_INIT;
    bad.struct_size = 0;
    a.config = &bad;
    EXPECT_FAILS(a.run(), GN_STATUS_INVALID_ARGUMENT, "config->struct_size");
    gn_config flags = GN_CONFIG_INIT;
    flags.flags = 1;
    a.config = &flags;
    EXPECT_FAILS(a.run(), GN_STATUS_INVALID_ARGUMENT, "config->flags");
    gn_config ok = GN_CONFIG_INIT;
    a.config = &ok;
    EXPECT_EQ(a.run(), GN_STATUS_SUCCESS) << gn_last_error_message();
}

TEST(ApiErrors, Threads) {
    EXPECT_FAILS(gn_set_num_threads(-1), GN_STATUS_INVALID_ARGUMENT, "num_threads");
    EXPECT_EQ(gn_set_num_threads(1), GN_STATUS_SUCCESS);
    EXPECT_EQ(gn_set_num_threads(0), GN_STATUS_SUCCESS);
}

TEST(ApiErrors, StatusStrings) {
    EXPECT_STREQ(gn_status_string(GN_STATUS_SUCCESS), "GN_STATUS_SUCCESS");
    EXPECT_STREQ(gn_status_string(GN_STATUS_INVALID_ARGUMENT), "GN_STATUS_INVALID_ARGUMENT");
    EXPECT_STREQ(gn_status_string(GN_STATUS_UNSUPPORTED), "GN_STATUS_UNSUPPORTED");
    EXPECT_STREQ(gn_status_string(GN_STATUS_DEVICE_UNAVAILABLE), "GN_STATUS_DEVICE_UNAVAILABLE");
    EXPECT_STREQ(gn_status_string(GN_STATUS_OUT_OF_MEMORY), "GN_STATUS_OUT_OF_MEMORY");
    EXPECT_STREQ(gn_status_string(GN_STATUS_INTERNAL_ERROR), "GN_STATUS_INTERNAL_ERROR");
    EXPECT_STREQ(gn_status_string((gn_status)99), "GN_STATUS_UNKNOWN");
}

}  // namespace
