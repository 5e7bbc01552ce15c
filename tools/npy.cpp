#include "npy.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <xtensor/xnpy.hpp>

#include "commands.h"

namespace groupnorm::tools {

int64_t NpyArray::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

// xnpy's public load_npy<T>/dump_npy need a C++ element type and so cannot do float16;
// its header parser/writer (xt::detail::load_npy_file, write_header) handle any
// typestring, so we use those and keep the data as bytes. xnpy does not check for a
// short read or overflowing shapes, so we do.
NpyArray read_npy(const std::string &path, const std::string &what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CliError(what + " " + path + ": cannot open file");
    NpyArray a;
    try {
        xt::detail::npy_file f = xt::detail::load_npy_file(in);
        if (!in) throw CliError(what + " " + path + ": file is truncated");
        if (f.m_fortran_order) {
            throw CliError(what + " " + path + ": Fortran-order arrays are not supported; "
                           "save a C-order array (numpy.ascontiguousarray)");
        }
        if (f.m_typestring != "<f4" && f.m_typestring != "<f2") {
            throw CliError(what + " " + path + ": dtype '" + f.m_typestring +
                           "' is not supported (float32 '<f4' or float16 '<f2')");
        }
        a.descr = f.m_typestring;
        uint64_t numel = 1;
        for (size_t d : f.m_shape) {
            if (d > (size_t)INT64_MAX || __builtin_mul_overflow(numel, (uint64_t)d, &numel)) {
                throw CliError(what + " " + path + ": shape is too large");
            }
            a.shape.push_back((int64_t)d);
        }
        if (numel * a.item_size() != f.n_bytes()) {
            throw CliError(what + " " + path + ": shape is too large");
        }
        a.data.assign(f.ptr(), f.ptr() + f.n_bytes());
    } catch (const CliError &) {
        throw;
    } catch (const std::exception &e) {  // xnpy's parse errors, bad_alloc
        throw CliError(what + " " + path + ": not a valid .npy file (" + e.what() + ")");
    }
    return a;
}

StagedOutputs::~StagedOutputs() {
    for (const auto &f : files_) std::remove(f.first.c_str());
}

void StagedOutputs::write(const std::string &path, const std::string &descr,
                          const std::vector<int64_t> &shape, const void *data, size_t bytes) {
    const std::string tmp = path + ".tmp" + std::to_string(getpid());
    files_.emplace_back(tmp, path);
    std::ofstream out(tmp, std::ios::binary);
    if (out) {
        xt::detail::write_header(out, descr, false, shape);
        out.write(static_cast<const char *>(data), (std::streamsize)bytes);
        out.close();
    }
    if (!out) throw CliError("cannot write " + path);
}

void StagedOutputs::commit() {
    for (auto &f : files_) {
        if (std::rename(f.first.c_str(), f.second.c_str()) != 0) {
            throw CliError("cannot rename " + f.first + " to " + f.second);
        }
        f.first.clear();
    }
    files_.clear();
}

}  // namespace groupnorm::tools
