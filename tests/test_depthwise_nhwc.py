"""The NHWC depthwise kernels: each pixel's vector of channels read and written in place.

Each case runs one depthwise convolution (or its input or weight gradient) on
NHWC arrays and the same one on their NCHW views, at every SIMD level: the
two agree bit for bit (each output is the bias plus the taps' products in tap
order, each input gradient the stride phases' sums, each weight gradient the
lanes kernel's sums, image after image) and with the reference.
"""

import numpy as np
import pytest
from helpers import depthwise_cases, tolerance
from hypothesis import given

import fastconv
from fastconv import _conv, _conv_grad, reference
from fastconv._kernels import _conv_direct
from fastconv._plans import clear_plans
from fastconv._prepare import prepare_conv2d_grad_weight

#: Channels: fewer than a group's lanes, one partial group, whole groups and a partial one at
#: every level (lanes 2 .. 16).
CHANNELS = [2, 3, 16, 21, 40]
#: kernel, stride, padding, dilation: 3x3 at strides 1 and 2 (the kernel's window of input
#: vectors), uneven strides and padding, 5x5, dilated, 1x1 past the kernel, a 2x3 kernel
#: dilated unevenly, 3x3 at stride 3.
GEOMETRIES = [(3, 1, 1, 1), (3, 2, 1, 1), (3, (2, 1), ((0, 2), (1, 0)), 1), (5, 1, 2, 1), (3, 1, 2, 2),
              (1, 3, 0, 1), ((2, 3), 2, (1, 0), (2, 1)), (3, 3, 1, 1)]


def needs_lanes(dtype):
    if not _conv_direct.depthwise_lanes(np.dtype(dtype).char):
        pytest.skip("this build's level has no vector lanes")


def nchw_bits(x, w, b, **kw):
    """The same convolution through the NCHW kernels (plane tiles or lanes), as NHWC."""
    w_oihw = None if w is None else np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    return fastconv.conv2d(x.transpose(0, 3, 1, 2), w_oihw, b, **kw).transpose(0, 2, 3, 1)


