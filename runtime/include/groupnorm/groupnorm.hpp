// C++ API: a module mirroring torch.nn.GroupNorm over the C API, reporting errors as
// groupnorm::Error exceptions.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "groupnorm/groupnorm.h"

namespace groupnorm {

class Error : public std::runtime_error {
public:
    Error(gn_status status, const std::string &message)
        : std::runtime_error(std::string(gn_status_string(status)) + ": " + message),
          status_(status) {}
    gn_status status() const { return status_; }

private:
    gn_status status_;
};

// Throws Error for any status other than GN_STATUS_SUCCESS.
inline void check(gn_status status) {
    if (status != GN_STATUS_SUCCESS) throw Error(status, gn_last_error_message());
}

// torch.nn.GroupNorm(num_groups, num_channels, eps=1e-5, affine=True, bias=True): weight
// starts at ones and bias at zeros (float32, settable: so float64 x is served with affine =
// false only, the C API taking float64 parameters for it); affine with bias = false has a
// weight and no bias (PyTorch 2.x). forward(x, y) normalizes x of shape (N, C, *);
// backward(dy, x, mean, rstd, dx) returns dx and, like autograd, accumulates the weight and
// bias gradients into weight_grad() and bias_grad() (zero_grad() resets them).
//
// With an activation (diffusers' GroupNorm followed by SiLU, in one pass): forward writes
// act(GroupNorm(x)); backward differentiates through it (the bias is passed to gn_backward
// for the pre-activation values).
class GroupNorm {
public:
    GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5, bool affine = true,
              bool bias = true, gn_activation activation = GN_ACTIVATION_NONE);
    // An activation where torch.nn.GroupNorm has `bias` is refused at compile time (it would
    // convert to bool silently): pass bias, then the activation.
    GroupNorm(int64_t, int64_t, double, bool, gn_activation) = delete;

    int64_t num_groups() const { return num_groups_; }
    int64_t num_channels() const { return num_channels_; }
    double eps() const { return eps_; }
    bool affine() const { return affine_; }
    gn_activation activation() const { return (gn_activation)config_.activation; }
    void set_activation(gn_activation activation);
    bool has_bias() const { return has_bias_; }  // affine and constructed with bias = true

    // weight: empty when affine is false; bias: empty unless has_bias().
    const std::vector<float> &weight() const { return weight_; }
    const std::vector<float> &bias() const { return bias_; }
    void set_weight(std::vector<float> weight);  // size num_channels; requires affine
    void set_bias(std::vector<float> bias);      // requires has_bias()

    // Options for every call (x86 ISA cap, ...).
    gn_config &config() { return config_; }

    void forward(const DLTensor &x, DLTensor &y) const;
    // Also writes mean and rstd, (N, num_groups) tensors of the C API's statistics dtype
    // (float32; float64 for float64 x), as a backward pass needs.
    void forward(const DLTensor &x, DLTensor &y, DLTensor *mean, DLTensor *rstd) const;

    // dx (nullptr: not computed; may be &dy) from dy, the forward's input x and the mean and
    // rstd it wrote; with affine, adds this batch's gradients to weight_grad(), bias_grad().
    void backward(const DLTensor &dy, const DLTensor &x, const DLTensor &mean,
                  const DLTensor &rstd, DLTensor *dx);
    // Accumulated gradients (zeros at first; empty where the parameter is).
    const std::vector<float> &weight_grad() const { return weight_grad_; }
    const std::vector<float> &bias_grad() const { return bias_grad_; }
    void zero_grad();

private:
    void set_param(std::vector<float> &param, std::vector<float> value, const char *name,
                   bool present);
    void check_channels(const DLTensor &x) const;

    int64_t num_groups_, num_channels_;
    double eps_;
    bool affine_, has_bias_;
    std::vector<float> weight_, bias_, weight_grad_, bias_grad_;
    gn_config config_ = GN_CONFIG_INIT;
};

}  // namespace groupnorm
