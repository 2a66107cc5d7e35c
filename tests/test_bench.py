"""The benchmark engine and the ``python -m fastconv`` command line.

These tests check that the benchmark runs end to end, measures real numbers
and compares like with like; they never assert a speed.
"""

import importlib.util
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _bench
from fastconv.__main__ import main

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
HAS_REFERENCE = importlib.util.find_spec("fastconv.reference") is not None


def run_cli(cwd, *args):
    """Run ``python -m fastconv ARGS`` in a subprocess; return it once it succeeded.

    ``cwd`` must not be the source checkout, whose unbuilt ``fastconv``
    folder ``-m`` would import instead of the installed package.
    """
    return subprocess.run([sys.executable, "-m", "fastconv", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=True)


@pytest.fixture(scope="module")
def quick_tiny(tmp_path_factory):
    """One ``bench --quick --shapes tiny`` run: its process, JSON and output folder."""
    folder = tmp_path_factory.mktemp("bench")
    args = ["bench", "--quick", "--shapes", "tiny", "--json", str(folder / "tiny.json")]
    if HAS_MATPLOTLIB:
        args += ["--plot", str(folder / "tiny.png")]
    proc = run_cli(folder, *args)
    return proc, json.loads((folder / "tiny.json").read_text()), folder


def test_shapes_are_the_canonical_ones():
    expected = {  # SPEC section 5: N, C, H, W, K, kernel, stride, pad, dilation, groups
        "tiny": (1, 3, 5, 5, 2, 3, 1, 0, 1, 1),
        "cifar": (64, 3, 32, 32, 16, 3, 1, 1, 1, 1),
        "resnet-mid": (32, 64, 56, 56, 64, 3, 1, 1, 1, 1),
        "resnet-deep": (32, 256, 14, 14, 256, 3, 1, 1, 1, 1),
        "strided": (16, 64, 112, 112, 64, 3, 2, 1, 1, 1),
        "stem": (8, 3, 224, 224, 64, 7, 2, 3, 1, 1),
        "dilated": (16, 32, 64, 64, 32, 3, 1, 2, 2, 1),
        "depthwise": (32, 128, 28, 28, 128, 3, 1, 1, 1, 128),
    }
    keys = ("N", "C", "H", "W", "K", "kernel", "stride", "pad", "dilation", "groups")
    assert {name: tuple(d[k] for k in keys) for name, d in _bench.SHAPES.items()} == expected
    assert _bench.shape_dims("resnet-mid", quick=True)["N"] == 4
    assert _bench.shape_dims("tiny", quick=True)["N"] == 1
    assert _bench.shape_dims("stem", batch=3)["N"] == 3


def test_json_has_positive_timings_and_ratios_for_every_op(quick_tiny):
    _, report, _ = quick_tiny
    rows = report["rows"]
    threads = report["metadata"]["options"]["threads"]
    assert threads[0] == 1
    assert {(r["op"], r["threads"]) for r in rows} == {(op, n) for op in _bench.OPS for n in threads}
    for row in rows:
        assert row["shape"] == "tiny" and row["dtype"] == "float32" and row["dims"]["N"] == 1
        samples = row["times"]["fastconv"]
        assert len(samples) == 3 and all(t > 0 for t in samples)
        assert row["median"]["fastconv"] == pytest.approx(float(np.median(samples)))
        assert 0 < row["rate"] < math.inf
        # (the reference has no out=: the rows writing into buffers allocated once have none)
        peers = [name for name, present in (("reference", HAS_REFERENCE and row["op"] not in _bench.INTO_BUFFER_OPS),
                                            ("torch", HAS_TORCH)) if present]
        for name in peers:
            assert row["status"][name] == "paired"
            assert all(t > 0 for t in row["times"][name])
            ratio = row["median"][name] / row["median"]["fastconv"]
            assert row["speedup"][name] == pytest.approx(ratio)
            assert 0 < ratio < math.inf
            assert row["agree"][name] is True, f"{name} disagrees with fastconv on {row['op']}"
        if HAS_TORCH and row["op"] in _bench.OWN_LAYOUT_OPS:
            assert row["speedup"]["torch_own"] > 0
        if row["op"] in _bench.INTO_BUFFER_OPS:
            assert "reference" not in row["median"]
        assert row["steal"] is None or 0 <= row["steal"] <= 1
        if row["threads"] == threads[0]:
            assert "scaling" not in row
        else:  # fastconv on this count and the first, from samples alternating the two
            scaling = row["scaling"]
            assert scaling["over_threads"] == threads[0]
            first, this = (scaling["times"][str(n)] for n in (threads[0], row["threads"]))
            assert len(first) == len(this) == 3 and all(t > 0 for t in first + this)
            assert scaling["speedup"] == pytest.approx(float(np.median(first) / np.median(this)))


def test_json_metadata(quick_tiny):
    meta = quick_tiny[1]["metadata"]
    assert meta["fastconv"] == fastconv.__version__
    assert meta["config"]["fastconv"] == fastconv.__version__
    assert meta["memcpy_gb_s"] > 0
    assert meta["gemm"] and all(g["gflops"] > 0 for g in meta["gemm"])
    assert meta["machine"]["cpu_count"] >= 1
    assert meta["options"]["quick"] is True


def test_rows_with_stolen_time_are_marked(quick_tiny):
    # the hypervisor's share of the CPU while a row was timed: shown from STEAL_NOTE on
    row = dict(quick_tiny[1]["rows"][0])
    baselines = {}
    row["steal"] = _bench.STEAL_NOTE
    assert _bench.format_row(row, baselines).endswith(f" steal {100 * _bench.STEAL_NOTE:.0f}%")
    for quiet in (None, 0.0, _bench.STEAL_NOTE / 2):
        row["steal"] = quiet
        assert "steal" not in _bench.format_row(row, baselines)
    rows = [dict(row, steal=v) for v in (0.0, 0.01, 0.25)]
    (line,) = [x for x in _bench.summary(rows) if x.startswith("CPU time stolen")]
    assert "median 1.0%" in line and "max 25%" in line and "1 of 3 rows" in line
    seconds = _bench.stolen_seconds()
    assert seconds is None or seconds >= 0


def test_table_lists_every_op(quick_tiny):
    proc, report, _ = quick_tiny
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("shape"))
    for column in ("fastconv", "reference", "torch", "vs ref", "vs torch", "scaling", "rate"):
        assert column in header
    body = [line.split() for line in lines if line.startswith("tiny ")]
    assert len(body) == len(report["rows"])
    assert sorted(cells[1] for cells in body) == sorted(r["op"] for r in report["rows"])
    assert "memcpy (np.copyto 256 MB)" in proc.stdout
    assert "geometric-mean speedup" in proc.stdout or not (HAS_REFERENCE or HAS_TORCH)
    threads = report["metadata"]["options"]["threads"]
    assert (f"fastconv's scaling, {threads[-1]} thr over 1: geometric mean" in proc.stdout) == (len(threads) > 1)


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_plot_writes_a_png(quick_tiny):
    data = (quick_tiny[2] / "tiny.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    status = main(["bench", "--shapes", "tiny", "--no-torch", "--plot", str(tmp_path / "p.png")])
    assert status == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--shapes", "tiny,huge"], "unknown shape huge"),
    (["--ops", "conv3d"], "unknown op conv3d"),
    (["--threads", "0"], "--threads must be"),
    (["--threads", "one"], "--threads must be"),
    (["--dtype", "int8"], "unknown dtype int8"),
])
def test_bad_bench_arguments(argv, message, capsys):
    assert main(["bench", *argv]) == 2
    assert message in capsys.readouterr().err


