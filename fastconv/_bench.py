"""Benchmark engine behind ``python -m fastconv bench`` and the asv suite.

fastconv is timed against :mod:`fastconv.reference` (pure NumPy) and, when it
is importable, PyTorch, in one process: fastconv and PyTorch in interleaved
("paired") repeats, the reference in repeats of its own after them.
Each row reports median times and speedups in the style of
``bottleneck.bench()``::

    speedup = other implementation's median time / fastconv's median time

so a speedup above 1 means fastconv is faster. Only NumPy is required; torch,
threadpoolctl and matplotlib are imported lazily and used when present.

The peers, on the canonical NCHW shapes of :data:`SHAPES` (SPEC section 5):

* im2col -- ``torch``: ``F.unfold`` + transpose + ``contiguous`` to fastconv's
  ``(N*OH*OW, C*KH*KW)`` layout; ``torch-own``: ``F.unfold`` alone, which
  returns torch's ``(N, C*KH*KW, OH*OW)`` layout.
* col2im -- ``torch``: ``F.fold`` of fastconv's columns (a transposed view);
  ``torch-own``: ``F.fold`` of contiguous ``(N, C*KH*KW, OH*OW)`` columns.
* im2col_out, col2im_out -- the same, every implementation writing into a
  buffer allocated once (fastconv's ``out=``; aten's ``im2col.out`` /
  ``col2im.out``, which is what ``unfold`` / ``fold`` call): no page of a
  fresh output to fault in. For im2col, ``torch`` writes its own layout
  into one buffer, then copies it transposed into another. No
  ``reference``: it has no ``out=``.
* conv2d -- ``torch``: ``F.conv2d`` (oneDNN), with the shape's ``groups``.
* grad_input, grad_weight -- ``torch``: ``torch.nn.grad.conv2d_input`` /
  ``conv2d_weight`` (aten's convolution backward), same geometry as conv2d.
* max_pool2d, avg_pool2d -- ``torch``: ``F.max_pool2d`` / ``F.avg_pool2d``
  over the shape's input with the common 2x2, stride-2 window
  (:data:`POOL_GEOMETRY`).
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import importlib
import io
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import (__version__, avg_pool2d, col2im, conv2d, conv2d_grad_input, conv2d_grad_weight,
               conv_output_shape, im2col, max_pool2d, num_threads, show_config)
from ._config import config_dict

__all__ = [
    "SHAPES",
    "OPS",
    "IMPLEMENTATIONS",
    "CONV2D_ALGORITHMS",
    "Case",
    "shape_dims",
    "make_case",
    "thread_limits",
    "paired_times",
    "speedup",
    "reference_too_slow",
    "measure_row",
    "thread_scaling",
    "summary",
    "memcpy_bandwidth",
    "gemm_gflops",
    "machine_info",
    "cpu_busy_fraction",
    "stolen_seconds",
    "add_arguments",
    "run",
]


def _dims(N, C, H, W, K, kernel, stride, pad, dilation, groups=1, layout=None):
    """A shape's dimensions; ``layout="NHWC"`` (convolutions only) adds a ``layout`` key."""
    dims = {"N": N, "C": C, "H": H, "W": W, "K": K, "kernel": kernel, "stride": stride,
            "pad": pad, "dilation": dilation, "groups": groups}
    if layout is not None:
        dims["layout"] = layout
    return dims


#: Operations a shape with ``"layout": "NHWC"`` can run (NHWC arrays, HWIO weights; torch's tensors
#: are the same memory as ``channels_last`` views).
NHWC_OPS = ("conv2d", "grad_input", "grad_weight")


#: The canonical shapes of SPEC section 5: name -> N, C, H, W, K, kernel, stride, pad, dilation, groups.
SHAPES = {
    "tiny": _dims(1, 3, 5, 5, 2, 3, 1, 0, 1),
    "cifar": _dims(64, 3, 32, 32, 16, 3, 1, 1, 1),
    "resnet-mid": _dims(32, 64, 56, 56, 64, 3, 1, 1, 1),
    "resnet-deep": _dims(32, 256, 14, 14, 256, 3, 1, 1, 1),
    "strided": _dims(16, 64, 112, 112, 64, 3, 2, 1, 1),
    "stem": _dims(8, 3, 224, 224, 64, 7, 2, 3, 1),
    "dilated": _dims(16, 32, 64, 64, 32, 3, 1, 2, 2),
    "depthwise": _dims(32, 128, 28, 28, 128, 3, 1, 1, 1, groups=128),
}

#: Operations benchmarked; the convolutions use the shape's ``groups`` (depthwise for "depthwise").
OPS = ("im2col", "im2col_out", "col2im", "col2im_out", "conv2d", "grad_input", "grad_weight",
       "max_pool2d", "avg_pool2d")

#: Operations with a ``torch-own`` column (torch in its own column layout).
OWN_LAYOUT_OPS = ("im2col", "im2col_out", "col2im", "col2im_out")

#: Operations whose implementations write into a buffer allocated once (no ``reference``).
INTO_BUFFER_OPS = ("im2col_out", "col2im_out")

#: Window of the pooling benchmarks: kernel_size, stride, padding.
POOL_GEOMETRY = {"kernel_size": 2, "stride": 2, "padding": 0}

#: Implementations, in column order. ``torch_own`` is torch in its own layout.
IMPLEMENTATIONS = ("fastconv", "reference", "torch", "torch_own")

#: Extra conv2d implementations :func:`make_case` provides on request: fastconv forced to one algorithm.
CONV2D_ALGORITHMS = {"fastconv_direct": "direct", "fastconv_im2col": "im2col"}

#: Column titles of the implementations.
TITLES = {"fastconv": "fastconv", "reference": "reference", "torch": "torch",
          "torch_own": "torch-own"}

#: Implementations slow enough to be estimated from a one-image call before being run in full.
ESTIMATED_FIRST = ("reference",)

#: ``--quick`` and the asv suite divide every canonical batch size by this (rounding up).
QUICK_BATCH_DIVISOR = 8


# ---------------------------------------------------------------------------
# Optional dependencies, imported on first use
# ---------------------------------------------------------------------------

