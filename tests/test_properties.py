"""Property suite: every public function against ``fastconv.reference`` over random geometries.

Geometries include the degenerate ones (1x1 images, kernels as large as the
padded input, strides beyond the kernel, large dilations, empty batches and
channels, asymmetric and "same" padding), every dtype family, both layouts and
awkward memory (strided, reversed, read-only, byte-swapped, unaligned, Fortran
order). A geometry that is invalid must raise the same exception type in the
fast path and the reference; inputs must never change; ``out=`` may overlap an
input. Run with ``HYPOTHESIS_PROFILE=long`` (or ``--hypothesis-profile=long``)
for a thorough search.
"""

import numpy as np
import pytest
from helpers import ALL_DTYPES, tolerance
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv
from fastconv import reference

LAYOUTS = ["NCHW", "NHWC"]
MODES = ["zeros", "reflect", "replicate", "circular"]
CONV_DTYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int32, np.int64, np.uint64, np.bool_]
POOL_DTYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int16, np.int64, np.uint32, np.bool_]
MEMORY = ["contiguous", "strided", "negative-strides", "read-only", "fortran", "byte-swapped", "unaligned"]
HUGE = [1000, 2**40, 2**70]


# --- memory layouts and values ---------------------------------------------------------------------

def awkward(a, kind):
    """``a``'s values in the memory layout ``kind`` (a view or copy that NumPy treats as equal)."""
    a = np.asarray(a)
    if kind == "strided" and a.ndim:
        big = np.repeat(a, 2, axis=-1)
        return big[..., ::2]
    if kind == "negative-strides" and a.ndim:
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    if kind == "read-only":
        ro = a.copy()
        ro.flags.writeable = False
        return ro
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "byte-swapped" and a.dtype.itemsize > 1:
        return a.astype(a.dtype.newbyteorder())
    if kind == "unaligned" and a.dtype.itemsize > 1:
        raw = np.zeros(a.nbytes + 1, np.uint8)
        view = raw[1:].view(a.dtype).reshape(a.shape)
        view[...] = a
        assert not view.flags.aligned or a.size == 0 or a.dtype.alignment == 1
        return view
    return a.copy()


