//! The `run` command: job -> inputs -> quality gate -> pipelines -> atomic publish.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use polars::prelude::*;
use serde_json::json;

use crate::cli::LogFormat;
use crate::contracts::InputKind;
use crate::error::{CxError, Result};
use crate::inputs::{self, FileCheck, Freshness, InputReport, InputSource, LoadedInput};
use crate::keys::{CustomerKeys, KeyEncoder};
use crate::log::{Field, Log};
use crate::output::lock::Holder;
use crate::output::{self, OutputPlan, OutputTarget, Staging, WriterLock, WrittenTable};
use crate::pipelines::survey_scores::Scales;
use crate::pipelines::{BuildContext, Inputs, Pipeline, NAMES};
use crate::time::Calendar;
use crate::validate::{self, Job};

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
    /// How input files are proven to decode before they are read (`inputs::check`).
    pub file_check: FileCheck,
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
    let pipelines = select_pipelines(&job, opts.only.as_deref())?;
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

    // Inputs: what the selected pipelines require, plus what they can use and the job declares.
    let kinds: BTreeSet<InputKind> = pipelines
        .iter()
        .flat_map(|p| {
            let optional = p
                .optional_inputs()
                .into_iter()
                .filter(|k| job.inputs.contains_key(k));
            p.required_inputs().into_iter().chain(optional)
        })
        .collect();
    // The output directory: refused before anything is created when it is not ours to write,
    // then locked for this run alone, and interrupted runs finished or cleared under the lock
    // before any input is read, so that a run that then fails on its inputs still leaves a
    // whole result behind.
    let tables_written: Vec<&str> = pipelines
        .iter()
        .flat_map(|p| p.tables().iter().copied())
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
    for note in output::recover(&target.dir)? {
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
    let extra = Job::extra_columns(&pipelines);
    let Loaded {
        mut frames,
        reports,
        customer_keys,
    } = load_inputs(&sources, &extra, &cal, &job.scales, &opts.file_check, &log)?;

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

    let t = Instant::now();
    let keys = CustomerKeys::encode(&mut frames, customer_keys)
        .map_err(|e| CxError::internal("encoding customer ids", e))?;
    let held: usize = frames.values().map(|df| df.estimated_size()).sum();
    log.stage(
        "input",
        "customer_keys",
        t.elapsed(),
        &[
            ("inputs_memory_mib", Field::Int(mib(held))),
            ("ids_from", Field::Text(keys.source().to_string())),
        ],
    );
    let frames: Inputs = frames.into_iter().map(|(k, df)| (k, df.lazy())).collect();

    // Pipelines.
    let mut ctx = BuildContext {
        cal: &cal,
        customers_have_signup: customers_have_signup(&frames)?,
        computed: BTreeMap::new(),
        later: &pipelines[..],
        activity: Default::default(),
    };
    let mut tables: Vec<(String, DataFrame)> = Vec::new();
    for (i, p) in pipelines.iter().enumerate() {
        ctx.later = &pipelines[i + 1..];
        let t = Instant::now();
        let outputs = p
            .build(&frames, &ctx)
            .map_err(|e| CxError::internal(format!("planning pipeline {}", p.name()), e))?;
        let names: Vec<&str> = outputs.iter().map(|(n, _)| *n).collect();
        let lfs = outputs.into_iter().map(|(_, lf)| lf).collect();
        let (engine, dfs) = if opts.profile {
            // polars profiles only the in-memory engine.
            (Engine::InMemory, profiled_collect(lfs, &names, &log))
        } else {
            // One query for all of a pipeline's tables, so the parts they share run once.
            let engine = p.engine();
            (engine, guarded_collect_all(lfs, engine))
        };
        let dfs =
            dfs.map_err(|e| CxError::internal(format!("computing pipeline {}", p.name()), e))?;
        for (name, df) in names.into_iter().zip(dfs) {
            ctx.computed.insert(name, df.clone().lazy());
            let df = keys.decode(df).map_err(|e| {
                CxError::internal(format!("decoding customer ids of table {name}"), e)
            })?;
            log.stage(
                "pipeline",
                p.name(),
                t.elapsed(),
                &[
                    ("table", Field::Text(name.to_string())),
                    ("rows", Field::Int(df.height() as u64)),
                    ("engine", Field::Text(engine.to_string())),
                ],
            );
            tables.push((name.to_string(), df));
        }
        ctx.keep_activity_for_later();
    }
    tables.push(("rejected_rows".to_string(), rejected_rows(&reports)));
    let headlines = headlines(&tables);
    let models = model_summary(&tables);

    // Output.
    let plan = OutputPlan {
        dir: target.dir.clone(),
        layout: job.layout,
        compression: job.compression,
        as_of,
    };
    let mut staging = Staging::new(&plan, &run_id)?;
    let mut written = Vec::new();
    for (name, df) in tables {
        let t = Instant::now();
        let w = staging.write_table(&name, df)?;
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
        &job, &pipelines, &run_id, as_of, started, &sources, &reports, &freshness, &written,
    );
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
    Ok(RunSummary {
        job: job.name,
        as_of,
        output_dir: target.dir,
        tables: written,
        headlines,
        rejected: reports.values().map(|r| r.rows_rejected()).sum(),
    })
}

