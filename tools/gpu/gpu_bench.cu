// GPU bench for tools/gpu_check.sh: gn_forward on CUDA tensors vs a device-to-device copy
// of the same bytes (the roofline), both timed with CUDA events on one stream: warm-up,
// then the median of 50 runs, rotating through buffer sets larger than 2x L2 so every run
// reads DRAM. GB/s counts x read + y written.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "groupnorm/groupnorm.h"

#define CK(call)                                                                       \
    do {                                                                               \
        cudaError_t e = (call);                                                        \
        if (e != cudaSuccess) {                                                        \
            std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); \
            std::exit(1);                                                              \
        }                                                                              \
    } while (0)

struct Shape { const char *name; std::vector<int64_t> dims; int64_t G; };

template <typename F>
float median_ms(cudaStream_t s, int rotations, F &&run) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < 5; i++) run(i % rotations);
    std::vector<float> t;
    for (int i = 0; i < 50; i++) {
        CK(cudaEventRecord(a, s));
        run(i % rotations);
        CK(cudaEventRecord(b, s));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

int main() {
    const std::vector<Shape> shapes = {
        {"sd_unet_320x64x64", {2, 320, 64, 64}, 32}, {"sd_unet_640x32x32", {2, 640, 32, 32}, 32},
        {"sd_unet_1280x16x16", {2, 1280, 16, 16}, 32}, {"sd_unet_2560x8x8", {2, 2560, 8, 8}, 32},
        {"sd_vae_128x512x512", {1, 128, 512, 512}, 32}, {"sd_vae_512x64x64", {1, 512, 64, 64}, 32},
        {"video_vae_5d", {1, 128, 20, 64, 64}, 32}, {"resnet_gn", {8, 256, 56, 56}, 32},
        {"tiny", {1, 32, 8, 8}, 4}};
    int dev = 0, l2 = 0;
    CK(cudaSetDevice(dev));
    CK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    cudaStream_t stream;
    CK(cudaStreamCreate(&stream));
    gn_config cfg = GN_CONFIG_INIT;
    cfg.cuda_stream = stream;
    std::printf("%-22s %-5s %-7s %10s %9s %9s %7s\n", "shape", "dtype", "layout", "us", "GB/s",
                "copy GB/s", "of copy");
    for (const Shape &sh : shapes) {
        for (int half = 0; half < 2; half++) {
            for (int nhwc = 0; nhwc < 2; nhwc++) {
                int64_t numel = 1;
                for (int64_t d : sh.dims) numel *= d;
                const size_t bytes = numel * (half ? 2 : 4);
                const int rot = (int)std::max<size_t>(1, (2 * (size_t)l2) / bytes + 1);
                std::vector<void *> xs(rot), ys(rot);
                for (int i = 0; i < rot; i++) {
                    CK(cudaMalloc(&xs[i], bytes));
                    CK(cudaMalloc(&ys[i], bytes));
                    CK(cudaMemset(xs[i], 0x3c, bytes));  // finite values in f32 and f16
                }
                // Strides in elements: NC* row-major, or channels-last N*C.
                const int nd = (int)sh.dims.size();
                std::vector<int64_t> shape = sh.dims, strides(nd);
                int64_t st = 1;
                if (!nhwc) {
                    for (int i = nd - 1; i >= 0; i--) { strides[i] = st; st *= shape[i]; }
                } else {
                    strides[1] = 1; st = shape[1];
                    for (int i = nd - 1; i >= 2; i--) { strides[i] = st; st *= shape[i]; }
                    strides[0] = st;
                }
                DLTensor x{};
                x.device = {kDLCUDA, dev};
                x.ndim = nd;
                x.dtype = {kDLFloat, (uint8_t)(half ? 16 : 32), 1};
                x.shape = shape.data();
                x.strides = strides.data();
                DLTensor y = x;
                gn_status status = GN_STATUS_SUCCESS;
                float ms = median_ms(stream, rot, [&](int i) {
                    x.data = xs[i];
                    y.data = ys[i];
                    status = gn_forward(&x, nullptr, nullptr, sh.G, 1e-5, &y, nullptr, nullptr, &cfg);
                });
                float copy_ms = median_ms(stream, rot, [&](int i) {
                    CK(cudaMemcpyAsync(ys[i], xs[i], bytes, cudaMemcpyDeviceToDevice, stream));
                });
                if (status != GN_STATUS_SUCCESS) {
                    std::printf("%-22s %s: %s\n", sh.name, gn_status_string(status), gn_last_error_message());
                } else {
                    const double gbs = 2.0 * bytes / (ms * 1e6), copy = 2.0 * bytes / (copy_ms * 1e6);
                    std::printf("%-22s %-5s %-7s %10.1f %9.0f %9.0f %6.0f%%\n", sh.name, half ? "f16" : "f32",
                                nhwc ? "nhwc" : "nchw", ms * 1e3, gbs, copy, 100.0 * gbs / copy);
                }
                for (int i = 0; i < rot; i++) { cudaFree(xs[i]); cudaFree(ys[i]); }
            }
        }
    }
    return 0;
}
