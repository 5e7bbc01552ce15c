"""Binding of the groupnorm C API (use the groupnorm package, not this module).

Arrays: numpy arrays (buffer protocol) or any DLPack producer; outputs must be writable.
Failures raise the groupnorm.Error subclass of the status, with the library's message.
"""

from typing import Any, Optional, Sequence, Tuple, Type

Array = Any  # numpy.ndarray, torch.Tensor, or any object with __dlpack__

def forward(x: Array, weight: Optional[Array], bias: Optional[Array], num_groups: int,
            eps: float, y: Array, mean: Optional[Array], rstd: Optional[Array],
            cuda_stream: int = 0, activation: int = 0, skip: Optional[Array] = None,
            skip_bias: Optional[Array] = None, sum: Optional[Array] = None) -> None:
    """gn_forward; mean and rstd: (N, num_groups), float32 (float64 for float64 x), or
    None; activation: a gn_activation code (groupnorm.ACTIVATIONS); skip, skip_bias, sum:
    the residual prologue (gn_config.skip, skip_bias, sum), or None."""

def backward(dy: Array, x: Array, mean: Array, rstd: Array, weight: Optional[Array],
             num_groups: int, dx: Optional[Array], dweight: Optional[Array],
             dbias: Optional[Array], cuda_stream: int = 0, activation: int = 0,
             beta: Optional[Array] = None) -> None:
    """gn_backward; any of dx, dweight, dbias may be None (not computed). activation: the
    forward's gn_activation code; beta: the forward's bias with an activation
    (gn_config.beta), else None."""

# Torch tensors read through data_ptr(), shape, stride() and dtype (no DLPack capsule);
# these return False / None, having done nothing, unless every tensor is a plain strided CPU
# torch.Tensor (or Parameter) of float32, float16 or bfloat16 without the negative bit
# (then use forward() / backward()). mean and rstd: float32 (N, num_groups) each, or mean
# one (2, N, num_groups) tensor of both and rstd None. New outputs are DLPack tensors of
# the extension's buffers (set_buffer_cache_limit). activation: a gn_activation code
# (gn_config.activation), as forward()'s.

def torch_forward(x: Any, weight: Optional[Any], bias: Optional[Any], num_groups: int,
                  eps: float, y: Any, mean: Optional[Any], rstd: Optional[Any],
                  activation: int = 0) -> bool:
    """gn_forward into the given outputs."""

def torch_group_norm(x: Any, weight: Optional[Any], bias: Optional[Any], num_groups: int,
                     eps: float, stats: int,
                     activation: int = 0) -> Optional[Tuple[Any, Any, Any]]:
    """(y, None, None), stats=1: (y, (2, N, G) statistics, None), stats=2: (y, mean, rstd);
    y has x's strides (x dense)."""

def torch_skip_group_norm(x: Any, weight: Optional[Any], bias: Optional[Any],
                          num_groups: int, eps: float, activation: int, skip: Optional[Any],
                          skip_bias: Optional[Any],
                          return_sum: bool) -> Optional[Tuple[Any, Optional[Any]]]:
    """Skip + GroupNorm [+ activation] of torch CPU tensors into new tensors of x's strides:
    (y, sum or None); None when not served here (x not dense, not a plain tensor)."""

def torch_group_norm_backward(dy: Any, x: Any, mean: Any, rstd: Optional[Any],
                              weight: Optional[Any], num_groups: int, need_x: bool,
                              need_weight: bool, need_bias: bool,
                              param_dtype: Any, bias: Optional[Any] = None,
                              activation: int = 0) -> Optional[Tuple[Any, Any, Any]]:
    """(dx, dweight, dbias), None where not needed; dweight, dbias (C,) of param_dtype.
    activation: the forward's; bias: the forward's bias with an activation, else None."""

def _set_torch_types(tensor: type, parameter: type, float32: Any, float16: Any,
                     bfloat16: Any, from_dlpack: Any) -> None: ...
def set_buffer_cache_limit(bytes: int) -> None: ...
def buffer_cache_bytes() -> int: ...
def set_num_threads(n: int) -> None: ...
def version() -> Tuple[int, int, int]: ...
def time_c_forward(x: Array, y: Array, num_groups: int, repeats: int) -> float:
    """Nanoseconds per gn_forward(x, y) called from C++ (the overhead baseline)."""

def _set_error_classes(classes: Sequence[Type[BaseException]]) -> None: ...
