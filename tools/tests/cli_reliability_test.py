"""CLIReliability.* tests: `groupnorm` against hostile and careless use (issue "Reliability").

A run that fails writes nothing and changes nothing; outputs naming one file are refused;
special files are written through, never replaced; every .npy that numpy writes is read;
malformed headers and options give one `groupnorm: error:` line, exit 2.
Usage: cli_reliability_test.py CLI_EXE WORK_DIR CASE.
"""
import os
import resource
import stat
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import Case, check_close, data, np, reference  # noqa: E402  (skips without numpy)


class Rel(Case):
    def snapshot(self):
        """Every file in the work directory: name -> (type, bytes)."""
        out = {}
        for name in os.listdir(self.work):
            p = self.path(name)
            st = os.lstat(p)
            body = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else b""
            out[name] = (stat.S_IFMT(st.st_mode), body)
        return out

    def refused(self, *args, needle=None, **kw):
        """Exit 2, one error line (containing needle), and no file created or changed."""
        before = self.snapshot()
        r = self.run(*args, **kw)
        assert r.returncode == 2, f"exit {r.returncode}, stderr {r.stderr!r}"
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("groupnorm: error: "), repr(r.stderr)
        if needle:
            assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
        after = self.snapshot()
        assert after == before, (f"files changed on failure: "
                                 f"{sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))}")
        print("refused as expected:", lines[0])
        return lines[0]

    def run(self, *args, cmd="run", **kw):
        return subprocess.run([self.cli, cmd, *map(str, args)], capture_output=True, text=True,
                              timeout=120, **kw)

    def npy(self, name, header, body=b"", version=1):
        """A hand-made .npy: header dict text padded to 64 bytes, then body."""
        h = header.encode("latin1")
        prefix = 10 if version == 1 else 12
        h += b" " * ((-(prefix + len(h) + 1)) % 64) + b"\n"
        lenfield = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
        with open(self.path(name), "wb") as f:
            f.write(b"\x93NUMPY" + bytes([version, 0]) + lenfield + h + body)
        return self.path(name)


# Defect 1: outputs naming one file, or an input; failed runs must change nothing.
def output_is_input_and_mean(t):
    x = t.save("x.npy", data((2, 8, 3)))
    t.refused("--groups", 4, "--input", x, "--output", x, "--mean", x, needle="same file")


def output_is_mean(t):
    x = t.save("x.npy", data((2, 8, 3)))
    y = t.path("y.npy")
    t.refused("--groups", 4, "--input", x, "--output", y, "--mean", y, needle="same file")


def mean_is_rstd(t):
    x = t.save("x.npy", data((2, 8, 3)))
    m = t.path("m.npy")
    t.refused("--groups", 4, "--input", x, "--output", t.path("y.npy"), "--mean", m,
              "--rstd", m, needle="same file")


def mean_is_rstd_through_link(t):
    x = t.save("x.npy", data((2, 8, 3)))
    t.save("m.npy", data((2, 4)))
    os.symlink("m.npy", t.path("alias.npy"))
    t.refused("--groups", 4, "--input", x, "--output", t.path("y.npy"), "--mean",
              t.path("m.npy"), "--rstd", t.path("alias.npy"), needle="same file")


def mean_is_a_directory(t):
    x = t.save("x.npy", data((2, 8, 3)))
    os.mkdir(t.path("dir"))
    t.refused("--groups", 4, "--input", x, "--output", x, "--mean", t.path("dir"),
              needle="directory")


def failed_run_keeps_in_place_input(t):
    """--output = --input and a bad --groups: x is untouched, no temporaries left."""
    x = t.save("x.npy", data((2, 6, 3)))
    t.refused("--groups", 4, "--input", x, "--output", x, "--mean", t.path("m.npy"),
              needle="num_groups")


