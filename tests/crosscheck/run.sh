#!/usr/bin/env bash
# Runs cxmetrics on the sample data with several calendars and parameter sets and compares
# every output table with an independent DuckDB implementation of its README definition.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${CXMETRICS:?path to the cxmetrics binary}"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import duckdb" 2>/dev/null; then
  "$PY" -m pip install --quiet --disable-pip-version-check duckdb
fi
exec "$PY" tests/crosscheck/run.py "$BIN" sample-data
