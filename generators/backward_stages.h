// The Funcs of the GroupNorm backward algorithm (group_norm_backward_generator.cpp), handed
// to exactly one schedule (schedules/backward_*.h).
#pragma once

#include <optional>
#include <vector>

#include "Halide.h"
#include "group_table.h"
#include "tuning.h"

namespace groupnorm_gen {

struct BackwardStages {
    // s spatial (flattened), c channel, n sample, g group.
    Halide::Var s{"s"}, c{"c"}, n{"n"}, g{"g"}, l{"l"}, b{"b"}, k{"k"};
    Halide::Expr D;   // channels per group
    Halide::Expr spatial;  // S: x's spatial extent (a channel's row of dx in nchw)
    // True where dx is plain GroupNorm's (the generator's copy without the activation's
    // derivative, or no fused activations at all); undefined on GPUs.
    Halide::Expr plain_dx;
    Halide::RDom rs;  // a channel's blocks (the cascade of its sums)
    Halide::RDom rj;  // a block's chunks
    Halide::RDom rp;  // the last block's chunks
    Halide::RDom rv;  // the row's last, masked chunk (0 or 1 of them)
    Halide::RDom rn;  // the samples (dgamma, dbeta)

    Halide::Func centered{"centered"};    // (s, c, n) x - mean, float32
    // (s, c, n) dy act'(z) in float32 with a fused activation, specialized per activation
    // where the schedule computes it (nchw CPU: once per group, a scratch the sums and dx
    // read; nhwc CPU: a vector of channels where each consumer reads it).
    Halide::Func dy_act{"dy_act"};
    // (k, s, c, n) dy_act(s + k B L, c, n): a full nhwc block's K rows, B rows apart, as
    // one box (defined when K > 1 and activations are fused).
    Halide::Func dy_act_rows{"dy_act_rows"};
    // Set by the CPU schedules: the Funcs the generator specializes per activation (dy_act
    // itself, or its wrappers at its consumers).
    std::vector<Halide::Func> act_sites;
    Halide::Func block_sums{"block_sums"};  // (l, b, c, n) CPU, (b, c, n) GPU: a block's sums
    Halide::Func last_block{"last_block"};  // (l, c, n) CPU: the last block (< B chunks)
    Halide::Func lane_sums{"lane_sums"};    // (l, c, n) CPU: lane l's blocks, Kahan {sums, compensations}
    Halide::Func lane_total{"lane_total"};  // (l, c, n) CPU: lane l's compensated sums
    Halide::Func chan_sums{"chan_sums"};  // (c, n) {sum dy, sum dy (x - mean), sum x - mean} over s
    Halide::Func chan_sums_out{"chan_sums_out"};  // (c, n) {db, dsc rstd} re-centred, for dbeta/dgamma
    Halide::Func grp_coef{"grp_coef"};    // (g, n) {c2, c3, delta}: dx = a dy + c2 (x - mean) + c3
    std::optional<GroupTable> groups;       // CPU: c's group (group_table.h)
    Halide::Func chan_mean{"chan_mean"};  // (c, n) the mean of c's group: a vector of channels loads it
    Halide::Func chan_scale{"chan_scale"};  // (c, n) rstd * gamma of c: z = (x - mean) * it + beta
    Halide::Func chan_coef{"chan_coef"};  // (c, n) {rstd * gamma, c2, c3, mean} of c's group
    Halide::Func dx, dgamma, dbeta;       // the pipeline's outputs
};

}  // namespace groupnorm_gen
