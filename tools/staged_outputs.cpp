#include "staged_outputs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "commands.h"
#include "npy.h"

namespace groupnorm::tools {
namespace {

std::string dir_of(const std::string &path) {
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string &path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string real_path(const std::string &path) {
    char buf[PATH_MAX];
    if (!realpath(path.c_str(), buf)) return "";
    return buf;
}

// What a path names: an existing file (by device and inode, links followed) or, for a
// file yet to be created, its canonical path.
struct FileId {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    std::string canonical;
    bool operator==(const FileId &o) const {
        if (exists != o.exists) return false;
        return exists ? dev == o.dev && ino == o.ino : canonical == o.canonical;
    }
};

FileId identify(const std::string &path) {
    FileId id;
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) {
        id.exists = true;
        id.dev = st.st_dev;
        id.ino = st.st_ino;
    } else {
        const std::string dir = real_path(dir_of(path));
        id.canonical = dir.empty() ? path : dir + "/" + base_of(path);
    }
    return id;
}

std::string sys_error() { return std::strerror(errno); }

bool starts_with(const std::string &s, const char *prefix) {
    return s.compare(0, std::strlen(prefix), prefix) == 0;
}

// Whether the path reaches a file through /proc (/dev/stdout -> /proc/self/fd/1, /dev/fd/N):
// a descriptor of this process, to be written through whatever it is, never replaced.
bool through_proc(std::string path) {
    for (int hop = 0; hop < 40; hop++) {
        if (starts_with(path, "/proc/") || starts_with(real_path(dir_of(path)), "/proc/")) {
            return true;
        }
        struct stat st;
        if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return false;
        char buf[PATH_MAX];
        const ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf) - 1);
        if (n <= 0) return false;
        buf[n] = '\0';
        path = buf[0] == '/' ? std::string(buf) : dir_of(path) + "/" + buf;
    }
    return false;
}

bool write_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        size -= size_t(n);
    }
    return true;
}

// Fault injection for the tests (tools/tests/cli_reliability_test.py): GROUPNORM_FAULT=
// "write:K" fails staging the K-th output, "commit:K" the K-th step of commit (0-based:
// the renames, then the write-through outputs), as a full disk or a lost file would.
bool injected_fault(const char *stage, int index) {
    const char *spec = std::getenv("GROUPNORM_FAULT");
    if (!spec) return false;
    const size_t len = std::strlen(stage);
    if (std::strncmp(spec, stage, len) != 0 || spec[len] != ':') return false;
    if (std::atoi(spec + len + 1) != index) return false;
    errno = EIO;
    return true;
}

}  // namespace

StagedOutputs::~StagedOutputs() {
    for (const Output &o : outputs_) {
        if (!o.temp.empty() && !o.committed) ::unlink(o.temp.c_str());
    }
}

void StagedOutputs::add(const NamedPath &output, const std::vector<NamedPath> &inputs) {
    const std::string &path = output.path;
    const std::string where = output.option + " " + path + ": ";
    if (path.empty()) throw CliError(output.option + ": empty path");
    const FileId id = identify(path);
    for (const Output &o : outputs_) {
        if (identify(o.path) == id) {
            throw CliError(where + "names the same file as " + o.option + " " + o.path);
        }
    }
    for (const NamedPath &in : inputs) {
        if (!in.path.empty() && identify(in.path) == id) {
            throw CliError(where + "names the same file as the input " + in.option + " " +
                           in.path + "; give it another path");
        }
    }
    Output o;
    o.option = output.option;
    o.path = path;
    struct stat st, lst;
    if (::stat(path.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) throw CliError(where + "is a directory");
        o.write_through = !S_ISREG(st.st_mode) || through_proc(path);
        o.final_path = o.write_through ? path : real_path(path);
        if (o.final_path.empty()) throw CliError(where + "cannot resolve the path: " + sys_error());
    } else if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
        throw CliError(where + "is a symbolic link to a missing file");
    } else {
        const std::string dir = real_path(dir_of(path));
        if (dir.empty()) throw CliError(where + "directory " + dir_of(path) + " does not exist");
        o.final_path = dir + "/" + base_of(path);
    }
    outputs_.push_back(std::move(o));
}

