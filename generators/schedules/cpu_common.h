// Pieces both CPU schedules share.
#pragma once

#include "../group_norm_stages.h"

namespace groupnorm_gen {

// The group-level combination of block moments as a cascade: partial sums of
// `blocks_per_partial` blocks of one row, then the partials. A single float32 chain over
// thousands of blocks (large groups) breaks the numerics contract.
// row_vector > 0: the partials of `row_vector` adjacent rows of a group at a time, then
// summed into `row_vector` lanes (nhwc, whose rows are channels; blk_stats must then store
// rows innermost).
inline void cascade_group_sums(ForwardStages &st, const Halide::LoopLevel &at,
                               int blocks_per_partial, int row_vector = 0) {
    using namespace Halide;
    for (Func f : {st.grp_sum, st.grp_m2}) {
        RVar rbo{"rbo"}, rbi{"rbi"};
        Var chunk{"chunk"}, chan{"chan"};
        Func partials = f.update()
                            .split(st.rbd.x, rbo, rbi, blocks_per_partial, TailStrategy::GuardWithIf)
                            .rfactor({{rbo, chunk}, {st.rbd.y, chan}});
        partials.compute_at(at).store_in(MemoryType::Stack);
        if (row_vector > 0) {
            partials.reorder_storage(chan, chunk, st.g, st.n)
                .reorder(chan, chunk, st.g, st.n)
                .vectorize(chan, row_vector, TailStrategy::GuardWithIf);
            partials.update()
                .reorder(chan, rbi, chunk, st.g, st.n)
                .vectorize(chan, row_vector, TailStrategy::GuardWithIf);
            // Then the partials of the group's rows into a vector of `row_vector` sums, whose
            // lanes are added last (a scalar chain over every row's partials was a fifth of
            // the per-sample work of 2x2560x8x8 channels-last).
            RVar ryo{"ryo"}, ryi{"ryi"};
            Var lane{"lane"};
            Func lanes = f.update()
                             .split(st.rbd.y, ryo, ryi, row_vector, TailStrategy::GuardWithIf)
                             .rfactor(ryi, lane);
            lanes.compute_at(at).store_in(MemoryType::Stack)
                .reorder_storage(lane, st.g, st.n)
                .vectorize(lane);
            lanes.update().reorder(lane, rbo, ryo, st.g, st.n).vectorize(lane);
        }
        // The rows' tails (rows of chunks of K * L > 1 values), a short loop over the group's rows.
        if (f.num_update_definitions() > 1) f.update(1).unscheduled();
    }
}

// A (s, c, n) Func computed once per group of `consumer` (its loop over g) into a stack
// scratch of the group's D * S values per thread, a vector of s at a time. A named split:
// vectorize(s, ..., GuardWithIf) on such a Func lost the outer index in Halide 21 (every
// vector stored over the row's first).
inline void schedule_group_scratch(Halide::Func f, Halide::Func consumer, Halide::Var g,
                                   Halide::Var s, int vector) {
    using namespace Halide;
    Var so{"so"}, si{"si"};
    f.compute_at(consumer, g).store_in(MemoryType::Stack)
        .split(s, so, si, vector, TailStrategy::GuardWithIf)
        .vectorize(si);
}

}  // namespace groupnorm_gen
