"""GroupNorm kernels (Halide, compiled ahead of time) for numpy, PyTorch and any DLPack
producer, through the library's C API.

    y = groupnorm.group_norm(x, num_groups, weight, bias, eps=1e-5)

PyTorch (autograd, torch.compile, nn.Module): ``groupnorm.torch``.
"""

import sys as _sys

import numpy as _np

from . import _ext
from ._errors import (
    DeviceUnavailableError,
    Error,
    InternalError,
    InvalidArgumentError,
    OutOfMemoryError,
    UnsupportedError,
)
from ._errors import BY_STATUS as _BY_STATUS

_ext._set_error_classes(_BY_STATUS)

__version__ = "%d.%d.%d" % _ext.version()

__all__ = [
    "group_norm",
    "set_num_threads",
    "Error",
    "InvalidArgumentError",
    "UnsupportedError",
    "DeviceUnavailableError",
    "OutOfMemoryError",
    "InternalError",
]

# Fused activations applied after the affine step, name -> gn_activation (groupnorm.h).
# "gelu" is the erf form (torch.nn.GELU()), "gelu_tanh" torch.nn.GELU(approximate="tanh").
ACTIVATIONS = {None: 0, "silu": 1, "relu": 2, "gelu": 3, "gelu_tanh": 4}

_KDL_CPU, _KDL_CUDA = 1, 2


def _activation_code(activation):
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise InvalidArgumentError(
            "group_norm: activation=%r is not one of %s"
            % (activation, ", ".join(repr(a) for a in ACTIVATIONS))
        ) from None


def _call_forward(x, weight, bias, num_groups, eps, y, mean=None, rstd=None, stream=0,
                  activation=0, skip=None, skip_bias=None, sum=None):
    try:
        _ext.forward(x, weight, bias, num_groups, eps, y, mean, rstd, stream, activation,
                     skip, skip_bias, sum)
    except TypeError as e:  # nanobind: an argument is not an array / an int / a float
        raise InvalidArgumentError(
            "group_norm: x, weight, bias, skip, skip_bias and out must be arrays (numpy or "
            "DLPack), num_groups an int, eps a float (%s)" % str(e).split("\n")[0]
        ) from None


def _is_torch(x):
    return type(x).__module__.startswith("torch")


_torch_integration = None  # groupnorm.torch, imported at the first torch tensor


def _gt():
    global _torch_integration
    if _torch_integration is None:
        from . import torch as gt

        _torch_integration = gt
    return _torch_integration


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, activation=None,
               skip=None, skip_bias=None, return_sum=False, out=None):
    """Group normalization of x, shape (N, C, *), over num_groups groups of C / num_groups
    channels: ``(x - mean) / sqrt(var + eps) * weight[c] + bias[c]``.

    x: float32, float16, bfloat16 (ml_dtypes) or float64 (CPU only), NC* contiguous
    (channel and batch strides free: slices work) or channels-last; a numpy array or any
    DLPack producer (PyTorch, JAX, CuPy) on the CPU or a CUDA device. weight, bias: shape
    (C,), x's dtype or float32 (float64 x: float64 only), or None. eps: used as given.
    activation: None, or a fused activation of y (ACTIVATIONS: "silu", "relu", "gelu"
    (erf), "gelu_tanh"), applied in the same pass; any other value raises
    InvalidArgumentError. float64 has no fused kernels: a float64 numpy array or DLPack
    producer raises UnsupportedError, a float64 torch tensor gets our normalization then
    PyTorch's activation (groupnorm.torch). out: an array of x's shape, dtype and layout
    kind to write (may be x itself); otherwise a new one of x's kind and layout is
    returned.

    skip, skip_bias, return_sum: the residual prologue (ONNX Runtime's SkipGroupNorm, a
    UNet block's residual or time embedding): the tensor normalized is x + skip +
    skip_bias[c]. skip: x's dtype, and x's shape and layout kind, or per (n, c): (N, C) or
    (N, C, 1, ..., 1), contiguous along C. skip_bias: (C,), the parameters' dtype. With
    return_sum=True the result is (y, sum), sum = x + skip + skip_bias in x's dtype (the
    residual branch); with a sum, out must not be x. numpy arrays and other DLPack producers
    run the fused CPU kernels (float32, float16, bfloat16; formed in float32 as (x + skip) +
    (skip_nc + skip_bias)); CUDA arrays and float64 raise UnsupportedError. torch tensors:
    when no gradient is wanted, CPU tensors in the kernels' dtypes and layouts run the same
    fused kernel; otherwise PyTorch forms the sum in x's dtype (autograd reaches x, skip and
    skip_bias) and our op normalizes it.

    PyTorch tensors go through the ``groupnorm.torch`` ops (autograd and torch.compile
    work, with an activation too), except with ``out=``, which writes in place without
    autograd.

    Raises InvalidArgumentError (a ValueError) for invalid arguments, UnsupportedError (a
    NotImplementedError) for valid ones no kernel serves, DeviceUnavailableError,
    OutOfMemoryError (a MemoryError) and InternalError; all are groupnorm.Error, with the
    library's message.
    """
    act = 0 if activation is None else _activation_code(activation)
    if type(return_sum) is not bool:
        raise InvalidArgumentError("group_norm: return_sum must be a bool, not %r" % (return_sum,))
    if return_sum and out is not None and out is x:
        raise InvalidArgumentError("group_norm: with return_sum, out must not be x (the sum "
                                   "is formed from x)")
    if _is_torch(x):
        if skip is not None or skip_bias is not None or return_sum:
            return _gt()._skip_group_norm(x, num_groups, weight, bias, eps, out, activation,
                                          skip, skip_bias, return_sum)
        return _gt()._group_norm_any(x, num_groups, weight, bias, eps, out, activation)
    if type(x) is _np.ndarray:
        y = _np.empty_like(x, order="K") if out is None else out
        s = _np.empty_like(x, order="K") if return_sum else None
        _call_forward(x, weight, bias, num_groups, eps, y, activation=act, skip=skip,
                      skip_bias=skip_bias, sum=s)
        return (y, s) if return_sum else y
    return _group_norm_dlpack(x, num_groups, weight, bias, eps, out, act, skip, skip_bias,
                              return_sum)


