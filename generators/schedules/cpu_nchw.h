// CPU schedule, contiguous NC* layout (s dense), parameterised by a per-family tuning
// (x86 below, ARM in arm.h).
//
// One parallel task per (sample, group): its statistics are computed right before it is
// normalized, so the group's D*S elements come from DRAM once and are re-read from cache
// (HALIDE_NOTES.md: 3-4.7x faster than two root passes). Each block (64 values per
// accumulator lane, <= 16 KiB of one row: the group's channels when they are contiguous)
// is summed into a vector of lane accumulators, then re-read from L1 for its centred
// second moment.
#pragma once

#include "cpu_common.h"

namespace groupnorm_gen {

struct NchwTuning {
    int out_vector;  // y values per iteration
    int lanes;       // vector-lane accumulators per block sum (several independent chains)
};

// x86: four vectors of accumulators keep enough adds in flight for L1/L2 speeds. y two
// vectors at a time: a half-precision y is then converted in registers and stored whole,
// not by VCVTPS2PH to memory (LLVM folds one vector's conversion into its store; Zen 4
// runs that form slowly).
inline NchwTuning x86_nchw_tuning(const Halide::Target &t) {
    const int vec = t.natural_vector_size<float>();
    return {2 * vec, 4 * vec};
}

inline int nchw_spatial_block(const NchwTuning &tune) { return 64 * tune.lanes; }

inline void schedule_cpu_nchw(ForwardStages &st, const NchwTuning &tune) {
    using namespace Halide;
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
                           .split(st.rp.x, rpo, rpi, tune.out_vector, TailStrategy::GuardWithIf)
                           .rfactor(rpi, u);
        partial.compute_at(st.pivot, st.g).vectorize(u);
        partial.update().vectorize(u);
        // Rows of >= 64 values (nearly all): whole vectors, and a vector horizontal sum.
        partial.update().specialize(st.Lr >= 64);
        st.pivot_sum.update().specialize(st.Lr >= 64).atomic().vectorize(rpi);
    }
    cascade_group_sums(st, LoopLevel(st.y, st.g));
    for (Func f : {st.blk_sum, st.blk_m2}) {
        f.compute_at(st.blk_stats, st.b);
        // The lanes' horizontal sum as one vector reduction.
        f.update().atomic().vectorize(st.rl);
    }
    for (Func f : {st.lane_sum, st.lane_m2}) {
        // A vector of L = tune.lanes accumulators (several registers: independent add
        // chains), kept in registers: the block loop has no masked stores to them.
        f.compute_at(st.blk_stats, st.b).store_in(MemoryType::Register).vectorize(st.l);
        f.update().vectorize(st.l);
    }
}

}  // namespace groupnorm_gen
