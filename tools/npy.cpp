#include "npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>

#include "commands.h"

namespace groupnorm::tools {

int64_t NpyArray::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
// numpy itself refuses headers over 10000 bytes unless told otherwise; a rank-32 shape
// of 19-digit extents needs well under 1 KiB.
constexpr uint64_t kMaxHeaderLen = 1 << 16;

// The header dictionary, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
class HeaderParser {
public:
    explicit HeaderParser(const std::string &text) : s_(text) {}

    NpyHeader parse() {
        NpyHeader h;
        std::set<std::string> seen;
        skip_space();
        expect('{');
        for (;;) {
            skip_space();
            if (peek() == '}') break;
            const std::string key = quoted();
            if (!seen.insert(key).second) throw CliError("header repeats the key '" + key + "'");
            skip_space();
            expect(':');
            skip_space();
            if (key == "descr") {
                h.descr = quoted();
            } else if (key == "fortran_order") {
                h.fortran_order = boolean();
            } else if (key == "shape") {
                h.shape = shape();
            } else {
                throw CliError("header has an unknown key '" + key + "'");
            }
            skip_space();
            if (peek() == ',') {
                pos_++;
                continue;
            }
            skip_space();
            if (peek() != '}') throw CliError("header: expected ',' or '}'");
        }
        pos_++;
        skip_space();
        if (pos_ != s_.size()) throw CliError("header has trailing characters");
        for (const char *k : {"descr", "fortran_order", "shape"}) {
            if (!seen.count(k)) throw CliError(std::string("header lacks the key '") + k + "'");
        }
        return h;
    }

private:
    char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
    void skip_space() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) pos_++;
    }
    void expect(char c) {
        if (peek() != c) throw CliError(std::string("header: expected '") + c + "'");
        pos_++;
    }
    std::string quoted() {
        const char q = peek();
        if (q != '\'' && q != '"') throw CliError("header: expected a quoted string");
        const size_t end = s_.find(q, pos_ + 1);
        if (end == std::string::npos) throw CliError("header: unterminated string");
        std::string v = s_.substr(pos_ + 1, end - pos_ - 1);
        pos_ = end + 1;
        return v;
    }
    bool boolean() {
        for (const char *word : {"True", "False"}) {
            if (s_.compare(pos_, std::strlen(word), word) == 0) {
                pos_ += std::strlen(word);
                return word[0] == 'T';
            }
        }
        throw CliError("header: fortran_order must be True or False");
    }
    int64_t extent() {
        if (peek() == '-') throw CliError("shape has a negative extent");
        if (peek() < '0' || peek() > '9') throw CliError("shape has an extent that is not a number");
        uint64_t v = 0;
        while (peek() >= '0' && peek() <= '9') {
            const uint64_t digit = uint64_t(peek() - '0');
            if (v > (uint64_t(INT64_MAX) - digit) / 10) throw CliError("shape has an extent over 2^63 - 1");
            v = v * 10 + digit;
            pos_++;
        }
        if (peek() == 'L') pos_++;  // Python 2 longs
        return int64_t(v);
    }
    std::vector<int64_t> shape() {
        std::vector<int64_t> dims;
        expect('(');
        skip_space();
        bool comma = true;
        while (peek() != ')') {
            if (!comma) throw CliError("header: expected ',' between the shape's extents");
            if (dims.size() >= 64) throw CliError("shape has more than 64 dimensions");
            dims.push_back(extent());
            skip_space();
            comma = peek() == ',';
            if (comma) pos_++;
            skip_space();
        }
        if (dims.size() == 1 && !comma) throw CliError("header: a 1-tuple shape needs a comma");
        pos_++;
        return dims;
    }

    const std::string &s_;
    size_t pos_ = 0;
};

}  // namespace

