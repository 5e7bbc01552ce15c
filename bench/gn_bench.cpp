// gn_bench: every shape of groupnorm::bench::suite() through gn_forward (f32 NCHW and
// NHWC, f16 and bf16 NCHW) and gn_backward (f32, bf16, f16; NCHW and NHWC), each next to a streaming
// roofline of the same bytes and, when built with libtorch, PyTorch CPU's group_norm and
// its backward; f32 also through the default (untuned) schedule where dispatch picks a
// tuned one (gn/f32_nchw_default, gn/f32_nhwc_default); plus the dispatch overhead on the tiny shape. Names:
// <family>/<variant>/<shape>/threads:<n> (Google Benchmark appends /process_time/real_time),
// so --benchmark_filter can pick; report.py reads the JSON.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "HalideRuntime.h"
#include "bench_util.h"
#include "silu_pass.h"
#include "dispatch.h"
#include "isa.h"
#include "prefetch_policy.h"
#include "groupnorm/groupnorm.h"
#include "support/buffer.h"
#include "support/half.h"
#include "support/layout.h"
#include "support/roofline.h"

namespace groupnorm::bench {

using namespace groupnorm::support;

#ifdef GN_BENCH_HAVE_TORCH
void register_torch(const SuiteShape &s, int threads);
void add_torch_context();
#endif

const float *master_input(const SuiteShape &s) {
    // Every shape's input stays (~360 MB for the suite): with random interleaving the
    // repetitions of different shapes alternate, and regenerating would dominate the run.
    static std::map<std::string, std::unique_ptr<AlignedBuffer>> inputs;
    std::unique_ptr<AlignedBuffer> &buf = inputs[s.name];
    if (!buf) {
        const int64_t n = numel(s);
        buf = std::make_unique<AlignedBuffer>(n * sizeof(float));
        float *p = static_cast<float *>(buf->data);
        std::mt19937_64 rng(0x9e3779b97f4a7c15ull ^ std::hash<std::string>()(s.name));
        std::normal_distribution<float> randn;
        for (int64_t i = 0; i < n; i++) p[i] = 3.0f + randn(rng);
    }
    return static_cast<const float *>(buf->data);
}

namespace {

constexpr double kEps = 1e-5;

struct Variant {
    const char *name;  // as in the benchmark name
    DLDataType dtype;
    bool channels_last;
    int activation = GN_ACTIVATION_NONE;  // fused (gn_config.activation)
    bool separate_pass = false;           // the activation as a second pass over y instead
};

const Variant kVariants[] = {
    {"f32_nchw", {kDLFloat, 32, 1}, false},
    {"f32_nhwc", {kDLFloat, 32, 1}, true},
    {"f16_nchw", {kDLFloat, 16, 1}, false},
    {"bf16_nchw", {kDLBfloat, 16, 1}, false},
    // GroupNorm + SiLU: fused, and ours followed by a separate SiLU pass over y (in place,
    // vectorized: the unfused sequence at its best; the 1.1x target compares the
    // fused call with plain f32_nchw / f32_nhwc).
    {"f32_nchw_silu", {kDLFloat, 32, 1}, false, GN_ACTIVATION_SILU},
    {"f32_nhwc_silu", {kDLFloat, 32, 1}, true, GN_ACTIVATION_SILU},
    {"f32_nchw_then_silu", {kDLFloat, 32, 1}, false, GN_ACTIVATION_SILU, true},
    {"f32_nhwc_then_silu", {kDLFloat, 32, 1}, true, GN_ACTIVATION_SILU, true},
};

// The separate activation pass of the unfused sequence (silu_pass.cpp), split over
// `threads` threads (the library's own thread count).
void silu_threads(float *y, int64_t n, int threads) {
    if (threads <= 1) return silu_pass(y, n);
    std::vector<std::thread> pool;
    const int64_t chunk = (n + threads - 1) / threads;
    for (int t = 1; t < threads; t++) {
        const int64_t lo = std::min(n, t * chunk), hi = std::min(n, (t + 1) * chunk);
        pool.emplace_back([=] { silu_pass(y + lo, hi - lo); });
    }
    silu_pass(y, std::min(n, chunk));
    for (std::thread &t : pool) t.join();
}

// n floats from `src` in the variant's dtype.
void convert(const float *src, int64_t n, DLDataType dt, void *dst) {
    if (dt.bits == 32) {
        std::memcpy(dst, src, n * sizeof(float));
        return;
    }
    uint16_t *d = static_cast<uint16_t *>(dst);
    for (int64_t i = 0; i < n; i++) {
        d[i] = dt.code == kDLBfloat ? to_bf16_bits(src[i]) : to_f16_bits(src[i]);
    }
}

void set_counters(benchmark::State &state, int64_t n, int64_t elem_bytes) {
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * elem_bytes * 2);  // x read + y written
}

void BM_gn(benchmark::State &state, const SuiteShape &s, const Variant &v, int threads) {
    gn_set_num_threads(threads);
    const int64_t n = numel(s), C = s.shape[1], esize = v.dtype.bits / 8;
    const float *master = master_input(s);
    AlignedBuffer x(n * esize), y(n * esize), gamma(C * esize), beta(C * esize);
    convert(master, n, v.dtype, x.data);
    std::vector<float> g(C), b(C);
    for (int64_t c = 0; c < C; c++) g[c] = 0.5f + float(c % 7) / 7, b[c] = float(c % 5) / 5 - 0.4f;
    convert(g.data(), C, v.dtype, gamma.data);
    convert(b.data(), C, v.dtype, beta.data);
    std::memset(y.data, 0xff, n * esize);  // NaN: an element the kernel skips fails the check

    DLTensorView xv(x.data, v.dtype, s.shape, v.channels_last);
    DLTensorView yv(y.data, v.dtype, s.shape, v.channels_last);
    DLTensorView gv(gamma.data, v.dtype, {C}, false), bv(beta.data, v.dtype, {C}, false);
    gn_config config = GN_CONFIG_INIT;
    config.activation = v.separate_pass ? GN_ACTIVATION_NONE : v.activation;
    auto run = [&] {
        const gn_status st = gn_forward(&xv.dl, &gv.dl, &bv.dl, s.groups, kEps, &yv.dl, nullptr,
                                        nullptr, &config);
        if (v.separate_pass && st == GN_STATUS_SUCCESS) {
            silu_threads(static_cast<float *>(y.data), n, threads);
        }
        return st;
    };
    if (gn_status st = run()) {
        state.SkipWithError((std::string(gn_status_string(st)) + ": " + gn_last_error_message()).c_str());
        return;
    }
    if (!all_finite(y.data, n, v.dtype)) {
        state.SkipWithError("output is not finite");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(run());
        benchmark::ClobberMemory();
    }
    set_counters(state, n, esize);
}

// The residual forward (Skip + GroupNorm + SiLU, ONNX Runtime's SkipGroupNorm): skip of x's
// shape and a per-channel skip bias added to x, the sum written, SiLU fused: `fused` through
// gn_forward's residual prologue, else the unfused sequence at its best: a vectorized add
// pass (sum = x + skip + bias, threads as ours) then our GroupNorm + SiLU of the sum.
void BM_residual(benchmark::State &state, const SuiteShape &s, bool channels_last, bool fused,
                 int threads) {
    gn_set_num_threads(threads);
    const int64_t n = numel(s), C = s.shape[1];
    const float *master = master_input(s);
    AlignedBuffer x(n * 4), skip(n * 4), sum(n * 4), y(n * 4);
    std::memcpy(x.data, master, n * 4);
    float *sk = static_cast<float *>(skip.data);
    for (int64_t i = 0; i < n; i++) sk[i] = 0.5f * (master[(i * 7919) % n] - 3.0f);
    std::vector<float> g(C), b(C), skip_bias(C);
    for (int64_t c = 0; c < C; c++) {
        g[c] = 0.5f + float(c % 7) / 7, b[c] = float(c % 5) / 5 - 0.4f;
        skip_bias[c] = float(c % 3) / 3 - 0.3f;
    }
    std::memset(y.data, 0xff, n * 4);
    const DLDataType f32{kDLFloat, 32, 1};
    DLTensorView xv(x.data, f32, s.shape, channels_last), yv(y.data, f32, s.shape, channels_last);
    DLTensorView kv(skip.data, f32, s.shape, channels_last), sv(sum.data, f32, s.shape, channels_last);
    DLTensorView gv(g.data(), f32, {C}, false), bv(b.data(), f32, {C}, false);
    DLTensorView sbv(skip_bias.data(), f32, {C}, false);
    // The unfused add pass: per channel bias, in the tensor's memory order.
    // One pass, a row at a time: a (n, c) row of S values (NCHW, one bias) or a spatial
    // position's C channels (NHWC, the bias vector); rows split over the threads.
    const int64_t S = n / (s.shape[0] * C), row = channels_last ? C : S, rows = n / row;
    auto add_rows = [&](int64_t lo, int64_t hi) {
        const float *xs = static_cast<const float *>(x.data);
        float *out = static_cast<float *>(sum.data);
        for (int64_t r = lo; r < hi; r++) {
            const float *xr = xs + r * row, *kr = sk + r * row;
            float *o = out + r * row;
            if (channels_last) {
                for (int64_t i = 0; i < row; i++) o[i] = xr[i] + kr[i] + skip_bias[i];
            } else {
                const float bc = skip_bias[r % C];
                for (int64_t i = 0; i < row; i++) o[i] = xr[i] + kr[i] + bc;
            }
        }
    };
    auto add_pass = [&] {
        std::vector<std::thread> pool;
        const int64_t chunk = (rows + threads - 1) / threads;
        for (int t = 1; t < threads; t++) {
            pool.emplace_back(add_rows, std::min(rows, t * chunk), std::min(rows, (t + 1) * chunk));
        }
        add_rows(0, std::min(rows, chunk));
        for (std::thread &t : pool) t.join();
    };
    gn_config config = GN_CONFIG_INIT;
    config.activation = GN_ACTIVATION_SILU;
    if (fused) {
        config.skip = &kv.dl;
        config.skip_bias = &sbv.dl;
        config.sum = &sv.dl;
    }
    auto run = [&] {
        if (!fused) add_pass();
        return gn_forward(fused ? &xv.dl : &sv.dl, &gv.dl, &bv.dl, s.groups, kEps, &yv.dl,
                          nullptr, nullptr, &config);
    };
    if (gn_status st = run()) {
        state.SkipWithError((std::string(gn_status_string(st)) + ": " + gn_last_error_message()).c_str());
        return;
    }
    if (!all_finite(y.data, n, f32) || !all_finite(sum.data, n, f32)) {
        state.SkipWithError("output is not finite");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(run());
        benchmark::ClobberMemory();
    }
    set_counters(state, n, 4);
}

// The residual forward's least traffic: x and skip read, sum and y written, in one loop.
void BM_roofline4(benchmark::State &state, const SuiteShape &s, int threads) {
    const int64_t n = numel(s);
    AlignedBuffer a(n * 4), b(n * 4), sum(n * 4), d(n * 4);
    std::memcpy(a.data, master_input(s), n * 4);
    std::memcpy(b.data, master_input(s), n * 4);
    auto run = [&] {
        stream_add_sub(static_cast<float *>(a.data), static_cast<float *>(b.data),
                       static_cast<float *>(sum.data), static_cast<float *>(d.data), n, threads);
    };
    run();  // first touch outside the timing
    for (auto _ : state) {
        run();
        benchmark::ClobberMemory();
    }
    set_counters(state, n, 4);
}

// The copy roofline (one pass); with two_pass, a read of x before the copy: the traffic of a
// kernel that reads all of x for its statistics before it normalizes (NHWC, where every group
// spans its whole sample). NCHW groups that fit L2 are re-read from L2 and can beat it.
void BM_roofline(benchmark::State &state, const SuiteShape &s, int esize, int threads,
                 bool two_pass) {
    const int64_t n = numel(s);
    const size_t bytes = size_t(n) * esize;
    const float *x = master_input(s);  // holds at least `bytes`
    AlignedBuffer y(bytes);
    stream_copy(x, y.data, bytes, threads);  // first touch outside the timing
    for (auto _ : state) {
        if (two_pass) benchmark::DoNotOptimize(stream_read(x, bytes, threads));
        stream_copy(x, y.data, bytes, threads);
        benchmark::ClobberMemory();
    }
    set_counters(state, n, esize);
}

// The backward's data: dy = x - 3 (zero-mean normal), the forward's statistics, gamma.
struct BackwardData {
    AlignedBuffer x, dy, dx;
    std::vector<float> mean, rstd, gamma, dgamma, dbeta;
    BackwardData(const SuiteShape &s, bool channels_last)
        : x(numel(s) * 4), dy(numel(s) * 4), dx(numel(s) * 4) {
        const int64_t n = numel(s), N = s.shape[0], C = s.shape[1];
        std::memcpy(x.data, master_input(s), n * 4);
        float *d = static_cast<float *>(dy.data);
        for (int64_t i = 0; i < n; i++) d[i] = static_cast<float *>(x.data)[i] - 3.0f;
        mean.resize(N * s.groups), rstd.resize(N * s.groups), gamma.resize(C);
        dgamma.resize(C), dbeta.resize(C);
        for (int64_t c = 0; c < C; c++) gamma[c] = 0.5f + float(c % 7) / 7;
        AlignedBuffer y(n * 4);
        const DLDataType f32{kDLFloat, 32, 1};
        DLTensorView xv(x.data, f32, s.shape, channels_last), yv(y.data, f32, s.shape, channels_last);
        DLTensorView mv(mean.data(), f32, {N, s.groups}, false), rv(rstd.data(), f32, {N, s.groups}, false);
        gn_forward(&xv.dl, nullptr, nullptr, s.groups, kEps, &yv.dl, &mv.dl, &rv.dl, nullptr);
    }
};

void set_backward_counters(benchmark::State &state, int64_t n, int64_t elem_bytes = 4) {
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * elem_bytes * 3);  // x, dy read + dx written
}

