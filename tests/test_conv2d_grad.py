"""conv2d_grad_input, conv2d_grad_weight, conv_transpose2d: == reference == finite differences == PyTorch."""

import itertools
import platform

import numpy as np
import pytest
from helpers import assert_same_non_finite, each_simd_level, small_ints, tolerance
from hypothesis import given
from hypothesis import strategies as st
from test_conv2d import GRID, nhwc, weights_for
from test_im2col import geometries

import fastconv
from fastconv import reference


def forward_setup(rng, shape, k, kernel, s, p, d, g, dtype=np.float64):
    x = rng.standard_normal(shape).astype(dtype)
    w = weights_for(rng, shape, k, kernel, g, dtype)
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    grad = rng.standard_normal(fastconv.conv2d(x, w, **kw).shape).astype(dtype)
    return x, w, grad, kw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, kernel, s, p, d, g", GRID)
def test_gradients_match_reference(rng, shape, k, kernel, s, p, d, g, dtype):
    x, w, grad, kw = forward_setup(rng, shape, k, kernel, s, p, d, g, dtype)
    rtol, atol = tolerance(dtype)
    gi = fastconv.conv2d_grad_input(grad, w, x.shape, **kw)
    gw = fastconv.conv2d_grad_weight(grad, x, w.shape, **kw)
    assert gi.dtype == dtype and gw.dtype == dtype
    np.testing.assert_allclose(gi, reference.conv2d_grad_input(grad, w, x.shape, **kw), rtol=rtol, atol=atol * 10)
    np.testing.assert_allclose(gw, reference.conv2d_grad_weight(grad, x, w.shape, **kw), rtol=rtol, atol=atol * 100)
    xh, wh = nhwc(x, w)
    gh = np.ascontiguousarray(grad.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(fastconv.conv2d_grad_input(gh, wh, xh.shape, layout="NHWC", **kw),
                               gi.transpose(0, 2, 3, 1), rtol=rtol, atol=atol * 10)
    np.testing.assert_allclose(fastconv.conv2d_grad_weight(gh, xh, wh.shape, layout="NHWC", **kw),
                               gw.transpose(2, 3, 1, 0), rtol=rtol, atol=atol * 100)


@given(geo=geometries(max_channels=4), k_per_group=st.integers(1, 3), groups=st.sampled_from([1, 2]),
       layout=st.sampled_from(["NCHW", "NHWC"]), seed=st.integers(0, 2**16))
def test_property_integers_exact(geo, k_per_group, groups, layout, seed):
    shape, kernel, s, p, d = geo
    rng = np.random.default_rng(seed)
    shape = (shape[0], shape[1] * groups) + shape[2:]
    x = small_ints(rng, shape)
    w = small_ints(rng, (k_per_group * groups, shape[1] // groups) + kernel)
    kw = dict(stride=s, padding=p, dilation=d, groups=groups)
    grad = small_ints(rng, fastconv.conv2d(x, w, **kw).shape)
    if layout == "NHWC":
        x, w = nhwc(x, w)
        grad = np.ascontiguousarray(grad.transpose(0, 2, 3, 1))
    kw["layout"] = layout
    np.testing.assert_array_equal(fastconv.conv2d_grad_input(grad, w, x.shape, **kw),
                                  reference.conv2d_grad_input(grad, w, x.shape, **kw))
    np.testing.assert_array_equal(fastconv.conv2d_grad_weight(grad, x, w.shape, **kw),
                                  reference.conv2d_grad_weight(grad, x, w.shape, **kw))
    # the same small integers as floats take the register-tiled kernels and stay exact
    xf, wf, gf = (a.astype(np.float64) for a in (x, w, grad))
    np.testing.assert_array_equal(fastconv.conv2d_grad_input(gf, wf, x.shape, **kw),
                                  reference.conv2d_grad_input(grad, w, x.shape, **kw))
    np.testing.assert_array_equal(fastconv.conv2d_grad_weight(gf, xf, w.shape, **kw),
                                  reference.conv2d_grad_weight(grad, x, w.shape, **kw))


@pytest.mark.parametrize("stride", [(2, 3), (3, 2), (4, 1)])
@pytest.mark.parametrize("dilation", [(1, 1), (2, 2), (3, 2), (2, 4)])
@pytest.mark.parametrize("kernel", [(1, 1), (2, 3), (4, 2)])
def test_grad_input_every_stride_phase_exact(rng, stride, dilation, kernel):
    # dL/dx splits by stride phase; strides sharing a factor with the dilation,
    # kernels shorter than the stride (phases no tap reaches) and asymmetric
    # padding give every kind of phase
    padding = ((1, 0), (0, 2))
    x = small_ints(rng, (2, 3, 11, 13))
    w = small_ints(rng, (4, 3) + kernel)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    grad = small_ints(rng, fastconv.conv2d(x, w, **kw).shape)
    expected = reference.conv2d_grad_input(grad, w, x.shape, **kw)
    np.testing.assert_array_equal(fastconv.conv2d_grad_input(grad.astype(np.float64), w.astype(np.float64),
                                                             x.shape, **kw), expected)
    np.testing.assert_array_equal(fastconv.conv2d_grad_input(grad, w, x.shape, **kw), expected)


def test_adjoint_identities(rng):
    """<conv(x, w), G> == <x, grad_input(G)> == <w, grad_weight(G)>."""
    x, w, grad, kw = forward_setup(rng, (2, 4, 9, 8), 6, (3, 2), (2, 1), ((1, 2), (0, 1)), (1, 2), 2)
    y = fastconv.conv2d(x, w, **kw)
    lhs = np.vdot(y, grad)
    assert np.vdot(x, fastconv.conv2d_grad_input(grad, w, x.shape, **kw)) == pytest.approx(lhs, rel=1e-12)
    assert np.vdot(w, fastconv.conv2d_grad_weight(grad, x, w.shape, **kw)) == pytest.approx(lhs, rel=1e-12)


def test_finite_differences(rng):
    x, w, grad, kw = forward_setup(rng, (1, 2, 6, 5), 3, 3, (2, 1), 1, (1, 2), 1)

    def loss(x_, w_):
        return float(np.vdot(fastconv.conv2d(x_, w_, **kw), grad))

    gi = fastconv.conv2d_grad_input(grad, w, x.shape, **kw)
    gw = fastconv.conv2d_grad_weight(grad, x, w.shape, **kw)
    eps = 1e-6
    for idx in [(0, 0, 0, 0), (0, 1, 3, 2), (0, 1, 5, 4), (0, 0, 2, 1)]:
        e = np.zeros_like(x)
        e[idx] = eps
        numeric = (loss(x + e, w) - loss(x - e, w)) / (2 * eps)
        assert gi[idx] == pytest.approx(numeric, rel=1e-6, abs=1e-8)
    for idx in [(0, 0, 0, 0), (2, 1, 2, 2), (1, 0, 1, 2)]:
        e = np.zeros_like(w)
        e[idx] = eps
        numeric = (loss(x, w + e) - loss(x, w - e)) / (2 * eps)
        assert gw[idx] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("shape, k, kernel, s, p, d, g", [c for c in GRID if not isinstance(c[4], str)])
def test_transpose_matches_reference_and_adjoint(rng, shape, k, kernel, s, p, d, g):
    x, w, grad, kw = forward_setup(rng, shape, k, kernel, s, p, d, g)
    # conv_transpose2d(grad, w) is conv2d_grad_input(grad, w) up to output_padding
    y = fastconv.conv_transpose2d(grad, w, stride=s, padding=p, dilation=d, groups=g)
    y_ref = reference.conv_transpose2d(grad, w, stride=s, padding=p, dilation=d, groups=g)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    gi = fastconv.conv2d_grad_input(grad, w, x.shape, **kw)
    common = tuple(slice(0, min(a, b)) for a, b in zip(y.shape, gi.shape))
    np.testing.assert_allclose(y[common], gi[common], rtol=1e-12, atol=1e-12)


def test_integer_dtypes_and_unbatched(rng):
    x = small_ints(rng, (3, 6, 6), np.int8)
    w = small_ints(rng, (4, 3, 3, 3), np.int16)
    grad = small_ints(rng, (4, 4, 4), np.int32)
    gi = fastconv.conv2d_grad_input(grad, w, x.shape)
    gw = fastconv.conv2d_grad_weight(grad, x, w.shape)
    assert gi.dtype == np.int64 and gi.shape == x.shape
    assert gw.dtype == np.int64 and gw.shape == w.shape
    np.testing.assert_array_equal(gi, reference.conv2d_grad_input(grad, w, x.shape))
    np.testing.assert_array_equal(gw, reference.conv2d_grad_weight(grad, x, w.shape))
    y = fastconv.conv_transpose2d(grad, w, np.arange(3), stride=1)
    assert y.dtype == np.int64 and y.shape == (3, 6, 6)
    np.testing.assert_array_equal(y, reference.conv_transpose2d(grad, w, np.arange(3)))


def test_float16_and_out(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float16)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float16)
    grad = rng.standard_normal((2, 4, 4, 4)).astype(np.float16)
    out = np.empty(x.shape, np.float16)
    assert fastconv.conv2d_grad_input(grad, w, x.shape, out=out) is out
    np.testing.assert_allclose(out.astype(float), reference.conv2d_grad_input(grad, w, x.shape).astype(float),
                               rtol=5e-3, atol=5e-3)
    out_w = np.empty(w.shape, np.float16)
    assert fastconv.conv2d_grad_weight(grad, x, w.shape, out=out_w) is out_w
    np.testing.assert_allclose(out_w.astype(float), reference.conv2d_grad_weight(grad, x, w.shape).astype(float),
                               rtol=5e-3, atol=2e-2)
    out_t = np.empty((2, 3, 6, 6), np.float16)
    assert fastconv.conv_transpose2d(grad, w, out=out_t) is out_t


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: fastconv.conv2d_grad_input(np.zeros((1, 4, 3, 3)), np.zeros((4, 3, 3, 3)), (1, 3, 6, 6)),
         ValueError, r"grad_output must have shape \(1, 4, 4, 4\)"),
        (lambda: fastconv.conv2d_grad_input(np.zeros((1, 4, 4, 4)), np.zeros((4, 3, 3, 3)), (1, 2, 6, 6)),
         ValueError, "weight has 3 input channels"),
        (lambda: fastconv.conv2d_grad_input(np.zeros((1, 4, 4, 4)), np.zeros((4, 3, 3, 3)), (6, 6)),
         ValueError, "input_shape must be 3 or 4"),
        (lambda: fastconv.conv2d_grad_weight(np.zeros((1, 4, 4, 4)), np.zeros((1, 3, 6, 6)), (4, 3, 3)),
         ValueError, "weight_shape must be 4"),
        (lambda: fastconv.conv2d_grad_weight(np.zeros((4, 4, 4)), np.zeros((1, 3, 6, 6)), (4, 3, 3, 3)),
         ValueError, "grad_output must be 4-D"),
        (lambda: fastconv.conv2d_grad_weight(np.zeros((1, 4, 4, 4), complex), np.zeros((1, 3, 6, 6)), (4, 3, 3, 3)),
         TypeError, "complex"),
        (lambda: fastconv.conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 3, 3)), padding="same"),
         ValueError, "ints or"),
        (lambda: fastconv.conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 3, 3)), stride=2,
                                           output_padding=2), ValueError, "output_padding must be smaller"),
        (lambda: fastconv.conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((2, 2, 3, 3))),
         ValueError, "weight is for 2 input channels"),
        (lambda: fastconv.conv_transpose2d(np.zeros((1, 3, 1, 1)), np.zeros((3, 2, 1, 1)), padding=1),
         ValueError, "reduce padding"),
        (lambda: fastconv.conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 3, 3)), np.zeros(3)),
         ValueError, r"bias must have shape \(2,\)"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ----------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("shape, k, kernel, s, p, d, g", [c for c in GRID if not isinstance(c[4], str)])