NpyHeader parse_npy_header(const uint8_t *data, size_t size, size_t *data_offset) {
    if (size < kMagicLen + 4 || std::memcmp(data, kMagic, kMagicLen) != 0) {
        throw CliError("not a .npy file (no \\x93NUMPY magic)");
    }
    const int major = data[6];
    size_t len_bytes = 0;
    if (major == 1) len_bytes = 2;
    else if (major == 2 || major == 3) len_bytes = 4;
    else throw CliError("unsupported .npy format version " + std::to_string(major));
    if (size < kMagicLen + 2 + len_bytes) throw CliError("file is truncated (in the header)");
    uint64_t header_len = 0;  // little-endian, unsigned (bytes >= 0x80 included)
    for (size_t i = 0; i < len_bytes; i++) header_len |= uint64_t(data[8 + i]) << (8 * i);
    if (header_len > kMaxHeaderLen) {
        throw CliError("header of " + std::to_string(header_len) + " bytes is too long");
    }
    const size_t start = kMagicLen + 2 + len_bytes;
    if (size - start < header_len) throw CliError("file is truncated (in the header)");
    const std::string text(reinterpret_cast<const char *>(data) + start, header_len);
    NpyHeader h = HeaderParser(text).parse();
    // The element count and byte count, checked for overflow.
    uint64_t numel = 1;
    for (int64_t d : h.shape) {
        if (__builtin_mul_overflow(numel, uint64_t(d), &numel) || numel > uint64_t(INT64_MAX)) {
            throw CliError("shape is too large (more than 2^63 - 1 elements)");
        }
    }
    h.numel = int64_t(numel);
    const uint64_t item = h.descr == "<f2" ? 2 : h.descr == "<f4" ? 4 : h.descr == "<f8" ? 8 : 1;
    if (__builtin_mul_overflow(numel, item, &h.data_bytes) || h.data_bytes > uint64_t(INT64_MAX)) {
        throw CliError("shape is too large (its byte count overflows 64 bits)");
    }
    *data_offset = start + header_len;
    return h;
}

NpyArray read_npy(const std::string &path, const std::string &what) {
    const std::string where = what + " " + path + ": ";
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CliError(where + "cannot open file");
    in.seekg(0, std::ios::end);
    const std::streamoff file_size = in.tellg();
    in.seekg(0);
    if (!in || file_size < 0) throw CliError(where + "cannot read the file (not a regular file?)");
    // The prefix and the header (bounded by kMaxHeaderLen), then, once the data's size is
    // known to match the file's, the data.
    std::vector<uint8_t> head(size_t(std::min<std::streamoff>(file_size, 12 + kMaxHeaderLen)));
    in.read(reinterpret_cast<char *>(head.data()), std::streamsize(head.size()));
    if (!in) throw CliError(where + "cannot read the file");
    NpyArray a;
    size_t offset = 0;
    NpyHeader h;
    try {
        h = parse_npy_header(head.data(), head.size(), &offset);
    } catch (const CliError &e) {
        throw CliError(where + e.what());
    }
    if (h.fortran_order) {
        throw CliError(where + "Fortran-order arrays are not supported; save a C-order array "
                       "(numpy.ascontiguousarray)");
    }
    if (h.descr != "<f4" && h.descr != "<f2" && h.descr != "<f8") {
        throw CliError(where + "dtype '" + h.descr +
                       "' is not supported (float32 '<f4', float16 '<f2' or float64 '<f8')");
    }
    const uint64_t have = uint64_t(file_size) - offset;
    if (have < h.data_bytes) {
        throw CliError(where + "file is truncated (the shape needs " + std::to_string(h.data_bytes) +
                       " bytes of data, the file has " + std::to_string(have) + ")");
    }
    a.descr = h.descr;
    a.shape = h.shape;
    a.data.resize(h.data_bytes);
    in.seekg(std::streamoff(offset));
    in.read(reinterpret_cast<char *>(a.data.data()), std::streamsize(a.data.size()));
    if (!in) throw CliError(where + "file is truncated");
    return a;
}

std::string npy_header(const std::string &descr, const std::vector<int64_t> &shape) {
    std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
    for (size_t i = 0; i < shape.size(); i++) {
        dict += std::to_string(shape[i]);
        if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
        if (i + 1 < shape.size()) dict += " ";
    }
    dict += "), }";
    // Version 1.0 holds headers up to 65535 bytes; the whole prefix is padded with spaces
    // to a multiple of 64 bytes and ends with a newline.
    size_t prefix = kMagicLen + 2 + 2;
    const int major = dict.size() + 1 + prefix + 63 > 65535 ? 2 : 1;
    if (major == 2) prefix += 2;
    const size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
    dict.append(total - prefix - dict.size() - 1, ' ');
    dict += '\n';
    std::string out(kMagic, kMagicLen);
    out += char(major);
    out += char(0);
    const uint64_t len = dict.size();
    for (size_t i = 0; i < (major == 1 ? 2u : 4u); i++) out += char((len >> (8 * i)) & 0xff);
    return out + dict;
}

}  // namespace groupnorm::tools
