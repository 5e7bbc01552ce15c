// CPU schedule, channels-last N*C layout (c dense). x86 and ARM share it; the vector
// width comes from the target.
//
// Per sample: one parallel pass accumulates per-channel sums over spatial chunks (a
// vector of channels at a time, every load a full row of C channels), the chunks and then
// the group's channels are summed (the cascade), and a second parallel pass over spatial
// rows normalizes. A group's channels are strided in this layout, so per-group tasks as
// in NCHW would touch each cache line G times.
#pragma once

#include "../group_norm_stages.h"

namespace groupnorm_gen {

inline void schedule_cpu_nhwc(ForwardStages &st, const Halide::Target &t) {
    using namespace Halide;
    const int vec = t.natural_vector_size<float>();
    const int rows_per_task = 32;    // normalize pass: spatial rows per parallel task
    const int rows_per_chunk = 512;  // stats pass: rows summed per partial (cascade level 1)
    Var so{"so"}, si{"si"}, chunk{"chunk"};
    RVar rso{"rso"}, rsi{"rsi"};

    st.y.reorder(st.c, st.s, st.n)
        .split(st.s, so, si, rows_per_task, TailStrategy::GuardWithIf)
        .parallel(so)
        .vectorize(st.c, vec, TailStrategy::GuardWithIf);
    for (Func out : {st.mean, st.rstd}) {
        out.compute_with(st.y, st.n);
    }

    for (Func f : {st.chan_pivot, st.stats, st.group_sums, st.chan_affine}) {
        f.compute_at(st.y, st.n);
    }
    Func chunk_sums = st.chan_sums.update()
                          .split(st.rs.x, rso, rsi, rows_per_chunk, TailStrategy::GuardWithIf)
                          .rfactor(rso, chunk);
    chunk_sums.compute_at(st.y, st.n).vectorize(st.c, vec, TailStrategy::GuardWithIf);
    chunk_sums.update()
        .reorder(st.c, rsi, chunk)
        .parallel(chunk)
        .vectorize(st.c, vec, TailStrategy::GuardWithIf);
    st.chan_sums.compute_at(st.y, st.n).vectorize(st.c, vec, TailStrategy::GuardWithIf);
    st.chan_sums.update().reorder(st.c, rso).vectorize(st.c, vec, TailStrategy::GuardWithIf);
}

}  // namespace groupnorm_gen
