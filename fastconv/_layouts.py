"""Moving arrays between layouts: HWIO and OIHW weights, NHWC and NCHW images.

NHWC convolutions that run the NCHW kernels (all but the depthwise and 1x1
ones) take their weight to OIHW and their results back to NHWC; their
gradients do the same with the grad and the weight gradient. Each move is
a batch of 2-D transposes, run by
:func:`~fastconv._kernels._transpose.transpose_planes` in cache-sized tiles
(NumPy's copy of a transposed view reads a column a row apart each step: a
3x3 HWIO weight of 512 to 512 channels took it 16.5 ms to lay out as OIHW,
the kernel 1.6 ms on one thread). This module checks every array the kernel
gets; anything it does not take (2-byte items, unaligned or overlapping
arrays) is copied by NumPy.
"""

from __future__ import annotations

import numpy as np

from ._arrays import empty
from ._kernels import _transpose
from ._threads import threads_for

__all__ = ["transpose_planes", "hwio_to_oihw", "oihw_to_hwio", "nchw_to_nhwc", "nhwc_to_nchw", "channels_first"]


def _kernel_takes(src, dst):
    """Whether :func:`~fastconv._kernels._transpose.transpose_planes` may read ``src`` and write ``dst``."""
    size = src.itemsize
    return (size in (4, 8) and dst.itemsize == size and src.dtype.kind in "fiu" and src.dtype == dst.dtype
            and src.flags.aligned and dst.flags.aligned and dst.flags.writeable
            and src.strides[2] == size and dst.strides[2] == size
            and all(s % size == 0 for s in src.strides + dst.strides)
            and not np.may_share_memory(src, dst))


def transpose_planes(src, dst):
    """``dst[b, s, r] = src[b, r, s]``: a batch of 2-D transposes.

    Parameters
    ----------
    src : ndarray
        ``(B, R, S)``, any strides.
    dst : ndarray
        ``(B, S, R)`` of ``src``'s dtype, written.

    Returns
    -------
    ndarray
        ``dst``.

    Raises
    ------
    ValueError
        If the shapes or dtypes do not match.
    """
    if src.ndim != 3 or dst.shape != (src.shape[0], src.shape[2], src.shape[1]) or src.dtype != dst.dtype:
        raise ValueError(f"transpose_planes: a (B, S, R) destination of the source's dtype is needed for a "
                         f"(B, R, S) source; got {src.shape} {src.dtype} and {dst.shape} {dst.dtype}")
    if _kernel_takes(src, dst):
        _transpose.transpose_planes(src, dst, threads_for(src.size))
    else:
        np.copyto(dst, src.transpose(0, 2, 1))
    return dst


def hwio_to_oihw(weight):
    """An HWIO weight ``(KH, KW, C, K)`` as a new C-contiguous OIHW array ``(K, C, KH, KW)``."""
    kh, kw, c, k = weight.shape
    out = empty((k, c, kh, kw), weight.dtype)
    # plane c: its (taps, K) rows to (K, taps)
    transpose_planes(weight.reshape(kh * kw, c, k).transpose(1, 0, 2), out.reshape(k, c, kh * kw).transpose(1, 0, 2))
    return out


def oihw_to_hwio(weight):
    """An OIHW weight ``(K, C, KH, KW)`` as a new C-contiguous HWIO array ``(KH, KW, C, K)``."""
    k, c, kh, kw = weight.shape
    out = empty((kh, kw, c, k), weight.dtype)
    transpose_planes(weight.reshape(k, c, kh * kw).transpose(1, 0, 2), out.reshape(kh * kw, c, k).transpose(1, 0, 2))
    return out


def _result(shape, dtype, out):
    """``out`` (checked: C-contiguous, so that its reshapes are views) or a new array."""
    if out is None:
        return empty(shape, dtype)
    if out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"a C-contiguous out of shape {shape} is needed, got {out.shape}")
    return out


def nchw_to_nhwc(a, out=None):
    """An ``(N, C, H, W)`` array as ``(N, H, W, C)``: into ``out`` (C-contiguous) or a new array."""
    n, c, h, w = a.shape
    out = _result((n, h, w, c), a.dtype, out)
    transpose_planes(a.reshape(n, c, h * w), out.reshape(n, h * w, c))
    return out


def channels_first(a):
    """An ``(N, H, W, C)`` array as a C-contiguous ``(N, C, H, W)`` one: a view where that is one (one
    channel), else :func:`nhwc_to_nchw`'s copy."""
    view = a.transpose(0, 3, 1, 2)
    return view if view.flags.c_contiguous else nhwc_to_nchw(a)


def nhwc_to_nchw(a, out=None):
    """An ``(N, H, W, C)`` array as ``(N, C, H, W)``: into ``out`` (C-contiguous) or a new array."""
    n, h, w, c = a.shape
    out = _result((n, c, h, w), a.dtype, out)
    transpose_planes(a.reshape(n, h * w, c), out.reshape(n, c, h * w))
    return out
