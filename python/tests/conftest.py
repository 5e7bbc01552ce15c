"""Shared pieces of the Python tests: the float64 reference and the numerics contract
(docs/DESIGN.md section 1), the same bounds the C++ suite enforces."""

import os
from collections import Counter, defaultdict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

F32_BOUND = 1e-5
# float64: the same 84 units of rounding as float32's 1e-5, in float64's units (2^-52 vs
# 2^-23): 1e-5 * 2^-29 = 1.86e-14 (tests/reference.h).
F64_BOUND = F32_BOUND * 2.0 ** -29


def bound_for(dtype):
    return F64_BOUND if dtype == torch.float64 else F32_BOUND


@pytest.fixture(autouse=True)
def _seed(request):
    # A fresh seed per test, printed on failure (replay: GN_TEST_SEED=<seed>).
    seed = int(os.environ.get("GN_TEST_SEED", np.random.SeedSequence().entropy % 2**31))
    torch.manual_seed(seed)
    request.node.user_properties.append(("seed", seed))
    yield seed


_CONFORMANCE = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def conformance_counts(pytestconfig):
    """PyTorch conformance cases run, per dtype and kind (test_conformance.py), printed in
    the terminal summary."""
    return pytestconfig.stash.setdefault(_CONFORMANCE, defaultdict(Counter))


def pytest_terminal_summary(terminalreporter, config):
    counts = config.stash.get(_CONFORMANCE, None)
    if counts:
        terminalreporter.write_sep("-", "PyTorch GroupNorm conformance cases run, per dtype")
        for dtype in sorted(counts, key=str):
            terminalreporter.write_line("%s: %s" % (str(dtype).replace("torch.", ""), ", ".join(
                "%s %d" % kv for kv in sorted(counts[dtype].items()))))


def pytest_runtest_makereport(item, call):
    if call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception):
        for name, value in item.user_properties:
            if name == "seed":
                print("GN_TEST_SEED=%d" % value)


def ulp_distance(got, want):
    """Distance in units in the last place between two float16 / bfloat16 tensors."""
    def ordered(t):
        bits = t.contiguous().view(torch.int16).to(torch.int32)
        return torch.where(bits < 0, -(bits & 0x7FFF), bits)

    return (ordered(got) - ordered(want)).abs()


def within(got, want, bound):
    """The contract: |got - want| <= bound (float64 want), or for float16 / bfloat16 within
    1 ulp of want rounded to got's dtype. NaN where want is NaN."""
    got64 = got.detach().double()
    ok = (got64 - want).abs() <= bound
    if got.dtype in (torch.float16, torch.bfloat16):
        ok |= ulp_distance(got.detach(), want.to(got.dtype)) <= 1
    ok |= want.isnan() & got64.isnan()
    return ok


def assert_within(name, got, want, bound):
    ok = within(got, want, bound)
    if not bool(ok.all()):
        i = int((~ok).flatten().nonzero()[0])
        raise AssertionError(
            "%s: %d of %d values outside the contract; first at flat index %d: got %r, "
            "reference %r, bound %r" % (name, int((~ok).sum()), ok.numel(), i,
                                         got.detach().double().flatten()[i].item(),
                                         want.flatten()[i].item(),
                                         torch.as_tensor(bound).expand_as(want).flatten()[i].item()))


def _ld(t, shape=None):
    """t as a numpy long double array (x86: a 64-bit significand, 2^11 finer than float64),
    reshaped for broadcasting over (N, C, *) when shape is given."""
    assert np.finfo(np.longdouble).nmant >= 63, "the float64 references need an 80-bit long double"
    a = t.detach().cpu().numpy().astype(np.longdouble)
    return a if shape is None else a.reshape((1, shape[1]) + (1,) * (len(shape) - 2))


def _group_size(x, num_groups):
    # Explicit: reshape cannot infer -1 for N = 0.
    return x.shape[1] // num_groups * int(np.prod(x.shape[2:], dtype=np.int64))