// gn_backward, all three gradients, in x's dtype (f32, or f16/bf16 with parameters in the
// same dtype and float32 statistics, as the half-precision variants take them); with a
// fused activation, the backward of GroupNorm + activation (beta = 0, as the forward that
// made the statistics).
void BM_backward(benchmark::State &state, const SuiteShape &s, bool channels_last, int threads,
                 int activation = GN_ACTIVATION_NONE, DLDataType dt = {kDLFloat, 32, 1}) {
    gn_set_num_threads(threads);
    BackwardData d(s, channels_last);
    const int64_t n = numel(s), N = s.shape[0], C = s.shape[1], esize = dt.bits / 8;
    const DLDataType f32{kDLFloat, 32, 1};
    // Half precision: x, dy and gamma converted into buffers of their own (float32 uses d's).
    const bool half = dt.bits == 16;
    AlignedBuffer hx(half ? n * 2 : 1), hdy(half ? n * 2 : 1), hdx(half ? n * 2 : 1),
        hparams(half ? C * 2 * 3 : 1);
    void *x = d.x.data, *dy = d.dy.data, *dx = d.dx.data, *gamma = d.gamma.data(),
         *dgamma = d.dgamma.data(), *dbeta = d.dbeta.data();
    if (half) {
        x = hx.data, dy = hdy.data, dx = hdx.data;
        gamma = hparams.data;
        dgamma = static_cast<uint16_t *>(hparams.data) + C;
        dbeta = static_cast<uint16_t *>(hparams.data) + 2 * C;
        convert(static_cast<const float *>(d.x.data), n, dt, x);
        convert(static_cast<const float *>(d.dy.data), n, dt, dy);
        convert(d.gamma.data(), C, dt, gamma);
    }
    DLTensorView xv(x, dt, s.shape, channels_last), dyv(dy, dt, s.shape, channels_last);
    DLTensorView dxv(dx, dt, s.shape, channels_last);
    DLTensorView mv(d.mean.data(), f32, {N, s.groups}, false), rv(d.rstd.data(), f32, {N, s.groups}, false);
    DLTensorView gv(gamma, dt, {C}, false), dgv(dgamma, dt, {C}, false);
    DLTensorView dbv(dbeta, dt, {C}, false);
    gn_config config = GN_CONFIG_INIT;
    config.activation = activation;
    auto run = [&] {
        return gn_backward(&dyv.dl, &xv.dl, &mv.dl, &rv.dl, &gv.dl, s.groups, &dxv.dl, &dgv.dl,
                           &dbv.dl, &config);
    };
    std::memset(dx, 0xff, n * esize);
    if (gn_status st = run()) {
        state.SkipWithError((std::string(gn_status_string(st)) + ": " + gn_last_error_message()).c_str());
        return;
    }
    if (!all_finite(dx, n, dt)) {
        state.SkipWithError("dx is not finite");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(run());
        benchmark::ClobberMemory();
    }
    set_backward_counters(state, n, esize);
}

