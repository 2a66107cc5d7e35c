"""Array-level argument handling shared by the fast path and the reference.

Layouts, batch axes, dtype rules and ``out=`` checks live here, next to the
geometry in :mod:`fastconv._geometry`. Kernels receive only arrays that passed
through these functions: C-contiguous, aligned, native byte order, of a dtype
their fused types cover.
"""

from __future__ import annotations

import math

import numpy as np

from ._geometry import resolve_layout
from ._kernels import _buffers

__all__ = [
    "as_array",
    "split_batch",
    "to_channels_first",
    "from_channels_first",
    "kernel_array",
    "check_out",
    "apart_from",
    "movement_dtype",
    "conv_dtypes",
    "finish",
    "empty",
    "zeros",
    "reused",
    "empty_aligned",
]

#: Bytes in a cache line: kernel scratch buffers start at a multiple of it.
CACHE_LINE = 64

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def as_array(x, name):
    """``np.asarray(x)``, rejecting non-numeric dtypes with a TypeError."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


#: ``np.empty(shape, dtype)`` / ``np.zeros(shape, dtype)`` for a result or a workspace. From
#: ``_buffers.MIN_BYTES`` (256 KiB) on, the array is built on a buffer of the buffer cache
#: (:mod:`fastconv._memory`): memory a released fastconv array of the same size left behind,
#: already mapped and in the caches, instead of fresh pages the operating system must fault in
#: and zero; it starts on a cache line. Smaller arrays are NumPy's, made through its C API (as
#: fast as ``np.empty``: plans call these on every call).
empty = _buffers.empty
zeros = _buffers.zeros
#: Whether an array from :func:`empty` / :func:`zeros` reuses a buffer (its pages already mapped).
reused = _buffers.reused


#: Arrays from this many bytes on start on a cache line (smaller ones are left to NumPy:
#: finding the address costs about a microsecond, and they are not bandwidth-bound).
ALIGN_FROM = 1 << 16


def empty_aligned(shape, dtype):
    """``np.empty(shape, dtype)``, starting on a cache line if ``ALIGN_FROM`` bytes or more.

    Large NumPy arrays start 16 bytes past a page boundary, so an AVX-512 vector
    load from a buffer the kernels pack (weights, padded planes) would straddle
    two cache lines at every offset that is a multiple of the vector width.
    From 256 KiB on the array comes from the buffer cache (:func:`empty`).
    """
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < ALIGN_FROM:
        return np.empty(shape, dtype)
    if nbytes >= _buffers.MIN_BYTES:  # the buffer cache's arrays start on a cache line
        return empty(shape, dtype)
    raw = np.empty(nbytes + CACHE_LINE, np.uint8)
    start = -raw.__array_interface__["data"][0] % CACHE_LINE
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def split_batch(x, name, ndim, channels_last):
    """Check an input's rank and add the batch axis to an unbatched input.

    Parameters
    ----------
    x : ndarray
        ``(N, C, *spatial)`` / ``(N, *spatial, C)`` or the unbatched form
        without ``N``.
    name : str
        Argument name for messages.
    ndim : int
        Number of spatial axes.
    channels_last : bool
        Layout of ``x``.

    Returns
    -------
    x : ndarray
        The input with a batch axis.
    batched : bool
        False when the batch axis was added here (the result drops it again).
    """
    if x.ndim == ndim + 2:
        return x, True
    if x.ndim == ndim + 1:
        return x[np.newaxis], False
    spatial = _SPATIAL[ndim]
    batched = f"(N, {', '.join(spatial)}, C)" if channels_last else f"(N, C, {', '.join(spatial)})"
    raise ValueError(
        f"{name} must be {ndim + 2}-D {batched} or {ndim + 1}-D without N, "
        f"got a {x.ndim}-D array of shape {x.shape}"
    )


def to_channels_first(x, channels_last):
    """View of a batched array as ``(N, C, *spatial)`` (no copy)."""
    return np.moveaxis(x, -1, 1) if channels_last else x


def from_channels_first(shape, channels_last):
    """Reorder a ``(N, C, *spatial)`` shape tuple to the user's layout."""
    shape = tuple(shape)
    return shape[:1] + shape[2:] + shape[1:2] if channels_last else shape


