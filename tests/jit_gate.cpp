#include "jit_gate.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <exception>
#include <random>
#include <set>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

#include "Halide.h"
#include "canonicalise.h"
#include "dispatch.h"
#include "forward_case.h"
#include "groupnorm/groupnorm.h"

namespace gntest {
namespace {

namespace gd = groupnorm::detail;

const char *halide_type_name(DType t) {
    switch (t) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    case DType::F64: return "float64";
    }
    return "?";
}

std::vector<Layout> layouts_of(const std::string &layout) {
    if (layout == "nhwc") return {Layout::ChannelsLast, Layout::PaddedBatchNhwc};
    return {Layout::Contiguous, Layout::ChannelSlice, Layout::PaddedRowsNchw};
}

Halide::GeneratorParamsMap generator_params(const std::map<std::string, std::string> &params,
                                            DType dtype) {
    Halide::GeneratorParamsMap gp;
    for (const char *name : {"x.type", "x_rows.type", "y.type", "gamma.type", "beta.type"}) {
        gp[name] = halide_type_name(dtype);
    }
    // eps and the statistics have the compute type (cmake/GroupNormVariants.cmake).
    for (const char *name : {"eps.type", "mean.type", "rstd.type"}) {
        gp[name] = halide_type_name(stat_dtype(dtype));
    }
    for (const auto &[name, value] : params) gp[name] = value;
    return gp;
}

}  // namespace

bool jit_compile_forward(const std::map<std::string, std::string> &params, DType dtype,
                         Halide::Callable *forward, std::string *error) {
    const Halide::GeneratorParamsMap gp = generator_params(params, dtype);
    try {
        const Halide::GeneratorContext context(Halide::get_jit_target_from_environment());
        *forward = Halide::create_callable_from_generator(context, "group_norm_forward", gp);
    } catch (const Halide::CompileError &e) {
        *error = std::string("does not compile: ") + e.what();
        return false;
    } catch (const Halide::Error &e) {
        *error = std::string("fails inside Halide: ") + e.what();
        return false;
    }
    return true;
}

