"""Exceptions: one class per failure status of the C API (gn_status), all groupnorm.Error.

The message is the library's own (gn_last_error_message(): it names the argument).
"""


class Error(Exception):
    """A call into the groupnorm library failed. ``status`` is the C API's status name."""

    status = "GN_STATUS_INTERNAL_ERROR"


class InvalidArgumentError(Error, ValueError):
    """GN_STATUS_INVALID_ARGUMENT: an argument breaks the operator's contract (shapes,
    dtypes that disagree, C % num_groups != 0, overlapping outputs, ...)."""

    status = "GN_STATUS_INVALID_ARGUMENT"


class UnsupportedError(Error, NotImplementedError):
    """GN_STATUS_UNSUPPORTED: valid, but no compiled kernel serves it (float64, strides
    that are neither layout, a fused activation this build lacks)."""

    status = "GN_STATUS_UNSUPPORTED"


class DeviceUnavailableError(Error, RuntimeError):
    """GN_STATUS_DEVICE_UNAVAILABLE: no usable driver or kernel for the tensors' device."""

    status = "GN_STATUS_DEVICE_UNAVAILABLE"


class OutOfMemoryError(Error, MemoryError):
    """GN_STATUS_OUT_OF_MEMORY."""

    status = "GN_STATUS_OUT_OF_MEMORY"


class InternalError(Error, RuntimeError):
    """GN_STATUS_INTERNAL_ERROR."""

    status = "GN_STATUS_INTERNAL_ERROR"


# Indexed by the gn_status value (GN_STATUS_SUCCESS = 0 never raises).
BY_STATUS = (
    InternalError,
    InvalidArgumentError,
    UnsupportedError,
    DeviceUnavailableError,
    OutOfMemoryError,
    InternalError,
)
