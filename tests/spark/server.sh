# Sourced: `start_server PYTHON DIR` starts a Spark Connect server from the pyspark that PYTHON
# imports, on 127.0.0.1 and a free port ($PORT), in local-cluster[2,1,$EXECUTOR_MB] mode, with
# its logs and pid file under DIR; `stop_server` stops it and every process it started.
EXECUTOR_MB="${EXECUTOR_MB:-1024}"
start_server() {
  local py="$1" dir="$2"
  # A server that was killed leaves its blocks and shuffle files in spark.local.dir; they
  # are nobody's now, and can be tens of GiB.
  rm -rf "$dir/local"
  mkdir -p "$dir"
  SPARK_DIR="$dir"
  export SPARK_HOME
  SPARK_HOME="$("$py" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
  PORT="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="$dir/logs" SPARK_PID_DIR="$dir/pids" \
  SPARK_IDENT_STRING="cxmetrics-test-$PORT" SPARK_WORKER_DIR="$dir/work" PYSPARK_PYTHON="$py" \
    "$SPARK_HOME/sbin/start-connect-server.sh" \
    --master "local-cluster[2,1,$EXECUTOR_MB]" \
    --conf spark.connect.grpc.binding.address=127.0.0.1 \
    --conf "spark.connect.grpc.binding.port=$PORT" \
    --conf spark.driver.host=127.0.0.1 \
    --conf spark.driver.bindAddress=127.0.0.1 \
    --conf spark.ui.enabled=false \
    --conf "spark.executor.memory=${EXECUTOR_MB}m" \
    --conf "spark.pyspark.python=$py" \
    --conf "spark.local.dir=$dir/local" \
    ${SPARK_EXTRA_CONF:-} >/dev/null
  for _ in $(seq 1 120); do
    if grep -q "Spark Connect server started" "$dir"/logs/*.out 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  echo "the Spark Connect server did not start; its log:" >&2
  tail -50 "$dir"/logs/*.out >&2 || true
  return 1
}
stop_server() {
  [ -n "${SPARK_DIR:-}" ] || return 0
  SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="$SPARK_DIR/logs" SPARK_PID_DIR="$SPARK_DIR/pids" \
  SPARK_IDENT_STRING="cxmetrics-test-$PORT" \
    "$SPARK_HOME/sbin/stop-connect-server.sh" >/dev/null 2>&1 || true
  # The executors of local-cluster mode (their class path is this pyspark's), should any
  # outlive their server; then wait for them to be gone.
  local p i
  for i in $(seq 1 20); do
    local left=""
    for p in $(pgrep -f CoarseGrainedExecutorBackend || true); do
      if { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF "$SPARK_HOME/"; then
        left="$left $p"
        [ "$i" -gt 5 ] && kill -9 "$p" 2>/dev/null
      fi
    done
    [ -z "$left" ] && break
    sleep 1
  done
  SPARK_DIR=""
}
