// The JIT correctness gate (jit_gate.h) on the default tunings and on non-default ones that
// stress each tuning field's code path: small blocks (many blocks and partials per group),
// other vector counts, short chains and tasks. A candidate that breaks the numerics must
// fail the gate; tests/test_forward.cpp covers the AOT variants.
#include <gtest/gtest.h>

#include "groupnorm/groupnorm.h"
#include "jit_gate.h"
#include "reference.h"
#include "tuning.h"

using namespace gntest;

namespace {

// Core shapes plus groups spanning many blocks at the small block sizes below.
std::vector<Shape> gate_shapes() {
    std::vector<Shape> shapes = core_shapes();
    shapes.push_back({{1, 8, 3000}, 2});
    shapes.push_back({{2, 4, 40, 40}, 1});
    return shapes;
}

struct Candidate {
    const char *label;
    std::map<std::string, std::string> params;
    DType dtype = DType::F32;
    int activation = GN_ACTIVATION_NONE;
};

void PrintTo(const Candidate &c, std::ostream *os) { *os << c.label; }

class JitGate : public ::testing::TestWithParam<Candidate> {};

// On normal data, and on spikes at every 16th position (jit_gate.h: most blocks' first
// values are outliers).
TEST_P(JitGate, CandidateMatchesFloat64Reference) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    const Candidate &c = GetParam();
    Halide::Callable forward;
    std::string error;
    ASSERT_TRUE(jit_compile_forward(c.params, c.dtype, &forward, &error)) << error;
    const std::string layout = c.params.count("layout") ? c.params.at("layout") : "nchw";
    for (GateData data : {GateData::Normal, GateData::Spikes}) {
        SCOPED_TRACE(data == GateData::Normal ? "normal data" : "spikes");
        const GateResult r =
            jit_gate_callable(forward, layout, c.dtype, gate_shapes(), seed, c.activation, data);
        EXPECT_TRUE(r.passed) << r.detail;
        EXPECT_GE(r.cases, 30);
    }
}

const Candidate kCandidates[] = {
    {"nchw_defaults", {{"layout", "nchw"}}},
    {"nchw_small_blocks", {{"layout", "nchw"}, {"y_vectors", "1"}, {"acc_vectors", "1"},
                           {"lane_steps", "4"}, {"blocks_per_partial", "3"}}},
    {"nhwc_defaults", {{"layout", "nhwc"}}},
    {"nhwc_small_blocks", {{"layout", "nhwc"}, {"y_vectors", "2"}, {"stat_vectors", "2"},
                           {"block_rows", "24"}, {"rows_per_step", "2"}, {"rows_per_chain", "4"},
                           {"rows_per_task", "5"}, {"blocks_per_partial", "2"}}},
    // The blocks' moments in the reads the defaults do not use (stat_passes: nchw one read,
    // nhwc two), and the nhwc moments a row per step (no row tail: its Funcs are undefined;
    // one read, whose fallback on spikes runs the two-pass Funcs a row per step too).
    {"nchw_two_passes", {{"layout", "nchw"}, {"stat_passes", "2"}}},
    {"nhwc_one_pass", {{"layout", "nhwc"}, {"stat_passes", "1"}}},
    {"nhwc_small_blocks_one_pass", {{"layout", "nhwc"}, {"stat_passes", "1"}, {"block_rows", "24"},
                                    {"rows_per_step", "2"}, {"rows_per_chain", "4"}}},
    {"nhwc_row_per_step_one_pass", {{"layout", "nhwc"}, {"stat_passes", "1"}, {"rows_per_step", "1"},
                                    {"rows_per_chain", "16"}}},
    // float64 (its own bound): the same small-block code paths in the other compute type.
    {"nchw_small_blocks_f64", {{"layout", "nchw"}, {"y_vectors", "1"}, {"acc_vectors", "1"},
                               {"lane_steps", "4"}, {"blocks_per_partial", "3"}}, DType::F64},
    {"nhwc_small_blocks_f64", {{"layout", "nhwc"}, {"y_vectors", "2"}, {"stat_vectors", "2"},
                               {"block_rows", "24"}, {"rows_per_step", "2"}, {"rows_per_chain", "4"},
                               {"rows_per_task", "5"}, {"blocks_per_partial", "2"}}, DType::F64},
    // One copy of the pipeline for every fused activation (the size option): SiLU through
    // the per-vector branch, as the default builds run ReLU and GELU (the AOT tests run
    // the default copies).
    {"nchw_one_fused_copy_silu", {{"layout", "nchw"}, {"fused_copies", "1"}}, DType::F32,
     GN_ACTIVATION_SILU},
    {"nhwc_one_fused_copy_silu", {{"layout", "nhwc"}, {"fused_copies", "1"}}, DType::F32,
     GN_ACTIVATION_SILU},
};

INSTANTIATE_TEST_SUITE_P(Tunings, JitGate, ::testing::ValuesIn(kCandidates),
                         [](const auto &info) { return std::string(info.param.label); });

// The gate refuses a tuning outside its documented range (tuning.h) with the reason.
TEST(JitGateRefuses, OutOfRangeTuning) {
    const GateResult r = jit_forward_gate({{"layout", "nhwc"}, {"rows_per_step", "3"},
                                           {"rows_per_chain", "64"}},
                                          DType::F32, {{{1, 4, 8, 8}, 2}}, 1);
    EXPECT_FALSE(r.passed);
    EXPECT_NE(r.detail.find("rows_per_chain must be a multiple of rows_per_step"), std::string::npos)
        << r.detail;
    // A block of fewer rows than a step (its rows would go uncounted).
    const GateResult short_block = jit_forward_gate(
        {{"layout", "nhwc"}, {"block_rows", "4"}, {"rows_per_step", "8"}, {"rows_per_chain", "8"}},
        DType::F32, {{{1, 4, 8, 8}, 2}}, 1);
    EXPECT_FALSE(short_block.passed);
    EXPECT_NE(short_block.detail.find("block_rows must be at least rows_per_step"), std::string::npos)
        << short_block.detail;
}

// Every tuning field has a meaning and a range, and the defaults of every family are in range.
TEST(Tuning, FieldsDocumentedAndDefaultsValid) {
    using groupnorm_gen::Family, groupnorm_gen::GpuShape, groupnorm_gen::Tuning,
        groupnorm_gen::TuningField;
    using L = groupnorm_gen::Layout;
    for (const TuningField &f : groupnorm_gen::kTuningFields) {
        EXPECT_GT(std::string(f.meaning).size(), 10u) << f.name;
        EXPECT_LE(f.min, f.max) << f.name;
    }
    for (Family fam : {Family::X86, Family::Arm, Family::Gpu}) {
        for (L l : {L::NCHW, L::NHWC}) {
            for (GpuShape s : {GpuShape::Split, GpuShape::Group}) {
                EXPECT_EQ(groupnorm_gen::check_tuning(fam, groupnorm_gen::default_tuning(fam, l, s)), "");
            }
        }
    }
    Tuning t;
    EXPECT_EQ(groupnorm_gen::resolve_tuning_spec(Family::Gpu, L::NCHW, GpuShape::Group, "gpu_block=64", &t), "");
    EXPECT_EQ(t.gpu_block, 64);
    EXPECT_NE(groupnorm_gen::resolve_tuning_spec(Family::Gpu, L::NCHW, GpuShape::Group, "nope=1", &t), "");
}

}  // namespace
