//! Buckets and kept rows in the run's work directory.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::rounds::{Buckets, Store};
use crate::contracts::InputKind;
use crate::partition::{apply_drop_list, bucket_path};

/// The bucket files the partition pass wrote, by input.
pub struct DiskBuckets {
    pub count: u32,
    pub dirs: BTreeMap<InputKind, PathBuf>,
}

impl Buckets for DiskBuckets {
    fn count(&self) -> usize {
        self.count as usize
    }

    fn load(
        &self,
        bucket: usize,
        kinds: &[InputKind],
    ) -> PolarsResult<BTreeMap<InputKind, DataFrame>> {
        let mut out = BTreeMap::new();
        for kind in kinds {
            let Some(dir) = self.dirs.get(kind) else {
                continue;
            };
            let path = bucket_path(dir, bucket as u32);
            let scan =
                LazyFrame::scan_parquet(PlRefPath::try_from_path(&path)?, Default::default())?;
            let df = as_loaded(*kind, apply_drop_list(scan, dir)?).collect()?;
            out.insert(*kind, df);
        }
        Ok(out)
    }
}

/// A bucket's kept rows of input `kind` as the maps see them: without the row numbers, and
/// without the id when no metric reads it.
pub fn as_loaded(kind: InputKind, rows: LazyFrame) -> LazyFrame {
    let contract = kind.contract();
    let mut drop = vec!["__row"];
    if let (Some(key), false) = (contract.key, contract.key_read) {
        drop.push(key);
    }
    rows.drop(cols(drop))
}

/// Kept rows in files (`<root>/<name>/<bucket>.parquet`).
pub struct DiskStore {
    pub root: PathBuf,
    /// The row-group size of kept files (`sorted::run_read_rows`).
    row_group: usize,
    /// The names kept so far.
    names: Vec<&'static str>,
}

impl DiskStore {
    pub fn new(root: PathBuf, buckets: u32) -> Self {
        DiskStore {
            root,
            row_group: super::sorted::run_read_rows(buckets),
            names: Vec::new(),
        }
    }

    fn path(&self, name: &str, bucket: usize) -> PathBuf {
        self.root.join(name).join(format!("{bucket:05}.parquet"))
    }

    /// The files of the rows every bucket kept under `name`, in bucket order.
    pub fn run_files(&self, name: &str) -> Vec<PathBuf> {
        (0..)
            .map(|b| self.path(name, b))
            .take_while(|p| p.is_file())
            .collect()
    }
}

fn read(path: &Path) -> PolarsResult<DataFrame> {
    let file = File::open(path)
        .map_err(|e| polars_err!(ComputeError: "opening {}: {}", path.display(), e))?;
    ParquetReader::new(file).finish()
}

impl Store for DiskStore {
    fn keep(
        &mut self,
        bucket: usize,
        name: &'static str,
        mut frame: DataFrame,
    ) -> PolarsResult<()> {
        if !self.names.contains(&name) {
            self.names.push(name);
        }
        super::work::write_file(&self.path(name, bucket), &mut frame, Some(self.row_group))
    }

    fn kept(&self, bucket: usize) -> PolarsResult<BTreeMap<&'static str, DataFrame>> {
        let mut out = BTreeMap::new();
        for name in &self.names {
            let path = self.path(name, bucket);
            if path.is_file() {
                out.insert(*name, read(&path)?);
            }
        }
        Ok(out)
    }
}
