// GroupNorm forward: the algorithm, written once. docs/DESIGN.md explains the whole system.
//
// Canonical view (runtime/src/canonicalise.cpp makes it from any (N, C, *) tensor):
//   x(s, c, n) with s the flattened spatial index, c the channel, n the sample.
// Groups: c = g * D + d with D = C / groups.
//
//   pivot(g, n)   = mean of the group's first (up to) 64 values: the shift of all sums
//   moments(g, n) = robust sum and centred second moment of x - pivot, and the mean's
//                   correction (robust_moments.h)
//   stats(g, n)   = {mean_r = mean rounded, mean - mean_r, rstd = 1 / sqrt(var + eps)}
//   y(s, c, n)    = epilogue((x - mean_r) * a + b),  a = rstd * gamma, b = beta - (mean - mean_r) * a
//                   (epilogue: the fused activation chosen at run time, activation.h)
//
// The residual prologue (GeneratorParam residual, the table's `res` rows): the normalized
// input is x + skip + skip_nc(c, n) + skip_bias(c) instead of x, and `sum` receives it (the
// residual branch of a UNet/transformer block). skip has x's shape and layout (has_skip = 0:
// none, the runtime then passes x and it is not added); skip_nc is a per-(n, c) term (a time
// embedding; zeros when none) and skip_bias a per-channel bias. Each group's rows are its
// channels then (x_rows is x).
//
// Everything is in the compute type: float32, or float64 for float64 x (generator_base.h).
// The shift stays in the normalize step: x * a + (beta - mean * a) would cancel
// catastrophically when |mean| >> std.
//
// Which schedule runs follows from the target and the `layout` GeneratorParam (schedules/);
// the schedules' parameters are GeneratorParams too (tuning.h).

#include "Halide.h"
#include "activation.h"
#include "generator_base.h"
#include "group_norm_stages.h"
#include "schedules/cpu_nchw.h"
#include "schedules/cpu_nhwc.h"
#include "schedules/gpu.h"
#include "tuning.h"

namespace groupnorm_gen {

using namespace Halide;

class GroupNormForward : public GroupNormGenerator<GroupNormForward> {
public:
    // Types are set per variant by the build: x.type, y.type (same), gamma.type, beta.type;
    // eps.type, mean.type, rstd.type: the compute type (float64 for float64 x, else float32).
    Input<Buffer<void, 3>> x{"x"};
    // The statistics' view of x as rows (i, r, n): a group is rows / groups rows
    // (runtime/src/dispatch.cpp: one row per group when the group's channels are
    // contiguous, else x itself, one row per channel).
    Input<Buffer<void, 3>> x_rows{"x_rows"};
    Input<Buffer<void, 1>> gamma{"gamma"};
    Input<Buffer<void, 1>> beta{"beta"};
    Input<int32_t> groups{"groups"};
    Input<Expr> eps{"eps"};
    // The fused activation applied to y (activation.h: 0 none, 1 SiLU, 2 ReLU, 3 GELU erf,
    // 4 GELU tanh), chosen at run time: y is specialized once per value. float64 variants
    // compile none (fused_activations()) and require 0.
    Input<int32_t> activation{"activation"};
    // 1: the schedule may prefetch ahead (the nchw forward's next group); 0: never. Chosen
    // per CPU by the runtime (runtime/src/prefetch_policy.h): the prefetch is non-temporal,
    // Halide's only kind, which helped on AMD and cost 1.2-1.3x on an Intel Xeon.
    Input<int32_t> prefetch{"prefetch"};

    Output<Buffer<void, 3>> y{"y"};
    Output<Buffer<void, 2>> mean{"mean"};  // (g, n)
    Output<Buffer<void, 2>> rstd{"rstd"};  // (g, n)

    // The residual prologue (header comment). skip and skip_nc have x's type (skip_type),
    // skip_bias gamma's (skip_bias_type): a GeneratorParam each, since added inputs cannot
    // take their types from the predeclared ones. Appended after the predeclared inputs
    // and outputs: ..., activation, prefetch, skip, skip_nc, skip_bias, has_skip, y, mean,
    // rstd, sum.
    GeneratorParam<bool> residual{"residual", false};
    GeneratorParam<Type> skip_type{"skip_type", Float(32)};
    GeneratorParam<Type> skip_bias_type{"skip_bias_type", Float(32)};

    void configure() {
        if (!residual) return;
        skip = add_input<Buffer<>>("skip", skip_type, 3);
        skip_nc = add_input<Buffer<>>("skip_nc", skip_type, 2);
        skip_bias = add_input<Buffer<>>("skip_bias", skip_bias_type, 1);
        has_skip = add_input<int32_t>("has_skip");
        sum = add_output<Buffer<>>("sum", skip_type, 3);
    }

