"""The one place where convolution geometry is resolved and checked.

Every public function (fast and reference alike) turns its ``kernel_size``,
``stride``, ``padding``, ``dilation``, ``layout`` and ``padding_mode``
arguments into plain integers here, for one, two or three spatial axes.
Nothing downstream re-derives an output size or re-validates an argument:
the Cython kernels index without bounds checks and rely on what this module
proves.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "ConvGeometry",
    "OutputShape",
    "PADDING_MODES",
    "conv_geometry",
    "conv_output_shape",
    "check_element_count",
    "resolve_layout",
    "check_padding_mode",
    "as_int_tuple",
    "resolve_padding",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

#: Spatial axis letters and the two layouts accepted for 1, 2 and 3 spatial axes.
_LAYOUTS = {
    1: ("NCW", "NWC"),
    2: ("NCHW", "NHWC"),
    3: ("NCDHW", "NDHWC"),
}

INTP_MAX = int(np.iinfo(np.intp).max)


def _fmt(value):
    """Short repr of a user value for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_index(value, name):
    """Return ``value`` as a Python int, rejecting bools, floats and others."""
    if type(value) is int:  # the common case, without the checks below
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got the bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer or a sequence of integers, got {_fmt(value)} "
            f"of type {type(value).__name__}"
        ) from None


def as_count(value, name, minimum):
    """``value`` as a Python int of at least ``minimum`` (groups, threads, bytes...).

    TypeError for bools and non-integers, ValueError below ``minimum``; the
    messages name the value as ``name`` ("groups", "the number of threads").
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int >= {minimum}, got {_fmt(value)}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def as_int_tuple(value, ndim, name, minimum=1):
    """Normalize an int or a sequence of ``ndim`` ints to a tuple of Python ints.

    Parameters
    ----------
    value : int or sequence of int
        A single value for every spatial axis, or one per axis.
    ndim : int
        Number of spatial axes (1, 2 or 3).
    name : str
        Argument name used in error messages.
    minimum : int, optional
        Smallest value allowed (default 1).

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        Wrong length or a value below ``minimum``.
    TypeError
        A value that is not an integer.
    """
    if type(value) is int:  # the common case first: plain Python ints skip the ABC checks
        values = (value,) * ndim
    elif isinstance(value, numbers.Integral) or (
        isinstance(value, np.ndarray) and value.ndim == 0
    ):
        values = (_as_index(value, name),) * ndim
    elif isinstance(value, (tuple, list, np.ndarray)):
        if len(value) != ndim:
            raise ValueError(
                f"{name} must be an int or a sequence of {ndim} ints, got {_fmt(value)} "
                f"(length {len(value)})"
            )
        values = tuple(_as_index(v, name) for v in value)
    else:
        raise TypeError(
            f"{name} must be an int or a sequence of {ndim} ints, got {_fmt(value)} "
            f"of type {type(value).__name__}"
        )
    if any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum} on every axis, got {_fmt(value)}")
    return values


def resolve_padding(padding, ndim):
    """Explicit padding (int, pair or pair of pairs; no strings) as ``(before, after)`` per axis."""
    if isinstance(padding, str):
        raise ValueError(f"padding must be ints or (before, after) pairs here, got {padding!r}")
    return _resolve_padding(padding, (1,) * ndim, (1,) * ndim, (1,) * ndim, (1,) * ndim)


def _resolve_padding(padding, in_shape, kernel, stride, dilation):
    """Return padding as one ``(before, after)`` pair per spatial axis."""
    ndim = len(in_shape)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * ndim
        if mode == "same":
            # TensorFlow's rule, for every stride: out = ceil(in / stride), the
            # odd pixel of padding goes after (bottom / right).
            pads = []
            for n, k, s, d in zip(in_shape, kernel, stride, dilation):
                out = -(-n // s)
                total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(
            f"padding must be an int, a sequence, 'valid' or 'same', got the string {padding!r}"
        )
    if isinstance(padding, numbers.Integral) or (
        isinstance(padding, np.ndarray) and padding.ndim == 0
    ):
        p = _as_index(padding, "padding")
        pads = ((p, p),) * ndim
    elif isinstance(padding, (tuple, list, np.ndarray)):
        if len(padding) != ndim:
            raise ValueError(
                f"padding must be an int, 'valid', 'same', or a sequence of {ndim} items "
                f"(each an int or a (before, after) pair), got {_fmt(padding)}"
            )
        pads = []
        for item in padding:
            if isinstance(item, (tuple, list, np.ndarray)):
                if len(item) != 2:
                    raise ValueError(
                        f"padding pairs must be (before, after), got {_fmt(item)} "
                        f"in padding={_fmt(padding)}"
                    )
                pads.append((_as_index(item[0], "padding"), _as_index(item[1], "padding")))
            else:
                p = _as_index(item, "padding")
                pads.append((p, p))
        pads = tuple(pads)
    else:
        raise TypeError(
            f"padding must be an int, a sequence, 'valid' or 'same', got {_fmt(padding)} "
            f"of type {type(padding).__name__}"
        )
    if any(p < 0 for pair in pads for p in pair):
        raise ValueError(f"padding must be >= 0, got {_fmt(padding)}")
    return pads


@dataclass(frozen=True)
class ConvGeometry:
    """Resolved geometry of a convolution-like sliding window.

    All fields are tuples of Python ints with one entry per spatial axis;
    ``padding`` holds ``(before, after)`` pairs.
    """

    in_shape: tuple
    kernel: tuple
    stride: tuple
    dilation: tuple
    padding: tuple
    out_shape: tuple

    @property
    def ndim(self):
        """Number of spatial axes."""
        return len(self.in_shape)

    @property
    def padded_shape(self):
        """Spatial shape of the input once padded."""
        return tuple(n + a + b for n, (a, b) in zip(self.in_shape, self.padding))

    @property
    def has_padding(self):
        """True when any side is padded."""
        return any(a or b for a, b in self.padding)

    @property
    def out_size(self):
        """Number of output positions per image and channel (product of ``out_shape``)."""
        return math.prod(self.out_shape)

    @property
    def kernel_size(self):
        """Number of taps in the window (product of ``kernel``)."""
        return math.prod(self.kernel)


class OutputShape(NamedTuple):
    """Result of :func:`conv_output_shape`: the output's spatial shape and padding used."""

    shape: tuple
    padding: tuple


