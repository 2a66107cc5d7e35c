"""conv2d: direct and im2col algorithms == reference == PyTorch; exact integers; errors."""

import numpy as np
import pytest
from helpers import each_simd_level, nonstandard_views, small_ints, tolerance
from hypothesis import given
from hypothesis import strategies as st
from test_im2col import geometries

import fastconv
from fastconv import reference

ALGORITHMS = ["direct", "im2col", "auto"]

# (x shape NCHW, K, kernel, stride, padding, dilation, groups)
GRID = [
    ((1, 3, 5, 5), 2, 3, 1, 0, 1, 1),
    ((2, 4, 9, 8), 6, 3, 1, 1, 1, 1),
    ((2, 4, 9, 8), 6, (2, 3), (2, 1), ((1, 0), (2, 1)), (1, 2), 2),
    ((2, 6, 7, 7), 6, 3, 1, 1, 1, 6),  # depthwise
    ((1, 4, 10, 10), 8, 3, 2, "same", 1, 1),
    ((2, 3, 8, 8), 16, 3, 1, 1, 1, 1),  # enough taps and filters for 'auto' to pick im2col
    ((1, 2, 6, 6), 4, 1, 3, 0, 1, 2),  # 1x1 kernel, stride larger than the kernel
    ((1, 2, 5, 5), 3, 5, 1, 0, 1, 1),  # kernel equal to the input
]


def weights_for(rng, x_shape, k, kernel, groups, dtype=np.float64):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return rng.standard_normal((k, x_shape[1] // groups, kh, kw)).astype(dtype)


def nhwc(x, w):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(2, 3, 1, 0))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, kernel, s, p, d, g", GRID)
def test_matches_reference(rng, shape, k, kernel, s, p, d, g, dtype, algorithm):
    x = rng.standard_normal(shape).astype(dtype)
    w = weights_for(rng, shape, k, kernel, g, dtype)
    b = rng.standard_normal(k).astype(dtype)
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    expected = reference.conv2d(x, w, b, **kw)
    rtol, atol = tolerance(dtype)
    got = fastconv.conv2d(x, w, b, algorithm=algorithm, **kw)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * 10)
    xh, wh = nhwc(x, w)
    got_nhwc = fastconv.conv2d(xh, wh, b, algorithm=algorithm, layout="NHWC", **kw)
    np.testing.assert_allclose(got_nhwc, expected.transpose(0, 2, 3, 1), rtol=rtol, atol=atol * 10)
    np.testing.assert_allclose(reference.conv2d(xh, wh, b, layout="NHWC", **kw), expected.transpose(0, 2, 3, 1),
                               rtol=rtol, atol=atol * 10)


@given(geo=geometries(max_channels=6), k_per_group=st.integers(1, 4), groups=st.sampled_from([1, 2, 3]),
       layout=st.sampled_from(["NCHW", "NHWC"]), algorithm=st.sampled_from(ALGORITHMS),
       mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_property_integers_exact(geo, k_per_group, groups, layout, algorithm, mode, bias, seed):
    """Small integers are exact in every algorithm, so fast and reference must agree bit for bit."""
    shape, kernel, s, p, d = geo
    rng = np.random.default_rng(seed)
    shape = (shape[0], shape[1] * groups) + shape[2:]
    x = small_ints(rng, shape, np.int32)
    w = small_ints(rng, (k_per_group * groups, shape[1] // groups) + kernel, np.int16)
    b = small_ints(rng, (w.shape[0],), np.int8) if bias else None
    if layout == "NHWC":
        x, w = nhwc(x, w)
    kw = dict(stride=s, padding=p, dilation=d, groups=groups, layout=layout, padding_mode=mode)
    try:
        expected = reference.conv2d(x, w, b, **kw)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)[:30]):
            fastconv.conv2d(x, w, b, algorithm=algorithm, **kw)
        return
    got = fastconv.conv2d(x, w, b, algorithm=algorithm, **kw)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    # the same small integers as floats go through the BLAS path and stay exact
    got_f = fastconv.conv2d(x.astype(np.float64), w.astype(np.float64), b, algorithm=algorithm, **kw)
    np.testing.assert_array_equal(got_f, expected.astype(np.float64))


def test_spec_worked_example():
    x = [[[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]],
         [[1, 3, 2, 0], [0, 1, 3, 2], [2, 0, 3, 1], [3, 2, 1, 0]],
         [[2, 3, 1, 0], [0, 2, 3, 1], [1, 0, 2, 3], [3, 1, 0, 2]]]
    w = np.array([[[1, -1, 1], [0, 1, -1], [-1, 0, 1]],
                  [[-1, 1, 0], [1, -1, 0], [0, 1, -1]],
                  [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]])
    for algorithm in ALGORITHMS:
        y = fastconv.conv2d(x, w[None], algorithm=algorithm)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, [[[-9, 1], [0, -7]]])
    np.testing.assert_array_equal(reference.conv2d(x, w[None]), [[[-9, 1], [0, -7]]])


