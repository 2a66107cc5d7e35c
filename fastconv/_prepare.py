"""Argument handling for each public function, shared by the fast path and the reference.

Each ``prepare_*`` function validates a call's arguments (through
:mod:`fastconv._geometry` and :mod:`fastconv._arrays`), pads the input and
returns a small record of everything an implementation needs. The fast
functions hand that record to a Cython kernel; :mod:`fastconv.reference`
computes the same result with plain NumPy. Neither validates anything else.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

import numpy as np

from ._arrays import (
    apart_from,
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
    as_count,
    as_int_tuple,
    check_element_count,
    check_padding_mode,
    conv_geometry,
    resolve_layout,
    resolve_padding,
)

__all__ = [
    "ColumnsCall",
    "ConvCall",
    "ConvGradCall",
    "prepare_im2col",
    "prepare_col2im",
    "prepare_conv2d",
    "prepare_conv2d_grad_input",
    "prepare_conv2d_grad_weight",
    "prepare_conv_transpose2d",
]

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
        im2col: the batched, C-contiguous input in the user's layout, not padded.
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


def _cols_shape(batch, channels, geometry, itemsize):
    shape = (batch * geometry.out_size, channels * geometry.kernel_size)
    check_element_count(shape, "the column matrix", itemsize)
    return shape


def _check_padded(image_shape, geometry, channels_last, itemsize):
    """The padded image (or gradient image) of a batched ``image_shape`` must be able to exist."""
    if geometry.has_padding:
        spatial = geometry.padded_shape
        shape = (image_shape[0],) + spatial + (image_shape[-1],) if channels_last else (
            tuple(image_shape[:2]) + spatial)
        check_element_count(shape, "the padded input", itemsize)


def prepare_im2col(x, kernel_size, stride, padding, dilation, padding_mode, layout, out):
    """Validate an im2col call."""
    x = as_array(x, "x")
    dtype = _native(movement_dtype(x.dtype, "x"))
    xb, batched, channels_last = layout_and_batch(x, "x", NDIM, layout)
    geometry = conv_geometry(_spatial(xb.shape, channels_last), kernel_size, stride, padding, dilation)
    check_padding_mode(padding_mode, geometry)
    batch, channels = xb.shape[0], xb.shape[-1] if channels_last else xb.shape[1]
    cols_shape = _cols_shape(batch, channels, geometry, dtype.itemsize)
    out = check_out(out, cols_shape, dtype)
    xb = kernel_array(xb, dtype)
    _check_padded(xb.shape, geometry, channels_last, dtype.itemsize)  # the kernel may pad a copy
    image = apart_from(out, xb)
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
    check_element_count(image_shape, "input_shape", dtype.itemsize)
    geometry = conv_geometry(_spatial(image_shape, channels_last), kernel_size, stride, padding, dilation)
    _check_padded(image_shape, geometry, channels_last, dtype.itemsize)  # the kernel may sum into a padded copy
    batch = image_shape[0]
    channels = image_shape[-1] if channels_last else image_shape[1]
    cols_shape = _cols_shape(batch, channels, geometry, dtype.itemsize)
    if cols.shape != cols_shape:
        raise ValueError(
            f"cols must have shape (N*OH*OW, C*KH*KW) = {cols_shape} for input_shape {shape} "
            f"and kernel_size {geometry.kernel}, got {cols.shape}"
        )
    out = check_out(out, shape, dtype)
    return ColumnsCall(None, apart_from(out, kernel_array(cols, dtype)), geometry, channels_last, batch, channels,
                       image_shape, cols_shape, dtype, batched, out)


@dataclass
class ConvCall:
    """A validated conv2d call.

    Attributes
    ----------
    x : ndarray
        Batched, C-contiguous input in the compute dtype, user layout, not padded:
        each algorithm pads it its own way (``padding_mode``).
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
    padding_mode : str
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
    padding_mode: str


def _check_groups(groups):
    return as_count(groups, "groups", 1)


