// Robust grouped moments: the sum and centred second moment of each group of rows, in the
// compute type (float32; float64 for float64 data), without cancellation however far the
// data's mean is from zero. Reusable by any
// op that needs per-group statistics (forward; the backward's reductions).
//
// Input: x(i, r, n) as rows of `row_len` values (a group is `rows_per_group` consecutive
// rows) and a pivot per row near its group's mean; all sums are of v = x - pivot.
// Each row is cut into blocks of whole chunks; a chunk is K steps of L lanes (the lanes a
// pure vector dimension: a vector of accumulators, no mask or tail inside a block). Per block:
// its sum (read in memory order: x's first touch, from DRAM or L3), then its exact centred
// second moment (a re-read from cache, a chunk at a time, the chunk's K steps added before
// they reach an accumulator). The row's last < K * L values form one more "block" (the tail).
// The blocks combine per group by Chan's formula,
//     M2 = sum_b M2_b + n_b (mean_b - mean)^2,
// whose terms are all >= 0: no cancellation, and no chain of adds longer than a block.
// The sums lose ~|v| / std times more to rounding than centred values do, and the pivot
// may be far from the mean (a group whose first values are outliers: a bright corner on a
// flat background, 11 std on a fuzzer's input, 3e-4 off in the mean). So the mean is
// corrected as in the corrected two-pass algorithm: the centred pass also sums the
// deviations from the block's mean (the block sum's rounding error, with the opposite
// sign), and the group reduction adds sum_b (dev_b + n_b (mean_b - mean)): what the
// first-pass mean misses, from terms of the size of the spread, not of |v|.
// The second pass reads x - anchor, anchor = pivot + block mean rounded to x's type, with
// the rounding error e of that sum kept exactly (TwoSum) and taken out per block: the
// deviations from the block's mean are (x - anchor) - e. (Rounding (x - pivot) - mean to
// x - anchor without e puts the block's mean on a unit of x's magnitude: 80x the float32
// bound at |mean| = 1e7 std.) The same three operations a value as (x - pivot) - mean
// squared, and the deviations' sum rides with the squares.
// One read instead (BlockGeometry::one_pass, tuning stat_passes = 1): each block's sums of
// d = x - a and d^2, a the block's own first value, and M2_b = S2 - S1^2 / n. S2 is
// M2_b + S1^2 / n, so that subtraction multiplies S2's relative rounding by A = 1 + z^2, z
// a's distance from the block's mean in the block's standard deviations: about 2 on most
// data, up to n when a is an outlier (z^2 <= n - 1). A block where A > 8 is read again by the
// two-pass method above (the same Funcs, in blk_stats' update over `redo`). With normalize, x
// is read twice instead of three times.
#pragma once

#include <vector>

#include "Halide.h"

namespace groupnorm_gen {

// Shape of the blocks, in values of a row (constants of the schedule).
struct BlockGeometry {
    int lanes = 1;          // L: accumulator lanes (a vector dimension; 1 on NHWC and GPUs)
    int steps = 1;          // K: steps of L lanes added per chunk before an accumulator
    int block_values = 1;   // target block length (rounded down to whole chunks)
    // The row's tail loop as one of at least one iteration, guarded (autoscheduled pipelines:
    // Adams2019 aborts on a loop that is empty at its estimates, as the tail usually is).
    bool guarded_tail = false;
    // One read per block (shifted sums, above) instead of a sum and a centred re-read.
    bool one_pass = false;
};

struct RobustMoments {
    // Coordinates: g group, n sample, b block of a row, r row, l lane of a chunk.
    Halide::Var g{"g"}, n{"n"}, b{"b"}, r{"r"}, l{"l"};
    // ri: the steps of L lanes of one block (its sum); rk: its chunks of K steps (its
    // centred second moment; rk is ri when K = 1); rl: the lanes; rbd: a group's blocks x rows.
    Halide::RDom ri, rk, rl, rbd;
    // The arithmetic type of every stage: v's (float32, or float64 for float64 data).
    Halide::Type type = Halide::Float(32);

