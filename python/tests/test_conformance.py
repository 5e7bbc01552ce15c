"""PyTorch's own GroupNorm cases (torch.testing._internal, which needs `expecttest`): every
sample, reference and error input of the OpInfo nn.functional.group_norm and every input and
error input of the ModuleInfo nn.GroupNorm, in every dtype they list for CPU, through
groupnorm.group_norm, the registered op and groupnorm.torch.GroupNorm, forward and backward,
against stock PyTorch in float64. Differences from PyTorch: README.

Tolerances are the library's contract (conftest.within, reference_backward), not loosened:
float32 1e-5 relative (+1e-5 absolute: y is O(1)), the float32 arithmetic's error on these
sums; float16 / bfloat16 1 ulp of the float64 result rounded to the dtype (their rounding is
0.5 ulp, the float32 arithmetic below adds a fraction) or the float32 bound near zero;
float64 the same 84 units of its own rounding (1e-5 * 2^-29), against a long double
reference (conftest)."""

import copy
import itertools

import pytest
import torch
from torch import nn
from torch.testing._internal.common_methods_invocations import op_db
from torch.testing._internal.common_modules import ModuleErrorEnum, module_db
from torch.testing._internal.common_utils import noncontiguous_like

import groupnorm
import groupnorm.torch as gt
from conftest import assert_within, bound_for, reference_backward, reference_forward

OP = next(o for o in op_db if o.name == "nn.functional.group_norm")
MODULE = next(m for m in module_db if m.module_cls is nn.GroupNorm)
OP_DTYPES = sorted(OP.supported_dtypes("cpu"), key=str)
MODULE_DTYPES = sorted(MODULE.dtypes, key=str)
CL = torch.channels_last


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Thousands of tiny calls: with 2 OpenMP threads on a loaded 2-core machine each parallel
    # region waited ms for a descheduled thread (40 s, not 8). Results do not depend on it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _op(x, num_groups, weight=None, bias=None, eps=1e-5):
    """The registered ops (what torch.compile traces), autograd through torch.library."""
    if torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (x, weight, bias)):
        return torch.ops.groupnorm.forward(x, num_groups, weight, bias, eps)[0]
    return torch.ops.groupnorm.forward_infer(x, num_groups, weight, bias, eps)


ENTRIES = {"group_norm": groupnorm.group_norm, "op": _op}


def _frozen(t):
    return None if t is None else t.detach()


def _channels_last(x):
    return x.detach().contiguous(memory_format=CL).requires_grad_(x.requires_grad)


def _layouts(sample):
    """The sample as given, non-contiguous (OpInfo's noncontiguous(): every tensor strided;
    our ops copy those) and, for 4-D x, channels-last (the OpInfo's comment wants that path
    tested on CPU)."""
    yield "contiguous", sample
    yield "noncontiguous", sample.noncontiguous()
    if sample.input.dim() == 4:
        yield "channels_last", sample.transform(lambda t: _channels_last(t) if t.dim() == 4 else t)


def _grad_sets(x, weight, bias):
    """Which arguments require grad: all the sample's, then x alone and the parameters alone
    (the backward's output_mask: frozen parameters, a frozen input)."""
    yield x, weight, bias
    if x.requires_grad and (weight is not None or bias is not None):
        yield x, _frozen(weight), _frozen(bias)
        yield x.detach(), weight, bias


def _check(name, fn, x, num_groups, weight, bias, eps):
    """fn's y and gradients against float64 stock PyTorch; dtypes and memory format as
    stock's in the sample's dtype."""
    y = fn(x, num_groups, weight, bias, eps)
    with torch.no_grad():
        stock = nn.functional.group_norm(x, num_groups, weight, bias, eps)
    assert y.dtype == stock.dtype and y.shape == stock.shape, name
    assert y.is_contiguous(memory_format=CL) == stock.is_contiguous(memory_format=CL), name
    ref = reference_forward(x, num_groups, weight, bias, eps)
    assert_within(name + " y", y, ref, bound_for(y.dtype) * (ref.abs() + 1))
    inputs = [t for t in (x, weight, bias) if t is not None and t.requires_grad]
    if not inputs or not torch.is_grad_enabled():
        assert not y.requires_grad, name
        return False
    dy = torch.randn(y.shape, dtype=torch.float64).to(y.dtype)
    grads = iter(torch.autograd.grad(y, inputs, dy))
    refs, bounds = reference_backward(dy, x, num_groups, weight, bias, eps)
    for what, t, ref, bound in zip(("dx", "dweight", "dbias"), (x, weight, bias), refs, bounds):
        if t is not None and t.requires_grad:
            got = next(grads)
            assert got.dtype == t.dtype and got.shape == t.shape, name + " " + what
            assert_within(name + " " + what, got, ref, bound)
    return True


