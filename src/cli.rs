//! Command-line interface (clap derive). Parsing only: the commands are carried out in `app`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "cxmetrics",
    version,
    about = "Turns exported customer data into customer-experience and customer-value metrics"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job: read its inputs, compute its pipelines, publish its tables atomically.
    Run(RunArgs),
    /// Check a job file and its inputs' contracts; runs nothing and writes nothing.
    Validate {
        /// Path to the job file (YAML).
        job: PathBuf,
    },
    /// Write a deterministic synthetic data set (all five inputs) for demos, tests and benchmarks.
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Path to the job file (YAML).
    pub job: PathBuf,
    /// The day the run is for (YYYY-MM-DD); overrides the job's `as_of`.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<String>,
    /// Output directory; overrides the job's `output.dir`.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Run only these pipelines (comma-separated names from the job file).
    #[arg(long, value_name = "NAME[,NAME...]", value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Format of the progress log on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Also log each table's slowest query-plan nodes (polars' profiler). Each table is then
    /// computed on its own, so a pipeline's shared parts run once per table: slower.
    #[arg(long)]
    pub profile: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Directory to write orders, tickets, surveys, customers and events Parquet files into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of customers.
    #[arg(long, default_value_t = 5_000)]
    pub customers: u64,
    /// Length of the history in days, ending on the generator's fixed end date (2026-06-30).
    #[arg(long, default_value_t = 548)]
    pub days: u32,
    /// Random seed; the same seed and sizes give the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Activity multiplier: ticket and purchase rates scale by it, drop-out per purchase divides
    /// by it, product events scale by its square root. 1 gives the committed sample data.
    #[arg(long, default_value_t = 1.0)]
    pub intensity: f64,
}
