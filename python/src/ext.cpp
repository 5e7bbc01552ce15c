// groupnorm._ext: the Python binding of the C API (groupnorm.h), nothing more. Tensors
// arrive as nanobind ndarrays (numpy's buffer protocol or any DLPack producer) and cross as
// DLTensor views of the caller's memory; validation, dispatch and the ISA choice stay in
// gn_forward / gn_backward. A failed call raises the Python class that groupnorm/_errors.py
// registered for its status, with gn_last_error_message().
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <mutex>
#include <optional>

#ifdef GN_PY_OPENMP
#include <omp.h>
#endif

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include "groupnorm/groupnorm.h"

namespace nb = nanobind;

namespace {

using Array = nb::ndarray<nb::ro>;  // an input: read-only views are fine
using OutArray = nb::ndarray<>;     // an output: must be writable

// Exception classes indexed by gn_status (set once by groupnorm/_errors.py; a plain
// reference, kept for the life of the process: no destructor runs after the interpreter).
PyObject *error_classes = nullptr;

template <typename A>
DLTensor view(const A &a) {
    DLTensor t{};
    t.data = const_cast<void *>(static_cast<const void *>(a.data()));
    t.device.device_type = static_cast<DLDeviceType>(a.device_type());
    t.device.device_id = a.device_id();
    t.ndim = static_cast<int32_t>(a.ndim());
    t.dtype.code = a.dtype().code;
    t.dtype.bits = a.dtype().bits;
    t.dtype.lanes = a.dtype().lanes;
    t.shape = const_cast<int64_t *>(a.shape_ptr());
    t.strides = const_cast<int64_t *>(a.stride_ptr());
    t.byte_offset = 0;  // data() already includes it
    return t;
}

// Optional tensors: nullptr when absent (the C API's NULL).
template <typename A>
DLTensor *view_or_null(const std::optional<A> &a, DLTensor &storage) {
    if (!a) return nullptr;
    storage = view(*a);
    return &storage;
}

void raise_for(gn_status status) {
    if (status == GN_STATUS_SUCCESS) return;
    nb::str message(gn_last_error_message());
    nb::object cls = error_classes ? nb::borrow(error_classes)[nb::int_((int)status)]
                                   : nb::borrow(PyExc_RuntimeError);
    PyErr_SetObject(cls.ptr(), message.ptr());
    throw nb::python_error();
}

gn_config make_config(uintptr_t cuda_stream) {
    gn_config config = GN_CONFIG_INIT;
    config.cuda_stream = reinterpret_cast<void *>(cuda_stream);
    return config;
}

// skip, skip_bias, sum: the residual prologue (gn_config.skip, skip_bias, sum), or None.
void forward(const Array &x, std::optional<Array> weight, std::optional<Array> bias,
             int64_t num_groups, double eps, const OutArray &y, std::optional<OutArray> mean,
             std::optional<OutArray> rstd, uintptr_t cuda_stream, int activation,
             std::optional<Array> skip, std::optional<Array> skip_bias,
             std::optional<OutArray> sum) {
    DLTensor xt = view(x), yt = view(y), wt, bt, mt, rt, st, sbt, sumt;
    const DLTensor *w = view_or_null(weight, wt), *b = view_or_null(bias, bt);
    DLTensor *m = view_or_null(mean, mt), *r = view_or_null(rstd, rt);
    gn_config config = make_config(cuda_stream);
    config.activation = activation;
    config.skip = view_or_null(skip, st);
    config.skip_bias = view_or_null(skip_bias, sbt);
    config.sum = view_or_null(sum, sumt);
    gn_status status;
    {
        nb::gil_scoped_release release;
        status = gn_forward(&xt, w, b, num_groups, eps, &yt, m, r, &config);
    }
    raise_for(status);
}

// activation: the forward's (gn_config.activation); beta: the forward's bias, which the
// backward through an activation needs (gn_config.beta; None when it had none).
void backward(const Array &dy, const Array &x, const Array &mean, const Array &rstd,
              std::optional<Array> weight, int64_t num_groups, std::optional<OutArray> dx,
              std::optional<OutArray> dweight, std::optional<OutArray> dbias,
              uintptr_t cuda_stream, int activation, std::optional<Array> beta) {
    DLTensor dyt = view(dy), xt = view(x), mt = view(mean), rt = view(rstd), wt, dxt, dwt, dbt,
             bt;
    const DLTensor *w = view_or_null(weight, wt);
    DLTensor *dxp = view_or_null(dx, dxt), *dwp = view_or_null(dweight, dwt),
             *dbp = view_or_null(dbias, dbt);
    gn_config config = make_config(cuda_stream);
    config.activation = activation;
    config.beta = view_or_null(beta, bt);
    gn_status status;
    {
        nb::gil_scoped_release release;
        status = gn_backward(&dyt, &xt, &mt, &rt, w, num_groups, dxp, dwp, dbp, &config);
    }
    raise_for(status);
}

// PyTorch tensors without a DLPack capsule per tensor per call (groupnorm/torch.py's
// eager path and the ops' CPU kernels): the DLTensor is built here from the tensor's
// data_ptr(), shape, stride() and dtype, read through the Python C API, and new outputs
// are allocated here and handed to torch as DLPack capsules (torch._C._from_dlpack), so
// their layout is ours by construction. Only plain strided CPU tensors of a dtype with a
// kernel take this path; for anything else (CUDA, meta, a subclass, a negative view,
// float64, ...) the torch_* functions return False or None before calling the library and
// the caller takes the DLPack path, which handles every case. Validation stays in the C
// API: the views carry the tensors' real shapes and strides.
struct TorchTypes {
    PyObject *tensor = nullptr, *parameter = nullptr;  // exact types accepted
    PyObject *dtypes[3] = {};                          // float32, float16, bfloat16
    DLDataType codes[3] = {};
    PyObject *from_dlpack = nullptr;                   // torch._C._from_dlpack
    PyObject *data_ptr, *shape, *stride, *dtype, *is_cpu, *is_neg;  // interned names
} torch_types;

constexpr int kMaxDims = 16;

struct TorchView {
    DLTensor t{};
    int64_t shape[kMaxDims], strides[kMaxDims];
};

// Fills dims from a tuple of ints (torch.Size or stride()); false if it is not one.
bool read_dims(PyObject *tuple, int64_t *dims, int *ndim) {
    if (!tuple || !PyTuple_Check(tuple)) return false;
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    if (n > kMaxDims || (*ndim >= 0 && n != *ndim)) return false;
    for (Py_ssize_t i = 0; i < n; ++i) {
        dims[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(tuple, i));
        if (dims[i] == -1 && PyErr_Occurred()) return false;
    }
    *ndim = static_cast<int>(n);
    return true;
}

// A new reference to obj.name() or obj.name (call = false); nullptr on error.
PyObject *get(PyObject *obj, PyObject *name, bool call) {
    return call ? PyObject_CallMethodNoArgs(obj, name) : PyObject_GetAttr(obj, name);
}

// v <- a view of tensor t; false (and no Python error set) when t is not served here.
bool torch_view(nb::handle handle, TorchView &v) {
    PyObject *t = handle.ptr();
    PyObject *type = reinterpret_cast<PyObject *>(Py_TYPE(t));
    if (type != torch_types.tensor && type != torch_types.parameter) return false;
    bool ok = false;
    PyObject *dtype = nullptr, *cpu = nullptr, *neg = nullptr, *ptr = nullptr, *shape = nullptr,
             *stride = nullptr;
    int ndim = -1;
    do {
        if (!(dtype = get(t, torch_types.dtype, false))) break;
        int d = 0;
        while (d < 3 && torch_types.dtypes[d] != dtype) ++d;
        if (d == 3) break;
        v.t.dtype = torch_types.codes[d];
        if (!(cpu = get(t, torch_types.is_cpu, false)) || cpu != Py_True) break;
        if (!(neg = get(t, torch_types.is_neg, true)) || neg != Py_False) break;
        // Strided tensors only: sparse and mkldnn ones raise here.
        if (!(shape = get(t, torch_types.shape, false)) || !read_dims(shape, v.shape, &ndim)) break;
        if (!(stride = get(t, torch_types.stride, true)) || !read_dims(stride, v.strides, &ndim)) break;
        if (!(ptr = get(t, torch_types.data_ptr, true))) break;
        void *data = PyLong_AsVoidPtr(ptr);
        if (!data && PyErr_Occurred()) break;
        v.t.data = data;
        v.t.device = {kDLCPU, 0};
        v.t.ndim = ndim;
        v.t.shape = v.shape;
        v.t.strides = v.strides;
        v.t.byte_offset = 0;
        ok = true;
    } while (false);
    Py_XDECREF(dtype);
    Py_XDECREF(cpu);
    Py_XDECREF(neg);
    Py_XDECREF(ptr);
    Py_XDECREF(shape);
    Py_XDECREF(stride);
    if (!ok) PyErr_Clear();
    return ok;
}

// An optional tensor: true with *out = nullptr for None.
bool torch_view_or_null(nb::handle handle, TorchView &v, DLTensor **out) {
    *out = nullptr;
    if (handle.is_none()) return true;
    if (!torch_view(handle, v)) return false;
    *out = &v.t;
    return true;
}

// The (N, G) halves of a (2, N, G) statistics tensor: m <- mean (m's first half), r <- rstd.
void split_stats(TorchView &m, TorchView &r) {
    r = m;
    m.t.ndim = r.t.ndim = 2;
    m.t.shape = m.shape + 1;
    m.t.strides = m.strides + 1;
    r.t.shape = r.shape + 1;
    r.t.strides = r.strides + 1;
    r.t.data = static_cast<char *>(m.t.data) + m.strides[0] * (m.t.dtype.bits / 8);
}

// mean and rstd: two (N, G) tensors, or (rstd None) one (2, N, G) tensor holding mean
// then rstd (one allocation for the eager path). Null views when mean is None.
bool torch_stats(nb::handle mean, nb::handle rstd, TorchView &m, TorchView &r, DLTensor **mp,
                 DLTensor **rp) {
    if (!rstd.is_none() || mean.is_none()) {
        return torch_view_or_null(mean, m, mp) && torch_view_or_null(rstd, r, rp);
    }
    if (!torch_view(mean, m) || m.t.ndim != 3 || m.shape[0] != 2) return false;
    split_stats(m, r);
    *mp = &m.t;
    *rp = &r.t;
    return true;
}

// Output buffers, recycled. Without a cache every large output is fresh memory from
// malloc (mmap): its first write page-faults once per 4 KiB page, about 1 us each on the
// VMs measured here, more than the kernel itself inside a model (stock PyTorch pays the
// same). Freed buffers of at least kMinBytes are kept, newest first, up to a byte limit,
// and handed out again for a request of the same size; buffers of 2 MiB and more are
// 2 MiB-aligned and advised to use transparent huge pages (a fault per 2 MiB the first
// time). The tensors' deleters return buffers here from whichever thread frees them.
class BufferCache {
public:
    static constexpr size_t kMinBytes = size_t{256} << 10;  // smaller: plain malloc
    static constexpr size_t kHuge = size_t{2} << 20;

