// support/: the 16-bit conversions' edge cases and the layouts' strides, which every
// reference and tolerance in the other suites rests on.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "support/half.h"
#include "support/layout.h"

namespace {

using namespace groupnorm::support;

TEST(Support, Float16RoundsToNearestEven) {
    EXPECT_EQ(to_f16_bits(1.0), 0x3C00);
    EXPECT_EQ(to_f16_bits(-2.0), 0xC000);
    EXPECT_EQ(to_f16_bits(1.0 + 0x1p-11), 0x3C00);  // tie: to even
    EXPECT_EQ(to_f16_bits(1.0 + 3 * 0x1p-11), 0x3C02);  // tie: to even (up)
    EXPECT_EQ(to_f16_bits(1.0 + 0x1p-11 + 0x1p-40), 0x3C01);  // just past the tie: once rounded
    EXPECT_EQ(to_f16_bits(65504.0), 0x7BFF);
    EXPECT_EQ(to_f16_bits(65519.0), 0x7BFF);
    EXPECT_EQ(to_f16_bits(65520.0), 0x7C00);  // rounds past the largest: infinity
    EXPECT_EQ(to_f16_bits(-INFINITY), 0xFC00);
    EXPECT_EQ(to_f16_bits(0x1p-24), 0x0001);  // smallest subnormal
    EXPECT_EQ(to_f16_bits(0x1p-25), 0x0000);  // half of it: tie to even (zero)
    EXPECT_EQ(to_f16_bits(0x1.8p-25), 0x0001);
    EXPECT_EQ(to_f16_bits(0x1.ffcp-15), 0x0400);  // tie past the largest subnormal: up
    EXPECT_EQ(to_f16_bits(-0.0), 0x8000);
    EXPECT_EQ(to_f16_bits(NAN) & 0x7E00, 0x7E00);  // a quiet NaN
    for (uint32_t b = 0; b < 0x10000; b++) {  // every non-NaN value converts back exactly
        if ((b & 0x7C00) == 0x7C00 && (b & 0x3FF)) continue;
        EXPECT_EQ(to_f16_bits(from_f16_bits(uint16_t(b))), uint16_t(b)) << b;
    }
    EXPECT_TRUE(std::isnan(from_f16_bits(0x7C01)));
    EXPECT_EQ(from_f16_bits(0x0001), 0x1p-24);
}

TEST(Support, BFloat16RoundsToNearestEven) {
    EXPECT_EQ(to_bf16_bits(1.0f), 0x3F80);
    EXPECT_EQ(to_bf16_bits(1.0f + 0x1p-8f), 0x3F80);  // tie: to even
    EXPECT_EQ(to_bf16_bits(1.0f + 3 * 0x1p-8f), 0x3F82);
    EXPECT_EQ(to_bf16_bits(INFINITY), 0x7F80);
    EXPECT_EQ(to_bf16_bits(-NAN), 0x7FC0);
    EXPECT_EQ(from_bf16_bits(0xBF80), -1.0);
}

TEST(Support, Strides) {
    EXPECT_EQ(nc_strides({2, 3, 4, 5}, false), (std::vector<int64_t>{60, 20, 5, 1}));
    EXPECT_EQ(nc_strides({2, 3, 4, 5}, true), (std::vector<int64_t>{60, 1, 15, 3}));
    EXPECT_EQ(nc_strides({2, 3}, true), (std::vector<int64_t>{3, 1}));
    EXPECT_EQ(nc_strides({7}, true), (std::vector<int64_t>{1}));
    DLTensorView v(nullptr, {kDLFloat, 32, 1}, {2, 3, 4}, true);
    EXPECT_EQ(v.dl.ndim, 3);
    EXPECT_EQ(v.dl.strides[1], 1);
    EXPECT_EQ(v.dl.shape[2], 4);
}

}  // namespace