def test_slow_reference_is_estimated_not_run():
    if not HAS_REFERENCE:
        pytest.skip("fastconv.reference is not importable")
    case = _bench.make_case("cifar", "conv2d", batch=2, impls=("fastconv", "reference"))
    calls = []
    case.impls["reference"] = lambda f=case.impls["reference"]: calls.append(1) or f()
    row = _bench.measure_row(case, 1, repeat=3, max_time=1e-9)
    assert calls == []  # the batch was never run: only a one-image estimate
    assert row["status"] == {"reference": "estimated", "fastconv": "single"}
    assert len(row["times"]["reference"]) == 1 and row["times"]["reference"][0] > 0
    assert row["agree"] == {}


def test_warm_up_calls_twice_and_keeps_fastconvs_first_result_through_the_second():
    # a first call into fresh pages can be far slower than the next: the warm-up makes two
    # (the fastest counts); fastconv's first result stays alive while its second call runs
    # and a third follows (so its buffer cache keeps a written buffer for the samples besides
    # the result the caller keeps), other libraries' goes back to their allocator first
    alive, calls = [0], []

    class Result:
        def __init__(self):
            alive[0] += 1

        def __del__(self):
            alive[0] -= 1

    def impl():
        calls.append(alive[0])  # results alive when this call starts
        return Result()

    best, result = _bench._warm_up(impl, 2, keep_first=True)
    assert calls[:3] == [0, 1, 0] and all(n == 0 for n in calls[3:])
    assert alive == [1] and isinstance(result, Result) and best > 0
    del result
    calls.clear()
    _, result = _bench._warm_up(impl, 2)
    assert len(calls) >= 2 and all(n == 0 for n in calls)
    del result
    assert alive == [0]


