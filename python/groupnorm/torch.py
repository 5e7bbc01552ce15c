"""PyTorch integration: the custom ops ``groupnorm::forward``, ``groupnorm::forward_infer``
and ``groupnorm::backward`` (torch.library, with fake kernels for torch.compile and
autograd through our backward), a drop-in ``GroupNorm`` module and
``replace_group_norms(model)``.

Layouts: contiguous and channels-last tensors are used as they are (the output keeps x's
memory format); any other layout is made contiguous first. float64 tensors run on the
float64 kernels (float64 weight and bias; mean and rstd in float64, as PyTorch's).

Fused activations: the ops take ``activation``, a gn_activation code (0 none, 1 SiLU, 2
ReLU, 3 GELU (erf), 4 GELU (tanh): groupnorm.ACTIVATIONS), and return act(GroupNorm(x));
mean and rstd stay the normalization's, and the backward (given the forward's bias)
differentiates the composition in the same kernel (gn_config.activation and .beta). float64
has no fused kernels: there the ops run the float64 normalization kernel, then PyTorch's
activation (its forward, and its derivative ahead of our backward kernel), which is the
unfused composition itself, so gradcheck in float64 works with an activation too.

Plain CPU tensors reach the C API through _ext.torch_group_norm / torch_group_norm_backward
(and torch_forward for out=), which build the DLTensors from the tensors' data_ptr, shape
and strides in C++ (a DLPack capsule per tensor per call cost more than the kernel on
small tensors) and allocate the outputs there (set_buffer_cache); every other tensor
(CUDA, subclasses, negative views, ...) goes as a DLPack capsule of torch._C._to_dlpack,
CUDA ones on torch.cuda.current_stream(). In eager mode group_norm calls the kernels directly
(an autograd.Function when a gradient is needed) instead of through the dispatcher,
unless a torch function or dispatch mode or a functorch transform is active; under
torch.compile it emits the registered ops.
"""

from typing import List, Optional, Tuple

import torch
import torch.autograd.forward_ad as _fwad
from torch import Tensor, nn

from . import ACTIVATIONS, _activation_code, _ext
from ._errors import InvalidArgumentError, UnsupportedError

__all__ = ["group_norm", "GroupNorm", "replace_group_norms", "use_torch_threads",
           "set_buffer_cache"]

_to_dlpack = torch._C._to_dlpack
_F32, _F64 = torch.float32, torch.float64
_PLAIN = (Tensor, nn.Parameter, type(None))
_ext._set_torch_types(Tensor, nn.Parameter, torch.float32, torch.float16, torch.bfloat16,
                      torch._C._from_dlpack)
_dispatch_modes = torch._C._len_torch_dispatch_stack
_function_modes = torch._C._is_torch_function_mode_enabled
_transforms = torch._C._functorch.peek_interpreter_stack


def _interposed() -> bool:
    """A torch dispatch or function mode, or a functorch transform, is active: the calls
    must go through the registered ops, not straight to the kernels."""
    return bool(_dispatch_modes()) or _function_modes() or _transforms() is not None
_profiling = torch._C._autograd._profiler_enabled
_is_compiling = torch.compiler.is_compiling


def use_torch_threads(enable: bool = True) -> None:
    """Run the CPU kernels' parallel loops on PyTorch's OpenMP threads (the default once
    groupnorm.torch is imported, when PyTorch's parallel backend is OpenMP): two thread
    pools on the same cores slowed a 2-thread ResNet-50 training step 2x. Then
    torch.set_num_threads sets our threads too. enable=False: the library's own pool
    (groupnorm.set_num_threads). Call it while no kernel runs."""
    if _ext.has_openmp:
        _ext.use_openmp_pool(enable)


if "parallel backend: OpenMP" in torch.__config__.parallel_info():
    use_torch_threads(True)


def set_buffer_cache(max_bytes: int) -> None:
    """Bytes of freed output buffers kept for reuse (default 1 GiB; 0: none, and frees
    those kept). The kernels' CPU outputs are allocated by the extension and handed to
    torch as DLPack tensors; when freed, those of 256 KiB and more return to a cache
    instead of the system: fresh memory page-faults on its first write, which inside a
    model cost more than the kernel. Such outputs are ordinary tensors, except that their
    storage cannot be resized."""
    _ext.set_buffer_cache_limit(max_bytes)


