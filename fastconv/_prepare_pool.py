"""Argument handling for the pooling functions, shared by the fast path and the reference.

Each ``prepare_*`` function validates one pooling call through the helpers of
:mod:`fastconv._geometry` and :mod:`fastconv._arrays` and returns a
:class:`PoolCall`: batched, C-contiguous, native-byte-order arrays in the
dtype the arithmetic runs in, the resolved geometry and the validated
``out``. :mod:`fastconv._pool` hands it to the Cython kernels,
:mod:`fastconv._reference_pool` computes the same result with plain NumPy.

Pooling follows PyTorch: ``stride=None`` means ``kernel_size``, padding is at
most half the kernel (``conv_geometry(pool=True)``) and ``ceil_mode`` rounds
the output size up without starting a window in the bottom/right padding.
Unlike PyTorch, padding may also be asymmetric (``((top, bottom), (left,
right))``), ``"valid"`` or ``"same"``, as everywhere else in fastconv.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from ._arrays import apart_from, as_array, check_out, from_channels_first, kernel_array, layout_and_batch
from ._geometry import ConvGeometry, check_element_count, conv_geometry, resolve_layout

__all__ = [
    "PoolCall",
    "pool_dtypes",
    "prepare_max_pool2d",
    "prepare_avg_pool2d",
    "prepare_max_pool2d_backward",
    "prepare_avg_pool2d_backward",
    "bad_indices_error",
]

NDIM = 2  # spatial axes of the 2-D pools
_INT64_MAX = int(np.iinfo(np.int64).max)


@dataclass
class PoolCall:
    """A validated pooling call (forward or backward).

    Attributes
    ----------
    x : ndarray
        What the kernel reads, batched, C-contiguous, native, in ``compute_dtype``,
        user layout: the input of a forward pool, ``grad_output`` of a backward one.
    indices : ndarray or None
        ``max_pool2d_backward``: int64 indices shaped like ``x``. Else None.
    geometry : ConvGeometry or None
        Resolved window geometry (None for ``max_pool2d_backward``, which
        needs only the indices).
    channels_last : bool
    batch, channels : int
    in_shape : tuple
        Batched shape of the pool's input (user layout).
    out_shape : tuple
        Batched shape of the pool's output (user layout).
    result_dtype, compute_dtype : numpy.dtype
        What the caller gets back and what the arithmetic runs in.
    batched : bool
        False when the user's arrays had no batch axis.
    out : ndarray or None
        The user's validated ``out`` (values for a forward pool, the input
        gradient for a backward one).
    out_indices : ndarray or None
        ``max_pool2d(return_indices=True)``: the validated ``out`` for indices.
    return_indices, count_include_pad : bool
    divisor_override : int or None
    """

    x: np.ndarray
    indices: np.ndarray | None
    geometry: ConvGeometry | None
    channels_last: bool
    batch: int
    channels: int
    in_shape: tuple
    out_shape: tuple
    result_dtype: np.dtype
    compute_dtype: np.dtype
    batched: bool
    out: np.ndarray | None
    out_indices: np.ndarray | None = None
    return_indices: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    @property
    def user_out_shape(self):
        """The output shape the user sees (no batch axis for unbatched input)."""
        return self.out_shape if self.batched else self.out_shape[1:]

    @property
    def user_in_shape(self):
        """The input shape the user sees (no batch axis for unbatched input)."""
        return self.in_shape if self.batched else self.in_shape[1:]


def _flag(value, name):
    """A bool argument: True/False (or NumPy bools), nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} of type {type(value).__name__}")
    return bool(value)


def _divisor(value):
    """``divisor_override``: None or a non-zero integer, as in PyTorch."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"divisor_override must be None or a non-zero int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"divisor_override must be None or a non-zero int, got {value!r}") from None
    if value == 0:
        raise ValueError("divisor_override must be non-zero, got 0")
    if abs(value) > _INT64_MAX:
        raise ValueError(f"divisor_override must fit in int64 (|d| <= {_INT64_MAX}), got {value}")
    return value


def _native(dtype):
    dtype = np.dtype(dtype)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _max_dtype(dtype, name):
    """max_pool2d: any real dtype, returned as is; float16 is compared in float32 (exact)."""
    if dtype.kind not in "biuf":
        why = " (complex numbers have no order)" if dtype.kind == "c" else ""
        raise TypeError(f"{name} must have a real dtype (bool, integer or float) for max pooling{why}, "
                        f"got dtype {dtype}")
    dtype = _native(dtype)
    return dtype, np.dtype(np.float32) if dtype == np.float16 else dtype


def pool_dtypes(dtype, name):
    """Result and compute dtypes of an average pool or a pooling gradient.

    Bool and integer inputs give float64; float16 computes in float32 and
    returns float16; float32, float64 and long double are native.

    Raises
    ------
    TypeError
        For complex or non-numeric dtypes.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real dtype (bool, integer or float), got dtype {dtype}")
    if dtype.kind in "biu":
        return np.dtype(np.float64), np.dtype(np.float64)
    dtype = _native(dtype)
    return dtype, np.dtype(np.float32) if dtype == np.float16 else dtype


