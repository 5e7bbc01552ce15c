// gn_set_thread_pool: the kernels' parallel loops (halide_do_par_for) run on the caller's
// pool; gn_set_num_threads(1): in order on the calling thread. The hook is installed in this
// library's Halide runtime, which is private to it (runtime/CMakeLists.txt), so other Halide
// code in the process keeps its own pool.
#include <mutex>

#include "HalideRuntime.h"
#include "errors.h"
#include "groupnorm/groupnorm.h"
#include "threads.h"

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

int caller_do_par_for(void *user_context, halide_task_t body, int min, int size,
                      uint8_t *closure) {
    if (current.num_workers == 1) {  // nothing to gain from a hand-off
        return serial_do_par_for(user_context, body, min, size, closure);
    }
    Loop loop{user_context, body, min, closure};
    return current.parallel_for(current.pool, size, run_iteration, &loop);
}

bool serial_loops = false;  // guarded by set_mutex

// The hook for the state in force (caller: set_mutex held).
void install_do_par_for_locked() {
    if (current.parallel_for) {
        halide_set_custom_do_par_for(caller_do_par_for);
    } else if (serial_loops) {
        halide_set_custom_do_par_for(serial_do_par_for);
    } else {
        halide_set_custom_do_par_for(halide_default_do_par_for);
    }
}

}  // namespace

extern "C" gn_status gn_set_thread_pool(gn_parallel_for_fn parallel_for, void *pool,
                                        int num_workers) {
    clear_error();
    if (parallel_for && num_workers < 1) {
        return fail(GN_STATUS_INVALID_ARGUMENT, "num_workers must be >= 1, got %d", num_workers);
    }
    std::lock_guard<std::mutex> lock(set_mutex);
    current = Pool{parallel_for, pool, parallel_for ? num_workers : 1};
    // Our own workers would only sleep from now on.
    if (parallel_for) halide_shutdown_thread_pool();
    install_do_par_for_locked();
    return GN_STATUS_SUCCESS;
}

void groupnorm::detail::set_serial_loops(bool serial) {
    std::lock_guard<std::mutex> lock(set_mutex);
    serial_loops = serial;
    install_do_par_for_locked();
}
