// The C entry points: validate -> canonicalise -> look up the registry -> call.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include <pthread.h>

#include "HalideRuntime.h"
#include "canonicalise.h"
#include "cuda_interop.h"
#include "dispatch.h"
#include "errors.h"
#include "isa.h"
#include "prefetch_policy.h"
#include "threads.h"
#include "worker_pool.h"
#include "groupnorm/groupnorm.h"

using namespace groupnorm::detail;

namespace {

// Reads the fields a caller's gn_config covers; the rest keep their defaults.
gn_status read_config(const gn_config *config, gn_config *out) {
    *out = GN_CONFIG_INIT;
    if (!config) return GN_STATUS_SUCCESS;
    if (config->struct_size < sizeof(uint32_t)) {
        return fail(GN_STATUS_INVALID_ARGUMENT,
                    "config->struct_size must be set to sizeof(gn_config), got %u",
                    config->struct_size);
    }
    if (config->struct_size >= offsetof(gn_config, flags) + sizeof(uint32_t)) {
        if (config->flags != 0) {
            return fail(GN_STATUS_INVALID_ARGUMENT, "config->flags must be 0, got %u",
                        config->flags);
        }
        out->flags = config->flags;
    }
    if (config->struct_size >= offsetof(gn_config, cuda_stream) + sizeof(void *)) {
        out->cuda_context = config->cuda_context;
        out->cuda_stream = config->cuda_stream;
    }
    if (config->struct_size >= offsetof(gn_config, activation) + sizeof(int32_t)) {
        if (config->activation < GN_ACTIVATION_NONE ||
            config->activation > GN_ACTIVATION_GELU_TANH) {
            return fail(GN_STATUS_INVALID_ARGUMENT,
                        "config->activation must be a gn_activation (0 none, 1 SiLU, 2 ReLU, "
                        "3 GELU, 4 GELU tanh), got %d",
                        (int)config->activation);
        }
        out->activation = config->activation;
    }
    if (config->struct_size >= offsetof(gn_config, reserved) + sizeof(uint32_t)) {
        if (config->reserved != 0) {
            return fail(GN_STATUS_INVALID_ARGUMENT, "config->reserved must be 0, got %u",
                        config->reserved);
        }
    }
    if (config->struct_size >= offsetof(gn_config, beta) + sizeof(void *)) {
        out->beta = config->beta;
    }
    if (config->struct_size >= offsetof(gn_config, sum) + sizeof(void *)) {
        out->skip = config->skip;
        out->skip_bias = config->skip_bias;
        out->sum = config->sum;
    }
    return GN_STATUS_SUCCESS;
}

// The thread pool must not be resized while a kernel runs on it (Halide's, used before,
// aborted the process; ours would lose workers mid-loop). Calls in flight are counted; a
// thread count set while any runs is applied when the last one returns, before the next
// starts.
std::mutex pool_mutex;
int calls_running = 0;       // guarded by pool_mutex
int pending_threads = -1;    // guarded by pool_mutex; -1: none pending

// A forked child runs none of the parent's calls, and the lock may have been held by one.
void reset_calls_in_child() {
    new (&pool_mutex) std::mutex();
    calls_running = 0;
}
const int reset_registered = pthread_atfork(nullptr, nullptr, reset_calls_in_child);

void apply_num_threads_locked(int num_threads) {
    set_thread_count(num_threads == 0 ? default_thread_count() : num_threads);
    pending_threads = -1;
}

// Marks a kernel call in flight for its scope, and runs a small one's loops in order.
struct PoolUse {
    explicit PoolUse(const Problem &p)
        : in_order(p.N * p.C * p.S * dtype_bytes(p.dtype) < kInOrderBytes) {
        std::lock_guard<std::mutex> lock(pool_mutex);
        calls_running++;
    }
    ~PoolUse() {
        std::lock_guard<std::mutex> lock(pool_mutex);
        if (--calls_running == 0 && pending_threads >= 0) apply_num_threads_locked(pending_threads);
    }
    PoolUse(const PoolUse &) = delete;
    PoolUse &operator=(const PoolUse &) = delete;
    InOrderCall in_order;
};

}  // namespace

