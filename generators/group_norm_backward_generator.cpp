// GroupNorm backward: the algorithm, written once (docs/DESIGN.md). Given dy, x and the
// forward's mean and rstd per (n, g):
//
//   chan_sums(c, n) = {db, dsc, sx} = {sum_s dy, sum_s dy * (x - mean), sum_s (x - mean)}
//   grp_coef(g, n)  = {c2, c3}  = {-rstd^3 / M * sum_c gamma dsc,  -rstd / M * sum_c gamma db}
//   dx              = rstd * gamma * dy + c2 * (x - mean) + c3
//   dgamma(c)       = sum_n dsc(c, n) * rstd(g(c), n),   dbeta(c) = sum_n db(c, n)
//
// (every dsc re-centred on the group's true mean: see delta below).
//
// With a fused activation (gn_config.activation), dy is first replaced by dy * act'(z), z =
// (x - mean) rstd gamma + beta, the forward's pre-activation value: the rest is unchanged.
//
// These are PyTorch's native_group_norm_backward formulas with the sums taken about the mean
// (dsc = ds - db * mean): ds = sum dy * x would cancel catastrophically against db * mean when
// |mean| >> std. All in the compute type (float32; float64 for float64 x, generator_base.h),
// with no fused activation for float64; dgamma and dbeta reduce over n in a fixed order (no atomics):
// bit-identical whatever the thread count. dx may be dy itself (each group is read before it
// is written). A dx buffer of spatial extent 0 computes only dgamma and dbeta.

#include "Halide.h"
#include "activation.h"
#include "generator_base.h"
#include "group_table.h"
#include "backward_stages.h"
#include "robust_moments.h"
#include "schedules/backward_cpu.h"
#include "schedules/backward_gpu.h"
#include "tuning.h"

namespace groupnorm_gen {

using namespace Halide;

class GroupNormBackward : public GroupNormGenerator<GroupNormBackward> {
public:
    // Types set per variant by the build: dy.type = x.type = dx.type; gamma.type = dgamma.type
    // = dbeta.type (x's or float32); mean.type = rstd.type, the compute type.
    Input<Buffer<void, 3>> dy{"dy"};
    Input<Buffer<void, 3>> x{"x"};
    Input<Buffer<void, 2>> mean{"mean"};  // (g, n)
    Input<Buffer<void, 2>> rstd{"rstd"};  // (g, n)
    Input<Buffer<void, 1>> gamma{"gamma"};
    // The forward's beta: with an activation, z = (x - mean) rstd gamma + beta is recomputed
    // and dy becomes dy * act'(z) (activation.h) before everything below.
    Input<Buffer<void, 1>> beta{"beta"};
    Input<int32_t> groups{"groups"};
    Input<int32_t> activation{"activation"};  // the forward's (0: none)
    // 1: the nchw sums may prefetch dx's lines (tuning.h, dx_prefetch_*); 0: never. As the
    // forward's: chosen per CPU by the runtime (runtime/src/prefetch_policy.h).
    Input<int32_t> prefetch{"prefetch"};

    Output<Buffer<void, 3>> dx{"dx"};
    Output<Buffer<void, 1>> dgamma{"dgamma"};
    Output<Buffer<void, 1>> dbeta{"dbeta"};

