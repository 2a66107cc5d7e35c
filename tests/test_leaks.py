"""Leaks: thousands of calls, successful or failing, keep memory and reference counts flat.

Resident memory is read with psutil (a test extra), Python allocations with
tracemalloc, references with ``sys.getrefcount`` and ``gc``. Every public
function is called; the error paths are the validation layer's ValueErrors and
TypeErrors and the kernels' own (max_pool2d_backward's out-of-range indices).
"""

import gc
import sys
import tracemalloc

import numpy as np
import pytest

import fastconv

psutil = pytest.importorskip("psutil")  # in the test extra: installed wherever the suite runs

RNG = np.random.default_rng(3)
X = RNG.standard_normal((2, 4, 9, 9)).astype(np.float32)
XI = RNG.integers(-5, 5, (2, 4, 9, 9))
W = RNG.standard_normal((6, 4, 3, 3)).astype(np.float32)
B = RNG.standard_normal(6).astype(np.float32)
Y = fastconv.conv2d(X, W, padding=1)
COLS = fastconv.im2col(X, 3, padding=1)
POOLED, INDICES = fastconv.max_pool2d(X, 2, return_indices=True)
BAD_INDICES = INDICES + 1000
OUT = np.empty_like(Y)


def _calls():
    """One call of every public function, several paths each."""
    fastconv.im2col(X, 3, padding=1)
    fastconv.im2col(X.transpose(0, 2, 3, 1), 3, stride=2, padding="same", padding_mode="reflect", layout="NHWC")
    fastconv.col2im(COLS, X.shape, 3, padding=1)
    fastconv.conv2d(X, W, B, padding=1, out=OUT)
    fastconv.conv2d(X, W, padding=1, algorithm="im2col")
    fastconv.conv2d(XI, W.astype(np.int64), stride=2)
    fastconv.conv2d(X.transpose(0, 2, 3, 1), W.transpose(2, 3, 1, 0), layout="NHWC")
    fastconv.conv2d_grad_input(Y, W, X.shape, padding=1)
    fastconv.conv2d_grad_input(Y[:, :, ::2, ::2].copy(), W, X.shape, padding=1, stride=2)
    fastconv.conv2d_grad_weight(Y, X, W.shape, padding=1)
    fastconv.conv_transpose2d(Y, W, padding=1)
    fastconv.max_pool2d(X, 2, return_indices=True)
    fastconv.avg_pool2d(X, 3, stride=1, padding=1)
    fastconv.max_pool2d_backward(POOLED, INDICES, X.shape)
    fastconv.avg_pool2d_backward(POOLED, X.shape, 2)
    fastconv.conv_output_shape((9, 9), 3, padding="same")
    with fastconv.num_threads(2):
        fastconv.conv2d(X, W)


ERRORS = [
    (ValueError, lambda: fastconv.im2col(X, 10)),
    (TypeError, lambda: fastconv.im2col(X, 2.5)),
    (ValueError, lambda: fastconv.im2col(X, 3, out=np.empty((1, 1)))),
    (ValueError, lambda: fastconv.col2im(COLS, X.shape, 2)),
    (ValueError, lambda: fastconv.conv2d(X, W[:, :3])),
    (TypeError, lambda: fastconv.conv2d(X.astype(np.complex64), W)),
    (ValueError, lambda: fastconv.conv2d(X, W, padding=2**40)),
    (ValueError, lambda: fastconv.conv2d_grad_input(Y, W, (2, 4, 5, 5))),
    (ValueError, lambda: fastconv.conv2d_grad_weight(Y, X, (6, 4, 2, 2))),
    (ValueError, lambda: fastconv.conv_transpose2d(Y, W, padding=50)),
    (ValueError, lambda: fastconv.max_pool2d(X, 2, padding=2)),
    (TypeError, lambda: fastconv.avg_pool2d(X, 2, ceil_mode=1)),
    (ValueError, lambda: fastconv.max_pool2d_backward(POOLED, BAD_INDICES, X.shape)),  # found by the kernel
    (ValueError, lambda: fastconv.avg_pool2d_backward(POOLED, X.shape, 3)),
    (ValueError, lambda: fastconv.conv_output_shape((4, 4), 5)),
]

ARRAYS = [X, XI, W, B, Y, COLS, POOLED, INDICES, BAD_INDICES, OUT]


def _errors():
    for exc, call in ERRORS:
        try:
            call()
        except exc:
            pass
        else:  # pragma: no cover - the call must fail
            raise AssertionError(f"{call} did not raise {exc.__name__}")


def _rss():
    return psutil.Process().memory_info().rss


def _check_flat(fn, repeats, rss_slack=8 * 2**20, traced_slack=256 * 2**10):
    """Run ``fn`` ``repeats`` times after a warm-up; RSS, references and objects must not grow.

    Then a fifth as many rounds under tracemalloc (which slows every allocation):
    Python's traced memory must not grow either.
    """
    for _ in range(20):  # warm-up: caches, thread pools, lazily imported modules
        fn()
    gc.collect()
    refs = [sys.getrefcount(a) for a in ARRAYS]
    objects = len(gc.get_objects())
    rss = _rss()
    for _ in range(repeats):
        fn()
    gc.collect()
    grown = _rss() - rss
    assert grown < rss_slack, f"RSS grew by {grown / 2**20:.1f} MiB over {repeats} rounds"
    assert [sys.getrefcount(a) for a in ARRAYS] == refs
    assert len(gc.get_objects()) - objects < 200
    tracemalloc.start()
    try:
        for _ in range(3):
            fn()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(max(1, repeats // 5)):
            fn()
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - start < traced_slack, f"Python allocations grew by {end - start} bytes"


@pytest.mark.slow  # several seconds on two busy cores
def test_repeated_calls_keep_memory_flat(every_call_parallel):
    """17 calls per round, 150 rounds (+30 traced): ~3000 calls, each allocating fresh results."""
    _check_flat(_calls, 150)


def test_repeated_errors_leak_nothing():
    """Every error path, 400 rounds (+80 traced): over 7000 raised exceptions."""
    _check_flat(_errors, 400)


def test_check_would_catch_a_leak():
    """The harness itself: a call that keeps its inputs alive fails it."""
    kept = []

    def leaky():
        kept.append((X, np.ones(4096)))  # a reference to X, 32 KiB of RSS and traced memory

    with pytest.raises(AssertionError, match="refcount|RSS|allocations|assert"):
        _check_flat(leaky, 400)