def _optional(name):
    """Import and return module ``name``, or None when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _reference():
    """The pure-NumPy baseline :mod:`fastconv.reference`, or None if it is missing."""
    return _optional("fastconv.reference")


def _torch():
    """The ``torch`` module, or None when PyTorch is not installed."""
    return _optional("torch")


# ---------------------------------------------------------------------------
# Shapes and cases
# ---------------------------------------------------------------------------

def shape_dims(shape, batch=None, *, quick=False):
    """Dimensions of a benchmark shape, with the batch size possibly changed.

    Parameters
    ----------
    shape : str or dict
        A key of :data:`SHAPES`, or a dict with the same keys.
    batch : int, optional
        Batch size N to use instead of the shape's own.
    quick : bool, optional
        Divide N by :data:`QUICK_BATCH_DIVISOR` (rounding up), as ``--quick``
        and the asv suite do. Ignored when ``batch`` is given.

    Returns
    -------
    dict
        A new dict with keys N, C, H, W, K, kernel, stride, pad, dilation, groups.
    """
    if isinstance(shape, str):
        try:
            shape = SHAPES[shape]
        except KeyError:
            raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}") from None
    dims = dict(shape)
    if batch is not None:
        dims["N"] = int(batch)
    elif quick:
        dims["N"] = -(-dims["N"] // QUICK_BATCH_DIVISOR)
    return dims


@dataclass
class Case:
    """One benchmark: an operation on a shape, with its inputs bound to callables.

    Attributes
    ----------
    shape : str
        Shape name (or ``"custom"``).
    op : str
        One of :data:`OPS`.
    dims : dict
        The dimensions actually used (see :func:`shape_dims`).
    dtype : numpy.dtype
    impls : dict
        Implementation name -> zero-argument callable returning the result.
        Only implementations available here are present.
    work : float
        Bytes read + written (im2col, col2im, pooling) or floating-point
        operations (conv2d and its gradients).
    unit : str
        ``"GB/s"`` or ``"GFLOP/s"``: what ``work / seconds / 1e9`` is.
    """

    shape: str
    op: str
    dims: dict
    dtype: np.dtype
    impls: dict
    work: float
    unit: str

    def run(self, impl):
        """Call implementation ``impl`` once and return its result."""
        return self.impls[impl]()


def make_case(shape, op, dtype="float32", *, batch=None, quick=False, impls=IMPLEMENTATIONS,
              algorithm="auto", seed=0):
    """Build the inputs of one benchmark and bind each implementation to them.

    Parameters
    ----------
    shape : str or dict
        A key of :data:`SHAPES` or a dict of dimensions.
    op : str
        One of :data:`OPS`.
    dtype : str or numpy.dtype, optional
        Floating dtype of every array (default float32).
    batch, quick
        See :func:`shape_dims`.
    impls : sequence of str, optional
        Implementations wanted, from :data:`IMPLEMENTATIONS` and, for conv2d,
        :data:`CONV2D_ALGORITHMS`; those not importable here are left out.
    algorithm : {'auto', 'direct', 'im2col'}, optional
        ``algorithm=`` of :func:`fastconv.conv2d` for the ``fastconv`` implementation.
    seed : int, optional
        Seed of the random inputs.

    Returns
    -------
    Case
    """
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")
    dims = shape_dims(shape, batch, quick=quick)
    nhwc = dims.get("layout", "NCHW") == "NHWC"
    if nhwc and op not in NHWC_OPS:
        raise ValueError(f"NHWC shapes run {', '.join(NHWC_OPS)}, not {op!r}")
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    N, C, H, W, K = (dims[key] for key in "NCHWK")
    k, groups = dims["kernel"], dims["groups"]
    geo = {"stride": dims["stride"], "padding": dims["pad"], "dilation": dims["dilation"]}
    oh, ow = conv_output_shape((H, W), k, **geo).shape
    ckk, rows = C * k * k, N * oh * ow
    reference = _reference() if "reference" in impls else None
    torch = _torch() if {"torch", "torch_own"} & set(impls) else None
    if torch is not None:
        from torch.nn import functional as F
        tgeo = dict(geo, kernel_size=k)

    funcs = {}
    if op == "im2col":
        x = rng.standard_normal((N, C, H, W), dtype=dtype)
        funcs["fastconv"] = lambda: im2col(x, k, **geo)
        if reference is not None:
            funcs["reference"] = lambda: reference.im2col(x, k, **geo)
        if torch is not None:
            xt = torch.from_numpy(x)
            funcs["torch"] = lambda: F.unfold(xt, **tgeo).transpose(1, 2).contiguous().view(rows, ckk)
            funcs["torch_own"] = lambda: F.unfold(xt, **tgeo)
        work, unit = (x.size + rows * ckk) * dtype.itemsize, "GB/s"
    elif op == "im2col_out":
        x = rng.standard_normal((N, C, H, W), dtype=dtype)
        cols_out = np.empty((rows, ckk), dtype)
        funcs["fastconv"] = lambda: im2col(x, k, out=cols_out, **geo)
        if torch is not None:
            funcs.update(_torch_im2col_into_buffers(torch, torch.from_numpy(x), dims, oh * ow))
        work, unit = (x.size + rows * ckk) * dtype.itemsize, "GB/s"
    elif op in ("col2im", "col2im_out"):
        cols = rng.standard_normal((rows, ckk), dtype=dtype)
        image_shape = (N, C, H, W)
        if torch is not None:
            cols_t = torch.from_numpy(cols).view(N, oh * ow, ckk).transpose(1, 2)
            cols_own = cols_t.contiguous()
        if op == "col2im":
            funcs["fastconv"] = lambda: col2im(cols, image_shape, k, **geo)
            if reference is not None:
                funcs["reference"] = lambda: reference.col2im(cols, image_shape, k, **geo)
            if torch is not None:
                funcs["torch"] = lambda: F.fold(cols_t, (H, W), **tgeo)
                funcs["torch_own"] = lambda: F.fold(cols_own, (H, W), **tgeo)
        else:
            image_out = np.empty(image_shape, dtype)
            funcs["fastconv"] = lambda: col2im(cols, image_shape, k, out=image_out, **geo)
            if torch is not None:
                aten, geometry = torch.ops.aten, _aten_geometry(dims)
                image_t, image_own = (torch.empty(image_shape, dtype=cols_t.dtype) for _ in range(2))
                funcs["torch"] = lambda: aten.col2im.out(cols_t, [H, W], *geometry, out=image_t)
                funcs["torch_own"] = lambda: aten.col2im.out(cols_own, [H, W], *geometry, out=image_own)
        work, unit = (rows * ckk + N * C * H * W) * dtype.itemsize, "GB/s"
    elif op == "conv2d":
        x = rng.standard_normal((N, C, H, W), dtype=dtype)
        w = rng.standard_normal((K, C // groups, k, k), dtype=dtype)
        b = rng.standard_normal(K, dtype=dtype)
        if torch is not None:
            xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
        if nhwc:  # the same values: pixels' channels side by side, HWIO weights
            x, w, xt, wt, geo = _nhwc_arrays(x, w, torch, geo)
        funcs["fastconv"] = lambda: conv2d(x, w, b, groups=groups, algorithm=algorithm, **geo)
        for key, forced in CONV2D_ALGORITHMS.items():
            funcs[key] = lambda forced=forced: conv2d(x, w, b, groups=groups, algorithm=forced, **geo)
        if reference is not None:
            funcs["reference"] = lambda: reference.conv2d(x, w, b, groups=groups, **geo)
        if torch is not None:
            tgeo = {key: value for key, value in geo.items() if key != "layout"}
            funcs["torch"] = lambda: F.conv2d(xt, wt, bt, groups=groups, **tgeo)
        work, unit = 2.0 * N * K * oh * ow * (C // groups) * k * k, "GFLOP/s"
    elif op in ("grad_input", "grad_weight"):
        grad = rng.standard_normal((N, K, oh, ow), dtype=dtype)
        x_shape, w_shape = (N, C, H, W), (K, C // groups, k, k)
        tx_shape, tgeo = x_shape, dict(geo)
        if nhwc:
            x_shape, w_shape, geo = (N, H, W, C), (k, k, C // groups, K), dict(geo, layout="NHWC")
        if op == "grad_input":
            w = rng.standard_normal((K, C // groups, k, k), dtype=dtype)
            gt, wt = (torch.from_numpy(grad), torch.from_numpy(w)) if torch is not None else (None, None)
            if nhwc:
                grad, w, gt, wt, _ = _nhwc_arrays(grad, w, torch, geo)
            funcs["fastconv"] = lambda: conv2d_grad_input(grad, w, x_shape, groups=groups, **geo)
            if reference is not None:
                funcs["reference"] = lambda: reference.conv2d_grad_input(grad, w, x_shape, groups=groups, **geo)
            if torch is not None:
                funcs["torch"] = lambda: torch.nn.grad.conv2d_input(tx_shape, wt, gt, groups=groups, **tgeo)
        else:
            x = rng.standard_normal((N, C, H, W), dtype=dtype)
            gt, xt = (torch.from_numpy(grad), torch.from_numpy(x)) if torch is not None else (None, None)
            tw_shape = (K, C // groups, k, k)
            if nhwc:
                grad, _, gt, _, _ = _nhwc_arrays(grad, None, torch, geo)
                x, _, xt, _, _ = _nhwc_arrays(x, None, torch, geo)
            funcs["fastconv"] = lambda: conv2d_grad_weight(grad, x, w_shape, groups=groups, **geo)
            if reference is not None:
                funcs["reference"] = lambda: reference.conv2d_grad_weight(grad, x, w_shape, groups=groups, **geo)
            if torch is not None:
                funcs["torch"] = lambda: torch.nn.grad.conv2d_weight(xt, tw_shape, gt, groups=groups, **tgeo)
        work, unit = 2.0 * N * K * oh * ow * (C // groups) * k * k, "GFLOP/s"
    else:
        x = rng.standard_normal((N, C, H, W), dtype=dtype)
        fast_pool, name = (max_pool2d, "max_pool2d") if op == "max_pool2d" else (avg_pool2d, "avg_pool2d")
        funcs["fastconv"] = lambda: fast_pool(x, **POOL_GEOMETRY)
        if reference is not None:
            ref_pool = getattr(reference, name)
            funcs["reference"] = lambda: ref_pool(x, **POOL_GEOMETRY)
        if torch is not None:
            xt, torch_pool = torch.from_numpy(x), getattr(F, name)
            funcs["torch"] = lambda: torch_pool(xt, **POOL_GEOMETRY)
        ph, pw = conv_output_shape((H, W), **POOL_GEOMETRY).shape
        work, unit = (x.size + N * C * ph * pw) * dtype.itemsize, "GB/s"
    name = shape if isinstance(shape, str) else "custom"
    wanted = {key: funcs[key] for key in (*IMPLEMENTATIONS, *CONV2D_ALGORITHMS)
              if key in impls and key in funcs}
    return Case(name, op, dims, dtype, wanted, float(work), unit)


def _nhwc_arrays(a, w, torch, geo):
    """An NCHW array and OIHW weight (or None) as NHWC and HWIO copies, with torch's ``channels_last`` views.

    Returns ``(a, w, at, wt, geo)``: the NHWC array, the HWIO weight, torch's
    tensors of them (NCHW-shaped views of the same memory; None without
    torch) and ``geo`` with ``layout="NHWC"``.
    """
    a = np.ascontiguousarray(a.transpose(0, 2, 3, 1))
    at = wt = None
    if torch is not None:
        at = torch.from_numpy(a).permute(0, 3, 1, 2)
        if w is not None:
            wt = torch.from_numpy(w).contiguous(memory_format=torch.channels_last)
    if w is not None:
        w = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    return a, w, at, wt, dict(geo, layout="NHWC")


def _aten_geometry(dims):
    """kernel_size, dilation, padding and stride of a shape, as aten's im2col and col2im take them."""
    return [[dims[key]] * 2 for key in ("kernel", "dilation", "pad", "stride")]


