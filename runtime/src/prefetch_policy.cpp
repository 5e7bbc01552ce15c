#include "prefetch_policy.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "errors.h"

namespace groupnorm::detail {
namespace {

std::atomic<int> chosen{1};       // the environment's (or auto's) choice
std::atomic<int> forced{-1};      // a test's, when >= 0
const char *reason = "auto";
gn_status env_status = GN_STATUS_SUCCESS;

bool intel_cpu() {
#if defined(__x86_64__) || defined(__i386__)
    unsigned max_leaf = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &max_leaf, &ebx, &ecx, &edx)) return false;
    char vendor[13];
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    vendor[12] = 0;
    return std::strcmp(vendor, "GenuineIntel") == 0;
#else
    return false;
#endif
}

void decide() {
    static std::once_flag once;
    std::call_once(once, [] {
        const char *env = std::getenv("GN_CPU_PREFETCH");
        if (env && std::strcmp(env, "on") == 0) {
            chosen = 1;
            reason = "GN_CPU_PREFETCH=on";
        } else if (env && std::strcmp(env, "off") == 0) {
            chosen = 0;
            reason = "GN_CPU_PREFETCH=off";
        } else if (env && *env && std::strcmp(env, "auto") != 0) {
            env_status = GN_STATUS_INVALID_ARGUMENT;  // (the API refuses to run)
        } else {
            const bool intel = intel_cpu();
            chosen = intel ? 0 : 1;
            reason = intel ? "auto: off on Intel CPUs" : "auto: on (not an Intel CPU)";
        }
    });
}

}  // namespace

gn_status install_prefetch_policy() {
    decide();
    if (env_status != GN_STATUS_SUCCESS) {
        return fail(env_status,
                    "environment variable GN_CPU_PREFETCH=%s is not one of on, off, auto",
                    std::getenv("GN_CPU_PREFETCH") ? std::getenv("GN_CPU_PREFETCH") : "");
    }
    return GN_STATUS_SUCCESS;
}

int32_t prefetch_ahead() {
    decide();
    const int f = forced.load(std::memory_order_relaxed);
    return f >= 0 ? f : chosen.load(std::memory_order_relaxed);
}

const char *prefetch_reason() {
    decide();
    return forced.load() >= 0 ? "forced by a test" : reason;
}

void set_prefetch_ahead_for_testing(int value) { forced = value < 0 ? -1 : (value ? 1 : 0); }

}  // namespace groupnorm::detail
