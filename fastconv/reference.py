"""Pure-NumPy reference implementations: the oracle of the tests, the baseline of the benchmarks.

Every function here has the same signature, argument handling and result as
its namesake in :mod:`fastconv`; the arguments go through the same
:mod:`fastconv._prepare` functions, and only the arithmetic differs. The
loops are written for clarity, the way textbooks write them: one strided
slice per kernel tap. Nothing in the fast path imports this module.

Examples
--------
>>> import numpy as np
>>> from fastconv import reference
>>> reference.im2col(np.arange(9).reshape(1, 1, 3, 3), 2)
array([[0, 1, 3, 4],
       [1, 2, 4, 5],
       [3, 4, 6, 7],
       [4, 5, 7, 8]])
"""

from __future__ import annotations

import numpy as np

from ._arrays import finish
from ._padding import pad_input
from ._prepare import (
    prepare_col2im,
    prepare_conv2d,
    prepare_conv2d_grad_input,
    prepare_conv2d_grad_weight,
    prepare_conv_transpose2d,
    prepare_im2col,
)

from ._reference_pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

__all__ = [
    "im2col",
    "col2im",
    "conv2d",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "max_pool2d_backward",
    "avg_pool2d_backward",
]


def _tap(geometry, kh, kw):
    """Slices selecting, for kernel tap ``(kh, kw)``, the pixel under it at every output position."""
    (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out_shape
    return slice(kh * dh, kh * dh + sh * oh, sh), slice(kw * dw, kw * dw + sw * ow, sw)


def im2col(x, kernel_size, *, stride=1, padding=0, dilation=1, padding_mode="zeros",
           layout="NCHW", out=None):
    """Reference :func:`fastconv.im2col`: one strided slice copy per kernel tap."""
    call = prepare_im2col(x, kernel_size, stride, padding, dilation, padding_mode, layout, out)
    image = pad_input(call.image, call.geometry, padding_mode, call.channels_last)
    image = image.transpose(0, 3, 1, 2) if call.channels_last else image  # (N, C, Hp, Wp)
    geo = call.geometry
    (kh_size, kw_size), (oh, ow) = geo.kernel, geo.out_shape
    patches = np.empty((call.batch, call.channels, kh_size, kw_size, oh, ow), call.dtype)
    for kh in range(kh_size):
        for kw in range(kw_size):
            rows, cols = _tap(geo, kh, kw)
            patches[:, :, kh, kw] = image[:, :, rows, cols]
    # rows (n, oh, ow); columns (c, kh, kw) for NCHW or (kh, kw, c) for NHWC
    order = (0, 4, 5, 2, 3, 1) if call.channels_last else (0, 4, 5, 1, 2, 3)
    result = patches.transpose(order).reshape(call.cols_shape)
    if call.out is None:
        return np.ascontiguousarray(result)
    np.copyto(call.out, result)
    return call.out


def col2im(cols, input_shape, kernel_size, *, stride=1, padding=0, dilation=1, layout="NCHW",
           out=None):
    """Reference :func:`fastconv.col2im`: one strided slice ``+=`` per kernel tap."""
    call = prepare_col2im(cols, input_shape, kernel_size, stride, padding, dilation, layout, out)
    geo = call.geometry
    (kh_size, kw_size), (oh, ow) = geo.kernel, geo.out_shape
    n, c = call.batch, call.channels
    if call.channels_last:
        patches = call.cols.reshape(n, oh, ow, kh_size, kw_size, c).transpose(0, 5, 3, 4, 1, 2)
    else:
        patches = call.cols.reshape(n, oh, ow, c, kh_size, kw_size).transpose(0, 3, 4, 5, 1, 2)
    image = np.zeros((n, c) + geo.padded_shape, call.dtype)
    for kh in range(kh_size):
        for kw in range(kw_size):
            rows, columns = _tap(geo, kh, kw)
            image[:, :, rows, columns] += patches[:, :, kh, kw]
    (top, _), (left, _) = geo.padding
    image = image[:, :, top:top + geo.in_shape[0], left:left + geo.in_shape[1]]
    if call.channels_last:
        image = image.transpose(0, 2, 3, 1)
    return finish(np.ascontiguousarray(image), call.batched, call.out)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", layout="NCHW", algorithm="auto", out=None):
    """Reference :func:`fastconv.conv2d`: a loop over kernel taps and groups.

    ``algorithm`` is accepted for signature compatibility and ignored.
    """
    call = prepare_conv2d(x, weight, bias, stride, padding, dilation, groups, padding_mode, layout, out)
    image = pad_input(call.x, call.geometry, call.padding_mode, call.channels_last)
    image = image.transpose(0, 3, 1, 2) if call.channels_last else image  # (N, C, Hp, Wp)
    w = call.weight.transpose(3, 2, 0, 1) if call.channels_last else call.weight  # OIHW
    k, cg, kh_size, kw_size = w.shape
    kg = k // call.groups
    result = np.zeros((image.shape[0], k) + call.geometry.out_shape, call.compute_dtype)
    for g in range(call.groups):
        channels, filters = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for kh in range(kh_size):
            for kw in range(kw_size):
                rows, cols = _tap(call.geometry, kh, kw)
                patch = image[:, channels, rows, cols]  # (N, Cg, OH, OW)
                # out[n, k, i, j] += sum_c w[k, c, kh, kw] * patch[n, c, i, j]
                result[:, filters] += np.einsum("kc,nchw->nkhw", w[filters, :, kh, kw], patch)
    result += call.bias[:, None, None]
    if call.channels_last:
        result = np.ascontiguousarray(result.transpose(0, 2, 3, 1))
    if call.result_dtype != call.compute_dtype:
        result = result.astype(call.result_dtype)
    return finish(result, call.batched, call.out)


def _nchw(a, channels_last):
    return a.transpose(0, 3, 1, 2) if channels_last else a


def _oihw(w, channels_last):
    return w.transpose(3, 2, 0, 1) if channels_last else w


def _to_layout(a, channels_last):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if channels_last else a


def _grad_input(call):
    """dL/dx: every tap scatters ``w[k, c, kh, kw] * grad[n, k]`` back under the kernel."""
    grad = _nchw(call.grad, call.channels_last)
    w = _oihw(call.weight, call.channels_last)
    k, cg, kh_size, kw_size = w.shape
    kg = k // call.groups
    geo = call.geometry
    n = grad.shape[0]
    image = np.zeros((n, cg * call.groups) + geo.padded_shape, call.compute_dtype)
    for g in range(call.groups):
        channels, filters = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for kh in range(kh_size):
            for kw in range(kw_size):
                rows, cols = _tap(geo, kh, kw)
                image[:, channels, rows, cols] += np.einsum("kc,nkhw->nchw", w[filters, :, kh, kw], grad[:, filters])
    (top, _), (left, _) = geo.padding
    image = image[:, :, top:top + geo.in_shape[0], left:left + geo.in_shape[1]]
    return _to_layout(image, call.channels_last)


def _finish_grad(result, call):
    if call.result_dtype != call.compute_dtype:
        result = result.astype(call.result_dtype)
    return finish(result, call.batched, call.out)


def conv2d_grad_input(grad_output, weight, input_shape, *, stride=1, padding=0, dilation=1, groups=1,
                      layout="NCHW", out=None):
    """Reference :func:`fastconv.conv2d_grad_input`: a scatter per kernel tap."""
    call = prepare_conv2d_grad_input(grad_output, weight, input_shape, stride, padding, dilation, groups,
                                     layout, out)
    return _finish_grad(_grad_input(call), call)


def conv2d_grad_weight(grad_output, x, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                       layout="NCHW", out=None):
    """Reference :func:`fastconv.conv2d_grad_weight`: one contraction per kernel tap."""
    call = prepare_conv2d_grad_weight(grad_output, x, weight_shape, stride, padding, dilation, groups,
                                      layout, out)
    grad = _nchw(call.grad, call.channels_last)
    image = _nchw(pad_input(call.x, call.geometry, "zeros", call.channels_last), call.channels_last)
    k, cg, kh_size, kw_size = call.dims
    kg = k // call.groups
    grad_w = np.zeros((k, cg, kh_size, kw_size), call.compute_dtype)
    for g in range(call.groups):
        channels, filters = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for kh in range(kh_size):
            for kw in range(kw_size):
                rows, cols = _tap(call.geometry, kh, kw)
                grad_w[filters, :, kh, kw] = np.einsum("nkhw,nchw->kc", grad[:, filters], image[:, channels, rows, cols])
    if call.channels_last:
        grad_w = grad_w.transpose(2, 3, 1, 0)
    result = np.ascontiguousarray(grad_w.astype(call.result_dtype, copy=False))
    if call.out is None:
        return result
    np.copyto(call.out, result)
    return call.out


def conv_transpose2d(x, weight, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                     layout="NCHW", out=None):
    """Reference :func:`fastconv.conv_transpose2d`: the input gradient of the forward convolution, plus bias."""
    call = prepare_conv_transpose2d(x, weight, bias, stride, padding, output_padding, dilation, groups,
                                    layout, out)
    result = _grad_input(call)
    if call.bias is not None:
        result = result + (call.bias if call.channels_last else call.bias[:, None, None])
    return _finish_grad(result, call)
