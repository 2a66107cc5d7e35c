"""fastconv.compat.cs231n == the CS231n assignment-2 originals == naive loops == finite differences == PyTorch.

The originals are re-implemented below in plain NumPy: the index-array
im2col (``get_im2col_indices``) with its ``np.add.at`` col2im, the 6-D
column layout and ``as_strided`` trick of ``conv_forward_strides`` with the
loop of ``col2im_6d_cython``, and the naive conv / max-pool loops of
``layers.py``. Unlike the originals they are written for any kernel shape
and stride, which is what fastconv promises.
"""

import numpy as np
import pytest
from helpers import tolerance

import fastconv
from fastconv.compat import cs231n

# (N, C, H, W, field_height, field_width, pad, stride): square and non-square, strides 1-3, leftovers
GEOMETRIES = [
    (2, 3, 6, 6, 3, 3, 1, 1),
    (3, 2, 7, 5, 3, 3, 0, 2),
    (2, 2, 8, 9, 2, 3, 0, 2),
    (1, 3, 9, 7, 3, 2, 1, 3),
    (2, 1, 5, 5, 5, 5, 2, 1),
    (2, 2, 10, 8, 1, 4, 0, 2),
    (3, 2, 6, 7, 4, 1, 2, 3),
]
GEOMETRY_IDS = ["{}x{}x{}x{}-k{}x{}-p{}-s{}".format(*g) for g in GEOMETRIES]
FLOATS = [np.float32, np.float64]


# ---------------------------------------------------------------- the originals, in plain NumPy

def out_size(size, k, stride, pad):
    return (size + 2 * pad - k) // stride + 1


def get_im2col_indices(x_shape, fh, fw, padding, stride):
    """Channel, row and column of every (tap, window) pair, as ``im2col.py`` computes them."""
    _, c, h, w = x_shape
    oh, ow = out_size(h, fh, stride, padding), out_size(w, fw, stride, padding)
    tap_rows = np.tile(np.repeat(np.arange(fh), fw), c)
    window_rows = stride * np.repeat(np.arange(oh), ow)
    tap_cols = np.tile(np.arange(fw), fh * c)
    window_cols = stride * np.tile(np.arange(ow), oh)
    rows = tap_rows[:, None] + window_rows[None, :]
    cols = tap_cols[:, None] + window_cols[None, :]
    channels = np.repeat(np.arange(c), fh * fw)[:, None]
    return channels, rows, cols


def original_im2col(x, fh, fw, padding, stride):
    p = padding
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="constant")
    k, i, j = get_im2col_indices(x.shape, fh, fw, padding, stride)
    cols = padded[:, k, i, j]  # (N, C*fh*fw, windows)
    return cols.transpose(1, 2, 0).reshape(fh * fw * x.shape[1], -1)


def original_col2im(cols, x_shape, fh, fw, padding, stride):
    n, c, h, w = x_shape
    p = padding
    padded = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=cols.dtype)
    k, i, j = get_im2col_indices(x_shape, fh, fw, padding, stride)
    per_image = cols.reshape(c * fh * fw, -1, n).transpose(2, 0, 1)
    np.add.at(padded, (slice(None), k, i, j), per_image)
    return padded[:, :, p:p + h, p:p + w]