    void *get(size_t bytes) {
        if (bytes >= kMinBytes) {
            std::lock_guard<std::mutex> lock(mutex_);
            for (auto it = free_.begin(); it != free_.end(); ++it) {
                if (it->bytes == bytes) {
                    void *data = it->data;
                    cached_ -= bytes;
                    free_.erase(it);
                    return data;
                }
            }
        }
        size_t align = bytes >= kHuge ? kHuge : 64;
        void *data = nullptr;
        if (posix_memalign(&data, align, bytes) != 0) return nullptr;
#ifdef MADV_HUGEPAGE
        if (bytes >= kHuge) madvise(data, bytes, MADV_HUGEPAGE);
#endif
        return data;
    }

    void put(void *data, size_t bytes) {
        if (bytes < kMinBytes) {
            std::free(data);
            return;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        free_.push_front({data, bytes});
        cached_ += bytes;
        trim_locked();
    }

    void set_limit(size_t bytes) {
        std::lock_guard<std::mutex> lock(mutex_);
        limit_ = bytes;
        trim_locked();
    }

    size_t cached() {
        std::lock_guard<std::mutex> lock(mutex_);
        return cached_;
    }

private:
    struct Entry {
        void *data;
        size_t bytes;
    };

    void trim_locked() {
        while (cached_ > limit_) {  // the least recently freed go first
            cached_ -= free_.back().bytes;
            std::free(free_.back().data);
            free_.pop_back();
        }
    }

    std::mutex mutex_;
    std::list<Entry> free_;
    size_t cached_ = 0;
    size_t limit_ = size_t{1} << 30;
};

// Never destroyed: tensors may be freed (and call the deleter) after static destructors.
BufferCache &buffer_cache() {
    static BufferCache *cache = new BufferCache;
    return *cache;
}

struct OwnedTensor {
    DLManagedTensor managed;
    int64_t shape[kMaxDims], strides[kMaxDims];
    size_t bytes;
};

void delete_owned_tensor(DLManagedTensor *managed) {
    auto *t = static_cast<OwnedTensor *>(managed->manager_ctx);
    buffer_cache().put(t->managed.dl_tensor.data, t->bytes);
    delete t;
}

// A capsule nobody consumed (torch renames the ones it takes) still owns its tensor.
void dlpack_capsule_destructor(PyObject *capsule) {
    if (PyCapsule_IsValid(capsule, "dltensor")) {
        auto *managed = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(capsule, "dltensor"));
        managed->deleter(managed);
    }
}

// A new torch tensor of dense shape and strides (like's, or contiguous when strides is
// null) and dtype, in a buffer of the cache; view <- its DLTensor.
nb::object new_tensor(int ndim, const int64_t *shape, const int64_t *strides, DLDataType dtype,
                      TorchView &view) {
    int64_t numel = 1;
    for (int i = 0; i < ndim; ++i) numel *= shape[i];
    size_t bytes = static_cast<size_t>(std::max<int64_t>(numel, 1)) * (dtype.bits / 8);
    bytes = (bytes + 63) & ~size_t{63};
    if (bytes >= BufferCache::kMinBytes) bytes = (bytes + 4095) & ~size_t{4095};
    auto *t = new OwnedTensor;
    t->bytes = bytes;
    DLTensor &dl = t->managed.dl_tensor;
    dl = DLTensor{};
    dl.data = buffer_cache().get(bytes);
    if (!dl.data) {
        delete t;
        throw std::bad_alloc();
    }
    dl.device = {kDLCPU, 0};
    dl.ndim = ndim;
    dl.dtype = dtype;
    dl.shape = t->shape;
    dl.strides = t->strides;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; --i) {
        t->shape[i] = shape[i];
        t->strides[i] = strides ? strides[i] : stride;
        stride *= shape[i];
    }
    t->managed.manager_ctx = t;
    t->managed.deleter = delete_owned_tensor;
    view.t = dl;
    std::copy(t->shape, t->shape + ndim, view.shape);
    std::copy(t->strides, t->strides + ndim, view.strides);
    view.t.shape = view.shape;
    view.t.strides = view.strides;
    PyObject *capsule = PyCapsule_New(&t->managed, "dltensor", dlpack_capsule_destructor);
    if (!capsule) {
        delete_owned_tensor(&t->managed);
        throw nb::python_error();
    }
    nb::object owner = nb::steal(capsule);
    PyObject *tensor = PyObject_CallOneArg(torch_types.from_dlpack, capsule);
    if (!tensor) throw nb::python_error();
    return nb::steal(tensor);
}

