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
    // Four independent vector accumulators per sum hide the add latency; they are also
    // the first level of the cascaded sum (each lane sums S / lanes values of a row).
    const int lanes = 4 * vec;
    Var d{"d"}, gn{"gn"}, lane{"lane"};
    RVar rso{"rso"}, rsi{"rsi"};

    st.y.split(st.c, st.g, d, st.D, TailStrategy::RoundUp)
        .reorder(st.s, d, st.g, st.n)
        .fuse(st.g, st.n, gn)
        .parallel(gn)
        .vectorize(st.s, vec, TailStrategy::GuardWithIf);
    for (Func out : {st.mean, st.rstd}) {
        out.fuse(st.g, st.n, gn).parallel(gn).compute_with(st.y, gn);
    }

    // The pivot is stored before the group is written: y may be x itself (in place).
    for (Func f : {st.pivot, st.stats, st.group_sums, st.chan_sums, st.chan_affine}) {
        f.compute_at(st.y, gn);
    }
    Func row_lanes = st.chan_sums.update()
                         .split(st.rs.x, rso, rsi, lanes, TailStrategy::GuardWithIf)
                         .rfactor(rsi, lane);
    row_lanes.compute_at(st.chan_sums, st.c).vectorize(lane);
    row_lanes.update().vectorize(lane);
}

}  // namespace groupnorm_gen
