"""Plans (fastconv._plans): repeated calls of one signature skip argument handling.

A plan is kept only for a validated call, and used only for a call with the
same key: these tests check that planned calls give the same bits as the
first call, that anything validation would refuse is still refused after a
plan exists, and that calls the kernels cannot take as they are never use one.
"""

import numpy as np
import pytest
from helpers import assert_same_non_finite, tolerance
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from fastconv import _conv, _conv_grad, _im2col, _plans, _pool, reference
from fastconv._kernels import _call_key, _conv_direct


@pytest.fixture(autouse=True)
def no_plans():
    """Every test starts and ends without plans."""
    _plans.clear_plans()
    yield
    _plans.clear_plans()


# ---- the key

def test_key_of_kernel_ready_arrays_and_plain_arguments():
    x = np.zeros((2, 3, 5, 5), np.float32)
    key = _plans.call_key((x, None), (1, "zeros", (1, (2, 3)), None, False))
    assert key is not None and hash(key) == hash(_plans.call_key((x.copy(), None),
                                                                 (1, "zeros", (1, (2, 3)), None, False)))


@pytest.mark.parametrize("array", [
    np.zeros((2, 3, 5, 5), np.float32)[..., ::2],  # not C-contiguous
    np.zeros((2, 3), np.int64),  # not a float the kernels take
    np.zeros((2, 3), np.float16),
    np.zeros((2, 3), ">f4"),  # byte-swapped
    np.ma.zeros((2, 3), np.float32),  # a subclass
    np.frombuffer(bytearray(4 * 6 + 1), np.float32, 6, offset=1),  # misaligned
    [[1.0, 2.0]],
])
def test_no_key_for_arrays_the_kernels_would_not_take_as_they_are(array):
    assert _plans.call_key((array,), (1,)) is None


@pytest.mark.parametrize("param", [1.0, np.int64(1), [1, 1], (1, 1.0), ((1, 1), [1, 1]), object()])
def test_no_key_for_arguments_other_than_plain_scalars_and_tuples(param):
    assert _plans.call_key((np.zeros(3, np.float32),), (param,)) is None


def test_key_tells_equal_values_of_different_types_apart():
    x = np.zeros(3, np.float32)
    assert _plans.call_key((x,), (1,)) != _plans.call_key((x,), (True,))
    assert _plans.call_key((x,), ((1, 0),)) != _plans.call_key((x,), ((True, False),))
    assert _plans.call_key((x,), (1,)) != _plans.call_key((x.astype(np.float64),), (1,))


def test_key_tells_shapes_and_nesting_apart():
    x = np.zeros((2, 3), np.float32)
    keys = [
        _plans.call_key((x,), ((1, (2, 3)),)),
        _plans.call_key((x,), ((1, 2, 3),)),
        _plans.call_key((x,), (((1, 2), 3),)),
        _plans.call_key((x,), (1, 2, 3)),
        _plans.call_key((x.reshape(3, 2),), ((1, 2, 3),)),
        _plans.call_key((x.reshape(6),), ((1, 2, 3),)),
        _plans.call_key((x, None), ((1, 2, 3),)),
        _plans.call_key((None, x), ((1, 2, 3),)),
        _plans.call_key((x,), (None, "1")),
        _plans.call_key((x,), ("None", 1)),
    ]
    assert None not in keys and len(set(keys)) == len(keys)


def test_no_key_for_tuples_nested_too_deep():
    x = np.zeros(3, np.float32)
    param = 1
    for _ in range(_call_key.MAX_DEPTH):
        param = (param,)
    assert _plans.call_key((x,), (param,)) is not None
    assert _plans.call_key((x,), ((param,),)) is None
    for _ in range(100_000):  # never a recursion past the limit
        param = (param,)
    assert _plans.call_key((x,), (param,)) is None


def test_key_of_a_call_into_an_out():
    """An out= is keyed as the arrays are, and apart from them: with or without one, two signatures."""
    x = np.zeros((2, 3), np.float32)
    keys = [_plans.call_key((x,), (1,)), _plans.call_key((x,), (1,), np.zeros((2, 3), np.float32)),
            _plans.call_key((x,), (1,), np.zeros((3, 2), np.float32)),
            _plans.call_key((x,), (1,), np.zeros((2, 3), np.float64)),
            _plans.call_key((x, None), (1,))]
    assert None not in keys and len(set(keys)) == len(keys)
    buffer = np.zeros(12, np.float32)
    # touching is not overlapping: the out's first byte is one past x's last
    assert _plans.call_key((buffer[:6],), (1,), buffer[6:]) is not None
    assert _plans.call_key((buffer[6:],), (1,), buffer[:6]) is not None


@pytest.mark.parametrize("make_out", [
    lambda x, buffer: buffer[5:11],  # overlaps the input's last item
    lambda x, buffer: buffer[:6],  # overlaps the input's first items
    lambda x, buffer: x,  # is the input
    lambda x, buffer: _read_only(np.zeros_like(x)),
    lambda x, buffer: np.zeros(12, np.float32)[::2],  # not C-contiguous
    lambda x, buffer: [0.0] * 6,  # not an array
])
def test_no_key_for_an_out_that_is_read_only_overlaps_an_input_or_is_not_kernel_ready(make_out):
    buffer = np.zeros(12, np.float32)
    x = buffer[1:7]
    assert _plans.call_key((None, x), (1,), make_out(x, buffer)) is None


def _read_only(array):
    array.flags.writeable = False
    return array


def test_key_of_integer_indices():
    """max_pool2d_backward's indices are keyed like the arrays, but as native int64; an out must not overlap them."""
    grad = np.zeros((2, 3), np.float32)
    indices = np.zeros((2, 3), np.int64)
    key = _plans.call_key((grad,), (1,), None, indices)
    assert key is not None and key == _plans.call_key((grad,), (1,), None, indices.copy())
    assert key != _plans.call_key((grad,), (1,))  # absent indices are part of the key too
    assert key != _plans.call_key((grad,), (1,), None, indices.reshape(3, 2))
    for other in (indices.astype(np.int32), indices.astype(np.float64), indices.astype(">i8"),
                  np.zeros((2, 6), np.int64)[:, ::2], indices.tolist()):
        assert _plans.call_key((grad,), (1,), None, other) is None
    assert _plans.call_key((indices,), (1,)) is None  # an int64 array where a float one goes
    memory = np.zeros(12, np.int64)
    out = memory[:6].view(np.float64).reshape(2, 3)
    assert _plans.call_key((grad,), (1,), out, memory[6:].reshape(2, 3)) is not None
    assert _plans.call_key((grad,), (1,), out, memory[5:11].reshape(2, 3)) is None  # overlaps the out