// The backward's least traffic: x and dy read, dx written, in one streaming loop.
void BM_roofline3(benchmark::State &state, const SuiteShape &s, int threads) {
    const int64_t n = numel(s);
    BackwardData d(s, false);
    stream_add(static_cast<float *>(d.x.data), static_cast<float *>(d.dy.data),
               static_cast<float *>(d.dx.data), n, threads);
    for (auto _ : state) {
        stream_add(static_cast<float *>(d.x.data), static_cast<float *>(d.dy.data),
                   static_cast<float *>(d.dx.data), n, threads);
        benchmark::ClobberMemory();
    }
    set_backward_counters(state, n);
}

// The least traffic of a backward whose statistics need a whole sample before any dx (the
// channels-last schedule; nchw's groups stay in cache): per sample, x and dy read, then read
// again with dx written (from cache when the sample fits).
void BM_roofline_bwd_two_pass(benchmark::State &state, const SuiteShape &s, int threads) {
    const int64_t n = numel(s), per_sample = n / s.shape[0];
    BackwardData d(s, false);
    auto run = [&] {
        uint64_t sink = 0;
        for (int64_t i = 0; i < n; i += per_sample) {
            float *x = static_cast<float *>(d.x.data) + i, *dy = static_cast<float *>(d.dy.data) + i;
            sink ^= stream_read2(x, dy, per_sample * 4, threads);
            stream_add(x, dy, static_cast<float *>(d.dx.data) + i, per_sample, threads);
        }
        return sink;
    };
    run();
    for (auto _ : state) {
        benchmark::DoNotOptimize(run());
        benchmark::ClobberMemory();
    }
    set_backward_counters(state, n);
}

