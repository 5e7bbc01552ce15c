// CPU schedule, contiguous NC* layout (s dense). x86 and ARM share it; the vector width
// comes from the target.
//
// One parallel task per (group, sample): its statistics are computed right before it is
// normalized, so the group's D*S elements are read from DRAM once and re-read from L2
// (HALIDE_NOTES.md: 3-4.7x faster than two root passes).
#pragma once

#include "../group_norm_stages.h"

namespace groupnorm_gen {

inline void schedule_cpu_nchw(ForwardStages &st, const Halide::Target &t) {
    using namespace Halide;
    const int vec = t.natural_vector_size<float>();
    // Cascaded sums: `lanes` vector accumulators (4 independent chains hide the add
    // latency) each sum 64 values of a block, blocks sum into the channel's total. No
    // float32 accumulator ever takes more than ~1000 terms, whatever S is.
    const int lanes = 4 * vec;
    // A row shorter than a block gets one block of its own length (in whole vectors),
    // so no fully masked vector iterations run.
    Expr block = min(64 * lanes, (st.S + lanes - 1) / lanes * lanes);
    Var d{"d"}, lane{"lane"}, ub{"ub"};
    RVar rb{"rb"}, rbi{"rbi"}, rso{"rso"}, rsi{"rsi"};

    // g and n stay separate loops (both parallel): a fused (g, n) loop would make the
    // mean/rstd outputs, computed with y, infer all groups' bounds at every iteration.
    st.y.split(st.c, st.g, d, st.D, TailStrategy::RoundUp)
        .reorder(st.s, d, st.g, st.n)
        .parallel(st.n)
        .parallel(st.g)
        .vectorize(st.s, vec, TailStrategy::GuardWithIf);
    for (Func out : {st.mean, st.rstd}) {
        out.parallel(st.n).parallel(st.g).compute_with(st.y, st.g);
    }

    // The pivot is stored before the group is written: y may be x itself (in place).
    for (Func f : {st.pivot, st.stats, st.group_sums, st.chan_sums, st.chan_affine}) {
        f.compute_at(st.y, st.g);
    }
    Func block_sums = st.chan_sums.update()
                          .split(st.rs.x, rb, rbi, block, TailStrategy::GuardWithIf)
                          .rfactor(rb, ub);
    Func lane_sums = block_sums.update()
                         .split(rbi, rso, rsi, lanes, TailStrategy::GuardWithIf)
                         .rfactor(rsi, lane);
    block_sums.compute_at(st.chan_sums, rb);
    lane_sums.compute_at(st.chan_sums, rb).vectorize(lane);
    lane_sums.update().vectorize(lane);
}

}  // namespace groupnorm_gen
