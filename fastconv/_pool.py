"""Public 2-D max and average pooling and their gradients: validate, allocate, call the kernel."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from ._arrays import empty
from ._kernels import _pool
from ._prepare_pool import (
    bad_indices_error,
    prepare_avg_pool2d,
    prepare_avg_pool2d_backward,
    prepare_max_pool2d,
    prepare_max_pool2d_backward,
)
from ._plans import PlanCache, call_key, read_only, specialized
from ._threads import threads_for

__all__ = ["max_pool2d", "avg_pool2d", "max_pool2d_backward", "avg_pool2d_backward"]


def _axis_taps(size, kernel, stride, dilation, before, count):
    """Where the windows of one spatial axis land in the unpadded input.

    Returns ``first`` (coordinate of the first tap that is not in the
    before-padding) and ``taps`` (how many taps from there on lie inside the
    input) for each of the ``count`` output positions, as ``intp`` arrays
    (``taps`` is 0 for a dilated window whose taps all miss the input).
    """
    start = np.arange(count, dtype=np.intp) * stride - before  # coordinate of tap 0
    skip = np.maximum(0, -(start // dilation))  # taps in the before-padding
    end = np.minimum(kernel, (size - 1 - start) // dilation + 1)  # taps before the input's end
    return start + skip * dilation, np.maximum(0, end - skip).astype(np.intp)


def _windows(geometry):
    """The kernels' window table: rows ``h0, hn, w0, wn`` (first real tap, number of real taps).

    A ``(4, L)`` ``intp`` array, ``L = max(OH, OW, 1)``; each row holds its
    axis' values first (``OH`` or ``OW`` of them), then zeros.
    """
    geo = geometry
    table = np.zeros((4, max(*geo.out_shape, 1)), np.intp)
    axes = zip(geo.in_shape, geo.kernel, geo.stride, geo.dilation, geo.padding, geo.out_shape)
    for axis, (n, k, s, d, (before, _), o) in enumerate(axes):
        table[2 * axis, :o], table[2 * axis + 1, :o] = _axis_taps(n, k, s, d, before, o)
    return table


def _divisors(call):
    """Average pooling's divisor table: ``(2, L)`` int64 separable factors ``dh[oh]``, ``dw[ow]``.

    The window of output ``(oh, ow)`` is divided by ``dh[oh] * dw[ow]``.
    PyTorch divides by the window clipped to the padded input when
    ``count_include_pad`` (a ``ceil_mode`` window hanging over the bottom or
    right padding counts only the part inside it), else by the number of real
    pixels, unless ``divisor_override`` is given. ``L`` is as in :func:`_windows`.
    """
    geo = call.geometry
    (oh, ow) = geo.out_shape
    table = np.ones((2, max(oh, ow, 1)), np.int64)
    if call.divisor_override is not None:
        table[0, :oh] = call.divisor_override
        return table
    axes = zip(geo.in_shape, geo.kernel, geo.stride, geo.padding, geo.out_shape)
    for axis, (n, k, s, (before, after), o) in enumerate(axes):
        start = np.arange(o, dtype=np.int64) * s - before
        if call.count_include_pad:
            table[axis, :o] = np.minimum(start + k, n + after) - start
        else:
            table[axis, :o] = np.minimum(start + k, n) - np.maximum(start, 0)
    return table


def _planes(a, channels_last):
    """The kernels' view of a batched array: NCHW as ``(N*C, H, W)`` planes, NHWC as is."""
    return a if channels_last else a.reshape(-1, a.shape[2], a.shape[3])


def _image_threads(plan):
    """Threads for an NHWC gradient kernel (an image a task): :func:`threads_for`, at most one an image."""
    return min(threads_for(plan.work), plan.batch)


def _result_buffer(user_out, shape, dtype):
    """``user_out`` viewed with the batch axis when the kernel can write it directly, else a new array.

    The kernels write only aligned arrays: a misaligned ``out`` gets a copy of the result.
    """
    if user_out is not None and user_out.flags.aligned and (
            user_out.dtype == dtype or (user_out.dtype == np.bool_ and dtype == np.uint8)):
        return user_out.view(dtype).reshape(shape), True
    return empty(shape, dtype), False


