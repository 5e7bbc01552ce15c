// One backward call's tensors on the host, shared by the CPU and GPU suites.
#pragma once

#include <optional>
#include <random>

#include "canonicalise.h"
#include "dispatch.h"
#include "groupnorm/groupnorm.h"
#include "reference.h"
#include "registry.h"
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
    // Data whose channel sums are long runs of one sign: x two-valued per channel (+-1
    // spread about `base`, in runs of 37 positions, a quarter of them flipped at random) and
    // dy = 1 + 0.75 u, so that every term dy (x - mean) has the sign of the run's mean. A
    // float32 running sum's rounding errors then add up instead of cancelling. Recomputes
    // mean and rstd.
    void fill_correlated(double base, std::mt19937_64 &rng) {
        std::uniform_int_distribution<int> coin(0, 3);
        for (int64_t n = 0; n < x.N(); n++)
            for (int64_t ch = 0; ch < x.C(); ch++) {
                const double spread = 1.0 + 0.25 * ch;
                for (int64_t s = 0; s < x.S(); s++) {
                    const bool run = (s / 37) % 2 == 0, flip = coin(rng) == 0;
                    const double u = run != flip ? 1.0 : -1.0;
                    x.set(n, ch, s, base + spread * u);
                    dy.set(n, ch, s, 1.0 + 0.75 * u);
                }
            }
        Tensor y(x.shape(), x.dtype(), x.layout());
        EXPECT_EQ(gn_forward(x.dl(), g(), nullptr, G, 1e-5, y.dl(), mean.dl(), rstd.dl(), nullptr),
                  GN_STATUS_SUCCESS)
            << gn_last_error_message();
    }
    BackwardReference reference() const {
        return reference_group_norm_backward(dy, x, gamma ? &*gamma : nullptr, G, 1e-5);
    }
    // Variant v itself on this problem (validated as gn_backward validates it), when v serves
    // it; false (nothing run) when v's layout, parameter dtype or class bounds do not fit.
    bool run_variant(const groupnorm::detail::Variant &v) {
        namespace gd = groupnorm::detail;
        gd::Problem p;
        gn_status st = gd::validate_backward(dy.dl(), x.dl(), mean.dl(), rstd.dl(), g(), G,
                                             dx.dl(), dgamma.dl(), dbeta.dl(), &p);
        EXPECT_EQ(st, GN_STATUS_SUCCESS) << gn_last_error_message();
        if (st != GN_STATUS_SUCCESS || p.layout != v.layout || p.param_dtype != v.param_dtype ||
            !gd::can_run(v, p)) {
            return false;
        }
        st = gd::run_backward(v, p);
        EXPECT_EQ(st, GN_STATUS_SUCCESS) << gn_last_error_message();
        return st == GN_STATUS_SUCCESS;
    }
    gn_status run(bool want_dx = true, bool want_dgamma = true, bool want_dbeta = true) {
        return gn_backward(dy.dl(), x.dl(), mean.dl(), rstd.dl(), g(), G,
                           want_dx ? dx.dl() : nullptr, want_dgamma ? dgamma.dl() : nullptr,
                           want_dbeta ? dbeta.dl() : nullptr, nullptr);
    }
};

}  // namespace gntest
