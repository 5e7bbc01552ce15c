// Each ISA level of the multi-target CPU variants runs: ctest starts this suite once per
// level with GN_CPU_ISA set; this test checks that the level asked for is the one chosen.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "groupnorm/groupnorm.h"
#include "isa.h"
#include "support/cpu.h"
#include "reference.h"

using namespace gntest;
using groupnorm::detail::CpuIsa;

namespace {

#if defined(__aarch64__)
// What the kernel reports (under qemu: the -cpu / QEMU_CPU model), as Halide reads it.
bool cpu_has(CpuIsa isa, std::string *missing) {
    const unsigned long asimdhp = 1ul << 10;  // HWCAP_ASIMDHP: fp16 vector arithmetic
    if (isa == CpuIsa::CPU_ISA_ARM_FP16 && !(getauxval(AT_HWCAP) & asimdhp)) {
        *missing = "ARMv8.2 fp16 (HWCAP_ASIMDHP)";
        return false;
    }
    return true;
}
#else
bool cpu_has(CpuIsa isa, std::string *missing) {
    __builtin_cpu_init();
    if (isa == CpuIsa::CPU_ISA_AVX512 &&
        !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
          __builtin_cpu_supports("avx512cd"))) {
        *missing = "AVX-512 (F, CD, BW, DQ, VL)";
        return false;
    }
    if (isa >= CpuIsa::CPU_ISA_AVX2 &&
        !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
          groupnorm::support::cpu_has_f16c())) {
        *missing = "AVX2 + FMA + F16C";
        return false;
    }
    return __builtin_cpu_supports("sse4.1") || (*missing = "SSE4.1", false);
}
#endif

TEST(CpuIsa, TheRequestedLevelRuns) {
    const char *env = std::getenv("GN_CPU_ISA");
    if (!env) GTEST_SKIP() << "GN_CPU_ISA not set: ctest runs this suite once per level";
    CpuIsa want = CpuIsa::CPU_ISA_AUTO;
    int n_levels = 0;
    const CpuIsa *levels = groupnorm::detail::cpu_isa_levels(&n_levels);
    for (int i = 0; i < n_levels; i++) {
        if (std::string(env) == groupnorm::detail::cpu_isa_name(levels[i])) want = levels[i];
    }
    ASSERT_NE(want, CpuIsa::CPU_ISA_AUTO) << "GN_CPU_ISA=" << env;
    std::string missing;
    if (!cpu_has(want, &missing)) GTEST_SKIP() << "this CPU lacks " << missing;

    ASSERT_EQ(groupnorm::detail::install_cpu_isa_cap(), GN_STATUS_SUCCESS);
    // `groupnorm info` predicts the level without running a kernel: it must match.
    EXPECT_EQ(groupnorm::detail::expected_cpu_isa(), want);

    std::mt19937_64 rng(fresh_seed());
    Tensor x({2, 8, 6, 6}, DType::F32), y({2, 8, 6, 6}, DType::F32);
    x.fill_normal(rng, 1.0, 1.0);
    y.poison();
    ASSERT_EQ(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, y.dl(), nullptr, nullptr, nullptr),
              GN_STATUS_SUCCESS);
    EXPECT_TRUE(matches_reference(y, reference_group_norm(x, nullptr, nullptr, 4, 1e-5)));
    EXPECT_EQ(groupnorm::detail::cpu_isa_cap(), want);
    EXPECT_EQ(groupnorm::detail::selected_cpu_isa(), want)
        << "chosen: " << groupnorm::detail::cpu_isa_name(groupnorm::detail::selected_cpu_isa());
}

}  // namespace
