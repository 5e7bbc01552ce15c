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
    // Coordinates: s spatial (flattened), c channel, n sample, g group, b spatial block.
    Halide::Var s{"s"}, c{"c"}, n{"n"}, g{"g"}, b{"b"};
    // Extents of the canonical view and derived sizes (runtime values): B is the block
    // length along s (the schedule's choice, at most S), NB the number of blocks.
    Halide::Expr S, C, D, B, NB;
    // Reduction domains: ri over one block of one channel, rbd over a group's blocks and
    // channels.
    Halide::RDom ri, rbd;

    // Named, so stmt files, kernels and profiles say which stage they are.
    Halide::Func pivot{"pivot"};              // (g, n)  mean of the group's first values: the shift of all sums
    Halide::Func chan_pivot{"chan_pivot"};    // (c, n)  pivot of c's group, so a vector of channels can load it
    Halide::Func centered{"centered"};        // (s, c, n) x - pivot, in float32
    Halide::Func blk_sum{"blk_sum"};          // (b, c, n) sum of centered over the block
    Halide::Func blk_m2{"blk_m2"};            // (b, c, n) sum of squares about the block's own mean
    Halide::Func blk_stats{"blk_stats"};      // (b, c, n) {blk_sum, blk_m2}: what the group reduction reads
    Halide::Func grp_sum{"grp_sum"};          // (g, n)  sum of centered over the group
    Halide::Func grp_m2{"grp_m2"};            // (g, n)  the group's centred second moment (Chan's combination)
    Halide::Func stats{"stats"};              // (g, n)  {mean - pivot, rstd}
    Halide::Func chan_affine{"chan_affine"};  // (c, n)  {a, b}: y = centered * a + b
    Halide::Func y, mean, rstd;  // the pipeline's outputs
};

}  // namespace groupnorm_gen
