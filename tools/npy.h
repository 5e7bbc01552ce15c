// .npy files as the CLI needs them: little-endian float32 ('<f4') or float16 ('<f2'),
// C order, data kept as raw bytes (float16 has no C++ element type).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace groupnorm::tools {

struct NpyArray {
    std::string descr;            // "<f4" or "<f2"
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;    // numel * item_size bytes, C order

    int64_t numel() const;
    size_t item_size() const { return descr == "<f2" ? 2 : 4; }
};

// Reads a float32/float16 C-order array; throws CliError naming `what` and the file.
NpyArray read_npy(const std::string &path, const std::string &what);

// Writes path + a temporary suffix; commit() renames every file into place, so a failed
// run leaves no partial outputs (the destructor removes uncommitted temporaries).
class StagedOutputs {
public:
    StagedOutputs() = default;
    StagedOutputs(const StagedOutputs &) = delete;
    StagedOutputs &operator=(const StagedOutputs &) = delete;
    ~StagedOutputs();

    void write(const std::string &path, const std::string &descr,
               const std::vector<int64_t> &shape, const void *data, size_t bytes);
    void commit();

private:
    std::vector<std::pair<std::string, std::string>> files_;  // (temporary, final)
};

}  // namespace groupnorm::tools