def _weight_dims(weight_shape, channels, groups, channels_last, name="weight"):
    """Check a weight shape against the input channels and groups; return ``(K, Cg, KH, KW)``."""
    if len(weight_shape) != 4:
        expected = "(KH, KW, C/groups, K) (HWIO)" if channels_last else "(K, C/groups, KH, KW) (OIHW)"
        raise ValueError(f"{name} must be 4-D {expected}, got shape {tuple(weight_shape)}")
    if channels_last:
        kh, kw, cg, k = weight_shape
    else:
        k, cg, kh, kw = weight_shape
    if groups > max(channels, k, 1):
        # with no channels at all every groups divides both counts: bound it anyway, or a
        # loop over groups (the reference's) runs 2**63 times on an empty convolution
        raise ValueError(
            f"groups={groups} is larger than both the input channels ({channels}) and the "
            f"output channels ({k})"
        )
    if channels % groups or k % groups:
        raise ValueError(
            f"groups={groups} must divide both the input channels ({channels}) and the "
            f"output channels ({k})"
        )
    if cg * groups != channels:
        raise ValueError(
            f"{name} has {cg} input channels per group, but x has {channels} channels and "
            f"groups={groups} (expected {channels // groups})"
        )
    return k, cg, kh, kw


def _shape_tuple(shape, name, length):
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {shape!r}") from None
    if len(shape) not in length or any(s < 0 for s in shape):
        raise ValueError(f"{name} must be {' or '.join(map(str, length))} non-negative ints, got {shape!r}")
    return shape


def prepare_conv2d(x, weight, bias, stride, padding, dilation, groups, padding_mode, layout, out):
    """Validate a conv2d call; cast to the compute dtype (the input stays unpadded)."""
    x = as_array(x, "x")
    weight = as_array(weight, "weight")
    bias = None if bias is None else as_array(bias, "bias")
    result_dtype, compute_dtype = conv_dtypes(x, weight, bias)
    xb, batched, channels_last = layout_and_batch(x, "x", NDIM, layout)
    groups = _check_groups(groups)
    channels = xb.shape[-1] if channels_last else xb.shape[1]
    k, cg, kh, kw = _weight_dims(weight.shape, channels, groups, channels_last)
    if bias is not None and bias.shape != (k,):
        raise ValueError(f"bias must have shape ({k},) (one per output channel), got {bias.shape}")
    geometry = conv_geometry(_spatial(xb.shape, channels_last), (kh, kw), stride, padding, dilation)
    check_padding_mode(padding_mode, geometry)
    out_shape = from_channels_first((xb.shape[0], k) + geometry.out_shape, channels_last)
    check_element_count(out_shape, "the output", compute_dtype.itemsize)
    user_shape = out_shape if batched else out_shape[1:]
    out = check_out(out, user_shape, result_dtype)
    _check_padded(xb.shape, geometry, channels_last, compute_dtype.itemsize)  # each algorithm pads its own way
    xk = kernel_array(xb, compute_dtype)
    wk = kernel_array(weight, compute_dtype)
    bk = np.zeros(k, compute_dtype) if bias is None else kernel_array(bias, compute_dtype)
    xk, wk, bk = apart_from(out, xk, wk, bk)
    return ConvCall(xk, wk, bk, bias is not None, geometry, groups, channels_last, out_shape,
                    result_dtype, compute_dtype, batched, out, padding_mode)


@dataclass
class ConvGradCall:
    """A validated conv2d gradient (or transposed convolution) call.

    Attributes
    ----------
    grad : ndarray
        Batched, C-contiguous ``grad_output`` in the compute dtype, user layout.
    x : ndarray or None
        grad_weight: the batched, unpadded input in the compute dtype. Else None.
    weight : ndarray or None
        grad_input: the C-contiguous weight in the compute dtype. Else None.
    dims : tuple
        ``(K, Cg, KH, KW)``.
    geometry : ConvGeometry
        Geometry of the forward convolution (its ``out_shape`` is grad's spatial shape).
    groups : int
    channels_last : bool
    image_shape : tuple
        Batched shape of the forward input, user layout.
    result_shape : tuple
        Shape of the result (batched for grad_input, the weight shape for grad_weight).
    result_dtype, compute_dtype : numpy.dtype
    batched : bool
    out : ndarray or None
    bias : ndarray or None
        conv_transpose2d only: ``(C_out,)`` in the compute dtype.
    """

    grad: np.ndarray
    x: np.ndarray | None
    weight: np.ndarray | None
    dims: tuple
    geometry: ConvGeometry
    groups: int
    channels_last: bool
    image_shape: tuple
    result_shape: tuple
    result_dtype: np.dtype
    compute_dtype: np.dtype
    batched: bool
    out: np.ndarray | None
    bias: np.ndarray | None = None


