#!/usr/bin/env bash
# The report in a real browser: runs the example job (which writes report.html with its
# tables), checks that `cxmetrics report` on the result writes the same bytes, opens the page in
# Debian's headless Chromium with the network blocked, and compares every value mark on the
# page with the Parquet tables. Installs Chromium (Debian package) and playwright-core (npm,
# without its browser download) when missing. Screenshots go to SHOTS (default: a temporary
# directory; `make report-screenshots` keeps them under out/).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${CXMETRICS:?path to the cxmetrics binary}"
PY="${PYTHON:-python3}"
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! "$PY" -c "import duckdb" 2>/dev/null; then
  "$PY" -m pip install --quiet --disable-pip-version-check duckdb
fi
(cd tests/report && npm ci --no-audit --no-fund --silent)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
SHOTS="${SHOTS:-$WORK/shots}"
OUT="$WORK/example"
"$BIN" run jobs/example.yaml --output-dir "$OUT" >/dev/null 2>"$WORK/run.log" || { cat "$WORK/run.log"; exit 1; }
test -f "$OUT/report.html"
"$BIN" report "$OUT" --out "$WORK/again.html" >/dev/null
cmp "$OUT/report.html" "$WORK/again.html"
node tests/report/open.mjs "$OUT/report.html" "$WORK/seen.json" "$SHOTS"
"$PY" tests/report/verify.py "$WORK/seen.json" "$OUT" \
  scorecard trends retention churn activation support value clv-validation cx-impact run
echo "report: screenshots in $SHOTS"
