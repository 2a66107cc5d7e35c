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
from numpy.lib.stride_tricks import as_strided

import fastconv
from fastconv import reference
from fastconv._geometry import INTP_MAX, check_element_count

BIG = [2**31, 2**40, 2**62, INTP_MAX, INTP_MAX + 1, 2**64, 2**70, 2**200]

OVERFLOW = "overflows the platform's index type"


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


# --- check_element_count itself ------------------------------------------------------------------

def test_check_element_count_rejects_axes_elements_and_bytes():
    assert check_element_count((3, 4), "a") == 12
    assert check_element_count((0, INTP_MAX), "a") == 0
    with pytest.raises(ValueError, match="a would have shape"):
        check_element_count((0, INTP_MAX + 1), "a")  # empty, but NumPy cannot make it
    with pytest.raises(ValueError, match=OVERFLOW):
        check_element_count((2**32, 2**32), "a")
    assert check_element_count((2**31, 2**31), "a", itemsize=1) == 2**62
    with pytest.raises(ValueError, match="bytes in all"):
        check_element_count((2**31, 2**31), "a", itemsize=2)
    with pytest.raises(ValueError, match="bytes in all"):
        check_element_count((2**60,), "a", itemsize=16)


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


@pytest.mark.parametrize("kernel", [5, 2**31, 2**63, 2**70])
def test_kernel_larger_than_padded_input(kernel):
    assert_both_raise(ValueError, "larger than the padded input", "im2col", X, kernel)
    assert_both_raise(ValueError, "larger than the padded input", "col2im", np.ones((1, 16)), X.shape, kernel)
    w = np.broadcast_to(np.ones(()), (1, 1, 5, 1))
    assert_both_raise(ValueError, "larger than the padded input", "conv2d", X, w)
    assert_both_raise(ValueError, "larger than the padded input", "max_pool2d", X, kernel)
    assert_both_raise(ValueError, "larger than the padded input", "avg_pool2d", X, kernel)


@pytest.mark.parametrize("dilation", [3, 2**40, 2**70])
def test_dilated_kernel_larger_than_padded_input(dilation):
    w2 = np.ones((1, 1, 2, 2))
    assert_both_raise(ValueError, "larger than the padded input", "im2col", X, 2, dilation=dilation + 1)
    assert_both_raise(ValueError, "larger than the padded input", "conv2d", X, w2, dilation=dilation + 1)
    assert_both_raise(ValueError, "larger than the padded input", "conv2d_grad_input", np.ones((1, 1, 1, 1)),
                      w2, X.shape, dilation=dilation + 1)
    assert_both_raise(ValueError, "larger than the padded input", "max_pool2d", X, 2,
                      dilation=dilation + 1)


# --- results too large to index: ValueError before any allocation --------------------------------

P32 = 2**32  # padding that makes a 1x1 image's output (2**33 + 1)**2 > 2**63 elements
P30 = 2**30  # output (2**31 + 1)**2 ~ 2**62 elements: fits as a count, not in bytes of 8


@pytest.mark.parametrize("pad, match", [(P32, OVERFLOW), (P30, "bytes in all"), (2**80, OVERFLOW)])
def test_huge_padding_outputs(pad, match):
    one = np.ones((1, 1, 1, 1))
    assert_both_raise(ValueError, match, "im2col", one, 1, padding=pad)
    assert_both_raise(ValueError, match, "im2col", one.astype(np.complex128), 1, padding=(pad, pad + 1))
    assert_both_raise(ValueError, match, "conv2d", one, one, padding=pad)
    assert_both_raise(ValueError, match, "conv2d", one, one, padding=((0, pad), (pad, 0)), layout="NHWC")


@pytest.mark.parametrize("pad", [2**31, 2**40, 2**70])
def test_padded_copy_too_large_even_if_output_is_small(pad):
    """A huge padding and a stride beyond it give one window, but the padded copy cannot exist."""
    one = np.ones((1, 1, 1, 1))
    for name, args in [("im2col", (one, 1)), ("conv2d", (one, one)),
                       ("conv2d_grad_weight", (one, one, (1, 1, 1, 1)))]:
        assert_both_raise(ValueError, "the padded input", name, *args, padding=pad, stride=2 * pad + 2)


