// The streaming rooflines: a plain copy loop (x read once, y written once), a plain read loop
// (the extra pass over x of a kernel that must see all of a group before it writes any of
// it), cloned per ISA so that cache-resident shapes see full-width vector loads and stores,
// and a float16 convert loop. Built with loop-idiom recognition off (see CMakeLists.txt):
// glibc's memcpy switches to non-temporal stores on large copies, which the kernels do not
// use, and would make the roofline unreachable for a reason other than the kernels' quality.
#include <algorithm>
#include <atomic>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <omp.h>

#include "support/cpu.h"
#include "support/roofline.h"

namespace groupnorm::support {
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
void add_floats(const float *__restrict a, const float *__restrict b, float *__restrict y,
                size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void add_sub_floats(const float *__restrict a, const float *__restrict b, float *__restrict s,
                    float *__restrict d, size_t n) {
    for (size_t i = 0; i < n; i++) {
        s[i] = a[i] + b[i];
        d[i] = a[i] - b[i];
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
uint64_t xor_words(const uint64_t *__restrict x, size_t n) {
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) acc ^= x[i];
    return acc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
uint64_t xor_words2(const uint64_t *__restrict x, const uint64_t *__restrict y, size_t n) {
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) acc ^= x[i] ^ y[i];
    return acc;
}

// fn(lo, hi) over [0, n) elements of `elem` bytes: in the calling thread when one thread is
// worth it, else one contiguous, 64-byte aligned chunk per OpenMP thread (a static split).
// At most one thread per 256 KiB: below that a fork/join costs more than the stream, and a
// roofline should be the best a plain loop can do (torch's parallel_for has a grain size too).
template <typename Fn>
void split_stream(size_t n, size_t elem, int threads, Fn &&fn) {
    threads = int(std::min<size_t>(threads, std::max<size_t>(1, n * elem >> 18)));
    if (threads <= 1) {
        fn(size_t(0), n);
        return;
    }
    const size_t align = 64 / elem;
#pragma omp parallel num_threads(threads)
    {
        const size_t nt = size_t(omp_get_num_threads());
        const size_t chunk = (n / nt + align - 1) / align * align;
        const size_t lo = std::min(n, chunk * size_t(omp_get_thread_num()));
        fn(lo, std::min(n, lo + chunk));
    }
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
    if (!__builtin_cpu_supports("avx512f") || !cpu_has_f16c()) return false;
    const auto *xs = static_cast<const uint16_t *>(x);
    auto *ys = static_cast<uint16_t *>(y);
    split_stream(bytes / 2, 2, threads,
                 [&](size_t lo, size_t hi) { half_affine_words(xs + lo, ys + lo, hi - lo); });
    return true;
#else
    (void)x, (void)y, (void)bytes, (void)threads;
    return false;
#endif
}

uint64_t stream_read(const void *x, size_t bytes, int threads) {
    const auto *xs = static_cast<const uint64_t *>(x);
    std::atomic<uint64_t> acc{0};
    split_stream(bytes / 8, 8, threads, [&](size_t lo, size_t hi) {
        acc.fetch_xor(xor_words(xs + lo, hi - lo), std::memory_order_relaxed);
    });
    return acc.load();
}

uint64_t stream_read2(const void *a, const void *b, size_t bytes, int threads) {
    const auto *as = static_cast<const uint64_t *>(a), *bs = static_cast<const uint64_t *>(b);
    std::atomic<uint64_t> acc{0};
    split_stream(bytes / 8, 8, threads, [&](size_t lo, size_t hi) {
        acc.fetch_xor(xor_words2(as + lo, bs + lo, hi - lo), std::memory_order_relaxed);
    });
    return acc.load();
}

void stream_add(const float *a, const float *b, float *y, size_t n, int threads) {
    split_stream(n, 4, threads, [&](size_t lo, size_t hi) { add_floats(a + lo, b + lo, y + lo, hi - lo); });
}

void stream_add_sub(const float *a, const float *b, float *s, float *d, size_t n, int threads) {
    split_stream(n, 4, threads, [&](size_t lo, size_t hi) {
        add_sub_floats(a + lo, b + lo, s + lo, d + lo, hi - lo);
    });
}

void stream_copy(const void *x, void *y, size_t bytes, int threads) {
    const size_t n = bytes / 8;
    const auto *xs = static_cast<const uint64_t *>(x);
    auto *ys = static_cast<uint64_t *>(y);
    split_stream(n, 8, threads, [&](size_t lo, size_t hi) { copy_words(xs + lo, ys + lo, hi - lo); });
    std::memcpy(static_cast<char *>(y) + n * 8, static_cast<const char *>(x) + n * 8,
                bytes - n * 8);
}

}  // namespace groupnorm::support
