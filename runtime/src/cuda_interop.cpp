#include "cuda_interop.h"

#include <dlfcn.h>

#include <cstdio>
#include <mutex>

#include "HalideRuntimeCuda.h"
#include "errors.h"

namespace groupnorm::detail {
namespace {

CudaDriver driver{};
char driver_problem[256] = "";
int device_count = 0;

void load_driver() {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        std::snprintf(driver_problem, sizeof(driver_problem),
                      "no CUDA driver could be loaded (libcuda.so.1: %s)", dlerror());
        return;
    }
    struct Sym { void **slot; const char *name; } syms[] = {
        {(void **)&driver.cuInit, "cuInit"},
        {(void **)&driver.cuDeviceGetCount, "cuDeviceGetCount"},
        {(void **)&driver.cuDeviceGet, "cuDeviceGet"},
        {(void **)&driver.cuCtxGetCurrent, "cuCtxGetCurrent"},
        {(void **)&driver.cuCtxSetCurrent, "cuCtxSetCurrent"},
        {(void **)&driver.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
        {(void **)&driver.cuCtxSynchronize, "cuCtxSynchronize"},
        {(void **)&driver.cuMemAlloc, "cuMemAlloc_v2"},
        {(void **)&driver.cuMemFree, "cuMemFree_v2"},
        {(void **)&driver.cuMemcpyHtoD, "cuMemcpyHtoD_v2"},
        {(void **)&driver.cuMemcpyDtoH, "cuMemcpyDtoH_v2"},
    };
    for (const Sym &s : syms) {
        *s.slot = dlsym(lib, s.name);
        if (!*s.slot) {
            std::snprintf(driver_problem, sizeof(driver_problem),
                          "the CUDA driver lacks %s (too old?)", s.name);
            return;
        }
    }
    // A stub libcuda (toolkit without a driver) fails here with CUDA_ERROR_STUB_LIBRARY.
    if (int err = driver.cuInit(0)) {
        std::snprintf(driver_problem, sizeof(driver_problem),
                      "the CUDA driver failed to initialize (cuInit error %d: no GPU?)", err);
        return;
    }
    if (int err = driver.cuDeviceGetCount(&device_count); err || device_count == 0) {
        std::snprintf(driver_problem, sizeof(driver_problem),
                      "the CUDA driver reports no device (error %d)", err);
    }
}

std::once_flag driver_once;

#if GN_HAVE_GPU_VARIANTS
// Halide's CUDA hooks: our calls carry a GpuUserContext with the context to use; other
// callers (none in this library) keep Halide's defaults.
halide_cuda_acquire_context_t prev_acquire;
halide_cuda_release_context_t prev_release;
halide_cuda_get_stream_t prev_get_stream;

int acquire_context(void *uc, void **ctx, bool create) {
    auto *g = static_cast<GpuUserContext *>(uc);
    if (g && g->cuda_context) {
        *ctx = g->cuda_context;
        return halide_error_code_success;
    }
    return prev_acquire(uc, ctx, create);
}

int release_context(void *uc) {
    auto *g = static_cast<GpuUserContext *>(uc);
    return g && g->cuda_context ? halide_error_code_success : prev_release(uc);
}

int get_stream(void *uc, void *ctx, void **stream) {
    auto *g = static_cast<GpuUserContext *>(uc);
    if (g && g->cuda_context) {
        *stream = g->cuda_stream;
        return halide_error_code_success;
    }
    return prev_get_stream(uc, ctx, stream);
}

void install_cuda_hooks() {
    static std::once_flag once;
    std::call_once(once, [] {
        prev_acquire = halide_set_cuda_acquire_context(acquire_context);
        prev_release = halide_set_cuda_release_context(release_context);
        prev_get_stream = halide_set_cuda_get_stream(get_stream);
        // Intermediates (block moments, statistics) come from Halide's pool, not cuMemAlloc
        // per call.
        halide_reuse_device_allocations(nullptr, true);
    });
}

// The context of the calling thread, else device_id's primary context (retained once per
// process, like the CUDA runtime does).
gn_status resolve_context(int device_id, void **ctx) {
    if (driver.cuCtxGetCurrent(ctx) == 0 && *ctx) return GN_STATUS_SUCCESS;
    int dev = 0;
    if (int err = driver.cuDeviceGet(&dev, device_id)) {
        return fail(GN_STATUS_DEVICE_UNAVAILABLE, "CUDA device %d: cuDeviceGet error %d",
                    device_id, err);
    }
    if (int err = driver.cuDevicePrimaryCtxRetain(ctx, dev)) {
        return fail(GN_STATUS_DEVICE_UNAVAILABLE,
                    "CUDA device %d: cuDevicePrimaryCtxRetain error %d", device_id, err);
    }
    return GN_STATUS_SUCCESS;
}
#endif  // GN_HAVE_GPU_VARIANTS

}  // namespace

const char *cuda_unavailable_reason(int device_id) {
    std::call_once(driver_once, load_driver);
    if (driver_problem[0]) return driver_problem;
    if (device_id < 0 || device_id >= device_count) {
        static thread_local char msg[128];
        std::snprintf(msg, sizeof(msg), "its device_id %d is not one of the %d CUDA devices",
                      device_id, device_count);
        return msg;
    }
    return nullptr;
}

const CudaDriver *cuda_driver() {
    std::call_once(driver_once, load_driver);
    return driver_problem[0] ? nullptr : &driver;
}

gn_status run_on_gpu(const Variant &v, const Problem &p, const gn_config &cfg,
                     std::initializer_list<GpuArg> args,
                     const std::function<int(const void *user_context)> &call) {
#if !GN_HAVE_GPU_VARIANTS
    // No GPU rows are in the registry of such a build, so this is never reached.
    (void)p, (void)cfg, (void)args, (void)call;
    return fail(GN_STATUS_DEVICE_UNAVAILABLE, "%s: this build has no GPU variants", v.name);
#else
    GpuUserContext uc;
    const bool cuda = v.device == GN_DEVICE_CUDA;
    int code = 0;
    install_cuda_hooks();  // also turns on device allocation reuse (OpenCL too)
    if (cuda) {
        uc.cuda_stream = cfg.cuda_stream;
        uc.cuda_context = cfg.cuda_context;
        if (!uc.cuda_context) {
            if (gn_status st = resolve_context(p.device_id, &uc.cuda_context)) return st;
        }
        // The caller's tensors hold device pointers: wrapped in place, never copied.
        for (const GpuArg &a : args) {
            if (!a.user) continue;
            const uint64_t ptr = reinterpret_cast<uintptr_t>(a.buf->host);
            a.buf->host = nullptr;
            if (!code) code = halide_cuda_wrap_device_ptr(&uc, a.buf, ptr);
        }
    }
    // Host memory Halide must copy in: all inputs (OpenCL), the library's scratch (CUDA).
    for (const GpuArg &a : args) {
        if (a.input && a.buf->host) a.buf->flags |= halide_buffer_flag_host_dirty;
    }
    if (!code) code = call(&uc);
    if (!code && !cuda) {
        for (const GpuArg &a : args) {
            if (!code && !a.input) code = halide_copy_to_host(&uc, a.buf);
        }
    }
    // Leave nothing behind: the caller's memory detached, clean; scratch freed (to the pool).
    for (const GpuArg &a : args) {
        halide_buffer_t *buf = a.buf;
        buf->flags &= ~(uint64_t)(halide_buffer_flag_host_dirty | halide_buffer_flag_device_dirty);
        if (!buf->device) continue;
        const int err = cuda && a.user ? halide_cuda_detach_device_ptr(&uc, buf)
                                       : halide_device_free(&uc, buf);
        if (!code) code = err;
    }
    return code == 0 ? GN_STATUS_SUCCESS : from_halide_error(code, v.name);
#endif
}

}  // namespace groupnorm::detail
