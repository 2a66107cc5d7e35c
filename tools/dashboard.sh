#!/usr/bin/env bash
# Run a few asv benchmarks against the working tree, publish the dashboard and
# check in headless Chromium that its graphs are drawn.
#
#   tools/dashboard.sh [--out DIR] [--wheel WHEEL | --python PY] [--bench NAME]...
#
#   --out DIR     where everything goes (default .asv/dashboard in the checkout):
#                 asv.conf.json (derived from the checkout's), results/, html/,
#                 screenshots/NAME.png
#   --wheel WHEEL install this fastconv wheel instead of building the working tree
#   --python PY   use this interpreter as it is (fastconv and asv installed in it)
#                 instead of a fresh venv
#   --bench NAME  a benchmark's dotted asv name, repeatable (default: the three in
#                 DEFAULT_BENCH below, about a minute of `asv run --quick`)
#
# Steps: a fresh venv in a temporary folder with asv and fastconv (the wheel, or
# `pip install` of the working tree); `asv machine --yes`; `asv run
# --python=same --quick --set-commit-hash HEAD --bench ...` (the installed
# fastconv, recorded under the checkout's HEAD commit and current branch);
# `asv publish`; tools/asv_offline.py (asv's page loads jQuery, flot and
# Bootstrap from CDNs; the copies come from Debian's libjs packages);
# tools/check_dashboard.py (python -m http.server + headless Chromium: the DOM
# of each graph page, a canvas probe, a screenshot). Exits non-zero when any
# step fails or a graph is missing.
#
# Needs Chromium and Debian's JavaScript packages (CI's .ci/ship installs them):
#   apt-get install -y chromium libjs-jquery libghc-js-flot-data libjs-bootstrap \
#       libjs-jquery-stupidtable node-blueimp-md5
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEFAULT_BENCH=(
    bench_conv2d.Conv2d.time_fastconv
    bench_im2col.Im2col.time_fastconv
    bench_conv2d.Conv2dVsReference.track_speedup_vs_reference
)
OUT=$ROOT/.asv/dashboard
WHEEL=
PYBIN=
BENCH=()
usage() { sed -n '2,/^# Steps/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ "$#" -gt 0 ]; do
    case $1 in
        --out) OUT=${2:?--out needs a folder}; shift 2 ;;
        --wheel) WHEEL=${2:?--wheel needs a file}; shift 2 ;;
        --python) PYBIN=${2:?--python needs an interpreter}; shift 2 ;;
        --bench) BENCH+=("${2:?--bench needs a name}"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "dashboard: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
[ "${#BENCH[@]}" -gt 0 ] || BENCH=("${DEFAULT_BENCH[@]}")
[ -z "$WHEEL" ] || [ -z "$PYBIN" ] || { echo "dashboard: --wheel and --python exclude each other" >&2; exit 2; }
[ -z "$WHEEL" ] || WHEEL=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

START=$SECONDS
step() { printf '\n== dashboard [%ss] %s\n' "$((SECONDS - START))" "$*"; }
fail() { echo "dashboard: FAILED: $*" >&2; exit 1; }

command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
    || fail "no chromium on PATH (Debian: apt-get install -y chromium)"
for f in /usr/share/javascript/jquery/jquery.min.js /usr/share/haskell-js-flot/jquery.flot.min.js \
         /usr/share/javascript/bootstrap/js/bootstrap.min.js \
         /usr/share/javascript/jquery-stupidtable/stupidtable.min.js /usr/share/javascript/blueimp-md5/md5.min.js; do
    [ -f "$f" ] || fail "$f is missing: apt-get install -y libjs-jquery libghc-js-flot-data libjs-bootstrap libjs-jquery-stupidtable node-blueimp-md5"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-dashboard.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

COMMIT=$(git -C "$ROOT" rev-parse HEAD)
BRANCH=$(git -C "$ROOT" symbolic-ref --short -q HEAD || echo HEAD)
echo "dashboard: fastconv at $COMMIT ($BRANCH) -> $OUT"
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]; then
    echo "dashboard: note: the working tree has uncommitted changes; asv records them under $COMMIT"
fi

