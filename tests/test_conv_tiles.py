"""The two register tiles of the direct convolution: column tiles and output-channel tiles.

``_conv_tiled(..., tiles=...)`` forces one; ``"auto"`` picks with
:func:`fastconv._conv.choose_tiles`. Both sum every output in the same order,
so they must agree bit for bit, at every SIMD level, and give the reference's
values. The one exception: the row tiles that reuse input rows across a
kernel's 3, 5 or 7 rows sum over kernel columns before kernel rows, so they
agree with the others to rounding; which tile an output takes depends on the
shapes only, so results stay the same for every thread count.
"""

import itertools

import numpy as np
import pytest
from helpers import assert_same_non_finite, tolerance

import fastconv
from fastconv import _conv, reference
from fastconv._geometry import conv_geometry
from fastconv._kernels import _conv_direct
from fastconv._prepare import prepare_conv2d

LEVELS = fastconv.simd_levels()


def run_tiles(x, w, b, tiles, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    call = prepare_conv2d(x, w, b, stride, padding, dilation, groups, padding_mode, "NCHW", None)
    out = np.full(call.out_shape, np.nan, call.compute_dtype)
    _conv._conv_tiled(call.x, call.weight, call.bias, call.geometry, groups, out, padding_mode, tiles)
    return out


# output widths 1..31 cover every segment count and every column count of the tile (up to 14);
# K covers partial blocks of every level's block (8, 16, 32 channels; 4, 8, 16 for float64);
# from 2 vectors (32 float32 columns with AVX-512) on, the column tiles run two or three vectors
# at once: 48-63 columns one tile of three, 64 two of two, 80 three and two, 100 three, three and a
# tail, 112 three, two and two (float64: vectors of 8); with 16 registers (AVX2, the baseline)
# three vectors run as two passes of 4 channels, from 24 float32 columns with AVX2 (12 baseline)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 2, 5, 6, 7, 13, 14, 15, 16, 20, 29, 31, 32, 33, 47, 48, 50, 64, 80, 100, 112])
@pytest.mark.parametrize("k", [3, 16, 33])
def test_channel_tile_every_width_and_block(rng, level, dtype, width, k):
    x = rng.standard_normal((2, 5, 4, width + 2)).astype(dtype)
    w = rng.standard_normal((k, 5, 3, 3)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    channels = run_tiles(x, w, b, "channels", padding=(1, 0))
    columns = run_tiles(x, w, b, "columns", padding=(1, 0))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(channels, reference.conv2d(x, w, b, padding=(1, 0)), rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(channels, columns)


# the AVX2 level's output-channel segments of 5 and 6 columns: the tile of 6 (named accumulators,
# its multiply-adds in assembly) and, on rows wider than a tile, segments of the band's pixels
# that end one row and start the next (14 columns: 4 rows make 56 pixels, ten segments); nine
# taps (unrolled) and other counts (the tap loop), non-finite inputs: the column tiles' bits at
# every level
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [6, 7, 12, 14, 30])
@pytest.mark.parametrize("kernel", [(3, 3), (2, 3), (1, 5)])
def test_channel_tile_segments_of_five_and_six_columns(rng, level, dtype, width, kernel):
    kh, kw = kernel
    x = rng.standard_normal((2, 7, 3 + kh, width + kw - 1)).astype(dtype)
    x[0, 3, 2, 1], x[1, 0, 3, -1], x[1, 6, 0, 0] = np.inf, np.nan, -0.0
    w = rng.standard_normal((19, 7, kh, kw)).astype(dtype)
    b = rng.standard_normal(19).astype(dtype)
    channels = run_tiles(x, w, b, "channels")
    np.testing.assert_array_equal(channels, run_tiles(x, w, b, "columns"))
    expected = reference.conv2d(x, w, b)
    assert 0 < np.isfinite(expected).sum() < expected.size
    rtol, atol = tolerance(dtype)
    assert_same_non_finite(channels, expected, rtol=rtol, atol=atol * 10)


# rows of at most half an output-channel tile's columns (7 with 32 vector registers, 3 with 16) run
# tiles over oc_cols // OW whole rows (a 7x7 image: two rows of 7), the rows left over one at a
# time; bands of 4 rows (a budget of 6 padded rows) leave a last band of 2 (one image on two
# threads: they share its 4 bands), and the whole-batch layout (the whole image's budget, one image
# on two threads) runs the image as one band: the same bits everywhere
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ow", [2, 3, 4, 5, 7, 8])
@pytest.mark.parametrize("rows", [6, 100])  # a budget of 6 padded rows (bands of 4); the whole image
def test_channel_tiles_over_whole_rows(rng, level, monkeypatch, request, every_call_parallel, dtype, ow, rows):
    from functools import partial

    budget = rows * 64 * (ow + 2) * np.dtype(dtype).itemsize
    monkeypatch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=budget))
    _conv.tiled_conv.cache_clear()
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    x = rng.standard_normal((1, 64, 14, ow)).astype(dtype)
    w = rng.standard_normal((40, 64, 3, 3)).astype(dtype)  # a block of 32 (16) and a partial one
    b = rng.standard_normal(40).astype(dtype)
    call = prepare_conv2d(x, w, b, 1, 1, 1, 1, "zeros", "NCHW", None)
    band = _conv.tiled_conv(x.shape, w.shape, call.geometry, 1, "zeros", call.compute_dtype,
                            _conv_direct.current_level(), "channels").band
    assert band == (4 if rows == 6 else 14)
    results = []
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            results.append(run_tiles(x, w, b, "channels", padding=1))
    with fastconv.num_threads(1):
        np.testing.assert_array_equal(run_tiles(x, w, b, "columns", padding=1), results[0])
    np.testing.assert_array_equal(results[1], results[0])
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], reference.conv2d(x, w, b, padding=1), rtol=rtol, atol=atol * 10)


# the single whole vectors a row leaves after its three-vector tiles (the fourth of 4, the last two
# of 8: 32 and 64 float32 columns with AVX2, 16 and 32 at the baseline; 33 columns end in an
# overlapping vector) run three at a time from consecutive rows (the gather tiles), the one or two
# left at the end of a band one at a time: every band height 1-7 leaves 0, 1 or 2 of them, one
# row per band leaves them all to the one-vector tile. Blocks of 4 or fewer live channels run
# one pass; blocks of 5 or 6 run every whole vector two at a time (6 x 2, with 16 registers).
# With 16 registers the other blocks run this row loop in C, a call per band (the band tile):
# also rows of 5 columns (narrower than a vector), 20 (two vectors and a half tile) and 40
# float32 columns (a three-vector segment and two single vectors per row).
# The same bits as the output-channel tiles, on one or two threads.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [5, 14, 16, 20, 32, 33, 40, 64, 72])
@pytest.mark.parametrize("oh", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("k", [3, 5, 8, 14, 20])  # blocks of 3; 5; 8; 8 + 6; 8 + 8 + 4 live channels
@pytest.mark.parametrize("budget", [1, 2**20])  # bands of one row; the whole image
def test_single_vectors_run_three_at_a_time(rng, level, monkeypatch, request, dtype, width, oh, k, budget):
    from functools import partial

    monkeypatch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=budget))
    _conv.tiled_conv.cache_clear()
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    x = rng.standard_normal((3, 4, oh, width)).astype(dtype)
    w = rng.standard_normal((k, 4, 3, 3)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    results = []
    # 3 images: the banded kernel on one thread; on two (where the call gets two) also where bands
    # of a row make two tasks a thread, else the whole-batch layout
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            results.append(run_tiles(x, w, b, "columns", padding=1))
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[0], run_tiles(x, w, b, "channels", padding=1))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], reference.conv2d(x, w, b, padding=1), rtol=rtol, atol=atol * 10)


# rows narrower than a vector but wider than half of one (float32: 9-15 columns with AVX-512, 5-7
# with AVX2, 3 at the baseline; float64: 5-7, 3 and none) run three rows at a time in the gather
# tile, storing their first columns only, the rows left over one at a time; with 16 registers in
# the band's tail loop, blocks of 5 or 6 live channels two rows at a time (6 x 2). Bands of one to
# ten rows; the same bits as the output-channel tiles on one or two threads, and the reference's
# values; nothing written outside the output (the slices next to it keep their sentinels)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [3, 6, 7, 10, 13, 15])
@pytest.mark.parametrize("oh", [1, 3, 4, 5, 10])
@pytest.mark.parametrize("k", [5, 8, 14])  # blocks of 5; 8; 8 + 6 live channels (no row tiles)
def test_rows_narrower_than_a_vector_run_three_at_a_time(rng, level, dtype, width, oh, k):
    x = rng.standard_normal((3, 6, oh, width)).astype(dtype)
    w = rng.standard_normal((k, 6, 3, 3)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    call = prepare_conv2d(x, w, b, 1, 1, 1, 1, "zeros", "NCHW", None)
    results = []
    for threads in (1, 2):  # 3 images: the banded kernel on one thread, the whole batch on two
        with fastconv.num_threads(threads):
            padded = np.full((call.out_shape[0] + 2,) + call.out_shape[1:], np.inf, dtype)
            _conv._conv_tiled(call.x, call.weight, call.bias, call.geometry, 1, padded[1:-1], "zeros", "columns")
            assert np.isposinf(padded[[0, -1]]).all()
            results.append(padded[1:-1])
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[0], run_tiles(x, w, b, "channels", padding=1))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], reference.conv2d(x, w, b, padding=1), rtol=rtol, atol=atol * 10)


