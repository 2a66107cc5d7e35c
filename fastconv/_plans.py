"""Plans: what a validated call of one signature needs, kept for the next call like it.

A small call spends most of its time in argument handling: resolving the
geometry, checking shapes, choosing tiles, building offset tables. All of it
depends only on the call's *signature* — the shapes and dtypes of its arrays
and the values of its other arguments — so a public function can validate a
signature once (through :mod:`fastconv._prepare`, as always), keep a *plan*
of the shape-only work, and run the plan directly when the same signature
comes again. Training loops and layer code call each function with a handful
of signatures, over and over.

:func:`call_key` (compiled, in :mod:`fastconv._kernels._call_key`: in Python
it cost a small call more than its kernel) builds the signature, or returns
None for calls it cannot vouch for, which then take the full path every time:

* every array argument must be exactly an ``ndarray`` (no subclass, no list),
  C-contiguous, aligned, of native float32 or float64 — what the kernels take
  as they are, with no copy or cast in between (``max_pool2d_backward``'s
  indices: native int64);
* so must an ``out=``, which is keyed too (a call into an ``out`` has a plan
  of its own) and must also be writeable and share no memory with the
  inputs: the full path refuses a read-only ``out`` and copies an input it
  overlaps, and these depend on the call, not on its signature;
* every other argument must be ``None``, ``bool``, ``int`` or ``str``, or a
  tuple of these (nested a few deep), compared with their types: ``1``, ``True``, ``1.0`` and
  ``numpy.int64(1)`` are equal in Python, but validation may treat them
  differently, so they never share a plan.

Everything validation checked is a function of the key, so a plan built from
a validated call is valid for every later call with the same key. A plan
holds no arrays of a call (only tables derived from shapes, made read-only),
so it can be shared between Python threads.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from ._kernels._call_key import call_key

__all__ = ["PlanCache", "call_key", "clear_plans", "read_only", "specialized"]

#: Names of Cython's fused-type specializations of the float types, by NumPy type character.
_FLOAT_NAMES = {"f": "float", "d": "double", "g": "long double"}


def specialized(kernel, dtype):
    """The specialization of the Cython fused-type function ``kernel`` for buffers of ``dtype``.

    A fused ``def`` function picks its specialization at every call from the
    types of its buffer arguments: 0.2-0.5 µs per call on the ``tiny`` shape;
    plans call the one they need directly (col2im, the convolutions, the
    backward pools: the forward pools and im2col take ndarrays instead).
    The specialization checks its buffers' types as any typed memoryview
    does. A kernel that has none for ``dtype`` is returned as it is.
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        name = f"{'u' if dtype.kind == 'u' else ''}int{8 * dtype.itemsize}_t"
    else:
        name = _FLOAT_NAMES.get(dtype.char)
    try:
        return kernel[name]
    except (KeyError, TypeError):
        return kernel


def read_only(*arrays):
    """Mark ``arrays`` read-only (tables a plan keeps and shares); return them as a tuple."""
    for a in arrays:
        a.flags.writeable = False
    return arrays


_CACHES = weakref.WeakSet()  # every PlanCache alive


def clear_plans():
    """Forget every plan of every function (for tests; plans never go stale)."""
    for cache in list(_CACHES):
        cache.clear()


class PlanCache(dict):
    """A bounded map from call keys to plans, safe to share between Python threads.

    When full it is emptied rather than ordered: a program calls a function
    with a few signatures, far fewer than ``size``. A ``dict`` itself, so
    that ``get`` (the plan for a key, or None: also for a None key, which is
    never stored) is the builtin method: a Python method around it cost a
    small call about 0.1 µs more.
    """

    def __init__(self, size=128):
        super().__init__()
        self.size = size
        self._lock = threading.Lock()
        _CACHES.add(self)

    # compared and hashed by identity, not by contents (the WeakSet of every cache holds them)
    __hash__ = object.__hash__
    __eq__ = object.__eq__
    __ne__ = object.__ne__

    def put(self, key, plan):
        """Keep ``plan`` for ``key`` (nothing happens for a None key)."""
        if key is None:
            return
        with self._lock:
            if len(self) >= self.size:
                super().clear()
            self[key] = plan

    def clear(self):
        """Forget every plan."""
        with self._lock:
            super().clear()
