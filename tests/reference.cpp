#include "reference.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <sstream>
#include <tuple>

namespace gntest {

Param::Param(std::vector<double> values, DType dtype)
    : values_(std::move(values)), dtype_(dtype), storage_(values_.size() * bytes(dtype) + 4) {
    for (size_t i = 0; i < values_.size(); i++) {
        values_[i] = round_to(dtype, values_[i]);
        if (dtype == DType::F64) {
            std::memcpy(&storage_[i * 8], &values_[i], 8);
        } else if (dtype == DType::F32) {
            float f = (float)values_[i];
            std::memcpy(&storage_[i * 4], &f, 4);
        } else {
            uint16_t b = dtype == DType::F16 ? to_f16_bits(values_[i]) : to_bf16_bits(values_[i]);
            std::memcpy(&storage_[i * 2], &b, 2);
        }
    }
    shape_[0] = (int64_t)values_.size();
    dl_.data = storage_.data();
    dl_.device = {kDLCPU, 0};
    dl_.ndim = 1;
    dl_.dtype = dl_type(dtype);
    dl_.shape = shape_;
}

const DLTensor *Param::dl() const {
    dl_.data = const_cast<uint8_t *>(storage_.data());
    dl_.shape = const_cast<int64_t *>(shape_);
    return &dl_;
}

Param random_param(int64_t C, DType dtype, std::mt19937_64 &rng, double mean, double stddev) {
    std::normal_distribution<double> dist(mean, stddev);
    std::vector<double> v(C);
    for (double &e : v) e = dist(rng);
    return Param(std::move(v), dtype);
}

namespace {

// Neumaier's compensated sum: each add's rounding error is kept and added back at the end,
// so a sum of M terms errs by about one rounding of the total (plus M 2^-106 of the terms'
// magnitudes), not M roundings: double is then accurate enough to judge float64 kernels to
// 2^-52 (a plain double sum of 4M terms errs by ~2000 units of 2^-53 on random data, 12
// times the float64 bound).
struct CompensatedSum {
    double sum = 0, comp = 0;
    void add(double v) {
        const double t = sum + v;
        comp += std::fabs(sum) >= std::fabs(v) ? (sum - t) + v : (v - t) + sum;
        sum = t;
    }
    double value() const { return sum + comp; }
};

// A group's mean as pivot + offset, never rounded to one number (at |mean| = 1e7 std a
// double's unit of |mean| is 2e-9 std, 1e5 times the float64 bound), and its biased
// variance. pivot is the group's first value, so every sum is of values about the mean:
// their rounding is relative to the spread, not to |mean|. The per-element formulas are
// plain double: a few roundings of 2^-53 each, a few % of the float64 bound.
struct GroupStats {
    double pivot, offset, var;
    double mean() const { return pivot + offset; }
    double centered(double x) const { return (x - pivot) - offset; }  // x - pivot: exact near the mean
};

GroupStats group_stats(const Tensor &x, int64_t n, int64_t g, int64_t D) {
    const int64_t S = x.S();
    GroupStats st{x.get(n, g * D, 0), 0, 0};
    const double M = double(D * S);
    CompensatedSum sum, sq;
    for (int64_t c = g * D; c < (g + 1) * D; c++)
        for (int64_t s = 0; s < S; s++) sum.add(x.get(n, c, s) - st.pivot);
    st.offset = sum.value() / M;
    for (int64_t c = g * D; c < (g + 1) * D; c++)
        for (int64_t s = 0; s < S; s++) {
            const double d = st.centered(x.get(n, c, s));
            sq.add(d * d);
        }
    st.var = sq.value() / M;
    return st;
}

}  // namespace

Reference reference_group_norm(const Tensor &x, const Param *gamma, const Param *beta,
                               int64_t G, double eps) {
    const int64_t N = x.N(), C = x.C(), S = x.S(), D = C / G;
    Reference r;
    r.y.resize(N * C * S);
    r.mean.resize(N * G);
    r.rstd.resize(N * G);
    r.stddev.resize(N * G);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t g = 0; g < G; g++) {
            const GroupStats st = group_stats(x, n, g, D);
            const double rstd = 1.0 / std::sqrt(st.var + eps);
            r.mean[n * G + g] = st.mean();
            r.rstd[n * G + g] = rstd;
            r.stddev[n * G + g] = std::sqrt(st.var);
            for (int64_t c = g * D; c < (g + 1) * D; c++) {
                const double w = gamma ? (*gamma)[c] : 1.0, b = beta ? (*beta)[c] : 0.0;
                for (int64_t s = 0; s < S; s++) {
                    r.y[(n * C + c) * S + s] = st.centered(x.get(n, c, s)) * rstd * w + b;
                }
            }
        }
    }
    return r;
}

