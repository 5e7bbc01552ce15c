// gn_set_thread_pool: every CPU variant runs its parallel loops on a pool of the caller's,
// here one that counts the tasks it ran and on which threads.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "backward_case.h"
#include "forward_case.h"
#include "registry_cases.h"
#include "groupnorm/groupnorm.h"
#include "reference.h"
#include "registry.h"
#include "threads.h"

using namespace gntest;

namespace {

namespace gd = groupnorm::detail;

// A pool of `workers` threads started per call (plain, not fast: the test counts).
struct CountingPool {
    int workers = 2;
    int fail_with = 0;  // non-zero: refuse to run anything and return this
    std::atomic<long> calls{0}, tasks{0}, tasks_off_caller{0};

    static int parallel_for(void *self, int count, gn_task_fn task, void *task_context) {
        auto *pool = static_cast<CountingPool *>(self);
        pool->calls++;
        if (pool->fail_with) return pool->fail_with;
        std::atomic<int> next{0}, result{0};
        const std::thread::id caller = std::this_thread::get_id();
        auto work = [&] {
            for (int i; (i = next++) < count;) {
                pool->tasks++;
                if (std::this_thread::get_id() != caller) pool->tasks_off_caller++;
                if (int r = task(task_context, i)) {
                    int zero = 0;
                    result.compare_exchange_strong(zero, r);
                }
            }
        };
        std::vector<std::thread> threads;
        for (int t = 1; t < pool->workers; t++) threads.emplace_back(work);
        work();  // the calling thread is one of the workers
        for (std::thread &t : threads) t.join();
        return result;
    }
};

// Restores the library's own pool whatever a test does.
struct ThreadPoolTest : ::testing::Test {
    void TearDown() override { ASSERT_EQ(gn_set_thread_pool(nullptr, nullptr, 0), GN_STATUS_SUCCESS); }
};

// gn_forward (with a residual term for residual variants) or gn_backward (v's op) on a
// problem that `v` (an any-shape CPU variant) serves, checked.
void run_case(const gd::Variant &v, std::mt19937_64 &rng,
              const Shape &shape = {{2, 32, 17, 17}, 8}) {
    const Layout layout = test_layouts(v.layout)[0];
    if (v.op == gd::GN_OP_BACKWARD) {
        BackwardCase c(shape, test_dtype(v.dtype), test_dtype(v.param_dtype), layout, true, 1.5,
                       1.0, rng);
        ASSERT_EQ(c.run(), GN_STATUS_SUCCESS) << gn_last_error_message();
        EXPECT_TRUE(matches_backward_reference(c.reference(), &c.dx, &c.dgamma, &c.dbeta, c.G));
        return;
    }
    ForwardCase c(shape, test_dtype(v.dtype), test_dtype(v.param_dtype), layout, true, 1.5, rng);
    // The residual variants: a zero skip_bias makes the problem theirs, the result plain.
    const Param zero_bias(std::vector<double>(shape.dims[1], 0.0), test_dtype(v.param_dtype));
    gn_config config = GN_CONFIG_INIT;
    if (v.op == gd::GN_OP_FORWARD_RESIDUAL) config.skip_bias = zero_bias.dl();
    ASSERT_EQ(gn_forward(c.x.dl(), c.g(), c.b(), shape.G, 1e-5, c.y.dl(), nullptr, nullptr,
                         &config),
              GN_STATUS_SUCCESS)
        << gn_last_error_message();
    EXPECT_TRUE(matches_reference(c.y, c.reference(shape.G, 1e-5)));
}

TEST_F(ThreadPoolTest, EveryCpuVariantRunsOnTheCallersPool) {
    std::mt19937_64 rng(fresh_seed());
    CountingPool pool;
    ASSERT_EQ(gn_set_thread_pool(CountingPool::parallel_for, &pool, pool.workers),
              GN_STATUS_SUCCESS);
    size_t count = 0;
    const gd::Variant *all = gd::all_variants(&count);
    int variants = 0;
    for (size_t i = 0; i < count; i++) {
        const gd::Variant &v = all[i];
        if (v.device != gd::GN_DEVICE_CPU) continue;
        SCOPED_TRACE(v.name);
        const long before = pool.tasks;
        run_case(v, rng);
        EXPECT_GT(pool.tasks, before) << "no parallel loop ran on the caller's pool";
        variants++;
    }
    EXPECT_GT(variants, 0);
    EXPECT_GT(pool.tasks_off_caller, 0) << "every task ran on the calling thread";

    // Back to the library's own pool: the caller's is no longer called.
    ASSERT_EQ(gn_set_thread_pool(nullptr, nullptr, 0), GN_STATUS_SUCCESS);
    const long calls = pool.calls;
    run_case(all[0], rng);
    EXPECT_EQ(pool.calls, calls);
}

TEST_F(ThreadPoolTest, OneWorkerRunsOnTheCallingThreadWithoutThePool) {
    std::mt19937_64 rng(fresh_seed());
    CountingPool pool;
    ASSERT_EQ(gn_set_thread_pool(CountingPool::parallel_for, &pool, 1), GN_STATUS_SUCCESS);
    size_t count = 0;
    run_case(gd::all_variants(&count)[0], rng);
    EXPECT_EQ(pool.calls, 0);
}

// gn_set_num_threads(1) runs the loops in order on the calling thread; a caller's pool set
// afterwards still takes them, and removing it goes back to one thread.
TEST_F(ThreadPoolTest, ACallersPoolTakesPrecedenceOverOneThread) {
    std::mt19937_64 rng(fresh_seed());
    size_t count = 0;
    const gd::Variant &v = gd::all_variants(&count)[0];
    ASSERT_EQ(gn_set_num_threads(1), GN_STATUS_SUCCESS);
    run_case(v, rng);
    CountingPool pool;
    ASSERT_EQ(gn_set_thread_pool(CountingPool::parallel_for, &pool, pool.workers),
              GN_STATUS_SUCCESS);
    run_case(v, rng);
    EXPECT_GT(pool.calls, 0) << "one thread took the loops from the caller's pool";
    ASSERT_EQ(gn_set_thread_pool(nullptr, nullptr, 0), GN_STATUS_SUCCESS);
    const long calls = pool.calls;
    run_case(v, rng);
    EXPECT_EQ(pool.calls, calls);
    ASSERT_EQ(gn_set_num_threads(0), GN_STATUS_SUCCESS);
    run_case(v, rng);
}

// A call with less than kInOrderBytes of x runs its loops in order on the calling thread,
// without the caller's pool (or the library's); the shape above (at least 37 KB) uses it.
TEST_F(ThreadPoolTest, ASmallCallRunsInOrder) {
    std::mt19937_64 rng(fresh_seed());
    size_t count = 0;
    const gd::Variant &v = gd::all_variants(&count)[0];
    CountingPool pool;
    ASSERT_EQ(gn_set_thread_pool(CountingPool::parallel_for, &pool, pool.workers),
              GN_STATUS_SUCCESS);
    const Shape small{{2, 32, 9, 9}, 8};  // 5184 values
    ASSERT_LT(5184 * 4, gd::kInOrderBytes);
    run_case(v, rng, small);
    EXPECT_EQ(pool.calls, 0) << "a small call handed its loops out";
    run_case(v, rng);
    EXPECT_GT(pool.calls, 0);
}

TEST_F(ThreadPoolTest, APoolsFailureIsReported) {
    CountingPool pool;
    pool.fail_with = -7;
    ASSERT_EQ(gn_set_thread_pool(CountingPool::parallel_for, &pool, 2), GN_STATUS_SUCCESS);
    Tensor x({2, 32, 17, 17}, DType::F32), y({2, 32, 17, 17}, DType::F32);
    std::mt19937_64 rng(fresh_seed());
    x.fill_normal(rng, 0, 1);
    EXPECT_EQ(gn_forward(x.dl(), nullptr, nullptr, 8, 1e-5, y.dl(), nullptr, nullptr, nullptr),
              GN_STATUS_INTERNAL_ERROR);
    EXPECT_GT(pool.calls, 0);
}

TEST_F(ThreadPoolTest, RefusesNoWorkers) {
    CountingPool pool;
    EXPECT_EQ(gn_set_thread_pool(CountingPool::parallel_for, &pool, 0),
              GN_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(gn_last_error_message()).find("num_workers"), std::string::npos);
}

}  // namespace
