#!/usr/bin/env bash
# The Looker model (tests/lookml/run.py): `cxmetrics lookml` parsed with `lkml`, and every
# measure run in DuckDB against the tables it re-aggregates. Installs duckdb and lkml from
# PyPI if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${CXMETRICS:?path to the cxmetrics binary}"
PY="${PYTHON:-python3}"
. tests/python-deps.sh
need duckdb lkml
"$PY" tests/lookml/run.py "$BIN"