def _served(x: Tensor) -> Tensor:
    """x in a layout the kernels serve: contiguous, or channels-last (4-D / 5-D)."""
    if x.is_contiguous():
        return x
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return x
    return x.contiguous()


def _like(t: Tensor, x: Tensor) -> Tensor:
    """t (dy) in x's layout: the backward kernels want dy and x of one layout kind."""
    if x.is_contiguous() and t.is_contiguous():
        return t
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return t.contiguous(memory_format=torch.channels_last)
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return t.contiguous(memory_format=torch.channels_last_3d)
    return t.contiguous()


def _dl(t: Optional[Tensor]):
    # A DLPack capsule drops the negative bit: resolve it (inputs only; outputs are ours).
    return None if t is None else _to_dlpack(t.detach().resolve_neg())


def _stream(x: Tensor) -> int:
    return torch.cuda.current_stream(x.device).cuda_stream if x.is_cuda else 0


def _run_forward(x, num_groups, weight, bias, eps, y, mean=None, rstd=None, activation=0):
    """gn_forward; mean None or both (N, G), or mean (2, N, G) (mean, rstd) and rstd None.
    activation: a gn_activation code (the kernels' fused activation; not for float64)."""
    try:
        if _ext.torch_forward(x, weight, bias, num_groups, eps, y, mean, rstd, activation):
            return
        if mean is not None and rstd is None:
            mean, rstd = mean[0], mean[1]
        _ext.forward(_dl(x), _dl(weight), _dl(bias), num_groups, eps, _dl(y), _dl(mean),
                     _dl(rstd), _stream(x), activation)
    except TypeError as e:
        raise InvalidArgumentError("group_norm: %s" % str(e).split("\n")[0]) from None


_LOW = (torch.float16, torch.bfloat16)


def _check_like_torch(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]) -> None:
    """PyTorch's rules where the C API's differ. An empty spatial size is an error there (the
    statistics of an empty group are undefined; the C API returns success and writes no
    statistics). Parameters: x's dtype, or float32 for a float16 / bfloat16 x (PyTorch's
    mixed-dtype rule); the C API calls other mixtures (a float16 weight on float32 x, float32
    parameters on float64 x) unsupported, PyTorch invalid."""
    # Cheap tests first: this runs on every call (the set alone costs over 1 us).
    if x.numel() == 0 and x.dim() > 2 and 0 in x.shape[2:]:
        raise InvalidArgumentError(
            "group_norm: x has an empty spatial size (shape %s); torch.nn.functional.group_norm "
            "refuses it too (expected HxW > 0)" % list(x.shape))
    xd = x.dtype
    if (weight is None or weight.dtype == xd) and (bias is None or bias.dtype == xd):
        return
    params = {t.dtype for t in (weight, bias) if t is not None}
    if params != {torch.float32} or xd not in _LOW:
        raise InvalidArgumentError(
            "group_norm: weight and bias must have x's dtype (%s), or float32 when x is "
            "float16 or bfloat16, as in PyTorch; got %s" % (
                x.dtype, ", ".join(str(t.dtype) for t in (weight, bias) if t is not None)))


def _dense(t: Optional[Tensor]) -> Optional[Tensor]:
    # The C API wants dense parameters; PyTorch takes any (a copy when strided).
    return t if t is None or t.is_contiguous() else t.contiguous()


def _has_tangent(*tensors) -> bool:
    # Forward-mode AD: a dual tensor need not require grad, and the inference op would drop
    # its tangent silently. _current_level >= 0 only inside a dual_level.
    return _fwad._current_level >= 0 and any(
        t is not None and _fwad.unpack_dual(t).tangent is not None for t in tensors)


