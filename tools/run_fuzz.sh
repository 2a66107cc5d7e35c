#!/usr/bin/env bash
# Fuzz fastconv's public API with tools/fuzz.py (atheris) for a fixed time; print the number of
# executions and every finding. Exits 1 on any finding, crash or timeout, 0 otherwise.
#
#   bash tools/run_fuzz.sh [SECONDS]        default 600
#
# Environment:
#   FASTCONV_FUZZ_VENV    venv to (re)use; default ${TMPDIR:-/tmp}/fastconv-venv-fuzz
#   FASTCONV_FUZZ_DIR     corpus and artifacts; default .fuzz/ in the checkout (git-ignored).
#                         The corpus persists between runs, so each run starts where the last
#                         one stopped; delete the directory for a fresh start.
#   FASTCONV_FUZZ_ARGS    extra libFuzzer flags, e.g. "-seed=1 -max_len=512"
#   FASTCONV_FUZZ_ASAN    1: fuzz a clang build of the kernels with AddressSanitizer and libFuzzer's
#                         coverage counters (-fsanitize=address,fuzzer-no-link), run under atheris's
#                         asan_with_fuzzer.so: an out-of-bounds access in a kernel is a crash, and
#                         the kernels' own branches guide the search. Needs clang (installed with
#                         apt-get when missing and root). Its venv: ...-fuzz-asan. Slower per run.
#
# A finding is written as FASTCONV_FUZZ_DIR/artifacts/finding-<hash> (the input) and
# finding-<hash>.txt (what failed, the decoded call, the traceback); replay one with
# `python tools/fuzz.py FILE`, decode it with `python tools/fuzz.py --show FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_TO_RUN=${1:-600}
ASAN=${FASTCONV_FUZZ_ASAN:-0}
VENV=${FASTCONV_FUZZ_VENV:-${TMPDIR:-/tmp}/fastconv-venv-fuzz$([ "$ASAN" = 1 ] && echo -asan || true)}
DIR=${FASTCONV_FUZZ_DIR:-$ROOT/.fuzz}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# shellcheck source=tools/_venv.sh
source "$ROOT/tools/_venv.sh"
make_venv "$VENV" "atheris>=2.3"
RUN_ENV=()
LIMITS=(-rss_limit_mb=4096)
if [ "$ASAN" = 1 ]; then
    if ! command -v clang >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get install -y clang >/dev/null || { apt-get update >/dev/null && apt-get install -y clang >/dev/null; }
    fi
    command -v clang >/dev/null || { echo "run_fuzz.sh: FASTCONV_FUZZ_ASAN=1 needs clang (apt-get install clang)" >&2; exit 2; }
    CC=clang LDSHARED="clang -shared" \
        FASTCONV_EXTRA_CFLAGS="-fsanitize=address,fuzzer-no-link -fno-omit-frame-pointer -g" \
        FASTCONV_EXTRA_LDFLAGS="-fsanitize=address,fuzzer-no-link" install_fastconv "$VENV" "$WORK"
    ATHERIS=$("$VENV/bin/python" -c "import atheris; print(atheris.path())")
    # no RLIMIT_AS under ASan (its shadow memory is huge): ASan itself refuses allocations over
    # 1 GiB instead (returning NULL: NumPy's MemoryError), so a valid but giant call (a 4 GB
    # column matrix took over a minute to fill under ASan) stays quick
    RUN_ENV=(LD_PRELOAD="$ATHERIS/asan_with_fuzzer.so" PYTHONMALLOC=malloc FASTCONV_FUZZ_RLIMIT_MB=0
             ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=1024:halt_on_error=1")
    LIMITS=(-rss_limit_mb=0)
    canary=0
    (cd "$WORK" && env "${RUN_ENV[@]}" "$VENV/bin/python" "$ROOT/tools/oob_canary.py") > "$WORK/canary.log" 2>&1 \
        || canary=$?
    if [ "$canary" -eq 0 ] || ! grep -q "ERROR: AddressSanitizer" "$WORK/canary.log"; then
        cat "$WORK/canary.log" >&2
        echo "run_fuzz.sh: the ASan build missed the canary's out-of-bounds read" >&2
        exit 1
    fi
    echo "== fuzz: AddressSanitizer build (clang), the canary's out-of-bounds read was caught"
else
    install_fastconv "$VENV" "$WORK"
fi
mkdir -p "$DIR/corpus" "$DIR/artifacts"
before=$(find "$DIR/artifacts" -type f | wc -l)

echo "== fuzz: $SECONDS_TO_RUN s, corpus $DIR/corpus ($(find "$DIR/corpus" -type f | wc -l) inputs)"
status=0
# from outside the checkout, so that the installed fastconv is imported (and instrumented)
(cd "$WORK" && env "${RUN_ENV[@]}" FASTCONV_FUZZ_KEEP_GOING=1 FASTCONV_FUZZ_ARTIFACTS="$DIR/artifacts" \
    "$VENV/bin/python" "$ROOT/tools/fuzz.py" "$DIR/corpus" -max_total_time="$SECONDS_TO_RUN" \
    -timeout=60 "${LIMITS[@]}" -print_final_stats=1 -artifact_prefix="$DIR/artifacts/" \
    ${FASTCONV_FUZZ_ARGS:-}) > "$WORK/fuzz.log" 2>&1 || status=$?
grep -vE "^INFO: Instrumenting|^WARNING: Failed to find function" "$WORK/fuzz.log" | tail -n 25
cp "$WORK/fuzz.log" "$DIR/last-run.log"

runs=$(grep -oE "^Done [0-9]+ runs" "$WORK/fuzz.log" | grep -oE "[0-9]+" || true)
[ -n "$runs" ] || runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$WORK/fuzz.log" | grep -oE "[0-9]+$" || true)
findings=$(grep -c "^=== FINDING" "$WORK/fuzz.log" || true)
echo "== fuzz: ${runs:-?} executions in $SECONDS_TO_RUN s; libFuzzer exit status $status;" \
     "$findings finding(s) this run; $(( $(find "$DIR/artifacts" -type f | wc -l) - before )) new artifact file(s)"
grep "^=== FINDING" "$WORK/fuzz.log" || true
if [ "$status" -ne 0 ] || [ "$findings" -ne 0 ]; then
    echo "fuzz: FAILED (see $DIR/artifacts and $DIR/last-run.log)" >&2
    exit 1
fi
echo "fuzz: no findings"