    // Named, so stmt files, kernels and profiles say which stage they are.
    Halide::Func lane_sum{"lane_sum"};    // (l, b, r, n) sum over lane l of the block's chunks
    Halide::Func blk_anchor{"blk_anchor"};  // (b, r, n) {anchor = pivot + blk_sum / n rounded, its rounding error}
    Halide::Func lane_m2{"lane_m2"};      // (l, b, r, n) {squares, sum} of x - anchor (the block's mean)
    Halide::Func blk_sum{"blk_sum"};      // (b, r, n) sum over the block (lanes added)
    Halide::Func blk_m2{"blk_m2"};        // (b, r, n) sum of squares of x - anchor
    Halide::Func blk_dev{"blk_dev"};      // (b, r, n) sum of x - anchor
    // (b, r, n) {blk_sum, M2 about the block's mean, sum of deviations from pivot + blk_sum / n
    // (a rounding error)}: what the group reduction reads.
    Halide::Func blk_stats{"blk_stats"};
    // One read (BlockGeometry::one_pass; only then defined): the block's first value a,
    // {squares, sum} of x - a per lane and per block. blk_stats then has a fourth value,
    // S1^2 / n, and an update over `redo` (one iteration or none) where the two-pass Funcs
    // above run for the blocks that need them: the schedules compute them at redo's loop.
    bool one_pass() const { return blk_first.defined(); }
    Halide::Func blk_first{"blk_first"};
    Halide::Func lane_shifted{"lane_shifted"};
    Halide::Func blk_shifted_sq{"blk_shifted_sq"}, blk_shifted_sum{"blk_shifted_sum"};
    Halide::RDom redo;
    Halide::Func tail_sum{"tail_sum"};    // (r, n) the same for the row's tail (K * L > 1 only)
    Halide::Func tail_m2{"tail_m2"};      // (r, n) {squares, deviations}
    Halide::Func grp_sum{"grp_sum"};      // (g, n) sum of v over the group (first pass)
    Halide::Func grp_m2{"grp_m2"};        // (g, n) {centred second moment, correction to grp_sum}

