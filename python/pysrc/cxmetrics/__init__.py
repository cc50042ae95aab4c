"""cxmetrics: customer-experience and customer-value metrics from exported customer data.

The same Rust core as the `cxmetrics` command, importable::

    import cxmetrics
    cxmetrics.run("jobs/example.yaml", as_of="2026-06-30", output_dir="out/example")
    tables = cxmetrics.compute("jobs/example.yaml")      # dict of polars DataFrames
    tables["survey_scores"].filter(pl.col("dimension") == "all")

A failed run raises :class:`CxmetricsError`, whose ``exit_code`` is the command's exit code
(2 job file or usage, 3 input, 4 quality gate, 1 other); nothing is written then.
"""
import json
import os
import shutil
import sys
import tempfile

from ._cxmetrics import __version__
from ._cxmetrics import RunFailed as _RunFailed
from ._cxmetrics import main as _main
from ._cxmetrics import spark_settings as _spark_settings

__all__ = ["run", "compute", "CxmetricsError", "__version__"]


class CxmetricsError(Exception):
    """A run that failed: ``exit_code`` as the command line's, ``message`` as it prints."""

    def __init__(self, exit_code, message):
        super().__init__(f"exit {exit_code}: {message}")
        self.exit_code = exit_code
        self.message = message


def _child():
    # The hidden child commands (each input is read in a child process) run through this
    # package's own entry point, with this interpreter.
    return [sys.executable, "-m", "cxmetrics"]


def _cli(argv):
    """Runs the command line ``argv`` (without the program name); returns (code, message).
    A `run` of a job with ``execution.engine: spark`` (or ``--engine spark``) runs on the
    Spark Connect server it names (``cxmetrics.spark``)."""
    argv = ["cxmetrics", *[os.fspath(a) for a in argv]]
    try:
        spark = _spark_settings(argv, _child())
    except _RunFailed as e:
        return e.args
    if spark is None:
        return _main(argv, _child())
    from . import spark as _spark

    try:
        _spark.run(argv, _child(), *spark)
    except CxmetricsError as e:
        return e.exit_code, e.message
    return 0, None


def _run_args(job_path, as_of, output_dir, only):
    argv = ["run", os.fspath(job_path)]
    if as_of is not None:
        argv += ["--as-of", str(as_of)]
    if output_dir is not None:
        argv += ["--output-dir", os.fspath(output_dir)]
    if only:
        argv += ["--only", ",".join(only)]
    return argv


def run(job_path, as_of=None, output_dir=None, only=None):
    """Runs a job as ``cxmetrics run`` does: reads its inputs, computes its pipelines and
    publishes every table atomically to ``output_dir`` (default: the job's ``output.dir``).
    Returns the output directory. Raises :class:`CxmetricsError` with the command's exit code.
    """
    code, message = _cli(_run_args(job_path, as_of, output_dir, only))
    if code != 0:
        raise CxmetricsError(code, message)
    return os.fspath(output_dir) if output_dir is not None else None


def compute(job_path, as_of=None, only=None):
    """Computes a job's tables and returns them as ``{table: polars.DataFrame}``, without
    writing to the job's output: the run publishes into a private temporary directory, which
    is removed before this returns. Raises :class:`CxmetricsError` as :func:`run` does.
    """
    import polars as pl

    tmp = tempfile.mkdtemp(prefix="cxmetrics-compute-")
    try:
        out = os.path.join(tmp, "out")
        run(job_path, as_of=as_of, output_dir=out, only=only)
        with open(os.path.join(out, "manifest.json")) as f:
            manifest = json.load(f)
        return {name: pl.read_parquet(o["path"]) for name, o in manifest["outputs"].items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
