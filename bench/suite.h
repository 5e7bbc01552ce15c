// The benchmark shape suite (docs/DESIGN.md section 6): real model shapes, shared by bench/
// and `groupnorm bench` so both always measure the same thing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace groupnorm::bench {

struct SuiteShape {
    std::string name;
    std::vector<int64_t> shape;  // (N, C, spatial...)
    int64_t groups;
};

inline int64_t numel(const SuiteShape &s) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    return n;
}

// "default": the whole suite; "small": the shapes under 4M elements (quick runs).
inline std::vector<SuiteShape> suite(const std::string &which = "default") {
    std::vector<SuiteShape> all = {
        {"tiny_1x32x8x8_g4", {1, 32, 8, 8}, 4},
        {"sd_unet_2x320x64x64", {2, 320, 64, 64}, 32},
        {"sd_unet_1x320x64x64", {1, 320, 64, 64}, 32},
        {"sd_unet_2x640x32x32", {2, 640, 32, 32}, 32},
        {"sd_unet_2x1280x16x16", {2, 1280, 16, 16}, 32},
        {"sd_unet_2x2560x8x8", {2, 2560, 8, 8}, 32},
        {"sd_vae_1x512x64x64", {1, 512, 64, 64}, 32},
        {"sd_vae_1x512x128x128", {1, 512, 128, 128}, 32},
        {"sd_vae_1x256x256x256", {1, 256, 256, 256}, 32},
        {"sd_vae_1x128x512x512", {1, 128, 512, 512}, 32},
        {"video_vae_1x128x20x64x64", {1, 128, 20, 64, 64}, 32},
        {"fcos_p3_2x256x100x128", {2, 256, 100, 128}, 32},
        {"fcos_p5_2x256x25x32", {2, 256, 25, 32}, 32},
        {"fcos_p7_2x256x7x8", {2, 256, 7, 8}, 32},
        {"resnet_gn_8x256x56x56", {8, 256, 56, 56}, 32},
    };
    if (which == "default") return all;
    std::vector<SuiteShape> picked;
    for (const SuiteShape &s : all) {
        if (which == "small" && numel(s) < (int64_t(4) << 20)) picked.push_back(s);
    }
    return picked;
}

}  // namespace groupnorm::bench
