#!/usr/bin/env bash
# Warehouse types end to end (tests/warehouse/run.py): Decimal and integer-cents money inputs,
# `output.money: decimal`, plain UTF-8 strings. Installs duckdb and pyarrow from PyPI if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${CXMETRICS:?path to the cxmetrics binary}"
PY="${PYTHON:-python3}"
for m in duckdb pyarrow; do
  if ! "$PY" -c "import $m" 2>/dev/null; then
    "$PY" -m pip install --quiet --disable-pip-version-check "$m"
  fi
done
"$PY" tests/warehouse/run.py "$BIN"
