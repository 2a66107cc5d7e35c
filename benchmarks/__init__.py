"""asv benchmarks of fastconv, one module per public function family.

Every class is parameterized over the canonical shapes of
:data:`fastconv._bench.SHAPES` (``bench_layers``: over a few layers outside
them), the dtype (float32, float64) and the thread count (1, 2). The batch size N of each shape is divided by
:data:`fastconv._bench.QUICK_BATCH_DIVISOR` (rounded up, as
``python -m fastconv bench --quick`` does) so that one asv sample of fastconv
stays well under a second on 2 cores; ``python -m fastconv bench`` measures
the full batch sizes.

For each operation there are three classes:

* ``<Op>``: fastconv alone (``time_fastconv``, plus ``peakmem_*`` for conv2d);
* ``<Op>VsReference``: ``time_reference`` and ``track_speedup_vs_reference``,
  skipped where :mod:`fastconv.reference` is missing or one call of it is
  estimated above :data:`REFERENCE_LIMIT` seconds;
* ``<Op>VsTorch``: ``time_torch`` and ``track_speedup_vs_torch``, skipped
  when PyTorch is not importable.

``Conv2dThreadScaling`` tracks fastconv's own speedup on two threads over
one (``track_speedup_over_one_thread``), from samples alternating the two
counts (:func:`fastconv._bench.thread_scaling`).

``im2col_out`` and ``col2im_out`` (``Im2colOut``, ``Col2imOut``: every
implementation writes into a buffer allocated once) have no
``VsReference`` class: :mod:`fastconv.reference` has no ``out=``.

A ``track_speedup_*`` value is other time / fastconv time (> 1: fastconv is
faster), the median of paired in-process runs (:func:`fastconv._bench.speedup`).
Set-up raises ``NotImplementedError`` to skip, as asv expects.
"""

import contextlib

from fastconv import _bench

#: Seconds above which one reference call (estimated from one image) is not benchmarked.
REFERENCE_LIMIT = 1.0

#: Paired runs behind each ``track_speedup_*`` value.
SPEEDUP_REPEAT = 5


class _OpBenchmark:
    """Base of every benchmark class: builds the case and pins the thread count.

    Subclasses set ``op`` (one of :data:`fastconv._bench.OPS`) and, for the
    comparison classes, ``peer`` (``"reference"`` or ``"torch"``).
    """

    op = None
    peer = None
    extra = ()  # more fastconv implementations to build, e.g. _bench.CONV2D_ALGORITHMS
    params = (list(_bench.SHAPES), ["float32", "float64"], [1, 2])
    param_names = ("shape", "dtype", "threads")
    timeout = 300

    def setup(self, shape, dtype, threads):
        if self.peer == "reference" and _bench.reference_too_slow(
                shape, self.op, dtype, quick=True, limit=REFERENCE_LIMIT):
            raise NotImplementedError(
                f"fastconv.reference {self.op} on {shape} is missing or slower than {REFERENCE_LIMIT} s")
        impls = ("fastconv", *self.extra) if self.peer is None else ("fastconv", self.peer)
        self.case = _bench.make_case(shape, self.op, dtype, quick=True, impls=impls)
        if self.peer is not None and self.peer not in self.case.impls:
            raise NotImplementedError(f"{self.peer} is not importable")
        self._limits = contextlib.ExitStack()
        self._limits.enter_context(_bench.thread_limits(threads))

    def teardown(self, shape, dtype, threads):
        # asv runs teardown after a set-up that skipped the case (raised
        # NotImplementedError before the limits were entered): nothing to close.
        limits = getattr(self, "_limits", None)
        if limits is not None:
            limits.close()
            self._limits = None


class _Fastconv(_OpBenchmark):
    """fastconv alone."""

    def time_fastconv(self, shape, dtype, threads):
        self.case.run("fastconv")


class _VsReference(_OpBenchmark):
    """fastconv.reference, and fastconv's speedup over it."""

    peer = "reference"

    def time_reference(self, shape, dtype, threads):
        self.case.run("reference")

    def track_speedup_vs_reference(self, shape, dtype, threads):
        return _bench.speedup(self.case, "reference", repeat=SPEEDUP_REPEAT)

    track_speedup_vs_reference.unit = "ratio"


class _VsTorch(_OpBenchmark):
    """PyTorch (same layout as fastconv), and fastconv's speedup over it."""

    peer = "torch"

    def time_torch(self, shape, dtype, threads):
        self.case.run("torch")

    def track_speedup_vs_torch(self, shape, dtype, threads):
        return _bench.speedup(self.case, "torch", repeat=SPEEDUP_REPEAT)

    track_speedup_vs_torch.unit = "ratio"


class _ThreadScaling(_OpBenchmark):
    """fastconv's speedup on ``threads`` threads over one, from samples alternating the counts.

    The thread counts change sample by sample, so set-up enters no limits.
    """

    params = (list(_bench.SHAPES), ["float32", "float64"], [2])

    def setup(self, shape, dtype, threads):
        self.case = _bench.make_case(shape, self.op, dtype, quick=True, impls=("fastconv",))

    def track_speedup_over_one_thread(self, shape, dtype, threads):
        return _bench.thread_scaling(self.case, [1, threads], repeat=SPEEDUP_REPEAT)["speedup"][threads]

    track_speedup_over_one_thread.unit = "ratio"