def reference_forward(x, num_groups, weight, bias, eps):
    """torch.nn.functional.group_norm in float64 of the same (rounded) inputs; for float64
    x, GroupNorm in long double (numpy), rounded to float64: stock float64 rounds like the
    kernels it would judge."""
    if x.dtype != torch.float64:
        d = lambda t: None if t is None else t.detach().double()
        return torch.nn.functional.group_norm(d(x), num_groups, d(weight), d(bias), eps)
    xg = _ld(x).reshape(x.shape[0], num_groups, _group_size(x, num_groups))
    mean = xg.mean(-1, keepdims=True)
    y = ((xg - mean) / np.sqrt(((xg - mean) ** 2).mean(-1, keepdims=True) + eps)).reshape(x.shape)
    if weight is not None:
        y = y * _ld(weight, x.shape)
    if bias is not None:
        y = y + _ld(bias, x.shape)
    return torch.from_numpy(y.astype(np.float64))


def assert_forward_contract(y, x, num_groups, weight, bias, eps):
    ref = reference_forward(x, num_groups, weight, bias, eps)
    assert_within("y", y, ref, bound_for(x.dtype) * (ref.abs() + 1))


def _reference_backward_ld(dy, x, num_groups, weight, eps):
    """dx, dweight, dbias of GroupNorm in long double (numpy), as float64 tensors."""
    n, c = x.shape[:2]
    xg = _ld(x).reshape(n, num_groups, _group_size(x, num_groups))
    mean = xg.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(((xg - mean) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (xg - mean) * rstd
    w = np.ones(c, np.longdouble) if weight is None else _ld(weight)
    dyl = _ld(dy)
    gdy = (dyl * w.reshape((1, c) + (1,) * (x.dim() - 2))).reshape(xg.shape)
    dx = rstd * (gdy - gdy.mean(-1, keepdims=True) - xhat * (gdy * xhat).mean(-1, keepdims=True))
    reduce = (0,) + tuple(range(2, x.dim()))
    dw = (dyl * xhat.reshape(x.shape)).sum(reduce)
    as64 = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float64))
    return as64(dx.reshape(x.shape)), as64(dw), as64(dyl.sum(reduce))


def reference_backward(dy, x, num_groups, weight, bias, eps):
    """float64 gradients (dx, dweight, dbias) and their contract bounds: dx within
    1e-5 (|ref| + rms over the group of rstd * weight * dy); dweight, dbias within
    1e-5 (|ref| + the sum of the absolute values of their terms). float64 x: the gradients
    in long double (numpy) and the float64 bound."""
    x64 = x.detach().double().requires_grad_()
    w64 = None if weight is None else weight.detach().double().requires_grad_()
    b64 = None if bias is None else bias.detach().double().requires_grad_()
    dy64 = dy.detach().double()
    y = torch.nn.functional.group_norm(x64, num_groups, w64, b64, eps)
    inputs = [t for t in (x64, w64, b64) if t is not None]
    grads = torch.autograd.grad(y, inputs, dy64)
    dx = grads[0]
    dw = grads[1] if w64 is not None else None
    db = grads[-1] if b64 is not None else None
    if x.dtype == torch.float64:
        dx, dw_ld, db_ld = _reference_backward_ld(dy, x, num_groups, weight, eps)
        dw = None if dw is None else dw_ld
        db = None if db is None else db_ld

    if x.numel() == 0:  # N = 0: the gradients are empty or exact zeros
        zero = lambda t: None if t is None else torch.zeros_like(t)  # noqa: E731
        return (dx, dw, db), (zero(dx), zero(dw), zero(db))

    n, c = x.shape[:2]
    xg = x64.detach().reshape(n, num_groups, -1)
    mean = xg.mean(-1, keepdim=True)
    rstd = (xg.var(-1, unbiased=False, keepdim=True) + eps).rsqrt()
    xhat = ((xg - mean) * rstd).reshape(x.shape)
    w_b = (w64.detach() if w64 is not None else torch.ones(c, dtype=torch.float64))
    w_b = w_b.reshape((1, c) + (1,) * (x.dim() - 2))
    scaled = (dy64 * w_b).reshape(n, num_groups, -1) * rstd
    dx_scale = scaled.pow(2).mean(-1, keepdim=True).sqrt().expand_as(scaled).reshape(x.shape)
    reduce = [0] + list(range(2, x.dim()))
    dw_abs = (dy64.abs() * (xhat.abs() + 1)).sum(reduce)
    db_abs = dy64.abs().sum(reduce)
    bound = bound_for(x.dtype)
    bounds = (bound * (dx.abs() + dx_scale),
              None if dw is None else bound * (dw.abs() + dw_abs),
              None if db is None else bound * (db.abs() + db_abs))
    return (dx, dw, db), bounds


