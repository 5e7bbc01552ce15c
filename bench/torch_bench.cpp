// PyTorch CPU's group_norm, the anchor the benchmarks compare with, on the same data. Built only
// when libtorch is found (GN_BENCH_TORCH); kept in its own file so that the torch headers
// slow down nothing else.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <sstream>

#include "bench_util.h"
#include "support/layout.h"

namespace groupnorm::bench {
namespace {

// As an inference user runs it: at::group_norm under InferenceMode, a new output each call.
void BM_torch(benchmark::State &state, const SuiteShape &s, bool channels_last, int threads) {
    const size_t rank = s.shape.size();
    if (channels_last && rank != 4 && rank != 5) {
        state.SkipWithError("torch has channels-last formats for 4-D and 5-D only");
        return;
    }
    const at::MemoryFormat fmt = !channels_last ? at::MemoryFormat::Contiguous
                                 : rank == 4     ? at::MemoryFormat::ChannelsLast
                                                 : at::MemoryFormat::ChannelsLast3d;
    c10::InferenceMode guard;
    at::set_num_threads(threads);
    at::Tensor x = at::from_blob(const_cast<float *>(master_input(s)), s.shape,
                                 support::nc_strides(s.shape, channels_last), at::kFloat);
    at::Tensor gamma = at::rand({s.shape[1]}) + 0.5, beta = at::rand({s.shape[1]});
    at::Tensor y = at::group_norm(x, s.groups, gamma, beta, 1e-5, false);
    if (!at::isfinite(y).all().item<bool>()) {
        state.SkipWithError("torch output is not finite");
        return;
    }
    // Tells the reader when torch silently computes in (or returns) another layout.
    if (channels_last && !y.is_contiguous(fmt)) state.SetLabel("output not channels-last");

    for (auto _ : state) {
        at::Tensor out = at::group_norm(x, s.groups, gamma, beta, 1e-5, false);
        benchmark::DoNotOptimize(out.data_ptr());
    }
    const int64_t n = numel(s);
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * 2 * int64_t(sizeof(float)));
}

// The unfused sequence diffusers runs: at::group_norm, then at::silu (nn.SiLU, a new
// tensor), under InferenceMode.
void BM_torch_silu(benchmark::State &state, const SuiteShape &s, bool channels_last, int threads) {
    const size_t rank = s.shape.size();
    if (channels_last && rank != 4 && rank != 5) {
        state.SkipWithError("torch has channels-last formats for 4-D and 5-D only");
        return;
    }
    c10::InferenceMode guard;
    at::set_num_threads(threads);
    at::Tensor x = at::from_blob(const_cast<float *>(master_input(s)), s.shape,
                                 support::nc_strides(s.shape, channels_last), at::kFloat);
    at::Tensor gamma = at::rand({s.shape[1]}) + 0.5, beta = at::rand({s.shape[1]});
    for (auto _ : state) {
        at::Tensor out = at::silu(at::group_norm(x, s.groups, gamma, beta, 1e-5, false));
        benchmark::DoNotOptimize(out.data_ptr());
    }
    const int64_t n = numel(s);
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * 2 * int64_t(sizeof(float)));
}

