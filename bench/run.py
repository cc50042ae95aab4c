"""`make bench`: cxmetrics against DuckDB and against the read floor, on generated data.

Per data set (number of customers on the command line):
1. generates it once with `cxmetrics generate --intensity 5.5` (cached under $CXMETRICS_BENCH_DATA,
   default bench/data, which git ignores);
2. the floor: DuckDB reading every column the job reads from every input once, into memory;
3. a release `cxmetrics run` of every pipeline under `--memory-limit $BENCH_MEMORY_LIMIT`
   (default 2GiB; `buckets: auto` picks the number of customer buckets), and, side by side in
   the same invocation (runs alternating), the same job with `--buckets 1` (everything in one
   bucket) unless BENCH_COMPARE_B1=0: wall time, peak RSS of the whole process tree (sampled)
   and its course over time, the work directory's size, each stage's own time from the JSON run
   log; the two runs' tables must be byte-identical;
4. the DuckDB side, in the same invocation: the independent SQL implementations in
   tests/crosscheck (written from the definitions in docs/metrics), each run on the same Parquet
   inputs with the job's parameters, writing its table as Parquet, and comparing it with
   cxmetrics' table row by row (counts exactly, floats to 1e-9 relative). Timed per table;
5. the checks of the other tables (customer_ltv, ltv_segments, cx_impact, nps_migration), whose
   implementations compute customer by customer in Python: checked, not compared for speed.

Writes bench/results.md ($BENCH_RESULTS if set) and prints it. Exit status 1 if any table differs.
BENCH_CHECKS=0 skips steps 4 and 5 (`make bench-large` measures time and memory only). The
sizes after the first are also reported as a multiple of the first size's wall time.

Usage: python3 bench/run.py CXMETRICS_BIN SIZE [SIZE ...]
"""
import json
import os
import platform
import resource
import subprocess
import sys
import time

CHECKS = os.environ.get("BENCH_CHECKS", "1") != "0"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CROSSCHECK = os.path.join(ROOT, "tests", "crosscheck")
DATA = os.environ.get("CXMETRICS_BENCH_DATA", os.path.join(HERE, "data"))
INTENSITY = "5.5"
AS_OF, TZ = "2026-06-30", "America/New_York"
TIMEOUT_S = 1800
RUNS = int(os.environ.get("BENCH_RUNS", 5))
MEMORY_LIMIT = os.environ.get("BENCH_MEMORY_LIMIT", "2GiB")
COMPARE_B1 = os.environ.get("BENCH_COMPARE_B1", "1") != "0"


def mib(size):
    """Bytes of a size like `2GiB` (the units cxmetrics takes), in MiB."""
    units = {"KiB": 2**-10, "MiB": 1, "GiB": 2**10, "TiB": 2**20, "KB": 1e3 / 2**20, "MB": 1e6 / 2**20,
             "GB": 1e9 / 2**20, "TB": 1e12 / 2**20}
    for u, f in units.items():
        if size.endswith(u):
            return float(size[: -len(u)]) * f
    return float(size) / 2**20

# Every parameter spelled out, since the DuckDB side has no defaults of its own.
SLA = {"chat": "60s", "phone": "30s", "email": "4h", "default": "24h"}
SLA_ARG = "chat=60,phone=30,email=14400,default=86400"
COHORT = dict(period="month", anchor="first_activity", activity=["orders"], mode="on", max_periods=12, by=["region"])
CHURN = dict(period="month", anchor="first_activity", activity=["orders"], mode="inactivity",
             inactive_after_days=90, by=["plan"])
ACTIVATION = dict(anchor="signup", activity=["orders", "tickets", "surveys", "events"], mode="on_day",
                  days=[1, 7, 30], cohort_period="week", by=["plan"])

LTV = dict(unit="week", horizon_months=12, monthly_discount_rate=0.01, by=["region"])
CX = dict(window_days=90, inactive_after_days=90, by=["plan"])

