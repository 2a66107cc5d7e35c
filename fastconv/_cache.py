"""The CPU's cache sizes: the level-2 one sizes the bands of rows the direct convolution copies,
the level-3 one the im2col outputs written with non-temporal stores."""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["cache_bytes", "l2_cache_bytes", "l3_cache_bytes", "parse_cache_size"]

#: Where Linux describes the first CPU's caches (``index<i>/level``, ``type``, ``size``).
CACHE_SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_cache_size(text):
    """Bytes of a sysfs cache size such as ``"512K"``, ``"2048K"`` or ``"1M"``; None if unreadable."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")  # (also "512KiB", "1MB")
    unit = text[-1:] if text[-1:] in _UNITS else ""
    number = text[: len(text) - len(unit)]
    return int(number) * _UNITS[unit] if number.isdigit() and int(number) > 0 else None


@functools.cache
def cache_bytes(level, root=CACHE_SYSFS):
    """Size in bytes of the first CPU's data (or unified) cache of ``level``, or None where unknown.

    Read once from Linux's sysfs (``root``); None on other systems, or where
    the files are missing or unreadable (some containers).
    """
    try:
        for index in sorted(Path(root).glob("index*")):
            if ((index / "level").read_text().strip() == str(level)
                    and (index / "type").read_text().strip() in ("Data", "Unified")):
                return parse_cache_size((index / "size").read_text())
    except (OSError, ValueError):
        return None
    return None


def l2_cache_bytes(root=CACHE_SYSFS):
    """Size in bytes of the first CPU's level-2 cache, or None where unknown (see :func:`cache_bytes`)."""
    return cache_bytes(2, root)


def l3_cache_bytes(root=CACHE_SYSFS):
    """Size in bytes of the first CPU's level-3 cache, or None where unknown (see :func:`cache_bytes`)."""
    return cache_bytes(3, root)
