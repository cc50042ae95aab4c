//! The one place that writes outputs: warehouse-friendly types, Parquet files, the manifest,
//! and their atomic publication into an output directory that the run owns.
//!
//! - `target`: which directories may be written at all (not `/`, not a directory that holds
//!   inputs, not someone else's non-empty directory) and the marker that makes a directory a
//!   cxmetrics output.
//! - `lock`: one writer at a time per output directory (an OS lock, with the holder named).
//! - `commit`: the staging folder, the `_COMMIT` list (every file's size and checksum), the
//!   publish by renames, and the roll-forward or removal of interrupted runs.
//!
//! Publication protocol (readers see the previous complete result or the new one):
//! 1. Under the lock, interrupted runs are recovered first (`commit::recover`).
//! 2. Everything (tables, `manifest.json`, `_SUCCESS`) is written into
//!    `<dir>/.staging-<run id>/` (which holds a `_RUN` file naming its run), laid out exactly as
//!    it will be published, and synced.
//! 3. `_COMMIT` lists every staged file with its size and checksum, and ends with a line that
//!    counts them; it is written to a temporary name, synced and renamed. From then on the run's
//!    result is complete and will be published even if this process dies.
//! 4. Every staged file is verified against `_COMMIT`; then `_SUCCESS` is removed, each file is
//!    renamed into place (each rename is atomic, no symlink on the way is followed), and
//!    `_SUCCESS` comes last. The staging folder is removed.

mod commit;
pub mod lock;
pub mod money;
pub mod run_log;
mod target;

use std::path::PathBuf;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::config::{Compression, Layout, MoneyType};

pub use commit::{recover, Staging};
pub use lock::{WriterLock, LOCK_FILE};
pub use target::{check_target, OutputTarget, MARKER_FILE};

/// Where and how a run writes.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    pub dir: PathBuf,
    pub layout: Layout,
    pub compression: Compression,
    pub money: MoneyType,
    pub as_of: NaiveDate,
}

impl OutputPlan {
    /// Path of a table relative to the output dir.
    pub fn table_path(&self, table: &str) -> PathBuf {
        if table == run_log::RUN_LOG {
            return run_log::path(self.layout);
        }
        table_path(self.layout, self.as_of, table)
    }

    /// Folder (relative) holding `manifest.json` and `_SUCCESS`.
    pub fn marker_dir(&self) -> PathBuf {
        match self.layout {
            Layout::Flat => PathBuf::new(),
            Layout::Hive => PathBuf::from("_manifest").join(format!("as_of={}", self.as_of)),
        }
    }
}

/// Path of `table` relative to an output dir of `layout`.
pub fn table_path(layout: Layout, as_of: NaiveDate, table: &str) -> PathBuf {
    match layout {
        Layout::Flat => PathBuf::from(format!("{table}.parquet")),
        Layout::Hive => PathBuf::from(table)
            .join(format!("as_of={as_of}"))
            .join("part-0.parquet"),
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

/// Casts to types every warehouse reads the same way: no unsigned integers, timestamps as
/// microsecond UTC, no categoricals; with `output.money: decimal`, money as Decimal(38, 6).
pub fn warehouse_types(df: DataFrame, money: MoneyType) -> PolarsResult<DataFrame> {
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
    let mut df = df.lazy().select(exprs).collect()?;
    if money == MoneyType::Decimal {
        let names: Vec<PlSmallStr> = df
            .schema()
            .iter()
            .filter(|(n, dt)| money::is_money(n) && **dt == DataType::Float64)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let d = money::to_decimal(df.column(&name)?)?;
            df.replace(&name, d)?;
        }
    }
    Ok(df)
}

/// The Parquet footer's Arrow schema for a table of `schema`, with strings as plain UTF-8
/// (`string`) rather than polars' own `string_view`: the data pages are the same, and every
/// Arrow reader, older pyarrow compute kernels among them, handles plain strings.
pub fn plain_strings(schema: &Schema) -> KeyValueMetadata {
    let arrow: ArrowSchema = schema
        .to_arrow(CompatLevel::newest())
        .iter_values()
        .map(|f| {
            let mut f = f.clone();
            f.dtype = match f.dtype {
                ArrowDataType::Utf8View | ArrowDataType::LargeUtf8 => ArrowDataType::Utf8,
                ArrowDataType::BinaryView | ArrowDataType::LargeBinary => ArrowDataType::Binary,
                other => other,
            };
            (f.name.clone(), f)
        })
        .collect();
    let kv = polars_parquet::write::schema_to_metadata_key(&arrow);
    KeyValueMetadata::from_static(vec![(kv.key, kv.value.unwrap_or_default())])
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
