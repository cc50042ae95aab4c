//! The `cxmetrics` Python package's native module: the command line of the Rust crate, run in
//! the interpreter's process. Everything else (`run`, `compute`, `python -m cxmetrics`) is
//! Python in `pysrc/cxmetrics/`, on top of `main`.

use clap::Parser;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use cxmetrics::app::{run_command, ChildCommand};
use cxmetrics::cli::Cli;

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
    let (program, args) = child
        .split_first()
        .ok_or_else(|| PyValueError::new_err("child: the program, then its arguments"))?;
    let child = ChildCommand {
        program: program.into(),
        args: args.to_vec(),
    };
    // The run holds no Python object: other Python threads go on while it runs.
    Ok(py.detach(|| run_command(cli, Some(child))))
}

#[pymodule]
fn _cxmetrics(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
