"""Pooling: fast == reference == PyTorch, every real dtype, layout, geometry and memory order."""

import numpy as np
import pytest
from helpers import (ALL_DTYPES, avg_gradient_in_output_order, nonstandard_views, pool_data, random_array,
                     unaligned_zeros)
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv
from fastconv import reference

REAL_DTYPES = [d for d in ALL_DTYPES if np.dtype(d).kind != "c"]
LAYOUTS = ["NCHW", "NHWC"]
FUNCTIONS = ["max_pool2d", "avg_pool2d", "max_pool2d_backward", "avg_pool2d_backward"]

# (x shape NCHW, kernel, stride, padding, dilation, ceil_mode); avg pooling ignores the dilation
GRID = [
    ((1, 1, 4, 4), 2, None, 0, 1, False),
    ((2, 3, 7, 6), 3, 2, 1, 1, False),
    ((2, 3, 7, 6), 3, 2, 1, 1, True),
    ((2, 3, 8, 9), (2, 3), (1, 2), (1, 1), (2, 1), True),
    ((1, 2, 5, 5), 5, 1, 2, 1, False),  # padding of half the kernel on every side
    ((2, 2, 6, 7), (3, 2), (2, 3), ((1, 0), (0, 1)), 1, True),  # asymmetric padding
    ((1, 3, 1, 1), 1, 3, 0, 1, True),  # 1x1 image, stride larger than the kernel
    ((3, 2, 9, 4), 4, 3, 2, (1, 2), True),
    ((1, 2, 13, 37), 3, 2, 1, 1, True),  # wide rows: the kernels' vectorized interior
    ((2, 4, 6, 20), 2, 2, 0, 1, False),
    ((1, 2, 6, 31), (2, 3), (1, 3), (1, 1), 1, False),
]
TORCH_GRID = [g for g in GRID if not isinstance(g[3], tuple) or all(isinstance(p, int) for p in g[3])]


