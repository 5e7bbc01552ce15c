#include "dispatch.h"

#include <cstdint>
#include <vector>

#include "cuda_interop.h"
#include "errors.h"

namespace groupnorm::detail {
namespace {

halide_type_t halide_type_of(gn_dtype t) {
    switch (t) {
    case GN_DTYPE_F16: return halide_type_t(halide_type_float, 16);
    case GN_DTYPE_BF16: return halide_type_t(halide_type_bfloat, 16);
    default: return halide_type_t(halide_type_float, 32);
    }
}

// Per-thread scratch: the neutral gamma/beta when omitted (filled only when it must grow:
// the values never change), and unrequested statistics.
template <typename T>
const void *constant_param(std::vector<T> &v, int64_t C, T value) {
    if ((int64_t)v.size() < C) v.assign(C, value);
    return v.data();
}

const void *constant_params(gn_dtype type, int64_t C, bool one) {
    thread_local std::vector<uint32_t> f32[2];
    thread_local std::vector<uint16_t> f16[2], bf16[2];
    switch (type) {
    case GN_DTYPE_F16: return constant_param<uint16_t>(f16[one], C, one ? 0x3C00 : 0);
    case GN_DTYPE_BF16: return constant_param<uint16_t>(bf16[one], C, one ? 0x3F80 : 0);
    default: return constant_param<uint32_t>(f32[one], C, one ? 0x3F800000u : 0);
    }
}

// The statistics' view of x (generators: x_rows): a group as one row when its channels are
// contiguous (NC* with channel stride S), so blocks run across its channels and short
// rows (7x7, 8x8) cost no per-channel overhead; otherwise x itself, a row per channel.
View3 stats_rows(const Problem &p) {
    View3 rows = p.x;
    const int64_t group_size = p.C / p.G * p.S;
    if (p.layout == GN_LAYOUT_NCHW && p.x.stride[0] == 1 && p.x.stride[1] == p.S &&
        group_size <= INT32_MAX) {
        rows.extent[0] = group_size;
        rows.extent[1] = p.G;
        rows.stride[1] = group_size;
    }
    return rows;
}

float *scratch_stats(int which, int64_t count) {
    thread_local std::vector<float> stats[2];
    stats[which].resize(count);
    return stats[which].data();
}

}  // namespace

HalideBuffer::HalideBuffer(const void *data, gn_dtype dtype, int dims, const int64_t *extent,
                           const int64_t *stride) {
    buf.host = static_cast<uint8_t *>(const_cast<void *>(data));
    buf.type = halide_type_of(dtype);
    buf.dimensions = dims;
    buf.dim = dim;
    for (int i = 0; i < dims; i++) {
        dim[i] = halide_dimension_t(0, (int32_t)extent[i], (int32_t)stride[i]);
    }
}

namespace {
const int64_t kUnitStride[1] = {1};
}  // namespace

ForwardArgs::ForwardArgs(const Problem &p)
    : param_extent{p.C}, stat_extent{p.G, p.N}, dense_stat_stride{1, p.G}, rows(stats_rows(p)),
      x(p.x.data, p.dtype, 3, p.x.extent, p.x.stride),
      x_rows(p.x.data, p.dtype, 3, rows.extent, rows.stride),
      gamma(p.gamma ? p.gamma : constant_params(p.param_dtype, p.C, true), p.param_dtype, 1,
            param_extent, kUnitStride),
      beta(p.beta ? p.beta : constant_params(p.param_dtype, p.C, false), p.param_dtype, 1,
           param_extent, kUnitStride),
      y(p.y.data, p.dtype, 3, p.y.extent, p.y.stride),
      mean(p.mean ? p.mean : scratch_stats(0, p.N * p.G), GN_DTYPE_F32, 2, stat_extent,
           p.mean ? p.mean_stride : dense_stat_stride),
      rstd(p.rstd ? p.rstd : scratch_stats(1, p.N * p.G), GN_DTYPE_F32, 2, stat_extent,
           p.rstd ? p.rstd_stride : dense_stat_stride) {}

gn_status run_forward(const Variant &v, const Problem &p, float eps, const gn_config *config) {
    // Halide's errors become this thread's message (from_halide_error), on every path.
    install_halide_error_handler();
    ForwardArgs a(p);
    if (v.device != GN_DEVICE_CPU) {
        const gn_config defaults = GN_CONFIG_INIT;
        return run_gpu_forward(v,
                               {&a.x.buf, &a.x_rows.buf, &a.gamma.buf, &a.beta.buf, &a.y.buf,
                                &a.mean.buf, &a.rstd.buf, p.gamma != nullptr, p.beta != nullptr,
                                p.mean != nullptr, p.rstd != nullptr},
                               p, eps, config ? *config : defaults);
    }
    const auto fn = reinterpret_cast<ForwardFn>(v.fn);
    const int code = fn(&a.x.buf, &a.x_rows.buf, &a.gamma.buf, &a.beta.buf, (int32_t)p.G, eps,
                        &a.y.buf, &a.mean.buf, &a.rstd.buf);
    return code == 0 ? GN_STATUS_SUCCESS : from_halide_error(code, v.name);
}

}  // namespace groupnorm::detail
