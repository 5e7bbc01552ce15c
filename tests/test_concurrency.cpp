// Concurrency stress (issue "Reliability"): 16 threads call gn_forward on mixed shapes,
// dtypes and layouts, each result bit-identical to the same call made serially, while
// another thread keeps changing the thread count (gn_set_num_threads used to restart
// Halide's pool under running kernels: "Logic error in thread pool work queue
// initialization", an abort). Also run under ThreadSanitizer (scripts/ci_sanitizers.sh).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "forward_case.h"
#include "groupnorm/groupnorm.h"

using namespace gntest;

namespace {

struct Job {
    Shape shape;
    DType dtype, param_dtype;
    Layout layout;
    bool affine;
    uint64_t seed;
};

std::vector<Job> jobs() {
    std::vector<Job> out;
    const DType types[] = {DType::F32, DType::F16, DType::BF16, DType::F64};
    const Layout layouts[] = {Layout::Contiguous, Layout::ChannelsLast, Layout::ChannelSlice,
                              Layout::PaddedBatchNhwc};
    uint64_t seed = 1;
    for (size_t i = 0; i < core_shapes().size(); i++) {
        const Shape &s = core_shapes()[i];
        const DType t = types[i % 4];
        const Layout l = s.dims.size() > 2 ? layouts[i % 4] : Layout::Contiguous;
        // Mixed float32 parameters for the half types (float64 takes float64 ones only).
        const DType pt = i % 2 && t != DType::F64 ? DType::F32 : t;
        out.push_back({s, t, pt, l, i % 3 != 1, seed++});
    }
    return out;
}

// y, mean and rstd of one call, as float64 values (exact images of the stored values).
struct Result {
    std::vector<double> y, mean, rstd;
    bool operator==(const Result &o) const {
        return y == o.y && mean == o.mean && rstd == o.rstd;
    }
};

Result run(const Job &j) {
    std::mt19937_64 rng(j.seed);
    ForwardCase fc(j.shape, j.dtype, j.param_dtype, j.layout, j.affine, 3.0, rng);
    const gn_status st = gn_forward(fc.x.dl(), fc.g(), fc.b(), j.shape.G, 1e-5, fc.y.dl(),
                                    fc.mean.dl(), fc.rstd.dl(), nullptr);
    Result r;
    if (st != GN_STATUS_SUCCESS) {
        ADD_FAILURE() << to_string(j.shape.dims) << ": " << gn_last_error_message();
        return r;
    }
    for (int64_t n = 0; n < fc.x.N(); n++) {
        for (int64_t c = 0; c < fc.x.C(); c++) {
            for (int64_t s = 0; s < fc.x.S(); s++) r.y.push_back(fc.y.get(n, c, s));
        }
        for (int64_t g = 0; g < j.shape.G; g++) {
            r.mean.push_back(fc.mean.get(n, g, 0));
            r.rstd.push_back(fc.rstd.get(n, g, 0));
        }
    }
    return r;
}

TEST(Concurrency, SixteenThreadsBitIdenticalWhileThreadCountChanges) {
    const std::vector<Job> all = jobs();
    std::vector<Result> serial;
    for (const Job &j : all) serial.push_back(run(j));

    const int rounds = std::getenv("GN_STRESS_ROUNDS") ? std::atoi(std::getenv("GN_STRESS_ROUNDS")) : 20;
    std::atomic<bool> done{false};
    std::atomic<int> mismatches{0}, set_failures{0}, sets{0};
    std::thread changer([&] {
        const int counts[] = {1, 2, 3, 0, 4, 1};
        for (int i = 0; !done.load(); i++) {
            if (gn_set_num_threads(counts[i % 6]) != GN_STATUS_SUCCESS) set_failures++;
            sets++;
            std::this_thread::yield();
        }
    });
    std::vector<std::thread> workers;
    for (int t = 0; t < 16; t++) {
        workers.emplace_back([&, t] {
            for (int r = 0; r < rounds; r++) {
                for (size_t k = 0; k < all.size(); k++) {
                    const size_t i = (k + t * 5 + r) % all.size();
                    if (!(run(all[i]) == serial[i])) mismatches++;
                }
            }
        });
    }
    for (auto &w : workers) w.join();
    done = true;
    changer.join();
    EXPECT_EQ(mismatches.load(), 0);
    EXPECT_EQ(set_failures.load(), 0);
    EXPECT_GT(sets.load(), 0);
    EXPECT_EQ(gn_set_num_threads(0), GN_STATUS_SUCCESS);
}

TEST(Concurrency, ThreadCountRange) {
    EXPECT_EQ(gn_set_num_threads(-1), GN_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(gn_set_num_threads(100000), GN_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(gn_last_error_message()).find("num_threads"), std::string::npos);
    EXPECT_EQ(gn_set_num_threads(256), GN_STATUS_SUCCESS);
    EXPECT_EQ(gn_set_num_threads(0), GN_STATUS_SUCCESS);
}

}  // namespace
