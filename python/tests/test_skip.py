"""groupnorm.group_norm's residual prologue (skip, skip_bias, return_sum): numpy arrays and
DLPack producers on the fused CPU kernels against a float64 reference of the float32 sum,
torch tensors through PyTorch's sum and our op (values and gradients), and bad input."""

import numpy as np
import pytest
import torch

import groupnorm
from conftest import assert_forward_contract, reference_activation_forward
from test_numpy import ForeignArray, activation_np, reference_np


def formed_sum(x, skip, skip_bias):
    """x + skip + skip_bias as the kernels form it (the contract: float32, (x + skip) +
    (skip_nc + skip_bias)), in x's dtype, and the float32 value normalized."""
    n, c = x.shape[:2]
    per_nc = (n, c) + (1,) * (x.ndim - 2)
    s = x.astype(np.float32)
    nc = np.zeros(per_nc, np.float32)
    if skip is not None:
        if skip.shape == x.shape:
            s = s + skip.astype(np.float32)
        else:
            nc = nc + skip.astype(np.float32).reshape(per_nc)
    if skip_bias is not None:
        nc = nc + skip_bias.astype(np.float32).reshape((1, c) + (1,) * (x.ndim - 2))
    s = (s + nc).astype(np.float32)
    return s.astype(x.dtype), s


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("skip_kind", ["full", "nc", "nc11", None])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_numpy_skip(channels_last, skip_kind, with_bias, activation, _seed):
    rng = np.random.default_rng(_seed)
    n, c, h, w, groups = 2, 12, 5, 7, 4
    x = (rng.standard_normal((n, c, h, w)) + 3.0).astype(np.float32)
    if channels_last:
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    skip = {"full": lambda: (rng.standard_normal(x.shape) - 1.0).astype(np.float32),
            "nc": lambda: rng.standard_normal((n, c)).astype(np.float32),
            "nc11": lambda: rng.standard_normal((n, c, 1, 1)).astype(np.float32),
            None: lambda: None}[skip_kind]()
    if skip is not None and skip.shape == x.shape and channels_last:
        skip = np.moveaxis(np.ascontiguousarray(np.moveaxis(skip, 1, -1)), -1, 1)
    skip_bias = rng.standard_normal(c).astype(np.float32) if with_bias else None
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)

    y, total = groupnorm.group_norm(x, groups, gamma, beta, activation=activation, skip=skip,
                                    skip_bias=skip_bias, return_sum=True)
    want_sum, normalized = formed_sum(x, skip, skip_bias)
    assert total.shape == x.shape and total.dtype == x.dtype
    assert total.strides == x.strides  # x's layout kind
    np.testing.assert_array_equal(total, want_sum)
    ref = reference_np(normalized, groups, gamma, beta)
    if activation:
        ref = activation_np(activation, ref)
    assert np.all(np.abs(y - ref) <= 1e-5 * (np.abs(ref) + 1))

    y_only = groupnorm.group_norm(x, groups, gamma, beta, activation=activation, skip=skip,
                                  skip_bias=skip_bias)
    # (Without skip and sum that is the plain kernel: other rounding, the same contract.)
    assert type(y_only) is np.ndarray
    assert np.all(np.abs(y_only - ref) <= 1e-5 * (np.abs(ref) + 1))


def test_dlpack_producer_skip(_seed):
    # A bare DLPack producer (neither numpy nor torch, no array namespace) on the CPU: read
    # through numpy views, results handed back as numpy arrays; with out= too.
    rng = np.random.default_rng(_seed)
    x = (rng.standard_normal((2, 8, 6)) + 2.0).astype(np.float32)
    skip = rng.standard_normal((2, 8, 6)).astype(np.float32)

    y, total = groupnorm.group_norm(ForeignArray(x), 4, skip=ForeignArray(skip), return_sum=True)
    want_sum, normalized = formed_sum(x, skip, None)
    np.testing.assert_array_equal(np.asarray(total), want_sum)
    ref = reference_np(normalized, 4)
    assert np.all(np.abs(np.asarray(y) - ref) <= 1e-5 * (np.abs(ref) + 1))
    out = np.full_like(x, np.nan)
    y2, total2 = groupnorm.group_norm(ForeignArray(x), 4, skip=ForeignArray(skip), return_sum=True,
                                      out=out)
    assert y2 is out
    np.testing.assert_array_equal(out, np.asarray(y))
    np.testing.assert_array_equal(np.asarray(total2), want_sum)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("skip_kind", ["full", "nc"])