    void generate() {
        const Tuning tune = resolved_tuning();
        const Type ct = compute_type();
        _halide_user_assert(eps.type() == ct && mean.type() == ct && rstd.type() == ct)
            << "eps, mean and rstd must have the compute type " << ct;
        ForwardStages st;
        st.type = ct;
        st.D = x.dim(1).extent() / groups;
        st.spatial = x.dim(0).extent();
        // The next group's prefetch (define_normalize): not compiled at the field's maximum.
        if (family() != Family::Gpu && layout == Layout::NCHW && !residual &&
            !using_autoscheduler() && tune.next_prefetch_total < (1 << 30)) {
            Expr values = cast<int64_t>(x.dim(0).extent()) * x.dim(1).extent() * x.dim(2).extent();
            st.prefetch_off = values < cast<int64_t>(tune.next_prefetch_total) || prefetch == 0;
        }
        st.silu_copy = family() != Family::Gpu && fused_activations() && !using_autoscheduler() &&
                       tune.fused_copies == 2;
        if (family() != Family::Gpu && !residual) {
            st.plain_y = fused_activations() ? (activation == kActNone) : Internal::const_true();
        }
        // With the residual prologue x_rows is x (a row per channel: add_requirements), said
        // in x's terms so that bounds of the statistics' rows and y's channels coincide.
        st.row_len = residual ? x.dim(0).extent() : x_rows.dim(0).extent();
        Expr rows_per_group = residual ? st.D : x_rows.dim(1).extent() / groups;

        // CPU nhwc finds each channel's group by a float division (group_of).
        if (family() != Family::Gpu && layout == Layout::NHWC && !using_autoscheduler()) {
            st.float_group_of = x.dim(1).extent() < (1 << 23);
        }
        define_input(st);
        define_pivot(st, rows_per_group);
        BlockGeometry geometry = block_geometry(tune);
        geometry.guarded_tail = using_autoscheduler();
        // (The autoschedulers and GPU schedules know nothing of the redo loop.)
        geometry.one_pass = family() != Family::Gpu && !using_autoscheduler() && tune.stat_passes == 1;
        st.define(st.row_input, st.row_pivot, st.row_len, rows_per_group, geometry);
        define_stats(st, rows_per_group);
        define_normalize(st);

        y = st.y;
        mean = st.mean;
        rstd = st.rstd;
        if (residual) *sum = st.sum;
        add_requirements(st, rows_per_group);
        constrain_layout();
        if (using_autoscheduler()) {
            // Halide's autoscheduler schedules the whole pipeline (tools/tune compares it).
            set_estimates();
            if (fused_activations()) add_requirement(activation == kActNone,
                                                     "autoscheduled variants have no fused activation");
            return;
        }
        schedule(st, tune);
        if (!fused_activations()) {
            add_requirement(activation == kActNone,
                            "float64 variants have no fused activation (activation must be 0)");
        } else if (family() == Family::Gpu) {
            // Its own kernel: one copy per activation costs a small kernel each.
            specialize_activations(st.y, activation, /*with_none=*/true);
        } else if (residual) {
            // A copy for SiLU (1.1-1.7x faster than through the branch, 1.69x the code) and
            // one where no activation is the epilogue's case 0, a branch per vector of y (a
            // plain copy, 2.4 MB more of x86 code, was no faster next to the residual's work).
            if (st.silu_copy) st.y.specialize(activation == kActSilu);
            specialize_activations(st.activated, activation, /*with_none=*/true);
        } else {
            // Copies of the CPU pipeline: plain GroupNorm exactly as without the epilogue
            // (two, with and without the next group's prefetch); SiLU, the activation of
            // diffusion models, with SiLU in y's own expression; the fused one, whose
            // activation (ReLU, GELU, GELU tanh) is chosen per vector of y. That branch
            // keeps the vector in a stack buffer and spills around it: SiLU through it was
            // 1.13-1.3x slower NCHW, 1.1-1.6x NHWC, for 1.27x the forward code (docs/SIZES.md;
            // tuning fused_copies = 1 leaves it out).
            // The fused copy comes last, in the else branches: its select folds to
            // `activated`, whose SiLU case Halide drops there.
            if (st.prefetch_off.defined()) st.y.specialize(st.plain_y && st.prefetch_off);
            st.y.specialize(activation == kActNone);
            if (st.silu_copy) st.y.specialize(activation == kActSilu);
            specialize_activations(st.activated, activation, /*with_none=*/false);
        }
        // No fused activations: plain y without the prefetch, then (the default) with it.
        if (!fused_activations() && st.prefetch_off.defined()) st.y.specialize(st.prefetch_off);
    }

private:
    Input<Buffer<>> *skip = nullptr, *skip_nc = nullptr, *skip_bias = nullptr;
    Input<int32_t> *has_skip = nullptr;
    Output<Buffer<>> *sum = nullptr;

