#!/usr/bin/env bash
# `make bench-spark`: the release wheel and pyspark 4.3.0 in a virtual environment kept under
# bench/data, a Spark Connect server on 127.0.0.1 in local-cluster[2,1,EXECUTOR_MB] mode with the
# Python workers' memory limited, bench/spark.py for each size, and the server stopped.
# Executors 2 x 4 GiB heap + Python workers 2 x 5 GiB + the Spark driver's 2 GiB + the
# cxmetrics driver stay under 20 GiB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WHEEL="$(ls dist/cxmetrics-*.whl | head -1)"
DATA="${CXMETRICS_BENCH_DATA:-bench/data}"
VENV="$DATA/venv-spark"
mkdir -p "$DATA"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "pyspark==4.3.0" "pandas<3" \
    pyarrow polars grpcio grpcio-status googleapis-common-protos protobuf zstandard
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"
export EXECUTOR_MB="${EXECUTOR_MB:-4096}" PYWORKER_MB="${PYWORKER_MB:-5120}"
# spark.rdd.compress: the persisted frames are kept on the executors' disks (DISK_ONLY), where
# Spark does not compress them by default; at 10M customers the run needs tens of GiB there.
export SPARK_EXTRA_CONF="--driver-memory 2g --conf spark.executor.pyspark.memory=${PYWORKER_MB}m --conf spark.rdd.compress=true"
source tests/spark/server.sh
trap stop_server EXIT
start_server "$(cd "$VENV" && pwd)/bin/python" "$(cd "$DATA" && pwd)/spark-server"
"$VENV/bin/python" bench/spark.py "$PORT" "$@"