double contract_bound(DType t) { return t == DType::F64 ? kBound64 : kBound32; }

// gn_activation's values (groupnorm.h).
enum { GN_ACTIVATION_SILU = 1, GN_ACTIVATION_RELU = 2, GN_ACTIVATION_GELU = 3, GN_ACTIVATION_GELU_TANH = 4 };

double activation_ref(int activation, double z) {
    const double k = std::sqrt(2.0 / M_PI);
    switch (activation) {
    case GN_ACTIVATION_SILU: return z / (1.0 + std::exp(-z));
    case GN_ACTIVATION_RELU: return z < 0 ? 0.0 : z;  // NaN stays NaN
    case GN_ACTIVATION_GELU: return 0.5 * z * (1.0 + std::erf(z / std::sqrt(2.0)));
    case GN_ACTIVATION_GELU_TANH: return 0.5 * z * (1.0 + std::tanh(k * (z + 0.044715 * z * z * z)));
    default: return z;
    }
}

double activation_grad_ref(int activation, double z) {
    const double k = std::sqrt(2.0 / M_PI);
    switch (activation) {
    case GN_ACTIVATION_SILU: {
        const double s = 1.0 / (1.0 + std::exp(-z));
        return s * (1.0 + z * (1.0 - s));
    }
    case GN_ACTIVATION_RELU: return z <= 0 ? 0.0 : 1.0;
    case GN_ACTIVATION_GELU:
        return 0.5 * (1.0 + std::erf(z / std::sqrt(2.0))) + z * std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI);
    case GN_ACTIVATION_GELU_TANH: {
        const double t = std::tanh(k * (z + 0.044715 * z * z * z));
        return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * z * z);
    }
    default: return 1.0;
    }
}

void apply_activation(Reference &ref, int activation) {
    for (double &v : ref.y) v = activation_ref(activation, v);
}