// The float16 counterpart of the copy roofline: read f16, convert, one FMA, convert, write
// (the same bytes as the f16 copy). Its GB/s over f32's copy is the most a float16 kernel can
// gain from its halved bytes on this CPU.
void BM_half_convert(benchmark::State &state, const SuiteShape &s, int threads) {
    const int64_t n = numel(s);
    const size_t bytes = size_t(n) * 2;
    AlignedBuffer x(bytes), y(bytes);
    convert(master_input(s), n, {kDLFloat, 16, 1}, x.data);
    if (!stream_half_affine(x.data, y.data, bytes, threads)) {
        state.SkipWithError("needs AVX-512 and F16C");
        return;
    }
    for (auto _ : state) {
        stream_half_affine(x.data, y.data, bytes, threads);
        benchmark::ClobberMemory();
    }
    set_counters(state, n, 2);
}

// The f32 default-schedule variant of a layout (the variant table's "any" row, no tuning),
// and whether dispatch would pick a tuned row over it for s (then gn/f32_<layout>_default
// times it).
const detail::Variant *default_f32(detail::gn_layout layout, const SuiteShape *s = nullptr) {
    using namespace groupnorm::detail;
    size_t count = 0;
    const detail::Variant *all = all_variants(&count);
    for (size_t i = 0; i < count; i++) {
        const detail::Variant &v = all[i];
        if (v.op == GN_OP_FORWARD && v.device == GN_DEVICE_CPU && v.dtype == GN_DTYPE_F32 &&
            v.layout == layout && v.param_dtype == GN_DTYPE_F32 && !*v.tuning &&
            std::string(v.shape_class) == "any") {
            if (!s) return &v;
            Problem p;  // f32 forward on the CPU; the layout and sizes are all the lookup reads
            p.layout = layout;
            p.N = s->shape[0], p.C = s->shape[1], p.G = s->groups, p.S = numel(*s) / (p.N * p.C);
            return find_variant(p) == &v ? nullptr : &v;
        }
    }
    return nullptr;
}