def _torch_im2col_into_buffers(torch, xt, dims, pixels):
    """``torch`` and ``torch_own`` of ``im2col_out``: aten's ``im2col.out`` into a buffer allocated
    once, in PyTorch's ``(N, C*KH*KW, L)`` layout, then (``torch``) copied transposed into a
    second one, fastconv's layout."""
    aten, geometry = torch.ops.aten, _aten_geometry(dims)
    n, taps = xt.shape[0], xt.shape[1] * dims["kernel"] ** 2
    own = torch.empty((n, taps, pixels), dtype=xt.dtype)
    same = torch.empty((n, pixels, taps), dtype=xt.dtype)

    def own_layout():
        return aten.im2col.out(xt, *geometry, out=own)

    def same_layout():
        same.copy_(own_layout().transpose(1, 2))
        return same.view(n * pixels, taps)

    return {"torch": same_layout, "torch_own": own_layout}


def _as_numpy(result):
    return result.numpy() if hasattr(result, "numpy") else np.asarray(result)


def _agree(result, expected, dtype):
    """Whether two results match: shapes equal, values within the dtype's rounding."""
    a, b = _as_numpy(result), _as_numpy(expected)
    if a.shape != b.shape:
        return False
    tol = 1e-4 if dtype.itemsize <= 4 else 1e-10
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return bool(np.allclose(a, b, rtol=tol, atol=tol * max(1.0, scale)))


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def thread_limits(n):
    """Run fastconv, the BLAS (through threadpoolctl) and torch on ``n`` threads.

    Parameters
    ----------
    n : int
        Threads for every library inside the block.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(num_threads(n))
        threadpoolctl = _optional("threadpoolctl")
        if threadpoolctl is not None:
            stack.enter_context(threadpoolctl.threadpool_limits(limits=n, user_api="blas"))
        torch = sys.modules.get("torch")  # only a torch that is in use needs limiting
        if torch is not None:
            previous = torch.get_num_threads()
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, previous)
        yield n


#: A timed sample of a fast call loops over it until the sample lasts about this long.
MIN_SAMPLE_SECONDS = 2e-3


def _time_call(func, loops=1):
    """Seconds per call of ``func()`` over ``loops`` calls, and the last result.

    The last result is returned so that freeing it happens outside the timing.
    """
    start = time.perf_counter()
    for _ in range(loops - 1):
        func()
    result = func()
    return (time.perf_counter() - start) / loops, result


#: Calls shorter than this get an untimed settling call before each sample (see paired_times).
SETTLE_BELOW_SECONDS = 0.1


def _settled(warm):
    """Names of the implementations whose warm-up call was short enough to settle."""
    return {name for name, seconds in warm.items() if seconds < SETTLE_BELOW_SECONDS}


def _loops(seconds):
    """Calls per timed sample for a call lasting ``seconds``: enough to last MIN_SAMPLE_SECONDS."""
    return max(1, min(10_000, math.ceil(MIN_SAMPLE_SECONDS / max(seconds, 1e-7))))


#: Warm-up calls go on until they have taken this long (at least one call).
WARMUP_SECONDS = 0.05

#: Warm-up calls, at least (see :func:`_warm_up`). A first call that writes a large result into
#: fresh pages can take far longer than the next: on the Intel Xeon VM on 2026-12-04, whose
#: host took back the guest's free memory after about two seconds, a first ``im2col`` of
#: resnet-mid (231 MB) took 2.9 s and the next 13 ms (``np.ones`` of as much: 1.5-3.5 s, then
#: 42 ms). Timed from one such call, a row kept it as its only sample, or ran two samples of
#: which the first wrote into fresh pages again.
WARMUP_CALLS = 2


def _warm_up(func, calls=1, keep_first=False):
    """Call ``func`` ``calls`` times, then until WARMUP_SECONDS have passed; return its fastest call and last result.

    The first calls on a new thread count can be slow while thread pools
    start (several milliseconds each here), and so can a first call writing
    its result into fresh pages (:data:`WARMUP_CALLS`); this keeps them out
    of the samples, and the fastest call sets how many samples fit the
    budget. With ``keep_first`` (fastconv), one call more: the first result
    stays alive through the second call, then goes back to fastconv's buffer
    cache, where the third call finds it written; so the cache holds a
    written buffer for the samples besides the one of the result returned
    (which the caller keeps). Other libraries' memory goes back to their
    allocator at once, where their next call finds it.
    """
    deadline = time.perf_counter() + WARMUP_SECONDS
    best, result = _time_call(func)
    first = result if keep_first else None
    for _ in range(calls - 1 + bool(keep_first)):
        del result
        seconds, result = _time_call(func)
        best = min(best, seconds)
        first = None
    del first
    while time.perf_counter() < deadline:
        del result
        seconds, result = _time_call(func)
        best = min(best, seconds)
    return best, result


def paired_times(case, counts, loops=None, settle=()):
    """Time implementations in interleaved rounds, so drifts hit all of them alike.

    Round ``r`` takes one sample of every implementation whose count exceeds
    ``r``; the order rotates from round to round.

    Parameters
    ----------
    case : Case
    counts : dict
        Implementation name -> number of samples (0 allowed).
    loops : dict, optional
        Implementation name -> calls per sample (default 1).
    settle : collection of str, optional
        Implementations called once, untimed, before each of their samples.
        Thread pools left spinning by the previous implementation (libgomp,
        OpenBLAS and torch each keep their workers busy-waiting for a while)
        then delay that call rather than the sample; on 2 cores this costs
        short calls milliseconds.

    Returns
    -------
    dict
        Implementation name -> list of seconds per call, one per sample.
    """
    loops = loops or {}
    names = [name for name, count in counts.items() if count > 0]
    times = {name: [] for name in counts}
    for r in range(max(counts.values(), default=0)):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if r < counts[name]:
                if name in settle:
                    case.run(name)
                seconds, result = _time_call(case.impls[name], loops.get(name, 1))
                del result
                times[name].append(seconds)
    return times


def speedup(case, other, repeat=5):
    """Median time of ``other`` over fastconv's, from ``repeat`` paired samples each.

    Runs in the caller's thread settings (see :func:`thread_limits`), after
    untimed warm-up calls that also set the calls per sample.
    """
    names = ("fastconv", other)
    warm = {name: _warm_up(case.impls[name], WARMUP_CALLS, name == "fastconv")[0] for name in names}
    times = paired_times(case, dict.fromkeys(names, repeat), {n: _loops(t) for n, t in warm.items()},
                         _settled(warm))
    return statistics.median(times[other]) / statistics.median(times["fastconv"])


def _estimate_seconds(dims, op, dtype, impl):
    """Seconds of one call of ``impl`` on a batch of ``dims["N"]``, extrapolated from one image."""
    one = make_case(dims, op, dtype, batch=1, impls=(impl,))
    seconds, result = _time_call(one.impls[impl])
    del result
    return seconds * dims["N"]


_too_slow_cache = {}


def reference_too_slow(shape, op, dtype="float32", *, batch=None, quick=False, limit=1.0):
    """Whether one reference call is estimated to take more than ``limit`` seconds.

    The estimate is a one-image call scaled by the batch size; it is cached per
    process. Also True when :mod:`fastconv.reference` is missing.
    """
    dims = shape_dims(shape, batch, quick=quick)
    key = (tuple(sorted(dims.items())), op, np.dtype(dtype).str, limit)
    if key not in _too_slow_cache:
        if _reference() is None:
            _too_slow_cache[key] = True
        else:
            _too_slow_cache[key] = _estimate_seconds(dims, op, dtype, "reference") > limit
    return _too_slow_cache[key]


#: Implementations timed in rounds of their own, after the paired rounds of the others.
#: The reference's matrix products leave OpenBLAS's worker threads busy-waiting for new
#: work (about 0.1 s), on the cores the next implementation's threads need: on the Intel
#: Xeon (2 cores), just after a 512x512 ``np.matmul``, cifar's weight gradient at two
#: threads took 3.5-4.9 ms in fastconv (0.38 ms otherwise) and 3.6-20 ms in PyTorch (0.43);
#: in the bench's rounds with the reference among them, 0.45-0.54 ms and 0.48-0.60 ms,
#: without it 0.38 ms and 0.44 ms.
TIMED_APART = ("reference",)


def measure_row(case, threads, *, repeat=7, max_time=10.0):
    """Time every implementation of a case on ``threads`` threads.

    Each implementation is first warmed up for WARMUP_SECONDS (at least
    WARMUP_CALLS untimed calls; the last result is checked against
    fastconv's), then sampled up to ``repeat`` times in paired
    rounds (:func:`paired_times`; fastconv and PyTorch together, then the
    reference in rounds of its own: :data:`TIMED_APART`; calls shorter than MIN_SAMPLE_SECONDS are
    looped within a sample, calls shorter than SETTLE_BELOW_SECONDS get an
    untimed call before each sample), within a budget of ``max_time`` seconds
    per implementation. Implementations of :data:`ESTIMATED_FIRST` are first timed
    on one image: if the batch would exceed ``max_time`` they are not run in
    full and their time is that estimate. An implementation whose warm-up
    alone exceeds the budget keeps that single run.

    Returns
    -------
    dict
        JSON-ready row: ``times`` (seconds per call, one per sample),
        ``loops`` (calls per sample), ``median``, ``status``
        per implementation (``"paired"``, ``"single"`` or ``"estimated"``),
        ``speedup`` (other median / fastconv median), ``rate`` (``unit`` of
        fastconv), ``agree`` (results match fastconv's) and ``steal``: the
        share of the machine's CPU time the hypervisor gave to other guests
        while the samples were taken (:func:`stolen_seconds`; None where
        unknown, 0 on a machine of one's own).
    """
    status, warm, results, times = {}, {}, {}, {}
    elapsed = stolen = 0.0
    with thread_limits(threads):
        # the reference's rounds come after the others': see TIMED_APART
        for group in ([n for n in case.impls if n not in TIMED_APART], [n for n in case.impls if n in TIMED_APART]):
            for name in group:
                if name in ESTIMATED_FIRST and case.dims["N"] > 1:
                    estimate = _estimate_seconds(case.dims, case.op, case.dtype, name)
                    if estimate > max_time:
                        status[name], warm[name] = "estimated", estimate
                        continue
                warm[name], results[name] = _warm_up(case.impls[name], WARMUP_CALLS, name == "fastconv")
            counts = {name: 0 if name in status else min(repeat, int(max_time // max(warm[name], 1e-9)))
                      for name in group}
            before, start = stolen_seconds(), time.perf_counter()
            times.update(paired_times(case, counts, {name: _loops(warm[name]) for name in group},
                                      _settled({name: warm[name] for name in group})))
            after, elapsed = stolen_seconds(), elapsed + time.perf_counter() - start
            stolen = None if before is None or after is None or stolen is None else stolen + after - before
        agree = {name: _agree(results[name], results["fastconv"], case.dtype)
                 for name in ("reference", "torch") if name in results}
        results.clear()
        counts = {name: 0 if name in status else len(times[name]) for name in warm}
        loops = {name: _loops(t) for name, t in warm.items()}
    steal = None
    if stolen is not None and elapsed > 0:
        steal = min(1.0, stolen / (elapsed * (os.cpu_count() or 1)))
    for name, count in counts.items():
        if count == 0:
            status.setdefault(name, "single")
            times[name] = [warm[name]]
        else:
            status[name] = "paired"
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["fastconv"]
    return {
        "shape": case.shape, "op": case.op, "dtype": case.dtype.name, "threads": threads,
        "dims": case.dims, "work": case.work, "unit": case.unit,
        "times": times, "loops": loops, "median": median, "status": status,
        "speedup": {name: m / base for name, m in median.items() if name != "fastconv"},
        "rate": case.work / base / 1e9,
        "agree": agree,
        "steal": steal,
    }


def thread_scaling(case, threads, *, repeat=7, max_time=10.0):
    """fastconv's speedup on each thread count over the first, from samples alternating the counts.

    A case's rows on one and on two threads (:func:`measure_row`) are timed
    seconds apart, and a shared machine's speed can drift by more than the
    second thread gains in that time. Here each round takes one sample of
    fastconv on every count of ``threads``, the order rotating from round to
    round, each inside :func:`thread_limits`; so a drift hits every count
    alike. Warm-up, calls per sample and settling calls as in
    :func:`measure_row`.

    Parameters
    ----------
    case : Case
        With a ``"fastconv"`` implementation.
    threads : sequence of int
        Thread counts; the speedups are over the first.
    repeat : int, optional
        Samples per thread count, at most.
    max_time : float, optional
        Seconds of samples allowed per thread count.

    Returns
    -------
    dict
        ``times`` (count -> seconds per call, one per sample), ``median``
        (count -> seconds) and ``speedup`` (count -> the first count's
        median over this one's).
    """
    run = case.impls["fastconv"]
    warm = {}
    for n in threads:
        with thread_limits(n):
            warm[n] = _warm_up(run, WARMUP_CALLS)[0]
    count = max(1, min(repeat, int(max_time // max(max(warm.values()), 1e-9))))
    times = {n: [] for n in threads}
    for r in range(count):
        shift = r % len(threads)
        for n in list(threads[shift:]) + list(threads[:shift]):
            with thread_limits(n):
                if warm[n] < SETTLE_BELOW_SECONDS:
                    case.run("fastconv")
                seconds, result = _time_call(run, _loops(warm[n]))
                del result
            times[n].append(seconds)
    median = {n: statistics.median(t) for n, t in times.items()}
    return {"times": times, "median": median,
            "speedup": {n: median[threads[0]] / m for n, m in median.items()}}


# ---------------------------------------------------------------------------
# Machine baselines
# ---------------------------------------------------------------------------

def memcpy_bandwidth(nbytes=256 * 2**20, repeat=5):
    """Copy bandwidth of ``np.copyto`` between two preallocated buffers.

    Returns
    -------
    float
        GB/s copied (bytes read + written is twice that), best of ``repeat``.
    """
    src = np.ones(nbytes, np.uint8)
    dst = np.zeros_like(src)
    best = min(_time_call(lambda: np.copyto(dst, src))[0] for _ in range(repeat))
    return nbytes / best / 1e9


def gemm_gflops(n=2048, dtype="float32", threads=1, repeat=3):
    """GFLOP/s of ``np.matmul`` of two ``n`` x ``n`` matrices (sgemm/dgemm), best of ``repeat``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.dtype(dtype))
    b = rng.standard_normal((n, n), dtype=np.dtype(dtype))
    out = np.empty_like(a)
    with thread_limits(threads):
        np.matmul(a, b, out=out)
        best = min(_time_call(lambda: np.matmul(a, b, out=out))[0] for _ in range(repeat))
    return 2.0 * n**3 / best / 1e9


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cpu_ticks():
    """The all-CPU line of Linux's ``/proc/stat``: user, nice, system, idle, iowait, irq, softirq,
    steal... in clock ticks."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def cpu_busy_fraction(seconds=0.5):
    """Fraction of all CPUs busy during ``seconds`` of idling here (Linux ``/proc/stat``).

    Measures what other processes (or other containers on the same machine)
    take while this one sleeps; None where ``/proc/stat`` is unavailable.
    """
    def ticks():
        values = _cpu_ticks()
        idle = values[3] + values[4]  # idle + iowait
        return sum(values[:8]) - idle, idle

    try:
        busy0, idle0 = ticks()
        time.sleep(seconds)
        busy1, idle1 = ticks()
    except (OSError, ValueError, IndexError):
        return None
    total = (busy1 - busy0) + (idle1 - idle0)
    return (busy1 - busy0) / total if total > 0 else None


def stolen_seconds():
    """CPU seconds the hypervisor has given to other guests so far, summed over all CPUs.

    The ``steal`` column of Linux's ``/proc/stat``: time this virtual
    machine's CPUs were ready to run but not running. On a shared cloud host a
    CPU taken away in the middle of a parallel region stalls the whole team
    for milliseconds. None where ``/proc/stat`` has no such column.
    """
    try:
        return _cpu_ticks()[7] / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


#: A row is marked when the hypervisor took at least this share of the machine's CPU time
#: while it was timed.
STEAL_NOTE = 0.02


def machine_info():
    """Platform, CPU, core counts and the versions of the libraries compared."""
    torch = sys.modules.get("torch")
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": _usable_cpus(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
        "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "busy_before_run": cpu_busy_fraction(),
    }


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

_MARK = {"paired": "", "single": "!", "estimated": "~"}

_LEGEND = (
    "speedup = other median time / fastconv median time (> 1: fastconv is faster).\n"
    "~ estimated from a one-image call (too slow to run in full);  "
    "! one cold call (too slow to repeat);  - not run.\n"
    f"steal N%: the hypervisor gave N% of the machine's CPU time to other guests while the row was "
    f"timed (shown from {100 * STEAL_NOTE:.0f}%); such rows are noisy.\n"
    "scaling: fastconv's speedup over its own time on the first thread count, from samples "
    "alternating the thread counts (not from the rows' medians, timed seconds apart).\n"
    "rate: fastconv's GB/s read + written (im2col, col2im, pooling) or GFLOP/s (convolutions), "
    "and its % of memcpy read + write or of gemm at the same threads."
)


def _fmt_ms(seconds):
    ms = seconds * 1e3
    for limit, digits in ((100, 0), (10, 1), (1, 2)):
        if ms >= limit:
            return f"{ms:.{digits}f}"
    return f"{ms:.3f}"


def _fmt_ratio(ratio):
    return f"{ratio:.0f}x" if ratio >= 100 else f"{ratio:.1f}x" if ratio >= 10 else f"{ratio:.2f}x"


_COLUMNS = [("shape", 11, "<"), ("op", 11, "<"), ("dtype", 7, "<"), ("N", 3, ">"), ("thr", 3, ">"),
            ("fastconv", 9, ">"), ("reference", 10, ">"), ("torch", 9, ">"), ("torch-own", 9, ">"),
            ("vs ref", 7, ">"), ("vs torch", 8, ">"), ("scaling", 7, ">"), ("rate", 20, "<")]


def _line(cells):
    return " ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, _COLUMNS))


def table_header():
    """The two header lines of the results table."""
    head = _line([title for title, _, _ in _COLUMNS])
    units = _line(["", "", "", "", "", "ms", "ms", "ms", "ms", "", "", "", ""])
    return f"{head}\n{units.rstrip()}\n" + "-" * len(head)


def format_row(row, baselines):
    """One fixed-width table line for a row of :func:`measure_row`.

    ``baselines`` maps ``("GB/s", threads, dtype)`` / ``("GFLOP/s", ...)`` to
    the memcpy read + write or gemm rate the ``rate`` column is compared with.
    """
    status, median, ratio = row["status"], row["median"], row["speedup"]

    def time_cell(name):
        return _MARK[status[name]] + _fmt_ms(median[name]) if name in median else "-"

    def ratio_cell(name):
        return _MARK[status[name]] + _fmt_ratio(ratio[name]) if name in ratio else "-"

    rate = f"{row['rate']:.3g} {row['unit']}"
    base = baselines.get((row["unit"], row["threads"], row["dtype"]))
    if base:
        rate += f" {100 * row['rate'] / base:.0f}%"
    mismatches = [name for name, ok in row["agree"].items() if not ok]
    if mismatches:
        rate += " MISMATCH vs " + ",".join(mismatches)
    steal = row.get("steal")
    if steal is not None and steal >= STEAL_NOTE:
        rate += f" steal {100 * steal:.0f}%"
    return _line([row["shape"], row["op"], row["dtype"], row["dims"]["N"], row["threads"],
                  *(time_cell(name) for name in IMPLEMENTATIONS),
                  ratio_cell("reference"), ratio_cell("torch"),
                  _fmt_ratio(row["scaling"]["speedup"]) if "scaling" in row else "", rate]).rstrip()


def geometric_mean(values):
    """Geometric mean of positive numbers (NaN for an empty sequence)."""
    values = [v for v in values if v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def summary(rows):
    """Lines giving the time stolen, the geometric-mean speedups per thread count and peer, and fastconv's scaling."""
    lines = []
    steals = [row["steal"] for row in rows if row.get("steal") is not None]
    if steals:
        noted = sum(s >= STEAL_NOTE for s in steals)
        lines.append(f"CPU time stolen by the hypervisor while timing: median {100 * statistics.median(steals):.1f}%, "
                     f"max {100 * max(steals):.0f}%; {noted} of {len(steals)} rows at {100 * STEAL_NOTE:.0f}% or more")
    for n in sorted({row["threads"] for row in rows}):
        parts = []
        for name in ("reference", "torch"):
            ratios = [row["speedup"][name] for row in rows if row["threads"] == n and name in row["speedup"]]
            if ratios:
                parts.append(f"vs {name} {_fmt_ratio(geometric_mean(ratios))} ({len(ratios)} rows)")
        if parts:
            lines.append(f"geometric-mean speedup, {n} thr: " + ", ".join(parts))
    for n in sorted({row["threads"] for row in rows if "scaling" in row}):
        scaled = [row for row in rows if row["threads"] == n and "scaling" in row]
        low = min(scaled, key=lambda row: row["scaling"]["speedup"])
        first = low["scaling"]["over_threads"]
        lines.append(f"fastconv's scaling, {n} thr over {first}: geometric mean "
                     f"{_fmt_ratio(geometric_mean([row['scaling']['speedup'] for row in scaled]))} "
                     f"({len(scaled)} rows), lowest {_fmt_ratio(low['scaling']['speedup'])} "
                     f"({low['shape']} {low['op']} {low['dtype']})")
    return lines


def plot_speedups(rows, path):
    """Save a bar chart of the speedups vs the reference and vs torch to ``path``.

    One panel per (dtype, thread count), one group of horizontal bars per
    (shape, op), on a log axis with a line at 1. Uses matplotlib's Agg canvas
    directly (no pyplot, no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = sorted({(r["dtype"], r["threads"]) for r in rows})
    labels = list(dict.fromkeys(f"{r['shape']} {r['op']}" for r in rows))
    fig = Figure(figsize=(4.5 * len(panels) + 1.5, 0.32 * len(labels) + 1.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    pos = np.arange(len(labels))
    for ax, (dtype, threads) in zip(axes, panels):
        by_label = {f"{r['shape']} {r['op']}": r for r in rows if (r["dtype"], r["threads"]) == (dtype, threads)}
        for offset, name in ((-0.2, "reference"), (0.2, "torch")):
            values = [by_label[lab]["speedup"].get(name, np.nan) if lab in by_label else np.nan
                      for lab in labels]
            ax.barh(pos + offset, values, height=0.4, label=f"vs {name}")
        ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xscale("log")
        ax.set_title(f"{dtype}, {threads} thread{'s' if threads > 1 else ''}")
        ax.set_xlabel("speedup (other time / fastconv time)")
    axes[0].set_yticks(pos, labels, fontsize=8)
    axes[0].invert_yaxis()
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    fig.suptitle(f"fastconv {__version__}: speedup > 1 means fastconv is faster")
    fig.savefig(path, dpi=100)


class _Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, total, enabled=True, width=24):
        self.total, self.enabled, self.width, self.done = total, enabled, width, 0
        self.tty = enabled and sys.stderr.isatty()

    def step(self, label):
        if not self.enabled:
            return
        filled = self.width * self.done // max(1, self.total)
        text = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done + 1}/{self.total} {label}"
        if self.tty:
            sys.stderr.write("\r" + text.ljust(79)[:79])
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()
        self.done += 1

    def clear(self):
        if self.tty:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def _names(text, allowed, what):
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown {what} {', '.join(unknown) or repr(text)}; "
                         f"expected a comma-separated list of {', '.join(allowed)}")
    return names


def add_arguments(parser):
    """Add the ``bench`` options to an :class:`argparse.ArgumentParser`."""
    parser.add_argument("--quick", action="store_true",
                        help=f"3 repeats, batch N divided by {QUICK_BATCH_DIVISOR}, "
                             "1 s budget per implementation and row (every shape and op in a few minutes)")
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help="comma-separated shape names (default: all): " + ", ".join(SHAPES))
    parser.add_argument("--ops", default=",".join(OPS),
                        help="comma-separated operations (default: all): " + ", ".join(OPS))
    parser.add_argument("--threads", default=None,
                        help="comma-separated thread counts (default: 1 and all usable cores)")
    parser.add_argument("--dtype", default="float32",
                        help="float32 (default), float64, or both comma-separated")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed samples per implementation and row (default 7, 3 with --quick)")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size N for every shape (overrides the canonical and --quick N)")
    parser.add_argument("--max-time", type=float, default=None,
                        help="seconds allowed per implementation and row (default 10, 1 with "
                             "--quick); a reference estimated slower is not run in full")
    parser.add_argument("--algorithm", default="auto", choices=("auto", "direct", "im2col"),
                        help="fastconv.conv2d algorithm (default auto)")
    parser.add_argument("--json", metavar="FILE", help="write every timing and the metadata as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart of the speedups (needs matplotlib)")
    parser.add_argument("--no-reference", action="store_true", help="do not time fastconv.reference")
    parser.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _options(args):
    """Validate parsed ``bench`` arguments into a plain dict (raises ValueError)."""
    if args.threads is None:
        threads = sorted({1, _usable_cpus()})
    else:
        try:
            threads = [int(t) for t in args.threads.split(",") if t.strip()]
        except ValueError:
            threads = []
        if not threads or min(threads) < 1:
            raise ValueError(f"--threads must be comma-separated counts >= 1, got {args.threads!r}")
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 7)
    max_time = args.max_time if args.max_time is not None else (1.0 if args.quick else 10.0)
    if repeat < 1 or max_time <= 0 or (args.batch is not None and args.batch < 1):
        raise ValueError("--repeat and --batch must be >= 1 and --max-time > 0")
    impls = [name for name in IMPLEMENTATIONS
             if not (args.no_reference and name == "reference")
             and not (args.no_torch and name.startswith("torch"))]
    return {
        "shapes": _names(args.shapes, list(SHAPES), "shape"),
        "ops": _names(args.ops, OPS, "op"),
        "threads": threads,
        "dtypes": _names(args.dtype, ("float32", "float64"), "dtype"),
        "repeat": repeat, "max_time": max_time, "quick": args.quick, "batch": args.batch,
        "algorithm": args.algorithm, "impls": impls,
    }


def _print_preamble(opts, meta, out):
    print(f"fastconv {__version__} benchmark", file=out)
    m = meta["machine"]
    print(f"machine: {m['cpu']}, {m['cpu_count']} CPUs ({m['usable_cpus']} usable), {m['platform']}",
          file=out)
    print(f"python {m['python']}, numpy {m['numpy']}, torch {m['torch'] or 'not used'}", file=out)
    buf = io.StringIO()
    show_config(file=buf)
    print("show_config():\n  " + buf.getvalue().rstrip().replace("\n", "\n  "), file=out)
    busy = m["busy_before_run"]
    if busy is not None and busy > 0.1:
        print(f"note: other processes kept {100 * busy:.0f}% of the CPUs busy just before the run "
              f"(load average {m['loadavg']:.2f}); timings, multi-threaded ones most, will be noisy",
              file=out)
    if m["openblas_env"]:
        env = " ".join(f"{k}={v}" for k, v in m["openblas_env"].items())
        print(f"note: {env} is set; OpenBLAS may run a slower kernel than this CPU allows", file=out)
    copied = meta["memcpy_gb_s"]
    print(f"memcpy (np.copyto 256 MB): {copied:.1f} GB/s copied, {2 * copied:.1f} GB/s read + write",
          file=out)
    for g in meta["gemm"]:
        print(f"gemm (np.matmul 2048x2048 {g['dtype']}, {g['threads']} thr): {g['gflops']:.1f} GFLOP/s",
              file=out)
    missing = [name for name in ("reference", "torch") if name in opts["impls"]
               and not meta["available"][name]]
    for name in missing:
        print(f"note: {'fastconv.reference' if name == 'reference' else 'torch'} is not importable; "
              "its columns are empty", file=out)
    if opts["batch"] is not None:
        print(f"note: batch N set to {opts['batch']} for every shape (--batch)", file=out)
    elif opts["quick"]:
        print(f"note: --quick divides each canonical batch N by {QUICK_BATCH_DIVISOR} "
              "(column N is the batch used)", file=out)
    print(f"{opts['repeat']} paired repeats, medians; budget {opts['max_time']:g} s per "
          "implementation and row", file=out)


def run(args, out=None):
    """Run the benchmark described by parsed ``bench`` arguments.

    Parameters
    ----------
    args : argparse.Namespace
        As produced by a parser set up with :func:`add_arguments`.
    out : file-like, optional
        Where the report goes (default ``sys.stdout``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 on bad arguments.
    """
    out = out or sys.stdout
    try:
        opts = _options(args)
    except ValueError as exc:
        print(f"fastconv bench: error: {exc}", file=sys.stderr)
        return 2
    if args.plot and _optional("matplotlib") is None:
        print("fastconv bench: error: --plot needs matplotlib, which is not installed "
              "(pip install matplotlib)", file=sys.stderr)
        return 2
    available = {"reference": _reference() is not None,
                 "torch": "torch" in opts["impls"] and _torch() is not None}
    meta = {
        "fastconv": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "options": opts,
        "machine": machine_info(),
        "config": config_dict(),
        "available": available,
        "memcpy_gb_s": memcpy_bandwidth(),
        "gemm": [{"dtype": dt, "threads": n, "gflops": gemm_gflops(dtype=dt, threads=n)}
                 for dt in opts["dtypes"] for n in opts["threads"]],
    }
    baselines = {("GB/s", n, dt): 2 * meta["memcpy_gb_s"] for dt in opts["dtypes"] for n in opts["threads"]}
    baselines.update({("GFLOP/s", g["threads"], g["dtype"]): g["gflops"] for g in meta["gemm"]})
    _print_preamble(opts, meta, out)
    print(file=out)
    print(table_header(), file=out)
    out.flush()

    rows = []
    plan = [(s, op, dt) for s in opts["shapes"] for op in opts["ops"] for dt in opts["dtypes"]]
    steps = len(opts["threads"]) + (len(opts["threads"]) > 1)
    progress = _Progress(len(plan) * steps, enabled=not args.no_progress)
    for shape, op, dtype in plan:
        case = make_case(shape, op, dtype, batch=opts["batch"], quick=opts["quick"],
                         impls=opts["impls"], algorithm=opts["algorithm"])
        case_rows = []
        for n in opts["threads"]:
            progress.step(f"{shape} {op} {dtype} {n} thr")
            row = measure_row(case, n, repeat=opts["repeat"], max_time=opts["max_time"])
            if op == "conv2d":
                row["algorithm"] = opts["algorithm"]
            case_rows.append(row)
        if len(opts["threads"]) > 1:
            progress.step(f"{shape} {op} {dtype} scaling")
            scaling = thread_scaling(case, opts["threads"], repeat=opts["repeat"], max_time=opts["max_time"])
            first = opts["threads"][0]
            for row in case_rows[1:]:
                n = row["threads"]
                row["scaling"] = {"over_threads": first, "speedup": scaling["speedup"][n],
                                  "times": {first: scaling["times"][first], n: scaling["times"][n]}}
        progress.clear()
        for row in case_rows:
            print(format_row(row, baselines), file=out)
        out.flush()
        rows.extend(case_rows)
        del case
        gc.collect()
    print(file=out)
    for line in summary(rows):
        print(line, file=out)
    print(_LEGEND, file=out)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"metadata": meta, "rows": rows}, f, indent=1, default=str)
        print(f"wrote {args.json}", file=out)
    if args.plot:
        plot_speedups(rows, args.plot)
        print(f"wrote {args.plot}", file=out)
    return 0