def to_layout(x, layout):
    """An NCHW array in ``layout`` (C-contiguous)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x


def to_nchw(x, layout):
    return x.transpose(0, 3, 1, 2) if layout == "NHWC" else x


def geometry_kwargs(s, p, d=1, ceil=False):
    return dict(stride=s, padding=p, dilation=d, ceil_mode=ceil)


def avg_kwargs(s, p, ceil=False, cip=True, div=None):
    return dict(stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)


def assert_same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


# ----------------------------------------------------------------- fast == reference, grid
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int16, np.uint8, np.bool_],
                         ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape, k, s, p, d, ceil", GRID)
def test_max_pool2d_matches_reference(rng, shape, k, s, p, d, ceil, layout, dtype):
    x = to_layout(pool_data(rng, shape, dtype), layout)
    kw = dict(geometry_kwargs(s, p, d, ceil), layout=layout)
    values, indices = fastconv.max_pool2d(x, k, return_indices=True, **kw)
    ref_values, ref_indices = reference.max_pool2d(x, k, return_indices=True, **kw)
    assert values.dtype == x.dtype and indices.dtype == np.int64
    assert values.flags.c_contiguous and indices.flags.c_contiguous
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(fastconv.max_pool2d(x, k, **kw), values)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int32], ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("cip, div", [(True, None), (False, None), (True, 3), (False, -2)])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape, k, s, p, d, ceil", GRID)
def test_avg_pool2d_matches_reference(rng, shape, k, s, p, d, ceil, layout, cip, div, dtype):
    x = to_layout(pool_data(rng, shape, dtype, ties=False) if dtype != np.int32 else
                  rng.integers(-100, 100, shape).astype(dtype), layout)
    kw = dict(avg_kwargs(s, p, ceil, cip, div), layout=layout)
    got = fastconv.avg_pool2d(x, k, **kw)
    expected = reference.avg_pool2d(x, k, **kw)
    assert got.dtype == (np.float64 if dtype == np.int32 else dtype)
    np.testing.assert_array_equal(got, expected)  # same sums in the same order: bitwise equal


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16], ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape, k, s, p, d, ceil", GRID)
def test_max_pool2d_backward_matches_reference(rng, shape, k, s, p, d, ceil, layout, dtype):
    x = to_layout(pool_data(rng, shape, np.float64, nans=False), layout)
    _, indices = fastconv.max_pool2d(x, k, return_indices=True, layout=layout, **geometry_kwargs(s, p, d, ceil))
    grad = rng.standard_normal(indices.shape).astype(dtype)
    got = fastconv.max_pool2d_backward(grad, indices, x.shape, layout=layout)
    expected = reference.max_pool2d_backward(grad, indices, x.shape, layout=layout)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, expected)  # both add in output order
    # the gradient is the adjoint of "gather by indices": <g, x[indices]> == <backward(g), x>
    grad = grad.astype(np.float64)
    flat = to_nchw(x, layout).reshape(shape[0], shape[1], -1)
    gathered = np.take_along_axis(flat, to_nchw(indices, layout).reshape(shape[0], shape[1], -1), axis=2)
    lhs = np.vdot(to_nchw(grad, layout).ravel(), gathered.ravel())
    rhs = np.vdot(fastconv.max_pool2d_backward(grad, indices, x.shape, layout=layout), x)
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("cip, div", [(True, None), (False, None), (False, 4)])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape, k, s, p, d, ceil", GRID)
def test_avg_pool2d_backward_matches_reference(rng, shape, k, s, p, d, ceil, layout, cip, div):
    x_shape = to_layout(np.empty(shape), layout).shape
    kw = dict(avg_kwargs(s, p, ceil, cip, div), layout=layout)
    out_shape = fastconv.avg_pool2d(np.zeros(x_shape), k, **kw).shape
    grad = rng.standard_normal(out_shape)
    got = fastconv.avg_pool2d_backward(grad, x_shape, k, **kw)
    np.testing.assert_allclose(got, reference.avg_pool2d_backward(grad, x_shape, k, **kw), rtol=1e-13, atol=1e-13)
    # adjoint identity: <avg_pool2d(x), g> == <x, avg_pool2d_backward(g)>
    x = rng.standard_normal(x_shape)
    assert np.vdot(fastconv.avg_pool2d(x, k, **kw), grad) == pytest.approx(np.vdot(x, got), rel=1e-10, abs=1e-12)



# Each pixel of an average-pooling gradient sums its shares in output order (the module's
# promise), bit for bit: NCHW rows go a tap column at a time, the last column first, rows of
# more than 256 outputs in runs (600 columns), 2x2 windows at stride 2 by their own loop;
# ceil_mode's last windows hang over the padding.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, s, p", [
    ((2, 3, 9, 11), 3, 1, 1), ((2, 3, 9, 11), 3, 2, 1), ((2, 3, 9, 11), 2, 1, 0), ((2, 3, 9, 11), 2, 2, 0),
    ((2, 3, 9, 11), (3, 5), (1, 2), (1, 2)), ((1, 2, 9, 11), (9, 11), 1, 0), ((1, 2, 3, 600), 3, 1, 1),
    ((1, 2, 3, 600), (2, 4), (1, 3), (1, 2)),
])
@pytest.mark.parametrize("divisor_override", [None, 3])
@pytest.mark.parametrize("ceil", [False, True])
def test_avg_pool2d_backward_sums_in_output_order(rng, shape, k, s, p, dtype, divisor_override, ceil):
    kw = dict(stride=s, padding=p, ceil_mode=ceil, count_include_pad=False, divisor_override=divisor_override)
    out_shape = fastconv.avg_pool2d(np.zeros(shape, dtype), k, **kw).shape
    grad = rng.standard_normal(out_shape).astype(dtype)
    got = fastconv.avg_pool2d_backward(grad, shape, k, **kw)
    nhwc = avg_gradient_in_output_order(grad.transpose(0, 2, 3, 1), to_layout(np.empty(shape), "NHWC").shape,
                                        k, s, p, divisor_override)
    np.testing.assert_array_equal(got.view(np.uint8), np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)).view(np.uint8))

# ----------------------------------------------------------------- fast == reference, hypothesis
@st.composite
def pool_geometries(draw, dilated=True, asymmetric=True):
    """A valid (x shape NCHW, kernel, stride, padding, dilation, ceil_mode) for PyTorch-style pooling."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilated else (1, 1)
    kinds = ["int", "pair", "pairs"] if asymmetric else ["int", "pair"]
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        padding = draw(st.integers(0, min(k) // 2))
        pads = [(padding, padding)] * 2
    elif kind == "pair":
        padding = tuple(draw(st.integers(0, kk // 2)) for kk in k)
        pads = [(p, p) for p in padding]
    else:
        padding = tuple((draw(st.integers(0, kk // 2)), draw(st.integers(0, kk // 2))) for kk in k)
        pads = list(padding)
    hw = []
    for kk, dd, (a, b) in zip(k, d, pads):
        low = max(1, dd * (kk - 1) + 1 - a - b)
        hw.append(draw(st.integers(low, low + 9)))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), *hw)
    return shape, k, s, padding, d, draw(st.booleans())


@given(geo=pool_geometries(), layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(REAL_DTYPES),
       ties=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool2d_property(geo, layout, dtype, ties, seed):
    shape, k, s, p, d, ceil = geo
    rng = np.random.default_rng(seed)
    x = to_layout(pool_data(rng, shape, dtype, ties=ties), layout)
    kw = dict(geometry_kwargs(s, p, d, ceil), layout=layout)
    values, indices = fastconv.max_pool2d(x, k, return_indices=True, **kw)
    ref_values, ref_indices = reference.max_pool2d(x, k, return_indices=True, **kw)
    assert values.dtype == x.dtype
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(fastconv.max_pool2d(x, k, **kw), values)
    grad = rng.standard_normal(values.shape)
    np.testing.assert_array_equal(fastconv.max_pool2d_backward(grad, indices, x.shape, layout=layout),
                                  reference.max_pool2d_backward(grad, indices, x.shape, layout=layout))


@given(geo=pool_geometries(dilated=False), layout=st.sampled_from(LAYOUTS),
       dtype=st.sampled_from(REAL_DTYPES), cip=st.booleans(),
       div=st.one_of(st.none(), st.integers(-5, 5).filter(bool)), seed=st.integers(0, 2**16))
def test_avg_pool2d_property(geo, layout, dtype, cip, div, seed):
    shape, k, s, p, _, ceil = geo
    rng = np.random.default_rng(seed)
    x = to_layout(random_array(rng, shape, dtype), layout)
    kw = dict(avg_kwargs(s, p, ceil, cip, div), layout=layout)
    got = fastconv.avg_pool2d(x, k, **kw)
    expected = reference.avg_pool2d(x, k, **kw)
    kind = np.dtype(dtype).kind
    assert got.dtype == (np.float64 if kind in "biu" else dtype)
    np.testing.assert_array_equal(got, expected)
    grad = rng.standard_normal(got.shape).astype(got.dtype)
    back = fastconv.avg_pool2d_backward(grad, x.shape, k, **kw)
    ref_back = reference.avg_pool2d_backward(grad, x.shape, k, **kw)
    assert back.dtype == got.dtype and back.shape == x.shape
    tol = 2e-3 if got.dtype == np.float16 else 1e-5 if got.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(back.astype(np.float64), ref_back.astype(np.float64), rtol=tol, atol=tol)


# ----------------------------------------------------------------- PyTorch
def torch_padding(p):
    return p if not isinstance(p, tuple) else tuple(p)


def has_empty_window(x, k, layout="NCHW", **kw):
    return bool((fastconv.max_pool2d(x, k, return_indices=True, layout=layout, **kw)[1] == -1).any())


@pytest.mark.parametrize("shape, k, s, p, d, ceil", TORCH_GRID)
def test_max_pool2d_matches_torch(torch, rng, shape, k, s, p, d, ceil):
    F = torch.nn.functional
    x = pool_data(rng, shape, np.float64)  # ties, NaN and -inf
    xt = torch.from_numpy(x)
    tv, ti = F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil, return_indices=True)
    kw = geometry_kwargs(s, p, d, ceil)
    values, indices = fastconv.max_pool2d(x, k, return_indices=True, **kw)
    np.testing.assert_array_equal(values, tv.numpy())
    np.testing.assert_array_equal(indices, ti.numpy())
    # channels-last: torch on a channels_last tensor, fastconv on NHWC
    tv_cl, ti_cl = F.max_pool2d(xt.contiguous(memory_format=torch.channels_last), k, s, p, d, ceil_mode=ceil,
                                return_indices=True)
    v_nhwc, i_nhwc = fastconv.max_pool2d(to_layout(x, "NHWC"), k, return_indices=True, layout="NHWC", **kw)
    np.testing.assert_array_equal(to_nchw(v_nhwc, "NHWC"), tv_cl.numpy())
    np.testing.assert_array_equal(to_nchw(i_nhwc, "NHWC"), ti_cl.numpy())


@pytest.mark.parametrize("cip, div", [(True, None), (False, None), (True, 5), (False, -3)])
@pytest.mark.parametrize("shape, k, s, p, d, ceil", TORCH_GRID)
def test_avg_pool2d_matches_torch(torch, rng, shape, k, s, p, d, ceil, cip, div):
    F = torch.nn.functional
    x = rng.standard_normal(shape).astype(np.float32)
    xt = torch.from_numpy(x)
    expected = F.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div).numpy()
    kw = avg_kwargs(s, p, ceil, cip, div)
    np.testing.assert_array_equal(fastconv.avg_pool2d(x, k, **kw), expected)  # same order: same bits
    expected_cl = F.avg_pool2d(xt.contiguous(memory_format=torch.channels_last), k, s, p, ceil_mode=ceil,
                               count_include_pad=cip, divisor_override=div).numpy()
    got_nhwc = fastconv.avg_pool2d(to_layout(x, "NHWC"), k, layout="NHWC", **kw)
    np.testing.assert_allclose(to_nchw(got_nhwc, "NHWC"), expected_cl, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape, k, s, p, d, ceil", TORCH_GRID)
def test_gradients_match_torch_autograd(torch, rng, shape, k, s, p, d, ceil, layout):
    F = torch.nn.functional
    x = pool_data(rng, shape, np.float64, nans=False)  # ties decide where gradients go
    kw = geometry_kwargs(s, p, d, ceil)
    xl = to_layout(x, layout)
    values, indices = fastconv.max_pool2d(xl, k, return_indices=True, layout=layout, **kw)
    grad = rng.standard_normal(values.shape)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil).backward(torch.from_numpy(np.ascontiguousarray(to_nchw(grad, layout))))
    got = fastconv.max_pool2d_backward(grad, indices, xl.shape, layout=layout)
    np.testing.assert_allclose(to_nchw(got, layout), xt.grad.numpy(), rtol=1e-14, atol=1e-14)
    for cip in (True, False):
        akw = avg_kwargs(s, p, ceil, cip)
        out = fastconv.avg_pool2d(xl, k, layout=layout, **akw)
        grad = rng.standard_normal(out.shape)
        xt = torch.from_numpy(x.copy()).requires_grad_()
        F.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=cip).backward(
            torch.from_numpy(np.ascontiguousarray(to_nchw(grad, layout))))
        got = fastconv.avg_pool2d_backward(grad, xl.shape, k, layout=layout, **akw)
        np.testing.assert_allclose(to_nchw(got, layout), xt.grad.numpy(), rtol=1e-13, atol=1e-13)


@given(geo=pool_geometries(asymmetric=False), seed=st.integers(0, 2**16))
def test_max_pool2d_torch_property(torch, geo, seed):
    shape, k, s, p, d, ceil = geo
    rng = np.random.default_rng(seed)
    x = pool_data(rng, shape, np.float32)
    kw = geometry_kwargs(s, p, d, ceil)
    assume(not has_empty_window(x, k, **kw))  # PyTorch's index there is meaningless (see below)
    tv, ti = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p, d, ceil_mode=ceil, return_indices=True)
    values, indices = fastconv.max_pool2d(x, k, return_indices=True, **kw)
    np.testing.assert_array_equal(values, tv.numpy())
    np.testing.assert_array_equal(indices, ti.numpy())


@given(geo=pool_geometries(dilated=False, asymmetric=False), cip=st.booleans(), seed=st.integers(0, 2**16))
def test_avg_pool2d_torch_property(torch, geo, cip, seed):
    shape, k, s, p, _, ceil = geo
    x = np.random.default_rng(seed).standard_normal(shape)
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil,
                                              count_include_pad=cip).numpy()
    np.testing.assert_array_equal(fastconv.avg_pool2d(x, k, **avg_kwargs(s, p, ceil, cip)), expected)


def test_half_precision_matches_torch(torch, rng):
    F = torch.nn.functional
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float16)
    xt = torch.from_numpy(x)
    tv, ti = F.max_pool2d(xt, 3, 2, 1, return_indices=True)
    v, i = fastconv.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    assert v.dtype == np.float16
    np.testing.assert_array_equal(v, tv.numpy())
    np.testing.assert_array_equal(i, ti.numpy())
    a = fastconv.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
    assert a.dtype == np.float16
    np.testing.assert_array_equal(a, F.avg_pool2d(xt, 3, 2, 1, ceil_mode=True).numpy())


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.int8, np.uint8], ids=lambda t: np.dtype(t).name)
def test_integer_max_pool2d_matches_torch(torch, rng, dtype):
    x = random_array(rng, (2, 3, 8, 7), dtype)
    tv, ti = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    v, i = fastconv.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, return_indices=True)
    assert v.dtype == dtype
    np.testing.assert_array_equal(v, tv.numpy())
    np.testing.assert_array_equal(i, ti.numpy())


