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


@pytest.mark.parametrize("divisor", [2**63 - 1, -(2**63 - 1)])  # -2**63 is refused: |d| must fit
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


# ---- 6. out= that is (a view of) an input: the kernels read the input while writing out, so
#         pools, unpadded convolutions and the backward pools returned wrong values. NumPy's
#         rule: out may alias an input and the result is as if it did not.
RNG = np.random.default_rng(2024)
F = RNG.standard_normal


@pytest.mark.parametrize("name, make, alias, kw", [
    ("max_pool2d", lambda: (F((1, 2, 5, 5)), 3), 0, dict(stride=1, padding=1)),
    ("max_pool2d", lambda: (F((1, 5, 5, 2)), 3), 0, dict(stride=1, padding=1, layout="NHWC")),
    ("avg_pool2d", lambda: (F((1, 2, 5, 5)), 3), 0, dict(stride=1, padding=1)),
    ("avg_pool2d", lambda: (F((2, 5, 5)), 3), 0, dict(stride=1, padding=1, layout="NHWC")),
    ("conv2d", lambda: (F((1, 2, 20, 20)), F((2, 2, 1, 1))), 0, {}),
    ("conv2d", lambda: (F((1, 2, 20, 20)).astype(np.float32), F((2, 2, 1, 1)).astype(np.float32)), 0, {}),
    ("conv2d", lambda: (RNG.integers(-3, 4, (1, 2, 6, 6)), RNG.integers(-3, 4, (2, 2, 1, 1))), 0, {}),
    ("conv2d", lambda: (F((1, 6, 6, 2)), F((1, 1, 2, 2))), 0, dict(layout="NHWC", algorithm="im2col")),
    ("conv2d_grad_weight", lambda: (F((2, 2, 1, 1)), F((2, 2, 3, 3)), (2, 2, 3, 3)), 1, {}),
    ("avg_pool2d_backward", lambda: (F((1, 1, 4, 4)), (1, 1, 4, 4), 1), 0, {}),
    ("avg_pool2d_backward", lambda: (F((1, 1, 4, 4)), (1, 1, 4, 4), 3), 0, dict(stride=1, padding=1)),
])
def test_out_aliasing_an_input(name, make, alias, kw):
    args = make()
    ref = getattr(reference, name)(*[a.copy() if isinstance(a, np.ndarray) else a for a in args], **kw)
    out = args[alias]
    result = getattr(fastconv, name)(*args, out=out, **kw)
    assert result is out
    np.testing.assert_allclose(result, ref, rtol=2e-5, atol=2e-5)


def test_out_aliasing_max_pool2d_backward_grad():
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    _, indices = reference.max_pool2d(x, 1, return_indices=True)
    grad = F((1, 1, 4, 4))
    ref = reference.max_pool2d_backward(grad.copy(), indices, x.shape)
    np.testing.assert_array_equal(fastconv.max_pool2d_backward(grad, indices, x.shape, out=grad), ref)


def test_out_is_a_reshaped_view_of_the_input():
    cols = F((4, 4))  # (N*OH*OW, C) for a (1, 4, 2, 2) image and a 1x1 kernel
    ref = reference.col2im(cols.copy(), (1, 4, 2, 2), 1)
    np.testing.assert_array_equal(fastconv.col2im(cols, (1, 4, 2, 2), 1, out=cols.reshape(1, 4, 2, 2)), ref)
    x = F((1, 4, 2, 2))
    out = x.reshape(4, 4)
    ref = reference.im2col(x.copy(), 1)
    np.testing.assert_array_equal(fastconv.im2col(x, 1, out=out), ref)


def test_max_pool2d_value_and_index_outs_must_not_overlap():
    x = RNG.integers(0, 9, (1, 1, 4, 4))
    buf = np.empty((1, 1, 2, 2), np.int64)
    for module in (fastconv, reference):
        with pytest.raises(ValueError, match="must not share memory"):
            module.max_pool2d(x, 2, return_indices=True, out=(buf, buf))


# ---- 7. pooling windows of more than 2**63 taps ("same" padding makes any kernel valid):
#         average pooling's divisor wrapped around in int64 and the result was inf
@pytest.mark.parametrize("k", [2**32, (2**40, 2**24), 2**33])
def test_pool_window_overflowing_intp_is_a_value_error(k):
    x = np.ones((1, 1, 4, 4))
    calls = [("avg_pool2d", (x, k)), ("avg_pool2d_backward", (np.ones((1, 1, 1, 1)), x.shape, k)),
             ("max_pool2d", (x, k))]
    for name, args in calls:
        for module in (fastconv, reference):  # the check comes before any tap loop of the reference
            with pytest.raises(ValueError, match="taps per window"):
                getattr(module, name)(*args, padding="same")


