"""Concurrency: Python threads, thread-local thread counts, fork safety, determinism of every function.

tests/test_threads.py covers the thread-count API and a first determinism grid;
this module adds every public function in both layouts and several dtypes at
1..4 threads, many Python threads calling kernels at once, nested contexts
raced across threads, and a ``fork`` child after OpenMP has started.
"""

import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastconv
from fastconv._kernels import _openmp_helpers

OPENMP = _openmp_helpers.openmp_enabled()


def _data(seed, shape, dtype):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-20, 20, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def _hwio(w):
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def _cases():
    """(id, fn) for every public function; ``fn()`` returns arrays (a tuple) computed from fixed data."""
    cases = []
    for dtype in (np.float32, np.float64, np.int64):
        dn = np.dtype(dtype).name
        x = _data(1, (3, 6, 13, 11), dtype)
        w = _data(2, (8, 6, 3, 3), dtype)
        wg = _data(3, (8, 3, 3, 2), dtype)
        b = _data(4, (8,), dtype)
        for layout in ("NCHW", "NHWC"):
            xl = x if layout == "NCHW" else _nhwc(x)
            wl = w if layout == "NCHW" else _hwio(w)
            wgl = wg if layout == "NCHW" else _hwio(wg)
            kw = dict(layout=layout)
            tag = f"{dn}-{layout}"
            for alg in ("direct", "im2col"):
                cases.append((f"conv2d-{alg}-{tag}", lambda xl=xl, wl=wl, wgl=wgl, kw=kw, alg=alg: (
                    fastconv.conv2d(xl, wl, b, stride=(2, 1), padding="same", algorithm=alg, **kw),
                    fastconv.conv2d(xl, wgl, groups=2, dilation=2, padding=((2, 0), (1, 3)), algorithm=alg, **kw))))
            y = fastconv.conv2d(xl, wl, padding=1, **kw)
            ys = fastconv.conv2d(xl, wl, stride=2, dilation=(1, 2), **kw)
            yg = fastconv.conv2d(xl, wgl, groups=2, **kw)
            cases += [
                (f"conv2d_grad_input-{tag}", lambda xl=xl, wl=wl, wgl=wgl, y=y, ys=ys, yg=yg, kw=kw: (
                    fastconv.conv2d_grad_input(y, wl, xl.shape, padding=1, **kw),
                    fastconv.conv2d_grad_input(ys, wl, xl.shape, stride=2, dilation=(1, 2), **kw),
                    fastconv.conv2d_grad_input(yg, wgl, xl.shape, groups=2, **kw))),
                (f"conv2d_grad_weight-{tag}", lambda xl=xl, wl=wl, wgl=wgl, y=y, ys=ys, yg=yg, kw=kw: (
                    fastconv.conv2d_grad_weight(y, xl, wl.shape, padding=1, **kw),
                    fastconv.conv2d_grad_weight(ys, xl, wl.shape, stride=2, dilation=(1, 2), **kw),
                    fastconv.conv2d_grad_weight(yg, xl, wgl.shape, groups=2, **kw))),
                (f"conv_transpose2d-{tag}", lambda y=y, ys=ys, wl=wl, kw=kw: (
                    fastconv.conv_transpose2d(y, wl, padding=1, **kw),
                    fastconv.conv_transpose2d(ys, wl, b[:6], stride=2, output_padding=1, dilation=(1, 2), **kw))),
            ]
    for dtype in (np.float32, np.float64, np.int16, np.uint8, np.bool_, np.complex64):
        dn = np.dtype(dtype).name
        x = _data(5, (3, 5, 12, 9), dtype)
        for layout in ("NCHW", "NHWC"):
            xl = x if layout == "NCHW" else _nhwc(x)
            kw = dict(layout=layout)
            tag = f"{dn}-{layout}"
            cases.append((f"im2col-{tag}", lambda xl=xl, kw=kw: (
                fastconv.im2col(xl, 3, stride=(1, 2), padding=1, **kw),
                fastconv.im2col(xl, (2, 3), dilation=2, padding="same", padding_mode="reflect", **kw))))
            cols = fastconv.im2col(xl, 3, stride=(1, 2), padding=1, **kw)
            cases.append((f"col2im-{tag}", lambda xl=xl, cols=cols, kw=kw: (
                fastconv.col2im(cols, xl.shape, 3, stride=(1, 2), padding=1, **kw),
                fastconv.col2im(cols[: cols.shape[0] // 3], (1,) + xl.shape[1:], 3, stride=(1, 2), padding=1,
                                **kw))))
            if dtype in (np.complex64, np.bool_, np.uint8):
                continue
            values, idx = fastconv.max_pool2d(xl, 3, stride=2, padding=1, return_indices=True, **kw)
            g = _data(6, values.shape, np.float64 if dtype != np.float32 else dtype)
            cases += [
                (f"max_pool2d-{tag}", lambda xl=xl, kw=kw: (
                    *fastconv.max_pool2d(xl, 3, stride=2, padding=1, return_indices=True, **kw),
                    *fastconv.max_pool2d(xl, 2, stride=1, dilation=2, ceil_mode=True, return_indices=True, **kw))),
                (f"avg_pool2d-{tag}", lambda xl=xl, kw=kw: (
                    fastconv.avg_pool2d(xl, 3, stride=2, padding=1, **kw),
                    fastconv.avg_pool2d(xl, (2, 3), stride=1, ceil_mode=True, count_include_pad=False, **kw))),
                (f"max_pool2d_backward-{tag}", lambda xl=xl, idx=idx, g=g, kw=kw: (
                    fastconv.max_pool2d_backward(g, idx, xl.shape, **kw),)),
                (f"avg_pool2d_backward-{tag}", lambda xl=xl, g=g, kw=kw: (
                    fastconv.avg_pool2d_backward(g, xl.shape, 3, stride=2, padding=1, **kw),
                    fastconv.avg_pool2d_backward(g, xl.shape, 3, stride=2, padding=1, count_include_pad=False,
                                                 **kw))),
            ]
    return cases


CASES = _cases()


def _bits(results):
    return [(r.dtype.str, r.shape, r.tobytes()) for r in results]


@pytest.mark.parametrize("name, fn", CASES, ids=[c[0] for c in CASES])
def test_every_function_bitwise_identical_at_1_to_4_threads(name, fn, every_call_parallel):
    with fastconv.num_threads(1):
        expected = _bits(fn())
    for n in (2, 3, 4):
        with fastconv.num_threads(n):
            assert _bits(fn()) == expected, f"{name} differs at {n} threads"


def test_many_python_threads_with_different_thread_counts(every_call_parallel):
    """Eight Python threads run every function at once, each under its own num_threads(1..4)."""
    picked = CASES[::3]
    with fastconv.num_threads(1):
        expected = [_bits(fn()) for _, fn in picked]
    errors = []

    def work(i):
        name, fn = picked[i % len(picked)]
        n = 1 + i % 4
        with fastconv.num_threads(n):
            assert fastconv.get_num_threads() == (n if OPENMP else 1)
            got = _bits(fn())
            assert fastconv.get_num_threads() == (n if OPENMP else 1)
        if got != expected[i % len(picked)]:
            errors.append(f"{name} at {n} threads")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(3 * len(picked))))
    assert not errors


