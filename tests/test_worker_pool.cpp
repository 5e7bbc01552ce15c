// The library's own pool (runtime/src/worker_pool.h), driven directly with Halide-style
// loops: every iteration exactly once, nested loops, concurrent callers, errors, workers
// that take part, and loops that finish with no worker at all. Part of the stress binary,
// which CI also runs under ThreadSanitizer.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "groupnorm/groupnorm.h"
#include "worker_pool.h"

#if defined(__SANITIZE_THREAD__)
#define GN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GN_TSAN 1
#endif
#endif

namespace {

namespace gd = groupnorm::detail;

// A loop's closure: a count per iteration, the thread each ran on, a nested loop's size.
struct Counts {
    std::vector<std::atomic<int>> runs;
    std::vector<std::thread::id> ran_on;
    int inner = 0;  // > 0: every iteration runs a nested loop of this size
    Counts *inner_counts = nullptr;
    int fail_at = -1;  // this iteration returns 7
    explicit Counts(int n) : runs(n), ran_on(n) {}
};

int count_body(void *, int i, uint8_t *closure) {
    auto *c = reinterpret_cast<Counts *>(closure);
    c->ran_on[i] = std::this_thread::get_id();  // before the count, which publishes it
    c->runs[i]++;
    if (c->inner > 0) {
        // Iteration i owns inner iterations [i * inner, (i + 1) * inner).
        if (int r = gd::worker_pool_do_par_for(nullptr, count_body, i * c->inner, c->inner,
                                               reinterpret_cast<uint8_t *>(c->inner_counts))) {
            return r;
        }
    }
    return i == c->fail_at ? 7 : 0;
}

void expect_each_once(const Counts &c) {
    for (size_t i = 0; i < c.runs.size(); i++) EXPECT_EQ(c.runs[i], 1) << "iteration " << i;
}

int run(Counts &c, int min, int size) {
    return gd::worker_pool_do_par_for(nullptr, count_body, min, size,
                                      reinterpret_cast<uint8_t *>(&c));
}

// The pool as gn_set_num_threads(threads) leaves it, restored to the default after.
struct WorkerPool : ::testing::Test {
    void SetUp() override { ASSERT_EQ(gn_set_num_threads(2), GN_STATUS_SUCCESS); }
    void TearDown() override { ASSERT_EQ(gn_set_num_threads(0), GN_STATUS_SUCCESS); }
};

TEST_F(WorkerPool, EveryIterationOnce) {
    for (int size : {0, 1, 2, 3, 17, 1000}) {
        SCOPED_TRACE(size);
        Counts c(size + 5);
        ASSERT_EQ(run(c, 5, size), 0);
        for (int i = 0; i < 5; i++) EXPECT_EQ(c.runs[i], 0);
        for (int i = 5; i < size + 5; i++) EXPECT_EQ(c.runs[i], 1) << "iteration " << i;
    }
}

TEST_F(WorkerPool, NestedLoopsEveryIterationOnce) {
    for (int outer : {1, 2, 3, 8}) {
        SCOPED_TRACE(outer);
        Counts inner(outer * 13);
        Counts c(outer);
        c.inner = 13;
        c.inner_counts = &inner;
        ASSERT_EQ(run(c, 0, outer), 0);
        expect_each_once(c);
        expect_each_once(inner);
    }
}

TEST_F(WorkerPool, AnIterationsErrorIsReturned) {
    Counts c(50);
    c.fail_at = 31;
    EXPECT_EQ(run(c, 0, 50), 7);
    for (int i = 0; i < 50; i++) EXPECT_LE(c.runs[i], 1);
    EXPECT_EQ(c.runs[31], 1);
}

TEST_F(WorkerPool, ConcurrentCallersWithNestedLoops) {
    constexpr int kCallers = 12, kOuter = 3, kInner = 40, kRounds = 30;
    std::vector<std::thread> callers;
    std::atomic<int> failures{0};
    for (int t = 0; t < kCallers; t++) {
        callers.emplace_back([&] {
            for (int r = 0; r < kRounds; r++) {
                Counts inner(kOuter * kInner), c(kOuter);
                c.inner = kInner;
                c.inner_counts = &inner;
                if (run(c, 0, kOuter) != 0) failures++;
                for (auto &n : c.runs) failures += n != 1;
                for (auto &n : inner.runs) failures += n != 1;
            }
        });
    }
    for (std::thread &t : callers) t.join();
    EXPECT_EQ(failures, 0);
}

// Iteration 0 holds the calling thread until another iteration has run elsewhere: a
// worker joined the loop (or 10 s passed, and the test fails).
int wait_for_a_worker(void *, int i, uint8_t *closure) {
    auto *c = reinterpret_cast<Counts *>(closure);
    c->ran_on[i] = std::this_thread::get_id();  // before the count, which publishes it
    c->runs[i]++;
    if (i != 0) return 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        for (size_t k = 1; k < c->runs.size(); k++) {
            if (c->runs[k].load() != 0 && c->ran_on[k] != c->ran_on[0]) return 0;
        }
        std::this_thread::yield();
    }
    return 0;
}

