"""Drop-in for the CS231n assignment-2 fast layers (``im2col_cython.pyx`` and ``fast_layers.py``).

Change ``from cs231n.fast_layers import ...`` (or ``from cs231n.im2col_cython
import ...``) to ``from fastconv.compat.cs231n import ...``; nothing else, and
no Cython build step in the assignment folder.

Layouts (as in the originals)
-----------------------------
* ``im2col_cython(x, field_height, field_width, padding, stride)`` returns
  ``(C*fh*fw, N*HH*WW)``: row ``c*fh*fw + i*fw + j`` (channel, kernel row,
  kernel column), column ``y*WW*N + x*N + n`` (output row, output column,
  image -- the image index varies fastest), with
  ``HH = (H + 2*padding - fh) // stride + 1`` (likewise ``WW``).
* ``col2im_cython`` takes that matrix back and *adds* every entry into the
  pixel it came from (the adjoint), cropping the padding.
* ``col2im_6d_cython`` takes the 6-D columns ``(C, HH, WW, N, out_h, out_w)``
  of the assignment's ``conv_forward_strides`` -- note that there ``HH, WW``
  are the *filter* height and width, not the output size.
* ``conv_forward_fast(x, w, b, conv_param)`` -> ``(out, cache)``,
  ``conv_backward_fast(dout, cache)`` -> ``(dx, dw, db)`` with
  ``conv_param = {'stride': s, 'pad': p}`` (zero padding on every side);
  ``max_pool_forward_fast(x, pool_param)`` -> ``(out, cache)``,
  ``max_pool_backward_fast(dout, cache)`` -> ``dx`` with
  ``pool_param = {'pool_height', 'pool_width', 'stride'}``.

Deliberate differences
----------------------
* **Non-square kernels are correct.** The original Cython computes the row
  as ``c*fh*fw + i*fh + j``, which scrambles the rows of a non-square field
  (and indexes past the last row when ``fh > fw``); the row here is
  ``c*fh*fw + i*fw + j``.
* **Every stride works.** The original ``conv_forward_im2col`` and
  ``max_pool_forward_im2col`` assert that the windows tile the (padded)
  input exactly; here the output size is floored and the leftover rows and
  columns are ignored, as in PyTorch.
* **dtypes.** The originals' Cython takes float32 or float64 only. Here
  ``im2col_cython`` / ``col2im_cython`` / ``col2im_6d_cython`` take every
  numeric dtype and keep it; the convolution follows :func:`fastconv.conv2d`
  (float32 stays float32, integer inputs are computed exactly in int64);
  max pooling keeps the input's dtype and its gradient is floating (float
  ``dout`` keeps its dtype, integer ``dout`` gives float64).
* **Ties in max pooling.** The original's "reshape" path (square windows
  with stride equal to the window, tiling the input) splits the gradient
  evenly among equal maxima of a window, its "im2col" path gives it to the
  first; here it always goes to the first maximum in row-major order (as in
  PyTorch and in the assignment's naive layers).
* **Caches are different objects.** ``conv_forward_fast``'s cache is
  ``(x, w, b, conv_param, None)`` (same length as the original's
  ``(x, w, b, conv_param, x_cols)``; no column matrix is built).
  ``max_pool_forward_fast``'s cache is ``(x, indices, pool_param)`` with
  ``indices`` from :func:`fastconv.max_pool2d`. Treat both as opaque.
* Results are C-contiguous arrays (the original ``col2im`` functions return
  a sliced view of a padded buffer), and bad geometry raises ``ValueError``.
"""

from __future__ import annotations

import numpy as np

from .. import col2im as _col2im
from .. import (conv2d, conv2d_grad_input, conv2d_grad_weight, conv_output_shape, max_pool2d,
                max_pool2d_backward)
from .. import im2col as _im2col

__all__ = [
    "im2col_cython",
    "col2im_cython",
    "col2im_6d_cython",
    "conv_forward_fast",
    "conv_backward_fast",
    "max_pool_forward_fast",
    "max_pool_backward_fast",
]


def _four_d(x, name):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {x.shape}")
    return x


def _columns(cols, rows, name):
    """``cols`` as a ``(rows, -1)`` array, or a ``ValueError`` naming ``name``."""
    cols = np.asarray(cols)
    if rows <= 0 or cols.size % rows:
        raise ValueError(f"{name} must have {rows} rows (C*field_height*field_width), got shape {cols.shape}")
    return cols.reshape(rows, -1)


