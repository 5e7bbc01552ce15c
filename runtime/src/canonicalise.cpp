#include "canonicalise.h"

#include <climits>
#include <cmath>
#include <cstdio>
#include <string>

#include "errors.h"
#include "cuda_interop.h"

namespace groupnorm::detail {

const char *dtype_name(gn_dtype t) {
    switch (t) {
    case GN_DTYPE_F32: return "float32";
    case GN_DTYPE_F16: return "float16";
    case GN_DTYPE_BF16: return "bfloat16";
    }
    return "?";
}

const char *op_name(gn_op op) { return op == GN_OP_FORWARD ? "forward" : "backward"; }

const char *layout_name(gn_layout l) { return l == GN_LAYOUT_NCHW ? "nchw" : "nhwc"; }

const char *device_name(gn_device d) {
    return d == GN_DEVICE_CUDA ? "CUDA" : d == GN_DEVICE_OPENCL ? "OpenCL" : "CPU";
}

namespace {

constexpr int kMaxRank = 32;

bool to_dtype(DLDataType t, gn_dtype *out) {
    if (t.lanes != 1) return false;
    if (t.code == kDLFloat && t.bits == 32) *out = GN_DTYPE_F32;
    else if (t.code == kDLFloat && t.bits == 16) *out = GN_DTYPE_F16;
    else if (t.code == kDLBfloat && t.bits == 16) *out = GN_DTYPE_BF16;
    else return false;
    return true;
}

std::string describe_dtype(DLDataType t) {
    const char *code = t.code == kDLFloat ? "float" : t.code == kDLBfloat ? "bfloat"
                       : t.code == kDLInt ? "int" : t.code == kDLUInt ? "uint" : "code";
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%s%d%s", code, (int)t.bits,
                  t.lanes == 1 ? "" : (" x" + std::to_string(t.lanes)).c_str());
    return buf;
}

std::string describe_shape(const DLTensor *t) {
    std::string s = "(";
    for (int i = 0; i < t->ndim; i++) {
        s += std::to_string(t->shape[i]);
        if (i + 1 < t->ndim) s += ", ";
    }
    return s + (t->ndim == 1 ? ",)" : ")");
}

// The device a tensor lives on: host memory (pinned CUDA host memory included) or a CUDA
// device (managed memory is used as device memory).
gn_status device_of(const DLTensor *t, const char *name, gn_device *device, int *id) {
    switch (t->device.device_type) {
    case kDLCPU:
    case kDLCUDAHost:
        *device = GN_DEVICE_CPU;
        *id = 0;
        return GN_STATUS_SUCCESS;
    case kDLCUDA:
    case kDLCUDAManaged: {
        // An unusable device is reported before any mixing of devices: it is the root cause.
        const char *why = cuda_unavailable_reason(t->device.device_id);
        if (why) {
            return fail(GN_STATUS_DEVICE_UNAVAILABLE, "%s is a CUDA tensor, but %s", name, why);
        }
        *device = GN_DEVICE_CUDA;
        *id = t->device.device_id;
        return GN_STATUS_SUCCESS;
    }
    default:
        return fail(GN_STATUS_DEVICE_UNAVAILABLE,
                    "%s is on DLPack device type %d, which this build does not support", name,
                    (int)t->device.device_type);
    }
}

// Every tensor must be on x's device (recorded in p by validate_forward).
gn_status check_device(const DLTensor *t, const char *name, const Problem &p) {
    gn_device device = GN_DEVICE_CPU;
    int id = 0;
    if (gn_status st = device_of(t, name, &device, &id)) return st;
    if (device != p.device || id != p.device_id) {
        return fail(GN_STATUS_INVALID_ARGUMENT,
                    "%s is on %s device %d but x is on %s device %d: all tensors must be on "
                    "x's device",
                    name, device_name(device), id, device_name(p.device), p.device_id);
    }
    return GN_STATUS_SUCCESS;
}

// Shape and strides in elements (compact row-major when strides is NULL), checked.
gn_status read_geometry(const DLTensor *t, const char *name, int64_t *strides, int64_t *numel) {
    if (t->ndim < 0 || t->ndim > kMaxRank || (t->ndim > 0 && !t->shape)) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s has an invalid rank %d", name, t->ndim);
    }
    int64_t count = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] < 0) {
            return fail(GN_STATUS_INVALID_ARGUMENT, "%s has a negative extent in dimension %d",
                        name, i);
        }
        strides[i] = t->strides ? t->strides[i] : count;
        if (strides[i] < 0) {
            return fail(GN_STATUS_UNSUPPORTED, "%s has a negative stride in dimension %d",
                        name, i);
        }
        if (t->shape[i] != 0 && count > INT64_MAX / t->shape[i]) {
            return fail(GN_STATUS_INVALID_ARGUMENT,
                        "%s has more elements than 64-bit index math can hold", name);
        }
        count *= t->shape[i];
    }
    if (count > 0 && !t->data) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s->data is NULL", name);
    }
    *numel = count;
    return GN_STATUS_SUCCESS;
}

