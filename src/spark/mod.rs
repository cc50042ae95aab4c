//! The Rust side of the Spark engine (`execution.engine: spark`): Spark reads the inputs,
//! moves the customer buckets and retries failed tasks; every number is computed here, by the
//! same code as the local engine. The Python package drives it (`cxmetrics/spark.py`):
//!
//! 1. **Clean** (`worker::clean`, in Spark's Python workers, one call per Arrow batch of an
//!    input file Spark read): the batch is coerced to the contract's types and marked by its
//!    rules exactly as the partition pass does, and returned as `ROWS`: each bucket's valid
//!    rows as one Parquet blob, one key row per valid row (for the duplicate-id rule and the
//!    input's facts), and the batch's tallies.
//! 2. **Settle the inputs** (Spark): a row whose id an earlier valid row already has (by
//!    `__row`, the row's number in the input) is dropped, by a window over the key rows; the
//!    kept key rows give the input's row count, latest time and null times as exact integer
//!    aggregates, and the CSAT responses per ticket as integer sums routed to the ticket's
//!    bucket. The driver merges the tallies (`driver::Driver::add_stats`).
//! 3. **Map** (`worker::map`, one call per bucket: `groupBy("__bucket").applyInArrow`): the
//!    bucket's blobs in row order, without the dropped rows, are the bucket file the local
//!    engine would have read; the pipelines of the round that read inputs map it, with the
//!    rows earlier rounds kept, and return `OUT`: each partial and kept frame as a blob. The
//!    kept frames stay in Spark (persisted) for the next rounds' maps, and go to the driver.
//! 4. **Merge** (`worker::merge`, one call per `By` partial:
//!    `groupBy("__pipeline", "__name").applyInArrow`): the partial's frames of every bucket
//!    folded into one by the local engine's merge (exact integer sums, minima and maxima);
//!    `Rows` partials are a union, the rows themselves.
//! 5. **Finalize and publish** (`driver`): the driver adds the merged partials to the same
//!    `Partials` (the Rows partials in bucket order), keeps the kept rows in the same store,
//!    runs the maps that read only kept rows and need a state (the second round of
//!    `ltv_segments`) and sends Spark what they keep, finalizes, checks the gates, and
//!    publishes with the local engine's writer, manifest and `_SUCCESS`.
//!
//! Frames cross between Python and Rust as Parquet bytes (the format both sides already read
//! and write exactly), wrapped in the fixed Arrow schemas `ROWS` and `OUT` that Spark sees.

pub mod driver;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::contracts::InputKind;
use crate::engine::start::{select_pipelines, Selection};
use crate::inputs::InputSource;
use crate::pipelines::Merge;
use crate::time::Calendar;
use crate::validate::Job;

/// What a `ROWS` row is (its `__what`).
pub mod what {
    /// A bucket's valid rows of one batch (`__data`: Parquet).
    pub const DATA: i32 = 0;
    /// One valid row's id (`__key`), own time in microseconds (`__n`) and, for a CSAT
    /// response about a ticket, the ticket (`__ticket`) and whether it is positive (`__m`).
    pub const KEY: i32 = 1;
    /// A batch's tallies (`__data`: JSON `BatchStats`), `__bucket` -1.
    pub const STATS: i32 = 2;
    /// A row (`__row`) dropped as a repeated id.
    pub const DROP: i32 = 3;
    /// A ticket's CSAT responses: `__key` ticket_id, `__n` responses, `__m` positive ones.
    pub const CSAT: i32 = 4;
    /// Rows kept by an earlier round: `__key` their name, `__row` the part, `__data` Parquet.
    pub const KEPT: i32 = 5;
}

/// The columns of `ROWS`, the rows Spark moves between the stages (Arrow types in
/// `cxmetrics/spark.py`): `__bucket` Int32, `__what` Int32, `__kind` Int32 (the input's
/// index in `InputKind::ALL`), `__row` Int64, `__key` String, `__ticket` String, `__n` Int64,
/// `__m` Int64, `__data` Binary.
pub const ROWS: &[&str] = &[
    "__bucket", "__what", "__kind", "__row", "__key", "__ticket", "__n", "__m", "__data",
];

