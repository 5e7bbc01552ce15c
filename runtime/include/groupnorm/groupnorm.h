/* GroupNorm: a stable C API over ahead-of-time compiled Halide kernels.
 *
 * Tensors cross the API as DLPack DLTensor (dlpack.h), all on one device: CPU memory
 * (kDLCPU, kDLCUDAHost) or one CUDA device (kDLCUDA, kDLCUDAManaged; device pointers are
 * used in place, never copied). x has shape (N, C, d1, ..., dk),
 * k >= 0, either contiguous NC* (the spatial block dense) or channels-last N*C (the
 * channel dimension dense); y has x's shape and dtype and a layout of the same kind.
 * dtypes: float32, float16, bfloat16 (computed in float32), and float64 on CPUs (computed
 * in float64). The statistics (mean, rstd) have the compute type: float32, or float64 for
 * float64 x (as PyTorch); the fused activations are not compiled for float64
 * (GN_STATUS_UNSUPPORTED). All functions are thread-safe; errors are returned, never
 * raised or printed. */
#ifndef GROUPNORM_GROUPNORM_H
#define GROUPNORM_GROUPNORM_H

#include <stddef.h>
#include <stdint.h>

#include <dlpack/dlpack.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version; CMake's project version is read from these lines. */
#define GN_VERSION_MAJOR 0
#define GN_VERSION_MINOR 2
#define GN_VERSION_PATCH 0

typedef enum gn_status {
    GN_STATUS_SUCCESS = 0,
    GN_STATUS_INVALID_ARGUMENT,    /* an argument breaks the operator's contract */
    GN_STATUS_UNSUPPORTED,         /* valid, but no compiled variant serves it (dtype, strides,
                                      an activation for float64) */
    GN_STATUS_DEVICE_UNAVAILABLE,  /* the tensors' device has no usable driver or variant */
    GN_STATUS_OUT_OF_MEMORY,
    GN_STATUS_INTERNAL_ERROR
} gn_status;

/* Activations fused with the normalization (gn_config.activation): gn_forward writes
 * act(z) for z = (x - mean) * rstd * gamma + beta, in the same pass; gn_backward, given the
 * same activation and the forward's beta, returns the gradients of that composition.
 *   SILU       z * sigmoid(z) = z / (1 + exp(-z))
 *   RELU       max(z, 0) (NaN stays NaN)
 *   GELU       z * (1 + erf(z / sqrt(2))) / 2           (PyTorch's approximate='none')
 *   GELU_TANH  z * (1 + tanh(sqrt(2 / pi) * (z + 0.044715 z^3))) / 2   ('tanh')
 * At z = +-inf they give what these formulas give in IEEE arithmetic, as PyTorch does
 * (SiLU(-inf) and GELU(-inf) are NaN). */
typedef enum gn_activation {
    GN_ACTIVATION_NONE = 0,
    GN_ACTIVATION_SILU = 1,
    GN_ACTIVATION_RELU = 2,
    GN_ACTIVATION_GELU = 3,
    GN_ACTIVATION_GELU_TANH = 4
} gn_activation;

/* Versioned options. Set struct_size = sizeof(gn_config) (GN_CONFIG_INIT does); fields
 * added later go at the end, and the library reads only what struct_size covers (a caller
 * built against an older, smaller gn_config gets the defaults of the newer fields: no
 * activation).
 * (The CPU ISA level is chosen once per process by the CPU, capped by the environment
 * variable GN_CPU_ISA = sse41 | avx2 | avx512 | auto on x86-64, armv8 | arm_fp16 | auto
 * on ARM64, read at the first call; the CPU kernels' prefetching ahead by GN_CPU_PREFETCH =
 * on | off | auto, auto: off on Intel CPUs, on elsewhere. A bad value of either fails every
 * call with GN_STATUS_INVALID_ARGUMENT.) */
typedef struct gn_config {
    uint32_t struct_size;
    uint32_t flags; /* reserved, must be 0 */
    /* CUDA tensors only (kDLCUDA / kDLCUDAManaged): the CUcontext and CUstream to run on.
     * NULL context: the context current on the calling thread, else the device's primary
     * context (what the CUDA runtime and PyTorch use). NULL stream: the legacy default
     * stream. The call is asynchronous on that stream: results are ready when it is. */
    void *cuda_context;
    void *cuda_stream;
    /* Fused activation (a gn_activation; GN_ACTIVATION_NONE by default). gn_forward applies
     * it to y; gn_backward differentiates through it, which needs the forward's beta.
     * Not for float64 x (GN_STATUS_UNSUPPORTED: no fused float64 kernels). */
    int32_t activation;
    uint32_t reserved; /* must be 0 */
    /* gn_backward with an activation: the forward's beta ((C,), gamma's dtype), from which
     * the pre-activation z is recomputed; NULL when the forward had none. Ignored (must be
     * NULL) by gn_forward, which takes beta as an argument. */
    const DLTensor *beta;
    /* gn_forward's residual prologue (ONNX Runtime's SkipGroupNorm; a UNet block's time
     * embedding): the tensor normalized is x + skip + skip_bias[c] instead of x, and `sum`
     * receives it, all in one pass over memory. skip: x's dtype, and either x's shape (with
     * the same layout kind) or per-(n, c): shape (N, C) or (N, C, 1, ..., 1) of x's rank,
     * contiguous along C. skip_bias: (C,), the parameters' dtype (gamma's; x's dtype or
     * float32). sum: x's shape, dtype and layout kind; written only when given. Each may be
     * NULL. With a sum no output may overlap an input (y = x is allowed without one).
     * CPU float32 / float16 / bfloat16 only (GN_STATUS_UNSUPPORTED otherwise). Ignored (must
     * be NULL) by gn_backward: a residual's gradient is dx itself (pass the forward's sum as
     * x), and skip_bias's is dx summed over n and the spatial positions. */
    const DLTensor *skip;
    const DLTensor *skip_bias;
    DLTensor *sum;
} gn_config;

