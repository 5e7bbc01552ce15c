// .npy files as the CLI needs them: little-endian float32 ('<f4'), float16 ('<f2') or
// float64 ('<f8'), C order, data kept as raw bytes (float16 has no C++ element type).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace groupnorm::tools {

struct NpyArray {
    std::string descr;            // "<f4", "<f2" or "<f8"
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;    // numel * item_size bytes, C order

    int64_t numel() const;
    size_t item_size() const { return descr == "<f2" ? 2 : descr == "<f8" ? 8 : 4; }
};

// The .npy descr of little-endian floats of `bytes` bytes (2, 4 or 8).
inline std::string float_descr(size_t bytes) { return "<f" + std::to_string(bytes); }

// Reads a float32/float16/float64 C-order array; throws CliError naming `what` and the file.
NpyArray read_npy(const std::string &path, const std::string &what);

// A parsed .npy header (any descr): what read_npy checks before it allocates anything.
struct NpyHeader {
    std::string descr;
    bool fortran_order = false;
    std::vector<int64_t> shape;
    int64_t numel = 0;
    uint64_t data_bytes = 0;  // numel * item size (1 for unknown descrs)
};

// Parses the magic, version, length and header dictionary at the start of `data`; the
// array's data starts at *data_offset. Throws CliError (no path in the message) on
// anything malformed: bad magic, truncation, unknown keys, extents that are negative, not
// numbers or over 2^63 - 1, element or byte counts that overflow.
NpyHeader parse_npy_header(const uint8_t *data, size_t size, size_t *data_offset);

// The .npy prefix (magic, version, length, padded header) of a C-order array.
std::string npy_header(const std::string &descr, const std::vector<int64_t> &shape);

}  // namespace groupnorm::tools
