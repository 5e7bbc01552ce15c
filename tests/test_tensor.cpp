#include "test_tensor.h"

#include <cmath>
#include <cstring>

#include "support/layout.h"

namespace gntest {

const char *name(DType t) {
    switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F64: return "f64";
    }
    return "?";
}

DLDataType dl_type(DType t) {
    if (t == DType::F32) return {kDLFloat, 32, 1};
    if (t == DType::F64) return {kDLFloat, 64, 1};
    if (t == DType::F16) return {kDLFloat, 16, 1};
    return {kDLBfloat, 16, 1};
}

int bytes(DType t) { return t == DType::F64 ? 8 : t == DType::F32 ? 4 : 2; }

const char *name(Layout l) {
    switch (l) {
    case Layout::Contiguous: return "contiguous";
    case Layout::ChannelsLast: return "channels_last";
    case Layout::ChannelSlice: return "channel_slice";
    case Layout::PaddedBatchNhwc: return "padded_batch_nhwc";
    case Layout::PaddedRowsNchw: return "padded_rows_nchw";
    }
    return "?";
}

double round_to(DType t, double a) {
    if (t == DType::F64) return a;
    if (t == DType::F32) return (float)a;
    if (t == DType::F16) return from_f16_bits(to_f16_bits(a));
    return from_bf16_bits(to_bf16_bits(a));
}

namespace {

// Sign-magnitude bits -> a monotonic integer line.
int64_t ordered(int64_t bits, int sign_bit) {
    const int64_t sign = int64_t(1) << sign_bit;
    return (bits & sign) ? -(bits & (sign - 1)) : bits;
}

}  // namespace

int64_t ulp_distance(DType t, double a, double b) {
    if (std::isnan(a) || std::isnan(b)) return (std::isnan(a) && std::isnan(b)) ? 0 : INT64_MAX;
    int64_t ia, ib;
    if (t == DType::F64) {
        uint64_t ua, ub;
        std::memcpy(&ua, &a, 8);
        std::memcpy(&ub, &b, 8);
        ia = ordered((int64_t)ua, 63);
        ib = ordered((int64_t)ub, 63);
    } else if (t == DType::F32) {
        float fa = (float)a, fb = (float)b;
        uint32_t ua, ub;
        std::memcpy(&ua, &fa, 4);
        std::memcpy(&ub, &fb, 4);
        ia = ordered(ua, 31);
        ib = ordered(ub, 31);
    } else if (t == DType::F16) {
        ia = ordered(to_f16_bits(a), 15);
        ib = ordered(to_f16_bits(b), 15);
    } else {
        ia = ordered(to_bf16_bits(a), 15);
        ib = ordered(to_bf16_bits(b), 15);
    }
    return ia > ib ? ia - ib : ib - ia;
}

std::string to_string(const std::vector<int64_t> &shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); i++) {
        s += std::to_string(shape[i]) + (i + 1 < shape.size() ? ", " : "");
    }
    return s + ")";
}

Tensor::Tensor(std::vector<int64_t> shape, DType dtype, Layout layout)
    : shape_(std::move(shape)), dtype_(dtype), layout_(layout) {
    const int rank = (int)shape_.size();
    const int64_t N = shape_[0], C = shape_[1], S = this->S();
    const bool channels_last = layout == Layout::ChannelsLast || layout == Layout::PaddedBatchNhwc;
    strides_ = groupnorm::support::nc_strides(shape_, channels_last);
    // The padded layouts and the slice: wider channel rows or samples than the dense ones.
    int64_t size = 0;
    if (channels_last) {
        const int64_t pad = layout == Layout::PaddedBatchNhwc ? 5 : 0;
        strides_[0] = S * C + pad;
        size = N * (S * C + pad);
    } else {
        const int64_t c_alloc = layout == Layout::ChannelSlice ? C + 3 : C;
        const int64_t row = layout == Layout::PaddedRowsNchw ? S + 3 : S;
        strides_[1] = row;
        strides_[0] = c_alloc * row;
        size = N * c_alloc * row;
    }
    storage_.assign(std::max<int64_t>(size, 1) * bytes(dtype_), 0);
    // A channel slice starts one channel into its allocation, like x[:, 1:1+C].
    const int64_t start = layout == Layout::ChannelSlice ? S : 0;
    dl_.data = storage_.data();
    dl_.byte_offset = start * bytes(dtype_);
    dl_.device = {kDLCPU, 0};
    dl_.ndim = rank;
    dl_.dtype = dl_type(dtype_);
    dl_.shape = shape_.data();
    dl_.strides = strides_.data();
}