// gn/f32_<layout>'s buffers, timed through the default variant (validation included, the
// lookup not: gn_forward's path but for the variant).
void BM_gn_default(benchmark::State &state, const SuiteShape &s, detail::gn_layout layout, int threads) {
    using namespace groupnorm::detail;
    gn_set_num_threads(threads);
    const int64_t n = numel(s), C = s.shape[1];
    AlignedBuffer x(n * 4), y(n * 4);
    std::memcpy(x.data, master_input(s), n * 4);
    std::vector<float> g(C), b(C);
    for (int64_t c = 0; c < C; c++) g[c] = 0.5f + float(c % 7) / 7, b[c] = float(c % 5) / 5 - 0.4f;
    std::memset(y.data, 0xff, n * 4);
    const DLDataType f32{kDLFloat, 32, 1};
    const bool channels_last = layout == GN_LAYOUT_NHWC;
    DLTensorView xv(x.data, f32, s.shape, channels_last), yv(y.data, f32, s.shape, channels_last);
    DLTensorView gv(g.data(), f32, {C}, false), bv(b.data(), f32, {C}, false);
    const detail::Variant *v = default_f32(layout);
    auto run = [&] {
        Problem p;
        gn_status st = validate_forward(&xv.dl, &gv.dl, &bv.dl, s.groups, kEps, &yv.dl, nullptr,
                                        nullptr, &p);
        return st ? st : run_forward(*v, p, kEps);
    };
    if (!v || install_cpu_isa_cap() || run() || !all_finite(y.data, n, f32)) {
        state.SkipWithError("no default f32 variant, call failed or output not finite");
        return;
    }
    state.SetLabel(v->name);
    for (auto _ : state) {
        benchmark::DoNotOptimize(run());
        benchmark::ClobberMemory();
    }
    set_counters(state, n, 4);
}

