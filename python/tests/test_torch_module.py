"""groupnorm.torch.GroupNorm and replace_group_norms: a drop-in for torch.nn.GroupNorm
(parameters, state_dict, memory format), under torch.compile, and in real models (a
GroupNorm ResNet-50, a diffusers-style UNet block stack) against stock PyTorch."""

import pytest
import torch
from torch import nn

import groupnorm.torch as gt
from conftest import assert_forward_contract
from models import unet_blocks


def test_module_matches_torch_parameters_and_state_dict():
    ours, stock = gt.GroupNorm(4, 12, eps=1e-3), nn.GroupNorm(4, 12, eps=1e-3)
    assert isinstance(ours, nn.GroupNorm)
    assert list(ours.state_dict()) == list(stock.state_dict()) == ["weight", "bias"]
    assert repr(ours) == repr(stock)
    with torch.no_grad():
        stock.weight.uniform_(0.5, 1.5)
        stock.bias.normal_()
    ours.load_state_dict(stock.state_dict())
    x = torch.randn(3, 12, 5, 5) + 1
    assert_forward_contract(ours(x), x, 4, stock.weight, stock.bias, 1e-3)
    assert list(gt.GroupNorm(2, 4, affine=False).state_dict()) == []


def test_affine_without_bias_like_torch():
    # nn.GroupNorm(..., bias=False) (PyTorch 2.x): a weight, no bias parameter.
    stock = nn.GroupNorm(3, 6, eps=1e-3, bias=False)
    ours = gt.GroupNorm(3, 6, eps=1e-3, bias=False)
    assert ours.bias is None and list(ours.state_dict()) == list(stock.state_dict()) == ["weight"]
    with torch.no_grad():
        stock.weight.uniform_(0.5, 1.5)
    ours.load_state_dict(stock.state_dict())
    x = torch.randn(2, 6, 4, 4) + 1
    assert_forward_contract(ours(x), x, 3, stock.weight, None, 1e-3)
    ours(x).square().sum().backward()
    assert ours.weight.grad is not None and ours.weight.grad.shape == (6,)
    # replace_group_norms carries it over: still no bias, the same weight.
    replaced = gt.replace_group_norms(nn.Sequential(stock))[0]
    assert type(replaced) is gt.GroupNorm and replaced.bias is None
    assert replaced.weight is stock.weight and list(replaced.state_dict()) == ["weight"]


def test_fx_symbolic_trace_records_one_call():
    # nn.GroupNorm is an fx leaf; ours is traced into, so group_norm is fx.wrap'ed.
    model = nn.Sequential(nn.Conv2d(3, 4, 3), gt.GroupNorm(2, 4, bias=False), nn.SiLU())
    traced = torch.fx.symbolic_trace(model)
    assert [n.target for n in traced.graph.nodes if n.op == "call_function"] == [gt.group_norm]
    x = torch.randn(2, 3, 6, 6)
    assert torch.equal(traced(x), model(x))


def test_replace_group_norms_in_place_shares_parameters():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8),
                          nn.Sequential(nn.GroupNorm(4, 8, affine=False)), nn.SiLU())
    weight = model[1].weight
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert gt.replace_group_norms(model) is model
    assert type(model[1]) is gt.GroupNorm and type(model[2][0]) is gt.GroupNorm
    assert model[1].weight is weight and not model[2][0].affine
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    optimizer.step()  # the optimizer's parameters are the model's
    assert weight.grad is not None
    assert type(gt.replace_group_norms(nn.GroupNorm(1, 2))) is gt.GroupNorm


