"""Every SIMD level of the micro-kernels this machine supports gives the reference's results."""

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import avg_gradient_in_output_order, avg_pool_in_tap_order, pool_data, tolerance

import fastconv
from fastconv import reference

LEVELS = fastconv.simd_levels()

# (x shape, K, kernel, stride, padding, dilation, groups): tails shorter and longer than
# every tile width, strides (phase split), dilation, groups, depthwise, K not a multiple of 8
SHAPES = [
    ((2, 3, 9, 7), 5, 3, 1, 1, 1, 1),
    ((1, 4, 20, 37), 11, 3, 1, 1, 1, 1),
    ((2, 5, 30, 41), 16, (3, 5), (2, 3), (1, 2), (1, 2), 1),
    ((1, 6, 33, 35), 12, 3, 2, 1, 1, 3),
    ((2, 9, 19, 40), 9, 3, 1, 1, 1, 9),
    ((1, 10, 17, 18), 10, (5, 3), (1, 2), 2, (2, 1), 10),
    ((1, 3, 64, 64), 8, 7, 2, 3, 1, 1),
    ((3, 16, 7, 7), 24, 1, 1, 0, 1, 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, kernel, s, p, d, g", SHAPES)
def test_direct_conv_at_every_level(rng, level, dtype, shape, k, kernel, s, p, d, g):
    assert fastconv.simd_level() == level
    x = rng.standard_normal(shape).astype(dtype)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    w = rng.standard_normal((k, shape[1] // g, kh, kw)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g)
    expected = reference.conv2d(x, w, b, **kwargs)
    rtol, atol = tolerance(dtype)
    got = fastconv.conv2d(x, w, b, algorithm="direct", **kwargs)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * 10)
    got_nhwc = fastconv.conv2d(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), b, algorithm="direct",
                               layout="NHWC", **kwargs)
    np.testing.assert_allclose(got_nhwc, expected.transpose(0, 2, 3, 1), rtol=rtol, atol=atol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, kernel, s, p, d, g", SHAPES)
def test_gradients_at_every_level(rng, level, dtype, shape, k, kernel, s, p, d, g):
    x = rng.standard_normal(shape).astype(dtype)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    w = rng.standard_normal((k, shape[1] // g, kh, kw)).astype(dtype)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g)
    grad = rng.standard_normal(reference.conv2d(x, w, **kwargs).shape).astype(dtype)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(fastconv.conv2d_grad_input(grad, w, x.shape, **kwargs),
                               reference.conv2d_grad_input(grad, w, x.shape, **kwargs), rtol=rtol, atol=atol * 10)
    np.testing.assert_allclose(fastconv.conv2d_grad_weight(grad, x, w.shape, **kwargs),
                               reference.conv2d_grad_weight(grad, x, w.shape, **kwargs), rtol=rtol * 10,
                               atol=atol * 100)


def test_each_level_has_its_tile_width(level):
    from fastconv._kernels import _conv_direct

    widths = {"baseline": (4, 2), "avx2": (8, 4), "avx512": (16, 8)}
    assert (_conv_direct.tile_width("f"), _conv_direct.tile_width("d")) == widths[level]


def test_levels_are_ordered_and_reported():
    assert LEVELS[0] == "baseline"
    assert fastconv.simd_level() in LEVELS
    assert LEVELS == ("baseline", "avx2", "avx512")[: len(LEVELS)]
    with pytest.raises(ValueError, match="SIMD level must be one of"):
        fastconv.set_simd_level("sse9")


def test_environment_override(tmp_path):
    code = "import fastconv; print(fastconv.simd_level())"
    env = dict(os.environ, FASTCONV_SIMD="baseline")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "baseline"
    env.pop("FASTCONV_SIMD")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == LEVELS[-1]


def test_pool_rows_follow_the_level(level):
    from fastconv._kernels import _pool

    assert _pool.current_level() in (LEVELS.index(level), -1)  # -1: a build without vector extensions


# Max pooling's interior rows (pool_rows.h): rows of 1-3, 4-7, 8-15, 16-31 and 33 outputs,
# so every level's blocks, overlapping last blocks and short-row paths run.
POOL_ROWS = [(2, 2, 0), (3, 1, 1), (3, 2, 1), (3, 1, 0), (3, 2, 0)]
POOL_WIDTHS = [2, 3, 5, 6, 7, 9, 11, 14, 17, 18, 23, 31, 34, 35, 36, 40, 67]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p", POOL_ROWS)
def test_max_pool_rows_at_every_level(rng, level, dtype, k, s, p):
    for width in POOL_WIDTHS:
        if width + 2 * p < k:
            continue
        # ties (zeros of both signs among them) and NaNs: the first maximum in row-major tap
        # order and the last NaN must win, as in the reference
        x = pool_data(rng, (2, 3, 5, width), dtype, signed_zeros=True)
        for indices in (False, True):
            got = fastconv.max_pool2d(x, k, stride=s, padding=p, return_indices=indices)
            expected = reference.max_pool2d(x, k, stride=s, padding=p, return_indices=indices)
            if indices:
                (got, got_idx), (expected, expected_idx) = got, expected
                np.testing.assert_array_equal(got_idx, expected_idx, err_msg=f"width {width}")
            np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8), err_msg=f"width {width}")


# NHWC (pool_rows.h's pixel functions): channel counts below, at and between the levels'
# vector lanes (3: _pool's own loops), windows with padding and dilation.
POOL_CHANNELS = [3, 4, 5, 7, 8, 9, 15, 16, 17, 33]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p, d", [(2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 2)])
def test_max_pool_pixels_at_every_level(rng, level, dtype, k, s, p, d):
    for channels in POOL_CHANNELS:
        x_nchw = pool_data(rng, (2, channels, 6, 7), dtype, signed_zeros=True)
        x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
        for indices in (False, True):
            got = fastconv.max_pool2d(x, k, stride=s, padding=p, dilation=d, return_indices=indices, layout="NHWC")
            expected = reference.max_pool2d(x_nchw, k, stride=s, padding=p, dilation=d, return_indices=indices)
            if indices:
                (got, got_idx), (expected, expected_idx) = got, expected
                np.testing.assert_array_equal(got_idx, expected_idx.transpose(0, 2, 3, 1),
                                              err_msg=f"{channels} channels")
            np.testing.assert_array_equal(got.view(np.uint8),
                                          np.ascontiguousarray(expected.transpose(0, 2, 3, 1)).view(np.uint8),
                                          err_msg=f"{channels} channels")


# NHWC average pooling (pool_rows.h's avg_pixel; 3 channels: _pool's loop): the channel counts
# above, the same bits as the same sums in numpy.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
@pytest.mark.parametrize("count_include_pad, divisor_override", [(False, None), (True, 5)])
def test_avg_pool_pixels_at_every_level(rng, level, dtype, k, s, p, count_include_pad, divisor_override):
    for channels in POOL_CHANNELS:
        # random values (sums whose bits depend on their order) and integers, signed zeros, NaN, -inf
        for x in (rng.standard_normal((2, 6, 7, channels)).astype(dtype),
                  pool_data(rng, (2, 6, 7, channels), dtype, signed_zeros=True)):
            got = fastconv.avg_pool2d(x, k, stride=s, padding=p, count_include_pad=count_include_pad,
                                      divisor_override=divisor_override, layout="NHWC")
            expected = avg_pool_in_tap_order(x, k, s, p, divisor_override)
            np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8),
                                          err_msg=f"{channels} channels")


# NHWC average-pooling gradients (pool_rows.h's avg_spread; 3 channels: _pool's loop): the
# channel counts above (vectors of every level and their narrower remainders), the same bits
# as the same sums in numpy.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
@pytest.mark.parametrize("count_include_pad, divisor_override", [(False, None), (True, 5)])
def test_avg_pool_gradient_pixels_at_every_level(rng, level, dtype, k, s, p, count_include_pad, divisor_override):
    for batch in (1, 3):
        for channels in POOL_CHANNELS:
            in_shape = (batch, 6, 7, channels)
            kw = dict(stride=s, padding=p, count_include_pad=count_include_pad, divisor_override=divisor_override,
                      layout="NHWC")
            out_shape = fastconv.avg_pool2d(np.zeros(in_shape, dtype), k, **kw).shape
            grad = rng.standard_normal(out_shape).astype(dtype)
            got = fastconv.avg_pool2d_backward(grad, in_shape, k, **kw)
            expected = avg_gradient_in_output_order(grad, in_shape, k, s, p, divisor_override)
            np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8),
                                          err_msg=f"{batch} images of {channels} channels")
            rtol, atol = tolerance(dtype)
            np.testing.assert_allclose(got, reference.avg_pool2d_backward(grad, in_shape, k, **kw), rtol=rtol,
                                       atol=atol)
