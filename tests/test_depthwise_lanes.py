"""The depthwise lanes kernel: a vector of channels in the lanes, planes transposed in registers.

Each case runs one depthwise convolution through a plan that takes the lanes
kernel and through one that takes the plane tiles (the rule that picks
between them patched either way), at every SIMD level: the two agree bit for
bit (each output is the bias plus the taps' products in tap order) and with
the reference.
"""

import contextlib

import numpy as np
import pytest
from helpers import depthwise_cases, tolerance
from hypothesis import given

import fastconv
from fastconv import _conv, reference
from fastconv._kernels import _conv_direct
from fastconv._prepare import prepare_conv2d


#: Channels: fewer than a group's lanes, one partial group, whole groups and a partial one at
#: every level (lanes 2 .. 16).
CHANNELS = [2, 3, 16, 21, 40]
#: kernel, stride, padding, dilation: 3x3 at strides 1 and 2, uneven strides and padding, 5x5,
#: dilated, 1x1 past the kernel, a 2x3 kernel dilated unevenly.
GEOMETRIES = [(3, 1, 1, 1), (3, 2, 1, 1), (3, (2, 1), ((0, 2), (1, 0)), 1), (5, 1, 2, 1), (3, 1, 2, 2),
              (1, 3, 0, 1), ((2, 3), 2, (1, 0), (2, 1))]


@contextlib.contextmanager
def forced(monkeypatch, module, rule, lanes):
    """A context in which ``module.rule`` (a lanes kernel's rule) takes the kernel on every geometry or on none."""
    with monkeypatch.context() as m:
        m.setattr(module, rule, (lambda geometry, dtype, level, *sizes: _conv_direct.depthwise_lanes(
            np.dtype(dtype).char, level)) if lanes else (lambda geometry, dtype, level, *sizes: 0))
        yield


def run_plan(monkeypatch, x, w, b, lanes, padding_mode="zeros", **kw):
    """``conv2d`` through a fresh plan that takes the lanes kernel (``lanes``) or the plane tiles."""
    c = x.shape[1]
    call = prepare_conv2d(x, w, b, kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1), c,
                          padding_mode, "NCHW", None)
    with forced(monkeypatch, _conv, "depthwise_lanes", lanes):
        plan = _conv.TiledConv(call.x.shape, call.weight.shape, call.geometry, c, padding_mode,
                               call.compute_dtype, _conv_direct.current_level())
    assert plan.depthwise and bool(plan.dw_lanes) == lanes
    out = np.full(call.out_shape, np.nan, call.compute_dtype)
    plan.run(call.x, call.weight, call.bias, out)
    return out