    // Defines every stage above over x and the pivot of each row, pivot(r, n).
    void define(Halide::Func x, Halide::Func pivot, Halide::Expr row_len, Halide::Expr rows_per_group,
                const BlockGeometry &geo);

private:
    // blk(b, r, n) = the sum of lane(l, b, r, n)[value] over the L lanes; an alias when L = 1.
    void define_lane_total(int lanes, Halide::Func blk, Halide::Func lane, int value = 0);
    void define_blocks(Halide::Func x, Halide::Func pivot, Halide::Func v, Halide::Expr row_len,
                       const BlockGeometry &geo);
};

// 0 of type t (a constant: Halide folds the cast).
inline Halide::Expr zero_of(const Halide::Type &t) { return Halide::cast(t, 0); }

// a + b rounded, and its rounding error (a + b) - sum exactly (Knuth's TwoSum; strict, or
// fast-math folds the error to 0).
struct TwoSum {
    Halide::Expr sum, err;
};
inline TwoSum two_sum(Halide::Expr a, Halide::Expr b) {
    using Halide::strict_float;
    Halide::Expr sum = strict_float(a + b);
    Halide::Expr a_part = strict_float(sum - b), b_part = strict_float(sum - a_part);
    return {sum, strict_float((a - a_part) + (b - b_part))};
}

// ((a + b) + (c + d)): terms added in a balanced tree.
inline Halide::Expr pairwise_sum(std::vector<Halide::Expr> terms) {
    while (terms.size() > 1) {
        std::vector<Halide::Expr> next;
        for (size_t k = 0; k + 1 < terms.size(); k += 2) next.push_back(terms[k] + terms[k + 1]);
        if (terms.size() % 2) next.push_back(terms.back());
        terms = next;
    }
    return terms[0];
}

// The values added in a tree of halves: (v[i] + v[i + h]) for h = size / 2, size / 4, ...,
// 1 (size a power of two). Over the lanes of a vector kept in registers LLVM emits it as
// shuffles and vector adds (the backward's channel sums: a tree of Funcs of 8, 4, 2, 1
// lanes sent lanes one at a time through general registers instead). The forward's blocks
// keep a vectorized reduction (atomic().vectorize(rl)): as fast there, measured.
inline Halide::Expr halves_sum(std::vector<Halide::Expr> values) {
    for (size_t half = values.size() / 2; half >= 1; half /= 2) {
        for (size_t i = 0; i < half; i++) values[i] = values[i] + values[i + half];
        values.resize(half);
    }
    return values[0];
}

inline void RobustMoments::define_lane_total(int lanes, Halide::Func blk, Halide::Func lane,
                                             int value) {
    auto at = [&](Halide::Expr l) -> Halide::Expr {
        if (lane.outputs() > 1) return lane(l, b, r, n)[value];
        return lane(l, b, r, n);
    };
    if (lanes == 1) {
        blk(b, r, n) = at(0);
        return;
    }
    blk(b, r, n) = zero_of(type);
    blk(b, r, n) += at(rl);
}

inline void RobustMoments::define_blocks(Halide::Func x, Halide::Func pivot, Halide::Func v,
                                         Halide::Expr row_len, const BlockGeometry &geo) {
    using namespace Halide;
    const int L = geo.lanes, K = geo.steps, chunk = K * L;
    Expr row_chunks = row_len / chunk;  // whole chunks per row
    // A row shorter than a chunk has no blocks (Halide's x / 0 is 0), and bounds inference
    // sees no access beyond the row.
    Expr chunks_per_block = min(geo.block_values / chunk, row_chunks);
    // Block b covers chunks [b * chunks_per_block, ...); the last block is shifted inward to
    // end at the row's last whole chunk and its overlap with the previous block masked out (a
    // scalar condition, which loop partitioning takes out of the steady state).
    Expr chunk0 = b * chunks_per_block;
    Expr first = min(chunk0, row_chunks - chunks_per_block);         // the block's first chunk
    Expr overlap = max(chunk0 + chunks_per_block - row_chunks, 0);  // > 0 in the last block only
    Expr block_count = cast(type, (chunks_per_block - overlap) * chunk);
    Expr zero = zero_of(type);
    ri = RDom(0, chunks_per_block * K, "ri");
    rk = K == 1 ? ri : RDom(0, chunks_per_block, "rk");
    rl = RDom(0, L, "rl");

    lane_sum(l, b, r, n) = zero;
    lane_sum(l, b, r, n) += select(likely(ri >= overlap * K), v((first * K + ri) * L + l, r, n), zero);
    define_lane_total(L, blk_sum, lane_sum);

    // The anchor c = pivot + mean_b rounded, and e = (pivot + mean_b) - c exactly.
    TwoSum anchor_sum = two_sum(pivot(r, n), blk_sum(b, r, n) / block_count);
    blk_anchor(b, r, n) = Tuple(anchor_sum.sum, anchor_sum.err);
    Expr anchor = blk_anchor(b, r, n)[0], anchor_err = blk_anchor(b, r, n)[1];
    // lane(l, b, r, n) = {squares, sum} of x - a over lane l of the block's chunks.
    Expr in_block = likely(rk >= overlap);
    auto define_lane_moments = [&](Func lane, Expr a) {
        std::vector<Expr> dev2(K), devs(K);
        for (int k = 0; k < K; k++) {
            // x - a (strict: the algorithm's order).
            Expr dev = strict_float(x((first + rk) * chunk + k * L + l, r, n) - a);
            dev2[k] = dev * dev;
            devs[k] = dev;
        }
        // A chunk's K > 1 terms are added in the algorithm's order (strict_float): under
        // fast-math LLVM reassociates such sums with the accumulator (acc + ((x0 - p) +
        // (x1 - p)) became ((acc - 2p) + x0) + x1: 4e-4 errors at |mean| = 1e4). K = 1 keeps
        // its FMA.
        Expr chunk_m2 = pairwise_sum(dev2), chunk_dev = pairwise_sum(devs);
        if (K > 1) {
            chunk_m2 = strict_float(chunk_m2);
            chunk_dev = strict_float(chunk_dev);
        }
        lane(l, b, r, n) = Tuple(zero, zero);
        lane(l, b, r, n) = Tuple(lane(l, b, r, n)[0] + select(in_block, chunk_m2, zero),
                                 lane(l, b, r, n)[1] + select(in_block, chunk_dev, zero));
    };
    define_lane_moments(lane_m2, anchor);
    define_lane_total(L, blk_m2, lane_m2, 0);
    define_lane_total(L, blk_dev, lane_m2, 1);
    // About pivot + mean_b: sum (d - e)^2 = S2 - e (2 S1 - n e) (>= 0 exactly; rounding may
    // take a flat block just below) and sum (d - e) = S1 - n e.
    Expr s1 = blk_dev(b, r, n), s2 = blk_m2(b, r, n);
    Expr m2_b = max(s2 - anchor_err * (2 * s1 - block_count * anchor_err), zero);
    std::vector<Expr> two_pass = {blk_sum(b, r, n), m2_b, s1 - block_count * anchor_err};
    if (!geo.one_pass) {
        blk_stats(b, r, n) = Tuple(two_pass);
    } else {
        // a = the block's first value (of its first unmasked chunk).
        blk_first(b, r, n) = x(chunk0 * chunk, r, n);
        define_lane_moments(lane_shifted, blk_first(b, r, n));
        define_lane_total(L, blk_shifted_sq, lane_shifted, 0);
        define_lane_total(L, blk_shifted_sum, lane_shifted, 1);
        Expr t1 = blk_shifted_sum(b, r, n), t2 = blk_shifted_sq(b, r, n);
        // Relative to the pivot the block's sum is n (a - pivot) + S1, with a - pivot = shift
        // + e exactly (TwoSum: a is far from the pivot when it is an outlier). Its deviations
        // from sum / n are what the rounded sum and shift miss: n (shift - sum / n) + S1 + n e.
        TwoSum shift = two_sum(blk_first(b, r, n), -pivot(r, n));
        Expr sum_b = strict_float(block_count * shift.sum + t1);
        Expr squared_mean = strict_float(t1 * t1 / block_count);
        Expr deviations = strict_float(block_count * (shift.sum - sum_b / block_count) + t1 +
                                       block_count * shift.err);
        blk_stats(b, r, n) = Tuple(sum_b, strict_float(max(t2 - squared_mean, zero)), deviations,
                                   squared_mean);
        // A > 8: S1^2 / n > 7 M2_b (as computed: where A is large, M2_b's error is too). As
        // the bound of redo's loop (one iteration or none), so that the producers scheduled
        // inside it run only then (an RDom of one value would have no loop).
        Expr again = select(blk_stats(b, r, n)[3] > 7 * blk_stats(b, r, n)[1], 1, 0);
        redo = RDom(0, 2, "redo");
        redo.where(redo.x < again);
        // (redo's one value is 0: naming it makes redo this update's domain.)
        two_pass.push_back(blk_stats(b, r, n)[3] + cast(type, redo.x));
        blk_stats(b, r, n) = Tuple(two_pass);
    }

    // The row's last tail_len < K * L values, when K * L > 1: summed and centred the same way.
    if (chunk > 1) {
        Expr tail_len = row_len - row_chunks * chunk;
        RDom rt(0, geo.guarded_tail ? max(tail_len, 1) : tail_len, "rt");
        Expr at = row_chunks * chunk + rt;
        if (geo.guarded_tail) {
            // The guard is not used by bounds inference: the clamp keeps it inside the row.
            rt.where(rt < tail_len);
            at = min(at, row_len - 1);
        }
        Expr vt = v(at, r, n);
        tail_sum(r, n) = zero;
        tail_sum(r, n) += vt;
        Expr dt = strict_float(vt - tail_sum(r, n) / cast(type, tail_len));  // short: no anchor
        tail_m2(r, n) = Tuple(zero, zero);
        tail_m2(r, n) = Tuple(tail_m2(r, n)[0] + dt * dt, tail_m2(r, n)[1] + dt);
    }
}

inline void RobustMoments::define(Halide::Func x, Halide::Func pivot, Halide::Expr row_len,
                                  Halide::Expr rows_per_group, const BlockGeometry &geo) {
    using namespace Halide;
    Var i{"i"};
    Func v("row_centered");  // x - pivot: strict, fast-math must not reassociate it
    v(i, r, n) = strict_float(x(i, r, n) - pivot(r, n));
    define_blocks(x, pivot, v, row_len, geo);
    const int chunk = geo.lanes * geo.steps;
    Expr row_chunks = row_len / chunk;
    Expr chunks_per_block = min(geo.block_values / chunk, row_chunks);
    Expr blocks_per_row = (row_chunks + chunks_per_block - 1) / chunks_per_block;
    Expr tail_len = row_len - row_chunks * chunk;
    Expr group_count = cast(type, row_len) * cast(type, rows_per_group);

    rbd = RDom(0, blocks_per_row, 0, rows_per_group, "rbd");
    Expr rb = rbd.x, row = g * rows_per_group + rbd.y;
    grp_sum(g, n) = zero_of(type);
    grp_sum(g, n) += blk_stats(rb, row, n)[0];
    RDom rtr(0, rows_per_group, "rtr");  // the group's rows' tails
    rtr.where(tail_len > 0);
    if (chunk > 1) grp_sum(g, n) += tail_sum(g * rows_per_group + rtr, n);

    // Per block: its M2 about its mean plus Chan's term, and dev_b + n_b (mean_b - mean), the
    // part of the block's exact sum that group_mean misses.
    Expr group_mean = grp_sum(g, n) / group_count;
    Expr rb_count = cast(type, min(chunks_per_block, row_chunks - rb * chunks_per_block) * chunk);
    Expr rb_offset = blk_stats(rb, row, n)[0] / rb_count - group_mean;
    grp_m2(g, n) = Tuple(zero_of(type), zero_of(type));
    grp_m2(g, n) = Tuple(grp_m2(g, n)[0] + (blk_stats(rb, row, n)[1] + rb_count * rb_offset * rb_offset),
                         grp_m2(g, n)[1] + (blk_stats(rb, row, n)[2] + rb_count * rb_offset));
    if (chunk > 1) {
        Expr tail_row = g * rows_per_group + rtr;
        Expr tail_count = cast(type, tail_len);
        Expr rt_offset = tail_sum(tail_row, n) / tail_count - group_mean;
        grp_m2(g, n) = Tuple(grp_m2(g, n)[0] + (tail_m2(tail_row, n)[0] + tail_count * rt_offset * rt_offset),
                             grp_m2(g, n)[1] + (tail_m2(tail_row, n)[1] + tail_count * rt_offset));
    }
}

}  // namespace groupnorm_gen