def im2col_cython(x, field_height, field_width, padding, stride):
    """Unfold every window into a column, CS231n layout.

    Parameters
    ----------
    x : array_like
        ``(N, C, H, W)``, any numeric dtype.
    field_height, field_width : int
        Window size.
    padding : int
        Zero padding on every side.
    stride : int
        Step between windows.

    Returns
    -------
    ndarray
        ``(C*field_height*field_width, N*HH*WW)``, the dtype of ``x``:
        ``cols[c*fh*fw + i*fw + j, y*WW*N + x*N + n] = x_padded[n, c, y*stride + i, x*stride + j]``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.compat.cs231n import im2col_cython
    >>> x = np.arange(2 * 9.0).reshape(2, 1, 3, 3)   # two images
    >>> im2col_cython(x, 2, 2, 0, 1)[:, :4]          # windows (0,0) and (0,1), images interleaved
    array([[ 0.,  9.,  1., 10.],
           [ 1., 10.,  2., 11.],
           [ 3., 12.,  4., 13.],
           [ 4., 13.,  5., 14.]])
    """
    x = _four_d(x, "x")
    cols = _im2col(x, (field_height, field_width), stride=stride, padding=padding)  # (N*HH*WW, C*fh*fw)
    n, depth = x.shape[0], cols.shape[1]
    # (n, window, tap) -> (tap, window, n): the image index becomes the fastest
    return np.ascontiguousarray(cols.reshape(n, -1, depth).transpose(2, 1, 0)).reshape(depth, -1)