bool fits_int32(int64_t v) { return v >= 0 && v <= INT32_MAX; }

// The (s, c, n) view of an (N, C, *) tensor in the given layout, or UNSUPPORTED.
// want_layout < 0 lets the tensor choose its own.
gn_status make_view(const DLTensor *t, const char *name, int want_layout, View3 *view,
                    gn_layout *layout) {
    int64_t strides[kMaxRank], numel = 0;
    if (gn_status st = read_geometry(t, name, strides, &numel)) return st;
    const int64_t N = t->shape[0], C = t->shape[1];
    int64_t S = 1;
    // Collapse the spatial dims (extent-1 dims have meaningless strides) into one.
    bool spatial_dense = true;
    int64_t inner_stride = -1, next_stride = -1;
    for (int i = t->ndim - 1; i >= 2; i--) {
        S *= t->shape[i];
        if (t->shape[i] == 1) continue;
        if (inner_stride < 0) inner_stride = strides[i];
        else if (strides[i] != next_stride) spatial_dense = false;
        next_stride = strides[i] * t->shape[i];
    }
    const bool s_unit = S <= 1 || (spatial_dense && inner_stride == 1);
    const bool c_unit = C <= 1 || strides[1] == 1;
    const bool nchw_ok = s_unit;
    const bool nhwc_ok = c_unit && spatial_dense;
    gn_layout chosen;
    if (want_layout >= 0) {
        chosen = (gn_layout)want_layout;
        if (!(chosen == GN_LAYOUT_NCHW ? nchw_ok : nhwc_ok)) {
            return fail(GN_STATUS_UNSUPPORTED,
                        "%s must have x's layout (%s: %s dense), but its strides differ", name,
                        layout_name(chosen), chosen == GN_LAYOUT_NCHW ? "spatial" : "channel");
        }
    } else if (S <= 1 && nhwc_ok) {
        chosen = GN_LAYOUT_NHWC;  // (N, C) data: vectorize over the dense channels
    } else if (nchw_ok) {
        chosen = GN_LAYOUT_NCHW;
    } else if (nhwc_ok) {
        chosen = GN_LAYOUT_NHWC;
    } else {
        return fail(GN_STATUS_UNSUPPORTED,
                    "%s strides are neither contiguous NC* (spatial block dense) nor "
                    "channels-last N*C (channels dense)",
                    name);
    }
    view->data = static_cast<char *>(t->data) + t->byte_offset;
    view->extent[0] = S;
    view->extent[1] = C;
    view->extent[2] = N;
    view->stride[0] = chosen == GN_LAYOUT_NCHW ? 1 : (S > 1 ? inner_stride : C);
    view->stride[1] = C > 1 ? strides[1] : (chosen == GN_LAYOUT_NCHW ? S : 1);
    view->stride[2] = strides[0];
    for (int i = 0; i < 3; i++) {
        if (!fits_int32(view->extent[i]) || !fits_int32(view->stride[i])) {
            return fail(GN_STATUS_UNSUPPORTED,
                        "%s is too large: the kernels take 32-bit extents and strides", name);
        }
    }
    *layout = chosen;
    return GN_STATUS_SUCCESS;
}

// Byte range [begin, end) a view touches.
void byte_range(const View3 &v, int elem_bytes, uintptr_t *begin, uintptr_t *end) {
    int64_t last = 0;
    for (int i = 0; i < 3; i++) last += (v.extent[i] - 1) * v.stride[i];
    *begin = reinterpret_cast<uintptr_t>(v.data);
    *end = *begin + (uintptr_t)((last + 1) * elem_bytes);
}

