"""Thread control, determinism across thread counts, concurrent callers."""

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastconv
from fastconv._kernels import _openmp_helpers

OPENMP = _openmp_helpers.openmp_enabled()


def test_build_reports_openmp_as_expected():
    """CI sets FASTCONV_EXPECT_OPENMP to 1 or 0 for each of its two builds."""
    expected = os.environ.get("FASTCONV_EXPECT_OPENMP")
    if expected is None:
        pytest.skip("FASTCONV_EXPECT_OPENMP not set; this build has OpenMP=%s" % OPENMP)
    assert OPENMP == (expected == "1")


def test_set_and_context():
    previous = fastconv.set_num_threads(3)
    try:
        assert fastconv.get_num_threads() == (3 if OPENMP else 1)
        with fastconv.num_threads(1):
            assert fastconv.get_num_threads() == 1
            with fastconv.num_threads(2):
                assert fastconv.get_num_threads() == (2 if OPENMP else 1)
            assert fastconv.get_num_threads() == 1
        assert fastconv.get_num_threads() == (3 if OPENMP else 1)
    finally:
        fastconv.set_num_threads(previous)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_thread_counts(bad, exc):
    with pytest.raises(exc, match="threads"):
        fastconv.set_num_threads(bad)
    with pytest.raises(exc, match="threads"):
        with fastconv.num_threads(bad):
            pass


def test_context_is_local_to_each_python_thread():
    seen = {}
    barrier = threading.Barrier(2)

    def worker(n):
        with fastconv.num_threads(n):
            barrier.wait()
            seen[n] = fastconv.get_num_threads()
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == ({1: 1, 2: 2} if OPENMP else {1: 1, 2: 1})


@pytest.mark.skipif(not OPENMP, reason="serial build")
def test_kernels_really_run_in_parallel():
    assert _openmp_helpers.threads_used(2) == 2
    assert _openmp_helpers.threads_used(1) == 1


@pytest.mark.skipif(not OPENMP, reason="serial build")
def test_threadpoolctl_limits_are_honoured():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1
    assert any(lib["user_api"] == "openmp" for lib in threadpoolctl.threadpool_info())


@pytest.mark.skipif(not OPENMP, reason="serial build")
def test_omp_num_threads_is_honoured(tmp_path):
    code = "import fastconv; print(fastconv.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "3"


CASES = [
    ("im2col", lambda x, w: fastconv.im2col(x, 3, stride=2, padding=1)),
    ("col2im", lambda x, w: fastconv.col2im(fastconv.im2col(x, 3, padding=1), x.shape, 3, padding=1)),
    ("col2im-nhwc", lambda x, w: fastconv.col2im(
        fastconv.im2col(x.transpose(0, 2, 3, 1), 3, padding=1, layout="NHWC"),
        x.transpose(0, 2, 3, 1).shape, 3, padding=1, layout="NHWC")),
    ("conv-direct", lambda x, w: fastconv.conv2d(x, w, padding=1, algorithm="direct")),
    ("conv-direct-nhwc", lambda x, w: fastconv.conv2d(
        x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), padding=1, layout="NHWC", algorithm="direct")),
    ("conv-im2col", lambda x, w: fastconv.conv2d(x, w, padding=1, algorithm="im2col")),
    ("grad-input", lambda x, w: fastconv.conv2d_grad_input(fastconv.conv2d(x, w), w, x.shape)),
    ("grad-weight", lambda x, w: fastconv.conv2d_grad_weight(fastconv.conv2d(x, w), x, w.shape)),
    ("conv-transpose", lambda x, w: fastconv.conv_transpose2d(fastconv.conv2d(x, w), w, stride=1)),
]


def test_small_calls_use_fewer_threads(every_call_parallel):
    import fastconv._threads as t

    with fastconv.num_threads(3):
        assert t.threads_for(10) == (3 if OPENMP else 1)
        t.GRAIN = 100
        assert t.threads_for(10) == 1
        assert t.threads_for(250) == (2 if OPENMP else 1)


@pytest.mark.parametrize("name, fn", CASES, ids=[c[0] for c in CASES])
def test_bitwise_identical_for_any_thread_count(rng, name, fn, every_call_parallel):
    x = rng.standard_normal((3, 8, 17, 15)).astype(np.float32)
    w = rng.standard_normal((12, 8, 3, 3)).astype(np.float32)
    with fastconv.num_threads(1):
        expected = fn(x, w)
    for n in (2, 3, 7):
        with fastconv.num_threads(n):
            got = fn(x, w)
        assert got.tobytes() == expected.tobytes(), f"{name} differs at {n} threads"


def test_concurrent_calls_from_python_threads(rng, every_call_parallel):
    xs = [rng.standard_normal((4, 6, 20, 20)) for _ in range(8)]
    w = rng.standard_normal((10, 6, 3, 3))
    expected = [fastconv.conv2d(x, w, padding=1) for x in xs]
    expected_cols = [fastconv.im2col(x, 3) for x in xs]

    def work(i):
        with fastconv.num_threads(1 + i % 2):
            return fastconv.conv2d(xs[i], w, padding=1), fastconv.im2col(xs[i], 3)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(len(xs))))
    for (conv, cols), e_conv, e_cols in zip(results, expected, expected_cols):
        np.testing.assert_array_equal(conv, e_conv)
        np.testing.assert_array_equal(cols, e_cols)
