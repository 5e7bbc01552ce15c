// Test tensors: owned storage in float32 / float16 / bfloat16 / float64, any (N, C, *) shape and
// memory layout, exposed as a DLTensor; logical access by (n, c, s) in float64.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>

#include "support/half.h"

namespace gntest {

enum class DType { F32, F16, BF16, F64 };
const char *name(DType t);
DLDataType dl_type(DType t);
int bytes(DType t);

// The statistics' (mean, rstd) dtype for x of dtype t, the kernels' compute type: float64
// for float64, else float32. Also the parameters' dtype when neither gamma nor beta is given.
inline DType stat_dtype(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

// Float conversions of the element types (round to nearest even).
using groupnorm::support::from_bf16_bits;
using groupnorm::support::from_f16_bits;
using groupnorm::support::to_bf16_bits;
using groupnorm::support::to_f16_bits;
// Ordered distance in units in the last place between two values of type t.
int64_t ulp_distance(DType t, double a, double b);
// a rounded to type t, back in float64.
double round_to(DType t, double a);

// Memory layouts the tests build. Padded layouts leave gaps that must stay untouched.
enum class Layout {
    Contiguous,      // NC* row-major
    ChannelsLast,    // N*C row-major
    ChannelSlice,    // NC*, a slice of 3 extra channels: c stride S, n stride (C+3)*S
    PaddedBatchNhwc,  // N*C with 5 spare elements after each sample
    PaddedRowsNchw    // NC*, 3 spare elements after each channel: c stride S+3 (the
                      // statistics then read one row per channel, not one per group)
};
const char *name(Layout l);

class Tensor {
public:
    Tensor(std::vector<int64_t> shape, DType dtype, Layout layout = Layout::Contiguous);
    Tensor(const Tensor &) = delete;  // dl_ points into this object
    Tensor &operator=(const Tensor &) = delete;

    DLTensor *dl() { return &dl_; }
    const std::vector<int64_t> &shape() const { return shape_; }
    DType dtype() const { return dtype_; }
    Layout layout() const { return layout_; }
    int64_t N() const { return shape_[0]; }
    int64_t C() const { return shape_[1]; }
    int64_t S() const;  // product of spatial extents

    double get(int64_t n, int64_t c, int64_t s) const;
    void set(int64_t n, int64_t c, int64_t s, double v);

    // Fills every element (logical) with mean + stddev * randn (rounded to the dtype).
    void fill_normal(std::mt19937_64 &rng, double mean, double stddev);
    // Writes NaN bit patterns over the whole storage, gaps included.
    void poison();
    // True when every storage element outside the logical view still holds the poison.
    bool gaps_untouched() const;
    bool all_poison() const;  // nothing at all was written

private:
    int64_t offset(int64_t n, int64_t c, int64_t s) const;
    std::vector<bool> in_view_mask() const;
    uint64_t raw(int64_t i) const;

    std::vector<int64_t> shape_, strides_;
    DType dtype_;
    Layout layout_;
    std::vector<uint8_t> storage_;
    DLTensor dl_{};
};

// Shape printer for traces: "(2, 6, 4, 4)".
std::string to_string(const std::vector<int64_t> &shape);

}  // namespace gntest