def _spatial(shape, channels_last):
    return tuple(shape[1:-1]) if channels_last else tuple(shape[2:])


def _channels(shape, channels_last):
    return shape[-1] if channels_last else shape[1]


def _geometry(spatial, kernel_size, stride, padding, dilation, ceil_mode):
    if any(n == 0 for n in spatial):
        raise ValueError(f"pooling needs a non-empty image, got spatial shape {spatial}")
    stride = kernel_size if stride is None else stride
    return conv_geometry(spatial, kernel_size, stride, padding, dilation,
                         ceil_mode=_flag(ceil_mode, "ceil_mode"), pool=True)


def _out_shape(in_shape, geometry, channels_last, itemsize=8):
    shape = from_channels_first((in_shape[0], _channels(in_shape, channels_last)) + geometry.out_shape,
                                channels_last)
    check_element_count(shape, "the output", itemsize)
    return shape


def _forward(x, name, kernel_size, stride, padding, dilation, ceil_mode, layout, dtypes):
    """Validation shared by both forward pools."""
    x = as_array(x, name)
    result_dtype, compute_dtype = dtypes(x.dtype, name)
    xb, batched, channels_last = layout_and_batch(x, name, NDIM, layout)
    geometry = _geometry(_spatial(xb.shape, channels_last), kernel_size, stride, padding, dilation, ceil_mode)
    # the widest array of that shape: the values, the float32 of float16, or int64 indices
    itemsize = max(result_dtype.itemsize, compute_dtype.itemsize, 8)
    out_shape = _out_shape(xb.shape, geometry, channels_last, itemsize)
    return (kernel_array(xb, compute_dtype), geometry, channels_last, xb.shape, out_shape,
            result_dtype, compute_dtype, batched)


def prepare_max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, layout, out):
    """Validate a max_pool2d call.

    ``out`` is an array, or with ``return_indices=True`` a pair ``(values,
    indices)`` whose items may be None.
    """
    return_indices = _flag(return_indices, "return_indices")
    (xk, geometry, channels_last, in_shape, out_shape, result_dtype, compute_dtype,
     batched) = _forward(x, "x", kernel_size, stride, padding, dilation, ceil_mode, layout, _max_dtype)
    user_shape = out_shape if batched else out_shape[1:]
    out_indices = None
    if return_indices and out is not None:
        if not isinstance(out, tuple) or len(out) != 2:
            raise ValueError(f"with return_indices=True, out must be a pair (values, indices) of arrays "
                             f"or None, got {type(out).__name__}")
        out, out_indices = out
        out_indices = check_out(out_indices, user_shape, np.int64, name="out[1] (the indices)")
        out = check_out(out, user_shape, result_dtype, name="out[0] (the values)")
        if out is not None and out_indices is not None and np.may_share_memory(out, out_indices):
            raise ValueError("out[0] (the values) and out[1] (the indices) must not share memory")
    else:
        out = check_out(out, user_shape, result_dtype)
    xk = apart_from((out, out_indices), xk)
    return PoolCall(xk, None, geometry, channels_last, in_shape[0], _channels(in_shape, channels_last),
                    in_shape, out_shape, result_dtype, compute_dtype, batched, out, out_indices,
                    return_indices=return_indices)


def prepare_avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                       layout, out):
    """Validate an avg_pool2d call; integer and bool input is cast to float64 here."""
    count_include_pad = _flag(count_include_pad, "count_include_pad")
    divisor_override = _divisor(divisor_override)
    (xk, geometry, channels_last, in_shape, out_shape, result_dtype, compute_dtype,
     batched) = _forward(x, "x", kernel_size, stride, padding, 1, ceil_mode, layout, pool_dtypes)
    out = check_out(out, out_shape if batched else out_shape[1:], result_dtype)
    xk = apart_from(out, xk)
    return PoolCall(xk, None, geometry, channels_last, in_shape[0], _channels(in_shape, channels_last),
                    in_shape, out_shape, result_dtype, compute_dtype, batched, out,
                    count_include_pad=count_include_pad, divisor_override=divisor_override)


