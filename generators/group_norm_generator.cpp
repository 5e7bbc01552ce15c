// GroupNorm forward: the algorithm, written once.
//
// Canonical view (runtime/src/canonicalise.cpp makes it from any (N, C, *) tensor):
//   x(s, c, n) with s the flattened spatial index, c the channel, n the sample.
// Groups: c = g * D + d with D = C / groups.
//
// Numerics (DESIGN.md section 1), all in float32:
// - values are shifted by a pivot (a mean of the group's first values), so |mean| >> std loses
//   nothing in x - pivot, and the shift stays in the normalize step:
//   y = (x - pivot) * a + b with b = beta - (mean - pivot) * a;
// - each block of B spatial positions of a channel gets its exact centred second moment
//   (a second pass over the block, which the schedules keep in cache), and blocks combine
//   by Chan's formula: M2 = sum M2_b + n_b (mean_b - mean)^2. All terms are >= 0, so no
//   cancellation, however far the pivot is from the mean; no float32 accumulator takes
//   more than a few thousand terms.
//
// Which schedule runs is chosen from the target and the `layout` GeneratorParam; each
// schedule lives in its own file under schedules/.

#include "Halide.h"
#include "group_norm_stages.h"
#include "schedules/arm.h"
#include "schedules/cpu_nchw.h"
#include "schedules/cpu_nhwc.h"
#include "schedules/gpu.h"

namespace groupnorm_gen {

using namespace Halide;

class GroupNormForward : public Generator<GroupNormForward> {
public:
    GeneratorParam<Layout> layout{"layout", Layout::NCHW,
                                  {{"nchw", Layout::NCHW}, {"nhwc", Layout::NHWC}}};
    // GPU targets only: the shape class the variant serves (schedules/gpu.h).
    GeneratorParam<GpuShape> gpu_shape{"gpu_shape", GpuShape::Split,
                                       {{"split", GpuShape::Split}, {"group", GpuShape::Group}}};

    // Types are set per variant by the build: x.type, y.type (same), gamma.type, beta.type.
    Input<Buffer<void, 3>> x{"x"};
    Input<Buffer<void, 1>> gamma{"gamma"};
    Input<Buffer<void, 1>> beta{"beta"};
    Input<int32_t> groups{"groups"};
    Input<float> eps{"eps"};

    Output<Buffer<void, 3>> y{"y"};
    Output<Buffer<float, 2>> mean{"mean"};  // (g, n)
    Output<Buffer<float, 2>> rstd{"rstd"};  // (g, n)

