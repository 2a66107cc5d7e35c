"""Regression tests for what ``tools/fuzz.py`` found: each a minimal reproducer of one finding.

Every case runs fastconv and the reference on the same input and checks the
contract: both succeed with equal results, or both raise ValueError/TypeError.
"""

import numpy as np
import pytest

import fastconv
from fastconv import reference


def _both(name, *args, **kwargs):
    """``(fastconv result, reference result)`` of one call."""
    return getattr(fastconv, name)(*args, **kwargs), getattr(reference, name)(*args, **kwargs)


def _assert_same(fast, ref):
    assert fast.shape == ref.shape
    assert fast.dtype == ref.dtype
    np.testing.assert_array_equal(fast, ref)


# ---- 1. conv2d_grad_weight with no output channels (K = 0): "cannot reshape array of size 0"
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.bool_])
@pytest.mark.parametrize("layout, grad_shape, x_shape, weight_shape", [
    ("NCHW", (1, 0, 4, 4), (1, 3, 4, 4), (0, 3, 1, 1)),
    ("NHWC", (1, 4, 4, 0), (1, 4, 4, 3), (1, 1, 3, 0)),
    ("NCHW", (1, 0, 2, 2), (1, 2, 4, 4), (0, 2, 3, 3)),  # padded, larger kernel
])
def test_grad_weight_no_output_channels(dtype, layout, grad_shape, x_shape, weight_shape):
    fast, ref = _both("conv2d_grad_weight", np.zeros(grad_shape, dtype), np.ones(x_shape, dtype), weight_shape,
                      padding=(0, 0) if weight_shape[-1] == 1 else 0, layout=layout)
    _assert_same(fast, ref)
    assert fast.shape == weight_shape


@pytest.mark.parametrize("x_shape", [(0, 3, 4, 4), (2, 0, 4, 4)])
def test_grad_weight_empty_input(x_shape):
    n, c = x_shape[:2]
    grad = np.ones((n, 2, 2, 2))
    fast, ref = _both("conv2d_grad_weight", grad, np.ones(x_shape), (2, c, 3, 3))
    _assert_same(fast, ref)
    assert not fast.any()


# ---- 2. conv2d_grad_input / conv_transpose2d with an empty weight or image:
#         IndexError in direct_nchw (weight[0]), or a ValueError from an internal geometry
@pytest.mark.parametrize("grad_shape, weight_shape, input_shape, kw", [
    ((1, 1, 6), (1, 2, 2, 1), (2, 0, 4), dict(padding=1)),        # H = 0: "kernel spans 2 pixels"
    ((1, 3, 7), (1, 0, 1, 1), (0, 1, 5), dict(padding=1)),        # C = 0: IndexError
    ((1, 1, 1, 1), (1, 0, 1, 1), (1, 0, 1, 1), {}),               # C = 0, batched
    ((1, 0, 3, 3), (0, 2, 2, 2), (1, 2, 4, 4), {}),               # K = 0: zeros
    ((1, 0, 2, 2), (0, 2, 2, 2), (1, 2, 4, 4), dict(stride=2)),  # K = 0, the GEMM path
    ((0, 1, 3, 3), (1, 2, 2, 2), (0, 2, 4, 4), {}),               # N = 0
    ((1, 1, 1, 2), (1, 2, 2, 2), (1, 2, 0, 3), dict(padding=1, stride=2)),  # H = 0, the GEMM path
])
def test_grad_input_empty(grad_shape, weight_shape, input_shape, kw):
    fast, ref = _both("conv2d_grad_input", np.ones(grad_shape), np.ones(weight_shape), input_shape, **kw)
    _assert_same(fast, ref)
    assert fast.shape == input_shape


@pytest.mark.parametrize("x_shape, weight_shape, bias", [
    ((0, 0, 4, 4), (0, 0, 2, 2), np.zeros(0)),  # IndexError
    ((1, 0, 4, 4), (0, 0, 2, 2), None),
    ((1, 2, 4, 4), (2, 0, 2, 2), None),         # no output channels
    ((1, 0, 4, 4), (0, 3, 2, 2), np.arange(3.0)),  # no input channels: the output is the bias
])
def test_conv_transpose_empty(x_shape, weight_shape, bias):
    fast, ref = _both("conv_transpose2d", np.ones(x_shape), np.ones(weight_shape), bias)
    _assert_same(fast, ref)


# ---- 3. divisor_override beyond int64: OverflowError from np.full / the kernels
@pytest.mark.parametrize("divisor", [2**63, -(2**63) - 1, 2**64, 10**30])
@pytest.mark.parametrize("name", ["avg_pool2d", "avg_pool2d_backward"])
def test_divisor_override_out_of_range(name, divisor):
    args = (np.ones((1, 1, 2, 2)), 1) if name == "avg_pool2d" else (np.ones((1, 1, 2, 2)), (1, 1, 2, 2), 1)
    for module in (fastconv, reference):
        with pytest.raises(ValueError, match="divisor_override"):
            getattr(module, name)(*args, divisor_override=divisor)