    void generate() {
        _halide_user_assert(!using_autoscheduler())
            << "the backward has hand-written schedules only (autoscheduler= is for the forward)";
        const Tuning tune = resolved_tuning();
        const Type ct = compute_type();
        _halide_user_assert(mean.type() == ct && rstd.type() == ct)
            << "mean and rstd must have the compute type " << ct;
        const Expr zero = zero_of(ct);
        BackwardStages st;
        dx_name_ = st.dx.name();
        Var s = st.s, c = st.c, n = st.n, g = st.g;
        Expr S = x.dim(0).extent(), C = x.dim(1).extent(), N = x.dim(2).extent();
        st.D = C / groups;
        st.spatial = S;
        if (family() != Family::Gpu) {
            st.plain_dx = fused_activations() ? (activation == kActNone) : Internal::const_true();
        }
        Expr D = st.D;

        // strict_float: x - mean is the numerics (fast-math must not turn dy * (x - mean)
        // into dy * x - dy * mean).
        // The inputs' group values per channel through the table on CPUs (group_table.h).
        Expr gc = c / D;
        if (family() != Family::Gpu) {
            st.groups.emplace("chan_group", D, groups);
            gc = (*st.groups)(c);
        }
        st.chan_mean(c, n) = mean(gc, n);
        st.chan_scale(c, n) = rstd(gc, n) * cast(ct, gamma(c));
        st.centered(s, c, n) = strict_float(cast(ct, x(s, c, n)) - st.chan_mean(c, n));
        // The activation's prologue: dy through act'(z), z the forward's pre-activation value
        // (from the given mean and rstd): dy_act, a select over the activations that the CPU
        // schedules specialize where they compute it. Its consumers call it directly (not
        // through an inline Func) so that their plain branch (the specialization of dx for
        // none, below) does not realize it. float64: none compiled (fused_activations()).
        if (fused_activations()) {
                Expr z = st.centered(s, c, n) * st.chan_scale(c, n) + cast<float>(beta(c));
            Expr act_grad = select_activation(
                activation, [&](int a) { return activate_grad(a, z); });
            st.dy_act(s, c, n) = cast<float>(dy(s, c, n)) * act_grad;
        }
        auto dy_f = [&](Expr pos, Expr ch, Expr sample) {
            Expr plain = cast(ct, dy(pos, ch, sample));
            if (!fused_activations()) return plain;
            return select(activation == kActNone, plain, st.dy_act(pos, ch, sample));
        };

        // Channel sums: {dy, dy (x - mean), x - mean} over s, as a cascade whose every
        // chain of adds is short, so rounding errors cannot pile up when the terms share a
        // sign (a running sum over s was 1e-4 off at S = 2^18, and 2 ulp in dx at S = 432):
        //   chunk: K rows of L lanes (K > 1: nhwc CPU; added pairwise, strict_float, else
        //          LLVM folds them into the running sum); position row L + l, the chunk's
        //          K rows adjacent, or B rows apart in a full block (chunk_terms);
        //   block: B chunks per lane, a plain chain (block_sums; last_block, the partial one);
        //   lane:  the blocks added with Kahan's compensation (lane_sums);
        //   the L lanes added in a tree (halves of the vector).
        //   The last S % (K L) positions: nchw (L > 1, S >= L) one more chunk of the last
        //   block, the row's last L positions with the lanes already counted masked out;
        //   else added one at a time after the tree.
        // GPUs (K = L = 1): block b sums B positions b + j * blocks, interleaved so that the
        // threads of a warp read adjacent values; the blocks are then added by a thread tree.
        // dyv: dy at pos, unless the caller reads its act' product through another Func.
        auto terms = [&](Expr pos, Expr dyv = Expr()) {
            if (!dyv.defined()) dyv = dy_f(pos, c, n);
            Expr xcv = st.centered(pos, c, n);
            return std::vector<Expr>{dyv, dyv * xcv, xcv};
        };
        const int L = lanes(tune), K = steps(tune);  // L a power of two
        Expr prefetch_off;  // nchw CPUs: see chunk_terms
        if (family() == Family::Gpu) {
            // B ~ sqrt(S / threads): the in-block and per-thread chains about equally long.
            Expr B = max(1, cast<int>(ceil(sqrt(cast<float>(S) / tune.gpu_threads))));
            Expr blocks = (S + B - 1) / B;
            st.rj = RDom(0, B, "rj");
            Expr pos = st.b + st.rj * blocks;
            st.block_sums(st.b, c, n) = Tuple(zero, zero, zero);
            accumulate(st.block_sums, {st.b, c, n}, masked(terms(min(pos, S - 1)), pos < S));
            st.rs = RDom(0, blocks, "rs");
            st.chan_sums(c, n) = Tuple(zero, zero, zero);
            accumulate(st.chan_sums, {c, n}, tuple_values(st.block_sums(st.rs, c, n)));
        } else {
            const int B = chunks_per_block(tune);
            Expr chunks = S / (K * L), full_blocks = chunks / B;
            // Chunk j of a block starting at chunk first. A full block's K rows are B rows
            // apart (rows first K + k B + j), so each of the K row streams is long and
            // sequential for the hardware prefetcher: adjacent rows break every stream
            // after C values, and nhwc sums from DRAM ran 1.15-1.45x slower. The last,
            // partial block keeps adjacent rows (first + j) K + k: short rows that stay in
            // cache ran 5-10% faster so. A full block reads dy act'(z) through dy_act_rows,
            // whose k is a dimension of its own: a box over the K rows would span 3B + 1.
            if (K > 1 && fused_activations()) {
                st.dy_act_rows(st.k, s, c, n) = st.dy_act(s + st.k * B * L, c, n);
            }
            // nchw CPUs: each chunk of a full block also prefetches dx's line at its
            // position, on groups of dx_prefetch_min..dx_prefetch_max values when x has at
            // least dx_prefetch_total (tuning.h). dx, re-reading the group from cache, then
            // stores to lines already in cache instead of waiting for each line's read for
            // ownership while nothing else streams: 1.05-1.12x at 1 thread on tensors
            // larger than L3, with groups within L2. (A prefetch never faults: dx of
            // spatial extent 0 may be prefetched at any address.)
            if (layout == Layout::NCHW) {
                Expr M = st.D * S;
                prefetch_off = M < tune.dx_prefetch_min || M > tune.dx_prefetch_max ||
                               cast<int64_t>(S) * C * N < cast<int64_t>(tune.dx_prefetch_total) ||
                               prefetch == 0;
            }
            auto chunk_terms = [&](Expr first, Expr j, bool full_block) {
                std::vector<std::vector<Expr>> rows(3);
                for (int k = 0; k < K; k++) {
                    Expr row = full_block ? first * K + k * B + j : (first + j) * K + k;
                    Expr dyv;
                    if (full_block && st.dy_act_rows.defined()) {
                        Expr pos = (first * K + j) * L + st.l;
                        dyv = select(activation == kActNone, cast(ct, dy(row * L + st.l, c, n)),
                                     st.dy_act_rows(k, pos, c, n));
                    }
                    std::vector<Expr> t = terms(row * L + st.l, dyv);
                    if (prefetch_off.defined() && full_block) {
                        t[0] = t[0] + select(prefetch_off, zero, dx_prefetch(row * L + st.l, c, n));
                    }
                    for (int i = 0; i < 3; i++) rows[i].push_back(t[i]);
                }
                std::vector<Expr> sum;
                for (int i = 0; i < 3; i++) {
                    sum.push_back(K > 1 ? strict_float(pairwise_sum(rows[i])) : rows[i][0]);
                }
                return sum;
            };
            st.rj = RDom(0, B, "rj");
            st.block_sums(st.l, st.b, c, n) = Tuple(zero, zero, zero);
            accumulate(st.block_sums, {st.l, st.b, c, n}, chunk_terms(st.b * B, st.rj, true));
            st.rp = RDom(0, chunks - full_blocks * B, "rp");  // the last, partial block
            st.last_block(st.l, c, n) = Tuple(zero, zero, zero);
            accumulate(st.last_block, {st.l, c, n}, chunk_terms(full_blocks * B, st.rp, false));
            // The row's last S % L < L values (nchw: L > 1; when S >= L): one more chunk, the
            // row's last L positions, with the lanes already counted masked out. A loop of
            // one iteration or none; the promise keeps bounds inference from asking for
            // x(S - L) when S < L, where the loop is empty and the scalar loop below adds
            // the row.
            Expr tail = S - chunks * K * L;
            Expr vector_tail;
            if (L > 1) {
                vector_tail = S >= L && tail > 0;
                st.rv = RDom(0, select(vector_tail, 1, 0), "rv");
                Expr tail_pos = unsafe_promise_clamped(S - L + st.l + st.rv, 0, S - 1);
                accumulate(st.last_block, {st.l, c, n},
                           masked(terms(tail_pos), st.l >= L - tail));
            }
            // The partial block starts the Kahan sums (one block: no compensation step).
            st.rs = RDom(0, full_blocks, "rs");
            st.lane_sums(st.l, c, n) = Tuple(st.last_block(st.l, c, n)[0], st.last_block(st.l, c, n)[1],
                                             st.last_block(st.l, c, n)[2], zero, zero, zero);
            kahan_accumulate(st.lane_sums, {st.l, c, n},
                             tuple_values(st.block_sums(st.l, st.rs, c, n)));
            st.lane_total(st.l, c, n) = Tuple(kahan_values(st.lane_sums(st.l, c, n)));
            // The lanes added in a tree of halves (halves_sum; an in-order reduction of L
            // lanes is a chain of L dependent adds per sum).
            std::vector<Expr> lane_totals;
            for (int k = 0; k < 3; k++) {
                std::vector<Expr> lane_values;
                for (int i = 0; i < L; i++) lane_values.push_back(st.lane_total(i, c, n)[k]);
                lane_totals.push_back(halves_sum(lane_values));
            }
            st.chan_sums(c, n) = Tuple(lane_totals);
            RDom rt(0, tail, "rt");
            // (A where clause: an extent select(...) made bounds inference lose rt < tail.)
            if (vector_tail.defined()) rt.where(!vector_tail);
            accumulate(st.chan_sums, {c, n}, terms(chunks * K * L + rt));
        }

        // Per group: the gamma-weighted sums over its channels (a group may have thousands),
        // in a serial loop: float32 data in float64 on CPUs (a chain as fast as float32's);
        // with Kahan's compensation on GPUs (not every OpenCL device has float64) and for
        // float64 data (nothing wider is as fast).
        RDom rd(0, D, "rd");
        Expr cg = g * D + rd;
        Expr w = cast(ct, gamma(cg));
        std::vector<Expr> grp_terms = {w * st.chan_sums(cg, n)[0], w * st.chan_sums(cg, n)[1],
                                       st.chan_sums(cg, n)[2]};
        Func grp_acc("grp_acc"), grp_sums("grp_sums");
        if (family() == Family::Gpu || ct == Float(64)) {
            grp_acc(g, n) = Tuple(zero, zero, zero, zero, zero, zero);
            kahan_accumulate(grp_acc, {g, n}, grp_terms);
            grp_sums(g, n) = Tuple(kahan_values(grp_acc(g, n)));
        } else {
            grp_acc(g, n) = Tuple(Expr(0.0), Expr(0.0), Expr(0.0));
            for (Expr &t : grp_terms) t = cast<double>(t);
            accumulate(grp_acc, {g, n}, grp_terms);
            grp_sums(g, n) = Tuple(cast(ct, grp_acc(g, n)[0]), cast(ct, grp_acc(g, n)[1]),
                                   cast(ct, grp_acc(g, n)[2]));
        }
        // The given mean is rounded: up to half an ulp of |mean| away from the group's true
        // mean, which is 6e-4 std at |mean| = 1e4 std in float32. delta = true mean - given mean, from the
        // sums of x - mean, re-centres every sum (sum dy (x - mean_true) = dsc - delta * db).
        Expr r = rstd(g, n);
        Expr inv_m = 1.0f / (cast(ct, S) * cast(ct, D));
        Expr delta = grp_sums(g, n)[2] * inv_m;
        Expr c2 = -(r * r * r) * inv_m * (grp_sums(g, n)[1] - delta * grp_sums(g, n)[0]);
        Expr c3 = -r * inv_m * grp_sums(g, n)[0];
        st.grp_coef(g, n) = Tuple(c2, c3 - c2 * delta, delta);
        // dx reads c's mean from chan_coef too: a value per channel (a table lookup inside its
        // loop made nchw's vector tail scalar). grp_coef keeps c / D: read through the table,
        // its bounds would be every group, and nchw computes it per group.
        st.chan_coef(c, n) = Tuple(st.chan_scale(c, n), st.grp_coef(c / D, n)[0],
                                   st.grp_coef(c / D, n)[1], st.chan_mean(c, n));
        Expr dx_centered = strict_float(cast(ct, x(s, c, n)) - st.chan_coef(c, n)[3]);
        st.dx(s, c, n) = cast_out(x.type(), st.chan_coef(c, n)[0] * dy_f(s, c, n) +
                                            st.chan_coef(c, n)[1] * dx_centered +
                                            st.chan_coef(c, n)[2]);
        // The channel sums dgamma and dbeta need, re-centred and dgamma's scaled by the
        // group's rstd: {db, (dsc - delta * db) rstd} (scaled here, where the group is
        // known: in param_sums, vectorized over c, c / D was a division per lane).
        st.chan_sums_out(c, n) =
            Tuple(st.chan_sums(c, n)[0],
                  (st.chan_sums(c, n)[1] - st.grp_coef(c / D, n)[2] * st.chan_sums(c, n)[0]) *
                      rstd(gc, n));

        // dgamma, dbeta: over the samples in order.
        st.rn = RDom(0, N, "rn");
        Func param_sums("param_sums");
        param_sums(c) = Tuple(zero, zero);
        param_sums(c) = Tuple(param_sums(c)[0] + st.chan_sums_out(c, st.rn)[1],
                              param_sums(c)[1] + st.chan_sums_out(c, st.rn)[0]);
        st.dgamma(c) = cast(gamma.type(), param_sums(c)[0]);
        st.dbeta(c) = cast(gamma.type(), param_sums(c)[1]);

        dx = st.dx;
        dgamma = st.dgamma;
        dbeta = st.dbeta;

        add_requirement(groups > 0 && C % groups == 0,
                        "groups must be positive and divide the channel count");
        add_requirement(activation >= 0 && activation < kNumActivations,
                        "activation must be a gn_activation (0..4)");
        if (!fused_activations()) {
            add_requirement(activation == kActNone,
                            "float64 variants have no fused activation (activation must be 0)");
        }
        constrain(st);
        if (family() == Family::Gpu) {
            schedule_backward_gpu(st, layout, tune, param_sums, grp_acc);
        } else if (layout == Layout::NCHW) {
            schedule_backward_cpu_nchw(st, tune, vector(), param_sums, grp_acc);
        } else {
            schedule_backward_cpu_nhwc(st, tune, vector(), param_sums, grp_acc);
        }
        // A full block's chunk loop with and without dx's prefetches (after the schedule: a
        // specialization keeps the schedule its stage had; the condition in the form the
        // simplifier gives the select's, so that each copy folds it away).
        if (prefetch_off.defined()) st.block_sums.update().specialize(prefetch_off);
        // Plain GroupNorm's backward as without the prologue (act' = 1 folded away), and one
        // copy for the activations.
        if (fused_activations()) {
            specialize_plain(st.dx);
            if (family() == Family::Gpu) specialize_plain(st.chan_sums.in());
            // The CPU sites of dy_act (read only where an activation is: no case for none).
            for (Func f : st.act_sites) specialize_activations(f, activation, /*with_none=*/false);
        }
    }

private:
    std::string dx_name_;  // st.dx's name, which dx's output buffer takes

