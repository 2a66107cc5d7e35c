"""Drop-in for "deep learning from scratch": ``common/util.py`` and the conv layers of ``common/layers.py``.

Change ``from common.util import im2col, col2im`` to
``from fastconv.compat.dlfs import im2col, col2im`` and
``from common.layers import Convolution, Pooling`` to
``from fastconv.compat.dlfs import Convolution, Pooling``; nothing else.

What is the same as the originals
---------------------------------
* Signatures, argument order and defaults, including ``Pooling``'s
  ``stride=1``.
* ``im2col`` returns ``(N*out_h*out_w, C*filter_h*filter_w)``, row index
  ``(n, oh, ow)``, column index ``(c, kh, kw)``, with zero padding;
  ``out = (H + 2*pad - filter_h) // stride + 1``.
* ``col2im`` is the adjoint of ``im2col``: overlapping contributions are
  *added* (not overwritten) and the padding is cropped off.
* ``Convolution`` and ``Pooling`` have ``forward(x)`` / ``backward(dout)``
  and the attributes ``W``, ``b``, ``dW``, ``db``, ``stride``, ``pad``,
  ``x``, ``col``, ``col_W`` (``Convolution``) and ``pool_h``, ``pool_w``,
  ``stride``, ``pad``, ``x``, ``arg_max`` (``Pooling``). ``forward`` gives
  ``(N, FN, out_h, out_w)``; ``backward`` returns ``dx`` of ``x``'s shape
  and (``Convolution``) sets ``dW`` (shape of ``W``) and ``db`` (``(FN,)``).
* Numerically the same results, up to floating-point summation order.

Deliberate differences
----------------------
* **dtypes.** The originals always compute in float64. Here floating (and
  complex) inputs keep their dtype: float32 stays float32 end to end, which
  halves memory and is what training code wants (the layers follow
  ``np.result_type`` of ``x``, ``W`` and ``b``: float32 weights are needed
  for a float32 result, as the book's float64 ``np.random.randn`` weights
  give float64). Bool and integer inputs are
  converted to float64 first, as the originals do, so their results are the
  originals' float64 values exactly (``col2im`` of integer columns does not
  wrap around).
* **Contiguity.** Results are C-contiguous arrays; the originals return
  transposed or sliced views of larger buffers.
* **Convolution.col** is not computed by ``forward`` (the convolution runs
  without a column matrix, ``fastconv.conv2d``). Reading ``layer.col`` builds
  the columns of the cached ``x`` on demand, so code that inspects it still
  works. ``col_W`` is the same ``W.reshape(FN, -1).T`` view as the
  original's, and ``backward`` uses the weights it saw in ``forward``, as the
  original does; ``backward`` computes ``dW`` from the cached ``x``, so
  assigning to ``layer.col`` has no effect on it.
* **Pooling.arg_max** holds ``fastconv.max_pool2d``'s indices: an int64
  array of the output's shape ``(N, C, out_h, out_w)`` whose entries index
  the flattened ``H*W`` plane of the input (PyTorch's convention), instead
  of the original's flat array of positions inside each window in
  ``(n, oh, ow, c)`` order. Both pick the first maximum of a window in
  row-major order.
* **Pooling with pad > 0** works here, with PyTorch's semantics (padding is
  never the maximum; ``pad`` at most half the window). The original cannot
  run with ``pad > 0`` (its output-size formula ignores ``pad`` and the
  reshape fails).
* **NaN.** A window holding several NaN reports the last of them as its
  ``arg_max`` (PyTorch), the original the first; the forward values agree.
* Inputs are validated: a non-4-D array or a window larger than the padded
  image raises ``ValueError`` with a message instead of a reshape error.
"""

from __future__ import annotations

import numpy as np

from .. import col2im as _col2im
from .. import conv2d, conv2d_grad_input, conv2d_grad_weight, max_pool2d, max_pool2d_backward
from .. import im2col as _im2col

__all__ = ["im2col", "col2im", "Convolution", "Pooling"]


def _floating(a):
    """``a`` as an ndarray; bool and integer arrays become float64 (the originals' dtype)."""
    a = np.asarray(a)
    if a.dtype.kind not in "fc":
        a = a.astype(np.float64)
    return a