// x's strides, when they are dense (what groupnorm.torch serves): a new tensor with them
// holds exactly numel elements.
bool dense(const TorchView &x) {
    int64_t numel = 1, extent = 1;
    for (int i = 0; i < x.t.ndim; ++i) {
        if (x.shape[i] == 0) return true;
        if (x.strides[i] < 0) return false;
        numel *= x.shape[i];
        extent += (x.shape[i] - 1) * x.strides[i];
    }
    return extent == numel;
}

// Large tensors release the GIL for the call; tiny ones keep it (releasing and retaking
// it costs about as much as their kernel).
bool worth_releasing_gil(const DLTensor &x) {
    int64_t n = 1;
    for (int i = 0; i < x.ndim; ++i) n *= x.shape[i];
    return n >= (int64_t{1} << 14);
}

// skip, skip_bias, sum: the residual prologue (gn_config), or null.
gn_status call_forward(const DLTensor &x, const DLTensor *w, const DLTensor *b, int64_t num_groups,
                       double eps, DLTensor &y, DLTensor *m, DLTensor *r, int activation,
                       const DLTensor *skip = nullptr, const DLTensor *skip_bias = nullptr,
                       DLTensor *sum = nullptr) {
    gn_config config = GN_CONFIG_INIT;
    config.activation = activation;
    config.skip = skip;
    config.skip_bias = skip_bias;
    config.sum = sum;
    if (!worth_releasing_gil(x)) return gn_forward(&x, w, b, num_groups, eps, &y, m, r, &config);
    nb::gil_scoped_release release;
    return gn_forward(&x, w, b, num_groups, eps, &y, m, r, &config);
}

