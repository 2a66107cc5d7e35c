"""conv_output_shape and the geometry checks every function shares."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from fastconv._geometry import check_element_count, conv_geometry


@pytest.mark.parametrize(
    "in_hw, kwargs, shape, padding",
    [
        ((28, 28), dict(kernel_size=5), (24, 24), ((0, 0), (0, 0))),
        ((5, 5), dict(kernel_size=3, padding=1), (5, 5), ((1, 1), (1, 1))),
        ((32, 32), dict(kernel_size=3, stride=2, padding=1), (16, 16), ((1, 1), (1, 1))),
        ((7, 9), dict(kernel_size=(3, 2), stride=(2, 3)), (3, 3), ((0, 0), (0, 0))),
        ((10, 10), dict(kernel_size=3, dilation=2), (6, 6), ((0, 0), (0, 0))),
        ((6, 6), dict(kernel_size=3, padding=((1, 0), (0, 2))), (5, 6), ((1, 0), (0, 2))),
        ((6, 6), dict(kernel_size=3, padding=(2, 0)), (8, 4), ((2, 2), (0, 0))),
        ((6, 6), dict(kernel_size=2, padding="valid"), (5, 5), ((0, 0), (0, 0))),
        # TensorFlow 'same': even kernel puts the odd padding pixel after
        ((5, 5), dict(kernel_size=2, padding="same"), (5, 5), ((0, 1), (0, 1))),
        ((224, 224), dict(kernel_size=7, stride=2, padding="same"), (112, 112), ((2, 3), (2, 3))),
        ((5, 5), dict(kernel_size=3, stride=2, padding="same"), (3, 3), ((1, 1), (1, 1))),
        ((1, 1), dict(kernel_size=1, stride=5, padding="same"), (1, 1), ((0, 0), (0, 0))),
    ],
)
def test_conv_output_shape_examples(in_hw, kwargs, shape, padding):
    result = fastconv.conv_output_shape(in_hw, **kwargs)
    assert result == (shape, padding)
    assert result.shape == shape and result.padding == padding


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_conv_output_shape_any_rank(ndim):
    res = fastconv.conv_output_shape((9,) * ndim, 3, stride=2, padding=1)
    assert res.shape == (5,) * ndim
    assert res.padding == ((1, 1),) * ndim


@given(
    n=st.integers(1, 60), k=st.integers(1, 7), s=st.integers(1, 5), d=st.integers(1, 4),
)
def test_same_padding_follows_tensorflow(n, k, s, d):
    (out,), ((before, after),) = fastconv.conv_output_shape((n,), k, stride=s, padding="same", dilation=d)
    assert out == math.ceil(n / s)
    assert after - before in (0, 1)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    assert before + after == total


@given(
    n=st.integers(1, 40), k=st.integers(1, 6), s=st.integers(1, 4), d=st.integers(1, 3),
    a=st.integers(0, 4), b=st.integers(0, 4),
)
def test_output_formula(n, k, s, d, a, b):
    span = d * (k - 1) + 1
    if n + a + b < span:
        with pytest.raises(ValueError, match="larger than the padded input"):
            fastconv.conv_output_shape((n,), k, stride=s, padding=[(a, b)], dilation=d)
    else:
        (out,), _ = fastconv.conv_output_shape((n,), k, stride=s, padding=[(a, b)], dilation=d)
        assert out == (n + a + b - d * (k - 1) - 1) // s + 1


def test_pool_ceil_mode_matches_pytorch_rule():
    # PyTorch: (5 - 2)/2 rounds up to 2 -> 3 windows; the last starts inside the input
    geo = conv_geometry((5,), 2, 2, 0, 1, ceil_mode=True)
    assert geo.out_shape == (3,)
    # a window that would start in the right padding is dropped
    geo = conv_geometry((4,), 2, 2, 1, 1, ceil_mode=True)
    assert geo.out_shape == (3,)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(kernel_size=0), ValueError, "kernel_size must be >= 1"),
        (dict(kernel_size=(3, 3, 3)), ValueError, "kernel_size must be an int or a sequence of 2"),
        (dict(kernel_size=2.5), TypeError, "kernel_size"),
        (dict(kernel_size=True), TypeError, "kernel_size must be an integer, got the bool"),
        (dict(kernel_size=3, stride=0), ValueError, "stride must be >= 1"),
        (dict(kernel_size=3, stride=(1, "a")), TypeError, "stride"),
        (dict(kernel_size=3, dilation=-1), ValueError, "dilation must be >= 1"),
        (dict(kernel_size=3, padding=-1), ValueError, "padding must be >= 0"),
        (dict(kernel_size=3, padding="full"), ValueError, "padding must be an int, a sequence, 'valid' or 'same'"),
        (dict(kernel_size=3, padding=(1, 2, 3)), ValueError, "padding must be an int"),
        (dict(kernel_size=3, padding=((1, 2, 3), 0)), ValueError, r"padding pairs must be \(before, after\)"),
        (dict(kernel_size=3, padding=1.5), TypeError, "padding"),
        (dict(kernel_size=9), ValueError, "larger than the padded input"),
        (dict(kernel_size=3, dilation=4), ValueError, "larger than the padded input"),
    ],
)
def test_conv_output_shape_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fastconv.conv_output_shape((8, 8), **kwargs)


def test_conv_output_shape_needs_a_sequence():
    with pytest.raises(TypeError, match="input_shape must be a sequence"):
        fastconv.conv_output_shape(8, 3)
    with pytest.raises(ValueError, match="1, 2 or 3 spatial axes"):
        fastconv.conv_output_shape((8, 8, 8, 8), 3)


def test_numpy_integers_are_accepted():
    res = fastconv.conv_output_shape((np.int32(8), np.int64(8)), np.int16(3), stride=np.array(1))
    assert res.shape == (6, 6)
    assert all(type(v) is int for v in res.shape)


def test_element_count_overflow_is_a_value_error():
    big = np.iinfo(np.intp).max
    with pytest.raises(ValueError, match="overflows"):
        check_element_count((big, 2), "thing")
    assert check_element_count((3, 4), "thing") == 12