# ----------------------------------------------------------------- PyTorch semantics, spelled out
def test_nan_and_ties():
    nan = np.nan
    x = np.array([[[[1.0, nan, 3.0, 5.0],
                    [nan, 2.0, 5.0, 5.0]]]])
    for layout in LAYOUTS:
        values, indices = fastconv.max_pool2d(to_layout(x, layout), 2, return_indices=True, layout=layout)
        values, indices = to_nchw(values, layout), to_nchw(indices, layout)
        # a NaN wins, and of two NaNs the last in scan order; of equal maxima the first
        np.testing.assert_array_equal(values, [[[[nan, 5.0]]]])
        np.testing.assert_array_equal(indices, [[[[4, 3]]]])
    # padding is -inf and never selected, even when every real value is -inf
    values, indices = fastconv.max_pool2d(np.full((1, 1, 2, 2), -np.inf), 2, padding=1, return_indices=True)
    np.testing.assert_array_equal(values, np.full((1, 1, 2, 2), -np.inf))
    np.testing.assert_array_equal(indices, [[[[0, 1], [2, 3]]]])
    # the type's minimum is selected over padding too
    low = np.iinfo(np.int32).min
    values, indices = fastconv.max_pool2d(np.full((1, 2, 2), low, np.int32), 2, padding=1, return_indices=True)
    np.testing.assert_array_equal(values, np.full((1, 2, 2), low))
    np.testing.assert_array_equal(indices, [[[0, 1], [2, 3]]])