def test_cache_is_bounded_and_shared_safely():
    cache = _plans.PlanCache(size=3)
    for i in range(3):
        cache.put(i, str(i))
    assert len(cache) == 3 and cache.get(2) == "2"
    cache.put(3, "3")  # full: emptied first
    assert len(cache) == 1 and cache.get(3) == "3" and cache.get(0) is None
    cache.put(None, "never")
    assert cache.get(None) is None and len(cache) == 1


# ---- conv2d

def test_conv2d_plans_once_and_reuses_the_plan(rng):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    first = fastconv.conv2d(x, w, padding=1)
    assert len(_conv._PLANS) == 1
    second = fastconv.conv2d(x, w, padding=1)
    assert len(_conv._PLANS) == 1
    np.testing.assert_array_equal(first, second)
    # the same call into an out= (a signature, and a plan, of its own): the same bits
    np.testing.assert_array_equal(fastconv.conv2d(x, w, padding=1, out=np.empty_like(first)), first)
    assert len(_conv._PLANS) == 2


def test_conv2d_refuses_after_a_plan_what_it_refused_before(rng):
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    fastconv.conv2d(x, w, stride=1)
    assert len(_conv._PLANS) == 1
    with pytest.raises(TypeError, match="bool"):
        fastconv.conv2d(x, w, stride=True)
    with pytest.raises(TypeError):
        fastconv.conv2d(x, w, stride=1.0)
    with pytest.raises(ValueError, match="algorithm"):
        fastconv.conv2d(x, w, algorithm="fft")
    with pytest.raises(ValueError):
        fastconv.conv2d(x, w[:, :2])


def test_conv2d_calls_without_a_plan_still_work(rng):
    """Strided, misaligned, float16, int and NHWC 1x1 calls take the full path."""
    x = rng.standard_normal((2, 3, 6, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    expected = fastconv.conv2d(x, w)
    strided = np.repeat(x, 2, axis=3)[..., ::2]
    np.testing.assert_array_equal(fastconv.conv2d(strided, w), expected)
    assert fastconv.conv2d(x.astype(np.float16), w.astype(np.float16)).dtype == np.float16
    assert fastconv.conv2d(x.astype(int), w.astype(int)).dtype == np.int64
    x1 = rng.standard_normal((2, 4, 5, 32)).astype(np.float32)  # (the pointwise NHWC kernel's)
    w1 = rng.standard_normal((1, 1, 32, 40)).astype(np.float32)
    np.testing.assert_allclose(fastconv.conv2d(x1, w1, layout="NHWC"), x1 @ w1[0, 0], rtol=1e-5, atol=1e-5)
    assert len(_conv._PLANS) == 1  # only the first call was planned


def test_conv2d_nhwc_calls_are_planned_and_give_the_same_bits(rng):
    """NHWC calls of the NCHW tiles (transposed in and out) plan once and give the first call's bits."""
    x = rng.standard_normal((2, 7, 6, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5, 12)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    first = fastconv.conv2d(x, w, b, padding=1, stride=(1, 2), layout="NHWC")
    (plan,) = _conv._PLANS.values()
    assert isinstance(plan, _conv._NHWCTiledPlan)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, b, padding=1, stride=(1, 2), layout="NHWC"), first)
    np.testing.assert_allclose(first, reference.conv2d(x, w, b, padding=1, stride=(1, 2), layout="NHWC"),
                               rtol=1e-5, atol=1e-5)
    single = fastconv.conv2d(x[1], w, b, padding=1, stride=(1, 2), layout="NHWC")
    np.testing.assert_array_equal(fastconv.conv2d(x[1], w, b, padding=1, stride=(1, 2), layout="NHWC"), single)
    np.testing.assert_array_equal(single, first[1])
    assert len(_conv._PLANS) == 2


def test_conv2d_plan_follows_the_simd_level_and_thread_count(rng):
    x = rng.standard_normal((3, 16, 9, 9)).astype(np.float32)
    w = rng.standard_normal((40, 16, 3, 3)).astype(np.float32)
    expected = reference.conv2d(x, w)
    rtol, atol = tolerance(np.float32)
    results = []
    for level in fastconv.simd_levels():
        previous = fastconv.set_simd_level(level)
        try:
            for threads in (1, 2, 3):
                with fastconv.num_threads(threads):
                    results.append(fastconv.conv2d(x, w))
        finally:
            fastconv.set_simd_level(previous)
        np.testing.assert_allclose(results[-1], expected, rtol=rtol, atol=atol * 10)
    assert len(_conv._PLANS) == len(fastconv.simd_levels())  # one plan per level, whatever the threads


def test_conv2d_mixed_dtypes_are_not_planned(rng):
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((2, 2, 3, 3))  # float64: x must be cast
    for _ in range(2):
        got = fastconv.conv2d(x, w)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, reference.conv2d(x, w), rtol=1e-12, atol=1e-12)
    assert len(_conv._PLANS) == 0


def test_plans_hold_read_only_tables(rng):
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    fastconv.conv2d(x, rng.standard_normal((2, 2, 3, 3)).astype(np.float32))
    (plan,) = _conv._PLANS.values()
    with pytest.raises(ValueError):
        plan.tiled.phases.taps[0] = 10**9


_CASES = [  # (x shape, weight shape, keywords): a small pool, so that calls repeat
    ((2, 3, 7, 7), (4, 3, 3, 3), dict(padding=1)),
    ((2, 3, 7, 7), (4, 3, 3, 3), dict(padding=1, stride=2)),
    ((2, 3, 7, 7), (4, 3, 3, 3), dict(padding=(1, 0))),
    ((2, 3, 7, 7), (4, 3, 3, 3), dict(padding="same", dilation=2)),
    ((2, 3, 7, 7), (4, 3, 2, 3), dict()),
    ((3, 7, 7), (4, 3, 3, 3), dict(padding=1)),
    ((1, 4, 9, 5), (4, 1, 3, 3), dict(groups=4, padding=1)),
    ((1, 4, 9, 5), (6, 2, 3, 1), dict(groups=2, padding_mode="reflect", padding=1)),
    ((2, 3, 7, 7), (4, 3, 3, 3), dict(padding=1, algorithm="im2col")),
]


def call_sequences(cases, *more):
    """Lists of calls: (index into ``cases``, dtype, draws of ``more``...); a small pool, so calls repeat."""
    return st.lists(st.tuples(st.integers(0, len(cases) - 1), st.sampled_from([np.float32, np.float64]), *more),
                    min_size=1, max_size=8)


