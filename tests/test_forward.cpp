// Every compiled CPU variant (enumerated from the registry) against the float64 reference on
// fresh random data with a non-zero mean, poisoned outputs, odd shapes, all layouts the
// variant serves; dispatch and the registry's reasons.
#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>

#include "canonicalise.h"
#include "dispatch.h"
#include "isa.h"
#include "registry.h"
#include "forward_case.h"
#include "groupnorm/groupnorm.h"
#include "reference.h"
#include "registry_cases.h"
#include "support/layout.h"

using namespace gntest;

namespace {

namespace gd = groupnorm::detail;

std::string variant_name(const ::testing::TestParamInfo<const gd::Variant *> &info) {
    return info.param->name;
}

// Runs gn_forward on fresh data and checks y (and mean/rstd when asked for).
void check_forward(const Shape &shape, DType dtype, DType param_dtype, Layout layout,
                   bool affine, bool stats, std::mt19937_64 &rng, double data_mean = 0) {
    if (data_mean == 0) data_mean = std::uniform_real_distribution<double>(-3.0, 3.0)(rng);
    ForwardCase c(shape, dtype, param_dtype, layout, affine, data_mean, rng);
    const double eps = 1e-5;
    gn_status st = gn_forward(c.x.dl(), c.g(), c.b(), shape.G, eps, c.y.dl(),
                              stats ? c.mean.dl() : nullptr, stats ? c.rstd.dl() : nullptr,
                              nullptr);
    ASSERT_EQ(st, GN_STATUS_SUCCESS) << gn_last_error_message();
    EXPECT_TRUE(matches_reference(c.y, c.reference(shape.G, eps), stats ? &c.mean : nullptr,
                                  stats ? &c.rstd : nullptr));
    EXPECT_TRUE(c.y.gaps_untouched()) << "wrote outside y's view";
    if (!stats) {
        EXPECT_TRUE(c.mean.all_poison());
    }
}

class CpuVariant : public ::testing::TestWithParam<const gd::Variant *> {};

// Runs variant v itself on c (with mean and rstd when `stats`) and checks it against the
// float64 reference; *ran says whether v serves c's problem at all (its layout, its class).
void run_variant_checked(const gd::Variant &v, ForwardCase &c, int64_t G, bool stats, bool *ran) {
    *ran = false;
    gd::Problem p;
    ASSERT_EQ(gd::validate_forward(c.x.dl(), c.g(), c.b(), G, 1e-5, c.y.dl(),
                                   stats ? c.mean.dl() : nullptr, stats ? c.rstd.dl() : nullptr, &p),
              GN_STATUS_SUCCESS)
        << gn_last_error_message();
    // (N, C) data views as channels-last; a variant runs only its own layout.
    if (p.layout != v.layout || !gd::can_run(v, p)) return;
    ASSERT_EQ(gd::install_cpu_isa_cap(), GN_STATUS_SUCCESS);
    ASSERT_EQ(gd::run_forward(v, p, 1e-5), GN_STATUS_SUCCESS) << gn_last_error_message();
    EXPECT_TRUE(matches_reference(c.y, c.reference(G, 1e-5), stats ? &c.mean : nullptr,
                                  stats ? &c.rstd : nullptr));
    EXPECT_TRUE(c.y.gaps_untouched()) << "wrote outside y's view";
    if (!stats) EXPECT_TRUE(c.mean.all_poison());
    *ran = true;
}

// The variant itself (run directly, whether or not dispatch would pick it for the shape) on
// every core shape and test layout it can run, at the ISA level this process runs at.
TEST_P(CpuVariant, MatchesFloat64Reference) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    int ran = 0;
    for (Layout layout : test_layouts(v.layout)) {
        for (const Shape &shape : core_shapes()) {
            for (bool affine : {true, false}) {
                // No gamma/beta: neutral parameters of the statistics' dtype.
                if (!affine && pt != stat_dtype(dt)) continue;
                SCOPED_TRACE(to_string(shape.dims) + " G=" + std::to_string(shape.G) + " " +
                             name(layout) + (affine ? " affine" : " no affine"));
                ForwardCase c(shape, dt, pt, layout, affine,
                              std::uniform_real_distribution<double>(-3.0, 3.0)(rng), rng);
                bool served = false;
                ASSERT_NO_FATAL_FAILURE(run_variant_checked(v, c, shape.G, affine, &served));
                ran += served;
            }
        }
    }
    EXPECT_GE(ran, 20) << "too few shapes ran this variant";
}

