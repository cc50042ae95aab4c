//! The partition pass: each input is read once, in a streaming pass over its files, cleaned
//! by the rules of its contract (`crate::inputs`), and its valid rows written into one file
//! per customer bucket in the run's work directory (`worker`).
//!
//! Each input's pass runs in a child process running this same program (`cxmetrics
//! __partition`, the request as JSON on its standard input): a corrupt file can make the
//! Parquet reader abort, and that must end the child, not the run. The child reports `file <i>`
//! before it reads file `i`, and at the end `report <json>` (or `problems <json>`); a child that
//! dies names the file it was reading, as a corrupt file (exit 3).

mod worker;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::contracts::InputKind;
use crate::error::{CxError, Result};
use crate::inputs::{FileCheck, InputReport, InputSource, Rejection};
use crate::pipelines::survey_scores::Scales;
use crate::time::Calendar;

pub use worker::bucket_path;

/// The file of an input's folder listing the row numbers of repeated ids.
pub const DROP_LIST: &str = "drop.parquet";
/// The surveys folder's CSAT responses per ticket (`pipelines::Facts::csat_by_ticket`).
pub const CSAT_BY_TICKET: &str = "csat_by_ticket.parquet";

/// What a partition pass is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub kind: String,
    pub files: Vec<PathBuf>,
    pub rename: BTreeMap<String, String>,
    pub money_scales: BTreeMap<String, u32>,
    /// The job's `storage_options`, for inputs in object storage.
    pub storage: crate::storage::StorageOptions,
    pub extra: Vec<String>,
    pub as_of: NaiveDate,
    pub timezone: String,
    pub scales: Scales,
    pub buckets: u32,
    /// The input's folder in the work directory.
    pub dir: PathBuf,
    /// For surveys read for `support_kpis`: the CSAT scale's positive_from, to write the CSAT
    /// responses per ticket.
    pub csat_positive_from: Option<i64>,
}

/// What a partition pass saw of its input.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub rows_read: u64,
    pub rows_after_as_of: u64,
    /// (reason, rows, example id), by reason.
    pub rejected: Vec<(String, u64, String)>,
    pub rows_kept: u64,
    pub latest_us: Option<i64>,
    pub null_signup_at: Option<u64>,
    pub has_signup: bool,
    pub bytes_written: u64,
}

impl Report {
    /// The input report the manifest, the log and the quality gates read.
    pub fn input_report(&self, source: &InputSource) -> InputReport {
        InputReport {
            paths: match &source.table {
                Some(table) => vec![format!("table:{table}")],
                None => source
                    .files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            },
            rows_read: self.rows_read,
            rows_after_as_of: self.rows_after_as_of,
            rejected: self
                .rejected
                .iter()
                .map(|(reason, n, example)| Rejection {
                    reason: reason.clone(),
                    row_count: *n,
                    example_id: example.clone(),
                })
                .collect(),
            null_signup_at: self.null_signup_at,
            latest_us: self.latest_us,
        }
    }
}

/// `lf` (rows of an input's bucket files, with `__row`) without the rows in the input's drop
/// list, when there is one.
pub fn apply_drop_list(lf: LazyFrame, dir: &Path) -> PolarsResult<LazyFrame> {
    let list = dir.join(DROP_LIST);
    if !list.is_file() {
        return Ok(lf);
    }
    let drop = LazyFrame::scan_parquet(PlRefPath::try_from_path(&list)?, Default::default())?;
    Ok(lf.join(
        drop,
        [col("__row")],
        [col("__row")],
        JoinArgs::new(JoinType::Anti),
    ))
}

/// Partitions one input, in a child process or (with `FileCheck::InProcess`) in this one.
#[allow(clippy::too_many_arguments)]
pub fn partition(
    source: &InputSource,
    extra: &[String],
    cal: &Calendar,
    scales: &Scales,
    buckets: u32,
    dir: &Path,
    csat_positive_from: Option<i64>,
    how: &FileCheck,
) -> Result<Report> {
    let request = Request {
        kind: source.kind.name().to_string(),
        files: source.files.clone(),
        rename: source.rename.clone(),
        money_scales: source.money_scales.clone(),
        storage: crate::storage::configured(),
        extra: extra.to_vec(),
        as_of: cal.as_of,
        timezone: cal.timezone.clone(),
        scales: *scales,
        buckets,
        dir: dir.to_path_buf(),
        csat_positive_from,
    };
    match how {
        FileCheck::InProcess => {
            worker::run(&request, &mut |_, _| {}).map_err(|f| failure(source.kind, f))
        }
        FileCheck::Subprocess { program, args } => {
            let args: Vec<String> = args
                .iter()
                .map(|a| {
                    if a == "__check-parquet" {
                        "__partition".to_string()
                    } else {
                        a.clone()
                    }
                })
                .collect();
            run_child(program, &args, &request, source)
        }
    }
}