def into(expected, into_out):
    """An ``out=`` for a result like ``expected`` (filled with nan: every element must be written), or None."""
    return np.full(expected.shape, np.nan, expected.dtype) if into_out else None


def returned(got, out):
    """``got``, after checking that a call given ``out`` returned it."""
    assert out is None or got is out
    return got


@given(calls=call_sequences(_CASES, st.booleans(), st.booleans(), st.sampled_from(["NCHW", "NHWC"])),
       seed=st.integers(0, 2**32 - 1))
def test_conv2d_any_sequence_of_calls_matches_the_reference(calls, seed):
    """Plans are found only for their own signature (with or without an out=), whatever came before."""
    rng = np.random.default_rng(seed)
    for index, dtype, with_bias, into_out, layout in calls:
        x_shape, w_shape, kw = _CASES[index]
        x = rng.standard_normal(x_shape).astype(dtype)
        w = rng.standard_normal(w_shape).astype(dtype)
        if layout == "NHWC":  # (channels last, HWIO)
            x, w, kw = np.moveaxis(x, -3, -1).copy(), w.transpose(2, 3, 1, 0).copy(), dict(kw, layout=layout)
        b = rng.standard_normal(w_shape[0]).astype(dtype) if with_bias else None
        expected = reference.conv2d(x, w, b, **{k: v for k, v in kw.items() if k != "algorithm"})
        out = into(expected, into_out)
        got = returned(fastconv.conv2d(x, w, b, **kw, out=out), out)
        rtol, atol = tolerance(dtype)
        assert got.dtype == dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * 10)


# ---- the gradients

@given(calls=call_sequences(_CASES[:-1], st.booleans(), st.sampled_from(["NCHW", "NHWC"])),
       seed=st.integers(0, 2**32 - 1))
def test_gradients_any_sequence_of_calls_matches_the_reference(calls, seed):
    rng = np.random.default_rng(seed)
    for index, dtype, into_out, layout in calls:
        x_shape, w_shape, kw = _CASES[index]
        if kw.get("padding_mode", "zeros") != "zeros":
            continue  # the gradients take zero padding only
        x = rng.standard_normal(x_shape).astype(dtype)
        w = rng.standard_normal(w_shape).astype(dtype)
        if layout == "NHWC":  # (channels last, HWIO)
            x, w, kw = np.moveaxis(x, -3, -1).copy(), w.transpose(2, 3, 1, 0).copy(), dict(kw, layout=layout)
            x_shape, w_shape = x.shape, w.shape
        grad = rng.standard_normal(reference.conv2d(x, w, **kw).shape).astype(dtype)
        rtol, atol = tolerance(dtype)
        expected = reference.conv2d_grad_input(grad, w, x_shape, **kw)
        out = into(expected, into_out)
        got = returned(fastconv.conv2d_grad_input(grad, w, x_shape, **kw, out=out), out)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * 10)
        expected = reference.conv2d_grad_weight(grad, x, w_shape, **kw)
        out = into(expected, into_out)
        got = returned(fastconv.conv2d_grad_weight(grad, x, w_shape, **kw, out=out), out)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * 100)
        if kw.get("padding") != "same":  # (not a transposed convolution's)
            b = rng.standard_normal(w_shape[2 if layout == "NHWC" else 1] * kw.get("groups", 1)).astype(dtype)
            expected = reference.conv_transpose2d(grad, w, b, **kw)
            out = into(expected, into_out)
            got = returned(fastconv.conv_transpose2d(grad, w, b, **kw, out=out), out)
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * 10)
        assert got.dtype == dtype and got.flags.c_contiguous


def test_gradients_plan_once_and_reuse_the_plan(rng):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    grad = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    kw = dict(stride=2, padding=1)
    gi = [fastconv.conv2d_grad_input(grad, w, x.shape, **kw) for _ in range(2)]
    gw = [fastconv.conv2d_grad_weight(grad, x, w.shape, **kw) for _ in range(2)]
    ct = [fastconv.conv_transpose2d(grad, w, **kw, output_padding=(0, 1)) for _ in range(2)]  # x's shape
    assert len(_conv_grad._GRAD_INPUT_PLANS) == len(_conv_grad._GRAD_WEIGHT_PLANS) == 1
    assert len(_conv_grad._CONV_TRANSPOSE_PLANS) == 1
    np.testing.assert_array_equal(ct[0], ct[1])
    # the full path (a Fortran-ordered input has no key) computes the same bits
    np.testing.assert_array_equal(fastconv.conv_transpose2d(np.asfortranarray(grad), w, **kw,
                                                            output_padding=(0, 1)), ct[0])
    np.testing.assert_array_equal(ct[0], gi[0])
    np.testing.assert_array_equal(gi[0], gi[1])
    np.testing.assert_array_equal(gw[0], gw[1])
    np.testing.assert_array_equal(fastconv.conv2d_grad_input(grad, w, x.shape, out=np.empty_like(x), **kw), gi[0])
    np.testing.assert_array_equal(fastconv.conv2d_grad_weight(grad, x, w.shape, out=np.empty_like(w), **kw), gw[0])
    with pytest.raises(TypeError):
        fastconv.conv2d_grad_input(grad, w, x.shape, stride=(2, True), padding=1)
    with pytest.raises(ValueError):
        fastconv.conv2d_grad_weight(grad, x, (4, 3, 3, 2), **kw)


