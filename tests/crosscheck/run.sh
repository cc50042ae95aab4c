#!/usr/bin/env bash
# Runs cxmetrics on the sample data with several calendars and parameter sets and compares
# every output table with an independent DuckDB implementation of its definition (docs/metrics).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${CXMETRICS:?path to the cxmetrics binary}"
PY="${PYTHON:-python3}"
. tests/python-deps.sh
need duckdb mpmath
"$PY" tests/crosscheck/run.py "$BIN" sample-data
# Also a generated set of another shape: 2,000 customers at half the activity. On this set 3
# of 1,470 customers once got the wrong value tier (a share of exactly 0.1 or 0.5, see the
# CHANGELOG), which the sample data never showed.
GEN="$(mktemp -d)"
trap 'rm -rf "$GEN"' EXIT
"$BIN" generate --out "$GEN" --customers 2000 --seed 11 --intensity 0.5 --days 900 >/dev/null
"$PY" tests/crosscheck/run.py "$BIN" "$GEN"
