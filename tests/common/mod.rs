//! Helpers shared by the integration tests: running the binary, writing small Parquet inputs,
//! reading what it published.
#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::*;

/// The binary under test: this build's, or `CXMETRICS_TEST_BIN` (to show that a test fails
/// on an older build).
pub fn bin() -> Command {
    match std::env::var_os("CXMETRICS_TEST_BIN") {
        Some(p) => Command::new(p),
        None => Command::new(env!("CARGO_BIN_EXE_cxmetrics")),
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn ts_col(name: &str, v: Vec<Option<i64>>) -> Column {
    Column::new(name.into(), v)
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .unwrap()
}

/// Microseconds since the epoch of a UTC "YYYY-MM-DD HH:MM:SS".
pub fn us(s: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

pub fn write(path: &Path, df: &mut DataFrame) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    ParquetWriter::new(File::create(path).unwrap())
        .finish(df)
        .unwrap();
}

/// A surveys file: (response_id, survey, score, submitted_at UTC, channel).
pub fn surveys(rows: &[(&str, &str, i64, &str, Option<&str>)]) -> DataFrame {
    DataFrame::new_infer_height(vec![
        Column::new(
            "response_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "customer_id".into(),
            rows.iter().map(|_| "C1").collect::<Vec<_>>(),
        ),
        Column::new(
            "survey".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        Column::new("score".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        ts_col("submitted_at", rows.iter().map(|r| Some(us(r.3))).collect()),
        Column::new(
            "channel".into(),
            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        ),
    ])
    .unwrap()
}

pub fn basic_rows() -> Vec<(
    &'static str,
    &'static str,
    i64,
    &'static str,
    Option<&'static str>,
)> {
    vec![
        ("R1", "nps", 10, "2026-05-03 10:00:00", Some("email")),
        ("R2", "NPS", 9, "2026-05-04 10:00:00", Some("chat")),
        ("R3", "nps", 3, "2026-05-05 10:00:00", None),
        ("R4", "csat", 5, "2026-05-06 10:00:00", Some("chat")),
        ("R5", "csat", 2, "2026-06-01 10:00:00", Some("chat")),
        ("R6", "ces", 6, "2026-06-02 10:00:00", Some("email")),
    ]
}

/// A temp dir with `surveys.parquet` and a job file; returns (dir, job path).
pub fn setup(
    rows: &[(&str, &str, i64, &str, Option<&str>)],
    extra_yaml: &str,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("data/surveys.parquet"), &mut surveys(rows));
    let job = dir.path().join("job.yaml");
    fs::write(
        &job,
        format!(
            "name: t\nas_of: 2026-06-30\ntimezone: UTC\ninputs:\n  surveys: {{ path: data/surveys.parquet }}\n\
             pipelines:\n  survey_scores: {{ period: month, by: [channel] }}\noutput:\n  dir: out\n{extra_yaml}"
        ),
    )
    .unwrap();
    (dir, job)
}

/// `cxmetrics generate` into `data`.
pub fn generate(data: &Path, customers: u32, days: u32, seed: u64) {
    let o = run(&[
        "generate",
        "--out",
        data.to_str().unwrap(),
        "--customers",
        &customers.to_string(),
        "--days",
        &days.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

pub fn read(path: &Path) -> DataFrame {
    ParquetReader::new(File::open(path).unwrap())
        .finish()
        .unwrap()
}

pub fn i64_at(df: &DataFrame, col: &str, i: usize) -> i64 {
    df.column(col).unwrap().i64().unwrap().get(i).unwrap()
}

pub fn str_at(df: &DataFrame, col: &str, i: usize) -> String {
    df.column(col)
        .unwrap()
        .str()
        .unwrap()
        .get(i)
        .unwrap()
        .to_string()
}

/// The files of `dir` (not recursive) with their bytes, by name; the lock file is left out, as
/// every run writes its own name into it.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file() && e.file_name() != ".cxmetrics.lock")
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// The tables of a `snapshot`: its Parquet files but the run log (`cxmetrics_runs`, a row per
/// run with its id and times), and not the manifest, whose timestamps differ per run.
pub fn tables(s: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    s.iter()
        .filter(|(n, _)| n.ends_with(".parquet") && n != "cxmetrics_runs.parquet")
        .cloned()
        .collect()
}

pub fn f64_col(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name).unwrap().f64().unwrap().iter().collect()
}

pub fn i64_col(df: &DataFrame, name: &str) -> Vec<i64> {
    df.column(name)
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

/// An orders file: (order_id, customer_id, ordered_at in µs UTC, amount).
pub fn orders(rows: &[(String, String, i64, f64)]) -> DataFrame {
    DataFrame::new_infer_height(vec![
        Column::new(
            "order_id".into(),
            rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "customer_id".into(),
            rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ),
        ts_col("ordered_at", rows.iter().map(|r| Some(r.2)).collect()),
        Column::new(
            "amount".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
    ])
    .unwrap()
}

/// Writes `job.yaml` into `dir` with `text` and returns its path.
pub fn job_file(dir: &Path, text: &str) -> PathBuf {
    let job = dir.join("job.yaml");
    fs::write(&job, text).unwrap();
    job
}

/// Every Float64 value of every Parquet table directly in `dir` that is NaN or infinite, as
/// (table, column).
pub fn non_finite(dir: &Path) -> Vec<(String, String)> {
    let mut bad = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "parquet") {
            continue;
        }
        let df = read(&p);
        for c in df.columns() {
            if let Ok(f) = c.f64() {
                if f.iter().flatten().any(|v| !v.is_finite()) {
                    bad.push((
                        p.file_name().unwrap().to_string_lossy().to_string(),
                        c.name().to_string(),
                    ));
                }
            }
        }
    }
    bad
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}
