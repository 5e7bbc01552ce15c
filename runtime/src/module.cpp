#include <algorithm>
#include <cmath>
#include <utility>

#include "groupnorm/groupnorm.hpp"

namespace groupnorm {
namespace {

DLTensor param_tensor(const std::vector<float> &v, int64_t *shape) {
    DLTensor t{};
    t.data = const_cast<float *>(v.data());
    t.device = {kDLCPU, 0};
    t.ndim = 1;
    t.dtype = {kDLFloat, 32, 1};
    t.shape = shape;
    return t;
}

}  // namespace

GroupNorm::GroupNorm(int64_t num_groups, int64_t num_channels, double eps, bool affine,
                     bool bias, gn_activation activation)
    : num_groups_(num_groups), num_channels_(num_channels), eps_(eps), affine_(affine),
      has_bias_(affine && bias) {
    set_activation(activation);
    if (num_groups <= 0) {
        throw Error(GN_STATUS_INVALID_ARGUMENT,
                    "num_groups must be positive, got " + std::to_string(num_groups));
    }
    if (num_channels <= 0 || num_channels % num_groups != 0) {
        throw Error(GN_STATUS_INVALID_ARGUMENT,
                    "num_channels (" + std::to_string(num_channels) +
                        ") must be a positive multiple of num_groups (" +
                        std::to_string(num_groups) + ")");
    }
    if (affine) {
        weight_.assign(num_channels, 1.0f);
        weight_grad_.assign(num_channels, 0.0f);
    }
    if (has_bias_) {
        bias_.assign(num_channels, 0.0f);
        bias_grad_.assign(num_channels, 0.0f);
    }
}

void GroupNorm::set_activation(gn_activation activation) {
    if (activation < GN_ACTIVATION_NONE || activation > GN_ACTIVATION_GELU_TANH) {
        throw Error(GN_STATUS_INVALID_ARGUMENT,
                    "activation must be a gn_activation (0..4), got " + std::to_string((int)activation));
    }
    config_.activation = activation;
}

void GroupNorm::zero_grad() {
    std::fill(weight_grad_.begin(), weight_grad_.end(), 0.0f);
    std::fill(bias_grad_.begin(), bias_grad_.end(), 0.0f);
}

void GroupNorm::set_param(std::vector<float> &param, std::vector<float> value, const char *name,
                          bool present) {
    if (!present) {
        throw Error(GN_STATUS_INVALID_ARGUMENT,
                    std::string(name) + " set on a module without one (affine = " +
                        (affine_ ? "true, bias = false)" : "false)"));
    }
    if ((int64_t)value.size() != num_channels_) {
        throw Error(GN_STATUS_INVALID_ARGUMENT,
                    std::string(name) + " must have num_channels = " +
                        std::to_string(num_channels_) + " elements, got " +
                        std::to_string(value.size()));
    }
    param = std::move(value);
}

void GroupNorm::set_weight(std::vector<float> weight) {
    set_param(weight_, std::move(weight), "weight", affine_);
}
void GroupNorm::set_bias(std::vector<float> bias) {
    set_param(bias_, std::move(bias), "bias", has_bias_);
}

void GroupNorm::forward(const DLTensor &x, DLTensor &y) const { forward(x, y, nullptr, nullptr); }

void GroupNorm::check_channels(const DLTensor &x) const {
    if (x.ndim >= 2 && x.shape && x.shape[1] != num_channels_) {
        throw Error(GN_STATUS_INVALID_ARGUMENT,
                    "x has " + std::to_string(x.shape[1]) + " channels; the module expects " +
                        std::to_string(num_channels_));
    }
}

void GroupNorm::backward(const DLTensor &dy, const DLTensor &x, const DLTensor &mean,
                         const DLTensor &rstd, DLTensor *dx) {
    check_channels(x);
    int64_t shape[1] = {num_channels_};
    DLTensor w = param_tensor(weight_, shape);
    std::vector<float> dw(affine_ ? num_channels_ : 0), db(has_bias_ ? num_channels_ : 0);
    DLTensor dwt = param_tensor(dw, shape), dbt = param_tensor(db, shape);
    // With an activation the pre-activation values need the bias too (when there is one).
    // Without a bias, dbeta is not computed (the C API takes dgamma without dbeta).
    DLTensor b = param_tensor(bias_, shape);
    gn_config config = config_;
    if (has_bias_ && config.activation != GN_ACTIVATION_NONE) config.beta = &b;
    check(gn_backward(&dy, &x, &mean, &rstd, affine_ ? &w : nullptr, num_groups_, dx,
                      affine_ ? &dwt : nullptr, has_bias_ ? &dbt : nullptr, &config));
    for (size_t c = 0; c < dw.size(); c++) weight_grad_[c] += dw[c];
    for (size_t c = 0; c < db.size(); c++) bias_grad_[c] += db[c];
}

void GroupNorm::forward(const DLTensor &x, DLTensor &y, DLTensor *mean, DLTensor *rstd) const {
    check_channels(x);
    int64_t shape[1] = {num_channels_};
    DLTensor w = param_tensor(weight_, shape), b = param_tensor(bias_, shape);
    check(gn_forward(&x, affine_ ? &w : nullptr, has_bias_ ? &b : nullptr, num_groups_, eps_, &y,
                     mean, rstd, &config_));
}

}  // namespace groupnorm