def test_spec_shape_examples(rng):
    x = rng.standard_normal((1, 28, 28, 3)).astype(np.float32)
    for filters in (10, 20, 30):
        w = rng.standard_normal((3, 3, x.shape[-1], filters)).astype(np.float32)
        x = fastconv.conv2d(x, w, layout="NHWC")
    assert x.shape == (1, 22, 22, 30)
    x = rng.standard_normal((1, 1, 28, 28))
    y = fastconv.conv2d(x, rng.standard_normal((5, 1, 5, 5)))
    assert y.shape == (1, 5, 24, 24)


@pytest.mark.parametrize(
    "x_dtype, w_dtype, result",
    [
        (np.float16, np.float16, np.float16),
        (np.float16, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.int8, np.int8, np.int64),
        (np.uint8, np.int16, np.int64),
        (np.bool_, np.bool_, np.int64),
        (np.int32, np.float32, np.float64),
    ],
)
def test_dtype_rules(rng, x_dtype, w_dtype, result):
    x = small_ints(rng, (2, 3, 6, 6), x_dtype, 0, 1)
    w = small_ints(rng, (4, 3, 3, 3), w_dtype, 0, 1)
    for algorithm in ALGORITHMS:
        y = fastconv.conv2d(x, w, algorithm=algorithm)
        assert y.dtype == result
        np.testing.assert_array_equal(y, reference.conv2d(x, w))
        exact = reference.conv2d(x.astype(np.int64), w.astype(np.int64))
        np.testing.assert_array_equal(y, exact.astype(result))


def test_float16_rounds_once(rng):
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float16)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float16)
    expected = reference.conv2d(x.astype(np.float64), w.astype(np.float64)).astype(np.float16)
    for algorithm in ALGORITHMS:
        np.testing.assert_allclose(fastconv.conv2d(x, w, algorithm=algorithm).astype(np.float64), expected,
                                   rtol=2e-3, atol=2e-3)


def test_complex_is_a_type_error():
    with pytest.raises(TypeError, match="complex"):
        fastconv.conv2d(np.zeros((1, 1, 3, 3), complex), np.zeros((1, 1, 3, 3)))