INPUTS = ["orders", "tickets", "surveys", "customers", "events"]
# The columns the job reads: every column of the generated files except events.event_type, which
# no metric uses (docs/inputs.md).
FLOOR_COLUMNS = {i: "*" for i in INPUTS} | {"events": "customer_id, event_at"}


def flow(params):
    def v(x):
        return "[" + ", ".join(map(str, x)) + "]" if isinstance(x, list) else str(x)
    return "{ " + ", ".join(f"{k}: {v(x)}" for k, x in params.items()) + " }"


def args(params):
    return [f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in params.items()]


def job_text(n, d, out):
    sla = "{ " + ", ".join(f"{k}: {v}" for k, v in SLA.items()) + " }"
    inputs = "".join(f"  {i}: {{ path: {d}/{i}.parquet }}\n" for i in INPUTS)
    return (f"name: bench-{n}\nas_of: {AS_OF}\ntimezone: {TZ}\ninputs:\n{inputs}pipelines:\n"
            f"  survey_scores: {{ period: month, by: [channel] }}\n"
            f"  support_kpis: {{ period: week, by: [channel, category], sla_first_response: {sla} }}\n"
            f"  cohort_retention: {flow(COHORT)}\n"
            f"  churn: {flow(CHURN)}\n"
            f"  activation: {flow(ACTIVATION)}\n"
            f"  ltv_segments: {flow(LTV)}\n"
            f"  cx_impact: {flow(CX)}\n"
            f"output:\n  dir: {out}\n")


def duckdb_checks(d, out):
    """(table, pipeline, command) of each DuckDB implementation, for the job above."""
    py = sys.executable
    cc = lambda s: os.path.join(CROSSCHECK, s)
    return [
        ("survey_scores", "survey_scores",
         [py, cc("survey_scores.py"), f"{d}/surveys.parquet", f"{out}/survey_scores.parquet", AS_OF, TZ, "month", "channel"]),
        ("support_kpis", "support_kpis",
         [py, cc("support_kpis.py"), f"{d}/tickets.parquet", f"{d}/surveys.parquet", f"{out}/support_kpis.parquet",
          AS_OF, TZ, "week", SLA_ARG, "channel", "category"]),
        ("cohort_retention", "cohort_retention",
         [py, cc("lifecycle.py"), "cohort_retention", d, f"{out}/cohort_retention.parquet", AS_OF, TZ, *args(COHORT)]),
        ("churn", "churn", [py, cc("lifecycle.py"), "churn", d, f"{out}/churn.parquet", AS_OF, TZ, *args(CHURN)]),
        ("activation", "activation",
         [py, cc("lifecycle.py"), "activation", d, f"{out}/activation.parquet", AS_OF, TZ, *args(ACTIVATION)]),
    ]


def python_checks(d, out):
    """(tables, command) of the implementations that load and clean with DuckDB but compute per
    customer in Python (the CLV model columns, the per-customer drivers): checked at scale, but not
    a speed comparison."""
    py = sys.executable
    cc = lambda s: os.path.join(CROSSCHECK, s)
    return [
        ("customer_ltv, ltv_segments", [py, cc("ltv.py"), d, out, AS_OF, TZ, LTV["unit"], str(LTV["horizon_months"]),
                                        str(LTV["monthly_discount_rate"]), *LTV["by"]]),
        ("cx_impact, nps_migration", [py, cc("cx_impact.py"), d, out, AS_OF, TZ, str(CX["window_days"]),
                                      str(CX["inactive_after_days"]), SLA_ARG, *CX["by"]]),
    ]


# Every measured process is killed when its resident memory passes this cap, so that a run that
# would not fit ends with a clear "killed at the cap" instead of the kernel's OOM killer (the
# machine has no swap). Default: 85% of physical memory; BENCH_RSS_CAP_MIB overrides.
RSS_CAP_MIB = int(os.environ.get("BENCH_RSS_CAP_MIB",
                                 0.85 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20))