    // What is normalized, in the compute type: x, or with the residual prologue
    // (x + skip) + (skip_nc + skip_bias), whose per-(c, n) term is a Func (`shift`) the
    // schedules compute once per channel. The statistics read it as rows (row_input).
    void define_input(ForwardStages &st) {
        Var s = st.s, c = st.c, n = st.n, i = st.i, r = st.r;
        const Type ct = compute_type();
        if (!residual) {
            st.input(s, c, n) = cast(ct, x(s, c, n));
            st.row_input(i, r, n) = cast(ct, x_rows(i, r, n));
            return;
        }
        _halide_user_assert(family() != Family::Gpu && ct == Float(32))
            << "the residual prologue is compiled for CPU float32/float16/bfloat16 variants";
        _halide_user_assert(skip_type.value() == x.type() && skip_bias_type.value() == gamma.type())
            << "skip_type must be x's type and skip_bias_type gamma's";
        st.shift(c, n) = cast(ct, (*skip_nc)(c, n)) + cast(ct, (*skip_bias)(c));
        Expr with_skip = cast(ct, x(s, c, n)) + cast(ct, (*skip)(s, c, n));
        st.input(s, c, n) = strict_float(
            select(*has_skip != 0, with_skip, cast(ct, x(s, c, n))) + st.shift(c, n));
        st.row_input(i, r, n) = st.input(i, r, n);  // rows are channels (add_requirements)
        st.sum(s, c, n) = cast_out(x.type(), st.input(s, c, n));
    }

    // The shift of all sums: the mean of the group's first (up to) 64 values. Sums of
    // x - pivot lose ~|mean - pivot| / std times more to rounding than centred ones; a single
    // element as pivot (a few std off) cost 1e-5 on groups of 4M elements.
    void define_pivot(ForwardStages &st, Expr rows_per_group) {
        Var c = st.c, n = st.n, g = st.g, r = st.r;
        Expr pivot_count = min(st.row_len, 64);
        st.rp = RDom(0, pivot_count, "rp");
        st.pivot_sum(g, n) = zero_of(st.type);
        st.pivot_sum(g, n) += st.row_input(st.rp, g * rows_per_group, n);
        st.pivot(g, n) = st.pivot_sum(g, n) / cast(st.type, pivot_count);
        st.chan_pivot(c, n) = st.pivot(group_of(st, c), n);
        // NHWC rows are x's channels (the runtime passes x itself: a requirement), so a
        // row's pivot is its channel's, not a second per-channel table of the same values.
        if (layout == Layout::NHWC) {
            st.row_pivot(r, n) = st.chan_pivot(r, n);
        } else {
            st.row_pivot(r, n) = st.pivot(r / rows_per_group, n);
        }
    }

    // The group of channel c, c / D. Where st.float_group_of is defined (CPU nhwc: tables
    // of all C channels per sample, a vector at a time) and true, the same quotient as
    // trunc((c + 0.5) / D) in float32, vectorized (an integer division is a scalar
    // instruction per channel: a tenth of 2x2560x8x8's time, channels-last). Exact for
    // C < 2^23: c + 0.5 and D are exact, the true quotient is at least 1 / (2 D) from an
    // integer, and the division's rounding error is below C / D * 2^-24 <= 1 / (2 D).
    Expr group_of(const ForwardStages &st, Expr c) const {
        if (!st.float_group_of.defined()) return c / st.D;
        Expr q = strict_float((cast<float>(c) + 0.5f) / cast<float>(st.D));
        return select(st.float_group_of, cast<int>(q), c / st.D);
    }

