// The streaming rooflines a GroupNorm kernel is measured against (gn_bench, `groupnorm
// bench`): plain loops over the same bytes, split over up to `threads` OpenMP threads.
#pragma once

#include <cstddef>
#include <cstdint>

namespace groupnorm::support {

// y[i] = x[i] over `bytes` bytes with up to `threads` threads (OpenMP): the read+write
// traffic a one-pass kernel needs, with ordinary (write-allocating) stores like the kernels'.
void stream_copy(const void *x, void *y, size_t bytes, int threads);
// float16 x -> y = f16(f32(x) * a + b) with AVX-512 and F16C, `bytes` of each: the
// conversions a float16 kernel cannot avoid. false (nothing run) on CPUs without them.
bool stream_half_affine(const void *x, void *y, size_t bytes, int threads);
// y[i] = a[i] + b[i] over n floats: the three streams of a backward pass (x and dy read,
// dx written).
void stream_add(const float *a, const float *b, float *y, size_t n, int threads);
// s[i] = a[i] + b[i], d[i] = a[i] - b[i] over n floats: the four streams of the residual
// forward (x and skip read, sum and y written).
void stream_add_sub(const float *a, const float *b, float *s, float *d, size_t n, int threads);
// A streaming read of `bytes` (an XOR of 8-byte words, returned so it is not elided): the
// second pass over x of a two-pass kernel (statistics, then normalize).
uint64_t stream_read(const void *x, size_t bytes, int threads);
// Two streams of `bytes` each read in one loop (XOR, as stream_read): the statistics pass
// of a backward (x and dy).
uint64_t stream_read2(const void *a, const void *b, size_t bytes, int threads);

}  // namespace groupnorm::support
