// The core test shapes, shared by the CPU and GPU suites.
#pragma once

#include <cstdint>
#include <vector>

namespace gntest {

struct Shape {
    std::vector<int64_t> dims;
    int64_t G;
};

// Odd shapes of the issue: G = 1, G = C, C/G = 1, S = 1, S not a multiple of any vector
// width, 7x7, 33x17, N = 1, 1-D / 2-D / 3-D spatial, rank 2, rows longer than one block
// with a partial last block.
inline const std::vector<Shape> &core_shapes() {
    static const std::vector<Shape> shapes = {
        {{2, 6, 4, 4}, 3},    {{1, 32, 8, 8}, 4},    {{3, 8, 7, 7}, 1},   {{2, 8, 33, 17}, 8},
        {{2, 16, 5}, 16},     {{4, 12}, 3},          {{1, 4, 1}, 2},      {{2, 64, 3, 5, 7}, 8},
        {{1, 64, 130}, 32},   {{2, 20, 1000}, 5},    {{1, 24, 1, 1}, 6},  {{1, 320, 9, 9}, 32},
        {{1, 3, 67}, 1},      {{2, 48, 16, 16}, 16}, {{1, 4, 65, 65}, 2}, {{1, 16, 1100}, 4},
    };
    return shapes;
}

}  // namespace gntest
