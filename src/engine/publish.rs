//! The publish: every table written into the staging folder (the per-customer ones merged
//! from the buckets' sorted runs as they are written), the manifest, and the atomic commit.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use polars::prelude::*;
use serde_json::json;

use super::gates::FreshnessFinding;
use super::plan::Plan;
use super::start::Run;
use super::work::WorkDir;
use super::{disk::DiskStore, rfc3339_us, sorted, Partitioned, RunSummary};
use crate::contracts::InputKind;
use crate::error::{CxError, Result};
use crate::inputs::{InputReport, InputSource};
use crate::log::Field;
use crate::output::{run_log, OutputPlan, Staging, WrittenTable};
use crate::pipelines::TableData;
use crate::report;
use crate::validate::Job;

/// Writes `tables` (with `rejected_rows` added), the manifest, and publishes; removes the
/// work directory.
pub fn publish(
    run: Run,
    exec_plan: &Plan,
    work: WorkDir,
    inputs: &Partitioned,
    freshness: &BTreeMap<InputKind, FreshnessFinding>,
    computed: Vec<(&'static str, TableData)>,
    store: &DiskStore,
) -> Result<RunSummary> {
    let Run {
        log,
        started,
        t0,
        job,
        as_of,
        selection,
        target,
        run_id,
        sources,
        ..
    } = run;
    let reports = &inputs.reports;
    let mut tables: Vec<(String, TableData)> = computed
        .into_iter()
        .map(|(n, d)| (n.to_string(), d))
        .collect();
    tables.push((
        "rejected_rows".to_string(),
        TableData::Frame(rejected_rows(reports)),
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

    let plan = OutputPlan {
        dir: target.dir.clone(),
        layout: job.layout,
        compression: job.compression,
        money: job.money,
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
    let finished = Utc::now();
    let log_frame = run_log::appended(
        &plan.dir,
        plan.layout,
        &run_log::RunRow {
            job: &job.name,
            as_of,
            run_id: &run_id,
            started_at: started,
            finished_at: finished,
            tables: &written,
        },
    )?;
    let run_log_written = staging.write_table(run_log::RUN_LOG, log_frame)?;
    let mut manifest = manifest(
        &job,
        &pipelines_run,
        &run_id,
        as_of,
        (started, finished),
        &sources,
        reports,
        freshness,
        &written,
    );
    manifest["run_log"] = json!({
        "path": run_log_written.path.display().to_string(),
        "rows": run_log_written.rows,
    });
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
    if job.report {
        let t = Instant::now();
        let staged = written
            .iter()
            .map(|w| (w.name.clone(), staging.staged_table(&w.name)))
            .collect();
        let text = report::render(&report::Tables::new(staged), &manifest)?;
        let path = staging.write_beside_manifest(report::REPORT_FILE, text.as_bytes())?;
        log.stage(
            "write",
            report::REPORT_FILE,
            t.elapsed(),
            &[("path", Field::Text(path.display().to_string()))],
        );
        manifest["report"] = json!(path.display().to_string());
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
    (started, finished): (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
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
            if let Some(s) = sources.get(kind).filter(|s| !s.money_scales.is_empty()) {
                entry["money_scales"] = json!(s.money_scales);
            }
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
        "finished_at": finished.to_rfc3339(),
        "cxmetrics_version": env!("CARGO_PKG_VERSION"),
        "pipelines": pipelines,
        "max_rejected_fraction": job.max_rejected_fraction,
        "inputs": inputs,
        "outputs": outputs,
    })
}
