//! The `run` command, as a short sequence (`run`): start (the job, the output directory
//! checked, locked and recovered, the inputs found), plan (how many customer buckets, the work
//! directory), partition (every input read once into its bucket files), gates, compute (map
//! every bucket, merge, finalize, in rounds), publish. The summary is printed by the command
//! layer (`app`).

pub mod disk;
pub mod gates;
pub mod memory;
pub mod partials;
pub mod plan;
pub mod profile;
pub mod publish;
pub mod remote;
pub mod rounds;
pub mod sorted;
pub mod start;
pub mod work;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::cli::LogFormat;
use crate::contracts::InputKind;
use crate::error::{CxError, Result};
use crate::execution::{Buckets, Execution};
use crate::inputs::{FileCheck, InputReport};
use crate::log::Field;
use crate::output::WrittenTable;
use crate::partition;
use crate::pipelines::{Facts, Pipeline, TableData};
use disk::{DiskBuckets, DiskStore};
use partials::Partials;
use plan::Plan;
use start::Run;
use work::WorkDir;

/// Command-line overrides for a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub as_of: Option<String>,
    pub output_dir: Option<PathBuf>,
    pub only: Option<Vec<String>>,
    pub log_format: LogFormat,
    /// Log the slowest plan nodes of every table (`--profile`).
    pub profile: bool,
    /// How long to wait for another run writing the same output directory (`--wait-for-lock`).
    pub wait_for_lock: std::time::Duration,
    /// How input files are decoded safely: in a child process running this program, or in
    /// this one (`inputs::check`, `partition`).
    pub file_check: FileCheck,
    /// `--buckets`, `--memory-limit`, `--threads`: over the job's `execution` section.
    pub execution: ExecutionOverrides,
}

/// The command line's overrides of the job's `execution` section.
#[derive(Debug, Clone, Default)]
pub struct ExecutionOverrides {
    pub buckets: Option<Buckets>,
    pub memory_limit: Option<u64>,
    pub threads: Option<u32>,
    pub engine: Option<crate::execution::EngineKind>,
    pub remote: Option<String>,
}

impl ExecutionOverrides {
    /// The job's section with these overrides applied.
    pub fn apply(&self, job: &Execution) -> Execution {
        Execution {
            buckets: self.buckets.unwrap_or(job.buckets),
            memory_limit: self.memory_limit.or(job.memory_limit),
            threads: self.threads.or(job.threads),
            work_dir: job.work_dir.clone(),
            engine: self.engine.unwrap_or(job.engine),
            remote: self.remote.clone().or_else(|| job.remote.clone()),
            connect_timeout: job.connect_timeout,
        }
    }
}

/// What a successful run did, for the human summary.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub job: String,
    pub as_of: NaiveDate,
    pub output_dir: PathBuf,
    pub tables: Vec<WrittenTable>,
    pub headlines: Vec<String>,
    pub rejected: u64,
}

/// Runs a job: start → plan → partition → gates → compute → publish; with an output in object
/// storage, publishes locally first and commits to the store (`remote`).
pub fn run(job_path: &std::path::Path, opts: &RunOptions) -> Result<RunSummary> {
    let job = crate::validate::load_job(job_path)?;
    let tables: Vec<String> = job
        .inputs
        .iter()
        .filter(|(_, cfg)| cfg.table.is_some())
        .map(|(kind, _)| format!("inputs.{kind}.table"))
        .collect();
    let engine = opts.execution.apply(&job.execution).engine;
    if engine == crate::execution::EngineKind::Local && !tables.is_empty() {
        return Err(CxError::Usage(format!(
            "{}: {} name a table Spark reads: run the job with `execution.engine: spark` \
             (docs/spark.md)",
            job_path.display(),
            tables.join(", ")
        )));
    }
    if engine == crate::execution::EngineKind::Spark {
        return Err(CxError::Usage(format!(
            "{}: this job runs on Spark (`execution.engine: spark` or `--engine spark`); run it \
             with the Python package's entry point: `python -m cxmetrics run {}` \
             (docs/spark.md)",
            job_path.display(),
            job_path.display()
        )));
    }
    if let Some(uri) = remote_output(&job, opts) {
        return remote::run(job_path, opts, &job, &uri);
    }
    run_local(job_path, opts)
}

/// The run's output directory when it is in object storage (`--output-dir`, else the job's).
pub fn remote_output(job: &crate::validate::Job, opts: &RunOptions) -> Option<String> {
    let out = opts.output_dir.as_ref().or(job.output_dir.as_ref())?;
    out.to_str()
        .filter(|p| crate::storage::is_remote(p))
        .map(str::to_string)
}

