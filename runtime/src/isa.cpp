#include "isa.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "HalideRuntime.h"
#include "errors.h"

namespace groupnorm::detail {
namespace {

std::atomic<int> cap{CPU_ISA_AUTO};
std::atomic<int> selected{CPU_ISA_NONE};
gn_status cap_status = GN_STATUS_SUCCESS;

bool has_feature(int count, const uint64_t *features, halide_target_feature_t f) {
    const int word = f / 64;
    return word < count && ((features[word] >> (f % 64)) & 1);
}

#if defined(__aarch64__)
const CpuIsa kLevels[] = {CPU_ISA_ARMV8, CPU_ISA_ARM_FP16};
// The features of each level's target beyond the baseline (generators/CMakeLists.txt).
const halide_target_feature_t kLevelFeatures[][8] = {
    {halide_target_feature_end}, {halide_target_feature_arm_fp16, halide_target_feature_end}};
CpuIsa level_of(int count, const uint64_t *features) {
    return has_feature(count, features, halide_target_feature_arm_fp16) ? CPU_ISA_ARM_FP16
                                                                        : CPU_ISA_ARMV8;
}
#else
const CpuIsa kLevels[] = {CPU_ISA_SSE41, CPU_ISA_AVX2, CPU_ISA_AVX512};
const halide_target_feature_t kLevelFeatures[][8] = {
    {halide_target_feature_sse41, halide_target_feature_end},
    {halide_target_feature_sse41, halide_target_feature_avx, halide_target_feature_f16c,
     halide_target_feature_fma, halide_target_feature_avx2, halide_target_feature_end},
    {halide_target_feature_sse41, halide_target_feature_avx, halide_target_feature_f16c,
     halide_target_feature_fma, halide_target_feature_avx2, halide_target_feature_avx512,
     halide_target_feature_avx512_skylake, halide_target_feature_end}};
CpuIsa level_of(int count, const uint64_t *features) {
    if (has_feature(count, features, halide_target_feature_avx512) ||
        has_feature(count, features, halide_target_feature_avx512_skylake)) {
        return CPU_ISA_AVX512;
    }
    return has_feature(count, features, halide_target_feature_avx2) ? CPU_ISA_AVX2 : CPU_ISA_SSE41;
}
#endif

void note_selected(CpuIsa level) {
    int prev = selected.load();
    while (prev < level && !selected.compare_exchange_weak(prev, level)) {
    }
}

// Wrappers ask from the best level down, stop at the first yes, and take the baseline
// without asking when the level above it is refused.
int capped_can_use_target_features(int count, const uint64_t *features) {
    const CpuIsa level = level_of(count, features);
    const bool capped = level > cap.load();
    if (capped || !halide_default_can_use_target_features(count, features)) {
        if (level == kLevels[1]) note_selected(kLevels[0]);
        return 0;
    }
    note_selected(level);
    return 1;
}

}  // namespace

const char *cpu_isa_name(CpuIsa isa) {
    switch (isa) {
    case CPU_ISA_SSE41: return "sse41";
    case CPU_ISA_AVX2: return "avx2";
    case CPU_ISA_AVX512: return "avx512";
    case CPU_ISA_ARMV8: return "armv8";
    case CPU_ISA_ARM_FP16: return "arm_fp16";
    case CPU_ISA_AUTO: return "auto";
    default: return "none";
    }
}

gn_status install_cpu_isa_cap() {
    static std::once_flag once;
    std::call_once(once, [] {
        const char *env = std::getenv("GN_CPU_ISA");
        if (env && *env) {
            bool known = std::strcmp(env, cpu_isa_name(CPU_ISA_AUTO)) == 0;
            for (CpuIsa isa : kLevels) {
                if (std::strcmp(env, cpu_isa_name(isa)) == 0) {
                    cap = isa;
                    known = true;
                }
            }
            if (!known) cap_status = GN_STATUS_INVALID_ARGUMENT;
        }
        halide_set_custom_can_use_target_features(capped_can_use_target_features);
    });
    if (cap_status != GN_STATUS_SUCCESS) {
        std::string levels;
        for (CpuIsa isa : kLevels) levels += std::string(cpu_isa_name(isa)) + ", ";
        return fail(cap_status, "environment variable GN_CPU_ISA=%s is not one of %sauto",
                    std::getenv("GN_CPU_ISA") ? std::getenv("GN_CPU_ISA") : "", levels.c_str());
    }
    return GN_STATUS_SUCCESS;
}

const CpuIsa *cpu_isa_levels(int *count) {
    *count = sizeof(kLevels) / sizeof(kLevels[0]);
    return kLevels;
}

CpuIsa expected_cpu_isa() {
    constexpr int kWords = (halide_target_feature_end + 63) / 64;
    const int levels = sizeof(kLevels) / sizeof(kLevels[0]);
    for (int i = levels - 1; i > 0; i--) {
        uint64_t mask[kWords] = {};
        for (const halide_target_feature_t *f = kLevelFeatures[i]; *f != halide_target_feature_end; f++) {
            mask[*f / 64] |= uint64_t(1) << (*f % 64);
        }
        if (kLevels[i] <= cap.load() && halide_default_can_use_target_features(kWords, mask)) {
            return kLevels[i];
        }
    }
    return kLevels[0];
}

CpuIsa cpu_isa_cap() { return (CpuIsa)cap.load(); }
CpuIsa selected_cpu_isa() { return (CpuIsa)selected.load(); }

}  // namespace groupnorm::detail
