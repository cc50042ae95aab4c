//! The one place that reads inputs: resolves paths, checks files against their contracts,
//! reads and coerces them, cuts them at the as-of instant, and sets aside rejected rows.
//!
//! Reading is eager (one pass per file, only the columns the job needs) so that every problem
//! with a file surfaces here, as an input error naming the file, before any pipeline runs;
//! polars can panic on a corrupt file, so each read is guarded and a panic becomes exit 3.

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::contracts::{ColType, InputKind};
use crate::error::{CxError, Result};
use crate::keys::KeyEncoder;
use crate::pipelines::survey_scores::Scales;
use crate::time::Calendar;

/// Where an input's files are and how its columns are named.
#[derive(Debug, Clone)]
pub struct InputSource {
    pub kind: InputKind,
    pub files: Vec<PathBuf>,
    /// Contract column name -> file column name (identity where not mapped).
    pub rename: BTreeMap<String, String>,
}

impl InputSource {
    fn file_col<'a>(&'a self, contract_col: &'a str) -> &'a str {
        self.rename
            .get(contract_col)
            .map(String::as_str)
            .unwrap_or(contract_col)
    }
}

/// Turns a `path` from the job file (file, directory or glob, relative to `base`) into a sorted
/// list of Parquet files.
pub fn resolve_files(base: &Path, spec: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let full = crate::paths::join_clean(base, spec);
    let shown = full.display().to_string();
    if spec.contains(['*', '?', '[']) {
        let pattern = full.to_string_lossy().to_string();
        let mut files: Vec<PathBuf> = glob::glob(&pattern)
            .map_err(|e| format!("{shown}: invalid glob: {e}"))?
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("{shown}: no files match"));
        }
        return Ok(files);
    }
    if full.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&full)
            .map_err(|e| format!("{shown}: cannot list directory: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("{shown}: directory has no .parquet files"));
        }
        return Ok(files);
    }
    if full.is_file() {
        return Ok(vec![full]);
    }
    Err(format!("{shown}: file not found"))
}

/// A file's row count and column types, from its Parquet footer.
#[derive(Debug, Clone)]
pub struct FileSchema {
    pub rows: usize,
    pub columns: Vec<(String, DataType)>,
    /// Rows per row group, in file order.
    pub row_groups: Vec<usize>,
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs a polars read, turning both errors and panics into a message.
fn guarded<T>(f: impl FnOnce() -> PolarsResult<T>) -> std::result::Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => Err(panic_text(payload)),
    }
}

pub fn read_schema(path: &Path) -> std::result::Result<FileSchema, String> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| format!("{shown}: cannot open: {e}"))?;
    guarded(|| {
        let mut reader = ParquetReader::new(file);
        let rows = reader.num_rows()?;
        let schema = reader.schema()?;
        let columns = schema
            .iter_values()
            .map(|f| (f.name.to_string(), DataType::from_arrow_field(f)))
            .collect();
        let row_groups = reader
            .get_metadata()?
            .row_groups
            .iter()
            .map(|g| g.num_rows())
            .collect();
        Ok(FileSchema {
            rows,
            columns,
            row_groups,
        })
    })
    .map_err(|e| format!("{shown}: not a readable Parquet file: {e}"))
}

