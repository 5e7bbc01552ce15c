// The library's own pool for two threads or more (worker_pool.cpp): the kernels' parallel
// loops, nested ones included, shared out between the calling thread and workers that
// spin briefly between calls before they sleep.
#pragma once

#include <cstdint>

#include "HalideRuntime.h"

namespace groupnorm::detail {

constexpr int kMaxThreads = 256;  // the most gn_set_num_threads accepts

// Runs iterations [min, min + size) of a Halide parallel loop (halide_do_par_for's
// signature). The caller runs iterations too and returns when all have; workers that are
// awake help. Any thread may call it, from inside an iteration too (nested loops).
int worker_pool_do_par_for(void *user_context, halide_task_t body, int min, int size,
                           uint8_t *closure);

// Joins the running workers; the next loop starts `workers` threads (0: none). Only while
// no loop runs on the pool (api.cpp applies thread counts between calls). Until the first
// call the pool wants default_thread_count() - 1.
void worker_pool_resize(int workers);

// The default thread count, the calling thread included: HL_NUM_THREADS when set (as
// Halide's pool reads it), else one per hardware thread; within [1, kMaxThreads].
int default_thread_count();

}  // namespace groupnorm::detail
