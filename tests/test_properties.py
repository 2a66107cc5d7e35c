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

import fastconv
from fastconv import reference


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
