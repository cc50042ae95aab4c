"""The Python package from a built wheel (docs/python.md), installed into a fresh virtual
environment: `cxmetrics.run` writes the binary's tables byte for byte, `cxmetrics.compute`
returns them as polars DataFrames without touching the job's output, failures raise
`CxmetricsError` with the command's exit code, and `python -m cxmetrics` is the command line
with the same exit codes (its child processes included: a corrupt file ends a child, not Python).

Usage: python3 tests/python/run.py CXMETRICS_BIN WHEEL VENV_PYTHON
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN, WHEEL, PY = sys.argv[1:4]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def tables(out):
    # The run log differs per run (run id, times): every other table must be the same bytes.
    return {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))
            if f.endswith(".parquet") and f != "cxmetrics_runs.parquet"}


def py(code, *args):
    return subprocess.run([PY, "-c", code, *args], capture_output=True, text=True)


with tempfile.TemporaryDirectory() as d:
    job_text = open(os.path.join(ROOT, "jobs", "example.yaml")).read().replace(
        "../sample-data", os.path.join(ROOT, "sample-data")).replace(
        "dir: ../out/example", f"dir: {d}/job-output")
    job = os.path.join(d, "job.yaml")
    open(job, "w").write(job_text)

    p = subprocess.run([BIN, "run", job, "--output-dir", f"{d}/binary"], capture_output=True, text=True)
    check(p.returncode == 0, f"the binary's run ({p.stderr[-200:]})")
    want = tables(f"{d}/binary")

    p = py("import cxmetrics, sys; print(cxmetrics.__version__); cxmetrics.run(sys.argv[1], output_dir=sys.argv[2])",
           job, f"{d}/python-run")
    check(p.returncode == 0, f"cxmetrics.run ({p.stderr[-300:]})")
    got = tables(f"{d}/python-run")
    check(len(want) == 12 and got == want, f"cxmetrics.run: {sum(got.get(k) == v for k, v in want.items())} of {len(want)} tables byte-identical")

    p = py("""
import cxmetrics, json, sys, polars as pl
tables = cxmetrics.compute(sys.argv[1])
out = {}
for name, df in tables.items():
    ref = pl.read_parquet(sys.argv[2] + "/" + name + ".parquet")
    out[name] = [isinstance(df, pl.DataFrame), df.equals(ref), df.schema == ref.schema, df.height]
print(json.dumps(out))
""", job, f"{d}/binary")
    check(p.returncode == 0, f"cxmetrics.compute ({p.stderr[-300:]})")
    if p.returncode == 0:
        res = json.loads(p.stdout.strip().splitlines()[-1])
        expected = {f[:-len(".parquet")] for f in want} | {"cxmetrics_runs"} - {"cxmetrics_runs"}
        check(set(res) == expected, f"compute returns every table ({sorted(res)})")
        check(all(r[0] and r[1] and r[2] for r in res.values()), f"each is a polars DataFrame equal to the table ({res})")
    check(not os.path.exists(f"{d}/job-output"), "compute did not write the job's output.dir")

    # Failures raise CxmetricsError with the command's exit code, and write nothing.
    gated = os.path.join(d, "gated.yaml")
    open(gated, "w").write(job_text.replace("max_rejected_fraction: 0.01", "max_rejected_fraction: 0.0"))
    missing = os.path.join(d, "missing.yaml")
    open(missing, "w").write(job_text.replace("sample-data/orders.parquet", "sample-data/nope.parquet"))
    for path, code, text in ((gated, 4, "data-quality threshold"), (missing, 3, "nope.parquet"),
                             (os.path.join(d, "no-such-job.yaml"), 2, "cannot read the job file")):
        p = py("""
import cxmetrics, sys
try:
    cxmetrics.run(sys.argv[1], output_dir=sys.argv[2])
    print("no exception")
except cxmetrics.CxmetricsError as e:
    print(e.exit_code); print(e.message)
""", path, f"{d}/failed-{code}")
        lines = p.stdout.strip().splitlines()
        check(p.returncode == 0 and lines and lines[0] == str(code) and text in p.stdout,
              f"CxmetricsError exit_code {code} naming the problem ({p.stdout[-200:]} {p.stderr[-200:]})")
        written = os.path.exists(f"{d}/failed-{code}") and any(
            f.endswith(".parquet") for f in os.listdir(f"{d}/failed-{code}"))
        check(not written, f"... and no table written (exit {code})")

    # python -m cxmetrics: the command line.
    p = subprocess.run([PY, "-m", "cxmetrics", "run", job, "--output-dir", f"{d}/python-m"], capture_output=True, text=True)
    check(p.returncode == 0 and tables(f"{d}/python-m") == want, f"python -m cxmetrics run ({p.stderr[-200:]})")
    for args, code in ((["run", missing, "--output-dir", f"{d}/m3"], 3), (["run", gated, "--output-dir", f"{d}/m4"], 4),
                       (["run", job, "--as-of", "2026-13-01"], 2), (["frobnicate"], 2), (["--help"], 0)):
        p = subprocess.run([PY, "-m", "cxmetrics", *args], capture_output=True, text=True)
        check(p.returncode == code, f"python -m cxmetrics {' '.join(args[:1])}...: exit {code} ({p.returncode}: {p.stderr[-150:]})")
    # A truncated Parquet file is found by the child process (`python -m cxmetrics
    # __check-parquet`), not by a crash of the interpreter.
    data = open(os.path.join(ROOT, "sample-data", "surveys.parquet"), "rb").read()
    os.makedirs(f"{d}/corrupt")
    open(f"{d}/corrupt/surveys.parquet", "wb").write(data[: len(data) // 2])
    corrupt = os.path.join(d, "corrupt.yaml")
    open(corrupt, "w").write(f"name: c\nas_of: 2026-06-30\ninputs:\n  surveys: {{ path: {d}/corrupt/surveys.parquet }}\n"
                             f"pipelines:\n  survey_scores:\noutput: {{ dir: {d}/corrupt-out }}\n")
    p = py("""
import cxmetrics, sys
try:
    cxmetrics.run(sys.argv[1])
except cxmetrics.CxmetricsError as e:
    print(e.exit_code)
""", corrupt)
    check(p.returncode == 0 and p.stdout.strip().endswith("3"), f"a corrupt file: exit 3 in Python ({p.stdout[-100:]} {p.stderr[-200:]})")

print(f"{len(failures)} failed" if failures else "python package checks passed")
sys.exit(1 if failures else 0)
