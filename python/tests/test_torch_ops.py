"""groupnorm.torch ops against stock PyTorch's float64 result: forward and backward within
the numerics contract, both memory formats, float32 / float16 / bfloat16 / float64 (against
a long double reference), odd shapes, and torch.autograd.gradcheck on the float64 kernels."""

import pytest
import torch

import groupnorm
import groupnorm.torch as gt
from conftest import (assert_forward_contract, assert_within, random_input, random_params,
                      reference_backward)

# (shape, groups): odd sizes, G = 1, G = C, S = 1, N = 1, 3-D, 5-D, 7x7 maps.
SHAPES = [
    ((2, 6, 5, 7), 3),
    ((1, 4, 1, 2), 4),
    ((2, 4, 1, 1), 2),
    ((3, 8, 7, 7), 1),
    ((2, 32, 3, 5), 32),
    ((1, 64, 9, 11), 32),
    ((2, 12, 13), 4),
    ((2, 16, 2, 3, 5), 4),
    ((4, 6, 1, 9), 2),
]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


@pytest.mark.parametrize("shape,groups", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_forward_backward_parity(shape, groups, dtype, channels_last):
    if channels_last and len(shape) not in (4, 5):
        pytest.skip("channels_last needs 4-D or 5-D")
    affine = shape[0] != 4  # one shape without weight and bias
    x = random_input(shape, dtype, channels_last).requires_grad_()
    w, b = random_params(shape[1], dtype, affine)
    eps = 1e-5

    y = gt.group_norm(x, groups, w, b, eps)
    assert y.dtype == dtype and y.shape == x.shape
    assert y.stride() == x.stride()  # memory format kept
    assert_forward_contract(y, x, groups, w, b, eps)

    dy = torch.randn(shape, dtype=torch.float64).to(dtype)
    inputs = [t for t in (x, w, b) if t is not None]
    grads = torch.autograd.grad(y, inputs, dy)
    (dx_ref, dw_ref, db_ref), (dx_bound, dw_bound, db_bound) = reference_backward(
        dy, x, groups, w, b, eps)
    assert grads[0].stride() == x.stride()
    assert_within("dx", grads[0], dx_ref, dx_bound)
    if affine:
        assert grads[1].dtype == dtype and grads[2].dtype == dtype
        assert_within("dweight", grads[1], dw_ref, dw_bound)
        assert_within("dbias", grads[2], db_ref, db_bound)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_float32_params_with_half_input(dtype):
    x = random_input((2, 8, 6, 6), dtype).requires_grad_()
    w, b = random_params(8, torch.float32, True)
    y = gt.group_norm(x, 4, w, b)
    assert_forward_contract(y, x, 4, w, b, 1e-5)
    dy = torch.randn_like(y)
    dx, dw, db = torch.autograd.grad(y, (x, w, b), dy)
    assert dw.dtype == torch.float32 and dx.dtype == dtype
    (dx_ref, dw_ref, db_ref), bounds = reference_backward(dy, x, 4, w, b, 1e-5)
    assert_within("dx", dx, dx_ref, bounds[0])
    assert_within("dweight", dw, dw_ref, bounds[1])
    assert_within("dbias", db, db_ref, bounds[2])


def test_dy_in_other_memory_format_and_expanded():
    x = random_input((2, 8, 5, 5), torch.float32, channels_last=True).requires_grad_()
    w, b = random_params(8, torch.float32, True)
    y = gt.group_norm(x, 2, w, b)
    # sum() hands back an expanded (zero-stride) dy: served by a copy in x's layout.
    dx, dw, db = torch.autograd.grad(y.sum() + (y * 0).sum(), (x, w, b))
    dy = torch.ones_like(x, memory_format=torch.contiguous_format)
    (dx_ref, dw_ref, db_ref), bounds = reference_backward(dy, x, 2, w, b, 1e-5)
    assert_within("dx", dx, dx_ref, bounds[0])
    assert_within("dweight", dw, dw_ref, bounds[1])


def test_other_layouts_are_made_contiguous():
    x = random_input((2, 6, 4, 5), torch.float32).transpose(2, 3).requires_grad_()
    y = gt.group_norm(x, 3)
    assert y.is_contiguous()
    assert_forward_contract(y, x, 3, None, None, 1e-5)


def test_only_weight_or_only_bias():
    x = random_input((2, 6, 4), torch.float32).requires_grad_()
    for w, b in ((torch.rand(6, requires_grad=True), None),
                 (None, torch.randn(6, requires_grad=True))):
        y = gt.group_norm(x, 3, w, b)
        assert_forward_contract(y, x, 3, w, b, 1e-5)
        dy = torch.randn_like(y)
        inputs = [t for t in (x, w, b) if t is not None]
        grads = torch.autograd.grad(y, inputs, dy)
        (dx_ref, dw_ref, db_ref), bounds = reference_backward(dy, x, 3, w, b, 1e-5)
        assert_within("dx", grads[0], dx_ref, bounds[0])
        assert_within("dparam", grads[1], dw_ref if w is not None else db_ref,
                      bounds[1] if w is not None else bounds[2])


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_gradcheck_float64_kernels(channels_last):
    """torch.autograd.gradcheck with its default tolerances (eps 1e-6, atol 1e-5, rtol
    1e-3), which assume float64 arithmetic: the ops run the float64 kernels."""
    x = random_input((2, 4, 3, 3), torch.float64, channels_last).requires_grad_()
    w = torch.empty(4, dtype=torch.float64).uniform_(0.5, 1.5).requires_grad_()
    b = torch.randn(4, dtype=torch.float64).requires_grad_()
    fn = lambda x, w, b: gt.group_norm(x, 2, w, b, 1e-5)
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradcheck(lambda x: gt.group_norm(x, 4), (x,))


def test_float64_runs_float64_kernels():
    """float64 in, float64 out, statistics in float64 (as PyTorch's): within the float64
    bound of a long double reference (float32 arithmetic would miss it by 1e7)."""
    x = random_input((2, 6, 5), torch.float64, mean=300.0)
    y, mean, rstd = torch.ops.groupnorm.forward(x, 3, None, None, 1e-5)
    assert y.dtype == mean.dtype == rstd.dtype == torch.float64
    assert_forward_contract(y, x, 3, None, None, 1e-5)
    ref_mean = x.reshape(2, 3, -1).mean(-1)
    assert (mean - ref_mean).abs().max() <= 1e-12 * 300
    # float32 parameters on float64 x: PyTorch refuses them, and so does groupnorm.torch
    # (the C API would call them unsupported).
    with pytest.raises(groupnorm.InvalidArgumentError, match="weight and bias must have x's dtype"):
        gt.group_norm(x, 3, torch.ones(6))


def test_errors_carry_library_message():
    x = torch.randn(2, 6, 4)
    with pytest.raises(groupnorm.InvalidArgumentError, match="must divide"):
        gt.group_norm(x, 4)
    with pytest.raises(groupnorm.InvalidArgumentError, match="gamma"):
        gt.group_norm(x, 3, torch.ones(5))
    with pytest.raises(groupnorm.UnsupportedError, match="int32"):
        gt.group_norm(torch.ones(2, 6, 4, dtype=torch.int32), 3)
    with pytest.raises(groupnorm.InvalidArgumentError, match="activation"):
        gt.group_norm(x, 3, activation="swish")


def test_out_poisoned_is_fully_written():
    x = random_input((2, 8, 3, 3), torch.float32, channels_last=True)
    out = torch.full_like(x, float("nan"))
    assert groupnorm.group_norm(x, 4, out=out) is out
    assert_forward_contract(out, x, 4, None, None, 1e-5)
    with pytest.raises(groupnorm.InvalidArgumentError, match="autograd"):
        groupnorm.group_norm(x.requires_grad_(), 4, out=out)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_registered_autograd_equals_eager_function(channels_last):
    """group_norm's eager autograd.Function and the op's register_autograd formula (what
    torch.compile traces) run the same kernels: the same bits."""
    x = random_input((2, 8, 5, 3), torch.float32, channels_last).requires_grad_()
    w, b = random_params(8, torch.float32, True)
    dy = torch.randn(x.shape).contiguous(memory_format=torch.channels_last)  # other layout
    y_eager = gt.group_norm(x, 4, w, b)
    y_op = torch.ops.groupnorm.forward(x, 4, w, b, 1e-5)[0]
    assert torch.equal(y_eager, y_op) and y_op.stride() == x.stride()
    for g_eager, g_op in zip(torch.autograd.grad(y_eager, (x, w, b), dy),
                             torch.autograd.grad(y_op, (x, w, b), dy)):
        assert torch.equal(g_eager, g_op)


def test_kernels_on_torch_threads_give_the_same_bits():
    """groupnorm.torch runs the kernels' loops on PyTorch's OpenMP threads: results are
    bit-identical for 1 and 2 threads and with the library's own pool."""
    x = random_input((4, 64, 17, 19), torch.float32).requires_grad_()
    w, b = random_params(64, torch.float32, True)
    dy = torch.randn(x.shape)
    threads = torch.get_num_threads()
    results = []
    try:
        for n, torch_pool in ((1, True), (2, True), (2, False)):
            torch.set_num_threads(n)
            gt.use_torch_threads(torch_pool)
            y = gt.group_norm(x, 8, w, b)
            results.append([y] + list(torch.autograd.grad(y, (x, w, b), dy)))
    finally:
        gt.use_torch_threads(True)
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, c in zip(results[0], other):
            assert torch.equal(a, c)


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap's loop fallback
def test_eager_path_leaves_modes_transforms_and_meta_to_the_ops():
    """Eager group_norm calls the kernels directly, but a dispatch mode still sees the op,
    vmap runs through the op's fallback, and meta tensors get the fake kernel's result."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    x = random_input((2, 8, 3, 3), torch.float32)
    for requires_grad, op in ((False, "groupnorm.forward_infer"), (True, "groupnorm.forward.")):
        with Record() as mode:
            y = gt.group_norm(x.clone().requires_grad_(requires_grad), 4)
        assert any(op in name for name in mode.ops), mode.ops
        assert_forward_contract(y, x, 4, None, None, 1e-5)
    xs = random_input((3, 2, 8, 3, 3), torch.float32)
    ys = torch.vmap(lambda t: gt.group_norm(t, 4))(xs)
    for i in range(3):
        assert_forward_contract(ys[i], xs[i], 4, None, None, 1e-5)
    meta = gt.group_norm(torch.empty(2, 8, 3, 3, device="meta"), 4)
    assert meta.device.type == "meta" and meta.shape == (2, 8, 3, 3)


def test_negative_views_are_resolved():
    """A negative view (x._neg_view()) reads as -x: the kernels must see the values, not
    the raw memory (a DLPack capsule or data_ptr drops the bit)."""
    base = random_input((2, 8, 3, 3), torch.float32)
    w, b = random_params(8, torch.float32, True)
    for requires_grad in (False, True):
        x = base._neg_view().requires_grad_(requires_grad)
        y = gt.group_norm(x, 4, w if requires_grad else w.detach(), b.detach()._neg_view())
        assert_forward_contract(y, -base, 4, w, -b.detach(), 1e-5)
    with pytest.raises(groupnorm.InvalidArgumentError, match="negative"):
        groupnorm.group_norm(base, 4, out=torch.empty_like(base)._neg_view())


def test_profiler_sees_the_eager_inference_call():
    x = random_input((2, 8, 3, 3), torch.float32)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        gt.group_norm(x, 4)
    assert any(e.key == "groupnorm::forward_infer" for e in prof.key_averages())


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_large_outputs_come_from_the_buffer_cache(channels_last):
    """Outputs of 256 KiB and more live in recycled buffers: live ones never share memory,
    freed ones are reused, results stay within the contract, set_buffer_cache(0) frees
    them."""
    from groupnorm import _ext

    x = random_input((2, 16, 64, 64), torch.float32, channels_last).requires_grad_()
    w, b = random_params(16, torch.float32, True)
    try:
        gt.set_buffer_cache(1 << 30)
        y1 = gt.group_norm(x, 4, w, b)
        y2 = gt.group_norm(x.detach(), 4, w.detach(), b.detach())
        assert y1.data_ptr() != y2.data_ptr() and y1.stride() == y2.stride() == x.stride()
        assert torch.equal(y1, y2)
        assert_forward_contract(y1, x, 4, w, b, 1e-5)
        ptr = y2.data_ptr()
        del y2
        assert _ext.buffer_cache_bytes() >= x.numel() * 4
        y3 = gt.group_norm(x.detach(), 4, w.detach(), b.detach())
        assert y3.data_ptr() == ptr and torch.equal(y1, y3)
        dy = torch.randn_like(y1)
        dx, dw, db = torch.autograd.grad(y1, (x, w, b), dy)
        assert dx.stride() == x.stride()
        (dx_ref, dw_ref, db_ref), bounds = reference_backward(dy, x, 4, w, b, 1e-5)
        assert_within("dx", dx, dx_ref, bounds[0])
        assert_within("dweight", dw, dw_ref, bounds[1])
        del dx, y3
        gt.set_buffer_cache(0)
        assert _ext.buffer_cache_bytes() == 0
    finally:
        gt.set_buffer_cache(1 << 30)
