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
// - the statistics read x as rows (x_rows: a group as one row when its channels are
//   contiguous, else a row per channel); each block of a row (Bc chunks of K steps of L
//   lanes, the lanes a pure vector dimension) gets its exact centred second moment (a
//   second pass over the block, which the schedules keep in cache), as does the row's tail
//   of < K * L values, and they combine by Chan's formula: M2 = sum M2_b + n_b (mean_b - mean)^2.
//   All terms are >= 0, so no cancellation, however far the pivot is from the mean; no
//   float32 accumulator takes more than a few thousand terms.
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
    // The statistics' view of x as rows (i, r, n): a group is R = rows / groups rows
    // (runtime/src/dispatch.cpp: one row per group when the group's channels are
    // contiguous, else x itself, one row per channel).
    Input<Buffer<void, 3>> x_rows{"x_rows"};
    Input<Buffer<void, 1>> gamma{"gamma"};
    Input<Buffer<void, 1>> beta{"beta"};
    Input<int32_t> groups{"groups"};
    Input<float> eps{"eps"};

    Output<Buffer<void, 3>> y{"y"};
    Output<Buffer<float, 2>> mean{"mean"};  // (g, n)
    Output<Buffer<float, 2>> rstd{"rstd"};  // (g, n)

    void generate() {
        ForwardStages st;
        Var s = st.s, c = st.c, n = st.n, g = st.g, b = st.b, i = st.i, r = st.r, l = st.l;
        Expr S = x.dim(0).extent(), C = x.dim(1).extent();
        st.D = C / groups;
        Expr R = x_rows.dim(1).extent() / groups;  // rows per group
        st.Lr = x_rows.dim(0).extent();
        Expr D = st.D;
        Expr M = cast<float>(st.Lr) * cast<float>(R);  // elements per (n, g): Lr * R = S * D

        // The shift of all sums: the mean of the group's first (up to) 64 values. Sums of
        // x - pivot lose ~|mean - pivot| / std times more to rounding than centred ones; a
        // single element as pivot (a few std off) cost 1e-5 on groups of 4M elements.
        Expr pivot_count = min(st.Lr, 64);
        st.rp = RDom(0, pivot_count, "rp");
        st.pivot_sum(g, n) = 0.0f;
        st.pivot_sum(g, n) += cast<float>(x_rows(st.rp, g * R, n));
        st.pivot(g, n) = st.pivot_sum(g, n) / cast<float>(pivot_count);
        st.chan_pivot(c, n) = st.pivot(c / D, n);
        // NHWC rows are x's channels (the runtime passes x itself: a requirement below), so
        // a row's pivot is its channel's, not a second per-channel table of the same values.
        if (layout == Layout::NHWC) {
            st.row_pivot(r, n) = st.chan_pivot(r, n);
        } else {
            st.row_pivot(r, n) = st.pivot(r / R, n);
        }
        // strict_float: the shift is the numerics; fast-math must not reassociate it away
        // ((acc + x) - pivot or x * a - pivot * a cancel at |mean| = 1e4).
        st.centered(s, c, n) = strict_float(cast<float>(x(s, c, n)) - st.chan_pivot(c, n));
        Func row_centered("row_centered");
        row_centered(i, r, n) = strict_float(cast<float>(x_rows(i, r, n)) - st.row_pivot(r, n));

        // Blocks of whole chunks. A chunk is K steps of L lanes (Q = K * L consecutive values
        // of a row); the lanes are a pure dimension (a vector of accumulators, no mask or
        // tail inside a block). Block b covers chunks [b*Bc, min(b*Bc + Bc, Lc)); the last
        // block is shifted inward to end at Lc and its overlap with the previous block masked
        // out (a scalar condition, which loop partitioning takes out of the steady state).
        // The sum reads the block a step at a time, in memory order (the first touch, from
        // DRAM or L3); the centred second moment re-reads it from cache a chunk at a time,
        // its K steps added before they reach an accumulator (K > 1 where accumulators
        // live in memory: NHWC, a vector of channels summed over K spatial rows per load and
        // store of its sums).
        const int L = block_quantum(), K = chunk_steps(), Q = K * L;
        Expr Lc = st.Lr / Q;       // whole chunks per row
        Expr Lt = st.Lr - Lc * Q;  // the row's tail, < Q values
        // A row shorter than a chunk has Bc = NB = 0 (Halide's x / 0 is 0): no blocks, and
        // bounds inference sees no access beyond the row.
        Expr Bc = min(spatial_block() / Q, Lc);  // chunks per block
        Expr NB = (Lc + Bc - 1) / Bc;            // blocks per row
        Expr chunk0 = b * Bc;
        Expr first = min(chunk0, Lc - Bc);        // the block's first chunk
        Expr overlap = max(chunk0 + Bc - Lc, 0);  // > 0 only in the last block
        Expr block_count = cast<float>((Bc - overlap) * Q);
        st.ri = RDom(0, Bc * K, "ri");
        st.rk = K == 1 ? st.ri : RDom(0, Bc, "rk");
        Expr v_sum = row_centered((first * K + st.ri) * L + l, r, n);
        st.lane_sum(l, b, r, n) = 0.0f;
        st.lane_sum(l, b, r, n) += select(likely(st.ri >= overlap * K), v_sum, 0.0f);
        st.rl = RDom(0, L, "rl");
        define_lane_total(st, L, st.blk_sum, st.lane_sum);
        std::vector<Expr> dev2(K);
        for (int k = 0; k < K; k++) {
            // strict: else LLVM rewrites (x - pivot) - block_mean as x - (pivot + block_mean),
            // rounding the block's mean to a unit of x's magnitude (NCHW, K = 1).
            Expr dev = strict_float(row_centered((first + st.rk) * Q + k * L + l, r, n) -
                                    st.blk_sum(b, r, n) / block_count);
            dev2[k] = dev * dev;
        }
        // A chunk's K > 1 terms are added in the algorithm's order (strict_float): under
        // fast-math LLVM reassociates such sums with the accumulator (seen with K rows per
        // step in the sum: acc + ((x0 - p) + (x1 - p)) became ((acc - 2p) + x0) + x1, 4e-4
        // errors at |mean| = 1e4). A strict term cannot be reassociated; K = 1 keeps its FMA.
        Expr chunk_m2 = pairwise_sum(dev2);
        if (K > 1) chunk_m2 = strict_float(chunk_m2);
        st.lane_m2(l, b, r, n) = 0.0f;
        st.lane_m2(l, b, r, n) += select(likely(st.rk >= overlap), chunk_m2, 0.0f);
        define_lane_total(st, L, st.blk_m2, st.lane_m2);
        st.blk_stats(b, r, n) = Tuple(st.blk_sum(b, r, n), st.blk_m2(b, r, n));

        // The row's last Lt < Q values, when Q > 1: one more "block", summed and centred
        // the same way.
        Expr tail_count = cast<float>(Lt);
        const bool has_tail = Q > 1;
        if (has_tail) {
            RDom rt(0, Lt, "rt");
            Expr vt = row_centered(Lc * Q + rt, r, n);
            st.tail_sum(r, n) = 0.0f;
            st.tail_sum(r, n) += vt;
            Expr dt = strict_float(vt - st.tail_sum(r, n) / tail_count);  // as dev above
            st.tail_m2(r, n) = 0.0f;
            st.tail_m2(r, n) += dt * dt;
        }

        st.rbd = RDom(0, NB, 0, R, "rbd");
        Expr rb = st.rbd.x, rr = g * R + st.rbd.y;
        st.grp_sum(g, n) = 0.0f;
        st.grp_sum(g, n) += st.blk_stats(rb, rr, n)[0];
        RDom rtr(0, R, "rtr");  // the group's rows' tails
        rtr.where(Lt > 0);
        if (has_tail) st.grp_sum(g, n) += st.tail_sum(g * R + rtr, n);
        Expr shifted_mean = st.grp_sum(g, n) / M;
        Expr rb_count = cast<float>(min(Bc, Lc - rb * Bc) * Q);
        Expr rb_offset = st.blk_stats(rb, rr, n)[0] / rb_count - shifted_mean;
        st.grp_m2(g, n) = 0.0f;
        st.grp_m2(g, n) += st.blk_stats(rb, rr, n)[1] + rb_count * rb_offset * rb_offset;
        if (has_tail) {
            Expr rt_row = g * R + rtr;
            Expr rt_offset = st.tail_sum(rt_row, n) / tail_count - shifted_mean;
            st.grp_m2(g, n) += st.tail_m2(rt_row, n) + tail_count * rt_offset * rt_offset;
        }

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

        add_requirement(groups > 0 && C % groups == 0,
                        "groups must be positive and divide the channel count");
        // x_rows must hold each group's S * D values as R rows (the runtime builds it).
        add_requirement(x_rows.dim(1).extent() % groups == 0 &&
                            cast<int64_t>(st.Lr) * R == cast<int64_t>(S) * D &&
                            x_rows.dim(2).extent() == x.dim(2).extent() &&
                            (layout == Layout::NCHW || x_rows.dim(1).extent() == C),
                        "x_rows must view x's groups as rows (NHWC: a row per channel)");
        constrain_layout();
        schedule(st);
    }

