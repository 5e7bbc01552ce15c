// The activations a GroupNorm can be fused with (the epilogue of the forward, the prologue
// on dy of the backward), selected at run time by a scalar Input of the generator: each
// pipeline's elementwise output Func is specialized once per activation, so the selection
// costs one branch per call, not a select per element, and no extra variants.
//
// Values match runtime/include/groupnorm/groupnorm.h (gn_activation). Float32 throughout:
// float64 variants compile none (generator_base.h, fused_activations()).
#pragma once

#include <utility>

#include "Halide.h"

namespace groupnorm_gen {

enum Activation { kActNone = 0, kActSilu = 1, kActRelu = 2, kActGelu = 3, kActGeluTanh = 4 };
constexpr int kNumActivations = 5;

namespace activation_detail {

inline Halide::Expr gelu_tanh_arg(const Halide::Expr &z) {
    // 2 u with u = sqrt(2 / pi) (z + 0.044715 z^3): 0.5 (1 + tanh(u)) = sigmoid(2 u).
    return 2.0f * 0.7978845608028654f * (z + 0.044715f * z * z * z);
}

// 2^t for t in [-127, 128], cheaper than Halide's exp (the activation must ride in the
// memory-bound normalize pass): 2^t = 2^n 2^f with n = round(t) by the 1.5 * 2^23 trick
// (strict: fast-math would fold it; the bias 127 rides in the same add, so the low bits of
// `shifted` are n + 127, the exponent field of 2^n) and 2^f a degree-5 fit on [-1/2, 1/2]
// (relative error 1.4e-7). t = -127 gives 0 exactly, t = 128 infinity.
inline Halide::Expr exp2_clamped(const Halide::Expr &t) {
    using namespace Halide;
    Expr shifted = strict_float(t + (12582912.0f + 127.0f));
    Expr n = strict_float(shifted - (12582912.0f + 127.0f));
    Expr f = t - n;
    Expr p = 0.001326697994954884f;
    for (float c : {0.009675469249486923f, 0.05550742521882057f, 0.24022121727466583f,
                    0.6931469440460205f, 1.0000001192092896f}) {
        p = p * f + c;
    }
    return p * reinterpret<float>(reinterpret<uint32_t>(shifted) << 23);
}

// sigmoid(v) = 1 / (1 + exp(-v)) = 1 / (1 + 2^t), t = -v log2(e) clamped to [-127, 128]
// (relative error ~2e-7, no cancellation on either side of 0), by an IEEE division: the
// x86 reciprocal estimate and a Newton step, used before, was slower on Zen 4 (Halide 21
// forms AVX-512's from two 8-lane halves and two shuffles; the division was 1.2x faster
// there, as fast at AVX2). At the clamps: v > 88 gives 2^t = 0 and sigmoid 1; below about
// -88.4, 2^t = inf and sigmoid 0 (the true value is under 4e-39). Halide's fast-math flags
// let LLVM assume no infinities in these non-strict operations; the Fused tests check
// finite z = -100 and z = -inf, so a compiler that exploited it would be caught. SiLU(-inf)
// = -inf * 0 = NaN, as in IEEE float64; NaN in, NaN out through the product.
inline Halide::Expr sigmoid(const Halide::Expr &v) {
    Halide::Expr t = Halide::clamp(v * -1.4426950408889634f, -127.0f, 128.0f);
    return 1.0f / (1.0f + exp2_clamped(t));
}

// Both sigmoid(v) and 1 - sigmoid(v) = sigmoid(-v), each without cancellation (the
// derivatives need the second where sigmoid is close to 1): with e = 2^t, t = -|v| log2(e)
// in [-127, 0], r = 1 / (1 + e) in (1/2, 1]; sigmoid = r for v >= 0, e r for v < 0. At
// v = -inf, sigmoid = 0 exactly and 1 - sigmoid = 1.
inline std::pair<Halide::Expr, Halide::Expr> sigmoid_pair(const Halide::Expr &v) {
    using namespace Halide;
    Expr e = exp2_clamped(max(abs(v) * -1.4426950408889634f, -127.0f));
    Expr r = 1.0f / (1.0f + e);
    Expr er = e * r, negative = v < 0.0f;
    return {select(negative, er, r), select(negative, r, er)};
}

// erf(z / sqrt 2) with its argument clamped to [-6, 6], where erf is +-1 in float32:
// Halide's erf is NaN past ~1e30 and at +-inf.
inline Halide::Expr erf_scaled(const Halide::Expr &z) {
    return Halide::erf(Halide::clamp(z * 0.7071067811865476f, -6.0f, 6.0f));
}

}  // namespace activation_detail

// act(z) for one activation known when the pipeline is built.
//   SiLU        z sigmoid(z)                     (-inf gives NaN, as PyTorch)
//   ReLU        z < 0 ? 0 : z                    (NaN stays NaN, as PyTorch)
//   GELU (erf)  z (1 + erf(z / sqrt 2)) / 2
//   GELU (tanh) z (1 + tanh(u)) / 2 = z sigmoid(2 u),  u = sqrt(2 / pi) (z + 0.044715 z^3)
// The comparison of ReLU is strict_float: under fast-math LLVM may assume no NaNs and turn
// the select into a max that drops them.
inline Halide::Expr activate(int act, const Halide::Expr &z) {
    using namespace Halide;
    using namespace activation_detail;
    switch (act) {
    case kActSilu: return z * sigmoid(z);
    case kActRelu: return strict_float(select(z < 0.0f, 0.0f, z));
    case kActGelu: return 0.5f * z * (1.0f + erf_scaled(z));
    case kActGeluTanh: return z * sigmoid(gelu_tanh_arg(z));
    default: return z;
    }
}

// d act / dz at z, for the backward.
//   SiLU        s + z s (1 - s),  s = sigmoid(z)
//   ReLU        z <= 0 ? 0 : 1  (0 at z = 0, and NaN passes dy through, as PyTorch's
//               threshold_backward)
//   GELU (erf)  Phi(z) + z phi(z) = (1 + erf(z / sqrt 2)) / 2 + z exp(-z^2 / 2) / sqrt(2 pi)
//   GELU (tanh) s + z s (1 - s) 2 sqrt(2 / pi) (1 + 3 0.044715 z^2),  s = sigmoid(2 u)
inline Halide::Expr activate_grad(int act, const Halide::Expr &z) {
    using namespace Halide;
    using namespace activation_detail;
    switch (act) {
    case kActSilu: {
        auto [s, one_minus_s] = sigmoid_pair(z);
        return s + z * s * one_minus_s;
    }
    case kActRelu: return strict_float(select(z <= 0.0f, 0.0f, 1.0f));
    case kActGelu:
        return 0.5f * (1.0f + erf_scaled(z)) +
               z * exp(-0.5f * z * z) * 0.3989422804014327f;
    case kActGeluTanh: {
        auto [s, one_minus_s] = sigmoid_pair(gelu_tanh_arg(z));
        Expr du = 2.0f * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * z * z);
        return s + z * s * one_minus_s * du;
    }
    default: return 1.0f;
    }
}

// The activation chosen by the run-time scalar `act` (a select chain: its every branch is
// folded away inside the specializations below).
template <typename F>
Halide::Expr select_activation(const Halide::Expr &act, F &&per_activation) {
    using namespace Halide;
    Expr e = per_activation(kActNone);
    for (int a = kNumActivations - 1; a >= 1; a--) e = select(act == a, per_activation(a), e);
    return e;
}

// One specialization of f per activation (call after f's schedule: each copies it), and a
// run-time error for any other value (the runtime validates it first).
// with_none = false leaves kActNone out (the CPU forward's consumer has its own copy for it).
inline void specialize_activations(Halide::Func f, const Halide::Expr &act, bool with_none) {
    for (int a = with_none ? 0 : 1; a < kNumActivations; a++) f.specialize(act == a);
    f.specialize_fail("activation must be a gn_activation: 0 (none), 1 (SiLU), 2 (ReLU), "
                      "3 (GELU), 4 (GELU tanh)");
}

}  // namespace groupnorm_gen
