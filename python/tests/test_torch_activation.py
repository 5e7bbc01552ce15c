"""groupnorm.torch with a fused activation (activation="silu" | "relu" | "gelu" |
"gelu_tanh"): forward and backward against stock PyTorch's GroupNorm followed by the
activation in float64, within the numerics contract (the C++ suite's fused bounds: plain
GroupNorm's, scaled by the incoming gradient), both memory formats, float32 / float16 /
bfloat16 and float64 (the unfused fallback: our float64 kernel, then PyTorch's activation),
with and without weight and bias; the registered ops, torch.compile, gradcheck, the module
option and the errors."""

import copy
import pickle

import pytest
import torch
from torch import nn

import groupnorm
import groupnorm.torch as gt
from conftest import (ACTIVATION_FNS, assert_within, avoid_relu_kink, bound_for, random_input,
                      random_params, reference_activation_backward, reference_activation_forward)

ACTIVATIONS = ["silu", "relu", "gelu", "gelu_tanh"]
CODES = groupnorm.ACTIVATIONS
# (shape, groups): odd sizes, G = C, 3-D, 4-D, 5-D.
SHAPES = [((2, 6, 5, 7), 3), ((2, 32, 3, 5), 32), ((1, 64, 9, 11), 32), ((2, 12, 13), 4),
          ((2, 16, 2, 3, 5), 4)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def _input(shape, groups, dtype, channels_last, w, b, activation, eps=1e-5):
    x = random_input(shape, dtype, channels_last)
    if activation == "relu":
        x = avoid_relu_kink(x, groups, w, b, eps)
    return x.requires_grad_()


def _check(y, x, groups, w, b, eps, activation, dy, grads):
    """y and the gradients (of x, then w and b when given) against the float64 reference."""
    ref = reference_activation_forward(x, groups, w, b, eps, activation)
    assert_within("y", y, ref, bound_for(x.dtype) * (ref.abs() + 1))
    (dx_ref, dw_ref, db_ref), (dx_bound, dw_bound, db_bound) = reference_activation_backward(
        dy, x, groups, w, b, eps, activation)
    assert grads[0].dtype == x.dtype and grads[0].stride() == x.stride()
    assert_within("dx", grads[0], dx_ref, dx_bound)
    if w is not None:
        assert grads[1].dtype == w.dtype and grads[2].dtype == b.dtype
        assert_within("dweight", grads[1], dw_ref, dw_bound)
        assert_within("dbias", grads[2], db_ref, db_bound)


@pytest.mark.parametrize("shape,groups", SHAPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_forward_backward_parity(shape, groups, activation, dtype, channels_last, affine):
    if channels_last and len(shape) not in (4, 5):
        pytest.skip("channels_last needs 4-D or 5-D")
    w, b = random_params(shape[1], dtype, affine)
    x = _input(shape, groups, dtype, channels_last, w, b, activation)
    eps = 1e-5
    y = gt.group_norm(x, groups, w, b, eps, activation=activation)
    assert y.dtype == dtype and y.shape == x.shape and y.stride() == x.stride()
    dy = torch.randn(shape, dtype=torch.float64).to(dtype)
    inputs = [t for t in (x, w, b) if t is not None]
    _check(y, x, groups, w, b, eps, activation, dy, torch.autograd.grad(y, inputs, dy))
    # Without autograd (the inference path, no statistics kept): the same bits.
    with torch.no_grad():
        assert torch.equal(gt.group_norm(x, groups, w, b, eps, activation=activation), y)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_float32_params_with_half_input(activation, dtype):
    w, b = random_params(8, torch.float32, True)
    x = _input((2, 8, 6, 6), 4, dtype, False, w, b, activation)
    y = gt.group_norm(x, 4, w, b, activation=activation)
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, w, b), dy)
    assert grads[1].dtype == grads[2].dtype == torch.float32
    _check(y, x, 4, w, b, 1e-5, activation, dy, grads)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_only_weight_or_only_bias(activation):
    """The backward recomputes z from the forward's bias: with a bias and no weight too."""
    for affine in ("weight", "bias"):
        w, b = random_params(6, torch.float32, True)
        w, b = (w, None) if affine == "weight" else (None, b)
        x = _input((2, 6, 4, 5), 3, torch.float32, False, w, b, activation)
        y = gt.group_norm(x, 3, w, b, activation=activation)
        ref = reference_activation_forward(x, 3, w, b, 1e-5, activation)
        assert_within("y", y, ref, bound_for(x.dtype) * (ref.abs() + 1))
        dy = torch.randn_like(y)
        param = w if w is not None else b
        dx, dparam = torch.autograd.grad(y, (x, param), dy)
        grads, bounds = reference_activation_backward(dy, x, 3, w, b, 1e-5, activation)
        assert_within("dx", dx, grads[0], bounds[0])
        k = 1 if w is not None else 2
        assert_within("dparam", dparam, grads[k], bounds[k])


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_registered_ops_equal_eager_path(activation, dtype, channels_last):
    """groupnorm::forward / forward_infer / backward with the activation code (what
    torch.compile traces) and the eager path run the same kernels: the same bits."""
    w, b = random_params(8, dtype, True)
    x = _input((2, 8, 5, 3), 4, dtype, channels_last, w, b, activation)
    code = CODES[activation]
    dy = torch.randn(x.shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
    y_eager = gt.group_norm(x, 4, w, b, activation=activation)
    y_op = torch.ops.groupnorm.forward(x, 4, w, b, 1e-5, code)[0]
    assert torch.equal(y_eager, y_op) and y_op.stride() == x.stride()
    y_infer = torch.ops.groupnorm.forward_infer(x.detach(), 4, w.detach(), b.detach(), 1e-5,
                                                code)
    assert torch.equal(y_infer, y_op)
    for g_eager, g_op in zip(torch.autograd.grad(y_eager, (x, w, b), dy),
                             torch.autograd.grad(y_op, (x, w, b), dy)):
        assert torch.equal(g_eager, g_op)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_gradcheck_float64(activation, channels_last):
    """torch.autograd.gradcheck with its default tolerances: float64 has no fused kernels,
    so the ops compose our float64 kernels with PyTorch's activation (forward and backward)."""
    w = torch.empty(4, dtype=torch.float64).uniform_(0.5, 1.5).requires_grad_()
    b = torch.randn(4, dtype=torch.float64).requires_grad_()
    x = _input((2, 4, 3, 3), 2, torch.float64, channels_last, w, b, activation)
    fn = lambda x, w, b: gt.group_norm(x, 2, w, b, 1e-5, activation=activation)
    assert torch.autograd.gradcheck(fn, (x, w, b))
    x = _input((2, 4, 3, 3), 4, torch.float64, channels_last, None, None, activation)
    assert torch.autograd.gradcheck(lambda x: gt.group_norm(x, 4, activation=activation), (x,))


def test_float64_is_the_unfused_composition():
    """float64 with an activation: our float64 normalization, then PyTorch's activation
    (the same bits as composing them by hand), with the normalization's statistics."""
    x = random_input((2, 6, 5, 4), torch.float64, True)
    w, b = random_params(6, torch.float64, True)
    for activation in ACTIVATIONS:
        plain = gt.group_norm(x, 3, w.detach(), b.detach())
        fused = gt.group_norm(x, 3, w.detach(), b.detach(), activation=activation)
        assert torch.equal(fused, ACTIVATION_FNS[activation](plain))
        y, mean, rstd = torch.ops.groupnorm.forward(x, 3, w, b, 1e-5, CODES[activation])
        _, mean0, rstd0 = torch.ops.groupnorm.forward(x, 3, w, b, 1e-5)
        assert torch.equal(y, fused) and torch.equal(mean, mean0) and torch.equal(rstd, rstd0)


def test_groupnorm_group_norm_and_out_with_torch_tensors():
    """groupnorm.group_norm(torch tensor, activation=...) takes the torch path (autograd),
    and out= writes act(GroupNorm(x)) in place (float64: by the unfused fallback)."""
    for dtype in (torch.float32, torch.float64):
        w, b = random_params(8, dtype, True)
        x = random_input((2, 8, 3, 3), dtype, channels_last=True).requires_grad_()
        y = groupnorm.group_norm(x, 4, w, b, activation="gelu")
        assert torch.equal(y, gt.group_norm(x, 4, w, b, activation="gelu"))
        assert y.requires_grad
        out = torch.full_like(x, float("nan")).detach()
        x, w, b = x.detach(), w.detach(), b.detach()
        for activation in ACTIVATIONS:
            assert groupnorm.group_norm(x, 4, w, b, activation=activation, out=out) is out
            assert torch.equal(out, gt.group_norm(x, 4, w, b, activation=activation))
        inplace = x.clone()
        groupnorm.group_norm(inplace, 4, w, b, activation="silu", out=inplace)
        assert torch.equal(inplace, gt.group_norm(x, 4, w, b, activation="silu"))


def test_module_option_keeps_nn_groupnorm_state():
    ours = gt.GroupNorm(4, 12, eps=1e-3, activation="silu")
    stock = nn.GroupNorm(4, 12, eps=1e-3)
    assert isinstance(ours, nn.GroupNorm) and ours.activation == "silu"
    assert list(ours.state_dict()) == list(stock.state_dict()) == ["weight", "bias"]
    assert repr(ours) == repr(stock)[:-1] + ", activation='silu')"
    with torch.no_grad():
        stock.weight.uniform_(0.5, 1.5)
        stock.bias.normal_()
    ours.load_state_dict(stock.state_dict())
    x = (torch.randn(3, 12, 5, 5) + 1).requires_grad_()
    y = ours(x)
    ref = reference_activation_forward(x, 4, stock.weight, stock.bias, 1e-3, "silu")
    assert_within("y", y, ref, bound_for(x.dtype) * (ref.abs() + 1))
    y.sum().backward()
    assert ours.weight.grad is not None and ours.bias.grad is not None
    for clone in (copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):
        assert clone.activation == "silu" and torch.equal(clone(x), y)
    # Without the option: nn.GroupNorm's repr, no activation; bias=False as torch's.
    assert gt.GroupNorm(2, 4, bias=False, activation="relu").bias is None
    assert gt.GroupNorm(2, 4).activation is None
    # replace_group_norms is unchanged: no activation.
    assert gt.replace_group_norms(nn.GroupNorm(2, 4)).activation is None


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_torch_compile_fullgraph_with_activation(channels_last):
    """torch.compile(fullgraph=True) traces the op with its activation code (no separate
    activation op), with the same bits as eager, forward and backward."""
    ours = nn.Sequential(nn.Conv2d(3, 8, 3), gt.GroupNorm(4, 8, activation="silu"))
    if channels_last:
        ours = ours.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    if channels_last:
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    torch._dynamo.reset()
    compiled = torch.compile(ours, fullgraph=True, backend="aot_eager")
    y, y_eager = compiled(x), ours(x)
    torch.testing.assert_close(y, y_eager, rtol=0, atol=0)
    params = [x] + list(ours.parameters())
    for g, e in zip(torch.autograd.grad(y.square().sum(), params),
                    torch.autograd.grad(y_eager.square().sum(), params)):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm

    for requires_grad in (True, False):
        torch._dynamo.reset()
        graphs.clear()
        torch.compile(ours, fullgraph=True, backend=record)(x.detach().requires_grad_(
            requires_grad))
        nodes = [n for g in graphs for n in g.graph.nodes]
        ops = [n for n in nodes if "groupnorm" in str(n.target)]
        assert ops and all(n.args[5] == CODES["silu"] for n in ops), [n.format_node() for n in ops]
        assert not any("silu" in str(n.target) for n in nodes)


def test_opcheck_with_activation():
    x = torch.randn(2, 6, 4, 4, requires_grad=True)
    w = torch.rand(6, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    for activation in ACTIVATIONS:
        code = CODES[activation]
        torch.library.opcheck(torch.ops.groupnorm.forward.default, (x, 3, w, b, 1e-5, code))
        x_cl = x.detach().contiguous(memory_format=torch.channels_last)
        torch.library.opcheck(torch.ops.groupnorm.forward_infer.default,
                              (x_cl, 3, w.detach(), b.detach(), 1e-5, code))
        y, mean, rstd = torch.ops.groupnorm.forward(x.detach(), 3, w.detach(), b.detach(), 1e-5,
                                                    code)
        torch.library.opcheck(torch.ops.groupnorm.backward.default,
                              (torch.randn_like(y), x.detach(), mean, rstd, w.detach(),
                               torch.float32, 3, [True, True, True], b.detach(), code))


def test_bad_activation_raises():
    x = torch.randn(2, 6, 4)
    for bad in ("swish", "SiLU", 1, ""):
        with pytest.raises(groupnorm.InvalidArgumentError, match="activation"):
            gt.group_norm(x, 3, activation=bad)
        with pytest.raises(ValueError, match="activation"):
            groupnorm.group_norm(x.requires_grad_(), 3, activation=bad)
        with pytest.raises(groupnorm.InvalidArgumentError, match="activation"):
            gt.GroupNorm(3, 6, activation=bad)
    # The ops take the gn_activation code: one out of range is refused (float64: by the
    # fallback, which would otherwise have nothing to apply).
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(groupnorm.InvalidArgumentError, match="activation"):
            torch.ops.groupnorm.forward_infer(x.detach().to(dtype), 3, None, None, 1e-5, 7)
