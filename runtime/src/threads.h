// How the kernels' parallel loops run (threads.cpp): on the caller's pool
// (gn_set_thread_pool), in order on the calling thread when one thread is asked for, or on
// the library's own pool (worker_pool.h).
#pragma once

namespace groupnorm::detail {

// gn_set_num_threads's count, the calling thread included (>= 1). One runs every parallel
// loop's iterations in order on the calling thread (Halide's pool of one thread queued each
// iteration under a lock: 7-11% of the time of small calls); more, on the library's pool.
// A caller's pool, when one is set, takes precedence. Only while no kernel runs.
void set_thread_count(int threads);

}  // namespace groupnorm::detail
