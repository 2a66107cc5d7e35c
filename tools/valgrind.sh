#!/usr/bin/env bash
# Run a representative subset of the tests (a few parametrizations of every public function,
# every dtype of the data movement, awkward memory, out=, empty sizes, forced-parallel calls,
# each SIMD level) under valgrind's memcheck, against a normal (-O3 -g) build of fastconv.
# Fails on any memcheck error: invalid reads/writes, use of uninitialised values, bad frees.
#
#   bash tools/valgrind.sh [PYTEST ARGS...]      e.g. bash tools/valgrind.sh -x
#
# Environment:
#   FASTCONV_VG_VENV   venv to (re)use; default ${TMPDIR:-/tmp}/fastconv-venv-valgrind
#   PYTHON             the interpreter for the venv (default python3)
#
# CPython 3.11 ships no valgrind suppression file: PYTHONMALLOC=malloc sends every allocation
# through malloc instead, so memcheck sees exact object bounds and pymalloc's arena tricks
# raise no false reports. tools/valgrind.supp suppresses the remaining interpreter and glibc
# noise, each entry explained there (mainly: CPython 3.11 computes 0 * an unset digit for
# zero-size ints at every start-up, and memcheck flags every use of the result); none of it
# can hide an error whose innermost frame is in fastconv or NumPy. A canary
# (tools/oob_canary.py) checks first that memcheck reports an out-of-bounds read in a
# fastconv kernel. Leaks are not checked (CPython leaks at exit by design).
# valgrind's CPU has no AVX-512: the micro-kernels run at their AVX2 level (and tests/test_simd.py
# runs the baseline level too).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${FASTCONV_VG_VENV:-${TMPDIR:-/tmp}/fastconv-venv-valgrind}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-valgrind.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)

if ! command -v valgrind >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get install -y valgrind >/dev/null || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }
    fi
    command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
fi

# shellcheck source=tools/_venv.sh
source "$ROOT/tools/_venv.sh"
make_venv "$VENV" "pytest>=7" "hypothesis>=6.80"
install_fastconv "$VENV" "$WORK"

# The subset: node ids and -k filters, small inputs, about 300 tests.
T=$ROOT/tests
TESTS=(
    "$T/test_fuzz_regressions.py"
    "$T/test_im2col.py::test_im2col_matches_reference"
    "$T/test_im2col.py::test_col2im_matches_reference"
    "$T/test_im2col.py::test_every_dtype_round_trip"
    "$T/test_im2col.py::test_awkward_memory"
    "$T/test_im2col.py::test_out_argument"
    "$T/test_im2col.py::test_empty_batch_and_channels"
    "$T/test_im2col.py::test_adjoint_identity"
    "$T/test_im2col.py::test_im2col_property"
    "$T/test_conv2d.py::test_matches_reference"
    "$T/test_conv2d.py::test_property_integers_exact"
    "$T/test_conv2d.py::test_unbatched_and_out"
    "$T/test_conv2d.py::test_awkward_memory_and_inputs_untouched"
    "$T/test_conv2d.py::test_empty_sizes"
    "$T/test_conv2d.py::test_spec_worked_example"
    "$T/test_conv2d_grad.py::test_gradients_match_reference"
    "$T/test_conv2d_grad.py::test_transpose_matches_reference_and_adjoint"
    "$T/test_conv2d_grad.py::test_integer_dtypes_and_unbatched"
    "$T/test_conv2d_grad.py::test_float16_and_out"
    "$T/test_pool.py::test_max_pool2d_matches_reference"
    "$T/test_pool.py::test_avg_pool2d_matches_reference"
    "$T/test_pool.py::test_max_pool2d_backward_matches_reference"
    "$T/test_pool.py::test_avg_pool2d_backward_matches_reference"
    "$T/test_pool.py::test_window_without_input_pixels"
    "$T/test_pool.py::test_nan_and_ties"
    "$T/test_pool.py::test_integer_extremes_are_exact"
    "$T/test_pool.py::test_bitwise_identical_across_threads"
    "$T/test_threads.py"
    "$T/test_simd.py"
)
# a few parametrizations of the large grids: float32 conv, one pool dtype per function
FILTER="not torch and not environment_override and not subprocess \
and (not test_matches_reference or float32) \
and (not test_max_pool2d_matches_reference or float32) \
and (not test_avg_pool2d_matches_reference or (float64 and True-None)) \
and (not test_max_pool2d_backward_matches_reference or float64)"

cd "$WORK"  # outside the checkout: import the installed fastconv
export PYTHONMALLOC=malloc HYPOTHESIS_PROFILE=dev OMP_NUM_THREADS=2
VG=(valgrind --tool=memcheck --error-exitcode=1 --errors-for-leak-kinds=none --leak-check=no
    --track-origins=yes --num-callers=40 --suppressions="$ROOT/tools/valgrind.supp")

# 1. the canary: memcheck must see a deliberate out-of-bounds read in a fastconv kernel
canary=0
"${VG[@]}" --log-file="$WORK/canary.log" "$VENV/bin/python" "$ROOT/tools/oob_canary.py" >/dev/null 2>&1 || canary=$?
if [ "$canary" -ne 1 ] || ! grep -q "Invalid read" "$WORK/canary.log" || ! grep -q "_im2col" "$WORK/canary.log"; then
    cat "$WORK/canary.log" >&2
    echo "valgrind.sh: memcheck missed the canary's out-of-bounds read (exit status $canary)" >&2
    exit 1
fi
echo "== valgrind: the canary's out-of-bounds read in _im2col was reported, as it must be"

# 2. the subset of the tests
status=0
"${VG[@]}" --log-file="$WORK/valgrind.log" \
    "$VENV/bin/python" -m pytest -c "$ROOT/pyproject.toml" --rootdir "$ROOT" -p no:cacheprovider -q \
    -k "$FILTER" "${TESTS[@]}" "$@" 2>&1 | tee "$WORK/pytest.log" || status=$?
summary=$(grep -E "ERROR SUMMARY" "$WORK/valgrind.log" | tail -n 1 || true)
cp "$WORK/valgrind.log" "${TMPDIR:-/tmp}/fastconv-valgrind-last.log"
echo "== valgrind: ${summary#==*== }; pytest/valgrind exit status $status;" \
     "wall time $(( $(date +%s) - start )) s (full log: ${TMPDIR:-/tmp}/fastconv-valgrind-last.log)"
if ! grep -qE "ERROR SUMMARY: 0 errors" <<<"$summary"; then
    grep -nE -B2 -A40 "Invalid (read|write)|uninitialised|Invalid free|Mismatched free" "$WORK/valgrind.log" \
        | head -n 150 >&2 || true
    exit 1
fi
if [ "$status" -eq 5 ]; then
    echo "valgrind.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
