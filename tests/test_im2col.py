"""im2col and col2im: fast == reference == PyTorch, every dtype, layout and memory order."""

import platform

import numpy as np
import pytest
from helpers import ALL_DTYPES, nonstandard_views, random_array, tolerance, unaligned_zeros
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from fastconv import reference

# (x shape NCHW, kernel, stride, padding, dilation)
GRID = [
    ((1, 1, 4, 4), 3, 1, 0, 1),
    ((2, 3, 7, 6), 3, 1, 1, 1),
    ((2, 3, 7, 6), (2, 3), (2, 1), ((1, 0), (2, 1)), (1, 2)),
    ((3, 2, 9, 9), 3, 2, "same", 1),
    ((1, 4, 8, 5), (3, 1), 3, "valid", (2, 1)),
    ((2, 5, 5, 5), 5, 1, 0, 1),  # kernel equal to the input
    ((1, 2, 1, 1), 1, 4, 0, 1),  # 1x1 image, stride larger than the kernel
    ((2, 3, 6, 7), 2, 3, 2, 3),
]
LAYOUTS = ["NCHW", "NHWC"]


def to_layout(x, layout):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x


@st.composite
def geometries(draw, max_batch=3, max_channels=4):
    """A random but valid (x shape NCHW, kernel, stride, padding, dilation)."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad_kind = draw(st.sampled_from(["int", "pair", "pairs", "same", "valid"]))
    if pad_kind == "int":
        padding = draw(st.integers(0, 3))
        pads = [(padding, padding)] * 2
    elif pad_kind == "pair":
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        pads = [(p, p) for p in padding]
    elif pad_kind == "pairs":
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
        pads = list(padding)
    else:
        padding = pad_kind
        pads = [(0, 0)] * 2
    hw = []
    for kk, dd, (a, b) in zip(k, d, pads):
        low = max(1, dd * (kk - 1) + 1 - a - b) if pad_kind != "same" else 1
        hw.append(draw(st.integers(low, low + 7)))
    shape = (draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)), *hw)
    return shape, k, s, padding, d


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape, k, s, p, d", GRID)
def test_im2col_matches_reference(rng, shape, k, s, p, d, layout):
    x = to_layout(rng.standard_normal(shape), layout)
    kw = dict(stride=s, padding=p, dilation=d, layout=layout)
    np.testing.assert_array_equal(fastconv.im2col(x, k, **kw), reference.im2col(x, k, **kw))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape, k, s, p, d", GRID)
def test_col2im_matches_reference(rng, shape, k, s, p, d, layout):
    x_shape = to_layout(np.empty(shape), layout).shape
    cols_shape = fastconv.im2col(np.zeros(x_shape), k, stride=s, padding=p, dilation=d, layout=layout).shape
    cols = rng.standard_normal(cols_shape)
    kw = dict(stride=s, padding=p, dilation=d, layout=layout)
    np.testing.assert_allclose(
        fastconv.col2im(cols, x_shape, k, **kw), reference.col2im(cols, x_shape, k, **kw), rtol=1e-13, atol=1e-13
    )


@given(geo=geometries(), layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(ALL_DTYPES),
       mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]), seed=st.integers(0, 2**16))
def test_im2col_property(geo, layout, dtype, mode, seed):
    shape, k, s, p, d = geo
    x = to_layout(random_array(np.random.default_rng(seed), shape, dtype), layout)
    kw = dict(stride=s, padding=p, dilation=d, layout=layout, padding_mode=mode)
    try:
        expected = reference.im2col(x, k, **kw)
    except ValueError as exc:  # e.g. reflect padding as large as the input: both must refuse
        with pytest.raises(ValueError, match=str(exc)[:30]):
            fastconv.im2col(x, k, **kw)
        return
    got = fastconv.im2col(x, k, **kw)
    assert got.dtype == x.dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


@given(geo=geometries(), layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(ALL_DTYPES),
       seed=st.integers(0, 2**16))
def test_col2im_property(geo, layout, dtype, seed):
    shape, k, s, p, d = geo
    x_shape = to_layout(np.empty(shape), layout).shape
    kw = dict(stride=s, padding=p, dilation=d, layout=layout)
    n_rows, n_cols = fastconv.im2col(np.zeros(x_shape, np.uint8), k, **kw).shape
    cols = random_array(np.random.default_rng(seed), (n_rows, n_cols), dtype)
    got = fastconv.col2im(cols, x_shape, k, **kw)
    expected = reference.col2im(cols, x_shape, k, **kw)
    assert got.dtype == cols.dtype and got.shape == x_shape
    if np.dtype(dtype).kind in "biu":
        np.testing.assert_array_equal(got, expected)  # exact, wrapping like NumPy
    else:
        rtol, atol = tolerance(dtype)
        scale = max(1.0, float(np.abs(expected).max(initial=0)))
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * scale * 8)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_dtype_round_trip(rng, dtype, layout):
    x = to_layout(random_array(rng, (2, 3, 6, 5), dtype), layout)
    cols = fastconv.im2col(x, 3, padding=1, layout=layout)
    np.testing.assert_array_equal(cols, reference.im2col(x, 3, padding=1, layout=layout))
    back = fastconv.col2im(cols, x.shape, 3, padding=1, layout=layout)
    ref = reference.col2im(cols, x.shape, 3, padding=1, layout=layout)
    assert back.dtype == x.dtype
    if np.dtype(dtype).kind in "biu":
        np.testing.assert_array_equal(back, ref)
    else:
        rtol, atol = tolerance(dtype)
        np.testing.assert_allclose(back, ref, rtol=rtol, atol=atol * 8)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_awkward_memory(rng, layout):
    x = to_layout(rng.standard_normal((2, 3, 7, 8)), layout)
    expected = reference.im2col(x, 3, stride=2, padding=1, layout=layout)
    for name, view in nonstandard_views(x).items():
        np.testing.assert_array_equal(fastconv.im2col(view, 3, stride=2, padding=1, layout=layout), expected,
                                      err_msg=name)
    for name, view in nonstandard_views(expected).items():
        np.testing.assert_allclose(fastconv.col2im(view, x.shape, 3, stride=2, padding=1, layout=layout),
                                   reference.col2im(expected, x.shape, 3, stride=2, padding=1, layout=layout),
                                   rtol=1e-13, err_msg=name)


def test_lists_and_inputs_untouched(rng):
    x = rng.standard_normal((1, 2, 4, 4))
    before = x.copy()
    cols = fastconv.im2col(x, 2, padding=1, padding_mode="reflect")
    np.testing.assert_array_equal(x, before)
    cols_before = cols.copy()
    fastconv.col2im(cols, x.shape, 2, padding=1)
    np.testing.assert_array_equal(cols, cols_before)
    np.testing.assert_array_equal(fastconv.im2col(x.tolist(), 2), fastconv.im2col(x, 2))


def test_unbatched_input_counts_as_one_image(rng):
    x = rng.standard_normal((3, 5, 5))
    np.testing.assert_array_equal(fastconv.im2col(x, 3), fastconv.im2col(x[None], 3))
    cols = fastconv.im2col(x, 3)
    assert fastconv.col2im(cols, x.shape, 3).shape == (3, 5, 5)
    np.testing.assert_array_equal(fastconv.col2im(cols, x.shape, 3), fastconv.col2im(cols, (1, 3, 5, 5), 3)[0])


def test_spec_shape_examples():
    assert fastconv.im2col(np.zeros((9, 3, 5, 5)), 5).shape == (9, 75)
    assert fastconv.im2col(np.zeros((1, 3, 5, 5)), 3, stride=1, padding=1).shape == (25, 27)


def test_adjoint_identity(rng):
    """<im2col(x), c> == <x, col2im(c)>: col2im is the transpose of im2col."""
    x = rng.standard_normal((2, 3, 9, 7))
    kw = dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2))
    cols = fastconv.im2col(x, (3, 2), **kw)
    c = rng.standard_normal(cols.shape)
    lhs = np.vdot(cols, c)
    rhs = np.vdot(x, fastconv.col2im(c, x.shape, (3, 2), **kw))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_out_argument(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    out = np.empty((2 * 16, 27), np.float32)
    res = fastconv.im2col(x, 3, out=out)
    assert res is out
    np.testing.assert_array_equal(out, reference.im2col(x, 3))
    img = np.full(x.shape, 7.0, np.float32)  # stale values must be overwritten
    res = fastconv.col2im(out, x.shape, 3, out=img)
    assert res is img
    np.testing.assert_allclose(img, reference.col2im(out, x.shape, 3), rtol=1e-6)
    img = np.full(x.shape, 7.0, np.float32)
    fastconv.col2im(out, x.shape, 3, padding=0, out=img)
    np.testing.assert_allclose(img, reference.col2im(out, x.shape, 3), rtol=1e-6)
    padded_cols = fastconv.im2col(x, 3, padding=1)
    fastconv.col2im(padded_cols, x.shape, 3, padding=1, out=img)
    np.testing.assert_allclose(img, reference.col2im(padded_cols, x.shape, 3, padding=1), rtol=1e-6)


@pytest.mark.parametrize(
    "out, match",
    [
        (np.empty((32, 27), np.float64), "dtype float64"),
        (np.empty((27, 32), np.float32), r"shape \(27, 32\)"),
        (np.empty((32, 54), np.float32)[:, ::2], "not C-contiguous"),
        ([0.0] * 5, "got list"),
    ],
)
def test_bad_out(out, match):
    x = np.zeros((2, 3, 6, 6), np.float32)
    with pytest.raises(ValueError, match=match):
        fastconv.im2col(x, 3, out=out)


def test_read_only_out_is_refused():
    out = np.empty((32, 27), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastconv.im2col(np.zeros((2, 3, 6, 6), np.float32), 3, out=out)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: fastconv.im2col(np.zeros((4, 4)), 3), ValueError, "x must be 4-D"),
        (lambda: fastconv.im2col(np.zeros((1, 1, 4, 4)), 3, layout="NWHC"), ValueError, "layout must be one of"),
        (lambda: fastconv.im2col(np.array([["a"]]), 1), TypeError, "x must be a numeric array"),
        (lambda: fastconv.im2col(np.zeros((1, 1, 4, 4)), 5), ValueError, "larger than the padded input"),
        (lambda: fastconv.im2col(np.zeros((1, 1, 4, 4)), 3, padding=4, padding_mode="reflect"),
         ValueError, "reflect"),
        (lambda: fastconv.im2col(np.zeros((1, 1, 4, 4)), 3, padding=5, padding_mode="circular"),
         ValueError, "circular"),
        (lambda: fastconv.im2col(np.zeros((1, 1, 4, 4)), 3, padding_mode="mirror"), ValueError, "padding_mode"),
        (lambda: fastconv.col2im(np.zeros((4, 8)), (1, 1, 4, 4), 3), ValueError, r"cols must have shape .*\(4, 9\)"),
        (lambda: fastconv.col2im(np.zeros((4, 9)), (4, 4), 3), ValueError, "input_shape must be 4 or 3"),
        (lambda: fastconv.col2im(np.zeros((4, 9)), (1, 1, 4.0, 4), 3), TypeError, "input_shape"),
        (lambda: fastconv.col2im(np.zeros((4, 9), object), (1, 1, 4, 4), 3), TypeError, "numeric"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_empty_batch_and_channels():
    assert fastconv.im2col(np.zeros((0, 3, 5, 5)), 3).shape == (0, 27)
    assert fastconv.im2col(np.zeros((2, 0, 5, 5)), 3).shape == (18, 0)
    assert fastconv.col2im(np.zeros((0, 27)), (0, 3, 5, 5), 3).shape == (0, 3, 5, 5)
    np.testing.assert_array_equal(fastconv.col2im(np.zeros((18, 0)), (2, 0, 5, 5), 3), np.zeros((2, 0, 5, 5)))


# ----------------------------------------------------------------- PyTorch
TORCH_MODES = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape, k, s, p, d", [g for g in GRID if not isinstance(g[3], str)])
def test_im2col_matches_torch_unfold(torch, rng, shape, k, s, p, d, mode):
    F = torch.nn.functional
    x = rng.standard_normal(shape)
    pads = fastconv.conv_output_shape(shape[2:], k, stride=s, padding=p, dilation=d).padding
    (top, bottom), (left, right) = pads
    xt = torch.from_numpy(x)
    if mode == "zeros":
        xt = F.pad(xt, (left, right, top, bottom))
    else:
        try:
            fastconv.im2col(x, k, stride=s, padding=p, dilation=d, padding_mode=mode)
        except ValueError:
            pytest.skip("padding too large for this mode (both libraries refuse)")
        xt = F.pad(xt, (left, right, top, bottom), mode=TORCH_MODES[mode])
    expected = F.unfold(xt, k, dilation=d, stride=s).numpy()  # (N, C*KH*KW, L)
    got = fastconv.im2col(x, k, stride=s, padding=p, dilation=d, padding_mode=mode)
    np.testing.assert_array_equal(got, expected.transpose(0, 2, 1).reshape(got.shape))
    got_nhwc = fastconv.im2col(to_layout(x, "NHWC"), k, stride=s, padding=p, dilation=d,
                               padding_mode=mode, layout="NHWC")
    kh, kw = (k, k) if isinstance(k, int) else k
    c = shape[1]
    as_torch = got_nhwc.reshape(-1, kh, kw, c).transpose(0, 3, 1, 2).reshape(got.shape)
    np.testing.assert_array_equal(as_torch, got)


@pytest.mark.parametrize("shape, k, s, p, d", [g for g in GRID if not isinstance(g[3], str)])
def test_col2im_matches_torch_fold(torch, rng, shape, k, s, p, d):
    F = torch.nn.functional
    pads = fastconv.conv_output_shape(shape[2:], k, stride=s, padding=p, dilation=d).padding
    (top, bottom), (left, right) = pads
    n, c, h, w = shape
    cols = rng.standard_normal(fastconv.im2col(np.zeros(shape), k, stride=s, padding=p, dilation=d).shape)
    folded = F.fold(torch.from_numpy(cols.reshape(n, -1, cols.shape[1]).transpose(0, 2, 1).copy()),
                    (h + top + bottom, w + left + right), k, dilation=d, stride=s).numpy()
    expected = folded[:, :, top:top + h, left:left + w]
    np.testing.assert_allclose(fastconv.col2im(cols, shape, k, stride=s, padding=p, dilation=d), expected,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel", [1, 3, (2, 1)])
@pytest.mark.parametrize("width", [9, 10, 33, 34])
def test_stride_two_runs_end_at_the_buffer_end(rng, kernel, width):
    # the register-transposed blocks load 8 items for 4 pixels at column stride 2; the
    # last window of the last row ends at the input's last item, so a load past the
    # pixels asked for would read outside the array (a sanitizer build reports it)
    x = rng.standard_normal((1, 4, 5, width)).astype(np.float32)
    for s in (2, (1, 2)):
        expected = reference.im2col(x, kernel, stride=s)
        np.testing.assert_array_equal(fastconv.im2col(x, kernel, stride=s), expected)


# ---- streamed (non-temporal) stores: large column matrices bypass the caches

@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float64])
@pytest.mark.parametrize("width", [1, 2, 5, 16, 17, 31, 32, 33, 47])  # every block tail, at strides 1 and 2
@pytest.mark.parametrize("c, k, s, p, d", [(4, 3, 1, 1, 1), (4, 3, 2, 1, 1), (3, 3, 2, 0, 1), (4, 3, 1, 2, 2),
                                           (2, (2, 3), 2, 1, 1), (1, 1, 2, 0, 1),
                                           # rows of whole cache lines of 4-byte items (J = 144)
                                           (16, 3, 1, 1, 1), (16, 3, 2, 1, 1), (16, 3, 1, 2, 2)])
def test_streamed_columns_match_the_reference(rng, monkeypatch, dtype, width, c, k, s, p, d):
    from fastconv import _im2col

    x = random_array(rng, (2, c, 5, width), dtype)
    monkeypatch.setattr(_im2col, "STREAM_BYTES", 0)  # stream every call into an out
    try:
        expected = reference.im2col(x, k, stride=s, padding=p, dilation=d)
    except ValueError:  # a kernel wider than the padded input: both refuse
        with pytest.raises(ValueError, match="kernel"):
            fastconv.im2col(x, k, stride=s, padding=p, dilation=d)
        return
    out = np.full_like(expected, 7)
    np.testing.assert_array_equal(fastconv.im2col(x, k, stride=s, padding=p, dilation=d, out=out), expected)
    np.testing.assert_array_equal(fastconv.im2col(x, k, stride=s, padding=p, dilation=d), expected)
    # an out 4 bytes past a 16-byte boundary: written with ordinary stores
    buffer = np.zeros(expected.size + 4, expected.dtype)
    offset = next((i for i in range(4) if buffer[i:].ctypes.data % 16 == 4), 0)
    out = buffer[offset:offset + expected.size].reshape(expected.shape)
    np.testing.assert_array_equal(fastconv.im2col(x, k, stride=s, padding=p, dilation=d, out=out), expected)
    with fastconv.num_threads(2):
        out = np.full_like(expected, 7)
        np.testing.assert_array_equal(fastconv.im2col(x, k, stride=s, padding=p, dilation=d, out=out), expected)


@pytest.mark.parametrize("line_offset", [0, 4, 16, 32, 48, 60])  # bytes past a cache line where out starts
@pytest.mark.parametrize("c, k, s, width", [(16, 3, 1, 23), (16, 3, 2, 23), (32, (1, 2), 2, 30), (4, 3, 1, 23),
                                            (4, 2, 1, 9), (4, 3, 2, 23), (3, 3, 3, 23), (128, 3, 1, 23),
                                            (128, 3, 2, 23), (208, (1, 5), 1, 23),
                                            # interior pixels a multiple of 4 (no overlapping last quad)
                                            (16, 3, 1, 22), (128, 3, 1, 22), (16, 3, 2, 19)])
def test_streamed_columns_at_every_line_offset(rng, monkeypatch, line_offset, c, k, s, width):
    # only whole cache lines are streamed: the lines a row shares with its neighbours (any
    # row, when out starts inside a line or rows are not whole lines) take ordinary stores;
    # rows of whole lines (J = 144, 64, 1152, 1040) are written straight from registers, the
    # lines of rows longer than FC_STREAM_TAP_CHUNK (512) taps in chunks; where out starts 16,
    # 32 or 48 bytes past a line, a row's last taps and the next row's first make one line,
    # streamed too, and only the first and last pixels' partial lines take ordinary stores.
    # Nothing before or after out may be written.
    from fastconv import _im2col
    from fastconv._arrays import ALIGN_FROM, CACHE_LINE, empty_aligned

    monkeypatch.setattr(_im2col, "STREAM_BYTES", 0)
    x = random_array(rng, (3, c, 7, width), np.float32)
    expected = reference.im2col(x, k, stride=s, padding=1)
    start = line_offset // 4
    buffer = empty_aligned(max(expected.size + start, ALIGN_FROM // 4), np.float32)
    buffer[...] = 0
    assert buffer.ctypes.data % CACHE_LINE == 0
    out = buffer[start:start + expected.size].reshape(expected.shape)
    for threads in (1, 2):
        out[...] = 7
        with fastconv.num_threads(threads):
            got = fastconv.im2col(x, k, stride=s, padding=1, out=out)
        np.testing.assert_array_equal(got, expected)
        assert not buffer[:start].any() and not buffer[start + expected.size:].any()


# ---- col2im tap by tap for kernel rows 5 to 7 wide on rows of at least 12 output columns

@pytest.mark.parametrize("dtype", [np.int64, np.float64])
@pytest.mark.parametrize("kw", [5, 6, 7])
@pytest.mark.parametrize("width", [13, 15, 40])  # 40: rows of 12 or more output columns at every stride
@pytest.mark.parametrize("s, p", [(1, 0), (1, 3), (2, 3), ((1, 3), (2, 1))])
def test_col2im_wide_kernel_rows(rng, dtype, kw, width, s, p):
    from fastconv._kernels import _col2im

    shape = (2, 3, 9, width)
    k = (3, kw)
    cols_shape = fastconv.im2col(np.zeros(shape), k, stride=s, padding=p).shape
    cols = random_array(rng, cols_shape, dtype)
    expected = reference.col2im(cols, shape, k, stride=s, padding=p)
    ow = fastconv.conv_output_shape(shape[2:], k, stride=s, padding=p).shape[1]
    assert _col2im.tap_major(kw, 1, ow) == (ow >= 12)  # both routes are exercised
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            got = fastconv.col2im(cols, shape, k, stride=s, padding=p)
        if dtype == np.int64:
            np.testing.assert_array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


# ---- zero padding read in place (im2col_planar): edge pixels, rows of zeros, kernel widths

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.uint8, np.complex64, np.complex128])
@pytest.mark.parametrize("kw", [1, 2, 5, 8, 9])  # 8: the widest planar kernel row; 9 pads a copy
@pytest.mark.parametrize("width", [1, 3, 8, 21])
@pytest.mark.parametrize("s, p, d", [(1, 0, 1), (1, (1, 3), 1), (2, (2, 1), 1), (3, 2, 2), (1, "same", 2)])
def test_padding_is_read_in_place(rng, dtype, kw, width, s, p, d):
    x = random_array(rng, (2, 3, 6, width), dtype)
    kw_ = dict(stride=s, padding=p, dilation=d)
    try:
        expected = reference.im2col(x, (3, kw), **kw_)
    except ValueError:  # the kernel does not fit this padded input
        with pytest.raises(ValueError):
            fastconv.im2col(x, (3, kw), **kw_)
        return
    np.testing.assert_array_equal(fastconv.im2col(x, (3, kw), **kw_), expected)
    with fastconv.num_threads(2):
        np.testing.assert_array_equal(fastconv.im2col(x, (3, kw), **kw_), expected)


class GuardedMemory:
    """Pages of memory between two pages that may not be read (Linux): an access past either end faults."""

    def __init__(self, nbytes):
        import ctypes
        import mmap

        self.page = mmap.PAGESIZE
        self.size = -(-nbytes // self.page) * self.page
        self.map = mmap.mmap(-1, self.size + 2 * self.page)
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        for start in (self.base, self.base + self.page + self.size):
            if libc.mprotect(start, self.page, 0) != 0:  # PROT_NONE
                raise OSError(ctypes.get_errno(), "mprotect failed")

    def array(self, a, at_end):
        """A copy of ``a`` right after the first guard page, or right before the last."""
        offset = self.page + (self.size - a.nbytes if at_end else 0)
        view = np.frombuffer(self.map, a.dtype, a.size, offset).reshape(a.shape)
        view[...] = a
        return view


@pytest.mark.skipif(platform.system() != "Linux", reason="guard pages through mprotect")
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("at_end", [False, True])
@pytest.mark.parametrize("stream", [False, True])
def test_edge_pixels_read_nothing_outside_the_image(rng, monkeypatch, dtype, at_end, stream):
    # the edge pixels of a C-contiguous image are gathered like the interior, or copied as runs of
    # taps, reading before and past its rows: never before its first row or past its last (a read
    # there would fault). Streamed, 16 channels of 3 or 8 taps make rows of whole cache lines
    # (written straight from registers, their edge pixels as runs). At stride 2 with kernel rows of
    # 6 taps or more, and at strides of 3 or more, every window row is copied as a run.
    from fastconv import _im2col

    monkeypatch.setattr(_im2col, "STREAM_BYTES", 0)
    guard = GuardedMemory(4 * 16 * 9 * 13 * np.dtype(dtype).itemsize)
    for shape in [(4, 3, 9, 13), (4, 16, 9, 13), (2, 1, 5, 2), (1, 2, 3, 1), (2, 16, 3, 2), (2, 16, 3, 1)]:
        x = guard.array(random_array(rng, shape, dtype), at_end)
        for k, s, p, d in [(3, 1, 1, 1), ((3, 5), 1, (2, 4), 1), ((2, 7), 2, 3, 1), ((3, 3), (1, 3), 4, 2),
                           ((1, 8), 1, (0, 7), 1), (3, 2, "same", 2), ((3, 3), (1, 2), (1, 2), 1),
                           ((3, 1), 1, ((1, 1), (1, 2)), 1), ((1, 2), 1, ((0, 0), (1, 1)), 1),
                           ((3, 3), 3, 1, 1), ((2, 6), (1, 2), (1, 5), 1), ((1, 8), (2, 4), (0, 3), 1),
                           (3, 1, 0, 1), (3, (1, 2), 0, 1)]:  # (no padding: no edge pixels)
            kw = dict(stride=s, padding=p, dilation=d)
            try:
                expected = reference.im2col(x, k, **kw)
            except ValueError:  # the kernel does not fit this padded input
                continue
            for threads in (1, 2):
                with fastconv.num_threads(threads):
                    # (streamed: an out 16 bytes past a cache line, as NumPy allocates large ones,
                    # whose rows' ends and starts share lines streamed from the transposes)
                    out, around = _out_past_a_line(expected, 16) if stream else (None, None)
                    np.testing.assert_array_equal(fastconv.im2col(x, k, out=out, **kw), expected)
                    if stream:  # and nothing written around it
                        assert not around().any()


def _out_past_a_line(like, offset):
    """An array shaped and typed like ``like``, filled with 7s, starting ``offset`` bytes past a
    cache line; and the zeros around it, to the ends of its first and last lines (``around()``)."""
    from fastconv._arrays import CACHE_LINE

    raw = np.zeros(like.nbytes + 3 * CACHE_LINE, np.uint8)
    line = -raw.ctypes.data % CACHE_LINE
    buffer = raw[line:line + offset + like.nbytes + CACHE_LINE]
    out = buffer[offset:offset + like.nbytes].view(like.dtype).reshape(like.shape)
    assert out.ctypes.data % CACHE_LINE == offset
    out[...] = 7
    return out, lambda: np.concatenate([buffer[:offset], buffer[offset + like.nbytes:]])


@pytest.mark.skipif(platform.system() != "Linux", reason="guard pages through mprotect")
@given(geo=geometries(), dtype=st.sampled_from([np.float32, np.uint16, np.float64]), at_end=st.booleans(),
       seed=st.integers(0, 2**16))
def test_im2col_reads_nothing_outside_the_image_property(geo, dtype, at_end, seed):
    shape, k, s, p, d = geo
    a = random_array(np.random.default_rng(seed), shape, dtype)
    x = GuardedMemory(a.nbytes).array(a, at_end)
    kw = dict(stride=s, padding=p, dilation=d)
    np.testing.assert_array_equal(fastconv.im2col(x, k, **kw), reference.im2col(x, k, **kw))


@pytest.mark.skipif(platform.system() != "Linux", reason="guard pages through mprotect")
@given(n=st.integers(1, 3), c=st.integers(1, 17), h=st.integers(1, 12), w=st.integers(1, 40),
       kh=st.integers(1, 3), kw=st.integers(2, 8), sh=st.integers(1, 3), sw=st.integers(2, 5),
       pads=st.tuples(*[st.integers(0, 7)] * 4), at_end=st.booleans(), stream=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_window_rows_copied_as_runs_property(n, c, h, w, kh, kw, sh, sw, pads, at_end, stream, threads, seed):
    # 4-byte items at stride 2 with kernel rows of 6 taps or more, or at stride 3 or more: each
    # window row is copied as a run, reading up to 8 items from its first tap (and before the row
    # where the left padding is), never outside the image, and writing nothing past the columns
    # (which end at a guard page); streamed or not, one thread or two
    from fastconv import _im2col

    kw_ = dict(stride=(sh, sw), padding=((pads[0], pads[1]), (pads[2], pads[3])))
    a = random_array(np.random.default_rng(seed), (n, c, h, w), np.float32)
    x = GuardedMemory(a.nbytes).array(a, at_end)
    try:
        expected = reference.im2col(x, (kh, kw), **kw_)
    except ValueError:  # the kernel does not fit this padded input
        return
    with pytest.MonkeyPatch.context() as mp, fastconv.num_threads(threads):
        mp.setattr(_im2col, "STREAM_BYTES", 0 if stream else 2**24)
        out = GuardedMemory(expected.nbytes).array(np.full_like(expected, 7), True)
        np.testing.assert_array_equal(fastconv.im2col(x, (kh, kw), out=out, **kw_), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.complex128, np.uint8])
@pytest.mark.parametrize("layout, k", [("NHWC", 3), ("NCHW", 9)])
@pytest.mark.parametrize("line_offset", [0, 8, 16, 48])  # bytes past a cache line where out starts
def test_streamed_windows_match_the_reference(rng, monkeypatch, dtype, layout, k, line_offset):
    # channels-last images, items of two words and kernels wider than 8 go window by window;
    # streamed, each thread assembles 16 windows in cache and copies them out, the line one
    # block ends in completed by the next block; nothing around out written
    from fastconv import _im2col

    monkeypatch.setattr(_im2col, "STREAM_BYTES", 0)
    x = to_layout(random_array(rng, (2, 3, 11, 37), dtype), layout)
    for s, p in [(1, 1), (2, (0, 3))]:
        expected = reference.im2col(x, k, stride=s, padding=p, layout=layout)
        for threads in (1, 2):
            with fastconv.num_threads(threads):
                out, around = _out_past_a_line(expected, line_offset)
                got = fastconv.im2col(x, k, stride=s, padding=p, layout=layout, out=out)
                np.testing.assert_array_equal(got, expected)
                assert not around().any()


@pytest.mark.parametrize("line_offset", [0, 4, 16])
@pytest.mark.parametrize("channels, d", [(16, 1), (11, 1), (16, 2), (2, 1)])
def test_streamed_channels_last_runs(rng, monkeypatch, line_offset, channels, d):
    # channels-last window rows of 128 bytes or more (3 x 11 or 3 x 16 float32 channels) go
    # straight from the image through the thread's writer; shorter ones and dilated rows in blocks
    from fastconv import _im2col

    monkeypatch.setattr(_im2col, "STREAM_BYTES", 0)
    x = random_array(rng, (3, 9, 13, channels), np.float32)
    for s, p in [(1, 1), (2, (2, 0)), ((1, 3), 0)]:
        expected = reference.im2col(x, 3, stride=s, padding=p, dilation=d, layout="NHWC")
        for threads in (1, 2):
            with fastconv.num_threads(threads):
                out, around = _out_past_a_line(expected, line_offset)
                got = fastconv.im2col(x, 3, stride=s, padding=p, dilation=d, layout="NHWC", out=out)
                np.testing.assert_array_equal(got, expected)
                assert not around().any()


def test_long_channels_last_runs_stream_without_blocks(rng, monkeypatch):
    # window rows of STREAM_RUN_BYTES or more stream straight from the image, so they stream even
    # where 16 rows of cols would outgrow STREAM_BLOCK_BYTES (192 channels of 3x3: 108 KiB), with
    # no scratch; dilated rows (not one run) and short runs through blocks
    from fastconv import _im2col
    from fastconv._kernels import _im2col as kernels

    assert kernels.streams_runs_directly(kernels.STREAM_RUN_BYTES, 1)
    assert not kernels.streams_runs_directly(kernels.STREAM_RUN_BYTES - 1, 1)
    assert not kernels.streams_runs_directly(10 * kernels.STREAM_RUN_BYTES, 2)
    monkeypatch.setattr(_im2col, "STREAM_BYTES", 0)
    calls = []
    im2col_2d = kernels.im2col_2d

    def spy(words, cols, *args):
        calls.append((args[-1], args[-3].shape))  # stream, scratch shape
        return im2col_2d(words, cols, *args)

    monkeypatch.setattr(kernels, "im2col_2d", spy)
    assert 16 * 192 * 9 * 4 > _im2col.STREAM_BLOCK_BYTES
    x = random_array(rng, (2, 6, 7, 192), np.float32)
    for d, expect in [(1, (True, (0, 0))), (2, (False, (0, 0)))]:
        expected = reference.im2col(x, 3, padding=2, dilation=d, layout="NHWC")
        out, around = _out_past_a_line(expected, 16)
        np.testing.assert_array_equal(fastconv.im2col(x, 3, padding=2, dilation=d, layout="NHWC", out=out), expected)
        assert not around().any()
        assert calls[-1] == expect


def _record_stream_flags(monkeypatch):
    """The ``stream`` flag of every ``im2col_planar`` call from now on, in a list."""
    from fastconv._kernels import _im2col as kernels

    streamed = []
    planar = kernels.im2col_planar

    def spy(*args):
        streamed.append(args[-1])
        return planar(*args)

    monkeypatch.setattr(kernels, "im2col_planar", spy)
    return streamed


@pytest.mark.parametrize("planned", [True, False])  # a float32 call is planned; an int16 one is not
def test_new_results_on_reused_buffers_stream(rng, monkeypatch, planned):
    # a new result the buffer cache builds on a released buffer is memory written before, like an
    # out: it streams; one on fresh memory does not; and a block of rows too large for the caches
    # never does
    from fastconv import _im2col
    from fastconv._kernels import _im2col as kernels

    streamed = _record_stream_flags(monkeypatch)
    monkeypatch.setattr(_im2col, "STREAM_BYTES", 0)
    previous = fastconv.set_buffer_cache_limit(0)  # start from a clean cache
    fastconv.set_buffer_cache_limit(64 << 20)
    try:
        x = random_array(rng, (8, 8, 20, 20), np.float32 if planned else np.int16)
        expected = reference.im2col(x, 3, padding=1)  # 3200 x 72 columns: from the cache
        first = fastconv.im2col(x, 3, padding=1)
        np.testing.assert_array_equal(first, expected)
        first[...] = 99  # the next result must overwrite every item of this memory
        del first
        np.testing.assert_array_equal(fastconv.im2col(x, 3, padding=1), expected)
        assert streamed == [False, True]
        monkeypatch.setattr(_im2col, "STREAM_BLOCK_BYTES", kernels.BLOCK * 72 * x.itemsize - 1)
        out = np.full_like(expected, 7)
        np.testing.assert_array_equal(fastconv.im2col(x, 3, padding=1, out=out), expected)
        assert streamed == [False, True, False]
    finally:
        fastconv.set_buffer_cache_limit(previous)


def test_rows_of_whole_lines_stream_without_blocks(rng, monkeypatch):
    # 4-byte items at stride 1 or 2 in rows of whole cache lines are written straight to memory,
    # so no block of rows bounds them; the others assemble blocks up to STREAM_BLOCK_BYTES
    from fastconv import _im2col
    from fastconv._kernels import _im2col as kernels

    x86_64 = platform.machine().lower() in ("x86_64", "amd64")  # (SSE2 transposes; elsewhere blocks)
    assert kernels.streams_rows_directly(4, 144, 1) is x86_64 and kernels.streams_rows_directly(4, 64, 2) is x86_64
    assert not kernels.streams_rows_directly(4, 144, 3)  # stride 3: blocks
    assert not kernels.streams_rows_directly(4, 72, 1)  # rows of 4.5 lines: blocks
    assert not kernels.streams_rows_directly(8, 144, 1)  # 8-byte items: blocks
    streamed = _record_stream_flags(monkeypatch)
    monkeypatch.setattr(_im2col, "STREAM_BYTES", 0)
    monkeypatch.setattr(_im2col, "STREAM_BLOCK_BYTES", 0)  # no block fits
    for c, dtype, expect in [(16, np.float32, x86_64), (8, np.float32, False), (16, np.float64, False)]:
        x = random_array(rng, (2, c, 9, 21), dtype)
        expected = reference.im2col(x, 3, padding=1)
        out = np.full_like(expected, 7)
        np.testing.assert_array_equal(fastconv.im2col(x, 3, padding=1, out=out), expected)
        assert streamed[-1] is expect


def test_planar_kernel_checks_its_arguments():
    # the raw kernel trusts its caller for the geometry, but refuses columns, a thread count or
    # a kernel row it cannot hold (its scratch is its own)
    from fastconv._kernels import _im2col

    x = np.arange(32, dtype=np.uint32).reshape(1, 2, 4, 4)
    cols = np.zeros((4, 18), np.uint32)  # OH = OW = 2 windows of 3x3, 2 channels
    expected = fastconv.im2col(x, 3)
    for stream in (False, True):  # streaming assembles blocks in the scratch too
        cols[...] = 0
        _im2col.im2col_planar(x, cols, 3, 3, 1, 1, 1, 1, 0, 0, 2, 2, 1, stream)
        np.testing.assert_array_equal(cols, expected)
    with pytest.raises(ValueError, match="cols"):
        _im2col.im2col_planar(x, cols[:3], 3, 3, 1, 1, 1, 1, 0, 0, 2, 2, 1)
    with pytest.raises(ValueError, match="geometry"):
        _im2col.im2col_planar(x, cols, 3, 3, 1, 1, 1, 1, 0, 0, 2, 2, 0)
    with pytest.raises(ValueError, match="geometry"):
        _im2col.im2col_planar(x, np.zeros((4, 2 * 3 * 9), np.uint32), 3, 9, 1, 1, 1, 1, 0, 0, 2, 2, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.complex128])
def test_im2col_fills_an_unaligned_out(rng, dtype):
    # the planar kernel writes aligned columns only: an unaligned out (valid: C-contiguous,
    # writeable) receives a copy of the result
    x = random_array(rng, (2, 3, 7, 9), dtype)
    expected = fastconv.im2col(x, 3, padding=1)
    out = unaligned_zeros(expected.shape, expected.dtype)
    assert fastconv.im2col(x, 3, padding=1, out=out) is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.bool_, np.float32])
def test_an_empty_image_gives_columns_of_padding(dtype):
    # NumPy gives an empty array zero strides: the kernel must not take its rows for strided ones
    # (found by hypothesis under the sanitizer build)
    x = np.zeros((1, 1, 0, 2), dtype)
    kwargs = dict(stride=1000, padding=((0, 1), (0, 0)), dilation=1000)
    got = fastconv.im2col(x, 1, **kwargs)
    np.testing.assert_array_equal(got, reference.im2col(x, 1, **kwargs))
    assert got.shape == (1, 1)


def test_planar_kernel_checks_its_arrays():
    # it reads the arrays' memory itself, so it refuses what it cannot read or write as words
    from fastconv._kernels import _im2col

    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    geometry = (3, 3, 1, 1, 1, 1, 0, 0, 2, 2, 1)
    cols = np.zeros((4, 18), np.float32)
    _im2col.im2col_planar(x, cols, *geometry)  # any numeric dtype of one word: copied as its bits
    np.testing.assert_array_equal(cols, reference.im2col(x, 3))
    words = np.zeros((4, 18), np.uint32)
    _im2col.im2col_planar(x, words, *geometry)  # columns of another dtype of the same size
    np.testing.assert_array_equal(words, cols.view(np.uint32))
    flipped = x[:, ::-1, ::-1]  # negative strides, rows still contiguous
    _im2col.im2col_planar(flipped, cols, *geometry)
    np.testing.assert_array_equal(cols, reference.im2col(flipped, 3))
    with pytest.raises(TypeError, match="size"):
        _im2col.im2col_planar(x, np.zeros((4, 18), np.float64), *geometry)
    with pytest.raises(TypeError, match="numbers"):
        _im2col.im2col_planar(x.astype(object), np.zeros((4, 18), object), *geometry)
    with pytest.raises(TypeError, match="size"):
        _im2col.im2col_planar(x.astype(np.clongdouble), np.zeros((4, 18), np.clongdouble), *geometry)
    with pytest.raises(ValueError, match="4-D"):
        _im2col.im2col_planar(x[0], cols, *geometry)
    with pytest.raises(ValueError, match="contiguous rows"):
        _im2col.im2col_planar(np.arange(64, dtype=np.float32).reshape(1, 2, 4, 8)[..., ::2], cols, *geometry)
    with pytest.raises(ValueError, match="C-contiguous"):
        _im2col.im2col_planar(x, np.zeros((18, 4), np.float32).T, *geometry)
    read_only = np.zeros((4, 18), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _im2col.im2col_planar(x, read_only, *geometry)
    unaligned = np.zeros(4 * 18 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(4, 18)
    with pytest.raises(ValueError, match="aligned"):
        _im2col.im2col_planar(x, unaligned, *geometry)
    with pytest.raises(TypeError):
        _im2col.im2col_planar([[[[1.0]]]], cols, *geometry)  # arrays only


# ---- col2im into the unpadded image (col2im_planar): taps in the padding are dropped

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("k, s, p", [(3, 1, 1), (3, 2, 1), ((2, 4), (1, 3), ((0, 2), (3, 1))), (1, 1, 2), (3, 1, 4)])
def test_col2im_drops_the_padding_in_place(rng, dtype, n, k, s, p):
    shape = (n, 3, 7, 9)
    n_rows, n_cols = fastconv.im2col(np.zeros(shape, dtype), k, stride=s, padding=p).shape
    cols = random_array(rng, (n_rows, n_cols), dtype)
    expected = reference.col2im(cols, shape, k, stride=s, padding=p)
    results = []
    for threads in (1, 2):  # one task per image, or per channel plane
        with fastconv.num_threads(threads):
            results.append(fastconv.col2im(cols, shape, k, stride=s, padding=p))
            out = np.full(shape, 7, dtype)
            assert fastconv.col2im(cols, shape, k, stride=s, padding=p, out=out) is out
            np.testing.assert_array_equal(out, results[-1])
    np.testing.assert_array_equal(results[0], results[1])  # the same sums in the same order
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.longdouble])
@pytest.mark.parametrize("shape, k, s, p, d", [
    ((2, 3, 11, 8), (2, 3), 3, 0, 1),               # rows 2, 5 and 8 reached by no window
    ((1, 2, 9, 9), 3, (4, 1), ((5, 0), (1, 1)), 1),  # the first output row reaches only the padding
    ((3, 2, 12, 7), 3, (2, 1), 1, (3, 1)),            # rows dilated 3 apart, reached out of order
    ((2, 1, 6, 5), 1, 1, 0, 1),                       # every row reached once
    # rows of 4 KiB or more (ZERO_BYTES) are zeroed one at a time as output rows reach them;
    # rows 2 and 5 in the gaps, and row 8 after the last output row, zeroed all the same
    ((2, 2, 9, 520), (2, 3), (3, 1), 0, 1),
    ((2, 2, 12, 300), 3, (2, 3), ((0, 3), 1), 1),    # the last two rows only in the padding's reach
])
def test_col2im_zeroes_an_out_of_garbage_as_it_goes(rng, dtype, shape, k, s, p, d):
    # the tap-by-tap kernel zeroes an out (and a new image) row by row just before its first
    # adds: every item must end up written, the rows no window reaches included
    from fastconv._im2col import FoldPlan
    from fastconv._geometry import conv_geometry

    geometry = conv_geometry(shape[2:], k, s, p, d)
    assert FoldPlan(geometry, shape[0], shape[1], False, dtype).planar
    n_rows, n_cols = fastconv.im2col(np.zeros(shape, dtype), k, stride=s, padding=p, dilation=d).shape
    cols = random_array(rng, (n_rows, n_cols), dtype)
    expected = reference.col2im(cols, shape, k, stride=s, padding=p, dilation=d)
    garbage = np.nan if np.dtype(dtype).kind == "f" else 99
    rtol, atol = tolerance(dtype)
    for threads in (1, 2):  # one task per image, or per channel plane
        with fastconv.num_threads(threads):
            out = np.full(shape, garbage, dtype)
            assert fastconv.col2im(cols, shape, k, stride=s, padding=p, dilation=d, out=out) is out
            np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)
            new = fastconv.col2im(cols, shape, k, stride=s, padding=p, dilation=d)
            np.testing.assert_array_equal(new, out)


def test_col2im_planar_kernel_zeroes_every_row_it_owns(rng):
    from fastconv._kernels import _col2im

    # 3x3 windows, stride 4 down the rows: output rows 0 and 1 reach image rows 0-2 and 4-6;
    # rows 3 and 7-9 are reached by none and are zeroed all the same
    cols = rng.standard_normal((2 * 2, 2 * 9)).astype(np.float32)
    expected = np.zeros((1, 2, 10, 5), np.float32)
    _col2im.col2im_planar(cols, expected, 3, 3, 4, 2, 1, 1, 0, 0, 2, 2, True, 1)
    for by_image in (True, False):
        x = np.full((1, 2, 10, 5), np.nan, np.float32)
        _col2im.col2im_planar(cols, x, 3, 3, 4, 2, 1, 1, 0, 0, 2, 2, by_image, 2, True)
        np.testing.assert_array_equal(x, expected)
    assert not expected[:, :, 3].any() and not expected[:, :, 7:].any() and expected[:, :, :3].all()

def test_col2im_planar_kernel_checks_its_arguments():
    from fastconv._kernels import _col2im

    x = np.zeros((1, 2, 4, 4), np.float32)
    cols = np.zeros((4, 18), np.float32)  # OH = OW = 2 windows of 3x3, 2 channels
    _col2im.col2im_planar(cols, x, 3, 3, 1, 1, 1, 1, 0, 0, 2, 2, True, 1)
    with pytest.raises(ValueError, match="cols"):
        _col2im.col2im_planar(cols[:3], x, 3, 3, 1, 1, 1, 1, 0, 0, 2, 2, True, 1)
    with pytest.raises(ValueError, match="geometry"):
        _col2im.col2im_planar(cols, x, 3, 3, 1, 0, 1, 1, 0, 0, 2, 2, True, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("k, s, p", [(3, 1, 1), (7, 2, 3), (5, 1, 0)])  # tap by tap, pixel by pixel
def test_col2im_split_by_image_or_plane_gives_the_same_sums(rng, dtype, layout, k, s, p):
    # one thread takes whole images, more threads split a small batch by plane (or by channel
    # slice in NHWC): the same sums in the same order either way
    for n in (1, 3):
        shape = (n, 4, 15, 17) if layout == "NCHW" else (n, 15, 17, 4)
        cols = fastconv.im2col(np.zeros(shape, dtype), k, stride=s, padding=p, layout=layout)
        cols = random_array(rng, cols.shape, dtype)
        results = []
        for threads in (1, 2, 3):
            with fastconv.num_threads(threads):
                results.append(fastconv.col2im(cols, shape, k, stride=s, padding=p, layout=layout))
        for other in results[1:]:
            np.testing.assert_array_equal(other, results[0])
        rtol, atol = tolerance(dtype)
        np.testing.assert_allclose(results[0], reference.col2im(cols, shape, k, stride=s, padding=p, layout=layout),
                                   rtol=rtol, atol=atol)


# ---- col2im of stride-1 dilated kernels in blocks of pixels (col2im_blocks)

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8, np.longdouble])
@pytest.mark.parametrize("n, c, hw, k, p, d", [
    (2, 3, (13, 17), 3, 2, 2),                 # the canonical dilated layer, small
    (1, 5, (9, 23), (2, 3), ((1, 0), (3, 5)), (3, 2)),  # uneven padding: blocks start and end mid-row
    (3, 2, (6, 6), 3, 0, 2),                   # two output columns: no whole block
    (2, 4, (11, 30), (3, 5), (4, 6), (2, 3)),  # taps of a row three columns apart
    (1, 1, (7, 40), (1, 3), 0, 3),             # one kernel row of three taps
])
def test_col2im_of_dilated_kernels_in_blocks(rng, dtype, n, c, hw, k, p, d):
    from fastconv._im2col import FoldPlan, runs_in_blocks

    shape = (n, c) + hw
    cols = fastconv.im2col(np.zeros(shape, dtype), k, padding=p, dilation=d)
    cols = random_array(rng, cols.shape, dtype)
    geometry = fastconv._geometry.conv_geometry(hw, k, 1, p, d)
    assert runs_in_blocks(geometry, False, 1) and FoldPlan(geometry, n, c, False, dtype).blocks
    expected = reference.col2im(cols, shape, k, padding=p, dilation=d)
    results = []
    for threads in (1, 2, 3):  # one task per image, or slices of the channels
        with fastconv.num_threads(threads):
            results.append(fastconv.col2im(cols, shape, k, padding=p, dilation=d))
            out = np.full(shape, 7, dtype)
            assert fastconv.col2im(cols, shape, k, padding=p, dilation=d, out=out) is out
            np.testing.assert_array_equal(out, results[-1])
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])  # the same sums in the same order
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint64])
def test_col2im_blocks_order_depends_on_the_shape_only(rng, dtype):
    # every split into channel slices and every chunk of kernel rows: the same bits, and the
    # image rows outside the windows untouched; exact for integers
    from fastconv._kernels import _col2im
    from fastconv._plans import specialized

    n, c, h, w, k, p, d = 2, 6, 12, 21, 3, 2, 2
    cols = random_array(rng, (n * h * w, c * k * k), dtype)
    kernel = specialized(_col2im.col2im_blocks, np.dtype(dtype))
    expected = reference.col2im(cols, (n, c, h, w), k, padding=p, dilation=d)
    first = None
    # (uneven slices: 4 of 6 channels, 1 or 2 each; chunks of 1 to 100 kernel rows)
    for parts, chunk, threads in [(1, 16, 1), (1, 1, 1), (2, 2, 2), (6, 1, 3), (3, 100, 2), (4, 5, 1), (4, 1, 3)]:
        x = np.zeros((n, c, h, w), dtype)
        kernel(cols, x, k, k, 1, 1, d, d, p, p, h, w, parts, chunk, threads)
        if first is None:
            first = x
            rtol, atol = tolerance(dtype)
            np.testing.assert_allclose(x, expected, rtol=rtol, atol=atol)
        np.testing.assert_array_equal(x, first)


def test_col2im_blocks_kernel_checks_its_arguments():
    from fastconv._kernels import _col2im

    x = np.zeros((1, 2, 6, 6), np.float32)
    cols = np.zeros((4, 18), np.float32)  # OH = OW = 2 windows of 3x3 dilated 2, 2 channels
    _col2im.col2im_blocks(cols, x, 3, 3, 1, 1, 2, 2, 0, 0, 2, 2, 1, 16, 1)
    with pytest.raises(ValueError, match="cols"):
        _col2im.col2im_blocks(cols[:3], x, 3, 3, 1, 1, 2, 2, 0, 0, 2, 2, 1, 16, 1)
    with pytest.raises(ValueError, match="geometry"):
        _col2im.col2im_blocks(cols, x, 3, 3, 1, 1, 0, 2, 0, 0, 2, 2, 1, 16, 1)
    for parts, chunk in [(0, 16), (3, 16), (1, 0)]:
        with pytest.raises(ValueError, match="parts or chunk"):
            _col2im.col2im_blocks(cols, x, 3, 3, 1, 1, 2, 2, 0, 0, 2, 2, parts, chunk, 1)
    # an output extent larger than the image's (8x8 windows of 3x3 dilated 2 on 5x6 planes): the
    # taps past the image are dropped (tools/sanitize.sh would see a write outside it)
    inside = np.zeros((1, 2, 5, 6), np.float32)
    many = np.arange(64 * 18, dtype=np.float32).reshape(64, 18)
    _col2im.col2im_blocks(many, inside, 3, 3, 1, 1, 2, 2, 1, 1, 8, 8, 1, 16, 1)
    expected = np.zeros((1, 2, 5, 6), np.float32)
    for oh in range(8):
        for ow in range(8):
            for c in range(2):
                for kh in range(3):
                    for kw in range(3):
                        ih, iw = oh + 2 * kh - 1, ow + 2 * kw - 1
                        if 0 <= ih < 5 and 0 <= iw < 6:
                            expected[0, c, ih, iw] += many[oh * 8 + ow, (c * 3 + kh) * 3 + kw]
    np.testing.assert_array_equal(inside, expected)  # exact: small integers


def test_col2im_block_rule():
    from fastconv._geometry import conv_geometry
    from fastconv._im2col import block_parts, runs_in_blocks

    assert runs_in_blocks(conv_geometry((64, 64), 3, 1, 2, 2), False, 1)
    assert runs_in_blocks(conv_geometry((64, 64), 3, 1, 2, (1, 2)), False, 1)  # along the rows
    assert not runs_in_blocks(conv_geometry((64, 64), 3, 1, 1, 1), False, 1)  # undilated: tap by tap
    assert not runs_in_blocks(conv_geometry((64, 64), 3, 2, 2, 2), False, 1)  # strided
    assert not runs_in_blocks(conv_geometry((64, 64), 3, 1, 2, 2), True, 1)   # NHWC
    assert not runs_in_blocks(conv_geometry((64, 64), 3, 1, 2, 2), False, 2)  # items of two words
    assert block_parts(16, 32, 2) == 1 and block_parts(1, 32, 1) == 1
    assert block_parts(1, 32, 2) == 4 and block_parts(3, 32, 2) == 2 and block_parts(1, 2, 4) == 2


@pytest.mark.parametrize("func", ["im2col", "col2im"])
def test_a_padded_image_too_large_to_exist_is_refused(func):
    # im2col and col2im read or drop zero padding in place where they can, but refuse, as
    # before, a padding whose padded image could not exist: both implementations alike
    # (found by the property tests: 'same' padding with a dilation of 2**70)
    for shape, k, p, d in [((1, 1, 1, 1), (2, 1), "same", (2**70, 1000)), ((0, 0, 1, 1), 1, 2**40, 1)]:
        for impl in (fastconv, reference):
            with pytest.raises(ValueError, match="overflows"):
                if func == "im2col":
                    impl.im2col(np.zeros(shape, bool), k, padding=p, dilation=d)
                else:
                    impl.col2im(np.zeros((0, shape[1] * np.prod(k)), bool), shape, k, padding=p, dilation=d)
