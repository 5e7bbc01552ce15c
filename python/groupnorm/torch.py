"""PyTorch integration: the ``groupnorm::forward`` / ``groupnorm::backward`` custom ops
(torch.library, with fake kernels for torch.compile and autograd through our backward), a
drop-in ``GroupNorm`` module and ``replace_group_norms(model)``.

Layouts: contiguous and channels-last tensors are used as they are (the output keeps x's
memory format); any other layout is made contiguous first. float64 has no kernel yet: the
ops compute float64 tensors in float32 (inputs cast in, results cast back), so float64
results carry float32 rounding.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from . import _activation_code, _call_forward, _ext
from ._errors import InvalidArgumentError

__all__ = ["group_norm", "GroupNorm", "replace_group_norms"]

_KDL_CUDA = 2


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


def _compute_dtype(t: Optional[Tensor]) -> Optional[Tensor]:
    # float64: no kernel yet, computed in float32 (documented above).
    return t.float() if t is not None and t.dtype == torch.float64 else t


def _stream(x: Tensor) -> int:
    return torch.cuda.current_stream(x.device).cuda_stream if x.is_cuda else 0


def _stats(x: Tensor, num_groups: int) -> Tuple[Tensor, Tensor]:
    shape = (x.shape[0], num_groups)
    return (x.new_empty(shape, dtype=torch.float32), x.new_empty(shape, dtype=torch.float32))


@torch.library.custom_op("groupnorm::forward", mutates_args=())
def _forward(
    x: Tensor, num_groups: int, weight: Optional[Tensor], bias: Optional[Tensor], eps: float
) -> Tuple[Tensor, Tensor, Tensor]:
    """y, mean, rstd (float32 (N, num_groups)) = GroupNorm(x)."""
    x = _served(x)
    xc, wc, bc = _compute_dtype(x), _compute_dtype(weight), _compute_dtype(bias)
    y = torch.empty_like(xc)
    mean, rstd = _stats(x, num_groups)
    _call_forward(xc.detach(), _detached(wc), _detached(bc), num_groups, eps, y, mean, rstd,
                  _stream(x))
    return (y.to(x.dtype) if y.dtype != x.dtype else y), mean, rstd


@_forward.register_fake
def _forward_fake(x, num_groups, weight, bias, eps):
    x = _served(x)
    mean, rstd = _stats(x, num_groups)
    return torch.empty_like(x), mean, rstd


@torch.library.custom_op("groupnorm::backward", mutates_args=())
def _backward(
    dy: Tensor,
    x: Tensor,
    mean: Tensor,
    rstd: Tensor,
    weight: Optional[Tensor],
    bias_dtype: Optional[torch.dtype],
    num_groups: int,
    output_mask: List[bool],
) -> Tuple[Tensor, Tensor, Tensor]:
    """dx, dweight, dbias (each empty when its output_mask entry is False)."""
    x = _served(x)
    dy = _like(dy, x)
    xc, dyc, wc = _compute_dtype(x), _compute_dtype(dy), _compute_dtype(weight)
    param_dtype = wc.dtype if wc is not None else (xc.dtype if bias_dtype is None else
                                                   _compute_dtype_of(bias_dtype))
    channels = x.shape[1]
    dx = torch.empty_like(xc) if output_mask[0] else None
    dw = x.new_empty((channels,), dtype=param_dtype) if output_mask[1] else None
    db = x.new_empty((channels,), dtype=param_dtype) if output_mask[2] else None
    try:
        _ext.backward(dyc.detach(), xc.detach(), mean, rstd, _detached(wc), num_groups, dx, dw,
                      db, _stream(x))
    except TypeError as e:
        raise InvalidArgumentError("groupnorm::backward: %s" % str(e).split("\n")[0]) from None
    # Not computed: an empty tensor each (outputs must not alias one another).
    w_dtype = weight.dtype if weight is not None else x.dtype
    b_dtype = bias_dtype if bias_dtype is not None else x.dtype
    dx = x.new_empty((0,)) if dx is None else dx.to(x.dtype)
    dw = x.new_empty((0,), dtype=w_dtype) if dw is None else dw.to(w_dtype)
    db = x.new_empty((0,), dtype=b_dtype) if db is None else db.to(b_dtype)
    return dx, dw, db


def _compute_dtype_of(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype == torch.float64 else dtype


@_backward.register_fake
def _backward_fake(dy, x, mean, rstd, weight, bias_dtype, num_groups, output_mask):
    x = _served(x)
    channels = x.shape[1]
    w_dtype = weight.dtype if weight is not None else x.dtype
    b_dtype = bias_dtype if bias_dtype is not None else x.dtype
    dx = torch.empty_like(x) if output_mask[0] else x.new_empty((0,))
    dw = x.new_empty((channels,) if output_mask[1] else (0,), dtype=w_dtype)
    db = x.new_empty((channels,) if output_mask[2] else (0,), dtype=b_dtype)
    return dx, dw, db


def _detached(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.detach()


def _setup_context(ctx, inputs, output):
    x, num_groups, weight, bias, _ = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, weight, mean, rstd)
    ctx.num_groups = num_groups
    ctx.bias_dtype = None if bias is None else bias.dtype


def _autograd_backward(ctx, dy, _dmean, _drstd):
    x, weight, mean, rstd = ctx.saved_tensors
    need_x, _, need_w, need_b, _ = ctx.needs_input_grad
    dx, dw, db = _backward(dy, x, mean, rstd, weight, ctx.bias_dtype, ctx.num_groups,
                           [need_x, need_w, need_b])
    return (dx if need_x else None, None, dw if need_w else None, db if need_b else None, None)


_forward.register_autograd(_autograd_backward, setup_context=_setup_context)


def group_norm(
    x: Tensor,
    num_groups: int,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    eps: float = 1e-5,
    *,
    activation: Optional[str] = None,
) -> Tensor:
    """torch.nn.functional.group_norm through our kernels (autograd, torch.compile)."""
    _activation_code(activation)
    return _forward(x, num_groups, weight, bias, eps)[0]


def _group_norm_any(x, num_groups, weight, bias, eps, out):
    """groupnorm.group_norm for a torch.Tensor x."""
    if out is None:
        return _forward(x, num_groups, weight, bias, eps)[0]
    if torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias)
    ):
        raise InvalidArgumentError("group_norm: out= does not support autograd")
    _call_forward(x.detach(), _detached(weight), _detached(bias), num_groups, eps, out.detach(),
                  stream=_stream(x))
    return out


class GroupNorm(nn.GroupNorm):
    """torch.nn.GroupNorm(num_groups, num_channels, eps, affine) on our kernels: the same
    parameters, state_dict keys and initialisation (it is an nn.GroupNorm), so it loads a
    torch.nn.GroupNorm's weights and is found by isinstance(m, nn.GroupNorm)."""

    def forward(self, input: Tensor) -> Tensor:
        return _forward(input, self.num_groups, self.weight, self.bias, self.eps)[0]

    @classmethod
    def from_torch(cls, module: nn.GroupNorm) -> "GroupNorm":
        """Ours in place of module, sharing its Parameter objects (optimizers keep them)."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.num_groups, new.num_channels = module.num_groups, module.num_channels
        new.eps, new.affine = module.eps, module.affine
        new.register_parameter("weight", module.weight)
        new.register_parameter("bias", module.bias)
        new.train(module.training)
        return new


def replace_group_norms(model: nn.Module) -> nn.Module:
    """Swaps every torch.nn.GroupNorm inside model (and model itself, returned) for ours,
    in place, sharing the parameters. Returns model (or its replacement)."""
    if type(model) is nn.GroupNorm:
        return GroupNorm.from_torch(model)
    for name, child in model.named_children():
        if type(child) is nn.GroupNorm:
            setattr(model, name, GroupNorm.from_torch(child))
        else:
            replace_group_norms(child)
    return model
