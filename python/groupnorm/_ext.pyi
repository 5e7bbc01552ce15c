"""Binding of the groupnorm C API (use the groupnorm package, not this module).

Arrays: numpy arrays (buffer protocol) or any DLPack producer; outputs must be writable.
Failures raise the groupnorm.Error subclass of the status, with the library's message.
"""

from typing import Any, Optional, Sequence, Tuple, Type

Array = Any  # numpy.ndarray, torch.Tensor, or any object with __dlpack__

def forward(x: Array, weight: Optional[Array], bias: Optional[Array], num_groups: int,
            eps: float, y: Array, mean: Optional[Array], rstd: Optional[Array],
            cuda_stream: int = 0, activation: int = 0) -> None:
    """gn_forward; mean and rstd: (N, num_groups), float32 (float64 for float64 x), or
    None; activation: a gn_activation code (groupnorm.ACTIVATIONS)."""

def backward(dy: Array, x: Array, mean: Array, rstd: Array, weight: Optional[Array],
             num_groups: int, dx: Optional[Array], dweight: Optional[Array],
             dbias: Optional[Array], cuda_stream: int = 0) -> None:
    """gn_backward; any of dx, dweight, dbias may be None (not computed)."""

def set_num_threads(n: int) -> None: ...
def version() -> Tuple[int, int, int]: ...
def time_c_forward(x: Array, y: Array, num_groups: int, repeats: int) -> float:
    """Nanoseconds per gn_forward(x, y) called from C++ (the overhead baseline)."""

def _set_error_classes(classes: Sequence[Type[BaseException]]) -> None: ...
