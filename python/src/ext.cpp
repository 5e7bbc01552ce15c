// groupnorm._ext: the Python binding of the C API (groupnorm.h), nothing more. Tensors
// arrive as nanobind ndarrays (numpy's buffer protocol or any DLPack producer) and cross as
// DLTensor views of the caller's memory; validation, dispatch and the ISA choice stay in
// gn_forward / gn_backward. A failed call raises the Python class that groupnorm/_errors.py
// registered for its status, with gn_last_error_message().
#include <chrono>
#include <cstdint>
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

void forward(const Array &x, std::optional<Array> weight, std::optional<Array> bias,
             int64_t num_groups, double eps, const OutArray &y, std::optional<OutArray> mean,
             std::optional<OutArray> rstd, uintptr_t cuda_stream) {
    DLTensor xt = view(x), yt = view(y), wt, bt, mt, rt;
    const DLTensor *w = view_or_null(weight, wt), *b = view_or_null(bias, bt);
    DLTensor *m = view_or_null(mean, mt), *r = view_or_null(rstd, rt);
    gn_config config = make_config(cuda_stream);
    gn_status status;
    {
        nb::gil_scoped_release release;
        status = gn_forward(&xt, w, b, num_groups, eps, &yt, m, r, &config);
    }
    raise_for(status);
}

void backward(const Array &dy, const Array &x, const Array &mean, const Array &rstd,
              std::optional<Array> weight, int64_t num_groups, std::optional<OutArray> dx,
              std::optional<OutArray> dweight, std::optional<OutArray> dbias,
              uintptr_t cuda_stream) {
    DLTensor dyt = view(dy), xt = view(x), mt = view(mean), rt = view(rstd), wt, dxt, dwt, dbt;
    const DLTensor *w = view_or_null(weight, wt);
    DLTensor *dxp = view_or_null(dx, dxt), *dwp = view_or_null(dweight, dwt),
             *dbp = view_or_null(dbias, dbt);
    gn_config config = make_config(cuda_stream);
    gn_status status;
    {
        nb::gil_scoped_release release;
        status = gn_backward(&dyt, &xt, &mt, &rt, w, num_groups, dxp, dwp, dbp, &config);
    }
    raise_for(status);
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
          nb::arg("rstd").none(), nb::arg("cuda_stream") = 0,
          "gn_forward over DLPack views; raises groupnorm.Error subclasses.");
    m.def("backward", &backward, nb::arg("dy"), nb::arg("x"), nb::arg("mean"),
          nb::arg("rstd"), nb::arg("weight").none(), nb::arg("num_groups"),
          nb::arg("dx").none(), nb::arg("dweight").none(), nb::arg("dbias").none(),
          nb::arg("cuda_stream") = 0, "gn_backward over DLPack views.");
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
    m.def("time_c_forward", &time_c_forward, nb::arg("x"), nb::arg("y"),
          nb::arg("num_groups"), nb::arg("repeats"));
    m.def("_set_error_classes", [](nb::object classes) {
        Py_XDECREF(error_classes);
        error_classes = classes.release().ptr();
    });
}