def test_column_matrix_byte_overflow_for_wide_items():
    one = np.ones((1, 1, 1, 1), np.complex128)  # 16-byte items: 2**62 elements fit, their bytes do not
    assert_both_raise(ValueError, "bytes in all", "im2col", one, 1, padding=P30)
    assert_both_raise(ValueError, "the column matrix", "im2col", np.ones((1, 1, 1, 1), np.uint8), 1, padding=P32)


@pytest.mark.parametrize("shape", [(2**32, 2**32, 1, 1), (2**62, 1, 1, 2), (0, 2**64, 4, 4), (1, 1, 2**63, 1),
                                   (2**70, 3, 3)])
def test_huge_input_shape_arguments(shape):
    """col2im, the conv gradients and the pool gradients allocate ``input_shape``: it is checked first."""
    grad = np.ones((1, 1, 1, 1))
    assert_both_raise(ValueError, "input_shape", "col2im", np.ones((1, 1)), shape, 1)
    assert_both_raise(ValueError, "input_shape", "conv2d_grad_input", grad, W1, shape)
    assert_both_raise(ValueError, "input_shape", "max_pool2d_backward", grad, np.zeros((1, 1, 1, 1), int), shape)
    assert_both_raise(ValueError, "input_shape", "avg_pool2d_backward", grad, shape, 1)


@pytest.mark.parametrize("shape", [(2**62, 1, 1, 1), (2**32, 1, 2**32, 1), (0, 1, 2**64, 1)])
def test_huge_weight_shape(shape):
    assert_both_raise(ValueError, "weight_shape", "conv2d_grad_weight", np.ones((1, 1, 1, 1)), X, shape)


def test_input_shape_bytes_overflow_for_the_result_dtype():
    shape = (2**31, 2**31, 1, 1)  # 2**62 elements: fit as a count, not as float64
    assert_both_raise(ValueError, "bytes in all", "col2im", np.ones((1, 1)), shape, 1)
    assert_both_raise(ValueError, "bytes in all", "col2im", np.ones((1, 1), np.int16), shape, 1)
    assert_both_raise(ValueError, "bytes in all", "max_pool2d_backward", np.ones((1, 1, 1, 1)),
                      np.zeros((1, 1, 1, 1), int), shape)


@pytest.mark.parametrize("stride", [2**32, 2**62, 2**70])
def test_conv_transpose2d_huge_output(stride):
    x = np.ones((1, 1, 2, 2))
    assert_both_raise(ValueError, OVERFLOW, "conv_transpose2d", x, W1, stride=stride)
    assert_both_raise(ValueError, OVERFLOW, "conv_transpose2d", x.transpose(0, 2, 3, 1), W1,
                      stride=(stride, stride + 1), layout="NHWC")


def test_pool_indices_wider_than_the_input():
    """int8 values of 2**61 elements fit in bytes; their int64 indices would not."""
    x = np.broadcast_to(np.zeros((), np.int8), (2**31, 2**30, 1, 1))
    for kwargs in ({}, {"return_indices": True}):
        with pytest.raises(ValueError, match="bytes in all"):
            fastconv.max_pool2d(x, 1, **kwargs)
        with pytest.raises(ValueError, match="bytes in all"):
            reference.max_pool2d(x, 1, **kwargs)
    with pytest.raises(ValueError, match="bytes in all"):
        fastconv.avg_pool2d(x, 1)


def test_huge_virtual_input_is_refused_not_wrapped():
    """A zero-stride view with 2**61 elements: whatever needs a real copy is refused by size."""
    x = np.broadcast_to(np.zeros((), np.int8), (2**31, 2**30, 1, 1))
    for call in (lambda: fastconv.im2col(x, 1),
                 lambda: fastconv.conv2d(x, np.broadcast_to(np.ones((), np.int8), (1, 2**30, 1, 1)))):
        with pytest.raises((ValueError, MemoryError)):
            call()


