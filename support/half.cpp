#include "support/half.h"

#include <cmath>
#include <cstring>

namespace groupnorm::support {

uint16_t to_f16_bits(double v) {
    uint64_t u;
    std::memcpy(&u, &v, 8);
    const uint16_t sign = uint16_t((u >> 48) & 0x8000u);
    const uint64_t a = u & ~(uint64_t(1) << 63);
    if (a >= 0x7ff0000000000000u) {  // inf, or NaN made quiet
        if (a == 0x7ff0000000000000u) return sign | 0x7c00u;
        return sign | 0x7e00u | uint16_t((a >> 42) & 0x3ff);
    }
    const int e = int(a >> 52) - 1023;  // float64 zeros and subnormals: -1023, they round to 0
    if (e >= 16) return sign | 0x7c00u;
    const uint64_t m = (a & ((uint64_t(1) << 52) - 1)) | (uint64_t(1) << 52);
    // Drop the bits below float16's last place: 2^(e-10) when normal, 2^-24 when subnormal.
    const int drop = e >= -14 ? 42 : 42 - 14 - e;
    if (drop > 53) return sign;  // below half the smallest subnormal
    uint64_t q = m >> drop;
    const uint64_t rem = m & ((uint64_t(1) << drop) - 1), half = uint64_t(1) << (drop - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    // q holds the implicit bit, so a carry out of the mantissa moves into the exponent (to
    // infinity past 65504); subnormals have exponent field 0 and q <= 0x400.
    return sign | uint16_t(e >= -14 ? (uint64_t(e + 14) << 10) + q : q);
}

double from_f16_bits(uint16_t b) {
    const int e = (b >> 10) & 0x1f, m = b & 0x3ff;
    double v;
    if (e == 31 && m != 0) {  // NaN: quiet, payload moved to the top as a conversion does
        const uint64_t u = uint64_t(b & 0x8000u) << 48 | 0x7ff8000000000000u | uint64_t(m) << 42;
        std::memcpy(&v, &u, 8);
        return v;
    }
    v = e == 31 ? INFINITY : e == 0 ? std::ldexp(m, -24) : std::ldexp(m | 0x400, e - 25);
    return (b & 0x8000u) ? -v : v;
}

uint16_t to_bf16_bits(float f) {
    if (std::isnan(f)) return 0x7FC0;
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);  // round to nearest even (to infinity past the largest)
    return uint16_t(u >> 16);
}

double from_bf16_bits(uint16_t b) {
    const uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

}  // namespace groupnorm::support