def test_paired_times_interleaves_and_rotates():
    order = []
    case = _bench.Case("custom", "im2col", {}, np.dtype("float32"),
                       {name: (lambda name=name: order.append(name)) for name in "abc"}, 1.0, "GB/s")
    times = _bench.paired_times(case, {"a": 3, "b": 3, "c": 1}, settle={"b"})
    assert [len(times[name]) for name in "abc"] == [3, 3, 1]
    assert order == ["a", "b", "b", "c", "b", "b", "a", "a", "b", "b"]


def test_thread_scaling_alternates_the_thread_counts(monkeypatch):
    # each round samples every count once (the order rotating), each sample after a settling call,
    # under that count's limits; the speedups are the first count's median over each count's
    calls = []
    monkeypatch.setattr(_bench, "WARMUP_SECONDS", 0.0)
    monkeypatch.setattr(_bench, "_loops", lambda seconds: 1)
    case = _bench.Case("custom", "conv2d", {"N": 1}, np.dtype("float32"),
                       {"fastconv": lambda: calls.append(fastconv.get_num_threads())}, 1.0, "GFLOP/s")
    result = _bench.thread_scaling(case, [1, 3], repeat=3, max_time=10.0)
    with fastconv.num_threads(3):  # (a serial build runs one)
        one, three = 1, fastconv.get_num_threads()
    warm_up = [one] * _bench.WARMUP_CALLS + [three] * _bench.WARMUP_CALLS
    assert calls == warm_up + [one, one, three, three] + [three, three, one, one] + [one, one, three, three]
    assert [len(result["times"][n]) for n in (1, 3)] == [3, 3]
    median = {n: float(np.median(result["times"][n])) for n in (1, 3)}
    assert result["median"] == pytest.approx(median)
    assert result["speedup"] == pytest.approx({1: 1.0, 3: median[1] / median[3]})


def test_reference_is_timed_after_the_paired_rounds():
    # the reference's BLAS workers busy-wait after its products: its calls come after every
    # timed call of the others (fastconv and torch still alternate), and the row has them all
    order = []

    def impl(name):
        return lambda: order.append(name) or np.zeros(3)

    names = ("fastconv", "reference", "torch")
    case = _bench.Case("custom", "im2col", {"N": 1}, np.dtype("float32"), {n: impl(n) for n in names}, 1.0, "GB/s")
    row = _bench.measure_row(case, 1, repeat=3, max_time=10.0)
    first_reference = order.index("reference")
    assert "fastconv" not in order[first_reference:] and "torch" not in order[first_reference:]
    assert row["status"] == dict.fromkeys(names, "paired")
    assert all(len(row["times"][n]) == 3 for n in names)
    assert row["agree"] == {"reference": True, "torch": True}


