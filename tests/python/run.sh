#!/usr/bin/env bash
# The Python package (tests/python/run.py): builds a wheel with maturin (debug profile, sharing
# the crate's build), installs it with polars into a fresh virtual environment, and checks the
# API and `python -m cxmetrics` against the binary. Installs maturin from PyPI if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${CXMETRICS:?path to the cxmetrics binary}"
PY="${PYTHON:-python3}"
if ! "$PY" -m maturin --version >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --disable-pip-version-check "maturin==1.16.0"
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$PY" -m maturin build --quiet --profile dev -m python/Cargo.toml --out "$WORK/wheels"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check "$WORK"/wheels/cxmetrics-*.whl polars
"$PY" tests/python/run.py "$BIN" "$WORK"/wheels/cxmetrics-*.whl "$WORK/venv/bin/python"
