"""Pure-NumPy reference pooling: the oracle of the pooling tests.

Same signatures, argument handling (:mod:`fastconv._prepare_pool`) and
results as :mod:`fastconv._pool`; the arithmetic is written the textbook way,
one kernel tap at a time over every window at once. A tap that falls in the
padding is masked out, which is what "pad with -inf" (max) and "pad with
zeros" (average) mean. Nothing in the fast path imports this module.
"""

from __future__ import annotations

import numpy as np

from ._arrays import finish
from ._prepare_pool import (
    bad_indices_error,
    prepare_avg_pool2d,
    prepare_avg_pool2d_backward,
    prepare_max_pool2d,
    prepare_max_pool2d_backward,
)

__all__ = ["max_pool2d", "avg_pool2d", "max_pool2d_backward", "avg_pool2d_backward"]


def _nchw(a, channels_last):
    """A batched array as ``(N, C, H, W)`` (a view)."""
    return a.transpose(0, 3, 1, 2) if channels_last else a


def _user_layout(a, channels_last):
    """A ``(N, C, H, W)`` result back in the user's layout, C-contiguous."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1) if channels_last else a)


def _tap(geometry, kh, kw):
    """Input rows ``(OH,)`` and columns ``(OW,)`` under tap ``(kh, kw)`` of every window.

    Coordinates are in the unpadded input: negative or past the end means padding.
    """
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    (top, _), (left, _) = geometry.padding
    oh, ow = geometry.out_shape
    return np.arange(oh) * sh - top + kh * dh, np.arange(ow) * sw - left + kw * dw


def _inside(coords, size):
    return (coords >= 0) & (coords < size)


def _taps(geometry):
    """Every tap: ``(rows, cols, real)`` with ``real`` the ``(OH, OW)`` mask of taps inside the input."""
    h, w = geometry.in_shape
    for kh in range(geometry.kernel[0]):
        for kw in range(geometry.kernel[1]):
            rows, cols = _tap(geometry, kh, kw)
            yield rows, cols, _inside(rows, h)[:, None] & _inside(cols, w)[None, :]


def _gather(x, rows, cols):
    """``x[:, :, rows, cols]`` for every window, padding taps clipped to the edge (then masked)."""
    h, w = x.shape[2:]
    return x[:, :, np.clip(rows, 0, h - 1)[:, None], np.clip(cols, 0, w - 1)[None, :]]


def _lowest(dtype):
    """The value padding stands for in a max pool: -inf, or the smallest value of the dtype."""
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _first_real(geometry, axis):
    """Per window, the coordinate of its first tap not in the before-padding (PyTorch's start index)."""
    start = np.arange(geometry.out_shape[axis]) * geometry.stride[axis] - geometry.padding[axis][0]
    d = geometry.dilation[axis]
    skipped = -(-np.maximum(-start, 0) // d)  # ceil(pixels of padding / dilation)
    return start + skipped * d


def max_pool2d(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, layout="NCHW", out=None):
    """Reference :func:`fastconv.max_pool2d`: a running maximum, one tap at a time.

    A tap replaces the running maximum when it is in the image and either
    larger or NaN (PyTorch's rule: the last NaN wins, ties keep the first).
    A window with no tap in the image keeps -inf (or the minimum) and index -1.
    """
    call = prepare_max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                              layout, out)
    geo = call.geometry
    image = _nchw(call.x, call.channels_last)
    n, c, (h, w) = image.shape[0], image.shape[1], geo.in_shape
    best = np.full((n, c) + geo.out_shape, _lowest(image.dtype), image.dtype)
    # each window starts at its first real tap, or at -1 when it has none
    any_real = np.any([real for _, _, real in _taps(geo)], axis=0)
    start = _first_real(geo, 0)[:, None] * w + _first_real(geo, 1)[None, :]
    best_index = np.broadcast_to(np.where(any_real, start, -1), best.shape).astype(np.int64)
    for rows, cols, real in _taps(geo):
        values = _gather(image, rows, cols)
        take = real & ((values > best) | (values != values))
        best = np.where(take, values, best)
        best_index = np.where(take, rows[:, None] * w + cols[None, :], best_index)
    values = _user_layout(best, call.channels_last).astype(call.result_dtype)
    indices = _user_layout(best_index, call.channels_last)
    if not call.return_indices:
        return finish(values, call.batched, call.out)
    return finish(values, call.batched, call.out), finish(indices, call.batched, call.out_indices)


def _divisor(call):
    """The ``(OH, OW)`` divisor of every window, by PyTorch's rules."""
    geo = call.geometry
    if call.divisor_override is not None:
        return np.full(geo.out_shape, call.divisor_override)
    (h, w), ((top, bottom), (left, right)) = geo.in_shape, geo.padding
    count = np.zeros(geo.out_shape, np.int64)
    for rows, cols, real in _taps(geo):
        if call.count_include_pad:  # taps inside the padded input
            count += ((rows >= -top) & (rows < h + bottom))[:, None] & ((cols >= -left) & (cols < w + right))[None, :]
        else:  # taps inside the input
            count += real
    return count


def avg_pool2d(x, kernel_size, *, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, layout="NCHW", out=None):
    """Reference :func:`fastconv.avg_pool2d`: sum the real taps, then divide once."""
    call = prepare_avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override, layout, out)
    image = _nchw(call.x, call.channels_last)
    total = np.zeros(image.shape[:2] + call.geometry.out_shape, call.compute_dtype)
    for rows, cols, real in _taps(call.geometry):
        total += np.where(real, _gather(image, rows, cols), 0)
    result = total / _divisor(call).astype(call.compute_dtype)
    result = _user_layout(result, call.channels_last).astype(call.result_dtype)
    return finish(result, call.batched, call.out)


