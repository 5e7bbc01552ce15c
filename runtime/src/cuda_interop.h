// GPU calls: the CUDA driver (loaded at run time, never linked), the caller's context and
// stream reaching Halide through user_context, device pointers wrapped in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>

#include "HalideRuntime.h"
#include "dispatch.h"

namespace groupnorm::detail {

// nullptr when CUDA device `device_id` can be used; otherwise why not (a static string).
// The driver is probed once per process, before any Halide CUDA code runs.
const char *cuda_unavailable_reason(int device_id);

// The driver entry points this library and its tests use (CUresult is int here).
struct CudaDriver {
    int (*cuInit)(unsigned);
    int (*cuDeviceGetCount)(int *);
    int (*cuDeviceGet)(int *, int);
    int (*cuCtxGetCurrent)(void **);
    int (*cuCtxSetCurrent)(void *);
    int (*cuDevicePrimaryCtxRetain)(void **, int);
    int (*cuCtxSynchronize)();
    int (*cuMemAlloc)(uint64_t *, size_t);
    int (*cuMemFree)(uint64_t);
    int (*cuMemcpyHtoD)(uint64_t, const void *, size_t);
    int (*cuMemcpyDtoH)(void *, uint64_t, size_t);
};
// nullptr when no usable driver was found.
const CudaDriver *cuda_driver();

// What user_context points at in every GPU variant call.
struct GpuUserContext {
    void *cuda_context = nullptr;
    void *cuda_stream = nullptr;
};

// One buffer argument of a GPU variant call. user: the caller's tensor (on CUDA its host
// field holds a device pointer); input: the variant reads it.
struct GpuArg {
    halide_buffer_t *buf;
    bool user, input;
};

// Runs `call` (the variant with its arguments) on the GPU. CUDA: the caller's tensors are
// wrapped in place, the call runs on the caller's context and stream, then they are
// detached (nothing dirty, nothing copied); scratch goes to the device and is freed.
// OpenCL (tests): host buffers, inputs copied to the device and outputs back.
gn_status run_on_gpu(const Variant &v, const Problem &p, const gn_config &cfg,
                     std::initializer_list<GpuArg> args,
                     const std::function<int(const void *user_context)> &call);

}  // namespace groupnorm::detail