def test_nan_and_ties_match_torch(torch):
    x = np.array([[[[1.0, np.nan, 3.0, 5.0], [np.nan, 2.0, 5.0, 5.0]]]])
    tv, ti = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    values, indices = fastconv.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(values, tv.numpy())
    np.testing.assert_array_equal(indices, ti.numpy())


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_gradients_overwrite_every_pixel_of_out(layout, dtype):
    # the NCHW kernels zero each plane of the gradient themselves, just before their adds: an
    # out full of NaNs (and a buffer the cache hands out again) must come back all written
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 9, 10)).astype(dtype)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
        values, indices = fastconv.max_pool2d(x, k, stride=s, padding=p, return_indices=True, layout=layout)
        grad = rng.standard_normal(values.shape).astype(dtype)
        expected = reference.max_pool2d_backward(grad, indices, x.shape, layout=layout)
        for _ in range(2):  # (the second call reuses the first's buffer)
            out = np.full(x.shape, np.nan, dtype)
            np.testing.assert_array_equal(fastconv.max_pool2d_backward(grad, indices, x.shape, layout=layout,
                                                                       out=out), expected)
            np.testing.assert_array_equal(fastconv.max_pool2d_backward(grad, indices, x.shape, layout=layout),
                                          expected)
        grad = rng.standard_normal(fastconv.avg_pool2d(x, k, stride=s, padding=p, layout=layout).shape)
        grad = grad.astype(dtype)
        expected = fastconv.avg_pool2d_backward(grad, x.shape, k, stride=s, padding=p, layout=layout)
        tol = 1e-5 if dtype == np.float32 else 1e-12  # (overlapping windows add in another order)
        np.testing.assert_allclose(expected, reference.avg_pool2d_backward(grad, x.shape, k, stride=s, padding=p,
                                                                           layout=layout), rtol=tol, atol=tol)
        for _ in range(3):  # (planned from the second call on)
            out = np.full(x.shape, np.nan, dtype)
            got = fastconv.avg_pool2d_backward(grad, x.shape, k, stride=s, padding=p, layout=layout, out=out)
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(
                fastconv.avg_pool2d_backward(grad, x.shape, k, stride=s, padding=p, layout=layout), expected)


def test_avg_divisor_rules_for_overhanging_windows():
    # H = W = 6, kernel 3, stride 2, padding 1, ceil_mode: 4 windows per axis starting at -1, 1, 3, 5;
    # the last one covers row 5 (real), row 6 (padding) and row 7 (beyond the padded input).
    x = np.ones((1, 1, 6, 6))
    kw = dict(stride=2, padding=1, ceil_mode=True)
    assert fastconv.avg_pool2d(x, 3, **kw).shape == (1, 1, 4, 4)
    with_pad = fastconv.avg_pool2d(x, 3, **kw)[0, 0]
    # divisor = window clipped to the padded input: 3 per axis, 2 on the last window
    count = np.array([2, 3, 3, 1])  # real pixels per window and axis
    size = np.array([3, 3, 3, 2])
    np.testing.assert_allclose(with_pad, np.outer(count, count) / np.outer(size, size), rtol=1e-15)
    without_pad = fastconv.avg_pool2d(x, 3, count_include_pad=False, **kw)[0, 0]
    np.testing.assert_array_equal(without_pad, np.ones((4, 4)))
    override = fastconv.avg_pool2d(x, 3, divisor_override=2, **kw)[0, 0]
    np.testing.assert_array_equal(override, np.outer(count, count) / 2)


def test_avg_divisor_rules_match_torch(torch):
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6))
    for cip in (True, False):
        expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), 3, 2, 1, ceil_mode=True,
                                                  count_include_pad=cip).numpy()
        np.testing.assert_array_equal(
            fastconv.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=cip), expected)


def test_window_without_input_pixels():
    """Dilation 2 over a one-pixel-wide image padded by 1: every window sees only padding.

    PyTorch returns -inf with index 1*W + 1 here (a wrong or out-of-range
    pixel its own backward then writes to); fastconv returns index -1, and
    the gradient of such a window goes nowhere.
    """
    x = np.arange(6.0).reshape(1, 3, 2, 1)
    kw = dict(stride=1, padding=(0, 1), dilation=2, ceil_mode=True)
    values, indices = fastconv.max_pool2d(x, (1, 2), return_indices=True, **kw)
    np.testing.assert_array_equal(values, np.full((1, 3, 2, 1), -np.inf))
    np.testing.assert_array_equal(indices, np.full((1, 3, 2, 1), -1))
    ref_values, ref_indices = reference.max_pool2d(x, (1, 2), return_indices=True, **kw)
    np.testing.assert_array_equal(ref_indices, indices)
    np.testing.assert_array_equal(ref_values, values)
    grad = fastconv.max_pool2d_backward(np.ones_like(values), indices, x.shape)
    np.testing.assert_array_equal(grad, np.zeros_like(x))
    for layout in LAYOUTS:
        v, i = fastconv.max_pool2d(to_layout(x, layout), (1, 2), return_indices=True, layout=layout, **kw)
        np.testing.assert_array_equal(i, -1)
    imax = np.iinfo(np.int16).min
    v = fastconv.max_pool2d(x.astype(np.int16), (1, 2), **kw)
    np.testing.assert_array_equal(v, np.full((1, 3, 2, 1), imax, np.int16))


