"""The buffer cache: how much released memory fastconv keeps for its next large arrays.

fastconv builds its large results and workspaces (256 KiB or more) on
buffers it allocates itself. When the program drops such an array, and every
view of it, the buffer is kept, up to a limit, and the next array of the
same size is built on it: memory already mapped and in the caches, instead of
fresh pages the operating system must fault in and zero on first write, which
can cost as much as the kernel's own work. See :mod:`fastconv._kernels._buffers`.

The limit is read once from ``FASTCONV_BUFFER_CACHE`` (bytes; ``0`` turns the
cache off), else 256 MiB, and changed with :func:`set_buffer_cache_limit`.
"""

from __future__ import annotations

import os

from ._geometry import as_count
from ._kernels import _buffers

__all__ = ["get_buffer_cache_limit", "set_buffer_cache_limit", "buffer_cache_info"]

#: The limit when ``FASTCONV_BUFFER_CACHE`` is not set.
DEFAULT_LIMIT = _buffers.DEFAULT_LIMIT


def _check(nbytes):
    return as_count(nbytes, "the buffer cache limit (bytes)", 0)


def get_buffer_cache_limit():
    """The most bytes of released buffers fastconv keeps for reuse.

    Returns
    -------
    int
        The limit in bytes (0: the cache is off).

    See Also
    --------
    set_buffer_cache_limit
    """
    return _buffers.limit()


def set_buffer_cache_limit(nbytes):
    """Set how many bytes of released buffers fastconv keeps for its next large arrays.

    Results and workspaces of 256 KiB or more are built on buffers that
    fastconv keeps when the program releases the array (and all its views),
    so that the next array of the same size reuses warm memory instead of
    fresh pages. Lowering the limit frees the oldest kept buffers at once.

    Parameters
    ----------
    nbytes : int
        The most bytes kept idle; 0 keeps none (and frees all kept now).

    Returns
    -------
    int
        The previous limit.

    Raises
    ------
    TypeError
        ``nbytes`` is not an integer.
    ValueError
        ``nbytes`` is negative.

    Notes
    -----
    The arrays are ordinary C-contiguous, writeable NumPy arrays, 64-byte
    aligned; their memory belongs to a small owner object (their ``base``)
    rather than to the array, so ``ndarray.resize`` refuses them, as it does
    any view. A buffer is reused only once no array can reach it.

    Examples
    --------
    >>> import fastconv
    >>> previous = fastconv.set_buffer_cache_limit(64 << 20)  # keep at most 64 MiB
    >>> fastconv.get_buffer_cache_limit()
    67108864
    >>> _ = fastconv.set_buffer_cache_limit(previous)
    """
    return _buffers.set_limit(_check(nbytes))


def buffer_cache_info():
    """``{"limit": bytes, "idle_buffers": count, "idle_bytes": bytes}`` of the buffer cache now."""
    count, idle = _buffers.idle()
    return {"limit": _buffers.limit(), "idle_buffers": count, "idle_bytes": idle}


def _init_from_environment():
    text = os.environ.get("FASTCONV_BUFFER_CACHE", "").strip()
    if not text:
        _buffers.set_limit(DEFAULT_LIMIT)
        return
    try:
        _buffers.set_limit(_check(int(text)))
    except ValueError:
        import warnings

        warnings.warn(f"ignoring FASTCONV_BUFFER_CACHE={text!r}: not a number of bytes >= 0", stacklevel=2)
        _buffers.set_limit(DEFAULT_LIMIT)


_init_from_environment()
