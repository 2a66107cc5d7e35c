"""Thread-count control for every fastconv kernel.

Resolution order, in one function (:func:`get_num_threads`), used by all kernels:

1. the innermost ``with fastconv.num_threads(n):`` block of the calling
   Python thread (thread-local, so concurrent callers do not interfere);
2. the process-wide value from :func:`set_num_threads`;
3. the OpenMP runtime's ``omp_get_max_threads()``, which honours
   ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits``.

In a child made by ``fork()`` after this process ran a kernel on more than one
thread, every kernel runs on one thread: GNU OpenMP (libgomp) cannot start a
thread team in such a child (it waits forever for the parent's pool threads,
which the child does not have). Use the ``spawn`` or ``forkserver`` start
methods of :mod:`multiprocessing` for parallel children.
"""

from __future__ import annotations

import contextlib
import os
import threading

from ._geometry import as_count
from ._kernels import _openmp_helpers

__all__ = ["get_num_threads", "set_num_threads", "num_threads", "threads_for"]

#: Work (elements copied, or multiply-adds / 16) below which one more thread costs
#: more than it saves: waking an OpenMP team takes microseconds, and far longer
#: on a busy machine.
GRAIN = 1 << 16

_global_threads = None
_local = threading.local()

#: Set once a kernel was given more than one thread: an OpenMP team (and, with
#: libgomp, its pool of threads) exists from then on.
_team_started = False
#: True in a child forked after a team had started: OpenMP teams would deadlock there.
_forked_after_team = False


def _after_fork_in_child():
    global _forked_after_team
    _forked_after_team = _forked_after_team or _team_started


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check(n):
    return as_count(n, "the number of threads", 1)


def get_num_threads():
    """Number of OpenMP threads the next fastconv kernel will use.

    Returns
    -------
    int
        The active ``num_threads`` context of this Python thread, else the
        value set by :func:`set_num_threads`, else the OpenMP runtime's
        maximum (``OMP_NUM_THREADS``, threadpoolctl limits, or all cores).
        Always 1 in a build without OpenMP, and in a child forked after
        this process had run a kernel on several threads.
    """
    if _forked_after_team or not _openmp_helpers.openmp_enabled():
        return 1
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    if _global_threads is not None:
        return _global_threads
    return max(1, _openmp_helpers.max_threads())


def set_num_threads(n):
    """Set the number of threads fastconv kernels use, process-wide.

    Parameters
    ----------
    n : int or None
        Threads, >= 1. ``None`` restores the default (the OpenMP runtime's
        maximum, which follows ``OMP_NUM_THREADS`` and threadpoolctl).

    Returns
    -------
    int or None
        The previous explicit setting (``None`` if there was none).
    """
    global _global_threads
    previous = _global_threads
    _global_threads = None if n is None else _check(n)
    return previous


@contextlib.contextmanager
def num_threads(n):
    """Context manager: run fastconv kernels on ``n`` threads inside the block.

    The setting is local to the calling Python thread and nests.

    Examples
    --------
    >>> import fastconv
    >>> with fastconv.num_threads(1):
    ...     fastconv.get_num_threads()
    1
    """
    n = _check(n)
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(n)
    try:
        yield n
    finally:
        stack.pop()


def threads_for(work):
    """Threads for one kernel call doing ``work`` units: :func:`get_num_threads`, fewer for small calls.

    Results never depend on it: every kernel is bitwise identical for any
    thread count.
    """
    global _team_started
    if work < 2 * GRAIN:  # one thread, whatever the setting: skip looking it up
        return 1
    n = get_num_threads()
    n = n if n == 1 else max(1, min(n, int(work) // GRAIN))
    if n > 1:
        _team_started = True
    return n
