from typing import Any, Dict, Literal, Optional, Tuple, TypeVar, overload

from ._errors import (
    DeviceUnavailableError as DeviceUnavailableError,
    Error as Error,
    InternalError as InternalError,
    InvalidArgumentError as InvalidArgumentError,
    OutOfMemoryError as OutOfMemoryError,
    UnsupportedError as UnsupportedError,
)

__version__: str
ACTIVATIONS: Dict[Optional[str], int]

# numpy.ndarray, torch.Tensor, or any DLPack producer (JAX, CuPy): the result is x's kind.
ArrayT = TypeVar("ArrayT")

@overload
def group_norm(
    x: ArrayT,
    num_groups: int,
    weight: Optional[Any] = None,
    bias: Optional[Any] = None,
    eps: float = 1e-5,
    *,
    activation: Optional[str] = None,
    skip: Optional[Any] = None,
    skip_bias: Optional[Any] = None,
    return_sum: Literal[False] = False,
    out: Optional[ArrayT] = None,
) -> ArrayT: ...
@overload
def group_norm(
    x: ArrayT,
    num_groups: int,
    weight: Optional[Any] = None,
    bias: Optional[Any] = None,
    eps: float = 1e-5,
    *,
    activation: Optional[str] = None,
    skip: Optional[Any] = None,
    skip_bias: Optional[Any] = None,
    return_sum: Literal[True],
    out: Optional[ArrayT] = None,
) -> Tuple[ArrayT, ArrayT]:
    """Group normalization of x, shape (N, C, *): (x - mean) / sqrt(var + eps) * weight + bias
    per sample and group of C / num_groups channels; activation (a name of ACTIVATIONS, or
    None) is applied to it in the same pass (float64 torch tensors: unfused, through
    PyTorch's activation; other float64 arrays: UnsupportedError). skip / skip_bias: the
    tensor normalized is x + skip + skip_bias[c]; return_sum=True returns (y, that sum).
    torch tensors take the groupnorm.torch ops (autograd, torch.compile). See the package
    docstring."""

def set_num_threads(n: int) -> None:
    """Threads for the library's own CPU pool (0: one per core, or HL_NUM_THREADS); with
    groupnorm.torch imported, torch.set_num_threads governs instead."""