// gn_forward into the given outputs (out=, the op's separate mean and rstd); activation:
// gn_config.activation (y = act(GroupNorm(x))), as in every torch_* call below.
bool torch_forward(nb::handle x, nb::handle weight, nb::handle bias, int64_t num_groups,
                   double eps, nb::handle y, nb::handle mean, nb::handle rstd, int activation) {
    TorchView xv, yv, wv, bv, mv, rv;
    DLTensor *w, *b, *m, *r;
    if (!torch_view(x, xv) || !torch_view(y, yv) || !torch_view_or_null(weight, wv, &w) ||
        !torch_view_or_null(bias, bv, &b) || !torch_stats(mean, rstd, mv, rv, &m, &r)) {
        return false;
    }
    raise_for(call_forward(xv.t, w, b, num_groups, eps, yv.t, m, r, activation));
    return true;
}

// y = GroupNorm(x) in a new tensor of x's strides, and by stats: 0: no statistics;
// 1: mean and rstd in one new float32 (2, N, G) tensor; 2: in two new (N, G) tensors.
// Returns (y, stats or mean or None, rstd or None); None when not served here.
nb::object torch_group_norm(nb::handle x, nb::handle weight, nb::handle bias,
                            int64_t num_groups, double eps, int stats, int activation) {
    TorchView xv, yv, wv, bv, mv, rv;
    DLTensor *w, *b;
    if (!torch_view(x, xv) || !dense(xv) || !torch_view_or_null(weight, wv, &w) ||
        !torch_view_or_null(bias, bv, &b)) {
        return nb::none();
    }
    nb::object y = new_tensor(xv.t.ndim, xv.shape, xv.strides, xv.t.dtype, yv);
    nb::object mean = nb::none(), rstd = nb::none();
    // Shape (2, N, G): a bad num_groups or an x without channels is the C API's to
    // report, so the allocation only has to be valid.
    int64_t shape[3] = {2, xv.t.ndim > 0 ? xv.shape[0] : 0, std::max<int64_t>(num_groups, 0)};
    constexpr DLDataType f32{kDLFloat, 32, 1};
    if (stats == 1) {
        mean = new_tensor(3, shape, nullptr, f32, mv);
        split_stats(mv, rv);
    } else if (stats == 2) {
        mean = new_tensor(2, shape + 1, nullptr, f32, mv);
        rstd = new_tensor(2, shape + 1, nullptr, f32, rv);
    }
    raise_for(call_forward(xv.t, w, b, num_groups, eps, yv.t, stats ? &mv.t : nullptr,
                           stats ? &rv.t : nullptr, activation));
    return nb::make_tuple(y, mean, rstd);
}

