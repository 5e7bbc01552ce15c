// One backward call's tensors on the host, shared by the CPU and GPU suites.
#pragma once

#include <optional>
#include <random>

#include "groupnorm/groupnorm.h"
#include "reference.h"
#include "test_shapes.h"
#include "test_tensor.h"

namespace gntest {

// x and dy fresh, mean and rstd from gn_forward (CPU), outputs poisoned.
struct BackwardCase {
    Tensor x, dy, dx, mean, rstd;
    std::optional<Param> gamma;
    ParamGrad dgamma, dbeta;
    int64_t G;
    BackwardCase(const Shape &shape, DType dt, DType pt, Layout layout, bool affine,
                 double data_mean, double data_std, std::mt19937_64 &rng)
        : x(shape.dims, dt, layout), dy(shape.dims, dt, layout), dx(shape.dims, dt, layout),
          mean({shape.dims[0], shape.G}, DType::F32), rstd({shape.dims[0], shape.G}, DType::F32),
          dgamma(shape.dims[1], pt), dbeta(shape.dims[1], pt), G(shape.G) {
        x.fill_normal(rng, data_mean, data_std);
        dy.fill_normal(rng, std::uniform_real_distribution<double>(-1, 1)(rng), 1.0);
        dx.poison();
        if (affine) gamma.emplace(random_param(x.C(), pt, rng, 1.0, 0.5));
        Tensor y(shape.dims, dt, layout);
        EXPECT_EQ(gn_forward(x.dl(), g(), nullptr, G, 1e-5, y.dl(), mean.dl(), rstd.dl(), nullptr),
                  GN_STATUS_SUCCESS)
            << gn_last_error_message();
    }
    const DLTensor *g() const { return gamma ? gamma->dl() : nullptr; }
    BackwardReference reference() const {
        return reference_group_norm_backward(dy, x, gamma ? &*gamma : nullptr, G, 1e-5);
    }
    gn_status run(bool want_dx = true, bool want_dgamma = true, bool want_dbeta = true) {
        return gn_backward(dy.dl(), x.dl(), mean.dl(), rstd.dl(), g(), G,
                           want_dx ? dx.dl() : nullptr, want_dgamma ? dgamma.dl() : nullptr,
                           want_dbeta ? dbeta.dl() : nullptr, nullptr);
    }
};

}  // namespace gntest