def _describe(sample):
    t = lambda v: None if v is None else tuple(v.shape)  # noqa: E731
    return "x %s, groups %s, weight %s, bias %s, eps %s" % (
        tuple(sample.input.shape), sample.args[0], t(sample.kwargs.get("weight")),
        t(sample.kwargs.get("bias")), sample.kwargs.get("eps", 1e-5))


@pytest.mark.parametrize("requires_grad", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("dtype", OP_DTYPES, ids=str)
def test_opinfo_samples(dtype, requires_grad, conformance_counts):
    """Every sample and reference input (reference_inputs yields the samples first)."""
    samples = list(OP.reference_inputs("cpu", dtype, requires_grad=requires_grad))
    assert len(samples) >= 37  # 25 samples + 12 reference inputs in PyTorch 2.x
    for i, sample in enumerate(samples):
        for layout, s in _layouts(sample):
            g, w, b = s.args[0], s.kwargs.get("weight"), s.kwargs.get("bias")
            eps = s.kwargs.get("eps", 1e-5)
            assert s.input.requires_grad == requires_grad
            for xs, ws, bs in _grad_sets(s.input, w, b):
                for entry, fn in ENTRIES.items():
                    name = "sample %d (%s) %s via %s" % (i, _describe(sample), layout, entry)
                    _check(name, fn, xs, g, ws, bs, eps)
        conformance_counts[dtype]["OpInfo backward" if requires_grad else "OpInfo forward"] += 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=str)
def test_opinfo_samples_numpy(dtype, conformance_counts):
    """The same samples as numpy arrays: the C API without the PyTorch layer (numpy has no
    bfloat16)."""
    np_ = lambda t: None if t is None else t.detach().numpy()  # noqa: E731
    for i, s in enumerate(OP.reference_inputs("cpu", dtype, requires_grad=False)):
        w, b, eps = s.kwargs.get("weight"), s.kwargs.get("bias"), s.kwargs.get("eps", 1e-5)
        y = torch.from_numpy(groupnorm.group_norm(np_(s.input), s.args[0], np_(w), np_(b), eps))
        ref = reference_forward(s.input, s.args[0], w, b, eps)
        assert_within("sample %d (%s) numpy" % (i, _describe(s)), y, ref,
                      bound_for(dtype) * (ref.abs() + 1))
        conformance_counts[dtype]["OpInfo numpy"] += 1
    # The error inputs raise there too, except an empty spatial size: the C API serves it
    # (README, Differences from PyTorch).
    for e in OP.error_inputs("cpu"):
        x, args = e.sample_input.input.numpy(), e.sample_input.args
        if x.ndim > 2 and 0 in x.shape[2:]:
            assert groupnorm.group_norm(x, *args).shape == x.shape
        else:
            with pytest.raises(ValueError):
                groupnorm.group_norm(x, *args)


def test_opinfo_error_inputs_raise(conformance_counts):
    """Each is an error for stock PyTorch (checked, with its message) and raises here, through
    each entry point, with and without autograd."""
    errors = list(OP.error_inputs("cpu"))
    assert len(errors) >= 4
    for e in errors:
        s = e.sample_input
        for requires_grad in (False, True):
            x = s.input.detach().requires_grad_(requires_grad)
            with pytest.raises(e.error_type, match=e.error_regex):
                nn.functional.group_norm(x, *s.args, **s.kwargs)
            for entry, fn in ENTRIES.items():
                with pytest.raises((ValueError, RuntimeError)):
                    fn(x, *s.args, **s.kwargs)
        conformance_counts[s.input.dtype]["OpInfo error"] += 1