# --- out= arrays that are not what they claim to be ------------------------------------------------

def _zero_stride(shape, dtype=np.float64):
    """A writeable view of one element that pretends to have ``shape`` (stride 0 everywhere)."""
    return as_strided(np.zeros(1, dtype), shape=shape, strides=(0,) * len(shape))


def test_zero_stride_out_is_refused():
    """Writing a result through a zero-stride view would go far past its one element."""
    one = np.ones((1, 1, 4, 4))
    calls = [
        ("im2col", (one, 2), {}, (9, 4)),
        ("col2im", (np.ones((9, 4)), one.shape, 2), {}, one.shape),
        ("conv2d", (one, np.ones((3, 1, 2, 2))), {}, (1, 3, 3, 3)),
        ("conv2d_grad_input", (np.ones((1, 3, 3, 3)), np.ones((3, 1, 2, 2)), one.shape), {}, one.shape),
        ("conv2d_grad_weight", (np.ones((1, 3, 3, 3)), one, (3, 1, 2, 2)), {}, (3, 1, 2, 2)),
        ("conv_transpose2d", (np.ones((1, 3, 3, 3)), np.ones((3, 1, 2, 2))), {}, one.shape),
        ("max_pool2d", (one, 2), {}, (1, 1, 2, 2)),
        ("avg_pool2d", (one, 2), {}, (1, 1, 2, 2)),
        ("max_pool2d_backward", (np.ones((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), int), one.shape), {}, one.shape),
        ("avg_pool2d_backward", (np.ones((1, 1, 2, 2)), one.shape, 2), {}, one.shape),
    ]
    for name, args, kwargs, shape in calls:
        out = _zero_stride(shape)
        assert_both_raise(ValueError, "not C-contiguous", name, *args, out=out, **kwargs)
    out = (_zero_stride((1, 1, 2, 2)), None)
    assert_both_raise(ValueError, "not C-contiguous", "max_pool2d", one, 2, return_indices=True, out=out)
    out = (None, _zero_stride((1, 1, 2, 2), np.int64))
    assert_both_raise(ValueError, "not C-contiguous", "max_pool2d", one, 2, return_indices=True, out=out)


@pytest.mark.parametrize("shape", [(2**40, 4), (9, 2**40), (0, 4), (9, 4, 1), (4, 9)])
def test_out_of_the_wrong_huge_or_empty_shape(shape):
    out = _zero_stride(shape) if 0 not in shape else np.empty(shape)
    assert_both_raise(ValueError, "out must be", "im2col", np.ones((1, 1, 4, 4)), 2, out=out)


@pytest.mark.parametrize("pad", [2**40, 2**62])
def test_empty_batch_with_a_padded_image_numpy_cannot_make(pad):
    """NumPy refuses an empty shape whose other axes overflow; so must every function, alike.

    Regression: conv2d_grad_input(np.empty((0, 0, 1, 1)), np.empty((0, 0, 1, 1)), (0, 0, 1, 1),
    padding=2**40, stride=2**40) returned an empty array while the reference failed in NumPy
    ("array is too big") allocating its padded gradient image.
    """
    empty = np.empty((0, 0, 1, 1))
    with pytest.raises(ValueError, match="a would have shape"):
        check_element_count((0, 2**40, 2**40), "a")
    kw = dict(padding=pad, stride=2 * pad + 2)
    assert_both_raise(ValueError, "the padded input", "conv2d_grad_input", empty, empty, (0, 0, 1, 1), **kw)
    assert_both_raise(ValueError, "the padded input", "im2col", empty, 1, **kw)
    assert_both_raise(ValueError, "the padded input", "conv2d", empty, empty, **kw)
    assert_both_raise(ValueError, "the padded input", "conv2d_grad_weight", empty, empty, (0, 0, 1, 1), **kw)
