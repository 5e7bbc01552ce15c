// gn_set_thread_pool: the kernels' parallel loops (halide_do_par_for) run on the caller's
// pool; gn_set_num_threads(1): in order on the calling thread; otherwise on the library's
// own pool (worker_pool.h), never on Halide's. The hook is installed in this library's
// Halide runtime, which is private to it (runtime/CMakeLists.txt), so other Halide code in
// the process keeps its own pool.
#include <mutex>
#include <new>

#include <pthread.h>

#include "HalideRuntime.h"
#include "errors.h"
#include "groupnorm/groupnorm.h"
#include "threads.h"
#include "worker_pool.h"

using namespace groupnorm::detail;

namespace {

struct Pool {
    gn_parallel_for_fn parallel_for = nullptr;
    void *pool = nullptr;
    int num_workers = 1;
};
Pool current;  // written only by gn_set_thread_pool, while no call runs (documented)
std::mutex set_mutex;

// One Halide parallel loop, as the caller's tasks: iteration min + index.
struct Loop {
    void *user_context;
    halide_task_t body;
    int min;
    uint8_t *closure;
};

int run_iteration(void *task_context, int index) {
    const Loop *loop = static_cast<const Loop *>(task_context);
    return loop->body(loop->user_context, loop->min + index, loop->closure);
}

int serial_do_par_for(void *user_context, halide_task_t body, int min, int size,
                      uint8_t *closure) {
    for (int i = 0; i < size; i++) {
        if (int code = body(user_context, min + i, closure)) return code;
    }
    return 0;
}

thread_local bool call_in_order = false;  // InOrderCall: this call is too small to share

int caller_do_par_for(void *user_context, halide_task_t body, int min, int size,
                      uint8_t *closure) {
    if (current.num_workers == 1 || call_in_order) {  // nothing to gain from a hand-off
        return serial_do_par_for(user_context, body, min, size, closure);
    }
    Loop loop{user_context, body, min, closure};
    return current.parallel_for(current.pool, size, run_iteration, &loop);
}

int own_pool_do_par_for(void *user_context, halide_task_t body, int min, int size,
                        uint8_t *closure) {
    if (call_in_order) return serial_do_par_for(user_context, body, min, size, closure);
    return groupnorm::detail::worker_pool_do_par_for(user_context, body, min, size, closure);
}

int thread_count = default_thread_count();  // guarded by set_mutex

// The hook for the state in force, and the library pool's workers (caller: set_mutex held,
// no kernel running).
void install_do_par_for_locked() {
    const bool own_pool = !current.parallel_for && thread_count > 1;
    worker_pool_resize(own_pool ? thread_count - 1 : 0);
    if (current.parallel_for) {
        halide_set_custom_do_par_for(caller_do_par_for);
    } else if (!own_pool) {
        halide_set_custom_do_par_for(serial_do_par_for);
    } else {
        halide_set_custom_do_par_for(own_pool_do_par_for);
    }
}

// A forked child: the lock may have been held by a thread it does not have.
void reset_lock_in_child() { new (&set_mutex) std::mutex(); }
const int reset_registered = pthread_atfork(nullptr, nullptr, reset_lock_in_child);

// The default state from the start, before any gn_set_* call.
const bool installed_at_load = [] {
    std::lock_guard<std::mutex> lock(set_mutex);
    install_do_par_for_locked();
    return true;
}();

}  // namespace

extern "C" gn_status gn_set_thread_pool(gn_parallel_for_fn parallel_for, void *pool,
                                        int num_workers) {
    clear_error();
    if (parallel_for && num_workers < 1) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "num_workers must be >= 1, got %d", num_workers);
    }
    std::lock_guard<std::mutex> lock(set_mutex);
    current = Pool{parallel_for, pool, parallel_for ? num_workers : 1};
    install_do_par_for_locked();  // our own workers stop while the caller's pool is set
    return GN_STATUS_SUCCESS;
}

groupnorm::detail::InOrderCall::InOrderCall(bool small) : previous_(call_in_order) {
    call_in_order = previous_ || small;
}

groupnorm::detail::InOrderCall::~InOrderCall() { call_in_order = previous_; }

void groupnorm::detail::set_thread_count(int threads) {
    std::lock_guard<std::mutex> lock(set_mutex);
    thread_count = threads;
    install_do_par_for_locked();
}