def _four_d(shape, name):
    """``shape`` as four ints, or a ``ValueError`` naming ``name``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {shape}")
    return shape


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """Unfold every ``filter_h x filter_w`` window of a batch into one row.

    Parameters
    ----------
    input_data : array_like
        Images ``(N, C, H, W)``.
    filter_h, filter_w : int
        Window height and width.
    stride : int, optional
        Step between windows (both axes). Default 1.
    pad : int, optional
        Zero padding on every side. Default 0.

    Returns
    -------
    ndarray
        ``(N*out_h*out_w, C*filter_h*filter_w)`` with
        ``out_h = (H + 2*pad - filter_h) // stride + 1`` (likewise ``out_w``);
        row ``(n*out_h + oh)*out_w + ow``, column ``(c*filter_h + kh)*filter_w + kw``.
        Floating and complex inputs keep their dtype; bool and integers
        give float64 (the original always returns float64).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.compat.dlfs import im2col
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> im2col(x, 2, 2, stride=2)
    array([[ 0.,  1.,  4.,  5.],
           [ 2.,  3.,  6.,  7.],
           [ 8.,  9., 12., 13.],
           [10., 11., 14., 15.]])
    """
    x = _floating(input_data)
    _four_d(x.shape, "input_data")
    return _im2col(x, (filter_h, filter_w), stride=stride, padding=pad)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """Sum columns back into images: the adjoint of :func:`im2col`.

    Parameters
    ----------
    col : array_like
        ``(N*out_h*out_w, C*filter_h*filter_w)`` as returned by :func:`im2col`
        (any shape with that many elements in that order is accepted, as by
        the original's ``reshape``).
    input_shape : tuple of int
        ``(N, C, H, W)`` of the images.
    filter_h, filter_w, stride, pad
        As for :func:`im2col`.

    Returns
    -------
    ndarray
        ``input_shape``; each column entry is *added* to the pixel it was
        copied from, entries from the padding are dropped. Floating and
        complex columns keep their dtype; bool and integers give float64.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.compat.dlfs import col2im, im2col
    >>> x = np.ones((1, 1, 3, 3))
    >>> col2im(im2col(x, 2, 2), x.shape, 2, 2)[0, 0]  # windows covering each pixel
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    n, c, h, w = _four_d(input_shape, "input_shape")
    cols = _floating(col)
    depth = c * int(filter_h) * int(filter_w)
    if cols.ndim != 2 and depth > 0 and cols.size % depth == 0:
        cols = cols.reshape(-1, depth)
    return _col2im(cols, (n, c, h, w), (filter_h, filter_w), stride=stride, padding=pad)


class Convolution:
    """Convolution layer with ``forward`` / ``backward``, computed by fastconv's kernels.

    Parameters
    ----------
    W : ndarray
        Filters ``(FN, C, FH, FW)``.
    b : ndarray
        Bias ``(FN,)`` (anything that broadcasts against ``(..., FN)``, as
        in the original).
    stride : int, optional
        Default 1.
    pad : int, optional
        Zero padding on every side. Default 0.

    Attributes
    ----------
    W, b, stride, pad
        As given; may be replaced between steps (an optimiser updating
        ``W`` in place or assigning a new array both work).
    dW, db : ndarray
        Gradients set by :meth:`backward`: ``W.shape`` and ``(FN,)``.
    x : ndarray
        The last ``forward`` input (converted to float64 if it was bool or
        integer).
    col_W : ndarray
        ``W.reshape(FN, -1).T`` of the last ``forward`` (a view, as in the
        original); :meth:`backward` uses these weights.
    col : ndarray
        ``im2col`` of the last input. Not computed by ``forward`` (fastconv
        convolves without a column matrix); built on first access.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.compat.dlfs import Convolution
    >>> rng = np.random.default_rng(0)
    >>> conv = Convolution(rng.standard_normal((4, 3, 3, 3)), np.zeros(4), stride=1, pad=1)
    >>> out = conv.forward(rng.standard_normal((2, 3, 8, 8)))
    >>> out.shape
    (2, 4, 8, 8)
    >>> conv.backward(np.ones_like(out)).shape, conv.dW.shape, conv.db.shape
    ((2, 3, 8, 8), (4, 3, 3, 3), (4,))
    """

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self._col = None
        self._col_geometry = None
        self.col_W = None
        self.dW = None
        self.db = None

    @property
    def col(self):
        """Columns of the last input, ``im2col(x, FH, FW, stride, pad)``, built on first access."""
        if self._col is None and self.x is not None and self._col_geometry is not None:
            self._col = im2col(self.x, *self._col_geometry)
        return self._col

    @col.setter
    def col(self, value):
        self._col = value

    def forward(self, x):
        """``(N, FN, out_h, out_w)`` = cross-correlation of ``x`` with ``W``, plus ``b``."""
        x = _floating(x)
        _four_d(x.shape, "x")
        weight = np.asarray(self.W)
        fn, _, fh, fw = _four_d(weight.shape, "W")
        bias = np.asarray(self.b)
        if bias.shape == (fn,):
            out = conv2d(x, weight, bias, stride=self.stride, padding=self.pad)
        else:  # broadcast b against the trailing FN axis, as the original's ``np.dot(col, col_W) + b``
            out = conv2d(x, weight, stride=self.stride, padding=self.pad)
            out = np.ascontiguousarray((out.transpose(0, 2, 3, 1) + bias).transpose(0, 3, 1, 2))
        self.x = x
        self.col_W = weight.reshape(fn, -1).T
        self._col = None
        self._col_geometry = (fh, fw, self.stride, self.pad)
        return out

    def backward(self, dout):
        """``dx`` (shape of ``x``); sets ``dW`` and ``db``."""
        if self.x is None:
            raise ValueError("backward called before forward")
        dout = _floating(dout)
        fn, c, fh, fw = np.shape(self.W)
        weight = self.col_W.T.reshape(fn, c, fh, fw)  # the weights forward used
        self.db = dout.sum(axis=(0, 2, 3))
        self.dW = conv2d_grad_weight(dout, self.x, weight.shape, stride=self.stride, padding=self.pad)
        return conv2d_grad_input(dout, weight, self.x.shape, stride=self.stride, padding=self.pad)


class Pooling:
    """Max-pooling layer with ``forward`` / ``backward``, computed by fastconv's kernels.

    Parameters
    ----------
    pool_h, pool_w : int
        Window height and width.
    stride : int, optional
        Step between windows. Default 1, as in the original (the book's
        networks pass ``stride=2``).
    pad : int, optional
        Implicit padding that is never the maximum (PyTorch's rule: at most
        half the window). Default 0.

    Attributes
    ----------
    x : ndarray
        The last ``forward`` input (converted to float64 if it was bool or
        integer).
    arg_max : ndarray of int64
        Where each maximum came from: shape ``(N, C, out_h, out_w)``,
        indexing the flattened ``H*W`` plane of its channel (the original
        stores positions inside each window, flattened in ``(n, oh, ow, c)``
        order).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.compat.dlfs import Pooling
    >>> pool = Pooling(2, 2, stride=2)
    >>> x = np.array([[[[1., 2., 5., 0.], [3., 4., 1., 1.], [0., 7., 2., 8.], [6., 1., 3., 2.]]]])
    >>> pool.forward(x)[0, 0]
    array([[4., 5.],
           [7., 8.]])
    >>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0]
    array([[0., 0., 1., 0.],
           [0., 1., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.]])
    """

    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None
        self.arg_max = None

    def forward(self, x):
        """``(N, C, out_h, out_w)``: the maximum of every window."""
        x = _floating(x)
        _four_d(x.shape, "x")
        out, self.arg_max = max_pool2d(x, (self.pool_h, self.pool_w), stride=self.stride,
                                       padding=self.pad, return_indices=True)
        self.x = x
        return out

    def backward(self, dout):
        """``dx`` (shape of ``x``): each ``dout`` entry added where its window's maximum was."""
        if self.x is None:
            raise ValueError("backward called before forward")
        return max_pool2d_backward(_floating(dout), self.arg_max, self.x.shape)
