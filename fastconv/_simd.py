"""Run-time choice of the instruction set used by the convolution micro-kernels.

The tiles in ``_kernels/conv_tile.h`` and max pooling's interior rows in
``_kernels/pool_rows.h`` are compiled for several targets (x86-64 baseline,
AVX2+FMA, AVX-512F; elsewhere the compiler's default). At
import the best one the CPU supports is chosen; ``FASTCONV_SIMD`` in the
environment (``baseline``, ``avx2`` or ``avx512``) asks for a lower one,
which is how the tests run every level the machine has.
"""

from __future__ import annotations

import os

from ._kernels import _conv_direct, _pool

__all__ = ["available_levels", "simd_level", "set_simd_level"]

LEVELS = _conv_direct.SIMD_LEVELS


def available_levels():
    """Levels this CPU and build can run, lowest first."""
    return LEVELS[: _conv_direct.cpu_level() + 1]


def simd_level():
    """Name of the level in force."""
    return LEVELS[_conv_direct.current_level()]


def set_simd_level(name):
    """Use level ``name`` for later calls; return the previous level's name.

    Raises
    ------
    ValueError
        An unknown name, or a level this CPU cannot run.
    """
    if name not in LEVELS:
        raise ValueError(f"SIMD level must be one of {LEVELS}, got {name!r}")
    if name not in available_levels():
        raise ValueError(f"this CPU supports SIMD levels {available_levels()}, not {name!r}")
    previous = simd_level()
    _select(LEVELS.index(name))
    return previous


def _select(level):
    """Select ``level`` in every module with per-level kernels."""
    _conv_direct.select_level(level)
    _pool.select_level(level)


def _init_from_environment():
    requested = os.environ.get("FASTCONV_SIMD", "").strip().lower()
    if requested:
        set_simd_level(requested)
    else:
        _select(len(LEVELS) - 1)


_init_from_environment()