def in_place_output_still_served(t):
    xa = data((2, 8, 3))
    x = t.save("x.npy", xa)
    r = t.run("--groups", 4, "--input", x, "--output", x, "--mean", t.path("m.npy"))
    assert r.returncode == 0, r.stderr
    y, mean, _ = reference(xa, 4)
    check_close("y", np.load(x), y, np.float32)
    check_close("mean", np.load(t.path("m.npy")), mean, np.float32)
    assert sorted(os.listdir(t.work)) == ["m.npy", "x.npy"], os.listdir(t.work)


def fifo_written_through(t):
    xa = data((2, 8, 3))
    x = t.save("x.npy", xa)
    fifo = t.path("pipe")
    os.mkfifo(fifo)
    got = {}

    def reader():
        with open(fifo, "rb") as f:
            got["bytes"] = f.read()
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    r = t.run("--groups", 4, "--input", x, "--output", fifo)
    th.join(30)
    if th.is_alive():  # nothing opened the FIFO: release the reader
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        th.join(5)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced"
    with open(t.path("from_pipe.npy"), "wb") as f:
        f.write(got["bytes"])
    check_close("y", np.load(t.path("from_pipe.npy")), reference(xa, 4)[0], np.float32)


def stdout_streaming(t):
    """To a pipe and to a regular file, through a link to /proc/self/fd/1 in the work
    directory (as /dev/stdout is): written through, the link kept. (Not /dev/stdout
    itself: a CLI that replaces special files would replace the machine's /dev/stdout.)"""
    xa = data((2, 8, 3))
    x = t.save("x.npy", xa)
    out = t.path("stdout")
    os.symlink("/proc/self/fd/1", out)
    cmd = [t.cli, "run", "--groups", "4", "--input", x, "--output", out]
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.path.islink(out), "the link to /proc/self/fd/1 was replaced"
    with open(t.path("y.npy"), "wb") as f:
        f.write(r.stdout)
    check_close("y", np.load(t.path("y.npy")), reference(xa, 4)[0], np.float32)
    with open(t.path("file.npy"), "wb") as f:
        f.write(b"old contents, longer than nothing")
    with open(t.path("file.npy"), "ab") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.path.islink(out), "the link to /proc/self/fd/1 was replaced"
    check_close("y", np.load(t.path("file.npy")), reference(xa, 4)[0], np.float32)


