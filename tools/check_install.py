#!/usr/bin/env python3
"""Check an installed fastconv (a wheel, or a build from the sdist) before its tests run.

Run it with the interpreter of the environment under test, from a directory
that holds no ``fastconv/`` source folder::

    python check_install.py --openmp 1 [--version 0.1.0] [--bundled-libgomp]

It checks, and exits 1 naming each failure:

* ``import fastconv`` loads the installed package (``site-packages``), not a
  source tree, and its compiled kernels import;
* ``fastconv.__version__`` equals the installed distribution's metadata
  version (both come from ``fastconv/_version.py``), and both equal
  ``--version`` when it is given;
* OpenMP is compiled in (``--openmp 1``) or not (``--openmp 0``), as
  reported by the kernels and by ``show_config()``, and with OpenMP two
  threads can really be asked for;
* ``fastconv.simd_levels()`` lists every level this CPU supports: on Linux
  x86-64 that is ``baseline``, plus ``avx2`` when ``/proc/cpuinfo`` has avx2
  and fma, plus ``avx512`` when it has avx512f (elsewhere only ``baseline``
  is required), so a wheel built without ``-march`` still carries the
  dispatching micro-kernels;
* with ``--bundled-libgomp`` (an auditwheel-repaired Linux wheel), the
  OpenMP runtime mapped into the process is the copy in ``fastconv.libs/``,
  not the system's ``libgomp``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
import sysconfig
from pathlib import Path


def expected_simd_levels() -> list[str] | None:
    """The levels this CPU supports, or None where they cannot be read here."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine().lower() not in ("x86_64", "amd64") or not cpuinfo.is_file():
        return None
    flags = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    levels = ["baseline"]
    if {"avx2", "fma"} <= flags or "avx512f" in flags:
        levels.append("avx2")
    if "avx512f" in flags:
        levels.append("avx512")
    return levels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check an installed fastconv.")
    parser.add_argument("--version", help="the version the install must report "
                                          "(default: whatever its metadata says, which __version__ must match)")
    parser.add_argument("--openmp", choices=("0", "1"), required=True, help="1: OpenMP must be on; 0: off")
    parser.add_argument("--bundled-libgomp", action="store_true",
                        help="the libgomp in use must be the wheel's own copy in fastconv.libs/")
    args = parser.parse_args(argv)
    failures = []

    def check(ok, message):
        print(f"  {'ok  ' if ok else 'FAIL'} {message}")
        if not ok:
            failures.append(message)

    import fastconv
    from fastconv._config import config_dict
    from fastconv._kernels import _openmp_helpers

    location = Path(fastconv.__file__).resolve().parent
    purelib = Path(sysconfig.get_paths()["purelib"]).resolve()
    platlib = Path(sysconfig.get_paths()["platlib"]).resolve()
    print(f"check_install: {sys.executable}, fastconv from {location}")
    check(location.parent in (purelib, platlib), f"fastconv is imported from site-packages ({location.parent})")

    meta = importlib.metadata.version("fastconv")
    check(fastconv.__version__ == meta, f"fastconv.__version__ {fastconv.__version__!r} == metadata version {meta!r}")
    if args.version is not None:
        check(meta == args.version, f"installed version {meta!r} == {args.version!r}")

    config = config_dict()
    want = args.openmp == "1"
    check(_openmp_helpers.openmp_enabled() is want, f"kernels compiled with OpenMP: {_openmp_helpers.openmp_enabled()}")
    check(config["openmp"] is want, f"show_config() reports openmp: {config['openmp']}")
    if want:
        with fastconv.num_threads(2):
            threads = fastconv.get_num_threads()
        check(threads == 2, f"num_threads(2) gives {threads} threads")

    levels = list(fastconv.simd_levels())
    expected = expected_simd_levels()
    if expected is None:
        check(levels[:1] == ["baseline"], f"simd_levels() {levels} starts with 'baseline' "
                                          f"(no /proc/cpuinfo x86-64 flags to compare with here)")
    else:
        check(levels == expected, f"simd_levels() {levels} == {expected} (from /proc/cpuinfo)")

    if args.bundled_libgomp:
        maps = Path("/proc/self/maps")
        if not maps.is_file():
            check(False, "--bundled-libgomp needs /proc/self/maps (Linux)")
        else:
            gomp = sorted({line.split()[-1] for line in maps.read_text().splitlines() if "libgomp" in line})
            bundled = location.parent / "fastconv.libs"
            check(bool(gomp) and all(Path(p).resolve().parent == bundled.resolve() for p in gomp),
                  f"libgomp in use is the wheel's copy in {bundled}: {gomp or 'no libgomp mapped'}")

    if failures:
        print(f"check_install: {len(failures)} check(s) FAILED", file=sys.stderr)
        return 1
    print("check_install: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