def test_nested_contexts_raced_across_threads():
    """Each Python thread nests its own num_threads stack; the others never see it."""
    n_workers, depth, rounds = 6, 4, 20
    barrier = threading.Barrier(n_workers)
    failures = []
    previous = fastconv.set_num_threads(3)  # the process-wide value, under every thread's contexts

    def worker(w):
        rng = np.random.default_rng(w)
        for _ in range(rounds):
            stack = [int(v) for v in rng.integers(1, 9, size=depth)]
            contexts = []
            try:
                for level, n in enumerate(stack):
                    cm = fastconv.num_threads(n)
                    contexts.append(cm)
                    assert cm.__enter__() == n
                    barrier.wait()  # every thread is inside its own stack at this level
                    seen = fastconv.get_num_threads()
                    if seen != (n if OPENMP else 1):
                        failures.append((w, level, n, seen))
                for level in reversed(range(depth)):
                    contexts.pop().__exit__(None, None, None)
                    seen = fastconv.get_num_threads()
                    want = stack[level - 1] if level else 3
                    if seen != (want if OPENMP else 1):
                        failures.append((w, "exit", level, want, seen))
            finally:
                while contexts:
                    contexts.pop().__exit__(None, None, None)

    try:
        threads = [threading.Thread(target=worker, args=(w,)) for w in range(n_workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
    finally:
        fastconv.set_num_threads(previous)
    assert not failures, failures[:5]
    assert fastconv.get_num_threads() == fastconv.get_num_threads()


def test_context_exits_on_exception_and_restores_outer_value():
    with fastconv.num_threads(2):
        with pytest.raises(ZeroDivisionError):
            with fastconv.num_threads(4):
                1 / 0
        assert fastconv.get_num_threads() == (2 if OPENMP else 1)


def test_set_num_threads_from_another_thread_does_not_override_a_context():
    """set_num_threads is process-wide, but a thread's own num_threads context still wins."""
    inside, release = threading.Event(), threading.Event()
    seen = []

    def worker():
        with fastconv.num_threads(1):
            inside.set()
            release.wait(30)
            seen.append(fastconv.get_num_threads())

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(30)
    previous = fastconv.set_num_threads(4)
    try:
        release.set()
        t.join(30)
        assert fastconv.get_num_threads() == (4 if OPENMP else 1)
    finally:
        fastconv.set_num_threads(previous)
    assert seen == [1]


# --- fork ------------------------------------------------------------------------------------------

FORK_SCRIPT = textwrap.dedent("""
    import multiprocessing as mp, os, sys
    import numpy as np, fastconv, fastconv._threads, fastconv.reference

    fastconv._threads.GRAIN = 1          # even these small calls run parallel
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 24, 24)); w = rng.standard_normal((8, 8, 3, 3))
    WARM = sys.argv[1] == "warm"
    if WARM:                             # OpenMP's thread pool exists before the fork
        with fastconv.num_threads(2):
            expected = fastconv.conv2d(x, w, padding=1)
    else:
        expected = fastconv.reference.conv2d(x, w, padding=1)

    def child(q):
        q.put(fastconv.get_num_threads())
        q.put(fastconv.conv2d(x, w, padding=1))
        with fastconv.num_threads(2):
            q.put(fastconv.conv2d(x, w, padding=1, algorithm="im2col"))
            q.put(fastconv.col2im(fastconv.im2col(x, 3, padding=1), x.shape, 3, padding=1))

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    try:
        threads = q.get(timeout=30)
        conv, conv_im2col, cols = (q.get(timeout=30) for _ in range(3))
    except Exception:
        p.kill()
        print("CHILD HUNG")
        sys.exit(3)
    p.join(30)
    assert p.exitcode == 0, p.exitcode
    np.testing.assert_allclose(conv, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_im2col, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(cols, fastconv.col2im(fastconv.im2col(x, 3, padding=1), x.shape, 3, padding=1))
    print("THREADS", threads)
""")


def _run_fork_script(tmp_path, mode):
    script = tmp_path / "fork_child.py"
    script.write_text(FORK_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    try:
        res = subprocess.run([sys.executable, str(script), mode], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure this test exists for
        pytest.fail("the fork child deadlocked and the parent's own timeout did not fire")
    assert res.returncode == 0, res.stdout + res.stderr
    return int(res.stdout.split("THREADS")[1])


def test_fork_child_after_openmp_started_computes_correctly(tmp_path):
    """Regression: with libgomp a fork child hung forever in its first parallel kernel."""
    threads = _run_fork_script(tmp_path, "warm")
    assert threads == 1  # such a child runs single-threaded (documented in fastconv._threads)


def test_fork_child_before_openmp_started_keeps_its_threads(tmp_path):
    threads = _run_fork_script(tmp_path, "cold")
    assert threads == (2 if OPENMP else 1)
