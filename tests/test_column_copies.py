"""Column copies: a stride-1 convolution's kernel columns as channels, a band's rows as one row.

The banded kernel lays out one copy of each input channel per kernel column
(copy ``j`` shifted ``j * dilation`` columns) and runs the tiles over the
band's output rows as one row (:func:`fastconv._conv.column_copies`). The
sums run in another order than on the input's rows, so the results agree
with the reference to rounding; they are the same bits for every thread count.
"""

from functools import partial

import numpy as np
import pytest
from helpers import tolerance
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _conv, reference
from fastconv._geometry import conv_geometry
from fastconv._kernels import _conv_direct
from fastconv._plans import clear_plans


@pytest.fixture
def copies_everywhere(monkeypatch, request):
    """Column copies wherever a plan may take them (stride 1, not depthwise or pointwise); plans made afresh."""
    monkeypatch.setattr(_conv, "column_copies", lambda *args: True)
    clear_plans()
    _conv.tiled_conv.cache_clear()
    request.addfinalizer(clear_plans)
    request.addfinalizer(_conv.tiled_conv.cache_clear)


def run_plan(x, w, b, *, padding=0, dilation=1, groups=1, padding_mode="zeros", copies=True, tiles="auto"):
    """``x`` convolved by a :class:`~fastconv._conv.TiledConv` (stride 1) into a NaN-filled output."""
    kh, kw = w.shape[2:]
    geometry = conv_geometry(x.shape[2:], (kh, kw), 1, padding, dilation)
    plan = _conv.TiledConv(x.shape, w.shape, geometry, groups, padding_mode, x.dtype,
                           _conv_direct.current_level(), tiles, copies)
    out = np.full((x.shape[0], w.shape[0]) + geometry.out_shape, np.nan, x.dtype)
    plan.run(x, w, b, out)
    return plan, out


