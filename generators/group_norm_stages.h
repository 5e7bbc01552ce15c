// The Funcs of the GroupNorm forward algorithm, handed from the algorithm
// (group_norm_generator.cpp) to exactly one schedule (schedules/*.h).
#pragma once

#include "Halide.h"

namespace groupnorm_gen {

// Which memory layout the 3-D canonical view (s, c, n) has.
//   nchw: s is dense (stride 1); a group is D consecutive rows of S elements.
//   nhwc: c is dense (stride 1); every spatial position holds all C channels.
enum class Layout { NCHW, NHWC };

struct ForwardStages {
    // Coordinates: s spatial (flattened), c channel, n sample, g group, b block of a row,
    // i position in a row, r row, l lane of a chunk.
    Halide::Var s{"s"}, c{"c"}, n{"n"}, g{"g"}, b{"b"}, i{"i"}, r{"r"}, l{"l"};
    // D channels per group. The statistics read rows, x_rows(i, r, n) of Lr values each
    // (the runtime passes a group as one row when its channels are contiguous, else one
    // row per channel), in blocks of whole chunks: K steps of L lanes (constants of the schedule).
    Halide::Expr D, Lr;
    // Reduction domains: ri over the steps of L lanes of one block (its sum), rk over its
    // chunks of K steps (its centred second moment; rk is ri when K = 1), rl over the
    // lanes, rbd over a group's blocks and rows.
    Halide::RDom ri, rk, rl, rbd;

    // Named, so stmt files, kernels and profiles say which stage they are.
    Halide::RDom rp;                          // the pivot's values
    Halide::Func pivot_sum{"pivot_sum"};      // (g, n)  their sum
    Halide::Func pivot{"pivot"};              // (g, n)  mean of the group's first values: the shift of all sums
    Halide::Func chan_pivot{"chan_pivot"};    // (c, n)  pivot of c's group, so a vector of channels can load it
    Halide::Func row_pivot{"row_pivot"};      // (r, n)  pivot of row r's group
    Halide::Func centered{"centered"};        // (s, c, n) x - pivot, in float32
    Halide::Func lane_sum{"lane_sum"};        // (l, b, r, n) sum of x_rows - pivot over lane l of the block's chunks
    Halide::Func lane_m2{"lane_m2"};          // (l, b, r, n) the same for squares about the block's mean
    Halide::Func blk_sum{"blk_sum"};          // (b, r, n) sum over the block (lanes added)
    Halide::Func blk_m2{"blk_m2"};            // (b, r, n) sum of squares about the block's own mean
    Halide::Func blk_stats{"blk_stats"};      // (b, r, n) {blk_sum, blk_m2}: what the group reduction reads
    Halide::Func tail_sum{"tail_sum"};        // (r, n)  the same two for the row's tail (K * L > 1 only)
    Halide::Func tail_m2{"tail_m2"};
    Halide::Func grp_sum{"grp_sum"};          // (g, n)  sum of centered over the group
    Halide::Func grp_m2{"grp_m2"};            // (g, n)  the group's centred second moment (Chan's combination)
    Halide::Func stats{"stats"};              // (g, n)  {mean - pivot, rstd}
    Halide::Func chan_affine{"chan_affine"};  // (c, n)  {a, b}: y = centered * a + b
    Halide::Func y, mean, rstd;  // the pipeline's outputs
};

}  // namespace groupnorm_gen