// gn_forward against the generated function it dispatches to, called with buffers built
// here once: the difference is validation, canonicalisation, lookup and buffer setup.
void BM_dispatch(benchmark::State &state, const SuiteShape &s, bool direct) {
    gn_set_num_threads(1);
    using namespace groupnorm::detail;
    size_t count = 0;
    const detail::Variant *all = all_variants(&count), *fv = nullptr;
    for (size_t i = 0; i < count && !fv; i++) {
        const detail::Variant &c = all[i];
        if (c.device == GN_DEVICE_CPU && c.dtype == GN_DTYPE_F32 && c.layout == GN_LAYOUT_NCHW &&
            c.param_dtype == GN_DTYPE_F32) {
            fv = &c;
        }
    }
    if (!fv) {
        state.SkipWithError("no f32 NCHW variant in all_variants()");
        return;
    }
    const int64_t n = numel(s), C = s.shape[1], N = s.shape[0], S = n / (N * C), G = s.groups;
    const float *x = master_input(s);
    // Shared by both benchmarks, so that both see the same addresses: the tiny kernel's time
    // moves by +-20% with buffer placement, far more than the overhead measured here.
    static std::vector<float> y, gamma, beta, mean, rstd;
    y.resize(n), gamma.assign(C, 1.0f), beta.assign(C, 0.0f), mean.resize(N * G), rstd.resize(N * G);

    const DLDataType f32{kDLFloat, 32, 1};
    DLTensorView xv(const_cast<float *>(x), f32, s.shape, false);
    DLTensorView yv(y.data(), f32, s.shape, false);
    DLTensorView gv(gamma.data(), f32, {C}, false), bv(beta.data(), f32, {C}, false);

    const halide_type_t hf32(halide_type_float, 32);
    halide_dimension_t xd[3] = {{0, int32_t(S), 1}, {0, int32_t(C), int32_t(S)},
                                {0, int32_t(N), int32_t(C * S)}};
    // The row view dispatch passes for a contiguous tensor: a group per row.
    halide_dimension_t rd[3] = {{0, int32_t(S * C / G), 1}, {0, int32_t(G), int32_t(S * C / G)},
                                {0, int32_t(N), int32_t(C * S)}};
    halide_dimension_t pd[1] = {{0, int32_t(C), 1}}, sd[2] = {{0, int32_t(G), 1}, {0, int32_t(N), int32_t(G)}};
    auto make = [&](const void *data, int dims, halide_dimension_t *dim) {
        halide_buffer_t b{};
        b.host = static_cast<uint8_t *>(const_cast<void *>(data));
        b.type = hf32;
        b.dimensions = dims;
        b.dim = dim;
        return b;
    };
    halide_buffer_t hx = make(x, 3, xd), hxr = make(x, 3, rd), hy = make(y.data(), 3, xd), hg = make(gamma.data(), 1, pd),
                    hb = make(beta.data(), 1, pd), hm = make(mean.data(), 2, sd),
                    hr = make(rstd.data(), 2, sd);

    const auto kernel = reinterpret_cast<ForwardFn>(fv->fn);
    const int32_t prefetch = prefetch_ahead();  // what dispatch passes
    auto run = [&] {
        return direct ? (kernel(&hx, &hxr, &hg, &hb, int32_t(G), float(kEps), 0, prefetch, &hy, &hm,
                                &hr) ? 1 : 0)
                      : int(gn_forward(&xv.dl, &gv.dl, &bv.dl, G, kEps, &yv.dl, nullptr, nullptr,
                                       nullptr));
    };
    std::fill(y.begin(), y.end(), NAN);
    if (run() != 0 || !all_finite(y.data(), n, f32)) {
        state.SkipWithError("call failed or output is not finite");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(run());
        benchmark::ClobberMemory();
    }
    set_counters(state, n, 4);
}

