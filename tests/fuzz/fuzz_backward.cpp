// libFuzzer target over gn_backward. The input chooses a problem (shape, groups, dtypes,
// padded NC* or N*C layouts, in place on dy or not, which of gamma, dx, dgamma, dbeta are
// given, the data) and sometimes one hostile change (a NULL shape, an absurd rank, an output
// over an input or another output). mean and rstd come from gn_forward. Checks:
//   - canaries around every buffer never change; inputs never change (dy only when dx is
//     dy); a call that fails changes no byte; gaps of a strided dx keep their poison;
//   - a call that succeeds matches the float64 gradients within the contract
//     (tests/reference.h: dx within 1e-5 (|ref| + rms of rstd gamma dy over the group),
//     dgamma/dbeta within 1e-5 (|ref| + the absolute sums); 16-bit types: 1 ulp or that);
//   - hostile calls are refused with GN_STATUS_INVALID_ARGUMENT or UNSUPPORTED.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "fuzz_common.h"
#include "groupnorm/groupnorm.h"

using namespace gnfuzz;

namespace {

[[noreturn]] void die(const char *what) {
    std::fprintf(stderr, "fuzz_backward: %s (%s)\n", what, gn_last_error_message());
    std::abort();
}

bool within(DType t, double got, double want, double bound) {
    if (std::fabs(got - want) <= bound) return true;
    return t != DType::F32 && ulp_distance(t, got, round_to(t, want)) <= 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Input in(data, size);
    const Geometry geo = pick_geometry(in);
    const int64_t N = geo.N, G = geo.G, C = geo.C, S = geo.S;
    const std::vector<int64_t> &shape = geo.shape;
    const DType dt = geo.dt, pt = geo.pt;
    const bool channels_last = geo.channels_last, in_place = geo.in_place;
    const bool has_gamma = in.pick(2), has_dx = in.pick(4) != 0, has_dgamma = in.pick(2),
               has_dbeta = in.pick(2);
    // |mean| up to 1e4 std for float32 (the backward's tested range), modest for 16 bits.
    const double f32_bases[] = {0, 3, -1e3, 1e4}, half_bases[] = {0, 3, -40, 300};
    const double base = dt == DType::F32 ? f32_bases[in.pick(4)] : half_bases[in.pick(4)];
    const double scales[] = {1, 7, 100};
    const double scale = scales[in.pick(3)];
    const int hostile = in.pick(8) == 0 ? 1 + in.pick(5) : 0;

    Strided x, dy, dx;
    x.shape = dy.shape = dx.shape = shape;
    x.layout(in, channels_last);
    dy.layout(in, channels_last);
    dx.layout(in, channels_last);
    const int eb = bytes(dt), pb = bytes(pt);
    Guarded xbuf(std::max<int64_t>(x.span, 1) * eb), dybuf(std::max<int64_t>(dy.span, 1) * eb),
        dxbuf(std::max<int64_t>(dx.span, 1) * eb);
    Guarded gbuf(C * pb), dgbuf(C * pb), dbbuf(C * pb), mbuf(N * G * 4), rbuf(N * G * 4);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t s = 0; s < S; s++) {
                store(dt, xbuf.data() + x.offset(n, c, s) * eb, base + scale * (in.byte() - 128) / 128.0);
                store(dt, dybuf.data() + dy.offset(n, c, s) * eb, (in.byte() - 128) / 64.0);
            }
    for (int64_t c = 0; c < C; c++) store(pt, gbuf.data() + c * pb, 1.0 + (in.byte() - 128) / 256.0);
    if (in_place) dx = dy;

