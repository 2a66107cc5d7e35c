"""fastconv.compat.dlfs == the "deep learning from scratch" originals == finite differences == PyTorch.

The originals (``common/util.py`` im2col/col2im and the ``Convolution`` /
``Pooling`` layers of ``common/layers.py``) are re-implemented below the way
the book writes them: zero padding, one strided slice per kernel tap, a
transpose, and a float64 buffer.
"""

import numpy as np
import pytest
from helpers import tolerance

import fastconv
from fastconv.compat import dlfs

# (N, C, H, W, filter_h, filter_w, stride, pad): square and non-square kernels, strides 1-3
GEOMETRIES = [
    (2, 3, 7, 7, 3, 3, 1, 0),
    (2, 3, 7, 6, 3, 3, 1, 1),
    (1, 2, 8, 9, 2, 3, 2, 0),
    (3, 1, 9, 7, 3, 2, 3, 1),
    (2, 2, 5, 5, 5, 5, 1, 2),
    (1, 3, 10, 8, 1, 4, 2, 0),
    (2, 2, 6, 7, 4, 1, 3, 2),
    (2, 4, 4, 4, 4, 4, 1, 0),
]
GEOMETRY_IDS = ["{}x{}x{}x{}-k{}x{}-s{}-p{}".format(*g) for g in GEOMETRIES]
FLOATS = [np.float32, np.float64]


# ---------------------------------------------------------------- the originals, in plain NumPy

def out_size(size, k, stride, pad):
    return (size + 2 * pad - k) // stride + 1


def original_im2col(x, fh, fw, stride=1, pad=0):
    n, c, h, w = x.shape
    oh, ow = out_size(h, fh, stride, pad), out_size(w, fw, stride, pad)
    padded = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((n, c, fh, fw, oh, ow))  # float64, whatever came in
    for i in range(fh):
        for j in range(fw):
            col[:, :, i, j] = padded[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def original_col2im(col, shape, fh, fw, stride=1, pad=0):
    n, c, h, w = shape
    oh, ow = out_size(h, fh, stride, pad), out_size(w, fw, stride, pad)
    col = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1))
    for i in range(fh):
        for j in range(fw):
            img[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += col[:, :, i, j]
    return img[:, :, pad:h + pad, pad:w + pad]


class OriginalConvolution:
    def __init__(self, W, b, stride=1, pad=0):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad

    def forward(self, x):
        fn, _, fh, fw = self.W.shape
        n, _, h, w = x.shape
        oh, ow = out_size(h, fh, self.stride, self.pad), out_size(w, fw, self.stride, self.pad)
        self.col = original_im2col(x, fh, fw, self.stride, self.pad)
        self.col_W = self.W.reshape(fn, -1).T
        self.x = x
        out = self.col @ self.col_W + self.b
        return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)

    def backward(self, dout):
        fn, c, fh, fw = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, fn)
        self.db = dout.sum(axis=0)
        self.dW = (self.col.T @ dout).T.reshape(fn, c, fh, fw)
        return original_col2im(dout @ self.col_W.T, self.x.shape, fh, fw, self.stride, self.pad)


class OriginalPooling:
    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad

    def forward(self, x):
        n, c, h, w = x.shape
        oh, ow = out_size(h, self.pool_h, self.stride, 0), out_size(w, self.pool_w, self.stride, 0)
        col = original_im2col(x, self.pool_h, self.pool_w, self.stride, self.pad).reshape(-1, self.pool_h * self.pool_w)
        self.arg_max = np.argmax(col, axis=1)
        self.x = x
        return col.max(axis=1).reshape(n, oh, ow, c).transpose(0, 3, 1, 2)

    def backward(self, dout):
        dout = dout.transpose(0, 2, 3, 1)
        size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, size))
        dmax[np.arange(self.arg_max.size), self.arg_max.ravel()] = dout.ravel()
        dcol = dmax.reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
        return original_col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


# ---------------------------------------------------------------- helpers

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


def layer_setup(rng, geometry, dtype):
    n, c, h, w, fh, fw, stride, pad = geometry
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((5, c, fh, fw)).astype(dtype)
    bias = rng.standard_normal(5).astype(dtype)
    return x, weight, bias, stride, pad


