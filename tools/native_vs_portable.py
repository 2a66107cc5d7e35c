"""Compare the portable build (run-time SIMD dispatch) with a ``-march=native`` build.

A wheel cannot assume the build machine's instruction set, so fastconv
compiles its micro-kernels for several levels and picks one at import. This
script measures what that costs: it builds a second copy of the working tree
with ``FASTCONV_EXTRA_CFLAGS=-march=native`` in a temporary directory, then
times both builds in alternating subprocesses (one thread, CPU time of the
calling thread, best of ``--repeat`` calls per process, best of ``--rounds``
processes) on the canonical shapes, and prints native time / portable time
(1.0: the portable build is as fast; the project's goal is >= 0.9).

Run from the repository root with fastconv built in place (``pip install -e .``
or ``python setup.py build_ext --inplace``)::

    python tools/native_vs_portable.py [--ops conv2d,grad_input,grad_weight] [--shapes ...]

Unset ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` for the run if they are set.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One timing in a fresh process: argv = tree, op, shape name, repeat; prints seconds.
_TIMER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import fastconv
from fastconv import _bench
fastconv.set_num_threads(1)
case = _bench.make_case(sys.argv[3], sys.argv[2], impls=("fastconv",))
case.run("fastconv")
best = float("inf")
for _ in range(int(sys.argv[4])):
    t0 = time.thread_time()
    case.run("fastconv")
    best = min(best, time.thread_time() - t0)
print(fastconv.__file__, best)
"""


def build_native(dest):
    """Copy the tracked files of the working tree to ``dest`` and build them with -march=native."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, files.decode().split("\0")):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)
    env = dict(os.environ, FASTCONV_EXTRA_CFLAGS="-march=native")
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=dest, env=env,
                   check=True, capture_output=True)


def time_once(tree, op, shape, repeat):
    out = subprocess.run([sys.executable, "-c", _TIMER, str(tree), op, shape, str(repeat)],
                         cwd=tempfile.gettempdir(), check=True, capture_output=True, text=True).stdout.split()
    if not out[0].startswith(str(tree)):
        raise RuntimeError(f"imported fastconv from {out[0]}, not from {tree}")
    return float(out[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", default="conv2d,grad_input,grad_weight")
    parser.add_argument("--shapes", default="cifar,resnet-mid,resnet-deep,strided,stem,dilated,depthwise")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per process (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per build and row (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fastconv-native-") as tmp:
        native = Path(tmp)
        print(f"building a -march=native copy in {native} ...", flush=True)
        build_native(native)
        print(f"{'op':12s} {'shape':12s} {'portable ms':>12s} {'native ms':>10s} {'native/portable':>16s}")
        ratios = []
        for op in args.ops.split(","):
            for shape in args.shapes.split(","):
                best = {"portable": float("inf"), "native": float("inf")}
                for _ in range(args.rounds):  # alternate, so drifts of the machine hit both
                    for name, tree in (("portable", ROOT), ("native", native)):
                        best[name] = min(best[name], time_once(tree, op, shape, args.repeat))
                ratio = best["native"] / best["portable"]
                ratios.append(ratio)
                print(f"{op:12s} {shape:12s} {best['portable'] * 1e3:12.2f} {best['native'] * 1e3:10.2f} "
                      f"{ratio:16.3f}", flush=True)
        print(f"portable speed as a fraction of native: {min(ratios):.3f} (worst row) .. {max(ratios):.3f}")


if __name__ == "__main__":
    main()