def conv_geometry(
    in_shape, kernel_size, stride=1, padding=0, dilation=1, *, ceil_mode=False, pool=False
):
    """Resolve and check the geometry of a sliding window.

    Parameters
    ----------
    in_shape : sequence of int
        Spatial shape of the input (1, 2 or 3 axes).
    kernel_size, stride, dilation : int or sequence of int
        Each >= 1.
    padding : int, sequence, 'valid' or 'same'
        See :func:`conv_output_shape`.
    ceil_mode : bool, optional
        Pooling only: round the output size up, as PyTorch's pools do (a
        window that would start inside the right padding is dropped).
    pool : bool, optional
        Apply PyTorch's pooling rule that padding be at most half the kernel.

    Returns
    -------
    ConvGeometry

    Raises
    ------
    ValueError
        A kernel larger than the padded input, a negative or malformed value.
    """
    in_shape = tuple(_as_index(n, "input shape") for n in in_shape)
    ndim = len(in_shape)
    if ndim not in _LAYOUTS:
        raise ValueError(f"only 1, 2 or 3 spatial axes are supported, got {ndim}")
    if any(n < 0 for n in in_shape):
        raise ValueError(f"input spatial shape must be >= 0, got {in_shape}")
    kernel = as_int_tuple(kernel_size, ndim, "kernel_size")
    stride = as_int_tuple(stride, ndim, "stride")
    dilation = as_int_tuple(dilation, ndim, "dilation")
    pads = _resolve_padding(padding, in_shape, kernel, stride, dilation)
    if pool:
        for k, (a, b) in zip(kernel, pads):
            if max(a, b) > k // 2:
                raise ValueError(
                    f"padding must be at most half the kernel size for pooling, got "
                    f"padding={_fmt(padding)} with kernel_size={kernel}"
                )
    out = []
    for n, k, s, d, (a, b) in zip(in_shape, kernel, stride, dilation, pads):
        span = d * (k - 1) + 1
        if n + a + b < span:
            raise ValueError(
                f"kernel_size {kernel} with dilation {dilation} spans {span} pixels, larger than "
                f"the padded input {tuple(m + p + q for m, (p, q) in zip(in_shape, pads))} "
                f"(input {in_shape}, padding {pads})"
            )
        num = n + a + b - span
        o = (-(-num // s) if ceil_mode else num // s) + 1
        if ceil_mode and (o - 1) * s >= n + a:
            o -= 1
        out.append(o)
    if pool and math.prod(kernel) > INTP_MAX:
        # the kernels count a window's pixels (average pooling's divisor) in intp
        raise ValueError(
            f"kernel_size {kernel} has {math.prod(kernel)} taps per window, which overflows "
            f"the platform's index type (max {INTP_MAX})"
        )
    # Canonical form: a stride is irrelevant on an axis with a single window, and a
    # dilation on an axis with a single tap. Setting them to 1 there changes no
    # result, and spares every implementation a value that may be far larger than
    # any array (a stride of 2**70 on a 5-pixel image is valid, but it must not size
    # a buffer or reach a C integer).
    stride = tuple(1 if o == 1 else s for o, s in zip(out, stride))
    dilation = tuple(1 if k == 1 else d for k, d in zip(kernel, dilation))
    return ConvGeometry(in_shape, kernel, stride, dilation, pads, tuple(out))


def conv_output_shape(input_shape, kernel_size, *, stride=1, padding=0, dilation=1):
    """Output spatial shape of a convolution, and the padding it resolves to.

    ``out = (in + pad_before + pad_after - dilation * (k - 1) - 1) // stride + 1``
    per spatial axis.

    Parameters
    ----------
    input_shape : sequence of int
        Spatial input shape: ``(W,)``, ``(H, W)`` or ``(D, H, W)``.
    kernel_size : int or sequence of int
        Kernel extent per axis, each >= 1.
    stride : int or sequence of int, optional
        Step per axis, each >= 1 (default 1).
    padding : int, sequence, 'valid' or 'same', optional
        An int pads every side equally; a sequence gives one entry per axis,
        either an int (both sides) or a ``(before, after)`` pair. ``'valid'``
        means no padding; ``'same'`` follows TensorFlow for every stride:
        ``out = ceil(in / stride)`` with the odd pixel of padding after.
    dilation : int or sequence of int, optional
        Spacing between kernel taps, each >= 1 (default 1).

    Returns
    -------
    OutputShape
        Named tuple ``(shape, padding)``: the output spatial shape and the
        padding as ``(before, after)`` pairs per axis.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.conv_output_shape((28, 28), 5)
    OutputShape(shape=(24, 24), padding=((0, 0), (0, 0)))
    >>> fastconv.conv_output_shape((5, 5), 3, stride=2, padding="same")
    OutputShape(shape=(3, 3), padding=((1, 1), (1, 1)))
    """
    if isinstance(input_shape, numbers.Integral):
        raise TypeError(
            f"input_shape must be a sequence of 1, 2 or 3 ints (the spatial shape), got {input_shape!r}"
        )
    geo = conv_geometry(input_shape, kernel_size, stride, padding, dilation)
    return OutputShape(geo.out_shape, geo.padding)


def check_element_count(shape, name, itemsize=1):
    """Raise ValueError if an array of ``shape`` could not be indexed with ``intp``.

    That is: more than intp-max elements, or (with ``itemsize``) more than
    intp-max bytes. Like NumPy, an empty shape is refused too when its non-zero
    axes times ``itemsize`` multiply past intp-max: NumPy cannot create it. Sizes are multiplied as
    Python integers, so the check itself never overflows.

    Returns
    -------
    int
        The element count.
    """
    shape = tuple(int(s) for s in shape)
    count = math.prod(shape)
    # NumPy refuses a shape whose non-zero axes, times the item size, multiply past intp even
    # when another axis is 0 (an empty array): so does this check
    nonzero_bytes = math.prod(s for s in shape if s) * itemsize
    if count == 0 and nonzero_bytes > INTP_MAX:
        raise ValueError(
            f"{name} would have shape {shape}: no elements, but its non-zero axes times the "
            f"{itemsize}-byte items make {nonzero_bytes} bytes, which overflows the platform's index "
            f"type (max {INTP_MAX}), so NumPy cannot create it"
        )
    if count > INTP_MAX:
        raise ValueError(
            f"{name} would have shape {shape} = {count} elements, which overflows "
            f"the platform's index type (max {INTP_MAX})"
        )
    if count * itemsize > INTP_MAX:
        raise ValueError(
            f"{name} would have shape {shape} = {count} elements of {itemsize} bytes, "
            f"{count * itemsize} bytes in all, which overflows the platform's index type "
            f"(max {INTP_MAX})"
        )
    return count


def resolve_layout(layout, ndim):
    """Return True for channels-last, False for channels-first; raise on anything else."""
    names = _LAYOUTS[ndim]
    if not isinstance(layout, str) or layout.upper() not in names:
        raise ValueError(f"layout must be one of {names!r}, got {_fmt(layout)}")
    return layout.upper() == names[1]


def check_padding_mode(padding_mode, geometry):
    """Validate ``padding_mode`` against the resolved padding (PyTorch's limits).

    ``reflect`` needs padding < input size on each axis, ``circular`` needs
    padding <= input size; ``replicate`` needs a non-empty input.
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES!r}, got {_fmt(padding_mode)}")
    if padding_mode == "zeros" or not geometry.has_padding:
        return padding_mode
    for n, (a, b) in zip(geometry.in_shape, geometry.padding):
        if padding_mode == "reflect" and max(a, b) >= n:
            raise ValueError(
                f"padding_mode='reflect' needs padding smaller than the input on each axis, "
                f"got padding {geometry.padding} for input {geometry.in_shape}"
            )
        if padding_mode == "circular" and max(a, b) > n:
            raise ValueError(
                f"padding_mode='circular' needs padding at most the input size on each axis, "
                f"got padding {geometry.padding} for input {geometry.in_shape}"
            )
        if padding_mode == "replicate" and n == 0 and (a or b):
            raise ValueError("padding_mode='replicate' cannot pad an empty input")
    return padding_mode
