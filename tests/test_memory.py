"""The buffer cache: large results and workspaces reuse the memory of released ones, safely."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastconv
from fastconv import _arrays, reference
from fastconv._kernels import _buffers
from fastconv._memory import buffer_cache_info

BIG = (4, 16, 64, 64)  # a 1 MiB float32 result: from the cache
KB = 1 << 10


def address(a):
    return a.__array_interface__["data"][0]


@pytest.fixture
def cache():
    """A clean cache of the default size, restored afterwards."""
    previous = fastconv.set_buffer_cache_limit(0)  # drop what earlier tests left
    fastconv.set_buffer_cache_limit(256 << 20)
    yield
    fastconv.set_buffer_cache_limit(previous)


def test_a_released_result_is_reused(cache, rng):
    x = rng.standard_normal(BIG, dtype=np.float32)
    first = fastconv.max_pool2d(x, 1)  # the same size as x: 1 MiB
    where = address(first)
    assert first.flags.c_contiguous and first.flags.writeable and where % 64 == 0
    np.testing.assert_array_equal(first, x)
    del first
    assert buffer_cache_info()["idle_buffers"] == 1
    second = fastconv.max_pool2d(x, 1)
    assert address(second) == where
    np.testing.assert_array_equal(second, x)
    assert buffer_cache_info()["idle_buffers"] == 0


def test_a_view_keeps_its_memory_from_reuse(cache, rng):
    x = rng.standard_normal(BIG, dtype=np.float32)
    result = fastconv.avg_pool2d(x, 1)
    view = result[1:, ::2].T  # a view of a view: its base chain holds the buffer
    kept = view.copy()
    where = address(result)
    del result
    assert buffer_cache_info()["idle_buffers"] == 0
    for _ in range(3):
        other = fastconv.avg_pool2d(-x, 1)
        assert not np.shares_memory(other, view) and address(other) != where
        del other
    np.testing.assert_array_equal(view, kept)
    del view
    assert buffer_cache_info()["idle_buffers"] >= 1


def test_zeros_on_reused_memory_are_zeros(cache):
    dirty = _arrays.empty(BIG, np.float32)
    dirty[...] = np.nan
    where = address(dirty)
    del dirty
    clean = _arrays.zeros(BIG, np.float32)
    assert address(clean) == where
    assert not clean.any()


def test_col2im_sums_into_reused_memory(cache, rng):
    # col2im adds into a zeroed image: built on memory a released result left dirty
    shape = (4, 16, 64, 64)
    cols = rng.standard_normal(fastconv.im2col(np.zeros(shape, np.float32), 3, padding=1).shape, dtype=np.float32)
    dirty = _arrays.empty(shape, np.float32)
    dirty[...] = 1e30
    del dirty
    got = fastconv.col2im(cols, shape, 3, padding=1)
    np.testing.assert_allclose(got, reference.col2im(cols, shape, 3, padding=1), rtol=1e-5, atol=1e-4)


def test_small_arrays_are_numpys(cache):
    a = _arrays.empty((_buffers.MIN_BYTES // 8 - 1,), np.float64)
    assert a.base is None and a.flags.owndata
    b = _arrays.empty((_buffers.MIN_BYTES // 8,), np.float64)
    assert isinstance(b.base, _buffers._Block)


def test_reused_tells_a_cached_buffer_from_fresh_memory(cache):
    first = _arrays.empty(BIG, np.float32)
    assert not _arrays.reused(first)  # new memory: its pages fault on first write
    where = address(first)
    del first
    again = _arrays.zeros(BIG, np.float32)
    assert address(again) == where and _arrays.reused(again)
    assert not _arrays.reused(np.empty(BIG, np.float32))  # not the cache's
    assert not _arrays.reused(_arrays.empty((8,), np.float32))  # small: NumPy's
    assert not _arrays.reused(again[1:])  # a view: its base is the array, not the buffer


def test_the_limit_bounds_what_is_kept(cache):
    size = 1 << 20
    assert fastconv.get_buffer_cache_limit() == 256 << 20
    arrays = [_arrays.empty((size,), np.uint8) for _ in range(3)]
    assert fastconv.set_buffer_cache_limit(2 * size) == 256 << 20
    del arrays  # the third release pushes out the oldest
    assert buffer_cache_info() == {"limit": 2 * size, "idle_buffers": 2, "idle_bytes": 2 * size}
    big = _arrays.empty((3 * size,), np.uint8)  # larger than the limit: freed when released
    del big
    assert buffer_cache_info()["idle_bytes"] == 2 * size
    assert fastconv.set_buffer_cache_limit(0) == 2 * size
    assert buffer_cache_info() == {"limit": 0, "idle_buffers": 0, "idle_bytes": 0}
    a = _arrays.empty((size,), np.uint8)
    del a
    assert buffer_cache_info()["idle_buffers"] == 0  # off: nothing kept
    for bad, error in [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("1", TypeError)]:
        with pytest.raises(error):
            fastconv.set_buffer_cache_limit(bad)
    assert fastconv.get_buffer_cache_limit() == 0


def test_python_threads_share_the_cache(cache, rng):
    x = rng.standard_normal((2, 8, 64, 64), dtype=np.float32)
    w = rng.standard_normal((8, 8, 3, 3), dtype=np.float32)
    expected = fastconv.conv2d(x, w, padding=1)
    failures = []

    def work(sign):
        for _ in range(30):
            got = fastconv.conv2d(sign * x, w, padding=1)
            if not np.array_equal(got, sign * expected):
                failures.append(sign)

    threads = [threading.Thread(target=work, args=(s,)) for s in (1, -1, 1, -1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


@pytest.mark.parametrize("value, limit, warns", [("0", 0, False), ("1048576", 1 << 20, False),
                                                 ("lots", 256 << 20, True)])
def test_the_limit_comes_from_the_environment(value, limit, warns, tmp_path):
    # (run outside the checkout, whose fastconv/ may be an unbuilt source tree)
    env = dict(os.environ, FASTCONV_BUFFER_CACHE=value)
    run = subprocess.run([sys.executable, "-W", "always", "-c",
                          "import fastconv; print(fastconv.get_buffer_cache_limit())"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert int(run.stdout.split()[-1]) == limit
    assert ("FASTCONV_BUFFER_CACHE" in run.stderr) == warns
