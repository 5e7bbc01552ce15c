// The CLI's output files, all or nothing: a failed run writes nothing and changes nothing.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace groupnorm::tools {

struct NamedPath {
    std::string option;  // "--mean", for messages
    std::string path;
};

// Outputs are planned before anything runs (add), written to temporaries next to their
// final files (write), and renamed into place together (commit), with rollback: if any
// step fails, files already replaced get their old contents back. A regular file is
// replaced (through a symbolic link: its target is replaced, the link kept); a device,
// FIFO or socket (/dev/null), and any file reached through /proc (/dev/stdout, /dev/fd/N:
// this process's descriptors) is written through, after every rename.
class StagedOutputs {
public:
    StagedOutputs() = default;
    StagedOutputs(const StagedOutputs &) = delete;
    StagedOutputs &operator=(const StagedOutputs &) = delete;
    ~StagedOutputs();  // removes uncommitted temporaries

    // Refuses (CliError) a directory, a dangling link, a missing parent directory, and a
    // path that names the same file as an earlier output or any of `inputs`.
    void add(const NamedPath &output, const std::vector<NamedPath> &inputs);
    // Stages the .npy contents of the output added with `option`.
    void write(const std::string &option, const std::string &descr,
               const std::vector<int64_t> &shape, const void *data, size_t bytes);
    void commit();

private:
    struct Output {
        std::string option, path;
        std::string final_path;  // regular files: the resolved file the rename replaces
        bool write_through = false;
        std::string temp, backup;  // staged temporary; hard link to the old file
        std::string contents;      // write-through outputs: written at commit
        bool staged = false, committed = false;
    };
    void rollback();

    std::vector<Output> outputs_;
};

}  // namespace groupnorm::tools