namespace {

// The generator's pipeline with the autoscheduler applied (what create_callable_from_generator
// does, with the autoscheduler applied between building the pipeline and compiling it: Halide
// 21's Generator::compile_to_callable does not apply it).
Halide::Pipeline autoscheduled_pipeline(Halide::Internal::AbstractGenerator &g,
                                        const std::map<std::string, std::string> &params,
                                        DType dtype) {
    g.set_generatorparam_values(generator_params(params, dtype));
    Halide::Pipeline pipeline = g.build_pipeline();
    pipeline.apply_autoscheduler(g.context().target(), g.context().autoscheduler_params());
    return pipeline;
}

// Some autoscheduler failures end the process (an internal assertion thrown where it cannot
// be caught: Adams2019's on loops empty at the estimates, before the row tail was guarded,
// generators/robust_moments.h), so the schedule is
// first made in a child process: "" when it succeeds there, else the end of what it printed.
std::string autoschedule_in_child(const Halide::GeneratorContext &context,
                                  const std::map<std::string, std::string> &params, DType dtype) {
    int out[2];
    if (pipe(out) != 0) return "";  // cannot isolate: try in-process
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
        close(out[0]), close(out[1]);
        return "";
    }
    if (pid == 0) {
        dup2(out[1], 2);
        close(out[0]);
        alarm(1800);  // a search that never ends is a failure too
        // An error thrown where it cannot be caught: print its message before the abort.
        std::set_terminate([] {
            try {
                if (std::current_exception()) std::rethrow_exception(std::current_exception());
            } catch (const Halide::Error &e) {
                std::fprintf(stderr, "%s\n", e.what());
            } catch (...) {
            }
            _exit(2);
        });
        try {
            auto g = Halide::Internal::get_registered_generators().create("group_norm_forward", context);
            autoscheduled_pipeline(*g, params, dtype);
        } catch (const Halide::Error &e) {  // (not a std::exception)
            std::fprintf(stderr, "%s\n", e.what());
            _exit(1);
        } catch (...) {
            _exit(1);
        }
        _exit(0);
    }
    close(out[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(out[0], buf, sizeof(buf))) > 0;) text.append(buf, (size_t)n);
    close(out[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
    while (!text.empty() && std::isspace((unsigned char)text.back())) text.pop_back();
    if (text.size() > 400) text = "..." + text.substr(text.size() - 400);
    if (text == "Error:") text += " (the error carries no message)";
    std::replace(text.begin(), text.end(), '\n', ' ');
    const bool uncaught = WIFSIGNALED(status) || WEXITSTATUS(status) == 2;
    return (uncaught ? "ends the process (an error thrown where it cannot be caught)"
                     : std::string("fails")) +
           (text.empty() ? "" : ": " + text);
}

}  // namespace

bool jit_compile_forward_autoscheduled(const std::map<std::string, std::string> &params,
                                       DType dtype, const std::string &autoscheduler,
                                       const std::string &plugin, int parallelism,
                                       Halide::Callable *forward, std::string *error) {
    static std::set<std::string> loaded;
    try {
        if (loaded.insert(plugin).second) Halide::load_plugin(plugin);
        const Halide::Target target = Halide::get_jit_target_from_environment();
        const Halide::GeneratorContext context(
            target, Halide::AutoschedulerParams(autoscheduler,
                                                {{"parallelism", std::to_string(parallelism)}}));
        const std::string failed = autoschedule_in_child(context, params, dtype);
        if (!failed.empty()) {
            *error = autoscheduler + " " + failed;
            return false;
        }
        Halide::Internal::AbstractGeneratorPtr g =
            Halide::Internal::get_registered_generators().create("group_norm_forward", context);
        Halide::Pipeline pipeline = autoscheduled_pipeline(*g, params, dtype);
        std::vector<Halide::Argument> arguments;
        for (const Halide::Internal::AbstractGenerator::ArgInfo &a : g->arginfos()) {
            if (a.dir != Halide::Internal::ArgInfoDirection::Input) continue;
            for (const Halide::Parameter &p : g->input_parameter(a.name)) {
                arguments.emplace_back(p.name(),
                                       p.is_buffer() ? Halide::Argument::InputBuffer
                                                     : Halide::Argument::InputScalar,
                                       p.type(), p.dimensions(), p.get_argument_estimates());
            }
        }
        *forward = pipeline.compile_to_callable(arguments, target);
    } catch (const Halide::CompileError &e) {
        *error = autoscheduler + " does not compile: " + e.what();
        return false;
    } catch (const Halide::Error &e) {
        *error = autoscheduler + " fails inside Halide: " + e.what();
        return false;
    }
    return true;
}

GateResult jit_forward_gate(const std::map<std::string, std::string> &params, DType dtype,
                            const std::vector<Shape> &shapes, uint64_t seed, int activation) {
    Halide::Callable forward;
    GateResult result;
    if (!jit_compile_forward(params, dtype, &forward, &result.detail)) return result;
    return jit_gate_callable(forward, params.count("layout") ? params.at("layout") : "nchw",
                             dtype, shapes, seed, activation);
}

GateResult jit_gate_callable(Halide::Callable &forward, const std::string &layout, DType dtype,
                             const std::vector<Shape> &shapes, uint64_t seed, int activation,
                             GateData data) {
    GateResult result;
    const gd::gn_layout want = layout == "nhwc" ? gd::GN_LAYOUT_NHWC : gd::GN_LAYOUT_NCHW;
    std::mt19937_64 rng(seed);
    for (Layout test_layout : layouts_of(layout)) {
        for (const Shape &shape : shapes) {
            for (bool affine : {true, false}) {
                std::ostringstream what;
                what << to_string(shape.dims) << " G=" << shape.G << " " << name(test_layout)
                     << (affine ? " affine" : " no affine");
                ForwardCase c(shape, dtype, dtype, test_layout, affine,
                              std::uniform_real_distribution<double>(-30.0, 30.0)(rng), rng);
                if (data == GateData::Spikes) c.fill_spikes(rng);
                gd::Problem p;
                if (gd::validate_forward(c.x.dl(), c.g(), c.b(), shape.G, 1e-5, c.y.dl(),
                                         c.mean.dl(), c.rstd.dl(), &p) != GN_STATUS_SUCCESS) {
                    result.detail = what.str() + ": " + gn_last_error_message();
                    return result;
                }
                if (p.layout != want) continue;  // (N, C) data has the nhwc view
                // Without gamma/beta the runtime passes neutral ones in the params' dtype.
                if (!affine) p.param_dtype = p.dtype;
                gd::ForwardArgs a(p);
                const int code =
                    dtype == DType::F64
                        ? forward(&a.x.buf, &a.x_rows.buf, &a.gamma.buf, &a.beta.buf,
                                  (int32_t)p.G, 1e-5, activation, 1, &a.y.buf, &a.mean.buf,
                                  &a.rstd.buf)
                        : forward(&a.x.buf, &a.x_rows.buf, &a.gamma.buf, &a.beta.buf,
                                  (int32_t)p.G, 1e-5f, activation, 1, &a.y.buf, &a.mean.buf,
                                  &a.rstd.buf);
                Reference ref = c.reference(shape.G, 1e-5);
                apply_activation(ref, activation);
                ::testing::AssertionResult ok =
                    code != 0 ? ::testing::AssertionFailure() << "Halide error " << code
                              : matches_reference(c.y, ref, &c.mean, &c.rstd);
                if (ok && !c.y.gaps_untouched()) ok = ::testing::AssertionFailure() << "wrote outside y";
                if (!ok) {
                    result.detail = what.str() + ": " + ok.message();
                    return result;
                }
                result.cases++;
            }
        }
    }
    result.passed = true;
    return result;
}

}  // namespace gntest