def _no_double_backward(grads, inputs):
    """Under create_graph=True our gradients would be constants (the backward kernel is not
    differentiable yet), so a second-order term through them (a gradient penalty) would be
    silently dropped. They get a grad_fn that raises when differentiated; it links to the
    inputs (by empty slices of them) so that autograd.grad(..., inputs) reaches it too
    (torch's once_differentiable does not: its error node hangs off detached copies)."""
    if not torch.is_grad_enabled():  # a plain backward (no create_graph): nothing to link
        return grads
    links = [t.reshape(-1)[:0] for t in inputs if t is not None and t.requires_grad]
    if not links:
        return grads
    present = [g for g in grads if g is not None]
    err = torch._C._functions.DelayedError(
        b"groupnorm: double backward (a gradient of our gradient) is not implemented",
        len(present) + len(links))
    it = iter(err(*[g.detach().requires_grad_() for g in present], *links))
    return tuple(None if g is None else next(it) for g in grads)


def _stats(x: Tensor, num_groups: int):
    # The C API's statistics dtype: float64 for float64 x, else float32.
    shape = (x.shape[0], num_groups)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return x.new_empty(shape, dtype=dtype), x.new_empty(shape, dtype=dtype)


_SILU, _RELU, _GELU, _GELU_TANH = (ACTIVATIONS[a] for a in ("silu", "relu", "gelu", "gelu_tanh"))


def _code(activation) -> int:
    """activation (None or a name of groupnorm.ACTIVATIONS) as its gn_activation code; any
    other value raises InvalidArgumentError."""
    return 0 if activation is None else _activation_code(activation)


def _unfused(x: Tensor, activation: int) -> bool:
    """float64 has no fused kernels: the activation is PyTorch's, after ours (the forward)
    or ahead of ours (the backward). An unknown code raises, as the C API would."""
    if not activation or x.dtype is not _F64:
        return False
    if activation not in (_SILU, _RELU, _GELU, _GELU_TANH):
        raise InvalidArgumentError(
            "group_norm: activation %r is not a gn_activation code (0 to 4: "
            "groupnorm.ACTIVATIONS)" % (activation,))
    return True


def _activate(y: Tensor, activation: int) -> Tensor:
    """act(y) as torch.nn.functional computes it (float64: the unfused composition). y is
    a new tensor of ours, overwritten where PyTorch has an in-place form."""
    if activation == _SILU:
        return torch.nn.functional.silu(y, inplace=True)
    if activation == _RELU:
        return y.relu_()
    return torch.nn.functional.gelu(y, approximate="tanh" if activation == _GELU_TANH else "none")


