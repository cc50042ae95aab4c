//! Reading one input's files: only the columns the job needs, coerced to the contract's types,
//! a few row groups at a time, with each row's number kept for the rejection report.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use polars::prelude::*;

use super::money::exact_money;
use super::schema::{contract_problems, read_schema, wanted_columns, FileSchema};
use super::InputSource;
use crate::contracts::ColType;
use crate::error::{CxError, Result};
use crate::time::{DAY_US, MAX_TIMESTAMP_US, MIN_TIMESTAMP_US};

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
pub(super) fn guarded<T>(f: impl FnOnce() -> PolarsResult<T>) -> std::result::Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => Err(panic_text(payload)),
    }
}

/// Every file of `source`, coerced and stacked (for loading a whole input at once).
pub(super) fn read_all(source: &InputSource, extra: &[String]) -> Result<DataFrame> {
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
        let read =
            BatchReader::new(source, path, &schema, extra).and_then(|r| r.read(None, offset));
        match read {
            Ok(df) => {
                offset += df.height() as u64;
                frames.push(df);
            }
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
    stack(frames).map_err(|e| CxError::internal(format!("combining {} files", source.kind), e))
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

/// The polars engine for the per-row work of reading and cleaning (coercion, reasons,
/// filtering): no aggregation, and the streaming engine keeps row order, so the result is the
/// same as in memory (measured leaner at 1M customers; `bench/results.md` has the figures).
const ENGINE: Engine = Engine::Streaming;

pub(super) fn collect(lf: LazyFrame) -> PolarsResult<DataFrame> {
    lf.collect_with_engine(ENGINE).map(|r| r.unwrap_single())
}

/// Rows per batch when ids are translated while reading: whole row groups, at least this
/// many rows, so that the reader still decodes several row groups in parallel. (Tiny in unit
/// tests, so that their small files are read in several batches.)
const BATCH_ROWS: usize = if cfg!(test) { 3 } else { 4 << 20 };

/// Row ranges (start, length) of whole row groups, each at least `BATCH_ROWS` rows but the last.
pub fn batches(row_groups: &[usize]) -> Vec<(usize, usize)> {
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

/// Reads one file of an input a slice of rows at a time: the columns a run reads, coerced to
/// the contract's types (nullable columns the file lacks as typed nulls), with each row's
/// number in the input (`__row`, Int64, counted across the input's files).
pub struct BatchReader<'a> {
    path: &'a Path,
    wanted: Vec<String>,
    exprs: Vec<Expr>,
    /// Money file columns read exactly (`super::money`): a Decimal, or integer minor units
    /// with their scale.
    money: Vec<(String, Option<u32>)>,
}

impl<'a> BatchReader<'a> {
    pub fn new(
        source: &InputSource,
        path: &'a Path,
        schema: &FileSchema,
        extra: &[String],
    ) -> std::result::Result<Self, String> {
        let contract = source.kind.contract();
        let wanted = wanted_columns(source, schema, extra);
        let mut exprs: Vec<Expr> = Vec::new();
        let mut money = Vec::new();
        for spec in contract.columns {
            if !spec.read && !extra.iter().any(|e| e == spec.name) {
                continue;
            }
            let file_col = source.file_col(spec.name);
            match schema.column(file_col) {
                Some(Ok(dt)) => {
                    let scale = source.money_scales.get(spec.name).copied();
                    if spec.ty == ColType::Money && (dt.is_decimal() || scale.is_some()) {
                        money.push((file_col.to_string(), scale));
                    }
                    exprs.push(coerce(col(file_col), spec.ty, dt).alias(spec.name))
                }
                // `contract_problems` has refused unreadable types before any read.
                Some(Err(found)) => return Err(format!("column `{file_col}` has type {found}")),
                None => exprs.push(lit(NULL).cast(target_type(spec.ty)).alias(spec.name)),
            }
        }
        for name in extra {
            if contract.column(name).is_none() {
                exprs.push(col(name.as_str()).cast(DataType::String));
            }
        }
        Ok(BatchReader {
            path,
            wanted,
            exprs,
            money,
        })
    }

    /// The rows of `slice` (start, length; None: the whole file), numbered from `first_row`.
    pub fn read(
        &self,
        slice: Option<(usize, usize)>,
        first_row: u64,
    ) -> std::result::Result<DataFrame, String> {
        let file = super::files::open_file(self.path)?;
        let mut df = guarded(|| {
            ParquetReader::new(file)
                .with_columns(Some(self.wanted.clone()))
                .with_slice(slice)
                .finish()
        })
        .map_err(|e| format!("cannot read: {e}"))?;
        self.exact_money(&mut df, first_row)?;
        guarded(|| {
            let n = df.height() as i64;
            let mut exprs = self.exprs.clone();
            exprs.push(
                (int_range(lit(0i64), lit(n), 1, DataType::Int64) + lit(first_row as i64))
                    .alias("__row"),
            );
            collect(df.lazy().select(exprs))
        })
        .map_err(|e| format!("cannot read or coerce: {e}"))
    }

    /// Rows read by another reader (Spark's), with the file's columns and each row's number
    /// in the input (`__row`), coerced as `read` coerces.
    pub fn coerce_read(&self, mut df: DataFrame) -> std::result::Result<DataFrame, String> {
        let rows = df.column("__row").map_err(|e| e.to_string())?;
        let first_row = rows
            .as_materialized_series()
            .min::<i64>()
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        self.exact_money(&mut df, first_row.max(0) as u64)?;
        guarded(|| {
            let mut exprs = self.exprs.clone();
            exprs.push(col("__row").cast(DataType::Int64));
            collect(df.lazy().select(exprs))
        })
        .map_err(|e| format!("cannot coerce: {e}"))
    }

    /// The money columns of `df` (whose first row is row `first_row` of the input) as exact
    /// amounts.
    fn exact_money(&self, df: &mut DataFrame, first_row: u64) -> std::result::Result<(), String> {
        for (name, scale) in &self.money {
            let exact = exact_money(
                df.column(name).map_err(|e| e.to_string())?,
                *scale,
                first_row + 1,
            )
            .map_err(|e| format!("column `{name}`: {e}"))?;
            df.replace(name, exact).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

pub(super) fn target_type(ty: ColType) -> DataType {
    match ty {
        ColType::Id | ColType::Text => DataType::String,
        ColType::Timestamp => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        ColType::Float | ColType::Money => DataType::Float64,
        ColType::Int => DataType::Int64,
        ColType::Bool => DataType::Boolean,
    }
}

/// `e` (a file column of type `from`) as the contract type `ty`, without loss.
fn coerce(e: Expr, ty: ColType, from: &DataType) -> Expr {
    let target = target_type(ty);
    match (ty, from) {
        // Physical Datetime values are UTC instants (tz-aware) or wall clock read as UTC (naive):
        // either way the epoch offset in the source unit is what we want.
        (ColType::Timestamp, DataType::Datetime(unit, _)) => {
            let per_us = |v: i64| match unit {
                TimeUnit::Nanoseconds => v * 1000,
                TimeUnit::Microseconds => v,
                TimeUnit::Milliseconds => v / 1000,
            };
            let raw = clamp(
                e.cast(DataType::Int64),
                per_us(MIN_TIMESTAMP_US) - 1,
                per_us(MAX_TIMESTAMP_US),
            );
            let us = match unit {
                TimeUnit::Nanoseconds => raw.floor_div(lit(1000i64)),
                TimeUnit::Microseconds => raw,
                TimeUnit::Milliseconds => raw * lit(1000i64),
            };
            us.cast(target)
        }
        (ColType::Timestamp, DataType::Date) => {
            let days = clamp(
                e.cast(DataType::Int32).cast(DataType::Int64),
                MIN_TIMESTAMP_US / DAY_US - 1,
                MAX_TIMESTAMP_US / DAY_US,
            );
            (days * lit(DAY_US)).cast(target)
        }
        _ => e.strict_cast(target),
    }
}

/// `e` clipped to [lo, hi]. Timestamps are clipped in their own unit before the conversion
/// to microseconds, which could otherwise overflow: a value below the supported range stays
/// below it (and is rejected as out of range), one above stays above (after as_of).
fn clamp(e: Expr, lo: i64, hi: i64) -> Expr {
    when(e.clone().lt(lit(lo)))
        .then(lit(lo))
        .when(e.clone().gt(lit(hi)))
        .then(lit(hi))
        .otherwise(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::us;

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

    #[test]
    fn timestamps_outside_the_supported_range_stay_outside_without_overflowing() {
        // The extremes of every unit: the conversion to microseconds would overflow.
        let cases: Vec<(DataType, Vec<i64>)> = vec![
            (
                DataType::Datetime(TimeUnit::Nanoseconds, None),
                vec![i64::MIN, i64::MAX],
            ),
            (
                DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC)),
                vec![i64::MIN + 1, i64::MAX],
            ),
            (
                DataType::Datetime(TimeUnit::Microseconds, None),
                vec![i64::MIN, i64::MAX],
            ),
        ];
        for (dtype, values) in cases {
            let c = Column::new("t".into(), values).cast(&dtype).unwrap();
            let out = DataFrame::new_infer_height(vec![c])
                .unwrap()
                .lazy()
                .select([coerce(col("t"), ColType::Timestamp, &dtype).alias("t")])
                .collect()
                .unwrap();
            let v: Vec<i64> = out
                .column("t")
                .unwrap()
                .cast(&DataType::Int64)
                .unwrap()
                .i64()
                .unwrap()
                .iter()
                .flatten()
                .collect();
            assert!(
                v[0] < MIN_TIMESTAMP_US && v[0] >= MIN_TIMESTAMP_US - 1000,
                "{dtype}: {v:?}"
            );
            assert!(v[1] >= MAX_TIMESTAMP_US, "{dtype}: {v:?}");
        }
        let days = Column::new("d".into(), [i32::MIN, i32::MAX, 0])
            .cast(&DataType::Date)
            .unwrap();
        let out = DataFrame::new_infer_height(vec![days])
            .unwrap()
            .lazy()
            .select([coerce(col("d"), ColType::Timestamp, &DataType::Date).alias("d")])
            .collect()
            .unwrap();
        let v: Vec<i64> = out
            .column("d")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        assert!(
            v[0] < MIN_TIMESTAMP_US && v[1] >= MAX_TIMESTAMP_US && v[2] == 0,
            "{v:?}"
        );
    }
}