def col2im_cython(cols, N, C, H, W, field_height, field_width, padding, stride):
    """Sum CS231n columns back into images: the adjoint of :func:`im2col_cython`.

    Parameters
    ----------
    cols : array_like
        ``(C*field_height*field_width, N*HH*WW)`` in the layout of
        :func:`im2col_cython`. Any numeric dtype.
    N, C, H, W : int
        Shape of the images.
    field_height, field_width, padding, stride : int
        As for :func:`im2col_cython`.

    Returns
    -------
    ndarray
        ``(N, C, H, W)``, the dtype of ``cols``; overlapping entries are
        added, entries from the padding dropped.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.compat.cs231n import col2im_cython, im2col_cython
    >>> x = np.ones((1, 1, 3, 3))
    >>> col2im_cython(im2col_cython(x, 2, 2, 0, 1), 1, 1, 3, 3, 2, 2, 0, 1)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    shape = (int(N), int(C), int(H), int(W))
    depth = shape[1] * int(field_height) * int(field_width)
    cols = _columns(cols, depth, "cols")
    # (tap, window, n) -> fastconv's (n, window, tap)
    cols = cols.reshape(depth, -1, shape[0]).transpose(2, 1, 0).reshape(-1, depth)
    return _col2im(cols, shape, (field_height, field_width), stride=stride, padding=padding)


def col2im_6d_cython(cols, N, C, H, W, HH, WW, pad, stride):
    """Sum the 6-D columns of ``conv_forward_strides`` back into images.

    Parameters
    ----------
    cols : array_like
        ``(C, HH, WW, N, out_h, out_w)``: ``cols[c, i, j, n, y, x]`` belongs
        to pixel ``(y*stride + i, x*stride + j)`` of channel ``c`` of image
        ``n`` in the padded input. (A 2-D ``(C*HH*WW, N*out_h*out_w)``
        array with the same memory order is accepted too.)
    N, C, H, W : int
        Shape of the images.
    HH, WW : int
        The **filter** height and width (not the output size, despite the
        names; they are the assignment's ``w.shape[2:]``).
    pad : int
        Zero padding on every side.
    stride : int
        Step between windows.

    Returns
    -------
    ndarray
        ``(N, C, H, W)``, the dtype of ``cols``: every entry added to its
        pixel, the padding cropped off, with
        ``out_h = (H + 2*pad - HH) // stride + 1`` and
        ``out_w = (W + 2*pad - WW) // stride + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.compat.cs231n import col2im_6d_cython
    >>> cols = np.ones((1, 2, 2, 1, 2, 2))   # C=1, 2x2 filter, N=1, 2x2 output
    >>> col2im_6d_cython(cols, 1, 1, 3, 3, 2, 2, 0, 1)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    shape = (int(N), int(C), int(H), int(W))
    kh, kw = int(HH), int(WW)
    out_h, out_w = conv_output_shape(shape[2:], (kh, kw), stride=stride, padding=pad).shape
    cols = np.asarray(cols)
    six_d = (shape[1], kh, kw, shape[0], out_h, out_w)
    if cols.size != np.prod(six_d, dtype=np.int64):
        raise ValueError(f"cols must have shape (C, HH, WW, N, out_h, out_w) = {six_d}, got shape {cols.shape}")
    # (c, i, j, n, y, x) -> fastconv's (n, y, x, c, i, j)
    cols = cols.reshape(six_d).transpose(3, 4, 5, 0, 1, 2).reshape(shape[0] * out_h * out_w, -1)
    return _col2im(cols, shape, (kh, kw), stride=stride, padding=pad)


def conv_forward_fast(x, w, b, conv_param):
    """Convolution layer forward pass.

    Parameters
    ----------
    x : array_like
        ``(N, C, H, W)``.
    w : array_like
        Filters ``(F, C, HH, WW)``; any ``HH``, ``WW``.
    b : array_like
        Biases, ``F`` values.
    conv_param : dict
        ``'stride'`` and ``'pad'`` (zero padding on every side).

    Returns
    -------
    out : ndarray
        ``(N, F, H', W')`` with ``H' = (H + 2*pad - HH) // stride + 1``,
        ``W' = (W + 2*pad - WW) // stride + 1``; dtype as :func:`fastconv.conv2d`.
    cache : tuple
        ``(x, w, b, conv_param, None)``, for :func:`conv_backward_fast`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.compat.cs231n import conv_forward_fast
    >>> x, w, b = np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 2)), np.arange(4.0)
    >>> out, cache = conv_forward_fast(x, w, b, {'stride': 2, 'pad': 1})
    >>> out.shape, out[0, :, 1, 1]
    ((2, 4, 3, 3), array([18., 19., 20., 21.]))
    """
    x = _four_d(x, "x")
    w = _four_d(w, "w")
    b = np.asarray(b).reshape(-1)
    stride, pad = conv_param["stride"], conv_param["pad"]
    out = conv2d(x, w, b, stride=stride, padding=pad)
    return out, (x, w, b, conv_param, None)


def conv_backward_fast(dout, cache):
    """Convolution layer backward pass.

    Parameters
    ----------
    dout : array_like
        Upstream gradient ``(N, F, H', W')``.
    cache : tuple
        From :func:`conv_forward_fast`.

    Returns
    -------
    dx : ndarray
        ``x.shape``.
    dw : ndarray
        ``w.shape``.
    db : ndarray
        ``(F,)``: ``dout`` summed over images and positions.
    """
    x, w, _, conv_param, _ = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    dout = np.asarray(dout)
    dx = conv2d_grad_input(dout, w, x.shape, stride=stride, padding=pad)
    dw = conv2d_grad_weight(dout, x, w.shape, stride=stride, padding=pad)
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


def max_pool_forward_fast(x, pool_param):
    """Max-pooling forward pass.

    Parameters
    ----------
    x : array_like
        ``(N, C, H, W)``; any real dtype (kept).
    pool_param : dict
        ``'pool_height'``, ``'pool_width'``, ``'stride'``. The windows need
        not tile the input: leftover rows and columns are ignored.

    Returns
    -------
    out : ndarray
        ``(N, C, H', W')`` with ``H' = (H - pool_height) // stride + 1``,
        ``W' = (W - pool_width) // stride + 1``.
    cache : tuple
        ``(x, indices, pool_param)``, for :func:`max_pool_backward_fast`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.compat.cs231n import max_pool_forward_fast
    >>> x = np.arange(25.0).reshape(1, 1, 5, 5)
    >>> max_pool_forward_fast(x, {'pool_height': 2, 'pool_width': 3, 'stride': 2})[0][0, 0]
    array([[ 7.,  9.],
           [17., 19.]])
    """
    x = _four_d(x, "x")
    kernel = (pool_param["pool_height"], pool_param["pool_width"])
    out, indices = max_pool2d(x, kernel, stride=pool_param["stride"], return_indices=True)
    return out, (x, indices, pool_param)


def max_pool_backward_fast(dout, cache):
    """Max-pooling backward pass.

    Parameters
    ----------
    dout : array_like
        Upstream gradient, the shape of the forward output.
    cache : tuple
        From :func:`max_pool_forward_fast`.

    Returns
    -------
    ndarray
        ``dx`` of ``x``'s shape: each ``dout`` entry added to the pixel its
        window's (first) maximum came from. Floating ``dout`` keeps its
        dtype; integer ``dout`` gives float64.
    """
    x, indices, _ = cache
    return max_pool2d_backward(dout, indices, x.shape)