// 1 and 2 threads (the targets are stated for those), and every core when there are more.
std::vector<int> thread_counts() {
    std::vector<int> t = {1, 2};
    const int cores = int(std::thread::hardware_concurrency());
    if (cores > 2) t.push_back(cores);
    return t;
}

void register_all() {
    const std::vector<SuiteShape> shapes = suite();
    for (const SuiteShape &s : shapes) {
        for (int threads : thread_counts()) {
            const std::string tail = "/" + s.name + "/threads:" + std::to_string(threads);
            auto add = [](const std::string &name, auto fn) {
                benchmark::RegisterBenchmark(name.c_str(), fn)
                    ->UseRealTime()
                    ->MeasureProcessCPUTime()  // cpu / real time = cores used, checked by report.py
                    ->Unit(benchmark::kMillisecond);
            };
            for (const Variant &v : kVariants) {
                add("gn/" + std::string(v.name) + tail,
                    [s, &v, threads](benchmark::State &st) { BM_gn(st, s, v, threads); });
            }
            for (detail::gn_layout layout : {detail::GN_LAYOUT_NCHW, detail::GN_LAYOUT_NHWC}) {
                if (!default_f32(layout, &s)) continue;  // dispatch picks a tuned row: time the default too
                add(std::string("gn/f32_") + (layout == detail::GN_LAYOUT_NCHW ? "nchw" : "nhwc") + "_default" + tail,
                    [s, layout, threads](benchmark::State &st) { BM_gn_default(st, s, layout, threads); });
            }
            for (int esize : {4, 2}) {
                add("roofline/" + std::string(esize == 4 ? "f32" : "f16") + tail,
                    [s, esize, threads](benchmark::State &st) {
                        BM_roofline(st, s, esize, threads, false);
                    });
            }
            add("roofline/f32_two_pass" + tail, [s, threads](benchmark::State &st) {
                BM_roofline(st, s, 4, threads, true);
            });
            for (bool cl : {false, true}) {
                add(std::string("bwd/f32_") + (cl ? "nhwc" : "nchw") + tail,
                    [s, cl, threads](benchmark::State &st) { BM_backward(st, s, cl, threads); });
                add(std::string("bwd/f32_") + (cl ? "nhwc" : "nchw") + "_silu" + tail,
                    [s, cl, threads](benchmark::State &st) {
                        BM_backward(st, s, cl, threads, GN_ACTIVATION_SILU);
                    });
                for (DLDataType dt : {DLDataType{kDLBfloat, 16, 1}, DLDataType{kDLFloat, 16, 1}}) {
                    add(std::string("bwd/") + (dt.code == kDLBfloat ? "bf16_" : "f16_") +
                            (cl ? "nhwc" : "nchw") + tail,
                        [s, cl, threads, dt](benchmark::State &st) {
                            BM_backward(st, s, cl, threads, GN_ACTIVATION_NONE, dt);
                        });
                }
            }
            for (bool cl : {false, true}) {
                for (bool fused : {true, false}) {
                    add(std::string("gn/f32_") + (cl ? "nhwc" : "nchw") +
                            (fused ? "_skip_silu" : "_add_then_silu") + tail,
                        [s, cl, fused, threads](benchmark::State &st) {
                            BM_residual(st, s, cl, fused, threads);
                        });
                }
            }
            add("roofline/f32_four_stream" + tail,
                [s, threads](benchmark::State &st) { BM_roofline4(st, s, threads); });
            add("roofline/f32_three_stream" + tail,
                [s, threads](benchmark::State &st) { BM_roofline3(st, s, threads); });
            add("roofline/f32_bwd_two_pass" + tail,
                [s, threads](benchmark::State &st) { BM_roofline_bwd_two_pass(st, s, threads); });
            add("roofline/f16_convert" + tail,
                [s, threads](benchmark::State &st) { BM_half_convert(st, s, threads); });
#ifdef GN_BENCH_HAVE_TORCH
            register_torch(s, threads);
#endif
        }
    }
    const SuiteShape &tiny = shapes.front();  // the suite's first shape, (1, 32, 8, 8)
    for (bool direct : {false, true}) {
        benchmark::RegisterBenchmark(direct ? "dispatch/direct" : "dispatch/gn_forward",
                                     [tiny, direct](benchmark::State &st) { BM_dispatch(st, tiny, direct); })
            ->UseRealTime()
            ->MeasureProcessCPUTime()
            ->Unit(benchmark::kNanosecond);
    }
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    }
    return "unknown";
}

}  // namespace
}  // namespace groupnorm::bench