/// Every way `schema` breaks the input's contract (plus the extra columns a pipeline needs).
pub fn contract_problems(
    source: &InputSource,
    path: &Path,
    schema: &FileSchema,
    extra: &[String],
) -> Vec<String> {
    let contract = source.kind.contract();
    let where_ = format!("{} ({}, {} rows)", source.kind, path.display(), schema.rows);
    let dtype_of = |name: &str| schema.columns.iter().find(|(n, _)| n == name).map(|c| &c.1);
    let mut problems = Vec::new();
    for spec in contract.columns {
        let file_col = source.file_col(spec.name);
        let mapped = if file_col != spec.name {
            format!(" (mapped to file column `{file_col}`)")
        } else {
            String::new()
        };
        match dtype_of(file_col) {
            None if spec.nullable => {}
            None => problems.push(format!(
                "{where_}: missing column `{}`{mapped}; the file has: {}",
                spec.name,
                schema
                    .columns
                    .iter()
                    .map(|c| c.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(dt) if !spec.ty.accepts(dt) => problems.push(format!(
                "{where_}: column `{}`{mapped} must be {}, found {dt}",
                spec.name,
                spec.ty.describe()
            )),
            Some(_) => {}
        }
    }
    for name in extra {
        if contract.column(name).is_none() && dtype_of(name).is_none() {
            problems.push(format!(
                "{where_}: missing column `{name}` (used as a `by` segment)"
            ));
        }
    }
    for contract_col in source.rename.keys() {
        if contract.column(contract_col).is_none() {
            problems.push(format!(
                "{}: `columns` maps `{contract_col}`, which is not a column of the {} contract",
                source.kind, source.kind
            ));
        }
    }
    problems
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
    /// customers only: the `customer_id` of every row read, before the as_of cut and the
    /// rejections. The key dictionary is made from it, so that the rows of customers who sign
    /// up after as_of still translate in the other inputs (they are cut there too, later).
    pub ids_read: Option<Column>,
}

/// Reads, coerces, cuts at as_of and cleans one input. With an `encoder` (the customers'
/// id dictionary), `customer_id` comes back as keys when every id is in it: the file is read a
/// few row groups at a time and each batch's ids are translated, so the ids of the largest
/// input are never all held as strings. Otherwise (an id that is not a customer's) the input is
/// read again, ids as strings, and `CustomerKeys::encode` builds the dictionary from every input.
pub fn load(
    source: &InputSource,
    calendar: &Calendar,
    scales: &Scales,
    extra: &[String],
    encoder: Option<&KeyEncoder>,
) -> Result<LoadedInput> {
    let all = match read_all(source, extra, encoder)? {
        Some(all) => all,
        None => read_all(source, extra, None)?.expect("no encoder, no unknown ids"),
    };
    let ids_read = match source.kind {
        InputKind::Customers => Some(
            all.column("customer_id")
                .map_err(|e| CxError::internal("reading customer ids", e))?
                .clone(),
        ),
        _ => None,
    };
    let mut loaded = clean_all(source, all, calendar, scales)?;
    loaded.ids_read = ids_read;
    Ok(loaded)
}

/// Every file of `source`, coerced and stacked; None when `encoder` met an id it lacks.
fn read_all(
    source: &InputSource,
    extra: &[String],
    encoder: Option<&KeyEncoder>,
) -> Result<Option<DataFrame>> {
    let mut problems = Vec::new();
    let mut frames = Vec::new();
    let mut offset: u64 = 0;
    for path in &source.files {
        let schema = match read_schema(path) {
            Ok(s) => s,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let found = contract_problems(source, path, &schema, extra);
        if !found.is_empty() {
            problems.extend(found);
            continue;
        }
        match read_file(source, path, &schema, extra, offset, encoder) {
            Ok(Some(df)) => {
                offset += df.height() as u64;
                frames.push(df);
            }
            Ok(None) => return Ok(None),
            Err(e) => problems.push(format!(
                "{} ({}, {} rows): {e}",
                source.kind,
                path.display(),
                schema.rows
            )),
        }
    }
    if !problems.is_empty() {
        return Err(CxError::Input { problems });
    }
    let all = stack(frames)
        .map_err(|e| CxError::internal(format!("combining {} files", source.kind), e))?;
    Ok(Some(all))
}

/// One frame from frames of the same schema, in order (their chunks appended, not copied).
fn append_all(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut frames = frames.into_iter();
    let mut all = frames.next().unwrap_or_else(DataFrame::empty);
    for df in frames {
        all.vstack_mut_owned(df)?;
    }
    Ok(all)
}

/// One frame from frames of the same schema, in order, in one chunk per column.
fn stack(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut all = append_all(frames)?;
    // Column by column, so that only one column is held twice at a time: rechunking all of
    // them at once held the whole input twice (at 10M customers, gigabytes of events).
    let names: Vec<PlSmallStr> = all.get_column_names_owned();
    for name in names {
        let column = all.column(&name)?;
        if column.n_chunks() > 1 {
            let one = column.rechunk();
            all.replace(&name, one)?;
        }
    }
    Ok(all)
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
    clean(source.kind, all, paths, calendar, scales)
        .map_err(|e| CxError::internal(format!("cleaning input {}", source.kind), e))
}

/// The polars engine for the per-row work of reading and cleaning (coercion, reasons,
/// filtering): no aggregation, and the streaming engine keeps row order, so the result is the
/// same as in memory. At 1M customers (paired `--only activation` runs, which read all five
/// inputs, of 66e734e) the peak RSS was 2,807–2,841 MiB against 2,978–3,176 MiB in memory, in
/// the same time within the machine's noise.
const ENGINE: Engine = Engine::Streaming;

fn collect(lf: LazyFrame) -> PolarsResult<DataFrame> {
    lf.collect_with_engine(ENGINE).map(|r| r.unwrap_single())
}

/// Rows per batch when ids are translated while reading: whole row groups, at least this
/// many rows, so that the reader still decodes several row groups in parallel. (Tiny in unit
/// tests, so that their small files are read in several batches.)
const BATCH_ROWS: usize = if cfg!(test) { 3 } else { 4 << 20 };

/// Row ranges (start, length) of whole row groups, each at least `BATCH_ROWS` rows but the last.
fn batches(row_groups: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut len) = (0, 0);
    for &n in row_groups {
        len += n;
        if len >= BATCH_ROWS {
            out.push((start, len));
            start += len;
            len = 0;
        }
    }
    if len > 0 || out.is_empty() {
        out.push((start, len));
    }
    out
}

/// One file, coerced, with its `__row` numbers from `offset`; None when `encoder` met an id it
/// lacks.
fn read_file(
    source: &InputSource,
    path: &Path,
    schema: &FileSchema,
    extra: &[String],
    offset: u64,
    encoder: Option<&KeyEncoder>,
) -> std::result::Result<Option<DataFrame>, String> {
    let contract = source.kind.contract();
    let dtype_of = |name: &str| {
        schema
            .columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|c| c.1.clone())
    };
    let mut wanted: Vec<String> = Vec::new();
    let mut exprs: Vec<Expr> = Vec::new();
    for spec in contract.columns {
        if !spec.read && !extra.iter().any(|e| e == spec.name) {
            continue;
        }
        let file_col = source.file_col(spec.name);
        match dtype_of(file_col) {
            Some(dt) => {
                wanted.push(file_col.to_string());
                exprs.push(coerce(col(file_col), spec.ty, &dt).alias(spec.name));
            }
            None => exprs.push(lit(NULL).cast(target_type(spec.ty)).alias(spec.name)),
        }
    }
    for name in extra {
        if contract.column(name).is_none() && !wanted.contains(name) {
            wanted.push(name.clone());
            exprs.push(col(name.as_str()).cast(DataType::String));
        }
    }
    let read = |slice: Option<(usize, usize)>| -> std::result::Result<DataFrame, String> {
        let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        let start = slice.map_or(0, |s| s.0) as u64;
        guarded(|| {
            let df = ParquetReader::new(file)
                .with_columns(Some(wanted.clone()))
                .with_slice(slice)
                .finish()?;
            collect(
                df.lazy()
                    .select(exprs.clone())
                    .with_row_index("__row", Some((offset + start) as IdxSize)),
            )
        })
        .map_err(|e| format!("cannot read or coerce: {e}"))
    };
    let Some(encoder) = encoder else {
        return read(None).map(Some);
    };
    let mut parts = Vec::new();
    for slice in batches(&schema.row_groups) {
        let mut df = read(Some(slice))?;
        let keys = encoder
            .encode(&df)
            .map_err(|e| format!("cannot translate customer ids: {e}"))?;
        match keys {
            Some(keys) => {
                df.replace("customer_id", keys)
                    .map_err(|e| format!("cannot translate customer ids: {e}"))?;
                parts.push(df);
            }
            None => return Ok(None),
        }
    }
    // `read_all` makes the file's batches one chunk per column, with its other files'.
    append_all(parts)
        .map(Some)
        .map_err(|e| format!("cannot combine row groups: {e}"))
}

fn target_type(ty: ColType) -> DataType {
    match ty {
        ColType::Id | ColType::Text => DataType::String,
        ColType::Timestamp => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        ColType::Float => DataType::Float64,
        ColType::Int => DataType::Int64,
        ColType::Bool => DataType::Boolean,
    }
}

fn coerce(e: Expr, ty: ColType, from: &DataType) -> Expr {
    let target = target_type(ty);
    match (ty, from) {
        // Physical Datetime values are UTC instants (tz-aware) or wall clock read as UTC (naive):
        // either way the epoch offset in the source unit is what we want.
        (ColType::Timestamp, DataType::Datetime(_, _)) => {
            e.dt().timestamp(TimeUnit::Microseconds).cast(target)
        }
        (ColType::Timestamp, DataType::Date) => e
            .cast(DataType::Datetime(TimeUnit::Microseconds, None))
            .dt()
            .timestamp(TimeUnit::Microseconds)
            .cast(target),
        _ => e.strict_cast(target),
    }
}

/// Marks rejected rows, drops rows after as_of, and summarises rejections.
fn clean(
    kind: InputKind,
    df: DataFrame,
    paths: Vec<String>,
    calendar: &Calendar,
    scales: &Scales,
) -> PolarsResult<LoadedInput> {
    let contract = kind.contract();
    let rows_read = df.height() as u64;
    let cutoff = calendar.cutoff_us();
    let ts_us = |name: &str| col(name).dt().timestamp(TimeUnit::Microseconds);
    // Rows are marked with the code of their reason (its index in `reasons`) rather than its
    // text: a one-byte column instead of a string column over every row.
    let mut reasons: Vec<String> = Vec::new();
    let mut mark = |checks: Vec<(Expr, String)>| -> Expr {
        let mut code = lit(NULL).cast(DataType::UInt8);
        for (cond, reason) in checks.into_iter().rev() {
            let c = reasons.len() as u32;
            reasons.push(reason);
            code = when(cond)
                .then(lit(c).cast(DataType::UInt8))
                .otherwise(code);
        }
        code
    };

    // 1. Missing required values: rejected wherever they are (their time may be unknown).
    // Columns without nulls (the usual case; the count is kept with the data) cannot
    // contribute a reason, so they stay out of the per-row expression.
    let has_nulls = |name: &str| df.column(name).map(|c| c.null_count() > 0).unwrap_or(true);
    let null_reason = mark(
        contract
            .columns
            .iter()
            .filter(|c| !c.nullable && has_nulls(c.name))
            .map(|spec| (col(spec.name).is_null(), format!("null {}", spec.name)))
            .collect(),
    );
    // 2. Rows from after as_of do not exist yet for this run. An export usually ends before
    // as_of: then there is nothing to cut, and no filtered copy of every column to make.
    let latest = df
        .column(contract.time)?
        .as_materialized_series()
        .to_physical_repr()
        .i64()?
        .max();
    let after = ts_us(contract.time)
        .gt_eq(lit(cutoff))
        .fill_null(lit(false));
    let mut lf = df.lazy().with_column(null_reason.alias("__reason"));
    if latest.is_some_and(|t| t >= cutoff) {
        lf = lf.filter(col("__reason").is_not_null().or(after.not()));
    }
    // Nullable timestamps later than as_of have not happened yet.
    for spec in contract
        .columns
        .iter()
        .filter(|c| c.nullable && c.ty == ColType::Timestamp)
    {
        if spec.name != contract.time {
            lf = lf.with_column(
                when(ts_us(spec.name).gt_eq(lit(cutoff)))
                    .then(lit(NULL).cast(target_type(ColType::Timestamp)))
                    .otherwise(col(spec.name))
                    .alias(spec.name),
            );
        }
    }
    // 3. Values outside their domain.
    let value_checks: Vec<(Expr, &str)> = match kind {
        InputKind::Surveys => {
            lf = lf.with_column(col("survey").str().to_lowercase().alias("survey"));
            scales
                .rejection_checks(col("survey"), col("score"))
                .into_iter()
                .collect()
        }
        InputKind::Orders => vec![(
            col("amount").is_nan().or(col("amount").is_infinite()),
            "non-finite amount",
        )],
        InputKind::Tickets => vec![
            (
                ts_us("first_response_at").lt(ts_us("created_at")),
                "first_response_at before created_at",
            ),
            (
                ts_us("resolved_at").lt(ts_us("created_at")),
                "resolved_at before created_at",
            ),
            (col("handle_time_s").lt(lit(0.0)), "negative handle_time_s"),
            (col("contacts").lt(lit(0)), "negative contacts"),
        ],
        InputKind::Customers | InputKind::Events => Vec::new(),
    };
    if !value_checks.is_empty() {
        let value_reason = mark(
            value_checks
                .into_iter()
                .map(|(c, r)| (c, r.to_string()))
                .collect(),
        );
        lf = lf.with_column(coalesce(&[col("__reason"), value_reason]).alias("__reason"));
    }
    let mut marked = collect(lf)?;
    let rows_after_as_of = rows_read - marked.height() as u64;

    // 4. Duplicate ids among the otherwise valid rows: the first in file order is kept.
    if let Some(key) = contract.key {
        let valid = marked.column("__reason")?.is_null();
        if let Some(repeated) = repeated_keys(marked.column(key)?.str()?, &valid)? {
            // Repeated rows are valid ones, so their reason is still null.
            let dup_reason = mark(vec![(col("__repeated"), format!("duplicate {key}"))]);
            marked.with_column(repeated.into_column())?;
            marked = collect(
                marked
                    .lazy()
                    .with_column(coalesce(&[col("__reason"), dup_reason]).alias("__reason"))
                    .drop(cols(["__repeated"])),
            )?;
        }
    }

    let example = match contract.key {
        Some(key) => coalesce(&[
            col(key),
            lit("row ") + (col("__row").cast(DataType::Int64) + lit(1)).cast(DataType::String),
        ]),
        None => lit("row ") + (col("__row").cast(DataType::Int64) + lit(1)).cast(DataType::String),
    };
    // Most inputs are clean: then there is no summary to build, nothing to filter out and no
    // copy to make.
    let any_rejected = marked.column("__reason")?.null_count() < marked.height();
    let (rejected, mut data) = if any_rejected {
        let rejected = rejections(&marked, example, &reasons)?;
        let data = collect(
            marked
                .lazy()
                .filter(col("__reason").is_null())
                .drop(cols(["__reason", "__row"])),
        )?;
        (rejected, data)
    } else {
        (Vec::new(), marked.drop_many(["__reason", "__row"]))
    };
    if let (Some(key), false) = (contract.key, contract.key_read) {
        data.drop_in_place(key)?;
    }
    let null_signup_at = match kind {
        InputKind::Customers => Some(data.column("signup_at")?.null_count() as u64),
        _ => None,
    };
    Ok(LoadedInput {
        data,
        report: InputReport {
            paths,
            rows_read,
            rows_after_as_of,
            rejected,
            null_signup_at,
        },
        ids_read: None,
    })
}

/// The valid rows whose key an earlier valid row already has, as a mask (`None` when there are
/// none). Sorting 64-bit hashes of the keys finds the few that may repeat, and only the rows
/// with those hashes are compared as strings, in file order: a set of every key string takes
/// several times longer, and ids rarely repeat.
fn repeated_keys(
    keys: &StringChunked,
    valid: &BooleanChunked,
) -> PolarsResult<Option<BooleanChunked>> {
    let state = PlFixedStateQuality::default();
    let hashes: Vec<Option<u64>> = keys
        .iter()
        .zip(valid.iter())
        .map(|(k, ok)| match (k, ok) {
            (Some(k), Some(true)) => Some(state.hash_one(k)),
            _ => None,
        })
        .collect();
    let sorted = UInt64Chunked::from_vec("hash".into(), hashes.iter().flatten().copied().collect())
        .sort(false)
        .rechunk()
        .into_owned();
    let shared: PlHashSet<u64> = sorted
        .cont_slice()?
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    if shared.is_empty() {
        return Ok(None);
    }
    let mut seen: PlHashSet<&str> = PlHashSet::new();
    let mut repeated = vec![false; keys.len()];
    for ((row, key), hash) in keys.iter().enumerate().zip(&hashes) {
        if let (Some(key), Some(hash)) = (key, hash) {
            if shared.contains(hash) && !seen.insert(key) {
                repeated[row] = true;
            }
        }
    }
    Ok(repeated
        .contains(&true)
        .then(|| BooleanChunked::from_slice("__repeated".into(), &repeated)))
}

/// One `Rejection` per reason (sorted), with its count and the first such row's example id.
/// `reasons` names the codes in `__reason`.
fn rejections(
    marked: &DataFrame,
    example: Expr,
    reasons: &[String],
) -> PolarsResult<Vec<Rejection>> {
    let summary = marked
        .clone()
        .lazy()
        .filter(col("__reason").is_not_null())
        .sort(["__row"], Default::default())
        .group_by([col("__reason")])
        .agg([len().alias("n"), example.first().alias("example")])
        .collect()?;
    let codes = summary.column("__reason")?.u8()?;
    let counts = summary.column("n")?.cast(&DataType::UInt64)?;
    let counts = counts.u64()?;
    let examples = summary.column("example")?.str()?;
    let mut out: Vec<Rejection> = (0..summary.height())
        .map(|i| Rejection {
            reason: codes
                .get(i)
                .and_then(|c| reasons.get(c as usize))
                .cloned()
                .unwrap_or_default(),
            row_count: counts.get(i).unwrap_or_default(),
            example_id: examples.get(i).unwrap_or_default().to_string(),
        })
        .collect();
    out.sort_by(|a, b| a.reason.cmp(&b.reason));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::testutil::{u32s, us, utc};

    fn cal(as_of: &str, tz: &str) -> Calendar {
        Calendar::new(NaiveDate::parse_from_str(as_of, "%Y-%m-%d").unwrap(), tz).unwrap()
    }

    fn with_rows(df: DataFrame) -> DataFrame {
        df.lazy().with_row_index("__row", None).collect().unwrap()
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
    fn orders_rejections_cutoff_and_first_occurrence() {
        let df = DataFrame::new_infer_height(vec![
            Column::new(
                "order_id".into(),
                [
                    Some("O1"),
                    None,
                    Some("O3"),
                    Some("O1"),
                    Some("O5"),
                    Some("O6"),
                ],
            ),
            Column::new("customer_id".into(), ["C1", "C1", "C2", "C3", "C4", "C5"]),
            utc(
                "ordered_at",
                vec![
                    Some(us("2026-06-30 23:59:59")),
                    Some(us("2026-06-01 00:00:00")),
                    Some(us("2026-06-01 00:00:00")),
                    Some(us("2026-06-02 00:00:00")),
                    Some(us("2026-07-01 00:00:00")), // first instant after as_of (UTC)
                    None,
                ],
            ),
            Column::new("amount".into(), [10.0, 5.0, f64::NAN, 7.0, 1.0, 2.0]),
        ])
        .unwrap();
        let out = clean(
            InputKind::Orders,
            with_rows(df),
            vec![],
            &cal("2026-06-30", "UTC"),
            &Scales::default(),
        )
        .unwrap();
        assert_eq!(out.report.rows_read, 6);
        assert_eq!(out.report.rows_after_as_of, 1);
        assert_eq!(
            out.report.rejected,
            vec![
                Rejection {
                    reason: "duplicate order_id".into(),
                    row_count: 1,
                    example_id: "O1".into()
                },
                Rejection {
                    reason: "non-finite amount".into(),
                    row_count: 1,
                    example_id: "O3".into()
                },
                Rejection {
                    reason: "null order_id".into(),
                    row_count: 1,
                    example_id: "row 2".into()
                },
                Rejection {
                    reason: "null ordered_at".into(),
                    row_count: 1,
                    example_id: "O6".into()
                },
            ]
        );
        // 4 rejected of the 5 rows at or before as_of.
        assert!((out.report.rejected_fraction() - 0.8).abs() < 1e-12);
        // No metric reads order_id: it is dropped once checked. The first O1 (C1, 10.0) is kept.
        let names: Vec<&str> = out
            .data
            .get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(names, ["customer_id", "ordered_at", "amount"]);
        assert_eq!(strs(&out.data, "customer_id"), [Some("C1".to_string())]);
        let amount = out.data.column("amount").unwrap().f64().unwrap().get(0);
        assert_eq!(amount, Some(10.0), "the first O1 is kept");
    }

    #[test]
    fn ticket_times_after_as_of_are_not_yet_known_and_negative_durations_are_rejected() {
        let df = DataFrame::new_infer_height(vec![
            Column::new("ticket_id".into(), ["T1", "T2", "T3"]),
            Column::new("customer_id".into(), ["C1", "C1", "C1"]),
            Column::new("channel".into(), ["chat", "chat", "email"]),
            utc(
                "created_at",
                vec![
                    Some(us("2026-06-30 20:00:00")),
                    Some(us("2026-06-10 00:00:00")),
                    Some(us("2026-06-10 00:00:00")),
                ],
            ),
            utc(
                "first_response_at",
                vec![
                    Some(us("2026-07-01 05:00:00")), // after the end of June 30 in New York
                    Some(us("2026-06-09 23:59:59")),
                    Some(us("2026-06-10 00:00:00")),
                ],
            ),
            utc(
                "resolved_at",
                vec![None, None, Some(us("2026-06-09 00:00:00"))],
            ),
        ])
        .unwrap();
        // Nullable columns the file lacks are added as typed nulls by `read_file`.
        let df = df
            .lazy()
            .with_columns([
                lit(NULL).cast(DataType::Int64).alias("contacts"),
                lit(NULL).cast(DataType::Float64).alias("handle_time_s"),
            ])
            .collect()
            .unwrap();
        let out = clean(
            InputKind::Tickets,
            with_rows(df),
            vec![],
            &cal("2026-06-30", "America/New_York"),
            &Scales::default(),
        )
        .unwrap();
        let reasons: Vec<&str> = out
            .report
            .rejected
            .iter()
            .map(|r| r.reason.as_str())
            .collect();
        assert_eq!(
            reasons,
            [
                "first_response_at before created_at",
                "resolved_at before created_at"
            ]
        );
        assert_eq!(out.data.height(), 1);
        assert_eq!(
            out.data.column("first_response_at").unwrap().null_count(),
            1
        );
    }

    #[test]
    fn customers_signing_up_after_as_of_do_not_exist_yet() {
        let df = DataFrame::new_infer_height(vec![
            Column::new("customer_id".into(), ["C1", "C2", "C3"]),
            utc(
                "signup_at",
                vec![
                    Some(us("2026-06-01 00:00:00")),
                    None,
                    Some(us("2026-07-02 00:00:00")),
                ],
            ),
            utc(
                "churned_at",
                vec![Some(us("2026-07-01 00:00:00")), None, None],
            ),
        ])
        .unwrap();
        let out = clean(
            InputKind::Customers,
            with_rows(df),
            vec![],
            &cal("2026-06-30", "UTC"),
            &Scales::default(),
        )
        .unwrap();
        assert_eq!(
            strs(&out.data, "customer_id"),
            [Some("C1".into()), Some("C2".into())]
        );
        assert_eq!(out.report.rows_after_as_of, 1);
        // C1's churn on July 1 has not happened as of June 30.
        assert_eq!(out.data.column("churned_at").unwrap().null_count(), 2);
    }

    #[test]
    fn timestamps_of_any_unit_and_zone_become_the_same_utc_instant() {
        let instant = us("2026-03-08 07:30:00"); // 03:30 EDT, just after the DST change
        let naive_ms = Column::new("a".into(), [instant / 1000])
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .unwrap();
        let ny = polars::prelude::TimeZone::opt_try_new(Some("America/New_York"))
            .unwrap()
            .unwrap();
        let aware_ns = Column::new("b".into(), [instant * 1000])
            .cast(&DataType::Datetime(TimeUnit::Nanoseconds, Some(ny)))
            .unwrap();
        let date = Column::new("c".into(), [20_520i32])
            .cast(&DataType::Date)
            .unwrap(); // 2026-03-08
        let df = DataFrame::new_infer_height(vec![naive_ms, aware_ns, date]).unwrap();
        let schema = df.schema().clone();
        let out = df
            .lazy()
            .select(
                ["a", "b", "c"]
                    .map(|n| coerce(col(n), ColType::Timestamp, schema.get(n).unwrap()).alias(n)),
            )
            .collect()
            .unwrap();
        let target = DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
        for n in ["a", "b", "c"] {
            assert_eq!(out.column(n).unwrap().dtype(), &target);
        }
        let phys = |n: &str| {
            out.column(n)
                .unwrap()
                .cast(&DataType::Int64)
                .unwrap()
                .i64()
                .unwrap()
                .get(0)
                .unwrap()
        };
        assert_eq!(phys("a"), instant);
        assert_eq!(phys("b"), instant);
        assert_eq!(phys("c"), us("2026-03-08 00:00:00"));
    }

    #[test]
    fn batches_are_whole_row_groups() {
        // BATCH_ROWS is 3 in tests.
        assert_eq!(batches(&[2, 2, 1]), [(0, 4), (4, 1)]);
        assert_eq!(batches(&[5, 1, 1, 1]), [(0, 5), (5, 3)]);
        assert_eq!(batches(&[1]), [(0, 1)]);
        assert_eq!(batches(&[]), [(0, 0)]);
    }

    /// An events file of `ids` (one event per id, in June, but the last in July) in row groups
    /// of two rows, read with the dictionary of customers C1, C2 and C3.
    fn events_read_with_keys(ids: &[Option<&str>]) -> LoadedInput {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.parquet");
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
        let row_groups = read_schema(&path).unwrap().row_groups;
        assert!(row_groups.len() > 1, "{row_groups:?}");
        let customers = df!("customer_id" => ["C3", "C1", "C2"]).unwrap();
        let keys =
            crate::keys::CustomerKeys::of_customers(customers.column("customer_id").unwrap())
                .unwrap();
        let source = InputSource {
            kind: InputKind::Events,
            files: vec![path],
            rename: BTreeMap::new(),
        };
        let encoder = keys.encoder().unwrap();
        let out = load(
            &source,
            &cal("2026-06-30", "UTC"),
            &Scales::default(),
            &[],
            Some(&encoder),
        );
        out.unwrap()
    }

    #[test]
    fn ids_become_keys_batch_by_batch_with_rows_numbered_across_batches() {
        // Row groups of 2 rows, so batches of 4 and 2: the null id is row 5, in the second one.
        let out = events_read_with_keys(&[
            Some("C2"),
            Some("C1"),
            Some("C1"),
            Some("C3"),
            None,
            Some("C2"),
        ]);
        let keys = u32s(&out.data, "customer_id");
        // Keys are ranks of the sorted ids; the July row is after as_of.
        assert_eq!(keys, [Some(1), Some(0), Some(0), Some(2)]);
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

    #[test]
    fn an_id_that_is_not_a_customers_keeps_the_input_as_strings() {
        // C9 is in the second batch, after the first was translated.
        let out = events_read_with_keys(&[
            Some("C2"),
            Some("C1"),
            Some("C1"),
            Some("C3"),
            Some("C9"),
            Some("C3"),
        ]);
        let ids = ["C2", "C1", "C1", "C3", "C9"].map(|s| Some(s.to_string()));
        assert_eq!(strs(&out.data, "customer_id"), ids);
        assert_eq!(out.report.rows_rejected(), 0);
        assert_eq!(out.report.rows_after_as_of, 1);
    }

    #[test]
    fn resolve_files_handles_file_directory_and_glob() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("parts")).unwrap();
        for f in ["parts/b.parquet", "parts/a.parquet", "parts/notes.txt"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
                .collect()
        };
        assert_eq!(
            names(resolve_files(d, "parts").unwrap()),
            ["a.parquet", "b.parquet"]
        );
        assert_eq!(
            names(resolve_files(d, "parts/*.parquet").unwrap()),
            ["a.parquet", "b.parquet"]
        );
        assert_eq!(
            names(resolve_files(d, "parts/b.parquet").unwrap()),
            ["b.parquet"]
        );
        assert!(resolve_files(d, "nope.parquet")
            .unwrap_err()
            .ends_with("file not found"));
        assert!(resolve_files(d, "parts/*.csv")
            .unwrap_err()
            .ends_with("no files match"));
    }

    #[test]
    fn only_valid_rows_can_repeat_a_key() {
        let keys = StringChunked::new(
            "k".into(),
            [Some("a"), Some("b"), None, Some("a"), Some("a"), Some("b")],
        );
        let mask = |valid: &[Option<bool>]| {
            let valid = BooleanChunked::new("v".into(), valid);
            repeated_keys(&keys, &valid)
                .unwrap()
                .map(|m| m.iter().map(|b| b.unwrap()).collect::<Vec<_>>())
        };
        let t = Some(true);
        let f = Some(false);
        assert_eq!(
            mask(&[t, t, t, t, t, t]),
            Some(vec![false, false, false, true, true, true])
        );
        // An invalid first row does not count: the next "a" is the first valid one.
        assert_eq!(
            mask(&[f, t, t, t, t, None]),
            Some(vec![false, false, false, false, true, false])
        );
        assert_eq!(mask(&[f, t, t, t, f, f]), None);
        let empty = StringChunked::new("k".into(), Vec::<&str>::new());
        let no_rows = BooleanChunked::new("v".into(), Vec::<bool>::new());
        assert!(repeated_keys(&empty, &no_rows).unwrap().is_none());
    }
}