WRAPPER = """
import json, os, resource, subprocess, sys, time
cap_kib = int(sys.argv[1]) * 1024
p = subprocess.Popen(sys.argv[2:])
t0 = time.time()
killed = False
samples = []
def tree_kib(root):
    # The resident memory of `root` and every process below it (the partition children).
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [root]
    while todo:
        q = todo.pop()
        try:
            with open(f"/proc/{q}/status") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
        todo += children.get(q, [])
    return total
while p.poll() is None:
    rss = tree_kib(p.pid)
    samples.append((round(time.time() - t0, 1), rss))
    if rss > cap_kib:
        p.kill()
        killed = True
        p.wait()
        break
    time.sleep(0.2)
print(json.dumps({"rc": p.returncode, "killed": killed,
                  "rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "tree_peak": max((k for _, k in samples), default=0), "samples": samples}), file=sys.stderr)
"""


def timed(cmd, env=None, timeout=None):
    """Runs cmd in a fresh process, measured from a wrapper process: (process or None on timeout,
    wall seconds, peak RSS MiB). The peak is the larger of the process's own peak (getrusage:
    the largest single process) and the sampled sum over its process tree. The process gets
    `killed_at_cap` = True when it was stopped at RSS_CAP_MIB, and `samples`: (seconds, tree
    RSS KiB) every 0.2 s."""
    # A wrapper process reports its child's own peak RSS, independent of earlier children.
    wrapper = [sys.executable, "-c", WRAPPER, str(RSS_CAP_MIB), *cmd]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(wrapper, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0, float("nan")
    wall = time.perf_counter() - t0
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "{}"
    info = json.loads(last) if last.startswith("{") else {"rc": p.returncode, "rss": 0, "killed": False}
    p.returncode = info["rc"]
    p.killed_at_cap = info.get("killed", False)
    p.samples = info.get("samples", [])
    return p, wall, max(info["rss"], info.get("tree_peak", 0)) / 1024


FLOOR = """
import duckdb, sys, time
d = sys.argv[1]
con = duckdb.connect()
t0 = time.perf_counter()
for name, cols in {inputs}.items():
    con.execute(f"CREATE TABLE {{name}} AS SELECT {{cols}} FROM read_parquet('{{d}}/{{name}}.parquet')")
print(time.perf_counter() - t0)
"""


def stage_lines(p):
    return [s for s in (json.loads(l) for l in p.stderr.splitlines() if l.startswith("{")) if "stage" in s]


def rss_line(samples, points=30):
    """The sampled RSS as `t s: MiB` pairs, about `points` of them, each the highest RSS since
    the previous point."""
    if not samples:
        return "not sampled"
    end = samples[-1][0]
    step = max(end / points, 0.2)
    out, i, t = [], 0, step
    while i < len(samples):
        peak = 0
        while i < len(samples) and samples[i][0] <= t:
            peak = max(peak, samples[i][1])
            i += 1
        if peak:
            out.append(f"{t:.{0 if end >= 100 else 1}f} s {peak / 1024:,.0f}")
        t += step
    return " · ".join(out)


def phase_line(stages):
    """When each phase ended, in seconds from the start (the run log's timestamps): the
    partition pass (the last input line), each round's last bucket, the publish."""
    from datetime import datetime
    t = lambda s: datetime.fromisoformat(s["ts"]).timestamp()
    start = next((t(s) for s in stages if s["stage"] == "plan"), None)
    if start is None:
        return None
    ends = []
    inputs = [t(s) for s in stages if s["stage"] == "input"]
    if inputs:
        ends.append(f"partition pass {max(inputs) - start:.0f} s")
    rounds = {}
    for s in stages:
        if s["stage"] == "bucket":
            rounds[s["round"]] = (t(s), s["name"].split(" of ")[-1])
    ends += [f"round {r} ({b} buckets) {e - start:.0f} s" for r, (e, b) in sorted(rounds.items())]
    ends += [f"published {t(s) - start:.0f} s" for s in stages if s["stage"] == "publish"]
    return ", ".join(ends)


def median_run(runs):
    """The median run by wall time, the walls sorted, and the highest peak RSS."""
    walls = sorted(r[0] for r in runs)
    wall, _, p = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    return wall, walls, max(r[1] for r in runs), p


def table_bytes(out):
    """Every table file under `out` (relative path -> bytes), without the manifest."""
    tables = {}
    for root, _, files in os.walk(out):
        for f in files:
            if f.endswith(".parquet"):
                path = os.path.join(root, f)
                with open(path, "rb") as fh:
                    tables[os.path.relpath(path, out)] = fh.read()
    return tables


def main():
    binary, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        "# cxmetrics benchmark", "",
        f"Machine: {os.cpu_count()} cores, {mem_gib:.0f} GiB, {platform.platform()}.",
        f"Release build. Data: `cxmetrics generate --days 730 --seed 7 --intensity {INTENSITY}`. "
        f"Job: every pipeline, as_of {AS_OF}, {TZ} (see `bench/run.py`), run with "
        f"`--memory-limit {MEMORY_LIMIT}` (`buckets: auto`)"
        + (", and side by side with `--buckets 1` (everything in one bucket; the runs alternate)."
           if COMPARE_B1 else "."),
        "Peak RSS is the whole process tree's (the run and its partition children), sampled every 0.2 s, "
        "or the largest process's own peak if higher.",
    ]
    if CHECKS:
        lines += ["DuckDB side: the SQL implementations in `tests/crosscheck`, one process per table, each reading "
                  "the same Parquet inputs, writing its table as Parquet and comparing it with cxmetrics' table "
                  "(counts exactly, floats to 1e-9 relative)."]
    lines.append("")
    failed = False
    first_wall = None
    for n in sizes:
        d = os.path.join(DATA, f"c{n}-i{INTENSITY}")
        out = os.path.join(d, "out")
        out_b1 = os.path.join(d, "out-b1")
        expected = os.path.join(d, "duckdb-out")
        gen_note = "cached"
        if not os.path.exists(os.path.join(d, "events.parquet")):
            p, wall, rss = timed([binary, "generate", "--out", d, "--customers", str(n), "--days", "730",
                                  "--seed", "7", "--intensity", INTENSITY])
            if p is None or p.returncode != 0:
                sys.exit(f"generate failed: {p.stderr if p else 'timeout'}")
            gen_note = f"{wall:.1f} s, peak RSS {rss:.0f} MiB"
        job = os.path.join(d, "job.yaml")
        with open(job, "w") as f:
            f.write(job_text(n, d, out))

        p, floor_wall, floor_rss = timed([sys.executable, "-c", FLOOR.format(inputs=FLOOR_COLUMNS), d])
        floor = float(p.stdout.strip().splitlines()[-1]) if p and p.returncode == 0 else float("nan")

        # This VM's timings vary by ±15% from run to run (shared host), so the job runs several
        # times: the median run is reported, with the range and the highest peak RSS. With the
        # B = 1 comparison the two alternate, so that drift hits both alike.
        limited, whole = [], []
        cmd = [binary, "run", job, "--log-format", "json", "--memory-limit", MEMORY_LIMIT]
        cmd_b1 = [binary, "run", job, "--log-format", "json", "--buckets", "1", "--output-dir", out_b1]
        for _ in range(RUNS if n <= 1_000_000 else 1):
            for runs, c in [(limited, cmd)] + ([(whole, cmd_b1)] if COMPARE_B1 else []):
                p, wall, rss = timed(c)
                if p is None:
                    sys.exit("cxmetrics timed out")
                runs.append((wall, rss, p))
            if any(r[-1][2].returncode != 0 for r in (limited, whole) if r):
                break
        wall, walls, rss, p = median_run(limited)
        spread = (f" (median of {len(walls)} runs: {', '.join(f'{w:.1f}' for w in walls)} s)"
                  if len(walls) > 1 else "")
        stages = stage_lines(p)
        if p.killed_at_cap:
            done = ", ".join(f"{s['stage']} {s['name']} {s['elapsed_ms'] / 1000:.1f} s"
                             for s in stages if s["stage"] in ("input", "bucket"))
            lines += [f"## {n:,} customers", "",
                      f"Generation: {gen_note}. Floor: **{floor:.1f} s** (peak RSS {floor_rss:.0f} MiB).", "",
                      f"- cxmetrics: **killed at the RSS cap of {RSS_CAP_MIB:,} MiB after {wall:.1f} s**; the "
                      f"stages it finished: {done or 'none'}. No table was written (outputs are published only "
                      "when the whole job succeeds), so nothing was compared.", ""]
            print("\n".join(lines[-6:]), flush=True)
            failed = True
            continue
        if p.returncode != 0:
            sys.exit(p.stderr)
        rows = {s["name"]: s.get("rows_read") for s in stages if s["stage"] == "input" and "rows_read" in s}
        own = {}
        for s in stages:
            if s["stage"] in ("input", "write"):
                key = (s["stage"], s["name"])
                own[key] = max(own.get(key, 0.0), s["elapsed_ms"] / 1000)
        plan = next((s for s in stages if s["stage"] == "plan"), {})
        with open(os.path.join(out, "manifest.json")) as f:
            execution = json.load(f).get("execution", {})

        # The model fits alone, on the model inputs cxmetrics just wrote (examples/fit_time.rs).
        fit_bin = os.path.join(os.path.dirname(binary), "examples", "fit_time")
        q, _, _ = timed([fit_bin, os.path.join(out, "customer_ltv.parquet")])
        fits = json.loads(q.stdout.strip().splitlines()[-1]) if q and q.returncode == 0 else None

        limit_mib = mib(MEMORY_LIMIT)
        lines += [f"## {n:,} customers", "",
                  "Inputs: " + ", ".join(f"{k} {v:,} rows" for k, v in rows.items()) + f". Generation: {gen_note}.", "",
                  f"- cxmetrics, whole job (11 tables), `--memory-limit {MEMORY_LIMIT}`: **{wall:.1f} s** wall{spread}, "
                  f"peak RSS **{rss:,.0f} MiB** ({'under' if rss < limit_mib else 'OVER'} the limit of {limit_mib:,.0f} MiB); "
                  f"{plan.get('buckets', '?')} buckets ({plan.get('buckets_from', '?')}), {plan.get('parallel', '?')} at a time; "
                  f"work directory {execution.get('work_bytes', 0) / 2**20:,.0f} MiB at its largest "
                  f"(inputs {sum(os.path.getsize(os.path.join(d, f'{i}.parquet')) for i in INPUTS) / 2**20:,.0f} MiB)"]
        phases = phase_line(stages)
        if phases:
            lines.append(f"- each phase ended at (seconds from the start, run log): {phases}")
        lines.append(f"- memory over time (seconds from the start: MiB of the process tree, the highest in each step): "
                     f"{rss_line(p.samples)}")
        if first_wall is None:
            first_wall = (n, wall)
        else:
            lines.append(f"- wall time / the {first_wall[0]:,}-customer run's: **{wall / first_wall[1]:.1f}x** "
                         f"for {n / first_wall[0]:.0f}x the customers")
        if COMPARE_B1 and whole:
            wall1, walls1, rss1, p1 = median_run(whole)
            same = table_bytes(out) == table_bytes(out_b1)
            failed = failed or not same or p1.returncode != 0
            lines += [f"- the same job with `--buckets 1` (everything in one bucket), side by side: **{wall1:.1f} s** "
                      f"wall (median of {len(walls1)} runs: {', '.join(f'{w:.1f}' for w in walls1)} s), peak RSS "
                      f"**{rss1:,.0f} MiB**; `{MEMORY_LIMIT}` / `--buckets 1` wall = **{wall / wall1:.2f}**; tables "
                      + ("**byte-identical**" if same else "**DIFFER**")]
        lines += [f"- read floor (DuckDB loading every input column the job reads into memory): **{floor:.1f} s** "
                  f"(process {floor_wall:.1f} s, peak RSS {floor_rss:.0f} MiB); cxmetrics / floor = **{wall / floor:.1f}x**",
                  (f"- model fits alone (`examples/fit_time`): BG/NBD on {fits['groups']:,} groups of "
                   f"{fits['customers']:,} customers **{fits['bgnbd_fit_s']:.2f} s** (grouping {fits['group_s']:.2f} s), "
                   f"Gamma-Gamma on {fits['gamma_gamma_customers']:,} repeat buyers **{fits['gamma_gamma_fit_s']:.2f} s**"
                   if fits else "- model fits alone: not measured (examples/fit_time failed)"),
                  ""]
        if not CHECKS:
            lines += ["Tables not compared with DuckDB (BENCH_CHECKS=0).", "",
                      "| stage | name | seconds |", "|---|---|---|",
                      *[f"| {st} | {name} | {v:.3f} |" for (st, name), v in own.items()], ""]
            print("\n".join(lines[-30:]), flush=True)
            continue
        env = dict(os.environ, CROSSCHECK_EXPECTED_DIR=expected)

        def check(cmd):
            """Runs one check: (wall s, peak RSS MiB, status)."""
            q, dwall, drss = timed(cmd, env=env, timeout=TIMEOUT_S)
            if q is None:
                status = f"timed out after {TIMEOUT_S} s"
            elif q.returncode == 0:
                status = "match"
            else:
                status = "DIFFERS: " + " / ".join(q.stdout.strip().splitlines()[-3:])
            return dwall, drss, status

        duck = [(table, pipeline, *check(cmd)) for table, pipeline, cmd in duckdb_checks(d, out)]
        slow = [(tables, *check(cmd)) for tables, cmd in python_checks(d, out)]
        failed = failed or any(x[-1] != "match" for x in duck + slow)
        lines += [
            "| table | DuckDB s (process) | DuckDB peak RSS MiB | check |",
            "|---|---|---|---|",
        ]
        for table, pipeline, dwall, drss, status in duck:
            lines.append(f"| {table} | {dwall:.2f} | {drss:.0f} | {status} |")
        lines += [
            f"| **these five tables** | {sum(x[2] for x in duck):.2f} | | |", "",
            "A bucketed run computes every pipeline bucket by bucket, so its time is per run, not per table; "
            "the DuckDB processes each compute one table.", "",
            "The other tables are checked at this scale too, by implementations that load and clean the inputs "
            "in DuckDB and compute customer by customer in plain Python (the CLV model columns from `clv_model`'s "
            "parameters with their own hypergeometric series; the per-customer CX drivers). That is a correctness "
            "check, not a speed comparison. `clv_model` itself (the fit) has no second implementation at scale: "
            "tests/cli.rs checks the fit against the published CDNOW estimates.", "",
            "| tables | check s (process) | peak RSS MiB | check |", "|---|---|---|---|",
            *[f"| {t} | {w:.1f} | {r:.0f} | {st} |" for t, w, r, st in slow], "",
            "cxmetrics stage times (each stage's own seconds, from the JSON run log):", "",
            "| stage | name | seconds |", "|---|---|---|",
        ]
        lines += [f"| {st} | {name} | {v:.3f} |" for (st, name), v in own.items()]
        lines.append("")
        print("\n".join(lines[-40:]), flush=True)
    text = "\n".join(lines)
    with open(os.environ.get("BENCH_RESULTS", os.path.join(HERE, "results.md")), "w") as f:
        f.write(text + "\n")
    print(text)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
