//! The partition pass of one input: one streaming pass over its files that cleans every batch
//! of row groups and writes the valid rows into the bucket files of their customers.
//!
//! Duplicate row ids are settled across files and buckets without holding the ids: the pass
//! keeps a 64-bit hash of every valid row's id; afterwards the sorted hashes show which ids
//! may repeat, and only the rows with those hashes are read back from the bucket files and
//! compared as strings, in file order. The rows that repeat an earlier valid row's id go into
//! a drop list (their `__row` numbers), which the maps apply when they load a bucket.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::{Report, Request};
use crate::bucket::split_by_bucket;
use crate::contracts::InputKind;
use crate::inputs::{
    batches, contract_problems, mark, read_schema, tally, BatchReader, InputSource, Rejected,
};
use crate::time::Calendar;

/// Rows buffered per bucket before they are written as a row group.
fn flush_rows(buckets: u32) -> usize {
    ((4 << 20) / buckets as usize).max(16 << 10)
}

/// Why a partition pass failed.
#[derive(Debug)]
pub enum Failure {
    /// Problems with the input's files (exit 3), each naming the file.
    Input(Vec<String>),
    /// Anything else (writing the work files: exit 1).
    Other(String),
}

/// One bucket's file and the rows waiting to be written into it.
struct BucketFile {
    path: PathBuf,
    writer: Option<polars::io::parquet::write::BatchedWriter<File>>,
    pending: Vec<DataFrame>,
    rows: usize,
}

impl BucketFile {
    fn flush(&mut self, schema: &Schema) -> PolarsResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut all = self.pending.remove(0);
        for df in self.pending.drain(..) {
            all.vstack_mut_owned(df)?;
        }
        all.rechunk_mut();
        if self.writer.is_none() {
            let file = File::create(&self.path).map_err(
                |e| polars_err!(ComputeError: "creating {}: {}", self.path.display(), e),
            )?;
            self.writer = Some(
                ParquetWriter::new(file)
                    .with_compression(ParquetCompression::Lz4Raw)
                    .batched(schema)?,
            );
        }
        self.writer.as_mut().expect("created").write_batch(&all)?;
        self.rows = 0;
        Ok(())
    }
}

/// The path of bucket `b`'s file of an input, under the input's folder.
pub fn bucket_path(dir: &Path, b: u32) -> PathBuf {
    dir.join(format!("part-{b:05}.parquet"))
}