def arrays(rng, n, hw, c, kernel, dtype):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = rng.standard_normal((n,) + hw + (c,)).astype(dtype)
    w = rng.standard_normal((kh, kw, 1, c)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    return x, w, b


def check_forward(x, w, b, **kw):
    """The NHWC convolution against the reference and the NCHW kernels' bits; None where it does not fit."""
    try:
        expected = reference.conv2d(x, w, b, layout="NHWC", **kw)
    except ValueError:  # the kernel does not fit this small an input
        return None
    got = fastconv.conv2d(x, w, b, layout="NHWC", **kw)
    rtol, atol = tolerance(x.dtype)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(got, nchw_bits(x, w, b, **kw))
    return got


# widths below, at and past the blocks of 4 and 8 pixels, planes of one pixel
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("hw", [(1, 1), (7, 7), (5, 17), (14, 14), (9, 33)])
@pytest.mark.parametrize("k, s, p, d", GEOMETRIES)
def test_nhwc_matches_nchw(rng, level, every_call_parallel, dtype, c, hw, k, s, p, d):
    needs_lanes(dtype)
    x, w, b = arrays(rng, 2, hw, c, k, dtype)
    check_forward(x, w, b, stride=s, padding=p, dilation=d, groups=c)


@pytest.mark.parametrize("width", range(1, 21))
@pytest.mark.parametrize("s, p", [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, "same")])
def test_rows_of_every_width(rng, level, width, s, p):
    """Rows of 1 to 20 pixels: whole and partial blocks, each with and without padded columns."""
    needs_lanes(np.float32)
    x, w, b = arrays(rng, 1, (3, width), 16, 3, np.float32)
    kw_ = dict(stride=s, padding=p, groups=16)
    try:
        expected = reference.conv2d(x, w, b, layout="NHWC", **kw_)
    except ValueError:
        return
    got = fastconv.conv2d(x, w, b, layout="NHWC", **kw_)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got, nchw_bits(x, w, b, **kw_))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_inputs_and_out(rng, level, every_call_parallel, dtype):
    """Reversed rows and columns, pixels further apart than their channels, channels not side by side, out=."""
    needs_lanes(dtype)
    x, w, b = arrays(rng, 3, (10, 11), 21, 3, dtype)
    kw_ = dict(stride=(1, 2), padding=1, groups=21)
    got = fastconv.conv2d(x, w, b, layout="NHWC", **kw_)
    np.testing.assert_array_equal(got, nchw_bits(x, w, b, **kw_))
    flipped = np.ascontiguousarray(x[:, ::-1, ::-1])
    np.testing.assert_array_equal(fastconv.conv2d(flipped[:, ::-1, ::-1], w, b, layout="NHWC", **kw_), got)
    wide = np.zeros(x.shape[:3] + (2 * 21,), dtype)  # channels side by side, pixels 42 items apart
    wide[..., :21] = x
    np.testing.assert_array_equal(fastconv.conv2d(wide[..., :21], w, b, layout="NHWC", **kw_), got)
    planes = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)  # channels a plane apart
    np.testing.assert_array_equal(fastconv.conv2d(planes, w, b, layout="NHWC", **kw_), got)
    out = np.full(got.shape, np.nan, dtype)
    assert fastconv.conv2d(x, w, b, layout="NHWC", out=out, **kw_) is out
    np.testing.assert_array_equal(out, got)
    np.testing.assert_array_equal(fastconv.conv2d(x[0], w, b, layout="NHWC", **kw_), got[0])  # unbatched


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes(rng, level, mode):
    needs_lanes(np.float32)
    x, w, b = arrays(rng, 2, (9, 12), 19, 3, np.float32)
    kw_ = dict(stride=(2, 1), padding=(1, 2), groups=19, padding_mode=mode)
    got = fastconv.conv2d(x, w, b, layout="NHWC", **kw_)
    np.testing.assert_allclose(got, reference.conv2d(x, w, b, layout="NHWC", **kw_), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got, nchw_bits(x, w, b, **kw_))