#define GN_CONFIG_INIT {(uint32_t)sizeof(gn_config), 0u, NULL, NULL, 0, 0u, NULL, NULL, NULL, NULL}

/* y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c], statistics per (n, group).
 * gamma, beta: shape (C,), dtype of x or float32 (float64 x: float64 only); either may be
 * NULL (then 1 and 0). mean, rstd: NULL, or tensors of shape (N, num_groups), float32
 * (float64 for float64 x), that receive the statistics (rstd = 1 / sqrt(var + eps)). eps
 * is any value, as in PyTorch (var + eps < 0: NaN for that group), used in the compute
 * type (float32, float64 for float64 x). y may be x itself (same data and strides).
 * N = 0 or an empty spatial size returns GN_STATUS_SUCCESS and writes nothing. */
gn_status gn_forward(const DLTensor *x, const DLTensor *gamma, const DLTensor *beta,
                     int64_t num_groups, double eps, DLTensor *y, DLTensor *mean,
                     DLTensor *rstd, const gn_config *config);

/* Gradients of gn_forward (PyTorch's native_group_norm_backward): given dy (x's shape,
 * dtype and layout kind), x, and the mean and rstd gn_forward wrote for it ((N, G), float32;
 * float64 for float64 x), and gamma when the forward had one (NULL: 1):
 *   dx     = rstd * gamma * (dy - mean_g(gamma dy) / gamma - xhat * mean_g(gamma dy xhat) / gamma)
 *   dgamma = sum over n and s of dy * xhat,  dbeta = sum over n and s of dy
 * (xhat = (x - mean) * rstd), computed about the mean (no cancellation when |mean| >> std).
 * Any of dx, dgamma, dbeta may be NULL: not computed. dx may be dy itself (in place);
 * dgamma and dbeta (C,) have gamma's dtype (without gamma: x's dtype or float32; float64
 * x: float64). dgamma
 * and dbeta are reduced over the samples in a fixed order: bit-identical results for any
 * thread count. N = 0 or an empty spatial size: dgamma and dbeta are zero. */
gn_status gn_backward(const DLTensor *dy, const DLTensor *x, const DLTensor *mean,
                      const DLTensor *rstd, const DLTensor *gamma, int64_t num_groups,
                      DLTensor *dx, DLTensor *dgamma, DLTensor *dbeta, const gn_config *config);

/* A constant name for a status, e.g. "GN_STATUS_INVALID_ARGUMENT". */
const char *gn_status_string(gn_status status);

/* Detail of the last failed call on this thread, naming the argument; "" after success. */
const char *gn_last_error_message(void);

/* Threads for CPU kernels, the calling one included, at most 256; 0 restores the default
 * (one per core, or HL_NUM_THREADS); 1 runs every parallel loop in order on the calling
 * thread, with no pool (unless gn_set_thread_pool set one). With n > 1 the library's own
 * pool runs the loops on the calling thread and n - 1 workers, started at the first call;
 * a worker spins for up to 100 us after its last loop (yielding the core after 20 us), then
 * sleeps until the next. A call whose x is smaller than 32 KiB runs its loops in order on
 * the calling thread, whatever the count or pool. Safe at any time: while gn_forward calls
 * are running the change waits until none is (the pool restarts between calls, never under
 * one). */
gn_status gn_set_num_threads(int num_threads);

/* Running on the caller's thread pool (an inference engine's, PyTorch's at::parallel_for,
 * a phone app's). parallel_for(pool, count, task, task_context) must call
 * task(task_context, i) exactly once for every i in [0, count), on any of its threads
 * (the calling one included), return when all have returned, and return 0 or a non-zero
 * value one of them returned. The kernels nest parallel loops, so parallel_for is also
 * called from inside a task: a pool that cannot nest runs such a call's tasks in order on
 * the calling thread. num_workers (>= 1) is how many threads the pool runs tasks
 * on; with 1, tasks run in order on the calling thread and parallel_for is not called.
 * Every CPU variant then runs its parallel loops through it instead of the library's own
 * pool (whose workers are joined). parallel_for = NULL restores the library's own pool
 * (gn_set_num_threads). Like gn_set_num_threads, call it while no gn_forward is running
 * in the process. */
typedef int (*gn_task_fn)(void *task_context, int index);
typedef int (*gn_parallel_for_fn)(void *pool, int count, gn_task_fn task, void *task_context);
gn_status gn_set_thread_pool(gn_parallel_for_fn parallel_for, void *pool, int num_workers);

/* The version of the library linked at run time (the macros give the headers'). Any
 * pointer may be NULL. */
void gn_version(int *major, int *minor, int *patch);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GROUPNORM_GROUPNORM_H */
