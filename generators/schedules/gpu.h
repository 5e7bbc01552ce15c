// GPU schedule (CUDA and OpenCL build the same one), both layouts, two shape classes:
//
//   split  (small N*G): blk_stats is its own kernel, one block per (block of a row, row or
//          tile of gpu_tile_channels channel rows, n): the whole GPU reads x even when N = 1, G = 32.
//   group  (large N*G): blk_stats is computed inside the finalize kernel's block, one block
//          per (g, n), in shared memory: one launch less, no round trip through DRAM.
//
// Kernels, in order: pivot (g, n) -> [blk_stats] -> stats (g, n): the group's blocks
// combined by Chan's formula, gpu_threads threads each summing a strided share, then a
// two-level tree -> mean, rstd -> y, elementwise. The pivot is its own buffer because y may be x (in
// place): the normalize kernel must not read a pivot another thread has overwritten.
#pragma once

#include "../group_norm_stages.h"
#include "../tuning.h"

namespace groupnorm_gen {

namespace gpu_detail {

// f's update sums over one RVar `r` (extent arbitrary) with `threads` threads at f's
// compute level: each thread sums a strided share (coalesced), then threads / 32 threads
// sum 32 partials each, then one thread the rest.
inline Halide::Func thread_sum(Halide::Func f, Halide::RVar r, int threads) {
    using namespace Halide;
    RVar ro{"ro"}, ri{"ri_t"}, rw{"rw"}, rl{"rl"};
    Var u{"u"}, w{"w"};
    Func lanes = f.update().split(r, ro, ri, threads).rfactor(ri, u);
    Func warps = f.update().split(ri, rw, rl, 32).rfactor(rw, w);
    lanes.compute_at(f, Var::outermost()).gpu_threads(u);
    lanes.update().reorder(ro, u).gpu_threads(u);
    warps.compute_at(f, Var::outermost()).gpu_threads(w);
    warps.update().reorder(rl, w).gpu_threads(w);
    return lanes;
}

inline void tile_2d(Halide::Func f, Halide::Var x, Halide::Var y) {
    using namespace Halide;
    Var xo{"xo"}, yo{"yo"}, xi{"xi"}, yi{"yi"};
    f.gpu_tile(x, y, xo, yo, xi, yi, 32, 4, TailStrategy::GuardWithIf);
}

}  // namespace gpu_detail

inline void schedule_gpu(ForwardStages &st, Layout layout, GpuShape shape, const Tuning &tune) {
    using namespace Halide;
    using namespace gpu_detail;
    Var s = st.s, c = st.c, n = st.n, g = st.g, b = st.b, r = st.r;

    st.pivot.compute_root();
    tile_2d(st.pivot, g, n);

    // Finalize: one block per (g, n).
    st.stats.compute_root().gpu_blocks(g, n);
    for (Func f : {st.grp_sum, st.grp_m2}) {
        f.compute_at(st.stats, g);
        if (shape == GpuShape::Split) {
            RVar rbd{"rbd_f"};
            f.update().fuse(st.rbd.x, st.rbd.y, rbd);
            thread_sum(f, rbd, tune.gpu_threads);
            continue;
        }
        // group: threads over the blocks, channels serial; each thread computes its blocks'
        // moments in registers (a copy per pass: grp_m2 needs grp_sum first).
        Func lanes = thread_sum(f, st.rbd.x, tune.gpu_threads);
        lanes.update().reorder(RVar("ro"), st.rbd.y, Var("u"));
        // (L = 1 on GPUs: blk_sum and blk_m2 are pure aliases of the lane Funcs, inlined.)
        Func blk = st.blk_stats, sum = st.lane_sum, m2 = st.lane_m2;
        if (f.name() == st.grp_m2.name()) {
            blk = st.blk_stats.clone_in(lanes);
            Func blk_m2 = st.blk_m2.clone_in(blk), blk_dev = st.blk_dev.clone_in(blk);
            m2 = st.lane_m2.clone_in({blk_m2, blk_dev});
            Func anchor = st.blk_anchor.clone_in({blk, m2});
            Func blk_sum = st.blk_sum.clone_in({blk, anchor});
            sum = st.lane_sum.clone_in(blk_sum);
        }
        blk.compute_at(lanes, RVar("ro"));
        sum.compute_at(blk, Var::outermost());
        m2.compute_at(blk, Var::outermost());
    }
    for (Func out : {st.mean, st.rstd}) tile_2d(out, g, n);

    if (shape == GpuShape::Split) {
        Var co{"co"}, ci{"ci"};
        st.blk_stats.compute_root();
        if (layout == Layout::NCHW) {
            // One block per (b, row, n); 256 threads stride along the dense row.
            st.blk_stats.gpu_blocks(b, r, n);
            for (Func f : {st.lane_sum, st.lane_m2}) {
                f.compute_at(st.blk_stats, b);
                thread_sum(f, st.ri.x, tune.gpu_threads);
            }
        } else {
            // One block per (b, channel tile, n): gpu_tile_channels channel threads x
            // gpu_row_threads row threads, each row thread summing every k-th row of the block.
            st.blk_stats.split(r, co, ci, tune.gpu_tile_channels, TailStrategy::GuardWithIf)
                .reorder(ci, b, co, n)
                .gpu_blocks(b, co, n)
                .gpu_threads(ci);
            for (Func f : {st.lane_sum, st.lane_m2}) {
                RVar rio{"rio"}, rii{"rii"};
                Var u{"u"};
                f.compute_at(st.blk_stats, b).gpu_threads(r);
                Func rows = f.update().split(st.ri.x, rio, rii, tune.gpu_row_threads).rfactor(rii, u);
                f.update().gpu_threads(r);
                rows.compute_at(st.blk_stats, b).reorder(r, u).gpu_threads(r, u);
                rows.update().reorder(rio, r, u).gpu_threads(r, u);
            }
        }
    }

    // Normalize: the (dense, other) plane of each sample flattened, gpu_y_per_thread elements
    // per thread.
    Var f{"f"}, fo{"fo"}, fi{"fi"}, k{"k"}, t{"t"};
    if (layout == Layout::NCHW) {
        st.y.fuse(s, c, f);
    } else {
        st.y.reorder(c, s, n).fuse(c, s, f);
    }
    st.y.split(f, fo, fi, tune.gpu_y_per_thread * tune.gpu_threads, TailStrategy::GuardWithIf)
        .split(fi, k, t, tune.gpu_threads)
        .reorder(t, k, fo, n)
        .unroll(k)
        .gpu_blocks(fo, n)
        .gpu_threads(t);
}

}  // namespace groupnorm_gen
