// groupnorm: run GroupNorm (and its backward) on .npy files, benchmark the shape suite,
// report the build.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "groupnorm/groupnorm.h"

using namespace groupnorm::tools;

namespace {

// Library messages may carry Halide's multi-line reports; the CLI promises one line.
std::string one_line(std::string s) {
    for (char &c : s) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

}  // namespace

// `groupnorm tune ...` runs groupnorm-tune (tools/tune/) from this binary's directory: the
// tuner links libHalide (it compiles candidates), which the CLI itself does not need.
int run_tuner(int argc, char **argv) {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    std::string tuner = "groupnorm-tune";
    if (n > 0) {
        self[n] = '\0';
        const std::string path(self);
        tuner = path.substr(0, path.rfind('/') + 1) + tuner;
    }
    std::vector<char *> args = {const_cast<char *>(tuner.c_str())};
    for (int i = 2; i < argc; i++) args.push_back(argv[i]);
    args.push_back(nullptr);
    execv(tuner.c_str(), args.data());
    std::fprintf(stderr, "groupnorm tune: cannot run %s (%s); it is built in build trees with "
                         "tools and tests (GN_BUILD_TOOLS, GN_BUILD_TESTS), not installed\n",
                 tuner.c_str(), std::strerror(errno));
    return 2;
}

int main(int argc, char **argv) {
    if (argc > 1 && std::string(argv[1]) == "tune") return run_tuner(argc, argv);
    CLI::App app{"GroupNorm kernels (Halide, AOT): run on .npy files, benchmark, inspect "
                 "(and `groupnorm tune`: the autotuner, groupnorm-tune --help)"};
    app.require_subcommand(1);
    // The linked library's version (gn_version), not only the headers'.
    int major = 0, minor = 0, patch = 0;
    gn_version(&major, &minor, &patch);
    app.set_version_flag("--version", "groupnorm " + std::to_string(major) + "." +
                                          std::to_string(minor) + "." + std::to_string(patch));

    RunOptions run;
    CLI::App *run_cmd = app.add_subcommand("run", "GroupNorm of an .npy array (float32/float16/float64)");
    run_cmd->add_option("--groups", run.groups, "number of groups G (C % G == 0)")->required();
    run_cmd->add_option("--eps", run.eps, "added to the variance")->capture_default_str();
    run_cmd->add_flag("--channels-last", run.channels_last,
                      "the array is (N, *, C) instead of (N, C, *)");
    run_cmd->add_option("--weight", run.weight, "gamma, shape (C,), x's dtype or float32 (not for float64 x)");
    run_cmd->add_option("--bias", run.bias, "beta, shape (C,), x's dtype or float32 (not for float64 x)");
    run_cmd->add_option("--skip", run.skip,
                        "residual added to x before the norm: x's shape (and --channels-last "
                        "order), or (N, C); x's dtype");
    run_cmd->add_option("--skip-bias", run.skip_bias,
                        "per-channel bias added with the residual, shape (C,), as --weight");
    run_cmd->add_option("--sum", run.sum,
                        "writes x + skip + skip_bias (the residual branch), in --input's shape");
    run_cmd->add_option("--activation", run.activation,
                        "fused activation applied to y: none, silu, relu, gelu (erf), gelu_tanh")
        ->transform(CLI::CheckedTransformer(activation_names(), CLI::ignore_case))
        ->default_str("none");
    run_cmd->add_option("--input", run.input, "x, .npy")->required();
    run_cmd->add_option("--output", run.output, "y, .npy (x's shape and dtype)")->required();
    run_cmd->add_option("--mean", run.mean, "write the group means, (N, G), float32 (float64 for float64 x)");
    run_cmd->add_option("--rstd", run.rstd, "write 1/sqrt(var + eps), (N, G), float32 (float64 for float64 x)");

    BackwardOptions bwd;
    CLI::App *bwd_cmd = app.add_subcommand(
        "backward", "GroupNorm's gradients for .npy arrays (the statistics recomputed from x)");
    bwd_cmd->add_option("--groups", bwd.groups, "number of groups G (C % G == 0)")->required();
    bwd_cmd->add_option("--eps", bwd.eps, "added to the variance")->capture_default_str();
    bwd_cmd->add_flag("--channels-last", bwd.channels_last,
                      "the arrays are (N, *, C) instead of (N, C, *)");
    bwd_cmd->add_option("--input", bwd.input, "x, .npy (the forward's input)")->required();
    bwd_cmd->add_option("--dy", bwd.dy, "the gradient of y, .npy (x's shape and dtype)")->required();
    bwd_cmd->add_option("--weight", bwd.weight, "gamma, shape (C,), x's dtype or float32 (not for float64 x)");
    bwd_cmd->add_option("--dx", bwd.dx, "write the gradient of x, .npy (x's shape and dtype)");
    bwd_cmd->add_option("--dweight", bwd.dweight, "write the gradient of gamma, (C,)");
    bwd_cmd->add_option("--dbias", bwd.dbias, "write the gradient of beta, (C,)");

    BenchOptions bench;
    CLI::App *bench_cmd = app.add_subcommand("bench", "time gn_forward against a memory roofline");
    bench_cmd->add_option("--threads", bench.threads, "worker threads (0: one per core)")
        ->check(CLI::Range(0, 256));
    bench_cmd->add_option("--shapes", bench.shapes, "shape set")
        ->check(CLI::IsMember({"default", "small"}))->capture_default_str();
    bench_cmd->add_option("--dtype", bench.dtype)
        ->check(CLI::IsMember({"f32", "f16", "bf16", "f64"}))->capture_default_str();
    bench_cmd->add_flag("--channels-last", bench.channels_last, "NHWC-style strides");
    bench_cmd->add_option("--reps", bench.reps, "timed repetitions (median)")
        ->check(CLI::PositiveNumber)->capture_default_str();

    InfoOptions info;
    CLI::App *info_cmd = app.add_subcommand("info", "CPU features, compiled variants, dispatch");
    CLI::Option *shape_opt = info_cmd->add_option("--shape", info.shape, "N,C,spatial...")
                                 ->delimiter(',');
    info_cmd->add_option("--groups", info.groups, "number of groups")->needs(shape_opt);
    info_cmd->add_option("--dtype", info.dtype)
        ->check(CLI::IsMember({"f32", "f16", "bf16", "f64"}))->capture_default_str();
    info_cmd->add_flag("--channels-last", info.channels_last, "channels-last strides");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp &e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp &e) {
        return app.exit(e);
    } catch (const CLI::ParseError &e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        // Usage errors are bad input too: one line, as every other error.
        std::fprintf(stderr, "groupnorm: error: %s (see groupnorm --help)\n",
                     one_line(e.what()).c_str());
        return 2;
    }
    try {
        if (*run_cmd) return run_command(run);
        if (*bwd_cmd) return backward_command(bwd);
        if (*bench_cmd) return bench_command(bench);
        return info_command(info);
    } catch (const std::bad_alloc &) {
        std::fprintf(stderr, "groupnorm: error: out of memory\n");
        return 2;
    } catch (const std::exception &e) {  // CliError, library errors
        std::fprintf(stderr, "groupnorm: error: %s\n", one_line(e.what()).c_str());
        return 2;
    }
}
