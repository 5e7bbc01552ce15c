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

// Calls whose x has fewer bytes than this run their loops in order on the calling thread,
// whatever the pool: below it, handing out the groups costs what a second thread saves.
// 2 threads / 1 on the library's pool (f32, forward; forward + backward): 1x32x8x8 (8 KB)
// 0.67-0.93x before this rule, 1x32x16x16 (32 KB) 1.22x; 1.08x, 1x64x16x16 0.93-1.34x;
// 1.06-1.11x, 2x64x16x16 (128 KB) 1.53x; 1.60x.
constexpr long long kInOrderBytes = 32 << 10;

// For its scope, this thread's calls run their loops in order when `small` (nests).
class InOrderCall {
public:
    explicit InOrderCall(bool small);
    ~InOrderCall();
    InOrderCall(const InOrderCall &) = delete;
    InOrderCall &operator=(const InOrderCall &) = delete;

private:
    bool previous_;
};

}  // namespace groupnorm::detail
