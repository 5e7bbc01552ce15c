#include "registry.h"

#include <array>
#include <cstdio>
#include <cstring>

#include "errors.h"
#include "gn_variant_headers.h"  // generated: the AOT functions' declarations

namespace groupnorm::detail {
namespace {

using groupnorm_gen::Family;

// One generated row per variant (generators/variants.txt via cmake/GroupNormVariants.cmake);
// fn_name is the row's own function, or that of an earlier tuned class with the same tuning.
#define GN_ROW(name, fn_name, op, device, dtype, layout, params, family, schedule_family, cls, \
               min_ng, max_ng, min_group, max_group, min_values, max_values, tuning)          \
    {#name, GN_OP_##op, GN_DEVICE_##device, GN_DTYPE_##dtype, GN_LAYOUT_##layout,            \
     GN_DTYPE_##params, #family, Family::schedule_family, #cls,                               \
     {min_ng, max_ng, min_group, max_group, min_values, max_values}, tuning,                  \
     reinterpret_cast<void (*)()>(&fn_name)},
// Each library links the rows of its device families only (runtime/CMakeLists.txt:
// libgroupnorm_cpu.a references, hence links, no GPU variant).
#define GN_ROW_CPU GN_ROW
#if GN_WITH_CUDA
#define GN_ROW_CUDA GN_ROW
#else
#define GN_ROW_CUDA(...)
#endif
#if GN_WITH_OPENCL
#define GN_ROW_OPENCL GN_ROW
#else
#define GN_ROW_OPENCL(...)
#endif
#define GN_VARIANT(name, fn_name, op, device, ...) \
    GN_ROW_##device(name, fn_name, op, device, __VA_ARGS__)
const Variant kVariants[] = {
#include "gn_variants.inc"
};
#undef GN_VARIANT
constexpr size_t kVariantCount = sizeof(kVariants) / sizeof(kVariants[0]);

std::string format(const char *fmt, long long a, long long b) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), fmt, a, b);
    return buf;
}

// false, with the reason made only when asked for: find_variant asks every row in turn, and
// formatting each refusal (a heap string) was most of a tiny backward's dispatch.
template <typename Reason>
bool reject(std::string *why, Reason &&reason) {
    if (why) *why = reason();
    return false;
}

}  // namespace

const groupnorm_gen::Tuning &Variant::tuning_record() const {
    // Resolved once per variant; the generator checked the same record at build time.
    static const auto records = [] {
        std::array<groupnorm_gen::Tuning, kVariantCount> r;
        for (size_t i = 0; i < kVariantCount; i++) {
            const Variant &v = kVariants[i];
            const auto layout = v.layout == GN_LAYOUT_NCHW ? groupnorm_gen::Layout::NCHW
                                                           : groupnorm_gen::Layout::NHWC;
            const auto shape = std::string(v.shape_class) == "group" ? groupnorm_gen::GpuShape::Group
                                                                     : groupnorm_gen::GpuShape::Split;
            groupnorm_gen::resolve_tuning_spec(v.schedule_family, layout, shape, v.tuning, &r[i]);
        }
        return r;
    }();
    return records[this - kVariants];
}

const Variant *all_variants(size_t *count) {
    *count = kVariantCount;
    return kVariants;
}

bool can_run(const Variant &v, const Problem &p, std::string *why) {
    if (!v.is_gpu()) return true;
    // Launch grids put n (and c) in the y/z grid dimensions, at most 65535.
    if (p.N > 65535 || p.C > 65535) {
        return reject(why, [&] {
            return format("N = %lld or C = %lld exceeds a GPU grid dimension (65535)",
                          (long long)p.N, (long long)p.C);
        });
    }
    if (std::strcmp(v.shape_class, "group") == 0) {
        // The group's block moments (8 bytes each; at most ceil(S / gpu_block) * D of them,
        // whichever rows the statistics read) sit in shared memory.
        const int64_t block = v.tuning_record().gpu_block;
        const int64_t moments = (p.S + block - 1) / block * (p.C / p.G);
        const int64_t limit = groupnorm_gen::kGpuSharedMomentBytes / 8;
        if (moments > limit) {
            return reject(why, [&] {
                return format("the group's %lld block moments exceed shared memory (%lld)",
                              (long long)moments, (long long)limit);
            });
        }
    }
    return true;
}

bool accepts(const Variant &v, const Problem &p, std::string *why) {
    auto is = [&](const char *what, const char *value) {
        return reject(why, [&] { return std::string(what) + " is " + value; });
    };
    if (v.op != p.op) return is("op", op_name(v.op));
    if (v.device != p.device) return is("device", device_name(v.device));
    if (v.dtype != p.dtype) return is("x dtype", dtype_name(v.dtype));
    if (v.layout != p.layout) return is("layout", layout_name(v.layout));
    if (v.param_dtype != p.param_dtype) return is("gamma/beta dtype", dtype_name(v.param_dtype));
    const ShapeBounds &b = v.bounds;
    const int64_t ng = p.N * p.G, group = p.C / p.G * p.S, values = p.N * p.C * p.S;
    auto outside = [&](const char *fmt, int64_t value, int64_t bound) {
        return reject(why, [&] { return format(fmt, value, bound); });
    };
    if (b.min_ng >= 0 && ng < b.min_ng) {
        return outside("N*G = %lld < %lld (its shape class)", ng, b.min_ng);
    }
    if (b.max_ng >= 0 && ng > b.max_ng) {
        return outside("N*G = %lld > %lld (its shape class)", ng, b.max_ng);
    }
    if (b.min_group >= 0 && group < b.min_group) {
        return outside("group size %lld < %lld (its shape class)", group, b.min_group);
    }
    if (b.max_group >= 0 && group > b.max_group) {
        return outside("group size %lld > %lld (its shape class)", group, b.max_group);
    }
    if (b.min_values >= 0 && values < b.min_values) {
        return outside("x's %lld values < %lld (its shape class)", values, b.min_values);
    }
    if (b.max_values >= 0 && values > b.max_values) {
        return outside("x's %lld values > %lld (its shape class)", values, b.max_values);
    }
    return can_run(v, p, why);
}

const Variant *find_variant(const Problem &p, gn_status *status) {
    bool device_built = false;
    for (const Variant &v : kVariants) {
        device_built |= v.device == p.device;
        if (accepts(v, p)) return &v;
    }
    const gn_status st = device_built ? GN_STATUS_UNSUPPORTED : GN_STATUS_DEVICE_UNAVAILABLE;
    if (status) *status = st;
    if (!device_built) {
        fail(st, "x is a %s tensor, but this build has no %s variants", device_name(p.device),
             device_name(p.device));
    } else {
        fail(st, "no compiled %s %s variant for x %s %s with gamma/beta %s (groupnorm info "
             "--shape explains each variant's answer)", device_name(p.device), op_name(p.op),
             dtype_name(p.dtype), layout_name(p.layout), dtype_name(p.param_dtype));
    }
    return nullptr;
}

}  // namespace groupnorm::detail