int main(int argc, char **argv) {
    using namespace groupnorm::bench;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("cpu_model", cpu_model());
    std::string names;  // the suite's order, for report.py (interleaving shuffles the output)
    for (const SuiteShape &s : suite()) names += (names.empty() ? "" : ",") + s.name;
    benchmark::AddCustomContext("suite", names);
    if (const char *isa = std::getenv("GN_CPU_ISA")) benchmark::AddCustomContext("GN_CPU_ISA", isa);
    const bool prefetch = groupnorm::detail::prefetch_ahead();
    benchmark::AddCustomContext("prefetch", std::string(prefetch ? "on" : "off") + " (" +
                                                groupnorm::detail::prefetch_reason() + ")");
#ifdef GN_BENCH_HAVE_TORCH
    add_torch_context();
#if defined(__GLIBC__)
    // torch allocates its output on every call; glibc would mmap and munmap those large
    // blocks each time, so the page faults (zeroing included) would be timed as torch's.
    // Keeping freed memory in the heap times torch's kernel, not the kernel's allocator.
    // GN_BENCH_MALLOC_DEFAULT=1 keeps glibc's defaults (what a plain torch user gets).
    if (!std::getenv("GN_BENCH_MALLOC_DEFAULT")) {
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        benchmark::AddCustomContext("torch_malloc", "glibc heap reuse, no mmap per call");
    }
#endif
#endif
    register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