def _deliver(result, call, user_out, direct):
    """Give back ``result`` in the result dtype, without an added batch axis, in ``user_out`` if any."""
    if direct:
        return user_out
    if user_out is not None:
        np.copyto(user_out, result.reshape(user_out.shape), casting="unsafe")
        return user_out
    if call.result_dtype.kind == "b":
        result = result.view(np.bool_)
    elif result.dtype != call.result_dtype:
        result = result.astype(call.result_dtype)
    return result if call.batched else result[0]


class MaxPoolPlan:
    """The shape-only work of a max pooling call: where the windows land."""

    def __init__(self, call):
        geo = call.geometry
        self.kernel_dtype = np.dtype(np.uint8) if call.compute_dtype.kind == "b" else call.compute_dtype
        (self.windows,) = read_only(_windows(geo))
        self.channels_last, self.return_indices = call.channels_last, call.return_indices
        self.out_shape, self.stride_w, self.dilation = call.out_shape, geo.stride[1], geo.dilation
        self.work = int(np.prod(call.out_shape)) * geo.kernel_size

    def run(self, x, values, indices):
        """Pool the batched ``x`` (kernel dtype) into ``values`` and ``indices`` (None: not wanted)."""
        _pool.max_pool2d(x, values, indices, self.windows, self.stride_w, *self.dilation, self.channels_last,
                         threads_for(self.work))


class AvgPoolPlan:
    """The shape-only work of an average pooling call: where the windows land, their divisors."""

    def __init__(self, call):
        self.channels_last, self.out_shape = call.channels_last, call.out_shape
        self.windows, self.divisors = read_only(_windows(call.geometry), _divisors(call))
        self.stride_w = call.geometry.stride[1]
        self.work = int(np.prod(call.out_shape)) * call.geometry.kernel_size

    def run(self, x, result):
        """Pool the batched ``x`` (compute dtype) into ``result``."""
        _pool.avg_pool2d(x, result, self.windows, self.divisors, self.stride_w, self.channels_last,
                         threads_for(self.work))


def _plannable(call, x):
    """Whether a validated pooling call can keep a plan: the kernels take ``x`` and the result as they are.

    The result is new, or the user's ``out`` of the values alone (no indices).
    """
    return (call.out_indices is None and (call.out is None or not call.return_indices)
            and x.dtype == call.compute_dtype == call.result_dtype and 0 not in call.out_shape)


class _MaxPoolCall(NamedTuple):
    """A planned max_pool2d call (:mod:`fastconv._plans`)."""

    plan: MaxPoolPlan
    batched: bool

    def __call__(self, x, out=None):
        plan = self.plan
        values = empty(plan.out_shape, plan.kernel_dtype) if out is None else out.reshape(plan.out_shape)
        indices = empty(plan.out_shape, np.int64) if plan.return_indices else None
        plan.run(x if self.batched else x[np.newaxis], values, indices)
        if out is not None:  # (planned only without indices)
            return out
        if not plan.return_indices:
            return values if self.batched else values[0]
        return (values, indices) if self.batched else (values[0], indices[0])


class _AvgPoolCall(NamedTuple):
    """A planned avg_pool2d call (:mod:`fastconv._plans`)."""

    plan: AvgPoolPlan
    batched: bool

    def __call__(self, x, out=None):
        plan = self.plan
        result = empty(plan.out_shape, x.dtype) if out is None else out.reshape(plan.out_shape)
        _pool.avg_pool2d(x if self.batched else x[np.newaxis], result, plan.windows, plan.divisors,
                         plan.stride_w, plan.channels_last, threads_for(plan.work))
        if out is not None:
            return out
        return result if self.batched else result[0]