    // A field of the output dx's buffer ("" the host pointer, "stride.1", ...) as an Expr.
    // The sums are defined before dx, so dx has no output Parameter yet: this one bears the
    // name the output buffer will have (dx's Func's), which the lowering binds to the
    // output and leaves out of the arguments.
    Expr dx_field(const std::string &field, Type t = Int(32)) const {
        Parameter p(Handle(), false, 0, dx_name_);
        return Internal::Variable::make(t, field.empty() ? dx_name_ : dx_name_ + "." + field, p);
    }
    // Prefetches dx's cache line holding (pos, ch, sample); evaluates to 0.
    // (dx has x's type: the call typed float32 put half-precision dx's lines twice as far.)
    Expr dx_prefetch(Expr pos, Expr ch, Expr sample) const {
        return prefetch_element(dx_field("", Handle()), x.type(),
                                pos + ch * dx_field("stride.1") + sample * dx_field("stride.2"));
    }
    void specialize_plain(Func f) { f.specialize(activation == kActNone); }

    static std::vector<Expr> tuple_values(FuncRef ref, int count = 3) {
        std::vector<Expr> v;
        for (int k = 0; k < count; k++) v.push_back(ref[k]);
        return v;
    }
    static std::vector<Expr> masked(std::vector<Expr> values, Expr keep) {
        for (Expr &v : values) v = select(keep, v, zero_of(v.type()));
        return values;
    }
    // f(args) += add, elementwise over f's tuple.
    static void accumulate(Func f, std::vector<Expr> args, std::vector<Expr> add) {
        std::vector<Expr> sums;
        for (size_t k = 0; k < add.size(); k++) sums.push_back(f(args)[k] + add[k]);
        f(args) = Tuple(sums);
    }
    // Kahan summation: f's tuple is {sum_0.., compensation_0..}; strict_float keeps
    // (t - s) - y from being simplified to 0.
    static void kahan_accumulate(Func f, std::vector<Expr> args, std::vector<Expr> add) {
        const size_t m = add.size();
        std::vector<Expr> sums(m), comps(m);
        for (size_t k = 0; k < m; k++) {
            Expr sum = f(args)[k], comp = f(args)[m + k];
            Expr y = strict_float(add[k] - comp);
            Expr t = strict_float(sum + y);
            sums[k] = t;
            comps[k] = strict_float((t - sum) - y);
        }
        sums.insert(sums.end(), comps.begin(), comps.end());
        f(args) = Tuple(sums);
    }
    // The compensated totals of a Kahan tuple of 2m values.
    static std::vector<Expr> kahan_values(FuncRef ref, int m = 3) {
        std::vector<Expr> v;
        for (int k = 0; k < m; k++) v.push_back(strict_float(ref[k] - ref[m + k]));
        return v;
    }
    // Chunks per block of the CPU cascade: nchw lane_steps, nhwc block_rows / rows_per_step.
    int chunks_per_block(const Tuning &t) const {
        return layout == Layout::NCHW ? t.lane_steps : std::max(1, t.block_rows / t.rows_per_step);
    }
    // Lanes of the channel sums: a vector of accumulators on nchw CPUs, else 1.
    int lanes(const Tuning &t) const {
        return family() != Family::Gpu && layout == Layout::NCHW ? t.acc_vectors * vector() : 1;
    }
    // Rows added per accumulator update: nhwc CPUs (rows_per_step), else 1.
    int steps(const Tuning &t) const {
        return family() != Family::Gpu && layout == Layout::NHWC ? t.rows_per_step : 1;
    }