/// The loaded inputs, their reports, and the customers' id dictionary when customers loaded.
struct Loaded {
    frames: BTreeMap<InputKind, DataFrame>,
    reports: BTreeMap<InputKind, InputReport>,
    customer_keys: Option<CustomerKeys>,
}

/// Loads every input, customers first: their ids are the key dictionary the other inputs are
/// translated into as they are read (see `inputs::load`). Every input's problems are reported
/// together.
fn load_inputs(
    sources: &BTreeMap<InputKind, InputSource>,
    extra: &BTreeMap<InputKind, Vec<String>>,
    cal: &Calendar,
    scales: &Scales,
    check: &FileCheck,
    log: &Log,
) -> Result<Loaded> {
    let mut out = Loaded {
        frames: BTreeMap::new(),
        reports: BTreeMap::new(),
        customer_keys: None,
    };
    let mut problems = Vec::new();
    // Logs and keeps one input; an input error's problems are collected, not returned.
    let mut keep =
        |out: &mut Loaded, kind: InputKind, loaded: Result<LoadedInput>, t: Instant| match loaded {
            Ok(loaded) => {
                let r = &loaded.report;
                let mut fields = vec![
                    ("files", Field::Int(sources[&kind].files.len() as u64)),
                    ("rows_read", Field::Int(r.rows_read)),
                    ("rows_after_as_of", Field::Int(r.rows_after_as_of)),
                    ("rows_rejected", Field::Int(r.rows_rejected())),
                    ("rows_used", Field::Int(loaded.data.height() as u64)),
                    ("memory_mib", Field::Int(mib(loaded.data.estimated_size()))),
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
                out.frames.insert(kind, loaded.data);
                out.reports.insert(kind, loaded.report);
                Ok(())
            }
            Err(CxError::Input { problems: found }) => {
                problems.extend(found);
                Ok(())
            }
            Err(e) => Err(e),
        };
    let load = |kind: InputKind, encoder: Option<&KeyEncoder>| {
        let want = extra.get(&kind).cloned().unwrap_or_default();
        inputs::load(&sources[&kind], cal, scales, &want, encoder, check)
    };
    let dictionary_error = |e| CxError::internal("building the customer id dictionary", e);
    let mut customer_keys = None;
    if sources.contains_key(&InputKind::Customers) {
        let t = Instant::now();
        let mut loaded = load(InputKind::Customers, None);
        if let Some(ids) = loaded.as_mut().ok().and_then(|c| c.ids_read.take()) {
            customer_keys = Some(CustomerKeys::of_customers(&ids).map_err(dictionary_error)?);
        }
        keep(&mut out, InputKind::Customers, loaded, t)?;
    }
    {
        let encoder = customer_keys
            .as_ref()
            .map(CustomerKeys::encoder)
            .transpose()
            .map_err(dictionary_error)?;
        for kind in sources.keys().filter(|k| **k != InputKind::Customers) {
            let t = Instant::now();
            let loaded = load(*kind, encoder.as_ref());
            keep(&mut out, *kind, loaded, t)?;
        }
    }
    if !problems.is_empty() {
        return Err(CxError::Input { problems });
    }
    out.customer_keys = customer_keys;
    Ok(out)
}

fn select_pipelines(job: &Job, only: Option<&[String]>) -> Result<Vec<Pipeline>> {
    let Some(only) = only else {
        return Ok(job.pipelines.clone());
    };
    let configured: Vec<&str> = job.pipelines.iter().map(|p| p.name()).collect();
    let mut problems = Vec::new();
    for name in only {
        if !configured.contains(&name.as_str()) {
            if NAMES.contains(&name.as_str()) {
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
    Ok(job
        .pipelines
        .iter()
        .filter(|p| only.iter().any(|n| n == p.name()))
        .cloned()
        .collect())
}

/// Whether the loaded customers have any signup_at (activation's default anchor).
fn customers_have_signup(frames: &Inputs) -> Result<bool> {
    let Some(customers) = frames.get(&InputKind::Customers) else {
        return Ok(false);
    };
    let n = customers
        .clone()
        .select([col("signup_at").count()])
        .collect()
        .and_then(|df| df.column("signup_at")?.cast(&DataType::Int64))
        .map_err(|e| CxError::internal("counting customers.signup_at", e))?;
    Ok(n.i64().ok().and_then(|c| c.get(0)).unwrap_or(0) > 0)
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

/// How many of a table's plan nodes `--profile` logs, slowest first.
const PROFILE_NODES: usize = 12;

/// Computes each table on its own with polars' profiler and logs its slowest plan nodes as
/// `profile` lines (node text, its own seconds, and when it started within the table's query).
/// This is how to find where a pipeline spends its time: the run log only times whole stages.
fn profiled_collect(
    lfs: Vec<LazyFrame>,
    names: &[&str],
    log: &Log,
) -> std::result::Result<Vec<DataFrame>, String> {
    let mut out = Vec::with_capacity(lfs.len());
    for (lf, name) in lfs.into_iter().zip(names) {
        let (df, nodes) = guarded_compute(|| lf.profile())?;
        for (us, start, node) in slowest_nodes(&nodes).map_err(|e| e.to_string())? {
            log.stage(
                "profile",
                name,
                std::time::Duration::from_micros(us),
                &[
                    ("start_s", Field::Float(start as f64 / 1e6)),
                    ("node", Field::Text(node.chars().take(160).collect())),
                ],
            );
        }
        out.push(df);
    }
    Ok(out)
}

/// The `PROFILE_NODES` slowest rows of a polars profile (`node`, `start`, `end` in µs) as
/// (own µs, start µs, node), slowest first.
fn slowest_nodes(nodes: &DataFrame) -> PolarsResult<Vec<(u64, u64, String)>> {
    let node = nodes.column("node")?.str()?;
    let start = nodes.column("start")?.cast(&DataType::UInt64)?;
    let end = nodes.column("end")?.cast(&DataType::UInt64)?;
    let mut rows: Vec<(u64, u64, String)> = node
        .iter()
        .zip(start.u64()?.iter().zip(end.u64()?.iter()))
        .map(|(n, (s, e))| {
            let (s, e) = (s.unwrap_or(0), e.unwrap_or(0));
            (e.saturating_sub(s), s, n.unwrap_or("").to_string())
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.truncate(PROFILE_NODES);
    Ok(rows)
}

fn guarded_collect_all(
    lfs: Vec<LazyFrame>,
    engine: Engine,
) -> std::result::Result<Vec<DataFrame>, String> {
    let Some(first) = lfs.first() else {
        return Ok(Vec::new());
    };
    let opt = first.get_current_optimizations();
    let plans = lfs.into_iter().map(|lf| lf.logical_plan).collect();
    guarded_compute(|| LazyFrame::collect_all_with_engine(plans, engine, opt))
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
    pipelines: &[Pipeline],
    run_id: &str,
    as_of: NaiveDate,
    started: chrono::DateTime<Utc>,
    sources: &BTreeMap<InputKind, inputs::InputSource>,
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
        "pipelines": pipelines.iter().map(|p| p.name()).collect::<Vec<_>>(),
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

/// Whole mebibytes, for the run log's memory fields (polars' estimate of a frame's buffers).
fn mib(bytes: usize) -> u64 {
    (bytes >> 20) as u64
}
