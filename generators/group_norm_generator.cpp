// GroupNorm forward: the algorithm, written once.
//
// Canonical view (runtime/src/canonicalise.cpp makes it from any (N, C, *) tensor):
//   x(s, c, n) with s the flattened spatial index, c the channel, n the sample.
// Groups: c = g * D + d with D = C / groups.
//
// Numerics (DESIGN.md section 1): statistics accumulate in float32 on values shifted by
// a pivot (the group's first element), so |mean| >> std does not cancel; the shift stays
// in the normalize step, y = (x - pivot) * a + b with b = beta - (mean - pivot) * a.
// Sums are cascaded by the schedules (vector lanes / spatial chunks, then channels).
//
// Which schedule runs is chosen from the target and the `layout` GeneratorParam; each
// schedule lives in its own file under schedules/.

#include "Halide.h"
#include "group_norm_stages.h"
#include "schedules/cpu_nchw.h"
#include "schedules/cpu_nhwc.h"

namespace groupnorm_gen {

using namespace Halide;

class GroupNormForward : public Generator<GroupNormForward> {
public:
    GeneratorParam<Layout> layout{"layout", Layout::NCHW,
                                  {{"nchw", Layout::NCHW}, {"nhwc", Layout::NHWC}}};

    // Types are set per variant by the build: x.type, y.type (same), gamma.type, beta.type.
    Input<Buffer<void, 3>> x{"x"};
    Input<Buffer<void, 1>> gamma{"gamma"};
    Input<Buffer<void, 1>> beta{"beta"};
    Input<int32_t> groups{"groups"};
    Input<float> eps{"eps"};

    Output<Buffer<void, 3>> y{"y"};
    Output<Buffer<float, 2>> mean{"mean"};  // (g, n)
    Output<Buffer<float, 2>> rstd{"rstd"};  // (g, n)

    void generate() {
        ForwardStages st;
        Var s = st.s, c = st.c, n = st.n, g = st.g;
        st.S = x.dim(0).extent();
        st.C = x.dim(1).extent();
        st.D = st.C / groups;
        Expr D = st.D;
        Expr M = cast<float>(st.S) * cast<float>(D);  // elements per (n, g)

        st.pivot(g, n) = cast<float>(x(0, g * D, n));
        st.chan_pivot(c, n) = st.pivot(c / D, n);
        st.centered(s, c, n) = cast<float>(x(s, c, n)) - st.chan_pivot(c, n);

        st.rs = RDom(0, st.S, "rs");
        Expr v = st.centered(st.rs, c, n);
        st.chan_sums(c, n) = Tuple(0.0f, 0.0f);
        st.chan_sums(c, n) = Tuple(st.chan_sums(c, n)[0] + v, st.chan_sums(c, n)[1] + v * v);

        st.rd = RDom(0, D, "rd");
        Tuple cs = st.chan_sums(g * D + st.rd, n);
        st.group_sums(g, n) = Tuple(0.0f, 0.0f);
        st.group_sums(g, n) = Tuple(st.group_sums(g, n)[0] + cs[0],
                                    st.group_sums(g, n)[1] + cs[1]);

        Expr shifted_mean = st.group_sums(g, n)[0] / M;
        // Centred second moment of shifted data. abs() folds rounding below 0 (only when
        // var ~ 0, so the error is the same as a clamp's) and, unlike max(v, 0), keeps a
        // NaN from Inf - Inf, so non-finite inputs reach their whole group as in PyTorch.
        Expr var = abs(st.group_sums(g, n)[1] / M - shifted_mean * shifted_mean);
        st.stats(g, n) = Tuple(shifted_mean, 1.0f / sqrt(var + eps));

        Expr a = st.stats(c / D, n)[1] * cast<float>(gamma(c));
        st.chan_affine(c, n) = Tuple(a, cast<float>(beta(c)) - st.stats(c / D, n)[0] * a);

        st.y(s, c, n) = cast(x.type(), st.centered(s, c, n) * st.chan_affine(c, n)[0] +
                                           st.chan_affine(c, n)[1]);
        st.mean(g, n) = st.pivot(g, n) + st.stats(g, n)[0];
        st.rstd(g, n) = st.stats(g, n)[1];

        y = st.y;
        mean = st.mean;
        rstd = st.rstd;

        add_requirement(groups > 0 && st.C % groups == 0,
                        "groups must be positive and divide the channel count");
        constrain_layout();
        schedule(st);
    }

private:
    void constrain_layout() {
        // Mins are 0 everywhere; the dense dimension depends on the layout.
        for (int i = 0; i < 3; i++) {
            x.dim(i).set_min(0);
            y.dim(i).set_min(0);
        }
        y.dim(0).set_extent(x.dim(0).extent());
        y.dim(1).set_extent(x.dim(1).extent());
        y.dim(2).set_extent(x.dim(2).extent());
        gamma.dim(0).set_min(0).set_extent(x.dim(1).extent()).set_stride(1);
        beta.dim(0).set_min(0).set_extent(x.dim(1).extent()).set_stride(1);
        for (auto *stat : {&mean, &rstd}) {
            (*stat).dim(0).set_min(0).set_stride(Expr());
            (*stat).dim(1).set_min(0);
        }
        if (layout == Layout::NHWC) {
            x.dim(0).set_stride(Expr());
            y.dim(0).set_stride(Expr());
            x.dim(1).set_stride(1);
            y.dim(1).set_stride(1);
        }
    }

    void schedule(ForwardStages &st) {
        const Target t = get_target();
        if (t.has_gpu_feature()) {
            throw CompileError("no GPU schedule is registered in this generator yet");
        }
        if (layout == Layout::NCHW) {
            schedule_cpu_nchw(st, t);
        } else {
            schedule_cpu_nhwc(st, t);
        }
    }
};

}  // namespace groupnorm_gen

HALIDE_REGISTER_GENERATOR(groupnorm_gen::GroupNormForward, group_norm_forward)
