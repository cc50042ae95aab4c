//! The `run` command, as a short sequence: the job, the output directory (checked, locked,
//! recovered), the plan (how many customer buckets), the partition pass (every input read once
//! into its bucket files), the quality gates, the rounds (map every bucket, merge, finalize),
//! and the atomic publish. The summary is printed by the command layer (`app`).

pub mod disk;
pub mod memory;
pub mod partials;
pub mod plan;
pub mod profile;
pub mod rounds;
pub mod sorted;
pub mod work;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use polars::prelude::*;
use serde_json::json;

use crate::cli::LogFormat;
use crate::contracts::InputKind;
use crate::error::{CxError, Result};
use crate::execution::{Buckets, Execution};
use crate::inputs::{FileCheck, Freshness, InputReport, InputSource};
use crate::log::{Field, Log};
use crate::output::lock::Holder;
use crate::output::{self, OutputPlan, OutputTarget, Staging, WriterLock, WrittenTable};
use crate::partition;
use crate::pipelines::{self, Facts, Pipeline, TableData};
use crate::time::Calendar;
use crate::validate::{self, Job};
use disk::{DiskBuckets, DiskStore};
use partials::Partials;
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
}

impl ExecutionOverrides {
    /// The job's section with these overrides applied.
    pub fn apply(&self, job: &Execution) -> Execution {
        Execution {
            buckets: self.buckets.unwrap_or(job.buckets),
            memory_limit: self.memory_limit.or(job.memory_limit),
            threads: self.threads.or(job.threads),
            work_dir: job.work_dir.clone(),
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

pub fn run(job_path: &std::path::Path, opts: &RunOptions) -> Result<RunSummary> {
    let log = Log::new(opts.log_format);
    let started = Utc::now();
    let t0 = Instant::now();
    let job = validate::load_job(job_path)?;
    let execution = opts.execution.apply(&job.execution);
    if let Some(threads) = execution.threads {
        // Read by polars when its thread pool starts, which is after this (the job file is
        // parsed without polars); the partition processes inherit it.
        std::env::set_var("POLARS_MAX_THREADS", threads.to_string());
    }

    let as_of = match &opts.as_of {
        Some(s) => validate::parse_date(s).map_err(|e| CxError::Usage(format!("--as-of: {e}")))?,
        None => match job.as_of {
            Some(d) => d,
            None => {
                let tz: chrono_tz::Tz = job.timezone.parse().expect("validated");
                let yesterday = Utc::now().with_timezone(&tz).date_naive() - Duration::days(1);
                validate::check_as_of(yesterday).map_err(CxError::Usage)?
            }
        },
    };
    let cal = Calendar::new(as_of, &job.timezone).map_err(CxError::Usage)?;
    let selection = select_pipelines(&job, opts.only.as_deref())?;
    let out_dir = match &opts.output_dir {
        Some(d) if d.as_os_str().is_empty() => {
            return Err(CxError::Usage("--output-dir: the path is empty".into()))
        }
        Some(d) => d.clone(),
        None => job.output_dir.clone().ok_or_else(|| {
            CxError::Usage(
                "no output directory: set `output.dir` in the job or pass --output-dir".into(),
            )
        })?,
    };

    // Inputs: what the computed pipelines require, plus what they can use and the job declares.
    let kinds: BTreeSet<InputKind> = selection
        .computed
        .iter()
        .flat_map(|p| {
            let u = p.inputs();
            let optional = u
                .optional
                .into_iter()
                .filter(|k| job.inputs.contains_key(k));
            u.required.into_iter().chain(optional)
        })
        .collect();

    // The output directory: refused before anything is created when it is not ours to write,
    // then locked for this run alone, and interrupted runs finished or cleared under the lock
    // before any input is read, so that a run that then fails on its inputs still leaves a
    // whole result behind.
    let tables_written: Vec<&str> = selection
        .written
        .iter()
        .copied()
        .chain(["rejected_rows"])
        .collect();
    let target = prepare_target(&job, &out_dir, &tables_written, as_of)?;
    // A directory that does not exist yet has nothing to recover: its inputs are found first,
    // so that a run that cannot find them creates nothing.
    let found_first = if target.dir.exists() {
        None
    } else {
        Some(job.sources(&kinds)?)
    };
    let run_id = format!(
        "{}-{}-{}",
        as_of.format("%Y%m%d"),
        started.format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    );
    std::fs::create_dir_all(&target.dir).map_err(|e| {
        CxError::internal(format!("creating output dir {}", target.dir.display()), e)
    })?;
    let _lock = WriterLock::acquire(
        &target.dir,
        &Holder::this_process(&run_id, &started.to_rfc3339()),
        opts.wait_for_lock,
    )?;
    target.mark(&run_id)?;
    #[cfg(debug_assertions)]
    crate::faults::pause_if(crate::faults::PAUSE_AFTER_LOCK_ENV);
    let work_root = execution
        .work_dir_in(&job.base_dir)
        .unwrap_or_else(|| target.dir.clone());
    let mut notes = output::recover(&target.dir)?;
    notes.extend(work::remove_stale(&work_root)?);
    for note in notes {
        log.stage(
            "recover",
            "output",
            std::time::Duration::ZERO,
            &[("note", Field::Text(note))],
        );
    }

    let located = match found_first {
        Some(located) => located,
        None => job.sources(&kinds)?,
    };
    let sources: BTreeMap<InputKind, InputSource> =
        located.into_iter().map(|(k, (s, _))| (k, s)).collect();
    let extra = Job::extra_columns(&selection.computed);

    // How many buckets, and the work directory they live in.
    let exec_plan = plan::plan(&execution, &sources, &extra)
        .map_err(|e| CxError::Input { problems: vec![e] })?;
    log.stage(
        "plan",
        &job.name,
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
            ("work_dir", Field::Text(work_root.display().to_string())),
        ],
    );
    let work = WorkDir::create(&work_root, &run_id)?;
    #[allow(unused_mut)]
    let mut work_bytes = exec_plan.work_bytes;
    #[cfg(debug_assertions)]
    if let Some(factor) = crate::faults::work_space() {
        work_bytes = (work_bytes as f64 / plan::WORK_SPACE * factor) as u64;
    }
    work.check_space(work_bytes)?;

    // The partition pass: every input read once, cleaned, into its bucket files.
    let csat_positive_from = selection
        .computed
        .iter()
        .any(|p| p.name() == "support_kpis")
        .then_some(job.scales.csat.positive_from);
    let mut reports = BTreeMap::new();
    let mut partitioned = BTreeMap::new();
    let mut problems = Vec::new();
    for (kind, source) in &sources {
        let t = Instant::now();
        let dir = work.input_dir(*kind);
        let want = extra.get(kind).cloned().unwrap_or_default();
        let csat = (*kind == InputKind::Surveys)
            .then_some(csat_positive_from)
            .flatten();
        match partition::partition(
            source,
            &want,
            &cal,
            &job.scales,
            exec_plan.buckets,
            &dir,
            csat,
            &opts.file_check,
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
                    let age = (cal.cutoff_us() - latest) as f64 / 1e6;
                    fields.push(("age_s", Field::Float(age)));
                }
                log.stage("input", kind.name(), t.elapsed(), &fields);
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

    // Quality gates: before anything is written.
    let mut breaches: Vec<String> = reports
        .iter()
        .filter(|(_, r)| r.rejected_fraction() > job.max_rejected_fraction)
        .map(|(kind, r)| {
            let reasons: Vec<String> = r
                .rejected
                .iter()
                .map(|x| format!("{} x{}", x.reason, x.row_count))
                .collect();
            format!(
                "{kind}: {} of {} rows rejected ({:.4} > max_rejected_fraction {}): {}",
                r.rows_rejected(),
                r.rows_read - r.rows_after_as_of,
                r.rejected_fraction(),
                job.max_rejected_fraction,
                reasons.join(", ")
            )
        })
        .collect();
    let freshness = freshness_report(&sources, &reports, &cal);
    for (kind, f) in &freshness {
        match f.status {
            FreshnessStatus::Error => breaches.push(format!("{kind}: {}", f.describe(as_of))),
            FreshnessStatus::Warn => log.warn(
                "freshness",
                kind.name(),
                &[("message", Field::Text(f.describe(as_of)))],
            ),
            FreshnessStatus::Ok | FreshnessStatus::Unchecked => {}
        }
    }
    if !breaches.is_empty() {
        return Err(CxError::Quality { breaches });
    }

    // Map every bucket, merge, finalize.
    let facts = Facts {
        customers_have_signup: partitioned
            .get(&InputKind::Customers)
            .is_some_and(|(_, r)| r.has_signup),
        csat_by_ticket: partitioned
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
        dirs: partitioned
            .iter()
            .map(|(k, (dir, _))| (*k, dir.clone()))
            .collect(),
    };
    let available: Vec<InputKind> = partitioned.keys().copied().collect();
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
    profile::enable(opts.profile);
    let computed = guarded_compute(|| {
        let r = rounds::Rounds {
            pipelines: &pipelines,
            buckets: &buckets,
            available: &available,
            cal: &cal,
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
    let engine_of = |table: &str| -> String {
        if opts.profile {
            // polars profiles only the in-memory engine.
            return Engine::InMemory.to_string();
        }
        selection
            .computed
            .iter()
            .find(|p| p.tables().contains(&table))
            .map_or(Engine::InMemory, |p| p.engine())
            .to_string()
    };
    let pipeline_of = |table: &str| -> &'static str {
        selection
            .computed
            .iter()
            .find(|p| p.tables().contains(&table))
            .map_or("", |p| p.name())
    };
    let mut tables: Vec<(String, TableData)> = Vec::new();
    for (name, data) in computed {
        if !selection.written.contains(&name) {
            continue;
        }
        let rows = match &data {
            TableData::Frame(df) => df.height() as u64,
            TableData::Kept(kept) => sorted::rows_of(&store.run_files(kept))
                .map_err(|e| CxError::internal(format!("table {name}"), e))?,
        };
        log.stage(
            "pipeline",
            pipeline_of(name),
            t.elapsed(),
            &[
                ("table", Field::Text(name.to_string())),
                ("rows", Field::Int(rows)),
                ("engine", Field::Text(engine_of(name))),
            ],
        );
        tables.push((name.to_string(), data));
    }
    tables.push((
        "rejected_rows".to_string(),
        TableData::Frame(rejected_rows(&reports)),
    ));
    let frames: Vec<(String, DataFrame)> = tables
        .iter()
        .filter_map(|(n, d)| match d {
            TableData::Frame(df) => Some((n.clone(), df.clone())),
            TableData::Kept(_) => None,
        })
        .collect();
    let headlines = headlines(&frames);
    let models = model_summary(&frames);
    drop(frames);
    let pipelines_run: Vec<&str> = selection
        .computed
        .iter()
        .map(|p| p.name())
        .filter(|n| selection.selected.contains(n))
        .collect();

    // Output.
    let plan = OutputPlan {
        dir: target.dir.clone(),
        layout: job.layout,
        compression: job.compression,
        as_of,
    };
    let mut staging = Staging::new(&plan, &run_id)?;
    let mut written = Vec::new();
    for (name, data) in tables {
        let t = Instant::now();
        let w = match data {
            TableData::Frame(df) => staging.write_table(&name, df)?,
            // A table of one row per customer, merged from the buckets' sorted runs as it is
            // written.
            TableData::Kept(kept) => {
                let runs = sorted::MergedRuns::new(
                    store.run_files(kept),
                    sorted::run_read_rows(exec_plan.buckets),
                    sorted::MERGED_BATCH_ROWS,
                )
                .map_err(|e| CxError::internal(format!("table {name}"), e))?;
                staging.write_batches(&name, runs)?
            }
        };
        log.stage(
            "write",
            &name,
            t.elapsed(),
            &[
                ("rows", Field::Int(w.rows as u64)),
                ("path", Field::Text(w.path.display().to_string())),
            ],
        );
        written.push(w);
        #[cfg(debug_assertions)]
        crate::faults::abort_after_tables(written.len());
    }
    let mut manifest = manifest(
        &job,
        &pipelines_run,
        &run_id,
        as_of,
        started,
        &sources,
        &reports,
        &freshness,
        &written,
    );
    manifest["execution"] = json!({
        "buckets": exec_plan.buckets,
        "buckets_from": exec_plan.why,
        "parallel": exec_plan.parallel,
        "memory_limit_bytes": exec_plan.memory_limit,
        "work_bytes": work.bytes_used(),
    });
    if let Some(models) = models {
        manifest["clv_model"] = models;
    }
    let t = Instant::now();
    staging.commit(&manifest)?;
    log.stage(
        "publish",
        &job.name,
        t.elapsed(),
        &[
            ("tables", Field::Int(written.len() as u64)),
            ("dir", Field::Text(plan.dir.display().to_string())),
            ("total_s", Field::Float(t0.elapsed().as_secs_f64())),
        ],
    );
    work.remove();
    Ok(RunSummary {
        job: job.name,
        as_of,
        output_dir: target.dir,
        tables: written,
        headlines,
        rejected: reports.values().map(|r| r.rows_rejected()).sum(),
    })
}

/// The pipelines a run computes (the ones selected, and those their rows depend on), and the
/// tables it writes (the selected ones').
struct Selection {
    computed: Vec<Arc<dyn Pipeline>>,
    selected: Vec<&'static str>,
    written: Vec<&'static str>,
}

fn select_pipelines(job: &Job, only: Option<&[String]>) -> Result<Selection> {
    let all = || Selection {
        computed: job.pipelines.clone(),
        selected: job.pipelines.iter().map(|p| p.name()).collect(),
        written: job
            .pipelines
            .iter()
            .flat_map(|p| p.tables().iter().copied())
            .collect(),
    };
    let Some(only) = only else {
        return Ok(all());
    };
    let configured: Vec<&str> = job.pipelines.iter().map(|p| p.name()).collect();
    let mut problems = Vec::new();
    for name in only {
        if !configured.contains(&name.as_str()) {
            if pipelines::names().contains(&name.as_str()) {
                problems.push(format!(
                    "--only: pipeline `{name}` is not configured in this job"
                ));
            } else {
                problems.push(format!(
                    "--only: unknown pipeline `{name}` (this job has: {})",
                    configured.join(", ")
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(CxError::Usage(problems.join("; ")));
    }
    let selected: Vec<&'static str> = job
        .pipelines
        .iter()
        .map(|p| p.name())
        .filter(|n| only.iter().any(|o| o == n))
        .collect();
    // cx_impact reads the rows ltv_segments keeps: it is computed (not written) along.
    let needs_ltv = job
        .pipelines
        .iter()
        .any(|p| selected.contains(&p.name()) && p.first_round() > 0);
    let computed: Vec<Arc<dyn Pipeline>> = job
        .pipelines
        .iter()
        .filter(|p| selected.contains(&p.name()) || (needs_ltv && p.name() == "ltv_segments"))
        .cloned()
        .collect();
    let written = job
        .pipelines
        .iter()
        .filter(|p| selected.contains(&p.name()))
        .flat_map(|p| p.tables().iter().copied())
        .collect();
    Ok(Selection {
        computed,
        selected,
        written,
    })
}

/// The `clv_model` table (fitted parameters, or why a fit failed) for the manifest.
fn model_summary(tables: &[(String, DataFrame)]) -> Option<serde_json::Value> {
    let (_, df) = tables.iter().find(|(n, _)| n == "clv_model")?;
    let model = df.column("model").ok()?.str().ok()?;
    let parameter = df.column("parameter").ok()?.str().ok()?;
    let value = df.column("value").ok()?.f64().ok()?;
    let note = df.column("note").ok()?.str().ok()?;
    let rows: Vec<serde_json::Value> = (0..df.height())
        .map(|i| {
            json!({
                "model": model.get(i),
                "parameter": parameter.get(i),
                "value": value.get(i),
                "note": note.get(i),
            })
        })
        .collect();
    Some(serde_json::Value::Array(rows))
}

/// Runs a polars computation, turning its errors and panics into a message. A panic while
/// computing is a bug, not bad data (inputs are checked when read), and says so.
fn guarded_compute<T>(f: impl FnOnce() -> PolarsResult<T>) -> std::result::Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("polars panicked while computing (a bug in cxmetrics or polars)".into()),
    }
}

/// The `rejected_rows` table: input, reason, row_count, example_id.
pub fn rejected_rows(reports: &BTreeMap<InputKind, InputReport>) -> DataFrame {
    let mut input = Vec::new();
    let mut reason = Vec::new();
    let mut count = Vec::new();
    let mut example = Vec::new();
    for (kind, r) in reports {
        for x in &r.rejected {
            input.push(kind.name().to_string());
            reason.push(x.reason.clone());
            count.push(x.row_count as i64);
            example.push(x.example_id.clone());
        }
    }
    DataFrame::new_infer_height(vec![
        Column::new("input".into(), input),
        Column::new("reason".into(), reason),
        Column::new("row_count".into(), count),
        Column::new("example_id".into(), example),
    ])
    .expect("columns of equal length")
}

/// Headline NPS/CSAT/CES: the overall score of the latest complete period (else the latest).
fn headlines(tables: &[(String, DataFrame)]) -> Vec<String> {
    let Some((_, df)) = tables.iter().find(|(n, _)| n == "survey_scores") else {
        return Vec::new();
    };
    let latest = df
        .clone()
        .lazy()
        .filter(col("dimension").eq(lit("all")))
        .sort_by_exprs(
            [col("complete"), col("period")],
            SortMultipleOptions::default().with_order_descending_multi([true, true]),
        )
        .group_by_stable([col("survey")])
        .agg([
            col("period").first(),
            col("score").first(),
            col("ci_low").first(),
            col("ci_high").first(),
            col("responses").first(),
            col("complete").first(),
        ])
        .sort(["survey"], Default::default())
        .collect();
    let Ok(latest) = latest else {
        return Vec::new();
    };
    let get = |name: &str| latest.column(name).ok().cloned();
    let (Some(s), Some(p), Some(sc), Some(lo), Some(hi), Some(n)) = (
        get("survey"),
        get("period"),
        get("score"),
        get("ci_low"),
        get("ci_high"),
        get("responses"),
    ) else {
        return Vec::new();
    };
    (0..latest.height())
        .filter_map(|i| {
            Some(format!(
                "{:<4} period {}: {:>6.1}  (95% CI {:.1} to {:.1}, {} responses)",
                s.get(i).ok()?.get_str()?.to_uppercase(),
                p.get(i).ok()?,
                sc.get(i).ok()?.extract::<f64>()?,
                lo.get(i).ok()?.extract::<f64>()?,
                hi.get(i).ok()?.extract::<f64>()?,
                n.get(i).ok()?.extract::<i64>()?,
            ))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn manifest(
    job: &Job,
    pipelines: &[&str],
    run_id: &str,
    as_of: NaiveDate,
    started: chrono::DateTime<Utc>,
    sources: &BTreeMap<InputKind, InputSource>,
    reports: &BTreeMap<InputKind, InputReport>,
    freshness: &BTreeMap<InputKind, FreshnessFinding>,
    written: &[WrittenTable],
) -> serde_json::Value {
    let inputs: serde_json::Map<String, serde_json::Value> = reports
        .iter()
        .map(|(kind, r)| {
            let by_reason: serde_json::Map<String, serde_json::Value> = r
                .rejected
                .iter()
                .map(|x| (x.reason.clone(), json!(x.row_count)))
                .collect();
            let columns = sources
                .get(kind)
                .map(|s| s.rename.clone())
                .unwrap_or_default();
            let mut entry = json!({
                    "paths": r.paths,
                    "column_mapping": columns,
                    "rows_read": r.rows_read,
                    "rows_after_as_of": r.rows_after_as_of,
                    "rows_rejected": r.rows_rejected(),
                    "rows_rejected_by_reason": by_reason,
                    "rejected_fraction": r.rejected_fraction(),
            });
            if let Some(n) = r.null_signup_at {
                // Left out wherever a pipeline anchors on signup.
                entry["rows_null_signup_at"] = json!(n);
            }
            if let Some(f) = freshness.get(kind) {
                let seconds = |us: Option<i64>| us.map(|u| u as f64 / 1e6);
                entry["freshness"] = json!({
                    "latest_at": f.latest_us.map(rfc3339_us),
                    "age_s": seconds(f.age_us),
                    "warn_after_s": seconds(f.limits.warn_after_us),
                    "error_after_s": seconds(f.limits.error_after_us),
                    "status": f.status.name(),
                });
            }
            (kind.name().to_string(), entry)
        })
        .collect();
    let outputs: serde_json::Map<String, serde_json::Value> = written
        .iter()
        .map(|w| {
            let cols: Vec<serde_json::Value> = w
                .columns
                .iter()
                .map(|(n, t)| json!({"name": n, "type": t}))
                .collect();
            (
                w.name.clone(),
                json!({"path": w.path.display().to_string(), "rows": w.rows, "columns": cols}),
            )
        })
        .collect();
    json!({
        "job": job.name,
        "job_file": job.path.display().to_string(),
        "as_of": as_of.to_string(),
        "timezone": job.timezone,
        "run_id": run_id,
        "started_at": started.to_rfc3339(),
        "finished_at": Utc::now().to_rfc3339(),
        "cxmetrics_version": env!("CARGO_PKG_VERSION"),
        "pipelines": pipelines,
        "max_rejected_fraction": job.max_rejected_fraction,
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// Checks that `out_dir` may receive this run's tables (exit 2 with every problem when not).
fn prepare_target(
    job: &Job,
    out_dir: &Path,
    tables: &[&str],
    as_of: NaiveDate,
) -> Result<OutputTarget> {
    let would_write: Vec<PathBuf> = tables
        .iter()
        .map(|t| output::table_path(job.layout, as_of, t))
        .collect();
    // Every declared input counts, not only the ones this run reads: the next run may read
    // the others.
    output::check_target(out_dir, &job.input_locations(), &would_write).map_err(|problems| {
        CxError::Target {
            dir: out_dir.display().to_string(),
            problems,
        }
    })
}

/// How fresh an input's data is at the end of as_of.
#[derive(Debug, Clone)]
pub struct FreshnessFinding {
    pub latest_us: Option<i64>,
    /// From the latest row to the end of the as_of day; None without rows.
    pub age_us: Option<i64>,
    pub limits: Freshness,
    pub status: FreshnessStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshnessStatus {
    /// No thresholds were set for the input.
    Unchecked,
    Ok,
    Warn,
    Error,
}

impl FreshnessStatus {
    fn name(self) -> &'static str {
        match self {
            FreshnessStatus::Unchecked => "unchecked",
            FreshnessStatus::Ok => "ok",
            FreshnessStatus::Warn => "warn",
            FreshnessStatus::Error => "error",
        }
    }
}

impl FreshnessFinding {
    /// One line for the log or the error: how old, against which limit.
    fn describe(&self, as_of: NaiveDate) -> String {
        let (limit_name, limit) = match self.status {
            FreshnessStatus::Error => ("error_after", self.limits.error_after_us),
            _ => ("warn_after", self.limits.warn_after_us),
        };
        let limit = limit.map(duration_text).unwrap_or_default();
        match (self.latest_us, self.age_us) {
            (Some(latest), Some(age)) => format!(
                "latest row at {} is {} old at the end of as_of {as_of} ({limit_name} {limit})",
                rfc3339_us(latest),
                duration_text(age)
            ),
            _ => format!("no rows at or before the end of as_of {as_of} ({limit_name} {limit})"),
        }
    }
}

/// The freshness of every loaded input: age = end of the as_of day minus the latest own time
/// of its kept rows. An input without rows is older than any limit.
fn freshness_report(
    sources: &BTreeMap<InputKind, InputSource>,
    reports: &BTreeMap<InputKind, InputReport>,
    cal: &Calendar,
) -> BTreeMap<InputKind, FreshnessFinding> {
    reports
        .iter()
        .map(|(kind, r)| {
            let limits = sources
                .get(kind)
                .and_then(|s| s.freshness)
                .unwrap_or_default();
            let age_us = r.latest_us.map(|l| cal.cutoff_us() - l);
            let over = |limit: Option<i64>| match (limit, age_us) {
                (Some(limit), Some(age)) => age > limit,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let status = if over(limits.error_after_us) {
                FreshnessStatus::Error
            } else if over(limits.warn_after_us) {
                FreshnessStatus::Warn
            } else if limits == Freshness::default() {
                FreshnessStatus::Unchecked
            } else {
                FreshnessStatus::Ok
            };
            (
                *kind,
                FreshnessFinding {
                    latest_us: r.latest_us,
                    age_us,
                    limits,
                    status,
                },
            )
        })
        .collect()
}

/// `7d 3h 12m 5s`-style text of a duration in microseconds (whole seconds).
fn duration_text(us: i64) -> String {
    let mut s = us.max(0) / 1_000_000;
    let mut out = Vec::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= len {
            out.push(format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if s > 0 || out.is_empty() {
        out.push(format!("{s}s"));
    }
    out.join(" ")
}

/// An instant in microseconds as RFC 3339 UTC.
fn rfc3339_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}
