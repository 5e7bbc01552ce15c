// The streaming rooflines: a plain copy loop (x read once, y written once), and a plain read
// loop (the extra pass over x of a kernel that must see all of a group before it writes any
// of it), cloned per ISA so that cache-resident shapes see full-width vector loads and stores. Built with loop-idiom recognition off (see
// CMakeLists.txt): glibc's memcpy switches to non-temporal stores on large copies, which
// the kernels do not use, and would make the roofline unreachable for a reason other
// than the kernels' quality.
#include <algorithm>
#include <cstring>

#include <omp.h>

#include "bench_util.h"

namespace groupnorm::bench {
namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void copy_words(const uint64_t *__restrict x, uint64_t *__restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
uint64_t xor_words(const uint64_t *__restrict x, size_t n) {
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) acc ^= x[i];
    return acc;
}

// [lo, hi) of thread t's contiguous, 64-byte aligned chunk of n words (a static split).
void chunk_of(size_t n, int t, int nt, size_t &lo, size_t &hi) {
    const size_t chunk = (n / nt + 7) / 8 * 8;
    lo = std::min(n, chunk * t);
    hi = std::min(n, lo + chunk);
}

// At most one thread per 256 KiB: below that a fork/join costs more than the stream, and a
// roofline should be the best a plain loop can do (torch's parallel_for has a grain size too).
int stream_threads(size_t bytes, int threads) {
    return int(std::min<size_t>(threads, std::max<size_t>(1, bytes >> 18)));
}

}  // namespace

uint64_t stream_read(const void *x, size_t bytes, int threads) {
    threads = stream_threads(bytes, threads);
    const size_t n = bytes / 8;
    const auto *xs = static_cast<const uint64_t *>(x);
    if (threads <= 1) return xor_words(xs, n);
    uint64_t acc = 0;
#pragma omp parallel num_threads(threads) reduction(^ : acc)
    {
        size_t lo, hi;
        chunk_of(n, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
        acc ^= xor_words(xs + lo, hi - lo);
    }
    return acc;
}

void stream_copy(const void *x, void *y, size_t bytes, int threads) {
    threads = stream_threads(bytes, threads);
    const size_t n = bytes / 8;
    const auto *xs = static_cast<const uint64_t *>(x);
    auto *ys = static_cast<uint64_t *>(y);
    if (threads <= 1) {
        copy_words(xs, ys, n);
    } else {
        // One contiguous chunk per thread, 64-byte aligned, like a static parallel split.
#pragma omp parallel num_threads(threads)
        {
            size_t lo, hi;
            chunk_of(n, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
            copy_words(xs + lo, ys + lo, hi - lo);
        }
    }
    std::memcpy(static_cast<char *>(y) + n * 8, static_cast<const char *>(x) + n * 8,
                bytes - n * 8);
}

}  // namespace groupnorm::bench