@pytest.mark.parametrize("groups", [1, 2])
def test_nhwc_gradients_plan_once_and_give_the_full_paths_bits(rng, groups):
    """NHWC gradients of the NCHW kernels (transposed in and out) plan once; the full path gives the same bits."""
    x = rng.standard_normal((2, 7, 6, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4 // groups, 6)).astype(np.float32)
    grad = rng.standard_normal((2, 4, 3, 6)).astype(np.float32)
    kw = dict(stride=2, padding=1, groups=groups, layout="NHWC")
    gi = [fastconv.conv2d_grad_input(grad, w, x.shape, **kw) for _ in range(2)]
    gw = [fastconv.conv2d_grad_weight(grad, x, w.shape, **kw) for _ in range(2)]
    (gi_plan,), (gw_plan,) = _conv_grad._GRAD_INPUT_PLANS.values(), _conv_grad._GRAD_WEIGHT_PLANS.values()
    assert isinstance(gi_plan, _conv_grad._GradInputNHWCCall)
    assert isinstance(gw_plan, _conv_grad._GradWeightNHWCCall)
    fortran = np.asfortranarray(grad)  # (no key: the full path)
    np.testing.assert_array_equal(fastconv.conv2d_grad_input(fortran, w, x.shape, **kw), gi[0])
    np.testing.assert_array_equal(fastconv.conv2d_grad_weight(fortran, x, w.shape, **kw), gw[0])
    np.testing.assert_array_equal(gi[0], gi[1])
    np.testing.assert_array_equal(gw[0], gw[1])
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(gi[0], reference.conv2d_grad_input(grad, w, x.shape, **kw), rtol=rtol, atol=atol)
    np.testing.assert_allclose(gw[0], reference.conv2d_grad_weight(grad, x, w.shape, **kw), rtol=rtol, atol=atol)
    out = np.full_like(x[1], np.nan)  # (unbatched, into an out)
    for _ in range(2):
        assert fastconv.conv2d_grad_input(grad[1], w, x.shape[1:], out=out, **kw) is out
        np.testing.assert_array_equal(out, gi[0][1])
    assert len(_conv_grad._GRAD_INPUT_PLANS) == 2


def test_grad_weight_plan_hands_inf_inputs_to_the_gemm(rng):
    """A planned call whose input holds an inf still gets the reference's values (the GEMM path)."""
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    grad = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    fastconv.conv2d_grad_weight(grad, x, (4, 3, 3, 3), padding=1)  # plans it: the column tiles
    (plan,) = _conv_grad._GRAD_WEIGHT_PLANS.values()
    assert plan.plan.oc_level == -1
    x[1, 2, 0, 0] = np.inf  # in the padding's neighbourhood: only the first row/column taps see it
    got = fastconv.conv2d_grad_weight(grad, x, (4, 3, 3, 3), padding=1)
    assert_same_non_finite(got, reference.conv2d_grad_weight(grad, x, (4, 3, 3, 3), padding=1))


# ---- pooling, im2col and col2im

_POOLS = [  # (x shape, keywords)
    ((2, 3, 7, 7), dict(kernel_size=2)),
    ((2, 3, 7, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((3, 7, 6), dict(kernel_size=(2, 3), stride=1)),
    ((1, 2, 9, 9), dict(kernel_size=3, padding=1)),
]


@given(calls=call_sequences(_POOLS, st.booleans(), st.booleans()), seed=st.integers(0, 2**32 - 1))
def test_pools_any_sequence_of_calls_matches_the_reference(calls, seed):
    rng = np.random.default_rng(seed)
    for index, dtype, flag, into_out in calls:
        shape, kw = _POOLS[index]
        x = rng.standard_normal(shape).astype(dtype)
        expected = reference.max_pool2d(x, **kw, return_indices=flag)
        if flag:
            values, indices = fastconv.max_pool2d(x, **kw, return_indices=True)
            expected, expected_indices = expected
            np.testing.assert_array_equal(indices, expected_indices)
            grad = rng.standard_normal(values.shape).astype(dtype)
            back_expected = reference.max_pool2d_backward(grad, indices, shape)
            out = into(back_expected, into_out)
            back = returned(fastconv.max_pool2d_backward(grad, indices, shape, out=out), out)
            np.testing.assert_array_equal(back, back_expected)
        else:
            out = into(expected, into_out)
            values = returned(fastconv.max_pool2d(x, **kw, out=out), out)
        np.testing.assert_array_equal(values, expected)
        expected = reference.avg_pool2d(x, **kw, count_include_pad=flag)
        out = into(expected, into_out)
        got = returned(fastconv.avg_pool2d(x, **kw, count_include_pad=flag, out=out), out)
        rtol, atol = tolerance(dtype)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
        grad = rng.standard_normal(got.shape).astype(dtype)
        expected = reference.avg_pool2d_backward(grad, shape, **kw, count_include_pad=flag)
        out = into(expected, into_out)
        back = returned(fastconv.avg_pool2d_backward(grad, shape, **kw, count_include_pad=flag, out=out), out)
        np.testing.assert_allclose(back, expected, rtol=rtol, atol=atol)
        assert back.dtype == dtype
        assert got.dtype == values.dtype == dtype


@given(calls=call_sequences(_CASES, st.booleans()), seed=st.integers(0, 2**32 - 1))
def test_im2col_col2im_any_sequence_of_calls_matches_the_reference(calls, seed):
    rng = np.random.default_rng(seed)
    for index, dtype, into_out in calls:
        x_shape, w_shape, kw = _CASES[index]
        kw = {k: v for k, v in kw.items() if k in ("stride", "padding", "dilation", "padding_mode")}
        if kw.get("padding") == "same":
            kw["padding"] = 2
        x = rng.standard_normal(x_shape).astype(dtype)
        expected = reference.im2col(x, w_shape[2:], **kw)
        out = into(expected, into_out)
        cols = returned(fastconv.im2col(x, w_shape[2:], **kw, out=out), out)
        np.testing.assert_array_equal(cols, expected)
        kw.pop("padding_mode", None)
        expected = reference.col2im(cols, x_shape, w_shape[2:], **kw)
        out = into(expected, into_out)
        back = returned(fastconv.col2im(cols, x_shape, w_shape[2:], **kw, out=out), out)
        rtol, atol = tolerance(dtype)
        np.testing.assert_allclose(back, expected, rtol=rtol, atol=atol)
        assert back.dtype == cols.dtype == dtype and back.flags.c_contiguous


def test_pools_and_columns_plan_once_and_refuse_what_they_refused(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    for _ in range(2):
        fastconv.max_pool2d(x, 2, ceil_mode=True)
        pooled = fastconv.avg_pool2d(x, 2, ceil_mode=True)
        fastconv.avg_pool2d_backward(pooled, x.shape, 2, ceil_mode=True)
        pooled, indices = fastconv.max_pool2d(x, 2, return_indices=True)
        fastconv.max_pool2d_backward(pooled, indices, x.shape)
        cols = fastconv.im2col(x, 3, padding=1)
        fastconv.col2im(cols, x.shape, 3, padding=1)
    assert all(len(cache) == 1 for cache in (_pool._AVG_POOL_PLANS, _pool._AVG_POOL_BACKWARD_PLANS,
                                             _pool._MAX_POOL_BACKWARD_PLANS, _im2col._IM2COL_PLANS,
                                             _im2col._COL2IM_PLANS))
    assert len(_pool._MAX_POOL_PLANS) == 2  # with and without indices
    with pytest.raises(ValueError, match="out-of-range"):
        fastconv.max_pool2d_backward(pooled, indices + 36, x.shape)  # the values: counted by the kernel
    with pytest.raises(ValueError):
        fastconv.max_pool2d_backward(pooled, indices, (2, 3, 6, 5))
    with pytest.raises(ValueError, match="layout"):
        fastconv.max_pool2d_backward(pooled, indices, x.shape, layout="NHCW")
    pooled = fastconv.avg_pool2d(x, 2, ceil_mode=True)
    with pytest.raises(TypeError):
        fastconv.avg_pool2d_backward(pooled, x.shape, 2, ceil_mode=1)
    with pytest.raises(ValueError):
        fastconv.avg_pool2d_backward(pooled[:, :, :2], x.shape, 2, ceil_mode=True)  # not the pooled shape
    with pytest.raises(TypeError):
        fastconv.max_pool2d(x, 2, ceil_mode=1)
    with pytest.raises(TypeError):
        fastconv.avg_pool2d(x, 2, ceil_mode=1)
    with pytest.raises(TypeError):
        fastconv.im2col(x, 3, padding=True)
    with pytest.raises(ValueError):
        fastconv.col2im(cols, (2, 3, 6, 5), 3, padding=1)
    values = fastconv.max_pool2d(x, 2)
    np.testing.assert_array_equal(fastconv.max_pool2d(x, 2, out=np.empty_like(values)), values)


# ---- calls into an out=

def _calls_into_out(rng):
    """(name, call taking ``out=``) of every planned function, float32, on small NCHW arrays."""
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    grad = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    cols = rng.standard_normal((2 * 6 * 5, 27)).astype(np.float32)
    pooled = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)  # avg_pool2d(x, 3, stride=2, padding=1)
    b3 = rng.standard_normal(3).astype(np.float32)
    indices = fastconv.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)[1]
    indices_nhwc = fastconv.max_pool2d(x[0].transpose(1, 2, 0).copy(), 3, stride=2, padding=1,
                                       return_indices=True, layout="NHWC")[1]
    geo = dict(stride=2, padding=1)
    x_nhwc, w_hwio = x.transpose(0, 2, 3, 1).copy(), w.transpose(2, 3, 1, 0).copy()
    grad_nhwc = grad.transpose(0, 2, 3, 1).copy()
    return [
        ("conv2d", lambda out=None: fastconv.conv2d(x, w, b, **geo, out=out)),
        ("conv2d unbatched", lambda out=None: fastconv.conv2d(x[0], w, padding=1, out=out)),
        ("conv2d NHWC", lambda out=None: fastconv.conv2d(x_nhwc, w_hwio, b, **geo, layout="NHWC", out=out)),
        ("conv2d NHWC unbatched", lambda out=None: fastconv.conv2d(x_nhwc[1], w_hwio, padding=1, layout="NHWC",
                                                                   out=out)),
        ("conv2d_grad_input", lambda out=None: fastconv.conv2d_grad_input(grad, w, x.shape, **geo, out=out)),
        ("conv2d_grad_weight", lambda out=None: fastconv.conv2d_grad_weight(grad, x, w.shape, **geo, out=out)),
        ("conv_transpose2d", lambda out=None: fastconv.conv_transpose2d(grad, w, b3, **geo, output_padding=1,
                                                                        out=out)),
        ("conv_transpose2d unbatched", lambda out=None: fastconv.conv_transpose2d(grad[0], w, **geo, out=out)),
        ("conv2d_grad_input NHWC", lambda out=None: fastconv.conv2d_grad_input(
            grad_nhwc, w_hwio, x_nhwc.shape, **geo, layout="NHWC", out=out)),
        ("conv2d_grad_weight NHWC", lambda out=None: fastconv.conv2d_grad_weight(
            grad_nhwc, x_nhwc, w_hwio.shape, **geo, layout="NHWC", out=out)),
        ("conv_transpose2d NHWC", lambda out=None: fastconv.conv_transpose2d(
            grad_nhwc, w_hwio, b3, **geo, output_padding=1, layout="NHWC", out=out)),
        ("im2col", lambda out=None: fastconv.im2col(x, 3, padding=1, out=out)),
        ("im2col unbatched", lambda out=None: fastconv.im2col(x[1], 3, stride=2, out=out)),
        ("col2im", lambda out=None: fastconv.col2im(cols, x.shape, 3, padding=1, out=out)),
        ("max_pool2d", lambda out=None: fastconv.max_pool2d(x, 2, ceil_mode=True, out=out)),
        ("avg_pool2d", lambda out=None: fastconv.avg_pool2d(x, 3, stride=2, padding=1, out=out)),
        ("avg_pool2d_backward", lambda out=None: fastconv.avg_pool2d_backward(pooled, x.shape, 3, stride=2, padding=1,
                                                                              out=out)),
        ("avg_pool2d_backward unbatched", lambda out=None: fastconv.avg_pool2d_backward(
            pooled[1], x.shape[1:], 3, stride=2, padding=1, count_include_pad=False, out=out)),
        ("max_pool2d_backward", lambda out=None: fastconv.max_pool2d_backward(pooled, indices, x.shape, out=out)),
        ("max_pool2d_backward unbatched NHWC", lambda out=None: fastconv.max_pool2d_backward(
            pooled[0].transpose(1, 2, 0).copy(), indices_nhwc, (6, 5, 3), layout="NHWC", out=out)),
    ]


def test_calls_into_an_out_are_planned_and_give_the_same_bits(rng, monkeypatch):
    """A repeated out= call skips validation (a plan of its own) and writes what a new result holds."""
    calls = _calls_into_out(rng)
    planned = sum(len(cache) for cache in _plans._CACHES)  # (the pools that made the indices)
    expected = {name: call() for name, call in calls}
    assert sum(len(cache) for cache in _plans._CACHES) == planned + len(calls)
    for name, call in calls:
        out = np.full_like(expected[name], np.nan)
        assert call(out) is out, name
        np.testing.assert_array_equal(out, expected[name], err_msg=name)
    assert sum(len(cache) for cache in _plans._CACHES) == planned + 2 * len(calls)
    # every later call into an out of the same signature is planned: validation would now raise
    for module in (_conv, _conv_grad, _im2col, _pool):
        for attr in dir(module):
            if attr.startswith("prepare_"):
                monkeypatch.setattr(module, attr, lambda *a, **k: pytest.fail("an out= call was not planned"))
    for name, call in calls:
        out = np.full_like(expected[name], np.nan)
        assert call(out) is out, name
        np.testing.assert_array_equal(out, expected[name], err_msg=name)


def test_an_out_overlapping_an_input_is_not_planned(rng):
    """The full path copies an input its out= overlaps; a plan of the same signature must not run.

    col2im zeroes its out before it sums into it: run on an out that shares the
    columns' memory, it would sum zeros.
    """
    cols_shape, image_shape = (9, 8), (1, 2, 4, 4)
    fastconv.col2im(np.ones(cols_shape, np.float32), image_shape, 2, out=np.empty(image_shape, np.float32))
    assert len(_im2col._COL2IM_PLANS) == 1
    memory = rng.standard_normal(72).astype(np.float32)
    cols, out = memory.reshape(cols_shape), memory[:32].reshape(image_shape)
    expected = reference.col2im(cols.copy(), image_shape, 2)
    assert fastconv.col2im(cols, image_shape, 2, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_an_out_is_refused_after_a_plan_as_before(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    out = np.empty((2, 3, 3, 3), np.float32)
    fastconv.max_pool2d(x, 2, out=out)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastconv.max_pool2d(x, 2, out=out)
    with pytest.raises(ValueError):
        fastconv.max_pool2d(x, 2, out=np.empty((2, 3, 3, 3), np.float64))
    with pytest.raises(ValueError):
        fastconv.max_pool2d(x, 2, out=np.empty((2, 3, 3, 2), np.float32))


# ---- the weight packer the plans run

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, groups, block", [(2, 1, 8), (16, 1, 8), (33, 1, 32), (12, 3, 8), (8, 8, 8)])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("cg, taps", [(3, 5), (150, 1), (70, 2), (20, 9)])  # parts of 64, 32 and 8 channels
def test_pack_weights_matches_numpy(rng, dtype, k, groups, block, with_bias, cg, taps):
    w = rng.standard_normal((k, cg, taps)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype) if with_bias else None
    kg = k // groups
    blocks = -(-kg // block)
    expected = np.zeros((groups, blocks * block, cg, taps), dtype)
    expected[:, :kg] = w.reshape(groups, kg, cg, taps)
    expected = expected.reshape(groups, blocks, block, cg, taps).transpose(0, 1, 3, 4, 2).reshape(-1)
    expected_b = np.zeros((groups, blocks * block), dtype)
    if with_bias:
        expected_b[:, :kg] = b.reshape(groups, kg)
    got, got_b = np.full(expected.size, np.nan, dtype), np.full(expected_b.size, np.nan, dtype)
    for threads in (1, 2):
        _conv_direct.pack_weights(w, b, got, got_b, groups, block, threads)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(got_b, expected_b.reshape(-1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, groups, block", [(2, 1, 8), (16, 1, 8), (33, 1, 32), (12, 3, 8), (8, 8, 8)])
@pytest.mark.parametrize("cg, taps", [(3, 5), (150, 1), (70, 2), (20, 9)])
@pytest.mark.parametrize("check_finite", [False, True])
def test_pack_weights_packs_an_hwio_weight_as_its_oihw_copy(rng, dtype, k, groups, block, cg, taps, check_finite):
    """An HWIO ``(taps, cg, K)`` weight read in place packs as its OIHW copy does, bit for bit."""
    hwio = rng.standard_normal((taps, cg, k)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    oihw = np.ascontiguousarray(hwio.transpose(2, 1, 0))
    size = groups * -(-(k // groups) // block) * block
    hwio_taps = np.arange(taps, dtype=np.intp) * cg * k
    for threads in (1, 2):
        expected, expected_b = np.full(size * cg * taps, np.nan, dtype), np.full(size, np.nan, dtype)
        got, got_b = np.full(expected.size, np.nan, dtype), np.full(size, np.nan, dtype)
        finite = _conv_direct.pack_weights(oihw, b, expected, expected_b, groups, block, threads, None, check_finite)
        assert _conv_direct.pack_weights(hwio, b, got, got_b, groups, block, threads, None, check_finite,
                                         hwio_taps) == finite
        assert got.tobytes() == expected.tobytes() and got_b.tobytes() == expected_b.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, cg, groups", [(8, 3, 1), (16, 20, 1), (12, 4, 2), (33, 70, 1)])
@pytest.mark.parametrize("forward_taps", [[8, 7, 6, 5, 4, 3, 2, 1, 0], [8, 6, 2, 0], [4]])
def test_pack_weights_packs_an_hwio_adjoint_as_the_oihw_ones(rng, dtype, k, cg, groups, forward_taps):
    """The adjoint of an HWIO weight, read in place, packs as the adjoint of its OIHW copy."""
    hwio = rng.standard_normal((9, cg, k)).astype(dtype)  # a 3x3 kernel's
    oihw = np.ascontiguousarray(hwio.transpose(2, 1, 0))
    adjoint_taps = np.array(forward_taps, np.intp)
    size = groups * -(-cg // 8) * 8 * (k // groups) * len(forward_taps)
    for threads in (1, 2):
        expected, got = np.full(size, np.nan, dtype), np.full(size, np.nan, dtype)
        bias, got_bias = np.empty(groups * -(-cg // 8) * 8, dtype), np.empty(groups * -(-cg // 8) * 8, dtype)
        _conv_direct.pack_weights(oihw, None, expected, bias, groups, 8, threads, adjoint_taps)
        _conv_direct.pack_weights(hwio, None, got, got_bias, groups, 8, threads, adjoint_taps, False,
                                  adjoint_taps * cg * k)
        assert got.tobytes() == expected.tobytes()


def test_pack_weights_refuses_hwio_taps_that_are_not_the_weights():
    hwio = np.zeros((9, 4, 16), np.float32)
    packed, bias = np.empty(16 * 4 * 9, np.float32), np.empty(16, np.float32)
    taps = np.arange(9, dtype=np.intp) * 64
    _conv_direct.pack_weights(hwio, None, packed, bias, 1, 8, 1, None, False, taps)
    for bad in (taps[:8], taps + 1, taps * 2, np.arange(9, dtype=np.intp)):
        with pytest.raises(ValueError, match="HWIO"):
            _conv_direct.pack_weights(hwio, None, packed, bias, 1, 8, 1, None, False, bad)
    reversed_taps = np.arange(9, dtype=np.intp)[::-1].copy()
    with pytest.raises(ValueError, match="HWIO"):  # (an adjoint's offsets are its forward taps')
        _conv_direct.pack_weights(hwio, None, np.empty(8 * 16 * 9, np.float32), np.empty(8, np.float32), 1, 8, 1,
                                  reversed_taps, False, taps)


def test_pack_weights_refuses_wrong_sizes():
    w = np.zeros((4, 2, 3), np.float32)
    with pytest.raises(ValueError, match="wrong size"):
        _conv_direct.pack_weights(w, None, np.zeros(8 * 6 - 1, np.float32), np.zeros(8, np.float32), 1, 8, 1)
    with pytest.raises(ValueError, match="wrong size"):
        _conv_direct.pack_weights(w, None, np.zeros(8 * 6, np.float32), np.zeros(7, np.float32), 1, 8, 1)
    with pytest.raises(ValueError, match="bias"):
        _conv_direct.pack_weights(w, np.zeros(3, np.float32), np.zeros(8 * 6, np.float32),
                                  np.zeros(8, np.float32), 1, 8, 1)
    with pytest.raises(ValueError, match="divide"):
        _conv_direct.pack_weights(w, None, np.zeros(8 * 6, np.float32), np.zeros(8, np.float32), 3, 8, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, cg, groups, block", [(4, 3, 1, 8), (16, 20, 1, 8), (6, 33, 1, 16), (12, 6, 3, 8),
                                                  (8, 8, 8, 8), (10, 4, 2, 32)])
@pytest.mark.parametrize("forward_taps", [[8, 7, 6, 5, 4, 3, 2, 1, 0], [8, 6, 2, 0], [4], [5, 3]])
def test_pack_weights_packs_the_adjoint_as_its_copy(rng, dtype, k, cg, groups, block, forward_taps):
    # an input gradient's tiles read the adjoint's weights from the forward (K, cg, 9) weight: what
    # they pack is what packing the transposed copy of the taps it names would give, bit for bit
    w = rng.standard_normal((k, cg, 9)).astype(dtype)
    taps = np.array(forward_taps, np.intp)
    kg = k // groups
    adjoint = np.ascontiguousarray(w.reshape(groups, kg, cg, 9).transpose(0, 2, 1, 3)[..., taps]
                                   .reshape(groups * cg, kg, len(taps)))
    size = groups * -(-cg // block) * block
    expected, expected_b = np.full(size * kg * len(taps), np.nan, dtype), np.full(size, np.nan, dtype)
    _conv_direct.pack_weights(adjoint, None, expected, expected_b, groups, block, 1)
    for threads in (1, 2):
        got, got_b = np.full(expected.size, np.nan, dtype), np.full(size, np.nan, dtype)
        _conv_direct.pack_weights(w, None, got, got_b, groups, block, threads, taps)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(got_b, expected_b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, cg", [(4, 3), (16, 20), (40, 8), (33, 64), (100, 70), (9, 200)])
def test_pack_weights_packs_a_1x1_adjoint_as_its_copy(rng, dtype, k, cg):
    # the adjoint of a 1x1 kernel (a block's run of 8 weights a row of the forward weight) is
    # packed row by row, its whole blocks shared among the threads, a last part block as any:
    # what packing the transposed copy gives, bias included, for any thread count
    w = rng.standard_normal((k, cg, 1)).astype(dtype)
    b = rng.standard_normal(cg).astype(dtype)
    taps = np.array([0], np.intp)
    adjoint = np.ascontiguousarray(w.transpose(1, 0, 2))
    size = -(-cg // 8) * 8
    expected, expected_b = np.full(size * k, np.nan, dtype), np.full(size, np.nan, dtype)
    _conv_direct.pack_weights(adjoint, b, expected, expected_b, 1, 8, 1)
    for threads in (1, 2, 3, 5):
        got, got_b = np.full(expected.size, np.nan, dtype), np.full(size, np.nan, dtype)
        _conv_direct.pack_weights(w, b, got, got_b, 1, 8, threads, taps)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(got_b, expected_b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, cg, taps, groups, block", [(8, 3, 5, 1, 8), (30, 2, 9, 1, 32), (12, 6, 9, 3, 8),
                                                        (33, 4, 3, 1, 32), (5, 1, 1, 1, 16), (6, 70, 1, 1, 8)])
def test_pack_weights_finds_every_weight_that_is_not_finite(rng, dtype, k, cg, taps, groups, block):
    # the check runs in the copy's registers (4 rows of 4 float32 a step, 2 x 2 float64), in the
    # copy's scalar tails (runs not a multiple of the vector, rows past the last 4) and in the
    # channels copied item by item: a spoiled weight anywhere says so; the extremes of finite do not
    w = rng.standard_normal((k, cg, taps)).astype(dtype)
    info = np.finfo(dtype)
    w.flat[:4] = info.max, -info.max, info.smallest_subnormal, -0.0
    size = groups * -(-(k // groups) // block) * block
    expected, bias = np.empty(size * cg * taps, dtype), np.empty(size, dtype)
    _conv_direct.pack_weights(w, None, expected, bias, groups, block, 1)
    got = np.empty_like(expected)
    assert _conv_direct.pack_weights(w, None, got, bias, groups, block, 2, None, True) is True
    np.testing.assert_array_equal(got, expected)
    for i in range(w.size):
        spoiled = w.copy()
        spoiled.flat[i] = (np.inf, -np.inf, np.nan)[i % 3]
        _conv_direct.pack_weights(spoiled, None, expected, bias, groups, block, 1)
        assert _conv_direct.pack_weights(spoiled, None, got, bias, groups, block, 1 + i % 2, None, True) is False, i
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adjoint_packing_checks_only_the_taps_it_reads(rng, dtype):
    w = rng.standard_normal((10, 4, 9)).astype(dtype)  # its adjoint: (4, 10, len(taps)), copied item by item
    taps = np.array([8, 6, 2, 0], np.intp)
    packed, bias = np.empty(8 * 10 * 4, dtype), np.empty(8, dtype)
    for i in range(w.size):
        spoiled = w.copy()
        spoiled.flat[i] = np.nan
        read = i % 9 in taps
        assert _conv_direct.pack_weights(spoiled, None, packed, bias, 1, 8, 1, taps, True) is not read, i


def test_adjoint_packing_refuses_taps_and_groups_that_do_not_fit():
    w = np.zeros((4, 2, 9), np.float32)  # the adjoint of one group: (2, 4, taps)
    packed, bias = np.zeros(8 * 4 * 2, np.float32), np.zeros(8, np.float32)
    _conv_direct.pack_weights(w, None, packed, bias, 1, 8, 1, np.array([8, 0], np.intp))
    for taps in ([9, 0], [0, -1]):  # (each would read outside the weight)
        with pytest.raises(ValueError, match="not a tap of the weight"):
            _conv_direct.pack_weights(w, None, packed, bias, 1, 8, 1, np.array(taps, np.intp))
    with pytest.raises(ValueError, match="divide"):
        _conv_direct.pack_weights(w, None, packed, bias, 3, 8, 1, np.array([8, 0], np.intp))
    with pytest.raises(ValueError, match="wrong size"):  # 3 taps: a larger packing
        _conv_direct.pack_weights(w, None, packed, bias, 1, 8, 1, np.array([8, 4, 0], np.intp))
    # conv2d_packed: the adjoint's output channels, input channels per group and taps must be its own
    x, out = np.zeros((1, 4, 6, 6), np.float32), np.zeros((1, 2, 4, 4), np.float32)
    kernel_taps = np.zeros(2, np.intp)
    args = (0, 0, 1, 1, 4, 6, 6, kernel_taps, 1, -1)
    _conv_direct.conv2d_packed(x, w.reshape(4, 2, 3, 3), None, out, 1, 4, *args, np.array([8, 0], np.intp))
    with pytest.raises(ValueError, match="adjoint"):  # one tap where the kernel has two
        _conv_direct.conv2d_packed(x, w.reshape(4, 2, 3, 3), None, out, 1, 4, *args, np.array([8], np.intp))
    with pytest.raises(ValueError, match="adjoint"):  # 3 input channels per group where the weight has 4 filters
        _conv_direct.conv2d_packed(x[:, :3], w.reshape(4, 2, 3, 3), None, out, 1, 3, *args,
                                   np.array([8, 0], np.intp))
    with pytest.raises(ValueError, match="adjoint"):  # 3 output channels: the weight's 2 inputs per group
        _conv_direct.conv2d_packed(x, w.reshape(4, 2, 3, 3), None, np.zeros((1, 3, 4, 4), np.float32), 1, 4,
                                   *args, np.array([8, 0], np.intp))


def test_packed_kernels_refuse_an_input_that_does_not_match_out():
    taps = np.zeros(9, np.intp)
    w, b = np.zeros((8, 2, 3, 3), np.float32), np.zeros(8, np.float32)
    out = np.zeros((2, 8, 4, 4), np.float32)
    for x in (np.zeros((1, 2, 6, 6), np.float32), np.zeros((2, 3, 6, 6), np.float32)):
        with pytest.raises(ValueError, match="x must have"):
            _conv_direct.conv2d_packed(x, w, b, out, 1, 2, 0, 0, 1, 1, 4, 6, 6, taps, 1)
    dw_out = np.zeros((2, 8, 4, 4), np.float32)
    with pytest.raises(ValueError, match="same images and channels"):
        _conv_direct.conv2d_depthwise_packed(np.zeros((2, 7, 6, 6), np.float32), np.zeros(72, np.float32), b,
                                             dw_out, 0, 0, 1, 1, 6, 6, taps, 1)
    with pytest.raises(ValueError, match="blocks of 8"):
        _conv_direct.conv2d_depthwise_packed(np.zeros((2, 8, 6, 6), np.float32), np.zeros(71, np.float32), b,
                                             dw_out, 0, 0, 1, 1, 6, 6, taps, 1)


def test_planned_calls_take_read_only_inputs(rng):
    """Arrays NumPy cannot write (a bytes buffer) are planned too: the kernels only read them."""
    def read_only(a):
        return np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape)

    x = read_only(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    w = read_only(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    assert not x.flags.writeable
    for _ in range(2):  # plan, then use the plan
        y = fastconv.conv2d(x, w, padding=1)
        np.testing.assert_allclose(y, reference.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)
        g = read_only(y)
        np.testing.assert_allclose(fastconv.conv2d_grad_input(g, w, x.shape, padding=1),
                                   reference.conv2d_grad_input(g, w, x.shape, padding=1), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(fastconv.conv2d_grad_weight(g, x, w.shape, padding=1),
                                   reference.conv2d_grad_weight(g, x, w.shape, padding=1), rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(fastconv.max_pool2d(x, 2), reference.max_pool2d(x, 2))
        np.testing.assert_allclose(fastconv.avg_pool2d(x, 2), reference.avg_pool2d(x, 2), rtol=1e-6)
        cols = read_only(fastconv.im2col(x, 3, padding=1))
        np.testing.assert_array_equal(cols, reference.im2col(x, 3, padding=1))
        np.testing.assert_allclose(fastconv.col2im(cols, x.shape, 3, padding=1),
                                   reference.col2im(cols, x.shape, 3, padding=1), rtol=1e-5, atol=1e-5)
    caches = (_conv._PLANS, _conv_grad._GRAD_INPUT_PLANS, _conv_grad._GRAD_WEIGHT_PLANS, _pool._MAX_POOL_PLANS,
              _pool._AVG_POOL_PLANS, _im2col._IM2COL_PLANS, _im2col._COL2IM_PLANS)
    assert [len(cache) for cache in caches] == [1] * len(caches)


def test_plans_call_the_kernels_specialization_for_their_dtype():
    # a fused def kernel dispatches on its buffers' types at every call; plans skip that by
    # calling the specialization of their dtype, which still checks the buffers it is given
    from fastconv._kernels import _col2im as col2im_kernels
    from fastconv._kernels import _im2col as im2col_kernels
    from fastconv._kernels import _pool as pool_kernels
    from fastconv._plans import specialized

    backward = pool_kernels.avg_pool2d_backward_nchw
    assert specialized(backward, np.float32) is backward["float"]
    assert specialized(backward, np.float64) is backward["double"]
    assert specialized(col2im_kernels.col2im_planar, np.uint16) is col2im_kernels.col2im_planar["uint16_t"]
    assert specialized(col2im_kernels.col2im_planar, np.uint32) is col2im_kernels.col2im_planar["uint32_t"]
    assert specialized(backward, np.complex64) is backward  # none: the kernel as it is
    assert specialized(pool_kernels.max_pool2d, np.float32) is pool_kernels.max_pool2d  # not fused
    assert specialized(im2col_kernels.im2col_planar, np.float32) is im2col_kernels.im2col_planar  # not fused
    kernel = specialized(col2im_kernels.col2im_planar, np.uint32)
    cols = np.zeros((1, 9), np.uint64)
    with pytest.raises(ValueError, match="[Bb]uffer dtype mismatch"):
        kernel(cols, np.zeros((1, 1, 3, 3), np.uint64), 3, 3, 1, 1, 1, 1, 0, 0, 1, 1, False, 1)
    plan = _im2col.FoldPlan(fastconv._geometry.conv_geometry((3, 3), 3, 1, 0, 1), 1, 1, False, np.float32)
    assert plan.planar_kernel is col2im_kernels.col2im_planar["float"]