def test_integer_overflow_wraps_like_numpy():
    x = np.full((1, 1, 2, 2), 2**62, np.int64)
    w = np.ones((1, 1, 2, 2), np.int64)
    for algorithm in ALGORITHMS:
        np.testing.assert_array_equal(fastconv.conv2d(x, w, algorithm=algorithm), [[[[0]]]])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unbatched_and_out(rng, algorithm):
    x = rng.standard_normal((3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    expected = reference.conv2d(x, w, padding=1)
    assert expected.shape == (5, 8, 8)
    out = np.full((5, 8, 8), np.nan, np.float32)
    res = fastconv.conv2d(x, w, padding=1, algorithm=algorithm, out=out)
    assert res is out
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    out16 = np.empty((5, 8, 8), np.float16)
    res = fastconv.conv2d(x.astype(np.float16), w.astype(np.float16), padding=1, algorithm=algorithm, out=out16)
    assert res is out16
    np.testing.assert_allclose(out16, expected, rtol=1e-2, atol=5e-2)
    with pytest.raises(ValueError, match=r"out must be .*shape \(5, 8, 8\) and dtype float32"):
        fastconv.conv2d(x, w, padding=1, out=np.empty((1, 5, 8, 8), np.float32))


def test_awkward_memory_and_inputs_untouched(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    expected = reference.conv2d(x, w, b, padding=1)
    copies = x.copy(), w.copy(), b.copy()
    for name, xv in nonstandard_views(x).items():
        for algorithm in ALGORITHMS:
            got = fastconv.conv2d(xv, nonstandard_views(w)[name], b, padding=1, algorithm=algorithm)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=name)
    for before, after in zip(copies, (x, w, b)):
        np.testing.assert_array_equal(before, after)
    got = fastconv.conv2d(x.tolist(), w.tolist(), b.tolist(), padding=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_empty_sizes(rng):
    w = rng.standard_normal((4, 3, 3, 3))
    assert fastconv.conv2d(np.zeros((0, 3, 5, 5)), w).shape == (0, 4, 3, 3)
    y = fastconv.conv2d(np.zeros((2, 0, 5, 5)), np.zeros((4, 0, 3, 3)), np.arange(4.0))
    np.testing.assert_array_equal(y, np.broadcast_to(np.arange(4.0)[None, :, None, None], (2, 4, 3, 3)))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(x=np.zeros((1, 4, 5, 5)), w=np.zeros((2, 3, 3, 3))), ValueError, "weight has 3 input channels"),
        (dict(x=np.zeros((1, 4, 5, 5)), w=np.zeros((3, 2, 3, 3)), groups=2), ValueError, "groups=2 must divide"),
        (dict(x=np.zeros((1, 3, 5, 5)), w=np.zeros((2, 1, 3, 3)), groups=2), ValueError, "groups=2 must divide"),
        (dict(x=np.zeros((1, 3, 5, 5)), w=np.zeros((2, 3, 3))), ValueError, "weight must be 4-D"),
        (dict(x=np.zeros((1, 3, 5, 5)), w=np.zeros((2, 3, 3, 3)), bias=np.zeros(3)), ValueError,
         r"bias must have shape \(2,\)"),
        (dict(x=np.zeros((1, 3, 5, 5)), w=np.zeros((2, 3, 6, 6))), ValueError, "larger than the padded input"),
        (dict(x=np.zeros((1, 3, 5, 5)), w=np.zeros((2, 3, 3, 3)), groups=0), ValueError, "groups must be >= 1"),
        (dict(x=np.zeros((1, 3, 5, 5)), w=np.zeros((2, 3, 3, 3)), groups=1.0), TypeError, "groups must be an int"),
        (dict(x=np.zeros((1, 3, 5, 5)), w=np.zeros((2, 3, 3, 3)), algorithm="fft"), ValueError, "algorithm"),
        (dict(x=np.zeros((5, 5)), w=np.zeros((2, 3, 3, 3))), ValueError, "x must be 4-D"),
        (dict(x=np.zeros((1, 3, 5, 5)), w=np.zeros((2, 3, 3, 3)), stride=0), ValueError, "stride must be >= 1"),
        (dict(x=np.zeros((1, 3, 5, 5), np.longdouble), w=np.zeros((2, 3, 3, 3))), TypeError, "float64"),
        (dict(x=np.zeros((1, 3, 5, 5)), w=np.zeros((2, 3, 3, 3)), padding=5, padding_mode="reflect"),
         ValueError, "reflect"),
    ],
)
def test_errors(kwargs, exc, match):
    kwargs = dict(kwargs)
    x, w = kwargs.pop("x"), kwargs.pop("w")
    bias = kwargs.pop("bias", None)
    with pytest.raises(exc, match=match):
        fastconv.conv2d(x, w, bias, **kwargs)


# ----------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("shape, k, kernel, s, p, d, g", GRID)
def test_matches_torch(torch, rng, shape, k, kernel, s, p, d, g, algorithm, mode):
    F = torch.nn.functional
    x = rng.standard_normal(shape)
    w = weights_for(rng, shape, k, kernel, g)
    b = rng.standard_normal(k)
    kw = dict(stride=s, padding=p, dilation=d, groups=g, padding_mode=mode)
    try:
        got = fastconv.conv2d(x, w, b, algorithm=algorithm, **kw)
    except ValueError:
        pytest.skip("padding too large for this mode")
    (top, bottom), (left, right) = fastconv.conv_output_shape(shape[2:], kernel, stride=s, padding=p,
                                                              dilation=d).padding
    xt = F.pad(torch.from_numpy(x), (left, right, top, bottom), mode="constant" if mode == "zeros" else mode)
    expected = F.conv2d(xt, torch.from_numpy(w), torch.from_numpy(b), stride=s, dilation=d, groups=g).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-11)


