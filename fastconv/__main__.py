"""``python -m fastconv``: benchmark, demonstrate and describe this fastconv.

Subcommands
-----------
bench
    Time fastconv against ``fastconv.reference`` and PyTorch on the canonical
    shapes (see :mod:`fastconv._bench` and ``python -m fastconv bench -h``).
demo
    Reproduce the worked examples of the specification and time one
    CIFAR-sized convolution against the reference (a few seconds).
config
    Print :func:`fastconv.show_config`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import fastconv
from fastconv import _bench

#: The textbook 3-channel example (R, G, B planes) and its one 3x3x3 filter.
DEMO_X = [[[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]],
          [[1, 3, 2, 0], [0, 1, 3, 2], [2, 0, 3, 1], [3, 2, 1, 0]],
          [[2, 3, 1, 0], [0, 2, 3, 1], [1, 0, 2, 3], [3, 1, 0, 2]]]
DEMO_W = [[[1, -1, 1], [0, 1, -1], [-1, 0, 1]],
          [[-1, 1, 0], [1, -1, 0], [0, 1, -1]],
          [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]]


def _median_seconds(func, repeat):
    func()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def demo(out=None):
    """Print the worked examples of SPEC section 6 and one timing.

    Parameters
    ----------
    out : file-like, optional
        Where to print (default ``sys.stdout``).
    """
    out = out or sys.stdout
    x, w = np.array(DEMO_X), np.array(DEMO_W)
    print("The textbook example: x (3, 4, 4) [R, G, B], one 3x3x3 filter w", file=out)
    print(f"x =\n{x}\nw =\n{w}", file=out)
    result = fastconv.conv2d(x, w[None])
    print(f"fastconv.conv2d(x, w[None]) -> {result.tolist()}  "
          f"(shape {result.shape}, {result.dtype})", file=out)

    print("\nShapes:", file=out)
    h = np.zeros((1, 28, 28, 3), np.float32)
    for filters in (10, 20, 30):
        weight = np.zeros((3, 3, h.shape[-1], filters), np.float32)
        h = fastconv.conv2d(h, weight, layout="NHWC")
    print(f"(1, 28, 28, 3) NHWC through 3x3 convs of 10, 20, 30 filters (HWIO) -> {h.shape}", file=out)
    cols = fastconv.im2col(np.zeros((9, 3, 5, 5)), 5)
    print(f"im2col of (9, 3, 5, 5), 5x5 kernel -> {cols.shape}", file=out)
    cols = fastconv.im2col(np.zeros((1, 3, 5, 5)), 3, stride=1, padding=1)
    print(f"im2col of (1, 3, 5, 5), 3x3 kernel, stride 1, pad 1 -> {cols.shape}", file=out)

    case = _bench.make_case("cifar", "conv2d", impls=("fastconv", "reference"))
    d = case.dims
    print(f"\nTiming conv2d on the cifar shape: x ({d['N']}, {d['C']}, {d['H']}, {d['W']}), "
          f"{d['K']} filters {d['kernel']}x{d['kernel']}, pad {d['pad']}, float32, "
          f"{fastconv.get_num_threads()} threads", file=out)
    fast = _median_seconds(case.impls["fastconv"], repeat=10)
    print(f"  fastconv.conv2d:  {fast * 1e3:8.2f} ms", file=out)
    if "reference" in case.impls:
        slow = _median_seconds(case.impls["reference"], repeat=3)
        verdict = (f"fastconv is {slow / fast:.1f}x faster" if slow >= fast
                   else f"fastconv is {fast / slow:.1f}x slower")
        print(f"  reference.conv2d: {slow * 1e3:8.2f} ms  -> {verdict}", file=out)
    else:
        print("  (fastconv.reference is not importable here; no comparison)", file=out)
    print("More: python -m fastconv bench --quick", file=out)


def build_parser():
    """The ``python -m fastconv`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m fastconv",
        description="fastconv: im2col, col2im and conv2d kernels for NumPy.")
    parser.add_argument("--version", action="version", version=f"fastconv {fastconv.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench", help="time fastconv against fastconv.reference and PyTorch",
        description="Time fastconv against fastconv.reference and PyTorch on the canonical "
                    "shapes. speedup = other time / fastconv time (> 1: fastconv is faster).")
    _bench.add_arguments(bench)
    commands.add_parser("demo", help="the specification's worked examples and one timing")
    commands.add_parser("config", help="print fastconv.show_config()")
    return parser


def main(argv=None):
    """Run ``python -m fastconv`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _bench.run(args)
    if args.command == "demo":
        demo()
        return 0
    if args.command == "config":
        fastconv.show_config()
        return 0
    parser.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())
