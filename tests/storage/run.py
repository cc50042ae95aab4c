"""Object storage end to end from the CLI (docs/storage.md), against a real S3-compatible server
(moto_server, started here on 127.0.0.1 with request signing enforced, and always stopped):

- the example job from s3:// inputs (an object, a prefix, a glob) to an s3:// output writes
  every table byte for byte as the same job run locally;
- a second run commits over it: the manifest names the new run's files, the old run's files
  are gone, the run log has both rows;
- a run killed during the upload of its outputs leaves the previous result readable and whole;
  the next run cleans up after it;
- wrong credentials, a missing bucket and an unreachable endpoint give exit 3 naming the URI
  (and do not hang); `storage_options` in the job work without the environment's endpoint, and
  their secrets appear in no log line and not in the manifest.

Usage: python3 tests/storage/run.py CXMETRICS_BIN
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import pyarrow.parquet as pq

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = sys.argv[1]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(auth):
    """moto_server on a free port of 127.0.0.1. With `auth`, the first three requests (an IAM
    user, its key, its policy) are unauthenticated and from then on every request's signature
    is checked, so wrong credentials are refused as S3 refuses them. (moto then also refuses
    object_store's correctly signed LIST requests whose prefix holds a `/`, which it encodes
    differently from AWS: the listing flows run on a server without auth.)"""
    port = free_port()
    env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "3"} if auth else {})}
    proc = subprocess.Popen([shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers.append(proc)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return f"http://127.0.0.1:{port}"


servers = []


def stop():
    for proc in servers:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


try:
    ENDPOINT = start_server(auth=False)
    AUTH_ENDPOINT = start_server(auth=True)
    iam = boto3.client("iam", endpoint_url=AUTH_ENDPOINT, region_name="us-east-1",
                       aws_access_key_id="setup", aws_secret_access_key="setup")
    iam.create_user(UserName="cxmetrics")
    key = iam.create_access_key(UserName="cxmetrics")["AccessKey"]
    iam.put_user_policy(UserName="cxmetrics", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    KEY, SECRET = key["AccessKeyId"], key["SecretAccessKey"]
    authed = boto3.client("s3", endpoint_url=AUTH_ENDPOINT, region_name="us-east-1",
                          aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    authed.create_bucket(Bucket="cx-auth")
    for f in ("surveys",):
        authed.upload_file(os.path.join(ROOT, "sample-data", f + ".parquet"), "cx-auth", f + ".parquet")
    s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                      aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    for b in ("cx-in", "cx-out"):
        s3.create_bucket(Bucket=b)
    ENV = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": ENDPOINT, "AWS_ALLOW_HTTP": "true"}

    with tempfile.TemporaryDirectory() as d:
        # The inputs: orders in two parts (read by a glob), tickets under a prefix (a folder),
        # the rest as single objects; the same files locally for the local run.
        local_in = os.path.join(d, "in")
        os.makedirs(os.path.join(local_in, "orders"))
        os.makedirs(os.path.join(local_in, "tickets"))
        orders = pq.read_table(os.path.join(ROOT, "sample-data", "orders.parquet"))
        half = orders.num_rows // 2
        pq.write_table(orders.slice(0, half), os.path.join(local_in, "orders", "part-0.parquet"))
        pq.write_table(orders.slice(half), os.path.join(local_in, "orders", "part-1.parquet"))
        shutil.copy(os.path.join(ROOT, "sample-data", "tickets.parquet"), os.path.join(local_in, "tickets", "t.parquet"))
        for f in ("surveys", "customers", "events"):
            shutil.copy(os.path.join(ROOT, "sample-data", f + ".parquet"), os.path.join(local_in, f + ".parquet"))
        for dirpath, _, files in os.walk(local_in):
            for f in files:
                rel = os.path.relpath(os.path.join(dirpath, f), local_in)
                s3.upload_file(os.path.join(dirpath, f), "cx-in", "exports/" + rel)

        def job(name, base, out, extra=""):
            text = open(os.path.join(ROOT, "jobs", "example.yaml")).read()
            for f in ("surveys", "customers", "events"):
                text = text.replace(f"../sample-data/{f}.parquet", f"{base}/{f}.parquet")
            text = text.replace("../sample-data/orders.parquet", f"{base}/orders/*.parquet")
            text = text.replace("../sample-data/tickets.parquet", f"{base}/tickets/")
            text = text.replace("dir: ../out/example", f"dir: {out}").replace("  report: true", "  report: true") + extra
            path = os.path.join(d, name + ".yaml")
            open(path, "w").write(text)
            return path

        def run(path, env=ENV, extra_args=(), timeout=600):
            return subprocess.run([BIN, "run", path, *extra_args], capture_output=True, text=True, env=env,
                                  timeout=timeout)

        def manifest():
            return json.loads(s3.get_object(Bucket="cx-out", Key="example/manifest.json")["Body"].read())

        def keys(prefix):
            out = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="cx-out", Prefix=prefix):
                out += [o["Key"] for o in page.get("Contents", [])]
            return sorted(out)

        def remote_bytes(uri):
            bucket, key_ = uri[len("s3://"):].split("/", 1)
            return s3.get_object(Bucket=bucket, Key=key_)["Body"].read()

        local_out = os.path.join(d, "local-out")
        p = run(job("local", local_in, local_out))
        check(p.returncode == 0, f"the local run ({p.stderr[-300:]})")
        s3_job = job("s3", "s3://cx-in/exports", "s3://cx-out/example")
        p = subprocess.run([BIN, "validate", s3_job], capture_output=True, text=True, env=ENV)
        check(p.returncode == 0, f"validate with s3 inputs and output ({p.stdout[-200:]} {p.stderr[-300:]})")
        p = run(s3_job)
        check(p.returncode == 0, f"s3:// to s3:// run ({p.stderr[-500:]})")
        first = manifest()
        tables = first["outputs"]
        check(len(tables) == 12, f"the manifest names 12 tables ({len(tables)})")
        same = 0
        for name, o in tables.items():
            check(o["path"].startswith(f"s3://cx-out/example/runs/{first['run_id']}/"), f"{name} under the run's prefix")
            local = open(os.path.join(local_out, name + ".parquet"), "rb").read()
            same += remote_bytes(o["path"]) == local
        check(same == len(tables), f"{same} of {len(tables)} tables byte-identical to the local run")
        check(first["inputs"]["orders"]["paths"] == ["s3://cx-in/exports/orders/part-0.parquet",
                                                     "s3://cx-in/exports/orders/part-1.parquet"],
              f"the orders glob matched both parts ({first['inputs']['orders']['paths']})")
        check("example/_SUCCESS" in keys("example/"), "_SUCCESS written")
        check(remote_bytes(first["report"]).startswith(b"<!DOCTYPE html>"), "the report is published with the tables")

        # A second run commits over the first and cleans its files.
        p = run(s3_job, extra_args=["--as-of", "2026-06-29"])
        check(p.returncode == 0, f"second run ({p.stderr[-300:]})")
        second = manifest()
        check(second["run_id"] != first["run_id"] and second["as_of"] == "2026-06-29", "the manifest is the new run's")
        runs = {k.split("/")[2] for k in keys("example/runs/")}
        check(runs == {second["run_id"]}, f"only the current run's files remain ({runs})")
        check(f"example/runs/{second['run_id']}/_RUN" in keys("example/runs/")
              and "example/.cxmetrics-output" in keys("example/"), "the run's _RUN and the prefix's marker")
        log = pq.read_table(__import__("io").BytesIO(remote_bytes(second["run_log"]["path"])))
        check(log.column("run_id").to_pylist() == [first["run_id"], second["run_id"]],
              "the run log goes on across runs in the store")

        # The Looker model of the result in the store.
        lk = os.path.join(d, "lookml")
        p = subprocess.run([BIN, "lookml", s3_job, "--out", lk, "--schema", "analytics"], capture_output=True,
                           text=True, env=ENV)
        check(p.returncode == 0 and os.path.exists(os.path.join(lk, "support_kpis.view.lkml")),
              f"cxmetrics lookml reads the manifest from the store ({p.stderr[-300:]})")

        report = os.path.join(d, "from-store.html")
        p = subprocess.run([BIN, "report", "s3://cx-out/example", "--out", report], capture_output=True, text=True,
                           env=ENV)
        check(p.returncode == 0 and open(report, "rb").read() == remote_bytes(manifest()["report"]),
              f"cxmetrics report of the store's result is the run's own report ({p.stderr[-300:]})")

        # A run killed during the upload of its outputs.
        before = {name: remote_bytes(o["path"]) for name, o in second["outputs"].items()}
        p = run(s3_job, env={**ENV, "CXMETRICS_TEST_ABORT_AFTER_UPLOADS": "3"}, extra_args=["--as-of", "2026-06-28"])
        check(p.returncode != 0, f"the killed run died ({p.returncode})")
        after = manifest()
        check(after["run_id"] == second["run_id"], "the previous manifest is still the current one")
        whole = all(remote_bytes(after["outputs"][n]["path"]) == b for n, b in before.items())
        check(whole, "every table of the previous result is readable and unchanged")
        partial = {k.split("/")[2] for k in keys("example/runs/")} - {second["run_id"]}
        check(len(partial) == 1, f"the killed run left its uploaded files under its own prefix ({partial})")
        p = run(s3_job)
        check(p.returncode == 0, f"the next run ({p.stderr[-300:]})")
        runs = {k.split("/")[2] for k in keys("example/runs/")}
        check(runs == {manifest()["run_id"]}, f"... cleans them up ({runs})")

        # A run deletes only what cxmetrics runs created: a folder under runs/ without its _RUN
        # stays; a prefix that holds someone else's objects is refused.
        s3.put_object(Bucket="cx-out", Key="example/runs/not-ours/data.csv", Body=b"keep me")
        p = run(s3_job)
        check(p.returncode == 0 and "example/runs/not-ours/data.csv" in keys("example/runs/"),
              f"a folder under runs/ that no run created is left alone ({p.stderr[-200:]})")
        s3.put_object(Bucket="cx-out", Key="foreign/notes.txt", Body=b"not cxmetrics")
        p = run(job("foreign", local_in, "s3://cx-out/foreign"))
        check(p.returncode == 2 and "is not a cxmetrics output" in p.stderr
              and keys("foreign/") == ["foreign/notes.txt"],
              f"a prefix with someone else's objects: exit 2, nothing written ({p.returncode}: {p.stderr[-200:]})")

        # Wrong credentials (on the server that checks signatures), a missing bucket, an
        # unreachable endpoint.
        auth_job = os.path.join(d, "auth.yaml")
        open(auth_job, "w").write("name: auth\nas_of: 2026-06-30\ninputs:\n  surveys: { path: s3://cx-auth/surveys.parquet }\n"
                                  f"pipelines:\n  survey_scores:\noutput: {{ dir: {d}/auth-out }}\n")
        auth_env = {**ENV, "AWS_ENDPOINT_URL": AUTH_ENDPOINT}
        p = run(auth_job, env=auth_env)
        check(p.returncode == 0, f"the right credentials are accepted ({p.stderr[-300:]})")
        p = run(auth_job, env={**auth_env, "AWS_SECRET_ACCESS_KEY": "wrong"})
        check(p.returncode == 3 and "s3://cx-auth/surveys.parquet" in p.stderr,
              f"wrong credentials: exit 3 naming the URI ({p.returncode}: {p.stderr[-300:]})")
        p = run(auth_job, env={**auth_env, "AWS_ACCESS_KEY_ID": "AKIANOTAKEY"})
        check(p.returncode == 3 and "s3://cx-auth/surveys.parquet" in p.stderr,
              f"an unknown key: exit 3 naming the URI ({p.returncode}: {p.stderr[-300:]})")
        missing_in = job("missing_in", "s3://no-such-bucket/exports", "s3://cx-out/example")
        p = run(missing_in)
        check(p.returncode == 3 and "s3://no-such-bucket/exports" in p.stderr,
              f"a missing input bucket: exit 3 naming the URI ({p.returncode}: {p.stderr[-300:]})")
        missing_out = job("missing_out", local_in, "s3://no-such-bucket/out")
        p = run(missing_out)
        check(p.returncode == 3 and "s3://no-such-bucket/out" in p.stderr,
              f"a missing output bucket: exit 3 naming the URI ({p.returncode}: {p.stderr[-300:]})")
        closed = free_port()
        p = run(s3_job, env={**ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}"}, timeout=300)
        check(p.returncode == 3 and "s3://cx-" in p.stderr, f"an unreachable endpoint: exit 3, no hang ({p.returncode}: {p.stderr[-200:]})")

        hive = job("hive", local_in, "s3://cx-out/hive")
        text = open(hive).read().replace("  layout: flat", "  layout: hive")
        open(hive, "w").write(text)
        p = run(hive)
        check(p.returncode == 2 and "layout: hive" in p.stderr, f"hive layout to a store: exit 2 ({p.returncode}: {p.stderr[-200:]})")

        # storage_options instead of the environment; secrets never shown.
        bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        options = (f"storage_options:\n  endpoint: {ENDPOINT}\n  region: us-east-1\n  allow_http: true\n"
                   f"  path_style: true\n  access_key_id: {KEY}\n  secret_access_key: {SECRET}\n")
        opts_job = job("opts", "s3://cx-in/exports", "s3://cx-out/example", "\n" + options)
        p = run(opts_job, env=bare, extra_args=["--log-format", "json"])
        check(p.returncode == 0, f"storage_options without AWS_* variables ({p.stderr[-300:]})")
        text = json.dumps(manifest())
        check(SECRET not in p.stdout + p.stderr and SECRET not in text and KEY not in text,
              "the secrets are in no log line and not in the manifest")
finally:
    stop()

print(f"{len(failures)} failed" if failures else "storage checks passed")
sys.exit(1 if failures else 0)