def test_matches_torch_float32_nhwc(torch, rng):
    F = torch.nn.functional
    x = rng.standard_normal((4, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1).numpy()
    xh, wh = nhwc(x, w)
    for algorithm in ALGORITHMS:
        got = fastconv.conv2d(xh, wh, stride=2, padding=1, layout="NHWC", algorithm=algorithm)
        np.testing.assert_allclose(got.transpose(0, 3, 1, 2), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
@pytest.mark.parametrize("s, p, d", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (3, (0, 2), 1), (2, ((2, 0), (1, 3)), 2)])
@pytest.mark.parametrize("c", [5, 8, 12, 17])
def test_depthwise_every_block_stride_and_padding(rng, c, s, p, d, mode):
    # the depthwise kernel pads and phase-splits 8 input planes at a time into a scratch
    # buffer that keeps the previous task's values: a short last block, strides,
    # dilations, uneven padding and padding modes must all read exactly their own pixels
    if mode != "zeros" and isinstance(p, tuple) and isinstance(p[0], tuple):
        p = 1  # asymmetric pairs are enough for zeros; reflect needs padding < size
    x = rng.standard_normal((3, c, 9, 11))
    w = rng.standard_normal((c, 1, 3, 3))
    b = rng.standard_normal(c)
    kw = dict(stride=s, padding=p, dilation=d, groups=c, padding_mode=mode)
    expected = reference.conv2d(x, w, b, **kw)
    for dtype in (np.float32, np.float64):
        rtol, atol = tolerance(dtype)
        got = fastconv.conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), **kw)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * 10)
        xh, wh = nhwc(x.astype(dtype), w.astype(dtype))
        got = fastconv.conv2d(xh, wh, b.astype(dtype), layout="NHWC", **kw)
        np.testing.assert_allclose(got, expected.transpose(0, 2, 3, 1), rtol=rtol, atol=atol * 10)
    if mode == "zeros":  # conv2d_grad_input runs the same kernel on the grad
        kw.pop("padding_mode")
        np.testing.assert_allclose(fastconv.conv2d_grad_input(expected, w, x.shape, **kw),
                                   reference.conv2d_grad_input(expected, w, x.shape, **kw), rtol=1e-12, atol=1e-12)


# A stride on an axis of one output is irrelevant, and the geometry's canonical form makes it 1: the
# NHWC 1x1 kernels then read the first pixel of that axis only, not every pixel as at stride 1
# (they used to take the input's pixel count: a reshape error), and the input gradient's pixels
# without an output get zeros.
@pytest.mark.parametrize("stride, shape", [((1, 3), (2, 3, 3, 32)), (3, (1, 3, 3, 40)), ((3, 1), (1, 3, 5, 32)),
                                           ((1, 4), (2, 2, 3, 48))])
@pytest.mark.parametrize("k", [40, 400])
def test_nhwc_pointwise_calls_with_an_axis_of_one_output(rng, stride, shape, k):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((1, 1, shape[3], k)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    xc, wc = x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1)
    rtol, atol = tolerance(np.float32)
    for _ in range(2):  # (the first call and a planned one)
        y = fastconv.conv2d(x, w, b, stride=stride, layout="NHWC")
        np.testing.assert_allclose(y, reference.conv2d(xc, wc, b, stride=stride).transpose(0, 2, 3, 1), rtol=rtol,
                                   atol=atol * 10)
    g = rng.standard_normal(y.shape).astype(np.float32)
    gc = g.transpose(0, 3, 1, 2)
    for _ in range(2):
        np.testing.assert_allclose(
            fastconv.conv2d_grad_input(g, w, x.shape, stride=stride, layout="NHWC"),
            reference.conv2d_grad_input(gc, wc, xc.shape, stride=stride).transpose(0, 2, 3, 1), rtol=rtol,
            atol=atol * 10)
        np.testing.assert_allclose(
            fastconv.conv2d_grad_weight(g, x, w.shape, stride=stride, layout="NHWC"),
            reference.conv2d_grad_weight(gc, xc, wc.shape, stride=stride).transpose(2, 3, 1, 0), rtol=rtol,
            atol=atol * 10)