def test_torch_skip_values_and_gradients(channels_last, skip_kind):
    n, c, groups = 2, 8, 4
    x = (torch.randn(n, c, 4, 5, dtype=torch.float64) + 1.0).float()
    skip = torch.randn(x.shape if skip_kind == "full" else (n, c), dtype=torch.float64).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        if skip_kind == "full":
            skip = skip.contiguous(memory_format=torch.channels_last)
    skip_bias = torch.randn(c).requires_grad_()
    weight = torch.empty(c).uniform_(0.5, 1.5).requires_grad_()
    bias = torch.randn(c).requires_grad_()
    x.requires_grad_()
    skip.requires_grad_()

    y, total = groupnorm.group_norm(x, groups, weight, bias, activation="silu", skip=skip,
                                    skip_bias=skip_bias, return_sum=True)
    per_nc = (n, c, 1, 1)
    want_total = x + (skip if skip_kind == "full" else skip.reshape(per_nc)) + \
        skip_bias.reshape(1, c, 1, 1)
    torch.testing.assert_close(total, want_total, rtol=0, atol=0)
    if channels_last:
        assert y.is_contiguous(memory_format=torch.channels_last)
    ref = reference_activation_forward(want_total.detach(), groups, weight, bias, 1e-5, "silu")
    assert torch.all((y.detach().double() - ref).abs() <= 1e-5 * (ref.abs() + 1))

    # Gradients through both outputs equal stock PyTorch's composition.
    dy, dsum = torch.randn_like(y), torch.randn_like(total)
    got = torch.autograd.grad((y * dy).sum() + (total * dsum).sum(),
                              (x, skip, skip_bias, weight, bias))
    want_total = x + (skip if skip_kind == "full" else skip.reshape(per_nc)) + \
        skip_bias.reshape(1, c, 1, 1)
    want_y = torch.nn.functional.silu(
        torch.nn.functional.group_norm(want_total, groups, weight, bias, 1e-5))
    want = torch.autograd.grad((want_y * dy).sum() + (want_total * dsum).sum(),
                               (x, skip, skip_bias, weight, bias))
    for name, g, w in zip(("x", "skip", "skip_bias", "weight", "bias"), got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=lambda m: f"d{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_skip_inference_runs_the_fused_kernel(dtype, channels_last, _seed):
    # Without autograd the fused kernel serves torch tensors: its sum is formed in float32
    # and rounded once (the composition rounds x + skip first), so it equals formed_sum's
    # bits; y is held to the contract on that sum.
    rng = np.random.default_rng(_seed)
    n, c, groups = 2, 8, 4
    as_t = lambda a: torch.from_numpy(a).to(dtype)
    x, skip = as_t(rng.standard_normal((n, c, 5, 6)) + 2.0), as_t(rng.standard_normal((n, c, 5, 6)))
    if channels_last:
        x, skip = (t.contiguous(memory_format=torch.channels_last) for t in (x, skip))
    skip_bias = as_t(rng.standard_normal(c))
    weight, bias = as_t(rng.uniform(0.5, 1.5, c)), as_t(rng.standard_normal(c))
    with torch.no_grad():
        y, total = groupnorm.group_norm(x, groups, weight, bias, activation="silu", skip=skip,
                                        skip_bias=skip_bias, return_sum=True)
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last
                           else torch.contiguous_format)
    f32 = lambda t: t.float().numpy()
    want_sum, normalized = formed_sum(f32(x), f32(skip), f32(skip_bias))
    assert torch.equal(total.float(), torch.from_numpy(normalized).to(dtype).float())
    ref = reference_activation_forward(torch.from_numpy(normalized).double(), groups,
                                       weight.double(), bias.double(), 1e-5, "silu")
    if dtype == torch.float32:
        assert torch.all((y.double() - ref).abs() <= 1e-5 * (ref.abs() + 1))
    else:  # the contract for half types: within 1 ulp of the rounded float64 result
        from conftest import within
        assert bool(within(y, ref, 1e-5 * (ref.abs() + 1)).all())


def test_torch_skip_inference_falls_back_for_other_layouts():
    # skip contiguous while x is channels-last: not the kernel's layout, so the composition.
    x = torch.randn(2, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    skip = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        y, total = groupnorm.group_norm(x, 4, skip=skip, return_sum=True)
    assert torch.equal(total, x + skip)
    assert_forward_contract(y, x + skip, 4, None, None, 1e-5)


def test_torch_skip_matches_plain_call_on_the_sum():
    x = torch.randn(2, 6, 3, 3)
    skip = torch.randn(2, 6, 3, 3)
    y = groupnorm.group_norm(x, 3, skip=skip)
    assert_forward_contract(y, x + skip, 3, None, None, 1e-5)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_skip_bad_input(kind):
    x = np.ones((2, 4, 3), np.float32)
    bad_skip = np.ones((4, 3), np.float32)  # neither x's shape nor (N, C)
    bad_bias = np.ones(3, np.float32)  # not (C,)
    if kind == "torch":
        x, bad_skip, bad_bias = (torch.from_numpy(a) for a in (x, bad_skip, bad_bias))
    with pytest.raises(groupnorm.InvalidArgumentError, match="skip"):
        groupnorm.group_norm(x, 2, skip=bad_skip)
    with pytest.raises(groupnorm.InvalidArgumentError, match="skip_bias"):
        groupnorm.group_norm(x, 2, skip_bias=bad_bias)
    with pytest.raises(groupnorm.InvalidArgumentError, match="return_sum"):
        groupnorm.group_norm(x, 2, return_sum=1)
    if kind == "numpy":
        with pytest.raises(groupnorm.InvalidArgumentError, match="skip"):
            groupnorm.group_norm(x, 2, skip=np.ones((2, 4, 3), np.float16))  # dtype
        with pytest.raises(groupnorm.UnsupportedError):
            groupnorm.group_norm(x.astype(np.float64), 2, skip=np.ones((2, 4, 3)))
    with pytest.raises(groupnorm.InvalidArgumentError, match="out must not be x"):
        groupnorm.group_norm(x, 2, skip=x, return_sum=True, out=x)
    if kind == "torch":
        with pytest.raises(groupnorm.InvalidArgumentError, match="skip_bias"):
            groupnorm.group_norm(x, 2, skip_bias=torch.ones(4, dtype=torch.int32))
