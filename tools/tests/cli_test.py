"""CLI.* tests: `groupnorm run` on small .npy files against a float64 numpy reference.

Usage: cli_test.py CLI_EXE WORK_DIR CASE. Prints "SKIPPED: ..." (ctest's skip marker)
when numpy is missing.
"""
import math
import os
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print(f"SKIPPED: numpy is not installed for {sys.executable}")
    sys.exit(0)

rng = np.random.default_rng(1234)


def data(shape, dtype=np.float32):
    """Random data with a non-zero mean (GroupNorm must not rely on mean ~ 0)."""
    return (rng.standard_normal(shape) * 2.0 + 3.0).astype(dtype)


def ref_type(x):
    """The reference's arithmetic: float64, or numpy's long double for float64 data (x86:
    a 64-bit significand, 2^11 finer than the float64 results it judges)."""
    if np.asarray(x).dtype != np.float64:
        return np.float64
    assert np.finfo(np.longdouble).nmant >= 63, "the float64 reference needs an 80-bit long double"
    return np.longdouble


def bound(dtype):
    """The contract's relative bound: 1e-5 (84 units of float32 rounding); float64 the same
    84 units of its own rounding, 1e-5 * 2^-29 (tests/reference.h)."""
    return 1e-5 * 2.0 ** -29 if dtype == np.float64 else 1e-5


def reference(x, groups, eps=1e-5, weight=None, bias=None, channels_last=False):
    """float64 GroupNorm of x (N, C, *) or, channels-last, (N, *, C): y, mean, rstd
    (long double for float64 x)."""
    rt = ref_type(x)
    x = np.asarray(x, rt)
    if channels_last:
        x = np.moveaxis(x, -1, 1)
    n, c = x.shape[:2]
    xg = x.reshape(n, groups, -1)
    mean = xg.mean(axis=2)
    rstd = 1.0 / np.sqrt(((xg - mean[..., None]) ** 2).mean(axis=2) + eps)
    y = ((xg - mean[..., None]) * rstd[..., None]).reshape(x.shape)
    bshape = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * np.asarray(weight, rt).reshape(bshape)
    if bias is not None:
        y = y + np.asarray(bias, rt).reshape(bshape)
    if channels_last:
        y = np.moveaxis(y, 1, -1)
    return y, mean, rstd


def check_close(name, got, ref, dtype):
    """float32: |got - ref| <= 1e-5 (|ref| + 1), float64 the same with bound(float64);
    float16: within 1 ulp of round(ref)."""
    assert got.shape == ref.shape, f"{name}: shape {got.shape} != {ref.shape}"
    assert got.dtype == dtype, f"{name}: dtype {got.dtype} != {dtype}"
    got64 = got.astype(ref.dtype)
    if dtype == np.float16:
        rounded = ref.astype(np.float16)
        limit = np.abs(np.spacing(rounded)).astype(np.float64)
        err = np.abs(got64 - rounded.astype(np.float64))
    else:
        limit = bound(dtype) * (np.abs(ref) + 1)
        err = np.abs(got64 - ref)
    worst = np.argmax(err - limit)
    assert np.all(err <= limit), (
        f"{name}: error {float(err.flat[worst]):.3g} > {float(limit.flat[worst]):.3g} at {worst}")