gn_status check_param(const DLTensor *p, const char *name, int64_t C, gn_dtype x_dtype,
                      gn_dtype *dtype, const Problem &problem) {
    int64_t strides[kMaxRank], numel = 0;
    if (gn_status st = check_device(p, name, problem)) return st;
    if (p->ndim != 1) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s must have shape (C,) = (%lld,), got rank %d",
                    name, (long long)C, p->ndim);
    }
    if (gn_status st = read_geometry(p, name, strides, &numel)) return st;
    if (p->shape[0] != C) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s must have shape (C,) = (%lld,), got %s", name,
                    (long long)C, describe_shape(p).c_str());
    }
    if (!to_dtype(p->dtype, dtype) || (*dtype != x_dtype && *dtype != GN_DTYPE_F32)) {
        return fail(GN_STATUS_UNSUPPORTED, "%s has dtype %s; it must be x's dtype (%s) or float32",
                    name, describe_dtype(p->dtype).c_str(), dtype_name(x_dtype));
    }
    if (C > 1 && strides[0] != 1) {
        return fail(GN_STATUS_UNSUPPORTED, "%s must be contiguous (stride 1), got stride %lld",
                    name, (long long)strides[0]);
    }
    return GN_STATUS_SUCCESS;
}

gn_status check_stat(const DLTensor *t, const char *name, int64_t N, int64_t G, float **data,
                     int64_t *gn_strides, const Problem &problem) {
    int64_t strides[kMaxRank], numel = 0;
    if (gn_status st = check_device(t, name, problem)) return st;
    if (gn_status st = read_geometry(t, name, strides, &numel)) return st;
    if (t->ndim != 2 || t->shape[0] != N || t->shape[1] != G) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s must have shape (N, num_groups) = (%lld, %lld), got %s",
                    name, (long long)N, (long long)G, describe_shape(t).c_str());
    }
    if (t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->dtype.lanes != 1) {
        return fail(GN_STATUS_UNSUPPORTED, "%s must be float32, got %s", name,
                    describe_dtype(t->dtype).c_str());
    }
    if (!fits_int32(strides[0]) || !fits_int32(strides[1])) {
        return fail(GN_STATUS_UNSUPPORTED, "%s strides do not fit 32 bits", name);
    }
    *data = reinterpret_cast<float *>(static_cast<char *>(t->data) + t->byte_offset);
    gn_strides[0] = strides[1];  // g
    gn_strides[1] = strides[0];  // n
    return GN_STATUS_SUCCESS;
}

}  // namespace

namespace {

// x's device, rank, dtype, geometry, C, num_groups and S into p (every op's main input).
gn_status check_input(const DLTensor *x, int64_t num_groups, Problem *p) {
    if (gn_status st = device_of(x, "x", &p->device, &p->device_id)) return st;
    if (x->ndim < 2) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "x must have rank >= 2 (N, C, *), got rank %d",
                    x->ndim);
    }
    if (!to_dtype(x->dtype, &p->dtype)) {
        return fail(GN_STATUS_UNSUPPORTED,
                    "x has dtype %s; supported: float32, float16, bfloat16",
                    describe_dtype(x->dtype).c_str());
    }
    int64_t strides[kMaxRank], numel = 0;
    if (gn_status st = read_geometry(x, "x", strides, &numel)) return st;
    p->N = x->shape[0];
    p->C = x->shape[1];
    if (p->C == 0) return fail(GN_STATUS_INVALID_ARGUMENT, "x has C = 0 channels");
    if (num_groups <= 0) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "num_groups must be positive, got %lld",
                    (long long)num_groups);
    }
    if (p->C % num_groups != 0) {
        return fail(GN_STATUS_INVALID_ARGUMENT,
                    "num_groups (%lld) must divide the channel count C (%lld)",
                    (long long)num_groups, (long long)p->C);
    }
    p->G = num_groups;
    // S from the spatial extents directly: numel is 0 when N is 0, and then read_geometry's
    // overflow check saw no spatial product.
    p->S = 1;
    for (int i = 2; i < x->ndim; i++) {
        if (x->shape[i] != 0 && p->S > INT64_MAX / x->shape[i]) {
            return fail(GN_STATUS_INVALID_ARGUMENT,
                        "x has more elements than 64-bit index math can hold");
        }
        p->S *= x->shape[i];
    }
    return GN_STATUS_SUCCESS;
}