@pytest.mark.parametrize("k", [2**31, (2**40, 2**22)])
def test_pool_windows_just_below_the_limit(k):
    # the reference loops over every tap: check against the closed form instead
    kh, kw = (k, k) if isinstance(k, int) else k
    x = np.ones((1, 1, 4, 4))
    np.testing.assert_allclose(fastconv.avg_pool2d(x, k, padding="same"), [[[[16 / (kh * kw)]]]], rtol=1e-15)
    grad = fastconv.avg_pool2d_backward(np.ones((1, 1, 1, 1)), x.shape, k, padding="same")
    np.testing.assert_allclose(grad, np.full(x.shape, 1 / (kh * kw)), rtol=1e-15)
    assert fastconv.max_pool2d(x, k, padding="same").item() == 1.0


# ---- 8. max_pool2d_backward for an empty image plane (H*W = 0) skipped the kernels, and with
#         them the range check of the indices: out-of-range indices passed silently
@pytest.mark.parametrize("layout, input_shape, grad_shape", [
    ("NCHW", (1, 3, 0, 7), (1, 3, 7, 3)),
    ("NHWC", (1, 0, 7, 3), (1, 7, 3, 3)),
    ("NCHW", (2, 0, 5), (2, 2, 2)),
])
def test_max_pool2d_backward_checks_indices_of_an_empty_plane(layout, input_shape, grad_shape):
    grad = np.ones(grad_shape)
    indices = np.full(grad_shape, 8, np.int64)
    for module in (fastconv, reference):
        with pytest.raises(ValueError, match="out-of-range"):
            module.max_pool2d_backward(grad, indices, input_shape, layout=layout)
    indices[...] = -1  # windows without input pixels: a zero gradient of the empty shape
    fast, ref = _both("max_pool2d_backward", grad, indices, input_shape, layout=layout)
    _assert_same(fast, ref)


# ---- 9. a padded plane beyond intp for an empty batch: conv2d, im2col and conv2d_grad_weight
#         raised NumPy's "array is too big" from the padded copy, conv2d_grad_input succeeded,
#         and the reference's conv2d_grad_input failed like the others
@pytest.mark.parametrize("name, args", [
    ("conv2d", (np.zeros((0, 2, 4, 4), np.int32), np.zeros((2, 2, 2, 2), bool))),
    ("conv2d_grad_input", (np.zeros((0, 2, 4, 4), np.int32), np.zeros((2, 2, 2, 2), bool), (0, 2, 4, 4))),
    ("conv2d_grad_weight", (np.zeros((0, 2, 4, 4)), np.zeros((0, 2, 4, 4)), (2, 2, 2, 2))),
    ("im2col", (np.zeros((0, 2, 4, 4)), 2)),
])
def test_padded_plane_overflowing_intp(name, args):
    for module in (fastconv, reference):
        with pytest.raises(ValueError, match="overflows"):
            getattr(module, name)(*args, dilation=2**32, padding="same")


# ---- found by the property tests under tools/sanitize.sh: an image of zero width, padded, read
# its rows at column -1 (an empty row has no column to clamp to); every window is padding
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8])
@pytest.mark.parametrize("shape, k, padding", [
    ((2, 3, 4, 0), 2, 1),
    ((1, 2, 0, 0), (1, 3), ((0, 1), (2, 1))),
    ((1, 1, 3, 0), 3, (1, 2)),
])
def test_im2col_of_a_zero_width_image(dtype, shape, k, padding):
    x = np.zeros(shape, dtype)
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            fast, ref = _both("im2col", x, k, padding=padding)
            _assert_same(fast, ref)
            assert fast.size and not fast.any()


# ---- an empty padded input whose non-zero axes times the item size overflow: NumPy cannot create
# it ("array is too big"), so the reference failed allocating it where fastconv (which never
# allocates an empty one) returned an empty result; the shared check now counts the item size as
# NumPy does, and both refuse the call
@pytest.mark.parametrize("name, args, kwargs", [
    ("conv2d_grad_input", (np.array([[[-4.0, -4.0]], [[0.75, 0.75]]], np.float16), np.zeros((2, 2, 0, 2), np.float16),
                           (3, 2, 0)), dict(layout="NHWC")),
    ("conv2d_grad_weight", (np.array([[[2.0], [2.0]], [[-0.5], [0.0]]], np.float16), np.zeros((0, 3, 2), np.float16),
                            (2, 0, 2, 2)), dict(layout="NCHW")),
])
def test_empty_padded_input_numpy_cannot_create(name, args, kwargs):
    for module in (fastconv, reference):
        with pytest.raises(ValueError, match="no elements, but its non-zero axes"):
            getattr(module, name)(*args, **kwargs, stride=2, dilation=2**31 - 1, padding="same")


def test_element_count_counts_the_item_size_of_an_empty_shape():
    from fastconv._geometry import INTP_MAX, check_element_count

    big = INTP_MAX // 4 + 1  # a non-zero axis that fits as elements, not as 8-byte items
    assert check_element_count((0, big), "a", 1) == 0
    with pytest.raises(ValueError, match="no elements"):
        check_element_count((0, big), "a", 8)
    with pytest.raises(ValueError, match="too big"):  # NumPy refuses it the same way
        np.zeros((0, big), np.float64)
    np.zeros((0, big), np.uint8)