def values(seed, shape, dtype, small=True):
    """Random values of ``dtype``: small integers (exact sums in every dtype) or full-range ones."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        if small:
            return rng.integers(0 if dtype.kind == "u" else -3, 4, size=shape).astype(dtype)
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    if small:
        base = rng.integers(-3, 4, size=shape).astype(np.float64)
    else:
        base = rng.standard_normal(shape)
    if dtype.kind == "c":
        return (base + 1j * base[..., ::-1]).astype(dtype)
    return base.astype(dtype)


def snapshot(*arrays):
    return [(a.tobytes(), a.shape, a.strides, a.dtype.str, a.flags.writeable) for a in arrays]


def both(name, *args, **kwargs):
    """Run ``fastconv.name`` and ``reference.name``. Return the results, or None if both raised alike.

    Any exception must be a ValueError or TypeError, the same type on both sides; or a
    MemoryError on both sides, where a valid but huge geometry (a "same" padding of
    2**39 pixels) needs a padded buffer that fits intp but no machine (sizes that do
    not fit intp are ValueErrors: test_sizes.py). The fast path may succeed where the
    reference runs out of memory, never the other way round.
    """
    results = []
    for mod in (fastconv, reference):
        try:
            results.append(getattr(mod, name)(*args, **kwargs))
        except (ValueError, TypeError, MemoryError) as exc:
            results.append(exc)
    fast, ref = results
    if isinstance(ref, MemoryError) and not isinstance(fast, Exception):
        return None  # the textbook reference pads more than the fast path needs
    if isinstance(fast, MemoryError) and isinstance(ref, MemoryError):
        return None  # NumPy raises its own subclass; a kernel's scratch buffer, MemoryError
    if isinstance(fast, Exception) or isinstance(ref, Exception):
        assert type(fast) is type(ref), f"{name}: fast gave {fast!r}, reference gave {ref!r}"
        return None
    return fast, ref


def assert_matches(fast, ref, exact=True, dtype=None):
    """Same shape and dtype; equal values (exact, or within ``tolerance(dtype)``), NaN where NaN."""
    fast, ref = (fast if isinstance(fast, tuple) else (fast,)), (ref if isinstance(ref, tuple) else (ref,))
    assert len(fast) == len(ref)
    for a, b in zip(fast, ref):
        assert isinstance(a, np.ndarray)
        assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
        assert a.flags.c_contiguous
        if exact or a.dtype.kind not in "fc":
            np.testing.assert_array_equal(a, b)
        else:
            rtol, atol = tolerance(dtype or a.dtype)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def to_layout(shape_nchw, layout):
    n, c, h, w = shape_nchw
    return (n, h, w, c) if layout == "NHWC" else (n, c, h, w)


def weight_layout(shape_oihw, layout):
    k, c, kh, kw = shape_oihw
    return (kh, kw, c, k) if layout == "NHWC" else (k, c, kh, kw)


# --- geometries ------------------------------------------------------------------------------------

def axis_value(draw, low=1, high=4, huge=True):
    """Mostly small; sometimes far larger than any image."""
    if huge and draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(HUGE))
    return draw(st.integers(low, high))


@st.composite
def conv_geometries(draw, max_batch=3, max_channels=4, strings=True):
    """(x shape NCHW, kernel, stride, padding, dilation): mostly valid, degenerate corners included.

    Covers 1x1 and empty images, empty batches, kernels spanning the whole padded
    input, strides beyond the kernel and the image, huge dilations (valid only for
    one-tap kernels), asymmetric, "same" and "valid" padding. Some draws are invalid
    (a kernel larger than the padded input, a huge padding): both implementations
    must then raise the same error.
    """
    d = (axis_value(draw, 1, 3), axis_value(draw, 1, 3))
    s = (axis_value(draw, 1, 4), axis_value(draw, 1, 4))
    kinds = ["int", "pair", "pairs", "same", "valid"] if strings else ["int", "pair", "pairs"]
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        padding = draw(st.integers(0, 3)) if draw(st.integers(0, 19)) else 2**40
        pads = [(padding, padding)] * 2
    elif kind == "pair":
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        pads = [(p, p) for p in padding]
    elif kind == "pairs":
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
        pads = list(padding)
    else:
        padding, pads = kind, [(0, 0)] * 2
    hw = []
    for dd, (a, b) in zip(d, pads):
        hw.append(draw(st.sampled_from([0, 1, 1, 2, 3, 5, 8])) if draw(st.booleans()) else draw(st.integers(1, 9)))
    k = []
    for n, dd, (a, b) in zip(hw, d, pads):
        mode = draw(st.sampled_from(["small", "small", "small", "fill", "one"]))
        if mode == "fill" and kind != "same" and a + b < 2**20:
            k.append(max(1, (n + a + b - 1) // dd + 1))  # spans the whole padded input
        elif mode == "one":
            k.append(1)
        else:
            k.append(draw(st.integers(1, 4)))
    batch = draw(st.sampled_from([0, 1, 1, 2, max_batch]))
    channels = draw(st.integers(0, max_channels)) if draw(st.integers(0, 9)) == 0 else draw(st.integers(1, max_channels))
    return (batch, channels, *hw), tuple(k), s, padding, d


def valid_conv(shape, k, s, padding, d):
    """True when the geometry is valid (conv_output_shape does not raise)."""
    try:
        fastconv.conv_output_shape(shape[2:], k, stride=s, padding=padding, dilation=d)
    except ValueError:
        return False
    return True


@st.composite
def pool_geometries(draw):
    """(x shape NCHW, kernel, stride, padding, dilation, ceil_mode) for the pools; degenerate corners too."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = draw(st.one_of(st.none(), st.integers(1, 4), st.tuples(st.integers(1, 5), st.sampled_from([1, 2, 7, 2**40]))))
    d = (draw(st.integers(1, 3)), 2**40 if k[1] == 1 and draw(st.booleans()) else draw(st.integers(1, 3)))
    kind = draw(st.sampled_from(["int", "pair", "pairs", "same", "valid", "too-large"]))
    if kind == "int":
        padding = draw(st.integers(0, min(k) // 2))
    elif kind == "pair":
        padding = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    elif kind == "pairs":
        padding = tuple((draw(st.integers(0, kk // 2)), draw(st.integers(0, kk // 2))) for kk in k)
    elif kind == "too-large":
        padding = max(k) // 2 + 1  # more than half the kernel: a ValueError
    else:
        padding = kind
    hw = tuple(draw(st.sampled_from([1, 1, 2, 3, 4, 6, 9])) for _ in range(2))
    shape = (draw(st.sampled_from([0, 1, 2, 3])), draw(st.integers(0, 3)) if draw(st.integers(0, 9)) == 0 else
             draw(st.integers(1, 3)), *hw)
    return shape, k, s, padding, d, draw(st.booleans())


# --- out= overlapping an input ---------------------------------------------------------------------

def _aliased_calls():
    """(name, make) pairs: ``make(mod)`` calls ``mod.name`` with an ``out`` that shares an input's memory."""
    def conv(layout, dtype, algorithm):
        def make(mod):
            rng = np.random.default_rng(7)
            x = rng.standard_normal((2, 8, 6, 6)) if dtype != np.int64 else rng.integers(-9, 9, (2, 8, 6, 6))
            x = x.astype(dtype)
            w = rng.standard_normal((8, 8, 1, 1)).round(1).astype(dtype)
            if layout == "NHWC":
                x, w = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(2, 3, 1, 0))
            return mod.conv2d(x, w, layout=layout, algorithm=algorithm, out=x), x
        return make

    calls = [(f"conv2d-{lay}-{np.dtype(dt).name}-{alg}", conv(lay, dt, alg))
             for lay in ("NCHW", "NHWC") for dt in (np.float32, np.float64, np.int64) for alg in ("direct", "im2col")]

    def col2im(mod):
        cols = np.arange(16.0).reshape(16, 1)
        return mod.col2im(cols, (1, 1, 4, 4), 1, out=cols.reshape(1, 1, 4, 4)), cols

    def col2im_shifted(mod):
        buf = np.arange(40.0)
        cols = buf[:36].reshape(9, 4)
        return mod.col2im(cols, (1, 1, 4, 4), 2, out=buf[4:20].reshape(1, 1, 4, 4)), cols

    def im2col(mod):
        buf = np.arange(40.0)
        x = buf[:16].reshape(1, 1, 4, 4)
        return mod.im2col(x, 2, stride=2, out=buf[1:17].reshape(4, 4)), x

    def pool(name, layout, **kw):
        def make(mod):
            x = np.arange(72.0)[::-1].copy().reshape(1, 2, 6, 6) % 7
            if layout == "NHWC":
                x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            return getattr(mod, name)(x, 3, stride=1, padding=1, layout=layout, out=x, **kw), x
        return make

    def max_pool_indices(mod):
        x = np.arange(36, dtype=np.int64)[::-1].copy().reshape(1, 1, 6, 6) % 5
        return mod.max_pool2d(x, 3, stride=1, padding=1, return_indices=True, out=(None, x))[1], x

    def avg_backward(mod):
        g = np.arange(36.0).reshape(1, 1, 6, 6)
        return mod.avg_pool2d_backward(g, (1, 1, 6, 6), 3, stride=1, padding=1, out=g), g

    def max_backward(mod):
        g = np.arange(36.0).reshape(1, 1, 6, 6)
        idx = np.arange(36)[::-1].copy().reshape(1, 1, 6, 6)
        return mod.max_pool2d_backward(g, idx, (1, 1, 6, 6), out=g), g

    def max_backward_indices(mod):
        idx = np.arange(36, dtype=np.int64)[::-1].copy().reshape(1, 1, 6, 6)
        return mod.max_pool2d_backward(np.ones((1, 1, 6, 6)), idx, (1, 1, 6, 6), out=idx.view(np.float64)), idx

    def grad_input(stride):
        def make(mod):
            g = np.arange(36.0).reshape(1, 1, 6, 6) if stride == 1 else np.arange(9.0).reshape(1, 1, 3, 3)
            buf = np.zeros(64)
            buf[:g.size] = g.ravel()
            g = buf[:g.size].reshape(g.shape)
            return mod.conv2d_grad_input(g, np.ones((1, 1, 3, 3)), (1, 1, 6, 6), stride=stride, padding=1,
                                         out=buf[:36].reshape(1, 1, 6, 6)), g
        return make

    def grad_weight(mod):
        buf = np.arange(36.0)
        g = buf[:9].reshape(1, 1, 3, 3)
        x = np.arange(25.0).reshape(1, 1, 5, 5)
        return mod.conv2d_grad_weight(g, x, (1, 1, 3, 3), out=buf[:9].reshape(1, 1, 3, 3)), g

    def transpose(stride):
        def make(mod):
            buf = np.zeros(200)
            x = buf[:36].reshape(1, 1, 6, 6)
            x[...] = np.arange(36.0).reshape(x.shape)
            shape = (1, 1, 6, 6) if stride == 1 else (1, 1, 11, 11)
            return mod.conv_transpose2d(x, np.ones((1, 1, 3, 3)), stride=stride, padding=1,
                                        out=buf[:np.prod(shape)].reshape(shape)), x
        return make

    calls += [("col2im", col2im), ("col2im-shifted", col2im_shifted), ("im2col", im2col),
              ("max_pool2d-NCHW", pool("max_pool2d", "NCHW")), ("max_pool2d-NHWC", pool("max_pool2d", "NHWC")),
              ("avg_pool2d-NCHW", pool("avg_pool2d", "NCHW")), ("avg_pool2d-NHWC", pool("avg_pool2d", "NHWC")),
              ("max_pool2d-indices", max_pool_indices), ("avg_pool2d_backward", avg_backward),
              ("max_pool2d_backward", max_backward), ("max_pool2d_backward-indices", max_backward_indices),
              ("conv2d_grad_input-s1", grad_input(1)), ("conv2d_grad_input-s2", grad_input(2)),
              ("conv2d_grad_weight", grad_weight),
              ("conv_transpose2d-s1", transpose(1)), ("conv_transpose2d-s2", transpose(2))]
    return calls


ALIASED = _aliased_calls()


@pytest.mark.parametrize("name, make", ALIASED, ids=[c[0] for c in ALIASED])
def test_out_overlapping_an_input(name, make):
    """``out=`` sharing memory with an input gives the result of a separate ``out``.

    Regression: kernels read inputs they had already overwritten through
    ``out`` (``conv2d(x, w, out=x)``, ``avg_pool2d(x, 3, stride=1, padding=1,
    out=x)``, ``col2im(cols, ..., out=cols.reshape(...))`` zeroed its own
    columns first): wrong results, silently.
    """
    fast, _ = make(fastconv)
    expected, _ = make(reference)  # the reference computes into a new array, then copies
    assert fast.dtype == expected.dtype
    np.testing.assert_allclose(fast, expected, rtol=1e-5, atol=1e-5)


def test_max_pool2d_values_and_indices_out_must_not_overlap():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    buf = np.zeros(4, np.int64)
    for mod in (fastconv, reference):
        with pytest.raises(ValueError, match="must not share memory"):
            mod.max_pool2d(x.astype(np.int64), 2, return_indices=True,
                           out=(buf.reshape(1, 1, 2, 2), buf.reshape(1, 1, 2, 2)))


# --- properties: fast == reference for every public function ---------------------------------------

common = dict(layout=st.sampled_from(LAYOUTS), memory=st.sampled_from(MEMORY), seed=st.integers(0, 2**16),
              unbatched=st.integers(0, 4))


def _batch(shape, unbatched):
    """Drop the batch axis of a one-image shape now and then (an unbatched call)."""
    return shape[1:] if unbatched == 0 and shape[0] == 1 else shape


@given(geo=conv_geometries(), dtype=st.sampled_from(ALL_DTYPES), mode=st.sampled_from(MODES), **common)
def test_im2col(geo, dtype, mode, layout, memory, seed, unbatched):
    shape, k, s, padding, d = geo
    x = awkward(values(seed, _batch(to_layout(shape, layout), unbatched), dtype, small=False), memory)
    before = snapshot(x)
    res = both("im2col", x, k, stride=s, padding=padding, dilation=d, padding_mode=mode, layout=layout)
    assert snapshot(x) == before
    if res is not None:
        assert_matches(*res)
        assert res[0].dtype == np.dtype(dtype).newbyteorder("=")


@given(geo=conv_geometries(), dtype=st.sampled_from(ALL_DTYPES), wrong=st.integers(0, 19), **common)
def test_col2im(geo, dtype, wrong, layout, memory, seed, unbatched):
    shape, k, s, padding, d = geo
    input_shape = _batch(to_layout(shape, layout), unbatched)
    assume(valid_conv(shape, k, s, padding, d) or wrong == 0)
    try:
        oh, ow = fastconv.conv_output_shape(shape[2:], k, stride=s, padding=padding, dilation=d).shape
        cols_shape = (shape[0] * oh * ow, shape[1] * k[0] * k[1])
    except ValueError:
        cols_shape = (1, 1)
    if wrong == 0:  # a columns matrix that does not fit input_shape
        cols_shape = (cols_shape[0] + 1, cols_shape[1])
    if max(cols_shape) > 10**5 or np.prod(cols_shape) > 10**5:
        cols_shape = (1, 1)  # a huge geometry: refused before the columns are looked at
    cols = awkward(values(seed, cols_shape, dtype), memory)
    before = snapshot(cols)
    # integers wrap, floats add in the same ascending order on both sides
    res = both("col2im", cols, input_shape, k, stride=s, padding=padding, dilation=d, layout=layout)
    assert snapshot(cols) == before
    if res is not None:
        assert wrong != 0
        assert res[0].shape == tuple(input_shape)
        assert_matches(*res, exact=np.dtype(dtype) != np.float16, dtype=dtype)


@given(geo=conv_geometries(max_channels=6), k_per_group=st.integers(0, 3), groups=st.sampled_from([1, 1, 2, 3]),
       dtype=st.sampled_from(CONV_DTYPES + [np.complex64, np.longdouble]), mode=st.sampled_from(MODES),
       algorithm=st.sampled_from(["auto", "direct", "im2col"]), bias=st.booleans(), small=st.booleans(), **common)
def test_conv2d(geo, k_per_group, groups, dtype, mode, algorithm, bias, small, layout, memory, seed, unbatched):
    shape, k, s, padding, d = geo
    if k[0] * k[1] > 10**4:
        k = (1, 1)
    cg = shape[1] // groups if shape[1] % groups == 0 else max(1, shape[1] // groups)
    w_shape = weight_layout((groups * k_per_group, cg, *k), layout)
    x = awkward(values(seed, _batch(to_layout(shape, layout), unbatched), dtype, small), memory)
    w = awkward(values(seed + 1, w_shape, dtype, small), memory)
    b = awkward(values(seed + 2, (groups * k_per_group,), dtype, small), memory) if bias else None
    before = snapshot(x, w, *([b] if bias else []))
    res = both("conv2d", x, w, b, stride=s, padding=padding, dilation=d, groups=groups, padding_mode=mode,
               layout=layout, algorithm=algorithm)
    assert snapshot(x, w, *([b] if bias else [])) == before
    if np.dtype(dtype).kind == "c" or dtype == np.longdouble:
        assert res is None  # both raised (TypeError)
    if res is not None:
        assert_matches(*res, exact=small and dtype != np.float16, dtype=dtype)


def _forward(shape, k, s, padding, d, groups, k_per_group, layout):
    """Shapes of a valid forward convolution: (x, weight, y), or None."""
    if not valid_conv(shape, k, s, padding, d) or shape[1] % groups:
        return None
    oh, ow = fastconv.conv_output_shape(shape[2:], k, stride=s, padding=padding, dilation=d).shape
    if max(shape[0], 1) * max(groups * k_per_group, 1) * oh * ow > 10**5:
        return None  # a huge padding: sizes are test_sizes.py's business
    k_out = groups * k_per_group
    return (to_layout(shape, layout), weight_layout((k_out, shape[1] // groups, *k), layout),
            to_layout((shape[0], k_out, oh, ow), layout))


@given(geo=conv_geometries(), k_per_group=st.integers(0, 3), groups=st.sampled_from([1, 1, 2]),
       dtype=st.sampled_from(CONV_DTYPES), small=st.booleans(), mismatch=st.integers(0, 14), **common)
def test_conv2d_grad_input(geo, k_per_group, groups, dtype, small, mismatch, layout, memory, seed, unbatched):
    shape, k, s, padding, d = geo
    shapes = _forward(shape, k, s, padding, d, groups, k_per_group, layout)
    assume(shapes is not None)
    x_shape, w_shape, y_shape = shapes
    if mismatch == 0:  # grad_output of another shape: a ValueError
        y_shape = y_shape[:-1] + (y_shape[-1] + 1,)
    g = awkward(values(seed, _batch(y_shape, unbatched), dtype, small), memory)
    w = awkward(values(seed + 1, w_shape, dtype, small), memory)
    before = snapshot(g, w)
    res = both("conv2d_grad_input", g, w, _batch(x_shape, unbatched), stride=s, padding=padding, dilation=d,
               groups=groups, layout=layout)
    assert snapshot(g, w) == before
    if res is not None:
        assert mismatch != 0
        assert_matches(*res, exact=small and dtype != np.float16, dtype=dtype)


@given(geo=conv_geometries(), k_per_group=st.integers(0, 3), groups=st.sampled_from([1, 1, 2]),
       dtype=st.sampled_from(CONV_DTYPES), small=st.booleans(), mismatch=st.integers(0, 14), **common)
def test_conv2d_grad_weight(geo, k_per_group, groups, dtype, small, mismatch, layout, memory, seed, unbatched):
    shape, k, s, padding, d = geo
    shapes = _forward(shape, k, s, padding, d, groups, k_per_group, layout)
    assume(shapes is not None)
    x_shape, w_shape, y_shape = shapes
    if mismatch == 0:
        w_shape = w_shape[:-1] + (w_shape[-1] + 1,)
    g = awkward(values(seed, _batch(y_shape, unbatched), dtype, small), memory)
    x = awkward(values(seed + 1, _batch(x_shape, unbatched), dtype, small), memory)
    before = snapshot(g, x)
    res = both("conv2d_grad_weight", g, x, w_shape, stride=s, padding=padding, dilation=d, groups=groups,
               layout=layout)
    assert snapshot(g, x) == before
    if res is not None:
        assert res[0].shape == tuple(w_shape)
        # float sums are long here (over N, OH, OW): compare floats within the tolerance
        assert_matches(*res, exact=small and dtype not in (np.float16, np.float32), dtype=dtype)


@given(geo=conv_geometries(strings=False), c_per_group=st.integers(0, 3), groups=st.sampled_from([1, 1, 2]),
       out_pad=st.tuples(st.integers(0, 2), st.integers(0, 2)), dtype=st.sampled_from(CONV_DTYPES),
       bias=st.booleans(), small=st.booleans(), **common)
def test_conv_transpose2d(geo, c_per_group, groups, out_pad, dtype, bias, small, layout, memory, seed, unbatched):
    shape, k, s, padding, d = geo  # shape is the transposed convolution's input
    pads = [(padding, padding)] * 2 if isinstance(padding, int) else [
        p if isinstance(p, tuple) else (p, p) for p in padding]
    spatial = [(n - 1) * ss - a - b + dd * (kk - 1) + op + 1
               for n, ss, (a, b), dd, kk, op in zip(shape[2:], s, pads, d, k, out_pad)]
    size = max(shape[0], 1) * max(c_per_group * groups, 1) * max(spatial[0], 1) * max(spatial[1], 1)
    # sizes between these bounds would really be allocated: test_sizes.py covers the huge ones
    assume(k[0] * k[1] <= 10**4 and (size <= 10**5 or size > 2**63))
    c_in = shape[1] * groups if shape[1] else groups
    shape = (shape[0], c_in, *shape[2:])
    w = awkward(values(seed + 1, weight_layout((c_in, c_per_group, *k), layout), dtype, small), memory)
    x = awkward(values(seed, _batch(to_layout(shape, layout), unbatched), dtype, small), memory)
    b = values(seed + 2, (groups * c_per_group,), dtype, small) if bias else None
    before = snapshot(x, w)
    res = both("conv_transpose2d", x, w, b, stride=s, padding=padding, output_padding=out_pad, dilation=d,
               groups=groups, layout=layout)
    assert snapshot(x, w) == before
    if res is not None:
        assert_matches(*res, exact=small and dtype != np.float16, dtype=dtype)


@given(geo=pool_geometries(), dtype=st.sampled_from(POOL_DTYPES + [np.complex64]), indices=st.booleans(),
       small=st.booleans(), **common)
def test_max_pool2d_and_backward(geo, dtype, indices, small, layout, memory, seed, unbatched):
    shape, k, s, padding, d, ceil = geo
    x = awkward(values(seed, _batch(to_layout(shape, layout), unbatched), dtype, small), memory)
    before = snapshot(x)
    res = both("max_pool2d", x, k, stride=s, padding=padding, dilation=d, ceil_mode=ceil,
               return_indices=indices, layout=layout)
    assert snapshot(x) == before
    if np.dtype(dtype).kind == "c":
        assert res is None
    if res is None:
        return
    assert_matches(*res)  # comparisons and copies: exact in every dtype
    if not indices:
        return
    (_, idx), _ = res
    g = awkward(values(seed + 1, idx.shape, np.float64 if dtype == np.bool_ else dtype, small), memory)
    idx = awkward(idx, memory)
    before = snapshot(g, idx)
    back = both("max_pool2d_backward", g, idx, x.shape, layout=layout)
    assert snapshot(g, idx) == before
    assert back is not None
    assert_matches(*back, exact=small and dtype != np.float16, dtype=dtype)


@given(geo=pool_geometries(), dtype=st.sampled_from(POOL_DTYPES), cip=st.booleans(),
       div=st.sampled_from([None, None, 1, 3, -2, 2**40]), **common)
def test_avg_pool2d_and_backward(geo, dtype, cip, div, layout, memory, seed, unbatched):
    shape, k, s, padding, d, ceil = geo
    x = awkward(values(seed, _batch(to_layout(shape, layout), unbatched), dtype), memory)
    kw = dict(stride=s, padding=padding, ceil_mode=ceil, count_include_pad=cip, divisor_override=div, layout=layout)
    before = snapshot(x)
    res = both("avg_pool2d", x, k, **kw)
    assert snapshot(x) == before
    if res is None:
        return
    assert_matches(*res, exact=False)  # tolerance of the result dtype (float64 for integers)
    g = awkward(values(seed + 1, res[0].shape, dtype if np.dtype(dtype).kind == "f" else np.float64), memory)
    before = snapshot(g)
    back = both("avg_pool2d_backward", g, x.shape, k, **kw)
    assert snapshot(g) == before
    assert back is not None
    assert_matches(*back, exact=False)


@given(in_shape=st.tuples(st.integers(0, 50), st.integers(0, 50)),
       k=st.one_of(st.integers(1, 7), st.tuples(st.integers(1, 7), st.integers(1, 7))),
       s=st.one_of(st.integers(1, 5), st.sampled_from(HUGE)), d=st.integers(1, 4),
       padding=st.one_of(st.integers(0, 4), st.sampled_from(["same", "valid"]),
                         st.tuples(st.tuples(st.integers(0, 4), st.integers(0, 4)),
                                   st.tuples(st.integers(0, 4), st.integers(0, 4)))))
def test_conv_output_shape_agrees_with_the_functions(in_shape, k, s, d, padding):
    """conv_output_shape is what im2col, conv2d and the reference produce, or all raise ValueError."""
    kk = (k, k) if isinstance(k, int) else k
    x = np.zeros((1, 1) + in_shape)
    try:
        res = fastconv.conv_output_shape(in_shape, k, stride=s, padding=padding, dilation=d)
    except ValueError:
        for fn in (fastconv.im2col, reference.im2col):
            with pytest.raises(ValueError):
                fn(x, k, stride=s, padding=padding, dilation=d)
        return
    pads = res.padding
    expected = tuple((n + a + b - d * (q - 1) - 1) // s + 1 for n, (a, b), q in zip(in_shape, pads, kk))
    assert res.shape == expected
    assert all(o >= 1 for o in res.shape)
    if padding == "same":
        assert res.shape == tuple(-(-n // s) for n in in_shape)
    w = np.ones((2, 1) + kk)
    assert fastconv.conv2d(x, w, stride=s, padding=padding, dilation=d).shape == (1, 2) + res.shape
    assert reference.im2col(x, k, stride=s, padding=padding, dilation=d).shape == (
        res.shape[0] * res.shape[1], kk[0] * kk[1])
