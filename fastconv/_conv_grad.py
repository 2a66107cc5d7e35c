"""Gradients of conv2d and the transposed convolution, as GEMMs around the im2col/col2im kernels.

* dL/dx: for stride 1, a direct convolution (the register-tiled kernel) of
  the padded grad with the flipped weight; otherwise ``cols = grad_rows @ W``
  per group, folded back into the image by the col2im kernel (parallel over
  disjoint pixels, no races).
* dL/dw: the im2col kernel unfolds ``x``; ``grad_rows.T @ cols`` per group.
* ``conv_transpose2d`` is dL/dx of the convolution that maps its output back
  to its input, plus a bias.

Images are processed in batches so the column buffer stays bounded; the batch
size depends only on shapes, so results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numpy as np

from ._arrays import finish
from ._conv import direct_nchw, tile_input
from ._kernels import _conv_direct
from ._threads import threads_for
from ._geometry import conv_geometry
from ._im2col import COLUMN_BUDGET, crop, fold, unfold_batches
from ._prepare import prepare_conv2d_grad_input, prepare_conv2d_grad_weight, prepare_conv_transpose2d

__all__ = ["conv2d_grad_input", "conv2d_grad_weight", "conv_transpose2d"]


def _grad_rows(grad, channels_last):
    """grad_output as ``(N*OH*OW, K)`` rows (a copy for NCHW, a view for NHWC)."""
    if channels_last:
        return grad.reshape(-1, grad.shape[-1])
    return np.ascontiguousarray(grad.transpose(0, 2, 3, 1)).reshape(-1, grad.shape[1])


def _weight_matrices(weight, dims, groups, channels_last):
    """Per-group weight matrices ``(Kg, depth)`` whose columns follow the im2col column order."""
    k, cg, kh, kw = dims
    kg = k // groups
    if channels_last:  # HWIO -> (groups, Kg, KH*KW*Cg)
        return weight.reshape(kh * kw * cg, groups, kg).transpose(1, 2, 0)
    return weight.reshape(groups, kg, cg * kh * kw)


def _columns_group(cols, g, dims, groups, channels_last):
    """View of the columns belonging to group ``g`` (a 3-D view for NHWC's (kh, kw, c) order)."""
    k, cg, kh, kw = dims
    if channels_last:
        return cols.reshape(cols.shape[0], kh * kw, groups, cg)[:, :, g, :]
    return cols[:, g * cg * kh * kw:(g + 1) * cg * kh * kw]


def _grad_input(call):
    """dL/dx for a prepared call, batched, in the compute dtype and user layout."""
    if not (call.grad.size and call.weight.size and math.prod(call.image_shape)):
        # an empty image, or nothing to sum (no output channel, pixel or weight): zeros,
        # without running the kernels on empty operands (an adjoint geometry of an empty
        # image, ``weight[0]`` of no weights)
        return np.zeros(call.image_shape, call.compute_dtype)
    if call.geometry.stride == (1, 1):
        return _grad_input_direct(call)
    return _grad_input_gemm(call)


def _grad_input_direct(call):
    """Stride-1 dL/dx as a direct convolution of the padded grad with the flipped, transposed weight.

    ``dx[c, i] = sum_{k, t} grad[k, i + pad_before - t * dilation] * w[k, c, t]``: a
    cross-correlation of ``grad``, padded by ``dilation * (kernel - 1) - pad_before``
    in front (cropped where that is negative), with the kernel reversed.
    """
    k, cg, kh, kw = call.dims
    geo, groups = call.geometry, call.groups
    grad = np.ascontiguousarray(call.grad.transpose(0, 3, 1, 2)) if call.channels_last else call.grad
    n = grad.shape[0]
    spans = [d * (kk - 1) for d, kk in zip(geo.dilation, (kh, kw))]
    padded_shape = tuple(size + span for size, span in zip(geo.in_shape, spans))
    padded = np.zeros((n, k) + padded_shape, call.compute_dtype)
    dst, src = [], []
    for size, out_size, span, (before, _) in zip(padded_shape, geo.out_shape, spans, geo.padding):
        offset = span - before  # where grad row 0 lands in the padded grad
        lo, hi = max(0, -offset), min(out_size, size - offset)
        src.append(slice(lo, max(lo, hi)))
        dst.append(slice(lo + offset, max(lo, hi) + offset))
    padded[(slice(None), slice(None), *dst)] = grad[(slice(None), slice(None), *src)]
    if call.channels_last:  # HWIO -> OIHW
        weight = call.weight.transpose(3, 2, 0, 1)
    else:
        weight = call.weight
    kg = k // groups
    # (groups, Kg, Cg, KH, KW) -> (groups, Cg, Kg, KH, KW), kernel reversed: the adjoint's weight
    flipped = weight.reshape(groups, kg, cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    flipped = np.ascontiguousarray(flipped).reshape(groups * cg, kg, kh, kw)
    adjoint = conv_geometry(padded_shape, (kh, kw), 1, 0, geo.dilation)
    result = np.empty((n, groups * cg) + geo.in_shape, call.compute_dtype)
    direct_nchw(padded, flipped, np.zeros(groups * cg, call.compute_dtype), adjoint, groups, result)
    if call.channels_last:
        return np.ascontiguousarray(result.transpose(0, 2, 3, 1))
    return result


def _grad_input_gemm(call):
    """dL/dx as per-group GEMMs into columns, folded back by the col2im kernel."""
    k, cg, kh, kw = call.dims
    geo, groups, cl = call.geometry, call.groups, call.channels_last
    kg, depth = k // groups, cg * kh * kw
    n_images = call.image_shape[0]
    channels = cg * groups
    rows_per_image = geo.out_size
    w_mats = _weight_matrices(call.weight, call.dims, groups, cl)
    result = np.empty(call.image_shape, call.compute_dtype)
    per_batch = max(1, min(n_images, COLUMN_BUDGET // max(1, rows_per_image * depth * groups * result.itemsize)))
    cols_buf = np.empty((per_batch * rows_per_image, depth * groups), call.compute_dtype)
    for n0 in range(0, n_images, per_batch):
        n1 = min(n_images, n0 + per_batch)
        rows = _grad_rows(call.grad[n0:n1], cl)
        cols = cols_buf[: rows.shape[0]]
        for g in range(groups):
            block = rows[:, g * kg:(g + 1) * kg] @ w_mats[g]
            _columns_group(cols, g, call.dims, groups, cl)[...] = block.reshape(
                _columns_group(cols, g, call.dims, groups, cl).shape)
        image = fold(cols, geo, n1 - n0, channels, cl)
        result[n0:n1] = crop(image, geo, cl)
    return result


def _grad_weight(call):
    """dL/dw for a prepared call, in the compute dtype and the user's weight layout."""
    if not (call.x.size and call.grad.size):
        # an empty sum (no image, channel or output pixel): zero, and the kernels'
        # reshapes could not infer an empty axis (K = 0) anyway
        return np.zeros(call.result_shape, call.compute_dtype)
    if call.compute_dtype.kind == "f":
        return _grad_weight_direct(call)
    return _grad_weight_gemm(call)


def _grad_weight_direct(call):
    """dL/dw by the register-tiled weight-gradient kernel (NCHW; NHWC is transposed around it)."""
    k, cg, kh, kw = call.dims
    if call.channels_last:
        x = np.ascontiguousarray(call.x.transpose(0, 3, 1, 2))
        grad = np.ascontiguousarray(call.grad.transpose(0, 3, 1, 2))
    else:
        x, grad = call.x, call.grad
    groups = call.groups
    depthwise = groups > 1 and groups == x.shape[1] == k
    # the tiles read whole vectors and clear the lanes past a row's end:
    # both operands get slack after their last element
    src = tile_input(x, call.geometry, copy=True)
    grad = np.concatenate([grad.reshape(-1), np.zeros(_conv_direct.MAX_TILE_WIDTH, grad.dtype)])
    grad = grad[: -_conv_direct.MAX_TILE_WIDTH].reshape(call.grad.shape if not call.channels_last
                                                         else (x.shape[0], k) + call.geometry.out_shape)
    dw = np.zeros(k * cg * kh * kw, call.compute_dtype)
    threads = threads_for(grad.size * cg * kh * kw // 16)
    blocks = groups * -(-(k // groups) // 8)
    c_parts = 1 if depthwise else max(1, min(cg, -(-2 * threads // blocks)))
    ow = grad.shape[3]
    chunk_rows = max(1, 4096 // max(1, ow))  # 8 channels x chunk of grad rows stays in L2
    _conv_direct.conv2d_grad_weight_tiled(src.flat, src.image_stride, src.channel_stride, src.row_step,
                                          src.taps, grad, dw, groups, cg, depthwise, chunk_rows, c_parts,
                                          threads)
    dw = dw.reshape(k, cg, kh, kw)
    return dw.transpose(2, 3, 1, 0) if call.channels_last else dw


def _grad_weight_gemm(call):
    """dL/dw as per-group GEMMs of grad rows with the unfolded input."""
    k, cg, kh, kw = call.dims
    groups, cl = call.groups, call.channels_last
    kg = k // groups
    grad_w = np.zeros((groups, kg, kh * kw * cg if cl else cg * kh * kw), call.compute_dtype)
    for n0, n1, cols in unfold_batches(call.x, call.geometry, cl):
        rows = _grad_rows(call.grad[n0:n1], cl)
        for g in range(groups):
            block = _columns_group(cols, g, call.dims, groups, cl).reshape(cols.shape[0], -1)
            grad_w[g] += rows[:, g * kg:(g + 1) * kg].T @ block
    if cl:  # (groups, Kg, KH*KW*Cg) -> HWIO (KH, KW, Cg, K)
        return grad_w.reshape(k, kh, kw, cg).transpose(1, 2, 3, 0)
    return grad_w.reshape(k, cg, kh, kw)


def _finish_grad(result, call):
    if call.result_dtype != call.compute_dtype:
        result = result.astype(call.result_dtype)
    return finish(result, call.batched, call.out)


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
    call = prepare_conv2d_grad_input(grad_output, weight, input_shape, stride, padding, dilation, groups,
                                     layout, out)
    return _finish_grad(_grad_input(call), call)


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
    call = prepare_conv2d_grad_weight(grad_output, x, weight_shape, stride, padding, dilation, groups,
                                      layout, out)
    result = _grad_weight(call)
    if call.result_dtype != call.compute_dtype:
        result = result.astype(call.result_dtype)
    if call.out is None:
        return np.ascontiguousarray(result)
    np.copyto(call.out, result)
    return call.out


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
    call = prepare_conv_transpose2d(x, weight, bias, stride, padding, output_padding, dilation, groups,
                                    layout, out)
    result = _grad_input(call)
    if call.bias is not None:
        result += call.bias if call.channels_last else call.bias[:, None, None]
    return _finish_grad(result, call)
