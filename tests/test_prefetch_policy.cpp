// The prefetch policy (runtime/src/prefetch_policy.h): GN_CPU_PREFETCH = on | off | auto, auto
// off on Intel CPUs. ctest runs this suite with the variable unset (in the CPU.* runs), off,
// and set to a bad value, which every call must refuse with a message naming it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "forward_case.h"
#include "groupnorm/groupnorm.h"
#include "prefetch_policy.h"

using namespace gntest;
namespace gd = groupnorm::detail;

namespace {

TEST(PrefetchPolicy, FollowsTheEnvironment) {
    const char *env = std::getenv("GN_CPU_PREFETCH");
    const std::string value = env ? env : "";
    if (value != "" && value != "auto" && value != "on" && value != "off") {
        GTEST_SKIP() << "GN_CPU_PREFETCH=" << value << ": BadValueIsRefused's case";
    }
    ASSERT_EQ(gd::install_prefetch_policy(), GN_STATUS_SUCCESS) << gn_last_error_message();
    int want = 1;
    if (value == "off") {
        want = 0;
    } else if (value != "on") {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_cpu_init();
        want = __builtin_cpu_is("intel") ? 0 : 1;
#endif
    }
    EXPECT_EQ(gd::prefetch_ahead(), want) << gd::prefetch_reason();
    gd::set_prefetch_ahead_for_testing(1 - want);
    EXPECT_EQ(gd::prefetch_ahead(), 1 - want);
    gd::set_prefetch_ahead_for_testing(-1);
    EXPECT_EQ(gd::prefetch_ahead(), want);
}

TEST(PrefetchPolicy, BadValueIsRefused) {
    const char *env = std::getenv("GN_CPU_PREFETCH");
    const std::string value = env ? env : "";
    if (value == "" || value == "auto" || value == "on" || value == "off") {
        GTEST_SKIP() << "ctest runs this with GN_CPU_PREFETCH set to a bad value";
    }
    EXPECT_EQ(gd::install_prefetch_policy(), GN_STATUS_INVALID_ARGUMENT);
    std::mt19937_64 rng(1);
    ForwardCase c({{2, 8, 6, 6}, 4}, DType::F32, DType::F32, Layout::Contiguous, true, 1.0, rng);
    EXPECT_EQ(gn_forward(c.x.dl(), c.g(), c.b(), 4, 1e-5, c.y.dl(), nullptr, nullptr, nullptr),
              GN_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::strstr(gn_last_error_message(), "GN_CPU_PREFETCH"), nullptr)
        << gn_last_error_message();
    EXPECT_TRUE(c.y.all_poison()) << "a refused call wrote y";
}

}  // namespace