// Every test layout of the variant on `shapes`, x filled by `fill` (after ForwardCase's own
// fill), affine; at least one shape must run.
template <typename Fill>
void run_on_data(const gd::Variant &v, std::initializer_list<Shape> shapes, Fill fill) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    int ran = 0;
    for (Layout layout : test_layouts(v.layout)) {
        for (const Shape &shape : shapes) {
            SCOPED_TRACE(to_string(shape.dims) + " G=" + std::to_string(shape.G) + " " + name(layout));
            ForwardCase c(shape, dt, pt, layout, true, 0, rng);
            fill(c, shape, rng);
            bool served = false;
            ASSERT_NO_FATAL_FAILURE(run_variant_checked(v, c, shape.G, true, &served));
            ran += served;
        }
    }
    EXPECT_GE(ran, 1) << "no shape ran this variant";
}

// Groups whose first values are outliers (a bright corner on a flat background): the
// statistics' sums are shifted by a pivot taken from those values, far from the mean in units
// of the std (10 to 64 std here), and float32 sums of such values round ~|mean - pivot| /
// std times worse than centred ones (a fuzzer's input: the mean 3e-4 off, y 2.6x the bound).
TEST_P(CpuVariant, OutliersAtTheGroupStart) {
    run_on_data(*GetParam(),
                {Shape{{2, 4, 12, 12, 12}, 1}, Shape{{1, 8, 64, 96}, 2}, Shape{{1, 4, 256, 256}, 1}},
                [](ForwardCase &c, const Shape &shape, std::mt19937_64 &rng) {
                    // A flat background at -97 (equal values: their rounding errors add up
                    // instead of cancelling), the first 64 values of each group's first channel
                    // 127 above it.
                    c.x.fill_normal(rng, -97.0, 0.0);
                    const int64_t D = c.x.C() / shape.G;
                    for (int64_t n = 0; n < c.x.N(); n++)
                        for (int64_t g = 0; g < shape.G; g++)
                            for (int64_t s = 0; s < 64; s++) c.x.set(n, g * D, s, 30.0 + 0.01 * s);
                });
}

// Spikes at every 16th spatial position on a flat background: most blocks start with an
// outlier (sums shifted by a block's first value would lose ~n times their rounding), and
// the background's equal values round alike instead of cancelling.
TEST_P(CpuVariant, SpikesAtBlockStarts) {
    run_on_data(*GetParam(), {Shape{{2, 4, 12, 12, 12}, 1}, Shape{{1, 8, 64, 96}, 2}},
                [](ForwardCase &c, const Shape &, std::mt19937_64 &rng) { c.fill_spikes(rng); });
}

// Tensors of at least next_prefetch_total values (tuning.h) run plain y's copy that prefetches
// the next group's x (nchw), on rows that are not whole wide vectors (S = 144: masked tails,
// no narrow copy there) in groups of 576 values (the small class), and on groups of 1.2M
// values (the large class), with the prefetch allowed whatever this CPU's policy. Two cases a
// variant: under qemu and ASan each costs seconds.
TEST_P(CpuVariant, LargeTensorCopiesOfY) {
    const gd::Variant &v = *GetParam();
    if (v.layout != gd::GN_LAYOUT_NCHW) GTEST_SKIP() << "channels-last y has no prefetching copy";
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    const int64_t least = groupnorm_gen::default_tuning(groupnorm_gen::Family::X86,
                                                        groupnorm_gen::Layout::NCHW,
                                                        groupnorm_gen::GpuShape::Split)
                              .next_prefetch_total;
    int ran = 0;
    PrefetchForcedOn prefetch;
    for (const Shape &shape : {Shape{{8, 2048, 12, 12}, 512}, Shape{{1, 16, 384, 384}, 2}}) {
        int64_t values = 1;
        for (int64_t d : shape.dims) values *= d;
        ASSERT_GE(values, least) << "the shape no longer reaches the prefetching copies";
        SCOPED_TRACE(to_string(shape.dims) + " G=" + std::to_string(shape.G));
        ForwardCase c(shape, dt, pt, Layout::Contiguous, true,
                      std::uniform_real_distribution<double>(-3.0, 3.0)(rng), rng);
        bool served = false;
        ASSERT_NO_FATAL_FAILURE(run_variant_checked(v, c, shape.G, true, &served));
        ran += served;
    }
    EXPECT_GE(ran, 1) << "no shape ran this variant";
}

