//! The `cxmetrics` Python package's native module: the command line of the Rust crate, run in
//! the interpreter's process. Everything else (`run`, `compute`, `python -m cxmetrics`) is
//! Python in `pysrc/cxmetrics/`, on top of `main`.

use clap::Parser;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use cxmetrics::app::{run_command, ChildCommand};
use cxmetrics::cli::{Cli, Command, LogFormat};
use cxmetrics::error::CxError;
use cxmetrics::execution::EngineKind;
use cxmetrics::spark::driver::{Driver, RowFacts, SettledFacts};

create_exception!(
    _cxmetrics,
    RunFailed,
    PyException,
    "A run that failed: args are (exit code, the message the command line prints)."
);

/// Runs the command line `argv` (with the program name first) as the `cxmetrics` binary would.
/// Returns `(exit code, error message or None)`. `child` is the command line of this program's
/// hidden child commands (`[python, "-m", "cxmetrics"]`): a run reads each input in a child
/// process, so that a file that makes the Parquet reader abort ends the child, not Python.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<String>, child: Vec<String>) -> PyResult<(i32, Option<String>)> {
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            return Ok((code, Some(e.to_string())));
        }
    };
    let child = child_command(child)?;
    // The run holds no Python object: other Python threads go on while it runs.
    Ok(py.detach(|| run_command(cli, Some(child))))
}

fn child_command(child: Vec<String>) -> PyResult<ChildCommand> {
    let (program, args) = child
        .split_first()
        .ok_or_else(|| PyValueError::new_err("child: the program, then its arguments"))?;
    Ok(ChildCommand {
        program: program.into(),
        args: args.to_vec(),
    })
}

fn failed(e: CxError, format: LogFormat) -> PyErr {
    let code = e.exit_code();
    RunFailed::new_err((
        code,
        cxmetrics::log::fatal_line(format, &e.to_string(), code),
    ))
}

/// `run`'s job path and options from `argv`, when `argv` is a `run` command line.
fn run_args(
    argv: &[String],
    child: Vec<String>,
) -> PyResult<Option<(std::path::PathBuf, cxmetrics::engine::RunOptions)>> {
    let Ok(cli) = Cli::try_parse_from(argv) else {
        return Ok(None);
    };
    let Command::Run(args) = cli.command else {
        return Ok(None);
    };
    let format = args.log_format;
    cxmetrics::app::run_options(args, Some(child_command(child)?))
        .map(Some)
        .map_err(|e| failed(e, format))
}

/// For a `run` command line whose job runs on Spark: (the Connect server, the connect timeout
/// in seconds). None for every other command line (run by `main`).
#[pyfunction]
fn spark_settings(argv: Vec<String>, child: Vec<String>) -> PyResult<Option<(String, u64)>> {
    let Some((job_path, opts)) = run_args(&argv, child)? else {
        return Ok(None);
    };
    let job = match cxmetrics::validate::load_job(&job_path) {
        Ok(job) => job,
        // The command line reports it as it reports every bad job.
        Err(_) => return Ok(None),
    };
    let execution = opts.execution.apply(&job.execution);
    if execution.engine != EngineKind::Spark {
        return Ok(None);
    }
    match execution.remote {
        Some(remote) => Ok(Some((remote, execution.connect_timeout))),
        None => Err(failed(
            CxError::Usage(format!(
                "{}: `engine: spark` needs the Spark Connect server: `execution.remote` or \
                 --remote sc://host:15002",
                job_path.display()
            )),
            opts.log_format,
        )),
    }
}

/// A Spark run's driver (`cxmetrics.spark`): its start, plan, merge, finalize and publish.
#[pyclass(unsendable)]
struct SparkDriver {
    inner: Option<Driver>,
    format: LogFormat,
}

impl SparkDriver {
    fn get(&mut self) -> PyResult<&mut Driver> {
        self.inner
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the run was published"))
    }
}

#[pymethods]
impl SparkDriver {
    #[new]
    fn new(py: Python<'_>, argv: Vec<String>, child: Vec<String>) -> PyResult<Self> {
        let (job, opts) = run_args(&argv, child)?
            .ok_or_else(|| PyValueError::new_err("not a `run` command line"))?;
        let format = opts.log_format;
        let driver = py
            .detach(|| Driver::open(&job, &opts))
            .map_err(|e| failed(e, format))?;
        Ok(SparkDriver {
            inner: Some(driver),
            format,
        })
    }

    fn buckets(&mut self) -> PyResult<u32> {
        Ok(self.get()?.buckets())
    }

    /// The inputs to read (JSON).
    fn inputs(&mut self) -> PyResult<String> {
        Ok(serde_json::to_string(self.get()?.inputs()).expect("serialises"))
    }

    /// The columns to read of the table of input `kind` (JSON), given its schema (Parquet bytes
    /// of no rows).
    fn table_columns(&mut self, kind: i32, schema: &[u8]) -> PyResult<String> {
        let format = self.format;
        let cols = self
            .get()?
            .table_columns(kind, schema)
            .map_err(|e| failed(e, format))?;
        Ok(serde_json::to_string(&cols).expect("serialises"))
    }