def _check_grad_output(grad, image_shape, k, geometry, channels_last, batched, name, partial=False):
    """Check grad_output against the forward convolution; return it batched, and the geometry.

    With ``partial`` (conv_transpose2d with ``output_padding >= stride``), the
    forward convolution may have one more output row or column than ``grad``
    holds: the geometry is then narrowed to ``grad``'s spatial shape.
    """
    expected = from_channels_first((image_shape[0], k) + geometry.out_shape, channels_last)
    user_expected = expected if batched else expected[1:]
    if grad.ndim != len(user_expected):
        raise ValueError(
            f"{name} must be {len(user_expected)}-D like the convolution's output "
            f"{user_expected}, got shape {grad.shape}"
        )
    gb = grad if batched else grad[np.newaxis]
    spatial = _spatial(gb.shape, channels_last)
    if partial and all(a <= b for a, b in zip(spatial, geometry.out_shape)):
        geometry = replace(geometry, out_shape=spatial)
        expected = from_channels_first((image_shape[0], k) + spatial, channels_last)
    if gb.shape != expected:
        raise ValueError(
            f"{name} must have shape {user_expected} (the conv2d output for input shape "
            f"{image_shape if batched else image_shape[1:]}), got {grad.shape}"
        )
    return gb, geometry


def prepare_conv2d_grad_input(grad_output, weight, input_shape, stride, padding, dilation, groups,
                              layout, out):
    """Validate a conv2d_grad_input call."""
    grad = as_array(grad_output, "grad_output")
    weight = as_array(weight, "weight")
    result_dtype, compute_dtype = conv_dtypes(grad, weight, names=("grad_output", "weight"))
    channels_last = resolve_layout(layout, NDIM)
    shape = _shape_tuple(input_shape, "input_shape", (NDIM + 1, NDIM + 2))
    batched = len(shape) == NDIM + 2
    image_shape = shape if batched else (1,) + shape
    check_element_count(image_shape, "input_shape", compute_dtype.itemsize)
    groups = _check_groups(groups)
    channels = image_shape[-1] if channels_last else image_shape[1]
    dims = _weight_dims(weight.shape, channels, groups, channels_last)
    geometry = conv_geometry(_spatial(image_shape, channels_last), dims[2:], stride, padding, dilation)
    grad, geometry = _check_grad_output(grad, image_shape, dims[0], geometry, channels_last, batched,
                                        "grad_output")
    _check_padded(image_shape, geometry, channels_last, compute_dtype.itemsize)  # the gradient is summed there
    out = check_out(out, shape, result_dtype)
    grad, weight = apart_from(out, kernel_array(grad, compute_dtype), kernel_array(weight, compute_dtype))
    return ConvGradCall(grad, None, weight, dims, geometry, groups, channels_last, image_shape, image_shape,
                        result_dtype, compute_dtype, batched, out)