def test_match_torch_autograd(torch, rng, shape, k, kernel, s, p, d, g):
    x, w, grad, kw = forward_setup(rng, shape, k, kernel, s, p, d, g)
    (top, bottom), (left, right) = fastconv.conv_output_shape(shape[2:], kernel, stride=s, padding=p,
                                                              dilation=d).padding
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (left, right, top, bottom)), wt,
                                   stride=s, dilation=d, groups=g)
    y.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(fastconv.conv2d_grad_input(grad, w, x.shape, **kw), xt.grad.numpy(),
                               rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(fastconv.conv2d_grad_weight(grad, x, w.shape, **kw), wt.grad.numpy(),
                               rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("s, p, op, d, g", [(1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (3, 2, 2, 1, 2), (2, 0, 1, 2, 1),
                                            (1, 1, 1, 2, 2), (2, (1, 0), (1, 0), 1, 1)])
def test_transpose_matches_torch(torch, rng, s, p, op, d, g):
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((4, 6 // g, 3, 2))
    b = rng.standard_normal(6)
    expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                                    stride=s, padding=p, output_padding=op, dilation=d,
                                                    groups=g).numpy()
    kw = dict(stride=s, padding=p, output_padding=op, dilation=d, groups=g)
    got = fastconv.conv_transpose2d(x, w, b, **kw)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reference.conv_transpose2d(x, w, b, **kw), expected, rtol=1e-12, atol=1e-12)
    got_nhwc = fastconv.conv_transpose2d(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), b, layout="NHWC", **kw)
    np.testing.assert_allclose(got_nhwc.transpose(0, 3, 1, 2), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("n, c, k, hw, stride, padding", [
    (1, 0, 2, (3, 3), 1, 0),   # no input channels: stride-1 direct path
    (1, 0, 0, (3, 3), 1, 0),
    (0, 0, 0, (3, 3), 1, 0),
    (1, 0, 2, (3, 3), 2, 0),
    (1, 2, 0, (3, 3), 2, 0),   # no filters: GEMM path
    (1, 2, 0, (3, 3), 1, 0),
    (1, 1, 1, (1, 0), 1, 1),   # an empty image row, padded
    (2, 1, 3, (0, 4), 1, 1),
])
def test_empty_channels_filters_and_images(n, c, k, hw, stride, padding, dtype, layout):
    """Regression: empty axes raised IndexError / ValueError("cannot reshape") in the gradients.

    conv2d_grad_input(g, w of shape (2, 0, 1, 1), (1, 0, 3, 3)) (and conv_transpose2d
    with no output channels), conv2d_grad_weight with K = 0 and conv2d_grad_input of an
    input with an empty spatial axis failed; the reference returns the empty sum, zeros.
    """
    x_shape = (n, c) + hw
    w_shape = (k, c, 1, 1)
    oh, ow = fastconv.conv_output_shape(hw, 1, stride=stride, padding=padding).shape
    g_shape = (n, k, oh, ow)
    if layout == "NHWC":
        x_shape, g_shape = tuple(np.moveaxis(np.empty(x_shape), 1, -1).shape), tuple(
            np.moveaxis(np.empty(g_shape), 1, -1).shape)
        w_shape = (1, 1, c, k)
    g, w = np.ones(g_shape, dtype), np.ones(w_shape, dtype)
    x = np.ones(x_shape, dtype)
    kw = dict(stride=stride, padding=padding, layout=layout)
    for name, args in [("conv2d_grad_input", (g, w, x_shape)), ("conv2d_grad_weight", (g, x, w_shape))]:
        got = getattr(fastconv, name)(*args, **kw)
        expected = getattr(reference, name)(*args, **kw)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    wt = np.ones((k, c, 1, 1) if layout == "NCHW" else (1, 1, c, k), dtype)
    if stride == 1 and padding == 0:
        got = fastconv.conv_transpose2d(g, wt, np.ones(c, dtype), layout=layout)
        np.testing.assert_array_equal(got, reference.conv_transpose2d(g, wt, np.ones(c, dtype), layout=layout))


def test_extents_beyond_the_tiles_c_int_take_the_wide_loops(rng, monkeypatch):
    # the tiles take channel/tap/row extents as C int; beyond that (8 GB arrays) the
    # Py_ssize_t loops run. Lower the bound to route small calls there and check them.
    from fastconv import _conv

    monkeypatch.setattr(_conv, "TILE_EXTENT_MAX", 2)
    x, w, grad, kw = forward_setup(rng, (2, 4, 7, 6), 3, (3, 2), 1, 1, 1, 1)
    np.testing.assert_allclose(fastconv.conv2d(x, w, **kw), reference.conv2d(x, w, **kw), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fastconv.conv2d_grad_weight(grad, x, w.shape, **kw),
                               reference.conv2d_grad_weight(grad, x, w.shape, **kw), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fastconv.conv2d_grad_input(grad, w, x.shape, **kw),
                               reference.conv2d_grad_input(grad, w, x.shape, **kw), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("stride", [1, 2])
def test_grad_weight_non_finite_input_stays_in_its_taps(rng, value, stride, layout):
    # the weight-gradient tiles pad grad rows with zero columns that meet the input
    # next to each window; an inf there would turn 0 * inf into nan in taps that never
    # see it. Such inputs must give what the reference gives, tap by tap.
    x = rng.standard_normal((2, 3, 6, 9))
    x[0, 1, 2, 8] = value  # last column: outside the window of tap kw=0
    x[1, 0, 5, 0] = value  # first column, last row
    grad = rng.standard_normal((2, 4, (6 - 3) // stride + 1, (9 - 3) // stride + 1))
    if layout == "NHWC":
        x, grad = x.transpose(0, 2, 3, 1).copy(), grad.transpose(0, 2, 3, 1).copy()
    wshape = (4, 3, 3, 3) if layout == "NCHW" else (3, 3, 3, 4)
    for dtype in (np.float32, np.float64):
        got = fastconv.conv2d_grad_weight(grad.astype(dtype), x.astype(dtype), wshape, stride=stride, layout=layout)
        expected = reference.conv2d_grad_weight(grad.astype(dtype), x.astype(dtype), wshape, stride=stride,
                                                layout=layout)
        assert np.isfinite(expected).any() and not np.isfinite(expected).all()
        rtol, atol = tolerance(dtype)
        assert_same_non_finite(got, expected, rtol, atol * 100)


# The column tiles and the depthwise tile check each input plane as they copy it, whatever the
# strides of x; whichever task copies the plane holding an inf or a nan, the plan hands the call
# to the GEMM (run gives None). (The depthwise lanes kernel, which multiplies only inputs inside
# windows, needs no check: its plans are left out here, see test_depthwise_lanes.py.)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("view", ["contiguous", "nhwc", "every_other_column", "reversed"])
@pytest.mark.parametrize("shape, threads", [((3, 4, 5, 10), 1), ((3, 4, 5, 10), 2), ((5, 4, 21, 30), 2)])
def test_weight_tiles_find_each_inf_and_nan(rng, monkeypatch, every_call_parallel, dtype, view, shape, threads):
    import fastconv._conv_grad
    from fastconv._conv_grad import GradWeightPlan
    from fastconv._geometry import conv_geometry

    monkeypatch.setattr(fastconv._conv_grad, "depthwise_lanes_grad_weight", lambda geometry, dtype, level: 0)

    base = rng.standard_normal(shape).astype(dtype)
    views = {"contiguous": lambda a: a, "nhwc": lambda a: a.transpose(0, 3, 1, 2),
             "every_other_column": lambda a: a[..., ::2], "reversed": lambda a: a[:, ::-1, :, ::-1]}
    x = views[view](base)
    n, c, h, w = x.shape
    geometry = conv_geometry((h, w), 3, 1, 1)
    from fastconv._kernels._conv_direct import current_level

    level = current_level()
    plans = [GradWeightPlan(x.shape, (8, c, 3, 3), geometry, 1, np.dtype(dtype), level, "columns"),
             GradWeightPlan(x.shape, (c, 1, 3, 3), geometry, c, np.dtype(dtype), level)]
    assert not plans[0].reads_input and plans[1].depthwise
    huge = np.finfo(dtype).max
    with fastconv.num_threads(threads):
        for plan in plans:
            grad = rng.standard_normal((n, plan.dims[0], h, w)).astype(dtype)
            assert plan.run(x, grad) is not None
            assert plan.run(np.full_like(x, huge), grad) is not None  # finite, even where a sum overflows
            for index in [(0, 0, 0, 0), tuple(s - 1 for s in x.shape), tuple(s // 2 for s in x.shape)]:
                for bad in (np.inf, -np.inf, np.nan):
                    y = views[view](base.copy())
                    y[index] = bad
                    assert plan.run(y, grad) is None


# The output-channel weight tiles copy their block of the grad pixel-major; from the view of an
# NHWC grad (a pixel's channels side by side) each pixel's channels are one run. Blocks of two
# vectors and of one, whole and partial, chunks of images and of rows, the banded layout of the
# input, groups, strides, every level and 1-3 threads: the bits of the grad's NCHW copy.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tiles", ["channels", "channels1"])
@pytest.mark.parametrize("case", [
    dict(x=(3, 5, 12, 12), k=40, kernel=3, padding=1),
    dict(x=(2, 3, 33, 33), k=32, kernel=7, padding=3),
    dict(x=(4, 6, 14, 14), k=16, kernel=5, padding=0),
    dict(x=(2, 8, 11, 11), k=24, kernel=3, padding=1, stride=2),
    dict(x=(2, 8, 10, 10), k=20, kernel=3, padding=1, groups=2),
    dict(x=(1, 4, 60, 60), k=33, kernel=3, padding=1),
])
def test_weight_channel_tiles_read_an_nhwc_grad_view(rng, level, dtype, tiles, case):
    from fastconv._conv_grad import GradWeightPlan
    from fastconv._geometry import conv_geometry
    from fastconv._kernels import _conv_direct

    if tiles == "channels1" and not _conv_direct.has_one_vector_weight_tiles(_conv_direct.current_level()):
        pytest.skip("this level has no weight tiles of one vector of channels")
    groups, stride = case.get("groups", 1), case.get("stride", 1)
    x = rng.standard_normal(case["x"]).astype(dtype)
    n, c, h, w = x.shape
    geometry = conv_geometry((h, w), case["kernel"], stride, case["padding"])
    dims = (case["k"], c // groups, case["kernel"], case["kernel"])
    plan = GradWeightPlan(x.shape, dims, geometry, groups, np.dtype(dtype), _conv_direct.current_level(), tiles)
    assert plan.oc_level >= 0
    grad_nhwc = rng.standard_normal((n, *geometry.out_shape, case["k"])).astype(dtype)
    grad_view, grad_nchw = grad_nhwc.transpose(0, 3, 1, 2), np.ascontiguousarray(grad_nhwc.transpose(0, 3, 1, 2))
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            expected = plan.run(x, grad_nchw)
            got = plan.run(x, grad_view)
        assert got.tobytes() == expected.tobytes()
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(expected, reference.conv2d_grad_weight(grad_nchw, x, dims, stride=stride,
                                                                      padding=case["padding"], groups=groups),
                               rtol=rtol, atol=atol * 100)


@pytest.mark.parametrize("groups", [1, 4])  # the column tiles and the depthwise kernel
def test_grad_weight_of_huge_finite_inputs(rng, groups):
    # inputs next to a window meet zero grad columns in the column tiles: huge finite
    # values there must give zeros, not infs
    x = np.full((2, 4, 6, 6), 3e38, np.float32)
    grad = rng.standard_normal((2, 4, 4, 4)).astype(np.float32) * 1e-30
    expected = reference.conv2d_grad_weight(grad, x, (4, 4 // groups, 3, 3), groups=groups)
    got = fastconv.conv2d_grad_weight(grad, x, (4, 4 // groups, 3, 3), groups=groups)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 2])
@pytest.mark.parametrize("groups", [1, 2, 6])
@pytest.mark.parametrize("s, p, d", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (3, 0, 2)])
def test_grad_weight_chunks_of_images(rng, monkeypatch, chunk, groups, s, p, d):
    # the tiles copy grad (and, depthwise, the input) a chunk of images at a time into
    # scratch buffers that keep the previous chunk's values: a last chunk of fewer
    # images, odd strides and dilations must still sum exactly the right taps
    from fastconv import _conv_grad

    monkeypatch.setattr(_conv_grad, "_scratch_chunk", lambda per_image, itemsize: chunk)
    x, w, grad, kw = forward_setup(rng, (5, 6, 11, 10), 6 if groups == 6 else 12, (3, 3), s, p, d, groups)
    expected = reference.conv2d_grad_weight(grad, x, w.shape, **kw)
    np.testing.assert_allclose(fastconv.conv2d_grad_weight(grad, x, w.shape, **kw), expected, rtol=1e-12, atol=1e-12)
    xh, wh = nhwc(x, w)
    gh = np.ascontiguousarray(grad.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(fastconv.conv2d_grad_weight(gh, xh, wh.shape, layout="NHWC", **kw),
                               expected.transpose(2, 3, 1, 0), rtol=1e-12, atol=1e-12)


def test_stride_phases_are_those_some_tap_reaches():
    # dL/dx splits each axis by stride phase; only phases some tap reaches are kept (a brute-force
    # check), so a huge stride costs no more than a small one (it once looped over every phase)
    from fastconv._conv_grad import _axis_phases

    for in_size, kernel, stride, dilation, before in itertools.product(range(1, 8), range(1, 5), range(1, 6),
                                                                        range(1, 4), range(4)):
        expected = []
        for first in range(min(stride, in_size)):
            taps = [t for t in range(kernel) if (first + before - t * dilation) % stride == 0]
            if taps:
                expected.append((first, -(-(in_size - first) // stride), taps))
        got = _axis_phases(in_size, kernel, stride, dilation, before)
        assert [(p.first, p.count, list(range(p.tap0, kernel, p.tap_step))[:p.taps]) for p in got] == expected
    huge = _axis_phases(10**12, 3, 2**31, 1, 1)
    assert [p.first for p in huge] == [0, 1, 2**31 - 1]


# dL/dx of a strided convolution comes phase by phase; the phases are put in place by parallel
# kernels: scatter_phase (any strides), scatter_phase_pair (column stride 2: both column phases of
# a row at once, four float32 or two float64 pairs per step, then the pairs left and an odd last
# column). Each must equal NumPy's strided assignment and leave every other pixel as it was.
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("width", [1, 2, 3, 7, 8, 9, 10, 17])
@pytest.mark.parametrize("height, first_h, sh", [(5, 0, 1), (5, 1, 2), (7, 2, 3), (2, 1, 4)])
def test_phases_put_in_place(rng, dtype, width, height, first_h, sh):
    from fastconv._kernels import _conv_direct
    from fastconv._plans import specialized

    result = small_ints(rng, (2, 3, height, width)).astype(dtype)
    rows = len(range(first_h, height, sh))
    for first_w, sw in [(0, 1), (1, 2), (2, 3)]:
        phase = small_ints(rng, (2, 3, rows, len(range(first_w, width, sw)))).astype(dtype)
        expected = result.copy()
        expected[:, :, first_h::sh, first_w::sw] = phase
        for threads in (1, 2):
            got = result.copy()
            specialized(_conv_direct.scatter_phase, dtype)(phase, got, first_h, first_w, sh, sw, threads)
            np.testing.assert_array_equal(got, expected)
    evens = small_ints(rng, (2, 3, rows, (width + 1) // 2)).astype(dtype)
    odds = small_ints(rng, (2, 3, rows, width // 2)).astype(dtype)
    expected = result.copy()
    expected[:, :, first_h::sh, 0::2] = evens
    expected[:, :, first_h::sh, 1::2] = odds
    for threads in (1, 2):
        for stream in (False, True):  # (float32 rows starting on 16 bytes: non-temporal stores)
            got = result.copy()
            specialized(_conv_direct.scatter_phase_pair, dtype)(evens, odds, got, first_h, sh, threads, stream)
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="phase's pixels"):  # a row too many
        _conv_direct.scatter_phase(np.zeros((2, 3, rows + 1, width), dtype), result, first_h, 0, sh, 1, 1)
    with pytest.raises(ValueError, match="even and odd columns"):  # a column too many
        _conv_direct.scatter_phase_pair(evens, np.zeros((2, 3, rows, width // 2 + 1), dtype), result,
                                        first_h, sh, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw", [(16, 16), (9, 11), (12, 14)])
def test_grad_input_phases_streamed_into_the_result(rng, monkeypatch, every_call_parallel, dtype, hw):
    # from STREAM_BYTES on, the phases of a column stride of 2 go into a result whose pages are
    # mapped (an `out`, or a buffer handed out again) with non-temporal stores (float32 rows
    # that start on 16 bytes: every row of 16 columns, every other row of 14, none of 11):
    # the same bits as ordinary stores
    from fastconv import _conv_grad

    x_shape = (3, 4) + hw
    w = rng.standard_normal((8, 4, 3, 3)).astype(dtype)
    grad = rng.standard_normal((3, 8, (hw[0] - 1) // 2 + 1, (hw[1] - 1) // 2 + 1)).astype(dtype)
    expected = fastconv.conv2d_grad_input(grad, w, x_shape, stride=2, padding=1)
    np.testing.assert_allclose(expected, reference.conv2d_grad_input(grad, w, x_shape, stride=2, padding=1),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    monkeypatch.setattr(_conv_grad, "STREAM_BYTES", 0)
    streamed = []
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            out = np.full(x_shape, np.nan, dtype)
            streamed.append(fastconv.conv2d_grad_input(grad, w, x_shape, stride=2, padding=1, out=out))
            streamed.append(fastconv.conv2d_grad_input(grad, w, x_shape, stride=2, padding=1))
    for got in streamed:
        np.testing.assert_array_equal(got, expected)


# Every pixel of a strided convolution's dL/dx lies in some phase (3x3, stride 2), so the result is
# not zeroed first: an `out` full of NaN must come back with every pixel written, as exact as the
# reference (small integers as float32); a 1x1 kernel at stride 2 reaches only the even rows and
# columns, so the rest is zeroed.
@pytest.mark.parametrize("hw", [(9, 9), (10, 8), (11, 12)])
@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), (3, (2, 3), 1), (1, 2, 0), (2, (3, 2), 0)])
def test_strided_grad_input_writes_every_pixel_of_out(rng, hw, kernel, stride, padding):
    x = small_ints(rng, (3, 4) + hw)
    w = small_ints(rng, (5, 4, kernel, kernel))
    kw = dict(stride=stride, padding=padding)
    grad = small_ints(rng, fastconv.conv2d(x, w, **kw).shape)
    expected = reference.conv2d_grad_input(grad, w, x.shape, **kw)
    out = np.full(x.shape, np.nan, np.float32)
    with fastconv.num_threads(2):
        got = fastconv.conv2d_grad_input(grad.astype(np.float32), w.astype(np.float32), x.shape, out=out, **kw)
    assert got is out
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(fastconv.conv2d_grad_input(grad.astype(np.float32), w.astype(np.float32),
                                                             x.shape, **kw), expected)


# The weight gradient of an NHWC 1x1 convolution reads both arrays in place where the smaller
# has at most 128 channels (pointwise_grad_weight_nhwc; "in place"), else runs the pointwise
# kernel with the roles swapped (the input channels as its filters, the batch's pixels summed
# 1024 a call; "packed", forced here for every shape); at stride 2 a copy of the pixels read:
# pixel counts under, at and over a call's (1, 2 and 3 calls) and in two runs (18432 pixels at
# stride 1), channels around blocks of 8 and the tiles' 4 and 6 rows, fewer and more input
# channels than filters, every SIMD level, the same bits for every thread count and the
# reference's values.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k", [((1, 32, 3, 5), 32), ((2, 40, 16, 32), 33), ((3, 64, 20, 20), 100),
                                      ((1, 33, 9, 13), 64), ((4, 96, 16, 36), 48), ((1, 136, 5, 7), 140),
                                      ((2, 40, 64, 144), 36)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("route", ["auto", "packed"])
def test_pointwise_nhwc_weight_gradient(rng, level, dtype, shape, k, stride, route, monkeypatch):
    from fastconv import _conv_grad
    from fastconv._kernels import _conv_direct

    in_place = route == "auto" and min(shape[1], k) <= 128 and _conv_direct.has_pointwise_nhwc_kernels()
    if route == "packed":
        monkeypatch.setattr(_conv_grad, "POINTWISE_NHWC_GRAD_IN_PLACE_CHANNELS", 0)
    assert _conv_grad.reads_pointwise_grad_in_place(shape[1], k, dtype) == in_place
    x = rng.standard_normal(shape).astype(dtype)
    out_hw = tuple((n - 1) // stride + 1 for n in shape[2:])
    g = rng.standard_normal((shape[0], k) + out_hw).astype(dtype)
    xh, gh = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(g.transpose(0, 2, 3, 1))
    w_shape = (1, 1, shape[1], k)
    call = fastconv._prepare.prepare_conv2d_grad_weight(gh, xh, w_shape, stride, 0, 1, 1, "NHWC", None)
    assert _conv_grad.pointwise_nhwc_grad(call, xh.shape)
    results = []
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            results.append(fastconv.conv2d_grad_weight(gh, xh, w_shape, stride=stride, layout="NHWC"))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    rtol, atol = tolerance(dtype)
    expected = reference.conv2d_grad_weight(g, x, (k, shape[1], 1, 1), stride=stride).transpose(2, 3, 1, 0)
    np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol * 100)


# The kernel that reads both in place, over random extents (rows of out around its tiles' 4 and
# 6, columns around whole vectors and their blocks, pixels around its chunks of 32-512, runs of
# pixels more or fewer than the threads), on small integers: exact sums, so the bits of the int64
# product, for every level and thread count; out written whole (it starts as NaN).
@given(pixels=st.integers(0, 700), nb=st.integers(1, 30), nv=st.integers(1, 70),
       dtype=st.sampled_from([np.float32, np.float64]), threads=st.integers(1, 3), segments=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_pointwise_grad_weight_nhwc_kernel_exact(pixels, nb, nv, dtype, threads, segments, seed):
    from fastconv._kernels import _conv_direct

    rng = np.random.default_rng(seed)
    b, v = small_ints(rng, (pixels, nb), dtype, -4, 4), small_ints(rng, (pixels, nv), dtype, -4, 4)
    expected = b.astype(np.int64).T @ v.astype(np.int64)
    for _ in each_simd_level():
        if not _conv_direct.has_pointwise_nhwc_kernels():
            continue
        out = np.full((nb, nv), np.nan, dtype)
        _conv_direct.pointwise_grad_weight_nhwc(b, v, out, threads, segments)
        np.testing.assert_array_equal(out, expected)


# ... on floats: each output the sum over each run's pixels in order from 0, the runs' sums added
# in order, whatever the chunk, part of the rows or thread count. At the x86-64 baseline (SSE2: a
# product rounded, then added) that is NumPy's product-then-sum pixel by pixel, bit for bit; at
# every level the same bits for 1-3 threads and the values of a float64 product.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pixels, nb, nv, segments", [(1, 1, 1, 1), (700, 13, 50, 1), (700, 13, 50, 3),
                                                      (2000, 64, 32, 4), (517, 7, 129, 2), (100, 200, 16, 1),
                                                      (3, 9, 20, 8)])
def test_pointwise_grad_weight_nhwc_kernel_sums_in_order(rng, level, dtype, pixels, nb, nv, segments):
    from fastconv._kernels import _conv_direct

    if not _conv_direct.has_pointwise_nhwc_kernels():
        pytest.skip("this build's level has no such kernel")
    b, v = rng.standard_normal((pixels, nb)).astype(dtype), rng.standard_normal((pixels, nv)).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        out = np.full((nb, nv), np.nan, dtype)
        _conv_direct.pointwise_grad_weight_nhwc(b, v, out, threads, segments)
        results.append(out)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], b.astype(np.float64).T @ v.astype(np.float64), rtol=rtol,
                               atol=atol * 10)
    if level == "baseline" and platform.machine().lower() in ("x86_64", "amd64"):
        runs = min(segments, pixels)
        expected = np.zeros((nb, nv), dtype)
        for run in range(runs):
            sums = np.zeros((nb, nv), dtype)
            for p in range(pixels * run // runs, pixels * (run + 1) // runs):
                sums += b[p][:, None] * v[p][None, :]
            expected += sums
        np.testing.assert_array_equal(results[0], expected)


def test_pointwise_grad_segments():
    from fastconv import _conv_grad

    assert [_conv_grad.pointwise_grad_segments(p) for p in (0, 8191, 8192, 16384, 32767, 32768, 10**7)] == \
        [1, 1, 2, 4, 4, 8, 8]


def test_pointwise_grad_weight_nhwc_kernel_refuses_wrong_shapes():
    from fastconv._kernels import _conv_direct

    if not _conv_direct.has_pointwise_nhwc_kernels():
        pytest.skip("this build's level has no such kernel")
    b, v = np.ones((10, 4), np.float32), np.ones((10, 3), np.float32)
    with pytest.raises(ValueError, match="same rows"):
        _conv_direct.pointwise_grad_weight_nhwc(b, v[:9], np.empty((4, 3), np.float32), 1)
    for shape in [(3, 4), (4, 4), (4, 2), (5, 3)]:
        with pytest.raises(ValueError, match="out must be"):
            _conv_direct.pointwise_grad_weight_nhwc(b, v, np.empty(shape, np.float32), 1)
    with pytest.raises(ValueError, match="segments"):
        _conv_direct.pointwise_grad_weight_nhwc(b, v, np.empty((4, 3), np.float32), 1, 0)
    with pytest.raises(ValueError):  # (rows must be C-contiguous)
        _conv_direct.pointwise_grad_weight_nhwc(np.ones((4, 10), np.float32).T, v, np.empty((4, 3), np.float32), 1)
    empty = np.full((4, 3), np.nan, np.float32)
    _conv_direct.pointwise_grad_weight_nhwc(b[:0], v[:0], empty, 2)
    np.testing.assert_array_equal(empty, 0)


# ... and its input gradient, with the grad's pixels as the kernel's filters: the NCHW kernels'
# bits (both sum each input pixel's filters in order from 0) for every thread count.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k", [((1, 32, 3, 5), 32), ((2, 40, 16, 32), 33), ((3, 64, 20, 20), 100),
                                      ((1, 33, 9, 13), 64), ((4, 96, 16, 36), 48)])
def test_pointwise_nhwc_input_gradient(rng, level, dtype, shape, k):
    from fastconv import _conv_grad

    w = rng.standard_normal((k, shape[1], 1, 1)).astype(dtype)
    g = rng.standard_normal((shape[0], k) + shape[2:]).astype(dtype)
    wh, gh = np.ascontiguousarray(w.transpose(2, 3, 1, 0)), np.ascontiguousarray(g.transpose(0, 2, 3, 1))
    x_shape = (shape[0],) + shape[2:] + (shape[1],)
    call = fastconv._prepare.prepare_conv2d_grad_input(gh, wh, x_shape, 1, 0, 1, 1, "NHWC", None)
    assert _conv_grad.pointwise_nhwc_grad(call, x_shape, strided=False)
    strided = fastconv._prepare.prepare_conv2d_grad_input(gh[:, ::2, ::2], wh, x_shape, 2, 0, 1, 1, "NHWC", None)
    assert not _conv_grad.pointwise_nhwc_grad(strided, x_shape, strided=False)  # (the NCHW kernels' phases)
    results = []
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            results.append(fastconv.conv2d_grad_input(gh, wh, x_shape, layout="NHWC"))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    np.testing.assert_array_equal(results[0], fastconv.conv2d_grad_input(g, w, shape).transpose(0, 2, 3, 1))
    rtol, atol = tolerance(dtype)
    expected = reference.conv2d_grad_input(g, w, shape).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol * 10)
    out = np.full(x_shape, np.nan, dtype)
    assert fastconv.conv2d_grad_input(gh, wh, x_shape, layout="NHWC", out=out) is out
    np.testing.assert_array_equal(out, results[0])
