// libFuzzer target over gn_forward (issue "Reliability"). The input chooses a problem:
// shape, groups, dtypes, memory orders with padding, in place or not, which of gamma,
// beta, mean and rstd are given, eps, the data (a base and scale and one byte per
// element), sometimes the residual prologue (gn_config.skip of x's shape or per (n, c),
// skip_bias, sum; the reference then normalizes the float32 sum the kernels form, and sum
// must be exactly that sum in x's dtype), and sometimes one hostile change (a NULL shape, an absurd rank, an output
// overlapping another tensor, strides that make y overlap itself). Checks:
//   - every buffer sits between canaries; canaries and the gaps of strided outputs never
//     change; a call that fails changes no byte at all;
//   - a call that succeeds matches the float64 reference within the numerics contract
//     (float32: 1e-5 (|ref| + 1); float16/bfloat16: 1 ulp or that bound; mean and rstd as
//     in tests/reference.cpp), computed from the same rounded inputs;
//   - hostile calls are refused with GN_STATUS_INVALID_ARGUMENT or UNSUPPORTED.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "groupnorm/groupnorm.h"
#include "fuzz_common.h"
#include "test_tensor.h"

using namespace gntest;

namespace {

using namespace gnfuzz;

[[noreturn]] void die(const char *what) {
    std::fprintf(stderr, "fuzz_forward: %s (%s)\n", what, gn_last_error_message());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Input in(data, size);
    const Geometry geo = pick_geometry(in);
    const int64_t N = geo.N, G = geo.G, C = geo.C, S = geo.S;
    const std::vector<int64_t> &shape = geo.shape;
    const DType dt = geo.dt, pt = geo.pt;
    const bool channels_last = geo.channels_last, in_place = geo.in_place;
    const bool has_gamma = in.pick(2), has_beta = in.pick(2), has_mean = in.pick(2),
               has_rstd = in.pick(2);
    const double eps_choices[] = {1e-5, 1e-3, 0.1, 1.0};
    const double eps = eps_choices[in.pick(4)];
    // Data: base + scale * (u - 128) / 128 per element (finite, within the contract's
    // |mean| <= 1e7 std for float32; modest for the 16-bit types).
    const double f32_bases[] = {0, 3, -1e3, 1e4, 3e5, -1e6}, half_bases[] = {0, 3, -40, 300};
    const double base = dt == DType::F32 ? f32_bases[in.pick(6)] : half_bases[in.pick(4)];
    const double scales[] = {1, 0.01, 7, 100};
    const double scale = scales[in.pick(dt == DType::F32 ? 4 : 3)];
    const int hostile = in.pick(8) == 0 ? 1 + in.pick(6) : 0;
    // The residual prologue: skip 0 none, 1 x's shape, 2 per (n, c); skip_bias; sum.
    const bool residual = in.pick(3) == 0;
    const int skip_kind = residual ? in.pick(3) : 0;
    const bool has_skip_bias = residual && in.pick(2), want_sum = residual && in.pick(2);

    Strided x, y;
    x.shape = y.shape = shape;
    x.layout(in, channels_last);
    y.layout(in, channels_last);
    const int eb = bytes(dt), pb = bytes(pt);
    Guarded xbuf(std::max<int64_t>(x.span, 1) * eb), ybuf(std::max<int64_t>(y.span, 1) * eb);
    Guarded gbuf(C * pb), bbuf(C * pb), mbuf(N * G * 4), rbuf(N * G * 4);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t c = 0; c < C; c++) {
            for (int64_t s = 0; s < S; s++) {
                const double u = (in.byte() - 128) / 128.0;
                store(dt, xbuf.data() + x.offset(n, c, s) * eb, base + scale * u);
            }
        }
    }
    for (int64_t c = 0; c < C; c++) {
        store(pt, gbuf.data() + c * pb, 1.0 + (in.byte() - 128) / 256.0);
        store(pt, bbuf.data() + c * pb, (in.byte() - 128) / 64.0);
    }
    if (in_place) y = x;

    // The residual's tensors: skip in its own memory order, sum in y's kind of order.
    Strided skip_t, sum_t;
    skip_t.shape = sum_t.shape = shape;
    skip_t.layout(in, channels_last);
    sum_t.layout(in, channels_last);
    Guarded kbuf(std::max<int64_t>(skip_t.span, 1) * eb), ncbuf(N * C * eb), sbbuf(C * pb),
        sumbuf(std::max<int64_t>(sum_t.span, 1) * eb);
    if (residual) {
        for (int64_t n = 0; n < N; n++) {
            for (int64_t c = 0; c < C; c++) {
                store(dt, ncbuf.data() + (n * C + c) * eb, (in.byte() - 128) / 16.0);
                for (int64_t s = 0; s < S && skip_kind == 1; s++) {
                    store(dt, kbuf.data() + skip_t.offset(n, c, s) * eb,
                          -0.5 * base + scale * (in.byte() - 128) / 128.0);
                }
            }
        }
        for (int64_t c = 0; c < C; c++) store(pt, sbbuf.data() + c * pb, (in.byte() - 128) / 32.0);
    }

    std::vector<int64_t> gshape{C}, mshape{N, G}, bshape{C}, rshape{N, G};
    DLTensor xd = make_dl(xbuf.data(), dt, x.shape, &x.strides);
    DLTensor yd = make_dl(in_place ? xbuf.data() : ybuf.data(), dt, y.shape, &y.strides);
    DLTensor gd = make_dl(gbuf.data(), pt, gshape, nullptr);
    DLTensor bd = make_dl(bbuf.data(), pt, bshape, nullptr);
    DLTensor md = make_dl(mbuf.data(), DType::F32, mshape, nullptr);
    DLTensor rd = make_dl(rbuf.data(), DType::F32, rshape, nullptr);
    DLTensor *tensors[] = {&xd, &yd, &gd, &bd, &md, &rd};
    std::vector<int64_t> bad_strides(y.strides);
    const bool nonempty = N > 0 && S > 0;
    int target = -1;  // the tensor hostile changes 1 and 2 break
    switch (hostile) {
    case 1:
        target = in.pick(6);
        tensors[target]->shape = nullptr;
        break;
    case 2:
        target = in.pick(6);
        tensors[target]->ndim = in.pick(2) ? -1 : 33 + in.pick(100);
        break;
    case 3:  // mean or rstd over y, x or the other statistic
        md.data = in.pick(2) ? yd.data : xd.data;
        break;
    case 4: gd.data = yd.data; break;  // gamma aliasing y
    case 5:  // y's channels overlap one another
        if (!channels_last && S > 1 && C > 1) bad_strides[1] = 1 + in.pick((int)S - 1);
        else bad_strides[0] = 0;
        yd.strides = bad_strides.data();
        break;
    case 6: rd.data = md.data; break;
    }
    // The requested optional tensors (hostile changes to absent ones change nothing).
    DLTensor *gp = has_gamma ? &gd : nullptr, *bp = has_beta ? &bd : nullptr;
    DLTensor *mp = has_mean || hostile == 3 || hostile == 6 ? &md : nullptr;
    DLTensor *rp = has_rstd || hostile == 6 ? &rd : nullptr;
    const DLTensor *passed[] = {&xd, &yd, gp, bp, mp, rp};
    const bool y_self_overlaps = (!channels_last && S > 1 && C > 1) || N > 1;
    const bool hostile_applies = (hostile == 1 || hostile == 2) ? passed[target] != nullptr
                                 : hostile == 4                 ? gp != nullptr
                                 : hostile == 5                 ? y_self_overlaps
                                                                : hostile != 0;

    std::vector<int64_t> ncshape{N, C}, sbshape{C};
    DLTensor kd = make_dl(kbuf.data(), dt, skip_t.shape, &skip_t.strides);
    DLTensor ncd = make_dl(ncbuf.data(), dt, ncshape, nullptr);
    DLTensor sbd = make_dl(sbbuf.data(), pt, sbshape, nullptr);
    DLTensor sumd = make_dl(sumbuf.data(), dt, sum_t.shape, &sum_t.strides);
    gn_config config = GN_CONFIG_INIT;
    config.skip = skip_kind == 1 ? &kd : skip_kind == 2 ? &ncd : nullptr;
    // skip_bias must have the parameters' dtype: gamma's or beta's when given.
    config.skip_bias = has_skip_bias ? &sbd : nullptr;
    config.sum = want_sum ? &sumd : nullptr;
    // With a sum, y may not be x: the call must be refused.
    const bool must_fail = want_sum && in_place && nonempty;

    const std::vector<uint8_t> x_before = xbuf.bytes, y_before = ybuf.bytes, g_before = gbuf.bytes,
                               b_before = bbuf.bytes, m_before = mbuf.bytes, r_before = rbuf.bytes,
                               k_before = kbuf.bytes, nc_before = ncbuf.bytes,
                               sb_before = sbbuf.bytes, sum_before = sumbuf.bytes;
    const gn_status st = gn_forward(&xd, gp, bp, G, eps, &yd, mp, rp, &config);

    for (Guarded *g : {&xbuf, &ybuf, &gbuf, &bbuf, &mbuf, &rbuf, &kbuf, &ncbuf, &sbbuf, &sumbuf}) {
        if (!g->canaries_intact()) die("a canary changed");
    }
    if (gbuf.bytes != g_before || bbuf.bytes != b_before) die("gamma or beta changed");
    if (kbuf.bytes != k_before || ncbuf.bytes != nc_before || sbbuf.bytes != sb_before) {
        die("skip, skip(n,c) or skip_bias changed");
    }
    if (st != GN_STATUS_SUCCESS) {
        if (st != GN_STATUS_INVALID_ARGUMENT && st != GN_STATUS_UNSUPPORTED) die("unexpected status");
        if (gn_last_error_message()[0] == '\0') die("a failure without a message");
        if (xbuf.bytes != x_before || ybuf.bytes != y_before || mbuf.bytes != m_before ||
            rbuf.bytes != r_before || sumbuf.bytes != sum_before) {
            die("a failed call wrote something");
        }
        return 0;
    }
    if (hostile_applies && hostile >= 3 && nonempty) die("a hostile call succeeded");
    if (must_fail) die("a residual call with y = x and a sum succeeded");
    if (!nonempty) {
        if (xbuf.bytes != x_before || ybuf.bytes != y_before || mbuf.bytes != m_before ||
            rbuf.bytes != r_before || sumbuf.bytes != sum_before) {
            die("an empty call wrote something");
        }
        return 0;
    }
    if (hostile_applies && (hostile == 1 || hostile == 2)) die("a call with a bad tensor succeeded");
    if (!in_place && xbuf.bytes != x_before) die("x changed");

    // The float64 reference from the rounded inputs as they were before the call.
    Guarded *ys = in_place ? &xbuf : &ybuf;
    const std::vector<uint8_t> &xs = x_before;
    const int64_t D = C / G, M = D * S;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t g = 0; g < G; g++) {
            double sum = 0, sq = 0;
            // What the kernels normalize: x, or the float32 sum (x + skip) + (skip(n,c) +
            // skip_bias) (each operand exact in float64, so its float rounding is float32's).
            // An (N, C) skip of a rank-2 x has x's shape: it is x's full skip then.
            const bool nc_is_full = skip_kind == 2 && shape.size() == 2;
            auto xv = [&](int64_t c, int64_t s) {
                const double xval = load(dt, xs.data() + kCanary + x.offset(n, c, s) * eb);
                if (!residual) return xval;
                const double ncval = skip_kind == 2 ? load(dt, ncbuf.data() + (n * C + c) * eb) : 0.0;
                const double k = skip_kind == 1 ? load(dt, kbuf.data() + skip_t.offset(n, c, s) * eb)
                                 : nc_is_full  ? ncval
                                               : 0.0;
                const double nc = nc_is_full ? 0.0 : ncval;
                const double sb = has_skip_bias ? load(pt, sbbuf.data() + c * pb) : 0.0;
                return (double)((float)((double)(float)(xval + k) + (double)(float)(nc + sb)));
            };
            if (want_sum) {
                for (int64_t c = g * D; c < (g + 1) * D; c++) {
                    for (int64_t s = 0; s < S; s++) {
                        const double got = load(dt, sumbuf.data() + sum_t.offset(n, c, s) * eb);
                        if (!(got == round_to(dt, xv(c, s)))) {
                            std::fprintf(stderr, "sum[%lld, %lld, %lld] = %.9g, want %.9g\n",
                                         (long long)n, (long long)c, (long long)s, got,
                                         round_to(dt, xv(c, s)));
                            die("sum is not the float32 sum in x's dtype");
                        }
                    }
                }
            }
            for (int64_t c = g * D; c < (g + 1) * D; c++)
                for (int64_t s = 0; s < S; s++) sum += xv(c, s);
            const double mean = sum / M;
            for (int64_t c = g * D; c < (g + 1) * D; c++)
                for (int64_t s = 0; s < S; s++) sq += (xv(c, s) - mean) * (xv(c, s) - mean);
            const double var = sq / M, rstd = 1 / std::sqrt(var + eps);
            // The contract covers |mean| <= 1e7 std (a constant group too: y = beta).
            if (var > 0 && std::fabs(mean) > 1e7 * std::sqrt(var)) continue;
            if (mp) {
                float got;
                std::memcpy(&got, mbuf.data() + (n * G + g) * 4, 4);
                if (!(std::fabs(got - mean) <= 1e-5 * std::sqrt(var) + 1.2e-7 * std::fabs(mean)))
                    die("mean outside the contract");
            }
            if (rp) {
                float got;
                std::memcpy(&got, rbuf.data() + (n * G + g) * 4, 4);
                if (!(std::fabs(got - rstd) <= 1e-5 * rstd)) die("rstd outside the contract");
            }
            for (int64_t c = g * D; c < (g + 1) * D; c++) {
                const double w = gp ? load(pt, gbuf.data() + c * pb) : 1.0;
                const double b = bp ? load(pt, bbuf.data() + c * pb) : 0.0;
                for (int64_t s = 0; s < S; s++) {
                    const double want = (xv(c, s) - mean) * rstd * w + b;
                    const double got = load(dt, ys->data() + y.offset(n, c, s) * eb);
                    const bool ok = std::fabs(got - want) <= 1e-5 * (std::fabs(want) + 1) ||
                                    (dt != DType::F32 && ulp_distance(dt, got, round_to(dt, want)) <= 1);
                    if (!ok) {
                        std::fprintf(stderr, "y[%lld, %lld, %lld] = %.9g, reference %.9g\n",
                                     (long long)n, (long long)c, (long long)s, got, want);
                        die("y outside the contract");
                    }
                }
            }
        }
    }
    // y's gaps (padding between its elements) keep their poison.
    if (!in_place) {
        std::vector<bool> in_view(y.span, false);
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t s = 0; s < S; s++) in_view[y.offset(n, c, s)] = true;
        for (int64_t i = 0; i < y.span; i++) {
            if (in_view[i]) continue;
            for (int k = 0; k < eb; k++) {
                if (ybuf.data()[i * eb + k] != kPoisonByte) die("a gap of y was written");
            }
        }
    }
    if (!mp && mbuf.bytes != m_before) die("mean written although not given");
    if (!want_sum && sumbuf.bytes != sum_before) die("sum written although not given");
    if (want_sum) {  // sum's gaps keep their poison
        std::vector<bool> in_view(sum_t.span, false);
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t s = 0; s < S; s++) in_view[sum_t.offset(n, c, s)] = true;
        for (int64_t i = 0; i < sum_t.span; i++) {
            for (int k = 0; k < eb && !in_view[i]; k++) {
                if (sumbuf.data()[i * eb + k] != kPoisonByte) die("a gap of sum was written");
            }
        }
    }
    return 0;
}