::testing::AssertionResult matches_reference(const Tensor &y, const Reference &ref,
                                             const Tensor *mean, const Tensor *rstd) {
    const int64_t N = y.N(), C = y.C(), S = y.S();
    int64_t bad = 0;
    double worst = 0;  // the largest error over its bound (float32, float64)
    std::ostringstream first;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t c = 0; c < C; c++) {
            for (int64_t s = 0; s < S; s++) {
                const double want = ref.y[(n * C + c) * S + s], got = y.get(n, c, s);
                bool ok;
                if (y.dtype() == DType::F32 || y.dtype() == DType::F64) {
                    const double bound = contract_bound(y.dtype()) * (std::fabs(want) + 1.0);
                    if (std::isfinite(want)) worst = std::max(worst, std::fabs(got - want) / bound);
                    ok = std::fabs(got - want) <= bound ||
                         got == want ||  // infinities (a fused activation of an infinite beta)
                         (std::isnan(want) && std::isnan(got));
                } else {
                    // 1 ulp of the output type; near zero, where an ulp of float16 is
                    // finer than float32 arithmetic on O(1) terms can resolve, the float32
                    // bound above applies instead.
                    ok = ulp_distance(y.dtype(), got, round_to(y.dtype(), want)) <= 1 ||
                         std::fabs(got - want) <= 1e-5 * (std::fabs(want) + 1.0);
                }
                if (!ok && bad++ == 0) {
                    first << std::setprecision(17) << "y[n=" << n << ", c=" << c << ", s=" << s
                          << "] = " << got << ", reference " << want;
                }
            }
        }
    }
    const int64_t G = ref.mean.size() / std::max<int64_t>(N, 1);
    // The statistics' dtype is the compute type (float64 for float64 y): its contract bound,
    // plus one unit of its rounding of |mean|.
    const double stat_bound = contract_bound(y.dtype()),
                 stat_unit = y.dtype() == DType::F64 ? 0x1p-52 : 0x1p-23;
    for (int64_t n = 0; n < N && (mean || rstd); n++) {
        for (int64_t g = 0; g < G; g++) {
            const double m = ref.mean[n * G + g], r = ref.rstd[n * G + g];
            const double sd = ref.stddev[n * G + g];
            if (mean) {
                const double got = mean->get(n, g, 0);
                if (!(std::fabs(got - m) <= stat_bound * sd + stat_unit * std::fabs(m)) &&
                    !(std::isnan(m) && std::isnan(got)) && bad++ == 0) {
                    first << "mean[" << n << ", " << g << "] = " << got << ", reference " << m;
                }
            }
            if (rstd) {
                const double got = rstd->get(n, g, 0);
                if (!(std::fabs(got - r) <= stat_bound * r) && !(std::isnan(r) && std::isnan(got)) &&
                    bad++ == 0) {
                    first << "rstd[" << n << ", " << g << "] = " << got << ", reference " << r;
                }
            }
        }
    }
    if (bad == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << bad << " values outside the contract (y's worst "
                                         << worst << "x its bound); first: " << first.str();
}

BackwardReference reference_group_norm_backward(const Tensor &dy, const Tensor &x,
                                                const Param *gamma, int64_t G, double eps) {
    const int64_t N = x.N(), C = x.C(), S = x.S(), D = C / G;
    const double M = double(D * S);
    BackwardReference r;
    r.dx.assign(N * C * S, 0.0);
    r.dx_scale.assign(N * G, 0.0);
    std::vector<CompensatedSum> dgamma(C), dbeta(C);
    r.dgamma_abs.assign(C, 0.0), r.dbeta_abs.assign(C, 0.0);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t g = 0; g < G; g++) {
            const GroupStats st = group_stats(x, n, g, D);
            const double rstd = 1.0 / std::sqrt(st.var + eps);
            CompensatedSum sum_gdy, sum_gdy_xhat;
            for (int64_t c = g * D; c < (g + 1) * D; c++) {
                const double w = gamma ? (*gamma)[c] : 1.0;
                for (int64_t s = 0; s < S; s++) {
                    const double d = dy.get(n, c, s), xhat = st.centered(x.get(n, c, s)) * rstd;
                    sum_gdy.add(w * d);
                    sum_gdy_xhat.add(w * d * xhat);
                    dgamma[c].add(d * xhat);
                    dbeta[c].add(d);
                    // xhat's unit scale too: its float32 error is absolute (~1e-7), like y's.
                    r.dgamma_abs[c] += std::fabs(d * xhat) + std::fabs(d);
                    r.dbeta_abs[c] += std::fabs(d);
                }
            }
            const double mean_gdy = sum_gdy.value() / M, mean_gdy_xhat = sum_gdy_xhat.value() / M;
            double sq = 0;
            for (int64_t c = g * D; c < (g + 1) * D; c++) {
                const double w = gamma ? (*gamma)[c] : 1.0;
                for (int64_t s = 0; s < S; s++) {
                    const double xhat = st.centered(x.get(n, c, s)) * rstd;
                    r.dx[(n * C + c) * S + s] =
                        rstd * (w * dy.get(n, c, s) - mean_gdy - xhat * mean_gdy_xhat);
                    sq += (rstd * w * dy.get(n, c, s)) * (rstd * w * dy.get(n, c, s));
                }
            }
            r.dx_scale[n * G + g] = std::sqrt(sq / M);
        }
    }
    for (int64_t c = 0; c < C; c++) {
        r.dgamma.push_back(dgamma[c].value());
        r.dbeta.push_back(dbeta[c].value());
    }
    return r;
}