if [ -z "$PYBIN" ]; then
    step "fresh venv: asv + fastconv (${WHEEL:-the working tree})"
    "${PYTHON:-python3}" -m venv "$WORK/venv"
    PYBIN=$WORK/venv/bin/python
    "$PYBIN" -m pip install --quiet --disable-pip-version-check --upgrade pip
    # asv 0.6: tools/asv_offline.py knows the CDN files of its published page
    "$PYBIN" -m pip install --quiet --disable-pip-version-check "asv>=0.6,<0.7"
    if [ -n "$WHEEL" ]; then
        "$PYBIN" -m pip install --quiet --disable-pip-version-check "$WHEEL"
    else
        nice -n 10 "$PYBIN" -m pip install --quiet --disable-pip-version-check "$ROOT"
    fi
fi
# From a folder without a fastconv/ source tree: the installed package must import.
(cd "$WORK" && "$PYBIN" -c "import asv, fastconv; print('dashboard: fastconv', fastconv.__version__, 'from', fastconv.__file__, '| asv', asv.__version__)") \
    || fail "$PYBIN cannot import fastconv and asv"
ASV=("$PYBIN" -m asv)

# asv.conf.json of the checkout, with absolute paths into OUT and the current branch
# (asv publish graphs the commits of its configured branches only).
CONF=$OUT/asv.conf.json
"$PYBIN" - "$ROOT" "$OUT" "$BRANCH" > "$CONF" <<'PY'
import json, sys
root, out, branch = sys.argv[1:]
with open(f"{root}/asv.conf.json") as f:
    conf = json.load(f)
conf.update(repo=root, branches=[branch], benchmark_dir=f"{root}/{conf.get('benchmark_dir', 'benchmarks')}",
            env_dir=f"{out}/env", results_dir=f"{out}/results", html_dir=f"{out}/html")
print(json.dumps(conf, indent=4))
PY

cd "$OUT"
step "asv machine --yes"
"${ASV[@]}" machine --yes --config "$CONF" > "$WORK/machine.log" || { cat "$WORK/machine.log" >&2; fail "asv machine"; }

step "asv run --python=same --quick: ${BENCH[*]}"
SELECT=()
for name in "${BENCH[@]}"; do
    # asv matches a parameterized benchmark as "name(param, ...)"
    # shellcheck disable=SC2016  # the sed script is meant literally
    SELECT+=(--bench "^$(printf '%s' "$name" | sed 's/[.[\*^$()+?{|]/\\&/g')(\\(|\$)")
done
status=0
nice -n 10 "${ASV[@]}" run --config "$CONF" --python=same --quick --show-stderr \
    --set-commit-hash "$COMMIT" "${SELECT[@]}" > "$OUT/asv-run.log" 2>&1 || status=$?
cat "$OUT/asv-run.log"
[ "$status" -eq 0 ] || fail "asv run exited $status"
# Every selected benchmark must have measured something for this commit.
"$PYBIN" - "$OUT/results" "$COMMIT" "${BENCH[@]}" <<'PY' || fail "asv run recorded no result for a selected benchmark"
import glob, json, math, sys
results_dir, commit, names = sys.argv[1], sys.argv[2], sys.argv[3:]
files = glob.glob(f"{results_dir}/*/{commit[:8]}-*.json")
if not files:
    sys.exit(f"dashboard: no results file for {commit[:8]} under {results_dir}")
counts = dict.fromkeys(names, 0)
for path in files:
    with open(path) as f:
        data = json.load(f)
    columns = data["result_columns"]
    for name in names:
        row = data["results"].get(name)
        values = dict(zip(columns, row)).get("result") if row else None
        if values is not None:
            values = values if isinstance(values, list) else [values]
            counts[name] += sum(v is not None and math.isfinite(v) for v in values)
for name, count in counts.items():
    print(f"dashboard: {name}: {count} finite results")
sys.exit(1 if min(counts.values()) == 0 else 0)
PY

step "asv publish"
"${ASV[@]}" publish --config "$CONF" > "$WORK/publish.log" 2>&1 || { cat "$WORK/publish.log" >&2; fail "asv publish"; }
"$PYBIN" "$ROOT/tools/asv_offline.py" "$OUT/html"

step "headless Chromium: are the graphs drawn?"
CHECK=()
for name in "${BENCH[@]}"; do CHECK+=(--bench "$name"); done
"$PYBIN" "$ROOT/tools/check_dashboard.py" "$OUT/html" --shots "$OUT/screenshots" "${CHECK[@]}"
echo "dashboard: OK in $((SECONDS - START)) s; browse it with:"
echo "  python -m http.server --directory '$OUT/html' 8080    # then open http://127.0.0.1:8080/"
