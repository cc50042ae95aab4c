//! Carries out a parsed command line and turns the outcome into output and an exit code.

use crate::cli::{Cli, Command, LogFormat};
use crate::engine::{self, ExecutionOverrides, RunOptions};
use crate::error::CxError;
use crate::inputs::FileCheck;
use crate::{generate, inputs, log, lookml, output, partition, report, validate};

/// Runs the command; returns the process exit code.
pub fn execute(cli: Cli) -> i32 {
    execute_with(cli, None)
}

/// `execute`, with the command line that runs this program's hidden child commands when it is
/// not the current executable (the Python package: `python -m cxmetrics`).
pub fn execute_with(cli: Cli, child: Option<ChildCommand>) -> i32 {
    let (code, fatal) = run_command(cli, child);
    if let Some(line) = fatal {
        eprintln!("{line}");
    }
    code
}

/// Runs the command; returns its exit code and, when it failed, the line that says why (a JSON
/// line under `--log-format json`), which `execute` prints and the Python package raises.
pub fn run_command(cli: Cli, child: Option<ChildCommand>) -> (i32, Option<String>) {
    let format = match &cli.command {
        Command::Run(args) => args.log_format,
        _ => LogFormat::Text,
    };
    match dispatch(cli, child) {
        Ok(code) => (code, None),
        Err(e) => (
            e.exit_code(),
            Some(log::fatal_line(format, &e.to_string(), e.exit_code())),
        ),
    }
}

/// A program and the arguments before a hidden child command (`__check-parquet`,
/// `__partition`): this executable, or e.g. `python -m cxmetrics`.
#[derive(Debug, Clone)]
pub struct ChildCommand {
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
}

/// Proves input files decode in a child process running this same program, so that a file
/// that makes the Parquet reader abort ends the child, not this run (`inputs::check`).
fn file_check(child: Option<ChildCommand>) -> Result<FileCheck, CxError> {
    let child = match child {
        Some(c) => c,
        None => ChildCommand {
            program: std::env::current_exe()
                .map_err(|e| CxError::internal("locating the cxmetrics program", e))?,
            args: Vec::new(),
        },
    };
    let mut args = child.args;
    args.push("__check-parquet".to_string());
    Ok(FileCheck::Subprocess {
        program: child.program,
        args,
    })
}

fn dispatch(cli: Cli, child: Option<ChildCommand>) -> Result<i32, CxError> {
    match cli.command {
        Command::Run(args) => {
            let (job, opts) = run_options(args, child)?;
            let s = engine::run(&job, &opts)?;
            print_summary(&s);
            Ok(0)
        }
        Command::Validate { job } => {
            let parsed = validate::load_job(&job)?;
            let summary = validate::check_inputs(&parsed, &file_check(child)?)?;
            let output_line = check_output(&parsed)?;
            println!("{}: ok", log::terminal_safe(&job.display().to_string()));
            for line in summary {
                println!("  {}", log::terminal_safe(&line));
            }
            let names: Vec<&str> = parsed.pipelines.iter().map(|p| p.name()).collect();
            println!("  pipelines: {}", names.join(", "));
            println!("  {}", log::terminal_safe(&output_line));
            Ok(0)
        }
        Command::Generate(args) => {
            let counts = generate::generate(&generate::GenerateOptions {
                out: args.out.clone(),
                customers: args.customers,
                days: args.days,
                seed: args.seed,
                intensity: args.intensity,
            })?;
            println!("cxmetrics: generated into {}", args.out.display());
            for (name, rows) in counts {
                println!("  {name:<10} {rows:>10} rows");
            }
            Ok(0)
        }
        Command::Report { output_dir, out } => {
            report::write(&output_dir, &out)?;
            println!(
                "cxmetrics: report of {} -> {}",
                log::terminal_safe(&output_dir.display().to_string()),
                log::terminal_safe(&out.display().to_string())
            );
            Ok(0)
        }
        Command::Lookml {
            job,
            out,
            schema,
            output_dir,
        } => {
            let files = lookml::write(&job, output_dir.as_deref(), &out, &schema)?;
            println!(
                "cxmetrics: {} LookML files -> {}",
                files.len(),
                log::terminal_safe(&out.display().to_string())
            );
            Ok(0)
        }
        Command::CheckParquet { files } => Ok(inputs::serve_check(&files)),
        Command::Partition => Ok(partition::serve()),
    }
}

/// The `validate` command's look at `output.dir`, which it does not create or change.
fn check_output(job: &validate::Job) -> Result<String, CxError> {
    let Some(dir) = &job.output_dir else {
        return Ok("output: no output.dir (pass --output-dir to run)".into());
    };
    if let Some(uri) = dir.to_str().filter(|d| crate::storage::is_remote(d)) {
        engine::remote::check_prefix(uri)?;
        return Ok(format!("output: {uri} can be written (object storage)"));
    }
    let inputs = job.input_locations();
    let mut tables: Vec<&str> = job
        .pipelines
        .iter()
        .flat_map(|p| p.tables().iter().copied())
        .collect();
    tables.push("rejected_rows");
    // The hive layout's paths depend on as_of; any date shows whether a glob would match.
    let as_of = job.as_of.unwrap_or_else(|| crate::time::as_of_range().0);
    let would_write: Vec<_> = tables
        .iter()
        .map(|t| output::table_path(job.layout, as_of, t))
        .collect();
    match output::check_target(dir, &inputs, &would_write) {
        Ok(t) => Ok(format!("output: {} can be written", t.dir.display())),
        Err(problems) => Err(CxError::Target {
            dir: dir.display().to_string(),
            problems,
        }),
    }
}

/// The job path and run options of `cxmetrics run`'s arguments.
pub fn run_options(
    args: crate::cli::RunArgs,
    child: Option<ChildCommand>,
) -> Result<(std::path::PathBuf, RunOptions), CxError> {
    let opts = RunOptions {
        as_of: args.as_of,
        output_dir: args.output_dir,
        only: args.only,
        log_format: args.log_format,
        profile: args.profile,
        wait_for_lock: args.wait_for_lock.unwrap_or_default(),
        file_check: file_check(child)?,
        execution: ExecutionOverrides {
            buckets: args.buckets,
            memory_limit: args.memory_limit,
            threads: args.threads,
            engine: args.engine,
            remote: args.remote,
        },
    };
    Ok((args.job, opts))
}

/// Prints a finished run's summary on standard output.
pub fn print_summary(s: &engine::RunSummary) {
    let safe = log::terminal_safe;
    println!(
        "cxmetrics: job `{}` as of {} -> {}",
        safe(&s.job),
        s.as_of,
        safe(&s.output_dir.display().to_string())
    );
    for t in &s.tables {
        println!(
            "  {:<20} {:>8} rows  {}",
            t.name,
            t.rows,
            safe(&t.path.display().to_string())
        );
    }
    if s.rejected > 0 {
        println!("  ({} input rows rejected: see rejected_rows)", s.rejected);
    }
    for h in &s.headlines {
        println!("  {h}");
    }
}
