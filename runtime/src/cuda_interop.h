// GPU calls: the CUDA driver (loaded at run time, never linked), the caller's context and
// stream reaching Halide through user_context, device pointers wrapped in place.
#pragma once

#include <cstddef>
#include <cstdint>

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

// A forward call's buffers; `user_*` tells the caller's tensors from the library's host
// scratch (neutral gamma/beta, statistics nobody asked for).
struct ForwardBuffers {
    halide_buffer_t *x, *x_rows, *gamma, *beta, *y, *mean, *rstd;  // x_rows: x's memory
    bool user_gamma, user_beta, user_mean, user_rstd;
};

// CUDA: the buffers' host fields hold device pointers: wrapped, run on the caller's stream,
// detached (nothing dirty, nothing copied); scratch goes to the device and is freed.
// OpenCL (tests): host buffers, copied to the device and the outputs back.
gn_status run_gpu_forward(const Variant &v, const ForwardBuffers &b,
                          const Problem &p, float eps, const gn_config &cfg);

}  // namespace groupnorm::detail
