"""Layout moves (fastconv._layouts): tiled transposes against NumPy's, bit for bit."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from fastconv import _layouts
from fastconv._kernels import _transpose

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint32, np.float16]


def planes(rng, shape, dtype):
    """Random values of ``dtype`` (every bit pattern of a float: nan payloads must survive a move)."""
    bits = rng.integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
    return bits.view(dtype).reshape(shape)


@given(b=st.integers(1, 4), r=st.integers(1, 40), s=st.integers(1, 40), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1))
def test_transpose_planes_matches_numpy(b, r, s, dtype, seed):
    """Every plane shape around the tiles (16) and quads (4), 4- and 8-byte items and the 2-byte fallback."""
    src = planes(np.random.default_rng(seed), (b, r, s), dtype)
    dst = np.empty((b, s, r), dtype)
    assert _layouts.transpose_planes(src, dst) is dst
    assert dst.tobytes() == np.ascontiguousarray(src.transpose(0, 2, 1)).tobytes()


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transpose_planes_strided_planes_any_thread_count(rng, threads, dtype):
    """Planes and rows any distance apart (views of larger arrays), the tasks split over threads."""
    big = planes(rng, (5, 37, 3, 70), dtype)
    src = big[:, :, 1, 3:53]  # (5, 37, 50): rows 3*70 apart, planes 37*3*70
    out = np.full((5, 60, 2, 40), 7, dtype)
    dst = out[:, 5:55, 1, 1:38]  # (5, 50, 37), each row's last axis contiguous
    _transpose.transpose_planes(src, dst, threads)
    assert dst.tobytes() == np.ascontiguousarray(src.transpose(0, 2, 1)).tobytes()
    untouched = np.ones(out.shape, bool)
    untouched[:, 5:55, 1, 1:38] = False
    assert (out[untouched] == 7).all()  # nothing written outside dst


# Planes of more rows than columns (NHWC to NCHW) go in tasks of ROW_BLOCK (256) rows: several
# blocks and a partial last one; destination rows a multiple of 4 KiB apart (1024 or 2048 4-byte
# items: 32 x 32 and 32 x 64 images) take the tile's other order. Bits, any thread count.
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 1024, 20), (1, 2048, 6), (3, 600, 37), (2, 257, 3), (2, 37, 1024),
                                   (1, 300, 1024)])
def test_transpose_planes_row_blocks_and_aliased_rows(rng, threads, dtype, shape):
    src = planes(rng, shape, dtype)
    dst = np.empty((shape[0], shape[2], shape[1]), dtype)
    _transpose.transpose_planes(src, dst, threads)
    assert dst.tobytes() == np.ascontiguousarray(src.transpose(0, 2, 1)).tobytes()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows, cols", [(37, 22), (6, 7), (16, 16), (41, 300)])
def test_transpose_planes_into_rows_4kib_apart(rng, threads, rows, cols):
    """A destination whose rows are 1024 4-byte items apart (a view) takes the tile's other order, with quads
    overlapping at both ends of a tile whatever the counts; nothing past each row's items is written."""
    src = planes(rng, (2, rows, cols), np.float32)
    out = np.full((2, cols, 1024), 7, np.float32)
    _transpose.transpose_planes(src, out[:, :, :rows], threads)
    assert np.ascontiguousarray(out[:, :, :rows]).tobytes() == np.ascontiguousarray(src.transpose(0, 2, 1)).tobytes()
    assert (out[:, :, rows:] == 7).all()


def test_transpose_planes_takes_views_the_kernel_cannot_through_numpy(rng):
    src = rng.standard_normal((2, 6, 9))
    dst = np.empty((2, 9, 6))
    _layouts.transpose_planes(src[:, :, ::-1], dst)  # (a source row read backwards)
    np.testing.assert_array_equal(dst, src[:, :, ::-1].transpose(0, 2, 1))
    view = np.empty((2, 9, 12))[:, :, ::2]  # (a destination row's items apart)
    _layouts.transpose_planes(src, view)
    np.testing.assert_array_equal(view, src.transpose(0, 2, 1))


def test_transpose_planes_refuses_shapes_and_dtypes_that_do_not_match():
    src = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="transpose_planes"):
        _layouts.transpose_planes(src, np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="transpose_planes"):
        _layouts.transpose_planes(src, np.zeros((2, 4, 3), np.float64))
    with pytest.raises(ValueError, match="transpose_planes"):
        _layouts.transpose_planes(src[0], np.zeros((4, 3), np.float32))


def test_transpose_planes_overlapping_arrays_go_through_numpy():
    a = np.arange(32, dtype=np.float32).reshape(2, 4, 4)
    expected = a.transpose(0, 2, 1).copy()
    _layouts.transpose_planes(a, a)  # (a copy first: NumPy handles the overlap)
    np.testing.assert_array_equal(a, expected)