# blocks of at most 4 live channels run the narrow tiles (4 channels x 6 vectors with 32 vector
# registers, x 3 with 16) over rows of at least that many vectors: 96 float32 / 48 float64
# columns with AVX-512, 24 / 12 with AVX2
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 4, 5, 12])  # one block of 1 or 4, of 5 (no narrow tile), 8 + 4
@pytest.mark.parametrize("width", [96, 100, 200])
def test_narrow_tiles_for_few_channels(rng, level, dtype, k, width):
    x = rng.standard_normal((2, 3, 3, width)).astype(dtype)
    w = rng.standard_normal((k, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    columns = run_tiles(x, w, b, "columns", padding=1)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(columns, reference.conv2d(x, w, b, padding=1), rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(columns, run_tiles(x, w, b, "channels", padding=1))


def test_narrow_tiles_in_the_input_gradient(rng):
    # dL/dx of a 3-channel stem: convolutions with 3 output channels, one per stride phase
    x = rng.standard_normal((2, 3, 20, 232)).astype(np.float32)
    w = rng.standard_normal((8, 3, 7, 7)).astype(np.float32)
    grad = rng.standard_normal(reference.conv2d(x, w, stride=2, padding=3).shape).astype(np.float32)
    expected = reference.conv2d_grad_input(grad, w, x.shape, stride=2, padding=3)
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(fastconv.conv2d_grad_input(grad, w, x.shape, stride=2, padding=3), expected,
                               rtol=rtol, atol=atol * 10)


# blocks of one or two live channels run row tiles (one channel x 8 rows x one vector of columns)
# where the band holds 8 rows or more; the last rows and the last columns overlap the tile before
# them. The plain row tiles sum as the other tiles do, so they must agree bit for bit with the
# channel tiles; kernels of 3, 5 or 7 rows run the row tiles that load each input row once for all
# the kernel's rows (for blocks of up to 3 channels), which sum kernel columns first: equal to
# rounding. 3 channels with a 2-row kernel run the column tiles.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 2, 3, 9, 11])  # one block of 1, 2 or 3 channels, and 8 + 1, 8 + 3
@pytest.mark.parametrize("oh, ow", [(8, 16), (9, 5), (15, 28), (30, 33), (7, 40)])  # 7: fewer rows than a tile
@pytest.mark.parametrize("n", [1, 4])  # the whole-batch layout, one image per task
@pytest.mark.parametrize("kernel", [(2, 5), (3, 5), (5, 2), (7, 3)])  # plain row tiles; rows reused
def test_row_tiles_for_one_or_two_channels(rng, level, dtype, k, oh, ow, n, kernel):
    kh, kw = kernel
    x = rng.standard_normal((n, 3, oh + kh - 1, ow + kw - 1)).astype(dtype)
    w = rng.standard_normal((k, 3, kh, kw)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    rtol, atol = tolerance(dtype)
    with fastconv.num_threads(1):
        rows = run_tiles(x, w, b, "columns")
        channels = run_tiles(x, w, b, "channels")
    if kh in (3, 5, 7):
        np.testing.assert_allclose(rows, channels, rtol=rtol, atol=atol * 10)
    else:
        np.testing.assert_array_equal(rows, channels)
    np.testing.assert_allclose(rows, reference.conv2d(x, w, b), rtol=rtol, atol=atol * 10)


# rows are reused where the kernel's row taps are a row apart: a row stride equal to the row
# dilation (1 and 1, 2 and 2: in the stride phase planes); other geometries run the plain row tiles
@pytest.mark.parametrize("s, d", [(1, 1), (2, 2), ((2, 1), (2, 1)), (1, 2), (2, 1), ((1, 2), 1)])
def test_row_tiles_geometries_and_threads(rng, level, every_call_parallel, s, d):
    x = rng.standard_normal((1, 5, 41, 37))
    w = rng.standard_normal((1, 5, 5, 3))
    b = rng.standard_normal(1)
    results = []
    for threads in (1, 2):  # one image: the banded kernel on one thread, the whole-batch layout on two
        with fastconv.num_threads(threads):
            results.append(run_tiles(x, w, b, "columns", stride=s, padding=2, dilation=d))
    rtol, atol = tolerance(np.float64)
    np.testing.assert_allclose(results[0], reference.conv2d(x, w, b, stride=s, padding=2, dilation=d),
                               rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(results[1], results[0])


def test_row_tiles_in_the_input_gradient_of_a_one_channel_image(rng, level, every_call_parallel):
    # dL/dx of the textbook's first layer (30 5x5 filters on a 28x28 digit): a convolution with one
    # output channel and 30 input channels, 5 kernel rows (the row tiles that reuse input rows)
    x = rng.standard_normal((3, 1, 28, 28))
    w = rng.standard_normal((30, 1, 5, 5))
    grad = rng.standard_normal((3, 30, 24, 24))
    expected = reference.conv2d_grad_input(grad, w, x.shape)
    rtol, atol = tolerance(np.float64)
    results = []
    for threads in (1, 2):  # 3 images: the banded kernel on one thread, the whole-batch layout on two
        with fastconv.num_threads(threads):
            results.append(fastconv.conv2d_grad_input(grad, w, x.shape))
    np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(results[1], results[0])


@pytest.mark.parametrize("n", [1, 4])  # whole-batch layout with 1 image, one image per task with 4
@pytest.mark.parametrize("s, p, d, g, mode", [(1, 1, 1, 1, "zeros"), (2, 1, 1, 2, "zeros"), (1, 2, 2, 1, "reflect"),
                                              (3, ((2, 0), (1, 3)), (1, 2), 3, "zeros"), (2, 3, 1, 1, "circular")])
def test_channel_tile_geometries(rng, level, every_call_parallel, n, s, p, d, g, mode):
    x = rng.standard_normal((n, 6, 15, 19)).astype(np.float32)
    w = rng.standard_normal((36, 6 // g, 3, 2)).astype(np.float32)
    b = rng.standard_normal(36).astype(np.float32)
    kw = dict(stride=s, padding=p, dilation=d, groups=g, padding_mode=mode)
    results = []
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            results.append(run_tiles(x, w, b, "channels", **kw))
            np.testing.assert_array_equal(run_tiles(x, w, b, "columns", **kw), results[-1])
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(results[0], reference.conv2d(x, w, b, **kw), rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(results[1], results[0])


def test_channel_tile_on_a_deep_short_row_shape(rng):
    # the shape family it was built for (resnet-deep, scaled down): many channels, 14 columns
    x = rng.standard_normal((4, 64, 14, 14)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    expected = reference.conv2d(x, w, padding=1)
    got = fastconv.conv2d(x, w, padding=1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got, run_tiles(x, w, None, "channels", padding=1))


def test_oc_columns_busy():
    # whole rows a tile where a row is at most half a tile (7: two rows of 7 fill 14), else the
    # fewest segments of at most 14 columns
    assert [_conv.oc_columns_busy(ow, 14) for ow in (7, 14, 28, 56)] == [1.0] * 4
    assert _conv.oc_columns_busy(4, 14) == 12 / 14 and _conv.oc_columns_busy(8, 14) == 8 / 14
    assert _conv.oc_columns_busy(32, 14) == 32 / 42 and _conv.oc_columns_busy(16, 14) == 16 / 28
    assert _conv.oc_columns_busy(0, 14) == 1.0


def test_choice_follows_idle_lanes_and_depth():
    top = len(LEVELS) - 1
    block, cols = _conv_direct.oc_tile_shape(top, "f")
    assert block % 8 == 0 and cols >= 4
    # few channels per group: the column tiles (channel blocks would be mostly empty)
    assert _conv.choose_tiles(3, 27, 32, np.float32, top) == (-1, 8)
    if LEVELS[-1] == "avx512":
        # 14 columns fill 14/16 of a column tile: the channel tile, packed in blocks of 32
        assert _conv.choose_tiles(256, 2304, 14, np.float32, top) == (top, 32)
        assert _conv.choose_tiles(256, 2304, 14, np.float64, top) == (top, 16)
        # rows that fill the column tiles and few sums per pixel: the column tiles
        assert _conv.choose_tiles(64, 147, 112, np.float32, top) == (-1, 8)
        # as full, with many sums per pixel: the channel tile (measured faster)
        assert _conv.choose_tiles(64, 576, 56, np.float32, top) == (top, 32)
        # a row of half a vector runs half tiles, half as wide: half busy, so the channel tile
        # (an 8x8 layer of the textbook's deep network, measured 1.66-2.01x faster) ...
        assert _conv.choose_tiles(64, 288, 8, np.float32, top) == (top, 32)
        assert _conv.choose_tiles(64, 288, 4, np.float64, top) == (top, 16)
        # ... also with whole vectors before the half tile (24 columns fill 24/32)
        assert _conv.choose_tiles(64, 288, 24, np.float32, top) == (top, 32)
        # but not with 8 channels: then the channel tile's lanes are as idle
        assert _conv.choose_tiles(8, 288, 8, np.float32, top) == (-1, 8)
        # rows of 16 or 32 columns: whole vectors, where the channel tiles run segments of 8 and
        # 10-11 of their 14 columns (CIFAR's 32x32 layers): the column tiles, in float32
        assert _conv.choose_tiles(64, 576, 32, np.float32, top) == (-1, 8)
        assert _conv.choose_tiles(128, 1152, 16, np.float32, top) == (-1, 8)
        assert _conv.choose_tiles(64, 576, 28, np.float32, top) == (top, 32)  # 2 x 14: full
        assert _conv.choose_tiles(64, 576, 20, np.float32, top) == (top, 32)  # 2 x 10, and a column tail
        assert _conv.choose_tiles(64, 576, 18, np.float64, top) == (top, 16)  # float64: no segments
    if "avx2" in LEVELS:
        avx2 = LEVELS.index("avx2")
        # 3 filters: 3/8 of the float64 channel tile, 3/4 of a narrow tile along 128 columns
        assert _conv.choose_tiles(3, 576, 128, np.float64, avx2) == (-1, 8)
        # a row too short for a narrow tile (3 vectors of 4): as busy, many sums: the channel tile
        assert _conv.choose_tiles(3, 576, 10, np.float64, avx2) == (avx2, 8)
        # rows of whole vectors, as busy: the column tiles up to 255 sums (the stem, CS231n's
        # 7x7 layer), the channel tile from 256 (dilated, resnet-mid)
        assert _conv.choose_tiles(64, 147, 112, np.float32, avx2) == (-1, 8)
        assert _conv.choose_tiles(32, 147, 32, np.float64, avx2) == (-1, 8)
        assert _conv.choose_tiles(32, 288, 64, np.float32, avx2) == (avx2, 16)
        assert _conv.choose_tiles(64, 576, 56, np.float64, avx2) == (avx2, 8)
        # 14 or 28 columns fill 14/16 of the column tiles: the channel tile from 128 sums ...
        assert _conv.choose_tiles(32, 144, 14, np.float32, avx2) == (avx2, 16)
        # ... below, the column tiles wherever a row holds a whole vector (the textbook's first
        # layer: one channel, 9 sums; 8 channels, 72)
        assert _conv.choose_tiles(16, 9, 28, np.float32, avx2) == (-1, 8)
        assert _conv.choose_tiles(32, 72, 14, np.float32, avx2) == (-1, 8)
        # a row shorter than a vector keeps the idle-lane rule
        assert _conv.choose_tiles(32, 27, 7, np.float32, avx2) == (avx2, 16)


def test_banded_kernel_packs_only_weights_of_its_shape():
    # conv2d_packed packs the OIHW weights itself, for the tile it runs: it checks their shape
    # and the bias length against the output and the taps
    level = len(LEVELS) - 1
    x = np.zeros((1, 4, 6, 6), np.float32)
    out = np.zeros((1, 16, 4, 4), np.float32)
    ph = _conv.stride_phases(prepare_conv2d(x, np.zeros((16, 4, 3, 3), np.float32), None, 1, 0, 1, 1,
                                            "zeros", "NCHW", None).geometry)
    args = (0, 0, 1, 1, 4, ph.hq, ph.wq, ph.taps, 1, level)
    w, b = np.ones((16, 4, 3, 3), np.float32), np.zeros(16, np.float32)
    _conv_direct.conv2d_packed(x, w, b, out, 1, 4, *args)
    _conv_direct.conv2d_packed(x, w, None, out, 1, 4, *args)
    for bad in (np.ones((15, 4, 3, 3), np.float32), np.ones((16, 3, 3, 3), np.float32),
                np.ones((16, 4, 3, 2), np.float32)):
        with pytest.raises(ValueError, match="weight must be"):
            _conv_direct.conv2d_packed(x, bad, b, out, 1, 4, *args)
    for groups in (3, 0):  # groups must divide K (checked before anything divides by them)
        with pytest.raises(ValueError, match="weight must be"):
            _conv_direct.conv2d_packed(x, w, b, out, groups, 4, *args)
    with pytest.raises(ValueError, match="one bias per output channel"):
        _conv_direct.conv2d_packed(x, w, b[:15], out, 1, 4, *args)


@pytest.mark.parametrize("kernel", ["conv2d_tiled"])
def test_kernels_reject_weights_packed_for_another_block(kernel):
    # the block size comes from the SIMD level; weights packed for another level's block
    # would be read out of bounds, so the kernels check the packed length
    level = len(LEVELS) - 1
    block, _ = _conv_direct.oc_tile_shape(level, "f")
    x = np.zeros((1, 4, 6, 6), np.float32)
    out = np.zeros((1, 2 * block, 4, 4), np.float32)
    w_short = np.zeros(block * 4 * 9, np.float32)  # one block's worth for 2 blocks
    bias = np.zeros(2 * block, np.float32)
    ph = _conv.stride_phases(prepare_conv2d(x, np.zeros((2 * block, 4, 3, 3), np.float32), None, 1, 0, 1, 1,
                                            "zeros", "NCHW", None).geometry)
    with pytest.raises(ValueError, match="not packed in blocks"):
        flat = np.zeros(x.size + 64, np.float32)
        _conv_direct.conv2d_tiled(flat, 4 * 36, 36, 6, ph.taps, w_short, bias, out, 1, 4, False, 1, level)


# ---- the weight gradient's tiles

def grad_weight_tiles(grad, x, weight_shape, tiles, **kw):
    from fastconv._conv_grad import GradWeightPlan
    from fastconv._prepare import prepare_conv2d_grad_weight

    call = prepare_conv2d_grad_weight(grad, x, weight_shape, kw.get("stride", 1), kw.get("padding", 0),
                                      kw.get("dilation", 1), kw.get("groups", 1), kw.get("layout", "NCHW"), None)
    x, grad = (a.transpose(0, 3, 1, 2) if call.channels_last else a for a in (call.x, call.grad))
    plan = GradWeightPlan(x.shape, call.dims, call.geometry, call.groups, call.compute_dtype,
                          _conv_direct.current_level(), tiles)
    dw = plan.run(x, grad)
    return dw.transpose(2, 3, 1, 0) if call.channels_last else dw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, hw, k, kernel, s, p, d, g", [
    (3, 5, (9, 16), 3, 3, 1, 1, 1, 1),        # fewer channels than a block
    (2, 4, (14, 14), 40, 3, 1, 1, 1, 1),      # a full block and a partial one
    (2, 6, (17, 23), 12, (3, 2), (2, 3), ((2, 0), (1, 3)), (1, 2), 3),
    (3, 3, (45, 41), 33, 5, 1, 2, 1, 1),      # one image per chunk: three chunks
    (4, 2, (20, 20), 17, 7, 2, 3, 1, 1),      # more than oc_cols taps per channel
])
def test_grad_weight_channel_tiles(rng, level, every_call_parallel, dtype, n, c, hw, k, kernel, s, p, d, g):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g)
    y = reference.conv2d(x, np.zeros((k, c // g, kh, kw), dtype), **kwargs)
    grad = rng.standard_normal(y.shape).astype(dtype)
    expected = reference.conv2d_grad_weight(grad, x, (k, c // g, kh, kw), **kwargs)
    rtol, atol = tolerance(dtype)
    results = []
    for threads in (1, 2, 3):  # a different split of the input channels each time
        with fastconv.num_threads(threads):
            results.append(grad_weight_tiles(grad, x, (k, c // g, kh, kw), "channels", **kwargs))
    np.testing.assert_allclose(results[0], expected, rtol=rtol * 10, atol=atol * 100)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    np.testing.assert_allclose(grad_weight_tiles(grad, x, (k, c // g, kh, kw), "columns", **kwargs), expected,
                               rtol=rtol * 10, atol=atol * 100)
    if _conv_direct.has_one_vector_weight_tiles(_conv_direct.current_level()):
        # the tiles of one vector of channels (blocks of half as many: 16 float32 with AVX-512)
        narrow = []
        for threads in (1, 2, 3):
            with fastconv.num_threads(threads):
                narrow.append(grad_weight_tiles(grad, x, (k, c // g, kh, kw), "channels1", **kwargs))
        np.testing.assert_allclose(narrow[0], expected, rtol=rtol * 10, atol=atol * 100)
        for other in narrow[1:]:
            np.testing.assert_array_equal(other, narrow[0])
    # NHWC: the same kernels on transposed views
    nhwc = grad_weight_tiles(grad.transpose(0, 2, 3, 1), x.transpose(0, 2, 3, 1), (kh, kw, c // g, k), "channels",
                             layout="NHWC", **kwargs)
    np.testing.assert_allclose(nhwc, expected.transpose(2, 3, 1, 0), rtol=rtol * 10, atol=atol * 100)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, hw, k, kernel, d, g", [
    (3, 5, (9, 16), 40, 1, 1, 1),           # pointwise
    (2, 7, (12, 10), 20, 3, 1, 1),          # a valid 3x3 convolution
    (2, 6, (17, 23), 12, (3, 2), (1, 2), 3),  # dilated, grouped
    (3, 2, (20, 20), 17, 5, 1, 1),          # more than oc_cols taps per channel
])
def test_grad_weight_reads_unpadded_input_in_place(rng, level, every_call_parallel, dtype, n, c, hw, k, kernel, d, g):
    # stride 1 and no padding: the output-channel tiles read x where it is, with the bits of
    # the copied phase planes for every thread count; an input whose planes are not C-contiguous
    # (a strided view) is copied as before
    from fastconv._conv_grad import GradWeightPlan
    from fastconv._prepare import prepare_conv2d_grad_weight

    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    dims = (k, c // g, kh, kw)
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    grad = rng.standard_normal(reference.conv2d(x, np.zeros(dims, dtype), dilation=d, groups=g).shape).astype(dtype)
    geometry = prepare_conv2d_grad_weight(grad, x, dims, 1, 0, d, g, "NCHW", None).geometry
    in_place, copied = (GradWeightPlan(x.shape, dims, geometry, g, np.dtype(dtype), _conv_direct.current_level(),
                                       "channels") for _ in range(2))
    assert in_place.reads_input
    copied.reads_input = False
    expected = copied.run(x, grad)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(expected, reference.conv2d_grad_weight(grad, x, dims, dilation=d, groups=g),
                               rtol=rtol * 10, atol=atol * 100)
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            np.testing.assert_array_equal(in_place.run(x, grad), expected)
            np.testing.assert_array_equal(copied.run(x, grad), expected)
    wide = np.zeros(x.shape[:3] + (2 * hw[1],), dtype)
    wide[..., ::2] = x
    np.testing.assert_array_equal(in_place.run(wide[..., ::2], grad), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tiles", ["channels", "columns"])
@pytest.mark.parametrize("n, c, hw, k, s, g", [
    (2, 16, (28, 28), 24, 2, 1),      # a ResNet shortcut: planes of 14x14 pixels read
    (3, 8, (15, 17), 12, 2, 2),       # odd sizes: the last row and column read, grouped
    (2, 6, (30, 11), 20, 3, 1),       # stride 3, 10x4 pixels read
    (2, 12, (9, 16), 8, (3, 1), 1),   # strided rows only
    (2, 12, (9, 16), 8, (1, 2), 4),   # strided columns only
    (1, 10, (20, 20), 10, 2, 10),     # depthwise
])
def test_grad_weight_of_strided_pointwise_reads_its_pixels(rng, level, every_call_parallel, dtype, tiles,
                                                           n, c, hw, k, s, g):
    # a strided 1x1 unpadded kernel: the weight gradient of the stride-1 convolution of the pixels
    # it reads, with that convolution's bits, for every thread count and input layout
    from fastconv._conv_grad import GradWeightPlan
    from fastconv._geometry import conv_geometry

    dims = (k, c // g, 1, 1)
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    grad = rng.standard_normal(reference.conv2d(x, np.zeros(dims, dtype), stride=s, groups=g).shape).astype(dtype)
    level = _conv_direct.current_level()
    plan = GradWeightPlan(x.shape, dims, conv_geometry(hw, 1, s), g, np.dtype(dtype), level, tiles)
    sh, sw = (s, s) if isinstance(s, int) else s
    oh, ow = grad.shape[2:]
    assert plan.subsample == ((sh, sw), (oh, ow)) and plan.geometry == conv_geometry((oh, ow), 1)
    assert not plan.reads_input  # the pixels read are a view: copied
    pixels = np.ascontiguousarray(x[:, :, ::sh, ::sw][:, :, :oh, :ow])
    stride1 = GradWeightPlan(pixels.shape, dims, conv_geometry((oh, ow), 1), g, np.dtype(dtype), level, tiles)
    expected = stride1.run(pixels, grad)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(expected, reference.conv2d_grad_weight(grad, x, dims, stride=s, groups=g),
                               rtol=rtol * 10, atol=atol * 100)
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            np.testing.assert_array_equal(plan.run(x, grad), expected)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(plan.run(nhwc, grad), expected)
    # inputs it does not read may hold anything: the column tiles need not hand them to the GEMM
    spoiled = x.copy()
    if sh > 1:
        spoiled[:, :, 1::sh] = np.nan
    if sw > 1:
        spoiled[:, :, :, 1::sw] = np.inf
    np.testing.assert_array_equal(plan.run(spoiled, grad), expected)


def test_grad_weight_copies_small_planes(rng):
    # planes of fewer than IN_PLACE_MIN_PLANE elements: each tile's input streams would hop
    # from image to image too often, so they are copied channel-major
    from fastconv._conv_grad import IN_PLACE_MIN_PLANE, GradWeightPlan
    from fastconv._geometry import conv_geometry

    level = _conv_direct.current_level()
    for hw, expected in [((7, 7), False), ((8, 8), True), ((1, IN_PLACE_MIN_PLANE - 1), False)]:
        plan = GradWeightPlan((4, 64) + hw, (64, 64, 1, 1), conv_geometry(hw, 1), 1, np.float32, level, "channels")
        assert plan.reads_input is expected
    for padding, stride in [(1, 1), (0, 2)]:  # copied: zero padding, or several phases
        plan = GradWeightPlan((4, 64, 28, 28), (64, 64, 3, 3), conv_geometry((28, 28), 3, stride, padding), 1,
                              np.float32, level, "channels")
        assert not plan.reads_input
    columns = GradWeightPlan((4, 64, 28, 28), (64, 64, 1, 1), conv_geometry((28, 28), 1), 1, np.float32, level,
                             "columns")
    assert not columns.reads_input  # the column tiles read past the windows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, hw, k, s, p, g", [
    (3, 24, (9, 16), 20, 1, 0, 1),    # 6 channels a pass (3 with 16 registers)
    (2, 16, (12, 10), 9, 1, 0, 1),    # 4 (2)
    (2, 7, (11, 13), 12, 1, 0, 1),    # a prime: one channel a pass, as before
    (2, 12, (17, 23), 6, 2, 1, 2),    # stride 2 and padding: four phase planes a channel
    (5, 6, (6, 6), 18, 1, 0, 3),      # groups of two channels
])
def test_grad_weight_column_tiles_take_channels_as_taps(rng, level, every_call_parallel, dtype, n, c, hw, k, s, p, g):
    # a 1x1 kernel: the column tiles take several input channels per pass as the taps of one,
    # with the bits of one channel per pass, for every thread count
    from fastconv._conv_grad import GradWeightPlan
    from fastconv._prepare import prepare_conv2d_grad_weight

    dims = (k, c // g, 1, 1)
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    grad = rng.standard_normal(reference.conv2d(x, np.zeros(dims, dtype), stride=s, padding=p,
                                                groups=g).shape).astype(dtype)
    geometry = prepare_conv2d_grad_weight(grad, x, dims, s, p, 1, g, "NCHW", None).geometry
    merged, single = (GradWeightPlan(x.shape, dims, geometry, g, np.dtype(dtype), _conv_direct.current_level(),
                                     "columns") for _ in range(2))
    most = _conv_direct.weight_tile_taps(_conv_direct.current_level())
    assert merged.merged == max(q for q in range(1, most + 1) if (c // g) % q == 0)
    single.merged, single.merged_taps = 1, single.phases.taps
    expected = single.run(x, grad)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(expected, reference.conv2d_grad_weight(grad, x, dims, stride=s, padding=p, groups=g),
                               rtol=rtol * 10, atol=atol * 100)
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            np.testing.assert_array_equal(merged.run(x, grad), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunks, runs", [(5, 5), (3, 3), (5, 2), (3, 1), (1, 1)])
@pytest.mark.parametrize("n, c, hw, k, kernel, s, p, d, g", [
    (5, 3, (9, 16), 16, 3, 1, 1, 1, 1),        # cifar's kind: two blocks of 8
    (5, 2, (11, 10), 12, 5, 1, 0, 1, 1),        # valid 5x5, a partial block
    (5, 6, (13, 12), 18, (3, 2), (2, 3), ((2, 0), (1, 3)), (1, 2), 3),  # phases, groups
    (5, 6, (7, 9), 10, 1, 1, 0, 1, 2),          # 1x1: channels passed as the taps of one
])
def test_grad_weight_column_tiles_in_chunks_and_runs(rng, monkeypatch, every_call_parallel, dtype, chunks, runs,
                                                     n, c, hw, k, kernel, s, p, d, g):
    # the column tiles copy each chunk's input planes and grad into scratch buffers that keep the
    # previous chunk's values (chunks of 1 and 2 images here, the last of a run shorter or
    # longer); every split of a run's units and input channels between tasks gives the same bits
    from fastconv import _conv_grad

    monkeypatch.setattr(_conv_grad, "_chunks_and_runs", lambda images, most, sums: (chunks, runs))
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g)
    grad = rng.standard_normal(reference.conv2d(x, np.zeros((k, c // g, kh, kw), dtype), **kwargs).shape)
    grad = grad.astype(dtype)
    expected = reference.conv2d_grad_weight(grad, x, (k, c // g, kh, kw), **kwargs)
    first = grad_weight_tiles(grad, x, (k, c // g, kh, kw), "columns", **kwargs)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(first, expected, rtol=rtol * 10, atol=atol * 100)
    for threads, parts in [(2, None), (3, None), (2, (2, 1)), (3, (3, 2)), (2, (1, 3)), (1, (4, 2))]:
        if parts is not None:
            monkeypatch.setattr(_conv_grad, "_split_chunks", lambda *args, parts=parts: parts)
        with fastconv.num_threads(threads):
            np.testing.assert_array_equal(grad_weight_tiles(grad, x, (k, c // g, kh, kw), "columns", **kwargs), first)


@pytest.mark.parametrize("where", [(0, 0, 0, 0), (4, 2, 8, 15), (3, 1, 4, 0), (2, 0, 8, 7)])
@pytest.mark.parametrize("parts", [(1, 1), (2, 1), (1, 3)])
def test_grad_weight_column_tiles_find_an_inf_in_any_chunk(rng, monkeypatch, every_call_parallel, where, parts):
    # each task checks the input planes it copies: an inf in any image, channel or edge,
    # whichever task copies it, sends the call to the GEMM (the reference's infs and nans)
    from fastconv import _conv_grad
    from fastconv._geometry import conv_geometry

    monkeypatch.setattr(_conv_grad, "_chunks_and_runs", lambda images, most, sums: (3, 3))
    monkeypatch.setattr(_conv_grad, "_split_chunks", lambda *args: parts)
    x = rng.standard_normal((5, 3, 9, 16)).astype(np.float32)
    x[where] = np.inf
    grad = rng.standard_normal((5, 16, 9, 16)).astype(np.float32)
    plan = _conv_grad.GradWeightPlan(x.shape, (16, 3, 3, 3), conv_geometry((9, 16), 3, 1, 1), 1, np.float32,
                                     _conv_direct.current_level(), "columns")
    with fastconv.num_threads(2):
        assert plan.run(x, grad) is None
        got = fastconv.conv2d_grad_weight(grad, x, (16, 3, 3, 3), padding=1)
    assert_same_non_finite(got, reference.conv2d_grad_weight(grad, x, (16, 3, 3, 3), padding=1))


def test_grad_weight_column_chunks_and_runs():
    # chunks fit the scratch budget; runs hold at most PARTIAL_SUMS_BYTES of sums (or one run);
    # where each chunk is a run they come in multiples of RUN_MULTIPLE, as images allow
    from fastconv._conv_grad import PARTIAL_SUMS_BYTES, RUN_MULTIPLE, _chunks_and_runs

    for images in (1, 2, 7, 8, 9, 64, 100, 1000):
        for most in (1, 3, 20, 5000):
            for sums in (16, 1728, 150_000, 2_400_000, 10**8):
                chunks, runs = _chunks_and_runs(images, most, sums)
                assert -(-images // most) <= chunks <= images
                assert 1 <= runs <= chunks
                assert runs == 1 or runs * sums <= PARTIAL_SUMS_BYTES
                if runs == chunks and chunks < images:
                    assert chunks % RUN_MULTIPLE == 0 or chunks == max(1, PARTIAL_SUMS_BYTES // sums)
    assert _chunks_and_runs(64, 20, 1728) == (8, 8)  # cifar: 8 runs of 8 images
    assert _chunks_and_runs(32, 3, 2_359_296) == (11, 1)  # resnet-deep's 2.4 MB of sums: one run


def test_phase_planes_write_every_element_of_their_planes(rng):
    # the planes go into buffers that are not zeroed (np.empty): padding included, every
    # element of every plane is written, and nothing past the last plane
    from fastconv._conv import stride_phases
    from fastconv._geometry import conv_geometry as geometry_of

    # (column stride 2 with an odd left padding, rows of odd and even widths: the even columns
    # go to the second phase and each phase row has padding on one side only)
    for shape, kernel, s, p, d in [((2, 3, 7, 9), 3, 1, 1, 1), ((2, 2, 9, 11), 3, 2, 2, 1),
                                   ((1, 2, 10, 8), 3, 3, (1, 2), 2), ((2, 1, 5, 6), 2, (1, 2), 0, 1),
                                   ((2, 3, 8, 9), 3, 2, 1, 1), ((1, 2, 7, 8), 3, 2, (0, 3), 1)]:
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal(shape).astype(dtype)
            geo = geometry_of(shape[2:], kernel, s, p, d)
            ph = stride_phases(geo)
            (top, _), (left, _) = geo.padding
            sh, sw = geo.stride
            padded = np.zeros(shape[:2] + (ph.hq * sh, ph.wq * sw), dtype)
            padded[:, :, top:top + shape[2], left:left + shape[3]] = x
            # (n, c, i*sh + a, j*sw + b) -> (c, n, a, b, i, j): channel-major planes
            expected = padded.reshape(shape[:2] + (ph.hq, sh, ph.wq, sw)).transpose(1, 0, 3, 5, 2, 4).ravel()
            wide = np.repeat(x, 2, axis=3)  # (every other column of it: x, columns 2 items apart)
            for view in (x, x[:, :, :, ::-1].copy()[:, :, :, ::-1], wide[:, :, :, ::2]):
                out = np.full(expected.size + 5, np.nan, dtype)
                _conv_direct.phase_planes(view, out, top, left, sh, sw, ph.hq, ph.wq, True, 2)
                np.testing.assert_array_equal(out[:expected.size], expected)
                assert np.isnan(out[expected.size:]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 3, 5, 12])
@pytest.mark.parametrize("stride, padding, in_place", [(1, 0, True), (1, 1, False), (2, 1, False)])
def test_grad_weight_channel_tiles_in_row_chunks(rng, monkeypatch, every_call_parallel, dtype, rows, stride, padding,
                                                 in_place):
    # images whose block of the grad would not fit the cache are copied and summed a chunk of
    # rows at a time: the reference's values, the same bits for every thread count
    from fastconv import _conv_grad

    monkeypatch.setattr(_conv_grad, "OCTILE_BANDS_MAX_MACS", 0)  # the input laid out first (not in bands)
    monkeypatch.setattr(_conv_grad, "_scratch_chunk", lambda per_image, itemsize: 1)
    monkeypatch.setattr(_conv_grad, "_scratch_rows", lambda oh, per_row, itemsize: rows)
    x = rng.standard_normal((2, 5, 23, 21)).astype(dtype)
    kw = dict(stride=stride, padding=padding)
    grad = rng.standard_normal(reference.conv2d(x, np.zeros((40, 5, 3, 3), dtype), **kw).shape).astype(dtype)
    expected = reference.conv2d_grad_weight(grad, x, (40, 5, 3, 3), **kw)
    results = []
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            results.append(grad_weight_tiles(grad, x, (40, 5, 3, 3), "channels", **kw))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], expected, rtol=rtol * 10, atol=atol * 100)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def weight_gradient_case(rng, dtype, x_shape, shape, **kwargs):
    """A random input and grad for a weight of ``shape``, and the reference's dL/dw."""
    x = rng.standard_normal(x_shape).astype(dtype)
    grad = rng.standard_normal(reference.conv2d(x, np.zeros(shape, dtype), **kwargs).shape).astype(dtype)
    return x, grad, reference.conv2d_grad_weight(grad, x, shape, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("grad_bytes, input_bytes", [(1, 1), (3000, 1), (10**9, 1000), (10**9, 10**9)])
@pytest.mark.parametrize("n, c, hw, k, kernel, s, p, d, g", [
    (3, 5, (9, 16), 40, 3, 2, 1, 1, 1),       # stride 2, odd left padding, a partial block
    (2, 6, (17, 23), 12, (3, 2), (2, 3), ((2, 0), (1, 3)), (1, 2), 3),
    (2, 3, (20, 20), 17, 7, 2, 3, 1, 1),      # more than oc_cols taps per channel
    (4, 9, (12, 13), 64, 3, 1, 2, 2, 1),      # dilated, two blocks
])
def test_grad_weight_channel_tiles_in_bands(rng, monkeypatch, every_call_parallel, dtype, grad_bytes, input_bytes,
                                            n, c, hw, k, kernel, s, p, d, g):
    # the output-channel tiles that lay out each chunk of the input themselves: chunks of rows
    # (tiny budgets), of one or several images, a channel or every channel at a time; the
    # reference's values and the same bits for every thread count and every split of the tasks
    from fastconv import _conv_grad

    monkeypatch.setattr(_conv_grad, "OCTILE_BAND_GRAD_BYTES", grad_bytes)
    monkeypatch.setattr(_conv_grad, "OCTILE_BAND_INPUT_BYTES", input_bytes)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    shape = (k, c // g, kh, kw)
    x, grad, expected = weight_gradient_case(rng, dtype, (n, c) + hw, shape, stride=s, padding=p, dilation=d,
                                             groups=g)
    plan = _conv_grad.GradWeightPlan(x.shape, shape, conv_geometry(hw, (kh, kw), s, p, d), g, np.dtype(dtype),
                                     _conv_direct.current_level(), "channels")
    assert plan.bands is not None
    if grad_bytes == 1:
        assert plan.bands.rows == 1 and plan.bands.channels == 1
    if grad_bytes == 10**9:
        assert plan.bands.images == n and plan.bands.rows == grad.shape[2]
    results = []
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            results.append(plan.run(x, grad))
    blocks = -(-(k // g) // plan.block)
    for c_parts, b_parts in [(1, 2), (2, 1), (c // g, blocks)]:  # (pair slices, block ranges) of the tasks
        monkeypatch.setattr(_conv_grad, "_band_parts", lambda *args: (c_parts, min(b_parts, blocks)))
        with fastconv.num_threads(2):
            results.append(plan.run(x, grad))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], expected, rtol=rtol * 10, atol=atol * 100)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


# the output-channel weight tiles' tasks take slices of a group's (input channel, tap) pairs, as
# even as can be: few input channels (3 of 7x7 taps; one of 5x5) share evenly. Any number of
# slices, from one to more than the calls (empty slices), in the kernel that reads laid-out planes
# (7x7: more multiply-adds per input element than the bands take; an unpadded input read in place)
# and in the banded one (where a slice's first and last channels may be another slice's too):
# the same bits, the reference's values, on one and two threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, hw, k, kernel, p, g, bands", [
    (3, 3, (12, 12), 32, 7, 3, 1, False), (3, 1, (11, 11), 30, 5, 0, 1, False),
    (3, 3, (12, 12), 32, 5, 2, 1, True), (2, 4, (9, 9), 40, 3, 1, 2, True), (2, 2, (8, 8), 16, 3, 1, 1, True),
])
def test_grad_weight_tasks_take_slices_of_pairs(rng, level, monkeypatch, dtype, n, c, hw, k, kernel, p, g, bands):
    from fastconv import _conv_grad

    if level == "baseline":
        pytest.skip("no output-channel weight tiles at the baseline")
    level = _conv_direct.current_level()
    shape = (k, c // g, kernel, kernel)
    x, grad, expected = weight_gradient_case(rng, dtype, (n, c) + hw, shape, padding=p, groups=g)
    plan = _conv_grad.GradWeightPlan(x.shape, shape, conv_geometry(hw, kernel, 1, p), g, np.dtype(dtype), level,
                                     "channels")
    assert (plan.bands is not None) == bands
    most = _conv_direct.oc_tile_shape(level, np.dtype(dtype).char)[1]
    assert plan.pair_calls == -(-(c // g) * kernel * kernel // most)
    results = []
    for parts in sorted({1, 2, 3, plan.pair_calls, plan.pair_calls + 3}):
        if bands:
            monkeypatch.setattr(_conv_grad, "_band_parts", lambda *args, parts=parts: (parts, 1))
        else:
            monkeypatch.setattr(_conv_grad, "_slices_per_block", lambda *args, parts=parts: parts)
        for threads in (1, 2):
            with fastconv.num_threads(threads):
                results.append(plan.run(x, grad))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], expected, rtol=rtol * 10, atol=atol * 100)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


# the output-channel weight tiles sum the chunks of images of a single block in runs, each into its
# own weight gradient, added in order: any number of runs (up to one per image), with slices of
# the pairs too, gives the reference's values and the same bits on 1, 2 and 3 threads, in the
# kernel that reads laid-out planes and in the banded one; the rule depends on the shape only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bands", [False, True])
@pytest.mark.parametrize("n, c, hw, k, kernel, p, g", [
    (9, 3, (10, 10), 32, 7, 3, 1), (5, 2, (8, 8), 24, 1, 0, 1), (4, 4, (9, 9), 20, 3, 1, 2),
    (6, 5, (7, 7), 12, 3, 1, 1),
])
def test_grad_weight_channel_tiles_in_runs_of_images(rng, level, monkeypatch, dtype, bands, n, c, hw, k, kernel, p,
                                                     g):
    from fastconv import _conv_grad

    if level == "baseline":
        pytest.skip("no output-channel weight tiles at the baseline")
    if bands and kernel == 1:
        pytest.skip("1x1 kernels take no bands")
    shape = (k, c // g, kernel, kernel)
    x, grad, expected = weight_gradient_case(rng, dtype, (n, c) + hw, shape, padding=p, groups=g)
    rtol, atol = tolerance(dtype)
    monkeypatch.setattr(_conv_grad, "OCTILE_BANDS_MAX_MACS", 10**9 if bands else 0)
    plan = _conv_grad.GradWeightPlan(x.shape, shape, conv_geometry(hw, kernel, 1, p), g, np.dtype(dtype),
                                     _conv_direct.current_level(), "channels")
    units = g * -(-(k // g) // plan.block)
    assert (plan.bands is not None) == bands
    chunks = -(-n // (plan.bands.images if bands else plan.chunk_images))
    runs = _conv_grad.weight_image_runs(chunks, units, expected.nbytes)
    assert plan.image_runs == runs and (runs > 1) == (units < _conv_grad.WEIGHT_RUNS_BELOW_UNITS and chunks > 1)
    for runs in sorted({1, 2, 3, n}):
        plan.image_runs = runs
        results = []
        for threads in (1, 2, 3):
            with fastconv.num_threads(threads):
                results.append(plan.run(x, grad))
        np.testing.assert_allclose(results[0], expected, rtol=rtol * 10, atol=atol * 100)
        for other in results[1:]:
            np.testing.assert_array_equal(other, results[0])
    with pytest.raises(ValueError, match="per run"):  # more runs than images
        plan.image_runs = n + 1
        plan.run(x, grad)


def test_weight_image_runs_rule():
    from fastconv import _conv_grad

    small = 32 * 3 * 49 * 4
    assert _conv_grad.weight_image_runs(25, 1, small) == 8  # CS231n's 7x7 layer: one block, 25 chunks
    assert _conv_grad.weight_image_runs(5, 1, small) == 4
    assert _conv_grad.weight_image_runs(3, 1, small) == 2
    assert _conv_grad.weight_image_runs(1, 1, small) == 1  # one chunk: slices of the pairs only
    assert _conv_grad.weight_image_runs(50, _conv_grad.WEIGHT_RUNS_BELOW_UNITS, small) == 1
    budget = _conv_grad.PARTIAL_SUMS_BYTES
    assert _conv_grad.weight_image_runs(50, 1, budget // 4) == 4
    assert _conv_grad.weight_image_runs(50, 1, budget) == 1


def test_grad_weight_bands_kernel_refuses_taps_outside_its_planes(rng):
    # the kernel reads the planes of a chunk unchecked: it checks that they hold every tap first
    from fastconv._conv import stride_phases

    x = rng.standard_normal((2, 3, 10, 10)).astype(np.float32)
    grad = rng.standard_normal((2, 32, 5, 5)).astype(np.float32)
    geo = conv_geometry((10, 10), (3, 3), 2, 1, 1)
    ph = stride_phases(geo, 5 + 1)
    level = _conv_direct.current_level()
    kernel = _conv_direct.conv2d_grad_weight_octile_bands

    def run(taps=ph.taps, hb=ph.hq, wq=ph.wq, rows=5, images=1, dw_size=32 * 3 * 9):
        dw = np.zeros(dw_size, np.float32)
        kernel(x, 1, 1, 2, 2, hb, wq, taps, grad, dw, 1, 3, images, rows, 3, 1, 1, level, 1)
        return dw

    run()  # (the arguments are right)
    for bad in [dict(hb=ph.hq - 1), dict(wq=ph.wq - 1), dict(rows=6), dict(rows=3, images=2), dict(dw_size=10),
                dict(taps=ph.taps + ph.wq), dict(taps=ph.taps + 1), dict(taps=ph.taps - ph.taps.max() - 1)]:
        with pytest.raises(ValueError):
            run(**bad)


def test_grad_weight_row_chunks_only_for_large_images():
    from fastconv._conv_grad import _scratch_rows

    assert _scratch_rows(56, 56 * 32, 4) == 0  # a 56x56 block of 32 float32 channels: 0.4 MB
    assert _scratch_rows(112, 112 * 32, 4) == 18  # 1.6 MB: chunks of 256 KiB
    assert _scratch_rows(112, 112 * 16, 8) == 18
    assert _scratch_rows(2, 10**6, 8) == 1  # rows larger than the budget: one at a time


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_grad_weight_channel_tiles_read_only_windows(rng, value):
    # unlike the column tiles, these never meet an input outside a window, so an inf or nan
    # input reaches exactly the entries the reference gives it (no GEMM fallback needed)
    x = rng.standard_normal((2, 4, 10, 10)).astype(np.float32)
    x[1, 2, 0, 9] = value  # a corner: outside every window of the 3x3 stride-2 kernel's last column
    x[0, 1, 4, 4] = value
    grad = rng.standard_normal((2, 40, 4, 4)).astype(np.float32)
    expected = reference.conv2d_grad_weight(grad, x, (40, 4, 3, 3), stride=2)
    got = grad_weight_tiles(grad, x, (40, 4, 3, 3), "channels", stride=2)
    assert_same_non_finite(got, expected)


def test_one_vector_weight_tiles_only_where_built(rng):
    from fastconv._conv_grad import GradWeightPlan

    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    grad = rng.standard_normal((2, 16, 8, 8)).astype(np.float32)
    call = prepare_conv2d(x, np.zeros((16, 3, 3, 3), np.float32), None, 1, 1, 1, 1, "zeros", "NCHW", None)
    for level in range(len(LEVELS)):
        if _conv_direct.has_one_vector_weight_tiles(level):
            plan = GradWeightPlan(x.shape, (16, 3, 3, 3), call.geometry, 1, np.float32, level, "channels1")
            assert plan.one_vector and plan.block == _conv_direct.oc_tile_shape(level, "f")[0] // 2
        else:
            with pytest.raises(ValueError, match="one vector"):
                GradWeightPlan(x.shape, (16, 3, 3, 3), call.geometry, 1, np.float32, level, "channels1")
    planes = np.zeros(2 * 3 * 100 + 64, np.float32)
    dw = np.zeros(16 * 27, np.float32)
    if not _conv_direct.has_one_vector_weight_tiles(0):  # the kernel refuses too
        with pytest.raises(ValueError, match="one-vector"):
            _conv_direct.conv2d_grad_weight_octile(planes, 300, 100, np.zeros(9, np.intp), grad, 10, dw, 1, 3, 1,
                                                   1, 0, 1, True)


@pytest.mark.parametrize("oh, ow", [(5, 7), (3, 2), (1, 9)])
@pytest.mark.parametrize("chunk_images", [1, 2, 3])
def test_grad_weight_octile_one_run_of_pixels(rng, oh, ow, chunk_images):
    # a 1x1 kernel's planes with rows OW apart and images OH rows apart run each chunk's pixels
    # as one row; with rows 3 items longer (NaN there, never read) row by row: the same bits
    n, c, k = 3, 13, 20
    grad = rng.standard_normal((n, k, oh, ow)).astype(np.float32)
    x = rng.standard_normal((c, n, oh, ow)).astype(np.float32)  # channel-major planes
    padded = np.full((c, n, oh, ow + 3), np.nan, np.float32)
    padded[..., :ow] = x
    expected = reference.conv2d_grad_weight(grad, x.transpose(1, 0, 2, 3), (k, c, 1, 1))
    rtol, atol = tolerance(np.float32)
    for level in range(1, len(LEVELS)):
        for c_parts, threads in ((1, 1), (2, 2), (3, 3)):
            results = []
            for planes, row in ((x, ow), (padded, ow + 3)):
                flat = np.concatenate([planes.ravel(), np.zeros(64, np.float32)])
                dw = np.zeros(k * c, np.float32)
                _conv_direct.conv2d_grad_weight_octile(flat, oh * row, n * oh * row, np.zeros(1, np.intp), grad, row,
                                                       dw, 1, c, chunk_images, c_parts, level, threads)
                results.append(dw.reshape(k, c, 1, 1))
            np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol * 10)
            np.testing.assert_array_equal(results[0], results[1])


def test_nhwc_results_take_the_channel_tiles_where_their_blocks_are_full():
    """NHWC results: the output-channel tiles (which store pixels as their vectors hold them) wherever the
    filters fill at least 4/5 of their blocks; not at the baseline; the plan's choice follows."""
    from fastconv._geometry import conv_geometry

    assert not any(_conv.channel_tiles_store_pixels(k, np.float32, 0) for k in (8, 16, 32, 64))
    assert not _conv.channel_tiles_store_pixels(0, np.float32, len(LEVELS) - 1)
    cs231n = ((50, 3, 32, 32), (32, 3, 7, 7), conv_geometry((32, 32), 7, 1, 3))
    c3 = ((100, 6, 14, 14), (16, 6, 5, 5), conv_geometry((14, 14), 5))
    if LEVELS[-1] == "avx512":  # (blocks of 32 float32, 16 float64)
        fills = {k: _conv.channel_tiles_store_pixels(k, np.float32, 2) for k in (16, 25, 26, 30, 32, 48, 56, 64, 130)}
        assert fills == {16: False, 25: False, 26: True, 30: True, 32: True, 48: False, 56: True, 64: True,
                         130: True}
        assert _conv.channel_tiles_store_pixels(13, np.float64, 2) and not _conv.channel_tiles_store_pixels(
            12, np.float64, 2)
        for channels_last, expected in [(False, -1), (True, 2)]:  # CS231n's 7x7 layer: columns for NCHW
            plan = _conv.TiledConv(*cs231n, 1, "zeros", np.float32, 2, channels_last=channels_last)
            assert (plan.oc_level, plan.copies) == (expected, 0)
        # LeNet's C3 (16 filters: half a block) keeps the NCHW choice: the column tiles, with copies
        nchw, nhwc = (_conv.TiledConv(*c3, 1, "zeros", np.float32, 2, channels_last=cl) for cl in (False, True))
        assert (nhwc.oc_level, nhwc.copies) == (nchw.oc_level, nchw.copies) == (-1, 5)
    if "avx2" in LEVELS:  # (blocks of 16 float32, 8 float64)
        avx2 = LEVELS.index("avx2")
        assert _conv.channel_tiles_store_pixels(16, np.float32, avx2)
        assert not _conv.channel_tiles_store_pixels(6, np.float64, avx2)  # (3/4 of 8)
        assert _conv.channel_tiles_store_pixels(7, np.float64, avx2)
        plan = _conv.TiledConv(*c3, 1, "zeros", np.float32, avx2, channels_last=True)
        assert (plan.oc_level, plan.copies) == (avx2, 0)


def test_grad_weight_choice():
    from fastconv._conv_grad import choose_grad_weight_tiles

    assert choose_grad_weight_tiles(16, 9, np.float32, len(LEVELS) - 1) == (-1, 8)  # one channel of 3x3: few sums
    assert choose_grad_weight_tiles(256, 2304, np.float32, 0) == (-1, 8)  # the baseline: the column tiles
    if LEVELS[-1] == "avx512":
        assert choose_grad_weight_tiles(256, 2304, np.float32, 2) == (2, 32)  # resnet-deep
        assert choose_grad_weight_tiles(64, 576, np.float64, 2) == (2, 16)  # resnet-mid
        assert choose_grad_weight_tiles(16, 576, np.float32, 2, 64) == (2, 16)  # blocks of one vector
        # ... whatever the tasks: LeNet's C3 (6 channels of 5x5 taps: 11 calls over its pairs), one channel
        assert choose_grad_weight_tiles(16, 150, np.float32, 2, 11) == (2, 16)
        assert choose_grad_weight_tiles(12, 49, np.float32, 2, 4) == (2, 16)  # (3/4 of a vector)
        assert choose_grad_weight_tiles(16, 147, np.float32, 2, 1) == (-1, 8)  # one call: one task
        assert choose_grad_weight_tiles(32, 49, np.float32, 2, 4) == (2, 32)  # one channel of 7x7 taps
        assert choose_grad_weight_tiles(8, 576, np.float32, 2) == (-1, 8)  # half of one vector
        assert choose_grad_weight_tiles(32, 288, np.float32, 2) == (2, 32)  # dilated
        assert choose_grad_weight_tiles(64, 147, np.float32, 2, 3) == (2, 32)  # stem: from 32 sums
        assert choose_grad_weight_tiles(64, 27, np.float32, 2, 2) == (2, 32)  # 3x3 on RGB: from 18 sums
        assert choose_grad_weight_tiles(16, 27, np.float32, 2, 2) == (2, 16)  # cifar
        assert choose_grad_weight_tiles(64, 17, np.float32, 2, 2) == (-1, 8)  # too few
        assert choose_grad_weight_tiles(16, 27, np.float64, 2, 3) == (2, 16)  # float64: any depth
        assert choose_grad_weight_tiles(30, 25, np.float64, 2, 1) == (2, 16)  # two blocks: two tasks
        assert choose_grad_weight_tiles(16, 9, np.float64, 2, 1) == (-1, 8)  # one task: one thread
        # a pointwise layer whose input the output-channel tiles read in place: from 8 sums
        assert choose_grad_weight_tiles(48, 12, np.float32, 2, 12, True) == (2, 32)
        assert choose_grad_weight_tiles(48, 12, np.float32, 2, 12) == (-1, 8)
        assert choose_grad_weight_tiles(32, 4, np.float32, 2, 4, True) == (-1, 8)  # too few sums still
        assert choose_grad_weight_tiles(8, 16, np.float32, 2, 16, True) == (-1, 8)  # half of one vector
    if "avx2" in LEVELS:
        assert choose_grad_weight_tiles(32, 288, np.float32, 1) == (1, 16)  # dilated with AVX2
        assert choose_grad_weight_tiles(32, 27, np.float32, 1, 2) == (1, 16)
        assert choose_grad_weight_tiles(32, 9, np.float32, 1, 1) == (-1, 8)
        assert choose_grad_weight_tiles(64, 576, np.float32, 1) == (1, 16)


# ---- bands of rows (conv2d_packed pads and splits a band of rows at a time)

@pytest.mark.parametrize("budget", [1, 2000, 2**18])  # one row per band, a few rows, the whole image
@pytest.mark.parametrize("s, p, d, g, mode", [(1, 1, 1, 1, "zeros"), (2, 1, 1, 2, "zeros"), (1, 2, 2, 1, "reflect"),
                                              (3, ((2, 0), (1, 3)), (2, 1), 1, "zeros"),
                                              (2, ((0, 3), 2), 1, 1, "circular")])
@pytest.mark.parametrize("tiles", ["columns", "channels"])
def test_bands_of_rows(rng, monkeypatch, request, budget, s, p, d, g, mode, tiles):
    from functools import partial

    monkeypatch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=budget))
    monkeypatch.setattr(_conv, "TALL_BAND_BUDGETS", 1)  # bands of the budget, however short
    _conv.tiled_conv.cache_clear()  # plans are cached per shape: build this test's with its budget
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    x = rng.standard_normal((4, 4, 17, 13)).astype(np.float32)  # 4 images: one image per task
    w = rng.standard_normal((20, 4 // g, 4, 3)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    kw = dict(stride=s, padding=p, dilation=d, groups=g, padding_mode=mode)
    geometry = prepare_conv2d(x, w, b, s, p, d, g, mode, "NCHW", None).geometry
    band, rows = _conv.band_rows(geometry, 4, 4)
    assert (band == 1) if budget == 1 else (band < geometry.out_shape[0]) if budget == 2000 else \
        (band == geometry.out_shape[0])
    with fastconv.num_threads(1):  # at least two images per thread: the banded kernel
        got = run_tiles(x, w, b, tiles, **kw)
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(got, reference.conv2d(x, w, b, **kw), rtol=rtol, atol=atol * 10)


# A column stride of 2 splits each input row into its two column phases in one pass (even columns
# to one phase plane, odd to the other: fc_deinterleave, 4 float32 or 2 float64 pairs at a time,
# then the pairs left and an odd last column). Widths around those counts, every parity of the left
# padding, one or two row phases, bands of one row and the whole image, and the depthwise planes.
# An NHWC input reaches the kernel as a view whose columns lie C items apart: it takes the
# element-by-element copy, and must give the same bits.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 2, 3, 7, 8, 9, 10, 16, 17, 23])
@pytest.mark.parametrize("left", [0, 1, 2, 3])
@pytest.mark.parametrize("stride", [(1, 2), 2])
@pytest.mark.parametrize("budget", [1, 2**18])  # one row per band; the whole image
@pytest.mark.parametrize("groups", [1, 6])  # the banded kernel; the depthwise planes
def test_column_phases_split_in_one_pass(rng, monkeypatch, request, dtype, width, left, stride, budget, groups):
    from functools import partial

    monkeypatch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=budget))
    _conv.tiled_conv.cache_clear()
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    x = rng.standard_normal((3, 6, 7, width)).astype(dtype)
    w = rng.standard_normal((6, 6 // groups, 3, 3)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    kw = dict(stride=stride, padding=((1, 1), (left, 2)), groups=groups, algorithm="direct")
    with fastconv.num_threads(1):  # three images on one thread: the banded kernel
        got = fastconv.conv2d(x, w, b, **kw)
        nhwc = fastconv.conv2d(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), b, layout="NHWC", **kw)
    np.testing.assert_array_equal(nhwc.transpose(0, 3, 1, 2), got)
    del kw["algorithm"]
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(got, reference.conv2d(x, w, b, **kw), rtol=rtol, atol=atol * 10)


# Where a budget leaves bands no taller than the rows the kernel reaches below them, bands take
# up to TALL_BAND_BUDGETS budgets, of equal height: 8 channels of 40 columns at stride 2 make 2688
# bytes of input per output row; a budget of 3024 bytes gives one row (its halo another), 8 budgets
# eight rows, cut evenly: the 20 output rows make bands of 7, 7 and 6; no more input than the
# image's output (12 filters: 19200 bytes) leaves six rows, bands of 5; weights of more than 4
# budgets keep bands of one budget. Same tiles as the whole image: same bits.
def test_tall_bands_where_the_halo_is_as_tall(rng, monkeypatch, request):
    from functools import partial

    x = rng.standard_normal((3, 8, 40, 40)).astype(np.float32)
    w = rng.standard_normal((12, 8, 3, 3)).astype(np.float32)
    geometry = prepare_conv2d(x, w, None, 2, 1, 1, 1, "zeros", "NCHW", None).geometry
    assert _conv.band_rows(geometry, 8, 4, budget=3024) == (7, 8)
    assert _conv.band_rows(geometry, 8, 4, budget=3024, output_bytes=12 * 20 * 20 * 4) == (5, 6)
    assert _conv.band_rows(geometry, 8, 4, budget=3024, output_bytes=100) == (1, 2)  # one budget at least
    assert _conv.band_rows(geometry, 8, 4, budget=3024, weight_bytes=4 * 3024) == (7, 8)
    assert _conv.band_rows(geometry, 8, 4, budget=3024, weight_bytes=4 * 3024 + 1) == (1, 2)  # weights too large
    monkeypatch.setattr(_conv, "TALL_BAND_BUDGETS", 1)
    assert _conv.band_rows(geometry, 8, 4, budget=3024) == (1, 2)
    monkeypatch.undo()
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    results = []
    for budget in (3024, 2**20):
        monkeypatch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=budget))
        _conv.tiled_conv.cache_clear()
        with fastconv.num_threads(1):
            results.append(run_tiles(x, w, None, "auto", stride=2, padding=1))
    np.testing.assert_array_equal(results[0], results[1])
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(results[0], reference.conv2d(x, w, stride=2, padding=1), rtol=rtol, atol=atol * 10)


# a budget of one byte gives bands of one row, but blocks of at most 2 live channels run row tiles,
# so their bands hold 8 rows (the last one, of 6, overlaps the one before it: 38 = 4 x 8 + 6);
# bands of 10 rows (13 with 2 kernel rows) leave a last one of 8. Every band runs the tiles the
# whole image would run, so the results are the same bits on one thread and on two (which share
# the image's bands, or with the whole image's budget lay it out at once).
@pytest.mark.parametrize("budget", [1, 40000, 2**18])  # bands of 8 rows, of 10, the whole image
@pytest.mark.parametrize("k", [1, 2, 3, 10])
@pytest.mark.parametrize("kernel", [(5, 3), (2, 3)])  # rows reused; the plain row tiles
def test_bands_of_rows_with_row_tiles(rng, monkeypatch, request, every_call_parallel, budget, k, kernel):
    from functools import partial

    monkeypatch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=budget))
    _conv.tiled_conv.cache_clear()
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    kh, kw = kernel
    x = rng.standard_normal((1, 30, 35 + kh, 21)).astype(np.float32)
    w = rng.standard_normal((k, 30, kh, kw)).astype(np.float32)
    call = prepare_conv2d(x, w, None, 1, 1, 1, 1, "zeros", "NCHW", None)
    assert call.geometry.out_shape[0] == 38
    band = _conv.tiled_conv(x.shape, w.shape, call.geometry, 1, "zeros", call.compute_dtype,
                            _conv_direct.current_level(), "columns").band
    assert band == {1: 8, 40000: 10 if kh == 5 else 13, 2**18: 38}[budget]
    with fastconv.num_threads(1):
        got = run_tiles(x, w, None, "columns", padding=1)
        channels = run_tiles(x, w, None, "channels", padding=1)
    with fastconv.num_threads(2):
        np.testing.assert_array_equal(run_tiles(x, w, None, "columns", padding=1), got)
    rtol, atol = tolerance(np.float32)
    if kh == 5:
        np.testing.assert_allclose(got, channels, rtol=rtol, atol=atol * 10)
    else:
        np.testing.assert_array_equal(got, channels)
    np.testing.assert_allclose(got, reference.conv2d(x, w, padding=1), rtol=rtol, atol=atol * 10)


# With two threads the banded kernel shares out bands, not images: four images of 38 output rows
# in bands of one row (38 tasks each), of 8 rows for blocks with row tiles (the short last band of
# 6 overlaps the one before it: the two make one task, so no two threads write a row), of 10 or 13
# rows (a last band of 8), or whole. The bands, and so the bits, are those of one thread.
@pytest.mark.parametrize("budget", [1, 40000, 2**18])
@pytest.mark.parametrize("k", [2, 10])  # row tiles for the last block; column tiles only
@pytest.mark.parametrize("kernel", [(5, 3), (2, 3)])
@pytest.mark.parametrize("tiles", ["columns", "channels"])
def test_threads_share_bands_not_images(rng, monkeypatch, request, every_call_parallel, budget, k, kernel, tiles):
    from functools import partial

    monkeypatch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=budget))
    _conv.tiled_conv.cache_clear()
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    kh, kw = kernel
    x = rng.standard_normal((4, 6, 35 + kh, 21)).astype(np.float32)  # 4 images: 2 per thread or more
    w = rng.standard_normal((k, 6, kh, kw)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    with fastconv.num_threads(1):
        one = run_tiles(x, w, b, tiles, padding=1)
    with fastconv.num_threads(2):
        two = run_tiles(x, w, b, tiles, padding=1)
    np.testing.assert_array_equal(two, one)
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(two, reference.conv2d(x, w, b, padding=1), rtol=rtol, atol=atol * 10)


@pytest.fixture
def laid_out(monkeypatch):
    """A list that gets an item each time a call lays its whole batch out (``_conv.tile_input``)."""
    calls = []
    tile_input = _conv.tile_input
    monkeypatch.setattr(_conv, "tile_input", lambda *args, **kw: calls.append(1) or tile_input(*args, **kw))
    return calls


# Few images on two threads share the banded kernel's tasks (a band of one image each) evenly:
# where their count is odd the images take more bands. 6 channels of 23 padded columns take 552
# bytes a row: a budget of 12 rows leaves bands of 10 (4 tasks), one of 13 bands of 11, cut to
# equal heights: 10 again (not 11, 11, 11 and 7); one of 16 bands of 14, 14 and 12 (3 tasks), so
# two threads take bands of 10; the whole image (one task an image) two bands of 20 on an odd
# number of images. Two filters in column tiles run row tiles of 8 rows: 12 rows make no two
# bands of 8, so one image there takes the whole-batch layout (tile_input). Either way the bits
# of one thread.
@pytest.mark.parametrize("n, k, tiles, rows, band, two", [
    (1, 10, "channels", 12, 10, 10), (1, 10, "columns", 13, 10, 10), (1, 10, "channels", 16, 14, 10),
    (1, 10, "columns", 100, 40, 20), (3, 10, "channels", 100, 40, 20), (2, 10, "columns", 100, 40, 40),
    (3, 10, "channels", 16, 14, 10),  # 9 tasks: 12 of 10 rows instead
    (7, 10, "channels", 16, 14, 14),  # 21 tasks: two threads take 11 rounds for 10.5 (UNEVEN_TASKS)
    (1, 2, "columns", 100, 12, None), (3, 2, "columns", 100, 12, None),
])
def test_few_images_share_even_bands_between_threads(rng, level, monkeypatch, request, every_call_parallel, laid_out,
                                                     n, k, tiles, rows, band, two):
    from functools import partial

    monkeypatch.setattr(_conv, "band_rows", partial(_conv.band_rows, budget=rows * 552))
    _conv.tiled_conv.cache_clear()
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    h = 40 if k > 2 else 12
    x = rng.standard_normal((n, 6, h, 21)).astype(np.float32)
    w = rng.standard_normal((k, 6, 3, 3)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    geometry = prepare_conv2d(x, w, b, 1, 1, 1, 1, "zeros", "NCHW", None).geometry
    plan = _conv.tiled_conv(x.shape, w.shape, geometry, 1, "zeros", np.dtype(np.float32),
                            _conv_direct.current_level(), tiles)
    assert plan.band == band and plan.banded(1)[0] == band and plan.banded(2)[0] == two
    if two is not None:  # the phase rows a band of `two` rows reaches: the 2 below it
        assert plan.banded(2)[1].hq == two + 2
    with fastconv.num_threads(1):
        one = run_tiles(x, w, b, tiles, padding=1)
    assert not laid_out
    with fastconv.num_threads(2):
        parallel = fastconv.get_num_threads() == 2  # (a serial build runs one thread: bands)
        np.testing.assert_array_equal(run_tiles(x, w, b, tiles, padding=1), one)
    assert bool(laid_out) == (two is None and parallel)
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(one, reference.conv2d(x, w, b, padding=1), rtol=rtol, atol=atol * 10)


# Packed weights larger than the L2 cache (here one of 4 KiB) where the bands make fewer than two
# tasks a thread take the whole-batch layout, each thread a share of the blocks of filters over
# every image (blocks_outer); four images take bands. The bits of one thread, and of the layout
# image by image.
@pytest.mark.parametrize("tiles", ["columns", "channels"])
@pytest.mark.parametrize("n, groups, k, laid_out_on_two", [(1, 1, 40, True), (3, 1, 40, True), (3, 2, 36, True),
                                                           (4, 1, 40, False)])
def test_large_weights_on_few_images_take_blocks_over_images(rng, level, monkeypatch, request, every_call_parallel,
                                                             laid_out, tiles, n, groups, k, laid_out_on_two):
    monkeypatch.setattr(_conv, "L2_BYTES", 4096)
    _conv.tiled_conv.cache_clear()
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    x = rng.standard_normal((n, 12, 9, 11)).astype(np.float32)
    w = rng.standard_normal((k, 12 // groups, 3, 3)).astype(np.float32)  # 15-17 KB of weights
    b = rng.standard_normal(k).astype(np.float32)
    call = prepare_conv2d(x, w, b, 1, 1, 1, groups, "zeros", "NCHW", None)
    plan = _conv.tiled_conv(x.shape, w.shape, call.geometry, groups, "zeros", call.compute_dtype,
                            _conv_direct.current_level(), tiles)
    assert plan.blocks_outer and plan.band == 9 and plan.banded(1)[0] == 9
    assert plan.banded(2)[0] == (None if laid_out_on_two else 9)
    with fastconv.num_threads(1):
        one = run_tiles(x, w, b, tiles, padding=1, groups=groups)
    assert not laid_out
    with fastconv.num_threads(2):
        parallel = fastconv.get_num_threads() == 2  # (a serial build runs one thread: bands)
        np.testing.assert_array_equal(run_tiles(x, w, b, tiles, padding=1, groups=groups), one)
        assert bool(laid_out) == (laid_out_on_two and parallel)
        plan.blocks_outer = False
        np.testing.assert_array_equal(run_tiles(x, w, b, tiles, padding=1, groups=groups), one)
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(one, reference.conv2d(x, w, b, padding=1, groups=groups), rtol=rtol, atol=atol * 10)


def test_depthwise_never_lays_the_batch_out(rng, every_call_parallel, laid_out):
    # one image on two threads: the depthwise kernel, which pads each plane in cache
    x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    with fastconv.num_threads(2):
        got = fastconv.conv2d(x, w, padding=1, groups=16)
    assert not laid_out
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(got, reference.conv2d(x, w, padding=1, groups=16), rtol=rtol, atol=atol * 10)


def test_depthwise_work_counts_planes():
    # the work threads_for weighs: a depthwise plan's multiply-adds / 3 with 64 pixels more a plane
    # (dense plans: / 16). One image of 128 channels of 28x28 (60 us at one thread) takes two
    # threads, of 32 channels (25 us) one
    from fastconv._threads import threads_for

    x, w = np.zeros((1, 128, 28, 28), np.float32), np.zeros((128, 1, 3, 3), np.float32)
    call = prepare_conv2d(x, w, None, 1, 1, 1, 128, "zeros", "NCHW", None)
    plan = _conv.tiled_conv(x.shape, w.shape, call.geometry, 128, "zeros", call.compute_dtype,
                            _conv_direct.current_level())
    assert plan.depthwise and plan.work == _conv.depthwise_work(1, 128, 784, 9) == 128 * 848 * 3
    with fastconv.num_threads(2):
        assert threads_for(plan.work) == fastconv.get_num_threads()  # (1 in a serial build)
        assert threads_for(_conv.depthwise_work(1, 32, 784, 9)) == 1


def test_even_bands():
    # (rows, band, images, threads[, min_band]) -> rows per band
    assert _conv.even_bands(14, 14, 4, 2) == 14 and _conv.even_bands(14, 14, 32, 2) == 14  # even already
    assert _conv.even_bands(14, 14, 5, 2) == 7 and _conv.even_bands(14, 14, 1, 2) == 7  # half images
    assert _conv.even_bands(14, 14, 21, 2) == 14  # 22 tasks' time for 21: within UNEVEN_TASKS
    assert _conv.even_bands(14, 14, 19, 2) == 7  # 20 for 19: not
    assert _conv.even_bands(40, 14, 1, 2) == 10  # 3 bands (14, 14, 12) -> 4 of 10
    assert _conv.even_bands(14, 14, 1, 3) == 5  # two bands of 7 make 2 tasks; three of 5, 3
    assert _conv.even_bands(14, 14, 1, 1) == 14
    # bands of at least 8 rows: 12 rows make one task of 8 and 4 (the short last band overlaps)
    assert _conv.even_bands(12, 12, 1, 2, min_band=8) is None  # 1 task: the whole-batch layout
    assert _conv.even_bands(12, 12, 5, 2, min_band=8) == 12  # 5 tasks, uneven but two a thread
    assert _conv.even_bands(16, 16, 1, 2, min_band=8) == 8
    assert _conv.even_bands(1, 1, 3, 2) is None and _conv.even_bands(1, 1, 5, 2) == 1  # one row: no more bands


def test_band_tasks_merge_a_short_last_band():
    # 38 rows in bands of 8: the last band, of 6 rows, runs from row 30 (overlapping the one before:
    # a row tile takes 8) in one task with it; bands of 10 leave a last one of 8, a task of its own
    assert [_conv_direct.band_tasks(38, band) for band in (1, 8, 10, 38)] == [38, 4, 4, 1]
    assert _conv_direct.band_tasks(5, 4) == 2  # (a band shorter than a row tile merges nothing)
    for band in (0, 39):
        with pytest.raises(ValueError, match="at least one row, and at most"):
            _conv_direct.band_tasks(38, band)


def test_packed_kernel_checks_the_band_holds_every_tap():
    x = np.zeros((1, 2, 8, 8), np.float32)
    w = np.zeros((8, 2, 3, 3), np.float32)
    out = np.zeros((1, 8, 6, 6), np.float32)
    geometry = prepare_conv2d(x, np.zeros((8, 2, 3, 3), np.float32), None, 1, 0, 1, 1, "zeros", "NCHW", None).geometry
    ph = _conv.stride_phases(geometry, 4)  # planes of 4 rows: a band of 2 rows and the 2 below it
    _conv_direct.conv2d_packed(x, w, np.zeros(8, np.float32), out, 1, 2, 0, 0, 1, 1, 2, 4, ph.wq, ph.taps, 1)
    with pytest.raises(ValueError, match="do not hold every tap"):  # 3 rows need 5 phase rows
        _conv_direct.conv2d_packed(x, w, np.zeros(8, np.float32), out, 1, 2, 0, 0, 1, 1, 3, 4, ph.wq, ph.taps, 1)


@pytest.mark.parametrize("tiles", ["channels", "columns"])
@pytest.mark.parametrize("n, c, k, hw, stride, padding, dilation, groups", [
    (8, 6, 40, 7, 1, 1, 1, 1),  # tasks of 2 and 4 images (even_images leaves no task short)
    (6, 12, 24, 9, 2, 1, 1, 3),  # four phases, groups
    (4, 8, 19, (6, 11), 1, ((2, 0), (1, 2)), 2, 1),  # dilation, asymmetric padding, a partial block
])
def test_banded_tasks_of_several_images_give_the_same_bits(rng, level, every_call_parallel, monkeypatch, request,
                                                           tiles, n, c, k, hw, stride, padding, dilation, groups):
    # where the weights do not stay in the L2 cache, a banded task lays out several whole images and
    # runs each block of filters over all of them: the same tiles on the same inputs
    h, w_ = (hw, hw) if isinstance(hw, int) else hw
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    w = rng.standard_normal((k, c // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = {}
    request.addfinalizer(clear_conv_plans)
    for most in (1, 2, 3, 4):  # (with two threads, `most` images a task where they share evenly)
        monkeypatch.setattr(_conv, "BAND_IMAGES_WEIGHTS", 0 if most > 1 else 10**9)
        monkeypatch.setattr(_conv, "BAND_IMAGES_MOST", most)
        clear_conv_plans()
        plan = _conv.tiled_conv(x.shape, w.shape, prepare_conv2d(x, w, b, stride, padding, dilation, groups, "zeros",
                                                                  "NCHW", None).geometry, groups, "zeros",
                                np.dtype(np.float32), _conv_direct.current_level(), tiles)
        assert plan.band_images == most
        for threads in (1, 2):
            with fastconv.num_threads(threads):
                got = run_tiles(x, w, b, tiles, **kw)
            expected.setdefault(threads, got)
            np.testing.assert_array_equal(got, expected[threads])
    np.testing.assert_array_equal(expected[2], expected[1])
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(expected[1], reference.conv2d(x, w, b, **kw), rtol=rtol, atol=atol * 10)


def test_packed_kernel_takes_several_images_only_as_whole_bands(rng, level):
    # 5 images in tasks of 2, 3 or 4 leave a short last task; more than 5 make one task
    x = rng.standard_normal((5, 2, 8, 8)).astype(np.float32)
    w = rng.standard_normal((8, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    geometry = prepare_conv2d(x, w, None, 1, 0, 1, 1, "zeros", "NCHW", None).geometry
    whole, band = _conv.stride_phases(geometry), _conv.stride_phases(geometry, 4)
    for oc_level in (-1, _conv_direct.current_level()):
        expected = np.full((5, 8, 6, 6), np.nan, np.float32)
        _conv_direct.conv2d_packed(x, w, b, expected, 1, 2, 0, 0, 1, 1, 6, whole.hq, whole.wq, whole.taps, 1,
                                   oc_level)
        np.testing.assert_allclose(expected, reference.conv2d(x, w, b), rtol=1e-5, atol=1e-5)
        for images, threads in itertools.product((2, 3, 4, 5, 6), (1, 2)):
            out = np.full_like(expected, np.nan)
            _conv_direct.conv2d_packed(x, w, b, out, 1, 2, 0, 0, 1, 1, 6, whole.hq, whole.wq, whole.taps, threads,
                                       oc_level, None, images)
            np.testing.assert_array_equal(out, expected)
    out = np.zeros((5, 8, 6, 6), np.float32)
    for images in (0, -1):
        with pytest.raises(ValueError, match="several whose bands are whole images"):
            _conv_direct.conv2d_packed(x, w, b, out, 1, 2, 0, 0, 1, 1, 6, whole.hq, whole.wq, whole.taps, 1, -1,
                                       None, images)
    with pytest.raises(ValueError, match="several whose bands are whole images"):  # bands of 2 of the 6 rows
        _conv_direct.conv2d_packed(x, w, b, out, 1, 2, 0, 0, 1, 1, 2, band.hq, band.wq, band.taps, 1, -1, None, 2)
    with pytest.raises(ValueError, match="at most the output's"):  # a band taller than the output
        _conv_direct.conv2d_packed(x, w, b, out, 1, 2, 0, 0, 1, 1, 7, 9, whole.wq, whole.taps, 1)


def test_band_images_rule():
    mib = 1 << 20
    # 512 channels of 3x3 on 7x7, float32, blocks of 32: 9 MiB of weights, 590 KiB a block, 162 KiB an image
    assert _conv.band_images(162 << 10, 590 << 10, 9 * mib, 2 * mib) == 4
    assert _conv.band_images(162 << 10, 1500 << 10, 9 * mib, 2 * mib) == 1  # no room beside the block
    assert _conv.band_images(400 << 10, 590 << 10, 9 * mib, 2 * mib) == 2
    assert _conv.band_images(162 << 10, 590 << 10, 4 * mib, 2 * mib) == 1  # weights within two L2 caches
    assert _conv.band_images(162 << 10, 590 << 10, 9 * mib, None) == 1  # L2 unknown
    assert _conv.even_images(4, 32, 2) == 4 and _conv.even_images(4, 12, 2) == 3 and _conv.even_images(4, 6, 2) == 3
    assert _conv.even_images(4, 5, 1) == 1 and _conv.even_images(4, 5, 2) == 1 and _conv.even_images(1, 32, 2) == 1
    assert _conv.even_images(3, 9, 1) == 3 and _conv.even_images(4, 10, 2) == 1


# ---- depthwise 3x3: one plane at a time, its weights in registers

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 3, 4, 7, 8, 9, 15, 16, 17, 28, 33])
@pytest.mark.parametrize("s, p, d", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, ((0, 1), (2, 0)), (1, 2))])
def test_depthwise_3x3_planes(rng, level, every_call_parallel, dtype, width, s, p, d):
    x = rng.standard_normal((3, 11, 6, width)).astype(dtype)  # 11 channels: a partial block of 8
    w = rng.standard_normal((11, 1, 3, 3)).astype(dtype)
    b = rng.standard_normal(11).astype(dtype)
    kw = dict(stride=s, padding=p, dilation=d, groups=11)
    try:
        expected = reference.conv2d(x, w, b, **kw)
    except ValueError:  # the kernel does not fit this narrow an input
        return
    rtol, atol = tolerance(dtype)
    results = []
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            results.append(fastconv.conv2d(x, w, b, **kw))
    np.testing.assert_allclose(results[0], expected, rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(results[1], results[0])


def test_unknown_tile_name_is_refused(rng):
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="tiles must be one of"):
        run_tiles(x, w, None, "rows")


# ---- depthwise weight gradient: blocks of channels read image by image

@pytest.mark.parametrize("c", [1, 5, 19, 40])  # one block, a partial block, 8 + 8 + 3, five blocks
@pytest.mark.parametrize("s, p, d", [(1, 1, 1), (2, 1, 1), (1, 2, 2)])
@pytest.mark.parametrize("n, hw", [(3, (9, 11)), (4, (40, 40))])  # one chunk; a chunk per image
def test_depthwise_grad_weight_channel_blocks(rng, monkeypatch, every_call_parallel, c, s, p, d, n, hw):
    # the channel blocks depend on the thread count; the chunks of images, which group the
    # sums, must not, or the results would differ between thread counts
    from fastconv import _conv_grad

    x = rng.standard_normal((n, c) + hw)
    kw = dict(stride=s, padding=p, dilation=d, groups=c)
    grad = rng.standard_normal(reference.conv2d(x, np.zeros((c, 1, 3, 3)), **kw).shape)
    expected = reference.conv2d_grad_weight(grad, x, (c, 1, 3, 3), **kw)
    for chunk in (None, 1):  # the default chunk, and one image per chunk
        if chunk:
            monkeypatch.setattr(_conv_grad, "_scratch_chunk", lambda per_image, itemsize: chunk)
        results = []
        for threads in (1, 2, 3):  # different channel blocks
            with fastconv.num_threads(threads):
                results.append(fastconv.conv2d_grad_weight(grad, x, (c, 1, 3, 3), **kw))
        np.testing.assert_allclose(results[0], expected, rtol=1e-10, atol=1e-10)
        for other in results[1:]:
            np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [1, 7, (3, 5), 16_383, 16_384, 300_000, (70, 1001)])
def test_packed_buffers_start_on_a_cache_line(dtype, shape):
    # the kernels' numpy-side scratch (packed weights, phase planes): of its shape, and from
    # ALIGN_FROM bytes on starting on a cache line
    from fastconv._arrays import ALIGN_FROM, CACHE_LINE, empty_aligned

    expected_shape = (shape,) if isinstance(shape, int) else shape
    buf = empty_aligned(shape, dtype)
    assert buf.dtype == dtype and buf.shape == expected_shape
    assert buf.flags.c_contiguous and buf.flags.writeable
    if buf.nbytes >= ALIGN_FROM:
        assert buf.ctypes.data % CACHE_LINE == 0


# ---- pointwise convolutions: short rows merged into long ones (merged_rows)

def test_merged_rows_rule():
    from fastconv._geometry import conv_geometry

    def merge(hw, channels=16, itemsize=4, kernel=(1, 1), **kw):
        return _conv.merged_rows(conv_geometry(hw, kernel, **kw), kernel, channels, itemsize)

    assert merge((56, 56)) == 4  # 224 columns; 8 rows would be 448
    assert merge((28, 28)) == 7  # 196; the next divisor, 14, would be 392
    assert merge((7, 7)) == 7 and merge((14, 14)) == 14 and merge((13, 13)) == 13  # whole planes
    assert merge((16, 16)) == 16 and merge((1, 64)) == 1
    assert merge((17, 17)) == 1  # 289 columns is too long, and 17 is prime
    assert merge((3, 64)) == 3 and merge((8, 65)) == 1  # up to 64 columns a row merges
    assert merge((112, 112)) == 1  # long rows stay
    assert merge((10, 1)) == 10
    # not pointwise, or not reading pixel (oh, ow) for output (oh, ow) alone
    assert merge((28, 28), kernel=(1, 3)) == merge((28, 28), kernel=(3, 3)) == 1
    assert merge((28, 28), stride=2) == merge((28, 28), padding=1) == 1
    assert merge((28, 28), dilation=3) == 7  # a 1x1 kernel has no gaps to dilate
    # one output column (stride 2 on 2 columns resolves to stride 1): the second column is never
    # read, so image rows and output rows differ (found by hypothesis)
    assert conv_geometry((2, 2), 1, (1, 2)).out_shape == (2, 1) and merge((2, 2), stride=(1, 2)) == 1
    # a merged row's input stays within a band: 1024 float64 channels take 8 KiB a column
    assert merge((14, 14), channels=1024, itemsize=8) == 2
    assert merge((14, 14), channels=1024, itemsize=4) == 7
    assert merge((14, 14), channels=10**6, itemsize=8) == 1


def clear_conv_plans():
    """Forget every plan that holds a :class:`~fastconv._conv.TiledConv` (the public calls' too)."""
    from fastconv import _conv_grad

    for cache in (_conv.tiled_conv, _conv_grad.grad_input_plan):
        cache.cache_clear()
    for plans in (_conv._PLANS, _conv_grad._GRAD_INPUT_PLANS):
        plans.clear()


def unmerged(monkeypatch, request):
    """Build the tiles' plans without merged rows until the test ends."""
    monkeypatch.setattr(_conv, "merged_rows", lambda *args: 1)
    clear_conv_plans()
    request.addfinalizer(clear_conv_plans)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, k, hw, groups", [
    (3, 5, 7, (7, 7), 1), (2, 16, 40, (28, 28), 1), (2, 3, 16, (32, 32), 1), (1, 4, 9, (13, 13), 1),
    (2, 8, 12, (12, 10), 2), (1, 33, 64, (6, 5), 1), (2, 6, 9, (64, 3), 3),
])
def test_pointwise_rows_merged(rng, level, monkeypatch, request, every_call_parallel, dtype, n, c, k, hw, groups):
    # merged rows give the reference's values, and the bits of the unmerged tiles (each output
    # still sums its channels in the same order), for 1-3 threads and the input and its gradient
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    w = rng.standard_normal((k, c // groups, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    grad = rng.standard_normal((n, k) + hw).astype(dtype)
    clear_conv_plans()
    assert _conv.tiled_conv(x.shape, w.shape, prepare_conv2d(x, w, b, 1, 0, 1, groups, "zeros", "NCHW", None).geometry,
                            groups, "zeros", np.dtype(dtype), _conv_direct.current_level()).merge > 1
    kw = dict(groups=groups)
    results = {}
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            results[threads] = (fastconv.conv2d(x, w, b, **kw), fastconv.conv2d_grad_input(grad, w, x.shape, **kw))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[1][0], reference.conv2d(x, w, b, **kw), rtol=rtol, atol=atol * 10)
    np.testing.assert_allclose(results[1][1], reference.conv2d_grad_input(grad, w, x.shape, **kw),
                               rtol=rtol, atol=atol * 10)
    unmerged(monkeypatch, request)
    expected = fastconv.conv2d(x, w, b, **kw), fastconv.conv2d_grad_input(grad, w, x.shape, **kw)
    for got in results.values():
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("x_shape, stride, padding", [
    ((1, 1, 2, 2), (1, 2), "same"),  # found by hypothesis (integers run float64 tiles)
    ((2, 3, 5, 3), (1, 3), 0),
    ((2, 3, 3, 6), (2, 4), 0),
])
def test_pointwise_one_output_column_is_not_merged(rng, x_shape, stride, padding):
    # an output one column wide resolves to stride 1 and leaves input columns unread: its rows
    # are not the image's, so they must not merge
    x = rng.integers(-5, 5, x_shape)
    w = rng.integers(-3, 3, (4, x_shape[1], 1, 1))
    expected = reference.conv2d(x, w, stride=stride, padding=padding)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, stride=stride, padding=padding), expected)
    np.testing.assert_array_equal(fastconv.conv2d(x.astype(float), w.astype(float), stride=stride, padding=padding),
                                  expected)
    grad = rng.integers(-5, 5, expected.shape).astype(float)
    np.testing.assert_array_equal(
        fastconv.conv2d_grad_input(grad, w.astype(float), x_shape, stride=stride, padding=padding),
        reference.conv2d_grad_input(grad, w.astype(float), x_shape, stride=stride, padding=padding))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_rows_merged_from_any_strides(rng, level, dtype):
    # the merged view of an input whose rows are not adjacent in memory (a slice, NHWC) is a
    # copy; results and out= as for a contiguous input
    big = rng.standard_normal((2, 6, 14, 30)).astype(dtype)
    x = big[:, ::2, :, 1::2]  # (2, 3, 14, 15): neither rows nor planes adjacent
    w = rng.standard_normal((10, 3, 1, 1)).astype(dtype)
    rtol, atol = tolerance(dtype)
    expected = reference.conv2d(x, w)
    np.testing.assert_allclose(fastconv.conv2d(x, w), expected, rtol=rtol, atol=atol * 10)
    out = np.full(expected.shape, np.nan, dtype)
    assert fastconv.conv2d(x, w, out=out) is out
    np.testing.assert_array_equal(out, fastconv.conv2d(np.ascontiguousarray(x), w))
    nhwc = x.transpose(0, 2, 3, 1)
    hwio = w.transpose(2, 3, 1, 0)
    np.testing.assert_allclose(fastconv.conv2d(nhwc, hwio, layout="NHWC"), expected.transpose(0, 2, 3, 1),
                               rtol=rtol, atol=atol * 10)


@pytest.mark.parametrize("stride", [2, 3])
def test_strided_pointwise_input_gradient_merges_its_phase(rng, stride):
    # a 1x1 kernel with stride s reaches one phase of the input: a stride-1 pointwise
    # convolution of the grad, whose rows merge; the other phases get zeros
    from fastconv import _conv_grad
    from fastconv._geometry import conv_geometry

    x_shape = (2, 5, 28, 28)
    w = rng.standard_normal((12, 5, 1, 1))
    grad = rng.standard_normal(reference.conv2d(np.zeros(x_shape), w, stride=stride).shape)
    got = fastconv.conv2d_grad_input(grad, w, x_shape, stride=stride)
    np.testing.assert_allclose(got, reference.conv2d_grad_input(grad, w, x_shape, stride=stride),
                               rtol=1e-12, atol=1e-12)
    plan = _conv_grad.grad_input_plan(grad.shape, w.shape, conv_geometry(x_shape[2:], 1, stride), 1,
                                      np.dtype(np.float64), _conv_direct.current_level())
    # the phase's grad is 14x14 (stride 2) or 10x10 (stride 3): one row of a whole plane
    assert [phase.tiled.merge for phase in plan.phases] == [{2: 14, 3: 10}[stride]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, k, hw, kernel, stride, padding, dilation, groups", [
    (2, 16, 32, 12, 3, 1, 1, 1, 1),  # one phase, bands of rows
    (1, 16, 32, 12, 3, 1, 1, 1, 1),  # one image: the batch laid out at once at two threads
    (3, 8, 24, 11, 3, 2, 1, 1, 1),  # four phases with 4, 2, 2 and 1 taps
    (2, 12, 18, 10, (2, 3), (2, 3), 0, 1, 3),  # groups, phases of sub-kernels
    (2, 64, 64, 14, 1, 2, 0, 1, 1),  # a strided 1x1 kernel: one pointwise phase
    (2, 16, 16, 13, 3, 1, 2, 2, 1),  # dilation
    (2, 8, 40, 9, (3, 2), 1, ((2, 0), (1, 1)), (2, 1), 2),  # asymmetric padding, groups
])
def test_input_gradient_tiles_pack_the_adjoint_from_the_weight(rng, every_call_parallel, dtype, n, c, k, hw,
                                                                kernel, stride, padding, dilation, groups):
    # each phase's tiles pack the adjoint's weights straight from the forward weight: the same
    # bits as running them on the reversed, transposed copy of the phase's taps
    from fastconv import _conv_grad

    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x_shape = (n, c, hw, hw)
    w = rng.standard_normal((k, c // groups, kh, kw)).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    grad = rng.standard_normal(reference.conv2d(np.zeros(x_shape), w, **kwargs).shape).astype(dtype)
    got = fastconv.conv2d_grad_input(grad, w, x_shape, **kwargs)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(got, reference.conv2d_grad_input(grad, w, x_shape, **kwargs), rtol=rtol, atol=atol)
    geometry = prepare_conv2d(np.zeros(x_shape, dtype), w, None, stride, padding, dilation, groups, "zeros",
                              "NCHW", None).geometry
    plan = _conv_grad.grad_input_plan(grad.shape, w.shape, geometry, groups, np.dtype(dtype),
                                      _conv_direct.current_level())
    adjoint = w.reshape(groups, k // groups, c // groups, kh, kw).transpose(0, 2, 1, 3, 4)
    tiled = [phase for phase in plan.phases if phase.tiled is not None]
    assert tiled and not any(phase.tiled.depthwise for phase in tiled)
    for phase in tiled:
        copy = np.ascontiguousarray(adjoint[(Ellipsis,) + phase.weight_taps]).reshape(phase.sub_shape)
        expected, result = np.full(phase.shape, np.nan, dtype), np.full(phase.shape, np.nan, dtype)
        phase.tiled.run(grad[phase.crop], copy, None, expected)
        phase.tiled.run(grad[phase.crop], w, None, result, phase.forward_taps)
        np.testing.assert_array_equal(result, expected)


def test_depthwise_plans_pack_no_adjoint():
    plan = _conv.tiled_conv((1, 8, 6, 6), (8, 1, 3, 3), conv_geometry((6, 6), 3), 8, "zeros", np.dtype(np.float32),
                            _conv_direct.current_level())
    with pytest.raises(ValueError, match="depthwise"):
        plan.run(np.zeros((1, 8, 6, 6), np.float32), np.zeros((8, 1, 3, 3), np.float32), None,
                 np.zeros((1, 8, 4, 4), np.float32), np.arange(9, dtype=np.intp))


# ---- pointwise convolutions as a product per image (runs_pointwise, conv2d_pointwise)

def test_runs_pointwise_rule():
    from fastconv._geometry import conv_geometry

    def runs(hw=(28, 28), c=64, k=64, kernel=1, groups=1, **kw):
        return _conv.runs_pointwise(conv_geometry(hw, kernel, **kw), (k, c // groups, kernel, kernel), groups)

    assert runs() and runs((7, 7), 1024, 2048) and runs((1, 1)) and runs((112, 112), 64, 64)
    assert runs(dilation=2)  # a 1x1 kernel has no gaps to dilate
    assert runs(stride=2) and runs(stride=(1, 3)) and runs((2, 2), stride=(1, 2))  # every pixel it reads
    assert not runs(c=63) and not runs(k=63) and not runs(c=32, k=256)  # few sums, or few blocks of filters
    assert not runs(kernel=3, padding=1) and not runs(padding=1) and not runs(stride=2, padding=1)
    assert not runs(c=128, groups=2)


@pytest.mark.parametrize("panel", [12, 24, 48])
@pytest.mark.parametrize("pixels", [1, 11, 24, 25, 49, 191, 192, 193, 196, 392, 784, 3136, 12544, 25088])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pointwise_tasks(panel, pixels, threads):
    tasks = _conv.pointwise_tasks(pixels, panel, threads)
    panels = -(-pixels // panel)
    most = _conv.POINTWISE_STRIP_PANELS
    assert 1 <= tasks <= panels
    assert tasks == panels or tasks % threads == 0  # each thread the same count, or one task per panel
    assert tasks >= -(-panels // most) or tasks == panels  # about `most` panels at most
    assert tasks < threads or tasks - threads < -(-panels // most)  # the fewest such


def test_pointwise_tasks_examples():
    assert _conv.pointwise_tasks(8 * 3136, 24, 2) == 132  # 1046 panels: 131 of 8 would leave one thread one more
    assert _conv.pointwise_tasks(8 * 49, 24, 2) == 4  # 17 panels across 8 images: 4 + 4 and 4 + 5
    assert _conv.pointwise_tasks(8 * 49, 24, 1) == 3
    assert _conv.pointwise_tasks(49, 24, 2) == 2
    assert _conv.pointwise_tasks(1, 24, 3) == 1


@pytest.mark.parametrize("panel", [24, 48])
@pytest.mark.parametrize("pixels", [1, 49, 98, 196, 392, 784, 3136, 8 * 3136])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("blocks", [1, 2, 4, 6, 64])
def test_pointwise_split(panel, pixels, threads, blocks):
    # tasks of whole panels unless a thread's share of them exceeds an even share of the pixels by
    # more than POINTWISE_UNEVEN and the blocks go round the threads twice: then one task, its
    # filters in a part per thread
    tasks, parts = _conv.pointwise_split(pixels, panel, threads, blocks)
    share = -(-(-(-pixels // panel)) // threads) * panel
    uneven = share > _conv.POINTWISE_UNEVEN * pixels / threads
    if threads > 1 and blocks >= 2 * threads and uneven:
        assert (tasks, parts) == (1, threads)
    else:
        assert (tasks, parts) == (_conv.pointwise_tasks(pixels, panel, threads), 1)


def test_pointwise_split_examples():
    assert _conv.pointwise_split(49, 48, 2, 128) == (1, 2)  # one image of 7x7: panels of 48 and 1 pixels
    assert _conv.pointwise_split(196, 48, 2, 64) == (1, 2)  # 14x14: 3 panels and 2 (of 4 pixels)
    assert _conv.pointwise_split(784, 48, 2, 32) == (4, 1)  # 28x28: 17 panels, 9 a thread (1.10x)
    assert _conv.pointwise_split(49, 48, 1, 128) == (1, 1)  # one thread: nothing to share
    assert _conv.pointwise_split(49, 48, 2, 3) == (2, 1)  # 3 blocks do not go round 2 threads twice


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, hw", [(1, (7, 7)), (2, (7, 7)), (1, (14, 14)), (3, (20, 20))])
def test_pointwise_plan_shares_filters_when_panels_are_few(rng, monkeypatch, request, every_call_parallel, dtype,
                                                          n, hw):
    # conv2d of a pointwise layer at two threads runs the kernel with the parts pointwise_split gives
    # (filters cut in two for one image of 7x7 at any panel width), and the bits of one thread
    x = rng.standard_normal((n, 64) + hw).astype(dtype)
    w = rng.standard_normal((64, 64, 1, 1)).astype(dtype)
    calls = []
    kernel = _conv_direct.conv2d_pointwise

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return kernel(*args, **kwargs)

    monkeypatch.setattr(_conv_direct, "conv2d_pointwise", spy)  # (plans made from now on call it)
    _conv.tiled_conv.cache_clear()
    request.addfinalizer(_conv.tiled_conv.cache_clear)
    with fastconv.num_threads(1):
        expected = fastconv.conv2d(x, w)
    with fastconv.num_threads(2):
        threads = fastconv.get_num_threads()  # (1 in a serial build)
        got = fastconv.conv2d(x, w)
    np.testing.assert_array_equal(got, expected)
    panel = 3 * _conv_direct.tile_width(np.dtype(dtype).char, _conv_direct.current_level())
    tasks, parts = _conv.pointwise_split(n * hw[0] * hw[1], panel, threads, 8)
    args, kwargs = calls[-1]
    assert args[7] == tasks and args[9] == threads and args[-1] == parts
    if threads == 2 and (n, hw) in ((1, (7, 7)), (3, (20, 20))):
        assert parts == (2 if n == 1 else 1)
    # a task a thread: the kernel packs the weights itself (no packed weights given)
    assert (args[1] is None and kwargs.get("weight") is not None) == (tasks * parts <= threads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c, k, hw", [(64, 72, (7, 7)), (130, 64, (7, 7)), (96, 200, (14, 14)), (64, 64, (1, 1))])
def test_pointwise_packing_in_the_kernel_gives_the_packed_bits(rng, dtype, c, k, hw):
    # one image of few pixels: a task a thread, whose kernel packs the weights (and, for the input
    # gradient, their adjoint) pass by pass; the bits of the same image inside a batch of several,
    # whose tasks take packed weights, at any thread count; the reference's values
    x = rng.standard_normal((12, c) + hw).astype(dtype)
    w = rng.standard_normal((k, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    g = rng.standard_normal((12, k) + hw).astype(dtype)
    rtol, atol = tolerance(dtype)
    for threads in (1, 2):
        with fastconv.num_threads(threads):
            batch, grad_batch = fastconv.conv2d(x, w, b), fastconv.conv2d_grad_input(g, w, x.shape)
            for i in (0, 5, 11):
                np.testing.assert_array_equal(fastconv.conv2d(x[i : i + 1], w, b), batch[i : i + 1])
                np.testing.assert_array_equal(fastconv.conv2d_grad_input(g[i : i + 1], w, (1,) + x.shape[1:]),
                                              grad_batch[i : i + 1])
    np.testing.assert_allclose(batch, reference.conv2d(x, w, b), rtol=rtol, atol=atol * 10)
    np.testing.assert_allclose(grad_batch, reference.conv2d_grad_input(g, w, x.shape), rtol=rtol, atol=atol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_passes_rule(dtype):
    itemsize = np.dtype(dtype).itemsize
    assert _conv.pointwise_passes((2048, 1024, 1, 1), itemsize, budget=2**17) == 2**17 // (8 * 1024 * itemsize)
    assert _conv.pointwise_passes((2048, 8192, 1, 1), itemsize, budget=2**17) == 1  # at least one block
    small = _conv.POINTWISE_PASS_WEIGHTS // (64 * itemsize)
    assert _conv.pointwise_passes((64, small, 1, 1), itemsize) == 0  # weights this small: one pass
    assert _conv.pointwise_passes((64, small + 1, 1, 1), itemsize) > 0
    # weights of more than a budget: passes where a task's panels take at most a few budgets
    budget, most = 2**19, _conv.POINTWISE_PASS_TASK_BUDGETS * 2**19
    assert _conv.pointwise_passes((512, 1024, 1, 1), itemsize, most, budget=budget) == budget // (8 * 1024 * itemsize)
    assert _conv.pointwise_passes((512, 1024, 1, 1), itemsize, most + 1, budget=budget) == 0
    assert _conv.pointwise_passes((512, 1024, 1, 1), itemsize, budget=budget) == 0  # (no task size: one pass)
    assert _conv.pointwise_passes((64, budget // (64 * itemsize), 1, 1), itemsize, 1, budget=budget) == 0
    # where the kernel packs the weights, passes whenever they pass a budget (its buffer holds a pass)
    passes = budget // (8 * 1024 * itemsize)
    assert _conv.pointwise_passes((512, 1024, 1, 1), itemsize, most + 1, True, budget) == passes
    assert _conv.pointwise_passes((64, budget // (64 * itemsize), 1, 1), itemsize, most + 1, True, budget) == 0
    few = _conv.POINTWISE_FEW_CHANNELS_BYTES // itemsize  # few input channels: passes of a few blocks
    assert _conv.pointwise_passes((256, few, 1, 1), itemsize) == _conv.POINTWISE_FEW_CHANNELS_PASS
    assert _conv.pointwise_passes((256, few + 1, 1, 1), itemsize) == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, k, hw, stride", [
    (5, 16, 21, (7, 7), 1),  # 49 pixels an image: panels across images, a last block of 5 filters
    (3, 9, 16, (3, 5), (2, 1)),  # 2x5 outputs: several images in one panel
    (2, 8, 3, (6, 10), (2, 3)),  # 3x4 outputs, every third column; a block of 3 filters (narrow tiles)
    (1, 12, 40, (11, 11), 1),
])
def test_pointwise_kernel_tasks_and_passes_give_the_same_bits(rng, level, dtype, n, c, k, hw, stride):
    # the batch's pixels shared among 1 .. panels tasks (panels across images, outputs through the
    # scratch), filters in passes of 1-3 blocks or all, cut into 1 to more parts than blocks, the
    # weights packed first or by the kernel, pass by pass: the same bits, the reference's values
    from fastconv._geometry import conv_geometry

    x = rng.standard_normal((n, c) + hw).astype(dtype)
    w = rng.standard_normal((k, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    geometry = conv_geometry(hw, 1, stride=stride)
    (oh, ow), (sh, sw) = geometry.out_shape, geometry.stride
    active = _conv_direct.current_level()
    plan = _conv.TiledConv(x.shape, w.shape, geometry, 1, "zeros", np.dtype(dtype), active, "columns")
    w_packed, b_packed = plan.pack(w, b)  # (blocks of 8 filters, as for the pointwise product)
    panel = 3 * _conv_direct.tile_width(np.dtype(dtype).char, active)
    panels = -(-n * oh * ow // panel)
    expected = None
    for tasks, parts in itertools.product(sorted({1, 2, 3, panels, panels + 5}), (1, 2, 3, -(-k // 8) + 2)):
        for pass_blocks, threads, packs in itertools.product((0, 1, 2, 3), (1, 2, 3), (False, True)):
            out = np.full((n, k, oh * ow), np.nan, dtype)
            if packs:  # (the weight as pack_weights takes it: (K, C, taps))
                _conv_direct.conv2d_pointwise(x, None, None, out, sh, sw, ow, tasks, panel, threads, pass_blocks,
                                              False, parts, weight=w.reshape(k, c, 1), bias=b)
            else:
                _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, sh, sw, ow, tasks, panel, threads,
                                              pass_blocks, False, parts)
            if expected is None:
                expected = out
                rtol, atol = tolerance(dtype)
                np.testing.assert_allclose(out.reshape(n, k, oh, ow), reference.conv2d(x, w, b, stride=stride),
                                           rtol=rtol, atol=atol * 10)
            np.testing.assert_array_equal(out, expected)


def test_edge_columns_rule():
    # a 3x3 kernel, stride 1, no dilation, rows of 7 output columns or a multiple of 14 whose first
    # and last column's outer kernel columns read the zero padding
    def rule(width, padding=1, **kw):
        return _conv.edge_columns(conv_geometry((9, width), 3, padding=padding, **kw))

    assert rule(14) and rule(13, padding=((1, 1), (1, 2))) and rule(12, padding=((1, 1), (2, 2)))
    assert rule(7) and rule(6, padding=((1, 1), (1, 2))) and not rule(8) and not rule(6)
    assert not rule(16, padding=0)  # no padding
    assert not rule(15, padding=((1, 1), (0, 1)))  # none on the left
    assert not rule(15, padding=((1, 1), (1, 0)))  # none on the right
    assert not rule(13) and not rule(15)  # rows of 13 and 15 columns
    assert rule(28) and rule(42) and rule(56) and not rule(21) and not rule(30)  # tiles of 14 a row
    assert not rule(28, stride=2) and not rule(16, dilation=2)
    assert not _conv.edge_columns(conv_geometry((9, 14), (3, 5), padding=(1, 2)))


def test_edges_rule():
    # the edge columns, and the first (last) row where its kernel row 0 (2) reads the padding
    columns, top, bottom = _conv_direct.EDGE_COLUMNS, _conv_direct.EDGE_TOP_ROW, _conv_direct.EDGE_BOTTOM_ROW

    def flags(height, rows, width=14, cols=1):
        return _conv.edges(conv_geometry((height, width), 3, padding=(rows, cols)))

    assert flags(9, 1) == columns | top | bottom
    assert flags(9, (1, 0)) == columns | top and flags(9, (0, 1)) == columns | bottom
    assert flags(9, (2, 2)) == columns | top | bottom and flags(9, 0) == columns
    assert flags(1, 1) == columns | top | bottom  # one output row, padded above and below
    assert flags(9, 1, width=7) == columns | top | bottom and flags(9, (0, 1), width=7) == columns | bottom
    assert flags(9, 1, width=16) == 0 and flags(9, 1, width=16, cols=0) == 0  # no edge columns: no rows
    assert _conv.edges(conv_geometry((9, 14), 3, padding=1, stride=2)) == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, threads, rows, hw", [
    (3, 1, 1, (6, 14)), (3, 2, 1, (6, 14)), (1, 2, 1, (6, 14)),  # banded; whole-batch layout for one image
    # padded above or below only, by 2, not at all
    (3, 1, (1, 0), (6, 14)), (1, 2, (0, 1), (6, 14)), (3, 2, (2, 1), (6, 14)), (1, 1, 0, (6, 14)),
    (2, 1, 1, (1, 14)),  # one row, padded above and below
    # rows of 7: pairs, and a last single row where the rows are odd
    (3, 1, 1, (7, 7)), (3, 2, 1, (7, 7)), (1, 2, 1, (6, 7)), (3, 1, (1, 0), (7, 7)), (1, 2, (0, 1), (6, 7)),
    (3, 2, (2, 1), (7, 7)), (1, 1, 0, (7, 7)), (2, 1, 1, (1, 7)), (2, 2, 1, (2, 7)),
    # longer rows in tiles of 14: the first without the left padding's products, the last without
    # the right's, those between without either (but the first and last rows')
    (2, 1, 1, (4, 28)), (1, 2, 1, (3, 42)), (2, 2, (1, 0), (3, 56)), (1, 1, (0, 1), (2, 28)), (1, 1, 1, (1, 42)),
])
def test_edge_tiles_match_the_full_tiles(rng, level, every_call_parallel, dtype, n, threads, rows, hw):
    # rows of 14 or 7 between zero padding: the tiles without the padding's products (its
    # columns, and the rows above and below) give the full tiles' values (non-finite and
    # negative-zero inputs included), for the forward convolution and the input gradient; a
    # weight that is not finite takes the full tiles (their nans)
    h, wd = hw
    x = rng.standard_normal((n, 9, h, wd)).astype(dtype)
    x[0, 1, h // 3, 0], x[-1, 4, h // 2, -1], x[0, 7, 0, 5], x[-1, 2, -1, 0] = np.inf, np.nan, -0.0, -np.inf
    x[-1, 3, 0, 0], x[0, 6, -1, -1] = -np.inf, np.nan  # in the first and last rows' corners
    w = rng.standard_normal((40, 9, 3, 3)).astype(dtype)
    b = rng.standard_normal(40).astype(dtype)
    active = _conv_direct.current_level()
    padding = (rows, 1)
    geometry = conv_geometry(hw, 3, padding=padding)
    oh = geometry.out_shape[0]
    plan = _conv.TiledConv(x.shape, w.shape, geometry, 1, "zeros", np.dtype(dtype), active, "channels")
    assert _conv.edges(geometry) & _conv_direct.EDGE_COLUMNS
    # (levels without edge tiles plan none: a call would check its weights for nothing)
    assert plan.edges == (_conv.edges(geometry) if _conv_direct.has_edge_tiles(active) else 0)
    rtol, atol = tolerance(dtype)
    with fastconv.num_threads(threads):
        outs = []
        for edges in (_conv.edges(geometry), _conv_direct.EDGE_COLUMNS, 0):
            plan.edges = edges
            out = np.full((n, 40, oh, wd), np.nan, dtype)
            plan.run(x, w, b, out)
            outs.append(out)
        np.testing.assert_array_equal(outs[0], outs[2])
        np.testing.assert_array_equal(outs[1], outs[2])
        with np.errstate(invalid="ignore"):  # (the reference's inf - inf and 0 * inf)
            expected = reference.conv2d(x, w, b, padding=padding)
        assert_same_non_finite(outs[0], expected, rtol=rtol, atol=atol * 10)
        plan.edges = _conv.edges(geometry)
        spoiled = w.copy()
        spoiled[3, 2, 1, 0] = np.inf  # kernel column 0: a product of the left padding
        spoiled[5, 4, 0, 1] = -np.inf  # kernel row 0: of the padding above row 0 (where there is one)
        spoiled[6, 8, 2, 2] = np.nan  # kernel row 2: of the padding below the last row
        out = np.full((n, 40, oh, wd), np.nan, dtype)
        plan.run(x, spoiled, b, out)
        with np.errstate(invalid="ignore"):
            expected = reference.conv2d(x, spoiled, b, padding=padding)
        assert np.isnan(expected[:, 3, :, 0]).all() and np.isnan(expected[:, 6]).all()
        assert np.isnan(expected[:, 5, 0]).all() == bool(plan.edges & _conv_direct.EDGE_TOP_ROW)
        assert_same_non_finite(out, expected, rtol=rtol, atol=atol * 10)
    grad = rng.standard_normal((n, 40, oh, wd)).astype(dtype)
    got = fastconv.conv2d_grad_input(grad, w, x.shape, padding=padding)
    np.testing.assert_allclose(got, reference.conv2d_grad_input(grad, w, x.shape, padding=padding), rtol=rtol,
                               atol=atol * 10)


def test_banded_threads_wait_for_every_packed_block(rng, level, every_call_parallel):
    # the banded kernel's threads pack the blocks of weights between them, then each reads every
    # block and every block's finiteness flag; without the barrier between the two (a prange in a
    # parallel block ends without one) a thread read flags not yet set and ran the edge tiles for
    # weights that are not finite, losing their nans: 40 % of such calls here
    x = rng.standard_normal((8, 9, 14, 14)).astype(np.float32)
    w = rng.standard_normal((40, 9, 3, 3)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    spoiled = w.copy()
    spoiled[3, 2, 1, 0], spoiled[5, 4, 0, 1], spoiled[6, 8, 2, 2] = np.inf, -np.inf, np.nan
    with np.errstate(invalid="ignore"):
        expected = reference.conv2d(x, spoiled, b, padding=1)
    rtol, atol = tolerance(np.float32)
    with fastconv.num_threads(2):
        finite = run_tiles(x, w, b, "channels", padding=1)
        for _ in range(30):
            np.testing.assert_array_equal(run_tiles(x, w, b, "channels", padding=1), finite)
            assert_same_non_finite(run_tiles(x, spoiled, b, "channels", padding=1), expected, rtol=rtol,
                                   atol=atol * 10)
    np.testing.assert_allclose(finite, reference.conv2d(x, w, b, padding=1), rtol=rtol, atol=atol * 10)


def _at_buffer_end(a):
    """A copy of ``a`` ending exactly where its allocation ends (a read past it leaves the buffer)."""
    flat = np.empty(a.size + 64, a.dtype)
    view = flat[flat.size - a.size:].reshape(a.shape)
    view[...] = a
    return view


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, k, pixels, channels", [
    # images of whole panels (AVX-512 float32: 2 of 48, the first block over the first asking for the
    # second's rows: pwnext; AVX2: 4 of 24)
    (3, 16, 16, 96, "plain"),
    (4, 12, 21, 50, "plain"),  # panels across images, a last part panel; a last block of 5 filters
    (2, 9, 11, 144, "plain"),  # a last block of 3 filters: narrow tiles, so every panel is copied
    (3, 16, 8, 100, "every other"),  # channels two planes apart
    (2, 16, 16, 1024, "plain"),  # channels 4 KiB apart (float32): every panel copied
    (2, 10, 13, 72, "reversed"),  # channels a negative stride apart
])
def test_pointwise_panels_read_in_place_give_the_copies_bits(rng, level, dtype, n, c, k, pixels, channels):
    # in_place: whole panels in one image's row are read where they lie, the others copied; the same
    # bits as every panel copied, for any tasks, passes and threads, and no read past the input (the
    # input ends where its buffer ends)
    x = rng.standard_normal((n, 2 * c if channels == "every other" else c, 1, pixels)).astype(dtype)
    x = _at_buffer_end(x)
    x = {"plain": x, "every other": x[:, ::2], "reversed": x[:, ::-1]}[channels]
    w = rng.standard_normal((k, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    active = _conv_direct.current_level()
    geometry = conv_geometry((1, pixels), 1)
    plan = _conv.TiledConv(x.shape, w.shape, geometry, 1, "zeros", np.dtype(dtype), active, "columns")
    w_packed, b_packed = plan.pack(w, b)
    panel = 3 * _conv_direct.tile_width(np.dtype(dtype).char, active)
    panels = -(-n * pixels // panel)
    expected = np.full((n, k, pixels), np.nan, dtype)
    _conv_direct.conv2d_pointwise(x, w_packed, b_packed, expected, 1, 1, pixels, 1, panel, 1, 0, False)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(expected.reshape(n, k, 1, pixels), reference.conv2d(x, w, b), rtol=rtol,
                               atol=atol * 10)
    for tasks, parts in itertools.product(sorted({1, 2, panels, panels + 3}), (1, 2)):
        for pass_blocks in (0, 1):
            for threads in (1, 2, 3):
                out = np.full((n, k, pixels), np.nan, dtype)
                _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 1, 1, pixels, tasks, panel, threads,
                                              pass_blocks, True, parts)
                np.testing.assert_array_equal(out, expected)


def _past_a_line(a, items):
    """A copy of ``a`` starting ``items`` items past the start of a cache line."""
    raw = np.empty(a.nbytes + 128, np.uint8)
    start = -raw.ctypes.data % 64 + items * a.itemsize
    view = raw[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, k, pixels", [
    (3, 16, 16, 96),  # images of two whole panels (AVX-512 float32)
    (2, 12, 21, 144),  # three; a last block of 5 filters
    (4, 9, 16, 160),  # panels across images
    (1, 16, 8, 50),  # an image's rows not whole lines: no shift
    (2, 64, 64, 96),  # conv2d's own pointwise product
])
@pytest.mark.parametrize("offset", [0, 1, 4, 7])
def test_pointwise_panels_start_a_line_where_read_in_place(rng, level, dtype, n, c, k, pixels, offset):
    # panels read in place start a cache line: where the input does not, the panels end `shift`
    # pixels earlier (the first one short and copied), and the bits are the copies'
    x = _past_a_line(rng.standard_normal((n, c, 1, pixels)).astype(dtype), offset)
    w = rng.standard_normal((k, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    active = _conv_direct.current_level()
    plan = _conv.TiledConv(x.shape, w.shape, conv_geometry((1, pixels), 1), 1, "zeros", np.dtype(dtype), active,
                           "columns")
    w_packed, b_packed = plan.pack(w, b)
    panel = 3 * _conv_direct.tile_width(np.dtype(dtype).char, active)
    shift = _conv_direct.pointwise_shift(x, k, pixels, pixels, 1, 1, panel)
    itemsize = np.dtype(dtype).itemsize
    assert 0 <= shift < panel
    if (pixels * itemsize) % 64 or (panel * itemsize) % 64 or offset * itemsize % 64 == 0:
        assert shift == 0
    else:  # the first panel boundary after pixel 0 starts a line, in every image
        first = panel - shift
        assert (x.ctypes.data + first * itemsize) % 64 == 0
        assert all((x[i, 0, 0].ctypes.data + (first - i * pixels) % panel * itemsize) % 64 == 0 for i in range(n))
    assert _conv_direct.pointwise_shift(x, k, pixels, pixels, 1, 1, panel, False) == 0
    assert _conv_direct.pointwise_shift(x[..., ::2], k, pixels // 2, pixels // 2, 1, 1, panel) == 0
    expected = np.full((n, k, pixels), np.nan, dtype)
    _conv_direct.conv2d_pointwise(x, w_packed, b_packed, expected, 1, 1, pixels, 1, panel, 1, 0, False)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(expected.reshape(n, k, 1, pixels), reference.conv2d(x, w, b), rtol=rtol,
                               atol=atol * 10)
    panels = -(-(n * pixels + shift) // panel)
    for tasks, parts in itertools.product(sorted({1, 2, panels, panels + 3}), (1, 2)):
        for pass_blocks in (0, 1):
            for threads in (1, 2):
                out = np.full((n, k, pixels), np.nan, dtype)
                _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 1, 1, pixels, tasks, panel, threads,
                                              pass_blocks, True, parts)
                np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, b), expected.reshape(n, k, 1, pixels))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pixels", [1, 49, 50, 52, 97, 196])
@pytest.mark.parametrize("c, k", [(16, 64), (37, 72), (9, 136), (24, 100)])
def test_pointwise_last_pixels_give_a_whole_panels_bits(rng, level, dtype, pixels, c, k):
    # the last few pixels of a batch (a 7x7 image's 49th; a 14x14 image's last 4) run the tail
    # tiles, several blocks of filters at once where there are enough: the same bits as the same
    # pixels inside whole panels of a longer image, for any passes, parts and threads
    active = _conv_direct.current_level()
    panel = 3 * _conv_direct.tile_width(np.dtype(dtype).char, active)
    longer = (pixels // panel + 2) * panel
    big = rng.standard_normal((1, c, 1, longer)).astype(dtype)
    x = big[..., :pixels].copy()
    w = rng.standard_normal((k, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    plan = _conv.TiledConv(x.shape, w.shape, conv_geometry((1, pixels), 1), 1, "zeros", np.dtype(dtype), active,
                           "columns")
    w_packed, b_packed = plan.pack(w, b)
    whole = np.full((1, k, longer), np.nan, dtype)
    _conv_direct.conv2d_pointwise(big, w_packed, b_packed, whole, 1, 1, longer, 1, panel, 1, 0, False)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(whole.reshape(1, k, 1, longer), reference.conv2d(big, w, b), rtol=rtol,
                               atol=atol * 10)
    for pass_blocks, parts, threads in itertools.product((0, 1, 3, 9), (1, 2), (1, 2)):
        out = np.full((1, k, pixels), np.nan, dtype)
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 1, 1, pixels, 1, panel, threads, pass_blocks,
                                      False, parts)
        np.testing.assert_array_equal(out, whole[..., :pixels])


def test_pointwise_in_place_rule():
    f32, f64 = np.float32, np.float64
    for level in range(_conv_direct.current_level() + 1):
        wide = _conv_direct.tile_width("f", level) >= _conv.POINTWISE_IN_PLACE_MIN_LANES
        assert _conv.pointwise_in_place((64, 256, 1, 1), f32, level) == wide
        assert _conv.pointwise_in_place((128, 1024, 1, 1), f32, level) == wide
        assert not _conv.pointwise_in_place((65, 256, 1, 1), f32, level)  # fewer than 4 channels a filter
        assert not _conv.pointwise_in_place((128, 128, 1, 1), f32, level)
        assert not _conv.pointwise_in_place((256, 64, 1, 1), f32, level)
        wide64 = _conv_direct.tile_width("d", level) >= _conv.POINTWISE_IN_PLACE_MIN_LANES
        assert _conv.pointwise_in_place((64, 256, 1, 1), f64, level) == wide64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_pointwise_in_place_plan(rng, level, dtype):
    # conv2d of a pointwise layer with fewer filters than channels: the plan's in_place follows the
    # rule, and both ways give the same bits and the reference's values
    x = rng.standard_normal((3, 128, 12, 12)).astype(dtype)
    w = rng.standard_normal((64, 128, 1, 1)).astype(dtype)
    active = _conv_direct.current_level()
    plan = _conv.TiledConv(x.shape, w.shape, conv_geometry((12, 12), 1), 1, "zeros", np.dtype(dtype), active)
    assert plan.pointwise and plan.in_place == _conv.pointwise_in_place(w.shape, dtype, active)
    got = fastconv.conv2d(x, w)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(got, reference.conv2d(x, w), rtol=rtol, atol=atol * 10)
    for in_place in (False, True):
        plan.in_place = in_place
        out = np.full(got.shape, np.nan, dtype)
        plan.run(x, w, None, out)
        np.testing.assert_array_equal(out, got)


def unfused(monkeypatch, request):
    """Build the tiles' plans without the pointwise product (merged rows instead) until the test ends."""
    monkeypatch.setattr(_conv, "runs_pointwise", lambda *args: False)
    clear_conv_plans()
    request.addfinalizer(clear_conv_plans)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, k, hw, stride", [
    (2, 64, 64, (7, 7), 1),  # 49 pixels: whole panels and a tail of 1 (float32 AVX2) to 13
    (1, 64, 64, (14, 14), 1),  # one image: a last panel of 4 pixels (AVX-512: the tail tile)
    (1, 64, 67, (9, 11), 1),  # a last block of 3 filters: narrow tiles; one image for up to 3 threads
    (3, 65, 68, (5, 3), 1),  # fewer pixels than a panel; a last block of 4
    (2, 96, 72, (28, 28), 1),  # strips of 8 panels, and a partial one
    (1, 128, 64, (1, 1), 1),
    (2, 64, 72, (15, 13), 2),  # every other row and column: 8x7 outputs, panels across rows
    (1, 64, 64, (30, 9), (3, 1)),  # rows of consecutive pixels, every third row
    (2, 70, 64, (6, 40), (1, 3)),
    (1, 64, 65, (2, 2), (1, 2)),  # one output column: resolves to stride 1, input column 1 unread
])
def test_pointwise_product(rng, level, monkeypatch, request, every_call_parallel, dtype, n, c, k, hw, stride):
    # the reference's values, and the bits of the merged-row or banded tiles (each output sums its
    # channels in the same order from its bias), for 1-3 threads, the convolution and its input
    # gradient (stride 1: a pointwise convolution of the grad, K channels and C filters; strided:
    # of the grad into the phase the kernel reaches)
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    w = rng.standard_normal((k, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    expected_out = reference.conv2d(x, w, b, stride=stride)
    grad = rng.standard_normal(expected_out.shape).astype(dtype)
    clear_conv_plans()
    geometry = prepare_conv2d(x, w, b, stride, 0, 1, 1, "zeros", "NCHW", None).geometry
    assert _conv.tiled_conv(x.shape, w.shape, geometry, 1, "zeros", np.dtype(dtype),
                            _conv_direct.current_level()).pointwise
    results = {}
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            results[threads] = (fastconv.conv2d(x, w, b, stride=stride),
                                fastconv.conv2d_grad_input(grad, w, x.shape, stride=stride))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[1][0], expected_out, rtol=rtol, atol=atol * 10)
    np.testing.assert_allclose(results[1][1], reference.conv2d_grad_input(grad, w, x.shape, stride=stride),
                               rtol=rtol, atol=atol * 10)
    unfused(monkeypatch, request)
    expected = fastconv.conv2d(x, w, b, stride=stride), fastconv.conv2d_grad_input(grad, w, x.shape, stride=stride)
    for got in results.values():
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_product_from_any_strides(rng, level, dtype):
    # pixels a few elements apart (a column slice whose rows still merge into one), a copy where
    # the rows do not (channel slices, NHWC), out= filled with NaN, strides and a strided view
    # (pixels gathered element by element): all as from a contiguous input
    big = rng.standard_normal((2, 64, 6, 18)).astype(dtype)
    w = rng.standard_normal((64, 64, 1, 1)).astype(dtype)
    b = rng.standard_normal(64).astype(dtype)
    x = big[..., ::2]  # (2, 64, 6, 9): each image's pixels two elements apart, as one row
    assert x.reshape(2, 64, 54).strides[2] == 2 * x.itemsize
    expected = fastconv.conv2d(np.ascontiguousarray(x), w, b)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(expected, reference.conv2d(x, w, b), rtol=rtol, atol=atol * 10)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, b), expected)
    out = np.full(expected.shape, np.nan, dtype)
    assert fastconv.conv2d(x, w, b, out=out) is out
    np.testing.assert_array_equal(out, expected)
    wide = rng.standard_normal((2, 128, 6, 9)).astype(dtype)
    np.testing.assert_array_equal(fastconv.conv2d(wide[:, ::2], w, b), fastconv.conv2d(wide[:, ::2].copy(), w, b))
    flipped = wide[:, :64, ::-1, ::-1]  # pixels backwards: one row with a negative stride
    assert flipped.reshape(2, 64, 54).strides[2] == -flipped.itemsize
    np.testing.assert_array_equal(fastconv.conv2d(flipped, w, b), fastconv.conv2d(flipped.copy(), w, b))
    nhwc = fastconv.conv2d(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), b, layout="NHWC")
    np.testing.assert_allclose(nhwc, expected.transpose(0, 2, 3, 1), rtol=rtol, atol=atol * 10)
    for stride in (2, (1, 2), (3, 1)):
        strided = fastconv.conv2d(np.ascontiguousarray(x), w, b, stride=stride)
        np.testing.assert_allclose(strided, reference.conv2d(x, w, b, stride=stride), rtol=rtol, atol=atol * 10)
        np.testing.assert_array_equal(fastconv.conv2d(x, w, b, stride=stride), strided)
        np.testing.assert_array_equal(fastconv.conv2d(flipped, w, b, stride=stride),
                                      fastconv.conv2d(flipped.copy(), w, b, stride=stride))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [8, 13, 16])
@pytest.mark.parametrize("width", [24, 48, 56, 100])
def test_pointwise_tile_is_the_three_vector_tile(rng, level, dtype, k, width):
    # one tap at offset 0 runs the tile without a tap loop (tiles.pw32); a tap at offset 1 on the
    # same input one element earlier runs the general three-vector tile: the same bits
    from fastconv._geometry import conv_geometry

    n, c, oh = 2, 7, 3
    plane = oh * width
    flat = rng.standard_normal(n * c * plane + 1 + _conv_direct.MAX_TILE_WIDTH).astype(dtype)
    w = rng.standard_normal((k, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    plan = _conv.TiledConv((n, c, oh, width), w.shape, conv_geometry((oh, width), 1), 1, "zeros", np.dtype(dtype),
                           level, "columns")
    w_packed, b_packed = plan.pack(w, b)
    results = []
    for src, tap in ((flat[1:], 0), (flat, 1)):
        out = np.full((n, k, oh, width), np.nan, dtype)
        _conv_direct.conv2d_tiled(src, c * plane, plane, width, np.array([tap], np.intp), w_packed, b_packed, out,
                                  1, c, False, 1)
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])
    x = flat[1:1 + n * c * plane].reshape(n, c, oh, width)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], reference.conv2d(x, w, b), rtol=rtol, atol=atol * 10)


def test_pointwise_kernel_checks_its_arguments():
    x = np.zeros((2, 8, 5, 6), np.float32)
    out, out9 = np.zeros((2, 16, 30), np.float32), np.zeros((2, 16, 9), np.float32)
    w_packed, b_packed = np.zeros(2 * 8 * 8, np.float32), np.zeros(16, np.float32)
    _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 1, 1, 6, 24, 24, 1)
    _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out9, 2, 2, 3, 24, 24, 1)  # rows 0, 2, 4
    _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 1, 1, 6, 1000, 7, 1, 5)  # more tasks than panels
    with pytest.raises(ValueError, match="at least one task"):
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 1, 1, 6, 0, 24, 1)
    with pytest.raises(ValueError, match="at least one pixel"):
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 1, 1, 6, 1, 0, 1)
    with pytest.raises(ValueError, match="pass_blocks"):
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 1, 1, 6, 1, 24, 1, -1)
    with pytest.raises(ValueError, match="part of the filters"):
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 1, 1, 6, 1, 24, 1, 0, False, 0)
    with pytest.raises(ValueError, match="packed"):
        _conv_direct.conv2d_pointwise(x, w_packed[:-1], b_packed, out, 1, 1, 6, 24, 24, 1)
    with pytest.raises(ValueError, match="packed"):
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed[:8], out, 1, 1, 6, 24, 24, 1)
    with pytest.raises(ValueError, match="packed"):
        _conv_direct.conv2d_pointwise(x, None, None, out, 1, 1, 6, 24, 24, 1)  # nothing to run with
    # the weight the kernel packs itself: (K, C, 1), or its adjoint's (C, K, taps) with the taps
    weight, bias = np.zeros((16, 8, 1), np.float32), np.zeros(16, np.float32)
    _conv_direct.conv2d_pointwise(x, None, None, out, 1, 1, 6, 1, 24, 1, 1, weight=weight, bias=bias)
    _conv_direct.conv2d_pointwise(x, None, None, out, 1, 1, 6, 1, 24, 1, weight=weight)
    taps = np.array([0], np.intp)
    _conv_direct.conv2d_pointwise(x, None, None, out, 1, 1, 6, 1, 24, 1, weight=np.zeros((8, 16, 1), np.float32),
                                  adjoint_taps=taps)
    with pytest.raises(ValueError, match="not both"):
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 1, 1, 6, 1, 24, 1, weight=weight)
    with pytest.raises(ValueError, match=r"\(K, cg, taps\)"):
        _conv_direct.conv2d_pointwise(x, None, None, out, 1, 1, 6, 1, 24, 1, weight=weight[:15])
    with pytest.raises(ValueError, match=r"\(K, cg, taps\)"):
        _conv_direct.conv2d_pointwise(x, None, None, out, 1, 1, 6, 1, 24, 1, weight=np.zeros((16, 8, 2), np.float32))
    with pytest.raises(ValueError, match="adjoint"):
        _conv_direct.conv2d_pointwise(x, None, None, out, 1, 1, 6, 1, 24, 1, weight=weight, adjoint_taps=taps)
    with pytest.raises(ValueError, match="one bias per output channel"):
        _conv_direct.conv2d_pointwise(x, None, None, out, 1, 1, 6, 1, 24, 1, weight=weight, bias=bias[:15])
    with pytest.raises(ValueError, match="outside x"):
        _conv_direct.conv2d_pointwise(x[:, :, :4], w_packed, b_packed, out, 1, 1, 6, 24, 24, 1)  # row 4
    with pytest.raises(ValueError, match="outside x"):
        _conv_direct.conv2d_pointwise(x[:, :, :, :5], w_packed, b_packed, out, 1, 1, 6, 24, 24, 1)
    with pytest.raises(ValueError, match="outside x"):
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out9, 3, 2, 3, 24, 24, 1)  # row 6
    with pytest.raises(ValueError, match="outside x"):
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out9, 2, 3, 3, 24, 24, 1)  # column 6
    with pytest.raises(ValueError, match=r"OH\*OW"):
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed, np.zeros((2, 16, 29), np.float32), 1, 1, 6, 24, 24, 1)
    with pytest.raises(ValueError, match=r"OH\*OW"):
        _conv_direct.conv2d_pointwise(x[:1], w_packed, b_packed, out, 1, 1, 6, 24, 24, 1)
    with pytest.raises(ValueError, match="at least 1"):
        _conv_direct.conv2d_pointwise(x, w_packed, b_packed, out, 0, 1, 6, 24, 24, 1)



# ---- the input gradient through its columns (by_columns, grad_input_by_columns)

def test_input_gradient_columns_rule():
    from fastconv._bench import SHAPES
    from fastconv._conv_grad import by_columns
    from fastconv._geometry import conv_geometry

    def route(c, k, hw, kernel, padding=0, stride=1, dilation=1, groups=1, dtype=np.float64, n=2):
        geo = conv_geometry(hw, kernel, stride, padding, dilation)
        return by_columns((n, k) + geo.out_shape, (k, c // groups, kernel, kernel), geo, groups, dtype)

    assert route(1, 30, (28, 28), 5)  # the textbook's first layer
    assert route(1, 24, (28, 28), 3, 1) and route(3, 32, (32, 32), 3, 1) and route(2, 32, (28, 28), 5)
    assert route(1, 30, (28, 28), 5, dtype=np.float32)
    assert not route(1, 16, (28, 28), 3, 1, dtype=np.float32)  # too few grad channels for a 1x1 convolution
    assert route(1, 16, (28, 28), 3, 1)  # (float64 one-channel images from 16)
    assert not route(1, 8, (28, 28), 3, 1)
    assert not route(3, 24, (28, 28), 3, 1)  # (three channels want 32)
    assert route(4, 16, (28, 28), 3, 1, dtype=np.float32)  # four channels from 16
    assert not route(5, 64, (28, 28), 3, 1)  # five: the column tiles of the direct route
    assert not route(1, 30, (28, 28), 5, 2)  # padded 5x5: as many pixels as the grad
    assert not route(1, 30, (28, 28), 7)  # 7x7
    assert route(3, 64, (28, 28), 1)  # 1x1 too: their direct route runs the row tiles as well
    assert not route(1, 30, (28, 28), 5, stride=2) and not route(1, 30, (28, 28), 3, dilation=2)
    assert not route(2, 32, (28, 28), 3, 1, groups=2)
    assert not route(1, 32, (5, 5), 3)  # 9 output pixels: fewer than a tile's width...
    assert route(1, 32, (6, 6), 3)  # ... 16 run
    assert not route(1, 32, (300, 300), 3, 1)  # the columns of an image must fit 1 MiB
    assert not route(1, 30, (28, 28), 5, dtype=np.int64)
    for name, d in SHAPES.items():  # the benchmark's shapes keep their routes
        assert not route(d["C"], d["K"], (d["H"], d["W"]), d["kernel"], d["pad"], d["stride"], d["dilation"],
                         d["groups"], np.float32), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c, k, hw, kernel, padding", [
    (3, 1, 24, (12, 12), 5, 0),              # the textbook's layer, small
    (2, 3, 32, (9, 11), 3, 1),               # RGB, padded, a row tail
    (2, 2, 40, (10, 7), 3, ((1, 0), (2, 1))),  # padded on some sides only
    (1, 1, 33, (6, 6), 3, 1),                # 36 output pixels, 33 channels (a partial block)
    (4, 2, 32, (14, 13), 5, 0),
    (2, 4, 16, (10, 10), 3, 1),              # four channels
    (2, 3, 32, (8, 9), 1, 0),                # a 1x1 kernel: one tap per channel
])
def test_input_gradient_by_columns(rng, level, every_call_parallel, dtype, n, c, k, hw, kernel, padding):
    # the columns route gives the reference's values, the same bits for every thread count,
    # and fills out= (whatever it held) in place; an NHWC call takes it through its transposes
    from fastconv import _conv_grad

    x_shape = (n, c) + hw
    w = rng.standard_normal((k, c, kernel, kernel)).astype(dtype)
    grad = rng.standard_normal(reference.conv2d(np.zeros(x_shape, dtype), w, padding=padding).shape).astype(dtype)
    geometry = prepare_conv2d(np.zeros(x_shape, dtype), w, None, 1, padding, 1, 1, "zeros", "NCHW", None).geometry
    assert _conv_grad.by_columns(grad.shape, w.shape, geometry, 1, dtype)
    expected = reference.conv2d_grad_input(grad, w, x_shape, padding=padding)
    results = []
    for threads in (1, 2, 3):
        with fastconv.num_threads(threads):
            results.append(fastconv.conv2d_grad_input(grad, w, x_shape, padding=padding))
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(results[0], expected, rtol=rtol * 10, atol=atol * 100)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    out = np.full(x_shape, np.nan, dtype)
    assert fastconv.conv2d_grad_input(grad, w, x_shape, padding=padding, out=out) is out
    np.testing.assert_array_equal(out, results[0])
    nhwc = fastconv.conv2d_grad_input(grad.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), (n,) + hw + (c,),
                                      padding=padding, layout="NHWC")
    np.testing.assert_array_equal(nhwc, results[0].transpose(0, 2, 3, 1))


def test_input_gradient_by_columns_kernel_checks_its_arguments():
    grad = np.zeros((1, 4, 4, 4))  # 16 output pixels: a tile's width
    dx = np.zeros((1, 2, 6, 6))
    _conv_direct.grad_input_by_columns(grad, np.zeros((18, 4)), dx, 3, 3, 1, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="weight_t must be"):
        _conv_direct.grad_input_by_columns(grad, np.zeros((18, 5)), dx, 3, 3, 1, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="weight_t must be"):
        _conv_direct.grad_input_by_columns(grad, np.zeros((9, 4)), dx, 3, 3, 1, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="fewer output pixels"):
        _conv_direct.grad_input_by_columns(np.zeros((1, 4, 3, 4)), np.zeros((18, 4)), dx, 3, 3, 1, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="bad geometry"):
        _conv_direct.grad_input_by_columns(grad, np.zeros((18, 4)), dx, 3, 3, 1, 1, -1, 0, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_convolution_by_columns(rng, dtype):
    # conv_transpose2d is the input gradient plus a bias: a decoder's last layer (32 channels
    # to an RGB image) takes the columns route
    from fastconv import _conv_grad
    from fastconv._geometry import conv_geometry

    x = rng.standard_normal((2, 32, 9, 10)).astype(dtype)
    w = rng.standard_normal((32, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    assert _conv_grad.by_columns(x.shape, w.shape, conv_geometry((9, 10), 3, 1, 1), 1, dtype)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(fastconv.conv_transpose2d(x, w, b, padding=1),
                               reference.conv_transpose2d(x, w, b, padding=1), rtol=rtol * 10, atol=atol * 100)