def _input_shape(input_shape, layout):
    """Parse ``input_shape`` of a backward pool: 4 ints, or 3 for an unbatched input."""
    try:
        shape = tuple(operator.index(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a sequence of ints, got {input_shape!r}") from None
    if len(shape) not in (NDIM + 1, NDIM + 2) or any(s < 0 for s in shape):
        raise ValueError(f"input_shape must be 4 or 3 non-negative ints (the shape of the pool's "
                         f"input x, layout {layout!r}), got {input_shape!r}")
    batched = len(shape) == NDIM + 2
    shape = shape if batched else (1,) + shape
    check_element_count(shape, "input_shape")
    return shape, batched


def _grad_output(grad_output, batched, layout):
    grad = as_array(grad_output, "grad_output")
    result_dtype, compute_dtype = pool_dtypes(grad.dtype, "grad_output")
    channels_last = resolve_layout(layout, NDIM)
    ndim = NDIM + 2 if batched else NDIM + 1
    if grad.ndim != ndim:
        raise ValueError(f"grad_output must have as many axes as input_shape ({ndim}), got shape {grad.shape}")
    grad = grad if batched else grad[np.newaxis]
    return grad, result_dtype, compute_dtype, channels_last


def _check_input_bytes(in_shape, result_dtype, compute_dtype):
    check_element_count(in_shape, "input_shape", max(result_dtype.itemsize, compute_dtype.itemsize))


def prepare_max_pool2d_backward(grad_output, indices, input_shape, layout, out):
    """Validate a max_pool2d_backward call."""
    in_shape, batched = _input_shape(input_shape, layout)
    grad, result_dtype, compute_dtype, channels_last = _grad_output(grad_output, batched, layout)
    _check_input_bytes(in_shape, result_dtype, compute_dtype)
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array (as returned by max_pool2d), got dtype {indices.dtype}")
    indices = indices if batched else indices[np.newaxis]
    if indices.shape != grad.shape:
        drop = 0 if batched else 1
        raise ValueError(f"indices must have the shape of grad_output {grad.shape[drop:]}, "
                         f"got {indices.shape[drop:]}")
    cl = channels_last
    if grad.shape[0] != in_shape[0] or _channels(grad.shape, cl) != _channels(in_shape, cl):
        drop = 0 if batched else 1
        raise ValueError(f"grad_output of shape {grad.shape[drop:]} does not match input_shape "
                         f"{in_shape[drop:]}: batch and channels differ (layout {layout!r})")
    if indices.dtype.kind == "u" and indices.dtype.itemsize == 8:
        indices = np.minimum(indices, np.iinfo(np.int64).max)  # out-of-range stays out of range
    out = check_out(out, in_shape if batched else in_shape[1:], result_dtype)
    grad, indices = apart_from(out, kernel_array(grad, compute_dtype), kernel_array(indices, np.int64))
    call = PoolCall(grad, indices, None, cl,
                    in_shape[0], _channels(in_shape, cl), in_shape, grad.shape, result_dtype, compute_dtype,
                    batched, out)
    h, w = _spatial(in_shape, cl)
    if h * w == 0 and call.indices.size:
        # an empty plane: the kernels, which count bad indices as they scatter, never run;
        # every index but -1 is out of range
        bad = int(np.count_nonzero(call.indices != -1))
        if bad:
            raise bad_indices_error(bad, call)
    return call


def prepare_avg_pool2d_backward(grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                                count_include_pad, divisor_override, layout, out):
    """Validate an avg_pool2d_backward call against the geometry of the forward pool."""
    count_include_pad = _flag(count_include_pad, "count_include_pad")
    divisor_override = _divisor(divisor_override)
    in_shape, batched = _input_shape(input_shape, layout)
    grad, result_dtype, compute_dtype, channels_last = _grad_output(grad_output, batched, layout)
    _check_input_bytes(in_shape, result_dtype, compute_dtype)
    geometry = _geometry(_spatial(in_shape, channels_last), kernel_size, stride, padding, 1, ceil_mode)
    out_shape = _out_shape(in_shape, geometry, channels_last)
    if grad.shape != out_shape:
        expect = out_shape if batched else out_shape[1:]
        raise ValueError(f"grad_output must have the shape of avg_pool2d's output {expect} for input_shape "
                         f"{input_shape} and this geometry, got {grad.shape if batched else grad.shape[1:]}")
    out = check_out(out, in_shape if batched else in_shape[1:], result_dtype)
    return PoolCall(apart_from(out, kernel_array(grad, compute_dtype)), None, geometry, channels_last, in_shape[0],
                    _channels(in_shape, channels_last), in_shape, out_shape, result_dtype, compute_dtype,
                    batched, out, count_include_pad=count_include_pad, divisor_override=divisor_override)


def bad_indices_error(count, call):
    """The ValueError for ``count`` indices outside ``[-1, H*W)`` in a max_pool2d_backward ``call``."""
    h, w = _spatial(call.in_shape, call.channels_last)
    return ValueError(
        f"indices must lie in [0, H*W) = [0, {h * w}) for input_shape {call.user_in_shape}, or be -1 "
        f"(a window that covers no input pixel), got {count} out-of-range entries"
    )
