# Helpers shared by tools/run_fuzz.sh, tools/sanitize.sh and tools/valgrind.sh (sourced, not run).
#
#   make_venv VENV PACKAGE...     create VENV (with $PYTHON, default python3) if missing, then
#                                 pip-install the build requirements and PACKAGE... from PyPI
#   install_fastconv VENV WORK    build fastconv from a copy of this checkout (tracked and
#                                 untracked, not ignored, files) in WORK/src and install it into
#                                 VENV, non-editable; extra build settings come from the
#                                 environment (CC, FASTCONV_EXTRA_CFLAGS, FASTCONV_NO_OPENMP...)
#
# The copy means no build/ directory or in-place .so of another build is ever reused, and the
# checkout is left untouched.

make_venv() {
    local venv=$1
    shift
    if [ ! -x "$venv/bin/python" ]; then
        "${PYTHON:-python3}" -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
    fi
    "$venv/bin/pip" install --quiet "setuptools>=77" "Cython>=3.1" "numpy>=2.0" wheel "threadpoolctl>=3.1" "$@"
}

install_fastconv() {
    local venv=$1 work=$2 root
    root=$(git -C "$(dirname "${BASH_SOURCE[0]}")/.." rev-parse --show-toplevel)
    mkdir -p "$work/src"
    git -C "$root" ls-files -z --cached --others --exclude-standard \
        | tar -C "$root" --null -T - -cf - | tar -C "$work/src" -xf -
    if ! (cd "$work/src" && "$venv/bin/pip" install --no-build-isolation --no-deps --force-reinstall .) \
            > "$work/build.log" 2>&1; then
        cat "$work/build.log" >&2
        echo "building fastconv failed (log above)" >&2
        return 1
    fi
}
