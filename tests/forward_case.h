// One forward call's tensors on the host, shared by the CPU and GPU suites: x filled with
// fresh normal data of a given mean, outputs (y, mean, rstd) poisoned, and, with affine,
// random gamma and beta.
#pragma once

#include <cmath>
#include <optional>
#include <random>

#include "reference.h"
#include "test_shapes.h"
#include "test_tensor.h"

namespace gntest {

struct ForwardCase {
    Tensor x, y, mean, rstd;
    std::optional<Param> gamma, beta;

    // x ~ normal(data_mean, 0.5 + |U(-3, 3)|).
    ForwardCase(const Shape &shape, DType dt, DType pt, Layout layout, bool affine,
                double data_mean, std::mt19937_64 &rng)
        : x(shape.dims, dt, layout), y(shape.dims, dt, layout),
          mean({shape.dims[0], shape.G}, stat_dtype(dt)), rstd({shape.dims[0], shape.G}, stat_dtype(dt)) {
        std::uniform_real_distribution<double> shift(-3.0, 3.0);
        x.fill_normal(rng, data_mean, 0.5 + std::fabs(shift(rng)));
        y.poison();
        mean.poison();
        rstd.poison();
        if (affine) {
            gamma.emplace(random_param(x.C(), pt, rng, 1.0, 0.5));
            beta.emplace(random_param(x.C(), pt, rng, 0.0, 1.0));
        }
    }
    // x as spikes: a flat background (-97) with every 16th spatial position 127 above it in
    // every channel (most blocks start with an outlier; equal values round alike).
    void fill_spikes(std::mt19937_64 &rng) {
        x.fill_normal(rng, -97.0, 0.0);
        for (int64_t n = 0; n < x.N(); n++)
            for (int64_t ch = 0; ch < x.C(); ch++)
                for (int64_t s = 0; s < x.S(); s += 16) x.set(n, ch, s, 30.0 + 1e-3 * s);
    }
    const DLTensor *g() const { return gamma ? gamma->dl() : nullptr; }
    const DLTensor *b() const { return beta ? beta->dl() : nullptr; }
    Reference reference(int64_t G, double eps) const {
        return reference_group_norm(x, gamma ? &*gamma : nullptr, beta ? &*beta : nullptr, G, eps);
    }
};

}  // namespace gntest