def test_plans_and_no_bias(rng, level):
    """A planned call (C-contiguous arrays, a repeated signature) gives the first call's bits, bias or none."""
    needs_lanes(np.float32)
    clear_plans()
    x, w, b = arrays(rng, 2, (14, 14), 40, 3, np.float32)
    for bias in (b, None):
        first = fastconv.conv2d(x, w, bias, padding=1, groups=40, layout="NHWC")
        again = fastconv.conv2d(x, w, bias, padding=1, groups=40, layout="NHWC")
        np.testing.assert_array_equal(again, first)
        np.testing.assert_array_equal(first, nchw_bits(x, w, bias, padding=1, groups=40))
    assert any(isinstance(plan, _conv._DepthwiseNHWCPlan) for plan in _conv._PLANS.values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infs_and_nans_reach_the_taps_that_read_them(rng, level, dtype):
    """A weight that is not finite makes NaN where its tap reads the padding (zero times it), as in NCHW."""
    needs_lanes(dtype)
    x, w, b = arrays(rng, 2, (7, 9), 21, 3, dtype)
    x[0, 3, 4, 5] = np.inf
    x[1, 0, 0, 17] = np.nan
    w[0, 2, 0, 3] = np.inf
    w[2, 0, 0, 20] = -np.inf
    for kw_ in (dict(padding=1, groups=21), dict(stride=2, padding=2, groups=21)):
        got = fastconv.conv2d(x, w, b, layout="NHWC", **kw_)
        expected = reference.conv2d(x, w, b, layout="NHWC", **kw_)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_array_equal(got, nchw_bits(x, w, b, **kw_))
        assert np.isnan(got).any() and np.isinf(got).any()


def test_threads_and_parts_give_the_same_bits(rng):
    """Every thread count and every cut of the rows' channels into parts: the same bits."""
    lanes = _conv_direct.depthwise_lanes("f")
    if not lanes:
        pytest.skip("this build's level has no vector lanes")
    x, w, b = arrays(rng, 2, (6, 13), 3 * lanes + 5, 3, np.float32)
    k = x.shape[3]
    out = np.empty((2, 6, 13, k), np.float32)
    run = _conv_direct.conv2d_depthwise_nhwc
    run(x, w.reshape(9, k), b, out, 1, 1, 1, 1, 1, 1, 3, 3, 1, 1)
    np.testing.assert_array_equal(out, nchw_bits(x, w, b, padding=1, groups=k))
    for chunks in (2, 3, 4, 5, 100):
        for threads in (1, 2, 3):
            again = np.full_like(out, np.nan)
            run(x, w.reshape(9, k), b, again, 1, 1, 1, 1, 1, 1, 3, 3, chunks, threads)
            np.testing.assert_array_equal(again, out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p, d", GEOMETRIES)
def test_rows_asking_for_the_next_rows_input_give_the_same_bits(rng, level, monkeypatch, dtype, k, s, p, d):
    """Every call asking ahead (``FC_DWN_AHEAD``): the NCHW kernels' bits, forward and input gradient."""
    needs_lanes(dtype)
    monkeypatch.setattr(_conv, "DEPTHWISE_NHWC_AHEAD_BYTES", 0)
    x, w, b = arrays(rng, 2, (9, 33), 21, k, dtype)
    kw_ = dict(stride=s, padding=p, dilation=d, groups=21)
    got = check_forward(x, w, b, **kw_)
    if got is None:
        return
    grad = rng.standard_normal(got.shape).astype(dtype)
    dx = fastconv.conv2d_grad_input(grad, w, x.shape, layout="NHWC", **kw_)
    w_oihw = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    dx_nchw = fastconv.conv2d_grad_input(grad.transpose(0, 3, 1, 2), w_oihw, x.transpose(0, 3, 1, 2).shape, **kw_)
    np.testing.assert_array_equal(dx, dx_nchw.transpose(0, 2, 3, 1))


def test_calls_of_many_bytes_ask_ahead(rng, monkeypatch):
    """``run_depthwise_nhwc`` asks ahead from ``DEPTHWISE_NHWC_AHEAD_BYTES`` of input and output on."""
    needs_lanes(np.float32)
    asked = []
    kernel = _conv_direct.conv2d_depthwise_nhwc

    def spy(*args):
        asked.append(args[-1])
        return kernel(*args)

    monkeypatch.setattr(_conv._conv_direct, "conv2d_depthwise_nhwc", spy)
    x, w, b = arrays(rng, 2, (6, 13), 24, 3, np.float32)
    out = np.empty((2, 6, 13, 24), np.float32)
    size = x.nbytes + out.nbytes
    for limit, ahead in ((size, True), (size + 1, False), (size - 1, True)):
        monkeypatch.setattr(_conv, "DEPTHWISE_NHWC_AHEAD_BYTES", limit)
        _conv.run_depthwise_nhwc(x, w.reshape(9, 24), b, out, (1, 1), (1, 1), (1, 1), (3, 3))
        assert asked[-1] is ahead
        np.testing.assert_array_equal(out, nchw_bits(x, w, b, padding=1, groups=24))


def test_kernel_checks_its_arguments(rng):
    lanes = _conv_direct.depthwise_lanes("f")
    if not lanes:
        pytest.skip("this build's level has no vector lanes")
    run = _conv_direct.conv2d_depthwise_nhwc
    x = rng.standard_normal((2, 5, 5, 8)).astype(np.float32)
    w = rng.standard_normal((9, 8)).astype(np.float32)
    out = np.empty((2, 5, 5, 8), np.float32)
    with pytest.raises(ValueError, match="same images and channels"):
        run(x[:1], w, None, out, 1, 1, 1, 1, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match=r"\(KH\*KW, K\)"):
        run(x, w[:4], None, out, 1, 1, 1, 1, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match=r"\(KH\*KW, K\)"):
        run(x, w, np.zeros(7, np.float32), out, 1, 1, 1, 1, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="side by side"):
        run(np.ascontiguousarray(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1), w, None, out,
            1, 1, 1, 1, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="at least 1"):
        run(x, w, None, out, 1, 1, 0, 1, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="at least 1"):
        run(x, w, None, out, -1, 1, 1, 1, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="pixels"):
        run(x[:, :0], w, None, out, 1, 1, 1, 1, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="side by side"):  # out's channels a column apart
        run(x, w, None, np.empty((2, 5, 8, 5), np.float32).transpose(0, 1, 3, 2), 1, 1, 1, 1, 1, 1, 3, 3, 1, 1)


def test_against_torch_channels_last(rng, torch):
    """PyTorch's channels_last depthwise convolution (oneDNN's NHWC kernel) agrees within float32 rounding."""
    needs_lanes(np.float32)
    x, w, b = arrays(rng, 2, (14, 14), 64, 3, np.float32)
    tx = torch.from_numpy(x).permute(0, 3, 1, 2)
    tw = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    for stride in (1, 2):
        expected = torch.nn.functional.conv2d(tx, tw, torch.from_numpy(b), stride=stride, padding=1, groups=64)
        got = fastconv.conv2d(x, w, b, stride=stride, padding=1, groups=64, layout="NHWC")
        np.testing.assert_allclose(got, expected.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-5)


# ---- gradients

def nchw_grad_input(g, w, x_shape, **kw):
    """The input gradient through the NCHW kernels, as NHWC."""
    n, h, w_, c = x_shape
    return fastconv.conv2d_grad_input(np.ascontiguousarray(g.transpose(0, 3, 1, 2)),
                                      np.ascontiguousarray(w.transpose(3, 2, 0, 1)), (n, c, h, w_),
                                      **kw).transpose(0, 2, 3, 1)


def nhwc_grad_weight(x, g, kernel, padding, stride, dilation, band=None, threads=2):
    """The NHWC weight-gradient kernel's result (HWIO), whatever the rule that picks it says."""
    (kh, kw), c = kernel, x.shape[3]
    dw = np.empty((kh * kw, c), x.dtype)
    _conv_direct.conv2d_grad_weight_depthwise_nhwc(x, g, dw, *padding, *stride, *dilation, kh, kw,
                                                   band or g.shape[1], threads)
    return dw.reshape(kh, kw, 1, c)


def lanes_grad_weight(x, g, kernel, padding, stride, dilation):
    """The NCHW lanes kernel's weight gradient of NHWC arrays (their NCHW views), as HWIO."""
    (kh, kw), c = kernel, x.shape[3]
    dw = np.empty(c * kh * kw, x.dtype)
    _conv_direct.conv2d_grad_weight_depthwise_lanes(x.transpose(0, 3, 1, 2), g.transpose(0, 3, 1, 2), dw,
                                                    *padding, *stride, *dilation, kh, kw, 2)
    return dw.reshape(c, kh, kw).transpose(1, 2, 0)[:, :, None, :]


#: kernel, stride, padding (top and left), dilation of the gradient cases: strides 1 to 3, padding
#: past the kernel's extent, uneven strides and dilations.
GRAD_GEOMETRIES = [(3, 1, 1, 1), (3, 2, 1, 1), (3, 3, 0, 1), (3, (2, 1), (2, 0), 1), (5, 2, 2, 1), (3, 1, 2, 2),
                   (1, 2, 0, 1), ((2, 3), (1, 3), (1, 2), (2, 1)), (3, 2, 4, 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("hw", [(1, 1), (7, 7), (5, 17), (14, 14)])
@pytest.mark.parametrize("k, s, p, d", GRAD_GEOMETRIES)
def test_gradients_match_nchw(rng, level, every_call_parallel, dtype, c, hw, k, s, p, d):
    """The input gradient: the NCHW stride phases' bits; the weight gradient: the lanes kernel's."""
    needs_lanes(dtype)
    x, w, _ = arrays(rng, 2, hw, c, k, dtype)
    kw_ = dict(stride=s, padding=p, dilation=d, groups=c)
    try:
        y = reference.conv2d(x, w, layout="NHWC", **kw_)
    except ValueError:  # the kernel does not fit this small an input
        return
    g = rng.standard_normal(y.shape).astype(dtype)
    rtol, atol = tolerance(dtype)
    grad_input = fastconv.conv2d_grad_input(g, w, x.shape, layout="NHWC", **kw_)
    np.testing.assert_allclose(grad_input, reference.conv2d_grad_input(g, w, x.shape, layout="NHWC", **kw_),
                               rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(grad_input, nchw_grad_input(g, w, x.shape, **kw_))
    expected = reference.conv2d_grad_weight(g, x, w.shape, layout="NHWC", **kw_)
    np.testing.assert_allclose(fastconv.conv2d_grad_weight(g, x, w.shape, layout="NHWC", **kw_), expected,
                               rtol=rtol, atol=atol * 10)
    geometry = fastconv._geometry.conv_geometry(hw, w.shape[:2], s, p, d)
    (top, _), (left, _) = geometry.padding
    geo = ((top, left), geometry.stride, geometry.dilation)
    grad_weight = nhwc_grad_weight(x, g, w.shape[:2], *geo)  # (small batches take the NCHW kernels)
    np.testing.assert_allclose(grad_weight, expected, rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(grad_weight, lanes_grad_weight(x, g, w.shape[:2], *geo))


def test_gradients_of_strided_arrays_and_out(rng, level):
    """Reversed and non-adjacent channels, out=, unbatched: the contiguous arrays' bits."""
    needs_lanes(np.float32)
    x, w, _ = arrays(rng, 10, (9, 10), 21, 3, np.float32)  # (900 pixels a channel: the NHWC weight gradient)
    kw_ = dict(stride=2, padding=1, groups=21)
    g = rng.standard_normal(fastconv.conv2d(x, w, layout="NHWC", **kw_).shape).astype(np.float32)
    grad_input = fastconv.conv2d_grad_input(g, w, x.shape, layout="NHWC", **kw_)
    grad_weight = fastconv.conv2d_grad_weight(g, x, w.shape, layout="NHWC", **kw_)
    flipped = np.ascontiguousarray(g[:, ::-1, ::-1])[:, ::-1, ::-1]
    planes = np.ascontiguousarray(g.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)  # channels a plane apart
    x_planes = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    for grad in (flipped, planes):
        np.testing.assert_array_equal(fastconv.conv2d_grad_input(grad, w, x.shape, layout="NHWC", **kw_), grad_input)
        np.testing.assert_array_equal(fastconv.conv2d_grad_weight(grad, x_planes, w.shape, layout="NHWC", **kw_),
                                      grad_weight)
    out = np.full(x.shape, np.nan, np.float32)
    assert fastconv.conv2d_grad_input(g, w, x.shape, layout="NHWC", out=out, **kw_) is out
    np.testing.assert_array_equal(out, grad_input)
    out = np.full(w.shape, np.nan, np.float32)
    assert fastconv.conv2d_grad_weight(g, x, w.shape, layout="NHWC", out=out, **kw_) is out
    np.testing.assert_array_equal(out, grad_weight)
    np.testing.assert_array_equal(fastconv.conv2d_grad_input(g[0], w, x.shape[1:], layout="NHWC", **kw_),
                                  nchw_grad_input(g[:1], w, (1,) + x.shape[1:], **kw_)[0])


@pytest.mark.parametrize("n, nhwc", [(15, False), (16, True)])
def test_weight_gradient_rule(rng, level, n, nhwc):
    """Batches of at least DEPTHWISE_NHWC_GRAD_PIXELS input pixels a channel read them in place; both paths agree."""
    needs_lanes(np.float32)
    x, w, _ = arrays(rng, n, (7, 7), 24, 3, np.float32)
    assert (n * 49 >= _conv_grad.DEPTHWISE_NHWC_GRAD_PIXELS) == nhwc
    g = rng.standard_normal((n, 7, 7, 24)).astype(np.float32)
    call = prepare_conv2d_grad_weight(g, x, w.shape, 1, 1, 1, 24, "NHWC", None)
    assert _conv_grad.depthwise_nhwc_grad_weight(call) == nhwc
    got = fastconv.conv2d_grad_weight(g, x, w.shape, padding=1, groups=24, layout="NHWC")
    np.testing.assert_allclose(got, reference.conv2d_grad_weight(g, x, w.shape, padding=1, groups=24,
                                                                 layout="NHWC"), rtol=1e-4, atol=1e-4)
    if nhwc:
        np.testing.assert_array_equal(got, nhwc_grad_weight(x, g, (3, 3), (1, 1), (1, 1), (1, 1)))


def test_weight_gradient_of_one_output_pixel(rng, level):
    """An output of one pixel from a wider input (the geometry's stride becomes 1): only the taps' pixels are read."""
    needs_lanes(np.float32)
    x, w, _ = arrays(rng, 40, (5, 5), 16, 3, np.float32)  # (1000 pixels a channel: the NHWC kernel)
    g = rng.standard_normal((40, 1, 1, 16)).astype(np.float32)
    got = fastconv.conv2d_grad_weight(g, x, w.shape, stride=3, groups=16, layout="NHWC")
    np.testing.assert_allclose(got, reference.conv2d_grad_weight(g, x, w.shape, stride=3, groups=16, layout="NHWC"),
                               rtol=1e-5, atol=1e-5)


def test_weight_gradient_bands_threads_and_parts(rng):
    """Every band of rows and thread count (one part of the channels per thread): the same bits."""
    lanes = _conv_direct.depthwise_lanes("f")
    if not lanes:
        pytest.skip("this build's level has no vector lanes")
    k = 3 * lanes + 5
    x, _, _ = arrays(rng, 3, (11, 9), k, 3, np.float32)
    g = rng.standard_normal((3, 6, 9, k)).astype(np.float32)
    run = _conv_direct.conv2d_grad_weight_depthwise_nhwc
    first = nhwc_grad_weight(x, g, (3, 3), (1, 1), (2, 1), (1, 1), threads=1).reshape(9, k)
    np.testing.assert_array_equal(first.reshape(3, 3, 1, k), lanes_grad_weight(x, g, (3, 3), (1, 1), (2, 1), (1, 1)))
    for band in (1, 2, 4, 5, 100):
        for threads in (1, 2, 3, 8):
            again = np.full_like(first, np.nan)
            run(x, g, again, 1, 1, 2, 1, 1, 1, 3, 3, band, threads)
            np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_infs_and_nans(rng, level, dtype):
    """Infs and NaNs reach the gradients that read them, as in NCHW (zero times inf at the padding is NaN)."""
    needs_lanes(dtype)
    x, w, _ = arrays(rng, 2, (7, 9), 21, 3, dtype)
    kw_ = dict(stride=2, padding=1, groups=21)
    g = rng.standard_normal(fastconv.conv2d(x, w, layout="NHWC", **kw_).shape).astype(dtype)
    w[0, 2, 0, 3] = np.inf
    g[1, 0, 0, 17] = np.nan
    x[0, 0, 0, 5] = -np.inf
    grad_input = fastconv.conv2d_grad_input(g, w, x.shape, layout="NHWC", **kw_)
    np.testing.assert_array_equal(grad_input, nchw_grad_input(g, w, x.shape, **kw_))
    assert np.isnan(grad_input).any()
    grad_weight = nhwc_grad_weight(x, g, (3, 3), (1, 1), (2, 2), (1, 1))
    np.testing.assert_array_equal(grad_weight, lanes_grad_weight(x, g, (3, 3), (1, 1), (2, 2), (1, 1)))
    np.testing.assert_array_equal(np.isnan(grad_weight),
                                  np.isnan(reference.conv2d_grad_weight(g, x, w.shape, layout="NHWC", **kw_)))


def test_weight_gradient_kernel_checks_its_arguments(rng):
    if not _conv_direct.depthwise_lanes("f"):
        pytest.skip("this build's level has no vector lanes")
    run = _conv_direct.conv2d_grad_weight_depthwise_nhwc
    x = rng.standard_normal((2, 5, 5, 8)).astype(np.float32)
    g = rng.standard_normal((2, 5, 5, 8)).astype(np.float32)
    dw = np.empty((9, 8), np.float32)
    with pytest.raises(ValueError, match="same images and channels"):
        run(x[:1], g, dw, 1, 1, 1, 1, 1, 1, 3, 3, 5, 1)
    with pytest.raises(ValueError, match=r"\(KH\*KW, K\)"):
        run(x, g, dw[:4], 1, 1, 1, 1, 1, 1, 3, 3, 5, 1)
    with pytest.raises(ValueError, match="side by side"):
        run(x, np.ascontiguousarray(g.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1), dw, 1, 1, 1, 1, 1, 1, 3, 3, 5, 1)
    with pytest.raises(ValueError, match="at least 1"):
        run(x, g, dw, 1, 1, 1, 0, 1, 1, 3, 3, 5, 1)
    with pytest.raises(ValueError, match="pixels"):
        run(x[:, :, :0], g, dw, 1, 1, 1, 1, 1, 1, 3, 3, 5, 1)
    run(x[:0], g[:0], dw, 1, 1, 1, 1, 1, 1, 3, 3, 5, 1)  # no image: an empty sum
    assert not dw.any()


def test_gradients_against_torch_channels_last(rng, torch):
    needs_lanes(np.float32)
    x, w, _ = arrays(rng, 2, (14, 14), 64, 3, np.float32)
    tw = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    for stride in (1, 2):
        kw_ = dict(stride=stride, padding=1, groups=64)
        g = rng.standard_normal(fastconv.conv2d(x, w, layout="NHWC", **kw_).shape).astype(np.float32)
        tx, tg = torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(g).permute(0, 3, 1, 2)
        np.testing.assert_allclose(fastconv.conv2d_grad_input(g, w, x.shape, layout="NHWC", **kw_),
                                   torch.nn.grad.conv2d_input(tx.shape, tw, tg, **kw_).permute(0, 2, 3, 1).numpy(),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fastconv.conv2d_grad_weight(g, x, w.shape, layout="NHWC", **kw_),
                                   torch.nn.grad.conv2d_weight(tx, tw.shape, tg, **kw_).permute(2, 3, 1, 0).numpy(),
                                   rtol=1e-4, atol=1e-4)


# ---- properties over random geometries (hypothesis)

@given(case=depthwise_cases())
def test_nhwc_properties(case):
    """The NHWC kernels match the reference and the NCHW kernels' bits on random geometries (and gradients)."""
    needs_lanes(case["dtype"])
    rng = np.random.default_rng(case["seed"])
    x, w, b = arrays(rng, case["n"], case["hw"], case["c"], case["kernel"], case["dtype"])
    kw_ = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["c"])
    got = fastconv.conv2d(x, w, b, layout="NHWC", **kw_)
    rtol, atol = tolerance(case["dtype"])
    np.testing.assert_allclose(got, reference.conv2d(x, w, b, layout="NHWC", **kw_), rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(got, nchw_bits(x, w, b, **kw_))
    g = rng.standard_normal(got.shape).astype(case["dtype"])
    grad_input = fastconv.conv2d_grad_input(g, w, x.shape, layout="NHWC", **kw_)
    np.testing.assert_allclose(grad_input, reference.conv2d_grad_input(g, w, x.shape, layout="NHWC", **kw_),
                               rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(grad_input, nchw_grad_input(g, w, x.shape, **kw_))
    grad_weight = fastconv.conv2d_grad_weight(g, x, w.shape, layout="NHWC", **kw_)
    np.testing.assert_allclose(grad_weight, reference.conv2d_grad_weight(g, x, w.shape, layout="NHWC", **kw_),
                               rtol=rtol, atol=atol * 10)
