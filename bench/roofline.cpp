// The streaming rooflines: a plain copy loop (x read once, y written once), and a plain read
// loop (the extra pass over x of a kernel that must see all of a group before it writes any
// of it), cloned per ISA so that cache-resident shapes see full-width vector loads and stores. Built with loop-idiom recognition off (see
// CMakeLists.txt): glibc's memcpy switches to non-temporal stores on large copies, which
// the kernels do not use, and would make the roofline unreachable for a reason other
// than the kernels' quality.
#include <algorithm>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC 12 warns inside its own intrinsics (_mm512_undefined_ps as the unused mask source).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// y = f16(f32(x) * 1.5 + 0.5), 16 values per step: the conversions any float16 kernel makes
// per element it reads and writes, with the same 512-bit instructions as the kernels.
__attribute__((target("avx512f,f16c,fma"))) void half_affine_words(const uint16_t *x, uint16_t *y,
                                                                   size_t n) {
    const __m512 a = _mm512_set1_ps(1.5f), b = _mm512_set1_ps(0.5f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(x + i)));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(y + i),
                            _mm512_cvtps_ph(_mm512_fmadd_ps(v, a, b), _MM_FROUND_TO_NEAREST_INT));
    }
    std::memcpy(y + i, x + i, (n - i) * 2);
}
#pragma GCC diagnostic pop
#endif

}  // namespace

bool stream_half_affine(const void *x, void *y, size_t bytes, int threads) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("f16c")) return false;
    threads = stream_threads(bytes, threads);
    const size_t n = bytes / 2;
    const auto *xs = static_cast<const uint16_t *>(x);
    auto *ys = static_cast<uint16_t *>(y);
    if (threads <= 1) {
        half_affine_words(xs, ys, n);
        return true;
    }
#pragma omp parallel num_threads(threads)
    {
        size_t lo, hi;
        chunk_of(n, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
        half_affine_words(xs + lo, ys + lo, hi - lo);
    }
    return true;
#else
    (void)x, (void)y, (void)bytes, (void)threads;
    return false;
#endif
}

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