fn failure(kind: InputKind, f: worker::Failure) -> CxError {
    match f {
        worker::Failure::Input(problems) => CxError::Input { problems },
        worker::Failure::Other(message) => {
            CxError::internal(format!("partitioning input {kind}"), message)
        }
    }
}

fn run_child(
    program: &Path,
    args: &[String],
    request: &Request,
    source: &InputSource,
) -> Result<Report> {
    let kind = source.kind;
    let fail = |what: String| CxError::internal(format!("partitioning input {kind}"), what);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", program.display())))?;
    let text = serde_json::to_string(request).expect("request serialises");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| fail(format!("cannot talk to the partitioning process: {e}")))?;
    }
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // The file being read, and its row count from its footer.
    let mut reading: Option<(usize, u64)> = None;
    let mut outcome: Option<std::result::Result<Report, CxError>> = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| fail(format!("cannot read the partitioning process: {e}")))?;
        if let Some(rest) = line.strip_prefix("file ") {
            let mut parts = rest.split(' ');
            reading = parts.next().and_then(|i| i.parse().ok()).map(|i| {
                let rows = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
                (i, rows)
            });
        } else if let Some(json) = line.strip_prefix("report ") {
            outcome = Some(
                serde_json::from_str(json).map_err(|e| fail(format!("unreadable report: {e}"))),
            );
        } else if let Some(json) = line.strip_prefix("problems ") {
            let problems: Vec<String> = serde_json::from_str(json).unwrap_or_default();
            outcome = Some(Err(CxError::Input { problems }));
        } else if let Some(message) = line.strip_prefix("failed ") {
            outcome = Some(Err(fail(message.to_string())));
        }
    }
    let status = child
        .wait()
        .map_err(|e| fail(format!("cannot wait for the partitioning process: {e}")))?;
    let stderr = errors.join().unwrap_or_default();
    if let Some(outcome) = outcome {
        return outcome;
    }
    let how = match status.code() {
        Some(code) => format!("exit code {code}"),
        None => {
            use std::os::unix::process::ExitStatusExt;
            format!("signal {}", status.signal().unwrap_or(0))
        }
    };
    let complaint = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    match reading.and_then(|(i, rows)| Some((source.files.get(i)?, rows))) {
        Some((path, rows)) => Err(CxError::Input {
            problems: vec![format!(
                "{kind} ({}, {rows} rows): corrupt Parquet: the reader failed hard on this file \
                 ({how}{complaint})",
                path.display()
            )],
        }),
        None => Err(fail(format!(
            "the partitioning process ended without a result ({how}{complaint})"
        ))),
    }
}

/// The child's side (`cxmetrics __partition`). Returns the exit code.
pub fn serve() -> i32 {
    let mut text = String::new();
    if std::io::stdin().read_to_string(&mut text).is_err() {
        return 2;
    }
    let Ok(request) = serde_json::from_str::<Request>(&text) else {
        return 2;
    };
    crate::storage::configure(&request.storage);
    let mut progress = |i: usize, rows: u64| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "file {i} {rows}");
        let _ = out.flush();
    };
    let result = worker::run(&request, &mut progress);
    let mut out = std::io::stdout().lock();
    let code = match result {
        Ok(report) => {
            let _ = writeln!(
                out,
                "report {}",
                serde_json::to_string(&report).expect("report serialises")
            );
            0
        }
        Err(worker::Failure::Input(problems)) => {
            let _ = writeln!(
                out,
                "problems {}",
                serde_json::to_string(&problems).expect("problems serialise")
            );
            3
        }
        Err(worker::Failure::Other(message)) => {
            let _ = writeln!(out, "failed {}", message.replace('\n', " "));
            1
        }
    };
    let _ = out.flush();
    code
}