def reference_backward(x, dy, groups, weight=None, eps=1e-5, channels_last=False):
    """float64 gradients of GroupNorm: dx, dweight, dbias, and the contract's scales
    (per-element dx scale: rms of rstd * weight * dy over the group; per-channel sums of
    |dy| (|xhat| + 1) and |dy|)."""
    rt = ref_type(x)
    x, dy = np.asarray(x, rt), np.asarray(dy, rt)
    if channels_last:
        x, dy = np.moveaxis(x, -1, 1), np.moveaxis(dy, -1, 1)
    n, c = x.shape[:2]
    bshape = (1, c) + (1,) * (x.ndim - 2)
    w = np.ones(c, rt) if weight is None else np.asarray(weight, rt)
    xg = x.reshape(n, groups, -1)
    mean = xg.mean(axis=2, keepdims=True)
    rstd = 1.0 / np.sqrt(((xg - mean) ** 2).mean(axis=2, keepdims=True) + eps)
    xhat = ((xg - mean) * rstd).reshape(x.shape)
    gdy = (dy * w.reshape(bshape)).reshape(n, groups, -1)
    xh = xhat.reshape(n, groups, -1)
    dx = rstd * (gdy - gdy.mean(axis=2, keepdims=True) - xh * (gdy * xh).mean(axis=2, keepdims=True))
    scale = np.sqrt(((rstd * gdy) ** 2).mean(axis=2, keepdims=True)) * np.ones_like(dx)
    axes = (0,) + tuple(range(2, x.ndim))
    dweight, dbias = (dy * xhat).sum(axis=axes), dy.sum(axis=axes)
    dweight_abs = (np.abs(dy) * (np.abs(xhat) + 1)).sum(axis=axes)
    dbias_abs = np.abs(dy).sum(axis=axes)
    dx, scale = dx.reshape(x.shape), scale.reshape(x.shape)
    if channels_last:
        dx, scale = np.moveaxis(dx, 1, -1), np.moveaxis(scale, 1, -1)
    return (dx, scale), (dweight, dweight_abs), (dbias, dbias_abs)


def check_grad(name, got, ref, dtype):
    """The gradient contract: |got - ref| <= bound (|ref| + scale); float16 also passes
    within 1 ulp of round(ref)."""
    ref, scale = ref
    assert got.shape == ref.shape, f"{name}: shape {got.shape} != {ref.shape}"
    assert got.dtype == dtype, f"{name}: dtype {got.dtype} != {dtype}"
    err = np.abs(got.astype(ref.dtype) - ref)
    ok = err <= bound(dtype) * (np.abs(ref) + scale)
    if dtype == np.float16:
        rounded = ref.astype(np.float16)
        ok |= np.abs(got.astype(np.float64) - rounded) <= np.abs(np.spacing(rounded))
    worst = np.argmax(np.where(ok, 0, err))
    assert np.all(ok), f"{name}: error {err.flat[worst]:.3g} at {worst}"