def test_integer_extremes_are_exact():
    big = np.array([[[[2**62 + 1, 2**62 + 3], [-(2**63), 2**62 + 2]]]], np.int64)
    values, indices = fastconv.max_pool2d(big, 2, return_indices=True)
    assert values[0, 0, 0, 0] == 2**62 + 3 and indices[0, 0, 0, 0] == 1
    ubig = np.array([[[[2**64 - 1, 2**63]]]], np.uint64)
    values, indices = fastconv.max_pool2d(ubig, (1, 2), return_indices=True)
    assert values[0, 0, 0, 0] == 2**64 - 1 and indices[0, 0, 0, 0] == 0
    assert fastconv.avg_pool2d(np.array([[[255, 255]]], np.uint8), (1, 2))[0, 0, 0] == 255.0


# ----------------------------------------------------------------- spec, threads, memory
def test_spec_lenet_shapes(rng):
    x = rng.standard_normal((1, 1, 28, 28))
    w = rng.standard_normal((5, 1, 5, 5))
    y = fastconv.conv2d(x, w)
    assert y.shape == (1, 5, 24, 24)
    pooled = fastconv.max_pool2d(y, 2)
    assert pooled.shape == (1, 5, 12, 12)
    np.testing.assert_array_equal(pooled, y.reshape(1, 5, 12, 2, 12, 2).max(axis=(3, 5)))
    assert fastconv.avg_pool2d(y, 2).shape == (1, 5, 12, 12)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8], ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_bitwise_identical_across_threads(rng, layout, dtype, every_call_parallel):
    x = to_layout(pool_data(rng, (3, 5, 23, 29), dtype), layout)
    kw = dict(stride=1, padding=1, layout=layout)  # overlapping windows: gradients sum duplicates
    results = []
    for n in (1, 3):
        with fastconv.num_threads(n):
            values, indices = fastconv.max_pool2d(x, 3, return_indices=True, **kw)
            avg = fastconv.avg_pool2d(x, 3, ceil_mode=True, **kw)
            grad = rng.standard_normal(values.shape).astype(np.float32) if not results else results[0][-1]
            results.append((values, indices, avg,
                            fastconv.max_pool2d_backward(grad, indices, x.shape, layout=layout),
                            fastconv.avg_pool2d_backward(grad, x.shape, 3, **kw), grad))
    for a, b in zip(results[0][:-1], results[1][:-1]):
        assert_same_bits(a, b)


def test_inputs_never_modified_and_lists_accepted(rng):
    x = pool_data(rng, (2, 3, 7, 7), np.float64)
    x_before = x.copy()
    values, indices = fastconv.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    avg = fastconv.avg_pool2d(x, 3, stride=2, padding=1)
    np.testing.assert_array_equal(x, x_before)
    grad = rng.standard_normal(values.shape)
    saved = grad.copy(), indices.copy()
    fastconv.max_pool2d_backward(grad, indices, x.shape)
    fastconv.avg_pool2d_backward(grad, x.shape, 3, stride=2, padding=1)
    np.testing.assert_array_equal(grad, saved[0])
    np.testing.assert_array_equal(indices, saved[1])
    np.testing.assert_array_equal(fastconv.max_pool2d(x.tolist(), 3, stride=2, padding=1), values)
    np.testing.assert_array_equal(fastconv.avg_pool2d(x.tolist(), 3, stride=2, padding=1), avg)
    np.testing.assert_array_equal(fastconv.max_pool2d_backward(grad.tolist(), indices.tolist(), list(x.shape)),
                                  fastconv.max_pool2d_backward(grad, indices, x.shape))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_awkward_memory(rng, layout):
    x = to_layout(pool_data(rng, (2, 3, 7, 8), np.float64), layout)
    kw = dict(stride=2, padding=1, layout=layout)
    values, indices = fastconv.max_pool2d(x, 3, return_indices=True, **kw)
    avg = fastconv.avg_pool2d(x, 3, **kw)
    for name, view in nonstandard_views(x).items():
        v, i = fastconv.max_pool2d(view, 3, return_indices=True, **kw)
        np.testing.assert_array_equal(v, values, err_msg=name)
        np.testing.assert_array_equal(i, indices, err_msg=name)
        np.testing.assert_array_equal(fastconv.avg_pool2d(view, 3, **kw), avg, err_msg=name)
    grad = rng.standard_normal(values.shape)
    max_grad = fastconv.max_pool2d_backward(grad, indices, x.shape, layout=layout)
    avg_grad = fastconv.avg_pool2d_backward(grad, x.shape, 3, **kw)
    for name, view in nonstandard_views(grad).items():
        np.testing.assert_array_equal(fastconv.max_pool2d_backward(view, indices, x.shape, layout=layout),
                                      max_grad, err_msg=name)
        np.testing.assert_array_equal(fastconv.avg_pool2d_backward(view, x.shape, 3, **kw), avg_grad, err_msg=name)
    for name, view in nonstandard_views(indices).items():
        np.testing.assert_array_equal(fastconv.max_pool2d_backward(grad, view, x.shape, layout=layout),
                                      max_grad, err_msg=name)
    np.testing.assert_array_equal(fastconv.max_pool2d_backward(grad, indices.astype(np.int32), x.shape,
                                                               layout=layout), max_grad)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unbatched_input(rng, layout):
    x = to_layout(pool_data(rng, (1, 3, 6, 5), np.float32), layout)
    kw = dict(stride=2, padding=1, ceil_mode=True, layout=layout)
    v, i = fastconv.max_pool2d(x[0], 3, return_indices=True, **kw)
    vb, ib = fastconv.max_pool2d(x, 3, return_indices=True, **kw)
    assert v.shape == vb.shape[1:]
    np.testing.assert_array_equal(v, vb[0])
    np.testing.assert_array_equal(i, ib[0])
    a = fastconv.avg_pool2d(x[0], 3, **kw)
    np.testing.assert_array_equal(a, fastconv.avg_pool2d(x, 3, **kw)[0])
    g = np.ones_like(v)
    gm = fastconv.max_pool2d_backward(g, i, x[0].shape, layout=layout)
    assert gm.shape == x[0].shape
    np.testing.assert_array_equal(gm, fastconv.max_pool2d_backward(g[None], ib, x.shape, layout=layout)[0])
    ga = fastconv.avg_pool2d_backward(g, x[0].shape, 3, **kw)
    np.testing.assert_array_equal(ga, fastconv.avg_pool2d_backward(g[None], x.shape, 3, **kw)[0])
    np.testing.assert_array_equal(ga, reference.avg_pool2d_backward(g, x[0].shape, 3, **kw))