def _group_norm_dlpack(x, num_groups, weight, bias, eps, out, act, skip=None, skip_bias=None,
                       return_sum=False):
    """Another DLPack producer (JAX, CuPy, ...): CPU arrays are read through numpy views
    (no copy) and the result handed back with the producer's from_dlpack; CUDA arrays are
    written in place of an empty_like of the producer's namespace, on the legacy default
    stream (the stream a DLPack export without a stream argument is ordered with)."""
    if not hasattr(x, "__dlpack__"):
        raise InvalidArgumentError(
            "group_norm: x must be a numpy array or a DLPack producer, not %s" % type(x).__name__
        )
    xp = _namespace(x)
    device_type = x.__dlpack_device__()[0]
    back = lambda a: xp.from_dlpack(a) if xp is not None else a
    if device_type == _KDL_CPU and out is None:
        as_np = lambda a: None if a is None else _np.from_dlpack(a)
        x_np = _np.from_dlpack(x)
        y = _np.empty_like(x_np, order="K")
        s = _np.empty_like(x_np, order="K") if return_sum else None
        _call_forward(x_np, as_np(weight), as_np(bias), num_groups, eps, y, activation=act,
                      skip=as_np(skip), skip_bias=as_np(skip_bias), sum=s)
        return (back(y), back(s)) if return_sum else back(y)
    if device_type == _KDL_CPU and return_sum:  # out given: the sum as x's numpy view's
        s = _np.empty_like(_np.from_dlpack(x), order="K")
        _call_forward(x, weight, bias, num_groups, eps, out, activation=act, skip=skip,
                      skip_bias=skip_bias, sum=s)
        return out, back(s)
    if (out is None or return_sum) and xp is None:
        raise InvalidArgumentError(
            "group_norm: a %s on a GPU needs out= (and no return_sum): its array namespace "
            "is unknown, so no result can be allocated" % type(x).__name__)
    if out is None:
        out = xp.empty_like(x)
    s = xp.empty_like(x) if return_sum else None
    _call_forward(x, weight, bias, num_groups, eps, out, activation=act, skip=skip,
                  skip_bias=skip_bias, sum=s)
    return (out, s) if return_sum else out


def _namespace(x):
    if hasattr(x, "__array_namespace__"):
        return x.__array_namespace__()
    module = _sys.modules.get(type(x).__module__.split(".")[0])
    return module if hasattr(module, "from_dlpack") else None


def set_num_threads(n):
    """Threads for the CPU kernels, the calling one included (0: one per core, or
    HL_NUM_THREADS): the library's own pool. Once groupnorm.torch is imported the kernels
    run on PyTorch's threads instead (torch.set_num_threads; see
    groupnorm.torch.use_torch_threads)."""
    _ext.set_num_threads(n)