def _stock_and_ours(module_input, dtype):
    """The stock module with random parameters (ones and zeros would hide an error in
    either), ours loaded from its state_dict, and replace_group_norms of a copy."""
    args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
    stock = nn.GroupNorm(*args, **kwargs, dtype=dtype)
    with torch.no_grad():
        for p in stock.parameters():
            p.uniform_(-2, 2)
    ours = gt.GroupNorm(*args, **kwargs, dtype=dtype)
    ours.load_state_dict(stock.state_dict())
    replaced = gt.replace_group_norms(copy.deepcopy(stock))
    for m in (ours, replaced):
        assert type(m) is gt.GroupNorm and repr(m) == repr(stock)
        assert list(m.state_dict()) == list(stock.state_dict())  # bias=False: ["weight"]
        assert (m.weight is None, m.bias is None) == (stock.weight is None, stock.bias is None)
    return stock, ours, replaced


@pytest.mark.parametrize("dtype", MODULE_DTYPES, ids=str)
def test_moduleinfo_inputs(dtype, conformance_counts):
    inputs = MODULE.module_inputs_func(MODULE, device="cpu", dtype=dtype, requires_grad=True,
                                       training=True)
    assert len(inputs) >= 10
    for mi in inputs:
        stock, ours, replaced = _stock_and_ours(mi, dtype)
        stock64 = copy.deepcopy(stock).double()
        (x,) = mi.forward_input.args
        layouts = [("contiguous", x), ("noncontiguous", noncontiguous_like(x.detach()))]
        layouts += [("channels_last", _channels_last(x))] if x.dim() == 4 else []
        for layout, xl in layouts:
            xl.requires_grad_()
            name = "%s %s" % (mi.desc, layout)
            call = lambda m: lambda x, g, w, b, eps: m(x)  # noqa: E731
            assert _check(name, call(ours), xl, ours.num_groups, ours.weight, ours.bias, ours.eps)
            with torch.no_grad():  # the inference op, replace_group_norms' module, stock's
                _check(name + " no_grad", call(ours), xl, ours.num_groups, ours.weight,
                       ours.bias, ours.eps)
                assert torch.equal(replaced(xl), ours(xl)), name  # same kernels, same bits
                want = stock64(xl.double())
                assert_within(name + " vs stock module", ours(xl), want,
                              bound_for(xl.dtype) * (want.abs() + 1))
        conformance_counts[dtype]["ModuleInfo"] += 1


def test_moduleinfo_error_inputs_raise(conformance_counts):
    for e in MODULE.module_error_inputs_func(MODULE, device="cpu", dtype=torch.float32,
                                             requires_grad=False, training=True):
        assert e.error_on == ModuleErrorEnum.CONSTRUCTION_ERROR
        c = e.module_error_input.constructor_input
        with pytest.raises(e.error_type, match=e.error_regex):
            gt.GroupNorm(*c.args, **c.kwargs)
        conformance_counts[torch.float32]["ModuleInfo error"] += 1


def test_mixed_dtypes_accepted_as_torch():
    """x, weight, bias dtypes (None: absent): accepted exactly where stock PyTorch accepts
    them (one dtype, or float32 parameters on float16 / bfloat16 x), else an error."""
    dtypes = [None] + OP_DTYPES
    for xd, wd, bd in itertools.product(OP_DTYPES, dtypes, dtypes):
        x = torch.randn(2, 4, 3).to(xd)
        w, b = (None if d is None else torch.rand(4).to(d) for d in (wd, bd))
        try:
            nn.functional.group_norm(x, 2, w, b)
        except RuntimeError:
            with pytest.raises(ValueError, match="dtype"):
                groupnorm.group_norm(x, 2, w, b)
            continue
        want = reference_forward(x, 2, w, b, 1e-5)
        assert_within("%s %s %s" % (xd, wd, bd), groupnorm.group_norm(x, 2, w, b), want,
                      bound_for(xd) * (want.abs() + 1))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # inside make_dual
def test_double_backward_and_forward_ad_raise():
    """OpInfo lists gradgrad and forward AD for group_norm; we have neither yet. They raise
    rather than give constants: a gradient penalty through our gradients would otherwise
    lose its second-order term silently."""
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    for fn in ENTRIES.values():
        (g,) = torch.autograd.grad(fn(x, 2, w).pow(3).sum(), x, create_graph=True)
        with pytest.raises(RuntimeError, match="double backward"):
            torch.autograd.grad(g.square().sum() + w.sum(), w)
    with torch.autograd.forward_ad.dual_level():
        for xr in (x, x.detach()):
            dual = torch.autograd.forward_ad.make_dual(xr, torch.ones_like(xr))
            with pytest.raises(NotImplementedError, match="forward-mode AD"):
                groupnorm.group_norm(dual, 2, w)