class AvgPoolBackwardPlan:
    """The shape-only work of an average pooling gradient: the forward pool's windows and divisors."""

    def __init__(self, call):
        self.channels_last, self.in_shape = call.channels_last, call.in_shape
        self.batch = call.batch  # (for _image_threads)
        self.windows, self.divisors = read_only(_windows(call.geometry), _divisors(call))
        self.stride_w = call.geometry.stride[1]
        self.kernel_w, self.pad_w = call.geometry.kernel[1], call.geometry.padding[1][0]
        self.work = int(np.prod(call.out_shape)) * call.geometry.kernel_size
        kernel = _pool.avg_pool2d_backward_nhwc if self.channels_last else _pool.avg_pool2d_backward_nchw
        self.kernel = specialized(kernel, call.compute_dtype)

    def run(self, grad, grad_in):
        """Write the gradient of the batched ``grad`` (compute dtype) into the batched ``grad_in``.

        The kernels zero it, each task its part just before its adds.
        """
        if self.channels_last:
            self.kernel(grad, grad_in, self.windows, self.divisors, True, _image_threads(self))
        else:
            self.kernel(_planes(grad, False), _planes(grad_in, False), self.windows, self.divisors, self.stride_w,
                        self.kernel_w, self.pad_w, True, threads_for(self.work))


class _PoolBackwardCall(NamedTuple):
    """A planned avg_pool2d_backward or max_pool2d_backward call (:mod:`fastconv._plans`).

    ``plan`` is an :class:`AvgPoolBackwardPlan` or a :class:`MaxPoolBackwardPlan`;
    the call takes ``out`` (or None), then the arrays its ``run`` takes before the
    gradient it writes (``grad_output``, and for max pooling ``indices``).
    """

    plan: object
    batched: bool

    def __call__(self, out, *arrays):
        plan = self.plan
        grad_in = empty(plan.in_shape, arrays[0].dtype) if out is None else out.reshape(plan.in_shape)
        if self.batched:
            plan.run(*arrays, grad_in)
        else:
            plan.run(*[a[np.newaxis] for a in arrays], grad_in)
        if out is not None:
            return out
        return grad_in if self.batched else grad_in[0]


class MaxPoolBackwardPlan:
    """The shape-only work of a max pooling gradient: its kernel and how the arrays are split.

    Holds the validated call without its arrays, for the error of indices
    out of range (which the kernel counts: they are values, not shapes).
    """

    def __init__(self, call):
        self.shapes = dataclasses.replace(call, x=None, indices=None, out=None)
        self.channels_last, self.in_shape = call.channels_last, call.in_shape
        self.batch = call.batch  # (for _image_threads)
        # every gradient item's index read and add, and every input pixel zeroed
        self.work = call.x.size + math.prod(call.in_shape)
        if self.channels_last:
            self.kernel = specialized(_pool.max_pool2d_backward_nhwc, call.compute_dtype)
        else:
            self.kernel = specialized(_pool.max_pool2d_backward_nchw, call.compute_dtype)
            self.planes = (-1,) + call.x.shape[2:], (-1,) + call.in_shape[2:]

    def run(self, grad, indices, grad_in):
        """Scatter the batched ``grad`` (compute dtype) by ``indices`` into the batched ``grad_in``.

        The kernels zero it, each task its part just before its adds.
        """
        if self.channels_last:
            bad = self.kernel(grad, indices, grad_in, True, _image_threads(self))
        else:
            grad_planes, in_planes = self.planes
            bad = self.kernel(grad.reshape(grad_planes), indices.reshape(grad_planes), grad_in.reshape(in_planes),
                              True, threads_for(self.work))
        if bad:
            raise bad_indices_error(bad, self.shapes)


_MAX_POOL_PLANS = PlanCache()
_AVG_POOL_PLANS = PlanCache()
_MAX_POOL_BACKWARD_PLANS = PlanCache()
_AVG_POOL_BACKWARD_PLANS = PlanCache()