    /// The workers' context (JSON).
    fn context(&mut self) -> PyResult<String> {
        Ok(self.get()?.context())
    }

    fn rounds(&mut self) -> PyResult<usize> {
        Ok(self.get()?.rounds())
    }

    fn spark_round(&mut self, round: usize) -> PyResult<bool> {
        Ok(self.get()?.spark_round(round))
    }

    fn add_stats(&mut self, kind: i32, rows: &[u8]) -> PyResult<()> {
        let format = self.format;
        self.get()?
            .add_stats(kind, rows)
            .map_err(|e| failed(e, format))
    }

    #[pyo3(signature = (kind, rows_kept, latest_us, null_times, repeats, first_repeat))]
    fn set_facts(
        &mut self,
        kind: i32,
        rows_kept: u64,
        latest_us: Option<i64>,
        null_times: u64,
        repeats: u64,
        first_repeat: Option<(i64, String)>,
    ) -> PyResult<()> {
        let format = self.format;
        self.get()?
            .set_facts(
                kind,
                SettledFacts {
                    kept: RowFacts {
                        rows: rows_kept,
                        latest_us,
                        null_times,
                    },
                    repeats,
                    first_repeat,
                },
            )
            .map_err(|e| failed(e, format))
    }

    fn gates(&mut self) -> PyResult<()> {
        let format = self.format;
        self.get()?.gates().map_err(|e| failed(e, format))
    }

    fn map_on_driver(&mut self, py: Python<'_>, round: usize) -> PyResult<()> {
        let format = self.format;
        let d = self.get()?;
        py.detach(|| d.map_on_driver(round))
            .map_err(|e| failed(e, format))
    }

    fn kept_rows<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let format = self.format;
        let d = self.get()?;
        let bytes = py.detach(|| d.kept_rows()).map_err(|e| failed(e, format))?;
        Ok(PyBytes::new(py, &bytes))
    }

    fn add_output(&mut self, py: Python<'_>, out: &[u8]) -> PyResult<()> {
        let format = self.format;
        let d = self.get()?;
        py.detach(|| d.add_output(out))
            .map_err(|e| failed(e, format))
    }

    fn finalize(&mut self, py: Python<'_>, round: usize) -> PyResult<()> {
        let format = self.format;
        let d = self.get()?;
        py.detach(|| d.finalize(round))
            .map_err(|e| failed(e, format))
    }

    /// Publishes the tables and prints the run's summary; returns the output directory.
    fn publish(&mut self, py: Python<'_>) -> PyResult<String> {
        let format = self.format;
        let d = self
            .inner
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the run was published"))?;
        let summary = py.detach(|| d.publish()).map_err(|e| failed(e, format))?;
        cxmetrics::app::print_summary(&summary);
        Ok(summary.output_dir.display().to_string())
    }
}

/// The clean of one batch of input `kind` (a Spark worker's call): `ROWS` Parquet bytes.
#[pyfunction]
fn spark_clean<'py>(
    py: Python<'py>,
    context: &str,
    kind: i32,
    file: &str,
    batch: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    use cxmetrics::spark::{context as ctx_of, kind_at, worker};
    let out = py.detach(|| {
        let ctx = ctx_of(context).map_err(worker::Failure::Other)?;
        let kind = kind_at(kind).map_err(worker::Failure::Other)?;
        worker::clean(&ctx, kind, file, batch)
    });
    match out {
        Ok(bytes) => Ok(PyBytes::new(py, &bytes)),
        Err(f) => Err(PyRuntimeError::new_err(f.text())),
    }
}

/// The map of one bucket in `round` (a Spark worker's call): `OUT` Parquet bytes.
#[pyfunction]
fn spark_map<'py>(
    py: Python<'py>,
    context: &str,
    round: usize,
    group: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    use cxmetrics::spark::{context as ctx_of, worker};
    let out = py.detach(|| {
        let ctx = ctx_of(context).map_err(worker::Failure::Other)?;
        worker::map(&ctx, round, group)
    });
    match out {
        Ok(bytes) => Ok(PyBytes::new(py, &bytes)),
        Err(f) => Err(PyRuntimeError::new_err(f.text())),
    }
}

/// Spark's merge of one `By` partial's rows from every bucket (a worker's call): one `OUT` row.
#[pyfunction]
fn spark_merge<'py>(py: Python<'py>, group: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    use cxmetrics::spark::worker;
    match py.detach(|| worker::merge(group)) {
        Ok(bytes) => Ok(PyBytes::new(py, &bytes)),
        Err(f) => Err(PyRuntimeError::new_err(f.text())),
    }
}

#[pymodule]
fn _cxmetrics(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(spark_settings, m)?)?;
    m.add_function(wrap_pyfunction!(spark_clean, m)?)?;
    m.add_function(wrap_pyfunction!(spark_map, m)?)?;
    m.add_function(wrap_pyfunction!(spark_merge, m)?)?;
    m.add_class::<SparkDriver>()?;
    m.add("RunFailed", m.py().get_type::<RunFailed>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