def strided_columns_6d(x, hh, ww, pad, stride):
    """``conv_forward_strides``' columns: an ``as_strided`` view of the padded input, (C, HH, WW, N, out_h, out_w)."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    hp, wp = h + 2 * pad, w + 2 * pad
    oh, ow = (hp - hh) // stride + 1, (wp - ww) // stride + 1
    strides = x.itemsize * np.array((hp * wp, wp, 1, c * hp * wp, stride * wp, stride))
    view = np.lib.stride_tricks.as_strided(padded, shape=(c, hh, ww, n, oh, ow), strides=strides)
    return np.ascontiguousarray(view)


def original_col2im_6d(cols, n, c, h, w, hh, ww, pad, stride):
    """The loop of ``col2im_6d_cython`` (``HH, WW`` are the filter size); the image index vectorised."""
    oh, ow = out_size(h, hh, stride, pad), out_size(w, ww, stride, pad)
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for ch in range(c):
        for i in range(hh):
            for j in range(ww):
                for y in range(oh):
                    for x in range(ow):
                        padded[:, ch, stride * y + i, stride * x + j] += cols[ch, i, j, :, y, x]
    return padded[:, :, pad:pad + h, pad:pad + w]


def original_conv_backward_strides(dout, x, w, pad, stride, col2im_6d):
    """``conv_backward_strides`` with a pluggable ``col2im_6d_cython``."""
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    _, _, oh, ow = dout.shape
    dout_rows = dout.transpose(1, 0, 2, 3).reshape(f, -1)
    x_cols = strided_columns_6d(x, hh, ww, pad, stride).reshape(c * hh * ww, -1)
    dw = (dout_rows @ x_cols.T).reshape(w.shape)
    dx_cols = (w.reshape(f, -1).T @ dout_rows).reshape(c, hh, ww, n, oh, ow)
    return col2im_6d(dx_cols, n, c, h, wd, hh, ww, pad, stride), dw, dout.sum(axis=(0, 2, 3))


def naive_conv_forward(x, w, b, pad, stride):
    n, _, h, wd = x.shape
    f, _, hh, ww = w.shape
    oh, ow = out_size(h, hh, stride, pad), out_size(wd, ww, stride, pad)
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((n, f, oh, ow), dtype=np.result_type(x, w, b))
    for i in range(n):
        for k in range(f):
            for y in range(oh):
                for xx in range(ow):
                    patch = padded[i, :, y * stride:y * stride + hh, xx * stride:xx * stride + ww]
                    out[i, k, y, xx] = np.sum(patch * w[k]) + b[k]
    return out


def naive_conv_backward(dout, x, w, pad, stride):
    n, _, h, wd = x.shape
    f, _, hh, ww = w.shape
    _, _, oh, ow = dout.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dpadded, dw = np.zeros_like(padded), np.zeros_like(w)
    for i in range(n):
        for k in range(f):
            for y in range(oh):
                for xx in range(ow):
                    rows, cols = slice(y * stride, y * stride + hh), slice(xx * stride, xx * stride + ww)
                    dw[k] += padded[i, :, rows, cols] * dout[i, k, y, xx]
                    dpadded[i, :, rows, cols] += w[k] * dout[i, k, y, xx]
    return dpadded[:, :, pad:pad + h, pad:pad + wd], dw, dout.sum(axis=(0, 2, 3))


def naive_max_pool_forward(x, ph, pw, stride):
    n, c, h, w = x.shape
    out = np.zeros((n, c, (h - ph) // stride + 1, (w - pw) // stride + 1), dtype=x.dtype)
    for y in range(out.shape[2]):
        for xx in range(out.shape[3]):
            out[:, :, y, xx] = x[:, :, y * stride:y * stride + ph, xx * stride:xx * stride + pw].max(axis=(2, 3))
    return out


def naive_max_pool_backward(dout, x, ph, pw, stride):
    dx = np.zeros(x.shape, dtype=dout.dtype)
    for i in range(x.shape[0]):
        for ch in range(x.shape[1]):
            for y in range(dout.shape[2]):
                for xx in range(dout.shape[3]):
                    window = x[i, ch, y * stride:y * stride + ph, xx * stride:xx * stride + pw]
                    r, s = np.unravel_index(np.argmax(window), window.shape)  # the first maximum
                    dx[i, ch, y * stride + r, xx * stride + s] += dout[i, ch, y, xx]
    return dx


def numeric_gradient(f, a, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to every entry of ``a`` (modified in place, restored).

    Runs single-threaded: hundreds of tiny calls, each of which would otherwise
    pay for an OpenMP fork/join (results are the same for every thread count).
    """
    grad = np.zeros_like(a)
    with fastconv.num_threads(1):
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            plus = f()
            a[idx] = old - eps
            minus = f()
            a[idx] = old
            grad[idx] = (plus - minus) / (2 * eps)
    return grad


