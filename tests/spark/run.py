"""The Spark engine against the local engine (run by tests/spark/run.sh, with the venv's Python
that has the release wheel and pyspark, and a Spark Connect server on 127.0.0.1:PORT).

1. A generated data set of CUSTOMERS customers, every pipeline, run by `python -m cxmetrics run`
   locally and on Spark with 1 and with 7 buckets: every table's file is the same bytes (the
   strongest form of "identical rows and order, every column equal"), the manifests list the
   same tables and row counts, `_SUCCESS` is there.
2. The same job on Spark with 7 buckets while one executor's process is killed during the map
   phase: Spark retries, and every table is again the same bytes.
3. Failures: the Rust binary refuses a Spark job and names the entry point (exit 2); an
   unreachable server and a server that accepts but never answers end within the connect
   timeout (exit 3); a quality gate on Spark exits 4 and writes nothing; a file of the wrong
   type exits 3 naming the file and column.
4. A table Spark knows (`table:`) instead of a path, and output to object storage (an
   S3-compatible server, moto_server): every table again the same bytes.

Usage: run.py PORT WORKDIR CUSTOMERS
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

PORT, WORK, CUSTOMERS = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
REMOTE = f"sc://127.0.0.1:{PORT}"
PY = sys.executable
checks = 0
failures = []


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
        print(f"FAIL: {what}", flush=True)


def cx(*args, timeout=3600, stderr_lines=None, env=None):
    """`python -m cxmetrics ARGS`: (exit code, stdout, stderr)."""
    p = subprocess.Popen(
        [PY, "-m", "cxmetrics", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    err = []

    def read_err():
        for line in p.stderr:
            err.append(line)
            if stderr_lines is not None:
                stderr_lines(line)

    out = []
    threads = [threading.Thread(target=read_err),
               threading.Thread(target=lambda: out.append(p.stdout.read()))]
    for t in threads:
        t.start()
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        err.append(f"\n(killed after {timeout}s)")
    for t in threads:
        t.join()
    return p.returncode, "".join(out), "".join(err)


data = os.path.join(WORK, "data")
t = time.time()
code, _, err = cx("generate", "--out", data, "--customers", str(CUSTOMERS), "--days", "365",
                  "--seed", "11")
assert code == 0, err
rows = {}
import pyarrow.parquet as pq  # noqa: E402

for name in ("orders", "tickets", "surveys", "customers", "events"):
    rows[name] = pq.ParquetFile(os.path.join(data, f"{name}.parquet")).metadata.num_rows
print(f"generated {CUSTOMERS:,} customers in {time.time() - t:.0f}s: {rows}", flush=True)

# Repeated ids across files and buckets: a second tickets file repeating some ids of the first
# (other customers, later rows: dropped by the duplicate rule) besides new tickets.
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

tickets = pq.read_table(os.path.join(data, "tickets.parquet"))
os.makedirs(os.path.join(data, "tickets"))
shutil.move(os.path.join(data, "tickets.parquet"), os.path.join(data, "tickets", "a.parquet"))
repeat = tickets.slice(0, 50)
repeat = repeat.set_column(
    repeat.schema.get_field_index("customer_id"),
    "customer_id",
    pc.binary_join_element_wise(repeat["customer_id"].cast(pa.string()), pa.scalar("x"), ""),
)
pq.write_table(repeat, os.path.join(data, "tickets", "b.parquet"))

JOB = f"""name: spark-test
as_of: 2026-06-30
timezone: America/New_York
inputs:
  orders:    {{ path: {data}/orders.parquet }}
  tickets:   {{ path: {data}/tickets }}
  surveys:   {{ path: {data}/surveys.parquet }}
  customers: {{ path: {data}/customers.parquet }}
  events:    {{ path: {data}/events.parquet }}