    void constrain(BackwardStages &st) {
        for (int i = 0; i < 3; i++) {
            dy.dim(i).set_min(0).set_extent(x.dim(i).extent());
            x.dim(i).set_min(0);
            dx.dim(i).set_min(0);
        }
        // dx: x's shape, or spatial extent 0 (only dgamma and dbeta wanted).
        dx.dim(1).set_extent(x.dim(1).extent());
        dx.dim(2).set_extent(x.dim(2).extent());
        add_requirement(dx.dim(0).extent() == x.dim(0).extent() || dx.dim(0).extent() == 0,
                        "dx must have x's shape");
        for (auto *p : {&gamma, &beta}) (*p).dim(0).set_min(0).set_extent(x.dim(1).extent()).set_stride(1);
        for (auto *p : {&dgamma, &dbeta}) (*p).dim(0).set_min(0).set_extent(x.dim(1).extent()).set_stride(1);
        for (auto *stat : {&mean, &rstd}) {
            (*stat).dim(0).set_min(0).set_stride(Expr());
            (*stat).dim(1).set_min(0);
        }
        if (layout == Layout::NHWC) {
            for (auto *t : {&dy, &x}) (*t).dim(0).set_stride(Expr()), (*t).dim(1).set_stride(1);
            dx.dim(0).set_stride(Expr());
            dx.dim(1).set_stride(1);
        }
        (void)st;
    }

};

}  // namespace groupnorm_gen

HALIDE_REGISTER_GENERATOR(groupnorm_gen::GroupNormBackward, group_norm_backward)
