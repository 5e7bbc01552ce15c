"""Binding of the groupnorm C API (use the groupnorm package, not this module).

Arrays: numpy arrays (buffer protocol) or any DLPack producer; outputs must be writable.
Failures raise the groupnorm.Error subclass of the status, with the library's message.
"""

from typing import Any, Optional, Sequence, Tuple, Type

Array = Any  # numpy.ndarray, torch.Tensor, or any object with __dlpack__

def forward(x: Array, weight: Optional[Array], bias: Optional[Array], num_groups: int,
            eps: float, y: Array, mean: Optional[Array], rstd: Optional[Array],
            cuda_stream: int = 0) -> None:
    """gn_forward; mean and rstd: float32 (N, num_groups) or None."""

def backward(dy: Array, x: Array, mean: Array, rstd: Array, weight: Optional[Array],
             num_groups: int, dx: Optional[Array], dweight: Optional[Array],
             dbias: Optional[Array], cuda_stream: int = 0) -> None:
    """gn_backward; any of dx, dweight, dbias may be None (not computed)."""

def torch_forward(x: Any, weight: Optional[Any], bias: Optional[Any], num_groups: int,
                  eps: float, y: Any, mean: Optional[Any], rstd: Optional[Any]) -> bool:
    """gn_forward on torch tensors read through data_ptr(), shape, stride() and dtype (no
    DLPack capsule). mean and rstd: None, float32 (N, num_groups) each, or mean one
    (2, N, num_groups) tensor (mean, rstd) and rstd None. Returns False, having done
    nothing, unless every tensor is a plain strided CPU torch.Tensor (or Parameter) of
    float32, float16 or bfloat16 without the negative bit: then use forward()."""

def torch_backward(dy: Any, x: Any, mean: Any, rstd: Optional[Any], weight: Optional[Any],
                   num_groups: int, dx: Optional[Any], dweight: Optional[Any],
                   dbias: Optional[Any]) -> bool:
    """gn_backward as torch_forward does gn_forward (mean, rstd: as there)."""

def _set_torch_types(tensor: type, parameter: type, float32: Any, float16: Any,
                     bfloat16: Any) -> None: ...
def set_num_threads(n: int) -> None: ...
def version() -> Tuple[int, int, int]: ...
def time_c_forward(x: Array, y: Array, num_groups: int, repeats: int) -> float:
    """Nanoseconds per gn_forward(x, y) called from C++ (the overhead baseline)."""

def _set_error_classes(classes: Sequence[Type[BaseException]]) -> None: ...