class Case:
    def __init__(self, cli, work):
        self.cli, self.work = cli, work

    def path(self, name):
        return os.path.join(self.work, name)

    def save(self, name, array):
        np.save(self.path(name), array)
        return self.path(name)

    def run(self, *args):
        return subprocess.run([self.cli, "run", *map(str, args)], capture_output=True, text=True)

    def ok(self, *args):
        r = self.run(*args)
        assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
        assert r.stderr == "", f"unexpected stderr: {r.stderr}"

    def forward(self, x, groups, weight=None, bias=None, channels_last=False, stats=False,
                ref_dtype=None):
        """Runs the CLI on x and checks y (and mean/rstd) against the reference."""
        args = ["--groups", groups, "--input", self.save("x.npy", x),
                "--output", self.path("y.npy")]
        if weight is not None:
            args += ["--weight", self.save("w.npy", weight)]
        if bias is not None:
            args += ["--bias", self.save("b.npy", bias)]
        if channels_last:
            args.append("--channels-last")
        if stats:
            args += ["--mean", self.path("mean.npy"), "--rstd", self.path("rstd.npy")]
        self.ok(*args)
        y, mean, rstd = reference(x, groups, weight=weight, bias=bias, channels_last=channels_last)
        check_close("y", np.load(self.path("y.npy")), y, x.dtype)
        if stats:
            # The statistics' dtype: float32, float64 for float64 x (the C API's).
            sdtype = np.float64 if x.dtype == np.float64 else np.float32
            check_close("mean", np.load(self.path("mean.npy")), mean, sdtype)
            check_close("rstd", np.load(self.path("rstd.npy")), rstd, sdtype)

    def backward(self, x, dy, groups, weight=None, channels_last=False, outputs=("dx", "dweight", "dbias")):
        """Runs `groupnorm backward` and checks the requested gradients."""
        args = ["backward", "--groups", groups, "--input", self.save("x.npy", x),
                "--dy", self.save("dy.npy", dy)]
        if weight is not None:
            args += ["--weight", self.save("w.npy", weight)]
        if channels_last:
            args.append("--channels-last")
        for o in outputs:
            args += ["--" + o, self.path(o + ".npy")]
        r = subprocess.run([self.cli, *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0 and r.stderr == "", f"exit {r.returncode}: {r.stderr}"
        dx, dw, db = reference_backward(x, dy, groups, weight=weight, channels_last=channels_last)
        pdtype = (np.float64 if x.dtype == np.float64 else np.float32) if weight is None else weight.dtype
        want = {"dx": (dx, x.dtype), "dweight": (dw, pdtype), "dbias": (db, pdtype)}
        for name in ("dx", "dweight", "dbias"):
            if name in outputs:
                check_grad(name, np.load(self.path(name + ".npy")), *want[name])
            else:
                assert not os.path.exists(self.path(name + ".npy")), f"{name} written unasked"

    def fails(self, *args):
        """Bad input: exit code 2, one line on stderr, no outputs and no temporaries."""
        before = set(os.listdir(self.work))
        outs = [self.path(n) for n in ("y.npy", "mean.npy", "rstd.npy")]
        r = self.run(*args, "--output", outs[0], "--mean", outs[1], "--rstd", outs[2])
        assert r.returncode == 2, f"exit {r.returncode}, stderr {r.stderr!r}"
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].strip(), f"stderr is not one line: {r.stderr!r}"
        assert r.stdout == "", f"unexpected stdout: {r.stdout!r}"
        created = set(os.listdir(self.work)) - before
        assert not created, f"files written on failure: {sorted(created)}"
        print("rejected as expected:", lines[0])
        return lines[0]


# Passing cases: (N, C, *) float32 and float16, layouts, affine combinations, statistics.
def f32_affine(t):
    t.forward(data((2, 8, 5, 3)), 4, weight=data(8), bias=data(8))


def f32_no_affine(t):
    t.forward(data((3, 6, 7)), 3)


def f32_rank2(t):
    t.forward(data((4, 6)), 2, weight=data(6), bias=data(6))


def f32_weight_only(t):
    t.forward(data((2, 4, 9)), 2, weight=data(4))


def f32_bias_only(t):
    t.forward(data((2, 4, 9)), 2, bias=data(4))


def f32_channels_last(t):
    t.forward(data((2, 5, 3, 8)), 4, weight=data(8), bias=data(8), channels_last=True)


def f32_channels_last_5d(t):
    t.forward(data((1, 3, 4, 5, 12)), 3, channels_last=True, stats=True)


def f32_mean_rstd(t):
    t.forward(data((2, 8, 6, 6)), 4, weight=data(8), bias=data(8), stats=True)


def f16(t):
    t.forward(data((2, 8, 7, 5), np.float16), 2, weight=data(8, np.float16),
              bias=data(8, np.float16))


def f16_f32_params(t):
    t.forward(data((2, 8, 7, 5), np.float16), 4, weight=data(8), bias=data(8), stats=True)


def f64_mean_rstd(t):
    """float64 in and out, float64 statistics, against a long double reference."""
    t.forward(data((2, 8, 6, 6), np.float64), 4, weight=data(8, np.float64),
              bias=data(8, np.float64), stats=True)


def f64_channels_last(t):
    t.forward(data((2, 5, 3, 8), np.float64), 4, channels_last=True, stats=True)


def bad_f64_f32_weight(t):
    """float64 x takes float64 parameters only (as PyTorch)."""
    x, w = t.save("x.npy", data((2, 6, 8), np.float64)), t.save("w.npy", data(6))
    assert "gamma has dtype float32" in t.fails("--groups", 3, "--input", x, "--weight", w)


def f16_channels_last(t):
    t.forward(data((2, 6, 6, 16), np.float16), 8, weight=data(16, np.float16),
              channels_last=True)


# Backward: gradients against the float64 reference.
def bwd_f32(t):
    t.backward(data((2, 8, 5, 3)), data((2, 8, 5, 3)), 4, weight=data(8))


def bwd_f32_no_weight_channels_last(t):
    t.backward(data((2, 5, 3, 8)), data((2, 5, 3, 8)), 2, channels_last=True)


def bwd_f16_f32_weight(t):
    t.backward(data((2, 8, 7, 5), np.float16), data((2, 8, 7, 5), np.float16), 4,
               weight=data(8))


def bwd_f64(t):
    t.backward(data((2, 8, 5, 3), np.float64), data((2, 8, 5, 3), np.float64), 4,
               weight=data(8, np.float64))


def bwd_f64_no_weight_channels_last(t):
    t.backward(data((2, 5, 3, 8), np.float64), data((2, 5, 3, 8), np.float64), 2,
               channels_last=True)


def bwd_only_dbias(t):
    t.backward(data((3, 6, 7)), data((3, 6, 7)), 3, weight=data(6), outputs=("dbias",))


def bad_bwd_dy_shape(t):
    """dy of the wrong shape: exit 2, one line, nothing written."""
    before = set(os.listdir(t.work))
    x, dy = t.save("x.npy", data((2, 6, 8))), t.save("dy.npy", data((2, 6, 7)))
    r = subprocess.run([t.cli, "backward", "--groups", "3", "--input", x, "--dy", dy,
                        "--dx", t.path("dx.npy"), "--dbias", t.path("db.npy")],
                       capture_output=True, text=True)
    assert r.returncode == 2, f"exit {r.returncode}, stderr {r.stderr!r}"
    assert len(r.stderr.splitlines()) == 1 and "--dy" in r.stderr, r.stderr
    created = set(os.listdir(t.work)) - before - {"x.npy", "dy.npy"}
    assert not created, f"files written on failure: {sorted(created)}"


# Bad input: each must exit 2 with a one-line message naming the problem.
def bad_missing_file(t):
    msg = t.fails("--groups", 2, "--input", t.path("absent.npy"))
    assert "absent.npy" in msg


def bad_not_npy(t):
    with open(t.path("junk.npy"), "wb") as f:
        f.write(b"this is not an npy file at all")
    assert "junk.npy" in t.fails("--groups", 2, "--input", t.path("junk.npy"))


def bad_truncated(t):
    x = t.save("x.npy", data((2, 4, 8)))
    with open(x, "r+b") as f:
        f.truncate(os.path.getsize(x) - 10)
    assert "truncated" in t.fails("--groups", 2, "--input", x)


def bad_dtype(t):
    x = t.save("x.npy", data((2, 4, 8), np.int32))
    assert "<i4" in t.fails("--groups", 2, "--input", x)


def bad_fortran(t):
    x = t.save("x.npy", np.asfortranarray(data((2, 4, 8))))
    assert "Fortran" in t.fails("--groups", 2, "--input", x)


def bad_rank(t):
    x = t.save("x.npy", data((8,)))
    assert "rank" in t.fails("--groups", 2, "--input", x)


def bad_groups(t):
    x = t.save("x.npy", data((2, 6, 8)))
    assert "num_groups" in t.fails("--groups", 4, "--input", x)


def bad_weight_length(t):
    x, w = t.save("x.npy", data((2, 6, 8))), t.save("w.npy", data(7))
    assert "gamma" in t.fails("--groups", 3, "--input", x, "--weight", w)


def bad_weight_dtype(t):
    x, w = t.save("x.npy", data((2, 6, 8))), t.save("w.npy", data(6, np.float16))
    assert "gamma" in t.fails("--groups", 3, "--input", x, "--weight", w)


ACTIVATIONS = {
    "silu": lambda z: z / (1.0 + np.exp(-z)),
    "relu": lambda z: np.where(z < 0, 0.0, z),
    "gelu": lambda z: 0.5 * z * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0))),
    "gelu_tanh": lambda z: 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3))),
}


