#include "commands.h"

namespace groupnorm::tools {

DLDataType parse_dtype(const std::string &name) {
    if (name == "f32") return {kDLFloat, 32, 1};
    if (name == "f16") return {kDLFloat, 16, 1};
    if (name == "bf16") return {kDLBfloat, 16, 1};
    throw CliError("unknown dtype '" + name + "' (f32, f16 or bf16)");
}

TensorView::TensorView(void *data, DLDataType dtype, std::vector<int64_t> nc_shape,
                       bool channels_last)
    : shape(std::move(nc_shape)), strides(shape.size()) {
    const int rank = (int)shape.size();
    int64_t stride = 1;
    if (channels_last && rank > 2) {
        // Memory order (N, d1..dk, C): C innermost, then the spatial dims, then N.
        strides[1] = 1;
        stride = shape[1];
        for (int i = rank - 1; i >= 2; i--) {
            strides[i] = stride;
            stride *= shape[i];
        }
        strides[0] = stride;
    } else {
        for (int i = rank - 1; i >= 0; i--) {
            strides[i] = stride;
            stride *= shape[i];
        }
    }
    dl.data = data;
    dl.device = {kDLCPU, 0};
    dl.ndim = rank;
    dl.dtype = dtype;
    dl.shape = shape.data();
    dl.strides = strides.data();
}

}  // namespace groupnorm::tools