# ---------------------------------------------------------------- im2col / col2im

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_im2col_matches_original(rng, geometry, dtype):
    n, c, h, w, fh, fw, stride, pad = geometry
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    x_before = x.copy()
    cols = dlfs.im2col(x, fh, fw, stride, pad)
    expected = original_im2col(x, fh, fw, stride, pad)
    assert cols.shape == (n * out_size(h, fh, stride, pad) * out_size(w, fw, stride, pad), c * fh * fw)
    assert cols.dtype == dtype  # the original upcasts float32 to float64; fastconv keeps it
    assert cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, expected.astype(dtype))  # data movement: exact
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_col2im_matches_original(rng, geometry, dtype):
    n, c, h, w, fh, fw, stride, pad = geometry
    rows = n * out_size(h, fh, stride, pad) * out_size(w, fw, stride, pad)
    cols = rng.standard_normal((rows, c * fh * fw)).astype(dtype)
    img = dlfs.col2im(cols, (n, c, h, w), fh, fw, stride, pad)
    assert img.shape == (n, c, h, w)
    assert img.dtype == dtype
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(img, original_col2im(cols.astype(np.float64), (n, c, h, w), fh, fw, stride, pad),
                               rtol=rtol, atol=atol)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_col2im_is_the_adjoint_of_im2col(rng, geometry):
    n, c, h, w, fh, fw, stride, pad = geometry
    x = rng.standard_normal((n, c, h, w))
    cols = dlfs.im2col(x, fh, fw, stride, pad)
    g = rng.standard_normal(cols.shape)
    assert np.vdot(cols, g) == pytest.approx(np.vdot(x, dlfs.col2im(g, x.shape, fh, fw, stride, pad)), rel=1e-12)


def test_col2im_adds_overlaps_and_accepts_any_shape_of_the_right_size():
    x = np.ones((1, 1, 3, 3))
    cols = dlfs.im2col(x, 2, 2)
    expected = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    np.testing.assert_array_equal(dlfs.col2im(cols, x.shape, 2, 2)[0, 0], expected)
    np.testing.assert_array_equal(dlfs.col2im(cols.ravel(), x.shape, 2, 2)[0, 0], expected)  # the original reshapes too