def f32_activation(t):
    """--activation fuses act(GroupNorm(x)); both layouts; a bad name is refused."""
    x, w, b = data((2, 8, 5, 3)), data(8), data(8)
    for channels_last in (False, True):
        xx = np.moveaxis(x, 1, -1).copy() if channels_last else x
        for name, act in ACTIVATIONS.items():
            args = ["--groups", 4, "--input", t.save("x.npy", xx), "--output", t.path("y.npy"),
                    "--weight", t.save("w.npy", w), "--bias", t.save("b.npy", b),
                    "--activation", name]
            if channels_last:
                args.append("--channels-last")
            t.ok(*args)
            y, _, _ = reference(xx, 4, weight=w, bias=b, channels_last=channels_last)
            check_close(name, np.load(t.path("y.npy")), act(y), np.float32)
    assert "activation" in t.fails("--groups", 4, "--input", t.save("x.npy", x), "--activation", "tanh")


def f32_skip(t):
    """--skip/--skip-bias/--sum: GroupNorm(x + skip + skip_bias), the sum written; both
    layouts, a skip of x's shape and one per (N, C), with and without an activation."""
    x, w, b = data((2, 8, 5, 3)), data(8), data(8)
    skip, skip_nc, skip_bias = data((2, 8, 5, 3)), data((2, 8)), data(8)
    for channels_last in (False, True):
        for per_nc, act in ((False, "none"), (True, "silu")):
            x64 = x.astype(np.float64)
            if per_nc:
                total = x64 + skip_nc[:, :, None, None] + skip_bias[None, :, None, None]
                skip_file = skip_nc
            else:
                total = x64 + skip + skip_bias[None, :, None, None]
                skip_file = skip
            xx, tt = x, total
            if channels_last:
                xx, tt = np.moveaxis(x, 1, -1).copy(), np.moveaxis(total, 1, -1).copy()
                if not per_nc:
                    skip_file = np.moveaxis(skip, 1, -1).copy()
            args = ["--groups", 4, "--input", t.save("x.npy", xx), "--output", t.path("y.npy"),
                    "--weight", t.save("w.npy", w), "--bias", t.save("b.npy", b),
                    "--skip", t.save("skip.npy", skip_file),
                    "--skip-bias", t.save("sb.npy", skip_bias), "--sum", t.path("sum.npy"),
                    "--activation", act]
            if channels_last:
                args.append("--channels-last")
            t.ok(*args)
            y, _, _ = reference(tt, 4, weight=w, bias=b, channels_last=channels_last)
            act_fn = (lambda z: z) if act == "none" else ACTIVATIONS[act]
            check_close("y", np.load(t.path("y.npy")), act_fn(y), np.float32)
            check_close("sum", np.load(t.path("sum.npy")), tt, np.float32)
    bad = t.fails("--groups", 4, "--input", t.save("x.npy", x),
                  "--skip", t.save("skip.npy", data((2, 4))))
    assert "config->skip" in bad, bad


CASES = {f.__name__: f for f in [
    f32_activation, f32_skip,
    f32_affine, f32_no_affine, f32_rank2, f32_weight_only, f32_bias_only, f32_channels_last,
    f32_channels_last_5d, f32_mean_rstd, f16, f16_f32_params, f16_channels_last,
    f64_mean_rstd, f64_channels_last, bad_f64_f32_weight, bwd_f64, bwd_f64_no_weight_channels_last,
    bad_missing_file, bad_not_npy, bad_truncated, bad_dtype, bad_fortran, bad_rank,
    bad_groups, bad_weight_length, bad_weight_dtype, bwd_f32, bwd_f32_no_weight_channels_last,
    bwd_f16_f32_weight, bwd_only_dbias, bad_bwd_dy_shape]}

if __name__ == "__main__":
    cli, work, name = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    for f in os.listdir(work):
        os.remove(os.path.join(work, f))
    CASES[name](Case(cli, work))
    print(f"{name}: passed")