// at::native_group_norm_backward (what autograd calls), all three gradients, with the
// forward's mean and rstd; its outputs are allocated per call as in training. silu: the
// backward of silu(group_norm(x)) as autograd runs it: at::silu_backward at the saved
// group_norm output, then the GroupNorm backward of that gradient.
void BM_torch_backward(benchmark::State &state, const SuiteShape &s, bool channels_last,
                       int threads, bool silu = false, at::ScalarType dtype = at::kFloat) {
    const size_t rank = s.shape.size();
    if (channels_last && rank != 4 && rank != 5) {
        state.SkipWithError("torch has channels-last formats for 4-D and 5-D only");
        return;
    }
    at::set_num_threads(threads);
    c10::InferenceMode guard;
    const std::vector<int64_t> strides = support::nc_strides(s.shape, channels_last);
    const at::MemoryFormat fmt = !channels_last ? at::MemoryFormat::Contiguous
                                 : rank == 4     ? at::MemoryFormat::ChannelsLast
                                                 : at::MemoryFormat::ChannelsLast3d;
    at::Tensor x32 = at::from_blob(const_cast<float *>(master_input(s)), s.shape, strides, at::kFloat);
    at::Tensor x = x32.to(dtype).contiguous(fmt), dy = (x32 - 3.0f).to(dtype).contiguous(fmt);
    at::Tensor gamma = (at::rand({s.shape[1]}) + 0.5).to(dtype), beta = at::rand({s.shape[1]}).to(dtype);
    const int64_t N = s.shape[0], C = s.shape[1], HxW = numel(s) / (N * C);
    std::tuple<at::Tensor, at::Tensor, at::Tensor> fwd;
    auto run = [&] {
        const at::Tensor dz = silu ? at::silu_backward(dy, std::get<0>(fwd)) : dy;
        return at::native_group_norm_backward(dz, x, std::get<1>(fwd), std::get<2>(fwd), gamma, N,
                                              C, HxW, s.groups, {true, true, true});
    };
    try {  // a libtorch without this dtype's kernels skips the row instead of ending the run
        fwd = at::native_group_norm(x, gamma, beta, N, C, HxW, s.groups, 1e-5);
        if (!at::isfinite(std::get<0>(run())).all().item<bool>()) {
            state.SkipWithError("torch dx is not finite");
            return;
        }
    } catch (const std::exception &e) {
        state.SkipWithError((std::string("torch: ") + e.what()).substr(0, 200).c_str());
        return;
    }
    for (auto _ : state) {
        auto out = run();
        benchmark::DoNotOptimize(std::get<0>(out).data_ptr());
    }
    const int64_t n = numel(s);
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * 3 * int64_t(x.element_size()));
}

}  // namespace

void register_torch(const SuiteShape &s, int threads) {
    const std::string tail = "/" + s.name + "/threads:" + std::to_string(threads);
    for (bool cl : {false, true}) {
        benchmark::RegisterBenchmark(("torch/f32_" + std::string(cl ? "nhwc" : "nchw") + tail).c_str(),
                                     [=](benchmark::State &st) { BM_torch(st, s, cl, threads); })
            ->UseRealTime()
            ->MeasureProcessCPUTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("torch_silu/f32_" + std::string(cl ? "nhwc" : "nchw") + tail).c_str(),
                                     [=](benchmark::State &st) { BM_torch_silu(st, s, cl, threads); })
            ->UseRealTime()
            ->MeasureProcessCPUTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("torch_bwd/f32_" + std::string(cl ? "nhwc" : "nchw") + tail).c_str(),
                                     [=](benchmark::State &st) { BM_torch_backward(st, s, cl, threads); })
            ->UseRealTime()
            ->MeasureProcessCPUTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("torch_silu_bwd/f32_" + std::string(cl ? "nhwc" : "nchw") + tail).c_str(),
                                     [=](benchmark::State &st) { BM_torch_backward(st, s, cl, threads, true); })
            ->UseRealTime()
            ->MeasureProcessCPUTime()
            ->Unit(benchmark::kMillisecond);
        for (at::ScalarType dt : {at::kBFloat16, at::kHalf}) {
            const std::string name = std::string(dt == at::kBFloat16 ? "torch_bwd/bf16_" : "torch_bwd/f16_") +
                                     (cl ? "nhwc" : "nchw") + tail;
            benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State &st) {
                BM_torch_backward(st, s, cl, threads, false, dt);
            })
                ->UseRealTime()
                ->MeasureProcessCPUTime()
                ->Unit(benchmark::kMillisecond);
        }
    }
}

void add_torch_context() {
    benchmark::AddCustomContext("torch_version", TORCH_VERSION);
    // The ISA level ATen's kernels were dispatched to (e.g. "AVX2"), from its build summary.
    std::istringstream config(at::show_config());
    for (std::string line; std::getline(config, line);) {
        const size_t at = line.find("CPU capability usage: ");
        if (at != std::string::npos) {
            benchmark::AddCustomContext("torch_cpu_capability", line.substr(at + 22));
        }
    }
}

}  // namespace groupnorm::bench
