#include "support/layout.h"

#include <utility>

namespace groupnorm::support {

std::vector<int64_t> nc_strides(const std::vector<int64_t> &shape, bool channels_last) {
    const int rank = int(shape.size());
    std::vector<int64_t> strides(shape.size());
    int64_t stride = 1;
    if (channels_last && rank > 2) {
        strides[1] = 1;
        stride = shape[1];
        for (int i = rank - 1; i >= 2; i--) {
            strides[i] = stride;
            stride *= shape[i];
        }
        strides[0] = stride;
        return strides;
    }
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = stride;
        stride *= shape[i];
    }
    return strides;
}

DLTensorView::DLTensorView(void *data, DLDataType dtype, std::vector<int64_t> nc_shape,
                           bool channels_last)
    : shape(std::move(nc_shape)), strides(nc_strides(shape, channels_last)) {
    dl.data = data;
    dl.device = {kDLCPU, 0};
    dl.ndim = int32_t(shape.size());
    dl.dtype = dtype;
    dl.shape = shape.data();
    dl.strides = strides.data();
}

}  // namespace groupnorm::support
