"""Explicit padding of an input, once, before a kernel runs.

Kernels read a padded copy so that every tap is in bounds without a branch;
for ``padding_mode="zeros"`` with no padding the input is passed through.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pad_input"]

#: PyTorch padding-mode names and the matching ``np.pad`` modes.
_NUMPY_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad_input(x, geometry, padding_mode, channels_last):
    """Pad the spatial axes of a batched input.

    Parameters
    ----------
    x : ndarray
        Batched input, ``(N, C, *spatial)`` or ``(N, *spatial, C)``.
    geometry : ConvGeometry
        Resolved geometry; ``geometry.padding`` gives ``(before, after)`` per axis.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        Already validated by :func:`fastconv._geometry.check_padding_mode`.
    channels_last : bool
        Layout of ``x``.

    Returns
    -------
    ndarray
        A new C-contiguous padded array, or ``x`` itself when there is no padding.
    """
    if not geometry.has_padding:
        return x
    spatial = list(geometry.padding)
    widths = [(0, 0)] + spatial + [(0, 0)] if channels_last else [(0, 0), (0, 0)] + spatial
    if padding_mode == "zeros":
        shape = tuple(n + a + b for n, (a, b) in zip(x.shape, widths))
        padded = np.zeros(shape, dtype=x.dtype)
        padded[tuple(slice(a, a + n) for n, (a, b) in zip(x.shape, widths))] = x
        return padded
    return np.ascontiguousarray(np.pad(x, widths, mode=_NUMPY_MODES[padding_mode]))