def test_channels_last_model_keeps_memory_format():
    model = gt.replace_group_norms(nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8)))
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 9, 9).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = model(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.sum().backward()
    assert x.grad.is_contiguous(memory_format=torch.channels_last)


def test_torch_compile_fullgraph_traces_the_op():
    stock = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8), nn.SiLU())
    ours = gt.replace_group_norms(nn.Sequential(*[m for m in _clone(stock)]))
    compiled = torch.compile(ours, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    y = compiled(x)
    y_eager = ours(x)
    torch.testing.assert_close(y, y_eager, rtol=0, atol=0)  # same kernels, same bits
    grads = torch.autograd.grad(y.square().sum(), [x] + list(ours.parameters()))
    grads_eager = torch.autograd.grad(y_eager.square().sum(), [x] + list(ours.parameters()))
    for g, e in zip(grads, grads_eager):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    # Dynamo's graph holds our op, not aten's group_norm; with and without autograd.
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm

    for requires_grad in (True, False):
        torch._dynamo.reset()
        graphs.clear()
        x = torch.randn(2, 3, 9, 9, requires_grad=requires_grad)
        torch.compile(ours, fullgraph=True, backend=record)(x)
        targets = [str(n.target) for g in graphs for n in g.graph.nodes]
        assert any("groupnorm" in t for t in targets), targets
        assert not any("group_norm" in t for t in targets), targets


def test_opcheck():
    x = torch.randn(2, 6, 4, 4, requires_grad=True)
    w = torch.rand(6, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    torch.library.opcheck(torch.ops.groupnorm.forward.default, (x, 3, w, b, 1e-5))
    x_cl = x.detach().contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.groupnorm.forward.default, (x_cl, 3, None, None, 1e-5))
    torch.library.opcheck(torch.ops.groupnorm.forward_infer.default,
                          (x_cl, 3, w.detach(), b.detach(), 1e-5))
    y, mean, rstd = torch.ops.groupnorm.forward(x.detach(), 3, w.detach(), None, 1e-5)
    torch.library.opcheck(torch.ops.groupnorm.backward.default,
                          (torch.randn_like(y), x.detach(), mean, rstd, w.detach(),
                           torch.float32, 3, [True, False, True]))
    # Outputs of 256 KiB and more: recycled buffers, handed over as DLPack capsules.
    big = torch.randn(2, 6, 64, 64, requires_grad=True)
    torch.library.opcheck(torch.ops.groupnorm.forward.default, (big, 3, w, b, 1e-5))
    y, mean, rstd = torch.ops.groupnorm.forward(big.detach(), 3, w.detach(), None, 1e-5)
    torch.library.opcheck(torch.ops.groupnorm.backward.default,
                          (torch.randn_like(y), big.detach(), mean, rstd, w.detach(),
                           torch.float32, 3, [True, True, True]))


def _clone(model):
    import copy
    return copy.deepcopy(model)


def _model_errors(build, x, seed, grads=True):
    """Forward output and (grads=True) input and parameter gradients of ours (float32) and
    stock torch (float32) against stock torch in float64, all from the same weights.
    Returns per tensor (our error, stock float32 error, scale)."""
    torch.manual_seed(seed)
    stock = build().train()
    ours = gt.replace_group_norms(_clone(stock))
    ref = _clone(stock).double()
    results = {}
    for name, model, dtype in (("ours", ours, torch.float32), ("stock", stock, torch.float32),
                               ("ref", ref, torch.float64)):
        xi = x.to(dtype).clone().requires_grad_()
        y = model(xi)
        results[name] = [y.detach()]
        if grads:
            dy = torch.ones_like(y)  # deterministic: the same cotangent for all three
            results[name] += torch.autograd.grad(y, [xi] + list(model.parameters()), dy)
    errors = []
    for o, s, r in zip(results["ours"], results["stock"], results["ref"]):
        errors.append(((o.double() - r).abs().max().item(), (s.double() - r).abs().max().item(),
                       r.abs().max().item()))
    return errors


def _smooth(model):
    """ReLU -> SiLU. A ReLU whose input is within float32 rounding of 0 takes the other
    branch in any float32 model than in the float64 one, and the gradient at that element
    then differs by O(1) (seen at 1 of ~16k elements in 2 seeds of 8, for ours and equally
    possible for stock torch): a property of ReLU, not of GroupNorm. Gradients are compared
    through a smooth activation."""
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU):
            setattr(model, name, nn.SiLU())
        else:
            _smooth(child)
    return model


def _assert_as_accurate_as_torch(errors):
    # Ours within 3x stock PyTorch's own float32 error against float64 (and never worse
    # than 1e-5 of the tensor's scale beyond it): the same rounding budget as stock torch.
    for i, (ours, stock, scale) in enumerate(errors):
        assert ours <= 3 * stock + 1e-6 * scale, (
            "tensor %d (0: output, 1: input grad, then parameters): our error %.3g, "
            "stock float32 %.3g, scale %.3g" % (i, ours, stock, scale))


def test_resnet50_groupnorm_matches_stock_torch(_seed):
    torchvision = pytest.importorskip("torchvision")
    build = lambda: torchvision.models.resnet50(norm_layer=lambda c: nn.GroupNorm(32, c))
    x = torch.randn(1, 3, 64, 64)
    _assert_as_accurate_as_torch(_model_errors(build, x, _seed, grads=False))
    _assert_as_accurate_as_torch(_model_errors(lambda: _smooth(build()), x, _seed))


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_unet_blocks_match_stock_torch(_seed, channels_last):
    x = torch.randn(2, 64, 16, 16)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    errors = _model_errors(lambda: unet_blocks(64, (64, 128)), x, _seed)
    _assert_as_accurate_as_torch(errors)