    // Mean (relative to the pivot) and rstd per group, then their per-channel affine form.
    void define_stats(ForwardStages &st, Expr rows_per_group) {
        Var c = st.c, n = st.n, g = st.g;
        Expr count = cast(st.type, st.row_len) * cast(st.type, rows_per_group);  // S * D
        // The first pass's sum plus what it missed (robust_moments.h: the corrected two-pass
        // mean).
        Expr shifted_mean = (st.grp_sum(g, n) + st.grp_m2(g, n)[1]) / count;
        Expr var = st.grp_m2(g, n)[0] / count;
        // strict_float: IEEE division and square root here (once per group), never the
        // reciprocal estimates a backend may substitute under fast-math.
        // y's shift is the mean itself, rounded (mean_r), and mean - mean_r (exact: TwoSum)
        // goes into b: x - pivot is ~|mean - pivot| / std times larger than y, and each
        // rounding of the normalize step scaled by it (a group whose first values are
        // outliers: 64 std, 1.2x the bound).
        TwoSum mean = two_sum(st.pivot(g, n), strict_float(shifted_mean));
        st.stats(g, n) = Tuple(mean.sum, mean.err, strict_float(1.0f / sqrt(var + eps)));
        Expr group = group_of(st, c);
        Expr a = st.stats(group, n)[2] * cast(st.type, gamma(c));
        st.chan_affine(c, n) = Tuple(a, cast(st.type, beta(c)) - st.stats(group, n)[1] * a,
                                     st.stats(group, n)[0]);
        st.mean(g, n) = st.stats(g, n)[0];
        st.rstd(g, n) = st.stats(g, n)[2];
    }

    // The epilogue hook: applied to each normalized value before it is stored: the fused
    // activation (activation.h), selected by the run-time `activation`. Its Func
    // (`activated`) is specialized per activation at y's innermost loop (the schedules), so
    // the activation rides in the normalize pass at the cost of a branch per vector; y is
    // specialized for no activation and for SiLU, which pay neither (generate).
    Expr epilogue(Expr normalized) {
        return select_activation(activation,
                                 [&](int a) { return activate(a, normalized); });
    }

    // y's value with an activation on CPUs: `activated` (the per-vector branch), or with
    // st.silu_copy SiLU's own expression for y's SiLU copy (generate), which then never
    // realizes `activated`.
    Expr fused_value(ForwardStages &st, const Expr &normalized) {
        Expr fused = st.activated(st.s, st.c, st.n);
        if (!st.silu_copy) return fused;
        return select(activation == kActSilu, activate(kActSilu, normalized), fused);
    }

    void define_normalize(ForwardStages &st) {
        Var s = st.s, c = st.c, n = st.n;
        // strict_float: the shift is the numerics; fast-math must not reassociate it away
        // ((acc + x) - mean or x * a - mean * a cancel at |mean| = 1e4).
        st.centered(s, c, n) = strict_float(st.input(s, c, n) - st.chan_affine(c, n)[2]);
        st.normalized(s, c, n) = st.centered(s, c, n) * st.chan_affine(c, n)[0] + st.chan_affine(c, n)[1];
        Expr normalized = st.normalized(s, c, n), plain = normalized;
        if (st.prefetch_off.defined()) {
            // The next group's x at the same position (the next sample's first group after
            // the last: NCHW is contiguous), while this group is written: its statistics'
            // first reads no longer wait for DRAM after y's stores. Plain GroupNorm only: its
            // copies without it (prefetch_off) fold the select away, the fused copy does not
            // see it (generate). A per-vector prefetch in every copy, of an address that does
            // no harm where it is off, ran small maps 0.75-0.9x; a prefetching copy of every
            // y loop (fused and narrow ones too) was 1.8x the code of the nchw forwards.
            Expr next = prefetch_input(x, s, c + st.D, n);
            plain = normalized + select(st.prefetch_off, zero_of(st.type), next);
        }
        if (!fused_activations()) {
            // No epilogue: `activated` stays unused (its schedule is then ignored).
            st.activated(s, c, n) = normalized;
            st.y(s, c, n) = cast_out(x.type(), plain);
            return;
        }
        st.activated(s, c, n) = epilogue(normalized);
        if (family() == Family::Gpu) {
            // The normalize kernel is y alone: specialized whole, per activation (generate).
            st.y(s, c, n) = cast_out(x.type(), epilogue(normalized));
        } else if (residual) {
            // `activated`'s case 0 is no activation.
            st.y(s, c, n) = cast_out(x.type(), fused_value(st, normalized));
        } else {
            // Plain GroupNorm stores `normalized` directly (y's specialization for it).
            st.y(s, c, n) = cast_out(x.type(), select(activation == kActNone, plain,
                                                      fused_value(st, normalized)));
        }
    }

