// CPU schedule, channels-last N*C layout (c dense), for every CPU family; its parameters are
// the tuning fields y_vectors, stat_vectors, block_rows, rows_per_step, rows_per_chain,
// rows_per_task, blocks_per_partial, stat_passes (tuning.h).
//
// Samples in parallel (a sample of few rows has little parallelism of its own: 2x on
// 2x2560x8x8 with 2 threads). Per sample: blocks of spatial rows are processed in
// parallel, a vector of channels at a time (every load part of a full row of C channels):
// each block is summed, then re-read from L2 for its centred second moment (or read once,
// stat_passes = 1: robust_moments.h); the blocks'
// moments combine per group; a second parallel pass over rows normalizes. A group's
// channels are strided in this layout: per-group tasks as in NCHW would load partial
// vectors (D < 16 channels) from lines shared with the neighbouring groups.
#pragma once

#include <tuple>
#include <vector>

#include "cpu_common.h"

namespace groupnorm_gen {

inline void schedule_cpu_nhwc(ForwardStages &st, const Tuning &tune, int vector) {
    using namespace Halide;
    const int vec = tune.stat_vectors * vector, out_vector = tune.y_vectors * vector;
    Var so{"so"}, si{"si"};

    st.y.reorder(st.c, st.s, st.n)
        .split(st.s, so, si, tune.rows_per_task, TailStrategy::GuardWithIf)
        .parallel(so)
        .parallel(st.n)
        .vectorize(st.c, out_vector, TailStrategy::GuardWithIf);
    for (Func out : {st.mean, st.rstd}) {
        out.parallel(st.n).compute_with(st.y, st.n);
    }
    if (st.sum.defined()) {
        // The residual sum, a vector of channels at a time beside y's.
        st.sum.reorder(st.c, st.s, st.n)
            .split(st.s, so, si, tune.rows_per_task, TailStrategy::GuardWithIf)
            .parallel(so)
            .parallel(st.n)
            .vectorize(st.c, out_vector, TailStrategy::GuardWithIf)
            .compute_with(st.y, st.c);
        // skip_nc + skip_bias of the sample's channels, before its statistics.
        st.shift.compute_at(st.y, st.n).store_in(MemoryType::Stack);
    }
    // The epilogue, a vector at a time inside y's vector loop (specialized by the generator).
    st.activated.compute_at(st.y, st.c)
        .vectorize(st.c, out_vector, TailStrategy::GuardWithIf)
        .bound_storage(st.c, out_vector)
        .store_in(MemoryType::Register);

    for (Func f : {st.pivot, st.chan_pivot, st.stats, st.grp_sum, st.grp_m2, st.chan_affine}) {
        f.compute_at(st.y, st.n);
    }
    // The per-channel tables a vector of channels at a time, with their group found by a
    // float division (the generator's group_of).
    for (Func f : {st.chan_pivot, st.chan_affine}) {
        f.specialize(st.float_group_of).vectorize(st.c, vec, TailStrategy::GuardWithIf);
        f.vectorize(st.c, vec, TailStrategy::GuardWithIf);
    }
    // The pivot's values are the first rows of a group's first channel, C apart: all groups
    // row by row (neighbouring loads, independent adds), each group's rows still added in
    // order. A chain per group (a strided load and a dependent add per row) was a third of
    // fcos_p7 2x256x7x8's time; vectorized over groups (gathers) it was 1.3x slower on G = 4.
    st.pivot_sum.compute_at(st.y, st.n).store_in(MemoryType::Stack);
    st.pivot_sum.update().reorder(st.g, st.rp.x);
    // A group's channels a vector at a time (a scalar loop per channel was a third of the
    // per-sample work of many-channel small maps), from block moments stored channels
    // innermost (the block tasks also store them a vector at a time, not scattered).
    cascade_group_sums(st, LoopLevel(st.y, st.n), tune.blocks_per_partial, vec);
    // Rows are channels here (the runtime passes x itself as x_rows), L = 1.
    st.blk_stats.reorder_storage(st.r, st.b, st.n);
    st.blk_stats.compute_at(st.y, st.n)
        .reorder(st.r, st.b)
        .parallel(st.b)
        .vectorize(st.r, vec, TailStrategy::GuardWithIf);
    // The last S % rows_per_step spatial rows, a vector of channels at a time (no tail
    // Funcs at rows_per_step = 1).
    for (Func f : {st.tail_sum, st.tail_m2}) {
        if (!f.defined()) continue;
        f.compute_at(st.y, st.n).vectorize(st.r, vec, TailStrategy::GuardWithIf);
        f.update().vectorize(st.r, vec, TailStrategy::GuardWithIf);
    }
    // Each block's Funcs at blk_stats' block loop. With one read (robust_moments.h): its
    // shifted sums there, and the two-pass ones inside blk_stats' redo loop (one channel, for
    // the blocks that need them; the same chains, so the same sums, as two passes).
    // Each channel's anchor (two passes; it was a division per step of the second pass) or
    // first value (one read) once per block. The block's per-channel scratch (this and the
    // lane Funcs below) on Halide's pseudostack, not a heap allocation each per block (no
    // speed difference measured on small maps).
    LoopLevel at_block(st.blk_stats, st.b);
    LoopLevel two_pass_at = st.one_pass() ? LoopLevel(st.blk_stats, st.redo.x) : at_block;
    std::vector<std::tuple<Func, RVar, int, LoopLevel>> block_passes = {
        {st.lane_sum, st.ri.x, 1, two_pass_at}, {st.lane_m2, st.rk.x, tune.rows_per_step, two_pass_at}};
    if (st.one_pass()) {
        block_passes.insert(block_passes.begin(), {st.lane_shifted, st.rk.x, tune.rows_per_step, at_block});
        st.blk_stats.update().reorder(st.redo.x, st.r, st.b).parallel(st.b);
        st.blk_anchor.compute_at(two_pass_at);
    }
    (st.one_pass() ? st.blk_first : st.blk_anchor).compute_at(at_block).store_in(MemoryType::Stack)
        .vectorize(st.r, vec, TailStrategy::GuardWithIf);
    // Within a block, each channel sums `rows_per_chain` rows per accumulator, then the
    // chains are added: the float32 cascade (a long chain's rounding grows with its length).
    for (auto [f, steps, rows, at] : block_passes) {
        f.compute_at(at).store_in(MemoryType::Stack)
            .reorder(st.r, st.l, st.b)
            .vectorize(st.r, vec, TailStrategy::GuardWithIf);
        RVar rio{"rio"}, rii{"rii"};
        Var chain{"chain"};
        Func chains = f.update()
                          .split(steps, rio, rii, tune.rows_per_chain / rows,
                                 TailStrategy::GuardWithIf)
                          .rfactor(rio, chain);
        f.update().reorder(st.r, rio, st.l, st.b).vectorize(st.r, vec, TailStrategy::GuardWithIf);
        chains.compute_at(at).store_in(MemoryType::Stack)
            .reorder(st.r, chain)
            .vectorize(st.r, vec, TailStrategy::GuardWithIf);
        chains.update()
            .reorder(st.r, rii, chain)
            .vectorize(st.r, vec, TailStrategy::GuardWithIf);
    }
}

}  // namespace groupnorm_gen
