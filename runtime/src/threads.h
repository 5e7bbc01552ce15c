// How the kernels' parallel loops run (threads.cpp): on the caller's pool
// (gn_set_thread_pool), in order on the calling thread when one thread is asked for, or on
// Halide's pool.
#pragma once

namespace groupnorm::detail {

// gn_set_num_threads(1): true runs every parallel loop's iterations in order on the
// calling thread (Halide's pool of one thread queued each iteration under a lock: 7-11% of
// the time of small calls). A caller's pool, when one is set, takes precedence.
void set_serial_loops(bool serial);

}  // namespace groupnorm::detail
