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
    // Coordinates: s spatial (flattened), c channel, n sample, g group.
    Halide::Var s{"s"}, c{"c"}, n{"n"}, g{"g"};
    // Extents of the canonical view and derived sizes (runtime values).
    Halide::Expr S, C, D;
    // Reduction domains: rs over one channel's spatial positions, rd over a group's channels.
    Halide::RDom rs, rd;

    Halide::Func pivot;        // (g, n)  first element of the group: the shift of all sums
    Halide::Func chan_pivot;   // (c, n)  pivot of c's group, so a vector of channels can load it
    Halide::Func centered;     // (s, c, n) x - pivot, in float32
    Halide::Func chan_sums;    // (c, n)  {sum centered, sum centered^2} over s
    Halide::Func group_sums;   // (g, n)  {sum, sum of squares} over the group's channels
    Halide::Func stats;        // (g, n)  {mean - pivot, rstd}
    Halide::Func chan_affine;  // (c, n)  {a, b}: y = centered * a + b
    Halide::Func y, mean, rstd;  // the pipeline's outputs
};

}  // namespace groupnorm_gen
