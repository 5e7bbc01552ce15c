// Benchmark buffers: aligned storage and a finiteness check of float32/float16/bfloat16 data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <sys/mman.h>

#include <dlpack/dlpack.h>

namespace groupnorm::support {

// 64-byte aligned storage (as torch's allocator gives), so alignment favours no one.
// From 1 MiB on, its own mapping (page aligned): gn_bench turns glibc's mmap threshold off
// for torch's sake, and then thousands of randomly interleaved buffers of every suite size
// fragmented the heap until the kernel killed the run (24 GB resident).
struct AlignedBuffer {
    void *data = nullptr;
    explicit AlignedBuffer(size_t bytes) : size_((bytes + 63) / 64 * 64) {
        if (size_ >= kMapped) {
            void *p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            data = p == MAP_FAILED ? nullptr : p;
        } else {
            data = std::aligned_alloc(64, size_);
        }
        if (!data) std::abort();  // a benchmark cannot run without its buffers
    }
    ~AlignedBuffer() {
        if (size_ >= kMapped) munmap(data, size_);
        else std::free(data);
    }
    AlignedBuffer(const AlignedBuffer &) = delete;
    AlignedBuffer &operator=(const AlignedBuffer &) = delete;

private:
    static constexpr size_t kMapped = size_t(1) << 20;
    size_t size_;
};

// False when any of the n elements of type t (float32, float16 or bfloat16) is inf or NaN.
bool all_finite(const void *data, int64_t n, DLDataType t);

}  // namespace groupnorm::support
