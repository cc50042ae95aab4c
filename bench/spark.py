"""`make bench-spark`: the Spark engine against the single-machine bucketed run, side by side.

Per data set (number of customers on the command line), the data of `make bench` (generated once
with `cxmetrics generate --days 730 --seed 7 --intensity 5.5`, cached under bench/data), the job
of `make bench` (every pipeline), and in this one invocation:

1. the local engine: `python -m cxmetrics run JOB --buckets B` (the release wheel's core);
2. the Spark engine: the same command with `--engine spark --remote sc://127.0.0.1:PORT`, against
   the Spark Connect server that bench/spark.sh started in local-cluster[2,1,EXECUTOR_MB] mode with
   the Python workers' memory limited (`spark.executor.pyspark.memory`);
3. every table of the two runs compared byte for byte.

Memory is sampled every 0.5 s for every process: the cxmetrics process (the local run, or the
Spark driver), the Connect server's JVM (the Spark driver), each executor's JVM and each Python
worker; the table gives each kind's largest process and the machine-wide sum at its peak. The
used space of the file system that holds bench/data (the runs' output and work directories, and
the executors' `spark.local.dir`) is sampled too: its growth during a run is the disk the run
needed at its peak.

Writes bench/results-spark.md ($BENCH_RESULTS if set).

Usage: python bench/spark.py PORT SIZE [SIZE ...] (with the Python that has the wheel and pyspark)
"""
import os
import platform
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run import AS_OF, DATA, INTENSITY, job_text  # noqa: E402

PORT = int(sys.argv[1])
SIZES = [int(s) for s in sys.argv[2:]]
REMOTE = f"sc://127.0.0.1:{PORT}"
PY = sys.executable
TIMEOUT_S = int(os.environ.get("BENCH_SPARK_TIMEOUT", 4 * 3600))


