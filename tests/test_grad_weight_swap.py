"""dL/dw of pointwise layers with fewer input channels than filters, the roles of x and the grad swapped.

For a 1x1, stride-1, unpadded convolution, ``dw[k, c]`` sums ``grad[k] *
x[c]`` over pixels: the transpose of the weight gradient of the convolution
whose input is the grad and whose grad is the input
(:func:`fastconv._conv_grad.swaps_pointwise_roles`). The swapped plan sums
in its own grouping, so the results agree with the reference to rounding;
they are the same bits for every thread count.
"""

import numpy as np
import pytest
from helpers import tolerance
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from fastconv import _conv_grad, reference
from fastconv._conv_grad import GradWeightPlan, swaps_pointwise_roles
from fastconv._geometry import conv_geometry
from fastconv._kernels import _conv_direct


def block(dtype, level):
    """Channels of the output-channel tiles' block of two vectors at ``level``."""
    return _conv_direct.oc_tile_shape(level, np.dtype(dtype).char)[0]


def pointwise_plan(n, c, k, hw, dtype, tiles="auto"):
    """The weight-gradient plan of a 1x1 stride-1 convolution of ``(n, c) + hw`` to ``k`` channels."""
    return GradWeightPlan((n, c) + hw, (k, c, 1, 1), conv_geometry(hw, 1), 1, np.dtype(dtype),
                          _conv_direct.current_level(), tiles)