private:
    void constrain_layout() {
        // Mins are 0 everywhere; the dense dimension depends on the layout.
        for (int i = 0; i < 3; i++) {
            x.dim(i).set_min(0);
            x_rows.dim(i).set_min(0);
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
            x_rows.dim(0).set_stride(Expr());
            x_rows.dim(1).set_stride(1);
            y.dim(1).set_stride(1);
        }
    }

    // The block length along s for the per-block centred moments: the schedule's choice.
    int spatial_block() const {
        if (get_target().has_gpu_feature()) return gpu_spatial_block(layout, gpu_shape);
        return layout == Layout::NCHW ? nchw_spatial_block(nchw_tuning())
                                      : nhwc_tuning().block_rows;
    }

    // blk (b, r, n) = the sum of lane (l, b, r, n) over the L lanes; a plain alias when L = 1.
    static void define_lane_total(ForwardStages &st, int L, Func blk, Func lane) {
        if (L == 1) {
            blk(st.b, st.r, st.n) = lane(0, st.b, st.r, st.n);
            return;
        }
        blk(st.b, st.r, st.n) = 0.0f;
        blk(st.b, st.r, st.n) += lane(st.rl, st.b, st.r, st.n);
    }

    // Lanes per chunk of a block (L): a pure vector dimension of the block sums.
    int block_quantum() const {
        if (get_target().has_gpu_feature()) return 1;
        return layout == Layout::NCHW ? nchw_tuning().lanes : 1;
    }

    // Steps of L lanes added per chunk before they reach an accumulator (K above).
    int chunk_steps() const {
        if (get_target().has_gpu_feature() || layout == Layout::NCHW) return 1;
        return nhwc_tuning().rows_per_step;
    }

    // ((a + b) + (c + d)): the K steps of a chunk, added in a balanced tree.
    static Expr pairwise_sum(std::vector<Expr> terms) {
        while (terms.size() > 1) {
            std::vector<Expr> next;
            for (size_t k = 0; k + 1 < terms.size(); k += 2) next.push_back(terms[k] + terms[k + 1]);
            if (terms.size() % 2) next.push_back(terms.back());
            terms = next;
        }
        return terms[0];
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