/// What an `OUT` row is (its `__what`).
pub mod out {
    /// A `Merge::By` partial of a bucket (or, after Spark's merge, of every bucket).
    pub const BY: i32 = 0;
    /// A part of a kept frame.
    pub const KEPT: i32 = 1;
    /// A `Merge::Rows` partial of a bucket.
    pub const ROWS: i32 = 2;
}

/// The columns of `OUT`, what a bucket's map returns: `__bucket` Int32, `__what` Int32 (`out`),
/// `__pipeline` String, `__name` String, `__merge` String (a partial's merge rule, JSON),
/// `__part` Int32, `__parts` Int32, `__data` Binary (Parquet).
pub const OUT: &[&str] = &[
    "__bucket",
    "__pipeline",
    "__what",
    "__name",
    "__merge",
    "__part",
    "__parts",
    "__data",
];

/// Kept frames are cut into parts of about this many bytes in memory, so that no row Spark
/// moves or the Connect client receives is near a message limit.
const PART_BYTES: usize = 16 << 20;

/// What the workers are told about the run (JSON): the job file's text, so that each worker
/// builds the same pipelines, and what the driver settled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContextSpec {
    pub job_text: String,
    pub job_path: PathBuf,
    pub as_of: NaiveDate,
    pub only: Option<Vec<String>>,
    pub buckets: u32,
    /// The CSAT scale's positive_from when support_kpis reads surveys.
    pub csat_positive_from: Option<i64>,
    /// `Facts::customers_have_signup`, settled after the inputs.
    pub customers_have_signup: bool,
}

/// A worker's view of the run, built from a `ContextSpec`.
pub struct Context {
    pub spec: ContextSpec,
    pub job: Job,
    pub cal: Calendar,
    pub selection: Selection,
    pub extra: BTreeMap<InputKind, Vec<String>>,
}

impl Context {
    pub fn build(spec: ContextSpec) -> Result<Context, String> {
        let job = crate::validate::check_text(&spec.job_text, &spec.job_path).map_err(|p| {
            p.iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        crate::storage::configure(&job.storage);
        let cal = Calendar::new(spec.as_of, &job.timezone)?;
        let selection = select_pipelines(&job, spec.only.as_deref()).map_err(|e| e.to_string())?;
        let extra = Job::extra_columns(&selection.computed);
        Ok(Context {
            spec,
            job,
            cal,
            selection,
            extra,
        })
    }

    /// The input `kind` without its files: its renames and money scales.
    pub fn source(&self, kind: InputKind) -> Result<InputSource, String> {
        self.job
            .input_source(kind, Vec::new())
            .ok_or_else(|| format!("the job does not declare input {kind}"))
    }
}

/// The context of the last spec a worker process saw: a Python worker maps many batches and
/// buckets of one run, and builds the pipelines once.
static CONTEXT: Mutex<Option<Arc<Context>>> = Mutex::new(None);

/// The context for `spec` (JSON), built once per process and spec.
pub fn context(spec: &str) -> Result<Arc<Context>, String> {
    let spec: ContextSpec =
        serde_json::from_str(spec).map_err(|e| format!("the run's context: {e}"))?;
    let mut cached = CONTEXT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = cached.as_ref().filter(|c| c.spec == spec) {
        return Ok(ctx.clone());
    }
    let ctx = Arc::new(Context::build(spec)?);
    *cached = Some(ctx.clone());
    Ok(ctx)
}

/// The input with index `i` in `InputKind::ALL`.
pub fn kind_at(i: i32) -> Result<InputKind, String> {
    usize::try_from(i)
        .ok()
        .and_then(|i| InputKind::ALL.get(i).copied())
        .ok_or_else(|| format!("no input number {i}"))
}

/// The index of `kind` in `InputKind::ALL`.
pub fn kind_index(kind: InputKind) -> i32 {
    InputKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in ALL") as i32
}

/// `df` as Parquet bytes (`compressed`: LZ4, for blobs).
pub fn to_parquet(df: &mut DataFrame, compressed: bool) -> PolarsResult<Vec<u8>> {
    let mut buf = Vec::new();
    let compression = if compressed {
        ParquetCompression::Lz4Raw
    } else {
        ParquetCompression::Uncompressed
    };
    ParquetWriter::new(&mut buf)
        .with_compression(compression)
        .finish(df)?;
    Ok(buf)
}

/// Parquet bytes as a frame.
pub fn from_parquet(bytes: &[u8]) -> PolarsResult<DataFrame> {
    ParquetReader::new(Cursor::new(bytes)).finish()
}

/// Column `name` of a frame that crossed from Spark, as the type the fixed schemas (`ROWS`,
/// `OUT`) give it; a missing column or another type is an error, never a guess.
pub fn typed<T: PolarsPhysicalType>(df: &DataFrame, name: &str) -> PolarsResult<ChunkedArray<T>> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .unpack::<T>()?
        .clone())
}

