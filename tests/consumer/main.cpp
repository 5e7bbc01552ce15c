// Runs GroupNorm from an installed package on a tiny tensor and checks one value that
// was worked out by hand. Exits non-zero on any mismatch or error.
#include <cmath>
#include <cstdio>
#include <vector>

#include <groupnorm/groupnorm.hpp>

int main() {
    // x: (N=1, C=4, L=3), 2 groups of 2 channels; group 0 holds 1..6.
    std::vector<float> x = {1, 2, 3, 4, 5, 6, -1, 0, 1, 2, 3, 4}, y(x.size(), NAN);
    int64_t shape[3] = {1, 4, 3};
    DLTensor xt{}, yt{};
    xt.data = x.data();
    xt.device = {kDLCPU, 0};
    xt.ndim = 3;
    xt.dtype = {kDLFloat, 32, 1};
    xt.shape = shape;
    yt = xt;
    yt.data = y.data();

    try {
        groupnorm::GroupNorm gn(/*num_groups=*/2, /*num_channels=*/4, /*eps=*/1e-5);
        gn.set_weight({2, 1, 1, 1});
        gn.set_bias({0.5f, 0, 0, 0});
        gn.forward(xt, yt);
    } catch (const groupnorm::Error &e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return 1;
    }

    // Group 0 = {1..6}: mean 3.5, variance (2.5^2 + 1.5^2 + 0.5^2) * 2 / 6 = 17.5 / 6.
    // y[0,0,0] = (1 - 3.5) / sqrt(17.5 / 6 + 1e-5) * weight 2 + bias 0.5.
    const double expected = (1.0 - 3.5) / std::sqrt(17.5 / 6.0 + 1e-5) * 2.0 + 0.5;
    if (!(std::fabs(y[0] - expected) <= 1e-5 * (std::fabs(expected) + 1))) {
        std::fprintf(stderr, "consumer: y[0,0,0] = %.8f, expected %.8f\n", y[0], expected);
        return 1;
    }
    std::printf("consumer: y[0,0,0] = %.6f as expected (GroupNorm %d.%d)\n", y[0],
                GN_VERSION_MAJOR, GN_VERSION_MINOR);
    return 0;
}
