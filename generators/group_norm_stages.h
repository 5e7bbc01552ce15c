// The Funcs of the GroupNorm forward algorithm, handed from the algorithm
// (group_norm_generator.cpp) to exactly one schedule (schedules/*.h).
#pragma once

#include "Halide.h"
#include "robust_moments.h"
#include "tuning.h"

namespace groupnorm_gen {

// The robust moments' stages (robust_moments.h) plus the forward's own.
struct ForwardStages : RobustMoments {
    // Coordinates beyond the moments': s spatial (flattened), c channel, i position in a row.
    Halide::Var s{"s"}, c{"c"}, i{"i"};
    // D channels per group; the statistics read rows of row_len values (the runtime passes
    // a group as one row when its channels are contiguous, else one row per channel).
    Halide::Expr D, row_len;
    Halide::Expr spatial;  // S: x's spatial extent (a channel's row of y in nchw)
    // True where y is the normalized value itself, no epilogue Func (the CPU generator's
    // plain-GroupNorm copy, or no fused activations at all); undefined where y always reads
    // the epilogue Func (residual variants, GPUs).
    Halide::Expr plain_y;
    // CPU nchw (not residual): true where y's pass does not prefetch the next group's x
    // (tensors below tuning next_prefetch_total); undefined elsewhere.
    Halide::Expr prefetch_off;
    // CPU forward with fused activations (tuning fused_copies = 2): SiLU in y's own
    // expression, and a copy of y specialized for it (the generator).
    bool silu_copy = false;

    // (s, c, n) what is normalized, in the compute type: x, or x + skip + shift (the
    // residual prologue); (i, r, n) the same as the statistics' rows (x_rows).
    Halide::Func input{"input"}, row_input{"row_input"};
    Halide::Func shift{"shift"};  // (c, n) residual: skip_nc + skip_bias
    Halide::Func sum{"sum"};      // (s, c, n) residual: input stored as x's type (an output)

    Halide::RDom rp;                          // the pivot's values
    // CPU nhwc: whether a channel's group may be found by a float32 division (C < 2^23;
    // the generator's group_of), for which the per-channel tables are specialized;
    // undefined elsewhere.
    Halide::Expr float_group_of;
    Halide::Func pivot_sum{"pivot_sum"};      // (g, n)  their sum
    Halide::Func pivot{"pivot"};              // (g, n)  mean of the group's first values: the shift of all sums
    Halide::Func chan_pivot{"chan_pivot"};    // (c, n)  pivot of c's group, so a vector of channels can load it
    Halide::Func row_pivot{"row_pivot"};      // (r, n)  pivot of row r's group
    Halide::Func centered{"centered"};        // (s, c, n) x - mean_r, in float32
    Halide::Func stats{"stats"};              // (g, n)  {mean_r (mean rounded), mean - mean_r, rstd}
    Halide::Func chan_affine{"chan_affine"};  // (c, n)  {a, b, mean_r}: y = centered * a + b
    // (s, c, n) epilogue(centered * a + b) in float32: the fused activation. CPU schedules
    // compute it at y's innermost (vector) loop, specialized per activation, so each
    // specialization holds one vector's arithmetic, not a copy of the whole pipeline
    // (GPUs specialize their normalize kernel, y, instead; this Func is unused there).
    Halide::Func activated{"activated"};
    // (s, c, n) centered * a + b, inlined: its own Func so the activation's strict_float
    // parts (activation.h) do not make its multiply-add strict (no FMA) where they inline it.
    Halide::Func normalized{"normalized"};
    Halide::Func y, mean, rstd;  // the pipeline's outputs
};

}  // namespace groupnorm_gen