def conv_setup(rng, geometry, dtype, filters=4):
    n, c, h, w, fh, fw, pad, stride = geometry
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((filters, c, fh, fw)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    return x, weight, bias, {"stride": stride, "pad": pad}


# ---------------------------------------------------------------- im2col_cython / col2im_cython

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_im2col_cython_matches_index_original(rng, geometry, dtype):
    n, c, h, w, fh, fw, pad, stride = geometry
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    x_before = x.copy()
    cols = cs231n.im2col_cython(x, fh, fw, pad, stride)
    assert cols.shape == (c * fh * fw, n * out_size(h, fh, stride, pad) * out_size(w, fw, stride, pad))
    assert cols.dtype == dtype and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, original_im2col(x, fh, fw, pad, stride))
    np.testing.assert_array_equal(x, x_before)


def test_im2col_cython_row_and_column_formula(rng):
    """SPEC: row ``c*fh*fw + i*fw + j``, column ``y*WW*N + x*N + n`` -- with a non-square field."""
    n, c, h, w, fh, fw, pad, stride = 3, 2, 7, 8, 2, 3, 1, 2
    x = rng.standard_normal((n, c, h, w))
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    hh, ww = out_size(h, fh, stride, pad), out_size(w, fw, stride, pad)
    cols = cs231n.im2col_cython(x, fh, fw, pad, stride)
    expected = np.empty_like(cols)
    for ch in range(c):
        for i in range(fh):
            for j in range(fw):
                for y in range(hh):
                    for xx in range(ww):
                        for k in range(n):
                            expected[ch * fh * fw + i * fw + j, y * ww * n + xx * n + k] = \
                                padded[k, ch, y * stride + i, xx * stride + j]
    np.testing.assert_array_equal(cols, expected)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_col2im_cython_matches_add_at_original(rng, geometry, dtype):
    n, c, h, w, fh, fw, pad, stride = geometry
    windows = out_size(h, fh, stride, pad) * out_size(w, fw, stride, pad)
    cols = rng.standard_normal((c * fh * fw, n * windows)).astype(dtype)
    img = cs231n.col2im_cython(cols, n, c, h, w, fh, fw, pad, stride)
    assert img.shape == (n, c, h, w) and img.dtype == dtype
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(img, original_col2im(cols, (n, c, h, w), fh, fw, pad, stride), rtol=rtol, atol=atol)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_col2im_cython_is_the_adjoint(rng, geometry):
    n, c, h, w, fh, fw, pad, stride = geometry
    x = rng.standard_normal((n, c, h, w))
    cols = cs231n.im2col_cython(x, fh, fw, pad, stride)
    g = rng.standard_normal(cols.shape)
    assert np.vdot(cols, g) == pytest.approx(np.vdot(x, cs231n.col2im_cython(g, n, c, h, w, fh, fw, pad, stride)),
                                             rel=1e-12)


def test_im2col_and_col2im_keep_integer_dtypes(rng):
    x = rng.integers(-100, 100, size=(2, 3, 5, 6)).astype(np.int32)
    cols = cs231n.im2col_cython(x, 3, 2, 1, 2)
    assert cols.dtype == np.int32
    np.testing.assert_array_equal(cols, original_im2col(x, 3, 2, 1, 2))
    back = cs231n.col2im_cython(cols, 2, 3, 5, 6, 3, 2, 1, 2)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, original_col2im(cols, x.shape, 3, 2, 1, 2))


# ---------------------------------------------------------------- col2im_6d_cython

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_col2im_6d_matches_loop_original(rng, geometry, dtype):
    n, c, h, w, hh, ww, pad, stride = geometry
    six_d = (c, hh, ww, n, out_size(h, hh, stride, pad), out_size(w, ww, stride, pad))
    cols = rng.standard_normal(six_d).astype(dtype)
    img = cs231n.col2im_6d_cython(cols, n, c, h, w, hh, ww, pad, stride)
    assert img.shape == (n, c, h, w) and img.dtype == dtype
    rtol, atol = tolerance(dtype)
    expected = original_col2im_6d(cols, n, c, h, w, hh, ww, pad, stride)
    np.testing.assert_allclose(img, expected, rtol=rtol, atol=atol)
    # the same memory as a 2-D (C*HH*WW, N*out_h*out_w) matrix, as conv_backward_strides builds it
    flat = cs231n.col2im_6d_cython(cols.reshape(c * hh * ww, -1), n, c, h, w, hh, ww, pad, stride)
    np.testing.assert_array_equal(flat, img)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_col2im_6d_is_the_adjoint_of_the_strided_columns(rng, geometry):
    n, c, h, w, hh, ww, pad, stride = geometry
    x = rng.standard_normal((n, c, h, w))
    cols = strided_columns_6d(x, hh, ww, pad, stride)
    g = rng.standard_normal(cols.shape)
    back = cs231n.col2im_6d_cython(g, n, c, h, w, hh, ww, pad, stride)
    assert np.vdot(cols, g) == pytest.approx(np.vdot(x, back), rel=1e-12)


