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
    /// Write the HTML report of a published result: one self-contained file (no network
    /// access when opened) with a section per table the result has.
    Report {
        /// The output directory of a run (for the hive layout, its
        /// `_manifest/as_of=YYYY-MM-DD` folder), or its object storage URI.
        output_dir: PathBuf,
        /// Where to write the report.
        #[arg(long, value_name = "FILE", default_value = "report.html")]
        out: PathBuf,
    },
    /// Write a Looker model of a job's tables: a view per table, with measures that
    /// re-aggregate (sum(numerator) ÷ sum(denominator)), and an explore file with a datagroup
    /// on the run log. Reads the manifest of the job's last run.
    Lookml {
        /// Path to the job file (YAML).
        job: PathBuf,
        /// The folder to write the `.lkml` files into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The warehouse schema of the tables (`sql_table_name: SCHEMA.<table>`).
        #[arg(long, value_name = "SCHEMA")]
        schema: String,
        /// The output directory of the run (default: the job's `output.dir`).
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
    /// Write a deterministic synthetic data set (all five inputs) for demos, tests and benchmarks.
    Generate(GenerateArgs),
    /// Internal: decode Parquet files in this process and report each one, so that a file that
    /// makes the reader abort ends this child process instead of the run (see `inputs::check`).
    #[command(name = "__check-parquet", hide = true)]
    CheckParquet {
        /// The files; the input's description comes as JSON on standard input.
        files: Vec<PathBuf>,
    },
    /// Internal: the partition pass of one input (the request as JSON on standard input), in
    /// a child process so that a file that makes the reader abort ends it, not the run.
    #[command(name = "__partition", hide = true)]
    Partition,
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
    /// When another run is writing the output directory, wait up to this long for it (e.g.
    /// `30s`, `15m`, `2h`; at most 7d) instead of failing at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_wait)]
    pub wait_for_lock: Option<std::time::Duration>,
    /// Customer buckets: `auto` or 1 to 4096; overrides `execution.buckets`.
    #[arg(long, value_name = "auto|N", value_parser = crate::execution::parse_buckets_text)]
    pub buckets: Option<crate::execution::Buckets>,
    /// The memory the run may use (e.g. `8GiB`, 256MiB to 16TiB); overrides
    /// `execution.memory_limit`.
    #[arg(long, value_name = "SIZE", value_parser = crate::execution::parse_memory)]
    pub memory_limit: Option<u64>,
    /// Threads for the computation (1 to 1024); overrides `execution.threads`.
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<u32>,
    /// Where the buckets are mapped: `local` or `spark` (run by `python -m cxmetrics run`);
    /// overrides `execution.engine`.
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub engine: Option<crate::execution::EngineKind>,
    /// The Spark Connect server (`sc://host:port`); overrides `execution.remote`.
    #[arg(long, value_name = "URL", value_parser = crate::execution::check_remote)]
    pub remote: Option<String>,
}

fn parse_threads(text: &str) -> Result<u32, String> {
    let t: i64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number"))?;
    crate::execution::check_threads(t)
}

/// The longest `--wait-for-lock`: a week.
const MAX_WAIT_US: i64 = 7 * 86_400_000_000;

fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    let us = crate::time::parse_duration_us(text)?;
    if us > MAX_WAIT_US {
        return Err(format!("`{text}` is longer than the maximum of 7d"));
    }
    Ok(std::time::Duration::from_micros(us as u64))
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
    /// Number of customers (1 to 100,000,000).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub customers: u64,
    /// Length of the history in days (1 to 36,500), ending on the generator's fixed end date
    /// (2026-06-30).
    #[arg(long, default_value_t = 548, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub days: u32,
    /// Random seed; the same seed and sizes give the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Activity multiplier: ticket and purchase rates scale by it, drop-out per purchase divides
    /// by it, product events scale by its square root. 1 gives the committed sample data. From
    /// 0.01 to 100.
    #[arg(long, default_value_t = 1.0, value_parser = parse_intensity)]
    pub intensity: f64,
}

fn parse_intensity(text: &str) -> Result<f64, String> {
    let x: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if !(0.01..=100.0).contains(&x) {
        return Err(format!("`{text}` is outside 0.01 to 100"));
    }
    Ok(x)
}