// t (y, dy, dx) must be on x's device with x's shape and dtype.
gn_status check_like_x(const DLTensor *t, const char *name, const DLTensor *x, const Problem &p) {
    if (gn_status st = check_device(t, name, p)) return st;
    bool same = t->ndim == x->ndim;
    for (int i = 0; same && i < x->ndim; i++) same = t->shape[i] == x->shape[i];
    if (!same) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s must have x's shape %s, got %s", name,
                    describe_shape(x).c_str(), describe_shape(t).c_str());
    }
    gn_dtype dtype;
    if (!to_dtype(t->dtype, &dtype) || dtype != p.dtype) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s must have x's dtype %s, got %s", name,
                    dtype_name(p.dtype), describe_dtype(t->dtype).c_str());
    }
    return GN_STATUS_SUCCESS;
}

bool same_view(const View3 &a, const View3 &b) {
    return a.data == b.data && a.stride[0] == b.stride[0] && a.stride[1] == b.stride[1] &&
           a.stride[2] == b.stride[2];
}

// An output view must not overlap itself, nor `other` unless it is `other` exactly (and
// that is allowed).
gn_status check_output_view(const View3 &out, const char *name, const View3 &other,
                            const char *other_name, bool may_be_other, int elem) {
    for (int i = 0; i < 3; i++) {
        if (out.extent[i] > 1 && out.stride[i] == 0) {
            return fail(GN_STATUS_INVALID_ARGUMENT, "%s has a zero stride: its elements overlap",
                        name);
        }
    }
    uintptr_t ob, oe, xb, xe;
    byte_range(out, elem, &ob, &oe);
    byte_range(other, elem, &xb, &xe);
    const bool identical = may_be_other && same_view(out, other);
    if (ob < xe && xb < oe && !identical) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s overlaps %s without being %s itself", name,
                    other_name, other_name);
    }
    return GN_STATUS_SUCCESS;
}

}  // namespace

gn_status validate_forward(const DLTensor *x, const DLTensor *gamma, const DLTensor *beta,
                           int64_t num_groups, double eps, const DLTensor *y,
                           const DLTensor *mean, const DLTensor *rstd, Problem *p) {
    p->op = GN_OP_FORWARD;
    if (!x) return fail(GN_STATUS_INVALID_ARGUMENT, "x is NULL");
    if (!y) return fail(GN_STATUS_INVALID_ARGUMENT, "y is NULL");
    if (gn_status st = check_input(x, num_groups, p)) return st;
    if (!std::isfinite(eps) || eps < 0) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "eps must be finite and >= 0, got %g", eps);
    }
    if (gn_status st = check_like_x(y, "y", x, *p)) return st;

    gn_dtype gamma_dtype = GN_DTYPE_F32, beta_dtype = GN_DTYPE_F32;
    if (gamma) {
        if (gn_status st = check_param(gamma, "gamma", p->C, p->dtype, &gamma_dtype, *p)) return st;
    }
    if (beta) {
        if (gn_status st = check_param(beta, "beta", p->C, p->dtype, &beta_dtype, *p)) return st;
    }
    if (gamma && beta && gamma_dtype != beta_dtype) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "gamma (%s) and beta (%s) must have one dtype",
                    dtype_name(gamma_dtype), dtype_name(beta_dtype));
    }
    p->param_dtype = gamma ? gamma_dtype : beta_dtype;
    p->gamma = gamma ? static_cast<const char *>(gamma->data) + gamma->byte_offset : nullptr;
    p->beta = beta ? static_cast<const char *>(beta->data) + beta->byte_offset : nullptr;

    if (mean) {
        if (gn_status st = check_stat(mean, "mean", p->N, p->G, &p->mean, p->mean_stride, *p)) return st;
    }
    if (rstd) {
        if (gn_status st = check_stat(rstd, "rstd", p->N, p->G, &p->rstd, p->rstd_stride, *p)) return st;
    }

    if (p->empty()) return GN_STATUS_SUCCESS;  // nothing will be read or written

    gn_layout y_layout;
    if (gn_status st = make_view(x, "x", -1, &p->x, &p->layout)) return st;
    if (gn_status st = make_view(y, "y", p->layout, &p->y, &y_layout)) return st;
    return check_output_view(p->y, "y", p->x, "x", /*may_be_other=*/true, x->dtype.bits / 8);
}