@pytest.mark.parametrize("divisor", [2**63 - 1, -(2**63)])
def test_divisor_override_int64_extremes(divisor):
    fast, ref = _both("avg_pool2d", np.full((1, 1, 2, 2), 2.0**62), 1, divisor_override=divisor)
    np.testing.assert_allclose(fast, ref, rtol=1e-15)


# ---- 4. a stride, dilation or padding beyond what a C index holds: OverflowError from the
#         kernels' Py_ssize_t arguments, or a bogus "Maximum allowed dimension exceeded" from
#         a phase-split buffer of 2**62 columns, where the reference returned the result
X16 = np.arange(16.0).reshape(1, 1, 4, 4)


@pytest.mark.parametrize("name, args, kw", [
    ("im2col", (X16, 2), dict(stride=2**63)),
    ("im2col", (X16, 1), dict(dilation=2**63)),
    ("im2col", (X16, 1), dict(dilation=2**64, stride=(1, 2**70))),
    ("col2im", (np.ones((1, 4)), (1, 1, 4, 4), 2), dict(stride=2**63)),
    ("conv2d", (X16, np.ones((1, 1, 2, 2))), dict(stride=2**62)),
    ("conv2d", (X16, np.ones((1, 1, 2, 2))), dict(stride=(1, 2**63), padding="same")),
    ("conv2d", (X16, np.ones((1, 1, 1, 1))), dict(dilation=2**63)),
    ("conv2d_grad_input", (np.ones((1, 1, 1, 1)), np.ones((1, 1, 2, 2)), (1, 1, 4, 4)), dict(stride=2**63)),
    ("conv2d_grad_input", (np.ones((1, 1, 1, 4)), np.ones((1, 1, 1, 1)), (1, 1, 4, 4)),
     dict(stride=(2**63, 1), dilation=2**64)),
    ("conv2d_grad_weight", (np.ones((1, 1, 1, 1)), X16, (1, 1, 2, 2)), dict(stride=2**63)),
    ("conv_transpose2d", (np.ones((1, 1, 1, 1)), np.ones((1, 1, 2, 2))), dict(stride=2**63)),
    ("max_pool2d", (X16, 2), dict(stride=2**63)),
    ("max_pool2d", (X16, 1), dict(dilation=2**63)),
    ("avg_pool2d", (X16, 2), dict(stride=2**64)),
    ("avg_pool2d_backward", (np.ones((1, 1, 1, 1)), (1, 1, 4, 4), 2), dict(stride=2**63)),
])
def test_index_sized_stride_and_dilation(name, args, kw):
    fast, ref = _both(name, *args, **kw)
    _assert_same(fast, ref)


@pytest.mark.parametrize("name, args, kw", [
    ("im2col", (X16, 2), dict(padding=2**62)),
    ("im2col", (X16, 2), dict(padding=((0, 2**63), 0))),
    ("max_pool2d", (X16, 2**64), dict(padding="same")),
    ("conv_transpose2d", (np.ones((1, 1, 2, 1)), np.ones((1, 1, 2, 2))), dict(stride=2**62)),
])
def test_index_overflowing_geometry_is_a_value_error(name, args, kw):
    for module in (fastconv, reference):
        with pytest.raises(ValueError, match="overflows the platform's index type"):
            getattr(module, name)(*args, **kw)


# ---- 5. groups larger than every channel count (possible only with C = K = 0): the
#         reference looped ``for g in range(groups)``, for 2**63 groups forever
@pytest.mark.parametrize("name, args, kw", [
    ("conv2d", (np.zeros((1, 0, 4, 4)), np.zeros((0, 0, 1, 1))), {}),
    ("conv2d_grad_input", (np.zeros((0, 4, 6, 0)), np.zeros((1, 1, 0, 0)), (0, 4, 4, 0)),
     dict(layout="NHWC", padding=[0, 1])),
    ("conv2d_grad_weight", (np.zeros((1, 0, 4, 4)), np.zeros((1, 0, 4, 4)), (0, 0, 1, 1)), {}),
    ("conv_transpose2d", (np.zeros((1, 0, 4, 4)), np.zeros((0, 0, 1, 1))), {}),
])
def test_groups_beyond_the_channels(name, args, kw):
    with pytest.raises(ValueError, match="groups"):
        getattr(fastconv, name)(*args, groups=2**63, **kw)
    for module in (fastconv, reference):  # 10**4: slow but finite in an unfixed reference
        with pytest.raises(ValueError, match="groups"):
            getattr(module, name)(*args, groups=10**4, **kw)
