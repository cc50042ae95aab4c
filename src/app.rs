//! Carries out a parsed command line and turns the outcome into output and an exit code.

use crate::cli::{Cli, Command};
use crate::error::CxError;
use crate::runner::{self, RunOptions};
use crate::{generate, validate};

/// Runs the command; returns the process exit code.
pub fn execute(cli: Cli) -> i32 {
    match dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cxmetrics: {e}");
            e.exit_code()
        }
    }
}

fn dispatch(cli: Cli) -> Result<(), CxError> {
    match cli.command {
        Command::Run(args) => {
            let opts = RunOptions {
                as_of: args.as_of,
                output_dir: args.output_dir,
                only: args.only,
                log_format: args.log_format,
                profile: args.profile,
            };
            let s = runner::run(&args.job, &opts)?;
            println!(
                "cxmetrics: job `{}` as of {} -> {}",
                s.job,
                s.as_of,
                s.output_dir.display()
            );
            for t in &s.tables {
                println!("  {:<20} {:>8} rows  {}", t.name, t.rows, t.path.display());
            }
            if s.rejected > 0 {
                println!("  ({} input rows rejected: see rejected_rows)", s.rejected);
            }
            for h in &s.headlines {
                println!("  {h}");
            }
            Ok(())
        }
        Command::Validate { job } => {
            let parsed = validate::load_job(&job)?;
            let summary = validate::check_inputs(&parsed)?;
            println!("{}: ok", job.display());
            for line in summary {
                println!("  {line}");
            }
            let names: Vec<&str> = parsed.pipelines.iter().map(|p| p.name()).collect();
            println!("  pipelines: {}", names.join(", "));
            Ok(())
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
            Ok(())
        }
    }
}