def kernel_array(a, dtype=None):
    """Return ``a`` as a C-contiguous, aligned, native-byte-order array of ``dtype``.

    Copies only when one of those properties is missing, so a well-formed
    input is passed to the kernels as it is (and never written to).
    """
    dtype = np.dtype(a.dtype if dtype is None else dtype)
    if not dtype.isnative:
        dtype = dtype.newbyteorder("=")
    a = np.asarray(a)
    if a.dtype != dtype:
        a = a.astype(dtype)
    a = np.ascontiguousarray(a)
    if not a.flags.aligned:
        a = a.copy()
    return a


def check_out(out, shape, dtype, name="out"):
    """Validate a user ``out=`` array; return it, or None when ``out`` is None.

    It must be an ndarray, C-contiguous, writeable, of exactly ``shape`` and
    ``dtype``.
    """
    if out is None:
        return None
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    expected = f"a writeable C-contiguous ndarray of shape {shape} and dtype {dtype}"
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{name} must be {expected}, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"{name} must be {expected}, got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(
            f"{name} must be {expected}, got one that is "
            + ("not C-contiguous" if not out.flags.c_contiguous else "read-only")
        )
    return out


def apart_from(outs, *arrays):
    """Return ``arrays``, copying each one that may share memory with one of ``outs``.

    A kernel writes its result while it still reads its inputs: an ``out=``
    that overlaps an input (``conv2d(x, w, out=x)``, ``col2im(cols, ...,
    out=cols.reshape(...))``) would read values it has already overwritten.
    NumPy's ufuncs copy such an input; so does every fastconv function. ``outs``
    is one array, None, or a sequence of them; the bounds test of
    ``np.may_share_memory`` is cheap and errs only towards a needless copy.
    """
    if outs is None or isinstance(outs, np.ndarray):
        outs = (outs,)
    outs = [o for o in outs if o is not None]
    result = tuple(
        a.copy() if a is not None and any(np.may_share_memory(o, a) for o in outs) else a
        for a in arrays
    )
    return result if len(result) != 1 else result[0]


def movement_dtype(dtype, name):
    """Check a dtype for pure data movement (im2col/col2im): any bool, int, float, complex."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biufc":
        raise TypeError(f"{name} must have a numeric dtype, got {dtype}")
    return dtype


def conv_dtypes(*arrays, names=("x", "weight", "bias")):
    """Result and compute dtypes of a convolution, per the spec's dtype rules.

    Returns
    -------
    result : numpy.dtype
        ``np.result_type`` of the inputs, with integers and bools mapped to int64.
    compute : numpy.dtype
        float32 (for float16 and float32), float64 or int64.

    Raises
    ------
    TypeError
        For complex, long double or non-numeric inputs.
    """
    for a, name in zip(arrays, names):
        if a is not None and a.dtype.kind not in "biufc":
            raise TypeError(f"{name} must be a numeric array, got dtype {a.dtype}")
    dt = np.result_type(*[a for a in arrays if a is not None])
    if dt.kind == "c":
        raise TypeError(
            f"convolution does not support complex dtypes, got {dt}; "
            "convolve the real and imaginary parts separately"
        )
    if dt.kind in "biu":
        return np.dtype(np.int64), np.dtype(np.int64)
    if dt == np.float16:
        return dt, np.dtype(np.float32)
    if dt in (np.float32, np.float64):
        return dt, dt
    raise TypeError(f"convolution computes in float16, float32, float64 or int64, got {dt}")


def finish(result, batched, out):
    """Drop an added batch axis, cast to ``out``'s dtype and write it there if given."""
    if not batched:
        result = result[0]
    if out is None:
        return result
    if result is not out:
        np.copyto(out, result.reshape(out.shape), casting="unsafe")
    return out


def layout_and_batch(x, name, ndim, layout):
    """Resolve ``layout`` and split the batch axis in one call."""
    channels_last = resolve_layout(layout, ndim)
    x, batched = split_batch(x, name, ndim, channels_last)
    return x, batched, channels_last