def max_pool2d_backward(grad_output, indices, input_shape, *, layout="NCHW", out=None):
    """Reference :func:`fastconv.max_pool2d_backward`: ``np.add.at`` into each flattened plane."""
    call = prepare_max_pool2d_backward(grad_output, indices, input_shape, layout, out)
    grad = _nchw(call.x, call.channels_last)
    index = _nchw(call.indices, call.channels_last)
    n, c = grad.shape[:2]
    h, w = (call.in_shape[1:3] if call.channels_last else call.in_shape[2:])
    grad_in = np.zeros((n, c, h * w), call.compute_dtype)
    valid = (index >= 0) & (index < h * w)
    bad = np.count_nonzero(~valid & (index != -1))  # -1: a window without input pixels
    if bad:
        raise bad_indices_error(bad, call)
    plane = np.arange(n * c).reshape(n, c, 1, 1) * (h * w)
    np.add.at(grad_in.reshape(-1), (plane + index)[valid], grad[valid])
    result = _user_layout(grad_in.reshape(n, c, h, w), call.channels_last).astype(call.result_dtype)
    return finish(result, call.batched, call.out)


def avg_pool2d_backward(grad_output, input_shape, kernel_size, *, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None,
                        layout="NCHW", out=None):
    """Reference :func:`fastconv.avg_pool2d_backward`: each tap adds its share to the pixels under it."""
    call = prepare_avg_pool2d_backward(grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                                       count_include_pad, divisor_override, layout, out)
    geo = call.geometry
    share = _nchw(call.x, call.channels_last) / _divisor(call).astype(call.compute_dtype)
    h, w = geo.in_shape
    grad_in = np.zeros(share.shape[:2] + (h, w), call.compute_dtype)
    for rows, cols, _ in _taps(geo):
        in_rows, in_cols = _inside(rows, h), _inside(cols, w)
        # one tap never lands twice on a pixel, so a plain += is exact
        grad_in[:, :, rows[in_rows][:, None], cols[in_cols][None, :]] += share[:, :, in_rows][:, :, :, in_cols]
    result = _user_layout(grad_in, call.channels_last).astype(call.result_dtype)
    return finish(result, call.batched, call.out)
