"""Coverage-guided fuzzing of fastconv's public API with atheris (libFuzzer for Python).

Every input is a byte string that this harness decodes into one call of a
public function: which function, the arrays (shape, dtype, values and memory
layout: contiguous, sliced, negative strides, Fortran, read-only,
byte-swapped, misaligned, nested lists) and every argument (``kernel_size``,
``stride``, ``padding`` in all its forms, ``dilation``, ``groups``, ``layout``,
``padding_mode``, ``ceil_mode``, ``output_padding``, ``out=`` of the right and
wrong shapes, bogus types...). Shapes are derived mostly consistently, so most
calls get past validation and reach the kernels; a few bytes perturb them.

The oracle (``fastconv.reference``) is called first on copies. Then:

* if it raised ValueError/TypeError/MemoryError, fastconv must raise the
  same kind (``MemoryError`` may stand for either side's allocation failure);
* otherwise fastconv must return an array of the same shape and dtype, equal
  to it (integers and bools exactly, floats within a dtype tolerance, NaNs
  where the oracle has them), and write ``out=`` in place when given one;
* fastconv must never modify its inputs (unless ``out`` aliases one of them).

Anything else -- another exception type, a mismatch, a modified input, a
crash -- is a finding. The Python layer of fastconv is instrumented
(``atheris.instrument_imports``) so that coverage of the validation code
guides the search.

Usage (normally through ``tools/run_fuzz.sh``)::

    python tools/fuzz.py CORPUS_DIR -max_total_time=600     # libFuzzer flags
    python tools/fuzz.py --show FILE...                      # decode inputs as Python calls
    python tools/fuzz.py FILE...                             # replay (a crash, a finding)

With ``FASTCONV_FUZZ_KEEP_GOING=1`` a finding that is a Python exception is
written to ``FASTCONV_FUZZ_ARTIFACTS`` (input bytes + description) and the
run goes on, deduplicated by function, exception type and failing line; the
summary at exit lists them and the process exits with status 3. Crashes
(signals, sanitizer reports) always stop the run, as libFuzzer does.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import traceback

import atheris
import numpy as np

# the test suite's tolerance for results summed in different orders: one definition for both
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))
from helpers import tolerance  # noqa: E402

with atheris.instrument_imports(include=["fastconv"]):
    import fastconv
    import fastconv._geometry
    import fastconv._threads
    from fastconv import reference

ALLOWED = (ValueError, TypeError, MemoryError)
MAX_ELEMENTS = 600  # per generated array: the fuzzer wants many small calls, not a few big ones

DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
          np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128]
# integers chosen to cross every boundary that a C index could trip on
SPECIAL_INTS = [-1, 0, 1, 2, 3, -2, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, -(2**63),
                -(2**31)]
LAYOUTS = ["NCHW", "NHWC"]
BOGUS = [None, 1.5, "3", b"x", object(), [], (), {}, True, np.float64(2.0), complex(1, 1), [[1, 2], [3]]]

FUNCTIONS = ["im2col", "col2im", "conv2d", "conv2d_grad_input", "conv2d_grad_weight", "conv_transpose2d",
             "max_pool2d", "avg_pool2d", "max_pool2d_backward", "avg_pool2d_backward", "conv_output_shape"]


class Gen:
    """Draws values from the fuzzer's bytes (a FuzzedDataProvider), recording a readable trace."""

    def __init__(self, data):
        self.fdp = atheris.FuzzedDataProvider(data)

    def int(self, lo, hi):
        return self.fdp.ConsumeIntInRange(lo, hi)

    def chance(self, percent):
        """True with roughly ``percent``% probability (exactly so for uniform bytes)."""
        return self.fdp.ConsumeIntInRange(0, 99) < percent

    def pick(self, items):
        return items[self.fdp.ConsumeIntInRange(0, len(items) - 1)]

    # ---- scalars and geometry arguments
    def small(self, lo=0, hi=4):
        """A small int, or now and then one of the boundary values."""
        if self.chance(4):
            return self.pick(SPECIAL_INTS)
        return self.int(lo, hi)

    def int_like(self, value):
        """The same integer as a Python int, a NumPy scalar or a 0-d array."""
        kind = self.int(0, 9)
        if kind == 7 and -(2**63) <= value < 2**63:
            return np.int64(value)
        if kind == 8 and 0 <= value < 2**32:
            return np.uint32(value)
        if kind == 9 and -(2**63) <= value < 2**63:
            return np.array(value)
        return value

    def pair_like(self, a, b):
        kind = self.int(0, 5)
        if kind == 3:
            return [a, b]
        if kind == 4 and all(-(2**63) <= v < 2**63 for v in (a, b)):
            return np.array([a, b])
        return (self.int_like(a), self.int_like(b))

    def geom(self, lo, hi, typical=None):
        """kernel_size / stride / dilation / output_padding: an int or a pair, sometimes malformed."""
        if typical is not None and self.chance(50):
            return typical
        form = self.int(0, 99)
        if form < 45:
            return self.int_like(self.small(lo, hi))
        if form < 88:
            return self.pair_like(self.small(lo, hi), self.small(lo, hi))
        if form < 92:
            return tuple(self.small(lo, hi) for _ in range(self.pick([0, 1, 3])))
        if form < 95:
            return ((self.small(lo, hi), self.small(lo, hi)), self.small(lo, hi))
        return self.pick(BOGUS)

    def padding(self, strings=True):
        form = self.int(0, 99)
        if form < 25:
            return self.int_like(self.small(0, 3))
        if form < 45:
            return self.pair_like(self.small(0, 3), self.small(0, 3))
        if form < 65:
            pairs = [self.pair_like(self.small(0, 3), self.small(0, 3)) for _ in range(2)]
            if self.chance(20):
                pairs[self.int(0, 1)] = self.small(0, 3)  # mixed: ((t, b), w)
            return tuple(pairs) if self.chance(80) else list(pairs)
        if form < 70:
            return np.array([[self.small(0, 3), self.small(0, 3)], [self.small(0, 3), self.small(0, 3)]])
        if form < 85 and strings:
            return self.pick(["same", "valid", "SAME", "Valid"])
        if form < 90:
            return self.pick(["full", "", "same ", "causal"])
        if form < 95:
            return self.pick([((1, 2, 3), 1), ((1,), (2,)), (1, 2, 3), (1,), (("1", 2), 0), (1.0, 2),
                              ((1, 2), (3, 4), (5, 6)), -1, (-1, 0), ((0, -1), 0), 2**63, 2**62])
        return self.pick(BOGUS)

    def layout(self):
        if self.chance(94):
            return self.pick(LAYOUTS)
        return self.pick(["nchw", "nhwc", "NCW", "NDHWC", "CHWN", "", None, 0, b"NCHW"])

    def flag(self):
        if self.chance(92):
            return self.chance(50)
        return self.pick([np.bool_(True), np.bool_(False), 0, 1, None, "True", 1.0])

    def groups(self, typical):
        if self.chance(70):
            return typical
        return self.pick([0, -1, 1, 2, 3, 4, 2**63, True, 1.0, "1", None, np.int64(2), np.array(1)])

    # ---- arrays
    def dims(self, shape):
        """``shape``, now and then with one axis changed, dropped or added."""
        shape = list(shape)
        if self.chance(6) and shape:
            shape[self.int(0, len(shape) - 1)] = self.int(0, 5)
        if self.chance(2) and shape:
            del shape[self.int(0, len(shape) - 1)]
        if self.chance(2):
            shape.insert(self.int(0, len(shape)), self.int(1, 2))
        return tuple(shape)

    def values(self, shape, dtype, special=True):
        """Values for ``dtype``: small exact numbers, sometimes extremes (and NaN/inf if ``special``)."""
        size = math.prod(shape)
        dtype = np.dtype(dtype)
        mode = self.int(0, 9)
        raw = np.array(self.fdp.ConsumeIntListInRange(size, -16, 16), np.int64)
        if raw.size < size:  # out of bytes: pad deterministically
            raw = np.resize(np.concatenate([raw, np.arange(1, 4)]), size)
        if dtype.kind == "b":
            a = raw > 0
        elif dtype.kind in "iu":
            if mode >= 8:  # the whole range: wrap-around must match the oracle
                info = np.iinfo(dtype)
                picks = np.array([info.min, info.max, 0, 1, info.max // 2 + 1], dtype=object)
                a = np.array([picks[v % 5] if v % 3 == 0 else v % 7 for v in raw], dtype=object).astype(dtype)
            else:
                a = raw.astype(dtype) if dtype.kind == "i" else (raw % 17).astype(dtype)
        else:
            a = (raw / 4).astype(dtype)  # multiples of 1/4: every sum is exact in every float dtype
            if special and mode >= 8 and size:
                specials = np.array([np.nan, np.inf, -np.inf, -0.0, 1e30]).astype(dtype)
                idx = raw % max(1, size)
                a.reshape(-1)[idx[: max(1, size // 4)]] = specials[raw[: max(1, size // 4)] % 5]
            if dtype.kind == "c":
                a = a + 1j * a[::-1].astype(dtype).real if size else a
        return a.reshape(shape)

    def array(self, shape, dtype=None, special=True, dtypes=DTYPES):
        """An array of ``shape`` (maybe perturbed) and a random memory layout; capped in size."""
        shape = tuple(int(s) for s in self.dims(shape))
        if math.prod(shape) > MAX_ELEMENTS or any(s < 0 or s > 64 for s in shape):  # (0, 2**40) too
            shape = tuple(max(0, min(s, 2)) for s in shape)
        if dtype is None or self.chance(8):
            dtype = self.pick(dtypes)
        a = self.values(shape, dtype, special)
        return self.memory(a)

    def memory(self, a):
        kind = self.int(0, 99)
        if kind < 45 or a.ndim == 0:
            return a
        if kind < 53:  # sliced: every other element of the last axis
            big = np.repeat(a, 2, axis=-1)
            return big[..., ::2]
        if kind < 60:  # negative strides
            return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
        if kind < 65:
            return np.asfortranarray(a)
        if kind < 72:
            ro = a.copy()
            ro.flags.writeable = False
            return ro
        if kind < 80 and a.dtype.itemsize > 1:
            return a.astype(a.dtype.newbyteorder())
        if kind < 86 and a.dtype.itemsize > 1:
            raw = np.zeros(a.nbytes + 1, np.uint8)
            unaligned = raw[1:].view(a.dtype).reshape(a.shape)
            unaligned[...] = a
            return unaligned
        if kind < 90:  # a broadcast view: zero strides, read-only
            return np.broadcast_to(a[..., :1], a.shape) if a.shape[-1] else a
        if kind < 95 and a.dtype.kind in "biuf" and a.dtype != np.longdouble:
            return a.tolist()
        if kind < 97:
            return np.asarray(a, dtype=object) if a.size else a
        return a.transpose()  # same values, transposed shape (a layout mix-up)

    def image_shape(self, layout, n=None, c=None, h=None, w=None):
        n = self.int(0, 3) if n is None else n
        c = self.int(0, 4) if c is None else c
        h = self.int(0, 7) if h is None else h
        w = self.int(0, 7) if w is None else w
        shape = (n, h, w, c) if layout == "NHWC" else (n, c, h, w)
        return shape if self.chance(80) else shape[1:]


# ---- out= arrays --------------------------------------------------------------------------------

OUT_MODES = ["none", "exact", "exact", "wrong-shape", "wrong-dtype", "strided", "fortran", "read-only", "list",
             "alias"]


def make_out(mode, shape, dtype, alias_candidates):
    """Materialize an ``out`` of ``mode`` for a result of ``shape`` and ``dtype``.

    Returns ``(out, valid)``: whether fastconv must accept it. ``alias`` picks an
    input array of exactly that shape and dtype (C-contiguous, writeable), if any.
    """
    dtype = np.dtype(dtype)
    if mode == "none":
        return None, True
    if mode == "exact":
        return _sentinel(shape, dtype), True
    if mode == "alias":  # an input itself, or a reshaped view of one (NumPy: the result is as if not)
        for a in alias_candidates:
            if (isinstance(a, np.ndarray) and a.size == math.prod(shape) and a.dtype == dtype
                    and a.flags.c_contiguous and a.flags.writeable):
                return (a if a.shape == tuple(shape) else a.reshape(shape)), True
        return _sentinel(shape, dtype), True
    if mode == "wrong-shape":
        return _sentinel(tuple(shape) + (1,), dtype), False
    if mode == "wrong-dtype":
        other = np.dtype(np.float32) if dtype != np.float32 else np.dtype(np.float64)
        return _sentinel(shape, other), False
    if mode == "strided":
        if len(shape) == 0 or math.prod(shape) <= 1:
            return _sentinel(shape, dtype), True  # a size-1 view is C-contiguous: valid
        big = _sentinel(tuple(shape[:-1]) + (2 * shape[-1],), dtype)
        return big[..., ::2], False
    if mode == "fortran":
        out = np.asfortranarray(_sentinel(shape, dtype))
        return out, bool(out.flags.c_contiguous)
    if mode == "read-only":
        out = _sentinel(shape, dtype)
        out.flags.writeable = False
        return out, False
    return _sentinel(shape, dtype).tolist(), False  # "list"


def _sentinel(shape, dtype):
    """A garbage-filled array, so a result that is not entirely written shows."""
    out = np.empty(shape, dtype)
    if out.dtype.kind in "fc":
        out.fill(7.125)
    elif out.dtype.kind == "b":
        out.fill(True)
    else:
        out.fill(77)
    return out


# ---- call construction ---------------------------------------------------------------------------


def _try_shape(fn, *args, **kwargs):
    """``fn(...)``'s result under the oracle, or None when it raises (or would take forever)."""
    if any(_huge(a) for a in args[1:]) or _huge(kwargs.get("padding")):
        return None
    try:
        res = fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - any failure just means "no consistent shape"
        return None
    return res


def _forward_shape(shape, layout, kernel, stride, padding, dilation, k_out=None, pool=False, ceil_mode=False,
                   cols=False):
    """Shape of a forward result (conv, pool, or im2col's columns with ``cols``), or None if invalid.

    From the geometry alone (``fastconv._geometry``): running the oracle just for a shape
    can take forever on a degenerate input (an empty batch with a huge output plane).
    """
    if len(shape) not in (3, 4) or layout not in LAYOUTS:
        return None
    cl = layout == "NHWC"
    batched = len(shape) == 4
    s = tuple(shape) if batched else (1,) + tuple(shape)
    spatial, c = (s[1:3], s[3]) if cl else (s[2:], s[1])
    try:
        geo = fastconv._geometry.conv_geometry(spatial, kernel, kernel if pool and stride is None else stride,
                                               padding, dilation, ceil_mode=bool(ceil_mode), pool=pool)
    except Exception:  # noqa: BLE001 - invalid geometry: no consistent shape
        return None
    if cols:
        return (s[0] * geo.out_size, c * geo.kernel_size)
    k = c if k_out is None else k_out
    out = (s[0], *geo.out_shape, k) if cl else (s[0], k, *geo.out_shape)
    return out if batched else out[1:]


def build_call(g):
    """Decode one call: ``(name, args, kwargs, out_spec)``; ``out_spec`` is a mode or a pair of modes."""
    name = g.pick(FUNCTIONS)
    layout = g.layout()
    cl = layout == "NHWC"
    kwargs = {"layout": layout}
    if name == "conv_output_shape":
        hw = tuple(g.small(0, 9) for _ in range(g.pick([2, 2, 2, 1, 3])))
        args = (hw if g.chance(95) else g.pick(BOGUS + [5]), g.geom(1, 4))
        kwargs = {"stride": g.geom(1, 3), "padding": g.padding(), "dilation": g.geom(1, 3)}
        return name, args, kwargs, "none"

    if name in ("im2col", "col2im"):
        shape = g.image_shape(layout)
        k = g.geom(1, 4)
        kwargs.update(stride=g.geom(1, 3, 1), padding=g.padding(), dilation=g.geom(1, 3, 1))
        if name == "im2col":
            if g.chance(40):
                kwargs["padding_mode"] = g.pick(["zeros", "reflect", "replicate", "circular", "ZEROS", "wrap"])
            return name, (g.array(shape), k), kwargs, g.pick(OUT_MODES)
        cols_shape = _forward_shape(shape, layout, k, kwargs["stride"], kwargs["padding"], kwargs["dilation"],
                                    cols=True) or (g.int(0, 9), g.int(0, 9))
        input_shape = shape if g.chance(90) else g.pick([list(shape), np.array(shape), shape[:2], 5,
                                                          tuple(float(s) for s in shape), (-1,) + shape[1:]])
        return name, (g.array(cols_shape), input_shape, k), kwargs, g.pick(OUT_MODES)

    if name in ("conv2d", "conv2d_grad_input", "conv2d_grad_weight", "conv_transpose2d"):
        groups_true = g.pick([1, 1, 1, 2, 3])
        c = groups_true * g.int(0, 3) if g.chance(90) else g.int(0, 5)
        kout = groups_true * g.int(0, 3) if g.chance(90) else g.int(0, 5)
        kh, kw = g.int(1, 3), g.int(1, 3)
        shape = g.image_shape(layout, c=c)
        groups = g.groups(groups_true)
        stride, dilation = g.geom(1, 3, 1), g.geom(1, 3, 1)
        kwargs.update(stride=stride, dilation=dilation, groups=groups)
        float_dtypes = [np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_]
        dtype = g.pick(float_dtypes)
        if name == "conv_transpose2d":
            cout_g = kout // groups_true
            w_shape = (kh, kw, cout_g, c) if cl else (c, cout_g, kh, kw)
            kwargs.update(padding=g.padding(strings=False) if g.chance(90) else g.padding(),
                          output_padding=g.geom(0, 2, 0))
            args = [g.array(shape, dtype, special=False), g.array(w_shape, dtype, special=False)]
            if g.chance(40):
                args.append(g.array((kout,), dtype, special=False))
            return name, tuple(args), kwargs, g.pick(OUT_MODES)
        w_shape = (kh, kw, c // max(groups_true, 1), kout) if cl else (kout, c // max(groups_true, 1), kh, kw)
        kwargs["padding"] = g.padding()
        if name == "conv2d":
            if g.chance(40):
                kwargs["padding_mode"] = g.pick(["zeros", "reflect", "replicate", "circular", "bogus"])
            kwargs["algorithm"] = g.pick(["auto", "direct", "im2col", "auto", "direct", "fft"])
            args = [g.array(shape, dtype, special=False), g.array(w_shape, dtype, special=False)]
            if g.chance(40):
                args.append(g.array((kout,), dtype, special=False))
            return name, tuple(args), kwargs, g.pick(OUT_MODES)
        grad_shape = _forward_shape(shape, layout, (kh, kw), stride, kwargs["padding"], dilation,
                                    k_out=kout) or g.image_shape(layout)
        grad = g.array(grad_shape, dtype, special=False)
        if name == "conv2d_grad_input":
            input_shape = shape if g.chance(92) else g.pick([list(shape), shape[1:], (-1,) + shape[1:], "abc",
                                                              tuple(s + 1 for s in shape)])
            return name, (grad, g.array(w_shape, dtype, special=False), input_shape), kwargs, g.pick(OUT_MODES)
        weight_shape = w_shape if g.chance(92) else g.pick([list(w_shape), w_shape[1:], (-1,) + w_shape[1:], 3,
                                                             tuple(s + 1 for s in w_shape)])
        return name, (grad, g.array(shape, dtype, special=False), weight_shape), kwargs, g.pick(OUT_MODES)

    # pools
    shape = g.image_shape(layout)
    k = g.geom(1, 3)
    stride = g.geom(1, 3, None) if g.chance(70) else None
    padding = g.padding()
    ceil_mode = g.flag()
    kwargs.update(stride=stride, padding=padding, ceil_mode=ceil_mode)
    if name == "max_pool2d":
        kwargs.update(dilation=g.geom(1, 3, 1), return_indices=g.flag())
        pool_dtypes = DTYPES
        out = (g.pick(OUT_MODES), g.pick(OUT_MODES)) if kwargs["return_indices"] is True and g.chance(40) \
            else g.pick(OUT_MODES)
        return name, (g.array(shape, dtypes=pool_dtypes), k), kwargs, out
    kwargs.update(count_include_pad=g.flag())
    if g.chance(20):
        kwargs["divisor_override"] = g.pick([None, 1, 2, 3, -2, 0, 2**63, 1.5, True, np.int32(3)])
    if name == "avg_pool2d":
        return name, (g.array(shape), k), kwargs, g.pick(OUT_MODES)
    if name == "avg_pool2d_backward":
        grad_shape = _forward_shape(shape, layout, k, stride, padding, 1, pool=True,
                                    ceil_mode=ceil_mode) or g.image_shape(layout)
        return name, (g.array(grad_shape), shape, k), kwargs, g.pick(OUT_MODES)
    # max_pool2d_backward: indices from the oracle's forward pool, sometimes corrupted
    dilation = g.geom(1, 3, 1)
    fwd = _try_shape(reference.max_pool2d, np.zeros(shape), k, stride=stride, padding=padding, dilation=dilation,
                     ceil_mode=ceil_mode, return_indices=True, layout=layout)
    if fwd is not None:
        indices = fwd[1]
    else:
        indices = g.values(g.image_shape(layout), np.int64)
    if indices.size and g.chance(30):
        flat = indices.reshape(-1).copy()
        h, w = (shape[-3], shape[-2]) if cl else (shape[-2], shape[-1])
        flat[g.int(0, flat.size - 1)] = g.pick([-1, -2, h * w, h * w - 1, 2**31, 2**40, -(2**63), 2**63 - 1])
        indices = flat.reshape(indices.shape)
    idx_dtype = g.pick([np.int64, np.int64, np.int32, np.int8, np.uint64, np.uint16, np.float64, np.bool_])
    with np.errstate(all="ignore"):
        indices = g.memory(indices.astype(idx_dtype))
    grad = g.array(indices.shape if isinstance(indices, np.ndarray) else np.shape(indices))
    return name, (grad, indices, shape), {"layout": layout}, g.pick(OUT_MODES)


# ---- comparison ----------------------------------------------------------------------------------


class Finding(AssertionError):
    """fastconv disagrees with the contract on one input."""


def _magnitude(args):
    """Product of the largest finite magnitudes of the array arguments (at least 1 each).

    Results are sums of products of input values: summed in another order (as the reference
    does), a float result can differ by a few ulps of the *terms*, which with cancellation
    (2**31 - 2**31 + 5) is far more than a few ulps of the result.
    """
    scale = 1.0
    for a in args:
        if isinstance(a, np.ndarray) and a.dtype.kind in "biuf" and a.size:
            with np.errstate(all="ignore"):
                finite = np.abs(a[np.isfinite(a)].astype(np.float64)) if a.dtype.kind == "f" else \
                    np.abs(a.astype(np.float64))
            scale *= max(1.0, float(finite.max())) if finite.size else 1.0
    return scale


def assert_same(fast, ref, what, scale=1.0):
    if not isinstance(fast, np.ndarray):
        raise Finding(f"{what}: fastconv returned {type(fast).__name__}, the reference an ndarray")
    if fast.shape != ref.shape or fast.dtype != ref.dtype:
        raise Finding(f"{what}: fastconv gave shape {fast.shape} dtype {fast.dtype}, "
                      f"the reference shape {ref.shape} dtype {ref.dtype}")
    rtol, atol = tolerance(ref.dtype)
    if rtol:  # a few hundred ulps of the largest term (see _magnitude)
        eps = float(np.finfo(ref.real.dtype if ref.dtype.kind == "c" else ref.dtype).eps)
        atol = max(atol, 256 * eps * scale)
    if rtol == 0:
        ok = np.array_equal(fast, ref)
    else:
        with np.errstate(all="ignore"):
            ok = np.allclose(fast, ref, rtol=rtol, atol=atol, equal_nan=True)
            # allclose treats inf == inf only with the same sign; NaN positions must agree
            ok = ok and np.array_equal(np.isnan(fast), np.isnan(ref))
    if not ok:
        with np.errstate(all="ignore"):
            bad = np.argwhere(~np.isclose(fast, ref, rtol=rtol, atol=atol, equal_nan=True)) if rtol else \
                np.argwhere(fast != ref)
        where = tuple(bad[0]) if len(bad) else "?"
        raise Finding(f"{what}: values differ from the reference ({len(bad)} entries, first at {where}: "
                      f"fastconv {fast[where] if len(bad) else '?'} vs reference {ref[where] if len(bad) else '?'})")


def _snapshot(args):
    """Copies of every ndarray argument, to check that fastconv leaves its inputs alone."""
    return [(i, a, a.copy(order="K")) for i, a in enumerate(args) if isinstance(a, np.ndarray)]


def _unchanged(a, copy):
    """True when ``a`` still holds what ``copy`` (taken before the call) holds."""
    if a.dtype != copy.dtype or a.shape != copy.shape:
        return False
    if a.dtype.kind == "O":  # object arrays: the same objects (NaN != NaN inside them)
        return all(p is q for p, q in zip(a.ravel(), copy.ravel()))
    return np.array_equal(a, copy, equal_nan=a.dtype.kind in "fc")


def _copy_args(args):
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


def _same_kind(fast_exc, ref_exc):
    if isinstance(fast_exc, MemoryError) or isinstance(ref_exc, MemoryError):
        return True
    return (isinstance(fast_exc, ValueError) and isinstance(ref_exc, ValueError)) or (
        isinstance(fast_exc, TypeError) and isinstance(ref_exc, TypeError))


def _outs(out_spec, results, alias_candidates):
    """fastconv's ``out`` (and whether it must be accepted) for the oracle's ``results``."""
    if isinstance(out_spec, tuple):  # max_pool2d(return_indices=True): (values, indices)
        pair, valid = [], True
        for mode, res in zip(out_spec, results):
            o, ok = make_out(mode, res.shape, res.dtype, alias_candidates)
            pair.append(o)
            valid &= ok
        if all(isinstance(o, np.ndarray) for o in pair) and np.shares_memory(*pair):
            valid = False  # the values and the indices cannot both go to one buffer
        return tuple(pair), valid
    first = results[0] if isinstance(results, tuple) else results
    out, valid = make_out(out_spec, first.shape, first.dtype, alias_candidates)
    if isinstance(results, tuple) and out is not None:
        return out, False  # a single array where (values, indices) is expected
    return out, valid


def _huge(value, limit=64):
    """True when an argument holds an integer above ``limit`` (at any depth)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return abs(int(value)) > limit
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu":
        return bool(value.size) and bool(np.any(np.abs(value.astype(object)) > limit))
    if isinstance(value, (tuple, list)):
        return any(_huge(v, limit) for v in value)
    return False


def check(name, args, kwargs, out_spec):
    """Run one call on the reference and on fastconv; raise Finding on any disagreement."""
    ref_fn, fast_fn = getattr(reference, name, None), getattr(fastconv, name)
    kernel = args[1] if name in ("im2col", "max_pool2d", "avg_pool2d") else \
        args[2] if name in ("col2im", "avg_pool2d_backward") else None
    if name == "conv_output_shape" or _huge(kernel) or _huge(kwargs.get("padding")):
        # no oracle: the reference loops over every tap of a window in Python, which never
        # ends for a 2**62-tap pooling window, and a huge padding gives even an empty batch
        # a huge (slow) output plane; fastconv must still fail cleanly or succeed
        try:
            fast_fn(*args, **kwargs)
        except ALLOWED:
            pass
        return
    ref_exc = ref = None
    if kwargs.get("algorithm", "auto") not in ("auto", "direct", "im2col"):
        # the reference ignores ``algorithm``: fastconv alone must refuse a bad one
        try:
            fast_fn(*args, **kwargs)
        except ValueError:
            return
        except TypeError:
            return
        raise Finding(f"fastconv.{name} accepted algorithm={kwargs['algorithm']!r}")
    try:
        ref = ref_fn(*_copy_args(args), **kwargs)
    except ALLOWED as exc:
        ref_exc = exc
    except Exception as exc:  # the oracle itself broke: its validation let something through
        raise Finding(f"reference.{name} raised {type(exc).__name__}: {exc}") from exc
    if isinstance(ref_exc, MemoryError):
        # the oracle's loops need more memory than fastconv: no verdict on this input
        try:
            fast_fn(*args, **kwargs)
        except ALLOWED:
            pass
        return
    if ref_exc is not None:
        out, valid = None, True
    else:
        try:
            out, valid = _outs(out_spec, ref, args)
        except MemoryError:  # the harness's own out (a nested list of a huge empty result): no verdict
            return
    outs = out if isinstance(out, tuple) else (out,)
    aliased = any(isinstance(o, np.ndarray) and isinstance(a, np.ndarray) and np.shares_memory(o, a)
                  for o in outs for a in args)
    before = _snapshot(args)
    fast_exc = None
    try:
        fast = fast_fn(*args, **kwargs, **({} if out is None else {"out": out}))
    except ALLOWED as exc:
        fast_exc = exc
    if not aliased:
        for i, a, copy in before:
            if not _unchanged(a, copy):
                raise Finding(f"fastconv.{name} modified its argument {i}")
    if ref_exc is not None:
        if fast_exc is None:
            raise Finding(f"reference raised {type(ref_exc).__name__} ({ref_exc}) but fastconv.{name} succeeded")
        if not _same_kind(fast_exc, ref_exc):
            raise Finding(f"fastconv raised {type(fast_exc).__name__} ({fast_exc}), the reference "
                          f"{type(ref_exc).__name__} ({ref_exc})")
        return
    if not valid:
        if fast_exc is None:
            raise Finding(f"fastconv.{name} accepted an invalid out= ({out_spec})")
        if not isinstance(fast_exc, (ValueError, MemoryError)):
            raise Finding(f"fastconv.{name} rejected an invalid out= with {type(fast_exc).__name__}, not ValueError")
        return
    if fast_exc is not None:
        if isinstance(fast_exc, MemoryError):
            return
        raise Finding(f"fastconv.{name} raised {type(fast_exc).__name__} ({fast_exc}) where the reference "
                      f"succeeded") from fast_exc
    if isinstance(ref, tuple):
        if not isinstance(fast, tuple) or len(fast) != len(ref):
            raise Finding(f"fastconv.{name} returned {type(fast).__name__}, the reference a {len(ref)}-tuple")
        for i, (f, r) in enumerate(zip(fast, ref)):
            assert_same(f, r, f"{name} result[{i}]", _magnitude(args))
            if isinstance(out, tuple) and out[i] is not None and f is not out[i]:
                raise Finding(f"fastconv.{name} did not return out[{i}]")
    else:
        assert_same(fast, ref, f"{name} result", _magnitude(args))
        if out is not None and fast is not out:
            raise Finding(f"fastconv.{name} did not return its out= array")


# ---- the fuzz target -----------------------------------------------------------------------------

SIMD_LEVELS = list(fastconv.simd_levels())
DEFAULT_GRAIN = fastconv._threads.GRAIN
KEEP_GOING = os.environ.get("FASTCONV_FUZZ_KEEP_GOING", "0") not in ("", "0")
ARTIFACTS = os.environ.get("FASTCONV_FUZZ_ARTIFACTS", ".")
_seen = {}


def decode(data):
    """Decode fuzzer bytes into ``(name, args, kwargs, out_spec, threads, grain, simd)``."""
    g = Gen(data)
    threads = g.pick([1, 2])
    grain = g.pick([DEFAULT_GRAIN, 1])  # 1: even tiny calls run parallel
    simd = g.pick(SIMD_LEVELS)
    with np.errstate(all="ignore"):
        call = build_call(g)
    return (*call, threads, grain, simd)


def run_one(data):
    name, args, kwargs, out_spec, threads, grain, simd = decode(data)
    fastconv.set_simd_level(simd)
    fastconv._threads.GRAIN = grain
    try:
        with fastconv.num_threads(threads), np.errstate(all="ignore"):
            check(name, args, kwargs, out_spec)
    finally:
        fastconv._threads.GRAIN = DEFAULT_GRAIN


def _signature(name, exc):
    """Function, exception type and the innermost fastconv (or harness) line: a finding's identity."""
    frames = traceback.extract_tb(exc.__traceback__)
    if exc.__cause__ is not None:
        frames = traceback.extract_tb(exc.__cause__.__traceback__) or frames
    inner = [f for f in frames if "fastconv" in f.filename] or frames
    where = f"{os.path.basename(inner[-1].filename)}:{inner[-1].lineno}" if inner else "?"
    kind = type(exc.__cause__ or exc).__name__
    return f"{name}|{kind}|{where}"


def TestOneInput(data):
    try:
        run_one(data)
    except Exception as exc:
        if not KEEP_GOING:
            raise
        try:
            name = decode(data)[0]
        except Exception:  # noqa: BLE001 - the harness itself failed on this input
            name = "decode"
        sig = _signature(name, exc)
        if sig in _seen:
            _seen[sig][0] += 1
            return
        digest = hashlib.sha1(data).hexdigest()[:16]
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, f"finding-{digest}")
        with open(path, "wb") as f:
            f.write(data)
        with open(path + ".txt", "w") as f:
            try:
                call = describe(data)
            except Exception as why:  # noqa: BLE001 - the harness failed to decode the input
                call = f"(cannot decode: {why!r})"
            f.write(f"{sig}\n{call}\n\n{''.join(traceback.format_exception(exc))}")
        _seen[sig] = [1, path]
        print(f"\n=== FINDING {sig} -> {path}\n{type(exc).__name__}: {str(exc)[:500]}", flush=True)


# ---- readable reproducers ------------------------------------------------------------------------


def _arr_repr(a):
    if not isinstance(a, np.ndarray):
        return repr(a)
    flags = []
    if not a.flags.c_contiguous:
        flags.append("non-contiguous")
    if not a.flags.writeable:
        flags.append("read-only")
    if not a.dtype.isnative:
        flags.append("byte-swapped")
    if not a.flags.aligned:
        flags.append("misaligned")
    note = f"  # {', '.join(flags)}" if flags else ""
    base = a.dtype.newbyteorder("=") if not a.dtype.isnative else a.dtype
    if a.size == 0:
        body = f"np.zeros({a.shape}, dtype=np.{base.name})"
    elif a.size <= 64:
        body = f"np.array({np.asarray(a).tolist()!r}, dtype=np.{base.name})"
        if a.ndim == 0 or a.shape[-1] == 0:
            body = f"np.array({np.asarray(a).tolist()!r}, dtype=np.{base.name}).reshape({a.shape})"
    else:
        body = f"np.ones({a.shape}, dtype=np.{base.name})"
    return body + note


def describe(data):
    name, args, kwargs, out_spec, threads, grain, simd = decode(data)
    lines = [f"# threads={threads} GRAIN={grain} simd={simd} out={out_spec}"]
    for i, a in enumerate(args):
        lines.append(f"arg{i} = {_arr_repr(a)}")
    lines.append(f"fastconv.{name}({', '.join(f'arg{i}' for i in range(len(args)))}, "
                 + ", ".join(f"{k}={_arr_repr(v)}" for k, v in kwargs.items()) + ")")
    return "\n".join(lines)


def _summary():
    if not _seen:
        print("fuzz: no Python-level findings (crashes and timeouts are reported by libFuzzer)", flush=True)
        return
    print(f"fuzz: {len(_seen)} distinct finding(s):", flush=True)
    for sig, (count, path) in sorted(_seen.items()):
        print(f"  {sig}  x{count}  {path}", flush=True)


def main(argv):
    if len(argv) > 1 and argv[1] == "--show":
        for path in argv[2:]:
            with open(path, "rb") as f:
                print(f"## {path}\n{describe(f.read())}\n")
        return 0
    import atexit
    import resource

    # a huge but valid allocation raises MemoryError instead of swapping; the limit stays below
    # run_fuzz.sh's -rss_limit_mb=4096, so such a call (im2col with a padding of 2**31 rows: a
    # 4.3 GB column matrix) fails cleanly instead of tripping libFuzzer's out-of-memory report
    limit_mb = int(os.environ.get("FASTCONV_FUZZ_RLIMIT_MB", "3072"))
    if limit_mb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, resource.RLIM_INFINITY))

    if KEEP_GOING:
        atexit.register(_summary)
        # libFuzzer leaves through exit(); make the summary's status visible to the shell
        atexit.register(lambda: sys.stdout.flush())
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
