#!/usr/bin/env bash
# Object storage end to end (tests/storage/run.py) against moto_server, an S3-compatible
# server that the script starts on 127.0.0.1 and always stops. Installs moto[server], boto3
# and pyarrow from PyPI if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${CXMETRICS:?path to the cxmetrics binary}"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import moto.server, boto3, pyarrow" 2>/dev/null || ! command -v moto_server >/dev/null; then
  "$PY" -m pip install --quiet --disable-pip-version-check "moto[server]" boto3 pyarrow
fi
"$PY" tests/storage/run.py "$BIN"