@given(kh=st.integers(1, 5), kw=st.integers(1, 5), c=st.integers(1, 20), k=st.integers(1, 20),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_weight_layouts_round_trip(kh, kw, c, k, dtype, seed):
    hwio = planes(np.random.default_rng(seed), (kh, kw, c, k), dtype)
    oihw = _layouts.hwio_to_oihw(hwio)
    assert oihw.flags.c_contiguous and oihw.tobytes() == np.ascontiguousarray(hwio.transpose(3, 2, 0, 1)).tobytes()
    back = _layouts.oihw_to_hwio(oihw)
    assert back.flags.c_contiguous and back.tobytes() == hwio.tobytes()


@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 36),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_image_layouts_round_trip(n, h, w, c, dtype, seed):
    nhwc = planes(np.random.default_rng(seed), (n, h, w, c), dtype)
    nchw = _layouts.nhwc_to_nchw(nhwc)
    assert nchw.tobytes() == np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)).tobytes()
    assert _layouts.channels_first(nhwc).tobytes() == nchw.tobytes()
    out = np.empty_like(nhwc)
    assert _layouts.nchw_to_nhwc(nchw, out=out) is out and out.tobytes() == nhwc.tobytes()


def test_channels_first_is_a_view_for_one_channel(rng):
    x = rng.standard_normal((2, 5, 4, 1))
    assert np.shares_memory(_layouts.channels_first(x), x)
    assert not np.shares_memory(_layouts.channels_first(np.repeat(x, 2, axis=3)), x)


def test_image_layouts_refuse_an_out_that_is_not_c_contiguous_or_of_the_wrong_shape(rng):
    a = rng.standard_normal((2, 3, 4, 5))
    with pytest.raises(ValueError, match="C-contiguous out"):
        _layouts.nchw_to_nhwc(a, out=np.empty((2, 4, 5, 6))[..., :3])
    with pytest.raises(ValueError, match="C-contiguous out"):
        _layouts.nhwc_to_nchw(a, out=np.empty((2, 3, 4, 5)))


