#include "canonicalise.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <initializer_list>
#include <utility>
#include <vector>

#include "errors.h"
#include "cuda_interop.h"

namespace groupnorm::detail {

const char *dtype_name(gn_dtype t) {
    switch (t) {
    case GN_DTYPE_F32: return "float32";
    case GN_DTYPE_F16: return "float16";
    case GN_DTYPE_BF16: return "bfloat16";
    case GN_DTYPE_F64: return "float64";
    }
    return "?";
}

int dtype_bytes(gn_dtype t) { return t == GN_DTYPE_F64 ? 8 : t == GN_DTYPE_F32 ? 4 : 2; }

gn_dtype stat_dtype(gn_dtype x_dtype) {
    return x_dtype == GN_DTYPE_F64 ? GN_DTYPE_F64 : GN_DTYPE_F32;
}

const char *op_name(gn_op op) {
    return op == GN_OP_FORWARD            ? "forward"
           : op == GN_OP_FORWARD_RESIDUAL ? "residual forward"
                                          : "backward";
}

const char *layout_name(gn_layout l) { return l == GN_LAYOUT_NCHW ? "nchw" : "nhwc"; }

const char *device_name(gn_device d) {
    return d == GN_DEVICE_CUDA ? "CUDA" : d == GN_DEVICE_OPENCL ? "OpenCL" : "CPU";
}

namespace {

constexpr int kMaxRank = 32;

bool to_dtype(DLDataType t, gn_dtype *out) {
    if (t.lanes != 1) return false;
    if (t.code == kDLFloat && t.bits == 32) *out = GN_DTYPE_F32;
    else if (t.code == kDLFloat && t.bits == 64) *out = GN_DTYPE_F64;
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

// Every pointer a tensor's fields hold is checked before anything reads through it: the
// rank bounds the shape array, which must be there when the rank is > 0 (data is checked
// by read_geometry, once the element count is known).
gn_status check_tensor_pointers(const DLTensor *t, const char *name) {
    if (!t) return GN_STATUS_SUCCESS;
    if (t->ndim < 0 || t->ndim > kMaxRank) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s has an invalid rank %d", name, t->ndim);
    }
    if (t->ndim > 0 && !t->shape) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s->shape is NULL (rank %d)", name, t->ndim);
    }
    return GN_STATUS_SUCCESS;
}

// The bytes a strided buffer touches: elements at base + sum(i_k * stride_k), each `elem`
// bytes, 0 <= i_k < extent_k (strides in bytes, >= 0; extents >= 1).
struct Region {
    const char *name = nullptr;
    uintptr_t base = 0;
    int dims = 0;
    int64_t extent[3] = {1, 1, 1};
    int64_t stride[3] = {0, 0, 0};
    int64_t elem = 1;
};

Region region_of(const char *name, const void *data, int dims, const int64_t *extent,
                 const int64_t *stride, int64_t elem) {
    Region r;
    r.name = name;
    r.base = reinterpret_cast<uintptr_t>(data);
    r.elem = elem;
    // Dimensions of extent 1 add nothing; the rest sorted by stride, innermost first.
    for (int i = 0; i < dims; i++) {
        if (extent[i] <= 1) continue;
        int k = r.dims++;
        while (k > 0 && r.stride[k - 1] > stride[i] * elem) {
            r.extent[k] = r.extent[k - 1];
            r.stride[k] = r.stride[k - 1];
            k--;
        }
        r.extent[k] = extent[i];
        r.stride[k] = stride[i] * elem;
    }
    return r;
}

// Each dimension steps over the whole span of the ones inside it: then no two elements
// share a byte. (Interleavings that are disjoint yet not nested are refused too: rare.)
bool nested(const Region &r) {
    int64_t span = r.elem;  // bytes from the first element's start to the last's end
    for (int k = 0; k < r.dims; k++) {
        if (r.stride[k] < span) return false;
        span += (r.extent[k] - 1) * r.stride[k];
    }
    return true;
}

int64_t last_offset(const Region &r) {
    int64_t last = 0;
    for (int k = 0; k < r.dims; k++) last += (r.extent[k] - 1) * r.stride[k];
    return last;
}

// Whether base offset d + sum(t_k * stride_k), |t_k| < extent_k, k < dims, can come within
// elem bytes of 0: two elements of equally shaped nested lattices d bytes apart meet.
bool lattice_meets(const Region &r, int dims, int64_t d) {
    if (dims == 0) return d > -r.elem && d < r.elem;
    const int k = dims - 1;
    const int64_t s = r.stride[k];
    // Nested: the inner dimensions reach less than s, so only t = floor or ceil of d / s.
    int64_t t0 = d >= 0 ? d / s : -((-d + s - 1) / s);
    for (int64_t t = t0; t <= t0 + 1; t++) {
        if (t <= -r.extent[k] || t >= r.extent[k]) continue;
        if (lattice_meets(r, k, d - t * s)) return true;
    }
    return false;
}

bool regions_overlap(const Region &a, const Region &b) {
    const uintptr_t a_end = a.base + (uintptr_t)(last_offset(a) + a.elem);
    const uintptr_t b_end = b.base + (uintptr_t)(last_offset(b) + b.elem);
    if (a_end <= b.base || b_end <= a.base) return false;
    // Equally shaped nested lattices (x and y interleaved in one buffer): exact.
    bool same_shape = a.dims == b.dims && a.elem == b.elem && nested(a);
    for (int k = 0; same_shape && k < a.dims; k++) {
        same_shape = a.extent[k] == b.extent[k] && a.stride[k] == b.stride[k];
    }
    if (same_shape) {
        const int64_t d = (int64_t)(b.base - a.base);
        return lattice_meets(a, a.dims, d);
    }
    return true;  // byte ranges intersect: refused, although some such pairs are disjoint
}

bool identical(const Region &a, const Region &b) {
    return a.base == b.base && a.dims == b.dims && a.elem == b.elem &&
           std::equal(a.stride, a.stride + 3, b.stride) && std::equal(a.extent, a.extent + 3, b.extent);
}

constexpr size_t kMaxRegions = 16;  // the most tensors a call takes (the residual forward: 10)

// No output may overlap itself or any other argument (outputs are written while inputs are
// still being read), except the output `in_place` being exactly the input `in_place_of`
// (y = x, dx = dy). Regions without data (absent optional tensors) are skipped.
gn_status check_overlaps(std::initializer_list<Region> inputs, std::initializer_list<Region> outputs,
                         const char *in_place, const char *in_place_of) {
    if (inputs.size() + outputs.size() > kMaxRegions) {
        return fail(GN_STATUS_INTERNAL_ERROR, "check_overlaps: more than %d regions",
                    (int)kMaxRegions);
    }
    // Every region of the call, in a fixed array (a vector's allocation was a tenth of a tiny
    // call's dispatch).
    std::array<const Region *, kMaxRegions> seen;
    size_t n_seen = 0;
    for (const Region &r : inputs) {
        if (r.base) seen[n_seen++] = &r;
    }
    for (const Region &out : outputs) {
        if (!out.base) continue;
        for (int k = 0; k < out.dims; k++) {
            if (out.stride[k] == 0) {
                return fail(GN_STATUS_INVALID_ARGUMENT,
                            "%s has a zero stride: its elements overlap each other", out.name);
            }
        }
        if (!nested(out)) {
            return fail(GN_STATUS_INVALID_ARGUMENT,
                        "%s's elements overlap each other (its strides do not nest)", out.name);
        }
        for (size_t i = 0; i < n_seen; i++) {
            const Region *other = seen[i];
            const bool may_alias = std::strcmp(out.name, in_place) == 0 &&
                                   std::strcmp(other->name, in_place_of) == 0;
            if (may_alias && identical(out, *other)) continue;
            if (!regions_overlap(out, *other)) continue;
            if (may_alias) {
                return fail(GN_STATUS_INVALID_ARGUMENT, "%s overlaps %s without being %s itself",
                            out.name, other->name, other->name);
            }
            return fail(GN_STATUS_INVALID_ARGUMENT, "%s overlaps %s", out.name, other->name);
        }
        seen[n_seen++] = &out;
    }
    return GN_STATUS_SUCCESS;
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
    // float32 parameters serve the half types (mixed, as PyTorch allows); float64 x takes
    // float64 parameters only (PyTorch does not mix float64 with float32 either).
    const bool f32_ok = x_dtype != GN_DTYPE_F64;
    if (!to_dtype(p->dtype, dtype) || (*dtype != x_dtype && !(f32_ok && *dtype == GN_DTYPE_F32))) {
        return fail(GN_STATUS_UNSUPPORTED, "%s has dtype %s; it must be x's dtype (%s)%s", name,
                    describe_dtype(p->dtype).c_str(), dtype_name(x_dtype),
                    f32_ok ? " or float32" : "");
    }
    if (C > 1 && strides[0] != 1) {
        return fail(GN_STATUS_UNSUPPORTED, "%s must be contiguous (stride 1), got stride %lld",
                    name, (long long)strides[0]);
    }
    return GN_STATUS_SUCCESS;
}

gn_status check_stat(const DLTensor *t, const char *name, int64_t N, int64_t G, void **data,
                     int64_t *gn_strides, const Problem &problem) {
    int64_t strides[kMaxRank], numel = 0;
    if (gn_status st = check_device(t, name, problem)) return st;
    if (gn_status st = read_geometry(t, name, strides, &numel)) return st;
    if (t->ndim != 2 || t->shape[0] != N || t->shape[1] != G) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "%s must have shape (N, num_groups) = (%lld, %lld), got %s",
                    name, (long long)N, (long long)G, describe_shape(t).c_str());
    }
    gn_dtype dtype;
    const gn_dtype want = stat_dtype(problem.dtype);
    if (!to_dtype(t->dtype, &dtype) || dtype != want) {
        return fail(GN_STATUS_UNSUPPORTED, "%s must be %s (for x %s), got %s", name,
                    dtype_name(want), dtype_name(problem.dtype), describe_dtype(t->dtype).c_str());
    }
    if (!fits_int32(strides[0]) || !fits_int32(strides[1])) {
        return fail(GN_STATUS_UNSUPPORTED, "%s strides do not fit 32 bits", name);
    }
    *data = static_cast<char *>(t->data) + t->byte_offset;
    gn_strides[0] = strides[1];  // g
    gn_strides[1] = strides[0];  // n
    return GN_STATUS_SUCCESS;
}

