// What the libFuzzer targets share: reading choices from the input, buffers between
// canaries, strided (N, C, *) layouts with padding, 16-bit loads and stores.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <dlpack/dlpack.h>

#include "test_tensor.h"

namespace gnfuzz {

using namespace gntest;

class Input {
public:
    Input(const uint8_t *d, size_t n) : d_(d), n_(n) {}
    uint8_t byte() { return i_ < n_ ? d_[i_++] : 0; }
    int pick(int count) { return byte() % count; }
    size_t left() const { return n_ - i_; }

private:
    const uint8_t *d_;
    size_t n_, i_ = 0;
};

constexpr size_t kCanary = 64;
constexpr uint8_t kCanaryByte = 0xA5, kPoisonByte = 0x7F;  // 0x7F7F...: a NaN in all types

// A buffer with canaries before and after it.
struct Guarded {
    std::vector<uint8_t> bytes;
    size_t size = 0;
    explicit Guarded(size_t n) : bytes(n + 2 * kCanary, kPoisonByte), size(n) {
        std::memset(bytes.data(), kCanaryByte, kCanary);
        std::memset(bytes.data() + kCanary + n, kCanaryByte, kCanary);
    }
    uint8_t *data() { return bytes.data() + kCanary; }
    bool canaries_intact() const {
        for (size_t i = 0; i < kCanary; i++) {
            if (bytes[i] != kCanaryByte || bytes[kCanary + size + i] != kCanaryByte) return false;
        }
        return true;
    }
};

// An (N, C, *) tensor in NC* or N*C order, each dimension padded by 0..2 elements.
struct Strided {
    std::vector<int64_t> shape, strides;
    int64_t span = 0;  // elements from the first to one past the last
    DLTensor dl{};
    void layout(Input &in, bool channels_last) {
        const int rank = (int)shape.size();
        std::vector<int> order;  // innermost first
        if (channels_last && rank > 2) {
            order.push_back(1);
            for (int i = rank - 1; i >= 2; i--) order.push_back(i);
            order.push_back(0);
        } else {
            for (int i = rank - 1; i >= 0; i--) order.push_back(i);
        }
        strides.assign(rank, 0);
        int64_t stride = 1;
        for (size_t k = 0; k < order.size(); k++) {
            const int d = order[k];
            strides[d] = stride;
            // Padding only after whole channels / samples: what the kernels accept.
            const int64_t pad = (d == 0 || (d == 1 && !channels_last)) ? in.pick(3) : 0;
            stride *= shape[d] + pad;
        }
        span = 1;
        for (int i = 0; i < rank; i++) span += (shape[i] - 1) * strides[i];
    }
    int64_t offset(int64_t n, int64_t c, int64_t s) const {  // s: flattened spatial index
        int64_t off = n * strides[0] + c * strides[1];
        for (int i = (int)shape.size() - 1; i >= 2; i--) {
            off += (s % shape[i]) * strides[i];
            s /= shape[i];
        }
        return off;
    }
};

inline double load(DType t, const uint8_t *p) {
    if (t == DType::F32) {
        float f;
        std::memcpy(&f, p, 4);
        return f;
    }
    uint16_t b;
    std::memcpy(&b, p, 2);
    return t == DType::F16 ? from_f16_bits(b) : from_bf16_bits(b);
}

inline void store(DType t, uint8_t *p, double v) {
    if (t == DType::F32) {
        const float f = (float)v;
        std::memcpy(p, &f, 4);
        return;
    }
    const uint16_t b = t == DType::F16 ? to_f16_bits(v) : to_bf16_bits(v);
    std::memcpy(p, &b, 2);
}

inline DLTensor make_dl(void *data, DType t, std::vector<int64_t> &shape,
                        std::vector<int64_t> *strides) {
    DLTensor d{};
    d.data = data;
    d.device = {kDLCPU, 0};
    d.ndim = (int)shape.size();
    d.dtype = dl_type(t);
    d.shape = shape.data();
    d.strides = strides ? strides->data() : nullptr;
    return d;
}

// The choices both targets start with, read in this order (the corpora depend on it):
// N, G, C, the spatial extents (0 to 3 of them, some empty), x's dtype, the parameters'
// dtype, channels-last, in place.
struct Geometry {
    int64_t N = 0, G = 0, C = 0, S = 1;
    std::vector<int64_t> shape;
    DType dt = DType::F32, pt = DType::F32;
    bool channels_last = false, in_place = false;
};

inline Geometry pick_geometry(Input &in) {
    Geometry g;
    g.N = 1 + in.pick(3);
    g.G = 1 + in.pick(4);
    g.C = g.G * (1 + in.pick(4));
    const int spatial_rank = in.pick(4);
    g.shape = {g.N, g.C};
    for (int i = 0; i < spatial_rank; i++) {
        const int64_t e = in.pick(8) == 0 ? 0 : 1 + in.pick(12);
        g.shape.push_back(e);
        g.S *= e;
    }
    const DType types[] = {DType::F32, DType::F16, DType::BF16};
    g.dt = types[in.pick(3)];
    g.pt = in.pick(2) ? DType::F32 : g.dt;
    g.channels_last = in.pick(2);
    g.in_place = in.pick(4) == 0;
    return g;
}

}  // namespace gnfuzz
