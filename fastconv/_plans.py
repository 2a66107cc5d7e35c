"""Plans: what a validated call of one signature needs, kept for the next call like it.

A small call spends most of its time in argument handling: resolving the
geometry, checking shapes, choosing tiles, building offset tables. All of it
depends only on the call's *signature* — the shapes and dtypes of its arrays
and the values of its other arguments — so a public function can validate a
signature once (through :mod:`fastconv._prepare`, as always), keep a *plan*
of the shape-only work, and run the plan directly when the same signature
comes again. Training loops and layer code call each function with a handful
of signatures, over and over.

:func:`call_key` builds the signature, or returns None for calls it cannot
vouch for, which then take the full path every time:

* every array argument must be exactly an ``ndarray`` (no subclass, no list),
  C-contiguous, aligned, of native float32 or float64 — what the kernels take
  as they are, with no copy or cast in between;
* every other argument must be ``None``, ``bool``, ``int`` or ``str``, or a
  tuple of these, compared with their types: ``1``, ``True``, ``1.0`` and
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

__all__ = ["PlanCache", "call_key", "clear_plans", "read_only"]

_KERNEL_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
_SCALARS = frozenset({type(None), bool, int, str})


def _typed(value):
    """``value`` tagged with its type (recursively for tuples), or None if it cannot be a key."""
    kind = type(value)
    if kind in _SCALARS:
        return kind, value
    if kind is tuple:
        types = tuple(map(type, value))
        if _SCALARS.issuperset(types):  # flat (a shape, a stride pair): values and their types
            return tuple, value, types
        parts = tuple(_typed(v) for v in value)
        return None if None in parts else (tuple, parts)
    return None


def read_only(*arrays):
    """Mark ``arrays`` read-only (tables a plan keeps and shares); return them as a tuple."""
    for a in arrays:
        a.flags.writeable = False
    return arrays


def call_key(arrays, params):
    """The signature of a call, or None when it has no plan (see the module docstring).

    Parameters
    ----------
    arrays : tuple
        The call's array arguments; ``None`` entries (an absent bias) are allowed.
    params : tuple
        Its other arguments, in a fixed order.
    """
    key = []
    for a in arrays:
        if a is None:
            key.append(None)
        elif type(a) is np.ndarray and a.dtype in _KERNEL_DTYPES:
            flags = a.flags
            if not (flags.c_contiguous and flags.aligned):
                return None
            key.append((a.shape, a.dtype))
        else:
            return None
    typed = _typed(params)
    return None if typed is None else (tuple(key), typed)


_CACHES = weakref.WeakSet()  # every PlanCache alive


def clear_plans():
    """Forget every plan of every function (for tests; plans never go stale)."""
    for cache in list(_CACHES):
        cache.clear()


class PlanCache:
    """A bounded map from call keys to plans, safe to share between Python threads.

    When full it is emptied rather than ordered: a program calls a function
    with a few signatures, far fewer than ``size``.
    """

    def __init__(self, size=128):
        self.size = size
        self._plans = {}
        self._lock = threading.Lock()
        _CACHES.add(self)

    def get(self, key):
        """The plan for ``key``, or None (also for a None key)."""
        return None if key is None else self._plans.get(key)

    def put(self, key, plan):
        """Keep ``plan`` for ``key`` (nothing happens for a None key)."""
        if key is None:
            return
        with self._lock:
            if len(self._plans) >= self.size:
                self._plans.clear()
            self._plans[key] = plan

    def clear(self):
        """Forget every plan."""
        with self._lock:
            self._plans.clear()

    def __len__(self):
        return len(self._plans)
