// What every GroupNorm generator shares: the layout and GPU shape-class parameters, one
// GeneratorParam per tuning field (tuning.h), and the target's schedule family.
#pragma once

#include <string>

#include "Halide.h"
#include "tuning.h"

namespace groupnorm_gen {

template <typename T>
class GroupNormGenerator : public Halide::Generator<T> {
public:
    Halide::GeneratorParam<Layout> layout{"layout", Layout::NCHW,
                                          {{"nchw", Layout::NCHW}, {"nhwc", Layout::NHWC}}};
    // GPU targets only: the shape class the variant serves (schedules/gpu.h).
    Halide::GeneratorParam<GpuShape> gpu_shape{
        "gpu_shape", GpuShape::Split, {{"split", GpuShape::Split}, {"group", GpuShape::Group}}};
    // The schedule's tuning (tuning.h: meaning and range of each); 0 = the family's default.
#define GN_TUNING_PARAM(name, lo, hi, doc) Halide::GeneratorParam<int> name{#name, 0, 0, hi};
    GN_TUNING_FIELDS(GN_TUNING_PARAM)
#undef GN_TUNING_PARAM
    // With autoscheduler=NAME (the tuner's autoscheduler candidates, tools/tune): the shape
    // (N, C, S spatial, G) whose estimates the autoscheduler schedules for, instead of the
    // hand-written schedules. Unused otherwise.
    Halide::GeneratorParam<int> estimate_n{"estimate_n", 2, 1, 1 << 20};
    Halide::GeneratorParam<int> estimate_c{"estimate_c", 320, 1, 1 << 20};
    Halide::GeneratorParam<int> estimate_s{"estimate_s", 4096, 1, 1 << 30};
    Halide::GeneratorParam<int> estimate_groups{"estimate_groups", 32, 1, 1 << 20};

protected:
    Family family() const {
        const Halide::Target t = this->get_target();
        if (t.has_gpu_feature()) return Family::Gpu;
        return t.arch == Halide::Target::ARM ? Family::Arm : Family::X86;
    }

    // The family's defaults with this variant's GeneratorParams applied.
    Tuning resolved_tuning() const {
        Tuning t;
        const std::string why = resolve_tuning(family(), layout, gpu_shape, {
#define GN_TUNING_OVERRIDE(name, lo, hi, doc) {#name, (int)name},
            GN_TUNING_FIELDS(GN_TUNING_OVERRIDE)
#undef GN_TUNING_OVERRIDE
        }, &t);
        _halide_user_assert(why.empty()) << why;
        return t;
    }

    // v (float32) stored as type t. Halide's emulated float32 -> float16 conversion (x86
    // without F16C: the sse41 level; ARM64 without arm_fp16: the armv8 level) turns NaN into
    // inf, also under strict_float; NaN is re-made from the bits there (integer ops, which
    // fast-math cannot fold).
    Halide::Expr cast_out(const Halide::Type &t, const Halide::Expr &v) const {
        using namespace Halide;
        Expr out = cast(t, v);
        const Target target = this->get_target();
        const bool native_f16 =
            target.has_gpu_feature() ||
            (target.arch == Target::X86 && target.has_feature(Target::F16C)) ||
            (target.arch == Target::ARM && target.has_feature(Target::ARMFp16));
        if (t == Float(16) && !native_f16) {
            Expr nan = (reinterpret<uint32_t>(v) & cast<uint32_t>(0x7fffffff)) > cast<uint32_t>(0x7f800000);
            out = reinterpret(t, select(nan, cast<uint16_t>(0x7e00), reinterpret<uint16_t>(out)));
        }
        return out;
    }

    // The arithmetic type: float64 for float64 x, float32 for every other dtype (half types
    // are computed in float32). Statistics (forward mean/rstd, backward inputs) and eps have it.
    Halide::Type compute_type() const {
        const Halide::Type t = static_cast<const T *>(this)->x.type();
        return t.is_float() && t.bits() == 64 ? Halide::Float(64) : Halide::Float(32);
    }

    // Prefetches the cache line of element `offset` of a buffer of `elem` values at `host`
    // (the intrinsic scales the offset by its call type's size: it must be the element's);
    // evaluates to 0 in the compute type. A prefetch never faults: beyond the buffer's end
    // it is dropped. (Halide 21's prefetch directive steps a split prefetch by 64 elements,
    // not bytes, hence the intrinsic.)
    Halide::Expr prefetch_element(const Halide::Expr &host, const Halide::Type &elem,
                                  const Halide::Expr &offset) const {
        using Halide::Internal::Call;
        return Halide::cast(compute_type(),
                            Call::make(elem, Call::prefetch, {host, offset, 1, 1}, Call::Intrinsic));
    }

    // The same for input buf's element (pos, ch, sample).
    Halide::Expr prefetch_input(const Halide::ImageParam &buf, const Halide::Expr &pos,
                                const Halide::Expr &ch, const Halide::Expr &sample) const {
        using namespace Halide;
        Parameter p = buf.parameter();
        Expr host = Internal::Variable::make(Handle(), p.name(), p);
        return prefetch_element(host, buf.type(),
                                pos + ch * buf.dim(1).stride() + sample * buf.dim(2).stride());
    }

    // Whether the variant compiles the fused activations (activation.h). Their sigmoid is
    // float32 arithmetic (bit tricks on float32 exponents): float64 variants have none, and
    // the runtime refuses an activation for float64 x before calling one.
    bool fused_activations() const { return compute_type() == Halide::Float(32); }

    // Natural vector width of the compute type on the target (CPU families): the unit of the
    // tuning's vector counts.
    int vector() const { return this->get_target().natural_vector_size(compute_type()); }
};

}  // namespace groupnorm_gen
