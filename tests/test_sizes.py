"""Overflow and size safety: sizes that cannot be indexed raise, huge geometry values compute.

The kernels index without bounds checks, so every size they see must have
been proven to fit ``intp`` by the validation layer (``_geometry.check_element_count``).
A size that overflows must raise ``ValueError`` (``MemoryError`` only where the
allocator itself refuses a size that does fit) and never wrap around into a
small buffer. Geometry values far larger than any array (a stride of 2**70 on
a 4x4 image) are valid and must compute what the reference computes.
"""

import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._geometry import INTP_MAX

BIG = [2**31, 2**40, 2**62, INTP_MAX, INTP_MAX + 1, 2**64, 2**70, 2**200]


def both(name, *args, **kwargs):
    """Call fastconv.name and reference.name; return both results (or the exceptions they raised)."""
    out = []
    for mod in (fastconv, reference):
        try:
            out.append(getattr(mod, name)(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - compared below
            out.append(exc)
    return out


def assert_same(name, *args, **kwargs):
    fast, ref = both(name, *args, **kwargs)
    for r in (fast, ref):
        if isinstance(r, BaseException):
            raise r
    if isinstance(fast, tuple):
        for a, b in zip(fast, ref):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
    else:
        np.testing.assert_array_equal(fast, ref)
        assert fast.dtype == ref.dtype and fast.shape == ref.shape
    return fast


def assert_both_raise(exc, match, name, *args, **kwargs):
    fast, ref = both(name, *args, **kwargs)
    for r in (fast, ref):
        assert isinstance(r, exc), f"{name} gave {r!r}, expected {exc.__name__}"
        if match:
            assert match in str(r), str(r)


X = np.arange(16.0).reshape(1, 1, 4, 4)
W1 = np.full((1, 1, 1, 1), 2.0)


# --- huge geometry values on small arrays compute exactly (regressions) ----------------------------

@pytest.mark.parametrize("big", BIG, ids=lambda b: f"2^{b.bit_length() - 1}")
def test_huge_stride_or_dilation_computes(big):
    """A stride beyond the image leaves one window; a dilation with a one-tap kernel does nothing.

    Regression: a stride of 2**40 made conv2d and conv2d_grad_weight allocate a 32 TiB
    phase-split buffer (MemoryError), and values >= 2**63 reached the kernels' C integers
    (OverflowError) although the reference computed the result.
    """
    assert_same("im2col", X, 2, stride=big)
    assert_same("im2col", X, 1, dilation=big)
    assert_same("im2col", X, (1, 2), stride=(1, big), dilation=(big, 1), layout="NHWC")
    assert_same("col2im", np.ones((1, 4)), X.shape, 2, stride=big)
    assert_same("col2im", np.ones((16, 1)), X.shape, 1, dilation=big)
    for algorithm in ("direct", "im2col"):
        assert_same("conv2d", X, W1, stride=big, algorithm=algorithm)
        assert_same("conv2d", X, W1, dilation=big, algorithm=algorithm)
        assert_same("conv2d", X.astype(np.int64), W1.astype(np.int64), stride=big, algorithm=algorithm)
        assert_same("conv2d", X.astype(np.float32).transpose(0, 2, 3, 1), W1.astype(np.float32),
                    stride=(big, 1), layout="NHWC", algorithm=algorithm)
    g1 = np.ones((1, 1, 1, 1))
    assert_same("conv2d_grad_input", g1, W1, X.shape, stride=big)
    assert_same("conv2d_grad_input", np.ones((1, 1, 4, 4)), W1, X.shape, dilation=big)
    assert_same("conv2d_grad_weight", g1, X, W1.shape, stride=big)
    assert_same("conv2d_grad_weight", np.ones((1, 1, 4, 4)), X, W1.shape, dilation=big)
    assert_same("conv_transpose2d", g1, W1, stride=big)
    assert_same("conv_transpose2d", X, W1, dilation=big)
    assert_same("max_pool2d", X, 2, stride=big, return_indices=True)
    assert_same("max_pool2d", X, 1, dilation=big, return_indices=True)
    assert_same("avg_pool2d", X, 2, stride=big)
    assert_same("avg_pool2d", X, 3, stride=big, padding=1, ceil_mode=True)
    assert_same("avg_pool2d_backward", g1, X.shape, 2, stride=big)
    assert_same("max_pool2d_backward", g1, np.array([[[[5]]]]), X.shape)


def test_huge_geometry_in_conv_output_shape_is_exact():
    assert fastconv.conv_output_shape((2**70, 5), 3).shape == (2**70 - 2, 3)
    assert fastconv.conv_output_shape((4, 4), 2, stride=2**200).shape == (1, 1)
    res = fastconv.conv_output_shape((4,), 2, dilation=2**64, padding=2**63)
    assert res.shape == ((4 + 2**64 - 2**64 - 1) // 1 + 1,)
    assert res.padding == ((2**63, 2**63),)


@pytest.mark.parametrize("big", [2**63, 2**64, 2**100])
def test_divisor_override_beyond_int64_is_a_value_error(big):
    """Regression: a divisor_override >= 2**63 raised OverflowError from NumPy's int64 conversion."""
    for value in (big, -big):
        assert_both_raise(ValueError, "divisor_override", "avg_pool2d", X, 2, divisor_override=value)
        assert_both_raise(ValueError, "divisor_override", "avg_pool2d_backward", np.ones((1, 1, 2, 2)),
                          X.shape, 2, divisor_override=value)
    assert_same("avg_pool2d", X, 2, divisor_override=2**63 - 1)
