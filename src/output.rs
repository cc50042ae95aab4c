//! The one place that writes outputs: warehouse-friendly types, Parquet files, the manifest,
//! and atomic publication.
//!
//! Publication protocol (readers see the previous complete result or the new one):
//! 1. Everything (tables, `manifest.json`) is written into `<dir>/.staging-<run id>/`, laid out
//!    exactly as it will be published, and synced.
//! 2. A `_COMMIT` file listing those paths is written into the staging folder: from then on
//!    the run's result is complete and will be published even if this process dies.
//! 3. Publish: remove `_SUCCESS`, rename each file into place (each rename is atomic), rename
//!    the manifest, write `_SUCCESS`, remove the staging folder.
//!
//! Every run first recovers earlier interrupted runs in `<dir>`: a staging folder with
//! `_COMMIT` is rolled forward (its publish finished), one without is deleted. A run killed
//! before step 2 therefore leaves the previous outputs untouched. Only one run at a time may
//! write to one output directory.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;

use crate::config::{Compression, Layout};
use crate::error::{CxError, Result};

const STAGING_PREFIX: &str = ".staging-";
const COMMIT: &str = "_COMMIT";
const SUCCESS: &str = "_SUCCESS";

/// Where and how a run writes.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    pub dir: PathBuf,
    pub layout: Layout,
    pub compression: Compression,
    pub as_of: NaiveDate,
}

impl OutputPlan {
    /// Path of a table relative to the output dir.
    pub fn table_path(&self, table: &str) -> PathBuf {
        match self.layout {
            Layout::Flat => PathBuf::from(format!("{table}.parquet")),
            Layout::Hive => PathBuf::from(table)
                .join(format!("as_of={}", self.as_of))
                .join("part-0.parquet"),
        }
    }

    /// Folder (relative) holding `manifest.json` and `_SUCCESS`.
    pub fn marker_dir(&self) -> PathBuf {
        match self.layout {
            Layout::Flat => PathBuf::new(),
            Layout::Hive => PathBuf::from("_manifest").join(format!("as_of={}", self.as_of)),
        }
    }
}

/// What was written for one table (for the manifest and the summary).
#[derive(Debug, Clone)]
pub struct WrittenTable {
    pub name: String,
    pub path: PathBuf,
    pub rows: usize,
    pub columns: Vec<(String, String)>,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> CxError {
    CxError::internal(format!("{what} {}", path.display()), e)
}

/// Casts to types every warehouse reads the same way: no unsigned integers, timestamps as
/// microsecond UTC, no categoricals.
pub fn warehouse_types(df: DataFrame) -> PolarsResult<DataFrame> {
    let exprs: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(name, dt)| {
            let c = col(name.clone());
            match dt {
                DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                    c.cast(DataType::Int64)
                }
                DataType::Datetime(_, _) => {
                    c.dt()
                        .timestamp(TimeUnit::Microseconds)
                        .cast(DataType::Datetime(
                            TimeUnit::Microseconds,
                            Some(TimeZone::UTC),
                        ))
                }
                DataType::Categorical(_, _) | DataType::Enum(_, _) => c.cast(DataType::String),
                _ => c,
            }
        })
        .collect();
    df.lazy().select(exprs).collect()
}

fn parquet_compression(c: Compression) -> ParquetCompression {
    match c {
        Compression::Zstd => ParquetCompression::Zstd(None),
        Compression::Snappy => ParquetCompression::Snappy,
        Compression::Lz4 => ParquetCompression::Lz4Raw,
        Compression::Gzip => ParquetCompression::Gzip(None),
        Compression::Uncompressed => ParquetCompression::Uncompressed,
    }
}