@pytest.mark.parametrize("layer", [(2, 6, 9, 9, 16, 3, 1), (3, 1, 12, 12, 30, 5, 0), (1, 3, 16, 16, 32, 7, 3)])
def test_nhwc_convolutions_and_gradients_through_nchw_give_the_nchw_bits(rng, layer):
    """NHWC calls the NCHW tiles run give the NCHW calls' bits: the moves change no value."""
    n, c, h, w, k, ks, pad = layer
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((k, c, ks, ks)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    out = fastconv.conv2d(x, weight, bias, padding=pad)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    x_nhwc, w_hwio, g_nhwc = x.transpose(0, 2, 3, 1).copy(), weight.transpose(2, 3, 1, 0).copy(), \
        grad.transpose(0, 2, 3, 1).copy()
    for _ in range(2):  # (the first call and a planned one)
        np.testing.assert_array_equal(fastconv.conv2d(x_nhwc, w_hwio, bias, padding=pad, layout="NHWC"),
                                      out.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(
        fastconv.conv2d_grad_input(g_nhwc, w_hwio, x_nhwc.shape, padding=pad, layout="NHWC"),
        fastconv.conv2d_grad_input(grad, weight, x.shape, padding=pad).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(
        fastconv.conv2d_grad_weight(g_nhwc, x_nhwc, w_hwio.shape, padding=pad, layout="NHWC"),
        fastconv.conv2d_grad_weight(grad, x, weight.shape, padding=pad).transpose(2, 3, 1, 0))


def _nchw_by_the_nhwc_tiles(x, w, b, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """The NCHW convolution by the tiles an NHWC call of these shapes runs (its plan's tile choice)."""
    from fastconv import _conv
    from fastconv._geometry import conv_geometry
    from fastconv._kernels import _conv_direct

    geometry = conv_geometry(x.shape[2:], w.shape[2:], stride, padding, dilation)
    plan = _conv.tiled_conv(x.shape, w.shape, geometry, groups, padding_mode, x.dtype, _conv_direct.current_level(),
                            channels_last=True)
    out = np.full((x.shape[0], w.shape[0], *geometry.out_shape), np.nan, x.dtype)
    plan.run(x, w, b, out)
    return out


@pytest.mark.parametrize("layer", [
    dict(x=(2, 5, 9, 9), w=(12, 5, 3, 3), padding=1),
    dict(x=(3, 4, 11, 10), w=(10, 4, 3, 2), stride=2, padding=(1, 0)),
    dict(x=(2, 4, 12, 12), w=(16, 2, 3, 3), groups=2, dilation=2, padding=2),
    dict(x=(2, 3, 10, 10), w=(9, 3, 5, 5), padding=2, padding_mode="reflect"),
    dict(x=(1, 6, 40, 40), w=(8, 6, 3, 3), padding=1),  # (bands of rows)
    dict(x=(2, 512, 5, 5), w=(520, 512, 3, 3), padding=1),  # (9.6 MB of weights: blocks over every image)
    dict(x=(1, 256, 20, 20), w=(130, 256, 3, 3), padding=1),  # (1.2 MB, packed in place: bands of rows)
    dict(x=(2, 128, 12, 12), w=(260, 128, 3, 3), stride=2, padding=1),  # (1.2 MB: the gradient's phases)
])
def test_nhwc_tiles_pack_the_hwio_weight_as_the_nchw_call_its_oihw_one(rng, level, layer):
    """The tiles pack an NHWC call's HWIO weight (and its input gradient's adjoint) in place from 1 MiB, and
    from its OIHW copy below: the bits of the NCHW convolution by the same tiles (NHWC results take the
    output-channel tiles where their blocks are full: channel_tiles_store_pixels), every level and thread
    count."""
    kw = {key: value for key, value in layer.items() if key not in ("x", "w")}
    x = rng.standard_normal(layer["x"]).astype(np.float32)
    w = rng.standard_normal(layer["w"]).astype(np.float32)
    b = rng.standard_normal(layer["w"][0]).astype(np.float32)
    x_nhwc, w_hwio = x.transpose(0, 2, 3, 1).copy(), w.transpose(2, 3, 1, 0).copy()
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            expected = _nchw_by_the_nhwc_tiles(x, w, b, **kw)
            np.testing.assert_allclose(expected, fastconv.conv2d(x, w, b, **kw), rtol=1e-4, atol=1e-4)
            expected = expected.transpose(0, 2, 3, 1)
            for _ in range(2):  # (the full path, then the plan)
                got = fastconv.conv2d(x_nhwc, w_hwio, b, layout="NHWC", **kw)
                assert got.tobytes() == np.ascontiguousarray(expected).tobytes()
            if "padding_mode" in kw:
                continue  # (the gradients take zero padding)
            grad = rng.standard_normal(expected.shape).astype(np.float32)  # NHWC
            expected = fastconv.conv2d_grad_input(grad.transpose(0, 3, 1, 2).copy(), w, x.shape, **kw)
            for _ in range(2):  # the adjoint packed from the HWIO weight (its stride phases too)
                got = fastconv.conv2d_grad_input(grad, w_hwio, x_nhwc.shape, layout="NHWC", **kw)
                assert got.tobytes() == np.ascontiguousarray(expected.transpose(0, 2, 3, 1)).tobytes()


# The banded kernel writes an NHWC result itself (conv2d_packed's channels_last): the column
# tiles' band planes go through the thread's scratch and are transposed into the pixels; the
# output-channel tiles store each pixel's channels from their vectors (FC_OC_STORE's pixels: whole
# blocks, and partial ones of fewer filters), in each of their shapes: segments of a row (at AVX2
# rows of 13 make tiles over two rows' ends), several whole short rows a tile (5x5 taps on rows of
# 7), the edge tiles (3x3 with padding: rows of 14, pairs of rows of 7). Bands of one row, of a few
# (row tiles' short last band overlapping the one before) and whole images (several a task for
# small ones), column copies, groups, 1024 filters (pixel rows 4 KiB apart: the transpose's other
# order), every level and 1-3 threads: the NCHW planes' bits, and every pixel written (the result
# starts as NaN).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("budget", [1, 3000, 2**18])
@pytest.mark.parametrize("case", [
    dict(x=(3, 4, 17, 13), w=(20, 4, 4, 3), padding=1, tiles="columns"),
    dict(x=(3, 4, 17, 13), w=(20, 4, 4, 3), padding=1, tiles="channels"),
    dict(x=(2, 6, 21, 21), w=(3, 6, 5, 3), padding=1, tiles="columns"),  # row tiles: bands of at least 8 rows
    dict(x=(4, 1, 12, 12), w=(16, 1, 3, 3), padding=1, tiles="auto"),  # column copies
    dict(x=(6, 3, 8, 8), w=(10, 3, 3, 3), padding=0, tiles="columns", images=True),  # several images a task
    dict(x=(5, 16, 6, 6), w=(40, 16, 3, 3), padding=1, tiles="channels", images=True),
    dict(x=(2, 4, 9, 9), w=(12, 2, 3, 3), padding=1, groups=2, stride=2, tiles="columns"),
    dict(x=(1, 8, 6, 6), w=(1024, 8, 3, 3), padding=1, tiles="auto"),
    dict(x=(2, 3, 15, 15), w=(32, 3, 3, 3), padding=0, tiles="channels"),  # rows of 13
    dict(x=(2, 3, 11, 11), w=(33, 3, 5, 5), padding=0, tiles="channels"),  # rows of 7, 25 taps
    dict(x=(2, 6, 14, 14), w=(32, 6, 3, 3), padding=1, tiles="channels"),  # edge tiles, rows of 14
    dict(x=(3, 5, 7, 7), w=(36, 5, 3, 3), padding=1, tiles="channels"),  # edge tiles, rows of 7
])
def test_banded_kernel_writes_nhwc_pixels(rng, level, every_call_parallel, monkeypatch, request, dtype, budget,
                                          case):
    from functools import partial

    from fastconv import _conv
    from fastconv._geometry import conv_geometry
    from fastconv._kernels import _conv_direct

    monkeypatch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=budget))
    monkeypatch.setattr(_conv, "TALL_BAND_BUDGETS", 1)
    if case.get("images"):  # (as if the weights were larger than the L2 cache: see band_images)
        monkeypatch.setattr(_conv, "BAND_IMAGES_WEIGHTS", 0)
    _conv.tiled_conv.cache_clear()
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    groups, stride = case.get("groups", 1), case.get("stride", 1)
    x = rng.standard_normal(case["x"]).astype(dtype)
    w = rng.standard_normal(case["w"]).astype(dtype)
    b = rng.standard_normal(case["w"][0]).astype(dtype)
    geometry = conv_geometry(case["x"][2:], case["w"][2:], stride, case["padding"])
    tiled = _conv.tiled_conv(x.shape, w.shape, geometry, groups, "zeros", np.dtype(dtype),
                             _conv_direct.current_level(), case["tiles"])
    (oh, ow), k = geometry.out_shape, case["w"][0]
    assert tiled.writes_pixels(1)  # (with more threads, where too few bands make the tasks: the whole batch)
    assert (tiled.band_images > 1) == (case.get("images", False) and tiled.band == geometry.out_shape[0])
    for threads in (1, 2, 3):
        planes_out = np.full((x.shape[0], k, oh, ow), np.nan, dtype)
        pixels = np.full((x.shape[0], oh, ow, k), np.nan, dtype)
        with fastconv.num_threads(threads):
            tiled.run(x, w, b, planes_out)
            tiled.run(x, w, b, pixels, channels_last=True)
        assert not np.isnan(planes_out).any()
        assert pixels.tobytes() == np.ascontiguousarray(planes_out.transpose(0, 2, 3, 1)).tobytes()


def test_nhwc_results_the_kernels_cannot_write_go_through_nchw(rng, monkeypatch):
    """Plans whose kernels write only NCHW planes (the whole batch laid out at once, pointwise ones) take an
    NCHW result transposed after; an input gradient of several phases too; the NCHW calls' bits."""
    from fastconv import _conv, _conv_grad

    monkeypatch.setattr(_conv.TiledConv, "banded", lambda self, threads: (None, None))  # the whole-batch layout
    x = rng.standard_normal((2, 5, 9, 9)).astype(np.float32)
    w = rng.standard_normal((12, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    x_nhwc, w_hwio = x.transpose(0, 2, 3, 1).copy(), w.transpose(2, 3, 1, 0).copy()
    for stride in (1, 2):
        expected = fastconv.conv2d(x, w, b, padding=1, stride=stride).transpose(0, 2, 3, 1)
        got = fastconv.conv2d(x_nhwc, w_hwio, b, padding=1, stride=stride, layout="NHWC")
        assert got.tobytes() == np.ascontiguousarray(expected).tobytes()
        grad = rng.standard_normal(expected.shape).astype(np.float32)
        expected = fastconv.conv2d_grad_input(grad.transpose(0, 3, 1, 2).copy(), w, x.shape, padding=1, stride=stride)
        got = fastconv.conv2d_grad_input(grad, w_hwio, x_nhwc.shape, padding=1, stride=stride, layout="NHWC")
        assert got.tobytes() == np.ascontiguousarray(expected.transpose(0, 2, 3, 1)).tobytes()
    plan = _conv_grad.grad_input_plan((2, 12, 5, 5), (12, 5, 3, 3), fastconv._geometry.conv_geometry((9, 9), 3, 2, 1),
                                      1, np.dtype(np.float32), fastconv._kernels._conv_direct.current_level())
    assert not plan.writes_pixels  # (four phases)
    with pytest.raises(ValueError, match="NHWC result"):
        plan.run(np.zeros((2, 12, 5, 5), np.float32), w, np.zeros((2, 9, 9, 5), np.float32), channels_last=True)
