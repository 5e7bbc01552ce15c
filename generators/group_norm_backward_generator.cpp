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
// These are PyTorch's native_group_norm_backward formulas with the sums taken about the mean
// (dsc = ds - db * mean): ds = sum dy * x would cancel catastrophically against db * mean when
// |mean| >> std. All float32; dgamma and dbeta reduce over n in a fixed order (no atomics):
// bit-identical whatever the thread count. dx may be dy itself (each group is read before it
// is written). A dx buffer of spatial extent 0 computes only dgamma and dbeta.

#include "Halide.h"
#include "generator_base.h"
#include "backward_stages.h"
#include "schedules/backward_cpu.h"
#include "schedules/backward_gpu.h"
#include "tuning.h"

namespace groupnorm_gen {

using namespace Halide;

class GroupNormBackward : public GroupNormGenerator<GroupNormBackward> {
public:
    // Types set per variant by the build: dy.type = x.type = dx.type; gamma.type = dgamma.type
    // = dbeta.type (x's or float32).
    Input<Buffer<void, 3>> dy{"dy"};
    Input<Buffer<void, 3>> x{"x"};
    Input<Buffer<float, 2>> mean{"mean"};  // (g, n)
    Input<Buffer<float, 2>> rstd{"rstd"};  // (g, n)
    Input<Buffer<void, 1>> gamma{"gamma"};
    Input<int32_t> groups{"groups"};

    Output<Buffer<void, 3>> dx{"dx"};
    Output<Buffer<void, 1>> dgamma{"dgamma"};
    Output<Buffer<void, 1>> dbeta{"dbeta"};

