// CPU schedules of the backward pass, both layouts, every CPU family; tuning fields used:
// y_vectors, acc_vectors and lane_steps (nchw), stat_vectors, block_rows, rows_per_step,
// rows_per_task (nhwc).
//
// nchw: one parallel task per (sample, group), as the forward: the group's channel sums
// (x and dy from DRAM), its coefficients, then dx re-reading the group from cache.
// nhwc: per sample, blocks of spatial rows summed in parallel a vector of channels at a
// time, the blocks added per channel, then dx in parallel tasks of rows.
// Both: dgamma and dbeta from the stored channel sums, a vector of channels at a time, the
// samples in order (deterministic).
#pragma once

#include <algorithm>

#include "../backward_stages.h"
#include "cpu_common.h"

namespace groupnorm_gen {

inline void schedule_backward_params(BackwardStages &st, Halide::Func param_sums, int vec) {
    using namespace Halide;
    param_sums.compute_root().vectorize(st.c, vec, TailStrategy::GuardWithIf);
    param_sums.update().reorder(st.c, st.rn.x).vectorize(st.c, vec, TailStrategy::GuardWithIf);
    for (Func f : {st.dgamma, st.dbeta}) f.vectorize(st.c, vec, TailStrategy::GuardWithIf);
}

inline void schedule_backward_cpu_nchw(BackwardStages &st, const Tuning &tune, int vector,
                                       Halide::Func param_sums, Halide::Func grp_acc) {
    using namespace Halide;
    const int out_vector = tune.y_vectors * vector;
    Var d{"d"};
    st.dx.split(st.c, st.g, d, st.D, TailStrategy::RoundUp)
        .reorder(st.s, d, st.g, st.n)
        .parallel(st.n)
        .parallel(st.g);
    // Plain dx on rows that are not whole wide vectors: one natural vector at a time, as the
    // forward's y (schedules/cpu_nchw.h: the wide vector's tail is masked on every row).
    if (st.plain_dx.defined()) {
        st.dx.specialize(st.plain_dx && st.spatial % out_vector != 0)
            .vectorize(st.s, vector, TailStrategy::GuardWithIf);
    }
    st.dx.vectorize(st.s, out_vector, TailStrategy::GuardWithIf);
    // The stored channel sums are written in the same (sample, group) task.
    st.chan_sums_out.compute_root()
        .split(st.c, st.g, d, st.D, TailStrategy::RoundUp)
        .reorder(d, st.g, st.n)
        .parallel(st.n)
        .parallel(st.g)
        .compute_with(st.dx, st.g);
    // Per group, before its dx is written (dx may be dy): channel sums, coefficients.
    st.chan_sums.compute_at(st.dx, st.g).store_in(MemoryType::Stack);
    for (Func f : {grp_acc, st.grp_coef}) f.compute_at(st.dx, st.g).bound_storage(st.g, 1);
    st.chan_coef.compute_at(st.dx, d);
    // A fused activation's dy act'(z) once per group, into a scratch that the sums and dx
    // read (computed in both, inline, it was 6-11x plain backward's time: act' twice).
    if (st.dy_act.defined()) {
        schedule_group_scratch(st.dy_act, st.dx, st.g, st.s, out_vector);
        st.act_sites = {st.dy_act};
    }
    // A channel's sums: per block a vector of accumulators in registers (independent add
    // chains), added into the Kahan lane sums (registers), the lanes added in halves
    // (registers), then the channel's tail.
    st.lane_sums.compute_at(st.chan_sums, st.c).store_in(MemoryType::Register).vectorize(st.l);
    st.lane_sums.update().reorder(st.l, st.rs.x).vectorize(st.l);
    st.block_sums.compute_at(st.lane_sums, st.rs.x).store_in(MemoryType::Register)
        .vectorize(st.l);
    st.block_sums.update().reorder(st.l, st.rj.x).vectorize(st.l);
    st.last_block.compute_at(st.chan_sums, st.c).store_in(MemoryType::Register).vectorize(st.l);
    st.last_block.update(0).reorder(st.l, st.rp.x).vectorize(st.l);
    st.last_block.update(1).reorder(st.l, st.rv.x).vectorize(st.l);
    // The compensated lane totals as one vector (inlined, LLVM moved their lanes one at a
    // time through general registers: ~100 instructions a channel, most of a small map's
    // backward).
    st.lane_total.compute_at(st.chan_sums, st.c).store_in(MemoryType::Register).vectorize(st.l);
    st.chan_sums.update(0).unscheduled();  // the tail: < L positions per channel
    st.groups->schedule(vector);  // at root, once per call
    schedule_backward_params(st, param_sums, vector);
}

inline void schedule_backward_cpu_nhwc(BackwardStages &st, const Tuning &tune, int vector,
                                       Halide::Func param_sums, Halide::Func grp_acc) {
    using namespace Halide;
    const int vec = tune.stat_vectors * vector, out_vector = tune.y_vectors * vector;
    Var so{"so"}, si{"si"}, b = st.b;
    st.dx.reorder(st.c, st.s, st.n)
        .split(st.s, so, si, tune.rows_per_task, TailStrategy::GuardWithIf)
        .parallel(so)
        .parallel(st.n)
        .vectorize(st.c, out_vector, TailStrategy::GuardWithIf);
    st.chan_sums_out.compute_root()
        .parallel(st.n)
        .vectorize(st.c, vec, TailStrategy::GuardWithIf)
        .compute_with(st.dx, st.n);
    // Blocks of block_rows rows in parallel, each channel a chain of block_rows / K updates
    // of K rows (block_sums, l = 0), then the blocks added per channel with Kahan's
    // compensation (lane_sums, starting from the last, partial block), then the last S % K
    // rows.
    st.chan_sums.compute_at(st.dx, st.n).vectorize(st.c, vec, TailStrategy::GuardWithIf);
    st.chan_sums.update().vectorize(st.c, vec, TailStrategy::GuardWithIf);
    st.lane_sums.compute_at(st.dx, st.n).vectorize(st.c, vec, TailStrategy::GuardWithIf);
    st.lane_sums.update().reorder(st.c, st.rs.x).vectorize(st.c, vec, TailStrategy::GuardWithIf);
    st.last_block.compute_at(st.dx, st.n).vectorize(st.c, vec, TailStrategy::GuardWithIf);
    st.last_block.update().reorder(st.c, st.rp.x).vectorize(st.c, vec, TailStrategy::GuardWithIf);
    st.block_sums.compute_at(st.dx, st.n).reorder_storage(st.c, st.l, b)
        .reorder(st.c, st.l, b).parallel(b)
        .vectorize(st.c, vec, TailStrategy::GuardWithIf);
    st.block_sums.update().reorder(st.c, st.rj.x, st.l, b).parallel(b)
        .vectorize(st.c, vec, TailStrategy::GuardWithIf);
    for (Func f : {grp_acc, st.grp_coef}) f.compute_at(st.dx, st.n);
    // A fused activation's dy act'(z): a vector of channels (and a step's rows) at a time
    // where each of the four consumers reads it (their last stages: the updates that sum
    // it, and dx), specialized per activation by the generator (inline, all four
    // activations were computed and selected: 4-13x plain backward's time).
    if (st.dy_act.defined()) {
        const std::pair<Func, int> consumers[] = {
            {st.block_sums, vec}, {st.last_block, vec}, {st.chan_sums, vec}, {st.dx, out_vector}};
        for (const auto &[f, width] : consumers) {
            // A full block reads its rows through dy_act_rows (k a dimension: the K rows,
            // B rows apart, without the rows between them), when K > 1.
            const bool rows = f.name() == st.block_sums.name() && st.dy_act_rows.defined();
            Func w = rows ? st.dy_act_rows : st.dy_act.in(f);
            if (rows) {
                w.reorder(st.c, st.k, st.s).reorder_storage(st.c, st.k, st.s);
            } else {
                w.reorder(st.c, st.s).reorder_storage(st.c, st.s);
            }
            w.compute_at(f, st.c).bound_storage(st.c, width).store_in(MemoryType::Stack)
                .vectorize(st.c, width, TailStrategy::GuardWithIf);
            st.act_sites.push_back(w);
        }
    }
    // Per-channel tables of the group values, so a vector of channels loads them.
    for (Func f : {st.chan_mean, st.chan_scale, st.chan_coef}) {
        f.compute_at(st.dx, st.n).vectorize(st.c, vec, TailStrategy::GuardWithIf);
    }
    st.groups->schedule(vector);  // at root, once per call
    schedule_backward_params(st, param_sums, vector);
}

}  // namespace groupnorm_gen
