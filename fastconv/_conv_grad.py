"""Gradients of conv2d and the transposed convolution.

* dL/dx: direct convolutions (the register-tiled kernel) of the grad with the
  transposed, reversed weight; with stride ``s`` one per stride phase of the
  input, each with the sub-kernel of the taps that reach that phase.
* dL/dw: for floats, register tiles over the input padded and split by
  stride phase. Deep layers run output-channel tiles: the grad of a block of
  output channels is copied pixel-major, and each output pixel adds its grad
  vectors times up to 14 broadcast inputs (input channel, tap pairs). Other
  shapes run column tiles: the grad rows are copied with the input planes'
  row pitch (zero columns between), so each tap is one contiguous dot
  product per image. An unpadded stride-1 input is read in place by the
  output-channel tiles (no copy); a pointwise layer with fewer input
  channels than filters swaps the roles of the input and the grad. Each
  task owns disjoint entries of dw and sums images in a fixed order.
  Integers, and inputs holding an inf or nan where the column tiles would
  run, unfold ``x`` with the im2col kernel and multiply ``grad_rows.T @
  cols`` per group, in batches so the column buffer stays bounded.
* ``conv_transpose2d`` is dL/dx of the convolution that maps its output back
  to its input, plus a bias.

Every split of the work depends only on shapes, so results do not depend on
the thread count.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from ._arrays import empty, empty_aligned, finish, reused, zeros
from ._conv import (BAND_BUDGET, HWIO_IN_PLACE_BYTES, TILES, depthwise_lanes_grad_input, depthwise_lanes_grad_weight,
                    depthwise_work, direct_nchw, is_depthwise, pointwise_panel, read_pixels, run_depthwise_nhwc,
                    runs_pointwise_nhwc, stride_phases, tiled_conv, tiles_fit)
from ._kernels import _conv_direct
from ._layouts import channels_first, hwio_to_oihw, nchw_to_nhwc, oihw_to_hwio
from ._threads import threads_for
from ._geometry import conv_geometry
from ._im2col import STREAM_BYTES, unfold_batches
from ._plans import PlanCache, call_key, read_only, specialized
from ._prepare import prepare_conv2d_grad_input, prepare_conv2d_grad_weight, prepare_conv_transpose2d

__all__ = ["conv2d_grad_input", "conv2d_grad_weight", "conv_transpose2d"]


def _grad_rows(grad, channels_last):
    """grad_output as ``(N*OH*OW, K)`` rows (a copy for NCHW, a view for NHWC)."""
    if channels_last:
        return grad.reshape(-1, grad.shape[-1])
    return np.ascontiguousarray(grad.transpose(0, 2, 3, 1)).reshape(-1, grad.shape[1])


def _columns_group(cols, g, dims, groups, channels_last):
    """View of the columns belonging to group ``g`` (a 3-D view for NHWC's (kh, kw, c) order)."""
    k, cg, kh, kw = dims
    if channels_last:
        return cols.reshape(cols.shape[0], kh * kw, groups, cg)[:, :, g, :]
    return cols[:, g * cg * kh * kw:(g + 1) * cg * kh * kw]


def _grad_input(call):
    """dL/dx for a prepared call, in the compute dtype and user layout."""
    if not call.grad.size or not call.weight.size or 0 in call.image_shape:
        # an empty sum (no image, channel, filter or output pixel) or an empty result:
        # the kernels' shapes would have an empty axis they cannot reshape or index
        return zeros(call.image_shape, call.compute_dtype)
    if call.channels_last and (result := _grad_input_depthwise_nhwc(call)) is not None:
        return result
    if call.channels_last and pointwise_nhwc_grad(call, call.image_shape, strided=False):
        return _grad_input_pointwise_nhwc(call.grad, call.weight, call.image_shape)
    return _grad_input_direct(call)


def _grad_input_pointwise_nhwc(grad, weight, image_shape):
    """dL/dx of a 1x1 stride-1 NHWC convolution, ``grad @ w.T`` over the pixels, as a new array.

    :func:`~fastconv._kernels._conv_direct.conv2d_pointwise` with the roles
    of :func:`~fastconv._conv.pointwise_nhwc`: the grad's pixels as its
    filters, the transposed HWIO weight ``(K, C)`` as a one-row image of
    ``C`` pixels. Each input pixel sums its filters in order from 0, as the
    NCHW kernels do (the same bits). Before, NHWC calls transposed the grad
    in and the result out around those kernels.
    """
    k, c = grad.shape[3], image_shape[3]
    pixels = grad.size // k
    result = empty(image_shape, grad.dtype)
    panel = pointwise_panel(grad.dtype)
    threads = threads_for(pixels * c * k // 16)
    pass_blocks = max(1, BAND_BUDGET // (8 * k * grad.dtype.itemsize))
    image = weight.reshape(c, k).T[np.newaxis, :, np.newaxis, :]  # (1, K, 1, C): any strides
    _conv_direct.conv2d_pointwise(image, None, None, result.reshape(1, pixels, c), 1, 1, c, 1, panel, threads,
                                  pass_blocks, False, threads, grad.reshape(pixels, k, 1), None, None)
    return result


def _grad_input_depthwise_nhwc(call):
    """dL/dx of a depthwise NHWC convolution by stride phases on the NHWC kernel, or None (it does not apply).

    Each stride phase of the input (:func:`_axis_phases` on each axis) is a
    stride-1 convolution of the grad with the phase's taps of the kernel,
    reversed (one phase, the whole input and kernel, at stride 1):
    :func:`~fastconv._conv.run_depthwise_nhwc` reads the grad's pixels in
    place and writes the phase's pixels of the result, every stride-th. For
    float depthwise convolutions on a level with vector lanes, where each
    phase's first read lies before the grad's end (else None: the planes'
    path).
    """
    kh, kw, _, k = call.weight.shape
    if not (call.compute_dtype.kind == "f" and is_depthwise(call.groups, call.image_shape[3], k)
            and _conv_direct.depthwise_lanes(call.compute_dtype.char) > 0):
        return None
    n, h, w, _ = call.image_shape
    (sh, sw), (dh, dw), ((top, _), (left, _)) = call.geometry.stride, call.geometry.dilation, call.geometry.padding
    rows, cols = _axis_phases(h, kh, sh, dh, top), _axis_phases(w, kw, sw, dw, left)
    oh, ow = call.geometry.out_shape
    if any(p.start >= oh for p in rows) or any(p.start >= ow for p in cols):
        return None
    grad = call.grad  # (C-contiguous, as prepared: each pixel's channels side by side)
    # pixels of phases no tap reaches get no gradient
    result = (empty if len(rows) * len(cols) == min(sh, h) * min(sw, w) else zeros)(call.image_shape,
                                                                                     call.compute_dtype)
    for r in rows:
        for c in cols:
            sub = np.ascontiguousarray(call.weight[_reversed_taps(r), _reversed_taps(c)]).reshape(r.taps * c.taps, k)
            run_depthwise_nhwc(grad[:, max(r.start, 0):, max(c.start, 0):], sub, None,
                               result[:, r.first::sh, c.first::sw], (max(-r.start, 0), max(-c.start, 0)), (1, 1),
                               (r.spacing, c.spacing), (r.taps, c.taps))
    return result


def _reversed_taps(phase):
    """The kernel taps of a stride phase (:class:`_Phase`) along its axis, last first, as a slice."""
    last = phase.tap0 + phase.tap_step * (phase.taps - 1)
    return slice(last, phase.tap0 - 1 if phase.tap0 > 0 else None, -phase.tap_step)


class _Phase(NamedTuple):
    """One stride phase of one axis of dL/dx (see :func:`_axis_phases`)."""

    first: int  # first input index of the phase: positions first, first + stride, ...
    count: int  # how many input positions the phase has
    tap0: int  # first kernel tap that reaches the phase
    tap_step: int  # kernel taps of the phase: tap0, tap0 + tap_step, ... (taps of them)
    taps: int
    start: int  # grad index read by the first output of the phase for the reversed kernel
    spacing: int  # grad elements between consecutive taps: the sub-convolution's dilation


def _axis_phases(in_size, kernel, stride, dilation, before):
    """Split one axis of dL/dx by stride phase into stride-1 correlations of the grad.

    ``dx[i] = sum_t grad[o] * w[t]`` over ``o * stride - before + t * dilation == i``.
    For the inputs ``i = first + stride * u`` of one phase, the taps that reach
    them are ``tap0 + tap_step * m`` (every one for stride 1) and the grad index
    is ``c0 + u - spacing * m``: a stride-1 correlation of the grad, read from
    ``start`` on with dilation ``spacing``, with the sub-kernel reversed.
    Returns the phases some tap reaches, by ``first``; the inputs of the
    others get no gradient.
    """
    step = stride // math.gcd(stride, dilation)
    spacing = dilation // math.gcd(stride, dilation)
    phases = []
    # only the phases some tap reaches (tap t reaches first = (t * dilation - before) mod stride):
    # the others get no gradient, and a huge stride would make looping over them hang
    reached = sorted({(t * dilation - before) % stride for t in range(kernel)})
    for first in (f for f in reached if f < in_size):
        count = -(-(in_size - first) // stride)
        tap0 = next(t for t in range(kernel) if (first + before - t * dilation) % stride == 0)
        taps = -(-(kernel - tap0) // step)
        c0 = (first + before - tap0 * dilation) // stride
        phases.append(_Phase(first, count, tap0, step, taps, c0 - spacing * (taps - 1), spacing))
    return phases


def _grad_crop(grad_shape, axes):
    """The grad rows/columns ``[start, start + length)`` of each spatial axis, zero outside it.

    Returned as the slices of the part inside a grad of ``grad_shape`` and
    the ``(before, after)`` zero padding around it on each axis, for the
    tiles to pad as they copy.
    """
    crop, pads = [slice(None), slice(None)], []
    for (start, length), size in zip(axes, grad_shape[2:]):
        lo, hi = max(0, start), min(size, start + length)
        hi = max(lo, hi)
        crop.append(slice(lo, hi))
        pads.append((lo - start, start + length - hi))
    return tuple(crop), tuple(pads)


class _InputPhase(NamedTuple):
    """One stride phase of dL/dx, as a stride-1 convolution of a crop of the grad."""

    weight_taps: tuple  # slices of the adjoint weight's (KH, KW) axes: the phase's taps, reversed
    forward_taps: np.ndarray  # the same taps as flat indices (kh * KW + kw) of the forward kernel, intp
    sub_shape: tuple  # (channels, Kg, taps_h, taps_w) of its weight
    crop: tuple  # slices of the grad it reads
    geometry: object  # ConvGeometry of the crop: zero padding around it, the taps' spacing
    tiled: object  # its TiledConv, or None for the plain loops
    target: tuple  # slices of dL/dx it fills (every pixel when there is one phase)
    shape: tuple  # of the phase's pixels
    first: tuple  # its first row and column in dL/dx (every stride-th from there on)


#: The input gradient through its columns (:func:`by_columns`): the fewest grad channels, by
#: the input's channels (1-4), in float32 and float64; and the most bytes of one image's columns.
COLUMNS_ROUTE_MIN_GRAD_CHANNELS = {1: (24, 16), 2: (32, 32), 3: (32, 32), 4: (16, 16)}
COLUMNS_ROUTE_MAX_BYTES = 1 << 20


def by_columns(grad_shape, dims, geometry, groups, dtype):
    """Whether dL/dx runs through its columns (``grad_input_by_columns``) rather than the direct tiles.

    The direct route convolves the zero-padded grad with the reversed
    weight: on a valid convolution (no padding) it computes ``H*W`` pixels
    from a grad of ``OH*OW``, most of the taps at the border meeting zeros,
    and an image of one to four channels runs the row or narrow tiles. The
    columns route computes per image the columns ``W^T @ grad`` (a 1x1
    convolution with ``K`` input channels, ``C*KH*KW`` output planes of
    ``OH*OW`` pixels, in cache) and adds each column plane into dx at its
    tap's offset: only real multiply-adds, all in the column tiles, plus
    ``C*KH*KW*OH*OW`` adds. It runs for stride 1, no dilation, one group,
    1-4 input channels with at least :data:`COLUMNS_ROUTE_MIN_GRAD_CHANNELS`
    grad channels (a 1x1 convolution needs depth to keep its tiles busy),
    and a kernel of at most 3x3, or of at most 5x5 where the input has 1.2x
    the grad's pixels or more (1x1 kernels included: their direct route runs
    the row or narrow tiles too, and they measured 1.38-1.95x through the
    columns, 1-4 channels from 32 or 64 grad channels). Measured
    (in-process, AVX-512, direct / columns time, one thread) on 1-3
    channels of 16x16 to 28x28, 8 to 64
    grad channels, 3x3 and 5x5 kernels, valid and padded: where the rule
    picks columns, float64 1.04-1.74x, float32 0.98-1.71x (two threads
    0.97-1.78x); 5x5 kernels with padding 0.84-1.30x, 7x7 ones 0.48-1.03x,
    8 grad channels 0.33-1.06x, 16 mixed (float64 one channel 1.09-1.56x,
    float32 and 2-3 channels 0.62-1.32x). Four channels, whose direct route
    runs the narrow tiles: 1.13-2.08x from 16 grad channels, 0.73-0.93x with
    8; five: 0.85-1.56x; six and eight: 0.56-1.36x (mostly slower); those
    stay direct. Through the plans (old / new, medians of 15 pairs): 7
    layers of 1-3 channels 1.11-1.70x at one thread, 1.01-1.68x at two; the
    textbook's first layer (30 5x5 filters on 28x28 digits) 1.58x in float64
    (from 0.63x of PyTorch's speed to 1.01x) and 1.45x in float32. No
    canonical benchmark shape takes this route.
    """
    n, k, oh, ow = grad_shape
    _, cg, kh, kw = dims
    h, w = geometry.in_shape
    dtype = np.dtype(dtype)
    least = COLUMNS_ROUTE_MIN_GRAD_CHANNELS.get(cg, (None, None))[dtype == np.float64]
    blocks = -(-(cg * kh * kw) // 8)
    return (dtype.kind == "f" and groups == 1 and least is not None and k >= least
            and geometry.stride == (1, 1) and geometry.dilation == (1, 1) and oh * ow >= _conv_direct.MAX_TILE_WIDTH
            and (kh * kw <= 9 or (kh * kw <= 25 and h * w >= 1.2 * oh * ow))
            and blocks * 8 * oh * ow * dtype.itemsize <= COLUMNS_ROUTE_MAX_BYTES)


class GradInputPlan:
    """The shape-only work of dL/dx by direct convolutions, done once per shape (:func:`grad_input_plan`).

    With stride 1 that is one convolution of the zero-padded grad; with stride
    ``s`` the input splits into ``s * s`` phases (rows and columns by their
    index modulo ``s``), each a stride-1 convolution with the sub-kernel of the
    taps that reach it: no column buffer, and no zeros inserted between grad
    elements (only the borders of each phase's window are zero padding). The
    tiles pack each phase's weights from the forward weight, by its
    ``forward_taps``: no reversed, transposed copy of it is made (but for
    depthwise plans and the loops of other dtypes).
    Images of few channels with many filters take their columns instead
    (``columns``, :func:`by_columns`): no convolution plans then.
    """

    def __init__(self, grad_shape, dims, geometry, groups, dtype, level):
        k, cg, kh, kw = dims
        n, kg, channels = grad_shape[0], k // groups, groups * cg
        self.dims, self.groups, self.dtype = dims, groups, np.dtype(dtype)
        self.shape = (n, channels) + geometry.in_shape
        self.geometry = geometry
        self.columns = by_columns(grad_shape, dims, geometry, groups, dtype)  # (else the direct tiles)
        self.work = n * k * cg * kh * kw * grad_shape[2] * grad_shape[3] // 16
        self.by_columns_kernel = specialized(_conv_direct.grad_input_by_columns, self.dtype)
        self.scatter_phase = specialized(_conv_direct.scatter_phase, self.dtype)
        self.scatter_phase_pair = specialized(_conv_direct.scatter_phase_pair, self.dtype)
        self.single, self.covered, self.paired, self.phases = True, True, False, []
        # depthwise groups of a vector of channels in the lanes (depthwise_lanes_grad_input), or 0
        self.dw_lanes = 0
        if is_depthwise(groups, channels, k) and self.dtype.kind == "f" and n:
            self.dw_lanes = depthwise_lanes_grad_input(geometry, self.dtype, level,
                                                       math.prod(self.shape) * self.dtype.itemsize, STREAM_BYTES)
        if self.dw_lanes:  # (weighed as the forward's depthwise kernels: each tap of a plane alone)
            self.work = depthwise_work(n, k, geometry.out_size, kh * kw)
        self.pack_weights = specialized(_conv_direct.pack_weights, self.dtype)
        self.depthwise_lanes_kernel = specialized(_conv_direct.conv2d_grad_input_depthwise_lanes, self.dtype)
        if self.columns or self.dw_lanes:
            return
        rows, cols = (_axis_phases(size, kern, st, dil, pad[0]) for size, kern, st, dil, pad in
                      zip(geometry.in_shape, (kh, kw), geometry.stride, geometry.dilation, geometry.padding))
        # one phase per axis that covers every pixel: the result is that phase's convolution
        self.single = (len(rows) == len(cols) == 1 and rows[0].count == geometry.in_shape[0]
                       and cols[0].count == geometry.in_shape[1])
        # whether the phases fill every pixel (each pixel is in one phase at most): no zeroing first
        self.covered = (sum(p.count for p in rows) == geometry.in_shape[0]
                        and sum(p.count for p in cols) == geometry.in_shape[1])
        # a column stride of 2 with both column phases: each row phase's two (consecutive below)
        # are put in place together, every row written once (scatter_phase_pair)
        self.paired = not self.single and geometry.stride[1] == 2 and [p.first for p in cols] == [0, 1]
        self.phases = []  # pixels outside every phase get no gradient: they stay zero
        for ph in rows:
            for pw in cols:
                spans = [p.count + p.spacing * (p.taps - 1) for p in (ph, pw)]
                crop, pads = _grad_crop(grad_shape, [(ph.start, spans[0]), (pw.start, spans[1])])
                crop_shape = tuple(len(range(*s.indices(size))) for s, size in zip(crop[2:], grad_shape[2:]))
                sub_shape = (channels, kg, ph.taps, pw.taps)
                sub_geo = None
                tiled = None
                if all(crop_shape) and n and k:
                    sub_geo = conv_geometry(crop_shape, (ph.taps, pw.taps), 1, pads, (ph.spacing, pw.spacing))
                    if self.dtype.kind == "f" and tiles_fit(kg, ph.taps * pw.taps):
                        tiled = tiled_conv((n, k) + crop_shape, sub_shape, sub_geo, groups, "zeros", self.dtype,
                                           level)
                taps = tuple(slice(p.tap0 + p.tap_step * (p.taps - 1), (p.tap0 - 1) if p.tap0 else None,
                                   -p.tap_step) for p in (ph, pw))
                (forward_taps,) = read_only((np.arange(kh)[taps[0], None] * kw + np.arange(kw)[taps[1]]).ravel()
                                            .astype(np.intp))
                target = (slice(None), slice(None)) if self.single else (
                    slice(None), slice(None), slice(ph.first, None, geometry.stride[0]),
                    slice(pw.first, None, geometry.stride[1]))
                self.phases.append(_InputPhase(taps, forward_taps, sub_shape, crop, sub_geo, tiled, target,
                                               (n, channels, ph.count, pw.count), (ph.first, pw.first)))

    @functools.cached_property
    def packs_hwio(self):
        """Whether :meth:`run` can read an HWIO weight in place: every phase runs tiles that pack it so."""
        return not (self.dw_lanes or self.columns) and all(
            phase.geometry is None or (phase.tiled is not None and phase.tiled.packs_hwio) for phase in self.phases)

    @functools.cached_property
    def writes_pixels(self):
        """Whether :meth:`run` can write an NHWC result (``channels_last``): one phase, which tiles run."""
        return (self.single and not (self.dw_lanes or self.columns) and self.phases[0].tiled is not None
                and not self.phases[0].tiled.depthwise)

    def run(self, grad, weight, out=None, hwio=False, channels_last=False):
        """dL/dx ``(N, C, H, W)`` of an NCHW ``grad`` and OIHW ``weight`` (any strides).

        ``out``: a C-contiguous array of the result's shape and dtype, sharing
        no memory with ``grad`` or ``weight``, to write it into. With
        ``hwio``, ``weight`` is HWIO (C-contiguous), which the tiles pack in
        place where :attr:`packs_hwio` (else it is transposed first). With
        ``channels_last`` (where :attr:`writes_pixels`), ``out`` is given and
        ``(N, H, W, C)``: the tiles write its pixels (``TiledConv.run``).
        """
        k, cg, kh, kw = self.dims
        groups = self.groups
        if hwio and not self.packs_hwio:
            weight, hwio = hwio_to_oihw(weight), False
        if channels_last:
            if not self.writes_pixels or out is None:
                raise ValueError("GradInputPlan.run: an NHWC result needs an out and one phase the tiles run")
            phase = self.phases[0]
            phase.tiled.run(grad[phase.crop], weight if hwio else np.ascontiguousarray(weight), None, out,
                            phase.forward_taps, hwio, channels_last=True)
            return out
        if self.dw_lanes:  # (the forward's weights, packed as its lanes kernel takes them)
            lanes, threads = self.dw_lanes, threads_for(self.work)
            result = empty(self.shape, self.dtype) if out is None else out
            w_packed = empty_aligned(-(-k // lanes) * lanes * kh * kw, self.dtype)
            self.pack_weights(np.ascontiguousarray(weight).reshape(k, 1, kh * kw), None, w_packed,
                              np.empty(-(-k // lanes) * lanes, self.dtype), 1, lanes, threads)
            (top, _), (left, _) = self.geometry.padding
            self.depthwise_lanes_kernel(grad, w_packed, result, top, left, *self.geometry.stride,
                                        *self.geometry.dilation, kh, kw, threads)
            return result
        if self.columns:
            result = zeros(self.shape, self.dtype) if out is None else out
            if out is not None:
                result[...] = 0
            (top, _), (left, _) = self.geometry.padding
            self.by_columns_kernel(np.ascontiguousarray(grad), np.ascontiguousarray(weight.reshape(k, -1).T), result,
                                   kh, kw, 1, 1, top, left, threads_for(self.work))
            return result
        # (groups, Kg, Cg, KH, KW) -> (groups, Cg, Kg, KH, KW): the adjoint's weight (OIHW only: the phases
        # that read it are not those of a plan that packs HWIO weights)
        adjoint_weight = None if hwio else weight.reshape(groups, k // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)
        if out is None:
            result = empty(self.shape, self.dtype) if self.covered else zeros(self.shape, self.dtype)
        else:
            result = out
            if not self.covered:
                result[...] = 0
        forward = None  # (the weight, C-contiguous, for the tiles that pack the adjoint from it)
        evens = None  # (paired: a row phase's even columns, waiting for its odd ones)
        # the phases' rows go past the caches into a large result whose pages are mapped (a user's
        # out, or a buffer the buffer cache handed out again): see _place
        stream = result.nbytes >= STREAM_BYTES and (out is not None or reused(result))
        for phase in self.phases:
            if phase.geometry is None:  # the window lies outside the grad: only zeros reach these pixels
                if not self.paired:
                    result[phase.target] = 0
                    continue
                target = zeros(phase.shape, self.dtype)
                evens = self._place(target, evens, phase, result, stream)
                continue
            crop = grad[phase.crop]
            target = result if self.single else empty(phase.shape, self.dtype)
            if phase.tiled is not None and not phase.tiled.depthwise:
                # the tiles' packing reads the phase's adjoint weights from the weight itself (in
                # order, in parallel) instead of a reversed, transposed copy made first
                if forward is None:
                    forward = weight if hwio else np.ascontiguousarray(weight)
                phase.tiled.run(crop, forward, None, target, phase.forward_taps, hwio)
            else:
                taps = adjoint_weight[(Ellipsis,) + phase.weight_taps]  # a view: slices
                sub = empty(phase.sub_shape, self.dtype)  # (large ones from the buffer cache: no fresh pages)
                np.copyto(sub.reshape(taps.shape), taps)
                if phase.tiled is not None:
                    phase.tiled.run(crop, sub, None, target)
                else:
                    direct_nchw(crop, sub, np.zeros(sub.shape[0], self.dtype), phase.geometry, groups, target)
            if not self.single:
                evens = self._place(target, evens, phase, result, stream)
        return result

    def _place(self, target, evens, phase, result, stream=False):
        """Put a phase's pixels ``target`` in place in ``result``; return the even columns still waiting.

        In parallel kernels: NumPy's strided assignment took a fifth of
        `strided`'s input gradient at two threads, on one of them. With
        :attr:`paired` a row phase's even columns wait for its odd ones.
        ``stream``: the pairs' float32 rows go into ``result`` with
        non-temporal stores, which do not read its lines first (from
        ``STREAM_BYTES``, into mapped pages, as im2col streams its columns).
        The interleave had taken 21 % of ``strided``'s input gradient at one
        thread. In-process A/B, ordinary / non-temporal stores, alternating
        calls, one / two threads (Intel Xeon): ``strided`` 1.24x / 1.23x, 128
        channels 56 -> 28 at stride 2 1.15x / 1.15x. Float64 rows keep
        ordinary stores (not measured).
        """
        sh, sw = self.geometry.stride
        if not self.paired:
            self.scatter_phase(target, result, *phase.first, sh, sw, threads_for(target.size))
            return None
        if phase.first[1] == 0:
            return target
        self.scatter_phase_pair(evens, target, result, phase.first[0], sh, threads_for(2 * target.size), stream)
        return None


@functools.lru_cache(maxsize=256)
def grad_input_plan(grad_shape, dims, geometry, groups, dtype, level):
    """The :class:`GradInputPlan` of a shape, cached."""
    return GradInputPlan(grad_shape, dims, geometry, groups, dtype, level)


def _grad_input_direct(call):
    """dL/dx as direct convolutions of the grad with the transposed, reversed weight (:class:`GradInputPlan`)."""
    plan = grad_input_plan(nchw_shape(call.grad.shape) if call.channels_last else call.grad.shape, call.dims,
                           call.geometry, call.groups, call.compute_dtype, _conv_direct.current_level())
    if call.channels_last:
        return grad_input_through_nchw(plan, call.grad, call.weight)
    return plan.run(call.grad, call.weight)


def nchw_shape(shape):
    """The NCHW shape of a batched NHWC shape."""
    n, h, w, c = shape
    return n, c, h, w


def grad_input_through_nchw(plan, grad, weight, out=None):
    """dL/dx of an NHWC call by an NCHW :class:`GradInputPlan`: the grad and the HWIO weight in, the result out.

    ``grad`` is ``(N, OH, OW, K)`` C-contiguous; into ``out`` (C-contiguous
    ``(N, H, W, C)``) or a new array. Each move is :mod:`fastconv._layouts`';
    the tiles pack the adjoint from an HWIO weight of
    :data:`~fastconv._conv.HWIO_IN_PLACE_BYTES` or more in place where they
    can (:attr:`GradInputPlan.packs_hwio`: 3x3 512 to 512, one / two threads,
    1.07-1.12x against transposing it first; 256 to 256 and smaller
    0.99-1.03x), as the convolution's do (:func:`~fastconv._conv.nhwc_through_nchw`).
    """
    in_place = weight.nbytes >= HWIO_IN_PLACE_BYTES
    weight = weight if in_place else hwio_to_oihw(weight)
    if plan.writes_pixels:  # (the tiles write the pixels)
        n, c, h, w = plan.shape
        result = empty((n, h, w, c), plan.dtype) if out is None else out
        return plan.run(channels_first(grad), weight, result, hwio=in_place, channels_last=True)
    return nchw_to_nhwc(plan.run(channels_first(grad), weight, hwio=in_place), out=out)


def grad_weight_through_nchw(plan, x, grad, groups):
    """The HWIO dL/dw of an NHWC call by an NCHW :class:`GradWeightPlan`, or None (see its ``run``).

    ``x`` ``(N, H, W, C)`` and ``grad`` ``(N, OH, OW, K)``, C-contiguous.
    The kernels copy views with any strides. With one group the input's
    view took them longer than its transpose (1.04-1.09x on the layers
    measured); depthwise ones read it as fast as the transpose's copy, which
    cost 8 images of 7x7x1024 0.20 ms of 0.47; the grad's view was as fast
    as its copy or faster.
    """
    dw = plan.run(channels_first(x) if groups == 1 else x.transpose(0, 3, 1, 2), grad.transpose(0, 3, 1, 2))
    return None if dw is None else oihw_to_hwio(dw)


def _grad_weight(call):
    """dL/dw for a prepared call, in the compute dtype and the user's weight layout."""
    if not call.grad.size or not call.x.size or 0 in call.result_shape:
        return np.zeros(call.result_shape, call.compute_dtype)  # an empty sum, or nothing to sum into
    k, cg, kh, kw = call.dims
    if call.compute_dtype.kind != "f" or not tiles_fit(cg, kh * kw, k):
        return _grad_weight_gemm(call)
    if call.channels_last and depthwise_nhwc_grad_weight(call):
        return _grad_weight_depthwise_nhwc(call)
    if call.channels_last and pointwise_nhwc_grad(call, call.x.shape):
        return _grad_weight_pointwise_nhwc(read_pixels(call.x, call.geometry), call.grad)
    plan = grad_weight_plan(nchw_shape(call.x.shape) if call.channels_last else call.x.shape, call.dims,
                            call.geometry, call.groups, call.compute_dtype, _conv_direct.current_level())
    if call.channels_last:
        dw = grad_weight_through_nchw(plan, call.x, call.grad, call.groups)
    else:
        dw = plan.run(call.x, call.grad)
    return _grad_weight_gemm(call) if dw is None else dw


#: Pixels of the batch whose products :func:`_grad_weight_pointwise_packed` sums in one kernel call.
POINTWISE_NHWC_GRAD_PIXELS = 1024

#: Most channels of the smaller of the two arrays for which :func:`_grad_weight_pointwise_nhwc`
#: reads both in place (:func:`reads_pointwise_grad_in_place`).
POINTWISE_NHWC_GRAD_IN_PLACE_CHANNELS = 128

#: Fewest pixels of a run of :func:`pointwise_grad_segments`, and the most runs.
POINTWISE_NHWC_GRAD_RUN_PIXELS = 4096
POINTWISE_NHWC_GRAD_RUNS = 8


def pointwise_grad_segments(pixels):
    """Runs of pixels :func:`_grad_weight_pointwise_nhwc` sums apart (then adds in order): a power of two.

    Of :data:`POINTWISE_NHWC_GRAD_RUN_PIXELS` pixels or more, at most
    :data:`POINTWISE_NHWC_GRAD_RUNS`; a function of the pixels alone, so the
    bits do not depend on the thread count. The threads share the runs
    (each reads its own pixels of both arrays) before they share the rows of
    the result (each reads all the pixels of the array with fewer
    channels): Intel Xeon, two threads, against one run, 32 to 128 channels
    on both sides and 128 to 512: 1.04-1.30x, at one thread 0.98-1.03x.
    """
    runs = 1
    while runs * 2 <= POINTWISE_NHWC_GRAD_RUNS and runs * 2 * POINTWISE_NHWC_GRAD_RUN_PIXELS <= pixels:
        runs *= 2
    return runs


def pointwise_nhwc_grad(call, image_shape, strided=True):
    """Whether a prepared NHWC gradient call runs :func:`_grad_input_pointwise_nhwc` or
    :func:`_grad_weight_pointwise_nhwc` (:func:`~fastconv._conv.runs_pointwise_nhwc`; unless
    ``strided``, only where each input pixel has its output pixel: not at a stride, nor on an axis
    of one output (whose stride the geometry makes 1); ``image_shape`` the input's)."""
    return ((strided or call.geometry.in_shape == call.geometry.out_shape)
            and runs_pointwise_nhwc(call.compute_dtype, call.dims, call.geometry, call.groups,
                                    math.prod(image_shape) // max(1, call.dims[1])))


def reads_pointwise_grad_in_place(c, k, dtype, level=-1):
    """Whether :func:`_grad_weight_pointwise_nhwc` of ``c`` input channels and ``k`` filters reads both arrays
    in place (:func:`~fastconv._kernels._conv_direct.pointwise_grad_weight_nhwc`; at ``level``, default the
    current one).

    Where the smaller of the two has at most
    :data:`POINTWISE_NHWC_GRAD_IN_PLACE_CHANNELS`. Against the packing
    kernel (:func:`_grad_weight_pointwise_packed`; Intel Xeon, AVX-512, one
    and two threads, in-process A/B, medians of 11): 32 to 128 channels on
    one side (32 to 512 on the other) 1.25-2.03x at one thread and
    1.45-3.29x at two in float32 (with :func:`pointwise_grad_segments`),
    1.01-2.95x in float64 (one run); 256 to 256 0.94-1.15x at one thread,
    256 to 512 0.89x; 512 to 512, 512 to 1024 and 1024 to 256 0.63-0.92x.
    """
    return (_conv_direct.has_pointwise_nhwc_kernels(level)
            and min(c, k) <= POINTWISE_NHWC_GRAD_IN_PLACE_CHANNELS)


def _grad_weight_pointwise_nhwc(x, grad):
    """The HWIO ``(1, 1, C, K)`` weight gradient of a 1x1 NHWC convolution: ``x.T @ grad`` over the pixels.

    ``x`` ``(N, OH, OW, C)`` (the pixels the convolution read:
    :func:`~fastconv._conv.read_pixels`) and ``grad`` ``(N, OH, OW, K)``,
    C-contiguous, one float dtype. Where :func:`reads_pointwise_grad_in_place`,
    :func:`~fastconv._kernels._conv_direct.pointwise_grad_weight_nhwc` reads
    both where they lie, the array with fewer channels as the tiles'
    vectors (with fewer input channels than filters it computes the
    ``(K, C)`` transpose, moved into place after); every output is the
    sum over each run of pixels in order (:func:`pointwise_grad_segments`),
    the runs' sums added in order. Else :func:`_grad_weight_pointwise_packed`.
    """
    c, k = x.shape[3], grad.shape[3]
    if not reads_pointwise_grad_in_place(c, k, x.dtype):
        return _grad_weight_pointwise_packed(x, grad)
    pixels = x.size // c
    rows, cols = x.reshape(pixels, c), grad.reshape(pixels, k)
    threads, runs = threads_for(pixels * c * k // 16), pointwise_grad_segments(pixels)
    if c > k:
        dw = np.empty((c, k), x.dtype)
        _conv_direct.pointwise_grad_weight_nhwc(rows, cols, dw, threads, runs)
        return dw.reshape(1, 1, c, k)
    dw_t = np.empty((k, c), x.dtype)
    _conv_direct.pointwise_grad_weight_nhwc(cols, rows, dw_t, threads, runs)
    return oihw_to_hwio(dw_t.reshape(k, c, 1, 1))


def _grad_weight_pointwise_packed(x, grad):
    """:func:`_grad_weight_pointwise_nhwc` by the pointwise kernel with its roles swapped.

    :func:`~fastconv._kernels._conv_direct.conv2d_pointwise`
    with the roles of :func:`~fastconv._conv.pointwise_nhwc`: the input
    channels as its filters (the adjoint of ``x``'s ``(pixels, C)`` rows,
    packed 8 channels at a time), ``grad`` as an image of ``K`` pixels whose
    channels are the batch's pixels, ``POINTWISE_NHWC_GRAD_PIXELS`` of them
    a call (a chunk's rows stay in the caches for every block of channels),
    the calls' sums added in order: the same bits for any thread count.
    Before, the NCHW kernels read transposed views of both arrays (256 to 64
    channels on 8 images of 56x56, one thread: 60 ms, now 10 ms; PyTorch
    6.5-6.9 ms).
    """
    c, k = x.shape[3], grad.shape[3]
    pixels = x.size // c
    rows, cols = x.reshape(pixels, c, 1), grad.reshape(pixels, k)
    panel = pointwise_panel(x.dtype)
    dw = np.empty((1, c, k), x.dtype)
    part = np.empty_like(dw) if pixels > POINTWISE_NHWC_GRAD_PIXELS else dw
    adjoint = np.zeros(1, np.intp)
    for p0 in range(0, pixels, POINTWISE_NHWC_GRAD_PIXELS):
        p1 = min(pixels, p0 + POINTWISE_NHWC_GRAD_PIXELS)
        target = dw if p0 == 0 else part
        threads = threads_for((p1 - p0) * c * k // 16)
        _conv_direct.conv2d_pointwise(cols[p0:p1].reshape(1, p1 - p0, 1, k), None, None, target, 1, 1, k, 1, panel,
                                      threads, 0, False, threads, rows[p0:p1], None, adjoint)
        if p0:
            dw += part
    return dw.reshape(1, 1, c, k)


#: Fewest input pixels per channel (over the batch) from which an NHWC depthwise weight gradient
#: reads its pixels in place (:func:`depthwise_nhwc_grad_weight`).
DEPTHWISE_NHWC_GRAD_PIXELS = 784


def depthwise_nhwc_grad_weight(call):
    """Whether a prepared NHWC weight-gradient call runs :func:`_grad_weight_depthwise_nhwc`.

    Float depthwise convolutions on a level with vector lanes whose batch
    has at least ``DEPTHWISE_NHWC_GRAD_PIXELS`` input pixels per channel;
    smaller ones take the NCHW kernels on transposed views (the lanes
    kernel, which lays each group's planes out first). Intel Xeon, AVX-512,
    float32, 3x3, in-process A/B, one / two threads, NHWC kernel against
    those: 8 images of 256 channels of 14x14 1.68x / 1.54x, 8 of 128 of
    28x28 2.53x / 1.60x, 8 of 512 of 14x14 at stride 2 1.52x / 1.39x, one
    of 128 of 28x28 at stride 2 1.10x / 1.10x, one of 64 of 112x112 at
    stride 2 2.57x / 1.94x, 32 of 32 of 28x28 1.67x / 1.21x; below: 8 of
    1024 of 7x7 0.99x / 0.96x, 8 of 256 of 8x8 at stride 2 0.87x / 0.88x,
    one of 512 of 14x14 0.90x / 0.91x, one of 1024 of 7x7 0.82x / 0.89x.
    """
    x, k = call.x, call.dims[0]
    return (call.compute_dtype.kind == "f" and is_depthwise(call.groups, x.shape[3], k)
            and _conv_direct.depthwise_lanes(call.compute_dtype.char) > 0
            and x.shape[0] * x.shape[1] * x.shape[2] >= DEPTHWISE_NHWC_GRAD_PIXELS)


def _grad_weight_depthwise_nhwc(call):
    """dL/dw of a depthwise NHWC convolution, reading the pixels' vectors of channels in place (HWIO)."""
    k, _, kh, kw = call.dims
    x, grad = call.x, call.grad  # (C-contiguous, as prepared: each pixel's channels side by side)
    (top, _), (left, _) = call.geometry.padding
    dw = np.empty((kh * kw, k), call.compute_dtype)
    threads = threads_for(depthwise_work(x.shape[0], k, call.geometry.out_size, kh * kw))
    # bands of output rows whose input and grad rows fit BAND_BUDGET: read from cache by every group
    row_bytes = (call.geometry.stride[0] * x.shape[2] + grad.shape[2]) * k * x.dtype.itemsize
    _conv_direct.conv2d_grad_weight_depthwise_nhwc(x, grad, dw, top, left, *call.geometry.stride,
                                                   *call.geometry.dilation, kh, kw, max(1, BAND_BUDGET // row_bytes),
                                                   threads)
    return dw.reshape(kh, kw, 1, k)


#: Elements of an input plane from which the weight gradient's output-channel tiles read an
#: unpadded stride-1 input in place (:class:`GradWeightPlan`).
IN_PLACE_MIN_PLANE = 64

#: Fewest output pixels per image from which a pointwise weight gradient swaps its operands
#: (:func:`swaps_pointwise_roles`).
SWAP_MIN_PIXELS = 196
#: Most input channels for which a pointwise weight gradient swaps its operands (:func:`swaps_pointwise_roles`).
SWAP_MAX_CHANNELS = 64


def swaps_pointwise_roles(dims, geometry, groups, dtype, level):
    """Whether dL/dw of a pointwise convolution runs with the roles of its input and grad swapped.

    For a 1x1, stride-1, unpadded convolution of one group, ``dw[k, c]`` is
    the sum over pixels of ``grad[k] * x[c]``: the transpose of the weight
    gradient of the convolution whose input is the grad (``K`` channels) and
    whose grad is the input (``C`` channels). The output-channel tiles copy
    their block's grad pixel-major (a transpose: 11-33 % of the time of
    pointwise layers of 128 down to 32 input channels, ``perf``) and read
    the input in place, so the swap copies ``C`` channels instead of ``K``.
    It is taken at the AVX2 and AVX-512 levels where ``C < K``, ``C`` is at
    most :data:`SWAP_MAX_CHANNELS` and fills whole blocks of the tiles
    (:func:`~fastconv._kernels._conv_direct.oc_tile_shape`: 32 float32
    channels with AVX-512, 16 with AVX2, half as many in float64), and each
    image has at least :data:`SWAP_MIN_PIXELS` pixels.

    Swapped / not, in-process, medians of 15-40 paired runs, Intel Xeon: AVX-512
    float32 on 7 layers (32 to 64 on 112x112, 64 to 256 and 32 to 96 on
    56x56, 64 to 128 on 56x56 and 28x28, 32 to 128 on 28x28, 64 to 256 on
    14x14) 1.10-1.30x at one thread and 1.06-1.80x at two; float64
    1.12-1.66x; AVX2 1.06-1.32x (float64 1.06-1.88x). Left out: 128 and 256
    input channels (0.88-1.10x), blocks not filled (8 and 24 channels with
    float32: 0.56-1.01x at AVX-512, 0.65-0.91x at AVX2), 8x8 and 7x7 images
    (0.82-1.03x and 0.90-0.95x), strided kernels (0.96-1.08x) and the
    baseline level (0.64-0.98x). Each weight sums the same products in the
    same order of pixels, grouped by the swapped plan's blocks and chunks:
    the last bits may differ from the unswapped route's, and do not depend
    on the thread count.
    """
    k, cg, kh, kw = dims
    block = _conv_direct.oc_tile_shape(level, np.dtype(dtype).char)[0]
    return (level > 0 and groups == 1 and (kh, kw) == (1, 1) and geometry.stride == (1, 1)
            and not geometry.has_padding and cg < k and cg <= SWAP_MAX_CHANNELS and cg % block == 0
            and geometry.out_size >= SWAP_MIN_PIXELS)


def _scratch_chunk(per_image, itemsize):
    """Images per chunk so a task's scratch (``per_image`` elements each) is about 256 KiB: L2."""
    return max(1, 2**18 // itemsize // per_image)


def _scratch_rows(rows, per_row, itemsize):
    """Rows of one image per chunk (about 256 KiB) where one image's scratch takes more than 1 MiB, else 0.

    The output-channel weight-gradient tiles copy a block of the grad
    pixel-major, an image at a time at least; a 112x112 grad of 32 float32
    channels takes 1.6 MB, more than the L2 cache. In chunks of rows
    (in-process A/B, whole images / row chunks, AVX-512): stem's weight
    gradient 1.11x / 1.23x (float32, 1 / 2 threads) and 1.18x / 1.20x
    (float64), other layers with 112x112 grads 1.07-1.52x; with 56x56 grads
    (0.4 MB) two chunks ran 0.95-1.01x, so those keep whole images.
    """
    if rows * per_row * itemsize <= 2**20:
        return 0
    return min(rows, max(1, 2**18 // itemsize // per_row))


class OctileBands(NamedTuple):
    """How the weight gradient's output-channel tiles cut their work into chunks they lay out in cache.

    A chunk is ``images`` whole images or, with one image, ``rows`` output
    rows; its input is copied ``channels`` input channels at a time, as
    stride-phase planes of the phase rows the chunk reads (``phases``:
    :func:`~fastconv._conv.stride_phases` with that many rows).
    """

    images: int
    rows: int
    channels: int
    phases: object


#: Bytes of a chunk's grad (every block of a group, pixel-major) the weight gradient's banded
#: output-channel tiles keep in a task's scratch (:func:`octile_bands`): a quarter of the L2 cache.
OCTILE_BAND_GRAD_BYTES = BAND_BUDGET
#: Bytes of a chunk's input planes they copy at a time (:func:`octile_bands`).
OCTILE_BAND_INPUT_BYTES = BAND_BUDGET


#: Most multiply-adds per input element (output channels per group x taps / stride area) for which
#: the weight gradient's output-channel tiles lay out their chunks themselves (:class:`GradWeightPlan`).
OCTILE_BANDS_MAX_MACS = 1536


def octile_bands(geometry, images, cg, group_channels, itemsize):
    """The :class:`OctileBands` of a weight gradient: chunks whose grad takes about ``OCTILE_BAND_GRAD_BYTES``.

    ``group_channels`` is a group's output channels rounded up to whole
    blocks. Whole images while one image's grad fits, else rows of one
    image, cut as evenly as they can be; input channels so that their planes
    take about ``OCTILE_BAND_INPUT_BYTES`` (at least one, at most ``cg``).
    """
    (sh, sw), (dh, _) = geometry.stride, geometry.dilation
    kh = geometry.kernel[0]
    oh, ow = geometry.out_shape
    wq = -(-geometry.padded_shape[1] // sw)
    per_row = max(1, ow * group_channels * itemsize)
    if oh * per_row <= OCTILE_BAND_GRAD_BYTES:
        chunk, rows = max(1, min(images, OCTILE_BAND_GRAD_BYTES // (oh * per_row))), oh
    else:
        chunk, rows = 1, max(1, OCTILE_BAND_GRAD_BYTES // per_row)
        rows = -(-oh // -(-oh // rows))  # as even as can be
    phases = stride_phases(geometry, rows + (kh - 1) * dh // sh)
    per_channel = chunk * sh * sw * phases.hq * wq * itemsize
    return OctileBands(chunk, rows, max(1, min(cg, OCTILE_BAND_INPUT_BYTES // per_channel)), phases)


#: Sums per weight-gradient entry per output pixel (input channels x taps per group) from
#: which the output-channel tiles run the weight gradient, by dtype and SIMD level (measured;
#: see below).
GRAD_WEIGHT_CHANNEL_DEPTH = {("f", 1): 18, ("f", 2): 18, ("d", 1): 1, ("d", 2): 1}
#: The same for a pointwise convolution whose input the output-channel tiles read in place.
POINTWISE_CHANNEL_DEPTH = 8


def choose_grad_weight_tiles(kg, depth, dtype, level, slices=2, in_place=False):
    """``(oc_level, block)`` for the weight gradient, as :func:`fastconv._conv.choose_tiles`.

    The column tiles take dot products along padded grad rows (zero columns
    included: 14 of every 16 lanes work on resnet-deep), 4 grad loads and up
    to 6 input loads per 24 FMAs with 32 registers; the output-channel tiles
    visit only output pixels, with 2 grad loads and up to 14 broadcast inputs
    per 28 FMAs, but transpose the grad and scatter their sums. Each task of
    the output-channel tiles is one block of channels and a slice of a
    group's (input channel, tap) pairs: ``slices`` (groups x the tile calls
    over a group's pairs, :func:`_pair_calls`) and the blocks bound how many
    threads they can keep busy.

    Measured against each other (Intel Xeon, 1 and 2 threads, medians of 7
    alternating calls, after the column tiles took 6 taps per pass), columns
    time / channels time: AVX-512 float32 1.2-1.5x from 36 sums up (stem
    1.31-1.33x, CS231n's 3 to 32 7x7 1.25-1.44x, 4 to 64 3x3 on 56x56
    1.20-1.21x, 16 to 32 on 14x14 1.26-1.48x, resnet-mid 1.53-1.55x, strided
    2.0-2.2x), 0.96-1.01x with 27 sums (3 to 64 3x3 on 224x224); AVX2
    float32 1.07-1.54x from 36 sums, 0.89-0.95x with 27; float64 1.0-1.5x
    at every depth measured (9 to 576 sums, both levels). A single task
    (one block, one input channel: 30 5x5 filters on one-channel images)
    ran at 0.69x on 2 threads. So they run from AVX2 up, with at least
    ``GRAD_WEIGHT_CHANNEL_DEPTH`` sums, blocks at least 3/4 full and at
    least two tasks. (Before, with 3 taps per column-tile pass and older
    output-channel tiles, the crossover was measured at 256-512 sums.)
    Measured again once tasks took slices of (channel, tap) pairs
    (2026-12-07, in-process A/B, 1 / 2 threads), columns time / channels
    time, float32: AVX-512 with 18 to 27 sums 1.12-1.36x with blocks of 32
    (1 to 3 channels of 3x3 and 5x5 taps, 28x28 to 224x224, strides 1 and
    2; SimpleConvNet's 30 5x5 filters 1.32x / 1.26x), 1.08-1.22x with blocks
    of one vector (cifar 1.09x / 1.08x) but 1.05x / 0.90x on 2 channels of
    3x3 to 16 filters of 28x28 (32 images); AVX2 1.00-1.34x (that layer
    1.08x / 0.91x); with 9 sums 0.84-1.13x: hence 18.

    With 32 registers, a layer of at most one vector of output channels (16
    float32 with AVX-512) fills half a block of two: there the tiles of one
    vector of channels (one grad load and up to 14 broadcast inputs per 14
    FMAs) run instead. Columns time / one-vector time, float32, 16 channels,
    1 / 2 threads: 16 input channels on 28x28 1.21x / 1.15x and on 56x56
    1.12x / 1.11x. They once needed input channels for 8 tasks (3 input
    channels of 7x7 taps ran 0.78x at two threads, two slices of channels
    sharing them unevenly), no longer since tasks take slices of the
    (channel, tap) pairs. In-process A/B, Intel Xeon, 2026-12-07, 16
    filters (12 on one): LeNet's C3 (6 channels of 5x5 taps on 14x14)
    1.80x / 1.56x, 4, 5 and 7 channels likewise 1.74-1.83x / 1.54-1.59x,
    12 filters on C3 1.42x / 1.23x, 3 channels of 7x7 on 32x32 1.29x /
    1.29x, 1 to 3 channels of 5x5 and 7x7 on 28x28 to 112x112 1.10-1.25x /
    1.00-1.23x, 4 and 6 channels of 3x3 on 28x28 1.18-1.21x / 1.02-1.03x.

    ``in_place``: a pointwise (1x1) convolution whose input the output-channel
    tiles would read in place (:class:`GradWeightPlan`), while the column
    tiles need a copy of it. There they run from
    :data:`POINTWISE_CHANNEL_DEPTH` sums. Old choice (column tiles, taking
    several channels per pass) / new, float32, in-process A/B: AVX-512
    1.24-2.11x at one thread and 1.22-2.15x at two on 8 pointwise layers of
    8 to 30 input channels (12 to 48 and 16 to 32 on 28x28, 16 to 16, 16 to
    64 and 24 to 144 on 56x56, 30 to 60 on 14x14), AVX2 1.16-2.27x at one
    thread; one layer of 2 large images (16 to 96 on 112x112) 1.15x at one
    thread, 0.78x at two.
    """
    dtype = np.dtype(dtype)
    block, _ = _conv_direct.oc_tile_shape(level, dtype.char)
    blocks = -(-kg // block)
    full = kg / (blocks * block)
    if full < 0.75 and _conv_direct.has_one_vector_weight_tiles(level):  # blocks of one vector instead
        half = block // 2
        halves = -(-kg // half)
        if kg / (halves * half) >= 0.75:
            block, blocks, full = half, halves, kg / (halves * half)
    least = GRAD_WEIGHT_CHANNEL_DEPTH.get((dtype.char, level), 512)
    if in_place:
        least = min(least, POINTWISE_CHANNEL_DEPTH)
    if (level >= 1 and depth >= least and full >= 0.75
            and blocks * slices >= 2):
        return level, block
    return -1, 8


def _slices_per_block(blocks, threads, most):
    """Slices per block of output channels (at most ``most``), so every thread has work.

    Blocks that split evenly between the threads need none. Fewer blocks than
    threads take one slice per thread: each slice copies its block's grad
    again, and on dilated (one block) at 2 threads, 4 slices took 1.4x the
    time of 2. Otherwise about two tasks per thread balance the load.
    """
    if blocks % threads == 0:
        return 1
    parts = -(-threads // blocks) if blocks < threads else -(-2 * threads // blocks)
    return max(1, min(most, parts))


def _pair_calls(cg, taps, level, dtype):
    """The output-channel weight tiles' calls over a group's ``cg * taps`` (input channel, tap) pairs.

    A task takes a slice of those pairs (the kernels' ``_weight_task``), as
    even as can be; more slices than calls would only add calls of fewer
    pairs. Slices of the pairs rather than of the input channels share few
    channels evenly: CS231n's 3 input channels of 7x7 taps (one block of 32
    filters) made slices of 1 and 2 channels on two threads (same bits:
    every entry is still one task's, summed in the same order).
    """
    most = _conv_direct.oc_tile_shape(level, np.dtype(dtype).char)[1]
    return -(-cg * taps // most)


def _band_parts(groups, blocks, cg, threads, calls):
    """``(c_parts, b_parts)``: pair slices and block ranges per group of the banded weight tiles.

    A task copies the input planes of its slice's channels once for its
    blocks: slices of the (input channel, tap) pairs (at most ``calls``, the
    tile calls over a group's pairs: :func:`_pair_calls`) where there are
    channels enough to share evenly (at least 4 per thread), else ranges of
    the blocks (each range copies the planes again; on stem's 3 channels at
    two threads slices of 1 and 2 channels took 1.38x the time of the old
    route, 2 ranges of 1 block share evenly), and slices of the pairs where
    there are fewer blocks than threads.
    """
    if groups % threads == 0:
        return 1, 1
    if cg >= 4 * threads:
        return _slices_per_block(groups, threads, calls), 1
    ranges = max(1, min(blocks, -(-threads // groups)))
    return _slices_per_block(groups * ranges, threads, calls), ranges


#: Bytes of scratch (input planes and a block of the grad) per chunk of images of the column
#: tiles. Old layout (every plane first) / chunks, AVX-512 float32: 1 MiB and 4 MiB ran alike
#: on cifar and the textbook's 5x5 layer; on resnet-deep (the baseline level, where the
#: column tiles run every layer) 256 KiB chunks (one image) ran 0.93x, 1 MiB 0.97-0.98x.
COLUMN_CHUNK_BYTES = 1 << 20
#: Bytes of partial weight-gradient sums the column tiles keep, one per run of chunks of
#: images (:meth:`GradWeightPlan._run_columns`): the runs are the tasks, so a small gradient
#: (a first layer's) runs on as many runs as its chunks, a large one on fewer.
PARTIAL_SUMS_BYTES = 1 << 22
#: The column tiles' chunks and runs of images come in multiples of this many (where there
#: are images enough), so that they share evenly between 1, 2, 4 or 8 threads.
RUN_MULTIPLE = 8


def _chunks_and_runs(images, most_images, sums_bytes):
    """``(chunks, runs)`` of ``images`` for the column tiles; the shape decides, not the threads.

    Chunks of at most ``most_images`` images (:data:`COLUMN_CHUNK_BYTES`).
    Where :data:`PARTIAL_SUMS_BYTES` of sums (``sums_bytes`` each) allow,
    each chunk is a run, and there are as many as a multiple of
    :data:`RUN_MULTIPLE` (at most one per image); else as many runs as
    allowed, a multiple of it where they are more.
    """
    chunks = -(-images // most_images)
    most_runs = max(1, PARTIAL_SUMS_BYTES // sums_bytes)
    if chunks <= most_runs:
        chunks = min(images, most_runs, -(-chunks // RUN_MULTIPLE) * RUN_MULTIPLE)
        return chunks, chunks
    return chunks, most_runs - most_runs % RUN_MULTIPLE if most_runs >= RUN_MULTIPLE else most_runs


def _split_chunks(runs, units, channels, threads):
    """``(unit_parts, c_parts)`` for the column tiles: tasks enough for ``threads`` threads.

    Each run of chunks of images is a task (none copies another's input).
    With fewer than four runs per thread (some threads would wait for the
    last) the (group, block) units split into ranges, each copying the run's
    input planes again, and with fewer tasks than threads still, the input
    channels into slices, each copying its blocks' grad again.
    """
    if threads == 1 or runs >= 4 * threads:
        return 1, 1
    unit_parts = min(units, -(-4 * threads // runs))
    c_parts = 1 if runs * unit_parts >= threads else min(channels, -(-threads // (runs * unit_parts)))
    return unit_parts, c_parts


#: Fewest (group, block) units of output channels for which the output-channel weight tiles
#: run without image runs (:func:`weight_image_runs`).
WEIGHT_RUNS_BELOW_UNITS = 2


def weight_image_runs(chunks, units, sums_bytes):
    """Runs of ``chunks`` chunks of images for the output-channel weight tiles (1: none).

    One (group, block) unit cannot share the threads but in slices of its
    pairs, and each slice copies the whole grad of the block: CS231n's 32
    7x7 filters on 3 channels ran 1.24x on two threads with slices of the
    pairs instead of the channels, 1.32-1.39x with runs. Runs of chunks
    (each summed apart and added here in order, as the column tiles' runs)
    share the copy instead: 8, 4 or 2 of them, as many as there are chunks
    (runs cut inside chunks ran 0.95x at one thread on 32 5x5 filters on 3
    channels) and as :data:`PARTIAL_SUMS_BYTES` of sums (``sums_bytes``
    each) allow. The shape decides, not the thread count, so the sums do
    not depend on it. At one thread the runs cost 1-2 %. Two units share
    two threads already; runs of a pointwise layer's two blocks (128 to 64
    channels on 28x28) ran 0.94-0.96x there.
    """
    if units >= WEIGHT_RUNS_BELOW_UNITS:
        return 1
    most = min(chunks, PARTIAL_SUMS_BYTES // max(1, sums_bytes))
    return next((runs for runs in (RUN_MULTIPLE, 4, 2) if runs <= most), 1)


def _add_runs(sums):
    """The weight gradient of ``sums`` ``(runs, size)``, one per run of images, added in order."""
    if len(sums) == 1:
        return sums[0]
    with np.errstate(all="ignore"):  # sums that overflowed propagate silently, as in the tiles
        return sums.sum(axis=0)


class GradWeightPlan:
    """The shape-only work of dL/dw by the register-tiled kernels, done once per shape (:func:`grad_weight_plan`).

    Non-depthwise convolutions run the output-channel tiles of SIMD level
    ``oc_level`` (blocks of ``block`` channels, as
    :func:`choose_grad_weight_tiles` gives them) or, with ``oc_level`` -1, the
    column tiles. ``tiles`` (``"auto"``, ``"columns"`` or ``"channels"``) forces one;
    ``"channels1"`` forces the output-channel tiles of one vector of channels
    where the level has them (blocks of half as many channels).

    Where the input needs a copy (padding, strides, dilation), the
    output-channel tiles of kernels larger than 1x1 lay out each chunk of it
    themselves, in cache (``bands``, :func:`octile_bands`,
    :func:`~fastconv._kernels._conv_direct.conv2d_grad_weight_octile_bands`):
    a task (a group, a slice of its (input channel, tap) pairs and a range
    of its blocks, :func:`_band_parts`) copies a chunk's grad for its blocks
    and then the input planes of its pairs' channels a few at a time, and
    runs its blocks on them. Old route (every plane laid out in memory
    first, then read by each block's task) / bands, Intel Xeon, AVX-512,
    float32, alternating processes, medians, one / two threads: strided
    1.11x / 1.09x, 256 channels 28 -> 14 at stride 2 1.29x / 1.28x, 16 to
    32 on 32x32 1.08x / 1.10x, dilated 1.07x / 1.04x, resnet-mid 1.04x /
    1.00x, stem 1.03x / 1.02x, 64 channels of 224x224 1.04x / 1.02x. Not
    where the tiles do many multiply-adds per input element (more than
    :data:`OCTILE_BANDS_MAX_MACS`: output channels per group x taps / stride
    area): resnet-deep (2304) ran 0.93x, its chunks' runs of pixels being
    shorter than those of one block's task (2 images instead of 10); with
    larger chunks 0.96x.

    Otherwise the input is first laid out as stride-phase
    planes, channel-major (each channel's images next to each other), zero
    padding included (the column tiles lay out each chunk of images
    themselves: :meth:`_run_columns`). With stride 1
    and no padding that layout is the input's own but for the order of the
    planes, and the output-channel tiles read only inputs inside windows: a
    C-contiguous input is then read in place (``reads_input``), with no copy,
    if its planes have at least :data:`IN_PLACE_MIN_PLANE` elements. In-process
    A/B, copy time / in place, one thread, AVX-512, float32 / float64:
    pointwise layers 64 to 256 and 256 to 64 channels on 56x56 1.13-1.83x,
    32 to 64 on 112x112 1.30-1.40x, 64 to 64 on 8x8 to 14x14 1.20-1.50x,
    128 to 128 on 16x16 and 28x28 1.14-1.22x, 3x3 and 5x5 valid convolutions
    1.02-1.13x, 1024 to 256 on 14x14 0.99-1.04x; a padded control layer
    0.98-1.00x (it copies); at two threads pointwise layers 1.01-1.89x and
    valid convolutions 1.08-1.18x. On 7x7 planes with 256 and 512 channels
    in place ran 0.86-1.12x (each tile's input streams hop from image to
    image every 49 elements), on 8x8 planes with 256 channels 0.96-1.00x,
    hence the minimum. Same bits either way.

    The column tiles take up to ``weight_tile_taps(level)`` taps of one input
    channel per pass. A 1x1 kernel has one, so a pass loaded 4 grad vectors
    per input vector for 4 FMAs; there ``merged`` consecutive input channels
    (the largest divisor of the channels per group up to that count) pass as
    the taps of one. Same bits. In-process A/B, float32, AVX-512: 1.15-1.67x
    at one thread and 1.10-1.61x at two on pointwise layers of 2 to 30 input
    channels.

    A pointwise layer with fewer input channels than filters may run the
    plan with the roles of the input and the grad swapped (``swapped``,
    :func:`swaps_pointwise_roles`), whose result is the transpose.

    A strided 1x1 unpadded convolution (a ResNet shortcut) reads one pixel
    of each stride period: its weight gradient is that of the stride-1
    convolution of those pixels (``subsample``: the stride and output shape),
    whose planes :meth:`run` copies from a view of the input, instead of the
    planes of every stride phase (all but one unread). Same bits.
    In-process A/B, every phase / the pixels read, AMD EPYC, AVX2, medians of
    9 paired runs: 1.24-2.74x at one thread and 1.23-3.06x at two on 8
    layers (ResNet shortcuts 64 to 128 up to 1024 to 2048 channels, stride 2;
    96 to 64 on 30x30 with stride 3), float32 and float64.
    """

    def __init__(self, x_shape, dims, geometry, groups, dtype, level, tiles="auto"):
        k, cg, kh, kw = dims
        n, c = x_shape[:2]
        dtype = np.dtype(dtype)
        # a pointwise layer with fewer input channels than filters: the plan with the roles of x and
        # the grad swapped (swaps_pointwise_roles), whose result run() transposes
        self.swapped = None
        if tiles == "auto" and swaps_pointwise_roles(dims, geometry, groups, dtype, level):
            self.swapped = grad_weight_plan((n, k) + tuple(geometry.out_shape), (cg, k, 1, 1), geometry, 1,
                                            dtype, level)
        # a strided 1x1 unpadded kernel reads one pixel of each stride period: the weight gradient
        # of the stride-1 convolution of those pixels (a view of x), whose planes hold no other phase
        self.subsample = None
        if kh * kw == 1 and not geometry.has_padding and geometry.stride != (1, 1):
            self.subsample = geometry.stride, geometry.out_shape
            geometry = conv_geometry(geometry.out_shape, (1, 1))
        self.dims, self.groups, self.geometry, self.dtype = dims, groups, geometry, dtype
        self.depthwise = is_depthwise(groups, c, k)
        # depthwise groups of a vector of channels in the lanes (depthwise_lanes_grad_weight), or 0
        self.dw_lanes = depthwise_lanes_grad_weight(geometry, dtype, level) if self.depthwise else 0
        if tiles not in (*TILES, "channels1"):
            raise ValueError(f"tiles must be one of {(*TILES, 'channels1')!r}, got {tiles!r}")
        wide = _conv_direct.oc_tile_shape(level, dtype.char)[0]  # the block of two vectors
        # an unpadded stride-1 input is its own (single) phase plane, and the output-channel tiles
        # read only the inputs inside windows: they can read it where it is, unless its planes are
        # so small that their input streams would hop between images too often
        in_place = (self.subsample is None and geometry.stride == (1, 1) and not geometry.has_padding
                    and math.prod(geometry.in_shape) >= IN_PLACE_MIN_PLANE)
        if self.depthwise or tiles == "columns":
            self.oc_level, self.block = -1, 8
        elif tiles == "channels":
            self.oc_level, self.block = level, wide
        elif tiles == "channels1":
            if not _conv_direct.has_one_vector_weight_tiles(level):
                raise ValueError("this SIMD level has no weight-gradient tiles of one vector of channels")
            self.oc_level, self.block = level, wide // 2
        else:
            self.oc_level, self.block = choose_grad_weight_tiles(k // groups, cg * kh * kw, dtype, level,
                                                                 groups * _pair_calls(cg, kh * kw, level, dtype),
                                                                 kh * kw == 1 and in_place)
        self.one_vector = 0 <= self.oc_level and self.block < wide
        # the output-channel tiles' tasks take slices of a group's (input channel, tap) pairs: at most
        # as many as the tile calls over them
        self.pair_calls = _pair_calls(cg, kh * kw, self.oc_level, dtype) if self.oc_level >= 0 else 1
        self.phases = ph = stride_phases(geometry)
        self.reads_input = self.oc_level >= 0 and in_place
        # the column tiles take up to wt_taps taps of one input channel per pass: a 1x1 kernel
        # has one, so each pass would load 4 grad vectors for one input vector and 4 FMAs; they
        # take `merged` consecutive channels as the taps of one instead (their planes lie image-major
        # in the tiles' scratch: channel i of a group of them is i planes on; a 1x1 kernel's tap is at 0)
        self.merged, self.merged_taps = 1, ph.taps  # (the tiles' taps: a merged group's channels, else ph's)
        if self.oc_level < 0 and not self.depthwise and kh * kw == 1:
            most = _conv_direct.weight_tile_taps(level)
            self.merged = max(q for q in range(1, most + 1) if cg % q == 0)
            (self.merged_taps,) = read_only(np.arange(self.merged, dtype=np.intp) * ph.image)
        self.images, self.channels = n, c
        self.work = (depthwise_work(n, k, geometry.out_size, kh * kw) if self.depthwise
                     else n * k * geometry.out_size * cg * kh * kw // 16)
        self.reach = int(ph.taps.max()) + ph.plane  # elements of an image's planes the tiles read, one past
        # the output-channel tiles lay out the input planes of each chunk themselves (in cache) where
        # the input needs a copy, but for 1x1 kernels (their planes of one chunk are one run of pixels)
        self.bands = None
        macs = k // groups * kh * kw / math.prod(geometry.stride)  # multiply-adds per input element
        if (self.oc_level >= 0 and not self.depthwise and not self.reads_input and kh * kw > 1
                and macs <= OCTILE_BANDS_MAX_MACS):
            self.bands = octile_bands(geometry, n, cg, -(-(k // groups) // self.block) * self.block,
                                      dtype.itemsize)
        # images per chunk of the output-channel tiles that read laid-out planes (the grad of a block)
        self.chunk_images = _scratch_chunk(geometry.out_size * self.block, dtype.itemsize)
        # the output-channel tiles sum a single block's chunks of images in runs
        self.image_runs = 1
        if self.oc_level >= 0 and not self.depthwise:
            chunk = self.bands.images if self.bands is not None else self.chunk_images
            self.image_runs = weight_image_runs(-(-n // chunk), groups * -(-(k // groups) // self.block),
                                                k * cg * kh * kw * dtype.itemsize)
        # the kernels' float32 or float64 versions (no dispatch on the buffers' types per call)
        self.depthwise_kernel = specialized(_conv_direct.conv2d_grad_weight_depthwise, dtype)
        self.depthwise_lanes_kernel = specialized(_conv_direct.conv2d_grad_weight_depthwise_lanes, dtype)
        self.phase_planes = specialized(_conv_direct.phase_planes, dtype)
        self.octile_kernel = specialized(_conv_direct.conv2d_grad_weight_octile, dtype)
        self.octile_bands_kernel = specialized(_conv_direct.conv2d_grad_weight_octile_bands, dtype)
        self.tiled_kernel = specialized(_conv_direct.conv2d_grad_weight_tiled, dtype)

    def run(self, x, grad):
        """dL/dw ``(K, Cg, KH, KW)`` of NCHW ``x`` and ``grad`` (any strides); None when the GEMM must run.

        The column tiles multiply zero grad columns with inputs next to the
        window: an inf or nan there would leak into the sums, so such inputs
        take the GEMM path (the output-channel tiles read only inputs inside
        windows).
        """
        if self.swapped is not None:  # dw.T, from the grad as the input and the input as the grad
            dw_t = self.swapped.run(grad, x)
            return None if dw_t is None else np.ascontiguousarray(dw_t.transpose(1, 0, 2, 3))
        if self.subsample is not None:
            (sh, sw), (oh, ow) = self.subsample
            x = x[:, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw]
        k, cg, kh, kw = self.dims
        n, c, ph, geo, dtype = self.images, self.channels, self.phases, self.geometry, self.dtype
        groups, block = self.groups, self.block
        (top, _), (left, _) = geo.padding
        threads = threads_for(self.work)
        if self.oc_level < 0 and not self.depthwise:
            return self._run_columns(x, grad, threads)
        if self.dw_lanes:  # (every product one of a window: no check for infs and nans)
            dw = empty((k * kh * kw,), dtype)
            self.depthwise_lanes_kernel(x, grad, dw, top, left, *geo.stride, *geo.dilation, kh, kw, threads)
            return dw.reshape(k, cg, kh, kw)
        runs = self.image_runs  # (1 for depthwise plans)
        sums = zeros((runs, k * cg * kh * kw), dtype)  # a weight gradient per run of images
        dw = sums.reshape(-1)
        if self.depthwise:  # each input element meets one grad plane
            # blocks of up to 8 channels, read image by image; at least two blocks per thread. The
            # chunk of images (which decides how the sums are grouped) must not depend on the
            # thread count: it is sized for blocks of 8 whatever the block
            channel_block = max(1, min(8, c // (2 * threads)))
            chunk = _scratch_chunk(8 * (ph.image + ph.plane), dtype.itemsize)
            if not self.depthwise_kernel(x, grad, ph.taps, dw, top, left, *geo.stride, ph.hq, ph.wq, ph.plane,
                                         (chunk - 1) * ph.image + max(ph.image, self.reach), chunk, channel_block,
                                         threads):
                return None  # an inf or a nan in x (checked plane by plane as the kernel copies them)
        elif self.bands is not None:
            b = self.bands
            blocks = -(-(k // groups) // block)
            # (the runs share the threads like groups: each copies its images' grad and planes)
            self.octile_bands_kernel(x, top, left, *geo.stride, b.phases.hq, b.phases.wq, b.phases.taps, grad,
                                     dw, groups, cg, b.images, b.rows, b.channels,
                                     *_band_parts(runs * groups, blocks, cg, threads, self.pair_calls),
                                     self.oc_level, threads, self.one_vector, runs)
        else:
            if self.reads_input and x.dtype == dtype and x.flags.c_contiguous and x.flags.aligned:
                # the tiles find plane (n, c) from an image and a channel stride: x's own are C*H*W and H*W
                src, image_stride, channel_stride = x.reshape(-1), c * ph.image, ph.image
            else:  # the input planes are shared by every block of output channels: lay them out once
                planes = c * n * ph.image  # (the tiles read up to `reach` past the last plane's start)
                src = empty_aligned(max(planes, (c * n - 1) * ph.image + self.reach), dtype)
                src[planes:] = 0
                self.phase_planes(x, src, top, left, *geo.stride, ph.hq, ph.wq, True, threads)
                image_stride, channel_stride = ph.image, n * ph.image
            c_parts = _slices_per_block(runs * groups * -(-(k // groups) // block), threads, self.pair_calls)
            self.octile_kernel(src, image_stride, channel_stride, ph.taps, grad, ph.wq, dw, groups, cg,
                               self.chunk_images, c_parts, self.oc_level, threads, self.one_vector,
                               _scratch_rows(grad.shape[2], grad.shape[3] * block, dtype.itemsize), runs)
        return _add_runs(sums).reshape(k, cg, kh, kw)

    def _run_columns(self, x, grad, threads):
        """dL/dw by the column tiles, chunk by chunk of images (``merged`` channels a pass, see __init__).

        The tiles lay out each chunk's input planes themselves, in cache
        (:func:`_conv_direct.conv2d_grad_weight_tiled`), and sum each run of
        chunks apart (a task each; at most :data:`PARTIAL_SUMS_BYTES` of
        sums); the runs are added here, in order. Chunks and runs depend on
        the shape only, so the sums do not depend on the thread count. None
        if the input holds an inf or a nan.
        """
        k, cg, kh, kw = self.dims
        n, c, ph, geo, dtype = self.images, self.channels, self.phases, self.geometry, self.dtype
        (top, _), (left, _) = geo.padding
        per_image = (c * ph.image + 8 * ph.plane) * dtype.itemsize  # its input planes and a block's grad
        chunks, runs = _chunks_and_runs(n, max(1, COLUMN_CHUNK_BYTES // per_image), k * cg * kh * kw * dtype.itemsize)
        chunk = -(-n // chunks)  # images in the largest chunk
        units = self.groups * -(-(k // self.groups) // 8)
        unit_parts, c_parts = _split_chunks(runs, units, cg // self.merged, threads)
        partials = zeros((runs, k * cg * kh * kw), dtype)
        x_scratch = max(chunk * c * ph.image, (chunk * c - 1) * ph.image + int(self.merged_taps.max()) + ph.plane)
        if not self.tiled_kernel(x, top, left, *geo.stride, ph.hq, ph.wq, self.merged_taps, self.merged, grad,
                                 ph.plane, partials, self.groups, chunks, x_scratch, unit_parts, c_parts, threads):
            return None
        return _add_runs(partials).reshape(k, cg, kh, kw)


@functools.lru_cache(maxsize=256)
def grad_weight_plan(x_shape, dims, geometry, groups, dtype, level, tiles="auto"):
    """The :class:`GradWeightPlan` of a shape, cached."""
    return GradWeightPlan(x_shape, dims, geometry, groups, dtype, level, tiles)


def _grad_weight_gemm(call):
    """dL/dw as per-group GEMMs of grad rows with the unfolded input."""
    k, cg, kh, kw = call.dims
    groups, cl = call.groups, call.channels_last
    kg = k // groups
    grad_w = zeros((groups, kg, kh * kw * cg if cl else cg * kh * kw), call.compute_dtype)
    for n0, n1, cols in unfold_batches(call.x, call.geometry, cl):
        rows = _grad_rows(call.grad[n0:n1], cl)
        for g in range(groups):
            block = _columns_group(cols, g, call.dims, groups, cl).reshape(cols.shape[0], -1)
            with np.errstate(all="ignore"):  # inf and nan inputs propagate silently, as in the tiles
                grad_w[g] += rows[:, g * kg:(g + 1) * kg].T @ block
    if cl:  # (groups, Kg, KH*KW*Cg) -> HWIO (KH, KW, Cg, K)
        return grad_w.reshape(k, kh, kw, cg).transpose(1, 2, 3, 0)
    return grad_w.reshape(k, cg, kh, kw)


def _finish_grad(result, call):
    if call.result_dtype != call.compute_dtype:
        result = result.astype(call.result_dtype)
    return finish(result, call.batched, call.out)


class _GradInputCall(NamedTuple):
    """A planned conv2d_grad_input call (:mod:`fastconv._plans`): NCHW, float, into a new array or ``out``."""

    plan: GradInputPlan
    grad_shape: tuple  # batched
    batched: bool

    def __call__(self, grad_output, weight, out=None):
        if out is not None:
            self.plan.run(grad_output.reshape(self.grad_shape), weight, out.reshape(self.plan.shape))
            return out
        result = self.plan.run(grad_output.reshape(self.grad_shape), weight)
        return result if self.batched else result[0]


class _GradInputNHWCCall(NamedTuple):
    """A planned NHWC conv2d_grad_input call that the NCHW kernels run (:func:`grad_input_through_nchw`)."""

    plan: GradInputPlan  # of the NCHW shapes
    grad_shape: tuple  # batched, NHWC
    image_shape: tuple  # batched, NHWC
    batched: bool

    def __call__(self, grad_output, weight, out=None):
        target = None if out is None else out.reshape(self.image_shape)
        result = grad_input_through_nchw(self.plan, grad_output.reshape(self.grad_shape), weight, target)
        if out is not None:
            return out
        return result if self.batched else result[0]


_GRAD_INPUT_PLANS = PlanCache()


def _grad_input_public_plan(call, arrays):
    """The plan of a validated call whose arrays the kernels read as they are, or None.

    NCHW calls get a :class:`_GradInputCall`; NHWC ones that
    :func:`_grad_input_direct` runs (not depthwise or 1x1 at stride 1) a
    :class:`_GradInputNHWCCall`.
    """
    if (call.compute_dtype.kind != "f"
            or not call.grad.size or not call.weight.size or 0 in call.image_shape
            or any(a is not None and a.dtype != call.compute_dtype for a in arrays)):
        return None
    level = _conv_direct.current_level()
    if not call.channels_last:
        plan = grad_input_plan(call.grad.shape, call.dims, call.geometry, call.groups, call.compute_dtype, level)
        return _GradInputCall(plan, call.grad.shape, call.batched)
    if (is_depthwise(call.groups, call.image_shape[3], call.dims[0])
            or pointwise_nhwc_grad(call, call.image_shape, strided=False)):
        return None
    plan = grad_input_plan(nchw_shape(call.grad.shape), call.dims, call.geometry, call.groups, call.compute_dtype,
                           level)
    return _GradInputNHWCCall(plan, call.grad.shape, call.image_shape, call.batched)


def conv2d_grad_input(grad_output, weight, input_shape, *, stride=1, padding=0, dilation=1, groups=1,
                      layout="NCHW", out=None):
    """Gradient of :func:`fastconv.conv2d` with respect to its input (``torch.nn.grad.conv2d_input``).

    Parameters
    ----------
    grad_output : array_like
        dL/dy, shaped like the convolution's output: ``(N, K, OH, OW)``
        (NCHW) or ``(N, OH, OW, K)`` (NHWC); unbatched without ``N``.
    weight : array_like
        The convolution's weight, OIHW (NCHW) or HWIO (NHWC).
    input_shape : tuple of int
        Shape of the convolution's input ``x`` (4 ints, or 3 when unbatched).
    stride, padding, dilation, groups, layout
        As given to :func:`fastconv.conv2d` (zero padding).
    out : ndarray, optional
        C-contiguous array of shape ``input_shape`` and the result dtype.

    Returns
    -------
    ndarray
        dL/dx of shape ``input_shape``; dtype rules as for :func:`fastconv.conv2d`.

    Raises
    ------
    ValueError
        ``grad_output`` does not match the convolution of ``input_shape`` by
        ``weight``, or a bad geometry, ``groups`` or ``out``.
    TypeError
        Complex or non-numeric dtypes.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> w = np.ones((1, 1, 2, 2), dtype=int)
    >>> fastconv.conv2d_grad_input(np.ones((1, 1, 2, 2), dtype=int), w, (1, 1, 3, 3))[0, 0]
    array([[1, 2, 1],
           [2, 4, 2],
           [1, 2, 1]])
    """
    key = call_key((grad_output, weight),
                   (input_shape, stride, padding, dilation, groups, layout, _conv_direct.current_level()), out)
    plan = _GRAD_INPUT_PLANS.get(key)
    if plan is not None:
        return plan(grad_output, weight, out)
    call = prepare_conv2d_grad_input(grad_output, weight, input_shape, stride, padding, dilation, groups,
                                     layout, out)
    if key is not None and (plan := _grad_input_public_plan(call, (grad_output, weight, out))) is not None:
        _GRAD_INPUT_PLANS.put(key, plan)
        return plan(grad_output, weight, out)
    return _finish_grad(_grad_input(call), call)


class _GradWeightCall(NamedTuple):
    """A planned conv2d_grad_weight call (:mod:`fastconv._plans`): NCHW, float, into a new array or ``out``.

    Calling it gives None when the input holds an inf or nan the column
    tiles cannot take: the full path then runs the GEMM.
    """

    plan: GradWeightPlan
    x_shape: tuple  # batched
    grad_shape: tuple  # batched

    def __call__(self, grad_output, x, out=None):
        result = self.plan.run(x.reshape(self.x_shape), grad_output.reshape(self.grad_shape))
        if out is None or result is None:
            return result
        np.copyto(out, result)  # (the weight's size: small next to the sums)
        return out


class _GradWeightNHWCCall(NamedTuple):
    """A planned NHWC conv2d_grad_weight call that the NCHW kernels run (:func:`grad_weight_through_nchw`).

    Gives None where :class:`_GradWeightCall` does.
    """

    plan: GradWeightPlan  # of the NCHW shapes
    x_shape: tuple  # batched, NHWC
    grad_shape: tuple  # batched, NHWC
    groups: int

    def __call__(self, grad_output, x, out=None):
        result = grad_weight_through_nchw(self.plan, x.reshape(self.x_shape), grad_output.reshape(self.grad_shape),
                                          self.groups)
        if out is None or result is None:
            return result
        np.copyto(out, result)
        return out


_GRAD_WEIGHT_PLANS = PlanCache()


def _grad_weight_public_plan(call, arrays):
    """The plan of a validated call whose arrays the kernels read as they are, or None.

    NCHW calls get a :class:`_GradWeightCall`; NHWC ones that the NCHW
    kernels run (not the depthwise or 1x1 NHWC kernels') a
    :class:`_GradWeightNHWCCall`.
    """
    k, cg, kh, kw = call.dims
    if (call.compute_dtype.kind != "f"
            or not call.grad.size or not call.x.size or 0 in call.result_shape or not tiles_fit(cg, kh * kw, k)
            or any(a is not None and a.dtype != call.compute_dtype for a in arrays)):
        return None
    level = _conv_direct.current_level()
    if not call.channels_last:
        plan = grad_weight_plan(call.x.shape, call.dims, call.geometry, call.groups, call.compute_dtype, level)
        return _GradWeightCall(plan, call.x.shape, call.grad.shape)
    if depthwise_nhwc_grad_weight(call) or pointwise_nhwc_grad(call, call.x.shape):
        return None
    plan = grad_weight_plan(nchw_shape(call.x.shape), call.dims, call.geometry, call.groups, call.compute_dtype,
                            level)
    return _GradWeightNHWCCall(plan, call.x.shape, call.grad.shape, call.groups)


def conv2d_grad_weight(grad_output, x, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                       layout="NCHW", out=None):
    """Gradient of :func:`fastconv.conv2d` with respect to its weight (``torch.nn.grad.conv2d_weight``).

    Parameters
    ----------
    grad_output : array_like
        dL/dy, shaped like the convolution's output.
    x : array_like
        The convolution's input.
    weight_shape : tuple of int
        Shape of the weight: OIHW ``(K, C/groups, KH, KW)`` or HWIO
        ``(KH, KW, C/groups, K)``.
    stride, padding, dilation, groups, layout
        As given to :func:`fastconv.conv2d` (zero padding).
    out : ndarray, optional
        C-contiguous array of shape ``weight_shape`` and the result dtype.

    Returns
    -------
    ndarray
        dL/dw of shape ``weight_shape``. The bias gradient is
        ``grad_output.sum(axis=(0, 2, 3))`` (NCHW) or ``sum(axis=(0, 1, 2))`` (NHWC).

    Raises
    ------
    ValueError
        Mismatched shapes, bad geometry, ``groups`` or ``out``.
    TypeError
        Complex or non-numeric dtypes.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(9).reshape(1, 1, 3, 3)
    >>> fastconv.conv2d_grad_weight(np.ones((1, 1, 2, 2), dtype=int), x, (1, 1, 2, 2))[0, 0]
    array([[ 8, 12],
           [20, 24]])
    """
    key = call_key((grad_output, x),
                   (weight_shape, stride, padding, dilation, groups, layout, _conv_direct.current_level()), out)
    plan = _GRAD_WEIGHT_PLANS.get(key)
    if plan is not None and (result := plan(grad_output, x, out)) is not None:
        return result
    call = prepare_conv2d_grad_weight(grad_output, x, weight_shape, stride, padding, dilation, groups,
                                      layout, out)
    if key is not None and plan is None and (plan := _grad_weight_public_plan(call, (grad_output, x, out))) is not None:
        _GRAD_WEIGHT_PLANS.put(key, plan)
        if (result := plan(grad_output, x, out)) is not None:
            return result
    result = _grad_weight(call)
    if call.result_dtype != call.compute_dtype:
        result = result.astype(call.result_dtype)
    if call.out is None:
        return np.ascontiguousarray(result)
    np.copyto(call.out, result)
    return call.out


class _ConvTransposeCall(NamedTuple):
    """A planned conv_transpose2d call (:mod:`fastconv._plans`): the input gradient of a convolution, plus bias."""

    adjoint: _GradInputCall | _GradInputNHWCCall

    def __call__(self, x, weight, bias, out=None):
        result = self.adjoint(x, weight, out)
        if bias is not None:
            result += bias if isinstance(self.adjoint, _GradInputNHWCCall) else bias[:, None, None]
        return result


_CONV_TRANSPOSE_PLANS = PlanCache()


def conv_transpose2d(x, weight, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                     layout="NCHW", out=None):
    """Transposed 2-D convolution, as ``torch.nn.functional.conv_transpose2d``.

    The adjoint of :func:`fastconv.conv2d`: each input pixel scatters a
    weighted copy of the kernel into the output.

    Parameters
    ----------
    x : array_like
        ``(N, C_in, H, W)`` (NCHW) or ``(N, H, W, C_in)`` (NHWC); unbatched without ``N``.
    weight : array_like
        NCHW: PyTorch's ``(C_in, C_out/groups, KH, KW)``. NHWC: Keras's
        ``Conv2DTranspose`` kernel ``(KH, KW, C_out/groups, C_in)``.
    bias : array_like, optional
        ``(C_out,)``.
    stride, dilation : int or (int, int), optional
        Default 1.
    padding : int, pair or pair of pairs, optional
        Rows/columns removed from each side of the full output (PyTorch).
        Strings are refused.
    output_padding : int or (int, int), optional
        Extra rows/columns at the bottom/right, each smaller than ``stride``
        or ``dilation``; resolves the size ambiguity of strided convolutions.
    groups : int, optional
        Default 1.
    layout : {'NCHW', 'NHWC'}, optional
        Default ``'NCHW'``.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype.

    Returns
    -------
    ndarray
        ``H_out = (H - 1) * stride - pad_top - pad_bottom + dilation * (KH - 1) + output_padding + 1``
        (likewise ``W_out``); dtype rules as for :func:`fastconv.conv2d`.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.conv_transpose2d(np.ones((1, 1, 2, 2), int), np.ones((1, 1, 2, 2), int), stride=2)[0, 0]
    array([[1, 1, 1, 1],
           [1, 1, 1, 1],
           [1, 1, 1, 1],
           [1, 1, 1, 1]])
    """
    key = call_key((x, weight, bias), (stride, padding, output_padding, dilation, groups, layout,
                                       _conv_direct.current_level()), out)
    plan = _CONV_TRANSPOSE_PLANS.get(key)
    if plan is not None:
        return plan(x, weight, bias, out)
    call = prepare_conv_transpose2d(x, weight, bias, stride, padding, output_padding, dilation, groups,
                                    layout, out)
    if key is not None and (adjoint := _grad_input_public_plan(call, (x, weight, bias, out))) is not None:
        plan = _ConvTransposeCall(adjoint)
        _CONV_TRANSPOSE_PLANS.put(key, plan)
        return plan(x, weight, bias, out)
    result = _grad_input(call)
    if call.bias is not None:
        result += call.bias if call.channels_last else call.bias[:, None, None]
    return _finish_grad(result, call)