def dev_null_not_replaced(t):
    x = t.save("x.npy", data((2, 8, 3)))
    os.mknod(t.path("null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3)) if os.geteuid() == 0 \
        else os.symlink("/dev/null", t.path("null"))
    r = t.run("--groups", 4, "--input", x, "--output", t.path("null"))
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat(t.path("null")).st_mode), "the device node was replaced"


def symlink_target_written(t):
    xa = data((2, 8, 3))
    x = t.save("x.npy", xa)
    t.save("target.npy", data((1, 1)))
    os.symlink("target.npy", t.path("link.npy"))
    r = t.run("--groups", 4, "--input", x, "--output", t.path("link.npy"))
    assert r.returncode == 0, r.stderr
    assert os.path.islink(t.path("link.npy")), "the symbolic link was replaced"
    check_close("y", np.load(t.path("target.npy")), reference(xa, 4)[0], np.float32)


def fault_in_commit_rolls_back(t):
    """A rename that fails after others succeeded (injected: GROUPNORM_FAULT=commit:K):
    every file keeps its old contents, no temporary or backup is left; the same for a
    failed write while staging, and for a failing write-through output (a FIFO) after
    every rename."""
    xa = data((2, 8, 3))
    x = t.save("x.npy", xa)
    t.save("m.npy", data((3, 3)))
    t.save("r.npy", data((4, 4)))
    args = ["--groups", 4, "--input", x, "--output", x, "--mean", t.path("m.npy"),
            "--rstd", t.path("r.npy")]
    for fault in ("commit:1", "commit:2", "write:0", "write:2"):
        t.refused(*args, env=dict(os.environ, GROUPNORM_FAULT=fault))
    os.mkfifo(t.path("pipe"))
    t.refused(*args[:-2], "--rstd", t.path("pipe"),
              env=dict(os.environ, GROUPNORM_FAULT="commit:2"))
    r = t.run(*args)  # and without a fault, all three are replaced
    assert r.returncode == 0, r.stderr
    y, mean, rstd = reference(xa, 4)
    check_close("y", np.load(x), y, np.float32)
    check_close("rstd", np.load(t.path("r.npy")), rstd, np.float32)


# Defect 6: headers whose length has a byte >= 0x80.
def long_header_rank15(t):
    xa = data((2, 4) + (1,) * 12 + (3,))
    x = t.save("x.npy", xa)
    with open(x, "rb") as f:
        assert f.read(10)[8] >= 0x80, "test file's header length byte is < 0x80"
    t.forward(xa, 2)


def long_header_padded(t):
    xa = data((2, 4, 5))
    for version in (1, 2):
        x = t.npy("x.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 5), }"
                  + " " * 150, xa.tobytes(), version=version)
        r = t.run("--groups", 2, "--input", x, "--output", t.path("y.npy"))
        assert r.returncode == 0, r.stderr
        check_close("y", np.load(t.path("y.npy")), reference(xa, 2)[0], np.float32)


# Defect 7: sizes and messages.
def header_size_overflow(t):
    x = t.npy("x.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648, 2147483648), }",
              b"\0" * 64)
    t.refused("--groups", 1, "--input", x, "--output", t.path("y.npy"), needle="too large")


def header_negative_extent(t):
    x = t.npy("x.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }")
    msg = t.refused("--groups", 1, "--input", x, "--output", t.path("y.npy"), needle="negative extent")
    assert "bad_alloc" not in msg


def header_huge_extent(t):
    x = t.npy("x.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 18446744073709551615), }")
    t.refused("--groups", 1, "--input", x, "--output", t.path("y.npy"), needle="2^63")


def header_extent_not_a_number(t):
    x = t.npy("x.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, abc), }")
    t.refused("--groups", 1, "--input", x, "--output", t.path("y.npy"), needle="not a number")


def empty_groups_with_stats(t):
    """(2^31, 1, 0): no data at all; --mean must not allocate 2^31 statistics."""
    x = t.npy("x.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648, 1, 0), }")
    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))  # noqa: E731
    with open(t.cli, "rb") as f:  # AddressSanitizer reserves terabytes of shadow memory
        if b"__asan_init" in f.read():
            limit = None
    t.refused("--groups", 1, "--input", x, "--output", t.path("y.npy"), "--mean",
              t.path("m.npy"), needle="no spatial elements", preexec_fn=limit)


def parse_error_one_line(t):
    t.refused("--groups", "abc", "--input", "x.npy", "--output", t.path("y.npy"))
    t.refused("--input", "x.npy", "--output", t.path("y.npy"), needle="--groups")


def bench_threads_range(t):
    for threads in (100000, -1, 257):
        t.refused("--threads", threads, "--shapes", "small", "--reps", 1, cmd="bench",
                  needle="--threads")


CASES = {f.__name__: f for f in [
    output_is_input_and_mean, output_is_mean, mean_is_rstd, mean_is_rstd_through_link,
    mean_is_a_directory, failed_run_keeps_in_place_input, in_place_output_still_served,
    fifo_written_through, stdout_streaming, dev_null_not_replaced, symlink_target_written,
    fault_in_commit_rolls_back, long_header_rank15, long_header_padded, header_size_overflow,
    header_negative_extent,
    header_huge_extent, header_extent_not_a_number, empty_groups_with_stats,
    parse_error_one_line, bench_threads_range]}

if __name__ == "__main__":
    cli, work, name = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    for f in os.listdir(work):
        p = os.path.join(work, f)
        if os.path.isdir(p) and not os.path.islink(p):
            os.rmdir(p)
        else:
            os.remove(p)
    CASES[name](Rel(cli, work))
    print(f"{name}: passed")