    std::vector<int64_t> cshape{C}, sshape{N, G};
    DLTensor xd = make_dl(xbuf.data(), dt, x.shape, &x.strides);
    DLTensor dyd = make_dl(dybuf.data(), dt, dy.shape, &dy.strides);
    DLTensor dxd = make_dl(in_place ? dybuf.data() : dxbuf.data(), dt, dx.shape, &dx.strides);
    DLTensor gd = make_dl(gbuf.data(), pt, cshape, nullptr);
    DLTensor dgd = make_dl(dgbuf.data(), pt, cshape, nullptr);
    DLTensor dbd = make_dl(dbbuf.data(), pt, cshape, nullptr);
    DLTensor md = make_dl(mbuf.data(), DType::F32, sshape, nullptr);
    DLTensor rd = make_dl(rbuf.data(), DType::F32, sshape, nullptr);
    // mean and rstd of x (a y scratch of x's layout).
    {
        Guarded ybuf(std::max<int64_t>(x.span, 1) * eb);
        DLTensor yd = make_dl(ybuf.data(), dt, x.shape, &x.strides);
        if (gn_forward(&xd, has_gamma ? &gd : nullptr, nullptr, G, 1e-5, &yd, &md, &rd, nullptr)) {
            return 0;  // e.g. a layout the forward does not serve: nothing to differentiate
        }
    }
    DLTensor *gp = has_gamma ? &gd : nullptr, *dxp = has_dx || in_place ? &dxd : nullptr;
    DLTensor *dgp = has_dgamma ? &dgd : nullptr, *dbp = has_dbeta ? &dbd : nullptr;
    DLTensor *tensors[] = {&dyd, &xd, &md, &rd, &dxd};
    int target = -1;
    switch (hostile) {
    case 1: target = in.pick(5); tensors[target]->shape = nullptr; break;
    case 2: target = in.pick(5); tensors[target]->ndim = in.pick(2) ? -1 : 33 + in.pick(100); break;
    case 3: dxd.data = xd.data, dxp = &dxd; break;                      // dx over x
    case 4: dgd.data = gd.data, dgp = &dgd, gp = &gd; break;            // dgamma over gamma
    case 5: dbd.data = dgd.data, dgp = &dgd, dbp = &dbd; break;         // dbeta over dgamma
    }
    // dx over x is only seen on a non-empty problem (an empty one reads and writes no x).
    const bool hostile_applies = (hostile == 1 || hostile == 2) ? (target < 4 || dxp != nullptr)
                                 : hostile == 3                 ? S > 0
                                                                : hostile >= 4;

    const std::vector<uint8_t> x_before = xbuf.bytes, dy_before = dybuf.bytes,
                               dx_before = dxbuf.bytes, g_before = gbuf.bytes,
                               dg_before = dgbuf.bytes, db_before = dbbuf.bytes,
                               m_before = mbuf.bytes, r_before = rbuf.bytes;
    const gn_status st = gn_backward(&dyd, &xd, &md, &rd, gp, G, dxp, dgp, dbp, nullptr);

    for (Guarded *g : {&xbuf, &dybuf, &dxbuf, &gbuf, &dgbuf, &dbbuf, &mbuf, &rbuf}) {
        if (!g->canaries_intact()) die("a canary changed");
    }
    if (mbuf.bytes != m_before || rbuf.bytes != r_before || gbuf.bytes != g_before) {
        die("an input changed");
    }
    if (st != GN_STATUS_SUCCESS) {
        if (st != GN_STATUS_INVALID_ARGUMENT && st != GN_STATUS_UNSUPPORTED) die("unexpected status");
        if (gn_last_error_message()[0] == '\0') die("a failure without a message");
        if (xbuf.bytes != x_before || dybuf.bytes != dy_before || dxbuf.bytes != dx_before ||
            dgbuf.bytes != dg_before || dbbuf.bytes != db_before) {
            die("a failed call wrote something");
        }
        return 0;
    }
    if (hostile_applies) die("a hostile call succeeded");
    if (xbuf.bytes != x_before) die("x changed");
    if (!in_place && dybuf.bytes != dy_before) die("dy changed");
    if (!dxp && dxbuf.bytes != dx_before) die("dx written although not given");