def max_pool2d(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, layout="NCHW", out=None):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    x : array_like
        ``(N, C, H, W)`` for ``layout="NCHW"``, ``(N, H, W, C)`` for ``"NHWC"``;
        an unbatched ``(C, H, W)`` / ``(H, W, C)`` gives an unbatched result.
        Any real dtype: bool, integers, floats (not complex).
    kernel_size : int or (int, int)
        Window size ``(KH, KW)``.
    stride : int or (int, int), optional
        Step between windows. Default None: ``kernel_size``.
    padding : int, pair, pair of pairs, 'valid' or 'same', optional
        Implicit padding, at most half the kernel on every side (PyTorch's
        rule). Padding pixels are never selected (they act as -inf).
        Default 0.
    dilation : int or (int, int), optional
        Spacing between the taps of a window. Default 1.
    ceil_mode : bool, optional
        Round the output size up instead of down; a window may then hang
        over the bottom/right edge, but none starts in the padding.
    return_indices : bool, optional
        Also return where each maximum came from.
    layout : {'NCHW', 'NHWC'}, optional
        Default ``'NCHW'``.
    out : ndarray or (ndarray, ndarray), optional
        C-contiguous array of the result's shape and dtype; with
        ``return_indices=True``, a pair ``(values, indices)`` (either may be None).

    Returns
    -------
    values : ndarray
        ``(N, C, OH, OW)`` / ``(N, OH, OW, C)``, the dtype of ``x``.
    indices : ndarray of int64
        Only with ``return_indices=True``. Same shape as ``values``; each
        entry indexes the flattened ``H*W`` plane of the (unpadded) input
        channel, as in PyTorch.

    Raises
    ------
    ValueError
        Bad shapes or geometry, padding larger than half the kernel, an
        empty image, a bad ``out``.
    TypeError
        A complex or non-numeric dtype, non-integer geometry, non-bool flags.

    See Also
    --------
    max_pool2d_backward : the gradient, from ``indices``.

    Notes
    -----
    As in PyTorch, a NaN in a window is the window's maximum (its index is
    the last NaN in scan order), and among equal maxima the first in
    row-major ``(kh, kw)`` order wins. float16 is compared in float32, which
    is exact. A window that covers no input pixel (possible only with
    dilation and padding) gives -inf, or the dtype's minimum, and index -1;
    PyTorch returns an arbitrary index there, which its backward then
    follows out of bounds.
    Awkward inputs (strided, byte-swapped...) are copied to a contiguous
    native array first; the input is never modified.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[[1, 2, 5, 0],
    ...                 [3, 4, 1, 1],
    ...                 [0, 7, 2, 8],
    ...                 [6, 1, 3, 2]]]])
    >>> fastconv.max_pool2d(x, 2)
    array([[[[4, 5],
             [7, 8]]]])
    >>> values, indices = fastconv.max_pool2d(x, 2, return_indices=True)
    >>> indices
    array([[[[ 5,  2],
             [ 9, 11]]]])
    >>> fastconv.max_pool2d(x, 3, stride=2)[0, 0]  # one window fits
    array([[7]])
    >>> fastconv.max_pool2d(x, 3, stride=2, ceil_mode=True)[0, 0]  # and three clipped ones
    array([[7, 8],
           [7, 8]])
    """
    key = call_key((x,), (kernel_size, stride, padding, dilation, ceil_mode, return_indices, layout), out)
    plan = _MAX_POOL_PLANS.get(key)
    if plan is not None:
        return plan(x, out)
    call = prepare_max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                              layout, out)
    if key is not None and _plannable(call, x):
        plan = _MaxPoolCall(MaxPoolPlan(call), call.batched)
        _MAX_POOL_PLANS.put(key, plan)
        return plan(x, out)
    plan = MaxPoolPlan(call)
    values, direct = _result_buffer(call.out, call.out_shape, plan.kernel_dtype)
    indices = None
    if call.return_indices:
        if call.out_indices is not None and call.out_indices.flags.aligned:
            indices = call.out_indices.reshape(call.out_shape)
        else:  # (a misaligned out gets a copy, as for the values)
            indices = empty(call.out_shape, np.int64)
    if values.size:
        plan.run(call.x.view(plan.kernel_dtype), values, indices)
    values = _deliver(values, call, call.out, direct)
    if not call.return_indices:
        return values
    if call.out_indices is not None:
        if not call.out_indices.flags.aligned:
            np.copyto(call.out_indices, indices.reshape(call.out_indices.shape))
        return values, call.out_indices
    return values, indices if call.batched else indices[0]


def avg_pool2d(x, kernel_size, *, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, layout="NCHW", out=None):
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    x : array_like
        ``(N, C, H, W)`` / ``(N, H, W, C)`` or unbatched ``(C, H, W)`` /
        ``(H, W, C)``. Any real dtype (not complex).
    kernel_size : int or (int, int)
        Window size.
    stride : int or (int, int), optional
        Default None: ``kernel_size``.
    padding : int, pair, pair of pairs, 'valid' or 'same', optional
        Zero padding, at most half the kernel on every side. Default 0.
    ceil_mode : bool, optional
        Round the output size up (see :func:`max_pool2d`).
    count_include_pad : bool, optional
        True (default): divide by the window's size clipped to the padded
        input, so padding zeros count. False: divide by the number of input
        pixels in the window.
    divisor_override : int, optional
        Divide every sum by this non-zero integer instead.
    layout : {'NCHW', 'NHWC'}, optional
        Default ``'NCHW'``.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype.

    Returns
    -------
    ndarray
        ``(N, C, OH, OW)`` / ``(N, OH, OW, C)``. float32, float64 and long
        double compute natively; float16 computes in float32 and returns
        float16; bool and integer input gives float64.

    Raises
    ------
    ValueError
        Bad shapes or geometry, padding larger than half the kernel, a zero
        ``divisor_override``, a bad ``out``.
    TypeError
        A complex or non-numeric dtype, non-integer geometry, non-bool flags.

    Notes
    -----
    Each window sums its pixels in row-major order and divides once, as
    PyTorch does, so float results match PyTorch's to the last bit or two.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> fastconv.avg_pool2d(x, 2)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    >>> fastconv.avg_pool2d(np.ones((1, 3, 3)), 2, padding=1)[0]
    array([[0.25, 0.5 ],
           [0.5 , 1.  ]])
    >>> fastconv.avg_pool2d(np.ones((1, 3, 3)), 2, padding=1, count_include_pad=False)[0]
    array([[1., 1.],
           [1., 1.]])
    """
    key = call_key((x,), (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, layout),
                   out)
    plan = _AVG_POOL_PLANS.get(key)
    if plan is not None:
        return plan(x, out)
    call = prepare_avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override, layout, out)
    if key is not None and _plannable(call, x):
        plan = _AvgPoolCall(AvgPoolPlan(call), call.batched)
        _AVG_POOL_PLANS.put(key, plan)
        return plan(x, out)
    result, direct = _result_buffer(call.out, call.out_shape, call.compute_dtype)
    if result.size:
        AvgPoolPlan(call).run(call.x, result)
    return _deliver(result, call, call.out, direct)