int64_t Tensor::S() const {
    int64_t s = 1;
    for (size_t i = 2; i < shape_.size(); i++) s *= shape_[i];
    return s;
}

int64_t Tensor::offset(int64_t n, int64_t c, int64_t s) const {
    int64_t off = (int64_t)(dl_.byte_offset / bytes(dtype_)) + n * strides_[0] + c * strides_[1];
    for (int i = (int)shape_.size() - 1; i >= 2; i--) {
        off += (s % shape_[i]) * strides_[i];
        s /= shape_[i];
    }
    return off;
}

double Tensor::get(int64_t n, int64_t c, int64_t s) const {
    const int64_t i = offset(n, c, s);
    if (dtype_ == DType::F64) {
        double d;
        std::memcpy(&d, &storage_[i * 8], 8);
        return d;
    }
    if (dtype_ == DType::F32) {
        float f;
        std::memcpy(&f, &storage_[i * 4], 4);
        return f;
    }
    uint16_t b;
    std::memcpy(&b, &storage_[i * 2], 2);
    return dtype_ == DType::F16 ? from_f16_bits(b) : from_bf16_bits(b);
}

void Tensor::set(int64_t n, int64_t c, int64_t s, double v) {
    const int64_t i = offset(n, c, s);
    if (dtype_ == DType::F64) {
        std::memcpy(&storage_[i * 8], &v, 8);
        return;
    }
    if (dtype_ == DType::F32) {
        float f = (float)v;
        std::memcpy(&storage_[i * 4], &f, 4);
        return;
    }
    uint16_t b = dtype_ == DType::F16 ? to_f16_bits(v) : to_bf16_bits(v);
    std::memcpy(&storage_[i * 2], &b, 2);
}

void Tensor::fill_normal(std::mt19937_64 &rng, double mean, double stddev) {
    std::normal_distribution<double> dist(mean, stddev);
    for (int64_t n = 0; n < N(); n++)
        for (int64_t c = 0; c < C(); c++)
            for (int64_t s = 0; s < S(); s++) set(n, c, s, dist(rng));
}

namespace {
constexpr uint64_t kPoison64 = 0x7FF8DEAD0000DEADull;
constexpr uint32_t kPoison32 = 0x7FC0DEADu;
constexpr uint16_t kPoison16 = 0x7E5Au;  // a NaN in both float16 and bfloat16

uint64_t poison_of(DType t) {
    return t == DType::F64 ? kPoison64 : t == DType::F32 ? kPoison32 : kPoison16;
}
}  // namespace

uint64_t Tensor::raw(int64_t i) const {
    if (dtype_ == DType::F64) {
        uint64_t u;
        std::memcpy(&u, &storage_[i * 8], 8);
        return u;
    }
    if (dtype_ == DType::F32) {
        uint32_t u;
        std::memcpy(&u, &storage_[i * 4], 4);
        return u;
    }
    uint16_t u;
    std::memcpy(&u, &storage_[i * 2], 2);
    return u;
}

void Tensor::poison() {
    const int64_t count = (int64_t)storage_.size() / bytes(dtype_);
    for (int64_t i = 0; i < count; i++) {
        if (dtype_ == DType::F64) std::memcpy(&storage_[i * 8], &kPoison64, 8);
        else if (dtype_ == DType::F32) std::memcpy(&storage_[i * 4], &kPoison32, 4);
        else std::memcpy(&storage_[i * 2], &kPoison16, 2);
    }
}

std::vector<bool> Tensor::in_view_mask() const {
    std::vector<bool> mask(storage_.size() / bytes(dtype_), false);
    for (int64_t n = 0; n < N(); n++)
        for (int64_t c = 0; c < C(); c++)
            for (int64_t s = 0; s < S(); s++) mask[offset(n, c, s)] = true;
    return mask;
}

bool Tensor::gaps_untouched() const {
    const uint64_t poison = poison_of(dtype_);
    const std::vector<bool> mask = in_view_mask();
    for (size_t i = 0; i < mask.size(); i++) {
        if (!mask[i] && raw((int64_t)i) != poison) return false;
    }
    return true;
}

bool Tensor::all_poison() const {
    const uint64_t poison = poison_of(dtype_);
    for (int64_t i = 0; i < (int64_t)storage_.size() / bytes(dtype_); i++) {
        if (raw(i) != poison) return false;
    }
    return true;
}

}  // namespace gntest