def test_col2im_6d_rejects_a_wrong_size(rng):
    with pytest.raises(ValueError, match="C, HH, WW, N, out_h, out_w"):
        cs231n.col2im_6d_cython(np.zeros((2, 3, 3, 1, 4, 4)), 1, 2, 6, 6, 3, 3, 1, 1)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_conv_backward_strides_runs_on_our_col2im_6d(rng, geometry):
    """The assignment's own ``conv_backward_strides`` gives the right gradients with fastconv's col2im_6d_cython."""
    x, w, b, conv_param = conv_setup(rng, geometry, np.float64)
    pad, stride = conv_param["pad"], conv_param["stride"]
    dout = rng.standard_normal(naive_conv_forward(x, w, b, pad, stride).shape)
    dx, dw, db = original_conv_backward_strides(dout, x, w, pad, stride, cs231n.col2im_6d_cython)
    ex, ew, eb = naive_conv_backward(dout, x, w, pad, stride)
    np.testing.assert_allclose(dx, ex, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, ew, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, eb, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- conv_forward_fast / conv_backward_fast

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_conv_fast_matches_naive(rng, geometry, dtype):
    x, w, b, conv_param = conv_setup(rng, geometry, dtype)
    pad, stride = conv_param["pad"], conv_param["stride"]
    out, cache = cs231n.conv_forward_fast(x, w, b, conv_param)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    expected = naive_conv_forward(x64, w64, b64, pad, stride)
    assert out.shape == expected.shape and out.dtype == dtype
    rtol, atol = tolerance(dtype)
    rtol, atol = rtol * 10, atol * 10
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)
    assert len(cache) == 5 and cache[3] is conv_param  # unpackable like the original's
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = cs231n.conv_backward_fast(dout, cache)
    ex, ew, eb = naive_conv_backward(dout.astype(np.float64), x64, w64, pad, stride)
    assert (dx.shape, dw.shape, db.shape) == (x.shape, w.shape, b.shape)
    assert dx.dtype == dw.dtype == db.dtype == dtype
    np.testing.assert_allclose(dx, ex, rtol=rtol, atol=atol)
    np.testing.assert_allclose(dw, ew, rtol=rtol, atol=atol * 10)
    np.testing.assert_allclose(db, eb, rtol=rtol, atol=atol * 10)