def _activation_grad(dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor,
                     weight: Optional[Tensor], bias: Optional[Tensor], num_groups: int,
                     activation: int) -> Tensor:
    """dz = dy act'(z), z = GroupNorm(x) recomputed from the saved statistics (float64), by
    PyTorch's own activation backward ops: the gradient that our plain backward kernel then
    takes through the normalization."""
    n, c = x.shape[:2]
    per_channel = (n, c) + (1,) * (x.dim() - 2)
    z = ((x - mean.repeat_interleave(c // num_groups, 1).reshape(per_channel))
         * rstd.repeat_interleave(c // num_groups, 1).reshape(per_channel))
    if weight is not None:
        z = z * weight.reshape(per_channel[1:])
    if bias is not None:
        z = z + bias.reshape(per_channel[1:])
    if activation == _SILU:
        return torch.ops.aten.silu_backward(dy, z)
    if activation == _RELU:
        return torch.ops.aten.threshold_backward(dy, z, 0)
    return torch.ops.aten.gelu_backward(
        dy, z, approximate="tanh" if activation == _GELU_TANH else "none")


_lib = torch.library.Library("groupnorm", "DEF")
# activation: a gn_activation code (groupnorm.ACTIVATIONS; 0, the default, none). backward:
# the forward's activation, and its bias when it had one (z is recomputed from it).
_lib.define("forward(Tensor x, int num_groups, Tensor? weight, Tensor? bias, float eps,"
            " int activation=0) -> (Tensor, Tensor, Tensor)")
_lib.define("forward_infer(Tensor x, int num_groups, Tensor? weight, Tensor? bias, float eps,"
            " int activation=0) -> Tensor")
_lib.define("backward(Tensor dy, Tensor x, Tensor mean, Tensor rstd, Tensor? weight,"
            " ScalarType? bias_dtype, int num_groups, bool[3] output_mask, Tensor? bias=None,"
            " int activation=0) -> (Tensor, Tensor, Tensor)")


def _forward_kernel(x, num_groups, weight, bias, eps, stats, activation=0):
    """y = act(GroupNorm(x)) in x's dtype and layout kind, in a new tensor, and by stats: 0:
    no statistics (y, None, None); 1: (y, one (2, N, G) tensor of mean and rstd, None); 2:
    (y, mean, rstd), (N, G) each. Statistics float32, float64 for float64 x."""
    if activation and _unfused(x, activation):
        y, mean, rstd = _forward_kernel(x, num_groups, weight, bias, eps, stats)
        return _activate(y, activation), mean, rstd
    if not x.is_contiguous():  # (inline checks: this runs on every call)
        x = _served(x)
    weight, bias = _dense(weight), _dense(bias)
    try:
        out = _ext.torch_group_norm(x, weight, bias, num_groups, eps, stats, activation)
    except TypeError as e:
        raise InvalidArgumentError("group_norm: %s" % str(e).split("\n")[0]) from None
    if out is None:  # not a plain CPU tensor: allocate here, call through DLPack
        y = torch.empty_like(x)
        mean = rstd = None
        if stats == 1:
            mean = torch.empty(2, x.shape[0], num_groups, device=x.device,
                               dtype=_F64 if x.dtype is _F64 else _F32)
        elif stats == 2:
            mean, rstd = _stats(x, num_groups)
        _run_forward(x, num_groups, weight, bias, eps, y, mean, rstd, activation)
    else:
        y, mean, rstd = out
    return y, mean, rstd


def _forward_impl(x, num_groups, weight, bias, eps, activation=0):
    """y = act(GroupNorm(x)), mean, rstd ((N, num_groups), float32; float64 for float64 x:
    the normalization's)."""
    _check_like_torch(x, weight, bias)
    return _forward_kernel(x, num_groups, weight, bias, eps, 2, activation)


def _forward_infer_impl(x, num_groups, weight, bias, eps, activation=0):
    """y only (no statistics kept): inference."""
    _check_like_torch(x, weight, bias)
    return _forward_kernel(x, num_groups, weight, bias, eps, 0, activation)[0]


def _param_dtype(weight, bias_dtype, x):
    if weight is not None:
        return weight.dtype
    return bias_dtype if bias_dtype is not None else x.dtype


def _backward_kernel(dy, x, mean, rstd, weight, bias_dtype, num_groups, need_x, need_w,
                     need_b, bias=None, activation=0):
    """dx, dweight, dbias, each None when not needed. mean, rstd: as _run_forward's.
    activation: the forward's, with its bias (None when it had none)."""
    x = _served(x)
    dy = _like(dy, x)
    weight = _dense(weight)
    if activation and _unfused(x, activation):  # float64: PyTorch's act', then ours
        stats = (mean[0], mean[1]) if rstd is None else (mean, rstd)
        dy = _like(_activation_grad(dy, x, *stats, weight, bias, num_groups, activation), x)
        activation = 0
    bias = _dense(bias) if activation else None  # gn_config.beta: with an activation only
    x_dtype = x.dtype
    w_dtype = _param_dtype(weight, None, x)
    b_dtype = bias_dtype if bias_dtype is not None else x_dtype
    # gn_backward writes dweight and dbias in the weight's dtype (without a weight: x's or
    # float32, so the bias's).
    kernel_dtype = _param_dtype(weight, bias_dtype, x)
    try:
        out = _ext.torch_group_norm_backward(dy, x, mean, rstd, weight, num_groups, need_x,
                                             need_w, need_b, kernel_dtype, bias, activation)
        if out is None:  # not plain CPU tensors: allocate here, call through DLPack
            channels = x.shape[1]
            dx = torch.empty_like(x) if need_x else None
            dw = torch.empty(channels, dtype=kernel_dtype, device=x.device) if need_w else None
            db = torch.empty(channels, dtype=kernel_dtype, device=x.device) if need_b else None
            if rstd is None:
                mean, rstd = mean[0], mean[1]
            _ext.backward(_dl(dy), _dl(x), _dl(mean), _dl(rstd), _dl(weight), num_groups,
                          _dl(dx), _dl(dw), _dl(db), _stream(x), activation, _dl(bias))
        else:
            dx, dw, db = out
    except TypeError as e:
        raise InvalidArgumentError("groupnorm::backward: %s" % str(e).split("\n")[0]) from None
    return (None if dx is None else _as(dx, x_dtype), None if dw is None else _as(dw, w_dtype),
            None if db is None else _as(db, b_dtype))


def _backward_impl(dy, x, mean, rstd, weight, bias_dtype, num_groups, output_mask, bias=None,
                   activation=0):
    """dx, dweight, dbias (each empty when its output_mask entry is False); activation and
    bias: the forward's (the gradients of act(GroupNorm(x)))."""
    dx, dw, db = _backward_kernel(dy, x, mean, rstd, weight, bias_dtype, num_groups,
                                  *output_mask, bias, activation)
    # Not computed: an empty tensor each (outputs must not alias one another).
    return (x.new_empty((0,)) if dx is None else dx,
            x.new_empty((0,), dtype=_param_dtype(weight, None, x)) if dw is None else dw,
            x.new_empty((0,), dtype=bias_dtype if bias_dtype is not None else x.dtype)
            if db is None else db)


def _as(t, dtype):
    return t if t.dtype is dtype else t.to(dtype)


for _key in ("CPU", "CUDA"):
    _lib.impl("forward", _forward_impl, _key)
    _lib.impl("forward_infer", _forward_infer_impl, _key)
    _lib.impl("backward", _backward_impl, _key)
# Inference and the backward itself are not differentiable: autograd passes them by, and
# their outputs do not require grad (no double backward yet).
_lib.impl("forward_infer", torch.library.fallthrough_kernel, "Autograd")
_lib.impl("backward", torch.library.fallthrough_kernel, "Autograd")


@torch.library.register_fake("groupnorm::forward", lib=_lib)
def _forward_fake(x, num_groups, weight, bias, eps, activation=0):
    x = _served(x)
    mean, rstd = _stats(x, num_groups)
    return torch.empty_like(x), mean, rstd


@torch.library.register_fake("groupnorm::forward_infer", lib=_lib)
def _forward_infer_fake(x, num_groups, weight, bias, eps, activation=0):
    return torch.empty_like(_served(x))


@torch.library.register_fake("groupnorm::backward", lib=_lib)
def _backward_fake(dy, x, mean, rstd, weight, bias_dtype, num_groups, output_mask, bias=None,
                   activation=0):
    x = _served(x)
    channels = x.shape[1]
    dx = torch.empty_like(x) if output_mask[0] else x.new_empty((0,))
    dw = x.new_empty((channels,) if output_mask[1] else (0,),
                     dtype=_param_dtype(weight, None, x))
    db = x.new_empty((channels,) if output_mask[2] else (0,),
                     dtype=bias_dtype if bias_dtype is not None else x.dtype)
    return dx, dw, db


def _setup_context(ctx, inputs, output):
    x, num_groups, weight, bias, _, activation = inputs  # (defaults filled in)
    _, mean, rstd = output
    # The bias only for an activation's backward (z = GroupNorm(x) is recomputed).
    ctx.save_for_backward(x, weight, mean, rstd, bias if activation else None)
    ctx.num_groups = num_groups
    ctx.bias_dtype = None if bias is None else bias.dtype
    ctx.activation = activation


def _autograd_backward(ctx, dy, _dmean, _drstd):
    x, weight, mean, rstd, bias = ctx.saved_tensors
    # One entry per input passed: activation=0 may have been left out.
    need = ctx.needs_input_grad
    need_x, need_w, need_b = need[0], need[2], need[3]
    dx, dw, db = torch.ops.groupnorm.backward(dy, x, mean, rstd, weight, ctx.bias_dtype,
                                              ctx.num_groups, [need_x, need_w, need_b], bias,
                                              ctx.activation)
    if not torch.compiler.is_compiling():  # compiled graphs: torch refuses double backward
        dx, dw, db = _no_double_backward((dx, dw, db), (dy, x, weight, bias))
    return (dx if need_x else None, None, dw if need_w else None, db if need_b else None, None,
            None)


torch.library.register_autograd("groupnorm::forward", _autograd_backward,
                                setup_context=_setup_context, lib=_lib)

_forward = torch.ops.groupnorm.forward.default
_forward_infer = torch.ops.groupnorm.forward_infer.default


class _GroupNormFunction(torch.autograd.Function):
    """Eager autograd: the registered ops' kernels and autograd formula, called directly.
    torch.library's autograd wrapper costs two Python dispatcher round trips a call (65 us
    more per layer, forward and backward, than this); torch.compile traces the registered
    ops instead, and a test checks both give the same bits. The statistics are one
    (2, N, G) tensor (one allocation, not two)."""

    @staticmethod
    def forward(ctx, x, num_groups, weight, bias, eps, activation):
        x = _served(x)  # saved as served: backward does not copy it again
        y, stats, _ = _forward_kernel(x, num_groups, weight, bias, eps, 1, activation)
        ctx.save_for_backward(x, weight, stats, bias if activation else None)
        ctx.num_groups = num_groups
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.activation = activation
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, stats, bias = ctx.saved_tensors
        need_x, _, need_w, need_b, _, _ = ctx.needs_input_grad
        dx, dw, db = _backward_kernel(dy, x, stats, None, weight, ctx.bias_dtype,
                                      ctx.num_groups, need_x, need_w, need_b, bias,
                                      ctx.activation)
        dx, dw, db = _no_double_backward((dx, dw, db), (dy, x, weight, bias))
        return dx, None, dw, db, None, None


def group_norm(
    x: Tensor,
    num_groups: int,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    eps: float = 1e-5,
    *,
    activation: Optional[str] = None,
) -> Tensor:
    """torch.nn.functional.group_norm through our kernels (autograd, torch.compile).
    Without autograd (torch.no_grad(), or nothing requiring grad) the inference path runs,
    which keeps no statistics. activation: None, or "silu", "relu", "gelu" (erf) or
    "gelu_tanh" (groupnorm.ACTIVATIONS): act(group_norm(x)) in the same pass, and its
    gradients in one backward pass (the forward's bias is kept for it); any other value
    raises InvalidArgumentError. float64 has no fused kernels: our float64 normalization,
    then torch.nn.functional's activation (the same composition, unfused). Forward-mode AD
    and double backward are not implemented (they raise)."""
    act = _code(activation)
    train = torch.is_grad_enabled() and (
        x.requires_grad or (weight is not None and weight.requires_grad)
        or (bias is not None and bias.requires_grad))
    # First: Dynamo folds it to True and traces only the ops (no graph break on the checks).
    if _is_compiling():
        if train:
            return _forward(x, num_groups, weight, bias, eps, act)[0]
        return _forward_infer(x, num_groups, weight, bias, eps, act)
    if _has_tangent(x, weight, bias):
        raise UnsupportedError("group_norm: forward-mode AD (dual tensors) is not implemented")
    # The kernels without the dispatcher for plain tensors (no subclass's __torch_function__
    # to honour), no torch function or dispatch mode (they must see the op), no functorch
    # transform (vmap, grad: they need the op's fallbacks), on a device with kernels (meta
    # tensors: the fake kernels). Otherwise the registered ops, which handle all of these.
    if (type(x) in _PLAIN and type(weight) in _PLAIN and type(bias) in _PLAIN
            and (x.is_cpu or x.is_cuda) and not _interposed()):
        _check_like_torch(x, weight, bias)
        weight, bias = _dense(weight), _dense(bias)
        if train:
            return _GroupNormFunction.apply(x, num_groups, weight, bias, eps, act)
        if _profiling():  # the profiler sees the call as the op it stands for
            with torch.profiler.record_function("groupnorm::forward_infer"):
                return _forward_kernel(x, num_groups, weight, bias, eps, 0, act)[0]
        # The common case in one call (else: layouts, float64 (with an activation: the
        # unfused composition, in _forward_kernel), ...).
        if x.is_contiguous():
            try:
                out = _ext.torch_group_norm(x, weight, bias, num_groups, eps, 0, act)
            except TypeError as e:
                raise InvalidArgumentError("group_norm: %s" % str(e).split("\n")[0]) from None
            if out is not None:
                return out[0]
        return _forward_kernel(x, num_groups, weight, bias, eps, 0, act)[0]
    if train:
        return _forward(x, num_groups, weight, bias, eps, act)[0]
    return _forward_infer(x, num_groups, weight, bias, eps, act)


# torch.fx.symbolic_trace records group_norm as one call (nn.GroupNorm is a leaf there; our
# subclass is traced into, and its autograd branch cannot take a Proxy).
torch.fx.wrap("group_norm")


def _skip_group_norm(x, num_groups, weight, bias, eps, out, activation, skip, skip_bias,
                     return_sum):
    """groupnorm.group_norm with skip / skip_bias / return_sum for a torch.Tensor x: the
    fused residual kernel when no gradient is wanted (_skip_fusable), else PyTorch forms
    x + skip + skip_bias in x's dtype (autograd reaches all three) and our op normalizes it.
    The shapes and dtypes the fused kernels take, checked here first (PyTorch's broadcasting
    would accept others silently)."""
    if x.dim() < 2:
        raise InvalidArgumentError("group_norm: x must have at least 2 dimensions (N, C, *)")
    N, C = x.shape[0], x.shape[1]
    per_nc = (N, C) + (1,) * (x.dim() - 2)
    if skip is not None:
        if not isinstance(skip, Tensor) or skip.dtype != x.dtype or skip.device != x.device:
            raise InvalidArgumentError(
                "group_norm: skip must be a tensor of x's dtype and device")
        if tuple(skip.shape) not in (tuple(x.shape), (N, C), per_nc):
            raise InvalidArgumentError(
                "group_norm: skip must have x's shape %s, or (N, C) = (%d, %d), or %s; got %s"
                % (tuple(x.shape), N, C, per_nc, tuple(skip.shape)))
    if skip_bias is not None and (
            not isinstance(skip_bias, Tensor) or tuple(skip_bias.shape) != (C,)
            or skip_bias.device != x.device or skip_bias.dtype not in (x.dtype, torch.float32)):
        raise InvalidArgumentError(
            "group_norm: skip_bias must be a tensor of shape (C,) = (%d,), x's dtype or "
            "float32, on x's device" % C)
    if out is None and _skip_fusable(x, weight, bias, skip, skip_bias):
        served = _ext.torch_skip_group_norm(x, weight, bias, num_groups, eps, _code(activation),
                                            skip, skip_bias, return_sum)
        if served is not None:
            return served if return_sum else served[0]
    total = x
    if skip is not None:
        total = x + (skip if tuple(skip.shape) == tuple(x.shape) else skip.reshape(per_nc))
    if skip_bias is not None:
        total = total + skip_bias.to(x.dtype).reshape((1, C) + (1,) * (x.dim() - 2))
    if total is x and return_sum:
        total = x.clone()
    y = _group_norm_any(total, num_groups, weight, bias, eps, out, activation)
    return (y, total) if return_sum else y


def _skip_fusable(x, weight, bias, skip, skip_bias) -> bool:
    """Whether the fused residual kernel (gn_config.skip, through DLPack) can serve a torch
    call of _skip_group_norm: no gradient wanted, eager plain CPU tensors of a kernel dtype,
    the parameters dense and of one dtype (x's or float32), skip of x's exact layout or a
    contiguous per-(n, c) one. Otherwise the composition (same values within the contract;
    the fused sum is formed in float32, the composition's in x's dtype)."""
    tensors = [t for t in (x, weight, bias, skip, skip_bias) if t is not None]
    if _is_compiling() or any(type(t) not in _PLAIN or t.device.type != "cpu" for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    if (x.dtype not in (torch.float32, torch.float16, torch.bfloat16) or _has_tangent(*tensors)
            or _interposed()):
        return False
    channels_last = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    if not (x.is_contiguous() or (channels_last and x.is_contiguous(memory_format=channels_last))):
        return False
    params = [t for t in (weight, bias, skip_bias) if t is not None]
    if any(t.dtype not in (x.dtype, torch.float32) or t.dtype != params[0].dtype
           or not t.is_contiguous() for t in params):
        return False
    if skip is not None and skip.shape == x.shape:
        return skip.stride() == x.stride()
    return skip is None or skip.is_contiguous()


def _group_norm_any(x, num_groups, weight, bias, eps, out, activation=None):
    """groupnorm.group_norm for a torch.Tensor x."""
    act = _code(activation)
    if out is None:
        return group_norm(x, num_groups, weight, bias, eps, activation=activation)
    if torch.is_grad_enabled() and (
        x.requires_grad or (weight is not None and weight.requires_grad)
        or (bias is not None and bias.requires_grad)):
        raise InvalidArgumentError("group_norm: out= does not support autograd")
    if _has_tangent(x, weight, bias):
        raise UnsupportedError("group_norm: forward-mode AD (dual tensors) is not implemented")
    if out.is_neg():  # a DLPack capsule would hide the bit: the results would be negated
        raise InvalidArgumentError("group_norm: out= is a negative view (resolve_neg() it)")
    _check_like_torch(x, weight, bias)
    if _unfused(x, act):  # float64: ours, then PyTorch's activation in place of out
        _run_forward(x, num_groups, _dense(weight), _dense(bias), eps, out)
        y = _activate(out, act)
        if y is not out:
            out.copy_(y)
        return out
    _run_forward(x, num_groups, _dense(weight), _dense(bias), eps, out, activation=act)
    return out


class GroupNorm(nn.GroupNorm):
    """torch.nn.GroupNorm(num_groups, num_channels, eps, affine, *, bias) on our kernels: the
    same parameters (bias=False: a weight and no bias), state_dict keys and initialisation
    (it is an nn.GroupNorm), so it loads a torch.nn.GroupNorm's weights and is found by
    isinstance(m, nn.GroupNorm).

    activation (keyword): None, or "silu", "relu", "gelu", "gelu_tanh": the module computes
    act(GroupNorm(x)) in one pass (as nn.GroupNorm followed by nn.SiLU(), nn.ReLU(),
    nn.GELU() or nn.GELU(approximate="tanh")). A plain attribute, not state: the state_dict
    keys are nn.GroupNorm's; repr shows it when set."""

    activation: Optional[str] = None  # (a class default: modules pickled without it)

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, *args, activation: Optional[str] = None,
                 **kwargs) -> None:
        _code(activation)  # an unknown name raises here, not at the first call
        super().__init__(num_groups, num_channels, eps, affine, *args, **kwargs)
        self.activation = activation

    def forward(self, input: Tensor) -> Tensor:
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps,
                          activation=self.activation)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.activation is None else "%s, activation=%r" % (s, self.activation)

    @classmethod
    def from_torch(cls, module: nn.GroupNorm) -> "GroupNorm":
        """Ours in place of module, sharing its Parameter objects (optimizers keep them)."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.num_groups, new.num_channels = module.num_groups, module.num_channels
        new.eps, new.affine = module.eps, module.affine
        new.register_parameter("weight", module.weight)
        new.register_parameter("bias", module.bias)  # None for bias=False
        new.train(module.training)
        return new


def replace_group_norms(model: nn.Module) -> nn.Module:
    """Swaps every torch.nn.GroupNorm inside model for ours, in place, sharing the
    parameters. Returns model (or, when model itself is an nn.GroupNorm, its replacement)."""
    if type(model) is nn.GroupNorm:
        return GroupNorm.from_torch(model)
    for name, child in model.named_children():
        if type(child) is nn.GroupNorm:
            setattr(model, name, GroupNorm.from_torch(child))
        else:
            replace_group_norms(child)
    return model