pipelines:
  survey_scores: {{ period: month, by: [channel, agent_id] }}
  support_kpis:
    period: week
    by: [channel, agent_id, category]
    sla_first_response: {{ chat: 60s, phone: 30s, email: 4h, default: 24h }}
  cohort_retention: {{ period: month, by: [region] }}
  churn: {{ period: month, inactive_after_days: 90, by: [plan] }}
  activation: {{ days: [1, 7, 30], by: [plan] }}
  ltv_segments: {{ unit: week, horizon_months: 12, monthly_discount_rate: 0.01, by: [region, plan], holdout_days: 180 }}
  cx_impact: {{ window_days: 90, inactive_after_days: 90, by: [plan] }}
quality:
  max_rejected_fraction: 0.05
output:
  dir: {WORK}/out-local
  compression: zstd
"""
job = os.path.join(WORK, "job.yaml")
with open(job, "w") as f:
    f.write(JOB)


def outputs(d):
    with open(os.path.join(d, "manifest.json")) as f:
        m = json.load(f)
    return {name: o for name, o in m["outputs"].items()}


def same_tables(local, other, what):
    a, b = outputs(local), outputs(other)
    check(sorted(a) == sorted(b), f"{what}: the same tables ({sorted(a)} vs {sorted(b)})")
    check(os.path.exists(os.path.join(other, "_SUCCESS")), f"{what}: _SUCCESS")
    for name in sorted(a):
        if name == "cxmetrics_runs" or name not in b:
            continue
        check(a[name]["rows"] == b[name]["rows"], f"{what}: {name} row count")
        with open(a[name]["path"], "rb") as fa, open(b[name]["path"], "rb") as fb:
            same = fa.read() == fb.read()
        check(same, f"{what}: {name} is the same bytes as the local run's")
        if not same:
            import polars as pl

            x, y = pl.read_parquet(a[name]["path"]), pl.read_parquet(b[name]["path"])
            print(f"  {name}: local {x.shape}, {what} {y.shape}", flush=True)
            if x.shape == y.shape:
                for c in x.columns:
                    if not x[c].equals(y[c]):
                        print(f"  first differing column: {c}", flush=True)
                        break


t = time.time()
code, out, err = cx("run", job)
check(code == 0, f"the local run: {err[-2000:]}")
local = os.path.join(WORK, "out-local")
print(f"local run: {time.time() - t:.0f}s", flush=True)

for buckets in (1, 7):
    t = time.time()
    d = os.path.join(WORK, f"out-spark-{buckets}")
    code, out, err = cx("run", job, "--engine", "spark", "--remote", REMOTE,
                        "--buckets", str(buckets), "--output-dir", d)
    check(code == 0, f"spark, {buckets} buckets: exit {code}: {err[-3000:]}")
    print(f"spark, {buckets} buckets: {time.time() - t:.0f}s", flush=True)
    if code == 0:
        same_tables(local, d, f"spark with {buckets} buckets")
        check("rows" in out and "survey_scores" in out, "spark run prints the summary")


# A table Spark knows instead of a path: the same bytes.
from pyspark.sql import SparkSession  # noqa: E402

spark = SparkSession.builder.remote(REMOTE).getOrCreate()
table_dir = os.path.join(WORK, "warehouse", "orders")
os.makedirs(table_dir)
shutil.copy(os.path.join(data, "orders.parquet"), os.path.join(table_dir, "part-00000.parquet"))
spark.sql("CREATE DATABASE IF NOT EXISTS sales")
spark.sql(f"CREATE TABLE sales.orders USING parquet LOCATION '{table_dir}'")
table_job = os.path.join(WORK, "table.yaml")
with open(table_job, "w") as f:
    f.write(JOB.replace(f"{{ path: {data}/orders.parquet }}", "{ table: sales.orders }"))
t = time.time()
d = os.path.join(WORK, "out-spark-table")
code, out, err = cx("run", table_job, "--engine", "spark", "--remote", REMOTE, "--buckets", "3",
                    "--output-dir", d)
check(code == 0, f"spark with a table input: exit {code}: {err[-3000:]}")
print(f"spark, orders as a table: {time.time() - t:.0f}s", flush=True)
if code == 0:
    same_tables(local, d, "spark with orders as a table")
code, _, err = cx("run", table_job, "--output-dir", os.path.join(WORK, "out-table-local"))
check(code == 2 and "inputs.orders.table" in err,
      f"the local engine refuses a table input (exit 2): {code}: {err[-500:]}")
check(not os.path.exists(os.path.join(WORK, "out-table-local")),
      "the refused table job creates nothing")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Object-storage output from a Spark run, to an S3-compatible server (moto_server on
# 127.0.0.1, always stopped): committed as the local engine commits to a prefix (the run's
# files under runs/<run id>/, then manifest.json, then _SUCCESS), every table the same bytes.
import boto3  # noqa: E402

s3_port = free_port()
moto = subprocess.Popen([os.path.join(os.path.dirname(PY), "moto_server"), "-H", "127.0.0.1",
                         "-p", str(s3_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", s3_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    endpoint = f"http://127.0.0.1:{s3_port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    s3.create_bucket(Bucket="cx-spark")
    s3_env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
              "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}
    t = time.time()
    code, out, err = cx("run", job, "--engine", "spark", "--remote", REMOTE, "--buckets", "3",
                        "--output-dir", "s3://cx-spark/metrics", env=s3_env)
    check(code == 0, f"spark to object storage: exit {code}: {err[-3000:]}")
    print(f"spark, output to object storage: {time.time() - t:.0f}s", flush=True)

    def get(key):
        return s3.get_object(Bucket="cx-spark", Key=key)["Body"].read()

    if code == 0:
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="cx-spark")["Contents"]}
        check("metrics/_SUCCESS" in keys, "spark to object storage: _SUCCESS")
        manifest = json.loads(get("metrics/manifest.json"))
        prefix = manifest["commit"]["run_prefix"]
        check(prefix.startswith("s3://cx-spark/metrics/runs/"),
              f"spark to object storage: the manifest commits a run prefix ({prefix})")
        check(not any(k.startswith(os.path.join(WORK, "")) for k in keys),
              "spark to object storage: no local path uploaded")
        a = outputs(local)
        b = manifest["outputs"]
        check(sorted(a) == sorted(b), f"spark to object storage: the same tables ({sorted(b)})")
        for name in sorted(a):
            if name == "cxmetrics_runs" or name not in b:
                continue
            path = b[name]["path"]
            check(path.startswith(prefix + "/"), f"spark to object storage: {name} under {prefix}")
            check(a[name]["rows"] == b[name]["rows"], f"spark to object storage: {name} row count")
            with open(a[name]["path"], "rb") as f:
                same = f.read() == get(path[len("s3://cx-spark/"):])
            check(same, f"spark to object storage: {name} is the same bytes as the local run's")
        check(not os.path.exists("s3:"), "spark to object storage: no local folder named s3:")
finally:
    moto.terminate()
    moto.wait(10)

# An executor killed during the map phase.
def executors():
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        # This test's executors: their class path is the pyspark of the venv under WORK.
        if "CoarseGrainedExecutorBackend" in cmd and WORK in cmd:
            out.append(int(pid))
    return sorted(out)


killed = []


def kill_in_map(line):
    if "inputs settled" in line and not killed:
        def later():
            time.sleep(3)
            pids = executors()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                print(f"killed executor process {pids[0]} (of {pids})", flush=True)
        threading.Thread(target=later).start()


before = executors()
t = time.time()
d = os.path.join(WORK, "out-spark-killed")
code, out, err = cx("run", job, "--engine", "spark", "--remote", REMOTE, "--buckets", "7",
                    "--output-dir", d, stderr_lines=kill_in_map)
check(len(before) == 2, f"two executor processes before the kill ({before})")
check(bool(killed), "an executor was killed during the map phase")
check(code == 0, f"spark with a killed executor: exit {code}: {err[-3000:]}")
print(f"spark, an executor killed: {time.time() - t:.0f}s", flush=True)
if code == 0:
    same_tables(local, d, "spark with a killed executor")

# The Rust binary given a Spark job (the CLI of the package runs it; this is the binary's code
# path through `main`).
from cxmetrics import _cxmetrics  # noqa: E402

code, message = _cxmetrics.main(["cxmetrics", "run", job, "--engine", "spark"], [PY, "-m", "cxmetrics"])
check(code == 2 and "python -m cxmetrics run" in (message or ""),
      f"the binary refuses a Spark job and names the entry point: {code} {message}")

# An unreachable server: exit 3 at once, nothing created.
t = time.time()
d = os.path.join(WORK, "out-unreachable")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    free = s.getsockname()[1]
code, _, err = cx("run", job, "--engine", "spark", "--remote", f"sc://127.0.0.1:{free}",
                  "--output-dir", d)
check(code == 3 and "cannot reach the Spark Connect server" in err,
      f"an unreachable server: exit 3 with the address ({code}: {err[-500:]})")
check(not os.path.exists(d), "an unreachable server creates nothing")

# A server that accepts connections and never answers: the connect timeout ends the run.
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(8)
silent = listener.getsockname()[1]
held = []
threading.Thread(target=lambda: [held.append(listener.accept()) for _ in range(8)],
                 daemon=True).start()
slow_job = os.path.join(WORK, "silent.yaml")
with open(slow_job, "w") as f:
    f.write(JOB + f"execution:\n  engine: spark\n  remote: sc://127.0.0.1:{silent}\n"
                  "  connect_timeout: 5s\n")
t = time.time()
code, _, err = cx("run", slow_job, "--output-dir", os.path.join(WORK, "out-silent"), timeout=120)
took = time.time() - t
check(code == 3 and "did not answer" in err,
      f"a silent server: exit 3 ({code}: {err[-500:]})")
check(took < 60, f"a silent server ends within the timeout, not a hang ({took:.0f}s)")

# The quality gate on Spark: exit 4, no table written.
gate_job = os.path.join(WORK, "gate.yaml")
with open(gate_job, "w") as f:
    f.write(JOB.replace("max_rejected_fraction: 0.05", "max_rejected_fraction: 0.0"))
d = os.path.join(WORK, "out-gate")
code, _, err = cx("run", gate_job, "--engine", "spark", "--remote", REMOTE, "--buckets", "3",
                  "--output-dir", d)
check(code == 4, f"the quality gate on Spark exits 4 ({code}: {err[-500:]})")
written = [f for f in os.listdir(d) if f.endswith(".parquet")] if os.path.isdir(d) else []
check(written == [], f"the quality gate writes no table ({written})")

# A file of the wrong type: exit 3 naming the file and the column.
bad = os.path.join(WORK, "bad")
os.makedirs(bad)
customers = pq.read_table(os.path.join(data, "customers.parquet"))
customers = customers.set_column(
    customers.schema.get_field_index("signup_at"), "signup_at",
    pa.array([1.5] * customers.num_rows))
pq.write_table(customers, os.path.join(bad, "customers.parquet"))
bad_job = os.path.join(WORK, "bad.yaml")
with open(bad_job, "w") as f:
    f.write(JOB.replace(f"{data}/customers.parquet", f"{bad}/customers.parquet"))
code, _, err = cx("run", bad_job, "--engine", "spark", "--remote", REMOTE,
                  "--output-dir", os.path.join(WORK, "out-bad"))
check(code == 3 and "customers.parquet" in err and "signup_at" in err,
      f"a wrong column type: exit 3 naming file and column ({code}: {err[-500:]})")

print(f"spark-test: {checks} checks, {len(failures)} failed", flush=True)
sys.exit(1 if failures else 0)