ParamGrad::ParamGrad(int64_t C, DType dtype)
    : dtype_(dtype), shape_{C}, storage_(C * gntest::bytes(dtype), 0xFF) {  // 0xFF..: NaN, the poison
    dl_.data = storage_.data();
    dl_.device = {kDLCPU, 0};
    dl_.ndim = 1;
    dl_.dtype = dl_type(dtype);
    dl_.shape = shape_;
}

double ParamGrad::get(int64_t c) const {
    if (dtype_ == DType::F64) {
        double d;
        std::memcpy(&d, &storage_[c * 8], 8);
        return d;
    }
    if (dtype_ == DType::F32) {
        float f;
        std::memcpy(&f, &storage_[c * 4], 4);
        return f;
    }
    uint16_t b;
    std::memcpy(&b, &storage_[c * 2], 2);
    return dtype_ == DType::F16 ? from_f16_bits(b) : from_bf16_bits(b);
}

bool ParamGrad::all_poison() const {
    for (uint8_t b : storage_) {
        if (b != 0xFF) return false;
    }
    return true;
}

namespace {

// got within bound of want; the half types also within 1 ulp of the rounded want.
bool within(DType t, double got, double want, double bound) {
    if (std::isnan(want)) return std::isnan(got);
    if (std::fabs(got - want) <= bound) return true;
    return (t == DType::F16 || t == DType::BF16) && ulp_distance(t, got, round_to(t, want)) <= 1;
}

}  // namespace

::testing::AssertionResult matches_backward_reference(const BackwardReference &ref,
                                                      const Tensor *dx, const ParamGrad *dgamma,
                                                      const ParamGrad *dbeta, int64_t G) {
    int64_t bad = 0;
    std::ostringstream first;
    if (dx) {
        const int64_t N = dx->N(), C = dx->C(), S = dx->S(), D = C / G;
        for (int64_t n = 0; n < N; n++) {
            for (int64_t c = 0; c < C; c++) {
                const double scale = ref.dx_scale[n * G + c / D];
                for (int64_t s = 0; s < S; s++) {
                    const double want = ref.dx[(n * C + c) * S + s], got = dx->get(n, c, s);
                    if (!within(dx->dtype(), got, want,
                                contract_bound(dx->dtype()) * (std::fabs(want) + scale)) &&
                        bad++ == 0) {
                        first << "dx[n=" << n << ", c=" << c << ", s=" << s << "] = " << got
                              << ", reference " << want << " (group scale " << scale << ")";
                    }
                }
            }
        }
    }
    for (auto [grad, want, abs, name] :
         {std::tuple{dgamma, &ref.dgamma, &ref.dgamma_abs, "dgamma"},
          std::tuple{dbeta, &ref.dbeta, &ref.dbeta_abs, "dbeta"}}) {
        if (!grad) continue;
        for (size_t c = 0; c < want->size(); c++) {
            const double w = (*want)[c], got = grad->get(c);
            if (!within(grad->dtype(), got, w, contract_bound(grad->dtype()) * (std::fabs(w) + (*abs)[c])) &&
                bad++ == 0) {
                first << name << "[" << c << "] = " << got << ", reference " << w;
            }
        }
    }
    if (bad == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << bad << " gradients outside the contract; first: "
                                         << first.str();
}

uint64_t fresh_seed() {
    if (const char *env = std::getenv("GN_TEST_SEED")) return std::strtoull(env, nullptr, 10);
    return std::random_device{}() * 0x9E3779B97F4A7C15ull ^ std::random_device{}();
}

}  // namespace gntest
