// `groupnorm bench`: gn_forward on the benchmark suite against a memory roofline.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "HalideRuntime.h"
#include "bench/suite.h"
#include "commands.h"
#include "groupnorm/groupnorm.h"
#include "support/layout.h"
#include "support/roofline.h"

namespace groupnorm::tools {
namespace {

using support::DLTensorView;

template <typename F>
double median_ms(int reps, F &&f) {
    f();  // warm-up: page faults, thread pool start, ISA selection
    f();
    std::vector<double> ms;
    for (int i = 0; i < reps; i++) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        const auto t1 = std::chrono::steady_clock::now();
        ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    return ms[ms.size() / 2];
}

// The roofline: gn_bench's copy loop over the same bytes read and written as the kernel,
// split into one 64-byte aligned chunk per thread on Halide's own thread pool (the one the
// kernel uses, at the same thread count). An OpenMP team beside that pool's spinning
// workers would time their contention, not the memory.
struct Stream {
    const char *x;
    char *y;
    size_t bytes, per_task;
};

int stream_task(void *, int task, uint8_t *closure) {
    const Stream &s = *reinterpret_cast<const Stream *>(closure);
    const size_t begin = std::min(s.bytes, task * s.per_task);
    const size_t end = std::min(s.bytes, begin + s.per_task);
    support::stream_copy(s.x + begin, s.y + begin, end - begin, 1);  // 1: this thread
    return 0;
}

// Random data as raw bits of the element type: float32 in [-1.5, 2.5) (a non-zero mean);
// float16 / bfloat16 with magnitudes in [0.125, 2) and random signs.
void fill_random(std::vector<uint8_t> &buf, DLDataType t) {
    std::mt19937 rng(42);
    if (t.bits == 64) {
        std::uniform_real_distribution<double> dist(-1.5, 2.5);
        auto *p = reinterpret_cast<double *>(buf.data());
        for (size_t i = 0; i < buf.size() / 8; i++) p[i] = dist(rng);
        return;
    }
    if (t.bits == 32) {
        std::uniform_real_distribution<float> dist(-1.5f, 2.5f);
        auto *p = reinterpret_cast<float *>(buf.data());
        for (size_t i = 0; i < buf.size() / 4; i++) p[i] = dist(rng);
        return;
    }
    // 0x3000 is 0.125 in float16, 0x3E00 in bfloat16; 0x4000 is 2.0 in both.
    std::uniform_int_distribution<uint32_t> dist(t.code == kDLBfloat ? 0x3E00 : 0x3000, 0x3FFF);
    auto *p = reinterpret_cast<uint16_t *>(buf.data());
    for (size_t i = 0; i < buf.size() / 2; i++) p[i] = uint16_t(dist(rng) | (rng() & 1) << 15);
}

}  // namespace

int bench_command(const BenchOptions &opts) {
    const DLDataType dtype = parse_dtype(opts.dtype);
    const std::vector<bench::SuiteShape> shapes = bench::suite(opts.shapes);
    if (shapes.empty()) throw CliError("--shapes " + opts.shapes + ": no such shape set");
    if (opts.reps < 1) throw CliError("--reps must be at least 1");
    const int threads =
        opts.threads > 0 ? opts.threads : (int)std::max(1u, std::thread::hardware_concurrency());
    if (gn_status st = gn_set_num_threads(threads)) {
        throw CliError(std::string(gn_status_string(st)) + ": " + gn_last_error_message());
    }
    std::printf("dtype %s, layout %s, %d threads, median of %d reps\n", opts.dtype.c_str(),
                opts.channels_last ? "channels-last" : "nchw", threads, opts.reps);
    std::printf("%-28s %10s %9s %14s %11s\n", "shape", "ms", "GB/s", "roofline GB/s",
                "% roofline");

    const size_t item = dtype.bits / 8;
    for (const bench::SuiteShape &s : shapes) {
        const size_t bytes = size_t(bench::numel(s)) * item;
        std::vector<uint8_t> x(bytes), y(bytes);
        fill_random(x, dtype);
        const int64_t C = s.shape[1];
        // gamma/beta in x's dtype; the kernel reads them, but they are noise next to x and y.
        std::vector<uint8_t> gamma(C * item), beta(C * item);
        fill_random(gamma, dtype);
        fill_random(beta, dtype);
        DLTensorView xv(x.data(), dtype, s.shape, opts.channels_last);
        DLTensorView yv(y.data(), dtype, s.shape, opts.channels_last);
        DLTensorView gv(gamma.data(), dtype, {C}, false), bv(beta.data(), dtype, {C}, false);

        gn_status st = GN_STATUS_SUCCESS;
        const double kernel_ms = median_ms(opts.reps, [&] {
            if (st == GN_STATUS_SUCCESS) {
                st = gn_forward(&xv.dl, &gv.dl, &bv.dl, s.groups, 1e-5, &yv.dl, nullptr,
                                nullptr, nullptr);
            }
        });
        if (st != GN_STATUS_SUCCESS) {
            throw CliError(s.name + ": " + gn_status_string(st) + ": " + gn_last_error_message());
        }

        Stream stream{reinterpret_cast<const char *>(x.data()),
                      reinterpret_cast<char *>(y.data()), bytes, 0};
        stream.per_task = ((bytes + threads - 1) / threads + 63) / 64 * 64;
        const double roof_ms = median_ms(opts.reps, [&] {
            halide_do_par_for(nullptr, stream_task, 0, threads,
                              reinterpret_cast<uint8_t *>(&stream));
        });

        // x read once + y written once.
        const double gbs = 2.0 * bytes / (kernel_ms * 1e6);
        const double roof_gbs = 2.0 * bytes / (roof_ms * 1e6);
        std::printf("%-28s %10.4f %9.2f %14.2f %10.1f%%\n", s.name.c_str(), kernel_ms, gbs,
                    roof_gbs, 100.0 * gbs / roof_gbs);
    }
    return 0;
}

}  // namespace groupnorm::tools