    // The float64 gradients from the rounded inputs as they were before the call.
    const int64_t D = C / G;
    const double M = double(D * S);
    std::vector<double> dgamma(C, 0), dbeta(C, 0), dgamma_abs(C, 0), dbeta_abs(C, 0);
    auto xv = [&](int64_t n, int64_t c, int64_t s) {
        return load(dt, x_before.data() + kCanary + x.offset(n, c, s) * eb);
    };
    auto dyv = [&](int64_t n, int64_t c, int64_t s) {
        return load(dt, dy_before.data() + kCanary + dy.offset(n, c, s) * eb);
    };
    for (int64_t n = 0; n < N; n++) {
        for (int64_t g = 0; g < G; g++) {
            double sum = 0, sq = 0;
            for (int64_t c = g * D; c < (g + 1) * D; c++)
                for (int64_t s = 0; s < S; s++) sum += xv(n, c, s);
            const double mean = sum / M;
            for (int64_t c = g * D; c < (g + 1) * D; c++)
                for (int64_t s = 0; s < S; s++) sq += (xv(n, c, s) - mean) * (xv(n, c, s) - mean);
            const double rstd = 1 / std::sqrt(sq / M + 1e-5);
            double sum_gdy = 0, sum_gdy_xhat = 0, scale2 = 0;
            for (int64_t c = g * D; c < (g + 1) * D; c++) {
                const double w = gp ? load(pt, gbuf.data() + c * pb) : 1.0;
                for (int64_t s = 0; s < S; s++) {
                    const double d = dyv(n, c, s), xhat = (xv(n, c, s) - mean) * rstd;
                    sum_gdy += w * d;
                    sum_gdy_xhat += w * d * xhat;
                    scale2 += (rstd * w * d) * (rstd * w * d);
                    dgamma[c] += d * xhat, dbeta[c] += d;
                    dgamma_abs[c] += std::fabs(d) * (std::fabs(xhat) + 1), dbeta_abs[c] += std::fabs(d);
                }
            }
            if (!dxp) continue;
            const double group_scale = std::sqrt(scale2 / M);
            for (int64_t c = g * D; c < (g + 1) * D; c++) {
                const double w = gp ? load(pt, gbuf.data() + c * pb) : 1.0;
                for (int64_t s = 0; s < S; s++) {
                    const double xhat = (xv(n, c, s) - mean) * rstd;
                    const double want = rstd * (w * dyv(n, c, s) - sum_gdy / M - xhat * sum_gdy_xhat / M);
                    const uint8_t *out = (in_place ? dybuf.data() : dxbuf.data()) + dx.offset(n, c, s) * eb;
                    const double got = load(dt, out);
                    if (!within(dt, got, want, 1e-5 * (std::fabs(want) + group_scale))) {
                        std::fprintf(stderr, "dx[%lld, %lld, %lld] = %.9g, reference %.9g\n",
                                     (long long)n, (long long)c, (long long)s, got, want);
                        die("dx outside the contract");
                    }
                }
            }
        }
    }
    for (int64_t c = 0; c < C; c++) {
        if (dgp && !within(pt, load(pt, dgbuf.data() + c * pb), dgamma[c], 1e-5 * (std::fabs(dgamma[c]) + dgamma_abs[c])))
            die("dgamma outside the contract");
        if (dbp && !within(pt, load(pt, dbbuf.data() + c * pb), dbeta[c], 1e-5 * (std::fabs(dbeta[c]) + dbeta_abs[c])))
            die("dbeta outside the contract");
    }
    // dx's gaps keep their poison.
    if (dxp && !in_place) {
        std::vector<bool> in_view(dx.span, false);
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t s = 0; s < S; s++) in_view[dx.offset(n, c, s)] = true;
        for (int64_t i = 0; i < dx.span; i++) {
            if (in_view[i]) continue;
            for (int k = 0; k < eb; k++) {
                if (dxbuf.data()[i * eb + k] != kPoisonByte) die("a gap of dx was written");
            }
        }
    }
    return 0;
}
