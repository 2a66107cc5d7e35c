#!/usr/bin/env python3
"""Check that a fastconv sdist holds what it must and nothing it must not.

Usage::

    python tools/check_sdist.py dist/fastconv-X.Y.Z.tar.gz [--root CHECKOUT]

The sdist must

* unpack into one folder ``fastconv-<version>/``, where ``<version>`` is
  ``fastconv/_version.py``'s, and its ``PKG-INFO`` must say the same name
  and version;
* hold every file ``git ls-files`` lists in the checkout, except the CI
  scripts (:data:`NOT_SHIPPED`): sources, kernels' ``.pyx``, ``.pxd`` and
  ``.h``, tests, examples, benchmarks, docs, tools, licence, readme,
  changelog (``--no-git`` checks only :data:`ALWAYS_REQUIRED`);
* hold no generated or build file (:data:`FORBIDDEN`: Cython's C output,
  compiled objects, ``_build_info.py``, ``.asv``, ``docs/_build`` ...) and,
  with git, no file that is not under version control apart from the
  metadata setuptools writes (:data:`GENERATED_METADATA`).

Exits 1 with one line per problem, 0 with a one-line summary.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import subprocess
import sys
import tarfile
from email.parser import HeaderParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Tracked files that stay out of the sdist (prefixes of their paths).
NOT_SHIPPED = (".ci/", ".gitignore", ".gitattributes", ".github/")

#: Files every sdist must hold, with or without git.
ALWAYS_REQUIRED = (
    "PKG-INFO", "pyproject.toml", "setup.py", "MANIFEST.in", "LICENSE", "README.md", "CHANGELOG.md",
    "fastconv/__init__.py", "fastconv/_version.py", "fastconv/_kernels/__init__.py",
    "fastconv/_kernels/_conv_direct.pyx", "fastconv/_kernels/_im2col.pyx", "fastconv/_kernels/_pool.pyx",
    "fastconv/_kernels/_openmp_helpers.pyx", "fastconv/_kernels/_openmp.pxd",
    "fastconv/_kernels/conv_tile.h", "fastconv/_kernels/conv_tile_impl.h", "fastconv/_kernels/im2col_block.h",
    "tests/conftest.py", "docs/conf.py", "docs/index.rst", "benchmarks/__init__.py", "asv.conf.json",
    "tools/check_install.py",
)

#: Never in an sdist (fnmatch patterns on the path inside the sdist's folder).
FORBIDDEN = (
    "fastconv/_kernels/*.c", "fastconv/_kernels/*.html", "fastconv/_build_info.py",
    "*.so", "*.pyd", "*.o", "*.pyc", "*/__pycache__/*", "*.whl",
    ".asv/*", "docs/_build/*", "docs/_static/*", "build/*", "dist/*", ".git/*",
    ".pytest_cache/*", ".hypothesis/*", *(p + "*" if p.endswith("/") else p for p in NOT_SHIPPED),
)

#: Untracked files that setuptools itself writes into every sdist.
GENERATED_METADATA = ("PKG-INFO", "setup.cfg", "fastconv.egg-info/*")


def read_version(root: Path) -> str:
    text = (root / "fastconv" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    if not match:
        raise SystemExit(f"check_sdist: no __version__ in {root}/fastconv/_version.py")
    return match.group(1)


def tracked_files(root: Path) -> set[str] | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {name for name in out.decode().split("\0") if name}


def matches(path: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def check(sdist: Path, root: Path, use_git: bool = True) -> tuple[list[str], str]:
    """Return (problems, summary) for ``sdist`` against the checkout ``root``."""
    problems = []
    version = read_version(root)
    top = f"fastconv-{version}"
    if not sdist.name == f"{top}.tar.gz":
        problems.append(f"file name {sdist.name!r} is not {top}.tar.gz")
    with tarfile.open(sdist, "r:gz") as tar:
        members = tar.getmembers()
        pkg_info = None
        files = set()
        for member in members:
            if member.name != top and not member.name.startswith(top + "/"):
                problems.append(f"{member.name}: outside the top folder {top}/")
                continue
            if member.issym() or member.islnk():
                problems.append(f"{member.name}: a link")
            if member.isfile():
                rel = member.name[len(top) + 1:]
                files.add(rel)
                if rel == "PKG-INFO":
                    pkg_info = tar.extractfile(member).read().decode("utf-8")

    if pkg_info is not None:
        headers = HeaderParser().parsestr(pkg_info)
        if headers.get("Name") != "fastconv" or headers.get("Version") != version:
            problems.append(f"PKG-INFO says {headers.get('Name')} {headers.get('Version')}, "
                            f"fastconv/_version.py says fastconv {version}")

    required = set(ALWAYS_REQUIRED)
    tracked = tracked_files(root) if use_git else None
    if use_git and tracked is None:
        problems.append(f"{root} is not a git checkout (git ls-files failed); use --no-git to skip that part")
    if tracked is not None:
        required |= {name for name in tracked if not name.startswith(NOT_SHIPPED)}
        for name in sorted(files - tracked):
            if not matches(name, GENERATED_METADATA) and not matches(name, FORBIDDEN):
                problems.append(f"{name}: in the sdist but not under version control")
    for name in sorted(required - files):
        problems.append(f"{name}: missing")
    for name in sorted(files):
        if matches(name, FORBIDDEN):
            problems.append(f"{name}: must not be in the sdist (generated, build output or CI-only)")
    summary = (f"{sdist.name}: {len(files)} files, all {len(required)} required present, "
               f"nothing generated{', nothing untracked' if tracked is not None else ''}")
    return problems, summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check a fastconv sdist's contents.")
    parser.add_argument("sdist", type=Path)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout it was built from (default: this one)")
    parser.add_argument("--no-git", action="store_true", help="do not compare with git ls-files")
    args = parser.parse_args(argv)
    problems, summary = check(args.sdist, args.root.resolve(), use_git=not args.no_git)
    if problems:
        print(f"check_sdist: {args.sdist} FAILED ({len(problems)} problems):", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"check_sdist: OK: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