@st.composite
def stride_one_convolutions(draw):
    """``(x, w, b, padding, dilation, groups)`` of a stride-1 convolution, float32 or float64."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c = groups * draw(st.integers(1, 3))
    k = groups * draw(st.integers(1, 12))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))  # top, bottom, left, right
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 40))
    assume(h + pad[0] + pad[1] > (kh - 1) * dh and w + pad[2] + pad[3] > (kw - 1) * dw)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n = draw(st.integers(1, 3))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c // groups, kh, kw)).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype)
    return x, weight, bias, ((pad[0], pad[1]), (pad[2], pad[3])), (dh, dw), groups


@given(case=stride_one_convolutions(), tiles=st.sampled_from(["auto", "columns", "channels"]),
       threads=st.sampled_from([1, 2]))
def test_column_copies_match_the_reference(case, tiles, threads):
    x, w, b, padding, dilation, groups = case
    with fastconv.num_threads(threads):
        plan, out = run_plan(x, w, b, padding=padding, dilation=dilation, groups=groups, tiles=tiles)
    assert plan.copies == (0 if plan.depthwise or plan.merge > 1 else w.shape[3])
    rtol, atol = tolerance(x.dtype)
    expected = reference.conv2d(x, w, b, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(out, expected, rtol=rtol * 10, atol=atol * 10 * x.shape[1] * w[0].size)


# bands of a few rows (a small budget) and several images a task (band_images): the same bits
# as one band of the whole image, one image a task, on one thread, at every level
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ow", [1, 3, 7, 10, 14, 24, 33])
def test_column_copies_same_bits_in_bands_and_threads(rng, level, every_call_parallel, monkeypatch, dtype, ow):
    x = rng.standard_normal((6, 4, 11, ow + 4)).astype(dtype)
    w = rng.standard_normal((13, 4, 3, 5)).astype(dtype)
    b = rng.standard_normal(13).astype(dtype)
    with fastconv.num_threads(1):
        plan, expected = run_plan(x, w, b, padding=(1, 0))
    assert plan.band == 11 and plan.copies == 5
    results = []
    for budget, images in [(None, 2), (4 * 4 * 5 * (ow + 4) * x.itemsize, 1)]:  # 4 rows of 4 channels' 5 copies
        if budget is not None:
            monkeypatch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=budget))
        for threads in (1, 2, 3):
            with fastconv.num_threads(threads):
                geometry = conv_geometry(x.shape[2:], w.shape[2:], 1, (1, 0))
                plan = _conv.TiledConv(x.shape, w.shape, geometry, 1, "zeros", x.dtype, _conv_direct.current_level(),
                                       "auto", True)
                plan.band_images = images
                out = np.full(expected.shape, np.nan, dtype)
                plan.run(x, w, b, out)
                results.append((plan.band, out))
    bands = sorted({band for band, _ in results})  # one band of the image; bands of a few rows
    assert len(bands) == 2 and bands[0] < bands[1] == 11
    for _, out in results:
        np.testing.assert_array_equal(out, expected)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(expected, reference.conv2d(x, w, b, padding=(1, 0)), rtol=rtol, atol=atol * 10)


# through the public functions, copies wherever they may run: padding modes (a padded input),
# channels-last (an input whose columns are not adjacent), the input gradient (the adjoint's
# weights gathered from the forward's, grouped and dilated; strided ones in phases of stride 1)
@given(case=stride_one_convolutions(), mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
       layout=st.sampled_from(["NCHW", "NHWC"]), stride=st.sampled_from([1, 2]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # (its patch holds for every input)
def test_column_copies_through_the_public_functions(copies_everywhere, case, mode, layout, stride):
    x, w, b, padding, dilation, groups = case
    (top, bottom), (left, right) = padding
    assume(mode == "zeros" or (top <= x.shape[2] - 1 and bottom <= x.shape[2] - 1 and left <= x.shape[3] - 1
                               and right <= x.shape[3] - 1))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    rtol, atol = tolerance(x.dtype)
    atol *= 10 * x.shape[1] * w[0].size
    expected = reference.conv2d(x, w, b, padding_mode=mode, **kw)
    to_layout = (lambda a: a.transpose(0, 2, 3, 1)) if layout == "NHWC" else (lambda a: a)
    w_layout = w.transpose(2, 3, 1, 0) if layout == "NHWC" else w
    got = fastconv.conv2d(to_layout(x), w_layout, b, padding_mode=mode, layout=layout, **kw)
    np.testing.assert_allclose(got, to_layout(expected), rtol=rtol * 10, atol=atol)
    grad = np.random.default_rng(7).standard_normal(expected.shape).astype(x.dtype)
    got = fastconv.conv2d_grad_input(to_layout(grad), w_layout, to_layout(x).shape, layout=layout, **kw)
    np.testing.assert_allclose(got, to_layout(reference.conv2d_grad_input(grad, w, x.shape, **kw)),
                               rtol=rtol * 10, atol=atol * w.shape[0])


# an input whose channels lie side by side (an NHWC array's view): the band's copies come from its
# pixels (_pack_column_copies_pixels), staged on the stack or, for bands of more items, transposed
# into the planes copy by copy; the bits of the NCHW input's run
@given(case=stride_one_convolutions(), threads=st.sampled_from([1, 2, 3]), wide=st.integers(1, 140),
       spread=st.sampled_from([0, 3]), reverse=st.booleans(), band=st.booleans())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # (monkeypatch: each example sets it)
def test_column_copies_read_pixels_where_they_lie(monkeypatch, every_call_parallel, case, threads, wide, spread, reverse,
                                                  band):
    x, w, b, padding, dilation, groups = case
    if wide > 100:  # a band of more items than the stack holds: rows wider than the strategy's
        x = np.random.default_rng(wide).standard_normal(x.shape[:3] + (wide,)).astype(x.dtype)
    with fastconv.num_threads(threads):
        plan, expected = run_plan(x, w, b, padding=padding, dilation=dilation, groups=groups)
        assume(plan.copies)
        if band:  # bands of a row or two (rows outside the image at both ends)
            with monkeypatch.context() as patch:
                patch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=1))
                plan, expected = run_plan(x, w, b, padding=padding, dilation=dilation, groups=groups)
        pixels = np.zeros(x.shape[:1] + x.shape[2:] + (x.shape[1] + spread,), x.dtype)  # (pixels further apart)
        pixels[..., : x.shape[1]] = x.transpose(0, 2, 3, 1)
        view = pixels[..., : x.shape[1]].transpose(0, 3, 1, 2)
        if reverse:  # columns in reverse order in memory
            pixels = np.ascontiguousarray(pixels[:, :, ::-1])
            view = pixels[:, :, ::-1, : x.shape[1]].transpose(0, 3, 1, 2)
        assert view.strides[1] == x.itemsize and np.array_equal(view, x)
        out = np.full(expected.shape, np.nan, x.dtype)
        plan.run(view, w, b, out)
    np.testing.assert_array_equal(out, expected)


def test_column_copies_stage_both_ways(every_call_parallel):
    """The NHWC view's band of input items: within the stack's stage, and past it (the copy-by-copy transposes)."""
    for width, staged in ((14, True), (300, False)):
        x = np.random.default_rng(width).standard_normal((2, 6, 14, width)).astype(np.float32)
        w = np.random.default_rng(1).standard_normal((16, 6, 5, 5)).astype(np.float32)
        plan, expected = run_plan(x, w, None)
        rows = plan.phases.hq  # (the band's rows with the kernel's below it)
        assert plan.copies == 5 and (6 * rows * width <= _conv_direct.COPY_PIXELS_BAND_ITEMS) == staged
        view = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        out = np.full(expected.shape, np.nan, np.float32)
        plan.run(view, w, None, out)
        np.testing.assert_array_equal(out, expected)


def test_nhwc_plans_with_copies_read_pixels_on_more_threads(rng, every_call_parallel):
    """``reads_pixels``: the NHWC view where the call runs on more than one thread; the same bits either way."""
    level = _conv_direct.current_level()
    geometry = conv_geometry((14, 14), (5, 5))
    plan = _conv.TiledConv((4, 6, 14, 14), (16, 6, 5, 5), geometry, 1, "zeros", np.float32, level, "auto", True,
                           channels_last=True)
    assert plan.copies == 5 and plan.reads_pixels(2) and not plan.reads_pixels(1)
    assert not _conv.TiledConv((4, 6, 14, 14), (16, 6, 5, 5), geometry, 1, "zeros", np.float32, level,
                               "columns").reads_pixels(2)
    x = rng.standard_normal((4, 14, 14, 6)).astype(np.float32)
    w = rng.standard_normal((5, 5, 6, 16)).astype(np.float32)
    results = []
    for threads in (1, 2):
        out = np.full((4, 10, 10, 16), np.nan, np.float32)
        with fastconv.num_threads(threads):
            _conv.nhwc_through_nchw(x, w, None, out, geometry, 1, tiled=plan)
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])
    expected = fastconv.conv2d(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    np.testing.assert_allclose(results[1], expected.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-4)


def test_column_copies_rule(monkeypatch):
    level = _conv_direct.current_level()
    width = _conv_direct.tile_width("f", level)
    f32 = np.dtype(np.float32)
    columns = _conv.choose_tiles(16, 9, width + width // 2, f32, level)[0] < 0
    assert _conv.column_copies(16, 1, (3, 3), width + width // 2, f32, level) == (width >= 16 and columns)
    # the rest at every level, where the column tiles run
    monkeypatch.setattr(_conv, "COLUMN_COPIES_MIN_LANES", 1)
    monkeypatch.setattr(_conv, "choose_tiles", lambda *args: (-1, 8))
    assert _conv.column_copies(16, 1, (3, 3), width + width // 2, f32, level)  # 3/4 of the lanes busy
    assert _conv.column_copies(16, 1, (3, 3), width // 2 + 1, f32, level)
    assert not _conv.column_copies(16, 1, (3, 3), 2 * width, f32, level)  # whole vectors
    assert not _conv.column_copies(2, 1, (3, 3), width + 1, f32, level)  # the row tiles' few filters
    assert not _conv.column_copies(11, 1, (3, 3), width + 1, f32, level)  # (a last block of 3)
    # copies per multiply-add: width / (filters * kernel rows)
    per_fma = {kg: width / (kg * 3) for kg in range(1, 33) if kg % 8 == 0 or kg % 8 > _conv_direct.ROW_TILE_CHANNELS}
    assert any(v <= _conv.COLUMN_COPIES_PER_FMA for v in per_fma.values())
    for kg, copied in per_fma.items():
        assert _conv.column_copies(kg, 1, (3, 3), width + 1, f32, level) == (copied <= _conv.COLUMN_COPIES_PER_FMA)
    monkeypatch.setattr(_conv, "choose_tiles", lambda *args: (level, 32))  # the output-channel tiles
    assert not _conv.column_copies(16, 1, (3, 3), width + 1, f32, level)
    monkeypatch.undo()
    # LeNet-5's C3 layer (rows of 10 columns) takes them with AVX-512's float32 vectors
    geometry = conv_geometry((14, 14), (5, 5))
    plan = _conv.TiledConv((4, 6, 14, 14), (16, 6, 5, 5), geometry, 1, "zeros", f32, level)
    assert plan.copies == (5 if width == 16 else 0)
    # hand-chosen tiles run on the input's rows; strided, pointwise and depthwise plans never copy
    assert _conv.TiledConv((4, 6, 14, 14), (16, 6, 5, 5), geometry, 1, "zeros", f32, level, "columns").copies == 0
    strided = conv_geometry((14, 14), (5, 5), 2)
    assert _conv.TiledConv((4, 6, 14, 14), (16, 6, 5, 5), strided, 1, "zeros", f32, level, "auto", True).copies == 0
    depthwise = _conv.TiledConv((4, 6, 14, 14), (6, 1, 3, 3), conv_geometry((14, 14), (3, 3)), 6, "zeros", f32,
                                level, "auto", True)
    assert depthwise.copies == 0


def test_column_copies_kernel_checks_its_arguments(rng):
    x = rng.standard_normal((2, 3, 6, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3 * 3, 1, 2)).astype(np.float32)  # 3 channels x 3 copies, 2 taps
    out = np.zeros((2, 4, 5, 6), np.float32)
    taps = np.array([0, 6], np.intp)
    args = (x, w, None, out, 1, 9, 0, 0, 1, 1, 5, 6, 6, taps, 1, -1, None, 1)
    _conv_direct.conv2d_packed(*args, 3, 1)
    expected = reference.conv2d(x, w.reshape(4, 3, 3, 2).transpose(0, 1, 3, 2))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="stride 1"):
        _conv_direct.conv2d_packed(x, w, None, out, 1, 9, 0, 0, 2, 1, 5, 6, 6, taps, 1, -1, None, 1, 3, 1)
    with pytest.raises(ValueError, match="rows of OW"):
        _conv_direct.conv2d_packed(x, w, None, out, 1, 9, 0, 0, 1, 1, 5, 6, 7, taps, 1, -1, None, 1, 3, 1)
    with pytest.raises(ValueError, match="whole number of rows"):
        _conv_direct.conv2d_packed(*args[:13], np.array([0, 5], np.intp), *args[14:], 3, 1)
    with pytest.raises(ValueError, match="groups \\* cg channels"):
        _conv_direct.conv2d_packed(*args, 2, 1)
    with pytest.raises(ValueError, match="column copies"):
        _conv_direct.conv2d_packed(*args, 3, 0)
    with pytest.raises(ValueError, match="phase planes"):  # a tap below the band's planes
        _conv_direct.conv2d_packed(*args[:13], np.array([0, 6 * 6], np.intp), *args[14:], 3, 1)
