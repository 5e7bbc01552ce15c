#include "dispatch.h"

#include <cstdint>
#include <vector>

#include "cuda_interop.h"
#include "errors.h"
#include "prefetch_policy.h"

namespace groupnorm::detail {
namespace {

halide_type_t halide_type_of(gn_dtype t) {
    switch (t) {
    case GN_DTYPE_F16: return halide_type_t(halide_type_float, 16);
    case GN_DTYPE_BF16: return halide_type_t(halide_type_bfloat, 16);
    case GN_DTYPE_F64: return halide_type_t(halide_type_float, 64);
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
    thread_local std::vector<uint64_t> f64[2];
    switch (type) {
    case GN_DTYPE_F64: return constant_param<uint64_t>(f64[one], C, one ? 0x3FF0000000000000u : 0);
    case GN_DTYPE_F16: return constant_param<uint16_t>(f16[one], C, one ? 0x3C00 : 0);
    case GN_DTYPE_BF16: return constant_param<uint16_t>(bf16[one], C, one ? 0x3F80 : 0);
    default: return constant_param<uint32_t>(f32[one], C, one ? 0x3F800000u : 0);
    }
}

// The statistics' view of x (generators: x_rows): a group as one row when its channels are
// contiguous (NC* with channel stride S), so blocks run across its channels and short
// rows (7x7, 8x8) cost no per-channel overhead; otherwise x itself, a row per channel.
// With a residual input the rows are x's channels (the variant adds skip by channel).
View3 stats_rows(const Problem &p) {
    View3 rows = p.x;
    const int64_t group_size = p.C / p.G * p.S;
    if (p.op != GN_OP_FORWARD_RESIDUAL && p.layout == GN_LAYOUT_NCHW && p.x.stride[0] == 1 && p.x.stride[1] == p.S &&
        group_size <= INT32_MAX) {
        rows.extent[0] = group_size;
        rows.extent[1] = p.G;
        rows.stride[1] = group_size;
    }
    return rows;
}

// 8 bytes an element: room for either statistics dtype.
void *scratch_stats(int which, int64_t count) {
    thread_local std::vector<uint64_t> stats[2];
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
      mean(p.mean ? p.mean : scratch_stats(0, p.N * p.G), stat_dtype(p.dtype), 2, stat_extent,
           p.mean ? p.mean_stride : dense_stat_stride),
      rstd(p.rstd ? p.rstd : scratch_stats(1, p.N * p.G), stat_dtype(p.dtype), 2, stat_extent,
           p.rstd ? p.rstd_stride : dense_stat_stride) {}

ResidualArgs::ResidualArgs(const Problem &p)
    : param_extent{p.C}, nc_extent{p.C, p.N}, zero_nc_stride{1, 0},
      sum_extent{p.sum.data ? p.S : 0, p.C, p.N},
      skip(p.skip.data ? p.skip.data : p.x.data, p.dtype, 3, p.x.extent,
           p.skip.data ? p.skip.stride : p.x.stride),
      skip_nc(p.skip_nc ? p.skip_nc : constant_params(p.dtype, p.C, false), p.dtype, 2,
              nc_extent, p.skip_nc ? p.skip_nc_stride : zero_nc_stride),
      skip_bias(p.skip_bias ? p.skip_bias : constant_params(p.param_dtype, p.C, false),
                p.param_dtype, 1, param_extent, kUnitStride),
      sum(p.sum.data ? p.sum.data : p.y.data, p.dtype, 3, sum_extent,
          p.sum.data ? p.sum.stride : p.y.stride) {}

gn_status run_forward(const Variant &v, const Problem &p, double eps, const gn_config *config) {
    // Halide's errors become this thread's message (from_halide_error), on every path.
    install_halide_error_handler();
    ForwardArgs a(p);
    const int32_t prefetch = prefetch_ahead();
    int code = 0;
    if (v.is_gpu()) {
        const gn_config defaults = GN_CONFIG_INIT;
        const auto fn = reinterpret_cast<ForwardGpuFn>(v.fn);
        return run_on_gpu(v, p, config ? *config : defaults,
                          {{&a.x.buf, true, true}, {&a.x_rows.buf, true, true},
                           {&a.gamma.buf, p.gamma != nullptr, true},
                           {&a.beta.buf, p.beta != nullptr, true}, {&a.y.buf, true, false},
                           {&a.mean.buf, p.mean != nullptr, false},
                           {&a.rstd.buf, p.rstd != nullptr, false}},
                          [&](const void *uc) {
                              return fn(uc, &a.x.buf, &a.x_rows.buf, &a.gamma.buf, &a.beta.buf,
                                        (int32_t)p.G, (float)eps, p.activation, prefetch,
                                        &a.y.buf, &a.mean.buf, &a.rstd.buf);
                          });
    }
    if (v.op == GN_OP_FORWARD_RESIDUAL) {
        ResidualArgs r(p);
        const auto fn = reinterpret_cast<ForwardResidualFn>(v.fn);
        code = fn(&a.x.buf, &a.x_rows.buf, &a.gamma.buf, &a.beta.buf, (int32_t)p.G, (float)eps,
                  p.activation, prefetch, &r.skip.buf, &r.skip_nc.buf, &r.skip_bias.buf,
                  p.skip.data != nullptr, &a.y.buf, &a.mean.buf, &a.rstd.buf, &r.sum.buf);
    } else if (v.dtype == GN_DTYPE_F64) {
        const auto fn = reinterpret_cast<ForwardF64Fn>(v.fn);
        code = fn(&a.x.buf, &a.x_rows.buf, &a.gamma.buf, &a.beta.buf, (int32_t)p.G, eps,
                  p.activation, prefetch, &a.y.buf, &a.mean.buf, &a.rstd.buf);
    } else {
        const auto fn = reinterpret_cast<ForwardFn>(v.fn);
        code = fn(&a.x.buf, &a.x_rows.buf, &a.gamma.buf, &a.beta.buf, (int32_t)p.G, (float)eps,
                  p.activation, prefetch, &a.y.buf, &a.mean.buf, &a.rstd.buf);
    }
    return code == 0 ? GN_STATUS_SUCCESS : from_halide_error(code, v.name);
}

namespace {
// dgamma/dbeta nobody asked for: per-thread scratch of C parameters (8 bytes each: room
// for any dtype).
void *scratch_params(int which, int64_t C) {
    thread_local std::vector<uint64_t> params[2];
    params[which].resize(C);
    return params[which].data();
}
}  // namespace

BackwardArgs::BackwardArgs(const Problem &p)
    : param_extent{p.C}, stat_stride{{p.mean_stride[0], p.mean_stride[1]},
                                     {p.rstd_stride[0], p.rstd_stride[1]}},
      stat_extent{p.G, p.N}, dx_extent{p.dx.data ? p.x.extent[0] : 0, p.C, p.N},
      dy(p.dy.data, p.dtype, 3, p.dy.extent, p.dy.stride),
      x(p.x.data, p.dtype, 3, p.x.extent, p.x.stride),
      mean(p.mean, stat_dtype(p.dtype), 2, stat_extent, stat_stride[0]),
      rstd(p.rstd, stat_dtype(p.dtype), 2, stat_extent, stat_stride[1]),
      gamma(p.gamma ? p.gamma : constant_params(p.param_dtype, p.C, true), p.param_dtype, 1,
            param_extent, kUnitStride),
      beta(p.beta ? p.beta : constant_params(p.param_dtype, p.C, false), p.param_dtype, 1,
           param_extent, kUnitStride),
      // Not requested: spatial extent 0 (the variant then computes dgamma and dbeta only),
      // at x's address, never written.
      dx(p.dx.data ? p.dx.data : p.x.data, p.dtype, 3, dx_extent,
         p.dx.data ? p.dx.stride : p.x.stride),
      dgamma(p.dgamma ? p.dgamma : scratch_params(0, p.C), p.param_dtype, 1, param_extent,
             kUnitStride),
      dbeta(p.dbeta ? p.dbeta : scratch_params(1, p.C), p.param_dtype, 1, param_extent,
            kUnitStride) {}

gn_status run_backward(const Variant &v, const Problem &p, const gn_config *config) {
    install_halide_error_handler();
    BackwardArgs a(p);
    const int32_t prefetch = prefetch_ahead();
    if (v.is_gpu()) {
        const gn_config defaults = GN_CONFIG_INIT;
        const auto fn = reinterpret_cast<BackwardGpuFn>(v.fn);
        return run_on_gpu(v, p, config ? *config : defaults,
                          {{&a.dy.buf, true, true}, {&a.x.buf, true, true},
                           {&a.mean.buf, true, true}, {&a.rstd.buf, true, true},
                           {&a.gamma.buf, p.gamma != nullptr, true},
                           {&a.beta.buf, p.beta != nullptr, true},
                           {&a.dx.buf, p.dx.data != nullptr, false},
                           {&a.dgamma.buf, p.dgamma != nullptr, false},
                           {&a.dbeta.buf, p.dbeta != nullptr, false}},
                          [&](const void *uc) {
                              return fn(uc, &a.dy.buf, &a.x.buf, &a.mean.buf, &a.rstd.buf,
                                        &a.gamma.buf, &a.beta.buf, (int32_t)p.G, p.activation,
                                        prefetch, &a.dx.buf, &a.dgamma.buf, &a.dbeta.buf);
                          });
    }
    const auto fn = reinterpret_cast<BackwardFn>(v.fn);
    const int code = fn(&a.dy.buf, &a.x.buf, &a.mean.buf, &a.rstd.buf, &a.gamma.buf,
                        &a.beta.buf, (int32_t)p.G, p.activation, prefetch, &a.dx.buf,
                        &a.dgamma.buf, &a.dbeta.buf);
    return code == 0 ? GN_STATUS_SUCCESS : from_halide_error(code, v.name);
}

}  // namespace groupnorm::detail