# The fused activations (groupnorm.ACTIVATIONS) as torch.nn.functional computes them: the
# unfused composition GroupNorm then the activation is the reference.
ACTIVATION_FNS = {
    "silu": torch.nn.functional.silu,
    "relu": torch.nn.functional.relu,
    "gelu": torch.nn.functional.gelu,
    "gelu_tanh": lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
}


def reference_activation_forward(x, num_groups, weight, bias, eps, activation):
    """act(GroupNorm(x)) in float64: torch's float64 activation of reference_forward."""
    return ACTIVATION_FNS[activation](reference_forward(x, num_groups, weight, bias, eps))


def reference_activation_backward(dy, x, num_groups, weight, bias, eps, activation):
    """The gradients (dx, dweight, dbias) of act(GroupNorm(x)) and their bounds, as the C++
    suite's BackwardCase::fused_reference: dz = dy act'(z) in float64 (torch's float64
    activation backward at z = reference_forward), then reference_backward's gradients of
    dz; the bounds are plain GroupNorm's for the incoming dy (the contract's scales are the
    op's incoming gradient's: act' has roots and tiny tails)."""
    z = reference_forward(x, num_groups, weight, bias, eps).requires_grad_()
    dz, = torch.autograd.grad(ACTIVATION_FNS[activation](z), z, dy.detach().double())
    grads, _ = reference_backward(dz, x, num_groups, weight, bias, eps)
    _, bounds = reference_backward(dy, x, num_groups, weight, bias, eps)
    return grads, bounds


def avoid_relu_kink(x, num_groups, weight, bias, eps):
    """ReLU's derivative jumps at z = 0, where float32 and float64 may put z on different
    sides: x with the elements whose float64 z is within 1e-4 of 0 moved away from it (z by
    ~0.02), in x's dtype and memory format (the C++ suite's BackwardCase::avoid_kink)."""
    n, c = x.shape[:2]
    per_channel = (1, c) + (1,) * (x.dim() - 2)
    w = torch.ones(per_channel, dtype=torch.float64) if weight is None else \
        weight.detach().double().reshape(per_channel)
    x = x.detach()
    for _ in range(8):
        z = reference_forward(x, num_groups, weight, bias, eps)
        near = z.abs() < 1e-4
        if not bool(near.any()):
            break
        xg = x.double().reshape(n, num_groups, -1)
        rstd = (xg.var(-1, unbiased=False, keepdim=True) + eps).rsqrt()
        slope = (rstd.expand_as(xg).reshape(x.shape) * w).abs().clamp_min(1e-30)
        moved = x.double() + torch.where(near, 0.02 / slope, torch.zeros_like(slope))
        x = torch.empty_like(x).copy_(moved)  # x's dtype and memory format
    return x


def random_params(c, dtype, affine):
    """weight ~ U(0.5, 1.5) and bias ~ N(0, 1) of c channels in dtype, requiring grad, or
    (None, None) without affine."""
    if not affine:
        return None, None
    w = torch.empty(c, dtype=torch.float64).uniform_(0.5, 1.5).to(dtype).requires_grad_()
    b = torch.randn(c, dtype=torch.float64).to(dtype).requires_grad_()
    return w, b


def random_input(shape, dtype, channels_last=False, mean=0.5):
    x = (torch.randn(shape, dtype=torch.float64) + mean).to(dtype)
    if channels_last:
        fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        x = x.contiguous(memory_format=fmt)
    return x