// x's device, rank, dtype, geometry, C, num_groups and S into p (every op's main input).
gn_status check_input(const DLTensor *x, int64_t num_groups, Problem *p) {
    if (gn_status st = device_of(x, "x", &p->device, &p->device_id)) return st;
    if (x->ndim < 2) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "x must have rank >= 2 (N, C, *), got rank %d",
                    x->ndim);
    }
    if (!to_dtype(x->dtype, &p->dtype)) {
        return fail(GN_STATUS_UNSUPPORTED,
                    "x has dtype %s; supported: float32, float16, bfloat16, float64",
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

// The regions of a problem's tensors, for check_overlaps.
Region view_region(const char *name, const View3 &v, int elem) {
    return region_of(name, v.data, 3, v.extent, v.stride, elem);
}
Region param_region(const char *name, const void *data, const Problem &p) {
    const int64_t extent[1] = {p.C}, unit[1] = {1};
    return region_of(name, data, 1, extent, unit, dtype_bytes(p.param_dtype));
}
Region stat_region(const char *name, const void *data, const int64_t *stride, const Problem &p) {
    const int64_t extent[2] = {p.G, p.N};
    return region_of(name, data, 2, extent, stride, dtype_bytes(stat_dtype(p.dtype)));
}

}  // namespace

gn_status validate_forward(const DLTensor *x, const DLTensor *gamma, const DLTensor *beta,
                           int64_t num_groups, double eps, const DLTensor *y,
                           const DLTensor *mean, const DLTensor *rstd, Problem *p) {
    p->op = GN_OP_FORWARD;
    if (!x) return fail(GN_STATUS_INVALID_ARGUMENT, "x is NULL");
    if (!y) return fail(GN_STATUS_INVALID_ARGUMENT, "y is NULL");
    for (auto [t, name] : {std::pair{x, "x"}, {y, "y"}, {gamma, "gamma"}, {beta, "beta"},
                           {mean, "mean"}, {rstd, "rstd"}}) {
        if (gn_status st = check_tensor_pointers(t, name)) return st;
    }
    if (gn_status st = check_input(x, num_groups, p)) return st;
    (void)eps;  // any value, as PyTorch: rstd = 1 / sqrt(var + eps), NaN where var + eps < 0
    if (gn_status st = check_like_x(y, "y", x, *p)) return st;

    // Neither given: neutral parameters of the statistics' dtype (float64 for float64 x).
    gn_dtype gamma_dtype = stat_dtype(p->dtype), beta_dtype = gamma_dtype;
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
    const int elem = x->dtype.bits / 8;
    return check_overlaps({view_region("x", p->x, elem), param_region("gamma", p->gamma, *p),
                           param_region("beta", p->beta, *p)},
                          {view_region("y", p->y, elem),
                           stat_region("mean", p->mean, p->mean_stride, *p),
                           stat_region("rstd", p->rstd, p->rstd_stride, *p)},
                          "y", "x");
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
    for (auto [t, name] : {std::pair{dy, "dy"}, {x, "x"}, {mean, "mean"}, {rstd, "rstd"},
                           {gamma, "gamma"}, {dx, "dx"}, {dgamma, "dgamma"}, {dbeta, "dbeta"}}) {
        if (gn_status st = check_tensor_pointers(t, name)) return st;
    }
    if (gn_status st = check_input(x, num_groups, p)) return st;
    if (gn_status st = check_like_x(dy, "dy", x, *p)) return st;
    if (dx) {
        if (gn_status st = check_like_x(dx, "dx", x, *p)) return st;
    }
    if (gn_status st = check_stat(mean, "mean", p->N, p->G, &p->mean, p->mean_stride, *p)) return st;
    if (gn_status st = check_stat(rstd, "rstd", p->N, p->G, &p->rstd, p->rstd_stride, *p)) return st;

    // gamma's dtype is the parameters' (dgamma and dbeta have it); without gamma, dgamma's or
    // dbeta's, else the statistics' dtype (float32; float64 for float64 x).
    gn_dtype param_dtype = stat_dtype(p->dtype);
    if (gamma) {
        if (gn_status st = check_param(gamma, "gamma", p->C, p->dtype, &param_dtype, *p)) return st;
    }
    bool have_grad_dtype = gamma != nullptr;
    for (auto [t, name] : {std::pair{dgamma, "dgamma"}, std::pair{dbeta, "dbeta"}}) {
        if (!t) continue;
        gn_dtype dtype;
        if (gn_status st = check_param(t, name, p->C, p->dtype, &dtype, *p)) return st;
        if (have_grad_dtype && dtype != param_dtype) {
            return fail(GN_STATUS_INVALID_ARGUMENT, "%s must have %s's dtype %s, got %s", name,
                        gamma ? "gamma" : "dgamma", dtype_name(param_dtype), dtype_name(dtype));
        }
        param_dtype = dtype;
        have_grad_dtype = true;
    }
    p->param_dtype = param_dtype;
    p->gamma = gamma ? static_cast<const char *>(gamma->data) + gamma->byte_offset : nullptr;
    p->dgamma = dgamma ? static_cast<char *>(dgamma->data) + dgamma->byte_offset : nullptr;
    p->dbeta = dbeta ? static_cast<char *>(dbeta->data) + dbeta->byte_offset : nullptr;

    gn_layout layout;
    if (!p->empty()) {
        if (gn_status st = make_view(x, "x", -1, &p->x, &p->layout)) return st;
        if (gn_status st = make_view(dy, "dy", p->layout, &p->dy, &layout)) return st;
        if (dx) {
            if (gn_status st = make_view(dx, "dx", p->layout, &p->dx, &layout)) return st;
        }
    }
    // Empty problems still write dgamma and dbeta (zeros): checked too.
    const int elem = x->dtype.bits / 8;
    return check_overlaps({view_region("dy", p->dy, elem), view_region("x", p->x, elem),
                           stat_region("mean", p->mean, p->mean_stride, *p),
                           stat_region("rstd", p->rstd, p->rstd_stride, *p),
                           param_region("gamma", p->gamma, *p)},
                          {view_region("dx", p->dx, elem), param_region("dgamma", p->dgamma, *p),
                           param_region("dbeta", p->dbeta, *p)},
                          "dx", "dy");
}

gn_status validate_residual(const DLTensor *x, const DLTensor *skip, const DLTensor *skip_bias,
                            const DLTensor *sum, Problem *p) {
    p->op = GN_OP_FORWARD_RESIDUAL;
    for (auto [t, name] : {std::pair{skip, "config->skip"}, {skip_bias, "config->skip_bias"},
                           {static_cast<const DLTensor *>(sum), "config->sum"}}) {
        if (gn_status st = check_tensor_pointers(t, name)) return st;
    }
    if (p->dtype == GN_DTYPE_F64) {
        return fail(GN_STATUS_UNSUPPORTED,
                    "config->skip, skip_bias, sum: the residual prologue is not compiled for "
                    "float64 x (add the residual before the normalization)");
    }
    // skip: x's shape, or per (n, c): (N, C), or x's rank with spatial extents 1.
    bool per_nc = false;
    if (skip) {
        if (gn_status st = check_device(skip, "config->skip", *p)) return st;
        gn_dtype dtype;
        if (!to_dtype(skip->dtype, &dtype) || dtype != p->dtype) {
            return fail(GN_STATUS_INVALID_ARGUMENT, "config->skip must have x's dtype %s, got %s",
                        dtype_name(p->dtype), describe_dtype(skip->dtype).c_str());
        }
        bool like_x = skip->ndim == x->ndim;
        for (int i = 0; like_x && i < x->ndim; i++) like_x = skip->shape[i] == x->shape[i];
        if (!like_x) {
            per_nc = skip->ndim >= 2 && skip->shape[0] == p->N && skip->shape[1] == p->C &&
                     (skip->ndim == 2 || skip->ndim == x->ndim);
            for (int i = 2; per_nc && i < skip->ndim; i++) per_nc = skip->shape[i] == 1;
        }
        if (!like_x && !per_nc) {
            return fail(GN_STATUS_INVALID_ARGUMENT,
                        "config->skip must have x's shape %s, or (N, C) = (%lld, %lld) (or x's "
                        "rank with spatial extents 1), got %s",
                        describe_shape(x).c_str(), (long long)p->N, (long long)p->C,
                        describe_shape(skip).c_str());
        }
    }
    if (skip_bias) {
        gn_dtype dtype;
        if (gn_status st = check_param(skip_bias, "config->skip_bias", p->C, p->dtype, &dtype, *p)) {
            return st;
        }
        if (dtype != p->param_dtype) {
            if (p->gamma || p->beta) {
                return fail(GN_STATUS_INVALID_ARGUMENT,
                            "config->skip_bias must have gamma's and beta's dtype %s, got %s",
                            dtype_name(p->param_dtype), dtype_name(dtype));
            }
            p->param_dtype = dtype;
        }
        p->skip_bias = static_cast<const char *>(skip_bias->data) + skip_bias->byte_offset;
    }
    if (sum) {
        if (gn_status st = check_like_x(sum, "config->sum", x, *p)) return st;
    }
    if (p->empty()) return GN_STATUS_SUCCESS;  // nothing will be read or written

    gn_layout layout;
    if (skip && !per_nc) {
        if (gn_status st = make_view(skip, "config->skip", p->layout, &p->skip, &layout)) return st;
    }
    if (per_nc) {
        int64_t strides[kMaxRank], numel = 0;
        if (gn_status st = read_geometry(skip, "config->skip", strides, &numel)) return st;
        if (p->C > 1 && strides[1] != 1) {
            return fail(GN_STATUS_UNSUPPORTED,
                        "config->skip (per (n, c)) must be contiguous along C (stride 1), got "
                        "stride %lld",
                        (long long)strides[1]);
        }
        if (!fits_int32(strides[0])) {
            return fail(GN_STATUS_UNSUPPORTED, "config->skip strides do not fit 32 bits");
        }
        p->skip_nc = static_cast<const char *>(skip->data) + skip->byte_offset;
        p->skip_nc_stride[0] = 1;
        p->skip_nc_stride[1] = p->N > 1 ? strides[0] : p->C;
    }
    if (sum) {
        if (gn_status st = make_view(sum, "config->sum", p->layout, &p->sum, &layout)) return st;
    }
    // y and sum are written in one pass, each from x and skip: with a sum, no output may
    // be an input (y = x would hand sum the normalized values).
    const int elem = dtype_bytes(p->dtype);
    const int64_t nc_extent[2] = {p->C, p->N};
    return check_overlaps(
        {view_region("x", p->x, elem), param_region("gamma", p->gamma, *p),
         param_region("beta", p->beta, *p), view_region("config->skip", p->skip, elem),
         region_of("config->skip", p->skip_nc, 2, nc_extent, p->skip_nc_stride, elem),
         param_region("config->skip_bias", p->skip_bias, *p)},
        {view_region("y", p->y, elem), stat_region("mean", p->mean, p->mean_stride, *p),
         stat_region("rstd", p->rstd, p->rstd_stride, *p), view_region("config->sum", p->sum, elem)},
        p->sum.data ? "" : "y", "x");
}

gn_status check_activation_dtype(const Problem &p) {
    if (p.activation == GN_ACTIVATION_NONE || p.dtype != GN_DTYPE_F64) return GN_STATUS_SUCCESS;
    return fail(GN_STATUS_UNSUPPORTED,
                "config->activation: fused activations are not compiled for float64 x (apply "
                "the activation after the normalization)");
}

gn_status validate_backward_activation(int32_t activation, const DLTensor *beta, Problem *p) {
    p->activation = activation;
    if (gn_status st = check_activation_dtype(*p)) return st;
    if (!beta) return GN_STATUS_SUCCESS;  // the forward had no beta (0)
    if (activation == GN_ACTIVATION_NONE) {
        return fail(GN_STATUS_INVALID_ARGUMENT,
                    "config->beta is used only with an activation (config->activation is "
                    "GN_ACTIVATION_NONE)");
    }
    if (gn_status st = check_tensor_pointers(beta, "config->beta")) return st;
    gn_dtype dtype;
    if (gn_status st = check_param(beta, "config->beta", p->C, p->dtype, &dtype, *p)) return st;
    if (dtype != p->param_dtype) {
        if (p->gamma || p->dgamma || p->dbeta) {
            return fail(GN_STATUS_INVALID_ARGUMENT,
                        "config->beta must have the parameters' dtype %s (gamma's, dgamma's or "
                        "dbeta's), got %s",
                        dtype_name(p->param_dtype), dtype_name(dtype));
        }
        p->param_dtype = dtype;
    }
    p->beta = static_cast<const char *>(beta->data) + beta->byte_offset;
    // An input: no output may overlap it.
    const int elem = dtype_bytes(p->dtype);
    return check_overlaps({param_region("config->beta", p->beta, *p)},
                          {view_region("dx", p->dx, elem), param_region("dgamma", p->dgamma, *p),
                           param_region("dbeta", p->dbeta, *p)},
                          "dx", "dy");
}

}  // namespace groupnorm::detail
