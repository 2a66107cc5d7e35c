"""Public im2col and col2im: validate, allocate, call the Cython kernel."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._arrays import empty, reused, zeros
from ._cache import l3_cache_bytes
from ._kernels import _col2im, _im2col
from ._padding import pad_input
from ._plans import PlanCache, call_key, specialized
from ._prepare import prepare_col2im, prepare_im2col
from ._threads import threads_for

__all__ = ["im2col", "col2im"]


def _word_view(image, channels_last):
    """View a batched C-contiguous image as ``(N, G, H, W, V)`` unsigned words.

    Items wider than 8 bytes (complex128, long double) become several words
    on the innermost axis, so one kernel per word size copies every dtype.
    """
    itemsize = image.dtype.itemsize
    unit = next(u for u in (8, 4, 2, 1) if itemsize % u == 0)
    ratio = itemsize // unit
    words = image.view(np.dtype(f"u{unit}"))
    if channels_last:
        n, h, w, c = image.shape
        return words.reshape(n, 1, h, w, c * ratio)
    n, c, h, w = image.shape
    return words.reshape(n, c, h, w, ratio)


def _sum_type(dtype):
    """``(base, ratio)``: the addable type col2im sums a dtype in, and how many of it make one item.

    Signed integers are added as unsigned words (two's complement: identical
    bits, and wrap-around is defined); complex numbers as pairs of reals.
    """
    if dtype.kind in "iu":
        base = np.dtype(f"u{dtype.itemsize}")
    elif dtype.kind == "c":
        base = np.dtype(f"f{dtype.itemsize // 2}") if dtype != np.clongdouble else np.dtype(np.longdouble)
    else:
        base = dtype
    return base, dtype.itemsize // base.itemsize


def _sum_view(image, channels_last):
    """View a batched C-contiguous image as ``(N, G, H, W, V)`` of its addable type (:func:`_sum_type`)."""
    base, ratio = _sum_type(image.dtype)
    view = image.view(base)
    if channels_last:
        n, h, w, c = image.shape
        return view.reshape(n, 1, h, w, c * ratio)
    n, c, h, w = image.shape
    return view.reshape(n, c, h, w, ratio)


def stream_bytes(l3_bytes):
    """Size from which a user's ``out`` is written with non-temporal stores: half the L3 cache,
    at most 16 MiB (16 MiB where the L3 is unknown, ``l3_bytes`` None).

    16 MiB is half the 32 MiB L3 of the AMD EPYC it was first tuned on. Measured there into a
    reused ``out``, 1 / 2 threads: resnet-mid 1.54x / 1.22x faster, resnet-deep 1.26x / 1.39x,
    dilated 2.6x / 2.7x, depthwise 1.84x / 1.40x. On the Intel Xeon (260 MiB L3), with each
    block assembled in cache, ordinary stores were 1.08-1.10x faster on resnet-deep (55 MiB) and
    streaming 1.12-1.64x faster on the other large shapes. On an AMD EPYC Zen 1 with 8 MiB of L3
    (non-temporal stores fenced once per thread), one thread, streamed against in place: 4.5 to
    14 MiB of columns 1.2-2.0x on every canonical shape (cifar's 5.1 MiB 1.21x, its 6.8 MiB
    1.52x), 3.4 MiB 0.91-1.00x, 1.7 MiB and less 0.79-0.83x.

    A new result on fresh memory is written with ordinary stores: the kernel zeroes each fresh
    page into the cache as the first store touches it, and streaming past it was up to 1.2x
    slower. A new result on a buffer the buffer cache hands out again is already mapped, so it
    streams like an ``out``.
    """
    return 2**24 if l3_bytes is None else min(2**24, l3_bytes // 2)


#: A user's ``out`` from this size on is written with non-temporal stores (:func:`stream_bytes`
#: of this machine's L3 cache).
STREAM_BYTES = stream_bytes(l3_cache_bytes())

#: Rows of ``cols`` that are whole cache lines of 4-byte items, at stride 1 or 2, stream straight
#: from registers (``_im2col.streams_rows_directly``; on the AMD EPYC Zen 1, into an ``out``, one
#: thread: resnet-mid, strided, resnet-deep, dilated and depthwise 1.2-1.6x faster than through
#: blocks, resnet-deep against ordinary stores). So do window rows of ``im2col_2d`` (channels-last
#: images and the like) of ``_im2col.STREAM_RUN_BYTES`` or more, straight from the image
#: (``_im2col.streams_runs_directly``). Other rows stream a block at a time, and this bounds the
#: block:
#: streaming assembles each block of ``_im2col.BLOCK`` rows of ``cols`` in a per-thread scratch
#: buffer and copies it out; the larger the block, the more of that round trip misses the L1 cache,
#: and from somewhere between 72 and 144 KiB streaming lost to writing in place. Measured on the
#: Intel Xeon (48 KiB L1, 2 MiB L2), new results on reused buffers, streaming against ordinary
#: stores, 1 / 2 threads: 9-37 KiB blocks (stem, strided, dilated, resnet-mid) 1.22-1.68x faster,
#: depthwise (72 KiB) 1.01x / 1.24x, resnet-deep (144 KiB) 0.83x / 0.87x.
STREAM_BLOCK_BYTES = 96 * 2**10

#: Bytes of column buffer one batch may use when a convolution unfolds images batch by batch.
COLUMN_BUDGET = 64 * 2**20


#: The widest kernel row :func:`unfold` gathers in blocks of pixels (``im2col_planar``); wider
#: ones are copied window by window from a padded copy. The 7x7 stem ran 1.3-1.4x faster in
#: blocks than window by window (1 and 2 threads, new result or ``out``).
PLANAR_KERNEL_WIDTH_MAX = 8


def unfold(image, geometry, channels_last, cols, padding_mode="zeros", stream=False):
    """Run an im2col kernel: unpadded batched ``image`` -> ``cols`` (both C-contiguous, same dtype).

    ``stream``: ``cols`` is memory written before (a user's ``out``, or a buffer the buffer cache
    handed out again): from ``STREAM_BYTES`` on, with rows written straight from registers or
    blocks of rows up to ``STREAM_BLOCK_BYTES``, write it with non-temporal stores. See
    :class:`UnfoldPlan`.
    """
    UnfoldPlan(geometry, channels_last, image.dtype, padding_mode)(image, cols, stream)


class UnfoldPlan:
    """The shape-only work of :func:`unfold`, kept by planned im2col calls.

    Planar images of one-word items with rows of up to ``PLANAR_KERNEL_WIDTH_MAX`` taps are read
    as they are, zero padding included (``im2col_planar``); the others, and other padding
    modes, are padded first.
    """

    def __init__(self, geometry, channels_last, dtype, padding_mode="zeros"):
        dtype = np.dtype(dtype)
        self.geometry, self.channels_last, self.padding_mode = geometry, channels_last, padding_mode
        self.planar = (not channels_last and dtype.itemsize <= 8
                       and geometry.kernel[1] <= PLANAR_KERNEL_WIDTH_MAX)
        if self.planar:
            self.pad_first = padding_mode != "zeros" and geometry.has_padding
            (top, left) = (0, 0) if self.pad_first else (geometry.padding[0][0], geometry.padding[1][0])
            self.planar_geometry = (*geometry.kernel, *geometry.stride, *geometry.dilation, top, left,
                                    *geometry.out_shape)

    def __call__(self, image, cols, stream=False):
        """Unfold ``image`` into ``cols`` (see :func:`unfold`)."""
        threads = threads_for(cols.size)
        geometry = self.geometry
        cl = self.channels_last
        if self.planar:
            direct = _im2col.streams_rows_directly(cols.itemsize, cols.shape[1], geometry.stride[1])
        else:  # (a window row: kernel-width pixels of C items in NHWC, of one item in NCHW)
            run_bytes = geometry.kernel[1] * (image.shape[-1] if cl else 1) * cols.itemsize
            direct = _im2col.streams_runs_directly(run_bytes, geometry.dilation[1])
        stream = (stream and cols.nbytes >= STREAM_BYTES
                  and (direct or _im2col.BLOCK * cols.shape[1] * cols.itemsize <= STREAM_BLOCK_BYTES))
        if self.planar:
            if self.pad_first:
                image = pad_input(image, geometry, self.padding_mode, False)
            _im2col.im2col_planar(image, cols, *self.planar_geometry, threads, stream)
            return
        words = _word_view(pad_input(image, geometry, self.padding_mode, cl), cl)
        cols = cols.view(words.dtype).reshape(cols.shape[0], -1)
        blocks = stream and not direct  # (streamed window row by window row: no scratch)
        scratch = np.empty((max(1, threads), _im2col.BLOCK * cols.shape[1]) if blocks else (0, 0), words.dtype)
        _im2col.im2col_2d(words, cols, *geometry.kernel, *geometry.stride, *geometry.dilation,
                          *geometry.out_shape, scratch, threads, stream)


def unfold_batches(image, geometry, channels_last, padding_mode="zeros", budget=COLUMN_BUDGET):
    """Yield ``(n0, n1, cols)``: the columns of images ``n0:n1`` of an unpadded batch.

    Batches are as large as ``budget`` bytes of columns allow (at least one
    image), and share one buffer: consume ``cols`` before the next step.
    """
    n_images = image.shape[0]
    rows = geometry.out_size
    width = (image.shape[-1] if channels_last else image.shape[1]) * geometry.kernel_size
    per_batch = max(1, min(n_images, budget // max(1, rows * width * image.itemsize)))
    buffer = empty((per_batch * rows, width), image.dtype)
    for n0 in range(0, n_images, per_batch):
        n1 = min(n_images, n0 + per_batch)
        cols = buffer[: (n1 - n0) * rows]
        unfold(image[n0:n1], geometry, channels_last, cols, padding_mode)
        yield n0, n1, cols


def fold(cols, geometry, batch, channels, channels_last, image=None, zeroed=True):
    """Run a col2im kernel: add ``cols`` into a zeroed image of the batch and return it, unpadded.

    ``cols`` must be C-contiguous of an addable dtype (unsigned or signed
    integers, float32/64, long double, complex). ``image``, if given, is the
    unpadded batched destination (C-contiguous), which is returned, holding
    zeros unless ``zeroed`` is False (then it is zeroed here); otherwise the
    result is a new array or a view of one. See :class:`FoldPlan`.
    """
    return FoldPlan(geometry, batch, channels, channels_last, cols.dtype)(cols, image, zeroed)


#: Kernel rows of taps :func:`~fastconv._kernels._col2im.col2im_blocks` transposes at a time.
COL2IM_BLOCK_CHUNK = 16


def runs_in_blocks(geometry, channels_last, ratio):
    """Whether :func:`fold` adds in blocks of pixels (``col2im_blocks``): stride-1 dilated planar kernels.

    Those ran pixel by pixel into a padded copy (tap by tap, each tap's add
    reading one item of every row of columns, was slower still), and a batch
    of a few images split by channel plane, each task reading a few items of
    every row. In blocks of four pixels, columns read in memory order and
    transposed in registers, each tap adds one short vector. In-process A/B,
    pixel by pixel / blocks, medians of 11 paired runs, AMD EPYC (SSE2
    blocks), 6 dilated layers (the canonical one, its batch of one and of
    three images, dilation 4 with 5x5 kernels, 64 and 256 channels on
    28x28), float32 / float64: 0.99-5.24x / 1.31-5.78x at one thread
    (canonical 1.54x / 1.60x) and 1.04-5.97x / 1.26-5.19x at two (1.43x /
    1.42x). Against the routes of undilated kernels the blocks measured
    0.86-1.88x on five 3x3 layers at stride 1 (tap by tap; 4.9x / 2.9x on
    the one-image ``tiny``), 0.76-1.44x on two 5x5 ones (pixel by pixel),
    and 0.68-1.03x at stride 2 (3x3 and 7x7): those keep their routes.
    """
    return not channels_last and ratio == 1 and geometry.stride[1] == 1 and geometry.dilation[1] > 1


def splits_by_image(batch, threads):
    """Whether col2im's tasks are whole images: at one thread, or where the batch gives every thread two.

    Otherwise they are channel planes or slices (see :class:`FoldPlan`).
    """
    return threads == 1 or batch >= 2 * threads


def block_parts(batch, channels, threads):
    """Slices of the channels per image for :func:`~fastconv._kernels._col2im.col2im_blocks`'s tasks.

    One per image where col2im :func:`splits_by_image`; else enough slices
    for two tasks per thread (each task reads its slice of every row of
    columns).
    """
    if splits_by_image(batch, threads):
        return 1
    return max(1, min(channels, -(-2 * threads // batch)))


class FoldPlan:
    """The shape-only work of :func:`fold`, kept by planned col2im calls.

    Planar images of one-word items whose kernel rows run tap by tap
    (``tap_major``) are added into in place, the taps that fall in the
    padding dropped (``col2im_planar``), as are stride-1 dilated kernels'
    (in blocks of pixels, :func:`runs_in_blocks`); the others are added into
    a zeroed padded copy, then cropped.

    The kernels split the work by image where the batch gives every thread
    two images, and always at one thread; else by channel plane (or slice
    of the channels or of NHWC's pixel), each task reading a few items of
    every row of columns. Same bits either way. A batch of one image at one
    thread ran its planes one by one before: planes / whole image, in-process,
    AMD EPYC, float32 / float64: NHWC 64 channels on 56x56 7.2x / 5.5x and 3
    channels on 32x32 1.8x / 2.1x, stem's 7x7 stride 2 2.0x / 3.7x, NCHW 64
    channels on 56x56 1.3x / 1.5x, 256 on 14x14 1.2x / 1.2x, a 5x5 image 1.0x.
    """

    def __init__(self, geometry, batch, channels, channels_last, dtype):
        def batched(spatial):
            return (batch,) + spatial + (channels,) if channels_last else (batch, channels) + spatial

        self.geometry, self.batch, self.channels_last = geometry, batch, channels_last
        self.sum_dtype, ratio = _sum_type(np.dtype(dtype))
        self.planar = (not channels_last and ratio == 1
                       and _col2im.tap_major(geometry.kernel[1], geometry.dilation[1], geometry.out_shape[1]))
        self.blocks = runs_in_blocks(geometry, channels_last, ratio)
        self.channels = channels
        self.in_place = self.planar or self.blocks or not geometry.has_padding
        self.image_shape = batched(geometry.in_shape)
        self.target_shape = self.image_shape if self.in_place else batched(geometry.padded_shape)
        (top, _), (left, _) = geometry.padding
        self.planar_geometry = (*geometry.kernel, *geometry.stride, *geometry.dilation, top, left,
                                *geometry.out_shape)
        self.planar_kernel = specialized(_col2im.col2im_planar, self.sum_dtype) if self.planar else None
        self.blocks_kernel = specialized(_col2im.col2im_blocks, self.sum_dtype) if self.blocks else None

    def __call__(self, cols, image=None, zeroed=True):
        """Fold ``cols`` (see :func:`fold`); ``image``, if given, holds zeros if ``zeroed``.

        The tap-by-tap planar kernel zeroes the image itself, row by row just before its first
        adds (:func:`~fastconv._kernels._col2im.col2im_planar`), so a new image or an ``out`` is
        not zeroed in a pass of its own there.
        """
        threads = threads_for(cols.size)
        work = bool(cols.size and math.prod(self.target_shape))
        # (planar routes are in place: the image is the target)
        kernel_zeroes = self.planar and work and (image is None or not zeroed)
        if self.in_place:
            if image is None:
                image = (empty if kernel_zeroes else zeros)(self.image_shape, cols.dtype)
            elif not zeroed and not kernel_zeroes:
                image[...] = 0
            target = image
        else:
            target = zeros(self.target_shape, cols.dtype)
        if work:
            by_image = splits_by_image(self.batch, threads)
            if self.planar or self.blocks:
                sums = cols if cols.dtype == self.sum_dtype else cols.view(self.sum_dtype)
                into = target if target.dtype == self.sum_dtype else target.view(self.sum_dtype)
                if self.blocks:
                    self.blocks_kernel(sums, into, *self.planar_geometry,
                                       block_parts(self.batch, self.channels, threads), COL2IM_BLOCK_CHUNK, threads)
                else:
                    self.planar_kernel(sums, into, *self.planar_geometry, by_image, threads, kernel_zeroes)
            else:
                view = _sum_view(target, self.channels_last)
                sums = cols.view(view.dtype).reshape(cols.shape[0], -1)
                # Split the innermost axis only when there are too few (n, g) blocks to share.
                v = view.shape[4]
                blocks = view.shape[0] * view.shape[1]
                v_chunk = v if blocks >= 4 * threads else max(1, -(-v // (4 * threads)))
                geo = self.geometry
                _col2im.col2im_2d(sums, view, *geo.kernel, *geo.stride, *geo.dilation, *geo.out_shape,
                                  v_chunk, by_image, threads)
        if target is image:
            return image
        if image is None:
            return crop(target, self.geometry, self.channels_last)
        image[...] = crop(target, self.geometry, self.channels_last)
        return image


def crop(image, geometry, channels_last):
    """View of a padded batched image without its padding."""
    if not geometry.has_padding:
        return image
    inner = tuple(slice(a, a + n) for n, (a, _) in zip(geometry.in_shape, geometry.padding))
    if channels_last:
        return image[(slice(None),) + inner + (slice(None),)]
    return image[(slice(None), slice(None)) + inner]


class _Im2colCall(NamedTuple):
    """A planned im2col call (:mod:`fastconv._plans`): float32/64, into a new array or ``out``."""

    unfold: UnfoldPlan
    batched: bool
    cols_shape: tuple

    def __call__(self, x, out=None):
        cols = empty(self.cols_shape, x.dtype) if out is None else out
        if cols.size:
            self.unfold(x if self.batched else x[np.newaxis], cols, out is not None or reused(cols))
        return cols


class _Col2imCall(NamedTuple):
    """A planned col2im call (:mod:`fastconv._plans`): float32/64, into a new array or ``out``."""

    fold: FoldPlan
    batched: bool

    def __call__(self, cols, out=None):
        if out is None:
            image = self.fold(cols)
            return np.ascontiguousarray(image if self.batched else image[0])
        image = out.reshape(self.fold.image_shape)  # sum straight into the user's out
        self.fold(cols, image, zeroed=False)
        return out


_IM2COL_PLANS = PlanCache()
_COL2IM_PLANS = PlanCache()


def im2col(x, kernel_size, *, stride=1, padding=0, dilation=1, padding_mode="zeros",
           layout="NCHW", out=None):
    """Unfold every sliding window of a batch of images into one row of a matrix.

    Parameters
    ----------
    x : array_like
        Images, ``(N, C, H, W)`` for ``layout="NCHW"`` or ``(N, H, W, C)`` for
        ``"NHWC"``; an unbatched ``(C, H, W)`` / ``(H, W, C)`` counts as N = 1.
        Any numeric dtype (bool, integers, floats, complex).
    kernel_size : int or (int, int)
        Window size ``(KH, KW)``.
    stride, dilation : int or (int, int), optional
        Step between windows and spacing of the taps inside one (default 1).
    padding : int, pair, pair of pairs, 'valid' or 'same', optional
        See :func:`fastconv.conv_output_shape`. Default 0.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, optional
        How padded pixels are filled (PyTorch semantics). Default ``'zeros'``.
    layout : {'NCHW', 'NHWC'}, optional
        Layout of ``x``. Default ``'NCHW'``.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.

    Returns
    -------
    ndarray
        Same dtype as ``x``. NCHW: ``(N*OH*OW, C*KH*KW)`` with row index
        ``(n, oh, ow)`` and column index ``(c, kh, kw)`` -- the layout of
        "deep learning from scratch", so ``cols @ w.reshape(K, -1).T`` is the
        convolution. NHWC: ``(N*OH*OW, KH*KW*C)``, column index ``(kh, kw, c)``.

    Raises
    ------
    ValueError
        Bad shapes or geometry, a kernel larger than the padded input, a bad
        ``out``, or a result too large to index.
    TypeError
        A non-numeric dtype or non-integer geometry.

    See Also
    --------
    col2im : the adjoint (sums the columns back into an image).

    Notes
    -----
    Non-contiguous, byte-swapped or misaligned inputs are copied to a
    contiguous native array first; padding is applied to a copy. The input is
    never modified.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(16).reshape(1, 1, 4, 4)
    >>> fastconv.im2col(x, 3)
    array([[ 0,  1,  2,  4,  5,  6,  8,  9, 10],
           [ 1,  2,  3,  5,  6,  7,  9, 10, 11],
           [ 4,  5,  6,  8,  9, 10, 12, 13, 14],
           [ 5,  6,  7,  9, 10, 11, 13, 14, 15]])
    """
    key = call_key((x,), (kernel_size, stride, padding, dilation, padding_mode, layout), out)
    plan = _IM2COL_PLANS.get(key)
    if plan is not None:
        return plan(x, out)
    call = prepare_im2col(x, kernel_size, stride, padding, dilation, padding_mode, layout, out)
    if key is not None and call.dtype == x.dtype:
        unfold_plan = UnfoldPlan(call.geometry, call.channels_last, call.dtype, padding_mode)
        plan = _Im2colCall(unfold_plan, call.batched, call.cols_shape)
        _IM2COL_PLANS.put(key, plan)
        return plan(x, out)
    # the kernels write an aligned out in place; a misaligned one gets a copy of the result
    direct = call.out is not None and call.out.flags.aligned
    cols = call.out if direct else empty(call.cols_shape, call.dtype)
    if cols.size:
        unfold(call.image, call.geometry, call.channels_last, cols, padding_mode, stream=direct or reused(cols))
    if call.out is not None and not direct:
        np.copyto(call.out, cols)
        return call.out
    return cols


def col2im(cols, input_shape, kernel_size, *, stride=1, padding=0, dilation=1, layout="NCHW",
           out=None):
    """Sum columns back into images: the adjoint of :func:`im2col`.

    Each entry of ``cols`` is added to the pixel it was copied from; entries
    that came from padding are discarded. ``col2im(im2col(x))`` therefore
    multiplies each pixel by the number of windows that cover it.

    Parameters
    ----------
    cols : array_like
        ``(N*OH*OW, C*KH*KW)`` (NCHW) or ``(N*OH*OW, KH*KW*C)`` (NHWC), as
        returned by :func:`im2col`. Any numeric dtype.
    input_shape : tuple of int
        Shape of the original images: ``(N, C, H, W)`` / ``(N, H, W, C)``,
        or the unbatched ``(C, H, W)`` / ``(H, W, C)``.
    kernel_size, stride, padding, dilation, layout
        As for :func:`im2col`.
    out : ndarray, optional
        C-contiguous array of shape ``input_shape`` and the dtype of ``cols``.

    Returns
    -------
    ndarray
        Shape ``input_shape``, dtype of ``cols``. Integers wrap on overflow
        as NumPy's do; bools combine with logical or (NumPy's ``+``);
        float16 is summed in float32 and rounded once.

    Raises
    ------
    ValueError
        ``cols`` does not match ``input_shape`` and the geometry, or a bad
        geometry or ``out``.
    TypeError
        A non-numeric dtype or non-integer geometry.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 1, 3, 3), dtype=int)
    >>> fastconv.col2im(fastconv.im2col(x, 2), x.shape, 2)[0, 0]
    array([[1, 2, 1],
           [2, 4, 2],
           [1, 2, 1]])
    """
    key = call_key((cols,), (input_shape, kernel_size, stride, padding, dilation, layout), out)
    plan = _COL2IM_PLANS.get(key)
    if plan is not None:
        return plan(cols, out)
    call = prepare_col2im(cols, input_shape, kernel_size, stride, padding, dilation, layout, out)
    if key is not None and call.dtype == cols.dtype:
        plan = _Col2imCall(FoldPlan(call.geometry, call.batch, call.channels, call.channels_last, call.dtype),
                           call.batched)
        _COL2IM_PLANS.put(key, plan)
        return plan(cols, out)
    geo, dtype = call.geometry, call.dtype
    # bools add as counts (then != 0: NumPy's logical-or "+"); float16 adds in float32
    work_dtype = np.dtype(np.uint64) if dtype.kind == "b" else np.dtype(np.float32) if dtype == np.float16 else dtype
    src = call.cols if work_dtype == dtype else call.cols.astype(work_dtype)
    if work_dtype == dtype and call.out is not None:
        image = call.out.reshape(call.image_shape)  # sum straight into the user's out
        fold(src, geo, call.batch, call.channels, call.channels_last, image, zeroed=False)
        return call.out
    image = fold(src, geo, call.batch, call.channels, call.channels_last)
    result = image != 0 if dtype.kind == "b" else image.astype(dtype, copy=False)
    if not call.batched:
        result = result[0]
    if call.out is None:
        return np.ascontiguousarray(result)
    np.copyto(call.out, result)
    return call.out