def test_keyword_arguments_and_defaults(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    np.testing.assert_array_equal(dlfs.im2col(x, 3, 2), original_im2col(x, 3, 2, 1, 0))
    np.testing.assert_array_equal(dlfs.im2col(input_data=x, filter_h=3, filter_w=2, stride=2, pad=1),
                                  original_im2col(x, 3, 2, 2, 1))
    cols = rng.standard_normal((2 * 3 * 3, 3 * 6))
    np.testing.assert_allclose(dlfs.col2im(col=cols, input_shape=x.shape, filter_h=3, filter_w=2, stride=2, pad=1),
                               original_col2im(cols, x.shape, 3, 2, 2, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int16, np.int64])
def test_integer_input_gives_float64_like_the_original(rng, dtype):
    x = rng.integers(0, 2 if dtype == np.bool_ else 100, size=(2, 2, 5, 6)).astype(dtype)
    cols = dlfs.im2col(x, 3, 2, 1, 1)
    assert cols.dtype == np.float64
    np.testing.assert_array_equal(cols, original_im2col(x, 3, 2, 1, 1))
    # summing integer columns does not wrap around, as the original's float64 buffer does not
    icols = np.full(cols.shape, 100, dtype=np.uint8)
    img = dlfs.col2im(icols, x.shape, 3, 2, 1, 1)
    assert img.dtype == np.float64
    np.testing.assert_array_equal(img, original_col2im(icols, x.shape, 3, 2, 1, 1))
    assert img.max() == 600.0


def test_bad_input_raises_value_error(rng):
    with pytest.raises(ValueError, match="4-D"):
        dlfs.im2col(rng.standard_normal((3, 5, 5)), 3, 3)
    with pytest.raises(ValueError, match="4-D"):
        dlfs.col2im(np.zeros((9, 9)), (3, 5, 5), 3, 3)
    with pytest.raises(ValueError):
        dlfs.im2col(rng.standard_normal((1, 1, 4, 4)), 7, 7)  # window larger than the padded image


# ---------------------------------------------------------------- Convolution layer

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_convolution_matches_original(rng, geometry, dtype):
    x, weight, bias, stride, pad = layer_setup(rng, geometry, dtype)
    ours, orig = dlfs.Convolution(weight, bias, stride, pad), OriginalConvolution(weight, bias, stride, pad)
    out, expected = ours.forward(x), orig.forward(x)
    assert out.shape == expected.shape and out.dtype == dtype
    rtol, atol = tolerance(dtype)
    rtol, atol = rtol * 10, atol * 10
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, expected_dx = ours.backward(dout), orig.backward(dout)
    assert dx.shape == x.shape and dx.dtype == dtype
    assert ours.dW.shape == weight.shape and ours.dW.dtype == dtype
    assert ours.db.shape == (5,) and ours.db.dtype == dtype
    np.testing.assert_allclose(dx, expected_dx, rtol=rtol, atol=atol)
    np.testing.assert_allclose(ours.dW, orig.dW, rtol=rtol, atol=atol * 10)
    np.testing.assert_allclose(ours.db, orig.db, rtol=rtol, atol=atol * 10)
    # the cached attributes of the original are there, with the same contents
    assert ours.x is x
    np.testing.assert_array_equal(ours.col_W, orig.col_W)
    np.testing.assert_array_equal(ours.col, orig.col.astype(dtype))


def test_convolution_attributes_and_signature(rng):
    weight, bias = rng.standard_normal((2, 1, 3, 3)), np.zeros(2)
    layer = dlfs.Convolution(weight, bias)
    assert (layer.W is weight, layer.b is bias, layer.stride, layer.pad) == (True, True, 1, 0)
    assert layer.x is None and layer.col is None and layer.col_W is None
    assert layer.dW is None and layer.db is None
    layer = dlfs.Convolution(W=weight, b=bias, stride=2, pad=1)
    assert layer.forward(rng.standard_normal((1, 1, 5, 5))).shape == (1, 2, 3, 3)


def test_convolution_bias_broadcasts_like_the_original(rng):
    x, weight, _, stride, pad = layer_setup(rng, GEOMETRIES[1], np.float64)
    for bias in (rng.standard_normal((1, 5)), np.float64(0.5)):
        out = dlfs.Convolution(weight, bias, stride, pad).forward(x)
        expected = OriginalConvolution(weight, bias, stride, pad).forward(x)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_convolution_backward_uses_the_weights_seen_by_forward(rng):
    """An optimiser that assigns a new W between forward and backward changes nothing (col_W is cached)."""
    x, weight, bias, stride, pad = layer_setup(rng, GEOMETRIES[2], np.float64)
    ours, orig = dlfs.Convolution(weight, bias, stride, pad), OriginalConvolution(weight, bias, stride, pad)
    out = ours.forward(x)
    orig.forward(x)
    ours.W = orig.W = weight * 3.0
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(ours.backward(dout), orig.backward(dout), rtol=1e-12, atol=1e-12)


def test_convolution_integer_input_gives_float64(rng):
    x = rng.integers(-3, 4, size=(2, 2, 6, 6))
    weight = rng.integers(-3, 4, size=(3, 2, 3, 2))
    bias = np.arange(3)
    layer = dlfs.Convolution(weight, bias, 2, 1)
    out = layer.forward(x)
    assert out.dtype == np.float64 and layer.x.dtype == np.float64
    np.testing.assert_array_equal(out, OriginalConvolution(weight, bias, 2, 1).forward(x))
    dx = layer.backward(np.ones(out.shape, dtype=np.int64))
    assert dx.dtype == np.float64 and layer.dW.dtype == np.float64


@pytest.mark.parametrize("geometry", [(1, 2, 5, 6, 3, 2, 2, 1), (1, 3, 4, 4, 2, 2, 1, 0)])
def test_convolution_finite_differences(rng, geometry):
    x, weight, bias, stride, pad = layer_setup(rng, geometry, np.float64)
    layer = dlfs.Convolution(weight, bias, stride, pad)
    r = rng.standard_normal(layer.forward(x).shape)

    def loss():
        return float(np.vdot(dlfs.Convolution(weight, bias, stride, pad).forward(x), r))

    layer.forward(x)
    dx = layer.backward(r)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(layer.dW, numeric_gradient(loss, weight), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(layer.db, numeric_gradient(loss, bias), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("geometry", GEOMETRIES[:4], ids=GEOMETRY_IDS[:4])
def test_convolution_matches_torch_autograd(torch, rng, geometry):
    x, weight, bias, stride, pad = layer_setup(rng, geometry, np.float64)
    layer = dlfs.Convolution(weight, bias, stride, pad)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    xt, wt, bt = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, weight, bias))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad)
    yt.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.dW, wt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.db, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- Pooling layer