    void generate() {
        const Tuning tune = resolved_tuning();
        BackwardStages st;
        Var s = st.s, c = st.c, n = st.n, g = st.g;
        Expr S = x.dim(0).extent(), C = x.dim(1).extent(), N = x.dim(2).extent();
        st.D = C / groups;
        Expr D = st.D;

        // strict_float: x - mean is the numerics (fast-math must not turn dy * (x - mean)
        // into dy * x - dy * mean).
        st.chan_mean(c, n) = mean(c / D, n);
        st.centered(s, c, n) = strict_float(cast<float>(x(s, c, n)) - st.chan_mean(c, n));
        st.dy_f(s, c, n) = cast<float>(dy(s, c, n));

        // Channel sums: {dy, dy (x - mean), x - mean} over s, in whole chunks of K steps of L
        // lanes (as the forward's blocks): lane l of a chunk's step k is position
        // (chunk K + k) L + l. L > 1 (nchw CPU): a vector of accumulators, the lanes added in
        // a tree at the end. K > 1 (nhwc CPU, where the accumulators of a vector of channels
        // live in memory): K rows added before they reach an accumulator. Then the last
        // S % (K L) positions. K = L = 1 (GPU): one sum over s.
        auto terms = [&](Expr pos) {
            Expr dyv = st.dy_f(pos, c, n), xcv = st.centered(pos, c, n);
            return std::vector<Expr>{dyv, dyv * xcv, xcv};
        };
        auto accumulate = [](Func f, std::vector<Expr> args, std::vector<Expr> add) {
            std::vector<Expr> sums;
            for (size_t k = 0; k < add.size(); k++) sums.push_back(f(args)[k] + add[k]);
            f(args) = Tuple(sums);
        };
        const int L = lanes(tune), K = steps(tune);  // L a power of two
        st.chan_sums(c, n) = Tuple(0.0f, 0.0f, 0.0f);
        if (L * K == 1) {
            st.rs = RDom(0, S, "rs");
            accumulate(st.chan_sums, {c, n}, terms(st.rs));
        } else {
            Expr chunks = S / (K * L);
            st.rs = RDom(0, chunks, "rs");
            std::vector<Expr> chunk_terms = terms(st.rs * K * L + st.l);
            for (int k = 1; k < K; k++) {
                std::vector<Expr> more = terms((st.rs * K + k) * L + st.l);
                for (int t = 0; t < 3; t++) chunk_terms[t] += more[t];
            }
            st.lane_sums(st.l, c, n) = Tuple(0.0f, 0.0f, 0.0f);
            accumulate(st.lane_sums, {st.l, c, n}, chunk_terms);
            // The lanes added in a tree (halves of the vector at a time): an in-order
            // reduction of L lanes is a chain of L dependent adds per sum.
            Func level = st.lane_sums;
            for (int width = L / 2; width >= 1; width /= 2) {
                Func half("lane_tree_" + std::to_string(width));
                std::vector<Expr> pairs;
                for (int k = 0; k < 3; k++) {
                    pairs.push_back(level(st.l, c, n)[k] + level(st.l + width, c, n)[k]);
                }
                half(st.l, c, n) = Tuple(pairs);
                st.lane_tree.push_back(half);
                level = half;
            }
            std::vector<Expr> total;
            for (int k = 0; k < 3; k++) total.push_back(level(0, c, n)[k]);
            accumulate(st.chan_sums, {c, n}, total);
            RDom rt(0, S - chunks * K * L, "rt");
            accumulate(st.chan_sums, {c, n}, terms(chunks * K * L + rt));
        }

        // Per group: the gamma-weighted sums over its channels, in a short serial loop.
        RDom rd(0, D, "rd");
        Expr cg = g * D + rd;
        Expr w = cast<float>(gamma(cg));
        Func grp_sums("grp_sums");
        grp_sums(g, n) = Tuple(0.0f, 0.0f, 0.0f);
        grp_sums(g, n) = Tuple(grp_sums(g, n)[0] + w * st.chan_sums(cg, n)[0],
                               grp_sums(g, n)[1] + w * st.chan_sums(cg, n)[1],
                               grp_sums(g, n)[2] + st.chan_sums(cg, n)[2]);
        // The given mean is float32: up to half an ulp of |mean| away from the group's true
        // mean, which is 6e-4 std at |mean| = 1e4 std. delta = true mean - given mean, from the
        // sums of x - mean, re-centres every sum (sum dy (x - mean_true) = dsc - delta * db).
        Expr r = rstd(g, n);
        Expr inv_m = 1.0f / (cast<float>(S) * cast<float>(D));
        Expr delta = grp_sums(g, n)[2] * inv_m;
        Expr c2 = -(r * r * r) * inv_m * (grp_sums(g, n)[1] - delta * grp_sums(g, n)[0]);
        Expr c3 = -r * inv_m * grp_sums(g, n)[0];
        st.grp_coef(g, n) = Tuple(c2, c3 - c2 * delta, delta);
        st.chan_coef(c, n) = Tuple(rstd(c / D, n) * cast<float>(gamma(c)),
                                   st.grp_coef(c / D, n)[0], st.grp_coef(c / D, n)[1]);
        st.dx(s, c, n) = cast(x.type(), st.chan_coef(c, n)[0] * st.dy_f(s, c, n) +
                                            st.chan_coef(c, n)[1] * st.centered(s, c, n) +
                                            st.chan_coef(c, n)[2]);
        // The channel sums dgamma and dbeta need, re-centred: {db, dsc - delta * db}.
        st.chan_sums_out(c, n) =
            Tuple(st.chan_sums(c, n)[0],
                  st.chan_sums(c, n)[1] - st.grp_coef(c / D, n)[2] * st.chan_sums(c, n)[0]);

        // dgamma, dbeta: over the samples in order.
        st.rn = RDom(0, N, "rn");
        Func param_sums("param_sums");
        param_sums(c) = Tuple(0.0f, 0.0f);
        param_sums(c) = Tuple(param_sums(c)[0] + st.chan_sums_out(c, st.rn)[1] * rstd(c / D, st.rn),
                              param_sums(c)[1] + st.chan_sums_out(c, st.rn)[0]);
        st.dgamma(c) = cast(gamma.type(), param_sums(c)[0]);
        st.dbeta(c) = cast(gamma.type(), param_sums(c)[1]);

        dx = st.dx;
        dgamma = st.dgamma;
        dbeta = st.dbeta;

        add_requirement(groups > 0 && C % groups == 0,
                        "groups must be positive and divide the channel count");
        constrain(st);
        if (family() == Family::Gpu) {
            schedule_backward_gpu(st, layout, tune, param_sums, grp_sums);
        } else if (layout == Layout::NCHW) {
            schedule_backward_cpu_nchw(st, tune, vector(), param_sums, grp_sums);
        } else {
            schedule_backward_cpu_nhwc(st, tune, vector(), param_sums, grp_sums);
        }
    }

private:
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
        for (auto *p : {&gamma}) (*p).dim(0).set_min(0).set_extent(x.dim(1).extent()).set_stride(1);
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