@st.composite
def swapped_layers(draw):
    """``(x, grad)`` of a pointwise layer whose weight gradient swaps its roles at the current level."""
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    width = block(dtype, _conv_direct.current_level())
    c = width * draw(st.integers(1, _conv_grad.SWAP_MAX_CHANNELS // width))
    k = c + draw(st.integers(1, 40))
    h = draw(st.integers(5, 30))
    w = draw(st.integers(-(-_conv_grad.SWAP_MIN_PIXELS // h), 40))  # (at least 196 pixels)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n = draw(st.integers(1, 3))
    return rng.standard_normal((n, c, h, w)).astype(dtype), rng.standard_normal((n, k, h, w)).astype(dtype)


@pytest.mark.skipif(fastconv.simd_levels()[-1] == "baseline", reason="the swap runs at the AVX2 and AVX-512 levels")
@given(case=swapped_layers(), threads=st.sampled_from([1, 2]), layout=st.sampled_from(["NCHW", "NHWC"]))
def test_swapped_weight_gradient_matches_the_reference(case, threads, layout):
    x, grad = case
    n, c, h, w = x.shape
    k = grad.shape[1]
    assert pointwise_plan(n, c, k, (h, w), x.dtype).swapped is not None
    expected = reference.conv2d_grad_weight(grad, x, (k, c, 1, 1))
    rtol, atol = tolerance(x.dtype)
    with fastconv.num_threads(threads):
        if layout == "NHWC":  # (views: the plan reads them with their strides)
            got = fastconv.conv2d_grad_weight(grad.transpose(0, 2, 3, 1), x.transpose(0, 2, 3, 1), (1, 1, c, k),
                                              layout="NHWC")
            got = got.transpose(3, 2, 0, 1)
        else:
            out = np.full((k, c, 1, 1), np.nan, x.dtype)
            got = fastconv.conv2d_grad_weight(grad, x, (k, c, 1, 1), out=out)
            assert got is out
    np.testing.assert_allclose(got, expected, rtol=rtol * 10, atol=atol * 10 * n * h * w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_swapped_weight_gradient_same_bits_for_every_thread_count(rng, level, every_call_parallel, dtype):
    if level == "baseline":
        assert pointwise_plan(3, block(dtype, 0), 2 * block(dtype, 0) + 5, (15, 14), dtype).swapped is None
        return
    c = block(dtype, _conv_direct.current_level())
    k = 2 * c + 5  # a last block of 5 filters
    x = rng.standard_normal((3, c, 15, 14)).astype(dtype)
    grad = rng.standard_normal((3, k, 15, 14)).astype(dtype)
    plan = pointwise_plan(3, c, k, (15, 14), dtype)
    assert plan.swapped is not None
    with fastconv.num_threads(1):
        expected = plan.run(x, grad)
        assert expected.shape == (k, c, 1, 1) and expected.flags.c_contiguous
        swapped = plan.swapped
        plan.swapped = None  # the same plan, unswapped: the same sums to rounding
        unswapped = plan.run(x, grad)
        plan.swapped = swapped
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(expected, reference.conv2d_grad_weight(grad, x, (k, c, 1, 1)),
                               rtol=rtol * 10, atol=atol * 10 * 3 * 15 * 14)
    np.testing.assert_allclose(unswapped, expected, rtol=rtol * 10, atol=atol * 10 * 3 * 15 * 14)
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            np.testing.assert_array_equal(plan.run(x, grad), expected)
            # an input whose planes are not C-contiguous (its rows every other row of a larger array)
            tall = np.zeros((3, c, 30, 14), dtype)
            tall[:, :, ::2] = x
            np.testing.assert_array_equal(plan.run(tall[:, :, ::2], grad), expected)


def test_swapped_weight_gradient_keeps_nan_and_inf(rng):
    level = _conv_direct.current_level()
    if level == 0:
        pytest.skip("the swap runs at the AVX2 and AVX-512 levels")
    c = block(np.float32, level)
    x = rng.standard_normal((2, c, 14, 14)).astype(np.float32)
    grad = rng.standard_normal((2, c + 3, 14, 14)).astype(np.float32)
    x[1, 2, 3, 4] = np.nan
    grad[0, c + 1, 5, 6] = np.inf
    assert pointwise_plan(2, c, c + 3, (14, 14), np.float32).swapped is not None
    got = fastconv.conv2d_grad_weight(grad, x, (c + 3, c, 1, 1))
    expected = reference.conv2d_grad_weight(grad, x, (c + 3, c, 1, 1))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    assert np.isnan(got).any() and np.isinf(got).any()


def test_swap_rule():
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    for level in range(1, len(fastconv.simd_levels())):  # the levels this machine runs, past the baseline
        c = block(f32, level)
        geometry = conv_geometry((14, 14), 1)
        assert swaps_pointwise_roles((c + 1, c, 1, 1), geometry, 1, f32, level)
        assert swaps_pointwise_roles((4 * c, 2 * c, 1, 1), geometry, 1, f32, level) == (2 * c <= 64)
        assert swaps_pointwise_roles((64, block(f64, level), 1, 1), geometry, 1, f64, level)
        assert not swaps_pointwise_roles((c, c, 1, 1), geometry, 1, f32, level)  # as many filters as channels
        assert not swaps_pointwise_roles((2 * c + 8, c + c // 2, 1, 1), geometry, 1, f32, level)  # a block not filled
        assert not swaps_pointwise_roles((256, 128, 1, 1), geometry, 1, f32, level)  # more than 64 channels
        assert not swaps_pointwise_roles((2 * c, c, 1, 1), geometry, 2, f32, level)  # groups
        assert not swaps_pointwise_roles((2 * c, c, 3, 3), geometry, 1, f32, level)  # not 1x1
        assert not swaps_pointwise_roles((2 * c, c, 1, 1), conv_geometry((28, 28), 1, 2), 1, f32, level)  # strided
        assert not swaps_pointwise_roles((2 * c, c, 1, 1), conv_geometry((14, 14), 1, 1, 1), 1, f32, level)  # padded
        assert not swaps_pointwise_roles((2 * c, c, 1, 1), conv_geometry((13, 15), 1), 1, f32, level)  # 195 pixels
    assert not swaps_pointwise_roles((64, 8, 1, 1), conv_geometry((14, 14), 1), 1, f32, 0)  # the baseline level
    # hand-chosen tiles run the unswapped plan
    level = _conv_direct.current_level()
    if level:
        c = block(f32, level)
        assert pointwise_plan(2, c, 2 * c, (14, 14), f32).swapped is not None
        assert pointwise_plan(2, c, 2 * c, (14, 14), f32, "channels").swapped is None
