// libFuzzer target over the CLI's .npy header parser (tools/npy.cpp): any bytes are either
// refused with a CliError or give a header whose counts are consistent; a header the
// writer makes for the parsed shape parses back to it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "commands.h"
#include "npy.h"

using namespace groupnorm::tools;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t offset = 0;
    NpyHeader h;
    try {
        h = parse_npy_header(data, size, &offset);
    } catch (const CliError &) {
        return 0;
    }
    if (offset > size) std::abort();
    uint64_t numel = 1;
    for (int64_t d : h.shape) {
        if (d < 0) std::abort();
        numel *= uint64_t(d);
    }
    if (numel != uint64_t(h.numel) || h.numel < 0) std::abort();
    if (h.descr == "<f4" || h.descr == "<f2") {
        if (h.data_bytes != numel * (h.descr == "<f4" ? 4u : 2u)) std::abort();
        const std::string again = npy_header(h.descr, h.shape);
        if (again.size() % 64 != 0) std::abort();
        size_t off2 = 0;
        const NpyHeader h2 = parse_npy_header(reinterpret_cast<const uint8_t *>(again.data()),
                                              again.size(), &off2);
        if (h2.shape != h.shape || h2.descr != h.descr || off2 != again.size()) std::abort();
    }
    return 0;
}