extern "C" gn_status gn_forward(const DLTensor *x, const DLTensor *gamma, const DLTensor *beta,
                                int64_t num_groups, double eps, DLTensor *y, DLTensor *mean,
                                DLTensor *rstd, const gn_config *config) {
    clear_error();
    gn_config cfg;
    if (gn_status st = read_config(config, &cfg)) return st;
    if (cfg.beta) {
        return fail(GN_STATUS_INVALID_ARGUMENT,
                    "config->beta is gn_backward's; gn_forward takes beta as an argument");
    }
    Problem problem;
    if (gn_status st = validate_forward(x, gamma, beta, num_groups, eps, y, mean, rstd, &problem)) {
        return st;
    }
    problem.activation = cfg.activation;
    if (gn_status st = check_activation_dtype(problem)) return st;
    if (cfg.skip || cfg.skip_bias || cfg.sum) {
        if (gn_status st = validate_residual(x, cfg.skip, cfg.skip_bias, cfg.sum, &problem)) {
            return st;
        }
    }
    if (problem.empty()) return GN_STATUS_SUCCESS;
    gn_status lookup = GN_STATUS_SUCCESS;
    const Variant *variant = find_variant(problem, &lookup);
    if (!variant) return lookup;
    if (gn_status st = install_cpu_isa_cap()) return st;
    if (gn_status st = install_prefetch_policy()) return st;
    PoolUse pool_use(problem);
    return run_forward(*variant, problem, eps, &cfg);
}

namespace {

// dgamma and dbeta of an empty problem: sums over nothing, zero.
gn_status zero_param_grads(const Problem &p) {
    const size_t bytes = size_t(p.C) * dtype_bytes(p.param_dtype);
    for (void *grad : {p.dgamma, p.dbeta}) {
        if (!grad) continue;
        if (p.device == GN_DEVICE_CPU) {
            std::memset(grad, 0, bytes);
            continue;
        }
        const CudaDriver *driver = cuda_driver();
        const std::vector<uint8_t> zeros(bytes, 0);
        if (!driver || driver->cuMemcpyHtoD(reinterpret_cast<uintptr_t>(grad), zeros.data(), bytes)) {
            return fail(GN_STATUS_DEVICE_UNAVAILABLE, "cannot zero dgamma/dbeta on the CUDA device");
        }
    }
    return GN_STATUS_SUCCESS;
}

}  // namespace

extern "C" gn_status gn_backward(const DLTensor *dy, const DLTensor *x, const DLTensor *mean,
                                 const DLTensor *rstd, const DLTensor *gamma,
                                 int64_t num_groups, DLTensor *dx, DLTensor *dgamma,
                                 DLTensor *dbeta, const gn_config *config) {
    clear_error();
    gn_config cfg;
    if (gn_status st = read_config(config, &cfg)) return st;
    if (cfg.skip || cfg.skip_bias || cfg.sum) {
        return fail(GN_STATUS_INVALID_ARGUMENT,
                    "config->skip, skip_bias and sum are gn_forward's (a residual's gradient is "
                    "dx: pass the forward's sum as x)");
    }
    Problem problem;
    if (gn_status st = validate_backward(dy, x, mean, rstd, gamma, num_groups, dx, dgamma,
                                         dbeta, &problem)) {
        return st;
    }
    if (gn_status st = validate_backward_activation(cfg.activation, cfg.beta, &problem)) {
        return st;
    }
    if (problem.empty()) return zero_param_grads(problem);
    gn_status lookup = GN_STATUS_SUCCESS;
    const Variant *variant = find_variant(problem, &lookup);
    if (!variant) return lookup;
    if (gn_status st = install_cpu_isa_cap()) return st;
    if (gn_status st = install_prefetch_policy()) return st;
    PoolUse pool_use(problem);
    return run_backward(*variant, problem, &cfg);
}

extern "C" gn_status gn_set_num_threads(int num_threads) {
    clear_error();
    if (num_threads < 0 || num_threads > kMaxThreads) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "num_threads must be in [0, %d], got %d",
                    kMaxThreads, num_threads);
    }
    std::lock_guard<std::mutex> lock(pool_mutex);
    if (calls_running > 0) {
        pending_threads = num_threads;  // applied when the running calls have returned
    } else {
        apply_num_threads_locked(num_threads);
    }
    return GN_STATUS_SUCCESS;
}