def test_torch_peers_compute_what_fastconv_computes():
    pytest.importorskip("torch")
    dims = {"N": 2, "C": 4, "H": 9, "W": 11, "K": 6, "kernel": 3, "stride": 2, "pad": 1,
            "dilation": 2, "groups": 2}
    for op in _bench.OPS:
        case = _bench.make_case(dims, op, "float64", impls=("fastconv", "torch", "torch_own"))
        fast = case.run("fastconv")
        torch_result = case.run("torch").numpy()
        np.testing.assert_allclose(torch_result, fast, rtol=1e-12, atol=1e-12)
        if op in _bench.OWN_LAYOUT_OPS:  # torch's own layout: (N, C*KH*KW, OH*OW) columns
            own = case.run("torch_own").numpy()
            expected = fast if op.startswith("col2im") else fast.reshape(2, -1, fast.shape[1]).transpose(0, 2, 1)
            np.testing.assert_allclose(own, expected, rtol=1e-12, atol=1e-12)


def test_nhwc_cases_compute_what_nchw_cases_compute():
    """NHWC shapes (depthwise here): fastconv, the reference and torch's channels_last agree with the NCHW case."""
    dims = {"N": 2, "C": 8, "H": 9, "W": 11, "K": 8, "kernel": 3, "stride": 2, "pad": 1,
            "dilation": 1, "groups": 8}
    torch = _bench._torch()
    impls = ("fastconv", "reference") + (("torch",) if torch is not None else ())
    for op in _bench.NHWC_OPS:
        nchw = _bench.make_case(dims, op, "float64", impls=("fastconv",)).run("fastconv")
        case = _bench.make_case(dict(dims, layout="NHWC"), op, "float64", impls=impls)
        expected = nchw.transpose(2, 3, 1, 0) if op == "grad_weight" else nchw.transpose(0, 2, 3, 1)
        for impl in impls:
            got = case.run(impl)
            if impl == "torch":  # NCHW-shaped views of channels_last memory, an OIHW weight gradient
                got = got.numpy()
                got = got.transpose(2, 3, 1, 0) if op == "grad_weight" else got.transpose(0, 2, 3, 1)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=f"{op} {impl}")
    with pytest.raises(ValueError, match="NHWC shapes run"):
        _bench.make_case(dict(dims, layout="NHWC"), "im2col")


def test_into_buffer_ops_write_into_the_same_buffers():
    # im2col_out / col2im_out: every call writes into buffers allocated once, fastconv's out= and
    # (where installed) aten's im2col.out / col2im.out, and gives what the allocating ops give
    dims = {"N": 2, "C": 3, "H": 7, "W": 9, "K": 4, "kernel": 3, "stride": 2, "pad": 1, "dilation": 1,
            "groups": 1}
    impls = ("fastconv", "torch", "torch_own") if HAS_TORCH else ("fastconv",)
    for op in _bench.INTO_BUFFER_OPS:
        case = _bench.make_case(dims, op, "float64", impls=impls)
        fresh = _bench.make_case(dims, op.removesuffix("_out"), "float64", impls=("fastconv",)).run("fastconv")
        for name in impls:
            first, second = (np.asarray(case.run(name)) for _ in range(2))
            assert np.shares_memory(first, second), name
            np.testing.assert_allclose(first if name != "torch_own" or op.startswith("col2im")
                                       else first.transpose(0, 2, 1).reshape(fresh.shape), fresh,
                                       rtol=1e-12, atol=1e-12)


def test_demo_prints_the_worked_example(tmp_path):
    out = run_cli(tmp_path, "demo").stdout
    assert "[[[-9, 1], [0, -7]]]" in out
    for shape in ("(1, 22, 22, 30)", "(9, 75)", "(25, 27)"):
        assert shape in out
    assert "fastconv.conv2d:" in out


def test_version(tmp_path):
    assert run_cli(tmp_path, "--version").stdout.strip() == f"fastconv {fastconv.__version__}"


def test_config_prints_show_config(tmp_path):
    out = run_cli(tmp_path, "config").stdout
    assert out.startswith("fastconv:") and "openmp:" in out and "blas:" in out
