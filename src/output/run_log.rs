//! `cxmetrics_runs`: one row per successful run, for schedulers and for Looker datagroups
//! (`sql_trigger: SELECT max(finished_at) FROM cxmetrics_runs`).
//!
//! The log is one Parquet table in the output location (`cxmetrics_runs.parquet`, or
//! `cxmetrics_runs/part-0.parquet` in hive layout: it spans every as_of, so it is not
//! partitioned). A run reads the published log under the writer lock, appends its own row and
//! stages the whole table with its other tables: the log is published in the same commit, so a
//! reader sees it with the result it describes, and a run that publishes nothing (an input
//! error, the quality gate) adds no row. Its rows differ from run to run by nature (run id,
//! times): it is the one output that reruns do not write byte for byte.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;

use super::WrittenTable;
use crate::config::Layout;
use crate::error::{CxError, Result};

/// The table's name.
pub const RUN_LOG: &str = "cxmetrics_runs";

/// Path of the log relative to the output dir.
pub fn path(layout: Layout) -> PathBuf {
    match layout {
        Layout::Flat => PathBuf::from(format!("{RUN_LOG}.parquet")),
        Layout::Hive => PathBuf::from(RUN_LOG).join("part-0.parquet"),
    }
}

/// What one run contributes.
pub struct RunRow<'a> {
    pub job: &'a str,
    pub as_of: NaiveDate,
    pub run_id: &'a str,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub tables: &'a [WrittenTable],
}

/// The log with `row` appended to the published one in `dir` (if any).
pub fn appended(dir: &Path, layout: Layout, row: &RunRow) -> Result<DataFrame> {
    let new = row_frame(row).map_err(|e| CxError::internal("the run log row", e))?;
    let published = dir.join(path(layout));
    if !published.is_file() {
        return Ok(new);
    }
    let unreadable = |e: String| {
        CxError::internal(
            format!("run log {}", published.display()),
            format!("cannot be read or is not a cxmetrics run log ({e}); move it away to start a new log"),
        )
    };
    let file = std::fs::File::open(&published).map_err(|e| unreadable(e.to_string()))?;
    let old = ParquetReader::new(file)
        .finish()
        .map_err(|e| unreadable(e.to_string()))?;
    if old.schema() != new.schema() {
        return Err(unreadable(format!(
            "its columns are {:?}",
            old.get_column_names()
        )));
    }
    let mut all = old;
    all.vstack_mut(&new)
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(all)
}

/// One row: job, as_of, run_id, started_at, finished_at, cxmetrics_version, and the tables
/// the run wrote with their row counts (`tables`, a JSON object in table order; `rows`, their
/// sum).
fn row_frame(row: &RunRow) -> PolarsResult<DataFrame> {
    let utc = DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
    let us = |t: DateTime<Utc>| t.timestamp_micros();
    let tables: serde_json::Map<String, serde_json::Value> = row
        .tables
        .iter()
        .map(|t| (t.name.clone(), serde_json::json!(t.rows)))
        .collect();
    let rows: i64 = row.tables.iter().map(|t| t.rows as i64).sum();
    let days = (row.as_of - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
    DataFrame::new_infer_height(vec![
        Column::new("job".into(), [row.job]),
        Column::new("as_of".into(), [days]).cast(&DataType::Date)?,
        Column::new("run_id".into(), [row.run_id]),
        Column::new("started_at".into(), [us(row.started_at)]).cast(&utc)?,
        Column::new("finished_at".into(), [us(row.finished_at)]).cast(&utc)?,
        Column::new("cxmetrics_version".into(), [env!("CARGO_PKG_VERSION")]),
        Column::new(
            "tables".into(),
            [serde_json::Value::Object(tables).to_string()],
        ),
        Column::new("rows".into(), [rows]),
    ])
}