def _grad_input_buffer(call, kernel_zeroes):
    """The batched gradient buffer in the compute dtype (the user's ``out`` when possible).

    Zeroed here unless ``kernel_zeroes`` (the kernels zero each plane, or
    each task's channels of an image, just before their adds into it).
    """
    grad_in, direct = _result_buffer(call.out, call.in_shape, call.compute_dtype)
    if not kernel_zeroes:
        grad_in[...] = 0
    return grad_in, direct


def max_pool2d_backward(grad_output, indices, input_shape, *, layout="NCHW", out=None):
    """Gradient of :func:`max_pool2d` with respect to its input.

    Each ``grad_output`` entry is added to the input pixel its window's
    maximum came from; pixels that were the maximum of several overlapping
    windows receive the sum.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the pooled values: shape of ``max_pool2d``'s output.
        Any real dtype.
    indices : array_like of int
        The ``indices`` returned by ``max_pool2d(..., return_indices=True)``,
        same shape as ``grad_output``: positions in the flattened ``H*W``
        plane, or -1 (a window that covered no input pixel), which adds nothing.
    input_shape : tuple of int
        Shape of the pool's input ``x`` (batched or not, like ``grad_output``).
    layout : {'NCHW', 'NHWC'}, optional
        Default ``'NCHW'``.
    out : ndarray, optional
        C-contiguous array of shape ``input_shape`` and the result dtype.

    Returns
    -------
    ndarray
        Shape ``input_shape``. Floats keep their dtype (float16 is summed in
        float32 and rounded once); bool and integer gradients give float64.

    Raises
    ------
    ValueError
        ``indices`` or ``grad_output`` not matching each other or
        ``input_shape``, an index outside ``[-1, H*W)`` (nothing out of
        range is ever written; ``out`` may then hold a partial result), a bad ``out``.
    TypeError
        Non-integer ``indices``, a complex or non-numeric ``grad_output``.

    Notes
    -----
    Work is split by image and channel, and each pixel sums its
    contributions in output order, so the result is bitwise identical for
    every thread count.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[[1., 2.], [4., 3.]]]])
    >>> values, indices = fastconv.max_pool2d(x, 2, stride=1, padding=1, return_indices=True)
    >>> fastconv.max_pool2d_backward(np.ones_like(values), indices, x.shape)
    array([[[[1., 2.],
             [4., 2.]]]])
    """
    key = call_key((grad_output,), (input_shape, layout), out, indices)
    plan = _MAX_POOL_BACKWARD_PLANS.get(key)
    if plan is not None:
        return plan(out, grad_output, indices)
    call = prepare_max_pool2d_backward(grad_output, indices, input_shape, layout, out)
    runs = call.x.size > 0 and math.prod(call.in_shape) > 0
    if not runs:
        grad_in, direct = _grad_input_buffer(call, False)
        return _deliver(grad_in, call, call.out, direct)
    plan = MaxPoolBackwardPlan(call)
    if key is not None and grad_output.dtype == call.compute_dtype == call.result_dtype:
        planned = _PoolBackwardCall(plan, call.batched)
        _MAX_POOL_BACKWARD_PLANS.put(key, planned)
        return planned(out, grad_output, indices)
    grad_in, direct = _grad_input_buffer(call, True)  # (plan.run zeroes it)
    plan.run(call.x, call.indices, grad_in)
    return _deliver(grad_in, call, call.out, direct)


