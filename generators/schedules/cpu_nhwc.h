// CPU schedule, channels-last N*C layout (c dense), parameterised by a per-family tuning
// (x86 below, ARM in arm.h).
//
// Samples in parallel (a sample of few rows has little parallelism of its own: 2x on
// 2x2560x8x8 with 2 threads). Per sample: blocks of spatial rows are processed in
// parallel, a vector of channels at a time (every load part of a full row of C channels):
// each block is summed, then re-read from L2 for its centred second moment; the blocks'
// moments combine per group; a second parallel pass over rows normalizes. A group's
// channels are strided in this layout: per-group tasks as in NCHW would load partial
// vectors (D < 16 channels) from lines shared with the neighbouring groups.
#pragma once

#include <tuple>

#include "cpu_common.h"

namespace groupnorm_gen {

struct NhwcTuning {
    int out_vector;      // y channels per iteration
    int stat_vector;     // channels per accumulator vector in the block sums
    int block_rows;      // spatial rows per block (the unit of the centred moments)
    int rows_per_step;   // second moment: rows added per load and store of its sums
    int rows_per_chain;  // rows one accumulator sums before the chains are added
    int rows_per_task;   // normalize pass: spatial rows per parallel task
};

// x86: 512 rows of C <= 320 float channels fit L2. Eight rows per step of the second moment:
// 10-30% faster than one on cache-resident shapes (one row per step is a load and a store
// of the sums per vector of x). The sum, x's first touch, keeps one row per step: two or more
// rows at a time from DRAM measured 15-35% slower (interleaved streams).
inline NhwcTuning x86_nhwc_tuning(const Halide::Target &t) {
    const int vec = t.natural_vector_size<float>();
    return {vec, vec, 512, 8, 64, 32};
}

inline void schedule_cpu_nhwc(ForwardStages &st, const NhwcTuning &tune) {
    using namespace Halide;
    const int vec = tune.stat_vector;
    Var so{"so"}, si{"si"};

    st.y.reorder(st.c, st.s, st.n)
        .split(st.s, so, si, tune.rows_per_task, TailStrategy::GuardWithIf)
        .parallel(so)
        .parallel(st.n)
        .vectorize(st.c, tune.out_vector, TailStrategy::GuardWithIf);
    for (Func out : {st.mean, st.rstd}) {
        out.parallel(st.n).compute_with(st.y, st.n);
    }

    for (Func f : {st.pivot, st.chan_pivot, st.stats, st.grp_sum, st.grp_m2, st.chan_affine}) {
        f.compute_at(st.y, st.n);
    }
    cascade_group_sums(st, LoopLevel(st.y, st.n));
    // Rows are channels here (the runtime passes x itself as x_rows), L = 1.
    st.blk_stats.compute_at(st.y, st.n)
        .reorder(st.r, st.b)
        .parallel(st.b)
        .vectorize(st.r, vec, TailStrategy::GuardWithIf);
    // The last S % rows_per_step spatial rows, a vector of channels at a time.
    for (Func f : {st.tail_sum, st.tail_m2}) {
        f.compute_at(st.y, st.n).vectorize(st.r, vec, TailStrategy::GuardWithIf);
        f.update().vectorize(st.r, vec, TailStrategy::GuardWithIf);
    }
    // Within a block, each channel sums `rows_per_chain` rows per accumulator, then the
    // chains are added: the float32 cascade (a long chain's rounding grows with its length).
    for (auto [f, steps, rows] : {std::tuple{st.lane_sum, st.ri.x, 1},
                                  std::tuple{st.lane_m2, st.rk.x, tune.rows_per_step}}) {
        f.compute_at(st.blk_stats, st.b)
            .reorder(st.r, st.l, st.b)
            .vectorize(st.r, vec, TailStrategy::GuardWithIf);
        RVar rio{"rio"}, rii{"rii"};
        Var chain{"chain"};
        Func chains = f.update()
                          .split(steps, rio, rii, tune.rows_per_chain / rows,
                                 TailStrategy::GuardWithIf)
                          .rfactor(rio, chain);
        f.update().reorder(st.r, rio, st.l, st.b).vectorize(st.r, vec, TailStrategy::GuardWithIf);
        chains.compute_at(st.blk_stats, st.b)
            .reorder(st.r, chain)
            .vectorize(st.r, vec, TailStrategy::GuardWithIf);
        chains.update()
            .reorder(st.r, rii, chain)
            .vectorize(st.r, vec, TailStrategy::GuardWithIf);
    }
}

}  // namespace groupnorm_gen
