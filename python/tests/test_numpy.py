"""groupnorm.group_norm on numpy arrays and DLPack producers: results against the float64
reference, layouts, out= and in place, and every error class."""

import numpy as np
import pytest
import torch

import groupnorm
from conftest import F64_BOUND, assert_forward_contract


def reference_np(x, num_groups, weight=None, bias=None, eps=1e-5):
    n, c = x.shape[:2]
    xg = x.astype(np.float64).reshape(n, num_groups, -1)
    y = (xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + eps)
    y = y.reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * weight.astype(np.float64).reshape(shape)
    if bias is not None:
        y = y + bias.astype(np.float64).reshape(shape)
    return y


@pytest.mark.parametrize("shape,groups", [((2, 6, 5, 7), 3), ((1, 4, 9), 4), ((3, 8), 2),
                                          ((2, 32, 3, 3, 2), 32)])
def test_numpy_round_trip(shape, groups):
    rng = np.random.default_rng()
    x = (rng.standard_normal(shape) + 3.0).astype(np.float32)
    w = rng.uniform(0.5, 1.5, shape[1]).astype(np.float32)
    b = rng.standard_normal(shape[1]).astype(np.float32)
    y = groupnorm.group_norm(x, groups, w, b, eps=1e-3)
    assert type(y) is np.ndarray and y.dtype == np.float32 and y.shape == x.shape
    ref = reference_np(x, groups, w, b, 1e-3)
    assert np.all(np.abs(y - ref) <= 1e-5 * (np.abs(ref) + 1))


def activation_np(name, z):
    """The activation in float64, as torch.nn.functional computes it (the unfused
    composition of GroupNorm then the activation)."""
    t = torch.from_numpy(z)
    f = {"silu": torch.nn.functional.silu, "relu": torch.relu,
         "gelu": torch.nn.functional.gelu,
         "gelu_tanh": lambda v: torch.nn.functional.gelu(v, approximate="tanh")}[name]
    return f(t).numpy()


