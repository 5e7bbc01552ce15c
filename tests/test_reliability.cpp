// Hostile and careless calls of the C API (issue "Reliability"): every pointer checked
// before it is read, outputs that overlap anything refused, legal aliasing still served.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "groupnorm/groupnorm.h"
#include "reference.h"

using namespace gntest;

namespace {

// A float32 DLTensor over caller memory, with explicit strides.
struct View {
    std::vector<int64_t> shape, strides;
    DLTensor dl{};
    View(float *data, std::vector<int64_t> shp, std::vector<int64_t> str)
        : shape(std::move(shp)), strides(std::move(str)) {
        dl.data = data;
        dl.device = {kDLCPU, 0};
        dl.ndim = (int)shape.size();
        dl.dtype = {kDLFloat, 32, 1};
        dl.shape = shape.data();
        dl.strides = strides.data();
    }
    View(const View &) = delete;
};

void fill(std::vector<float> &v, std::mt19937_64 &rng, double mean = 2.0) {
    std::normal_distribution<float> d((float)mean, 1.5f);
    for (float &f : v) f = d(rng);
}

std::string message() { return gn_last_error_message(); }

#define EXPECT_REFUSED(call, needle1, needle2)                                             \
    do {                                                                                 \
        const gn_status st_ = (call);                                                    \
        EXPECT_EQ(st_, GN_STATUS_INVALID_ARGUMENT) << message();                         \
        EXPECT_NE(message().find(needle1), std::string::npos) << message();              \
        EXPECT_NE(message().find(needle2), std::string::npos) << message();              \
    } while (0)

// (2, 8, 4, 4) float32, NCHW, 4 groups: x, y, gamma, beta, mean, rstd in separate buffers.
struct Case {
    std::mt19937_64 rng{fresh_seed()};
    std::vector<float> xb = std::vector<float>(256), yb = std::vector<float>(256),
                       gb = std::vector<float>(8), bb = std::vector<float>(8),
                       mb = std::vector<float>(8), rb = std::vector<float>(8);
    View x{xb.data(), {2, 8, 4, 4}, {128, 16, 4, 1}}, y{yb.data(), {2, 8, 4, 4}, {128, 16, 4, 1}};
    View gamma{gb.data(), {8}, {1}}, beta{bb.data(), {8}, {1}};
    View mean{mb.data(), {2, 4}, {4, 1}}, rstd{rb.data(), {2, 4}, {4, 1}};
    Case() {
        fill(xb, rng);
        fill(gb, rng, 1.0);
        fill(bb, rng, 0.0);
    }
    gn_status run() {
        return gn_forward(&x.dl, &gamma.dl, &beta.dl, 4, 1e-5, &y.dl, &mean.dl, &rstd.dl, nullptr);
    }
};

TEST(Reliability, NullShapeOfAnyTensorIsRefused) {
    // y's shape used to be read (compared with x's) before it was checked: a segfault.
    for (const char *which : {"x", "y", "gamma", "beta", "mean", "rstd"}) {
        SCOPED_TRACE(which);
        Case c;
        DLTensor *t = std::string(which) == "x"       ? &c.x.dl
                      : std::string(which) == "y"     ? &c.y.dl
                      : std::string(which) == "gamma" ? &c.gamma.dl
                      : std::string(which) == "beta"  ? &c.beta.dl
                      : std::string(which) == "mean"  ? &c.mean.dl
                                                      : &c.rstd.dl;
        t->shape = nullptr;
        EXPECT_REFUSED(c.run(), std::string(which) + "->shape is NULL", which);
        Case d;
        DLTensor *u = std::string(which) == "x" ? &d.x.dl : std::string(which) == "y" ? &d.y.dl
                                                                                    : &d.mean.dl;
        u->ndim = 1000;  // a rank beyond any shape array
        EXPECT_REFUSED(d.run(), "invalid rank", std::string(which) == "x" || std::string(which) == "y"
                                                    ? which : "mean");
    }
}

TEST(Reliability, OutputsOverlappingAnythingAreRefused) {
    {
        Case c;  // mean inside y
        c.mean.dl.data = c.yb.data() + 100;
        EXPECT_REFUSED(c.run(), "mean", "y");
    }
    {
        Case c;  // rstd inside y
        c.rstd.dl.data = c.yb.data() + 3;
        EXPECT_REFUSED(c.run(), "rstd", "y");
    }
    {
        Case c;  // mean aliasing x
        c.mean.dl.data = c.xb.data();
        EXPECT_REFUSED(c.run(), "mean", "x");
    }
    {
        Case c;  // rstd aliasing x, y in place: x is both read and written
        c.y.dl.data = c.xb.data();
        c.rstd.dl.data = c.xb.data() + 64;
        EXPECT_REFUSED(c.run(), "rstd", "x");
    }
    {
        Case c;  // gamma aliasing y
        c.gamma.dl.data = c.yb.data() + 16;
        EXPECT_REFUSED(c.run(), "y", "gamma");
    }
    {
        Case c;  // beta aliasing mean
        c.beta.dl.data = c.mb.data();
        EXPECT_REFUSED(c.run(), "mean", "beta");
    }
    {
        Case c;  // mean and rstd one buffer
        c.rstd.dl.data = c.mb.data();
        EXPECT_REFUSED(c.run(), "rstd", "mean");
    }
    {
        Case c;  // y's elements overlap each other: channel stride 1 with S = 4
        for (View *v : {&c.x, &c.y}) v->shape[2] = v->shape[3] = 2;
        c.x.strides[0] = 32;
        c.x.strides[1] = 4;
        c.x.strides[2] = 2;
        c.y.strides[1] = 1;
        c.y.strides[2] = 2;
        EXPECT_REFUSED(c.run(), "y", "overlap each other");
    }
    {
        Case c;  // mean's elements overlap each other: stride 0 over its groups
        c.mean.strides[1] = 0;
        EXPECT_REFUSED(c.run(), "mean", "overlap each other");
    }
}

// Runs the case and checks y (and mean/rstd) against the float64 reference of x's values
// as they were before the call.
template <typename YAt>
void expect_correct(Case &c, const std::vector<float> &x_before, YAt y_at) {
    std::vector<double> want(256), mean(8), rstd(8);
    for (int n = 0; n < 2; n++) {
        for (int g = 0; g < 4; g++) {
            double s = 0, sq = 0;
            for (int i = 0; i < 32; i++) s += x_before[n * 128 + g * 32 + i];
            const double m = s / 32;
            for (int i = 0; i < 32; i++) sq += std::pow(x_before[n * 128 + g * 32 + i] - m, 2);
            const double r = 1 / std::sqrt(sq / 32 + 1e-5);
            mean[n * 4 + g] = m;
            rstd[n * 4 + g] = r;
            for (int i = 0; i < 32; i++) {
                const int c_ = g * 2 + i / 16;
                want[n * 128 + g * 32 + i] =
                    (x_before[n * 128 + g * 32 + i] - m) * r * c.gb[c_] + c.bb[c_];
            }
        }
    }
    ASSERT_EQ(c.run(), GN_STATUS_SUCCESS) << message();
    for (int i = 0; i < 256; i++) {
        EXPECT_NEAR(y_at(i), want[i], 1e-5 * (std::fabs(want[i]) + 1)) << i;
    }
    for (int i = 0; i < 8; i++) {
        EXPECT_NEAR(c.mb[i], mean[i], 1e-5);
        EXPECT_NEAR(c.rb[i], rstd[i], 1e-5 * rstd[i]);
    }
}

TEST(Reliability, InPlaceStillServed) {
    Case c;
    const std::vector<float> before = c.xb;
    c.y.dl.data = c.xb.data();
    expect_correct(c, before, [&](int i) { return c.xb[i]; });
}

TEST(Reliability, InterleavedXAndYServed) {
    // x and y as channels of one (2, 16, 4, 4) buffer: x the first 8 channels and y the last
    // 8, or x the even and y the odd ones. Their byte ranges intersect but no element is
    // shared, so y may be written while x is read.
    struct Interleave {
        int c_stride, n_stride, y_offset;
    };
    for (const Interleave il : {Interleave{16, 256, 128}, Interleave{32, 256, 16}}) {
        const int c_stride = il.c_stride, n_stride = il.n_stride, y_offset = il.y_offset;
        SCOPED_TRACE(y_offset);
        Case c;
        std::vector<float> both(512, -7.0f);
        for (View *v : {&c.x, &c.y}) {
            v->strides[0] = n_stride;
            v->strides[1] = c_stride;
        }
        auto at = [&](int i) {  // logical (n, c, s) index -> element offset
            return (i / 128) * n_stride + (i / 16 % 8) * c_stride + i % 16;
        };
        for (int i = 0; i < 256; i++) both[at(i)] = c.xb[i];
        c.x.dl.data = both.data();
        c.y.dl.data = both.data() + y_offset;
        const std::vector<float> x_before = c.xb;
        expect_correct(c, x_before, [&](int i) { return both[y_offset + at(i)]; });
        for (int i = 0; i < 256; i++) EXPECT_EQ(both[at(i)], x_before[i]) << "x changed at " << i;
    }
    {
        Case c;  // y one channel after x, both with channel stride 32: shared elements
        std::vector<float> both(512, 0.0f);
        for (View *v : {&c.x, &c.y}) v->strides[1] = 32;
        for (View *v : {&c.x, &c.y}) v->strides[0] = 256;
        c.x.dl.data = both.data();
        c.y.dl.data = both.data() + 32;
        EXPECT_REFUSED(c.run(), "y overlaps x", "x");
    }
}

}  // namespace
