#include "jit_gate.h"

#include <random>
#include <sstream>

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

}  // namespace

bool jit_compile_forward(const std::map<std::string, std::string> &params, DType dtype,
                         Halide::Callable *forward, std::string *error) {
    Halide::GeneratorParamsMap gp;
    for (const char *name : {"x.type", "x_rows.type", "y.type", "gamma.type", "beta.type"}) {
        gp[name] = halide_type_name(dtype);
    }
    // eps and the statistics have the compute type (cmake/GroupNormVariants.cmake).
    for (const char *name : {"eps.type", "mean.type", "rstd.type"}) {
        gp[name] = halide_type_name(stat_dtype(dtype));
    }
    for (const auto &[name, value] : params) gp[name] = value;
    try {
        const Halide::GeneratorContext context(Halide::get_jit_target_from_environment());
        *forward = Halide::create_callable_from_generator(context, "group_norm_forward", gp);
    } catch (const Halide::CompileError &e) {
        *error = std::string("does not compile: ") + e.what();
        return false;
    }
    return true;
}

GateResult jit_forward_gate(const std::map<std::string, std::string> &params, DType dtype,
                            const std::vector<Shape> &shapes, uint64_t seed) {
    Halide::Callable forward;
    GateResult result;
    if (!jit_compile_forward(params, dtype, &forward, &result.detail)) return result;
    return jit_gate_callable(forward, params.count("layout") ? params.at("layout") : "nchw",
                             dtype, shapes, seed);
}

GateResult jit_gate_callable(Halide::Callable &forward, const std::string &layout, DType dtype,
                             const std::vector<Shape> &shapes, uint64_t seed) {
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
                                  (int32_t)p.G, 1e-5, 0, &a.y.buf, &a.mean.buf, &a.rstd.buf)
                        : forward(&a.x.buf, &a.x_rows.buf, &a.gamma.buf, &a.beta.buf,
                                  (int32_t)p.G, 1e-5f, 0, &a.y.buf, &a.mean.buf, &a.rstd.buf);
                ::testing::AssertionResult ok =
                    code != 0 ? ::testing::AssertionFailure() << "Halide error " << code
                              : matches_reference(c.y, c.reference(shape.G, 1e-5), &c.mean, &c.rstd);
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
