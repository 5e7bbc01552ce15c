// The streaming roofline: a plain copy loop, cloned per ISA so that cache-resident shapes
// see full-width vector loads and stores. Built with loop-idiom recognition off (see
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

}  // namespace

void stream_copy(const void *x, void *y, size_t bytes, int threads) {
    // At most one thread per 256 KiB: below that a fork/join costs more than the copy, and a
    // roofline should be the best a copy can do (torch's parallel_for has a grain size too).
    threads = int(std::min<size_t>(threads, std::max<size_t>(1, bytes >> 18)));
    const size_t n = bytes / 8;
    const auto *xs = static_cast<const uint64_t *>(x);
    auto *ys = static_cast<uint64_t *>(y);
    if (threads <= 1) {
        copy_words(xs, ys, n);
    } else {
        // One contiguous chunk per thread, 64-byte aligned, like a static parallel split.
#pragma omp parallel num_threads(threads)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            const size_t chunk = (n / nt + 7) / 8 * 8;
            const size_t lo = std::min(n, chunk * t), hi = std::min(n, lo + chunk);
            copy_words(xs + lo, ys + lo, hi - lo);
        }
    }
    std::memcpy(static_cast<char *>(y) + n * 8, static_cast<const char *>(x) + n * 8,
                bytes - n * 8);
}

}  // namespace groupnorm::bench