// Skip + GroupNorm [+ activation] (gn_config.skip, skip_bias, sum) into new tensors of x's
// strides from the buffer cache (torch.empty_like's fresh pages fault on every call: it ran
// 4x slower): (y, sum or None); None when not served here.
nb::object torch_skip_group_norm(nb::handle x, nb::handle weight, nb::handle bias,
                                 int64_t num_groups, double eps, int activation,
                                 nb::handle skip, nb::handle skip_bias, bool return_sum) {
    TorchView xv, yv, wv, bv, sv, sbv, sumv;
    DLTensor *w, *b, *sk, *sb;
    if (!torch_view(x, xv) || !dense(xv) || !torch_view_or_null(weight, wv, &w) ||
        !torch_view_or_null(bias, bv, &b) || !torch_view_or_null(skip, sv, &sk) ||
        !torch_view_or_null(skip_bias, sbv, &sb)) {
        return nb::none();
    }
    nb::object y = new_tensor(xv.t.ndim, xv.shape, xv.strides, xv.t.dtype, yv);
    nb::object sum = nb::none();
    if (return_sum) sum = new_tensor(xv.t.ndim, xv.shape, xv.strides, xv.t.dtype, sumv);
    raise_for(call_forward(xv.t, w, b, num_groups, eps, yv.t, nullptr, nullptr, activation, sk,
                           sb, return_sum ? &sumv.t : nullptr));
    return nb::make_tuple(y, sum);
}

