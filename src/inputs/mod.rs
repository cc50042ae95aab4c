//! The one place that reads inputs. Each responsibility has its own file:
//!
//! - `files`: where an input's files are (a file, a directory or a glob, relative to the job
//!   file's real folder), and refusing what is not a regular file;
//! - `schema`: a file's footer (row count, column types) checked against the input's contract;
//! - `check`: proving a file decodes before this process decodes it (a corrupt file can make
//!   the Parquet reader abort the process, which no error handling can catch);
//! - `read`: reading and coercing the columns a job needs, batch by batch;
//! - `money`: money columns of warehouse types (Decimal, integer minor units) read exactly;
//! - `clean`: the as_of cut, the value rules of each input and the rejection report;
//! - `dedup`: the first valid occurrence of a row id wins.
//!
//! Reading is eager (one pass per file, only the columns the job needs) so that every problem
//! with a file surfaces here, as an input error naming the file, before any pipeline runs.

mod check;
mod clean;
mod dedup;
mod files;
pub mod money;
mod read;
mod schema;

use std::collections::BTreeMap;
use std::path::PathBuf;

use polars::prelude::*;

use crate::contracts::InputKind;
use crate::error::{CxError, Result};
use crate::pipelines::survey_scores::Scales;
use crate::time::Calendar;

pub use check::{check_files, serve_check, FileCheck};
pub use clean::{example_expr, mark, rejections, tally, Marked, Rejected};
pub use files::{file_size, open_file, resolve_files, Location};
pub use read::{batches, BatchReader};
pub use schema::{contract_problems, read_schema, wanted_columns, FileSchema};

use read::read_all;

/// Where an input's files are and how its columns are named.
#[derive(Debug, Clone)]
pub struct InputSource {
    pub kind: InputKind,
    pub files: Vec<PathBuf>,
    /// Contract column name -> file column name (identity where not mapped).
    pub rename: BTreeMap<String, String>,
    /// Contract money column -> the scale of its integer file column of minor units
    /// (`columns: { amount: { name: amount_cents, scale: 2 } }`).
    pub money_scales: BTreeMap<String, u32>,
    /// How old the latest row may be (`inputs.<name>.freshness`).
    pub freshness: Option<Freshness>,
    /// A table name Spark reads instead of files (`inputs.<name>.table`; `files` is empty).
    pub table: Option<String>,
}

/// Freshness thresholds of one input, in microseconds: the time from its latest row (at or
/// before as_of) to the end of the as_of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Freshness {
    pub warn_after_us: Option<i64>,
    pub error_after_us: Option<i64>,
}

impl InputSource {
    fn file_col<'a>(&'a self, contract_col: &'a str) -> &'a str {
        self.rename
            .get(contract_col)
            .map(String::as_str)
            .unwrap_or(contract_col)
    }
}

/// What the reader saw of one input (goes into the manifest and `rejected_rows`).
#[derive(Debug, Clone, Default)]
pub struct InputReport {
    pub paths: Vec<String>,
    pub rows_read: u64,
    /// Rows whose own time is after the as-of day: not data yet for this run, not errors.
    pub rows_after_as_of: u64,
    pub rejected: Vec<Rejection>,
    /// customers only: kept rows with a null signup_at (left out by `anchor: signup`).
    pub null_signup_at: Option<u64>,
    /// The latest own time (µs) of the rows kept, for freshness; None without rows.
    pub latest_us: Option<i64>,
}

impl InputReport {
    pub fn rows_rejected(&self) -> u64 {
        self.rejected.iter().map(|r| r.row_count).sum()
    }

    /// Rejected rows / rows at or before as_of (0 when there are none).
    pub fn rejected_fraction(&self) -> f64 {
        let considered = self.rows_read - self.rows_after_as_of;
        if considered == 0 {
            0.0
        } else {
            self.rows_rejected() as f64 / considered as f64
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: String,
    pub row_count: u64,
    /// Id of the first rejected row in file order, or `row N` (1-based) where it has none.
    pub example_id: String,
}

#[derive(Debug, Clone)]
pub struct LoadedInput {
    pub data: DataFrame,
    pub report: InputReport,
}

/// Reads, coerces, cuts at as_of and cleans one whole input at once, once `check` has proven
/// that every file decodes. (A run reads its inputs batch by batch in the partition pass,
/// `crate::partition`; this is the same cleaning on a frame held whole.)
pub fn load(
    source: &InputSource,
    calendar: &Calendar,
    scales: &Scales,
    extra: &[String],
    check: &FileCheck,
) -> Result<LoadedInput> {
    let problems = check_files(source, extra, check);
    if !problems.is_empty() {
        return Err(CxError::Input { problems });
    }
    let all = read_all(source, extra)?;
    clean_all(source, all, calendar, scales)
}

fn clean_all(
    source: &InputSource,
    all: DataFrame,
    calendar: &Calendar,
    scales: &Scales,
) -> Result<LoadedInput> {
    let paths = source
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    // The files decoded and matched their contract, so a failure here is about their values
    // (polars can refuse what it decoded): an input error naming the input and its files.
    clean::clean(source.kind, all, paths, calendar, scales).map_err(|e| {
        let files: Vec<String> = source
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        CxError::input(format!(
            "{} ({}): cannot clean the rows read: {e}",
            source.kind,
            files.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use chrono::NaiveDate;

    use super::*;
    use crate::testutil::{us, utc};

    fn cal(as_of: &str, tz: &str) -> Calendar {
        Calendar::new(NaiveDate::parse_from_str(as_of, "%Y-%m-%d").unwrap(), tz).unwrap()
    }

    fn strs(df: &DataFrame, name: &str) -> Vec<Option<String>> {
        df.column(name)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.map(String::from))
            .collect()
    }

    #[test]
    fn a_whole_input_is_read_across_row_groups_with_rows_numbered_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.parquet");
        let ids = [
            Some("C2"),
            Some("C1"),
            Some("C1"),
            Some("C3"),
            None,
            Some("C2"),
        ];
        let mut times: Vec<Option<i64>> = (0..ids.len())
            .map(|i| Some(us(&format!("2026-06-{:02} 12:00:00", i + 1))))
            .collect();
        *times.last_mut().unwrap() = Some(us("2026-07-01 12:00:00"));
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("customer_id".into(), ids),
            utc("event_at", times),
        ])
        .unwrap();
        ParquetWriter::new(File::create(&path).unwrap())
            .with_row_group_size(Some(2))
            .finish(&mut df)
            .unwrap();
        let source = InputSource {
            kind: InputKind::Events,
            files: vec![path],
            rename: BTreeMap::new(),
            money_scales: BTreeMap::new(),
            freshness: None,
            table: None,
        };
        let out = load(
            &source,
            &cal("2026-06-30", "UTC"),
            &Scales::default(),
            &[],
            &FileCheck::InProcess,
        )
        .unwrap();
        assert_eq!(
            strs(&out.data, "customer_id"),
            ["C2", "C1", "C1", "C3"].map(|s| Some(s.to_string()))
        );
        assert_eq!(out.report.rows_read, 6);
        assert_eq!(out.report.rows_after_as_of, 1);
        assert_eq!(
            out.report.rejected,
            [Rejection {
                reason: "null customer_id".into(),
                row_count: 1,
                example_id: "row 5".into()
            }]
        );
    }
}