/// A frame sent in parts (`worker::parts_of`), whole again: the parts in part order, stacked.
/// None for no parts.
pub fn join_parts<P: Ord>(mut parts: Vec<(P, DataFrame)>) -> PolarsResult<Option<DataFrame>> {
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    let mut parts = parts.into_iter();
    let Some((_, mut all)) = parts.next() else {
        return Ok(None);
    };
    for (_, df) in parts {
        all.vstack_mut_owned(df)?;
    }
    all.rechunk_mut();
    Ok(Some(all))
}

/// Strings that must live as long as the program: the names of partials and kept rows that
/// arrive from the workers (the engine names them with `&'static str`). Each distinct name is
/// stored once.
pub fn intern(s: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(s) {
        return n;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// A merge rule as JSON text.
pub fn merge_text(merge: Merge) -> String {
    let v = match merge {
        Merge::By { keys, min, max } => serde_json::json!({"by": keys, "min": min, "max": max}),
        Merge::Rows { keys } => serde_json::json!({ "rows": keys }),
    };
    v.to_string()
}

/// A merge rule from its JSON text (each distinct text parsed once: its names live as long
/// as the program).
pub fn merge_from(text: &str) -> Result<Merge, String> {
    static RULES: Mutex<BTreeMap<String, Merge>> = Mutex::new(BTreeMap::new());
    let mut rules = RULES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = rules.get(text) {
        return Ok(*m);
    }
    let m = parse_merge(text)?;
    rules.insert(text.to_string(), m);
    Ok(m)
}

fn parse_merge(text: &str) -> Result<Merge, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("a merge rule: {e}"))?;
    let names = |key: &str| -> Result<&'static [&'static str], String> {
        let list = v
            .get(key)
            .and_then(|l| l.as_array())
            .ok_or_else(|| format!("a merge rule without `{key}`: {text}"))?;
        let names: Vec<&'static str> = list
            .iter()
            .map(|n| n.as_str().map(intern).ok_or("a name"))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("a merge rule: {e}"))?;
        Ok(Box::leak(names.into_boxed_slice()))
    };
    if v.get("rows").is_some() {
        Ok(Merge::Rows {
            keys: names("rows")?,
        })
    } else {
        Ok(Merge::By {
            keys: names("by")?,
            min: names("min")?,
            max: names("max")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_rules_survive_their_text() {
        for merge in [
            Merge::sum(&["a", "b"]),
            Merge::By {
                keys: &["k"],
                min: &["lo"],
                max: &["hi", "top"],
            },
            Merge::Rows { keys: &["g"] },
        ] {
            assert_eq!(merge_from(&merge_text(merge)).unwrap(), merge);
        }
        assert!(merge_from("{}").is_err());
    }

    #[test]
    fn names_are_interned_once() {
        let a = intern("customer_ltv");
        let b = intern(&String::from("customer_ltv"));
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn a_column_is_read_only_as_its_schema_type() {
        let df = df!("__bucket" => [3i32, 5], "__key" => ["a", "b"]).unwrap();
        let buckets = typed::<Int32Type>(&df, "__bucket").unwrap();
        assert_eq!(buckets.iter().collect::<Vec<_>>(), [Some(3), Some(5)]);
        assert_eq!(typed::<StringType>(&df, "__key").unwrap().get(1), Some("b"));
        // Another type or a missing column is an error, not a cast.
        assert!(typed::<Int64Type>(&df, "__bucket").is_err());
        assert!(typed::<Int32Type>(&df, "__key").is_err());
        assert!(typed::<Int32Type>(&df, "__part").is_err());
    }
}
