"""Array factories and comparisons shared by the test modules."""

import numpy as np
from hypothesis import strategies as st

import fastconv

#: Every numeric dtype the data-movement functions must take.
ALL_DTYPES = [
    np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
    np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128, np.clongdouble,
]


def random_array(rng, shape, dtype):
    """Random values exercising every bit pattern that matters for ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    if dtype.kind == "c":
        real = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        return real.astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def pool_data(rng, shape, dtype, ties=True, nans=True, signed_zeros=False):
    """Values for pooling tests: many ties (small integers) and, for floats, some NaN and -inf.

    With ``signed_zeros`` the 1s become -0.0, which ties with the 0.0s (the first in tap order
    must win, bit for bit).
    """
    dtype = np.dtype(dtype)
    if not ties:
        return random_array(rng, shape, dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    x = rng.integers(0 if dtype.kind == "u" else -3, 4, size=shape).astype(dtype)
    if dtype.kind == "f" and nans:
        x[rng.random(shape) < 0.05] = np.nan
        x[rng.random(shape) < 0.05] = -np.inf
    if dtype.kind == "f" and signed_zeros:
        x[x == 1] = -0.0
    return x


def small_ints(rng, shape, dtype=np.int64, low=-5, high=5):
    """Small integers: conv results stay exact in every dtype."""
    return rng.integers(low, high + 1, size=shape).astype(dtype)


def tolerance(dtype):
    """(rtol, atol) for comparing convolution results of ``dtype`` computed in different orders."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        dtype = np.empty(0, dtype).real.dtype
    if dtype == np.float16:
        return 5e-3, 5e-3
    if dtype == np.float32:
        return 2e-5, 2e-5
    if dtype.kind == "f":
        return 1e-12, 1e-12
    return 0, 0


def assert_same_non_finite(got, expected, rtol=1e-4, atol=1e-4):
    """``got`` has ``expected``'s infs (with their signs) and nans, and its other values to ``rtol``/``atol``."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    infinite = np.isinf(expected)
    np.testing.assert_array_equal(np.isinf(got), infinite)
    np.testing.assert_array_equal(got[infinite], expected[infinite])
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=rtol, atol=atol)


def unaligned_zeros(shape, dtype):
    """A C-contiguous, writeable array of zeros that starts one byte past an aligned address."""
    dtype = np.dtype(dtype)
    raw = np.zeros(int(np.prod(shape)) * dtype.itemsize + 1, np.uint8)
    return raw[1:].view(dtype).reshape(shape)


def nonstandard_views(a):
    """The same values as ``a`` in awkward memory: strided, reversed, read-only, byte-swapped, unaligned."""
    views = {}
    big = np.repeat(a, 2, axis=-1)
    views["strided"] = big[..., ::2]
    reversed_ = np.ascontiguousarray(a[..., ::-1])
    views["negative-strides"] = reversed_[..., ::-1]
    ro = a.copy()
    ro.flags.writeable = False
    views["read-only"] = ro
    views["fortran"] = np.asfortranarray(a)
    if a.dtype.itemsize > 1:
        views["byte-swapped"] = a.astype(a.dtype.newbyteorder())
        raw = np.zeros(a.nbytes + 1, np.uint8)
        unaligned = raw[1:].view(a.dtype).reshape(a.shape)
        unaligned[...] = a
        views["unaligned"] = unaligned
    return views


@st.composite
def depthwise_cases(draw):
    """A depthwise geometry (any kernel, stride, padding and dilation) and its arrays' shapes (hypothesis).

    ``n``, ``c``, ``hw``, ``kernel``, ``stride``, ``padding`` (pairs of pairs),
    ``dilation``, ``dtype`` and a ``seed`` for the arrays' values; the
    kernel always fits the padded input.
    """
    c = draw(st.integers(2, 40))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = tuple(draw(st.integers(0, k - 1)) for k in (kh, kh, kw, kw))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - pads[0] - pads[1]), 20))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - pads[2] - pads[3]), 20))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return dict(n=draw(st.integers(1, 3)), c=c, hw=(h, w), kernel=(kh, kw), stride=stride,
                padding=((pads[0], pads[1]), (pads[2], pads[3])), dilation=(dh, dw),
                dtype=draw(st.sampled_from([np.float32, np.float64])), seed=draw(st.integers(0, 2**32 - 1)))


def _window_divisor(rows, cols, divisor_override):
    """``divisor_override``, or (``count_include_pad=False``) the number of the window's real pixels."""
    return len(rows) * len(cols) if divisor_override is None else divisor_override


def avg_pool_in_tap_order(x, k, s, p, divisor_override):
    """NHWC average pooling summed as the kernels sum it: each window's real pixels from 0 in
    row-major order, then divided once (:func:`_window_divisor`; square ``k``, ``s``, ``p``)."""
    n, h, w, c = x.shape
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.empty((n, oh, ow, c), x.dtype)
    for i in range(oh):
        rows = range(max(0, i * s - p), min(h, i * s - p + k))
        for j in range(ow):
            cols = range(max(0, j * s - p), min(w, j * s - p + k))
            total = np.zeros((n, c), x.dtype)
            for r in rows:
                for q in cols:
                    total += x[:, r, q, :]
            out[:, i, j, :] = total / x.dtype.type(_window_divisor(rows, cols, divisor_override))
    return out


def avg_gradient_in_output_order(grad, in_shape, k, s, p, divisor_override):
    """NHWC average-pooling gradient summed as the kernels sum it: output pixels in row-major order,
    each adding ``grad / divisor`` (:func:`_window_divisor`) once to each of its window's real
    pixels. ``k``, ``s``, ``p``: ints or (rows, columns) pairs; the output's size is ``grad``'s."""
    (kh, kw), (sh, sw), (ph, pw) = (v if isinstance(v, tuple) else (v, v) for v in (k, s, p))
    grad_in = np.zeros(in_shape, grad.dtype)
    h, w = in_shape[1:3]
    for oh in range(grad.shape[1]):
        rows = range(max(0, oh * sh - ph), min(h, oh * sh - ph + kh))
        for ow in range(grad.shape[2]):
            cols = range(max(0, ow * sw - pw), min(w, ow * sw - pw + kw))
            share = grad[:, oh, ow, :] / grad.dtype.type(_window_divisor(rows, cols, divisor_override))
            grad_in[:, rows.start:rows.stop, cols.start:cols.stop, :] += share[:, None, None, :]
    return grad_in


def each_simd_level():
    """Set each SIMD level this machine runs in turn, yielding its name; the previous level is restored after.

    For tests that check every level within one example (hypothesis tests, which cannot take the
    ``level`` fixture).
    """
    previous = fastconv.simd_level()
    try:
        for level in fastconv.simd_levels():
            fastconv.set_simd_level(level)
            yield level
    finally:
        fastconv.set_simd_level(previous)