/// Runs the pass described by `request`; `progress(i, rows)` is called before file `i` (of
/// `rows` rows, by its footer) is read.
pub fn run(request: &Request, progress: &mut dyn FnMut(usize, u64)) -> Result<Report, Failure> {
    let other = |e: PolarsError| Failure::Other(e.to_string());
    let kind = InputKind::ALL
        .into_iter()
        .find(|k| k.name() == request.kind)
        .ok_or_else(|| Failure::Other(format!("unknown input `{}`", request.kind)))?;
    let source = InputSource {
        kind,
        files: request.files.clone(),
        rename: request.rename.clone(),
        money_scales: request.money_scales.clone(),
        freshness: None,
        table: None,
    };
    let cal = Calendar::new(request.as_of, &request.timezone).map_err(Failure::Other)?;
    let contract = kind.contract();

    // Every footer and contract first: a run fails before writing anything for an input with
    // a wrong file.
    let mut schemas = Vec::with_capacity(source.files.len());
    let mut problems = Vec::new();
    for path in &source.files {
        match read_schema(path) {
            Ok(schema) => {
                problems.extend(contract_problems(&source, path, &schema, &request.extra));
                schemas.push(schema);
            }
            Err(e) => problems.push(format!("{kind}: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Input(problems));
    }

    std::fs::create_dir_all(&request.dir)
        .map_err(|e| Failure::Other(format!("creating {}: {e}", request.dir.display())))?;
    let buckets = request.buckets;
    let mut files: Vec<BucketFile> = (0..buckets)
        .map(|b| BucketFile {
            path: bucket_path(&request.dir, b),
            writer: None,
            pending: Vec::new(),
            rows: 0,
        })
        .collect();
    let mut schema: Option<Schema> = None;
    let flush_at = flush_rows(buckets);
    let mut report = Report::default();
    let mut rejected: BTreeMap<String, Rejected> = BTreeMap::new();
    let mut hashes: Vec<u64> = Vec::new();
    let mut offset: u64 = 0;
    for (i, (path, file_schema)) in source.files.iter().zip(&schemas).enumerate() {
        progress(i, file_schema.rows as u64);
        let shown = |e: String| {
            Failure::Input(vec![format!(
                "{kind} ({}, {} rows): {e}",
                path.display(),
                file_schema.rows
            )])
        };
        let reader = BatchReader::new(&source, path, file_schema, &request.extra).map_err(shown)?;
        for slice in batches(&file_schema.row_groups) {
            let batch = reader.read(Some(slice), offset).map_err(shown)?;
            offset += batch.height() as u64;
            report.rows_read += batch.height() as u64;
            let marked = mark(kind, batch, &cal, &request.scales)
                .map_err(|e| shown(format!("cannot clean the rows read: {e}")))?;
            report.rows_after_as_of += marked.rows_after_as_of;
            tally(kind, &marked.frame, &marked.reasons, &mut rejected).map_err(other)?;
            let valid = marked.into_valid().map_err(other)?;
            if valid.height() == 0 {
                continue;
            }
            if let Some(key) = contract.key {
                let ids = valid.column(key).map_err(other)?.str().map_err(other)?;
                hashes.extend(ids.iter().flatten().map(id_hash));
            }
            if schema.is_none() {
                schema = Some(valid.schema().as_ref().clone());
            }
            let schema = schema.as_ref().expect("set");
            for (b, part) in split_by_bucket(valid, buckets).map_err(other)? {
                let b = b as usize;
                files[b].rows += part.height();
                files[b].pending.push(part);
                if files[b].rows >= flush_at {
                    files[b].flush(schema).map_err(other)?;
                }
            }
        }
    }
    // Every bucket gets a file, also one without rows, in the schema of the cleaned rows.
    let schema = match schema {
        Some(s) => s,
        None => empty_schema(&source, &schemas, &request.extra)?,
    };
    for f in &mut files {
        if f.writer.is_none() && f.pending.is_empty() {
            f.pending.push(DataFrame::empty_with_schema(&schema));
        }
        f.flush(&schema).map_err(other)?;
        if let Some(w) = f.writer.take() {
            report.bytes_written += w.finish().map_err(other)?;
        }
    }

    let dropped = match contract.key {
        Some(key) => drop_repeats(key, hashes, &files, &request.dir).map_err(other)?,
        None => Vec::new(),
    };
    if let Some((first_row, first_id)) = dropped.first() {
        let _ = first_row;
        rejected.insert(
            format!("duplicate {}", contract.key.expect("keyed")),
            Rejected {
                row_count: dropped.len() as u64,
                first_row: *first_row,
                example_id: first_id.clone(),
            },
        );
    }
    report.rejected = rejected
        .into_iter()
        .map(|(reason, r)| (reason, r.row_count, r.example_id))
        .collect();

    // What the kept rows say: the latest own time (freshness), and for customers whether any
    // has a signup, over the bucket files without the dropped rows, one file at a time.
    let (mut rows, mut latest, mut nulls) = (0i64, None::<i64>, 0i64);
    for f in &files {
        let facts = kept_rows(std::slice::from_ref(f), &request.dir)
            .and_then(|kept| {
                kept.select([
                    len().cast(DataType::Int64).alias("rows"),
                    col(contract.time)
                        .dt()
                        .timestamp(TimeUnit::Microseconds)
                        .max()
                        .alias("latest"),
                    col(contract.time)
                        .null_count()
                        .cast(DataType::Int64)
                        .alias("nulls"),
                ])
                .collect()
            })
            .map_err(other)?;
        let get = |name: &str| -> Option<i64> {
            facts
                .column(name)
                .ok()
                .and_then(|c| c.i64().ok().and_then(|c| c.get(0)))
        };
        rows += get("rows").unwrap_or(0);
        latest = latest.max(get("latest"));
        nulls += get("nulls").unwrap_or(0);
    }
    report.rows_kept = rows as u64;
    report.latest_us = latest;
    if kind == InputKind::Customers {
        report.null_signup_at = Some(nulls as u64);
        report.has_signup = report.rows_kept > nulls as u64;
    }
    if let (InputKind::Surveys, Some(positive_from)) = (kind, request.csat_positive_from) {
        let kept = kept_rows(&files, &request.dir).map_err(other)?;
        let mut csat = crate::pipelines::support_kpis::csat_by_ticket(kept, positive_from)
            .sort(["ticket_id"], Default::default())
            .collect()
            .map_err(other)?;
        let path = request.dir.join(super::CSAT_BY_TICKET);
        let file = File::create(&path)
            .map_err(|e| Failure::Other(format!("creating {}: {e}", path.display())))?;
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Lz4Raw)
            .finish(&mut csat)
            .map_err(other)?;
    }
    Ok(report)
}

/// The 64-bit hash of a row id (collisions only make a row a candidate, compared as a string).
fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// Settles repeated ids: returns the rows (row number, id) that repeat an earlier valid row's
/// id, in file order, and writes their row numbers to the input's drop list.
fn drop_repeats(
    key: &str,
    mut hashes: Vec<u64>,
    files: &[BucketFile],
    dir: &Path,
) -> PolarsResult<Vec<(i64, String)>> {
    hashes.sort_unstable();
    let mut shared: Vec<u64> = hashes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    drop(hashes);
    shared.dedup();
    if shared.is_empty() {
        return Ok(Vec::new());
    }
    // The candidate rows, from every bucket: those whose id hash is shared.
    let mut candidates: Vec<(i64, String)> = Vec::new();
    for f in files {
        let df = LazyFrame::scan_parquet(
            PlRefPath::try_from_path(&f.path)?,
            ScanArgsParquet::default(),
        )?
        .select([col(key), col("__row")])
        .collect()?;
        let ids = df.column(key)?.str()?;
        let rows = df.column("__row")?.i64()?;
        for (id, row) in ids.iter().zip(rows.iter()) {
            if let (Some(id), Some(row)) = (id, row) {
                if shared.binary_search(&id_hash(id)).is_ok() {
                    candidates.push((row, id.to_string()));
                }
            }
        }
    }
    candidates.sort();
    let mut seen = std::collections::HashSet::new();
    let repeats: Vec<(i64, String)> = candidates
        .into_iter()
        .filter(|(_, id)| !seen.insert(id.clone()))
        .collect();
    if !repeats.is_empty() {
        let mut list = DataFrame::new_infer_height(vec![Column::new(
            "__row".into(),
            repeats.iter().map(|r| r.0).collect::<Vec<i64>>(),
        )])?;
        let file = File::create(dir.join(super::DROP_LIST))
            .map_err(|e| polars_err!(ComputeError: "creating the drop list: {}", e))?;
        ParquetWriter::new(file).finish(&mut list)?;
    }
    Ok(repeats)
}

/// Every bucket's kept rows (the drop list applied), lazily.
fn kept_rows(files: &[BucketFile], dir: &Path) -> PolarsResult<LazyFrame> {
    let parts: Vec<LazyFrame> = files
        .iter()
        .map(|f| {
            LazyFrame::scan_parquet(
                PlRefPath::try_from_path(&f.path)?,
                ScanArgsParquet::default(),
            )
        })
        .collect::<PolarsResult<_>>()?;
    let all = concat(parts, UnionArgs::default())?;
    super::apply_drop_list(all, dir)
}

/// The schema of the cleaned rows of an input without any row (from a zero-row read).
fn empty_schema(
    source: &InputSource,
    schemas: &[crate::inputs::FileSchema],
    extra: &[String],
) -> Result<Schema, Failure> {
    let (Some(path), Some(schema)) = (source.files.first(), schemas.first()) else {
        return Err(Failure::Other(format!("{}: no files", source.kind)));
    };
    let reader = BatchReader::new(source, path, schema, extra)
        .map_err(|e| Failure::Input(vec![format!("{} ({}): {e}", source.kind, path.display())]))?;
    let df = reader
        .read(Some((0, 0)), 0)
        .map_err(|e| Failure::Input(vec![format!("{} ({}): {e}", source.kind, path.display())]))?;
    Ok(df.schema().as_ref().clone())
}
