// Benchmark buffers: aligned storage and a finiteness check of float32/float16/bfloat16 data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <dlpack/dlpack.h>

namespace groupnorm::support {

// 64-byte aligned storage (as torch's allocator gives), so alignment favours no one.
struct AlignedBuffer {
    void *data = nullptr;
    explicit AlignedBuffer(size_t bytes) : data(std::aligned_alloc(64, (bytes + 63) / 64 * 64)) {}
    ~AlignedBuffer() { std::free(data); }
    AlignedBuffer(const AlignedBuffer &) = delete;
    AlignedBuffer &operator=(const AlignedBuffer &) = delete;
};

// False when any of the n elements of type t (float32, float16 or bfloat16) is inf or NaN.
bool all_finite(const void *data, int64_t n, DLDataType t);

}  // namespace groupnorm::support
