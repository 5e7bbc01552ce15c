#include "support/buffer.h"

namespace groupnorm::support {

// The "exponent all ones" test of each type, on the bits.
bool all_finite(const void *data, int64_t n, DLDataType t) {
    if (t.bits == 32) {
        const uint32_t *p = static_cast<const uint32_t *>(data);
        for (int64_t i = 0; i < n; i++) {
            if ((p[i] & 0x7f800000u) == 0x7f800000u) return false;
        }
        return true;
    }
    const uint16_t mask = t.code == kDLBfloat ? 0x7f80 : 0x7c00;
    const uint16_t *p = static_cast<const uint16_t *>(data);
    for (int64_t i = 0; i < n; i++) {
        if ((p[i] & mask) == mask) return false;
    }
    return true;
}

}  // namespace groupnorm::support