// dx (x's strides), dweight and dbias ((C,), param_dtype: the weight's, else the bias's)
// of gn_backward, each new or None when not needed: (dx, dweight, dbias); None when not
// served here. mean, rstd: as torch_forward's. activation: the forward's; bias: the
// forward's bias when it had one and an activation (gn_config.beta), else None.
nb::object torch_group_norm_backward(nb::handle dy, nb::handle x, nb::handle mean,
                                     nb::handle rstd, nb::handle weight, int64_t num_groups,
                                     bool need_x, bool need_w, bool need_b,
                                     nb::handle param_dtype, nb::handle bias, int activation) {
    TorchView dyv, xv, mv, rv, wv, bv, dxv, dwv, dbv;
    DLTensor *m, *r, *w, *b;
    if (!torch_view(dy, dyv) || !torch_view(x, xv) || !dense(xv) ||
        !torch_stats(mean, rstd, mv, rv, &m, &r) || !m || !torch_view_or_null(weight, wv, &w) ||
        !torch_view_or_null(bias, bv, &b)) {
        return nb::none();
    }
    int d = 0;
    while (d < 3 && torch_types.dtypes[d] != param_dtype.ptr()) ++d;
    if ((need_w || need_b) && d == 3) return nb::none();
    nb::object dx = nb::none(), dw = nb::none(), db = nb::none();
    if (need_x) dx = new_tensor(xv.t.ndim, xv.shape, xv.strides, xv.t.dtype, dxv);
    int64_t channels = xv.t.ndim > 1 ? xv.shape[1] : 0;
    if (need_w) dw = new_tensor(1, &channels, nullptr, torch_types.codes[d], dwv);
    if (need_b) db = new_tensor(1, &channels, nullptr, torch_types.codes[d], dbv);
    gn_config config = GN_CONFIG_INIT;
    config.activation = activation;
    config.beta = b;
    gn_status status;
    DLTensor *dxp = need_x ? &dxv.t : nullptr, *dwp = need_w ? &dwv.t : nullptr,
             *dbp = need_b ? &dbv.t : nullptr;
    if (worth_releasing_gil(xv.t)) {
        nb::gil_scoped_release release;
        status = gn_backward(&dyv.t, &xv.t, m, r, w, num_groups, dxp, dwp, dbp, &config);
    } else {
        status = gn_backward(&dyv.t, &xv.t, m, r, w, num_groups, dxp, dwp, dbp, &config);
    }
    raise_for(status);
    return nb::make_tuple(dx, dw, db);
}