    void add_requirements(ForwardStages &st, Expr rows_per_group) {
        Expr S = x.dim(0).extent(), C = x.dim(1).extent();
        add_requirement(groups > 0 && C % groups == 0,
                        "groups must be positive and divide the channel count");
        // x_rows must hold each group's S * D values as rows (the runtime builds it).
        add_requirement(x_rows.dim(1).extent() % groups == 0 &&
                            cast<int64_t>(st.row_len) * rows_per_group == cast<int64_t>(S) * st.D &&
                            x_rows.dim(2).extent() == x.dim(2).extent() &&
                            (layout == Layout::NCHW || x_rows.dim(1).extent() == C),
                        "x_rows must view x's groups as rows (NHWC: a row per channel)");
        if (residual) {
            add_requirement(x_rows.dim(1).extent() == C,
                            "with a residual input x_rows must be x (a row per channel)");
            add_requirement(sum->dim(0).extent() == 0 || sum->dim(0).extent() == S,
                            "sum must have x's spatial extent, or 0 (no sum)");
        }
    }

    void constrain_layout() {
        // Mins are 0 everywhere; the dense dimension depends on the layout.
        for (int i = 0; i < 3; i++) {
            x.dim(i).set_min(0);
            x_rows.dim(i).set_min(0);
            y.dim(i).set_min(0);
            y.dim(i).set_extent(x.dim(i).extent());
        }
        if (residual) {
            // sum: x's extents, or spatial extent 0 when the caller wants no sum (the
            // runtime's choice: nothing is written then).
            for (int i = 0; i < 3; i++) {
                skip->dim(i).set_min(0).set_extent(x.dim(i).extent());
                sum->dim(i).set_min(0);
            }
            sum->dim(1).set_extent(x.dim(1).extent());
            sum->dim(2).set_extent(x.dim(2).extent());
            skip_nc->dim(0).set_min(0).set_extent(x.dim(1).extent()).set_stride(1);
            skip_nc->dim(1).set_min(0).set_extent(x.dim(2).extent());
            skip_bias->dim(0).set_min(0).set_extent(x.dim(1).extent()).set_stride(1);
            if (layout == Layout::NHWC) {
                skip->dim(0).set_stride(Expr());
                skip->dim(1).set_stride(1);
                sum->dim(0).set_stride(Expr());
                sum->dim(1).set_stride(1);
            }
        }
        gamma.dim(0).set_min(0).set_extent(x.dim(1).extent()).set_stride(1);
        beta.dim(0).set_min(0).set_extent(x.dim(1).extent()).set_stride(1);
        for (auto *stat : {&mean, &rstd}) {
            (*stat).dim(0).set_min(0).set_stride(Expr());
            (*stat).dim(1).set_min(0);
        }
        if (layout == Layout::NHWC) {
            x.dim(0).set_stride(Expr());
            y.dim(0).set_stride(Expr());
            x.dim(1).set_stride(1);
            x_rows.dim(0).set_stride(Expr());
            x_rows.dim(1).set_stride(1);
            y.dim(1).set_stride(1);
        }
    }


    // The estimates an autoscheduler needs on every input and output: the estimate_* shape.
    void set_estimates() {
        const int N = estimate_n, C = estimate_c, S = estimate_s, G = estimate_groups;
        x.set_estimates({{0, S}, {0, C}, {0, N}});
        // x_rows: one row per group (nchw, contiguous groups) or per channel (nhwc).
        if (layout == Layout::NCHW && !residual) {
            x_rows.set_estimates({{0, S * (C / G)}, {0, G}, {0, N}});
        } else {
            x_rows.set_estimates({{0, S}, {0, C}, {0, N}});
        }
        gamma.set_estimates({{0, C}});
        beta.set_estimates({{0, C}});
        groups.set_estimate(G);
        eps.set_estimate(Halide::cast(eps.type(), Halide::Expr(1e-5)));
        activation.set_estimate(kActNone);
        prefetch.set_estimate(1);
        y.set_estimates({{0, S}, {0, C}, {0, N}});
        mean.set_estimates({{0, G}, {0, N}});
        rstd.set_estimates({{0, G}, {0, N}});
        _halide_user_assert(!residual) << "autoscheduled variants have no residual prologue";
    }

    BlockGeometry block_geometry(const Tuning &t) const {
        if (family() == Family::Gpu) return {1, 1, t.gpu_block};
        if (layout == Layout::NCHW) {
            const int lanes = t.acc_vectors * vector();
            return {lanes, 1, t.lane_steps * lanes};
        }
        return {1, t.rows_per_step, t.block_rows};
    }

    void schedule(ForwardStages &st, const Tuning &t) {
        if (family() == Family::Gpu) {
            schedule_gpu(st, layout, gpu_shape, t);
        } else if (layout == Layout::NCHW) {
            schedule_cpu_nchw(st, t, vector());
        } else {
            schedule_cpu_nhwc(st, t, vector());
        }
    }
};

}  // namespace groupnorm_gen

HALIDE_REGISTER_GENERATOR(groupnorm_gen::GroupNormForward, group_norm_forward)