def test_empty_batch_and_channels():
    assert fastconv.max_pool2d(np.zeros((0, 3, 4, 4)), 2).shape == (0, 3, 2, 2)
    v, i = fastconv.max_pool2d(np.zeros((2, 0, 4, 4)), 2, return_indices=True)
    assert v.shape == i.shape == (2, 0, 2, 2)
    assert fastconv.avg_pool2d(np.zeros((0, 4, 4, 3)), 2, layout="NHWC").shape == (0, 2, 2, 3)
    assert fastconv.max_pool2d_backward(np.zeros((0, 3, 2, 2)), np.zeros((0, 3, 2, 2), int), (0, 3, 4, 4)).shape \
        == (0, 3, 4, 4)
    assert fastconv.avg_pool2d_backward(np.zeros((2, 0, 2, 2)), (2, 0, 4, 4), 2).shape == (2, 0, 4, 4)


@pytest.mark.parametrize("dtype", REAL_DTYPES, ids=lambda t: np.dtype(t).name)
def test_result_dtypes(rng, dtype):
    x = random_array(rng, (1, 2, 4, 4), dtype)
    assert fastconv.max_pool2d(x, 2).dtype == np.dtype(dtype).newbyteorder("=")
    kind = np.dtype(dtype).kind
    expected = np.dtype(np.float64) if kind in "biu" else np.dtype(dtype)
    avg = fastconv.avg_pool2d(x, 2)
    assert avg.dtype == expected
    np.testing.assert_allclose(avg.astype(np.float64),
                               x.astype(np.float64).reshape(1, 2, 2, 2, 2, 2).mean(axis=(3, 5)),
                               rtol=1e-3 if dtype == np.float16 else 1e-6)
    grad = np.ones((1, 2, 2, 2), dtype)
    _, indices = fastconv.max_pool2d(x, 2, return_indices=True)
    assert fastconv.max_pool2d_backward(grad, indices, x.shape).dtype == expected
    assert fastconv.avg_pool2d_backward(grad, x.shape, 2).dtype == expected


# ----------------------------------------------------------------- out=
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.bool_, np.int64], ids=lambda t: np.dtype(t).name)
def test_out_argument(rng, layout, dtype):
    x = to_layout(pool_data(rng, (2, 3, 6, 7), dtype), layout)
    kw = dict(stride=2, padding=1, layout=layout)
    values, indices = fastconv.max_pool2d(x, 3, return_indices=True, **kw)
    out = np.full(values.shape, 1, dtype)  # stale values must be overwritten
    assert fastconv.max_pool2d(x, 3, out=out, **kw) is out
    np.testing.assert_array_equal(out, values)
    out_v, out_i = np.zeros_like(values), np.full(indices.shape, 99, np.int64)
    res = fastconv.max_pool2d(x, 3, return_indices=True, out=(out_v, out_i), **kw)
    assert res[0] is out_v and res[1] is out_i
    np.testing.assert_array_equal(out_v, values)
    np.testing.assert_array_equal(out_i, indices)
    res = fastconv.max_pool2d(x, 3, return_indices=True, out=(None, out_i), **kw)
    assert res[1] is out_i
    np.testing.assert_array_equal(res[0], values)
    avg = fastconv.avg_pool2d(x, 3, **kw)
    out = np.full(avg.shape, 7, avg.dtype)
    assert fastconv.avg_pool2d(x, 3, out=out, **kw) is out
    np.testing.assert_array_equal(out, avg)
    grad = np.ones(values.shape, avg.dtype)
    for fn, args in [(fastconv.max_pool2d_backward, (grad, indices, x.shape)),
                     (fastconv.avg_pool2d_backward, (grad, x.shape, 3))]:
        extra = {} if fn is fastconv.max_pool2d_backward else dict(stride=2, padding=1)
        expected = fn(*args, layout=layout, **extra)
        out = np.full(x.shape, 7, avg.dtype)
        assert fn(*args, layout=layout, out=out, **extra) is out
        np.testing.assert_array_equal(out, expected)


def test_out_unbatched():
    x = np.arange(16.0).reshape(1, 4, 4)
    out = np.empty((1, 2, 2))
    assert fastconv.max_pool2d(x, 2, out=out) is out
    np.testing.assert_array_equal(out, [[[5, 7], [13, 15]]])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: fastconv.max_pool2d(x, 2, out=np.empty((1, 1, 2, 2), np.float32)), "dtype float64"),
        (lambda x: fastconv.max_pool2d(x, 2, out=np.empty((1, 1, 2, 3))), r"shape \(1, 1, 2, 2\)"),
        (lambda x: fastconv.avg_pool2d(x, 2, out=np.empty((1, 1, 2, 4))[..., ::2]), "not C-contiguous"),
        (lambda x: fastconv.avg_pool2d(x, 2, out=[0.0] * 4), "got list"),
        (lambda x: fastconv.max_pool2d(x, 2, return_indices=True, out=np.empty((1, 1, 2, 2))), "pair"),
        (lambda x: fastconv.max_pool2d(x, 2, return_indices=True, out=(None, np.empty((1, 1, 2, 2), np.int32))),
         r"out\[1\] \(the indices\) must be .* dtype int64"),
        (lambda x: fastconv.max_pool2d_backward(np.ones((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), int), x.shape,
                                                out=np.empty((1, 1, 4, 4), np.float32)), "dtype float64"),
        (lambda x: fastconv.avg_pool2d_backward(np.ones((1, 1, 2, 2)), x.shape, 2, out=np.empty((1, 1, 2, 2))),
         r"shape \(1, 1, 4, 4\)"),
    ],
)
def test_bad_out(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.zeros((1, 1, 4, 4)))