/// A run whose output directory is local.
fn run_local(job_path: &std::path::Path, opts: &RunOptions) -> Result<RunSummary> {
    let run = start::open(job_path, opts)?;
    let (exec_plan, work) = plan_work(&run)?;
    let inputs = partition_inputs(&run, &exec_plan, &work)?;
    let freshness = gates::check(&run, &inputs.reports)?;
    let (tables, store) = compute(&run, &exec_plan, &work, &inputs)?;
    publish::publish(run, &exec_plan, work, &inputs, &freshness, tables, &store)
}

/// How many buckets, and the work directory they live in (its free space checked).
pub(crate) fn plan_work(run: &Run) -> Result<(Plan, WorkDir)> {
    let exec_plan = plan::plan(&run.execution, &run.sources, &run.extra)
        .map_err(|e| CxError::Input { problems: vec![e] })?;
    run.log.stage(
        "plan",
        &run.job.name,
        std::time::Duration::ZERO,
        &[
            ("buckets", Field::Int(exec_plan.buckets as u64)),
            ("buckets_from", Field::Text(exec_plan.why.clone())),
            ("parallel", Field::Int(exec_plan.parallel as u64)),
            (
                "inputs_estimate_mib",
                Field::Int(exec_plan.loaded_bytes >> 20),
            ),
            ("memory_limit_mib", Field::Int(exec_plan.memory_limit >> 20)),
            ("work_dir", Field::Text(run.work_root.display().to_string())),
        ],
    );
    let work = WorkDir::create(&run.work_root, &run.run_id)?;
    #[allow(unused_mut)]
    let mut work_bytes = exec_plan.work_bytes;
    #[cfg(debug_assertions)]
    if let Some(factor) = crate::faults::work_space() {
        work_bytes = (work_bytes as f64 / plan::WORK_SPACE * factor) as u64;
    }
    work.check_space(work_bytes)?;
    Ok((exec_plan, work))
}

/// The inputs after the partition pass: each one's report and the folder of its bucket files.
pub struct Partitioned {
    pub reports: BTreeMap<InputKind, InputReport>,
    pub dirs: BTreeMap<InputKind, (PathBuf, partition::Report)>,
}

/// The partition pass: every input read once, cleaned, into its bucket files. Every input's
/// problems are listed together.
fn partition_inputs(run: &Run, exec_plan: &Plan, work: &WorkDir) -> Result<Partitioned> {
    let csat_positive_from = run
        .selection
        .computed
        .iter()
        .any(|p| p.name() == "support_kpis")
        .then_some(run.job.scales.csat.positive_from);
    let mut reports = BTreeMap::new();
    let mut partitioned = BTreeMap::new();
    let mut problems = Vec::new();
    for (kind, source) in &run.sources {
        let t = Instant::now();
        let dir = work.input_dir(*kind);
        let want = run.extra.get(kind).cloned().unwrap_or_default();
        let csat = (*kind == InputKind::Surveys)
            .then_some(csat_positive_from)
            .flatten();
        match partition::partition(
            source,
            &want,
            &run.cal,
            &run.job.scales,
            exec_plan.buckets,
            &dir,
            csat,
            &run.opts.file_check,
        ) {
            Ok(report) => {
                let r = report.input_report(source);
                let mut fields = vec![
                    ("files", Field::Int(source.files.len() as u64)),
                    ("rows_read", Field::Int(r.rows_read)),
                    ("rows_after_as_of", Field::Int(r.rows_after_as_of)),
                    ("rows_rejected", Field::Int(r.rows_rejected())),
                    ("rows_used", Field::Int(report.rows_kept)),
                    ("work_mib", Field::Int(report.bytes_written >> 20)),
                ];
                if let Some(n) = r.null_signup_at {
                    fields.push(("rows_null_signup_at", Field::Int(n)));
                }
                if let Some(latest) = r.latest_us {
                    fields.push(("latest_at", Field::Text(rfc3339_us(latest))));
                    let age = (run.cal.cutoff_us() - latest) as f64 / 1e6;
                    fields.push(("age_s", Field::Float(age)));
                }
                run.log.stage("input", kind.name(), t.elapsed(), &fields);
                reports.insert(*kind, r);
                partitioned.insert(*kind, (dir, report));
                #[cfg(debug_assertions)]
                crate::faults::pause_at("partition");
            }
            Err(CxError::Input { problems: found }) => problems.extend(found),
            Err(e) => return Err(work.explain(e)),
        }
    }
    if !problems.is_empty() {
        return Err(CxError::Input { problems });
    }

    Ok(Partitioned {
        reports,
        dirs: partitioned,
    })
}