# NHWC 1x1 convolutions of up to 64 float32 (32 float64) filters, or of any filters on up to as many
# channels, read the pixels and the weight in place (pointwise_nhwc_direct: tiles of 4 or 6 pixels,
# so pixel counts around them and the tasks' 96; few pixels and more than 192 filters: tasks of
# groups of filters too; "auto"), others run the pointwise kernel with the roles swapped (pixels as its
# filters: 8 at a time, so pixel counts around multiples of 8; the weight's K columns as its
# image's pixels: tails of a panel; "swapped", forced here for every shape); strided, the direct
# kernel reads a copy of the pixels read, the swapped one packs them where they lie
# (filter_pixels); at every SIMD level and thread count: the reference's values, and without a
# bias the NCHW kernels' bits (each output's channels summed in order from 0). With a bias the
# direct kernel starts from it, as the NCHW kernels do: their bits too.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k", [((1, 32, 1, 1), 32), ((2, 40, 3, 5), 33), ((3, 64, 7, 7), 100),
                                      ((1, 33, 9, 13), 64), ((2, 96, 5, 4), 200), ((1, 48, 10, 20), 40),
                                      ((1, 32, 3, 3), 400), ((2, 40, 10, 10), 230)])
@pytest.mark.parametrize("stride", [1, 2, (1, 3)])
@pytest.mark.parametrize("route", ["auto", "swapped"])
def test_pointwise_nhwc_runs_the_pointwise_kernel_swapped(rng, level, dtype, shape, k, stride, route, monkeypatch):
    from fastconv import _conv
    from fastconv._kernels import _conv_direct

    direct = (route == "auto" and min(k, shape[1]) * np.dtype(dtype).itemsize <= 256
              and _conv_direct.has_pointwise_nhwc_kernels())
    if route == "swapped":
        monkeypatch.setattr(_conv, "POINTWISE_NHWC_DIRECT_BYTES", 0)
        monkeypatch.setattr(_conv, "POINTWISE_NHWC_DIRECT_CHANNEL_BYTES", 0)
    assert _conv.reads_pointwise_nhwc_in_place(k, shape[1], dtype) == direct
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((k, shape[1], 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    xh, wh = nhwc(x, w)
    call = fastconv._prepare.prepare_conv2d(xh, wh, None, stride, 0, 1, 1, "zeros", "NHWC", None)
    assert _conv.pointwise_nhwc_fits(call)
    rtol, atol = tolerance(dtype)
    results = []
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            results.append((fastconv.conv2d(xh, wh, stride=stride, layout="NHWC"),
                            fastconv.conv2d(xh, wh, b, stride=stride, layout="NHWC")))
    for plain, biased in results:
        np.testing.assert_array_equal(plain, results[0][0])
        np.testing.assert_array_equal(biased, results[0][1])
    plain, biased = results[0]
    np.testing.assert_array_equal(plain, fastconv.conv2d(x, w, stride=stride).transpose(0, 2, 3, 1))
    np.testing.assert_allclose(biased, reference.conv2d(x, w, b, stride=stride).transpose(0, 2, 3, 1), rtol=rtol,
                               atol=atol * 10)
    if direct:
        np.testing.assert_array_equal(biased, fastconv.conv2d(x, w, b, stride=stride).transpose(0, 2, 3, 1))
    out = np.full(biased.shape, np.nan, dtype)
    assert fastconv.conv2d(xh, wh, b, stride=stride, layout="NHWC", out=out) is out
    np.testing.assert_array_equal(out, biased)


# The direct kernel over random extents (pixels around its tiles' rows and tasks, channels around
# its chunks of the weight's rows, filters around whole vectors and their blocks), on small
# integers: exact sums, so the int64 product's bits, with and without a bias, for every level and
# thread count; out written whole (it starts as NaN).
@given(pixels=st.integers(1, 400), c=st.integers(1, 150), k=st.integers(1, 70), bias=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), threads=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_pointwise_nhwc_direct_exact(pixels, c, k, bias, dtype, threads, seed):
    from fastconv._kernels import _conv_direct

    rng = np.random.default_rng(seed)
    x, w = small_ints(rng, (pixels, c), dtype, -3, 3), small_ints(rng, (c, k), dtype, -3, 3)
    b = small_ints(rng, (k,), dtype, -50, 50) if bias else None
    expected = x.astype(np.int64) @ w.astype(np.int64) + (0 if b is None else b.astype(np.int64))
    for _ in each_simd_level():
        if not _conv_direct.has_pointwise_nhwc_kernels():
            continue
        out = np.full((pixels, k), np.nan, dtype)
        _conv_direct.pointwise_nhwc_direct(x, w, b, out, threads)
        np.testing.assert_array_equal(out, expected)


# The swapped kernel's filters from the pixels a strided 1x1 convolution reads (filter_pixels),
# packed where they lie in the NHWC input: over random images, strides, outputs (up to every
# stride's pixel; fewer where an axis of one output is read at stride 1) and extents (pixels
# around the blocks of 8 filters, channels around the packing's parts of 64), the bits of the same
# kernel on a copy of those pixels, for every level, several tasks and thread counts; the input
# ends where its buffer does (a read past it would leave the buffer); small integers: exact sums.
@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), sh=st.integers(1, 3), sw=st.integers(1, 3),
       c=st.integers(1, 140), k=st.integers(1, 40), shrink=st.tuples(st.booleans(), st.booleans()),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_pointwise_filters_from_strided_pixels(n, h, w, sh, sw, c, k, shrink, dtype, seed):
    from fastconv._conv import pointwise_panel
    from fastconv._kernels import _conv_direct

    oh, ow = (h - 1) // sh + 1, (w - 1) // sw + 1
    oh, ow = (1 if shrink[0] else oh), (1 if shrink[1] else ow)
    rng = np.random.default_rng(seed)
    flat = np.empty(n * h * w * c + 64, dtype)
    x = flat[64:].reshape(n, h, w, c)
    x[...] = small_ints(rng, x.shape, dtype, -3, 3)
    weight = small_ints(rng, (1, c, 1, k), dtype, -3, 3)
    read = np.ascontiguousarray(x[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw])
    pixels = n * oh * ow
    expected = read.reshape(pixels, c).astype(np.int64) @ weight.reshape(c, k).astype(np.int64)
    for _ in each_simd_level():
        panel = pointwise_panel(dtype)
        copied = np.full((1, pixels, k), np.nan, dtype)
        _conv_direct.conv2d_pointwise(weight, None, None, copied, 1, 1, k, 1, panel, 1, 1, False, 1,
                                      read.reshape(pixels, c, 1), None, None)
        np.testing.assert_array_equal(copied[0], expected)
        for tasks, threads, pass_blocks in [(1, 1, 0), (1, 1, 1), (2, 2, 1), (3, 3, 2)]:
            out = np.full((1, pixels, k), np.nan, dtype)
            _conv_direct.conv2d_pointwise(weight, None, None, out, 1, 1, k, tasks, panel, threads, pass_blocks,
                                          False, threads, x.reshape(n * h * w, c, 1), None, None,
                                          (h, w, oh, ow, sh, sw))
            np.testing.assert_array_equal(out, copied)


def test_pointwise_filters_from_pixels_refuse_pixels_outside_the_input():
    from fastconv._kernels import _conv_direct

    x = np.ones((2 * 5 * 6, 4, 1), np.float32)  # two images of 5x6 pixels of 4 channels
    weight = np.ones((1, 4, 1, 3), np.float32)

    def run(filter_pixels, filters=2 * 3 * 3, pixels=x, **kw):
        out = np.empty((1, filters, 3), np.float32)
        _conv_direct.conv2d_pointwise(weight, None, None, out, 1, 1, 3, 1, 48, 1, 0, False, 1, weight=pixels,
                                      filter_pixels=filter_pixels, **kw)

    run((5, 6, 3, 3, 2, 2))  # (3x3 outputs at stride 2 of each 5x6 image: pixels 0, 2, 4 of each axis)
    run((6, 5, 3, 3, 2, 2))
    # rows 0..6 of 5; rows 0..6 of 6 (0..5); columns 0..5 of 5; no stride; no output rows; 60 pixels
    # not whole images of 4x6
    for bad in [(5, 6, 3, 3, 3, 2), (6, 5, 4, 3, 2, 2), (6, 5, 3, 6, 2, 1), (5, 6, 3, 3, 0, 2), (5, 6, 0, 3, 2, 2),
                (4, 6, 3, 3, 1, 2)]:
        with pytest.raises(ValueError, match="conv2d_pointwise"):
            run(bad, filters=2 * bad[2] * bad[3])
    with pytest.raises(ValueError, match="conv2d_pointwise"):  # (filters: 2 images of 3x3 outputs, not 17)
        run((5, 6, 3, 3, 2, 2), filters=17)
    with pytest.raises(ValueError, match="conv2d_pointwise"):  # (channels: 4 a pixel, not 5)
        run((5, 6, 3, 3, 2, 2), pixels=np.ones((60, 5, 1), np.float32))
    with pytest.raises(ValueError, match="conv2d_pointwise"):
        run((5, 6, 3, 3, 2, 2), adjoint_taps=np.zeros(1, np.intp))


def test_pointwise_nhwc_direct_refuses_wrong_shapes():
    from fastconv._kernels import _conv_direct

    if not _conv_direct.has_pointwise_nhwc_kernels():
        pytest.skip("this build's level has no such kernel")
    x, w, out = np.ones((10, 4), np.float32), np.ones((4, 3), np.float32), np.empty((10, 3), np.float32)
    for args in [(x, w[:3], None, out), (x, w, None, out[:9]), (x, w, None, np.empty((10, 4), np.float32)),
                 (x, w, np.ones(4, np.float32), out), (x[:, :0], w[:0], None, out)]:
        with pytest.raises(ValueError, match="pointwise_nhwc_direct"):
            _conv_direct.pointwise_nhwc_direct(*args, 1)
    with pytest.raises(ValueError):  # (rows must be C-contiguous)
        _conv_direct.pointwise_nhwc_direct(np.ones((4, 10), np.float32).T, w, None, out, 1)


def test_pointwise_nhwc_adds_a_bias_only_where_one_is_given(rng, monkeypatch):
    """The kernel adds its bias after the sums, a pass over the result: none given, none passed (not zeros)."""
    from fastconv import _conv

    seen = []
    kernel = _conv.pointwise_nhwc
    monkeypatch.setattr(_conv, "pointwise_nhwc", lambda x, w, bias, out, stride: (seen.append(bias),
                                                                                  kernel(x, w, bias, out, stride)))
    x = rng.standard_normal((2, 3, 4, 32)).astype(np.float32)
    w = rng.standard_normal((1, 1, 32, 40)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    fastconv.conv2d(x, w, layout="NHWC")
    fastconv.conv2d(x, w, b, layout="NHWC")
    assert seen[0] is None and np.array_equal(seen[1], b)


def test_pointwise_nhwc_only_where_it_fits(rng):
    from fastconv import _conv

    def fits(shape, k, dtype=np.float32, **kw):
        x = np.zeros(shape, dtype)
        w = np.zeros((1, 1, shape[3] // kw.get("groups", 1), k), dtype)
        kw = dict(dict(stride=1, padding=0, dilation=1, groups=1), **kw)
        call = fastconv._prepare.prepare_conv2d(x, w, None, kw["stride"], kw["padding"], kw["dilation"],
                                                kw["groups"], "zeros", "NHWC", None)
        return _conv.pointwise_nhwc_fits(call)

    assert fits((1, 4, 4, 32), 32)
    assert not fits((1, 4, 4, 31), 64)  # few channels
    assert not fits((1, 4, 4, 64), 31)  # few filters
    assert fits((1, 8, 8, 64), 64, stride=2)
    assert not fits((1, 4, 4, 64), 64, padding=1)
    assert not fits((1, 4, 4, 128), 64, groups=2)
    assert not fits((1, 4, 4, 64), 64, dtype=np.int64)  # exact integer loops
    assert fits((1, 4, 4, 64), 64, dtype=np.float16)  # (computed in float32)

@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("s, p, d, g, mode", [(1, 1, 1, 1, "zeros"), (2, 1, 1, 2, "zeros"), (1, 2, 2, 1, "reflect"),
                                              (3, ((2, 0), (1, 3)), 1, 1, "zeros"), (2, 3, 1, 4, "circular")])
def test_image_per_task_and_whole_batch_layouts_agree(rng, n, s, p, d, g, mode):
    # with at least two images per thread each task pads one image in cache; with fewer,
    # the whole batch is laid out once. Both must give the reference's values, and the
    # same bits: the thread count decides which one runs.
    x = rng.standard_normal((n, 8, 13, 20)).astype(np.float32)
    w = rng.standard_normal((12, 8 // g, 3, 3)).astype(np.float32)
    kw = dict(stride=s, padding=p, dilation=d, groups=g, padding_mode=mode)
    expected = reference.conv2d(x, w, **kw)
    results = []
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            results.append(fastconv.conv2d(x, w, **kw))
            xh, wh = nhwc(x, w)
            np.testing.assert_array_equal(fastconv.conv2d(xh, wh, layout="NHWC", **kw),
                                          results[-1].transpose(0, 2, 3, 1))
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol * 10)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
