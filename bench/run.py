"""`make bench`: generates (once, cached in bench/data, not in git) synthetic data sets and times
a release `cxmetrics run` of every pipeline on each: wall time, peak RSS, and each stage's own
time from the JSON run log. Writes bench/results.md and prints it.

Usage: python3 bench/run.py CXMETRICS_BIN SIZE [SIZE ...]   (SIZE = number of customers)
"""
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

JOB = """name: bench-{n}
as_of: 2026-06-30
timezone: America/New_York
inputs:
  orders: {{ path: {d}/orders.parquet }}
  tickets: {{ path: {d}/tickets.parquet }}
  surveys: {{ path: {d}/surveys.parquet }}
  customers: {{ path: {d}/customers.parquet }}
  events: {{ path: {d}/events.parquet }}
pipelines:
  survey_scores: {{ period: month, by: [channel] }}
  support_kpis: {{ period: week, by: [channel, category] }}
  cohort_retention: {{ period: month, by: [region] }}
  churn: {{ period: month, by: [plan] }}
  activation: {{ days: [1, 7, 30], by: [plan] }}
  ltv_segments: {{ unit: week, by: [region] }}
  cx_impact: {{ by: [plan] }}
output:
  dir: {d}/out
"""


def timed(cmd, **kw):
    """Runs cmd; returns (completed process, wall seconds, peak RSS of the child in MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the maximum over all children so far (KiB on Linux).
    return p, wall, max(after, before) / 1024


def main():
    binary, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
    lines = [
        "# cxmetrics benchmark",
        "",
        f"Machine: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, {platform.platform()}.",
        "Release build; every pipeline of the job below; data from `cxmetrics generate --days 730 --seed 7`.",
        "",
    ]
    for n in sizes:
        d = os.path.join(HERE, "data", f"c{n}")
        gen_note = "cached"
        if not os.path.exists(os.path.join(d, "events.parquet")):
            p, wall, rss = timed([binary, "generate", "--out", d, "--customers", str(n), "--days", "730", "--seed", "7"])
            if p.returncode != 0:
                sys.exit(p.stderr)
            gen_note = f"{wall:.1f} s, peak RSS {rss:.0f} MiB"
        job = os.path.join(d, "job.yaml")
        with open(job, "w") as f:
            f.write(JOB.format(n=n, d=d))
        p, wall, rss = timed([binary, "run", job, "--log-format", "json"])
        if p.returncode != 0:
            sys.exit(p.stderr)
        stages = [json.loads(l) for l in p.stderr.splitlines() if l.startswith("{")]
        rows = {s["name"]: s.get("rows_read") for s in stages if s["stage"] == "input"}
        lines += [f"## {n:,} customers", "",
                  "Inputs: " + ", ".join(f"{k} {v:,} rows" for k, v in rows.items()) + f". Generation: {gen_note}.",
                  "", f"Whole run: **{wall:.2f} s** wall, peak RSS **{rss:.0f} MiB** (RSS is the maximum over this and earlier child processes).",
                  "", "| stage | name | seconds |", "|---|---|---|"]
        seen = set()
        for s in stages:
            key = (s["stage"], s["name"])
            if s["stage"] in ("input", "pipeline", "write") and key not in seen:
                seen.add(key)
                lines.append(f"| {s['stage']} | {s['name']} | {s['elapsed_ms'] / 1000:.3f} |")
        lines.append("")
    text = "\n".join(lines)
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