def buckets_for(n):
    # About 125,000 customers a bucket: a bucket's working set fits one Python worker's limit.
    return int(os.environ.get("BENCH_SPARK_BUCKETS", 0)) or max(4, -(-n // 125_000))


def kind_of(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if "CoarseGrainedExecutorBackend" in cmd:
        return "executor JVM"
    if "SparkConnectServer" in cmd:
        return "Connect server JVM (Spark driver)"
    if "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
        return "Python worker"
    if " -m cxmetrics " in cmd:
        return "cxmetrics process (with its partition children)"
    return None


class Sampler:
    """Peak RSS per process (by kind) and the largest sum over the sampled processes."""

    def __init__(self):
        self.peaks = {}
        self.total = 0
        self.disk0 = shutil.disk_usage(DATA).used
        self.disk = self.disk0
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop:
            total = 0
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                kind = kind_of(d)
                if kind is None:
                    continue
                try:
                    with open(f"/proc/{d}/status") as f:
                        kib = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
                except (OSError, StopIteration):
                    continue
                total += kib
                key = (kind, int(d))
                self.peaks[key] = max(self.peaks.get(key, 0), kib)
            self.total = max(self.total, total)
            self.disk = max(self.disk, shutil.disk_usage(DATA).used)
            time.sleep(0.5)

    def done(self):
        self.stop = True
        self.t.join()
        by_kind = {}
        for (kind, _), kib in self.peaks.items():
            n, peak = by_kind.get(kind, (0, 0))
            by_kind[kind] = (n + 1, max(peak, kib))
        return by_kind, self.total, self.disk - self.disk0


def measured(args):
    s = Sampler()
    t0 = time.perf_counter()
    p = subprocess.run([PY, "-m", "cxmetrics", *args], capture_output=True, text=True,
                       timeout=TIMEOUT_S)
    wall = time.perf_counter() - t0
    by_kind, total, disk = s.done()
    return p, wall, by_kind, total, disk


def same_bytes(a, b):
    diffs = []
    for name in sorted(os.listdir(a)):
        if not name.endswith(".parquet") or name.startswith("cxmetrics_runs"):
            continue
        with open(os.path.join(a, name), "rb") as fa, open(os.path.join(b, name), "rb") as fb:
            if fa.read() != fb.read():
                diffs.append(name)
    return diffs


def main():
    lines = [
        "# cxmetrics on Spark: benchmark",
        "",
        f"Machine: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"{platform.platform()}.",
        f"Release wheel. Data: `cxmetrics generate --days 730 --seed 7 --intensity {INTENSITY}` "
        f"(as `make bench`). Job: every pipeline, as_of {AS_OF} (bench/run.py's job).",
        f"Spark: pyspark 4.3.0, Spark Connect on 127.0.0.1, `local-cluster[2,1,"
        f"{os.environ.get('EXECUTOR_MB', '?')}]` (two executors of one core), Python worker memory "
        f"{os.environ.get('PYWORKER_MB', '?')} MiB (`spark.executor.pyspark.memory`). Both runs use "
        "the same number of buckets; peak RSS per process kind is the largest single process of "
        "that kind, sampled every 0.5 s. The server's other options: "
        f"`{os.environ.get('SPARK_EXTRA_CONF', '')}`.",
        "",
    ]
    failed = False
    for n in SIZES:
        d = os.path.join(DATA, f"c{n}-i{INTENSITY}")
        if not os.path.exists(os.path.join(d, "events.parquet")):
            t = time.time()
            p = subprocess.run([PY, "-m", "cxmetrics", "generate", "--out", d, "--customers", str(n),
                                "--days", "730", "--seed", "7", "--intensity", INTENSITY],
                               capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"generate failed: {p.stderr}")
            print(f"generated {n:,} customers in {time.time() - t:.0f}s", flush=True)
        work = os.path.join(DATA, f"spark-bench-{n}")
        subprocess.run(["rm", "-rf", work])
        os.makedirs(work)
        job = os.path.join(work, "job.yaml")
        with open(job, "w") as f:
            f.write(job_text(n, d, os.path.join(work, "out")))
        b = buckets_for(n)
        lines += [f"## {n:,} customers, {b} buckets", ""]
        runs = {}
        for engine in ("local", "spark"):
            out = os.path.join(work, f"out-{engine}")
            args = ["run", job, "--buckets", str(b), "--output-dir", out]
            if engine == "spark":
                args += ["--engine", "spark", "--remote", REMOTE]
            p, wall, by_kind, total, disk = measured(args)
            ok = p.returncode == 0
            failed |= not ok
            runs[engine] = out if ok else None
            print(f"{n:,} {engine}: exit {p.returncode}, {wall:.0f}s", flush=True)
            if not ok:
                print(p.stderr[-3000:], flush=True)
            lines.append(f"- **{engine}**: {'%.0f s wall' % wall if ok else 'FAILED (exit %d)' % p.returncode}; "
                         f"sum of the processes' RSS at most **{total / 1024:,.0f} MiB**; "
                         f"disk used grew by at most **{disk / 2**30:,.1f} GiB**")
            for kind, (count, peak) in sorted(by_kind.items()):
                lines.append(f"  - {kind}: {count} process(es), the largest peaked at {peak / 1024:,.0f} MiB")
            phases = [l.split("cxmetrics spark: ", 1)[1] for l in p.stderr.splitlines()
                      if "cxmetrics spark: " in l]
            if phases:
                lines.append("  - phases (the driver's log): " + "; ".join(phases))
        if runs["local"] and runs["spark"]:
            diffs = same_bytes(runs["local"], runs["spark"])
            failed |= bool(diffs)
            lines.append("- tables: " + ("every table the same bytes as the local run's" if not diffs
                                         else f"DIFFERENT: {', '.join(diffs)}"))
        lines.append("")
        subprocess.run(["rm", "-rf", os.path.join(work, "out-local"), os.path.join(work, "out-spark")])
    text = "\n".join(lines)
    with open(os.environ.get("BENCH_RESULTS", os.path.join(HERE, "results-spark.md")), "w") as f:
        f.write(text + "\n")
    print(text)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