void set_torch_types(nb::handle tensor, nb::handle parameter, nb::handle float32,
                     nb::handle float16, nb::handle bfloat16, nb::handle from_dlpack) {
    // Plain references kept for the life of the process (as error_classes).
    PyObject *keep[] = {tensor.ptr(), parameter.ptr(), float32.ptr(), float16.ptr(),
                        bfloat16.ptr(), from_dlpack.ptr()};
    for (PyObject *o : keep) Py_INCREF(o);
    TorchTypes &tt = torch_types;
    tt.tensor = tensor.ptr();
    tt.parameter = parameter.ptr();
    tt.dtypes[0] = float32.ptr();
    tt.codes[0] = {kDLFloat, 32, 1};
    tt.dtypes[1] = float16.ptr();
    tt.codes[1] = {kDLFloat, 16, 1};
    tt.dtypes[2] = bfloat16.ptr();
    tt.codes[2] = {kDLBfloat, 16, 1};
    tt.from_dlpack = from_dlpack.ptr();
    tt.data_ptr = PyUnicode_InternFromString("data_ptr");
    tt.shape = PyUnicode_InternFromString("shape");
    tt.stride = PyUnicode_InternFromString("stride");
    tt.dtype = PyUnicode_InternFromString("dtype");
    tt.is_cpu = PyUnicode_InternFromString("is_cpu");
    tt.is_neg = PyUnicode_InternFromString("is_neg");
}

// The C call alone, `repeats` times on tensors already converted (the baseline of the
// Python call overhead that bench/python_overhead.py measures): nanoseconds per call.
double time_c_forward(const Array &x, const OutArray &y, int64_t num_groups, int repeats) {
    DLTensor xt = view(x), yt = view(y);
    gn_config config = GN_CONFIG_INIT;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i)
        raise_for(gn_forward(&xt, nullptr, nullptr, num_groups, 1e-5, &yt, nullptr, nullptr,
                             &config));
    std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
    return elapsed.count() / repeats;
}

#ifdef GN_PY_OPENMP
// The kernels' parallel loops on the process's OpenMP pool: PyTorch's, when torch is
// loaded (its wheel and this module share libgomp.so.1, one runtime per process), so its
// threads and ours do not fight over the cores (torch.set_num_threads governs both).
// One thread (torch.set_num_threads(1)), one task, or a nested call from inside a task:
// the tasks run in order here, without entering a parallel region (a region of one
// thread still costs a team set-up and a dynamic-schedule lock per task).
int openmp_parallel_for(void *, int count, gn_task_fn task, void *task_context) {
    if (count <= 1 || omp_in_parallel() || omp_get_max_threads() == 1) {
        for (int i = 0; i < count; ++i) {
            if (int code = task(task_context, i)) return code;
        }
        return 0;
    }
    int result = 0;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < count; ++i) {
        if (int code = task(task_context, i)) {
#pragma omp critical(gn_task_result)
            if (result == 0) result = code;
        }
    }
    return result;
}
#endif

}  // namespace