TEST_F(WorkerPool, AWorkerTakesPart) {
    // Also after a change of thread count (the workers restart) and with the workers asleep.
    for (int round = 0; round < 3; round++) {
        SCOPED_TRACE(round);
        if (round == 1) ASSERT_EQ(gn_set_num_threads(3), GN_STATUS_SUCCESS);
        if (round == 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        Counts c(4);
        ASSERT_EQ(gd::worker_pool_do_par_for(nullptr, wait_for_a_worker, 0, 4,
                                             reinterpret_cast<uint8_t *>(&c)),
                  0);
        expect_each_once(c);
        int off_caller = 0;
        for (int i = 1; i < 4; i++) off_caller += c.ran_on[i] != c.ran_on[0];
        EXPECT_GT(off_caller, 0) << "no iteration ran on a worker";
    }
}

// An iteration that fails only on a worker: its result is the loop's.
std::thread::id failing_caller;
int fail_on_a_worker(void *uc, int i, uint8_t *closure) {
    wait_for_a_worker(uc, i, closure);
    return std::this_thread::get_id() == failing_caller ? 0 : 9;
}

TEST_F(WorkerPool, AWorkersErrorIsReturned) {
    failing_caller = std::this_thread::get_id();
    Counts c(4);
    EXPECT_EQ(gd::worker_pool_do_par_for(nullptr, fail_on_a_worker, 0, 4,
                                         reinterpret_cast<uint8_t *>(&c)),
              9);
    EXPECT_EQ(c.runs[0], 1);
}

// Outer iteration 1 runs a nested loop whose iteration 0 waits for another thread to run
// one of its iterations. Whichever thread runs outer iteration 0 (the caller, then waiting
// for its helper, or the worker) must help that nested loop.
Counts *nested_waiting = nullptr;
int outer_with_a_waiting_nested_loop(void *, int i, uint8_t *) {
    if (i != 1) return 0;
    return gd::worker_pool_do_par_for(nullptr, wait_for_a_worker, 0, 3,
                                      reinterpret_cast<uint8_t *>(nested_waiting));
}

TEST_F(WorkerPool, ANestedLoopIsHelped) {
    for (int round = 0; round < 8; round++) {
        SCOPED_TRACE(round);
        Counts inner(3);
        nested_waiting = &inner;
        ASSERT_EQ(gd::worker_pool_do_par_for(nullptr, outer_with_a_waiting_nested_loop, 0, 2,
                                             nullptr),
                  0);
        expect_each_once(inner);
        int off = 0;
        for (int i = 1; i < 3; i++) off += inner.ran_on[i] != inner.ran_on[0];
        EXPECT_GT(off, 0) << "nobody helped the nested loop";
    }
}

TEST_F(WorkerPool, WithoutWorkersTheCallerRunsEverything) {
    gd::worker_pool_resize(0);
    Counts inner(3 * 9), c(3);
    c.inner = 9;
    c.inner_counts = &inner;
    ASSERT_EQ(run(c, 0, 3), 0);
    expect_each_once(c);
    expect_each_once(inner);
    for (auto &id : inner.ran_on) EXPECT_EQ(id, std::this_thread::get_id());
}

// A child forked while another thread runs loops (nested, taking slots) gets a pool of its
// own: its loops run, a worker of its own takes part, and a thread count can be set (no
// wait for the parent's workers, slots or locks). ThreadSanitizer does not support
// threads started after a fork of a threaded process, so its build skips this.
TEST_F(WorkerPool, AForkedChildHasAPoolOfItsOwn) {
#if defined(GN_TSAN)
    GTEST_SKIP() << "ThreadSanitizer: no threads after a multi-threaded fork";
#else
    Counts warm(64);
    ASSERT_EQ(run(warm, 0, 64), 0);  // the parent's workers are started
    std::atomic<bool> done{false};
    std::thread busy([&] {
        while (!done) {
            Counts inner(2 * 50), c(2);
            c.inner = 50;
            c.inner_counts = &inner;
            run(c, 0, 2);
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        alarm(20);  // a hang fails the parent's check below
        Counts c(4);
        int bad = gd::worker_pool_do_par_for(nullptr, wait_for_a_worker, 0, 4,
                                             reinterpret_cast<uint8_t *>(&c)) != 0;
        int off_caller = 0;
        for (int i = 1; i < 4; i++) off_caller += c.ran_on[i] != c.ran_on[0];
        bad |= off_caller == 0;
        bad |= gn_set_num_threads(3) != GN_STATUS_SUCCESS;
        Counts d(100);
        bad |= run(d, 0, 100) != 0;
        for (auto &n : d.runs) bad |= n != 1;
        _exit(bad ? 3 : 0);  // not exit(): the busy thread's vectors, on a stack the child
                             // does not have, would read as leaks to LeakSanitizer
    }
    done = true;
    busy.join();
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status)) << "the child did not exit (signal "
                                   << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << ")";
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's loops were wrong";
#endif
}

}  // namespace
