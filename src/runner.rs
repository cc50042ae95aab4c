//! The `run` command: job -> inputs -> quality gate -> pipelines -> atomic publish.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use polars::prelude::*;
use serde_json::json;

use crate::cli::LogFormat;
use crate::contracts::InputKind;
use crate::error::{CxError, Result};
use crate::inputs::{self, InputReport, InputSource, LoadedInput};
use crate::keys::{CustomerKeys, KeyEncoder};
use crate::log::{Field, Log};
use crate::output::{self, OutputPlan, Staging, WrittenTable};
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

/// Env var (tests only): abort the process right after this many tables were staged, to
/// prove that a run killed mid-write leaves the previous outputs intact.
pub const ABORT_AFTER_TABLES_ENV: &str = "CXMETRICS_TEST_ABORT_AFTER_TABLES";

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
                Utc::now().with_timezone(&tz).date_naive() - Duration::days(1)
            }
        },
    };
    let cal = Calendar::new(as_of, &job.timezone).map_err(CxError::Usage)?;
    let pipelines = select_pipelines(&job, opts.only.as_deref())?;
    let out_dir = opts
        .output_dir
        .clone()
        .or_else(|| job.output_dir.clone())
        .ok_or_else(|| {
            CxError::Usage(
                "no output directory: set `output.dir` in the job or pass --output-dir".into(),
            )
        })?;

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
    let sources = job.sources(&kinds)?;
    let extra = Job::extra_columns(&pipelines);
    let Loaded {
        mut frames,
        reports,
        customer_keys,
    } = load_inputs(&sources, &extra, &cal, &job.scales, &log)?;

    // Quality gate: before anything is written.
    let breaches: Vec<String> = reports
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
        dir: out_dir.clone(),
        layout: job.layout,
        compression: job.compression,
        as_of,
    };
    for note in output::recover(&plan.dir)? {
        log.stage(
            "recover",
            "output",
            std::time::Duration::ZERO,
            &[("note", Field::Text(note))],
        );
    }
    let run_id = format!(
        "{}-{}-{}",
        as_of.format("%Y%m%d"),
        started.format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    );
    let abort_after: Option<usize> = std::env::var(ABORT_AFTER_TABLES_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
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
        if abort_after == Some(written.len()) {
            std::process::abort();
        }
    }
    let mut manifest = manifest(
        &job, &pipelines, &run_id, as_of, started, &sources, &reports, &written,
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
        output_dir: out_dir,
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
        inputs::load(&sources[&kind], cal, scales, &want, encoder)
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

/// Whole mebibytes, for the run log's memory fields (polars' estimate of a frame's buffers).
fn mib(bytes: usize) -> u64 {
    (bytes >> 20) as u64
}