/// Maps every bucket, merges and finalizes, in rounds; returns the tables this run writes
/// (per-customer ones as rows kept in `store`), each logged with its row count.
fn compute(
    run: &Run,
    exec_plan: &Plan,
    work: &WorkDir,
    inputs: &Partitioned,
) -> Result<(Vec<(&'static str, TableData)>, DiskStore)> {
    let (log, selection) = (&run.log, &run.selection);
    let facts = Facts {
        customers_have_signup: inputs
            .dirs
            .get(&InputKind::Customers)
            .is_some_and(|(_, r)| r.has_signup),
        csat_by_ticket: inputs
            .dirs
            .get(&InputKind::Surveys)
            .map(|(dir, _)| dir.join(partition::CSAT_BY_TICKET))
            .filter(|p| p.is_file())
            .map(|p| {
                LazyFrame::scan_parquet(
                    PlRefPath::try_from_path(&p).expect("a path"),
                    Default::default(),
                )
            })
            .transpose()
            .map_err(|e| CxError::internal("reading the CSAT responses per ticket", e))?,
    };
    let buckets = DiskBuckets {
        count: exec_plan.buckets,
        dirs: inputs
            .dirs
            .iter()
            .map(|(k, (dir, _))| (*k, dir.clone()))
            .collect(),
    };
    let available: Vec<InputKind> = inputs.dirs.keys().copied().collect();
    let mut store = DiskStore::new(work.kept_dir(), exec_plan.buckets);
    // One chunk of Rows partials per bucket, about a bucket's share of them, spilled to the
    // work directory when there is more than one.
    let mut partials = Partials::new(
        exec_plan.buckets,
        (exec_plan.buckets > 1).then(|| work.partials_dir()),
    );
    let pipelines: Vec<&dyn Pipeline> = selection.computed.iter().map(|p| p.as_ref()).collect();
    let t = Instant::now();
    let mut progress = |b: usize, count: usize, round: usize, rounds: usize, rows: u64| {
        #[cfg(debug_assertions)]
        crate::faults::pause_at("map");
        let done = (round * count + b + 1) as f64 / (rounds * count) as f64;
        let elapsed = t.elapsed().as_secs_f64();
        log.stage(
            "bucket",
            &format!("{} of {}", b + 1, count),
            std::time::Duration::ZERO,
            &[
                ("round", Field::Int(round as u64)),
                ("rows", Field::Int(rows)),
                ("elapsed_s", Field::Float(elapsed)),
                ("remaining_s", Field::Float(elapsed / done - elapsed)),
            ],
        );
    };
    profile::enable(run.opts.profile);
    let computed = guarded_compute(|| {
        let r = rounds::Rounds {
            pipelines: &pipelines,
            buckets: &buckets,
            available: &available,
            cal: &run.cal,
            facts: &facts,
            parallel: exec_plan.parallel as usize,
        };
        rounds::run(&r, &mut store, &mut partials, &mut progress)
    })
    .map_err(|e| work.explain(CxError::internal("computing the pipelines", e)))?;
    for (what, us, start, node) in profile::take() {
        log.stage(
            "profile",
            &what,
            std::time::Duration::from_micros(us),
            &[
                ("start_s", Field::Float(start as f64 / 1e6)),
                ("node", Field::Text(node.chars().take(160).collect())),
            ],
        );
    }
    let tables = written_tables(run, computed, &store, t)?;
    Ok((tables, store))
}

/// The computed tables this run writes, each logged with its row count.
pub(crate) fn written_tables(
    run: &Run,
    computed: Vec<(&'static str, TableData)>,
    store: &DiskStore,
    t: Instant,
) -> Result<Vec<(&'static str, TableData)>> {
    let (log, selection) = (&run.log, &run.selection);
    let pipeline_of = |table: &str| {
        selection
            .computed
            .iter()
            .find(|p| p.tables().contains(&table))
    };
    let mut tables = Vec::new();
    for (name, data) in computed {
        if !selection.written.contains(&name) {
            continue;
        }
        let rows = match &data {
            TableData::Frame(df) => df.height() as u64,
            TableData::Kept(kept) => sorted::rows_of(&store.run_files(kept))
                .map_err(|e| CxError::internal(format!("table {name}"), e))?,
        };
        // polars profiles only the in-memory engine.
        let engine = match pipeline_of(name) {
            Some(p) if !run.opts.profile => p.engine(),
            _ => Engine::InMemory,
        };
        log.stage(
            "pipeline",
            pipeline_of(name).map_or("", |p| p.name()),
            t.elapsed(),
            &[
                ("table", Field::Text(name.to_string())),
                ("rows", Field::Int(rows)),
                ("engine", Field::Text(engine.to_string())),
            ],
        );
        tables.push((name, data));
    }
    Ok(tables)
}

/// Runs a polars computation, turning its errors and panics into a message. A panic while
/// computing is a bug, not bad data (inputs are checked when read), and says so.
pub(crate) fn guarded_compute<T>(
    f: impl FnOnce() -> PolarsResult<T>,
) -> std::result::Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("polars panicked while computing (a bug in cxmetrics or polars)".into()),
    }
}

/// An instant in microseconds as RFC 3339 UTC.
pub(crate) fn rfc3339_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}
