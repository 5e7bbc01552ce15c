// Enumerating the registry in the test suites: its variants of a device and op, and the
// test dtypes and layouts that match a variant's.
#pragma once

#include <vector>

#include "prefetch_policy.h"
#include "registry.h"
#include "test_tensor.h"

namespace gntest {

inline DType test_dtype(groupnorm::detail::gn_dtype t) {
    using namespace groupnorm::detail;
    switch (t) {
    case GN_DTYPE_F32: return DType::F32;
    case GN_DTYPE_F16: return DType::F16;
    case GN_DTYPE_BF16: return DType::BF16;
    case GN_DTYPE_F64: return DType::F64;
    }
    return DType::F32;
}

// For a test of the schedules' prefetching code: the kernels may prefetch ahead in its scope,
// whatever this CPU's policy (runtime/src/prefetch_policy.h, off on Intel CPUs).
struct PrefetchForcedOn {
    PrefetchForcedOn() { groupnorm::detail::set_prefetch_ahead_for_testing(1); }
    ~PrefetchForcedOn() { groupnorm::detail::set_prefetch_ahead_for_testing(-1); }
    PrefetchForcedOn(const PrefetchForcedOn &) = delete;
    PrefetchForcedOn &operator=(const PrefetchForcedOn &) = delete;
};

// The test layouts whose canonical view has the variant's layout.
inline std::vector<Layout> test_layouts(groupnorm::detail::gn_layout l) {
    if (l == groupnorm::detail::GN_LAYOUT_NCHW) {
        return {Layout::Contiguous, Layout::ChannelSlice, Layout::PaddedRowsNchw};
    }
    return {Layout::ChannelsLast, Layout::PaddedBatchNhwc};
}

// Every compiled variant of a device and op (the table is the list: nothing to keep in sync).
inline std::vector<const groupnorm::detail::Variant *> variants_of(
    groupnorm::detail::gn_device device, groupnorm::detail::gn_op op) {
    size_t count = 0;
    const groupnorm::detail::Variant *all = groupnorm::detail::all_variants(&count);
    std::vector<const groupnorm::detail::Variant *> out;
    for (size_t i = 0; i < count; i++) {
        if (all[i].device == device && all[i].op == op) out.push_back(&all[i]);
    }
    return out;
}

}  // namespace gntest