void StagedOutputs::write(const std::string &option, const std::string &descr,
                          const std::vector<int64_t> &shape, const void *data, size_t bytes) {
    Output *out = nullptr;
    for (Output &o : outputs_) {
        if (o.option == option) out = &o;
    }
    if (!out) throw CliError("internal: output " + option + " was not planned");
    const std::string header = npy_header(descr, shape);
    if (out->write_through) {
        out->contents = header;
        out->contents.append(static_cast<const char *>(data), bytes);
        out->staged = true;
        return;
    }
    // A unique temporary in the final file's directory (rename needs one file system).
    std::string tmpl = dir_of(out->final_path) + "/." + base_of(out->final_path) + ".XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) throw CliError("cannot write " + out->path + ": " + sys_error());
    out->temp = tmpl;
    // The new file gets the old one's permissions, or the umask's default for a new file.
    struct stat st;
    mode_t mode;
    if (::stat(out->final_path.c_str(), &st) == 0) {
        mode = st.st_mode & 07777;
    } else {
        const mode_t mask = ::umask(0);
        ::umask(mask);
        mode = 0666 & ~mask;
    }
    const bool ok = ::fchmod(fd, mode) == 0 && write_all(fd, header.data(), header.size()) &&
                    write_all(fd, static_cast<const char *>(data), bytes) &&
                    !injected_fault("write", int(out - outputs_.data()));
    const int saved = errno;
    if (::close(fd) != 0 || !ok) {
        errno = ok ? errno : saved;
        throw CliError("cannot write " + out->path + ": " + sys_error());
    }
    out->staged = true;
}

void StagedOutputs::rollback() {
    for (auto it = outputs_.rbegin(); it != outputs_.rend(); ++it) {
        Output &o = *it;
        if (!o.committed || o.write_through) continue;
        if (!o.backup.empty()) {
            ::rename(o.backup.c_str(), o.final_path.c_str());
        } else {
            ::unlink(o.final_path.c_str());
        }
        o.committed = false;
        o.temp.clear();
    }
}

void StagedOutputs::commit() {
    for (const Output &o : outputs_) {
        if (!o.staged) throw CliError("internal: output " + o.option + " was not written");
    }
    int step = 0;
    // Regular files: keep a hard link to each old file, then rename the new one over it.
    for (Output &o : outputs_) {
        if (o.write_through) continue;
        struct stat st;
        if (::lstat(o.final_path.c_str(), &st) == 0) {
            o.backup = o.temp + ".old";
            if (::link(o.final_path.c_str(), o.backup.c_str()) != 0) {
                const std::string why = sys_error();
                o.backup.clear();
                rollback();
                throw CliError("cannot replace " + o.path + " (keeping its old contents "
                               "failed: " + why + "); nothing was written");
            }
        }
        if (injected_fault("commit", step++) || ::rename(o.temp.c_str(), o.final_path.c_str()) != 0) {
            const std::string why = sys_error();
            if (!o.backup.empty()) ::unlink(o.backup.c_str());
            o.backup.clear();
            rollback();
            throw CliError("cannot rename the new " + o.path + " into place: " + why +
                           "; nothing was written");
        }
        o.committed = true;
    }
    // Devices, FIFOs, sockets: written through, last (they cannot be rolled back).
    for (Output &o : outputs_) {
        if (!o.write_through) continue;
        struct stat st;
        const bool regular = ::stat(o.final_path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
        const bool fault = injected_fault("commit", step++);
        const int fd = fault ? -1 : ::open(o.final_path.c_str(),
                                           O_WRONLY | O_CLOEXEC | (regular ? O_TRUNC : 0));
        const bool ok = fd >= 0 && write_all(fd, o.contents.data(), o.contents.size());
        const std::string why = sys_error();
        if (fd >= 0) ::close(fd);
        if (!ok) {
            rollback();
            throw CliError("cannot write " + o.path + ": " + why);
        }
    }
    for (Output &o : outputs_) {
        if (!o.backup.empty()) ::unlink(o.backup.c_str());
        o.backup.clear();
        o.temp.clear();
    }
}

}  // namespace groupnorm::tools