# (N, C, H, W, pool_h, pool_w, stride): tiling, overlapping, non-square, leftovers
POOLS = [
    (2, 3, 8, 8, 2, 2, 2),
    (2, 2, 7, 7, 3, 3, 2),
    (1, 3, 9, 8, 3, 2, 1),
    (3, 2, 10, 9, 2, 4, 3),
    (2, 1, 6, 5, 1, 3, 2),
]
POOL_IDS = ["{}x{}x{}x{}-k{}x{}-s{}".format(*p) for p in POOLS]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_pooling_matches_original(rng, pool, dtype):
    n, c, h, w, ph, pw, stride = pool
    x = rng.standard_normal((n, c, h, w)).astype(dtype)  # continuous values: no ties
    ours, orig = dlfs.Pooling(ph, pw, stride), OriginalPooling(ph, pw, stride)
    out, expected = ours.forward(x), orig.forward(x)
    assert out.shape == expected.shape and out.dtype == dtype
    np.testing.assert_array_equal(out, expected.astype(dtype))
    assert ours.arg_max.shape == out.shape and ours.arg_max.dtype == np.int64
    # arg_max indexes the flattened H*W plane: it picks the forward values
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(n, c, -1), ours.arg_max.reshape(n, c, -1), axis=2),
                                  out.reshape(n, c, -1))
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = ours.backward(dout)
    assert dx.shape == x.shape and dx.dtype == dtype
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(dx, orig.backward(dout.astype(np.float64)), rtol=rtol, atol=atol)
    assert ours.x is x


def test_pooling_signature_and_default_stride_of_one(rng):
    layer = dlfs.Pooling(2, 2)
    assert (layer.pool_h, layer.pool_w, layer.stride, layer.pad) == (2, 2, 1, 0)
    assert layer.x is None and layer.arg_max is None
    x = rng.standard_normal((1, 2, 5, 5))
    assert layer.forward(x).shape == (1, 2, 4, 4)
    assert dlfs.Pooling(pool_h=2, pool_w=2, stride=2, pad=0).forward(x).shape == (1, 2, 2, 2)


def test_pooling_ties_go_to_the_first_maximum_like_np_argmax():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = 1.0  # shared maximum of the overlapping 2x2 windows
    ours, orig = dlfs.Pooling(2, 2, 1), OriginalPooling(2, 2, 1)
    np.testing.assert_array_equal(ours.forward(x), orig.forward(x))
    dout = np.arange(9.0).reshape(1, 1, 3, 3) + 1
    np.testing.assert_array_equal(ours.backward(dout), orig.backward(dout))


def test_pooling_integer_input_gives_float64(rng):
    x = rng.integers(-50, 50, size=(2, 2, 6, 6))
    layer = dlfs.Pooling(2, 3, 2)
    out = layer.forward(x)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, OriginalPooling(2, 3, 2).forward(x))
    assert layer.backward(np.ones(out.shape, dtype=np.int32)).dtype == np.float64


def test_pooling_finite_differences(rng):
    x = rng.standard_normal((2, 2, 7, 6))
    layer = dlfs.Pooling(3, 2, 2)
    r = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(r)

    def loss():
        return float(np.vdot(dlfs.Pooling(3, 2, 2).forward(x), r))

    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("pool, pad", [((2, 2, 2), 1), ((3, 2, 1), 1), ((3, 3, 2), 0)])
def test_pooling_matches_torch_autograd_including_padding(torch, rng, pool, pad):
    ph, pw, stride = pool
    x = rng.standard_normal((2, 3, 7, 8))
    layer = dlfs.Pooling(ph, pw, stride, pad)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt, it = torch.nn.functional.max_pool2d(xt, (ph, pw), stride=stride, padding=pad, return_indices=True)
    yt.backward(torch.from_numpy(dout))
    np.testing.assert_array_equal(out, yt.detach().numpy())
    np.testing.assert_array_equal(layer.arg_max, it.numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_simple_convnet_step_matches_original(rng):
    """Conv -> Pooling -> Conv as in the book's SimpleConvNet: same forward and backward in float64."""
    x = rng.standard_normal((3, 1, 12, 12))
    w1, b1 = rng.standard_normal((4, 1, 5, 5)) * 0.1, rng.standard_normal(4) * 0.1
    w2, b2 = rng.standard_normal((3, 4, 3, 3)) * 0.1, rng.standard_normal(3) * 0.1
    ours = [dlfs.Convolution(w1, b1, 1, 0), dlfs.Pooling(2, 2, stride=2), dlfs.Convolution(w2, b2, 1, 1)]
    orig = [OriginalConvolution(w1, b1, 1, 0), OriginalPooling(2, 2, stride=2), OriginalConvolution(w2, b2, 1, 1)]
    a, b = x, x
    for lo, lr in zip(ours, orig):
        a, b = lo.forward(a), lr.forward(b)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    da = db = np.ones_like(a)
    for lo, lr in zip(reversed(ours), reversed(orig)):
        da, db = lo.backward(da), lr.backward(db)
    np.testing.assert_allclose(da, db, rtol=1e-12, atol=1e-12)
    for lo, lr in ((ours[0], orig[0]), (ours[2], orig[2])):
        np.testing.assert_allclose(lo.dW, lr.dW, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(lo.db, lr.db, rtol=1e-12, atol=1e-12)