def test_read_only_out_is_refused():
    out = np.empty((1, 1, 2, 2))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastconv.max_pool2d(np.zeros((1, 1, 4, 4)), 2, out=out)


# ----------------------------------------------------------------- errors
X = np.zeros((1, 1, 4, 4))
G = np.ones((1, 1, 2, 2))
IDX = np.zeros((1, 1, 2, 2), np.int64)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: fastconv.max_pool2d(X.astype(complex), 2), TypeError, "real dtype .*complex"),
        (lambda: fastconv.avg_pool2d(X.astype(np.complex64), 2), TypeError, "real dtype"),
        (lambda: fastconv.max_pool2d(np.array([[["a"]]]), 1), TypeError, "x must be a numeric array"),
        (lambda: fastconv.max_pool2d(X, 2, padding=2), ValueError, "at most half the kernel"),
        (lambda: fastconv.avg_pool2d(X, 3, padding=((0, 2), (0, 0))), ValueError, "at most half the kernel"),
        (lambda: fastconv.max_pool2d(X, 5), ValueError, "larger than the padded input"),
        (lambda: fastconv.max_pool2d(X, 0), ValueError, "kernel_size must be >= 1"),
        (lambda: fastconv.max_pool2d(X, 2, stride=0), ValueError, "stride must be >= 1"),
        (lambda: fastconv.max_pool2d(X, 2, dilation=(1, 0)), ValueError, "dilation must be >= 1"),
        (lambda: fastconv.max_pool2d(X, 2.0), TypeError, "kernel_size"),
        (lambda: fastconv.max_pool2d(X[0, 0], 2), ValueError, "x must be 4-D"),
        (lambda: fastconv.max_pool2d(X, 2, layout="CHWN"), ValueError, "layout must be one of"),
        (lambda: fastconv.max_pool2d(np.zeros((1, 1, 0, 4)), 1), ValueError, "non-empty image"),
        (lambda: fastconv.max_pool2d(X, 2, ceil_mode="yes"), TypeError, "ceil_mode must be True or False"),
        (lambda: fastconv.max_pool2d(X, 2, return_indices=1), TypeError, "return_indices"),
        (lambda: fastconv.avg_pool2d(X, 2, count_include_pad=None), TypeError, "count_include_pad"),
        (lambda: fastconv.avg_pool2d(X, 2, divisor_override=0), ValueError, "divisor_override must be non-zero"),
        (lambda: fastconv.avg_pool2d(X, 2, divisor_override=1.5), TypeError, "divisor_override"),
        (lambda: fastconv.max_pool2d_backward(G, IDX.astype(float), X.shape), TypeError, "indices must be an integer"),
        (lambda: fastconv.max_pool2d_backward(G, IDX[..., :1], X.shape), ValueError, "indices must have the shape"),
        (lambda: fastconv.max_pool2d_backward(G, IDX, (1, 2, 4, 4)), ValueError, "batch and channels"),
        (lambda: fastconv.max_pool2d_backward(G, IDX, (4, 4)), ValueError, "input_shape must be 4 or 3"),
        (lambda: fastconv.max_pool2d_backward(G, IDX, (1, 1, 4.0, 4)), TypeError, "input_shape"),
        (lambda: fastconv.max_pool2d_backward(G[0], IDX[0], X.shape), ValueError, "grad_output must have"),
        (lambda: fastconv.max_pool2d_backward(G.astype(complex), IDX, X.shape), TypeError, "grad_output"),
        (lambda: fastconv.max_pool2d_backward(G, IDX + 16, X.shape), ValueError, r"\[0, 16\).*4 out-of-range"),
        (lambda: fastconv.max_pool2d_backward(G, IDX - 2, X.shape), ValueError, "out-of-range"),
        (lambda: fastconv.max_pool2d_backward(G[0], IDX[0] + 16, X.shape[1:]), ValueError,
         r"\[0, 16\) for input_shape \(1, 4, 4\).* 4 out-of-range"),
        (lambda: fastconv.max_pool2d_backward(G.reshape(2, 2, 1), IDX.reshape(2, 2, 1) - 3, (4, 4, 1),
                                              layout="NHWC"), ValueError,
         r"\[0, 16\) for input_shape \(4, 4, 1\)"),
        (lambda: fastconv.max_pool2d_backward(G.reshape(1, 2, 2, 1), IDX.reshape(1, 2, 2, 1) + 2**40, (1, 4, 4, 1),
                                              layout="NHWC"), ValueError, "4 out-of-range"),
        (lambda: fastconv.max_pool2d_backward(G, IDX.astype(np.uint64) + 2**63, X.shape), ValueError,
         "out-of-range"),
        (lambda: fastconv.avg_pool2d_backward(G[..., :1], X.shape, 2), ValueError, "grad_output must have the shape"),
        (lambda: fastconv.avg_pool2d_backward(G, X.shape, 2, padding=2), ValueError, "at most half"),
        (lambda: fastconv.avg_pool2d_backward(G.astype(np.complex128), X.shape, 2), TypeError, "real dtype"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_reference_raises_the_same_errors(name):
    bad_calls = {
        "max_pool2d": lambda f: f(X, 2, padding=2),
        "avg_pool2d": lambda f: f(X, 2, divisor_override=0),
        "max_pool2d_backward": lambda f: f(G, IDX + 16, X.shape),
        "avg_pool2d_backward": lambda f: f(G[..., :1], X.shape, 2),
    }
    messages = []
    for module in (fastconv, reference):
        with pytest.raises(ValueError) as info:
            bad_calls[name](getattr(module, name))
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_avg_pool_kernel_checks_its_arrays():
    # the average-pooling kernel reads raw memory, so it refuses arrays and tables it cannot
    # read safely, and windows that leave the image
    from fastconv._kernels import _pool as kernels
    from fastconv._pool import _divisors, _windows
    from fastconv._prepare_pool import prepare_avg_pool2d

    x = np.arange(2 * 3 * 5 * 5, dtype=np.float64).reshape(2, 3, 5, 5)
    call = prepare_avg_pool2d(x, 2, None, 1, False, True, None, "NCHW", None)
    windows, divisors = _windows(call.geometry), _divisors(call)
    out = np.empty(call.out_shape)
    kernels.avg_pool2d(x, out, windows, divisors, 2, False, 1)
    np.testing.assert_allclose(out, reference.avg_pool2d(x, 2, padding=1))
    cases = [
        ((x.astype(np.int64), out.astype(np.int64), windows, divisors), TypeError, "float"),
        ((x, out.astype(np.float32), windows, divisors), TypeError, "dtype of x"),
        ((x.astype(">f8"), out, windows, divisors), TypeError, "byte order"),
        ((x[0], out[0], windows, divisors), ValueError, "4-D"),
        ((x[:, :, :, ::-1], out, windows, divisors), ValueError, "C-contiguous"),
        ((x, out[:1], windows, divisors), ValueError, "does not match"),
        ((x, out, windows[:3], divisors), ValueError, "windows"),
        ((x, out, windows[:, :2], divisors), ValueError, "windows"),
        ((x, out, windows.astype(np.int32), divisors), ValueError, "windows"),
        ((x, out, windows, divisors.astype(np.float64)), ValueError, "divisors"),
    ]
    read_only = out.copy()
    read_only.flags.writeable = False
    cases.append(((x, read_only, windows, divisors), ValueError, "writeable"))
    for rows, value in [(1, 6), (3, 6), (2, -1), (0, 5)]:  # hn, wn past the image, w0 < 0, h0 + hn > H
        bad = windows.copy()
        bad[rows, 0] = value
        cases.append(((x, out, bad, divisors), ValueError, "leaves the image"))
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            kernels.avg_pool2d(*args, 2, False, 1)
    with pytest.raises(ValueError, match="num_threads"):
        kernels.avg_pool2d(x, out, windows, divisors, 2, False, 0)
    with pytest.raises(ValueError, match="stride"):
        kernels.avg_pool2d(x, out, windows, divisors, 0, False, 1)


def test_max_pool_kernel_checks_its_arrays():
    # the max-pooling kernel reads raw memory too: it refuses index arrays it cannot write and
    # dilated windows whose last tap leaves the image
    from fastconv._kernels import _pool as kernels
    from fastconv._pool import _windows
    from fastconv._prepare_pool import prepare_max_pool2d

    x = np.arange(2 * 3 * 7 * 7, dtype=np.int16).reshape(2, 3, 7, 7)
    call = prepare_max_pool2d(x, 3, 2, 1, 2, False, True, "NCHW", None)  # dilation 2, padding 1
    windows = _windows(call.geometry)
    values, indices = np.empty(call.out_shape, x.dtype), np.empty(call.out_shape, np.longlong)
    kernels.max_pool2d(x, values, indices, windows, 2, 2, 2, False, 1)
    expected, expected_indices = reference.max_pool2d(x, 3, stride=2, padding=1, dilation=2, return_indices=True)
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(indices, expected_indices)  # (int64 of either C name: long long here)
    cases = [
        ((x, values, indices.astype(np.int32), windows, 2, 2, 2), ValueError, "indices"),
        ((x, values, indices[:1], windows, 2, 2, 2), ValueError, "indices"),
        ((x, values, indices.astype(np.uint64), windows, 2, 2, 2), ValueError, "indices"),
        ((x, values.astype(np.uint16), None, windows, 2, 2, 2), TypeError, "dtype of x"),
        ((x.astype(np.complex64), values.astype(np.complex64), None, windows, 2, 2, 2), TypeError, "no kernel"),
        ((x, values, None, windows, 0, 2, 2), ValueError, "stride"),
        ((x, values, None, windows, 2, 0, 2), ValueError, "dilation"),
        ((x, values, None, windows, 2, 4, 2), ValueError, "leaves the image"),  # DH 4: rows 3 and 7
    ]
    for row, value in [(1, 4), (3, 4)]:  # 4 taps 2 apart from row/column 0 or 1: past the image
        bad = windows.copy()
        bad[row, :] = value
        cases.append(((x, values, None, bad, 2, 2, 2), ValueError, "leaves the image"))
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            kernels.max_pool2d(*args, False, 1)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_pools_fill_an_unaligned_out(rng, layout, dtype):
    # the kernels write aligned arrays only: an unaligned out (valid: C-contiguous, writeable)
    # receives a copy of the result (found by the fuzzer)
    x = to_layout(random_array(rng, (2, 3, 7, 6), dtype), layout)
    values, indices = fastconv.max_pool2d(x, 3, stride=2, padding=1, return_indices=True, layout=layout)
    out = (unaligned_zeros(values.shape, values.dtype), unaligned_zeros(indices.shape, np.int64))
    got = fastconv.max_pool2d(x, 3, stride=2, padding=1, return_indices=True, layout=layout, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    np.testing.assert_array_equal(out[0], values)
    np.testing.assert_array_equal(out[1], indices)
    if dtype == np.float32:
        expected = fastconv.avg_pool2d(x, 3, stride=2, padding=1, layout=layout)
        out = unaligned_zeros(expected.shape, expected.dtype)
        assert fastconv.avg_pool2d(x, 3, stride=2, padding=1, layout=layout, out=out) is out
        np.testing.assert_array_equal(out, expected)
