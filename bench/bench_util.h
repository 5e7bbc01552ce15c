// Helpers shared by gn_bench's translation units: random inputs, 16-bit conversions,
// finiteness checks, DLTensor views and the streaming roofline.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>

#include "suite.h"

namespace groupnorm::bench {

// 3 + randn(numel) for the shape, generated at its first use; every benchmark of the shape
// reads the same data. The non-zero mean catches kernels that lose precision with the
// naive sum/sumsq variance.
const float *master_input(const SuiteShape &s);

// 64-byte aligned storage (as torch's allocator gives), so alignment favours no one.
struct AlignedBuffer {
    void *data = nullptr;
    explicit AlignedBuffer(size_t bytes) : data(std::aligned_alloc(64, (bytes + 63) / 64 * 64)) {}
    ~AlignedBuffer() { std::free(data); }
    AlignedBuffer(const AlignedBuffer &) = delete;
    AlignedBuffer &operator=(const AlignedBuffer &) = delete;
};

inline uint16_t to_bf16(float f) {  // round to nearest even; inputs are finite
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline uint16_t to_f16(float f) {  // round to nearest even; normal range only (|x| < 65504)
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const int32_t exp = int32_t((u >> 23) & 0xff) - 127 + 15;
    if (exp <= 0) return uint16_t(sign);  // flush (values here are O(1))
    uint32_t h = sign | (uint32_t(exp) << 10) | ((u & 0x7fffffu) >> 13);
    const uint32_t rem = u & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return uint16_t(h);
}

// The x86 half types' and float's "exponent all ones" test, i.e. inf or NaN.
inline bool all_finite(const void *data, int64_t n, int bits, bool bfloat) {
    if (bits == 32) {
        const uint32_t *p = static_cast<const uint32_t *>(data);
        for (int64_t i = 0; i < n; i++) {
            if ((p[i] & 0x7f800000u) == 0x7f800000u) return false;
        }
        return true;
    }
    const uint16_t mask = bfloat ? 0x7f80 : 0x7c00;
    const uint16_t *p = static_cast<const uint16_t *>(data);
    for (int64_t i = 0; i < n; i++) {
        if ((p[i] & mask) == mask) return false;
    }
    return true;
}

// Element strides of (N, C, spatial...) stored contiguous (NC*) or channels-last (N*C).
inline std::vector<int64_t> strides_of(const std::vector<int64_t> &shape, bool channels_last) {
    const size_t r = shape.size();
    std::vector<int64_t> st(r);
    if (!channels_last) {
        int64_t s = 1;
        for (size_t i = r; i-- > 0;) st[i] = s, s *= shape[i];
        return st;
    }
    int64_t s = 1;
    st[1] = s, s *= shape[1];  // C innermost
    for (size_t i = r; i-- > 2;) st[i] = s, s *= shape[i];
    st[0] = s;
    return st;
}

// A DLTensor that owns its shape/stride arrays.
struct DLView {
    std::vector<int64_t> shape, strides;
    DLTensor t{};
    DLView(void *data, DLDataType dtype, std::vector<int64_t> shp, bool channels_last)
        : shape(std::move(shp)), strides(strides_of(shape, channels_last)) {
        t.data = data;
        t.device = {kDLCPU, 0};
        t.ndim = int32_t(shape.size());
        t.dtype = dtype;
        t.shape = shape.data();
        t.strides = strides.data();
    }
    DLView(const DLView &) = delete;
    DLView &operator=(const DLView &) = delete;
};

// y[i] = x[i] over `bytes` bytes with up to `threads` threads (OpenMP): the read+write
// traffic a one-pass kernel needs, with ordinary (write-allocating) stores like the kernels'.
void stream_copy(const void *x, void *y, size_t bytes, int threads);
// float16 x -> y = f16(f32(x) * a + b) with AVX-512 and F16C, `bytes` of each: the
// conversions a float16 kernel cannot avoid. false (nothing run) on CPUs without them.
bool stream_half_affine(const void *x, void *y, size_t bytes, int threads);
// A streaming read of `bytes` (an XOR of 8-byte words, returned so it is not elided): the
// second pass over x of a two-pass kernel (statistics, then normalize).
uint64_t stream_read(const void *x, size_t bytes, int threads);

}  // namespace groupnorm::bench
