// The `groupnorm` subcommands: their options and entry points (main.cpp parses).
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>

namespace groupnorm::tools {

// A user-facing failure: main prints "groupnorm: error: <what>" on one line, exits 2.
struct CliError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct RunOptions {
    int64_t groups = 0;
    double eps = 1e-5;
    bool channels_last = false;
    int activation = 0;  // gn_activation (--activation)
    std::string input, output, weight, bias, mean, rstd;
    std::string skip, skip_bias, sum;  // the residual prologue (gn_config.skip, skip_bias, sum)
};

struct BackwardOptions {
    int64_t groups = 0;
    double eps = 1e-5;
    bool channels_last = false;
    std::string input, dy, weight, dx, dweight, dbias;
};

struct BenchOptions {
    int threads = 0;  // 0: one per core
    std::string shapes = "default", dtype = "f32";
    bool channels_last = false;
    int reps = 10;
};

struct InfoOptions {
    std::vector<int64_t> shape;  // (N, C, spatial...); empty: no shape query
    int64_t groups = 0;
    std::string dtype = "f32";
    bool channels_last = false;
};

int run_command(const RunOptions &opts);
int backward_command(const BackwardOptions &opts);
int bench_command(const BenchOptions &opts);
int info_command(const InfoOptions &opts);

// --activation's names: none, silu, relu, gelu, gelu_tanh -> gn_activation.
const std::map<std::string, int> &activation_names();

// "f32" | "f16" | "bf16" -> DLPack dtype.
DLDataType parse_dtype(const std::string &name);

}  // namespace groupnorm::tools
