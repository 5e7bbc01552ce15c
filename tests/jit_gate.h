// The correctness gate for candidate schedules: JIT-compiles the forward generator for this
// machine with given GeneratorParams (tuning fields, layout, types) and checks the result on
// fresh data against the float64 reference, through the same buffer setup as the runtime.
// tests/test_jit_gate.cpp runs it on the defaults and on non-default tunings; the autotuner
// calls it for every candidate before timing it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "Halide.h"
#include "test_shapes.h"
#include "test_tensor.h"

namespace gntest {

struct GateResult {
    bool passed = false;
    int cases = 0;       // (shape, layout, affine) cases run
    std::string detail;  // the first failure, or what could not be built
};

// The data the gate runs on: normal data (its mean in [-30, 30], a fresh one per case), or
// spikes: a flat background with every 16th spatial position 127 above it in every channel,
// so that most blocks' first values are outliers (equal background values round alike, and
// the one-pass moments, shifted by a block's first value, must read those blocks again:
// generators/robust_moments.h).
enum class GateData { Normal, Spikes };

// params: GeneratorParam name -> value, e.g. {{"layout", "nhwc"}, {"block_rows", "16"}};
// x/y/gamma/beta types follow dtype (gamma and beta in x's dtype).
// activation: the gn_activation the pipeline is called with (its reference: GroupNorm, then
// the activation in float64).
GateResult jit_forward_gate(const std::map<std::string, std::string> &params, DType dtype,
                            const std::vector<Shape> &shapes, uint64_t seed, int activation = 0);

// The same in two steps, for a caller that goes on to time the candidate (the tuner):
// compile (false, with the reason in *error, when the generator refuses the params), then
// gate the compiled pipeline.
bool jit_compile_forward(const std::map<std::string, std::string> &params, DType dtype,
                         Halide::Callable *forward, std::string *error);
// The same pipeline scheduled by one of Halide's autoschedulers instead of the hand-written
// schedules: `autoscheduler` is its name (Adams2019, Mullapudi2016, Li2018), `plugin` the
// path of its shared library (loaded once), `parallelism` the threads it plans for. params
// carry the shape it schedules for (estimate_n, estimate_c, estimate_s, estimate_groups):
// its splits are sized to that shape, so gate it on the shapes it will run.
bool jit_compile_forward_autoscheduled(const std::map<std::string, std::string> &params,
                                       DType dtype, const std::string &autoscheduler,
                                       const std::string &plugin, int parallelism,
                                       Halide::Callable *forward, std::string *error);
GateResult jit_gate_callable(Halide::Callable &forward, const std::string &layout, DType dtype,
                             const std::vector<Shape> &shapes, uint64_t seed, int activation = 0,
                             GateData data = GateData::Normal);

}  // namespace gntest
