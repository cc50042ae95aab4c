#!/usr/bin/env bash
# The Spark engine for real (tests/spark/run.py): the release wheel (`make wheel`, in dist/)
# and pyspark 4.3.0 from PyPI installed into a fresh virtual environment, a Spark Connect server
# started on 127.0.0.1 in local-cluster[2,1,1024] mode (two executor processes, whose Python
# workers import the installed wheel), the checks, and the server stopped whatever happens.
# boto3 and moto[server] (an S3-compatible server the checks start on 127.0.0.1) are for the
# object-storage output check.
# Java 17 comes from Debian's openjdk-17-jre-headless when the machine has no java.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
WHEEL="$(ls dist/cxmetrics-*.whl 2>/dev/null | head -1)"
[ -n "$WHEEL" ] || { echo "no wheel in dist/: run make wheel" >&2; exit 1; }
if ! command -v java >/dev/null 2>&1; then
  apt-get install -y --no-install-recommends openjdk-17-jre-headless >/dev/null
fi
WORK="$(mktemp -d)"
source tests/spark/server.sh
trap 'stop_server; rm -rf "$WORK" 2>/dev/null || true' EXIT
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --disable-pip-version-check "$WHEEL" "pyspark==4.3.0" \
  "pandas<3" pyarrow polars grpcio grpcio-status googleapis-common-protos protobuf zstandard \
  boto3 "moto[server]"
start_server "$VPY" "$WORK/spark"
"$VPY" tests/spark/run.py "$PORT" "$WORK" "${SPARK_TEST_CUSTOMERS:-200000}"