NB_MODULE(_ext, m) {
    m.doc() = "Binding of the groupnorm C API (use the groupnorm package, not this module).";
    m.def("forward", &forward, nb::arg("x"), nb::arg("weight").none(), nb::arg("bias").none(),
          nb::arg("num_groups"), nb::arg("eps"), nb::arg("y"), nb::arg("mean").none(),
          nb::arg("rstd").none(), nb::arg("cuda_stream") = 0, nb::arg("activation") = 0,
          nb::arg("skip").none() = nb::none(), nb::arg("skip_bias").none() = nb::none(),
          nb::arg("sum").none() = nb::none(),
          "gn_forward over DLPack views; raises groupnorm.Error subclasses.");
    m.def("backward", &backward, nb::arg("dy"), nb::arg("x"), nb::arg("mean"),
          nb::arg("rstd"), nb::arg("weight").none(), nb::arg("num_groups"),
          nb::arg("dx").none(), nb::arg("dweight").none(), nb::arg("dbias").none(),
          nb::arg("cuda_stream") = 0, nb::arg("activation") = 0,
          nb::arg("beta").none() = nb::none(),
          "gn_backward over DLPack views; activation and beta (the forward's bias) as "
          "gn_config's.");
    m.def("set_num_threads", [](int n) { raise_for(gn_set_num_threads(n)); }, nb::arg("n"));
#ifdef GN_PY_OPENMP
    m.attr("has_openmp") = true;
    m.def("use_openmp_pool", [](bool enable) {
        // num_workers > 1: hand every loop to openmp_parallel_for, which uses as many
        // threads as the calling thread's OpenMP setting (PyTorch's, which may change at
        // any time) allows, and none beside the caller's at 1.
        raise_for(enable ? gn_set_thread_pool(openmp_parallel_for, nullptr, 2)
                         : gn_set_thread_pool(nullptr, nullptr, 0));
    }, nb::arg("enable"));
#else
    m.attr("has_openmp") = false;
#endif
    m.def("version", [] {
        int major, minor, patch;
        gn_version(&major, &minor, &patch);
        return nb::make_tuple(major, minor, patch);
    });
    m.def("torch_forward", &torch_forward, nb::arg("x"), nb::arg("weight").none(),
          nb::arg("bias").none(), nb::arg("num_groups"), nb::arg("eps"), nb::arg("y"),
          nb::arg("mean").none(), nb::arg("rstd").none(), nb::arg("activation") = 0,
          "gn_forward into given plain CPU torch tensors, read without DLPack; False: not "
          "served here (nothing done).");
    m.def("torch_group_norm", &torch_group_norm, nb::arg("x"), nb::arg("weight").none(),
          nb::arg("bias").none(), nb::arg("num_groups"), nb::arg("eps"),
          nb::arg("stats"), nb::arg("activation") = 0, "(y, stats or mean or None, rstd or None) in new tensors; "
          "None: not served here.");
    m.def("torch_skip_group_norm", &torch_skip_group_norm, nb::arg("x"),
          nb::arg("weight").none(), nb::arg("bias").none(), nb::arg("num_groups"),
          nb::arg("eps"), nb::arg("activation"), nb::arg("skip").none(),
          nb::arg("skip_bias").none(), nb::arg("return_sum"),
          "Skip + GroupNorm of torch CPU tensors into cached new tensors: (y, sum or None), "
          "or None when not served here.");
    m.def("torch_group_norm_backward", &torch_group_norm_backward, nb::arg("dy"),
          nb::arg("x"), nb::arg("mean"), nb::arg("rstd").none(), nb::arg("weight").none(),
          nb::arg("num_groups"), nb::arg("need_x"), nb::arg("need_weight"),
          nb::arg("need_bias"), nb::arg("param_dtype").none(),
          nb::arg("bias").none() = nb::none(), nb::arg("activation") = 0,
          "(dx, dweight, dbias), each new or None; None: not served here.");
    m.def("_set_torch_types", &set_torch_types);
    m.def("set_buffer_cache_limit", [](size_t bytes) { buffer_cache().set_limit(bytes); },
          nb::arg("bytes"));
    m.def("buffer_cache_bytes", [] { return buffer_cache().cached(); });
    m.def("time_c_forward", &time_c_forward, nb::arg("x"), nb::arg("y"),
          nb::arg("num_groups"), nb::arg("repeats"));
    m.def("_set_error_classes", [](nb::object classes) {
        Py_XDECREF(error_classes);
        error_classes = classes.release().ptr();
    });
}
