"""Public conv2d: validate, allocate, run the direct kernel or im2col + GEMM."""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ._arrays import empty, empty_aligned, finish
from ._cache import l2_cache_bytes
from ._geometry import conv_geometry
from ._im2col import unfold_batches
from ._kernels import _conv_direct
from ._layouts import channels_first, hwio_to_oihw, nchw_to_nhwc
from ._padding import pad_input
from ._plans import PlanCache, call_key, read_only, specialized
from ._prepare import prepare_conv2d
from ._threads import threads_for

__all__ = ["conv2d"]

ALGORITHMS = ("auto", "direct", "im2col")


def _choose_algorithm(call):
    """Pick direct or im2col+GEMM for a prepared call.

    Measured on every canonical shape (``fastconv bench``, 1 and 2 threads): the
    register-tiled direct kernel is faster everywhere, also on short rows with
    many channels (resnet-deep: 76 ms direct vs 103 ms im2col+GEMM at one
    thread, 40 vs 75 ms at two, where OpenMP and BLAS threads compete), and it
    needs no column buffer. ``algorithm="im2col"`` stays available on request.
    """
    del call  # one rule for now; kept as a function so a measured crossover has one home
    return "direct"


def _conv_direct_run(call, result):
    """Direct convolution: register tiles for float32/64, plain loops for int64."""
    geo = call.geometry
    if call.channels_last and depthwise_nhwc_fits(call):
        depthwise_nhwc(call.x, call.weight, call.bias, geo, call.padding_mode, result)
    elif call.channels_last and pointwise_nhwc_fits(call):
        # (the bias is added after the sums: none given, none added, not a pass of zeros over the result)
        pointwise_nhwc(call.x, call.weight, call.bias if call.has_bias else None, result, geo)
    elif call.channels_last and call.compute_dtype.kind == "f":
        nhwc_through_nchw(call.x, call.weight, call.bias, result, geo, call.groups, call.padding_mode)
    elif call.channels_last:
        x = pad_input(call.x, geo, call.padding_mode, True)
        _conv_direct.conv2d_nhwc(x, call.weight, call.bias, result, *geo.stride, *geo.dilation,
                                 call.groups, threads_for(result.size * (call.weight.size // max(1, result.shape[-1]))))
    else:
        direct_nchw(call.x, call.weight, call.bias, geo, call.groups, result, call.padding_mode)


#: Bytes of weights from which NHWC calls of the tiles pack the HWIO weight in place (``TiledConv.run``'s
#: ``hwio``). Intel Xeon, float32, in-process A/B against transposing it first, one / two threads: 3x3
#: 512 to 512 (9.4 MB) 1.07-1.27x, 256 to 256 (2.4 MB) 1.03-1.05x, 128 to 128 1.00-1.01x, CS231n's 7x7
#: filters on 3 channels (19 KB) 0.95-0.96x (the OIHW copy's packing copies whole rows of taps).
HWIO_IN_PLACE_BYTES = 1 << 20


def nhwc_through_nchw(x, weight, bias, out, geometry, groups, padding_mode="zeros", tiled=None):
    """An NHWC float convolution by the NCHW kernels, into ``out``; no validation.

    ``x`` ``(N, H, W, C)``, ``weight`` HWIO, ``bias`` ``(K,)`` or None and
    ``out`` ``(N, OH, OW, K)`` are C-contiguous in one float dtype;
    ``tiled`` is the :class:`TiledConv` of the NCHW shapes, or None (found
    here where the tiles run). The tiles read channel planes: the input is
    transposed in (laying it out from a transposed view took them longer:
    LeNet's C3 0.70 ms against 0.42 + 0.03) by :mod:`fastconv._layouts`'
    tiled transposes, but where the plan's column copies transpose each
    band's pixels themselves (:meth:`TiledConv.reads_pixels`). The banded
    kernel writes ``out``'s pixels itself
    (``TiledConv.run``'s ``channels_last``: the output-channel tiles store
    each pixel's channels from their vectors, which the plan for NHWC
    results takes wherever the filters fill their blocks,
    :func:`channel_tiles_store_pixels`; the column tiles' band planes are
    transposed out of the thread's scratch while they are in cache), the
    others an NCHW result transposed after. Those scratch transposes,
    Intel Xeon, float32, in-process A/B against
    that transpose after, one / two threads (medians of 21, the same bits):
    the textbook deep net's 16 3x3 filters on 28x28 1.36x / 1.27x (float64
    1.23x), SimpleConvNet 1.14x / 1.09x, LeNet's C1 1.07x / 1.03x, C3 1.02x /
    1.03x, 3x3 layers of 64 to 512 channels 1.00-1.02x, CS231n's 7x7 layer
    0.99x / 1.00x (float64 0.98x): its pixels' transposes cost as much as
    the separate one, half of it their arithmetic and half the result's
    lines, written to memory in bursts (as the NCHW tiles' stores, spread
    over their arithmetic, are not). No NCHW result array either. The
    banded and whole-batch kernels pack an HWIO weight of
    :data:`HWIO_IN_PLACE_BYTES` or more in place (``TiledConv.run``'s
    ``hwio``); smaller ones, and the other kernels, take its OIHW copy.
    """
    n, oh, ow, k = out.shape
    kh, kw, cg, _ = weight.shape
    xc = x.transpose(0, 3, 1, 2)
    if tiled is None and weight.size and tiles_fit(cg, kh * kw):
        tiled = tiled_conv(xc.shape, (k, cg, kh, kw), geometry, groups, padding_mode, x.dtype,
                           _conv_direct.current_level(), channels_last=True)
    if tiled is None or not tiled.reads_pixels(threads_for(tiled.work)):
        xc = channels_first(x)
    if tiled is not None:
        in_place = weight.nbytes >= HWIO_IN_PLACE_BYTES
        tiled.run(xc, weight if in_place else hwio_to_oihw(weight), bias, out, hwio=in_place, channels_last=True)
    else:
        tmp = empty((n, k, oh, ow), out.dtype)
        direct_nchw(xc, hwio_to_oihw(weight), bias, geometry, groups, tmp, padding_mode)
        nchw_to_nhwc(tmp, out=out)


def depthwise_nhwc_fits(call):
    """Whether :func:`depthwise_nhwc` runs a prepared NHWC call: float and depthwise, on a level with vector lanes.

    (A prepared call's arrays are C-contiguous, as the kernel reads them: a
    pixel's channels side by side.)
    """
    x, k = call.x, call.weight.shape[3]
    return (x.dtype.kind == "f" and is_depthwise(call.groups, x.shape[3], k) and call.weight.size > 0
            and _conv_direct.depthwise_lanes(x.dtype.char) > 0)


#: Fewest input channels and filters for which an NHWC call runs :func:`pointwise_nhwc`.
POINTWISE_NHWC_MIN_CHANNELS = 32


def runs_pointwise_nhwc(dtype, dims, geometry, groups, pixels):
    """Whether an NHWC convolution (or its gradient) runs the pointwise kernel swapped (:func:`pointwise_nhwc`).

    ``dims`` is the weight's ``(K, C/groups, KH, KW)``, ``pixels`` the
    input's. Float32/64, 1x1, unpadded, one group, from
    :data:`POINTWISE_NHWC_MIN_CHANNELS` input channels and filters (the
    layers measured: 32 to 1024 channels).
    """
    k, cg, kh, kw = dims
    return (dtype in (np.float32, np.float64) and groups == 1 and (kh, kw) == (1, 1) and not geometry.has_padding
            and min(cg, k) >= POINTWISE_NHWC_MIN_CHANNELS and tiles_fit(pixels, cg, k))


def pointwise_nhwc_fits(call):
    """Whether :func:`pointwise_nhwc` runs a prepared NHWC conv2d call (:func:`runs_pointwise_nhwc`)."""
    kh, kw, cg, k = call.weight.shape
    return runs_pointwise_nhwc(call.x.dtype, (k, cg, kh, kw), call.geometry, call.groups, call.x.size // max(1, cg))


def pointwise_panel(dtype, level=-1):
    """Pixels of a panel of :func:`~fastconv._kernels._conv_direct.conv2d_pointwise`: a three-vector tile's columns."""
    return 3 * _conv_direct.tile_width(np.dtype(dtype).char, level)


def read_pixels(x, geometry):
    """The NHWC pixels a 1x1 unpadded convolution of ``geometry`` reads: ``x`` itself, or a contiguous copy.

    One per output pixel: a stride's, and on an axis of one output (whose
    stride the geometry's canonical form makes 1) the first input's only.
    """
    (oh, ow), (sh, sw) = geometry.out_shape, geometry.stride
    view = x[:, :max(0, (oh - 1) * sh + 1):sh, :max(0, (ow - 1) * sw + 1):sw, :]
    return x if view.shape == x.shape else np.ascontiguousarray(view)


#: Most bytes of a pixel's filters, or else of its channels, for which :func:`pointwise_nhwc` reads its
#: operands in place (:func:`~fastconv._kernels._conv_direct.pointwise_nhwc_direct`:
#: :func:`reads_pointwise_nhwc_in_place`).
POINTWISE_NHWC_DIRECT_BYTES = 256
POINTWISE_NHWC_DIRECT_CHANNEL_BYTES = 256


def reads_pointwise_nhwc_in_place(k, c, dtype, level=-1):
    """Whether :func:`pointwise_nhwc` of ``c`` channels and ``k`` filters runs
    :func:`~fastconv._kernels._conv_direct.pointwise_nhwc_direct` (at ``level``, default the current one).

    Up to :data:`POINTWISE_NHWC_DIRECT_BYTES` of filters a pixel (64
    float32, 32 float64: one block of the AVX-512 tiles' columns), or any
    filters on up to :data:`POINTWISE_NHWC_DIRECT_CHANNEL_BYTES` of channels
    (64 float32: the sums in one chunk, each output stored once). Against
    the pointwise kernel swapped (Intel Xeon, in-process A/B, medians of
    11-15): 32 and 64 filters in float32 1.21-1.48x at one thread and
    1.25-1.46x at two (AVX2 1.05-1.23x), 32 in float64 1.16-1.49x. More
    filters, once the kernel's threads also share groups of them where
    pixels are few (one image of 56x56, eight of 28x28, one of 14x14), 1 / 2
    threads: on 32 and 64 channels 128 to 512 filters 1.03-1.64x / 0.97-2.13x
    (AVX2 1.05-1.30x / 0.92-1.65x, float64 1.05-1.43x at one thread); on
    128 channels 0.87-1.19x / 0.78-1.26x and on 256 0.79-1.15x / 0.83-1.17x
    (AVX2 0.75-1.07x with 128 filters), left to the swapped kernel.
    """
    return (_conv_direct.has_pointwise_nhwc_kernels(level)
            and (k * np.dtype(dtype).itemsize <= POINTWISE_NHWC_DIRECT_BYTES
                 or c * np.dtype(dtype).itemsize <= POINTWISE_NHWC_DIRECT_CHANNEL_BYTES))


def pointwise_nhwc(x, weight, bias, out, geometry):
    """A 1x1 unpadded NHWC convolution, ``out = x @ w + bias`` over the pixels it reads; no validation.

    ``x`` is ``(N, H, W, C)`` C-contiguous (as prepared calls give it),
    ``weight`` HWIO ``(1, 1, C, K)``, ``bias`` ``(K,)`` or None and ``out``
    ``(N, OH, OW, K)`` C-contiguous, in one float dtype. In NHWC the product's operands
    come the other way round from NCHW's: the pixels are the rows of
    ``x`` (``(N*H*W, C)``) and of ``out`` (``(N*H*W, K)``), and the weight
    is ``(C, K)``. So :func:`~fastconv._kernels._conv_direct.conv2d_pointwise`
    runs with the roles swapped: the pixels as its filters (the kernel
    packs 8 of them at a time, in passes of :data:`BAND_BUDGET`), the
    weight as a one-row image of ``K`` pixels,
    and each thread a part of the pixels. Nothing is transposed: before,
    NHWC calls transposed the input in and the result out around the NCHW
    kernels (256 to 64 channels on 8 images of 56x56, one thread: 13.5 ms,
    now 7.0). Each output sums its channels in order from 0, as the NCHW
    kernels do from a zero bias (the same bits without a bias); a bias is
    added after the sums. Up to 64 float32 filters, or channels
    (:func:`reads_pointwise_nhwc_in_place`),
    :func:`~fastconv._kernels._conv_direct.pointwise_nhwc_direct` instead
    reads the pixels' rows and the weight's where they lie, each output
    summed from its bias (the NCHW kernels' bits with a bias too). A
    ``stride`` over 1 (ResNet's shortcuts: a quarter of ``x``): the
    swapped kernel packs the pixels it reads from where they lie
    (``filter_pixels``); the in-place kernel reads a copy of them.
    """
    n, h, w, c = x.shape
    (oh, ow), (sh, sw) = geometry.out_shape, geometry.stride
    k = weight.shape[3]
    pixels = n * oh * ow
    threads = threads_for(pixels * k * c // 16)
    if not out.flags.c_contiguous:  # (results and outs of calls are: the kernel writes a view of it)
        raise ValueError("pointwise_nhwc: out must be C-contiguous")
    if reads_pointwise_nhwc_in_place(k, c, x.dtype):
        _conv_direct.pointwise_nhwc_direct(read_pixels(x, geometry).reshape(pixels, c),
                                           np.ascontiguousarray(weight).reshape(c, k),
                                           None if bias is None else np.ascontiguousarray(bias),
                                           out.reshape(pixels, k), threads)
        return
    panel = pointwise_panel(x.dtype)
    pass_blocks = max(1, BAND_BUDGET // (8 * c * x.dtype.itemsize))
    # (the pixels read: every one of x's, or one per output pixel, strided)
    filter_pixels = None if (oh, ow) == (h, w) else (h, w, oh, ow, sh, sw)
    _conv_direct.conv2d_pointwise(weight.reshape(1, c, 1, k), None, None, out.reshape(1, pixels, k), 1, 1, k, 1,
                                  panel, threads, pass_blocks, False, threads, x.reshape(n * h * w, c, 1), None, None,
                                  filter_pixels)
    if bias is not None:
        out += bias


#: Tasks per thread :func:`depthwise_nhwc` cuts a batch into at least (rows, parts of rows' channels).
DEPTHWISE_NHWC_TASKS = 4
#: Bytes of input and output from which :func:`run_depthwise_nhwc`'s rows ask for the next row's input
#: lines (``conv2d_depthwise_nhwc``'s ``ahead``; measured, see :func:`run_depthwise_nhwc`).
DEPTHWISE_NHWC_AHEAD_BYTES = 8 << 20


def depthwise_nhwc(x, weight, bias, geometry, padding_mode, out):
    """Depthwise convolution of an NHWC ``x`` into ``out`` (``(N, OH, OW, K)``, C-contiguous); no validation.

    ``weight`` is HWIO ``(KH, KW, 1, K)`` and ``bias`` ``(K,)`` or None, in
    ``x``'s float dtype; ``x``'s channels are side by side (C-contiguous,
    as prepared calls and plans give it). Runs
    :func:`~fastconv._kernels._conv_direct.conv2d_depthwise_nhwc`, which reads
    each pixel's vector of channels and each tap's vector of weights in
    place: nothing is laid out, packed or transposed. Padding modes other
    than zeros pad ``x`` first.
    """
    kh, kw, _, k = weight.shape
    (top, _), (left, _) = geometry.padding
    if padding_mode != "zeros" and geometry.has_padding:
        x, top, left = pad_input(x, geometry, padding_mode, True), 0, 0
    run_depthwise_nhwc(x, np.ascontiguousarray(weight).reshape(kh * kw, k), bias, out, (top, left),
                       geometry.stride, geometry.dilation, (kh, kw))


def run_depthwise_nhwc(x, taps, bias, out, padding, stride, dilation, kernel):
    """:func:`~fastconv._kernels._conv_direct.conv2d_depthwise_nhwc` on the threads its work takes.

    ``taps`` is the weight as ``(KH*KW, K)``, ``padding`` the rows and
    columns of zeros before the input's first; each row's channels are cut
    into parts where there are fewer than ``DEPTHWISE_NHWC_TASKS`` rows per
    thread. Where the input and output hold
    :data:`DEPTHWISE_NHWC_AHEAD_BYTES` or more, each row asks for the lines
    of input the next row reads first (``ahead``; ``FC_DWN_AHEAD`` in
    ``dw_nhwc_impl.h`` has the measurements): streamed from memory, lines
    of pixels of many channels came late from the hardware prefetchers
    (the canonical 128 channels of 28x28 on 32 images 1.42x as fast at one
    thread, 1.44x at two; strided layers 1.18-1.71x); from the caches the
    requests only cost load slots (0.92-0.98x on 3.2 to 6.4 MB of input
    and output, below the bound).
    """
    n, oh, ow, k = out.shape
    threads = threads_for(depthwise_work(n, k, oh * ow, taps.shape[0]))
    chunks = -(-DEPTHWISE_NHWC_TASKS * threads // (n * oh)) if threads > 1 else 1
    ahead = (x.size + out.size) * x.itemsize >= DEPTHWISE_NHWC_AHEAD_BYTES
    _conv_direct.conv2d_depthwise_nhwc(x, taps, bias, out, *padding, *stride, *dilation, *kernel, chunks, threads,
                                       ahead)


#: The register tiles take channel, tap and row extents as C ``int``: larger extents
#: (arrays of 8 GB and more) run the plain loops, which index with ``Py_ssize_t``.
TILE_EXTENT_MAX = 2**31 - 1


def tiles_fit(*extents):
    """Whether every extent fits the C ``int`` arguments of the register tiles."""
    return max(extents, default=0) <= TILE_EXTENT_MAX


def direct_nchw(x, weight, bias, geometry, groups, out, padding_mode="zeros"):
    """Direct NCHW convolution of ``x`` (not padded) into ``out``; no validation.

    ``x`` ``(N, C, H, W)`` is in the compute dtype, any strides, ``weight`` OIHW, ``bias`` ``(K,)`` and ``out``
    ``(N, K, OH, OW)`` C-contiguous in the same dtype; float32/64 run the
    register tiles, int64 the plain loops. ``geometry`` says how to pad.
    """
    k, cg, kh, kw = weight.shape
    threads = threads_for(out.size * weight[0].size)
    if x.dtype.kind == "f" and weight.size and tiles_fit(cg, kh * kw):
        _conv_tiled(x, weight, bias, geometry, groups, out, padding_mode)
    else:
        x = np.ascontiguousarray(pad_input(x, geometry, padding_mode, False))
        _conv_direct.conv2d_nchw(x, weight, bias, out, *geometry.stride, *geometry.dilation, groups, threads)


class StridePhases(NamedTuple):
    """How a zero-padded input is split by stride phase for the register tiles.

    Row phase ``a`` and column phase ``b`` of one (image, channel) hold the
    padded ``x[n, c, a::sh, b::sw]`` in an ``(hq, wq)`` plane; the ``sh*sw``
    planes take ``image`` elements. Output pixel ``(oh, ow)`` of tap ``t``
    reads element ``taps[t] + oh*wq + ow`` of them. ``plane`` is ``OH*wq``
    rounded up to a multiple of every tile width (a grad plane with the
    input's row pitch, for the weight-gradient tiles).
    """

    hq: int
    wq: int
    image: int
    plane: int
    taps: np.ndarray


def stride_phases(geometry, rows=None):
    """The :class:`StridePhases` of a convolution geometry.

    ``rows`` (default: all, ``hq``) sets the phase rows per plane, for planes
    that hold a band of rows (:func:`band_rows`).
    """
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    kh, kw = geometry.kernel
    hp, wp = geometry.padded_shape
    hq, wq = -(-hp // sh), -(-wp // sw)
    if rows is not None:
        hq = rows
    width = _conv_direct.MAX_TILE_WIDTH  # a multiple of every level's vector width
    plane = -(-geometry.out_shape[0] * wq // width) * width
    taps = np.array([(((i * dh) % sh * sw + (j * dw) % sw) * hq + (i * dh) // sh) * wq + (j * dw) // sw
                     for i in range(kh) for j in range(kw)], dtype=np.intp)
    read_only(taps)  # plans keep and share it
    return StridePhases(hq, wq, sh * sw * hq * wq, plane, taps)


def band_budget(l2_bytes):
    """Bytes of input a band of rows takes (:func:`band_rows`): a quarter of the L2 cache.

    Within 64 KiB and 512 KiB; 512 KiB where the cache size is unknown
    (``l2_bytes`` None). A band shares the L2 cache with the block of packed
    weights every tile of it reads (288 KiB for 512 channels of 3x3 and 16
    filters in float32), which it should not push out. Measured on an AMD
    EPYC (512 KiB of L2, AVX2) at one thread, conv2d with bands of 128 KiB
    instead of 512 KiB: 1.32x as fast on 512 channels of 14x14 (56 -> 74
    GFLOP/s), 1.1x on 128 channels of 28x28, 0.99-1.07x on the canonical
    shapes (1.00-1.08x at two threads). The Intel Xeon with 2 MiB of L2
    keeps the 512 KiB it was measured with (see :func:`band_rows`).
    """
    return 2**19 if l2_bytes is None else min(2**19, max(2**16, l2_bytes // 4))


#: Bytes of this machine's L2 cache (None where unknown).
L2_BYTES = l2_cache_bytes()
#: Bytes of input a band of rows takes on this machine (:func:`band_budget` of its L2 cache).
BAND_BUDGET = band_budget(L2_BYTES)
#: L2 caches of packed weights from which a task of the banded kernel takes several images (:func:`band_images`).
BAND_IMAGES_WEIGHTS = 2
#: Most whole images a task of the banded kernel takes (:func:`band_images`).
BAND_IMAGES_MOST = 4


def band_images(image_bytes, block_bytes, weight_bytes, l2_bytes=L2_BYTES):
    """Whole images a task of the banded kernel may take at once (``conv2d_packed``'s ``images``).

    A task runs each block of output channels over its images before the
    next block, so a block's packed weights (``block_bytes``) come into the
    L2 cache once per task. Where all the weights (``weight_bytes``) take
    more than ``BAND_IMAGES_WEIGHTS`` L2 caches, they come back from L3 or
    memory for every image: there a task takes as many whole images (of
    ``image_bytes`` laid out: images of one band each) as fit beside a
    block's weights in three quarters of the L2 cache, up to
    ``BAND_IMAGES_MOST``; else one. Same bits either way (the same tiles on
    the same inputs). Intel Xeon (2 MiB of L2), float32, in-process A/B, 1
    -> 4 images a task: ResNet's 512-channel 3x3 layers on 7x7 (9.4 MB of
    weights) 1.07x at one thread and 1.09x at two (AVX-512), 1.06x and 1.03x
    (AVX2); 256 channels on 7x7 (2.4 MB) 1.01-1.03x and resnet-deep 1.00x,
    left at one image.
    """
    if l2_bytes is None or weight_bytes <= BAND_IMAGES_WEIGHTS * l2_bytes:
        return 1
    return max(1, min(BAND_IMAGES_MOST, (3 * l2_bytes // 4 - block_bytes) // max(1, image_bytes)))


def even_images(most, images, threads):
    """Images per task, at most ``most``, that make tasks of equal size shared evenly by ``threads``.

    The largest count that divides ``images`` into a multiple of ``threads``
    tasks, or 1 (a task per image, as without :func:`band_images`).
    """
    return max((q for q in range(1, most + 1) if images % (q * threads) == 0), default=1)


#: Share of the banded kernel's tasks by which the threads' last round may fall short (:func:`even_bands`).
UNEVEN_TASKS = 0.05


def even_bands(oh, band, images, threads, min_band=1):
    """Output rows per band that share the banded kernel's tasks evenly among ``threads``, or None.

    A task is a band of one image (``_conv_direct.band_tasks``); with
    dynamic scheduling the threads' last round of tasks is short where their
    count is not a multiple of ``threads``. Where it is short by more than
    :data:`UNEVEN_TASKS` of the tasks, the images take more bands: the fewest
    that make a multiple of ``threads``, of at least ``min_band`` rows. Where
    none does, ``band`` if the tasks are at least two a thread, else None
    (for the whole-batch layout). The bands an image is cut in change no bit
    of the result.

    Measured on the Intel Xeon at two threads, in-process A/B (medians of 15,
    the same bits), an odd number of images of one band each against that
    image count in half bands: resnet-deep 1.11-1.13x (5, 7 and 11 images),
    resnet-mid 1.01-1.10x, dilated (5) 1.20x, stem 1.07-1.19x; cifar 0.97x
    on 11 images. Against the whole-batch layout, which took fewer than two
    tasks a thread: one image in half bands 1.16-1.43x (resnet-mid, dilated,
    stem; cifar 1.07x), resnet-deep 0.98x; two images of one band each
    1.04-1.09x; three in half bands 1.05-1.15x, resnet-deep 0.97x.
    """
    per_image = _conv_direct.band_tasks(oh, band)
    tasks = images * per_image
    if -(-tasks // threads) * threads <= (1 + UNEVEN_TASKS) * tasks:
        return band
    for bands in range(per_image + 1, oh + 1):
        rows = max(min_band, -(-oh // bands))
        if rows < band and images * _conv_direct.band_tasks(oh, rows) % threads == 0:
            return rows
        if rows == min_band:  # (no shorter band to be had)
            break
    return band if tasks >= 2 * threads else None


def band_rows(geometry, channels, itemsize, budget=BAND_BUDGET, min_band=1, output_bytes=None, weight_bytes=0):
    """``(band, rows)``: output rows per band and phase rows per plane holding them.

    A band's input (``channels * sh*sw * rows * wq`` elements) takes about
    ``budget`` bytes, and at least ``min_band`` output rows (or the image's
    rows, if fewer); ``rows`` adds the phase rows the kernel reaches below the
    band; an image of at most twice the budget is one band, a larger one bands
    of equal height, as near as can be (64 channels of 64x64: 22, 22 and 20
    rows, not 29, 29 and 6, whose short last band is one task with the band
    before it, of 35 rows), so the threads share the bands of few images
    evenly (:meth:`TiledConv.banded`). Even bands, Intel Xeon, in-process A/B
    (medians of 21): that layer on 8 images 1.05x at one thread and 1.11x at
    two; 64 or 128 channels of 56x56 to 224x224 0.99-1.01x (the same bits).
    Measured on an Intel Xeon (2 MiB of L2; 1 and 2 threads): from 64 KiB to
    the whole image, the budget changed nothing on resnet-mid, resnet-deep,
    stem or cifar; dilated (0.6 MiB) ran 3 % slower in two bands than in one;
    on strided, whose padded image is 3.3 MiB, bands of 512 KiB ran 6 % slower
    than the whole image (halo rows copied twice) and 256 KiB ones 8-10 %.
    Bands keep the extra memory of a call at one band per thread (strided:
    1.5x its output with whole images at 2 threads, 1.04x with bands of one
    budget, about 1.14x by count with the taller bands below). With less L2,
    smaller bands run faster (:func:`band_budget`).

    Where the budget leaves a band no taller than the phase rows the kernel
    reaches below it (many channels of long rows: ``strided``'s 64 channels
    of 112 columns at stride 2 make 57 KiB of input per output row, so one
    row per band), every band would copy its rows again as the next one's
    halo, and read each channel's rows from memory in runs of a few hundred
    bytes. There bands take up to ``TALL_BAND_BUDGETS`` budgets (1 MiB at
    128 KiB), but no more than ``output_bytes`` (if given; at least one
    budget), cut in bands of equal height. The plans give the output of two
    images, the least a thread of the banded kernel writes, so a thread's
    band stays within its output (``strided``: bands of 14 rows, 0.84 MiB
    of input, against 0.77 MiB of output per image). Only where the packed
    weights (``weight_bytes``) take at most ``TALL_BAND_WEIGHTS`` budgets:
    every block of filters reads the whole band again, and a band larger
    than the L2 cache comes back from L3 once per block (256 channels 28 ->
    14 at stride 2, 2.3 MiB of weights in 16 blocks: bands of 5 rows read
    0.93-0.95x). Measured on the AMD EPYC at one thread (two),
    in-process A/B (medians of 11-15 paired runs): ``strided`` (144 KiB of
    weights) 1.08x (1.07x), VGG's 64 channels of 224x224 1.03x (0.99x),
    shapes the rule leaves alone 1.00x; 128 channels 56 -> 28 at stride 2
    (576 KiB of weights) read 0.96-1.06x with taller bands, too unsteady to
    take. Whole images instead (3.3 MiB for ``strided``) read 1.09x there.
    """
    (sh, sw), (dh, _) = geometry.stride, geometry.dilation
    kh = geometry.kernel[0]
    wq = -(-geometry.padded_shape[1] // sw)
    reach = (kh - 1) * dh // sh  # phase rows below an output row's first
    per_row = max(1, channels * sh * sw * wq * itemsize)
    oh = geometry.out_shape[0]
    band = oh if (oh + reach) * per_row <= 2 * budget else min(oh, max(min_band, budget // per_row - reach))
    if band <= reach and weight_bytes <= TALL_BAND_WEIGHTS * budget:  # taller bands, as even as can be
        tall_bytes = TALL_BAND_BUDGETS * budget
        if output_bytes is not None:
            tall_bytes = min(tall_bytes, max(budget, output_bytes))
        band = min(oh, max(band, tall_bytes // per_row - reach))
    if band < oh:  # bands of equal height, as near as can be
        band = max(min_band, -(-oh // -(-oh // band)))
    return band, band + reach


#: Budgets of input a band may take where one budget leaves it no taller than its halo (:func:`band_rows`).
TALL_BAND_BUDGETS = 8
#: Budgets of packed weights beyond which such bands keep their budget (:func:`band_rows`).
TALL_BAND_WEIGHTS = 4


class TileInput(NamedTuple):
    """An NCHW input laid out for the tiles, and how a tap finds its pixels.

    Tap ``t`` of output column ``ow`` of output row ``oh`` in channel ``c`` of
    image ``n`` reads ``flat[n*image_stride + c*channel_stride + oh*row_step + taps[t] + ow]``.
    """

    flat: np.ndarray
    image_stride: int
    channel_stride: int
    row_step: int
    taps: np.ndarray


def tile_input(x, geometry, padding_mode="zeros", threads=1, phases=None):
    """Lay out the unpadded NCHW ``x`` (any strides) so every tap reads consecutive elements.

    A C-contiguous input that needs no padding, with stride 1 and rows at
    least one tile wide, is used as it is. Otherwise one parallel pass pads it
    and splits it by stride phase (:func:`stride_phases`) into a new buffer,
    with ``MAX_TILE_WIDTH`` elements of slack at the end for tiles wider than
    a row. Padding modes other than zeros are applied by NumPy first.
    ``phases`` is the geometry's :func:`stride_phases`, if already known.
    """
    n, c = x.shape[:2]
    (sh, sw), (_, ow) = geometry.stride, geometry.out_shape
    width = _conv_direct.MAX_TILE_WIDTH
    if padding_mode != "zeros" and geometry.has_padding:
        x = pad_input(x, geometry, padding_mode, False)
        top = left = 0
    else:
        (top, _), (left, _) = geometry.padding
    ph = stride_phases(geometry) if phases is None else phases
    if sh == sw == 1 and x.shape[2:] == geometry.padded_shape and ow >= width and x.flags.c_contiguous:
        flat = x.reshape(-1)
    else:
        flat = empty_aligned(n * c * ph.image + width, x.dtype)
        flat[n * c * ph.image:] = 0  # (phase_planes writes every element of the planes, padding included)
        _conv_direct.phase_planes(x, flat, top, left, sh, sw, ph.hq, ph.wq, False, threads)
    return TileInput(flat, c * ph.image, ph.image, ph.wq, ph.taps)


#: Pixels' worth of work a depthwise plane costs besides its own (:func:`depthwise_work`).
DEPTHWISE_PLANE_PIXELS = 64


def depthwise_work(images, channels, pixels, taps):
    """The work :func:`~fastconv._threads.threads_for` weighs for a depthwise convolution.

    Dense plans give their multiply-adds / 16. The depthwise tiles run each
    channel's taps alone (no block of filters sharing a load) at about a
    sixth of the dense tiles' rate, and a plane of few pixels costs more
    than its pixels: so their multiply-adds / 3, counting
    ``DEPTHWISE_PLANE_PIXELS`` more pixels a plane. By multiply-adds / 16,
    calls of 50-150 us ran on one thread. Intel Xeon, one image at two
    threads against one (in-process, medians of 41; ``conv2d``, input and
    weight gradients): 128 channels of 28x28 1.46-1.63x, 64 of 56x56
    1.68-1.81x, 256 of 14x14 1.35-1.54x, 512 of 7x7 1.24-1.47x; 32 channels
    of 28x28 (25 us) 0.90x for ``conv2d``, left on one thread.
    """
    return images * channels * (pixels + DEPTHWISE_PLANE_PIXELS) * taps // 3


def is_depthwise(groups, channels, filters):
    """Whether a convolution is depthwise: every input channel its own group and filter."""
    return groups > 1 and groups == channels == filters


#: Output pixels a plane may have for the depthwise lanes kernel below AVX-512 (float32 only).
DEPTHWISE_LANES_PIXELS = 64


def depthwise_lanes(geometry, dtype, level):
    """Channels a group of the depthwise lanes kernel takes for this convolution, or 0 (the plane tiles).

    :func:`~fastconv._kernels._conv_direct.conv2d_depthwise_lanes` puts a
    vector of channels in the lanes and transposes the planes in registers
    on their way in and out; the plane tiles put a plane's output columns in
    the lanes and copy each plane, padded and split by stride phase, first.
    The lanes kernel wins where a plane's rows are short or strided, and
    loses on wide rows at stride 1 and on dilated kernels (whose taps the
    plane tiles read from phase planes). Intel Xeon, in-process A/B, the
    same bits, 3x3 kernels, one thread (two within a few percent):

    * AVX-512, float32: 8 images of 1024 channels of 7x7 2.0x, 512 of 14x14
      at stride 2 2.6x and at stride 1 1.5x, 256 of 8x8 at stride 2 4.3x;
      one image of 256 of 28x28 at stride 2 2.3x, 64 of 112x112 at stride 2
      1.18x; rows of 16-24 columns 1.14-1.47x; 28 columns 0.98-1.14x, 56
      0.87-0.99x, 112 0.84x; dilation 2 0.68x. So: a stride above 1, or
      rows of at most 1.5 vectors of lanes.
    * AVX-512, float64 (8 lanes): 7x7 1.5-1.8x, stride 2 1.11-2.42x; rows
      of 14 0.88-1.05x, 16-28 0.91-1.11x: the same rule, at half the width.
    * AVX2 (8 / 4 lanes), float32: output planes of 49 pixels 1.6-1.9x,
      of 16 2.4x; 14x14 0.87x, 20x20 0.84x, 28x28 at stride 2 0.85x.
      float64 1.03x on 7x7, below 1 beyond. The baseline (4 / 2 lanes):
      float32 1.12-1.51x on planes of 49 and 16 pixels, float64 0.6-0.94x.
      So below AVX-512: float32 output planes of at most
      :data:`DEPTHWISE_LANES_PIXELS` pixels.
    """
    lanes = _conv_direct.depthwise_lanes(np.dtype(dtype).char, level)
    if not lanes or geometry.dilation != (1, 1) or 0 in geometry.in_shape:
        return 0
    (oh, ow), stride = geometry.out_shape, geometry.stride
    if level >= 2:
        wins = stride != (1, 1) or 2 * ow <= 3 * lanes
    else:
        wins = np.dtype(dtype) == np.float32 and oh * ow <= DEPTHWISE_LANES_PIXELS
    return lanes if wins else 0


#: Most output pixels a plane may have for the depthwise lanes kernel's weight gradient, by SIMD
#: level and dtype (see :func:`depthwise_lanes_grad_weight`).
DEPTHWISE_LANES_GRAD_PIXELS = {(0, "f"): 256, (0, "d"): 256, (1, "f"): 256, (1, "d"): 4096,
                               (2, "f"): 4096, (2, "d"): 4096}


def depthwise_lanes_grad_weight(geometry, dtype, level):
    """Channels a group of the depthwise lanes kernel's weight gradient takes, or 0 (the plane tiles').

    :func:`~fastconv._kernels._conv_direct.conv2d_grad_weight_depthwise_lanes`
    keeps a vector of sums per tap in registers over an image's pixels,
    where the plane tiles sum each tap's products along rows and reduce them
    across the lanes. Intel Xeon, in-process A/B, one thread, 3x3 kernels:

    * AVX-512: 8 images of 1024 channels of 7x7 2.2x (float64 2.0x), 512 of
      14x14 at stride 2 2.8x, 32 of 128 of 28x28 1.5x (1.7x), 8 of 128 of
      56x56 1.5x, 64 of 64x64 at dilation 2 1.3x (1.6x); one image of 32 of
      112x112 0.95x (float32; 12544 output pixels a plane, summed one by
      one): planes of at most 4096 output pixels.
    * AVX2: float32 1.5-2.0x on output planes of 49 and 81 pixels, 1.11x on
      28x28 at stride 2, 0.91-0.95x on 28x28 at stride 1 and larger;
      float64 1.12-1.68x on all of them. The baseline: 1.14-1.33x on planes
      of 49 and 81 pixels, 0.71-1.00x on larger ones. So float32 below
      AVX-512 and the baseline's float64 take planes of at most 256 pixels.

    Its sums differ from the plane tiles' in rounding only (each tap's
    image sum added image by image).
    """
    dtype = np.dtype(dtype)
    lanes = _conv_direct.depthwise_lanes(dtype.char, level)
    if not lanes or 0 in geometry.in_shape:
        return 0
    return lanes if geometry.out_size <= DEPTHWISE_LANES_GRAD_PIXELS[min(level, 2), dtype.char] else 0


def depthwise_lanes_grad_input(geometry, dtype, level, result_bytes, stream_bytes):
    """Channels a group of the depthwise lanes kernel's input gradient takes, or 0 (the stride phases').

    :func:`~fastconv._kernels._conv_direct.conv2d_grad_input_depthwise_lanes`
    adds each grad pixel's products to the input pixels its taps read; the
    stride phases run a stride-1 convolution per phase (each through the
    forward's depthwise kernels) and put each phase's pixels in place. At
    stride 1 there is one phase, a forward convolution, which reads where
    the lanes kernel adds (0.42-0.84x); at a stride above 1 the lanes kernel
    wins. Intel Xeon, in-process A/B, one thread: AVX-512 float32, 8 images
    of 512 channels of 14x14 at stride 2 2.9x, 256 of 8x8 4.4x, one image of
    256 of 28x28 2.1x, of 64 of 112x112 1.8x, 32 of 33x33 at stride 3 (5x5)
    3.5x; dilation 2 at stride 2 1.0x; float64 1.7-2.6x; AVX2 and the
    baseline 1.5-4.0x (dilated 0.57-0.84x). A float32 result of
    ``stream_bytes`` or more (8 images of 96 channels of 112x112, 38 MB:
    0.92x) keeps the phases, whose rows go past the caches.
    """
    dtype = np.dtype(dtype)
    lanes = _conv_direct.depthwise_lanes(dtype.char, level)
    if (not lanes or geometry.stride == (1, 1) or geometry.dilation != (1, 1) or 0 in geometry.in_shape
            or (dtype == np.float32 and result_bytes >= stream_bytes)):
        return 0
    return lanes


TILES = ("auto", "columns", "channels")


#: Sums per output pixel (input channels x taps) from which the output-channel tile's
#: transposing store is amortized, by SIMD level: it wins ties with the column tile
#: from here (measured; see :func:`choose_tiles`).
CHANNEL_TILE_DEPTH = {0: 128, 1: 256, 2: 512}
#: Fewest sums per output pixel for which the output-channel tile runs at all, by dtype and
#: SIMD level, where a row holds a whole vector of columns (see :func:`choose_tiles`; 0: no
#: such bound).
CHANNEL_TILE_MIN_DEPTH = {("f", 1): 128, ("d", 1): 128, ("f", 2): 64, ("d", 2): 32}


def choose_tiles(kg, depth, ow, dtype, level=None):
    """``(oc_level, block)``: which register tile runs a (non-depthwise) NCHW convolution.

    The column tiles hold 8 output channels x one vector of output columns; a
    row shorter than a vector, or a tail past whole vectors, leaves lanes idle
    (14 columns fill 14/16 of an AVX-512 float32 tile); a last block of at
    most 4 channels runs narrow tiles of 4 channels where a row holds one
    (:func:`~fastconv._kernels._conv_direct.narrow_tile_vectors`). The
    output-channel tiles hold two vectors of channels x up to ``oc_cols``
    columns and idle lanes only when ``kg`` is not a multiple of their block,
    but transpose their result on the way out, which costs about as much as
    the sums when a pixel has few (``depth`` = input channels x taps per
    group).

    Measured on the canonical shapes, the output-channel tile against the
    column tile ran, with AVX-512 (1 and 2 threads, float32 and float64):
    1.13-1.19x as fast on resnet-deep (14 columns), 1.06-1.3x on strided,
    about even on resnet-mid and 0.3-0.9x on the few-channel shapes (cifar,
    stem, dilated); with AVX2 and the baseline (16 registers, 6 columns):
    1.15-1.4x on every shape from stem (147 sums per pixel) up, 0.8-1.0x on
    cifar (27). Since the column tiles run three vectors with 16 registers
    too (two passes of 4 channels), at AVX2 at one thread: 1.02-1.13x from
    stem up in float32, 0.94-1.10x in float64, 0.91-0.93x on cifar. So it
    runs when it leaves clearly fewer lanes idle, or as many with
    ``depth >= CHANNEL_TILE_DEPTH[level]``. ``oc_level`` is -1 for the
    column tiles; ``block`` is the packing block of the tile chosen.

    Since the column tiles store whole blocks from their registers and run
    the single vectors a row leaves three at a time (gather tiles), AVX2 on
    an AMD EPYC at one thread (output-channel tile time / column tile time,
    medians of 9 paired runs; float32, float64): with rows of whole vectors,
    147 sums per pixel 1.08-1.17x, 1.04-1.11x (the stem, CS231n's 7x7
    layers, 16 to 32 channels 3x3), 288 sums 0.98-0.99x, 1.00x (dilated),
    576 sums 0.91-0.95x, 0.89-0.95x (resnet-mid, strided); so at AVX2 the
    tie goes to the output-channel tile from 256 sums. With rows of 14 or
    28 columns (14/16 busy), 27 sums 1.17-1.26x, 72 sums 1.02-1.03x (float64
    0.98x), 144 sums 0.92-0.94x: fewer idle lanes pay for the transposing
    store from about 128 sums (``CHANNEL_TILE_MIN_DEPTH``), below which the
    column tiles run wherever a row holds a whole vector. Rows shorter than
    a vector (4 or 7 float32 columns) keep the rule above (0.66x, 0.93x with
    27 sums). The baseline level measured 0.90-0.95x from 147 sums and 0.99x
    at 72 (its rule unchanged).

    AVX-512 on an Intel Xeon, one thread, in-process (column tile time /
    output-channel tile time, rows of 22-56 columns, 16-64 filters): float32
    0.55-0.89x with 9 to 54 sums (the textbook's 30 5x5 filters on 1x28x28:
    0.81x; 3 to 64 channels 3x3 on 56x56 0.81x), 1.08-1.24x with 72 and 75,
    1.01-1.23x from 144; float64 0.73-0.84x with 9 to 25 sums, 1.04-1.07x
    with 49 and 54. Two threads, float32, alike (0.59-0.87x up to 54 sums,
    1.08-1.24x at 72 and 75). Hence the bound at 64 sums for float32, 32 for
    float64.

    With 32 registers (AVX-512) the output-channel tiles cut a row into the
    fewest segments of at most ``oc_cols`` (14) columns, so rows of 16 or 32
    columns run tiles of 8 and of 10-11 columns, fewer multiply-adds per
    weight loaded: their share of busy columns (:func:`oc_columns_busy`)
    counts against them. AVX-512 on an Intel Xeon, one thread, 3x3 layers of
    64 and 128 channels, in-process A/B (medians of 15, the same bits):
    rows of 16 and 32 columns ran 1.12-1.14x as fast by the column tiles
    (whole vectors); of 48, 64, 96 and 128 columns the two tiles tie
    (1.00-1.02x); of 12, 20, 24 and 40 the output-channel tiles stay ahead
    (1.26-1.56x), as the rule still gives; rows of 15 and 30 1.05-1.06x by
    the column tiles. Float32 only: in float64 (8 lanes) the same rule would
    pick the column tiles for rows of 8, 18 and 20 columns, which ran
    0.84-0.94x as fast; it keeps the rule without segments (rows of 16 ran
    1.11x by the column tiles, of 24 to 64 1.02-1.03x: left as they are).

    A tail of at most half a vector runs a half-width tile: its lanes are
    busy, but its multiply-adds are half as wide and as many, so it counts
    as a whole vector with half its lanes idle. Measured with AVX-512 at one
    thread (32 or 64 channels, 3x3, column tile time / output-channel tile
    time): float32 rows of 8 columns (a half tile only) 1.66-2.01, 24 and 40
    (one more half tile) 1.20-1.50; float64 rows of 4, 12 and 20 columns
    1.20-1.87.
    """
    char = np.dtype(dtype).char
    level = _conv_direct.current_level() if level is None else level
    block, oc_cols = _conv_direct.oc_tile_shape(level, char)
    width = _conv_direct.tile_width(char, level)
    full, tail = divmod(ow, width)
    # a tail runs a half tile (at most half a vector) or a whole one: either takes a vector's time
    vectors = full + float(tail > 0)
    # a last block of at most 4 channels runs the narrow tiles (4 channels) along rows they fit
    blocks8, rest = divmod(kg, 8)
    narrow = 0 < rest <= 4 and 0 < _conv_direct.narrow_tile_vectors(level) <= full
    lanes = blocks8 * 8 + (4 if narrow else 8 * (rest > 0))
    columns_busy = kg / lanes * ow / (vectors * width)
    channels_busy = kg / (-(-kg // block) * block)
    if char == "f" and oc_cols >= OC_SEGMENT_MIN_COLUMNS:  # (32 registers: segments of at most oc_cols)
        channels_busy *= oc_columns_busy(ow, oc_cols)
    deep = depth >= CHANNEL_TILE_DEPTH.get(level, 512)
    if full and depth < CHANNEL_TILE_MIN_DEPTH.get((char, level), 0):
        return -1, 8
    if channels_busy > columns_busy + 0.05 or (channels_busy >= columns_busy and deep):
        return level, block
    return -1, 8


#: Fewest columns of an output-channel tile for which :func:`choose_tiles` counts its segments' idle
#: columns (the 32-register levels; with 16 registers tiles of 6 columns run over rows' ends).
OC_SEGMENT_MIN_COLUMNS = 14


def oc_columns_busy(ow, oc_cols):
    """Share of the output-channel tiles' columns that rows of ``ow`` columns keep busy.

    A row of at most ``oc_cols // 2`` columns runs ``oc_cols // ow`` whole
    rows a tile; a longer one is cut into the fewest segments of at most
    ``oc_cols`` columns (see :func:`~fastconv._kernels._conv_direct.conv2d_tiled`):
    rows of 14, 28, 56 or 7 fill the tiles of 14 columns, 32 fill 32 of 42.
    """
    if ow <= 0:
        return 1.0
    if ow <= oc_cols // 2:
        return oc_cols // ow * ow / oc_cols
    return ow / (-(-ow // oc_cols) * oc_cols)


#: The longest row :func:`merged_rows` makes of a pointwise convolution's short rows.
MERGED_ROW_COLUMNS = 256
#: Rows up to this long are merged (longer rows leave few lanes idle already).
MERGE_ROWS_UP_TO = 64
#: Most bytes of input a merged row takes (the band budget the merged rows were measured with).
MERGED_ROW_BYTES = 2**19


def merged_rows(geometry, kernel, channels, itemsize):
    """How many rows of a pointwise convolution's image its tiles take as one row (1: none).

    A 1x1 kernel with stride 1 and no padding reads pixel ``(oh, ow)`` only
    for output ``(oh, ow)``, so ``m`` consecutive rows of ``W`` pixels are one
    row of ``m*W``, in the image and the output alike (the rows are adjacent
    in memory). The tiles then cover each row with whole vectors, and the
    tail of a vector a short row leaves idle (28 columns fill 28/32 lanes of
    two AVX-512 float32 vectors) comes once per ``m`` rows, as does the
    per-row work. Rows of at most :data:`MERGE_ROWS_UP_TO` columns are
    merged, ``m`` the largest divisor of ``OH`` that keeps a row within
    :data:`MERGED_ROW_COLUMNS` columns, and its input within
    :data:`MERGED_ROW_BYTES`. Every output sums its channels in the same order
    either way, so the bits do not change. Measured in one process (AVX-512,
    medians of 15 paired unmerged / merged times) on 10 pointwise layers of
    3 to 1024 channels on 7x7 to 56x56 images: the forward convolution
    1.03-1.33x as fast in float32 (one layer 0.70x in that run, 1.10x in
    two reruns) and 1.01-1.54x in float64 at one thread,
    1.01-1.31x and 1.02-1.30x at two; the input gradient (the same tiles)
    1.00-1.36x and 1.02-1.45x at one thread, 0.96-1.43x and 0.92-1.20x at
    two. Rows of 112 columns merged in pairs ran 0.97x; whole 56x56 planes
    (3136 columns) 0.58-0.72x with 64 or 256 channels, and 196 columns of
    1024 float64 channels (1.6 MB a row) 0.74x, hence the limits. The
    weight gradient's tiles run on other rows: merged, 0.64-1.09x, so it
    does not merge.
    """
    oh, ow = geometry.out_shape
    if (tuple(kernel) != (1, 1) or geometry.stride != (1, 1) or geometry.has_padding
            or geometry.in_shape != geometry.out_shape or ow > MERGE_ROWS_UP_TO):
        # (the geometry of an output one pixel wide may leave input pixels unread, with stride 1)
        return 1
    longest = min(MERGED_ROW_COLUMNS, MERGED_ROW_BYTES // max(1, channels * itemsize))
    return max(m for m in range(1, oh + 1) if oh % m == 0 and m * ow <= max(ow, longest))


#: Panels a task of :func:`~fastconv._kernels._conv_direct.conv2d_pointwise` takes, about at most (see
#: :func:`pointwise_tasks`). Measured in one process (AVX2, AMD EPYC, one thread, medians of 9 paired runs)
#: on 9 pointwise layers against 4 and 16 panels: within the noise of 8 on most layers, 4 best on a
#: few, 16 on none clearly.
POINTWISE_STRIP_PANELS = 8

#: Fewest lanes of a vector for which :func:`pointwise_in_place` holds (measured: AVX-512 float32).
POINTWISE_IN_PLACE_MIN_LANES = 16
#: Fewest input channels per filter for which :func:`pointwise_in_place` holds.
POINTWISE_IN_PLACE_CHANNELS_PER_FILTER = 4

#: Bytes of packed weights above which a pointwise task runs its filters in passes (:func:`pointwise_passes`).
POINTWISE_PASS_WEIGHTS = 4 << 20

#: Budgets of input a pointwise task's panels take at most for weights of more than one budget to go in
#: passes (:func:`pointwise_passes`).
POINTWISE_PASS_TASK_BUDGETS = 2

#: Bytes of a pixel's input channels up to which a pointwise task runs its filters in passes of
#: :data:`POINTWISE_FEW_CHANNELS_PASS` blocks (:func:`pointwise_passes`).
POINTWISE_FEW_CHANNELS_BYTES = 512
POINTWISE_FEW_CHANNELS_PASS = 2


#: Fewest input channels and filters for which :func:`runs_pointwise` holds.
POINTWISE_MIN_CHANNELS = POINTWISE_MIN_FILTERS = 64


def runs_pointwise(geometry, weight_shape, groups):
    """Whether a convolution runs as a matrix product per image (``conv2d_pointwise``).

    A 1x1, unpadded convolution of one group reads one input pixel of every
    channel for each output pixel, ``(oh*sh, ow*sw)``, so each image's
    output is ``W`` times those pixels
    (:func:`~fastconv._kernels._conv_direct.conv2d_pointwise`). It runs so
    from :data:`POINTWISE_MIN_CHANNELS` input channels and
    :data:`POINTWISE_MIN_FILTERS` filters: measured in one process (AVX2,
    AMD EPYC, medians of 9-11 paired runs), with stride 1 against the
    merged rows of :func:`merged_rows`, 1.04-1.27x as fast at one thread
    and 1.01-1.21x at two on 11 such layers of ResNet and MobileNet shapes
    (7x7 to 112x112); with fewer channels or filters, where the sums per
    output are few or the strip's input is used by one or two blocks of
    filters, 0.45-1.13x (3 to 48 channels, 4 to 32 filters). Strided (the
    ResNet shortcuts' stride 2), against the banded tiles, which copy every
    stride phase of the input to read one: 1.21-4.76x on 7 layers.
    """
    k, cg, kh, kw = weight_shape
    return (groups == 1 and (kh, kw) == (1, 1) and not geometry.has_padding
            and cg >= POINTWISE_MIN_CHANNELS and k >= POINTWISE_MIN_FILTERS)


def pointwise_in_place(weight_shape, dtype, level):
    """Whether a pointwise product reads the input's panels where they lie instead of copying them.

    A task of :func:`~fastconv._kernels._conv_direct.conv2d_pointwise` copies
    each panel's ``C`` rows of pixels into a buffer, then runs every block
    of 8 filters over it. The copy waits on memory, and is paid once for
    ``K / 8`` blocks: with few filters for the channels it is a large part
    of the time (a quarter of ResNet's 256 to 64 at one thread), while the
    tiles reading the rows where they are, a plane apart, lose little. So
    the panels are read in place where ``K <= C / POINTWISE_IN_PLACE_CHANNELS_PER_FILTER``
    (4: ResNet's 1x1 layers that reduce the channels) and a vector holds at
    least :data:`POINTWISE_IN_PLACE_MIN_LANES` items (AVX-512 float32: a
    panel is three whole cache lines of each row). The kernel takes only
    whole panels in one row of one image, at stride 1, that start a cache
    line, each block of filters run by the three-vector tile; it copies the
    others (and moves the panels' ends so that they start a line where the
    input does not: its ``shift``).

    Intel Xeon, AVX-512 float32, one process switching the two per call
    (``conv2d`` whole, medians of 15, the same bits), since the panels read
    in place start a line, one / two threads: 256 to 64 channels on 56x56
    1.11x / 1.12x, 8 images 1.16x / 1.15x; 128 to 64 on 56x56 1.09x / 1.11x;
    256 to 64 on 48x48 1.15x / 1.12x, on 40x40 1.07x / 1.10x, on 28x28
    1.04x / 1.03x (4 images 1.02x / 1.05x); 128 to 64 on 112x112 1.04x /
    1.03x. With ``K = C / 2`` 0.93-1.07x (256 to 128 on 56x56 1.04x / 1.07x,
    on 48x48 0.99x / 0.97x; 512 to 256 on 28x28 0.95x / 0.93x), with ``K =
    C`` 0.91-1.02x (256 to 256 on 28x28 0.94x / 0.91x; 128 to 128 on 56x56
    1.00x): those copy. Planes of 14x14 and 7x7 are copied whatever the
    rule (their rows are not whole lines). Earlier sessions' figures, with
    panels read in place wherever they started: 1.00-1.17x where ``K <=
    C``, 0.92-1.03x where ``K > C``; fewer lanes, one thread: AVX-512
    float64 0.99x, AVX2 float32 0.93-0.98x, AVX2 float64 0.91-0.97x.
    """
    k, cg = weight_shape[:2]
    return (POINTWISE_IN_PLACE_CHANNELS_PER_FILTER * k <= cg
            and _conv_direct.tile_width(np.dtype(dtype).char, level) >= POINTWISE_IN_PLACE_MIN_LANES)


def pointwise_passes(weight_shape, itemsize, task_bytes=None, packs=False, budget=BAND_BUDGET):
    """Blocks of 8 filters a pointwise task runs over all its panels at once; 0 for all of them.

    A task of :func:`~fastconv._kernels._conv_direct.conv2d_pointwise` runs
    every block of filters on one panel, then on the next: the whole packed
    weight passes through the caches once per panel. Where it is larger
    than :data:`POINTWISE_PASS_WEIGHTS`, the blocks go in passes of
    ``budget`` bytes (at least one block), each pass over every panel of the
    task, so the weights pass once per task. Measured in one process
    (AVX2, AMD EPYC, 512 KiB of L2, passes of 128 KiB, medians of 9 paired
    runs, same bits) on pointwise convolutions of ResNet's layer 4 with 8 to
    32 MiB of weights (1024 to 2048 channels, stride 2; 2048 to 512, 512 to
    2048 and 2048 to 2048 on 7x7; 1024 to 1024 on 14x14): 1.21-1.65x as fast
    at one thread, 1.01-1.75x at two; with 0.25 to 4 MiB of weights
    (layers 3 and 4) 0.93-1.09x at one thread: those keep one pass.

    Where a pixel's input channels take at most
    :data:`POINTWISE_FEW_CHANNELS_BYTES` (64 or 128 float32 channels),
    the filters go in passes of :data:`POINTWISE_FEW_CHANNELS_PASS` blocks
    whatever the weights' size: there each output takes few multiply-adds,
    and a panel run through every block writes one line or more to each of
    ``K`` output planes at once, more streams of stores than the caches
    follow, where passes write 16 planes at a time along the task's
    panels. Measured in one process (Intel Xeon, AVX-512, 32 images,
    medians of 7, the same bits), passes of 2 blocks against one pass: 64
    to 256 channels on 56x56 2.07x at one thread and 1.42x at two (float64
    2.0x), 64 to 64 1.24x / 1.11x, 128 to 512 on 28x28 1.29x / 1.03x
    (float64 1.37x), 128 to 128 1.01x / 1.01x; AVX2 1.00-1.06x. With more
    channels, passes of 1 to 16 blocks ran 0.68-1.02x (256 to 64 on 56x56
    0.89-0.95x, 1024 to 256 on 14x14 0.92-0.95x, 2048 to 512 on 7x7
    0.68-0.98x; 512 to 128, 256 to 1024 and 512 to 2048 0.97-1.02x).

    Smaller weights go in passes too where they exceed ``budget`` and a
    task's panels, ``task_bytes`` of input (copied or read in place), take
    at most :data:`POINTWISE_PASS_TASK_BUDGETS` budgets: there each pass's
    weights stay in the L2 cache over the task's panels, and its panels stay
    too for the next pass. That is one image of 7x7 or 14x14, whose last
    panel of 1 or 4 pixels read every weight again from memory in one pass.
    Intel Xeon, AVX-512 float32, one process switching the two per call
    (kernel alone, medians of 11, the same bits), passes of 512 KiB against
    one, one / two threads: one image of 7x7, 2048 to 512 channels 1.18x /
    1.12x, 512 to 2048 1.20x / 1.09x, 1024 to 1024 1.18x / 1.08x; of 14x14,
    512 to 512 1.01x / 1.12x, 1024 to 256 1.01x / 0.99x. Tasks of more
    input: 8 images of 7x7 (2048 to 512) 0.95x / 0.97x, 2 images 1.01x /
    1.01x, 4 images of 7x7 (1024 to 1024) 1.01x / 1.00x: one pass.

    Where the kernel ``packs`` the weights itself (:func:`pointwise_packs`),
    a pass's packed blocks fill its thread's buffer: weights of more than
    ``budget`` always go in passes.
    """
    k, cg, _, _ = weight_shape
    if cg * itemsize <= POINTWISE_FEW_CHANNELS_BYTES:
        return POINTWISE_FEW_CHANNELS_PASS
    weights = k * cg * itemsize
    if weights <= POINTWISE_PASS_WEIGHTS and (weights <= budget or not packs and (
            task_bytes is None or task_bytes > POINTWISE_PASS_TASK_BUDGETS * budget)):
        return 0
    return max(1, budget // (8 * cg * itemsize))


def pointwise_tasks(pixels, panel, threads):
    """Tasks a pointwise convolution's ``pixels`` (the whole batch's) are shared among.

    The pixels make panels of ``panel``; a task takes consecutive panels,
    across images (:func:`~fastconv._kernels._conv_direct.conv2d_pointwise`
    shares them as evenly as it can), about :data:`POINTWISE_STRIP_PANELS`
    at most; the count is a multiple of ``threads`` (each thread the same
    share) but at most one task per panel. The bits of the results do not
    depend on it.

    Measured in one process (AVX2, AMD EPYC, medians of 9 paired runs, the
    same bits) against tasks of whole images (strips of one image's
    pixels): on ResNet's 7x7 layers, whose 49 pixels left a panel of one
    pixel per image, 1.11-1.35x as fast at one thread and 1.06-1.24x at
    two; 14x14 1.00-1.07x; 28x28 to 112x112 within 0.94-1.02x but one
    1.14x. With a count not a multiple of the threads (392 pixels, 17
    panels: three tasks for two threads) 0.88-0.94x at two threads, hence
    the multiple.
    """
    panels = -(-pixels // panel)
    fewest = -(-panels // POINTWISE_STRIP_PANELS)
    return min(panels, -(-fewest // threads) * threads)


#: Most a thread's share of whole panels may exceed an even share of the pixels before the threads of a
#: pointwise convolution share its filters instead (:func:`pointwise_split`).
POINTWISE_UNEVEN = 1.2


def pointwise_split(pixels, panel, threads, blocks):
    """``(tasks, filter_parts)`` of a pointwise convolution of ``pixels`` (the batch's) on ``threads``.

    Tasks of whole panels (:func:`pointwise_tasks`) give a thread up to
    ``ceil(panels / threads)`` panels. Where that exceeds an even share of
    the pixels by more than :data:`POINTWISE_UNEVEN` (one image of 7x7 has
    a panel of 48 pixels and one of 1; of 14x14, five panels for two
    threads) and the ``blocks`` of 8 filters go round the threads at least
    twice, one task of every panel runs with its filters cut into
    ``threads`` parts instead (each thread reading every panel, and only its
    part of the weights). The bits of the results do not depend on it.

    Intel Xeon, AVX-512, two threads, one process switching the two per
    call (medians of 31, the same bits), one image: 1024 to 1024 channels
    on 7x7 1.22x, 2048 to 512 on 7x7 1.19x, 512 to 512 on 14x14 1.29x; two
    images of 1024 to 1024 on 7x7 (panels of 48, 48 and 2 pixels) 1.45x.
    256 to 256 on 28x28 (17 panels, 1.10 of an even share) ran the same
    either way, 128 to 128 on 56x56 0.88x with parts (each thread reads
    the whole input): those keep tasks of panels.
    """
    tasks = pointwise_tasks(pixels, panel, threads)
    if threads > 1 and blocks >= 2 * threads:
        panels = -(-pixels // panel)
        share = -(-panels // threads) * panel  # a thread's whole panels' pixels, at most
        if share > POINTWISE_UNEVEN * pixels / threads:
            return 1, threads
    return tasks, 1


def pointwise_packs(tasks, parts, threads, adjoint=False, weight_bytes=0, budget=BAND_BUDGET):
    """Whether a pointwise convolution's kernel packs the weights itself, pass by pass.

    Where each thread runs one task (``tasks * parts <= threads``: one image
    of 7x7 or 14x14, a few of 7x7), the weights are packed once whoever
    packs them, and the kernel packing each pass's blocks into its thread's
    buffer as the pass begins (:func:`~fastconv._kernels._conv_direct.conv2d_pointwise`
    with ``weight``, passes of at most :data:`BAND_BUDGET`) spares writing
    them to memory and reading them back: each pass's blocks stay in the
    L2 cache for the tiles. Where threads run several tasks each, every
    task would pack every block again: :func:`~fastconv._kernels._conv_direct.pack_weights`
    packs them first. The bits do not depend on it.

    Intel Xeon, AVX-512 float32, one process switching the two per call
    (``conv2d`` and ``conv2d_grad_input`` whole, medians of 11), kernel
    packing against packed first, one / two threads: one image of 7x7,
    2048 to 512 channels 1.11x / 1.10x (input gradient 1.14x / 1.17x), 512
    to 2048 1.14x / 1.09x (1.00x / 0.99x), 1024 to 1024 1.16x / 1.13x
    (1.08x / 1.11x), 2048 to 2048 1.63x / 1.37x (1.56x / 1.23x); of 14x14,
    1024 to 256 1.02x / 1.02x (1.07x / 1.04x), 512 to 512 1.05x / 0.99x
    (1.03x / 1.04x), 128 to 128 1.11x / 1.42x (1.12x / 1.45x); 2 and 4
    images of 7x7 1.01-1.11x.

    An input gradient's weights (the ``adjoint`` of a 1x1 kernel: each
    block's run of 8 a row of the forward weight apart) cost the kernel
    more to pack a pass at a time than :func:`~fastconv._kernels._conv_direct.pack_weights`
    all at once, row by row: where they take more than ``budget`` bytes
    (``weight_bytes``), packed first. Kernel packing against packed first,
    one / two threads: 512 to 2048 channels on 7x7 0.95x / 0.94x, 1024 to
    1024 0.96x / 0.99x, 2048 to 2048 1.13x / 0.92x, 2048 to 512 1.07x /
    1.06x, 14x14 (1 MiB) 1.00-1.02x; within a budget (128 to 128 on 14x14)
    1.11x / 1.36x.
    """
    return tasks * parts <= threads and not (adjoint and weight_bytes > budget)


def edge_columns(geometry):
    """Whether a convolution's output rows start and end on products of zero padding only.

    A 3x3 kernel at stride 1 without dilation, over rows of 7 output
    columns or a multiple of 14 (output-channel tiles of 14 columns, or two
    rows of 7, at AVX-512) whose first column's kernel column 0 and last
    column's kernel column 2 read the zero padding: the edge tiles leave
    out those products, 6 of the 126 multiply-adds of a row of 14 (4.8 %),
    of the 504 of a row of 56 (1.2 %) and of the 63 of a row of 7 (9.5 %),
    as oneDNN does. The sums are the same but for the sign of a zero sum;
    :meth:`TiledConv.run` takes the full tiles where a weight is not finite
    (a zero times an infinity is a nan).
    """
    (_, w), (_, ow), left = geometry.in_shape, geometry.out_shape, geometry.padding[1][0]
    return (geometry.kernel == (3, 3) and geometry.stride == (1, 1) and geometry.dilation == (1, 1)
            and (ow == 7 or (ow > 0 and ow % 14 == 0)) and left >= 1 and ow - 1 + 2 - left >= w)


def edges(geometry):
    """The flags of the products of zero padding a convolution's tiles leave out (0: none).

    ``EDGE_COLUMNS`` where :func:`edge_columns` holds, and with it
    ``EDGE_TOP_ROW`` where the first output row's kernel row 0 reads the
    padding above the input and ``EDGE_BOTTOM_ROW`` where the last output
    row's kernel row 2 reads the padding below: those rows' tiles leave out
    that kernel row's products too. With a padding of 1, the columns and
    rows together leave out 18.1 % of the work on 7x7, 9.3 % on 14x14,
    4.7 % on 28x28 and 2.4 % on 56x56, all of it products of zeros, as
    oneDNN does.
    """
    if not edge_columns(geometry):
        return 0
    (h, _), (oh, _), (top, _) = geometry.in_shape, geometry.out_shape, geometry.padding[0]
    flags = _conv_direct.EDGE_COLUMNS
    if top >= 1:
        flags |= _conv_direct.EDGE_TOP_ROW
    if oh - 1 + 2 - top >= h:
        flags |= _conv_direct.EDGE_BOTTOM_ROW
    return flags


class TiledConv:
    """The shape-only work of a tiled NCHW convolution, done once per shape.

    Built by :func:`tiled_conv` (cached) from the input and weight shapes,
    the geometry, ``groups``, ``padding_mode``, the float dtype, the SIMD level
    and the tile choice (``"auto"``, ``"columns"`` or ``"channels"``,
    :func:`choose_tiles`; depthwise convolutions always run their own), and
    ``copies``: whether a stride-1 plan lays out column copies (``copies``
    attribute: the kernel's columns, or 0; None lets :func:`column_copies`
    decide where ``tiles`` is ``"auto"``); its :meth:`run` packs the weights
    (or has the kernel pack them) and calls the kernels. With
    ``channels_last``, the plan is for NHWC results (:meth:`run`'s
    ``channels_last``): ``"auto"`` takes the output-channel tiles wherever
    the filters fill their blocks (:func:`channel_tiles_store_pixels`).
    """

    def __init__(self, x_shape, weight_shape, geometry, groups, padding_mode, dtype, level, tiles="auto",
                 copies=None, channels_last=False):
        if tiles not in TILES:
            raise ValueError(f"tiles must be one of {TILES!r}, got {tiles!r}")
        n, c = x_shape[:2]
        k, cg, kh, kw = weight_shape
        dtype = np.dtype(dtype)
        self.depthwise = is_depthwise(groups, c, k)
        self.pointwise = runs_pointwise(geometry, weight_shape, groups)
        if self.pointwise:  # the column tiles run over panels of three vectors (whatever `tiles` asks)
            tiles = "columns"
            self.panel = pointwise_panel(dtype, level)
            self.in_place = pointwise_in_place(weight_shape, dtype, level)
        self.merge = 1 if self.depthwise or self.pointwise else merged_rows(geometry, (kh, kw), c, dtype.itemsize)
        if self.merge > 1:  # the tiles see rows of merge * W pixels (see merged_rows)
            oh, ow = geometry.out_shape
            self.merged_in = (n, c, oh // self.merge, ow * self.merge)
            self.merged_out = (n, k) + self.merged_in[2:]
            geometry = conv_geometry(self.merged_in[2:], 1)
        if self.depthwise:  # blocks of 8 channels, each its own group: pack as one group of K
            groups = 1
        kg = k // groups
        # NHWC results: the output-channel tiles store pixels (no transpose) where their blocks are full
        if (tiles == "auto" and channels_last and not (self.depthwise or self.pointwise or self.merge > 1)
                and channel_tiles_store_pixels(kg, dtype, level)):
            tiles = "channels"
        # column copies: the kernel's columns as channels, the rows of a band as one row (column_copies)
        self.copies = 0
        if not (self.depthwise or self.pointwise or self.merge > 1) and geometry.stride == (1, 1):
            if copies is None:  # (tiles chosen by hand run on the input's rows)
                copies = tiles == "auto" and column_copies(kg, cg, (kh, kw), geometry.out_shape[1], dtype, level)
            self.copies = kw if copies else 0
        tile_columns = geometry.out_shape[1]
        if self.copies:  # bands of the input's copies; the tiles see a band's rows as one
            self.band, rows = band_rows(geometry, c * kw, dtype.itemsize,
                                        output_bytes=2 * k * geometry.out_size * dtype.itemsize,
                                        weight_bytes=k * cg * kh * kw * dtype.itemsize)
            tile_columns *= self.band
        # depthwise groups of a vector of channels in the lanes (depthwise_lanes), or 0
        self.dw_lanes = depthwise_lanes(geometry, dtype, level) if self.depthwise else 0
        if self.dw_lanes:
            oc_level, block = -1, self.dw_lanes
        elif self.depthwise or tiles == "columns":
            oc_level, block = -1, 8
        elif tiles == "channels":
            oc_level, block = level, _conv_direct.oc_tile_shape(level, dtype.char)[0]
        else:
            oc_level, block = choose_tiles(kg, cg * kh * kw, tile_columns, dtype, level)
        self.geometry, self.groups, self.padding_mode, self.dtype = geometry, groups, padding_mode, dtype
        self.oc_level, self.block, self.kg, self.cg = oc_level, block, kg, cg
        self.blocks, self.taps_per_filter = -(-kg // block), kh * kw
        self.work = (depthwise_work(n, k, geometry.out_size, kh * kw) if self.depthwise
                     else n * k * geometry.out_size * cg * kh * kw // 16)  # multiply-adds / 16
        self.pads_itself = not (padding_mode != "zeros" and geometry.has_padding)
        (top, _), (left, _) = geometry.padding
        self.top, self.left = (top, left) if self.pads_itself else (0, 0)
        if self.depthwise:  # each input plane meets one block of weights: pack 8 planes per task
            self.band, self.phases = None, stride_phases(geometry)
        elif self.copies:  # kw planes of `rows` rows of OW columns per channel; a tap starts a row
            ow, dh = geometry.out_shape[1], geometry.dilation[0]
            (taps,) = read_only(np.arange(kh, dtype=np.intp) * (dh * ow))
            self.phases = StridePhases(rows, ow, kw * rows * ow, rows * ow, taps)
        else:  # every block of output channels reads the whole image: pack a band of rows at a time
            # a last block of at most 3 live channels runs row tiles (FC_ROWS rows at a time) where
            # a band has that many rows, and in the whole-batch layout wherever the image has: so
            # every band gets as many (with the last one's overlapping the band before it), and
            # the tiles an output takes depend on the shapes, not on the thread count
            few = oc_level < 0 and not self.depthwise and 0 < kg % 8 <= _conv_direct.ROW_TILE_CHANNELS
            self.min_band = _conv_direct.ROW_TILE_ROWS if few else 1
            self.band, rows = band_rows(geometry, c, dtype.itemsize, min_band=self.min_band,
                                        output_bytes=2 * k * geometry.out_size * dtype.itemsize,
                                        weight_bytes=k * cg * kh * kw * dtype.itemsize)
            self.phases = stride_phases(geometry, rows)
        self.band_images = 1  # whole images a banded task may take (band_images)
        if not self.depthwise and self.band == geometry.out_shape[0]:
            per_filter = cg * kh * kw * dtype.itemsize
            self.band_images = band_images(c * self.phases.image * dtype.itemsize, block * per_filter,
                                           groups * self.blocks * block * per_filter)
        self.images, self.weight_bytes = n, k * cg * kh * kw * dtype.itemsize
        # weights larger than the L2 cache: the whole-batch layout's threads take blocks of filters
        # over every image, each reading its share of the weights once (conv2d_tiled)
        self.blocks_outer = L2_BYTES is not None and self.weight_bytes > L2_BYTES
        self.bands = {1: (self.band, self.phases)}  # thread count -> its bands (see banded)
        self.whole = stride_phases(geometry)  # the batch laid out at once (tile_input)
        # the output-channel tiles leave out products of the zero padding (edges), where the level
        # has such tiles (elsewhere a call would check its weights for nothing)
        self.edges = (edges(geometry) if oc_level >= 0 and not (self.depthwise or self.copies or self.merge > 1)
                      and padding_mode == "zeros" and _conv_direct.has_edge_tiles(oc_level) else 0)
        # the kernels' float32 or float64 versions (no dispatch on the buffers' types per call)
        self.conv2d_packed = specialized(_conv_direct.conv2d_packed, dtype)
        self.conv2d_depthwise_packed = specialized(_conv_direct.conv2d_depthwise_packed, dtype)
        self.conv2d_depthwise_lanes = specialized(_conv_direct.conv2d_depthwise_lanes, dtype)
        self.conv2d_tiled = specialized(_conv_direct.conv2d_tiled, dtype)
        self.conv2d_pointwise = specialized(_conv_direct.conv2d_pointwise, dtype)
        self.pack_weights = specialized(_conv_direct.pack_weights, dtype)

    def pack(self, weight, bias, adjoint_taps=None, check_finite=False, hwio=False):
        """The weights and bias (or None) in the tiles' block order (zeros pad a partial block).

        With ``adjoint_taps``, those of ``weight``'s adjoint (see :meth:`run`).
        With ``check_finite``, a third item: whether every weight is finite
        (checked as they are packed). With ``hwio``, ``weight`` is HWIO
        (:meth:`run`).
        """
        size = self.groups * self.blocks * self.block
        w_packed = empty_aligned(size * self.cg * self.taps_per_filter, self.dtype)
        b_packed = np.empty(size, self.dtype)
        if hwio:  # (taps, cg, K), of the forward convolution with adjoint taps
            weight, hwio_taps = weight.reshape(-1, weight.shape[-2], weight.shape[-1]), self.hwio_offsets(adjoint_taps)
        else:
            weight, hwio_taps = weight.reshape(weight.shape[0], weight.shape[1], -1), None
        finite = self.pack_weights(weight, bias, w_packed, b_packed, self.groups, self.block,
                                   threads_for(w_packed.size), adjoint_taps, check_finite, hwio_taps)
        return (w_packed, b_packed, finite) if check_finite else (w_packed, b_packed)

    @property
    def packs_hwio(self):
        """Whether :meth:`run` packs an HWIO weight in place (the banded and whole-batch kernels' packing)."""
        return not (self.pointwise or self.depthwise or self.copies)

    def hwio_offsets(self, adjoint_taps=None):
        """Where each packed tap's weights start in an HWIO weight (intp): ``t * cg * K`` for tap ``t``.

        With ``adjoint_taps``, those forward taps' in the forward HWIO
        weight, whose ``cg * K`` is the adjoint's too.
        """
        taps = np.arange(self.taps_per_filter, dtype=np.intp) if adjoint_taps is None else adjoint_taps
        return taps * (self.cg * self.kg * self.groups)

    def run(self, x, weight, bias, out, adjoint_taps=None, hwio=False, channels_last=False):
        """Convolve ``x`` (unpadded ``(N, C, H, W)``, any strides) into ``out`` (C-contiguous).

        ``weight`` (OIHW, C-contiguous) and ``bias`` (``(K,)`` or None) are in
        the plan's dtype. With ``adjoint_taps`` (intp; not for depthwise
        plans), ``weight`` is the forward weight of an input gradient and the
        plan's is its adjoint: the transposed weight, tap ``t`` of which is
        its tap ``adjoint_taps[t]`` (flat, ``kh * KW + kw``). The tiles' packing reads
        it from the forward weight (:func:`~fastconv._kernels._conv_direct.pack_weights`).
        With ``hwio``, ``weight`` is HWIO (C-contiguous; with
        ``adjoint_taps``, the forward's): the banded and whole-batch kernels
        pack it in place (:meth:`hwio_offsets`), the others from its OIHW
        copy (:func:`~fastconv._layouts.hwio_to_oihw`).

        The banded kernel runs in the bands :meth:`banded` gives for the
        thread count; else the threads share the blocks of output channels of
        the batch, laid out at once (:func:`tile_input`). Images of several
        bands took the whole-batch layout whenever there were fewer images
        than twice the threads; Intel Xeon, two threads, in-process A/B
        (medians of 15, the same bits), bands against it: ``strided`` (56
        rows in bands of 7) 2.64x on one image, 1.55x on two, 1.58x on three;
        64 channels of 100x100 1.37-1.78x; 128 channels of 56x56 1.03-1.19x
        (1.05-1.32x at stride 2).

        With ``channels_last``, ``out`` is ``(N, OH, OW, K)``: the banded
        kernel writes its pixels itself (:meth:`writes_pixels`), the others
        run into an NCHW array transposed into ``out`` after.
        """
        if channels_last and not self.writes_pixels(threads_for(self.work)):
            n, oh, ow, k = out.shape
            result = empty((n, k, oh, ow), out.dtype)
            self.run(x, weight, bias, result, adjoint_taps, hwio)
            nchw_to_nhwc(result, out=out)
            return
        if adjoint_taps is not None and self.depthwise:  # (packed as one group of K: not their adjoint's)
            raise ValueError("a depthwise plan packs no adjoint weights")
        if hwio and not self.packs_hwio:
            weight, hwio = hwio_to_oihw(weight), False
        cg, copies = self.cg, self.copies
        if copies:  # the weight of the kernel's columns as channels (see _copies_weight)
            weight, adjoint_taps, cg = self._copies_weight(weight, adjoint_taps), None, cg * copies
        if self.merge > 1:  # (a copy only where x's rows are not adjacent in memory)
            x, out = x.reshape(self.merged_in), out.reshape(self.merged_out)
        geometry = self.geometry
        threads = threads_for(self.work)
        if self.pointwise:
            n, c, h, w = x.shape
            (oh, ow), (sh, sw) = geometry.out_shape, geometry.stride
            pixels = oh * ow
            if geometry.stride == (1, 1) and geometry.in_shape == geometry.out_shape:
                # each image's pixels as one row (a copy only where x's rows are not adjacent)
                x, ow = x.reshape(n, c, 1, pixels), pixels
            k, itemsize, out = out.shape[1], self.dtype.itemsize, out.reshape(n, out.shape[1], -1)
            tasks, parts = pointwise_split(n * pixels, self.panel, threads, -(-k // 8))
            panels = -(-n * pixels // self.panel)
            task_bytes = -(-panels // tasks) * self.panel * self.cg * itemsize  # a task's panels' input
            packs = pointwise_packs(tasks, parts, threads, adjoint_taps is not None, k * self.cg * itemsize)
            pass_blocks = pointwise_passes((k, self.cg, 1, 1), itemsize, task_bytes, packs)
            if packs:  # the kernel packs each pass's blocks, in a thread's buffer
                self.conv2d_pointwise(x, None, None, out, sh, sw, ow, tasks, self.panel, threads, pass_blocks,
                                      self.in_place, parts, weight=weight.reshape(weight.shape[0], weight.shape[1], -1),
                                      bias=bias, adjoint_taps=adjoint_taps)
                return
            w_packed, b_packed = self.pack(weight, bias, adjoint_taps)
            self.conv2d_pointwise(x, w_packed, b_packed, out, sh, sw, ow, tasks, self.panel, threads, pass_blocks,
                                  self.in_place, parts)
            return
        band, ph = self.banded(threads)
        if self.depthwise or band is not None:  # pad in cache, per task
            if not self.pads_itself:
                x = pad_input(x, geometry, self.padding_mode, False)
            if self.dw_lanes:
                (kh, kw), (dh, dw) = geometry.kernel, geometry.dilation
                w_packed, b_packed = self.pack(weight, bias)
                self.conv2d_depthwise_lanes(x, w_packed, b_packed, out, self.top, self.left, *geometry.stride,
                                            dh, dw, kh, kw, threads)
            elif self.depthwise:
                w_packed, b_packed = self.pack(weight, bias)
                self.conv2d_depthwise_packed(x, w_packed, b_packed, out, self.top, self.left,
                                             *geometry.stride, ph.hq, ph.wq, ph.taps, threads)
            else:  # (packs the weights itself)
                images = (even_images(self.band_images, x.shape[0], threads)
                          if self.band_images > 1 and band == self.band else 1)
                # (with edges, the kernel's packing checks that the weights are finite)
                self.conv2d_packed(x, weight, bias, out, self.groups, cg, self.top, self.left,
                                   *geometry.stride, band, ph.hq, ph.wq, ph.taps, threads, self.oc_level,
                                   adjoint_taps, images, copies, geometry.dilation[1], self.edges,
                                   self.hwio_offsets(adjoint_taps) if hwio else None, channels_last)
            return
        # too few bands to share between the threads: lay the whole batch out once and split
        # the work by (image, block of output channels)
        # the edge tiles only where every weight is finite, checked as they are packed (as the banded
        # kernel does)
        if self.edges:
            w_packed, b_packed, finite = self.pack(weight, bias, adjoint_taps, check_finite=True, hwio=hwio)
        else:
            (w_packed, b_packed), finite = self.pack(weight, bias, adjoint_taps, hwio=hwio), False
        src = tile_input(x, geometry, self.padding_mode, threads, self.whole)
        self.conv2d_tiled(src.flat, src.image_stride, src.channel_stride, src.row_step, src.taps,
                          w_packed, b_packed, out, self.groups, self.cg, self.depthwise, threads, self.oc_level,
                          self.edges if finite else 0, self.blocks_outer)

    def reads_pixels(self, threads):
        """Whether :meth:`run` on ``threads`` threads takes an NHWC input's view as it lies (no NCHW copy first).

        The banded kernel's column copies of an input whose channels lie
        side by side transpose each band's rows themselves
        (``_pack_column_copies_pixels``: in cache, in every thread) where the
        NCHW path transposes the whole batch first, on one thread below the
        grain. Intel Xeon, AVX-512, float32, in-process A/B, that view
        against the NCHW copy made in the call (medians of 31, the same
        bits), two threads, over four to seven runs: LeNet's C3 (100
        images) 1.01-1.87x (five runs 1.11-1.15x), 16 3x3 filters on
        8x12x12 (50) 1.10-1.63x, 16 5x5 on 3x14x14 (100) 1.05-1.74x, 64
        3x3 on 3x58x58 (16) 1.04-1.07x; one thread 0.94-1.02x (C3
        0.94-0.95x: there the transposes of the bands cost more than the
        batch's, which nothing waits on), so only where the call runs on
        more than one thread.
        """
        return bool(self.copies) and threads > 1

    def writes_pixels(self, threads):
        """Whether :meth:`run` on ``threads`` threads writes an NHWC ``out`` from its kernel (``channels_last``).

        The banded kernel does (``conv2d_packed``'s ``channels_last``: the
        output-channel tiles store pixels from their vectors, the column
        tiles' band planes are transposed into pixels while they are in
        cache), not the pointwise, depthwise, merged-row and whole-batch ones. Intel
        Xeon, float32, against the NCHW result transposed after (in-process
        A/B, medians of 21, the same bits): see the measurements in
        :func:`nhwc_through_nchw`.
        """
        return not (self.pointwise or self.depthwise or self.merge > 1) and self.banded(threads)[0] is not None

    def banded(self, threads):
        """``(band, phases)`` of the banded kernel on ``threads`` threads, or ``(None, None)``.

        Depthwise plans, and plans with column copies (whose tiles depend on
        the band), keep theirs; others take :func:`even_bands`, and None
        lays the whole batch out at once. So does a plan whose packed weights
        are larger than the L2 cache where its bands make fewer than two
        tasks a thread: there a task in bands reads every block of weights
        from L3, and in the whole-batch layout each thread its own blocks
        (``blocks_outer``: a block over every image in turn). Intel Xeon, two
        threads, in-process A/B (medians of 11-15, the same bits), on 1 to 3
        images: resnet-deep (2.4 MB of weights) in even bands 0.94-1.01x of
        that layout image by image, which blocks over images make 1.01-1.05x
        faster; ResNet's 512-channel 7x7 layer (9.4 MB) in bands of one image
        0.70-0.98x of it, blocks over images 1.02-1.10x. Cached per thread
        count.
        """
        if threads in self.bands:
            return self.bands[threads]
        oh = self.geometry.out_shape[0]
        if self.depthwise or self.copies:  # (depthwise: planes of whole images, no bands)
            bands = self.band, self.phases
        elif (L2_BYTES is not None and self.weight_bytes > L2_BYTES
              and self.images * _conv_direct.band_tasks(oh, self.band) < 2 * threads):
            # few tasks and weights larger than the L2 cache: in the whole-batch layout each thread
            # reads its blocks of weights, in bands every block (see even_bands)
            bands = None, None
        else:
            band = even_bands(oh, self.band, self.images, threads, self.min_band)
            if band is None:
                bands = None, None
            elif band == self.band:
                bands = band, self.phases
            else:  # the phase rows a band reaches below it, as band_rows counts them
                bands = band, stride_phases(self.geometry, band + self.phases.hq - self.band)
        self.bands[threads] = bands
        return bands

    def _copies_weight(self, weight, adjoint_taps):
        """The ``(K, cg * KW, 1, KH)`` weight of a plan with column copies (a copy of a few KiB).

        Channel ``c * KW + j`` is column ``j`` of channel ``c`` of the plan's
        ``(K, cg, KH, KW)`` weight: ``weight`` itself, or with ``adjoint_taps``
        the adjoint of the forward weight given (as the kernels' packing reads
        it); its input copy ``j`` is shifted ``j * dilation`` columns.
        """
        kw = self.copies
        if adjoint_taps is not None:  # (groups, Kf, Cf, taps) -> (groups * Cf, Kf, len(adjoint_taps))
            wk, wc = weight.shape[:2]
            weight = weight.reshape(self.groups, wk // self.groups, wc, -1).transpose(0, 2, 1, 3)
            weight = weight.reshape(self.groups * wc, wk // self.groups, -1)[:, :, adjoint_taps]
        k = weight.shape[0]
        weight = np.ascontiguousarray(weight.reshape(k, self.cg, -1, kw).transpose(0, 1, 3, 2))
        return weight.reshape(k, self.cg * kw, 1, -1)


@functools.lru_cache(maxsize=256)
def tiled_conv(x_shape, weight_shape, geometry, groups, padding_mode, dtype, level, tiles="auto", copies=None,
               channels_last=False):
    """The :class:`TiledConv` of a shape, cached: repeated calls of one shape skip its set-up."""
    return TiledConv(x_shape, weight_shape, geometry, groups, padding_mode, dtype, level, tiles, copies,
                     channels_last)


#: Least share of the output-channel tiles' lanes the filters must fill for NHWC results to take them
#: (:func:`channel_tiles_store_pixels`).
CHANNEL_TILE_PIXELS_FILL = 0.8


def channel_tiles_store_pixels(kg, dtype, level):
    """Whether a tiled convolution of ``kg`` filters a group with NHWC results runs the output-channel tiles.

    Those tiles hold a pixel's channels in their vectors: into an NHWC
    result they store them as they are (``FC_OC_STORE``'s pixels), where
    the column tiles' planes are transposed into pixels after (through the
    banded kernel's scratch). So they win wherever their blocks of filters
    are nearly full (at least :data:`CHANNEL_TILE_PIXELS_FILL` of the
    lanes), whatever the sums per pixel or the row lengths that decide for
    NCHW results (:func:`choose_tiles`). Intel Xeon, one thread, in-process
    A/B against that choice (NHWC results, medians of 21, the same sums),
    AVX-512 float32 (blocks of 32): CS231n's 7x7 layer 1.26x (two threads
    1.26x), the stem 1.25x (1.31x), 32 filters on one channel of 3x3 1.78x
    and on 3 channels 1.54x, 64 on 64 channels 1.06x, SimpleConvNet's 30
    filters 1.11x; blocks 3/4 full or less 0.33-0.90x (48 filters 0.88x,
    40 0.79x, 16 0.70-0.90x, 6 0.33x). float64 (blocks of 16) 1.06-1.63x
    with blocks from 5/6 full (16, 30, 32, 40, 64 filters), 6 filters
    0.61x; AVX2 (blocks of 16 float32, 8 float64) 1.01-1.36x from 5/6 full,
    6 of 8 float64 filters 0.66x. Not at the baseline level (blocks of 8
    float32: 0.88-1.10x; the rule for NCHW results takes these tiles for
    most of those layers already).
    """
    if level < 1:
        return False
    block = _conv_direct.oc_tile_shape(level, np.dtype(dtype).char)[0]
    return kg > 0 and kg / (-(-kg // block) * block) >= CHANNEL_TILE_PIXELS_FILL


#: Rows whose column tiles keep at most this share of their lanes busy take column copies (:func:`column_copies`).
COLUMN_COPIES_BUSY = 0.9
#: Most elements copied per vector multiply-add for which :func:`column_copies` holds.
COLUMN_COPIES_PER_FMA = 0.4
#: Fewest lanes of a vector for which :func:`column_copies` holds (measured: AVX-512 float32).
COLUMN_COPIES_MIN_LANES = 16


def column_copies(kg, cg, kernel, ow, dtype, level):
    """Whether a stride-1 convolution lays out a copy of its input per kernel column (its rows then merge).

    The column tiles hold one vector of a row's columns: a row of 10 float32
    columns keeps 10 of an AVX-512 vector's 16 lanes busy, one of 24 columns
    24 of 32. With a copy of the input per kernel column (copy ``j`` shifted
    ``j * dilation`` columns), the convolution is one of ``C * KW`` channels
    and a kernel of one column, whose output pixel ``(oh, ow)`` reads the
    copies at ``oh * OW + ow`` plus a whole number of rows: a band's rows are
    one row of the tiles, which fill their vectors but for the band's last.
    The copies cost ``KW`` times the input's layout, in cache: about
    ``width / (kg * KH)`` elements copied per vector multiply-add (``width``
    lanes, ``kg`` filters per group, ``KH`` kernel rows). So they are taken
    where the plan would run the column tiles (:func:`choose_tiles`; the
    output-channel tiles fill their lanes along the channels already) on
    rows that leave more than ``1 - COLUMN_COPIES_BUSY`` of their lanes idle,
    where that count is at most ``COLUMN_COPIES_PER_FMA``, and where no block
    has so few filters that it runs the row tiles; and only with vectors of
    at least ``COLUMN_COPIES_MIN_LANES`` lanes (AVX-512 float32), where they
    were measured to pay. ``cg`` is the input channels per group, ``kernel``
    ``(KH, KW)``, ``ow`` the output row's columns.

    Intel Xeon, AVX-512, float32, in-process A/B (medians of 25 paired
    runs, time without / with copies): LeNet-5's C3 layer (16 5x5 filters
    on 6x14x14, 10 columns) 1.19x at one thread and 1.15x at two, the
    textbook's 30 5x5 filters on 1x28x28 (24 columns) 1.39x and 1.30x,
    16 3x3 filters on 8x12x12 1.29x and 1.26x, 64 3x3 filters on 3x58x58
    (56 columns) 1.21-1.26x and 1.09x. Rows of whole vectors lose the copies'
    cost: CS231n's 32 7x7 filters on 3x32x32, 0.93-0.98x; deep layers on
    the output-channel tiles 0.76-0.94x. Copying more per multiply-add:
    C3's input gradient (6 5x5 filters on 16x18x18, 0.53 per multiply-add)
    0.69x and 0.89x; LeNet-5's C1 (6 5x5 filters on 1x32x32) 0.93x.
    With vectors of 8 lanes (AVX2 float32, AVX-512 float64), one thread,
    processes alternating: 1.12-1.36x on 16 3x3 filters on 8x12x12 or
    1x28x28 and on C1, but 0.94x on C3 and 0.85x on its input gradient
    (0.27 copies per multiply-add): no rule found that keeps only the gains.
    """
    kh, kw = kernel
    oc_level, _ = choose_tiles(kg, cg * kh * kw, ow, dtype, level)
    if oc_level >= 0 or 0 < kg % 8 <= _conv_direct.ROW_TILE_CHANNELS:
        return False
    width = _conv_direct.tile_width(np.dtype(dtype).char, level)
    busy = ow / (-(-ow // width) * width)
    return (width >= COLUMN_COPIES_MIN_LANES and busy <= COLUMN_COPIES_BUSY
            and width / (kg * kh) <= COLUMN_COPIES_PER_FMA)


def _conv_tiled(x, weight, bias, geometry, groups, out, padding_mode, tiles="auto"):
    """Run the tiled NCHW kernel: lay out the input, pack the weights.

    ``x`` is the unpadded ``(N, C, H, W)`` input, ``weight`` OIHW and ``out``
    ``(N, K, OH, OW)`` C-contiguous, all in one float dtype (see :class:`TiledConv`).
    """
    plan = tiled_conv(x.shape, weight.shape, geometry, groups, padding_mode, x.dtype,
                      _conv_direct.current_level(), tiles)
    plan.run(x, weight, bias, out)


def _conv_im2col_run(call, result):
    """Columns of a batch of images times the weight matrix, one group at a time."""
    groups = call.groups
    if call.channels_last:
        kh, kw, cg, k = call.weight.shape
        # rows in (kh, kw, c) order, matching NHWC columns
        w_mat = call.weight.reshape(kh * kw, cg, groups, k // groups)
    else:
        k, cg, kh, kw = call.weight.shape
        w_mat = call.weight.reshape(groups, k // groups, cg * kh * kw)
    kg, depth = k // groups, cg * kh * kw
    rows_per_image = call.geometry.out_size
    for n0, n1, cols in unfold_batches(call.x, call.geometry, call.channels_last, call.padding_mode):
        if call.channels_last:
            res = result[n0:n1].reshape(-1, k)
            if groups == 1:
                np.matmul(cols, w_mat.reshape(-1, k), out=res)
            else:
                c3 = cols.reshape(cols.shape[0], kh * kw, groups, cg)
                for g in range(groups):
                    res[:, g * kg:(g + 1) * kg] = (
                        c3[:, :, g, :].reshape(cols.shape[0], -1) @ w_mat[:, :, g, :].reshape(-1, kg)
                    )
            if call.has_bias:
                res += call.bias
        else:
            res = result[n0:n1].reshape(n1 - n0, k, rows_per_image)
            for g in range(groups):
                # (Kg, depth) @ (depth, rows): one product per group for the whole batch
                prod = w_mat[g] @ cols[:, g * depth:(g + 1) * depth].T
                res[:, g * kg:(g + 1) * kg, :] = prod.reshape(kg, n1 - n0, rows_per_image).transpose(1, 0, 2)
            if call.has_bias:
                res += call.bias[:, None]


class _ConvPlan(NamedTuple):
    """A planned conv2d call (:mod:`fastconv._plans`): NCHW, float, direct, into a new array or ``out``."""

    tiled: TiledConv
    batched_shape: tuple  # of x, with the batch axis
    out_shape: tuple  # batched
    batched: bool

    def __call__(self, x, weight, bias, out=None):
        result = empty(self.out_shape, self.tiled.dtype) if out is None else out.reshape(self.out_shape)
        self.tiled.run(x.reshape(self.batched_shape), weight, bias, result)
        if out is not None:
            return out
        return result if self.batched else result[0]


class _DepthwiseNHWCPlan(NamedTuple):
    """A planned depthwise NHWC conv2d call (:func:`depthwise_nhwc`), into a new array or ``out``."""

    geometry: object
    padding_mode: str
    dtype: np.dtype
    batched_shape: tuple  # of x, with the batch axis
    out_shape: tuple  # batched
    batched: bool

    def __call__(self, x, weight, bias, out=None):
        result = empty(self.out_shape, self.dtype) if out is None else out.reshape(self.out_shape)
        depthwise_nhwc(x.reshape(self.batched_shape), weight, bias, self.geometry, self.padding_mode, result)
        if out is not None:
            return out
        return result if self.batched else result[0]


class _NHWCTiledPlan(NamedTuple):
    """A planned NHWC conv2d call that the NCHW tiles run (:func:`nhwc_through_nchw`), into a new array or ``out``."""

    tiled: TiledConv  # of the NCHW shapes
    batched_shape: tuple  # of x, with the batch axis
    out_shape: tuple  # batched
    batched: bool

    def __call__(self, x, weight, bias, out=None):
        result = empty(self.out_shape, self.tiled.dtype) if out is None else out.reshape(self.out_shape)
        tiled = self.tiled
        nhwc_through_nchw(x.reshape(self.batched_shape), weight, bias, result, tiled.geometry, tiled.groups,
                          tiled.padding_mode, tiled)
        if out is not None:
            return out
        return result if self.batched else result[0]


_PLANS = PlanCache()


def _plan(call, algorithm, arrays):
    """The plan of a validated call whose arrays the kernels read as they are, or None.

    NCHW calls get a :class:`_ConvPlan`, depthwise NHWC ones a
    :class:`_DepthwiseNHWCPlan` (keyed arrays are C-contiguous: the NHWC
    kernel reads them as they are), other float NHWC ones a
    :class:`_NHWCTiledPlan` (not those :func:`pointwise_nhwc` runs).
    """
    w = call.weight
    if (call.compute_dtype.kind != "f" or not w.size or 0 in call.out_shape
            or any(a is not None and a.dtype != call.compute_dtype for a in arrays)
            or (_choose_algorithm(call) if algorithm == "auto" else algorithm) != "direct"):
        return None
    if call.channels_last and depthwise_nhwc_fits(call):
        return _DepthwiseNHWCPlan(call.geometry, call.padding_mode, call.compute_dtype, call.x.shape,
                                  call.out_shape, call.batched)
    if call.channels_last and pointwise_nhwc_fits(call):
        return None
    x_shape, w_shape = call.x.shape, w.shape
    if call.channels_last:  # (the NCHW shapes the tiles run)
        x_shape, w_shape = (x_shape[0], x_shape[3], *x_shape[1:3]), (w_shape[3], w_shape[2], *w_shape[:2])
    k, cg, kh, kw = w_shape
    if not tiles_fit(cg, kh * kw):
        return None
    tiled = tiled_conv(x_shape, w_shape, call.geometry, call.groups, call.padding_mode, call.compute_dtype,
                       _conv_direct.current_level(), channels_last=call.channels_last)
    plan = _NHWCTiledPlan if call.channels_last else _ConvPlan
    return plan(tiled, call.x.shape, call.out_shape, call.batched)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", layout="NCHW", algorithm="auto", out=None):
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : array_like
        ``(N, C, H, W)`` for ``layout="NCHW"``, ``(N, H, W, C)`` for ``"NHWC"``;
        unbatched ``(C, H, W)`` / ``(H, W, C)`` gives an unbatched result.
    weight : array_like
        OIHW ``(K, C/groups, KH, KW)`` with NCHW; HWIO ``(KH, KW, C/groups, K)``
        with NHWC (Keras).
    bias : array_like, optional
        ``(K,)``, added to every output pixel.
    stride, dilation : int or (int, int), optional
        Default 1.
    padding : int, pair, pair of pairs, 'valid' or 'same', optional
        See :func:`fastconv.conv_output_shape`. ``'same'`` follows TensorFlow
        (``out = ceil(in / stride)``). Default 0.
    groups : int, optional
        Split channels into ``groups`` independent convolutions; must divide
        C and K. ``groups = C`` is a depthwise convolution. Default 1.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, optional
        PyTorch's padding modes. Default ``'zeros'``.
    layout : {'NCHW', 'NHWC'}, optional
        Default ``'NCHW'``.
    algorithm : {'auto', 'direct', 'im2col'}, optional
        ``'direct'``: Cython loops without a column buffer. ``'im2col'``:
        columns, in batches of bounded size, times the weights with NumPy's
        BLAS ``matmul``. ``'auto'`` (default) chooses from the shape; it
        currently runs ``'direct'``, the faster on every shape measured.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype.

    Returns
    -------
    ndarray
        ``(N, K, OH, OW)`` or ``(N, OH, OW, K)`` (no N for unbatched input).
        float32 and float64 compute natively; float16 computes in float32 and
        returns float16; integer and bool inputs are exact in int64 and return
        int64. Mixed dtypes follow ``np.result_type``.

    Raises
    ------
    ValueError
        Shape mismatches, bad geometry, channels not divisible by ``groups``,
        a kernel larger than the padded input, a bad ``out`` or ``algorithm``.
    TypeError
        Complex or non-numeric dtypes, non-integer geometry.

    Examples
    --------
    The three-channel worked example (integers in, exact integers out):

    >>> import numpy as np, fastconv
    >>> x = [[[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]],
    ...      [[1, 3, 2, 0], [0, 1, 3, 2], [2, 0, 3, 1], [3, 2, 1, 0]],
    ...      [[2, 3, 1, 0], [0, 2, 3, 1], [1, 0, 2, 3], [3, 1, 0, 2]]]
    >>> w = [[[1, -1, 1], [0, 1, -1], [-1, 0, 1]],
    ...      [[-1, 1, 0], [1, -1, 0], [0, 1, -1]],
    ...      [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]]
    >>> fastconv.conv2d(x, np.array(w)[None])
    array([[[-9,  1],
            [ 0, -7]]])
    """
    key = call_key((x, weight, bias), (stride, padding, dilation, groups, padding_mode, layout, algorithm,
                                       _conv_direct.current_level()), out)
    plan = _PLANS.get(key)
    if plan is not None:
        return plan(x, weight, bias, out)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS!r}, got {algorithm!r}")
    call = prepare_conv2d(x, weight, bias, stride, padding, dilation, groups, padding_mode, layout, out)
    if key is not None and (plan := _plan(call, algorithm, (x, weight, bias, out))) is not None:
        _PLANS.put(key, plan)
        return plan(x, weight, bias, out)
    user_out = call.out
    writes_in_place = (user_out is not None and call.result_dtype == call.compute_dtype)
    result = user_out.reshape(call.out_shape) if writes_in_place else empty(call.out_shape, call.compute_dtype)
    if result.size:
        if algorithm == "auto":
            algorithm = _choose_algorithm(call)
        if algorithm == "direct" or call.weight.size == 0:
            _conv_direct_run(call, result)
        else:
            _conv_im2col_run(call, result)
    if writes_in_place:
        return user_out
    if call.result_dtype != call.compute_dtype:
        result = result.astype(call.result_dtype)
    return finish(result, call.batched, user_out)
