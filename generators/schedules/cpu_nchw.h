// CPU schedule, contiguous NC* layout (s dense), for every CPU family; its parameters are
// the tuning fields y_vectors, acc_vectors, lane_steps, blocks_per_partial, stat_passes
// (tuning.h).
//
// One parallel task per (sample, group): its statistics are computed right before it is
// normalized, so the group's D*S elements come from DRAM once and are re-read from cache
// (measured 3-4.7x faster than two root passes). Each block (lane_steps values per
// accumulator lane, 16 KiB of one row by default: the group's channels when they are
// contiguous) is read once into vectors of lane accumulators of its shifted sums and squares
// (stat_passes = 1, the default), or summed and then re-read from L1 for its centred second
// moment (2; also a one-read block whose first value is an outlier, robust_moments.h).
#pragma once

#include <utility>
#include <vector>

#include "cpu_common.h"

namespace groupnorm_gen {

inline void schedule_cpu_nchw(ForwardStages &st, const Tuning &tune, int vector) {
    using namespace Halide;
    const int out_vector = tune.y_vectors * vector;
    Var d{"d"};

    // g and n stay separate loops (both parallel): a fused (g, n) loop would make the
    // mean/rstd outputs, computed with y, infer all groups' bounds at every iteration.
    st.y.split(st.c, st.g, d, st.D, TailStrategy::RoundUp)
        .reorder(st.s, d, st.g, st.n)
        .parallel(st.n)
        .parallel(st.g);
    // Each channel's row of y is a loop of its own: where it is not whole wide vectors, its
    // tail is a masked wide vector on every row (VMASKMOVPS on AVX2, microcoded: a third of
    // fcos_p7 2x256x7x8's time, rows of 56). There plain y goes one natural vector at a time
    // (no tail at all when S is a multiple of it). The fused epilogue keeps the wide vector
    // its Func is computed in.
    // Tensors of next_prefetch_total values and more run plain y in the wide copy, which
    // prefetches the next group's x (the generator): one narrow copy, not two (their rows
    // of S values are mostly long, the masked tail a small part).
    if (st.plain_y.defined()) {
        Expr narrow = st.plain_y && st.spatial % out_vector != 0;
        if (st.prefetch_off.defined()) narrow = narrow && st.prefetch_off;
        st.y.specialize(narrow).vectorize(st.s, vector, TailStrategy::GuardWithIf);
    }
    st.y.vectorize(st.s, out_vector, TailStrategy::GuardWithIf);
    for (Func out : {st.mean, st.rstd}) {
        out.parallel(st.n).parallel(st.g).compute_with(st.y, st.g);
    }
    if (st.sum.defined()) {
        // The residual sum, a vector at a time beside y's, from the group's scratch below.
        st.sum.split(st.c, st.g, d, st.D, TailStrategy::RoundUp)
            .reorder(st.s, d, st.g, st.n)
            .parallel(st.n)
            .parallel(st.g)
            .vectorize(st.s, out_vector, TailStrategy::GuardWithIf)
            .compute_with(st.y, st.s);
        // Per channel: skip_nc + skip_bias of the group's channels, before its statistics.
        st.shift.compute_at(st.y, st.g).store_in(MemoryType::Stack);
        // x + skip + shift once per group into a scratch that the statistics, y and sum
        // read (it was recomputed from x and skip in each of the three passes: 8-14% of a
        // Skip + GroupNorm + SiLU).
        schedule_group_scratch(st.input, st.y, st.g, st.s, out_vector);
    }
    // The epilogue, a vector at a time inside y's vector loop (specialized by the generator).
    st.activated.compute_at(st.y, st.s)
        .vectorize(st.s, out_vector, TailStrategy::GuardWithIf)
        .bound_storage(st.s, out_vector)
        .store_in(MemoryType::Register);

    // The pivot is stored before the group is written: y may be x itself (in place).
    for (Func f : {st.pivot, st.stats, st.grp_sum, st.grp_m2, st.blk_stats, st.tail_sum,
                   st.tail_m2}) {
        f.compute_at(st.y, st.g);
    }
    // One group per iteration: constant-size (stack) storage. Halide cannot prove that
    // c / D spans one group for c in a group's channels, and would allocate on the heap.
    for (Func f : {st.pivot, st.stats, st.grp_sum, st.grp_m2}) {
        f.bound_storage(st.g, 1);
    }
    // Per-group scratch of runtime size: stack (Halide's pseudostack, heap past 16 KiB),
    // not a malloc per group, which dominated groups of a few hundred values.
    for (Func f : {st.blk_stats, st.tail_sum, st.tail_m2}) {
        f.store_in(MemoryType::Stack);
    }
    st.chan_affine.compute_at(st.y, d);
    // The pivot's (up to) 64 values summed a vector at a time.
    {
        RVar rpo{"rpo"}, rpi{"rpi"};
        Var u{"u"};
        Func partial = st.pivot_sum.update()
                           .split(st.rp.x, rpo, rpi, out_vector, TailStrategy::GuardWithIf)
                           .rfactor(rpi, u);
        partial.compute_at(st.pivot, st.g).vectorize(u);
        partial.update().vectorize(u);
        // Rows of >= 64 values (nearly all): whole vectors, and a vector horizontal sum.
        partial.update().specialize(st.row_len >= 64);
        st.pivot_sum.update().specialize(st.row_len >= 64).atomic().vectorize(rpi);
    }
    cascade_group_sums(st, LoopLevel(st.y, st.g), tune.blocks_per_partial);
    // The block Funcs at blk_stats' block loop; with one read (robust_moments.h), the
    // two-pass ones inside its redo loop, for the blocks that need them.
    LoopLevel at_block(st.blk_stats, st.b);
    LoopLevel two_pass_at = st.one_pass() ? LoopLevel(st.blk_stats, st.redo.x) : at_block;
    std::vector<std::pair<Func, LoopLevel>> totals = {
        {st.blk_sum, two_pass_at}, {st.blk_m2, two_pass_at}, {st.blk_dev, two_pass_at}};
    std::vector<std::pair<Func, LoopLevel>> lanes = {{st.lane_sum, two_pass_at}, {st.lane_m2, two_pass_at}};
    if (st.one_pass()) {
        st.blk_first.compute_at(at_block);
        totals.insert(totals.end(), {{st.blk_shifted_sq, at_block}, {st.blk_shifted_sum, at_block}});
        lanes.push_back({st.lane_shifted, at_block});
    }
    for (auto [f, at] : totals) {
        f.compute_at(at);
        // The lanes' horizontal sum as one vector reduction.
        f.update().atomic().vectorize(st.rl);
    }
    for (auto [f, at] : lanes) {
        // A vector of L = lanes accumulators (several registers: independent add
        // chains), kept in registers: the block loop has no masked stores to them.
        f.compute_at(at).store_in(MemoryType::Register).vectorize(st.l);
        f.update().vectorize(st.l);
    }
}

}  // namespace groupnorm_gen