# widths below, at and past the lanes, planes of one pixel
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("hw", [(1, 1), (7, 7), (5, 17), (14, 14), (9, 33)])
@pytest.mark.parametrize("k, s, p, d", GEOMETRIES)
def test_lanes_match_plane_tiles(rng, level, monkeypatch, every_call_parallel, dtype, c, hw, k, s, p, d):
    x = rng.standard_normal((2, c) + hw).astype(dtype)
    kh, kw = (k, k) if isinstance(k, int) else k
    w = rng.standard_normal((c, 1, kh, kw)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    kw_ = dict(stride=s, padding=p, dilation=d)
    try:
        expected = reference.conv2d(x, w, b, groups=c, **kw_)
    except ValueError:  # the kernel does not fit this small an input
        return
    if not _conv_direct.depthwise_lanes(np.dtype(dtype).char):
        pytest.skip("this build's level has no depthwise lanes kernel")
    lanes = run_plan(monkeypatch, x, w, b, True, **kw_)
    planes = run_plan(monkeypatch, x, w, b, False, **kw_)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(lanes, expected, rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(lanes, planes)


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_lanes_take_padded_inputs(rng, monkeypatch, mode):
    """Other padding modes pad in Python first: the kernel then sees no padding of its own."""
    x = rng.standard_normal((2, 19, 7, 6)).astype(np.float32)
    w = rng.standard_normal((19, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(19).astype(np.float32)
    lanes = run_plan(monkeypatch, x, w, b, True, padding_mode=mode, padding=1, stride=2)
    np.testing.assert_allclose(lanes, reference.conv2d(x, w, b, padding=1, stride=2, groups=19, padding_mode=mode),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(lanes, run_plan(monkeypatch, x, w, b, False, padding_mode=mode, padding=1,
                                                  stride=2))


def test_lanes_read_strided_inputs(rng, level):
    """Planes whose rows or columns are not adjacent go item by item; the results are the same."""
    lanes = _conv_direct.depthwise_lanes("f")
    if not lanes:
        pytest.skip("this build's level has no depthwise lanes kernel")
    base = rng.standard_normal((2, 2 * lanes + 4, 9, 14)).astype(np.float32)
    w = rng.standard_normal((lanes + 2, 1, 3, 3)).astype(np.float32)
    wp = np.empty(2 * lanes * 9, np.float32)
    bp = np.empty(2 * lanes, np.float32)
    _conv_direct.pack_weights(w.reshape(lanes + 2, 1, 9), None, wp, bp, 1, lanes, 1)
    views = [base[:, ::2, :, ::2], base[:, 1::2, ::2, 1::2], np.ascontiguousarray(base[:, 1::2, ::2, 1::2])]
    for view in views:
        out = np.full((2, lanes + 2, view.shape[2], view.shape[3]), np.nan, np.float32)
        _conv_direct.conv2d_depthwise_lanes(view, wp, bp, out, 1, 1, 1, 1, 1, 1, 3, 3, 2)
        np.testing.assert_allclose(out, reference.conv2d(view, w, padding=1, groups=lanes + 2),
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out, fastconv.conv2d(views[1], w, padding=1, groups=lanes + 2))


def test_lanes_kernel_checks_its_arguments(rng):
    lanes = _conv_direct.depthwise_lanes("f")
    if not lanes:
        pytest.skip("this build's level has no depthwise lanes kernel")
    x = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    wp = np.zeros(lanes * 9, np.float32)
    bp = np.zeros(lanes, np.float32)
    out = np.empty((1, 4, 5, 5), np.float32)
    run = _conv_direct.conv2d_depthwise_lanes
    with pytest.raises(ValueError, match="same images and channels"):
        run(x, wp, bp, np.empty((1, 3, 5, 5), np.float32), 1, 1, 1, 1, 1, 1, 3, 3, 1)
    with pytest.raises(ValueError, match="blocks of the level's lanes"):
        run(x, wp[:-1], bp, out, 1, 1, 1, 1, 1, 1, 3, 3, 1)
    with pytest.raises(ValueError, match="at least 1"):
        run(x, wp, bp, out, 1, 1, 0, 1, 1, 1, 3, 3, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        run(x, wp, bp, np.empty((1, 4, 6, 5), np.float32)[:, :, :5], 1, 1, 1, 1, 1, 1, 3, 3, 1)
    with pytest.raises(ValueError, match="must have pixels"):
        run(np.empty((1, 4, 0, 5), np.float32), wp, bp, out, 1, 1, 1, 1, 1, 1, 3, 3, 1)
    run(x, wp, bp, out, 1, 1, 1, 1, 1, 1, 3, 3, 1)  # (the same arguments whole: no error)
    np.testing.assert_array_equal(out, 0)


def test_lanes_rule():
    """Stride above 1 or rows of at most 1.5 vectors at AVX-512; small float32 planes below; never dilated."""
    def lanes(hw, stride=1, dilation=1, dtype=np.float32, level=2):
        g = fastconv._geometry.conv_geometry(hw, 3, stride, 1, dilation)
        return _conv.depthwise_lanes(g, dtype, level)

    width = {level: _conv_direct.depthwise_lanes("f", level) for level in range(3)}
    if not width[2] or _conv_direct.cpu_level() < 2:
        pytest.skip("needs the AVX-512 level")
    assert lanes((7, 7)) == 16 and lanes((24, 24)) == 16 and lanes((28, 28)) == 0 and lanes((56, 56), 2) == 16
    assert lanes((7, 7), dilation=2) == 0 and lanes((14, 14), 2, 2) == 0
    assert lanes((12, 12), dtype=np.float64) == 8 and lanes((14, 14), dtype=np.float64) == 0
    assert lanes((28, 28), 2, dtype=np.float64) == 8
    assert lanes((8, 8), level=1) == 8 and lanes((9, 9), level=1) == 0 and lanes((14, 14), 2, level=1) == 8
    assert lanes((7, 7), dtype=np.float64, level=1) == 0 and lanes((7, 7), level=0) == 4


def test_depthwise_plans_take_the_rule(rng):
    x = rng.standard_normal((2, 24, 7, 7)).astype(np.float32)
    geometry = fastconv._geometry.conv_geometry((7, 7), 3, 1, 1, 1)
    level = _conv_direct.current_level()
    plan = _conv.TiledConv(x.shape, (24, 1, 3, 3), geometry, 24, "zeros", np.float32, level)
    assert plan.dw_lanes == _conv.depthwise_lanes(geometry, np.float32, level)
    assert plan.block == (plan.dw_lanes or 8)


# ---- the weight gradient

def grad_weight_plan(monkeypatch, x_shape, c, kh, kw, geometry, dtype, lanes):
    """A fresh weight-gradient plan that takes the lanes kernel (``lanes``) or the plane tiles."""
    import fastconv._conv_grad

    with forced(monkeypatch, fastconv._conv_grad, "depthwise_lanes_grad_weight", lanes):
        plan = fastconv._conv_grad.GradWeightPlan(x_shape, (c, 1, kh, kw), geometry, c, np.dtype(dtype),
                                                  _conv_direct.current_level())
    assert plan.depthwise and bool(plan.dw_lanes) == lanes
    return plan


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("n, hw", [(1, (1, 1)), (3, (7, 7)), (2, (5, 17)), (2, (14, 14))])
@pytest.mark.parametrize("k, s, p, d", GEOMETRIES)
def test_lanes_grad_weight(rng, level, monkeypatch, every_call_parallel, dtype, c, n, hw, k, s, p, d):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    try:
        geometry = fastconv._geometry.conv_geometry(hw, (kh, kw), s, p, d)
    except ValueError:  # the kernel does not fit this small an input
        return
    if not _conv_direct.depthwise_lanes(np.dtype(dtype).char):
        pytest.skip("this build's level has no depthwise lanes kernel")
    g = rng.standard_normal((n, c) + geometry.out_shape).astype(dtype)
    expected = reference.conv2d_grad_weight(g, x, (c, 1, kh, kw), stride=s, padding=p, dilation=d, groups=c)
    plan = grad_weight_plan(monkeypatch, x.shape, c, kh, kw, geometry, dtype, True)
    results = []
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            results.append(plan.run(x, g))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(results[1], results[0])
    planes = grad_weight_plan(monkeypatch, x.shape, c, kh, kw, geometry, dtype, False).run(x, g)
    np.testing.assert_allclose(results[0], planes, rtol=rtol, atol=atol * 10)


def test_lanes_grad_weight_strided_and_non_finite(rng, monkeypatch):
    """Strided views go item by item; an inf or a nan in x or the grad reaches the taps that read it."""
    x = rng.standard_normal((3, 40, 9, 9)).astype(np.float32)
    g = rng.standard_normal((3, 20, 9, 9)).astype(np.float32)
    geometry = fastconv._geometry.conv_geometry((9, 9), 3, 1, 1)
    if not _conv_direct.depthwise_lanes("f"):
        pytest.skip("this build's level has no depthwise lanes kernel")
    plan = grad_weight_plan(monkeypatch, (3, 20, 9, 9), 20, 3, 3, geometry, np.float32, True)
    xv, gv = x[:, ::2], np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    expected = reference.conv2d_grad_weight(gv, xv, (20, 1, 3, 3), padding=1, groups=20)
    np.testing.assert_allclose(plan.run(xv, gv), expected, rtol=2e-5, atol=2e-4)
    xv = xv.copy()
    xv[1, 3, 0, 0], xv[2, 17, 4, 4], gv = np.inf, np.nan, gv.copy()
    gv[0, 9, 8, 8] = -np.inf
    expected = reference.conv2d_grad_weight(gv, xv, (20, 1, 3, 3), padding=1, groups=20)
    got = plan.run(xv, gv)
    assert not np.isfinite(expected).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=2e-5, atol=2e-4)


def test_lanes_grad_weight_rule():
    def lanes(hw, stride=1, dtype=np.float32, level=2):
        g = fastconv._geometry.conv_geometry(hw, 3, stride, 1)
        return _conv.depthwise_lanes_grad_weight(g, dtype, level)

    if _conv_direct.cpu_level() < 2 or not _conv_direct.depthwise_lanes("f", 2):
        pytest.skip("needs the AVX-512 level")
    assert lanes((64, 64)) == 16 and lanes((65, 65)) == 0 and lanes((112, 112), 2) == 16
    assert lanes((16, 16), level=1) == 8 and lanes((17, 17), level=1) == 0
    assert lanes((64, 64), dtype=np.float64, level=1) == 4 and lanes((16, 16), dtype=np.float64, level=0) == 2
    assert lanes((17, 17), dtype=np.float64, level=0) == 0


# ---- the input gradient

def grad_input_plan(monkeypatch, grad_shape, c, kh, kw, geometry, dtype, lanes):
    """A fresh input-gradient plan that takes the lanes kernel (``lanes``) or the stride phases."""
    import fastconv._conv_grad

    with forced(monkeypatch, fastconv._conv_grad, "depthwise_lanes_grad_input", lanes):
        plan = fastconv._conv_grad.GradInputPlan(grad_shape, (c, 1, kh, kw), geometry, c, np.dtype(dtype),
                                                 _conv_direct.current_level())
    assert bool(plan.dw_lanes) == lanes
    return plan


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("n, hw", [(1, (1, 1)), (3, (7, 7)), (2, (5, 17)), (2, (14, 14))])
# (the scatter's own strides: 5x5 at stride 3, dilated at stride 2)
@pytest.mark.parametrize("k, s, p, d", GEOMETRIES[:3] + [(5, 3, 2, 1), (3, 2, 2, 2)] + GEOMETRIES[5:])
def test_lanes_grad_input(rng, level, monkeypatch, every_call_parallel, dtype, c, n, hw, k, s, p, d):
    kh, kw = (k, k) if isinstance(k, int) else k
    try:
        geometry = fastconv._geometry.conv_geometry(hw, (kh, kw), s, p, d)
    except ValueError:  # the kernel does not fit this small an input
        return
    if not _conv_direct.depthwise_lanes(np.dtype(dtype).char):
        pytest.skip("this build's level has no depthwise lanes kernel")
    w = rng.standard_normal((c, 1, kh, kw)).astype(dtype)
    g = rng.standard_normal((n, c) + geometry.out_shape).astype(dtype)
    expected = reference.conv2d_grad_input(g, w, (n, c) + hw, stride=s, padding=p, dilation=d, groups=c)
    plan = grad_input_plan(monkeypatch, g.shape, c, kh, kw, geometry, dtype, True)
    results = []
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            results.append(plan.run(g, w))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(results[1], results[0])
    out = np.full(expected.shape, np.nan, dtype)
    assert plan.run(g[:, ::-1][:, ::-1], w, out) is out  # (a strided view of the same grad)
    np.testing.assert_array_equal(out, results[0])


def test_lanes_grad_input_rule():
    def lanes(stride=2, dilation=1, dtype=np.float32, level=2, nbytes=1 << 20):
        g = fastconv._geometry.conv_geometry((14, 14), 3, stride, 1, dilation)
        return _conv.depthwise_lanes_grad_input(g, dtype, level, nbytes, 16 << 20)

    if _conv_direct.cpu_level() < 2 or not _conv_direct.depthwise_lanes("f", 2):
        pytest.skip("needs the AVX-512 level")
    assert lanes() == 16 and lanes(stride=1) == 0 and lanes(dilation=2) == 0 and lanes(level=1) == 8
    assert lanes(nbytes=16 << 20) == 0 and lanes(dtype=np.float64, nbytes=64 << 20) == 8


def test_public_gradients_take_the_lanes(rng):
    """conv2d_grad_input / conv2d_grad_weight of a small strided depthwise layer, as the reference gives them."""
    x = rng.standard_normal((4, 24, 14, 14)).astype(np.float32)
    w = rng.standard_normal((24, 1, 3, 3)).astype(np.float32)
    g = rng.standard_normal((4, 24, 7, 7)).astype(np.float32)
    kw = dict(stride=2, padding=1, groups=24)
    np.testing.assert_allclose(fastconv.conv2d_grad_input(g, w, x.shape, **kw),
                               reference.conv2d_grad_input(g, w, x.shape, **kw), rtol=2e-5, atol=2e-4)
    np.testing.assert_allclose(fastconv.conv2d_grad_weight(g, x, w.shape, **kw),
                               reference.conv2d_grad_weight(g, x, w.shape, **kw), rtol=2e-5, atol=2e-4)


# ---- NHWC views: a pixel's channels are its vector

def test_lanes_kernel_reads_pixel_vectors(rng):
    """An NCHW view of an NHWC array: each pixel's channels copied as a vector, the planes' bits."""
    lanes = _conv_direct.depthwise_lanes("f")
    if not lanes:
        pytest.skip("this build's level has no depthwise lanes kernel")
    x = rng.standard_normal((2, 5, 5, 19)).astype(np.float32)  # NHWC
    w = rng.standard_normal((19, 1, 3, 3)).astype(np.float32)
    blocks = -(-19 // lanes)
    wp = np.empty(blocks * lanes * 9, np.float32)
    bp = np.empty(blocks * lanes, np.float32)
    _conv_direct.pack_weights(w.reshape(19, 1, 9), None, wp, bp, 1, lanes, 1)
    from_pixels = np.empty((2, 19, 5, 5), np.float32)
    from_planes = np.empty((2, 19, 5, 5), np.float32)
    run = _conv_direct.conv2d_depthwise_lanes
    run(x.transpose(0, 3, 1, 2), wp, bp, from_pixels, 1, 1, 1, 1, 1, 1, 3, 3, 2)
    run(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), wp, bp, from_planes, 1, 1, 1, 1, 1, 1, 3, 3, 2)
    np.testing.assert_array_equal(from_pixels, from_planes)
    np.testing.assert_allclose(from_planes, reference.conv2d(x.transpose(0, 3, 1, 2), w, padding=1, groups=19),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="C-contiguous"):  # it writes whole planes
        run(x.transpose(0, 3, 1, 2), wp, bp, np.empty((2, 5, 5, 19), np.float32).transpose(0, 3, 1, 2),
            1, 1, 1, 1, 1, 1, 3, 3, 1)


# ---- properties over random geometries (hypothesis)

@given(case=depthwise_cases())
def test_lanes_properties(case):
    """Forward, input and weight gradients of the lanes kernels match the reference and the other paths."""
    monkeypatch = pytest.MonkeyPatch()  # (the helpers patch within a context of their own)
    if not _conv_direct.depthwise_lanes(np.dtype(case["dtype"]).char):
        pytest.skip("this build's level has no depthwise lanes kernel")
    rng = np.random.default_rng(case["seed"])
    n, c, dtype, (kh, kw) = case["n"], case["c"], case["dtype"], case["kernel"]
    kw_ = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    geometry = fastconv._geometry.conv_geometry(case["hw"], (kh, kw), **kw_)
    x = rng.standard_normal((n, c) + case["hw"]).astype(dtype)
    w = rng.standard_normal((c, 1, kh, kw)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    g = rng.standard_normal((n, c) + geometry.out_shape).astype(dtype)
    rtol, atol = tolerance(dtype)
    forward = run_plan(monkeypatch, x, w, b, True, **kw_)
    np.testing.assert_array_equal(forward, run_plan(monkeypatch, x, w, b, False, **kw_))
    np.testing.assert_allclose(forward, reference.conv2d(x, w, b, groups=c, **kw_), rtol=rtol, atol=atol * 10)
    grad_input = grad_input_plan(monkeypatch, g.shape, c, kh, kw, geometry, dtype, True).run(g, w)
    np.testing.assert_allclose(grad_input, reference.conv2d_grad_input(g, w, x.shape, groups=c, **kw_),
                               rtol=rtol, atol=atol * 10)
    grad_weight = grad_weight_plan(monkeypatch, x.shape, c, kh, kw, geometry, dtype, True).run(x, g)
    np.testing.assert_allclose(grad_weight, reference.conv2d_grad_weight(g, x, w.shape, groups=c, **kw_),
                               rtol=rtol, atol=atol * 10)