def prepare_conv_transpose2d(x, weight, bias, stride, padding, output_padding, dilation, groups, layout, out):
    """Validate a conv_transpose2d call as the input gradient of the forward convolution it inverts.

    The weight is read as that forward convolution's weight: PyTorch's
    ``(C_in, C_out/groups, KH, KW)`` is OIHW with O = C_in; Keras's
    ``(KH, KW, C_out/groups, C_in)`` is HWIO.
    """
    x = as_array(x, "x")
    weight = as_array(weight, "weight")
    bias = None if bias is None else as_array(bias, "bias")
    result_dtype, compute_dtype = conv_dtypes(x, weight, bias)
    xb, batched, channels_last = layout_and_batch(x, "x", NDIM, layout)
    groups = _check_groups(groups)
    if isinstance(padding, str):
        raise ValueError(f"conv_transpose2d takes padding as ints or (before, after) pairs, got {padding!r}")
    if weight.ndim != 4:
        expected = "(KH, KW, C_out/groups, C_in)" if channels_last else "(C_in, C_out/groups, KH, KW)"
        raise ValueError(f"weight must be 4-D {expected}, got shape {weight.shape}")
    cin, cout_g, kh, kw = (weight.shape[3], weight.shape[2], *weight.shape[:2]) if channels_last else weight.shape
    x_channels = xb.shape[-1] if channels_last else xb.shape[1]
    if cin != x_channels:
        raise ValueError(f"weight is for {cin} input channels, but x has {x_channels}")
    dims = _weight_dims(weight.shape, cout_g * groups, groups, channels_last)
    stride = as_int_tuple(stride, NDIM, "stride")
    dilation = as_int_tuple(dilation, NDIM, "dilation")
    out_pad = as_int_tuple(output_padding, NDIM, "output_padding", minimum=0)
    if any(op >= max(s, d) for op, s, d in zip(out_pad, stride, dilation)):
        raise ValueError(
            f"output_padding must be smaller than stride or dilation on each axis, got "
            f"output_padding={out_pad}, stride={stride}, dilation={dilation}"
        )
    in_spatial = _spatial(xb.shape, channels_last)
    pads = resolve_padding(padding, NDIM)
    spatial = tuple((n - 1) * s - a - b + d * (k - 1) + op + 1
                    for n, s, (a, b), d, k, op in zip(in_spatial, stride, pads, dilation, (kh, kw), out_pad))
    if any(n < 1 for n in spatial):
        raise ValueError(
            f"conv_transpose2d output would have spatial shape {spatial} for x of shape {x.shape}; "
            "reduce padding"
        )
    image_shape = from_channels_first((xb.shape[0], cout_g * groups) + spatial, channels_last)
    check_element_count(image_shape, "the output", compute_dtype.itemsize)
    geometry = conv_geometry(spatial, (kh, kw), stride, pads, dilation)
    grad, geometry = _check_grad_output(xb, image_shape, dims[0], geometry, channels_last, True, "x",
                                        partial=True)
    _check_padded(image_shape, geometry, channels_last, compute_dtype.itemsize)
    if bias is not None and bias.shape != (cout_g * groups,):
        raise ValueError(f"bias must have shape ({cout_g * groups},) (one per output channel), got {bias.shape}")
    out = check_out(out, image_shape if batched else image_shape[1:], result_dtype)
    grad, weight, bias = apart_from(out, kernel_array(grad, compute_dtype), kernel_array(weight, compute_dtype),
                                    None if bias is None else kernel_array(bias, compute_dtype))
    return ConvGradCall(grad, None, weight, dims, geometry, groups, channels_last, image_shape, image_shape,
                        result_dtype, compute_dtype, batched, out, bias)


def prepare_conv2d_grad_weight(grad_output, x, weight_shape, stride, padding, dilation, groups, layout, out):
    """Validate a conv2d_grad_weight call (the input is left unpadded: each algorithm pads its own way)."""
    grad = as_array(grad_output, "grad_output")
    x = as_array(x, "x")
    result_dtype, compute_dtype = conv_dtypes(grad, x, names=("grad_output", "x"))
    xb, batched, channels_last = layout_and_batch(x, "x", NDIM, layout)
    groups = _check_groups(groups)
    wshape = _shape_tuple(weight_shape, "weight_shape", (4,))
    check_element_count(wshape, "weight_shape", compute_dtype.itemsize)
    channels = xb.shape[-1] if channels_last else xb.shape[1]
    dims = _weight_dims(wshape, channels, groups, channels_last, name="weight_shape")
    geometry = conv_geometry(_spatial(xb.shape, channels_last), dims[2:], stride, padding, dilation)
    grad, _ = _check_grad_output(grad, xb.shape, dims[0], geometry, channels_last, batched, "grad_output")
    out = check_out(out, wshape, result_dtype)
    _check_padded(xb.shape, geometry, channels_last, compute_dtype.itemsize)  # each path pads its own way
    grad, xk = apart_from(out, kernel_array(grad, compute_dtype), kernel_array(xb, compute_dtype))
    return ConvGradCall(grad, xk, None, dims, geometry, groups, channels_last,
                        xb.shape, wshape, result_dtype, compute_dtype, batched, out)