gn_status validate_backward(const DLTensor *dy, const DLTensor *x, const DLTensor *mean,
                            const DLTensor *rstd, const DLTensor *gamma, int64_t num_groups,
                            const DLTensor *dx, const DLTensor *dgamma, const DLTensor *dbeta,
                            Problem *p) {
    p->op = GN_OP_BACKWARD;
    if (!dy) return fail(GN_STATUS_INVALID_ARGUMENT, "dy is NULL");
    if (!x) return fail(GN_STATUS_INVALID_ARGUMENT, "x is NULL");
    if (!mean) return fail(GN_STATUS_INVALID_ARGUMENT, "mean is NULL (gn_forward's mean output)");
    if (!rstd) return fail(GN_STATUS_INVALID_ARGUMENT, "rstd is NULL (gn_forward's rstd output)");
    if (gn_status st = check_input(x, num_groups, p)) return st;
    if (gn_status st = check_like_x(dy, "dy", x, *p)) return st;
    if (dx) {
        if (gn_status st = check_like_x(dx, "dx", x, *p)) return st;
    }
    if (gn_status st = check_stat(mean, "mean", p->N, p->G, &p->mean, p->mean_stride, *p)) return st;
    if (gn_status st = check_stat(rstd, "rstd", p->N, p->G, &p->rstd, p->rstd_stride, *p)) return st;

    // gamma's dtype is the parameters' (dgamma and dbeta have it); float32 without gamma.
    gn_dtype param_dtype = GN_DTYPE_F32;
    if (gamma) {
        if (gn_status st = check_param(gamma, "gamma", p->C, p->dtype, &param_dtype, *p)) return st;
    }
    for (auto [t, name] : {std::pair{dgamma, "dgamma"}, std::pair{dbeta, "dbeta"}}) {
        if (!t) continue;
        gn_dtype dtype;
        if (gn_status st = check_param(t, name, p->C, p->dtype, &dtype, *p)) return st;
        if (gamma && dtype != param_dtype) {
            return fail(GN_STATUS_INVALID_ARGUMENT, "%s must have gamma's dtype %s, got %s",
                        name, dtype_name(param_dtype), dtype_name(dtype));
        }
        if (!gamma) param_dtype = dtype;
    }
    if (dgamma && dbeta && !gamma) {
        gn_dtype a, b;
        to_dtype(dgamma->dtype, &a);
        to_dtype(dbeta->dtype, &b);
        if (a != b) return fail(GN_STATUS_INVALID_ARGUMENT, "dgamma and dbeta must have one dtype");
    }
    p->param_dtype = param_dtype;
    p->gamma = gamma ? static_cast<const char *>(gamma->data) + gamma->byte_offset : nullptr;
    p->dgamma = dgamma ? static_cast<char *>(dgamma->data) + dgamma->byte_offset : nullptr;
    p->dbeta = dbeta ? static_cast<char *>(dbeta->data) + dbeta->byte_offset : nullptr;

    if (p->empty()) return GN_STATUS_SUCCESS;  // dgamma and dbeta are zero, nothing else written

    gn_layout layout;
    if (gn_status st = make_view(x, "x", -1, &p->x, &p->layout)) return st;
    if (gn_status st = make_view(dy, "dy", p->layout, &p->dy, &layout)) return st;
    if (!dx) return GN_STATUS_SUCCESS;
    if (gn_status st = make_view(dx, "dx", p->layout, &p->dx, &layout)) return st;
    const int elem = x->dtype.bits / 8;
    if (gn_status st = check_output_view(p->dx, "dx", p->dy, "dy", /*may_be_other=*/true, elem)) {
        return st;
    }
    return check_output_view(p->dx, "dx", p->x, "x", /*may_be_other=*/false, elem);
}

}  // namespace groupnorm::detail
