// One backward call's tensors on the host, shared by the CPU and GPU suites.
#pragma once

#include <cmath>
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
          mean({shape.dims[0], shape.G}, stat_dtype(dt)), rstd({shape.dims[0], shape.G}, stat_dtype(dt)),
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
    // The gradients of act(GroupNorm(x)) with the forward's beta (a fused activation):
    // dz = dy act'(z), z the float64 GroupNorm, then GroupNorm's backward of dz. The
    // contract's scales are those of the op's incoming gradient dy (as for plain GroupNorm:
    // act' has roots and tiny tails, where float32 resolves act' to about 1e-7 absolute, not
    // relative). (ReLU: see avoid_kink.)
    BackwardReference fused_reference(const Param *beta, int activation) const {
        const Reference fwd = reference_group_norm(x, gamma ? &*gamma : nullptr, beta, G, 1e-5);
        Tensor dz(x.shape(), DType::F32);
        const int64_t N = x.N(), C = x.C(), S = x.S();
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t s = 0; s < S; s++) {
                    const double z = fwd.y[(n * C + c) * S + s];
                    dz.set(n, c, s, dy.get(n, c, s) * activation_grad_ref(activation, z));
                }
        BackwardReference ref =
            reference_group_norm_backward(dz, x, gamma ? &*gamma : nullptr, G, 1e-5);
        const BackwardReference scales = reference();
        ref.dx_scale = scales.dx_scale;
        ref.dgamma_abs = scales.dgamma_abs;
        ref.dbeta_abs = scales.dbeta_abs;
        return ref;
    }
    // The fused backward's contract (docs/DESIGN.md): |mean| up to 30 standard deviations
    // in every group, the group's own (1 / rstd): z is recomputed from the saved float32
    // mean, whose rounding moves it by up to |mean| rstd 2^-24 (act'(z) with it).
    bool inside_fused_contract() const {
        const Reference fwd = reference_group_norm(x, nullptr, nullptr, G, 1e-5);
        for (size_t i = 0; i < fwd.mean.size(); i++) {
            if (std::fabs(fwd.mean[i]) * fwd.rstd[i] > 30.0) return false;
        }
        return true;
    }
    // ReLU's derivative jumps at z = 0, where float32 and float64 may put z on different
    // sides: moves the elements of x whose z is within 1e-4 of 0 away from it (z by ~0.02),
    // then recomputes mean and rstd.
    void avoid_kink(const Param *beta) {
        for (int pass = 0; pass < 8; pass++) {
            const Reference fwd = reference_group_norm(x, gamma ? &*gamma : nullptr, beta, G, 1e-5);
            const int64_t N = x.N(), C = x.C(), S = x.S(), D = C / G;
            bool moved = false;
            for (int64_t n = 0; n < N; n++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t s = 0; s < S; s++) {
                        const double z = fwd.y[(n * C + c) * S + s];
                        if (std::fabs(z) >= 1e-4) continue;
                        const double slope = fwd.rstd[n * G + c / D] * (gamma ? (*gamma)[c] : 1.0);
                        if (slope == 0) continue;  // z = beta whatever x is
                        x.set(n, c, s, x.get(n, c, s) + 0.02 / slope);
                        moved = true;
                    }
            if (!moved) break;
        }
        Tensor y(x.shape(), x.dtype(), x.layout());
        EXPECT_EQ(gn_forward(x.dl(), g(), nullptr, G, 1e-5, y.dl(), mean.dl(), rstd.dl(), nullptr),
                  GN_STATUS_SUCCESS)
            << gn_last_error_message();
    }
    // The problem gn_backward would run, with a fused activation and the forward's beta,
    // validated as gn_backward validates it.
    gn_status validate(int activation, const Param *beta, groupnorm::detail::Problem *p) {
        namespace gd = groupnorm::detail;
        gn_status st = gd::validate_backward(dy.dl(), x.dl(), mean.dl(), rstd.dl(), g(), G,
                                             dx.dl(), dgamma.dl(), dbeta.dl(), p);
        if (st != GN_STATUS_SUCCESS) return st;
        return gd::validate_backward_activation(activation, beta ? beta->dl() : nullptr, p);
    }
    // Variant v itself on this problem (validated as gn_backward validates it), when v serves
    // it; false (nothing run) when v's layout, parameter dtype or class bounds do not fit.
    bool run_variant(const groupnorm::detail::Variant &v) {
        namespace gd = groupnorm::detail;
        gd::Problem p;
        gn_status st = validate(GN_ACTIVATION_NONE, nullptr, &p);
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