def avg_pool2d_backward(grad_output, input_shape, kernel_size, *, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None,
                        layout="NCHW", out=None):
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Each ``grad_output`` entry, divided by its window's divisor, is added to
    every input pixel of the window (padding receives nothing).

    Parameters
    ----------
    grad_output : array_like
        Gradient of the pooled values: exactly the shape of ``avg_pool2d``'s
        output for ``input_shape`` and this geometry. Any real dtype.
    input_shape : tuple of int
        Shape of the pool's input ``x`` (batched or not, like ``grad_output``).
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, layout
        As given to :func:`avg_pool2d`.
    out : ndarray, optional
        C-contiguous array of shape ``input_shape`` and the result dtype.

    Returns
    -------
    ndarray
        Shape ``input_shape``, dtype as for :func:`avg_pool2d`.

    Raises
    ------
    ValueError
        ``grad_output`` not of the pooled shape, bad geometry, a bad ``out``.
    TypeError
        A complex or non-numeric dtype, non-integer geometry, non-bool flags.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.avg_pool2d_backward(np.ones((1, 1, 2, 2)), (1, 1, 3, 3), 2, stride=1)
    array([[[[0.25, 0.5 , 0.25],
             [0.5 , 1.  , 0.5 ],
             [0.25, 0.5 , 0.25]]]])
    """
    key = call_key((grad_output,), (input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                    divisor_override, layout), out)
    plan = _AVG_POOL_BACKWARD_PLANS.get(key)
    if plan is not None:
        return plan(out, grad_output)
    call = prepare_avg_pool2d_backward(grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                                       count_include_pad, divisor_override, layout, out)
    plan = AvgPoolBackwardPlan(call)
    if key is not None and grad_output.dtype == call.compute_dtype == call.result_dtype and call.x.size:
        planned = _PoolBackwardCall(plan, call.batched)
        _AVG_POOL_BACKWARD_PLANS.put(key, planned)
        return planned(out, grad_output)
    grad_in, direct = _grad_input_buffer(call, call.x.size > 0)  # (plan.run zeroes it)
    if call.x.size:
        plan.run(call.x, grad_in)
    return _deliver(grad_in, call, call.out, direct)
