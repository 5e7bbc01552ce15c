// GPU schedule of the backward pass (CUDA and OpenCL build the same one), both layouts;
// tuning fields used: gpu_threads, gpu_y_per_thread.
//
// Kernels: channel sums, one block per (c, n), gpu_threads threads each summing a strided
// share of the interleaved blocks, then a tree (thread_sum) -> group coefficients, a thread per (g, n) -> dx,
// elementwise -> dgamma/dbeta, a thread per channel, the samples in order.
#pragma once

#include "../backward_stages.h"
#include "gpu.h"

namespace groupnorm_gen {

inline void schedule_backward_gpu(BackwardStages &st, Layout layout, const Tuning &tune,
                                  Halide::Func param_sums, Halide::Func grp_acc) {
    using namespace Halide;
    using namespace gpu_detail;
    // The channel sums' kernel: a wrapper every consumer reads, one block per (c, n).
    Func sums = st.chan_sums.in();
    sums.compute_root().gpu_blocks(st.c, st.n);
    st.chan_sums.compute_at(sums, st.c);
    // The threads add interleaved blocks (block_sums, each a thread's own chain), then a tree.
    Func lanes = thread_sum(st.chan_sums, st.rs.x, tune.gpu_threads);
    st.block_sums.compute_at(lanes, RVar("ro"));
    Var go{"go"}, no{"no"}, gi{"gi"}, ni{"ni"};
    st.grp_coef.compute_root().gpu_tile(st.g, st.n, go, no, gi, ni, 32, 4,
                                        TailStrategy::GuardWithIf);
    grp_acc.compute_at(st.grp_coef, gi);

    Var f{"f"}, fo{"fo"}, fi{"fi"}, k{"k"}, t{"t"};
    if (layout == Layout::NCHW) {
        st.dx.fuse(st.s, st.c, f);
    } else {
        st.dx.reorder(st.c, st.s, st.n).fuse(st.c, st.s, f);
    }
    st.dx.split(f, fo, fi, tune.gpu_y_per_thread * tune.gpu_threads, TailStrategy::GuardWithIf)
        .split(fi, k, t, tune.gpu_threads)
        .reorder(t, k, fo, st.n)
        .unroll(k)
        .gpu_blocks(fo, st.n)
        .gpu_threads(t);

    Var co{"co"}, ci{"ci"};
    param_sums.compute_root().gpu_tile(st.c, co, ci, 64, TailStrategy::GuardWithIf);
    param_sums.update().gpu_tile(st.c, co, ci, 64, TailStrategy::GuardWithIf);
    for (Func out : {st.dgamma, st.dbeta}) {
        out.gpu_tile(st.c, co, ci, 64, TailStrategy::GuardWithIf);
    }
}

}  // namespace groupnorm_gen
