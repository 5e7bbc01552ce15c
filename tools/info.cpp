// `groupnorm info`: CPU features, the ISA cap, the compiled variants, and for a given
// problem each variant's answer, the one that serves it and its ISA level; nothing runs.
#include <cstdio>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "canonicalise.h"
#include "commands.h"
#include "registry.h"
#include "groupnorm/groupnorm.h"
#include "isa.h"
#include "prefetch_policy.h"
#include "support/cpu.h"
#include "support/layout.h"

namespace groupnorm::tools {
namespace {

using namespace groupnorm::detail;

void print_cpu_features() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    struct Feature { const char *name; bool on; };
    const Feature features[] = {
        {"sse4.1", (bool)__builtin_cpu_supports("sse4.1")},
        {"avx2", (bool)__builtin_cpu_supports("avx2")},
        {"fma", (bool)__builtin_cpu_supports("fma")},
        {"f16c", groupnorm::support::cpu_has_f16c()},
        {"avx512f", (bool)__builtin_cpu_supports("avx512f")},
        {"avx512bw", (bool)__builtin_cpu_supports("avx512bw")},
        {"avx512dq", (bool)__builtin_cpu_supports("avx512dq")},
        {"avx512vl", (bool)__builtin_cpu_supports("avx512vl")},
    };
    std::printf("CPU features:");
    for (const Feature &f : features) std::printf(" %s%s", f.on ? "+" : "-", f.name);
    std::printf("\n");
#else
    std::printf("CPU features: (reported for x86 only)\n");
#endif
}

void print_variants() {
    size_t count = 0;
    const Variant *variants = all_variants(&count);
    size_t width = 4;
    for (size_t i = 0; i < count; i++) width = std::max(width, std::strlen(variants[i].name));
    std::printf("compiled variants (%zu, in lookup order):\n", count);
    std::printf("  %-*s %-8s %-9s %-6s %-9s %-7s %-15s %s\n", (int)width, "name", "op", "dtype",
                "layout", "gamma", "family", "class", "tuning");
    for (size_t i = 0; i < count; i++) {
        const Variant &v = variants[i];
        std::printf("  %-*s %-8s %-9s %-6s %-9s %-7s %-15s %s\n", (int)width, v.name,
                    op_name(v.op), dtype_name(v.dtype), layout_name(v.layout),
                    dtype_name(v.param_dtype), v.family, v.shape_class,
                    *v.tuning ? v.tuning : "defaults");
    }
}

CliError library_error(gn_status st) {
    return CliError(std::string(gn_status_string(st)) + ": " + gn_last_error_message());
}

// Which variant serves the shape and why the others do not; nothing is allocated or run
// (validation reads shapes and strides only: the tensor's address is a placeholder).
void query_shape(const InfoOptions &opts) {
    const DLDataType dtype = parse_dtype(opts.dtype);
    support::DLTensorView x(reinterpret_cast<void *>(uintptr_t(64)), dtype, opts.shape,
                            opts.channels_last);

    std::printf("problem: shape (");
    for (size_t i = 0; i < opts.shape.size(); i++) {
        std::printf("%s%lld", i ? ", " : "", (long long)opts.shape[i]);
    }
    std::printf("), groups %lld, %s, %s, no gamma/beta (%s params)\n", (long long)opts.groups,
                opts.dtype.c_str(), opts.channels_last ? "channels-last" : "contiguous",
                dtype.bits == 64 ? "float64" : "float32");

    Problem problem;
    if (gn_status st = validate_forward(&x.dl, nullptr, nullptr, opts.groups, 1e-5, &x.dl,
                                        nullptr, nullptr, &problem)) {
        throw library_error(st);
    }
    if (problem.empty()) {
        std::printf("  empty tensor: gn_forward returns at once, no variant runs\n");
        return;
    }
    std::printf("  canonical view: S %lld, C %lld, N %lld, %s\n", (long long)problem.S,
                (long long)problem.C, (long long)problem.N, layout_name(problem.layout));
    size_t count = 0;
    const Variant *variants = all_variants(&count);
    const Variant *chosen = nullptr;
    size_t width = 4;
    for (size_t i = 0; i < count; i++) width = std::max(width, std::strlen(variants[i].name));
    for (size_t i = 0; i < count; i++) {
        std::string why;
        const bool ok = accepts(variants[i], problem, &why);
        if (ok && !chosen) chosen = &variants[i];
        std::printf("  %-*s %s\n", (int)width, variants[i].name,
                    ok ? (chosen == &variants[i] ? "SERVES (the first that accepts)"
                                                 : "accepts (an earlier one serves)")
                       : ("no: " + why).c_str());
    }
    if (!chosen) throw library_error(GN_STATUS_UNSUPPORTED);
    std::printf("  served by: %s (shape class %s, tuning %s)\n", chosen->name, chosen->shape_class,
                *chosen->tuning ? chosen->tuning : "defaults");
    if (!chosen->is_gpu()) {
        std::printf("  ISA level its multi-target dispatch will select: %s\n",
                    cpu_isa_name(expected_cpu_isa()));
    }
}

}  // namespace

int info_command(const InfoOptions &opts) {
    std::printf("groupnorm %d.%d\n", GN_VERSION_MAJOR, GN_VERSION_MINOR);
    print_cpu_features();
    const char *env = std::getenv("GN_CPU_ISA");
    if (gn_status st = install_cpu_isa_cap()) throw library_error(st);
    std::printf("GN_CPU_ISA: %s (cap in force: %s)\n", env ? env : "unset",
                cpu_isa_name(cpu_isa_cap()));
    if (gn_status st = install_prefetch_policy()) throw library_error(st);
    std::printf("GN_CPU_PREFETCH: prefetch ahead %s (%s)\n", prefetch_ahead() ? "on" : "off",
                prefetch_reason());
    print_variants();
    if (!opts.shape.empty()) query_shape(opts);
    return 0;
}

}  // namespace groupnorm::tools
