#!/usr/bin/env bash
# Build fastconv with AddressSanitizer + UndefinedBehaviorSanitizer in a dedicated venv and run
# the WHOLE test suite against it, with the sanitizer runtimes LD_PRELOADed into (uninstrumented)
# CPython. Fails on any test failure and on any sanitizer report, even one printed by a
# subprocess or swallowed by pytest's capture: the output and the sanitizers' report files
# are grepped as well as the exit code checked.
#
#   bash tools/sanitize.sh [PYTEST ARGS...]      e.g. bash tools/sanitize.sh -x -k im2col
#
# Environment:
#   FASTCONV_SAN_VENV   venv to (re)use; default ${TMPDIR:-/tmp}/fastconv-venv-san
#   FASTCONV_SAN_OPENMP 1 (default): OpenMP build, run with 2 threads and every call forced
#                       parallel by the tests that do so; 0: a serial build (FASTCONV_NO_OPENMP=1)
#   CC                  compiler (default gcc; clang works too with its own runtimes)
#   PYTHON              the interpreter for the venv (default python3)
#
# Runtime options (ASAN_OPTIONS / UBSAN_OPTIONS below): leak detection is off because CPython
# itself leaks at exit; allocator_may_return_null=1 keeps the tests' huge-allocation cases
# raising MemoryError as without ASan instead of aborting on "allocation-size-too-big".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
CC=${CC:-gcc}
VENV=${FASTCONV_SAN_VENV:-${TMPDIR:-/tmp}/fastconv-venv-san}
OPENMP=${FASTCONV_SAN_OPENMP:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-san.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)

command -v "$CC" >/dev/null || { echo "sanitize.sh: compiler $CC not found" >&2; exit 2; }
# the runtimes, found the way the compiler itself finds them
if [[ "$CC" == *clang* ]]; then
    ASAN_RT=$("$CC" -print-file-name=libclang_rt.asan-x86_64.so)
    UBSAN_RT=$("$CC" -print-file-name=libclang_rt.ubsan_standalone-x86_64.so)
    PRELOAD="$ASAN_RT"  # clang's ASan runtime already contains UBSan's
else
    ASAN_RT=$("$CC" -print-file-name=libasan.so)
    UBSAN_RT=$("$CC" -print-file-name=libubsan.so)
    PRELOAD="$ASAN_RT:$UBSAN_RT"
fi
for rt in "$ASAN_RT" "$UBSAN_RT"; do
    if [ ! -e "$rt" ]; then
        echo "sanitize.sh: sanitizer runtime $rt not found (Debian: apt-get install libasan8 libubsan1," \
             "or libclang-rt-14-dev for clang)" >&2
        exit 2
    fi
done

# ---- the venv (build requirements and test dependencies from PyPI) and the sanitized build
# shellcheck source=tools/_venv.sh
source "$ROOT/tools/_venv.sh"
make_venv "$VENV" "pytest>=7" "hypothesis>=6.80" "scikit-learn>=1.0"
SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g"
echo "== sanitize: building with CC=$CC $SAN_FLAGS (OpenMP=$OPENMP)"
if [ "$OPENMP" = 1 ]; then NO_OMP=0; else NO_OMP=1; fi
# FASTCONV_EXTRA_*FLAGS (setup.py) reach the extensions but not the OpenMP probe, whose test
# program would not link with -fsanitize in plain CFLAGS (the build would silently go serial)
CC="$CC" LDSHARED="$CC -shared" FASTCONV_EXTRA_CFLAGS="$SAN_FLAGS" \
    FASTCONV_EXTRA_LDFLAGS="-fsanitize=address,undefined" FASTCONV_NO_OPENMP=$NO_OMP \
    install_fastconv "$VENV" "$WORK"
SO=$(find "$VENV/lib" -path "*site-packages/fastconv/_kernels/_im2col*.so" -print -quit)
if [ "$(nm -D "$SO" | grep -c __asan_)" = 0 ]; then  # (not grep -q: SIGPIPE under pipefail)
    echo "sanitize.sh: $SO is not instrumented" >&2
    exit 1
fi

# ---- the whole suite, from outside the checkout so that the installed (sanitized) fastconv is imported
export LD_PRELOAD="$PRELOAD"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=0${ASAN_EXTRA:+:$ASAN_EXTRA}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONMALLOC=malloc  # every Python object through malloc: ASan sees them all
export FASTCONV_EXPECT_OPENMP=$OPENMP
[ "$OPENMP" = 1 ] && export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$WORK"
# the canary: ASan must stop a deliberate out-of-bounds read in a fastconv kernel
canary=0
"$VENV/bin/python" "$ROOT/tools/oob_canary.py" > "$WORK/canary.log" 2>&1 || canary=$?
if [ "$canary" -eq 0 ] || ! grep -q "ERROR: AddressSanitizer: heap-buffer-overflow" "$WORK/canary.log"; then
    cat "$WORK/canary.log" >&2
    echo "sanitize.sh: AddressSanitizer missed the canary's out-of-bounds read (exit status $canary)" >&2
    exit 1
fi
echo "== sanitize: the canary's out-of-bounds read was stopped by AddressSanitizer, as it must be"
"$VENV/bin/python" -c "import fastconv; assert fastconv.__file__.startswith('$VENV'), fastconv.__file__; \
    fastconv.show_config(); from fastconv._kernels import _openmp_helpers as h; \
    assert h.openmp_enabled() == ($OPENMP == 1), 'OpenMP state of the sanitized build is not as requested'"
status=0
# Reports go to files as well: pytest captures file descriptor 2 during each test, so a report
# printed by a test that the sanitizer then stops would be lost with the capture (the run would
# just end with exit status 1, as it once did).
export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$WORK/report" UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$WORK/report"
"$VENV/bin/python" -m pytest -c "$ROOT/pyproject.toml" --rootdir "$ROOT" -p no:cacheprovider -q \
    "$ROOT/tests" "$@" 2>&1 | tee "$WORK/pytest.log" || status=$?
unset LD_PRELOAD
pattern="ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|AddressSanitizer:DEADLYSIGNAL"
reports=$(cat "$WORK/pytest.log" "$WORK"/report.* 2>/dev/null | grep -cE "$pattern" || true)
echo "== sanitize: pytest exit status $status, sanitizer reports: $reports," \
     "wall time $(( $(date +%s) - start )) s"
if [ "$reports" != 0 ]; then
    cat "$WORK/pytest.log" "$WORK"/report.* 2>/dev/null | grep -nE -A30 "$pattern" | head -n 120 >&2 || true
    exit 1
fi
if [ "$status" -eq 5 ]; then
    echo "sanitize.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