/// Finishes or discards runs that were interrupted in `dir`.
pub fn recover(dir: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(notes);
    };
    let mut stagings: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(STAGING_PREFIX))
        })
        .collect();
    stagings.sort();
    for staging in stagings {
        let commit = staging.join(COMMIT);
        if commit.is_file() {
            let list = fs::read_to_string(&commit).map_err(|e| io_err("reading", &commit, e))?;
            let files: Vec<PathBuf> = list.lines().map(PathBuf::from).collect();
            publish_staged(dir, &staging, &files)?;
            notes.push(format!(
                "rolled forward interrupted publish {}",
                staging.display()
            ));
        } else {
            fs::remove_dir_all(&staging).map_err(|e| io_err("removing", &staging, e))?;
            notes.push(format!("removed incomplete staging {}", staging.display()));
        }
    }
    Ok(notes)
}

/// Stages tables for one run; nothing is visible to readers until `commit`.
pub struct Staging {
    plan: OutputPlan,
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl Staging {
    pub fn new(plan: &OutputPlan, run_id: &str) -> Result<Self> {
        fs::create_dir_all(&plan.dir).map_err(|e| io_err("creating output dir", &plan.dir, e))?;
        let dir = plan.dir.join(format!("{STAGING_PREFIX}{run_id}"));
        fs::create_dir_all(&dir).map_err(|e| io_err("creating", &dir, e))?;
        Ok(Staging {
            plan: plan.clone(),
            dir,
            files: Vec::new(),
        })
    }

    /// Writes one table into the staging folder.
    pub fn write_table(&mut self, name: &str, df: DataFrame) -> Result<WrittenTable> {
        let rel = self.plan.table_path(name);
        let path = self.dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        let mut df =
            warehouse_types(df).map_err(|e| CxError::internal(format!("table {name}"), e))?;
        let file = File::create(&path).map_err(|e| io_err("creating", &path, e))?;
        ParquetWriter::new(file)
            .with_compression(parquet_compression(self.plan.compression))
            .with_statistics(StatisticsOptions::default())
            .finish(&mut df)
            .map_err(|e| io_err("writing", &path, e))?;
        sync(&path)?;
        self.files.push(rel.clone());
        Ok(WrittenTable {
            name: name.to_string(),
            path: self.plan.dir.join(rel),
            rows: df.height(),
            columns: df
                .schema()
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        })
    }

    /// Writes the manifest, seals the staging folder and publishes it.
    pub fn commit(mut self, manifest: &serde_json::Value) -> Result<()> {
        let rel = self.plan.marker_dir().join("manifest.json");
        let path = self.dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        let text = serde_json::to_string_pretty(manifest).expect("manifest serialises");
        write_synced(&path, text.as_bytes())?;
        self.files.push(rel);
        let success = self.plan.marker_dir().join(SUCCESS);
        write_synced(&self.dir.join(&success), b"")?;
        self.files.push(success);
        let list: String = self
            .files
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect();
        write_synced(&self.dir.join(COMMIT), list.as_bytes())?;
        publish_staged(&self.plan.dir, &self.dir, &self.files)
    }
}

/// Moves the staged files (the last one being `_SUCCESS`) into `dir`. Idempotent, so that an
/// interrupted publish can be finished later.
fn publish_staged(dir: &Path, staging: &Path, files: &[PathBuf]) -> Result<()> {
    if let Some(success) = files.last() {
        let target = dir.join(success);
        if staging.join(success).exists() && target.exists() {
            fs::remove_file(&target).map_err(|e| io_err("removing", &target, e))?;
        }
    }
    for rel in files {
        let from = staging.join(rel);
        if !from.exists() {
            continue; // already moved by an earlier, interrupted publish
        }
        let to = dir.join(rel);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        fs::rename(&from, &to).map_err(|e| io_err("publishing", &to, e))?;
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    fs::remove_dir_all(staging).map_err(|e| io_err("removing", staging, e))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| io_err("creating", path, e))?;
    f.write_all(bytes).map_err(|e| io_err("writing", path, e))?;
    f.sync_all().map_err(|e| io_err("syncing", path, e))
}

fn sync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("syncing", path, e))
}
