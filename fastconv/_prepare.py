"""Argument handling for each public function, shared by the fast path and the reference.

Each ``prepare_*`` function validates a call's arguments (through
:mod:`fastconv._geometry` and :mod:`fastconv._arrays`), pads the input and
returns a small record of everything an implementation needs. The fast
functions hand that record to a Cython kernel; :mod:`fastconv.reference`
computes the same result with plain NumPy. Neither validates anything else.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from ._arrays import (
    as_array,
    check_out,
    conv_dtypes,
    from_channels_first,
    kernel_array,
    layout_and_batch,
    movement_dtype,
)
from ._geometry import (
    ConvGeometry,
    check_element_count,
    check_padding_mode,
    conv_geometry,
    resolve_layout,
)
from ._padding import pad_input

__all__ = ["ColumnsCall", "ConvCall", "prepare_im2col", "prepare_col2im", "prepare_conv2d"]

NDIM = 2  # spatial axes of the 2-D functions


def _native(dtype):
    dtype = np.dtype(dtype)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


@dataclass
class ColumnsCall:
    """A validated im2col or col2im call.

    Attributes
    ----------
    image : ndarray or None
        im2col: the padded, batched, C-contiguous input in the user's layout.
        col2im: None.
    cols : ndarray or None
        col2im: the C-contiguous columns. im2col: None.
    geometry : ConvGeometry
    channels_last : bool
    batch, channels : int
    image_shape : tuple
        Batched unpadded image shape in the user's layout.
    cols_shape : tuple
        ``(N*OH*OW, C*KH*KW)``.
    dtype : numpy.dtype
        Result dtype.
    batched : bool
        False when the user's image was unbatched.
    out : ndarray or None
        The user's validated ``out``.
    """

    image: np.ndarray | None
    cols: np.ndarray | None
    geometry: ConvGeometry
    channels_last: bool
    batch: int
    channels: int
    image_shape: tuple
    cols_shape: tuple
    dtype: np.dtype
    batched: bool
    out: np.ndarray | None


def _spatial(shape, channels_last):
    return tuple(shape[1:-1]) if channels_last else tuple(shape[2:])


def _cols_shape(batch, channels, geometry):
    shape = (batch * geometry.out_size, channels * geometry.kernel_size)
    check_element_count(shape, "the column matrix")
    return shape


def prepare_im2col(x, kernel_size, stride, padding, dilation, padding_mode, layout, out):
    """Validate an im2col call; pad the input once."""
    x = as_array(x, "x")
    dtype = _native(movement_dtype(x.dtype, "x"))
    xb, batched, channels_last = layout_and_batch(x, "x", NDIM, layout)
    geometry = conv_geometry(_spatial(xb.shape, channels_last), kernel_size, stride, padding, dilation)
    check_padding_mode(padding_mode, geometry)
    batch, channels = xb.shape[0], xb.shape[-1] if channels_last else xb.shape[1]
    cols_shape = _cols_shape(batch, channels, geometry)
    out = check_out(out, cols_shape, dtype)
    image = pad_input(kernel_array(xb, dtype), geometry, padding_mode, channels_last)
    return ColumnsCall(image, None, geometry, channels_last, batch, channels, xb.shape,
                       cols_shape, dtype, batched, out)


def prepare_col2im(cols, input_shape, kernel_size, stride, padding, dilation, layout, out):
    """Validate a col2im call against the image shape it scatters back to."""
    cols = as_array(cols, "cols")
    dtype = _native(movement_dtype(cols.dtype, "cols"))
    channels_last = resolve_layout(layout, NDIM)
    try:
        shape = tuple(operator.index(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a sequence of ints, got {input_shape!r}") from None
    if len(shape) not in (NDIM + 1, NDIM + 2) or any(s < 0 for s in shape):
        raise ValueError(
            f"input_shape must be 4 or 3 non-negative ints (the shape of the original x, "
            f"layout {layout!r}), got {input_shape!r}"
        )
    batched = len(shape) == NDIM + 2
    image_shape = shape if batched else (1,) + shape
    check_element_count(image_shape, "input_shape")
    geometry = conv_geometry(_spatial(image_shape, channels_last), kernel_size, stride, padding, dilation)
    batch = image_shape[0]
    channels = image_shape[-1] if channels_last else image_shape[1]
    cols_shape = _cols_shape(batch, channels, geometry)
    if cols.shape != cols_shape:
        raise ValueError(
            f"cols must have shape (N*OH*OW, C*KH*KW) = {cols_shape} for input_shape {shape} "
            f"and kernel_size {geometry.kernel}, got {cols.shape}"
        )
    out = check_out(out, shape, dtype)
    return ColumnsCall(None, kernel_array(cols, dtype), geometry, channels_last, batch, channels,
                       image_shape, cols_shape, dtype, batched, out)


@dataclass
class ConvCall:
    """A validated conv2d call.

    Attributes
    ----------
    x : ndarray
        Padded, batched, C-contiguous input in the compute dtype, user layout.
    weight : ndarray
        C-contiguous weight in the compute dtype: OIHW or HWIO.
    bias : ndarray
        ``(K,)`` in the compute dtype (zeros when no bias was given).
    has_bias : bool
    geometry : ConvGeometry
    groups : int
    channels_last : bool
    out_shape : tuple
        Batched result shape in the user's layout.
    result_dtype, compute_dtype : numpy.dtype
    batched : bool
    out : ndarray or None
    """

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    has_bias: bool
    geometry: ConvGeometry
    groups: int
    channels_last: bool
    out_shape: tuple
    result_dtype: np.dtype
    compute_dtype: np.dtype
    batched: bool
    out: np.ndarray | None


def _check_groups(groups):
    if isinstance(groups, bool):
        raise TypeError(f"groups must be an int >= 1, got {groups!r}")
    try:
        groups = operator.index(groups)
    except TypeError:
        raise TypeError(f"groups must be an int >= 1, got {groups!r}") from None
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    return groups


def prepare_conv2d(x, weight, bias, stride, padding, dilation, groups, padding_mode, layout, out):
    """Validate a conv2d call; cast to the compute dtype and pad the input once."""
    x = as_array(x, "x")
    weight = as_array(weight, "weight")
    bias = None if bias is None else as_array(bias, "bias")
    result_dtype, compute_dtype = conv_dtypes(x, weight, bias)
    xb, batched, channels_last = layout_and_batch(x, "x", NDIM, layout)
    groups = _check_groups(groups)
    if weight.ndim != 4:
        expected = "(KH, KW, C/groups, K) (HWIO)" if channels_last else "(K, C/groups, KH, KW) (OIHW)"
        raise ValueError(f"weight must be 4-D {expected}, got shape {weight.shape}")
    if channels_last:
        kh, kw, cg, k = weight.shape
        channels = xb.shape[-1]
    else:
        k, cg, kh, kw = weight.shape
        channels = xb.shape[1]
    if channels % groups or k % groups:
        raise ValueError(
            f"groups={groups} must divide both the input channels ({channels}) and the "
            f"output channels ({k})"
        )
    if cg * groups != channels:
        raise ValueError(
            f"weight has {cg} input channels per group, but x has {channels} channels and "
            f"groups={groups} (expected {channels // groups})"
        )
    if bias is not None and bias.shape != (k,):
        raise ValueError(f"bias must have shape ({k},) (one per output channel), got {bias.shape}")
    geometry = conv_geometry(_spatial(xb.shape, channels_last), (kh, kw), stride, padding, dilation)
    check_padding_mode(padding_mode, geometry)
    out_shape = from_channels_first((xb.shape[0], k) + geometry.out_shape, channels_last)
    check_element_count(out_shape, "the output")
    user_shape = out_shape if batched else out_shape[1:]
    out = check_out(out, user_shape, result_dtype)
    xk = pad_input(kernel_array(xb, compute_dtype), geometry, padding_mode, channels_last)
    wk = kernel_array(weight, compute_dtype)
    bk = np.zeros(k, compute_dtype) if bias is None else kernel_array(bias, compute_dtype)
    return ConvCall(xk, wk, bk, bias is not None, geometry, groups, channels_last, out_shape,
                    result_dtype, compute_dtype, batched, out)