// A problem of the variant's own kind inside its shape class is served by the variant itself:
// tuned classes (groupnorm tune's table) are placed before the table's `any` row of their
// kind, and their bounds do not overlap. Shapes (N, 2, S) with G = 1 at each edge of the
// class's group-size bounds (group = 2 S; an edge above max_values is brought down to it),
// each with the fewest and the most samples its bounds on x's values allow (values =
// N group; only shapes and strides are read).
TEST_P(CpuVariant, DispatchServesItsClass) {
    const gd::Variant &v = *GetParam();
    const gd::ShapeBounds &b = v.bounds;
    EXPECT_EQ(std::string(v.shape_class) == "any", !b.bounded());
    std::vector<int64_t> group_sizes;
    for (int64_t edge : {b.min_group, b.max_group}) {
        if (edge < 0) continue;
        if (b.max_values >= 0) edge = std::min(edge, b.max_values);
        group_sizes.push_back(edge + edge % 2);  // 2 channels: even
    }
    if (group_sizes.empty()) group_sizes.push_back(2 * 5 * 5);
    for (int64_t group : group_sizes) {
        const int64_t fewest = b.min_values < 0 ? 1 : std::max<int64_t>(1, (b.min_values + group - 1) / group);
        const int64_t most = b.max_values < 0 ? fewest + 1 : b.max_values / group;
        ASSERT_LE(fewest, most) << "no shape of group size " << group << " inside the class";
        for (int64_t n : {fewest, most}) {
            SCOPED_TRACE("group size " + std::to_string(group) + ", N = " + std::to_string(n));
            const std::vector<int64_t> shape = {n, 2, group / 2};
            groupnorm::support::DLTensorView x(reinterpret_cast<void *>(uintptr_t(64)),
                                               dl_type(test_dtype(v.dtype)), shape,
                                               v.layout == gd::GN_LAYOUT_NHWC);
            Param gamma(std::vector<double>(2, 1.0), test_dtype(v.param_dtype));
            gd::Problem problem;
            ASSERT_EQ(gd::validate_forward(&x.dl, gamma.dl(), nullptr, 1, 1e-5, &x.dl, nullptr,
                                           nullptr, &problem),
                      GN_STATUS_SUCCESS)
                << gn_last_error_message();
            std::string why;
            ASSERT_TRUE(gd::accepts(v, problem, &why)) << why;
            const gd::Variant *served = gd::find_variant(problem);
            ASSERT_NE(served, nullptr);
            if (served != &v && std::string(v.shape_class) == "any") {
                // A tuned class of the same kind, listed before this row, covers this shape.
                EXPECT_NE(std::string(served->shape_class), "any") << served->name;
                EXPECT_TRUE(served->op == v.op && served->dtype == v.dtype &&
                            served->layout == v.layout && served->param_dtype == v.param_dtype)
                    << served->name;
            } else {
                EXPECT_EQ(served, &v) << served->name;
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Registry, CpuVariant,
                         ::testing::ValuesIn(variants_of(gd::GN_DEVICE_CPU, gd::GN_OP_FORWARD)),
                         variant_name);

// The registry says why it refuses: op, device, dtype, layout, params, and the class bounds.
TEST(Registry, RefusalsSayWhy) {
    Tensor x({2, 8, 5, 5}, DType::F32), y({2, 8, 5, 5}, DType::F32);
    gd::Problem p;
    ASSERT_EQ(gd::validate_forward(x.dl(), nullptr, nullptr, 4, 1e-5, y.dl(), nullptr, nullptr, &p),
              GN_STATUS_SUCCESS);
    size_t count = 0;
    const gd::Variant *all = gd::all_variants(&count);
    int refused = 0;
    for (size_t i = 0; i < count; i++) {
        std::string why;
        if (gd::accepts(all[i], p, &why)) continue;
        EXPECT_FALSE(why.empty()) << all[i].name;
        refused++;
    }
    EXPECT_GT(refused, 0);
    gd::Variant bounded = *gd::find_variant(p);
    bounded.bounds.min_ng = 9;  // N * G = 8
    std::string why;
    EXPECT_FALSE(gd::accepts(bounded, p, &why));
    EXPECT_NE(why.find("N*G = 8 < 9"), std::string::npos) << why;
    bounded.bounds = {};
    bounded.bounds.max_group = 49;  // D * S = 2 * 25
    EXPECT_FALSE(gd::accepts(bounded, p, &why));
    EXPECT_NE(why.find("group size 50 > 49"), std::string::npos) << why;
    bounded.bounds = {};
    bounded.bounds.min_values = 401;  // 2 * 8 * 25
    EXPECT_FALSE(gd::accepts(bounded, p, &why));
    EXPECT_NE(why.find("x's 400 values < 401"), std::string::npos) << why;
    bounded.bounds.min_values = 400;  // bounds are inclusive
    EXPECT_TRUE(gd::accepts(bounded, p, &why)) << why;
    bounded.bounds = {};
    bounded.bounds.max_values = 399;
    EXPECT_FALSE(gd::accepts(bounded, p, &why));
    EXPECT_NE(why.find("x's 400 values > 399"), std::string::npos) << why;
    bounded.bounds.max_values = 400;
    EXPECT_TRUE(gd::accepts(bounded, p, &why)) << why;
}

TEST(Forward, HugeGroup) {
    // 4M elements in one group: the cascaded sums must hold the contract (float32 and
    // float64, each against its own bound).
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    for (DType dt : {DType::F32, DType::F64}) {
        for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
            SCOPED_TRACE(std::string(name(layout)) + " " + name(dt));
            check_forward({{1, 4, 1024, 1024}, 1}, dt, dt, layout, true, true, rng);
        }
    }
}

TEST(Forward, EmptyTensorsWriteNothing) {
    for (std::vector<int64_t> dims : {std::vector<int64_t>{0, 8, 4, 4}, {2, 8, 0, 4}, {2, 8, 0}}) {
        SCOPED_TRACE(to_string(dims));
        Tensor x(dims, DType::F32), y(dims, DType::F32);
        Tensor mean({dims[0], 4}, DType::F32);
        y.poison();
        mean.poison();
        EXPECT_EQ(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, y.dl(), mean.dl(), nullptr, nullptr),
                  GN_STATUS_SUCCESS);
        EXPECT_TRUE(y.all_poison());
        EXPECT_TRUE(mean.all_poison());
    }
}

TEST(Forward, InPlace) {
    std::mt19937_64 rng(fresh_seed());
    for (DType dt : {DType::F32, DType::F64})
    for (Layout layout : {Layout::Contiguous, Layout::ChannelsLast}) {
        Tensor x({2, 16, 9, 11}, dt, layout);
        x.fill_normal(rng, 2.0, 1.5);
        Reference ref = reference_group_norm(x, nullptr, nullptr, 4, 1e-5);
        ASSERT_EQ(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, x.dl(), nullptr, nullptr, nullptr),
                  GN_STATUS_SUCCESS)
            << gn_last_error_message();
        EXPECT_TRUE(matches_reference(x, ref));
    }
}

TEST(Forward, GammaOnlyAndBetaOnly) {
    std::mt19937_64 rng(fresh_seed());
    for (DType dt : {DType::F32, DType::F16, DType::F64}) {
        Tensor x({2, 12, 6, 6}, dt), y({2, 12, 6, 6}, dt);
        x.fill_normal(rng, -1.0, 2.0);
        Param gamma = random_param(12, dt, rng, 1.0, 0.5), beta = random_param(12, dt, rng, 0, 1);
        y.poison();
        ASSERT_EQ(gn_forward(x.dl(), gamma.dl(), nullptr, 3, 1e-5, y.dl(), nullptr, nullptr, nullptr),
                  GN_STATUS_SUCCESS);
        EXPECT_TRUE(matches_reference(y, reference_group_norm(x, &gamma, nullptr, 3, 1e-5)));
        y.poison();
        ASSERT_EQ(gn_forward(x.dl(), nullptr, beta.dl(), 3, 1e-5, y.dl(), nullptr, nullptr, nullptr),
                  GN_STATUS_SUCCESS);
        EXPECT_TRUE(matches_reference(y, reference_group_norm(x, nullptr, &beta, 3, 1e-5)));
    }
}

}  // namespace