def test_conv_finite_differences(rng):
    x, w, b, conv_param = conv_setup(rng, (1, 2, 6, 5, 3, 2, 1, 2), np.float64, filters=3)
    out, cache = cs231n.conv_forward_fast(x, w, b, conv_param)
    r = rng.standard_normal(out.shape)
    dx, dw, db = cs231n.conv_backward_fast(r, cache)

    def loss():
        return float(np.vdot(cs231n.conv_forward_fast(x, w, b, conv_param)[0], r))

    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, numeric_gradient(loss, w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, numeric_gradient(loss, b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("geometry", GEOMETRIES[:4], ids=GEOMETRY_IDS[:4])
def test_conv_matches_torch_autograd(torch, rng, geometry):
    x, w, b, conv_param = conv_setup(rng, geometry, np.float64)
    out, cache = cs231n.conv_forward_fast(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = cs231n.conv_backward_fast(dout, cache)
    xt, wt, bt = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=conv_param["stride"], padding=conv_param["pad"])
    yt.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_conv_param_keys_are_required(rng):
    x, w, b, _ = conv_setup(rng, GEOMETRIES[0], np.float64)
    with pytest.raises(KeyError):
        cs231n.conv_forward_fast(x, w, b, {"stride": 1})


# ---------------------------------------------------------------- max_pool_forward_fast / max_pool_backward_fast

# (N, C, H, W, pool_height, pool_width, stride): the "reshape" case, overlapping, non-square, leftovers
POOLS = [
    (2, 3, 8, 8, 2, 2, 2),
    (2, 2, 7, 7, 3, 3, 2),
    (1, 3, 9, 8, 3, 2, 1),
    (3, 2, 10, 9, 2, 4, 3),  # (W - pool_width) % stride != 0: the original asserts
    (2, 1, 6, 5, 1, 3, 2),
]
POOL_IDS = ["{}x{}x{}x{}-k{}x{}-s{}".format(*p) for p in POOLS]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_max_pool_fast_matches_naive(rng, pool, dtype):
    n, c, h, w, ph, pw, stride = pool
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    pool_param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    out, cache = cs231n.max_pool_forward_fast(x, pool_param)
    expected = naive_max_pool_forward(x, ph, pw, stride)
    assert out.shape == expected.shape and out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = cs231n.max_pool_backward_fast(dout, cache)
    assert dx.shape == x.shape and dx.dtype == dtype
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(dx, naive_max_pool_backward(dout, x, ph, pw, stride), rtol=rtol, atol=atol)


def test_max_pool_ties_go_to_the_first_maximum():
    x = np.ones((1, 1, 4, 4))
    out, cache = cs231n.max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = cs231n.max_pool_backward_fast(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx, naive_max_pool_backward(np.ones_like(out), x, 2, 2, 2))
    assert dx.sum() == 4 and dx[0, 0, ::2, ::2].sum() == 4


def test_max_pool_keeps_integer_dtypes(rng):
    x = rng.integers(-1000, 1000, size=(2, 2, 6, 6)).astype(np.int16)
    out, cache = cs231n.max_pool_forward_fast(x, {"pool_height": 3, "pool_width": 2, "stride": 2})
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, naive_max_pool_forward(x, 3, 2, 2))
    assert cs231n.max_pool_backward_fast(np.ones(out.shape, np.int64), cache).dtype == np.float64


def test_max_pool_finite_differences(rng):
    x = rng.standard_normal((2, 2, 7, 6))
    pool_param = {"pool_height": 3, "pool_width": 2, "stride": 2}
    out, cache = cs231n.max_pool_forward_fast(x, pool_param)
    r = rng.standard_normal(out.shape)
    dx = cs231n.max_pool_backward_fast(r, cache)

    def loss():
        return float(np.vdot(cs231n.max_pool_forward_fast(x, pool_param)[0], r))

    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_max_pool_matches_torch_autograd(torch, rng, pool):
    n, c, h, w, ph, pw, stride = pool
    x = rng.standard_normal((n, c, h, w))
    out, cache = cs231n.max_pool_forward_fast(x, {"pool_height": ph, "pool_width": pw, "stride": stride})
    dout = rng.standard_normal(out.shape)
    dx = cs231n.max_pool_backward_fast(dout, cache)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = torch.nn.functional.max_pool2d(xt, (ph, pw), stride=stride)
    yt.backward(torch.from_numpy(dout))
    np.testing.assert_array_equal(out, yt.detach().numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_three_layer_convnet_step_matches_naive(rng):
    """conv - relu - 2x2 pool as in the assignment's ThreeLayerConvNet: fast == naive, forward and backward."""
    x = rng.standard_normal((3, 3, 8, 8))
    w, b = rng.standard_normal((4, 3, 3, 3)) * 0.1, rng.standard_normal(4) * 0.1
    conv_param, pool_param = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    a, conv_cache = cs231n.conv_forward_fast(x, w, b, conv_param)
    r = np.maximum(a, 0)
    out, pool_cache = cs231n.max_pool_forward_fast(r, pool_param)
    a_naive = naive_conv_forward(x, w, b, 1, 1)
    np.testing.assert_allclose(out, naive_max_pool_forward(np.maximum(a_naive, 0), 2, 2, 2), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dr = cs231n.max_pool_backward_fast(dout, pool_cache)
    dx, dw, db = cs231n.conv_backward_fast(dr * (a > 0), conv_cache)
    dr_naive = naive_max_pool_backward(dout, np.maximum(a_naive, 0), 2, 2, 2)
    ex, ew, eb = naive_conv_backward(dr_naive * (a_naive > 0), x, w, 1, 1)
    np.testing.assert_allclose(dx, ex, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, ew, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, eb, rtol=1e-12, atol=1e-12)
