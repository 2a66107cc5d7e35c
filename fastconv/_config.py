"""show_config: how this fastconv was built and what it runs with."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

from ._kernels import _openmp_helpers
from ._cache import l2_cache_bytes, l3_cache_bytes
from . import _im2col
from ._conv import BAND_BUDGET
from ._memory import buffer_cache_info
from ._simd import available_levels, simd_level
from ._threads import get_num_threads
from ._version import __version__

__all__ = ["show_config", "config_dict"]


def _build_info():
    try:
        from ._build_info import BUILD_INFO
    except ImportError:  # built by something other than setup.py
        return {}
    return dict(BUILD_INFO)


def _blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]


def _describe_cache(info):
    mib = 1 << 20
    if not info["limit"]:
        return "off"
    return f"{info['limit'] / mib:g} MiB limit, {info['idle_buffers']} idle buffers ({info['idle_bytes'] / mib:.1f} MiB)"


def _describe_l2(size):
    known = "unknown" if size is None else f"{size >> 10} KiB"
    return f"{known} (bands of {BAND_BUDGET >> 10} KiB of input)"


def _size(nbytes):
    return f"{nbytes >> 20} MiB" if nbytes % (1 << 20) == 0 else f"{nbytes >> 10} KiB"


def _describe_l3(size):
    known = "unknown" if size is None else _size(size)
    return f"{known} (im2col streams an out from {_size(_im2col.STREAM_BYTES)})"


#: Environment variables that change how fastconv, its OpenMP runtime or the BLAS run: show_config
#: lists those that are set.
ENVIRONMENT = ("FASTCONV_SIMD", "FASTCONV_BUFFER_CACHE", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
               "OMP_PROC_BIND", "OMP_PLACES", "OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_CORETYPE",
               "OPENBLAS_L2_SIZE", "MKL_NUM_THREADS")


def _environment():
    return [f"{name}={os.environ[name]}" for name in ENVIRONMENT if name in os.environ]


def config_dict():
    """Return the information printed by :func:`show_config` as a dict."""
    build = _build_info()
    return {
        "fastconv": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cython": build.get("cython_version", "unknown"),
        "compiler": build.get("compiler", "unknown"),
        "compile_args": build.get("compile_args", []),
        "link_args": build.get("link_args", []),
        "openmp": _openmp_helpers.openmp_enabled(),
        "num_threads": get_num_threads(),
        "buffer_cache": _describe_cache(buffer_cache_info()),
        "simd": f"{simd_level()} (available: {', '.join(available_levels())})",
        "l2_cache": _describe_l2(l2_cache_bytes()),
        "l3_cache": _describe_l3(l3_cache_bytes()),
        "numpy": np.__version__,
        "numpy_build": build.get("numpy_build_version", "unknown"),
        "environment": _environment(),
        "blas": _blas_info(),
    }


def show_config(file=None):
    """Print version, build, OpenMP, threads, SIMD and BLAS information.

    ``environment:`` lists the variables that are set among those that
    change fastconv's SIMD level and buffer cache, or how the OpenMP
    runtime and the BLAS run their threads (``OMP_WAIT_POLICY``,
    ``OPENBLAS_THREAD_TIMEOUT``, ...: see :doc:`/threads`); ``(none)`` if
    none is.

    Parameters
    ----------
    file : file-like, optional
        Where to print (default ``sys.stdout``).
    """
    info = config_dict()
    out = file or sys.stdout
    blas = info.pop("blas")
    width = max(len(k) for k in info) + 1
    for key, value in info.items():
        if isinstance(value, list):
            value = " ".join(value) or "(none)"
        print(f"{key + ':':<{width}} {value}", file=out)
    if not blas:
        print(f"{'blas:':<{width}} (not detected)", file=out)
    for lib in blas:
        print(f"{'blas:':<{width}} {lib['internal_api']} {lib['version']} "
              f"({lib['architecture']}, {lib['num_threads']} threads)", file=out)