@pytest.mark.parametrize("activation", ["silu", "relu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_numpy_fused_activation(activation, channels_last):
    rng = np.random.default_rng()
    x = (rng.standard_normal((2, 6, 5, 7)) * 2.0 + 100.0).astype(np.float32)
    w = rng.uniform(0.5, 1.5, 6).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    y = groupnorm.group_norm(x, 3, w, b, activation=activation)
    assert y.strides == x.strides
    ref = activation_np(activation, reference_np(x, 3, w, b))
    assert np.all(np.abs(y - ref) <= 1e-5 * (np.abs(ref) + 1))


def test_numpy_float16_and_channels_last():
    rng = np.random.default_rng()
    x = rng.standard_normal((2, 5, 6, 8)).astype(np.float16)  # N, H, W, C
    x_cl = x.transpose(0, 3, 1, 2)                              # N, C, H, W view, C dense
    y = groupnorm.group_norm(x_cl, 4)
    assert y.dtype == np.float16 and y.strides == x_cl.strides  # layout kept
    assert_forward_contract(torch.from_numpy(y), torch.from_numpy(x_cl), 4, None, None, 1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_numpy_float64(channels_last):
    """float64 arrays run the float64 kernels: within the float64 bound of a long double
    reference, also in place, at |mean| = 1e4 std."""
    rng = np.random.default_rng()
    x = rng.standard_normal((2, 6, 5, 7)) + 1e4
    w, b = rng.uniform(0.5, 1.5, 6), rng.standard_normal(6)
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    xl = x.astype(np.longdouble).reshape(2, 3, -1)
    mean = xl.mean(-1, keepdims=True)
    ref = ((xl - mean) / np.sqrt(((xl - mean) ** 2).mean(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    ref = ref * w.reshape(1, 6, 1, 1) + b.reshape(1, 6, 1, 1)
    y = groupnorm.group_norm(x, 3, w, b)
    assert y.dtype == np.float64 and y.strides == x.strides
    assert np.all(np.abs(y - ref) <= F64_BOUND * (np.abs(ref) + 1))
    groupnorm.group_norm(x, 3, w, b, out=x)
    assert np.array_equal(x, y)


def test_numpy_out_and_in_place():
    rng = np.random.default_rng()
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    out = np.full_like(x, np.nan)  # poisoned: every element must be written
    assert groupnorm.group_norm(x, 2, out=out) is out
    ref = reference_np(x, 2)
    assert np.all(np.abs(out - ref) <= 1e-5 * (np.abs(ref) + 1))
    groupnorm.group_norm(x, 2, out=x)
    assert np.array_equal(x, out)


def test_numpy_slice_of_channels():
    rng = np.random.default_rng()
    big = rng.standard_normal((2, 12, 4, 4)).astype(np.float32)
    x = big[:, 2:10]  # channel and batch strides of the parent: served without a copy
    y = groupnorm.group_norm(x, 4)
    ref = reference_np(x, 4)
    assert np.all(np.abs(y - ref) <= 1e-5 * (np.abs(ref) + 1))


class ForeignArray:
    """A DLPack producer that is neither numpy nor torch (as JAX or CuPy arrays are)."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def test_dlpack_producer():
    rng = np.random.default_rng()
    x = rng.standard_normal((2, 6, 5)).astype(np.float32)
    w = rng.standard_normal(6).astype(np.float32)
    y = groupnorm.group_norm(ForeignArray(x), 3, ForeignArray(w))
    ref = reference_np(x, 3, w)
    assert np.all(np.abs(np.asarray(y) - ref) <= 1e-5 * (np.abs(ref) + 1))


def test_torch_tensor_returns_tensor():
    x = torch.randn(2, 6, 4, 4)
    y = groupnorm.group_norm(x, 3)
    assert isinstance(y, torch.Tensor)
    assert_forward_contract(y, x, 3, None, None, 1e-5)


@pytest.mark.parametrize("call,error,words", [
    (lambda x: groupnorm.group_norm(x, 3), groupnorm.InvalidArgumentError, "must divide"),
    (lambda x: groupnorm.group_norm(x, 2, out=np.empty((2, 4, 4), np.float32)),
     groupnorm.InvalidArgumentError, "shape"),
    (lambda x: groupnorm.group_norm(x, 2, np.ones(5, np.float32)),
     groupnorm.InvalidArgumentError, "gamma"),
    (lambda x: groupnorm.group_norm(x[:, :, :, None], 2, out=np.empty((2, 4, 3, 1), np.float16)),
     groupnorm.InvalidArgumentError, "dtype"),
    (lambda x: groupnorm.group_norm(x.astype(np.float64), 2, np.ones(4, np.float32)),
     groupnorm.UnsupportedError, "float64"),
    (lambda x: groupnorm.group_norm(x.astype(np.float64), 2, activation="silu"),
     groupnorm.UnsupportedError, "fused activations are not compiled for float64"),
    (lambda x: groupnorm.group_norm(x.astype(np.int16), 2), groupnorm.UnsupportedError,
     "int16"),
    (lambda x: groupnorm.group_norm(x[:, :, :, None].repeat(2, 3).transpose(0, 1, 3, 2), 2),
     groupnorm.UnsupportedError, "strides"),
    (lambda x: groupnorm.group_norm(x, 2, activation="swish"), groupnorm.InvalidArgumentError,
     "activation"),
    (lambda x: groupnorm.group_norm([[1.0]], 1), groupnorm.InvalidArgumentError, "list"),
    (lambda x: groupnorm.group_norm(x, "2"), groupnorm.InvalidArgumentError, "num_groups"),
])
def test_bad_input_raises_library_message(call, error, words):
    x = np.random.default_rng().standard_normal((2, 4, 3)).astype(np.float32)
    with pytest.raises(error, match=words) as info:
        call(x)
    assert isinstance(info.value, groupnorm.Error)
    assert isinstance(info.value, ValueError) == (error is groupnorm.InvalidArgumentError)
    assert str(info.value)  # the library's message, never empty


def test_error_classes():
    assert issubclass(groupnorm.InvalidArgumentError, ValueError)
    assert issubclass(groupnorm.UnsupportedError, NotImplementedError)
    assert issubclass(groupnorm.OutOfMemoryError, MemoryError)
    for cls in (groupnorm.InvalidArgumentError, groupnorm.UnsupportedError,
                groupnorm.DeviceUnavailableError, groupnorm.OutOfMemoryError,
                groupnorm.InternalError):
        assert issubclass(cls, groupnorm.Error) and cls.status.startswith("GN_STATUS_")


def test_version_and_threads():
    assert groupnorm.__version__.count(".") == 2
    groupnorm.set_num_threads(1)
    groupnorm.set_num_threads(0)
    with pytest.raises(groupnorm.InvalidArgumentError):
        groupnorm.set_num_threads(-1)