    void generate() {
        ForwardStages st;
        Var s = st.s, c = st.c, n = st.n, g = st.g;
        st.S = x.dim(0).extent();
        st.C = x.dim(1).extent();
        st.D = st.C / groups;
        Expr D = st.D;
        Expr M = cast<float>(st.S) * cast<float>(D);  // elements per (n, g)

        // The shift of all sums: the mean of the group's first channel's first (up to) 64
        // positions. Sums of x - pivot lose ~|mean - pivot| / std times more to rounding
        // than centred ones; a single element as pivot (a few std off) cost 1e-5 on groups
        // of 4M elements.
        Expr pivot_count = min(st.S, 64);
        RDom rp(0, pivot_count, "rp");
        Func pivot_sum("pivot_sum");
        pivot_sum(g, n) = 0.0f;
        pivot_sum(g, n) += cast<float>(x(rp, g * D, n));
        st.pivot(g, n) = pivot_sum(g, n) / cast<float>(pivot_count);
        st.chan_pivot(c, n) = st.pivot(c / D, n);
        st.centered(s, c, n) = cast<float>(x(s, c, n)) - st.chan_pivot(c, n);

        Var b = st.b;
        // A whole number of the schedule's accumulator quanta when the row allows it, so
        // the blocks' vector loops need no predicated tail.
        const int q = block_quantum();
        st.B = select(st.S >= q, min(spatial_block(), st.S) / q * q, st.S);
        st.NB = (st.S + st.B - 1) / st.B;
        st.ri = RDom(0, st.B, "ri");
        // Block b covers s in [b*B, min(b*B + B, S)). The last block is shifted inward to
        // end at S and its overlap with the previous block masked out: every load stays in
        // the row and no RDom predicate blocks vectorization.
        Expr block_start = b * st.B;
        Expr overlap = max(block_start + st.B - st.S, 0);  // > 0 only in the last block
        Expr s_at = min(block_start, st.S - st.B) + st.ri;  // = start - overlap, in bounds form
        // likely(): loop partitioning drops the mask from the steady-state loop.
        Expr in_block = likely(st.ri >= overlap);
        Expr block_count = cast<float>(st.B - overlap);
        Expr v = st.centered(s_at, c, n);
        st.blk_sum(b, c, n) = 0.0f;
        st.blk_sum(b, c, n) += select(in_block, v, 0.0f);
        Expr dev = v - st.blk_sum(b, c, n) / block_count;
        st.blk_m2(b, c, n) = 0.0f;
        st.blk_m2(b, c, n) += select(in_block, dev * dev, 0.0f);
        st.blk_stats(b, c, n) = Tuple(st.blk_sum(b, c, n), st.blk_m2(b, c, n));

        st.rbd = RDom(0, st.NB, 0, D, "rbd");
        Expr rb = st.rbd.x, rc = g * D + st.rbd.y;
        st.grp_sum(g, n) = 0.0f;
        st.grp_sum(g, n) += st.blk_stats(rb, rc, n)[0];
        Expr shifted_mean = st.grp_sum(g, n) / M;
        Expr rb_count = cast<float>(min(st.B, st.S - rb * st.B));
        Expr rb_offset = st.blk_stats(rb, rc, n)[0] / rb_count - shifted_mean;
        st.grp_m2(g, n) = 0.0f;
        st.grp_m2(g, n) += st.blk_stats(rb, rc, n)[1] + rb_count * rb_offset * rb_offset;

        Expr var = st.grp_m2(g, n) / M;
        // strict_float: IEEE division and square root here (once per group), never the
        // reciprocal estimates a backend may substitute under fast-math.
        st.stats(g, n) = Tuple(strict_float(shifted_mean), strict_float(1.0f / sqrt(var + eps)));

        Expr a = st.stats(c / D, n)[1] * cast<float>(gamma(c));
        st.chan_affine(c, n) = Tuple(a, cast<float>(beta(c)) - st.stats(c / D, n)[0] * a);

        st.y(s, c, n) = cast(x.type(), st.centered(s, c, n) * st.chan_affine(c, n)[0] +
                                           st.chan_affine(c, n)[1]);
        st.mean(g, n) = st.pivot(g, n) + st.stats(g, n)[0];
        st.rstd(g, n) = st.stats(g, n)[1];

        y = st.y;
        mean = st.mean;
        rstd = st.rstd;

        add_requirement(groups > 0 && st.C % groups == 0,
                        "groups must be positive and divide the channel count");
        constrain_layout();
        schedule(st);
    }

private:
    void constrain_layout() {
        // Mins are 0 everywhere; the dense dimension depends on the layout.
        for (int i = 0; i < 3; i++) {
            x.dim(i).set_min(0);
            y.dim(i).set_min(0);
        }
        y.dim(0).set_extent(x.dim(0).extent());
        y.dim(1).set_extent(x.dim(1).extent());
        y.dim(2).set_extent(x.dim(2).extent());
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
            y.dim(1).set_stride(1);
        }
    }

    // The block length along s for the per-block centred moments: the schedule's choice.
    int spatial_block() const {
        if (get_target().has_gpu_feature()) return gpu_spatial_block(layout, gpu_shape);
        return layout == Layout::NCHW ? nchw_spatial_block(nchw_tuning())
                                      : nhwc_tuning().block_rows;
    }

    int block_quantum() const {
        if (get_target().has_gpu_feature()) return 1;
        return layout == Layout::NCHW ? nchw_tuning().lanes : 1;
    }

    NchwTuning nchw_tuning() const {
        return get_target().arch == Target::ARM ? arm_nchw_tuning() : x86_nchw_tuning(get_target());
    }
    NhwcTuning nhwc_tuning() const {
        return get_target().arch == Target::ARM ? arm_nhwc_tuning() : x86_nhwc_tuning(get_target());
    }

    void schedule(ForwardStages &st) {
        if (get_target().has_gpu_feature()) {
            schedule_gpu(st, layout, gpu_shape);
        } else if (layout == Layout::NCHW) {
            schedule_cpu_nchw(st, nchw_tuning());
        } else {
            schedule_cpu_nhwc(st, nhwc_tuning());
        }
    }
};

}  // namespace groupnorm_gen

HALIDE_REGISTER_GENERATOR(groupnorm_gen::GroupNormForward, group_norm_forward)
