// (N, C, spatial...) tensors over caller-owned CPU memory, as DLTensors.
#pragma once

#include <cstdint>
#include <vector>

#include <dlpack/dlpack.h>

namespace groupnorm::support {

// Element strides of (N, C, spatial...) stored contiguous (NC*) or channels-last (N*C: C
// innermost, then the spatial dims, then N). Rank 2 and below are the same either way.
std::vector<int64_t> nc_strides(const std::vector<int64_t> &shape, bool channels_last);

// A DLTensor that owns its shape and stride arrays (no copy of the data).
struct DLTensorView {
    std::vector<int64_t> shape, strides;
    DLTensor dl{};
    DLTensorView(void *data, DLDataType dtype, std::vector<int64_t> nc_shape, bool channels_last);
    DLTensorView(const DLTensorView &) = delete;  // dl points into shape/strides
    DLTensorView &operator=(const DLTensorView &) = delete;
};

}  // namespace groupnorm::support
