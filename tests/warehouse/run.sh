#!/usr/bin/env bash
# Warehouse types end to end (tests/warehouse/run.py): Decimal and integer-cents money inputs,
# `output.money: decimal`, plain UTF-8 strings. Installs duckdb and pyarrow from PyPI if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${CXMETRICS:?path to the cxmetrics binary}"
PY="${PYTHON:-python3}"
. tests/python-deps.sh
need duckdb pyarrow
"$PY" tests/warehouse/run.py "$BIN"
