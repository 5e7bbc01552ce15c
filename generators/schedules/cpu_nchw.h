// CPU schedule, contiguous NC* layout (s dense), parameterised by a per-family tuning
// (x86 below, ARM in arm.h).
//
// One parallel task per (sample, group): its statistics are computed right before it is
// normalized, so the group's D*S elements come from DRAM once and are re-read from cache
// (HALIDE_NOTES.md: 3-4.7x faster than two root passes). Each block (64 values per
// accumulator lane, <= 16 KiB of one channel row) is summed, then re-read from L1 for its
// centred second moment.
#pragma once

#include "cpu_common.h"

namespace groupnorm_gen {

struct NchwTuning {
    int out_vector;  // y values per iteration
    int lanes;       // vector-lane accumulators per block sum (several independent chains)
};

// x86: two vectors of accumulators keep enough adds in flight for DRAM and L1 speeds, and
// rows of >= 2 vectors still take the vector horizontal sum below.
inline NchwTuning x86_nchw_tuning(const Halide::Target &t) {
    const int vec = t.natural_vector_size<float>();
    return {vec, 2 * vec};
}

inline int nchw_spatial_block(const NchwTuning &tune) { return 64 * tune.lanes; }

inline void schedule_cpu_nchw(ForwardStages &st, const NchwTuning &tune) {
    using namespace Halide;
    const int lanes = tune.lanes;
    Var d{"d"};

    // g and n stay separate loops (both parallel): a fused (g, n) loop would make the
    // mean/rstd outputs, computed with y, infer all groups' bounds at every iteration.
    st.y.split(st.c, st.g, d, st.D, TailStrategy::RoundUp)
        .reorder(st.s, d, st.g, st.n)
        .parallel(st.n)
        .parallel(st.g)
        .vectorize(st.s, tune.out_vector, TailStrategy::GuardWithIf);
    for (Func out : {st.mean, st.rstd}) {
        out.parallel(st.n).parallel(st.g).compute_with(st.y, st.g);
    }

    // The pivot is stored before the group is written: y may be x itself (in place).
    for (Func f : {st.pivot, st.stats, st.grp_sum, st.grp_m2, st.blk_stats, st.chan_affine}) {
        f.compute_at(st.y, st.g);
    }
    cascade_group_sums(st, LoopLevel(st.y, st.g));
    for (Func f : {st.blk_sum, st.blk_m2}) {
        f.compute_at(st.blk_stats, st.b);
        RVar rio{"rio"}, rii{"rii"};
        Var lane{"lane"};
        Func lane_sums = f.update()
                             .split(st.ri.x, rio, rii, lanes, TailStrategy::GuardWithIf)
                             .rfactor(rii, lane);
        lane_sums.compute_at(st.blk_stats, st.b).store_in(MemoryType::Register).vectorize(lane);
        lane_sums.update().vectorize(lane);
        // Blocks are whole multiples of `lanes` when S >= lanes (the algorithm's B): the
        // loop then has no predicated tail and the accumulators can stay in registers.
        lane_sums.update().specialize(st.S >= lanes);
        // The lanes' horizontal sum as a vector reduction, not a chain of `lanes` scalar
        // adds, which dominated short rows (S = 64: 3/4 of the time). Its extent is
        // min(lanes, S), a constant only when S >= lanes.
        f.update().specialize(st.S >= lanes).atomic().vectorize(rii);
    }
}

}  // namespace groupnorm_gen
