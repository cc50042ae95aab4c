//! What runs in Spark's Python workers: the clean of one batch of an input, and the map of one
//! bucket. Both are pure functions of their bytes and the run's context, so a task Spark runs
//! again (a lost executor, a retried task) returns the same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    from_parquet, intern, join_parts, kind_at, kind_index, merge_from, merge_text, out as out_what,
    to_parquet, typed, what, Context,
};
use crate::bucket::{buckets_of, split_by_bucket};
use crate::contracts::InputKind;
use crate::engine::disk::as_loaded;
use crate::engine::rounds::{self, Buckets};
use crate::engine::start::input_kinds;
use crate::inputs::{contract_problems, mark, tally, BatchReader, FileSchema, Rejected};
use crate::pipelines::{Facts, Merge, Pipeline};

/// Why a worker call failed: the input's fault (the run's exit 3) or not (exit 1). The Python
/// side raises it with this prefix, which the driver finds in Spark's error.
#[derive(Debug)]
pub enum Failure {
    Input(String),
    Other(String),
}

impl Failure {
    /// The message as the driver reads it back out of Spark's error text.
    pub fn text(&self) -> String {
        match self {
            Failure::Input(m) => format!("CXMETRICS-INPUT[{m}]CXMETRICS-END"),
            Failure::Other(m) => format!("CXMETRICS-OTHER[{m}]CXMETRICS-END"),
        }
    }
}

fn other(e: impl std::fmt::Display) -> Failure {
    Failure::Other(e.to_string())
}

/// A batch's tallies (the `STATS` row's JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchStats {
    pub rows_read: u64,
    pub rows_after_as_of: u64,
    /// (reason, rows, first row, its example id).
    pub rejected: Vec<(String, u64, i64, String)>,
    /// The valid rows, their latest own time and how many have none: an input without ids
    /// keeps every valid row, so these are its facts (`Driver::gates`).
    pub valid_rows: u64,
    pub latest_us: Option<i64>,
    pub null_times: u64,
}

/// The `ROWS` frame of the given columns' values.
pub(crate) struct RowsOut {
    bucket: Vec<i32>,
    what: Vec<i32>,
    kind: Vec<i32>,
    row: Vec<i64>,
    key: Vec<Option<String>>,
    ticket: Vec<Option<String>>,
    n: Vec<Option<i64>>,
    m: Vec<Option<i64>>,
    data: Vec<Option<Vec<u8>>>,
}

impl RowsOut {
    pub(crate) fn new() -> Self {
        RowsOut {
            bucket: Vec::new(),
            what: Vec::new(),
            kind: Vec::new(),
            row: Vec::new(),
            key: Vec::new(),
            ticket: Vec::new(),
            n: Vec::new(),
            m: Vec::new(),
            data: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &mut self,
        bucket: i32,
        what: i32,
        kind: i32,
        row: i64,
        key: Option<String>,
        ticket: Option<String>,
        n: Option<i64>,
        m: Option<i64>,
        data: Option<Vec<u8>>,
    ) {
        self.bucket.push(bucket);
        self.what.push(what);
        self.kind.push(kind);
        self.row.push(row);
        self.key.push(key);
        self.ticket.push(ticket);
        self.n.push(n);
        self.m.push(m);
        self.data.push(data);
    }

    pub(crate) fn finish(self) -> PolarsResult<Vec<u8>> {
        let data: Vec<Option<&[u8]>> = self.data.iter().map(|d| d.as_deref()).collect();
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("__bucket".into(), self.bucket),
            Column::new("__what".into(), self.what),
            Column::new("__kind".into(), self.kind),
            Column::new("__row".into(), self.row),
            Column::new("__key".into(), self.key),
            Column::new("__ticket".into(), self.ticket),
            Column::new("__n".into(), self.n),
            Column::new("__m".into(), self.m),
            BinaryChunked::from_slice_options("__data".into(), &data).into_column(),
        ])?;
        to_parquet(&mut df, false)
    }
}

/// The cleaned rows of input `kind` without any row, in the schema the partition pass writes
/// (with `__row`).
pub fn empty_cleaned(ctx: &Context, kind: InputKind) -> Result<DataFrame, String> {
    let source = ctx.source(kind)?;
    let extra = ctx.extra.get(&kind).cloned().unwrap_or_default();
    let mut columns: Vec<Column> = extra
        .iter()
        .filter(|e| kind.contract().column(e).is_none())
        .map(|e| Column::new_empty(e.as_str().into(), &DataType::String))
        .collect();
    columns.push(Column::new_empty("__row".into(), &DataType::Int64));
    let df = DataFrame::new_infer_height(columns).map_err(|e| e.to_string())?;
    let schema = file_schema(&df);
    BatchReader::new(&source, Path::new(""), &schema, &extra)?.coerce_read(df)
}

/// The columns of a frame Spark read, as a file's schema.
pub fn file_schema(df: &DataFrame) -> FileSchema {
    FileSchema {
        rows: df.height(),
        columns: df
            .schema()
            .iter()
            .filter(|(n, _)| n.as_str() != "__row")
            .map(|(n, dt)| (n.to_string(), Ok(dt.clone())))
            .collect(),
        row_groups: vec![df.height()],
    }
}

/// Cleans one batch of input `kind` read by Spark from `file` (the file's columns and
/// `__row`): the `ROWS` of its valid rows by bucket, its key rows and its tallies.
pub fn clean(ctx: &Context, kind: InputKind, file: &str, batch: &[u8]) -> Result<Vec<u8>, Failure> {
    let raw = from_parquet(batch).map_err(other)?;
    let source = ctx.source(kind).map_err(Failure::Other)?;
    let extra = ctx.extra.get(&kind).cloned().unwrap_or_default();
    let schema = file_schema(&raw);
    let path = Path::new(file);
    let problems = contract_problems(&source, path, &schema, &extra);
    if !problems.is_empty() {
        return Err(Failure::Input(problems.join("; ")));
    }
    let shown = |e: String| Failure::Input(format!("{kind} ({file}): {e}"));
    let reader = BatchReader::new(&source, path, &schema, &extra).map_err(shown)?;
    let batch = reader.coerce_read(raw).map_err(shown)?;
    let first_row = batch
        .column("__row")
        .ok()
        .and_then(|c| c.as_materialized_series().min::<i64>().ok().flatten())
        .unwrap_or(0);
    let mut stats = BatchStats {
        rows_read: batch.height() as u64,
        ..Default::default()
    };
    let marked = mark(kind, batch, &ctx.cal, &ctx.job.scales)
        .map_err(|e| shown(format!("cannot clean the rows read: {e}")))?;
    stats.rows_after_as_of = marked.rows_after_as_of;
    let mut rejected: BTreeMap<String, Rejected> = BTreeMap::new();
    tally(kind, &marked.frame, &marked.reasons, &mut rejected).map_err(other)?;
    stats.rejected = rejected
        .into_iter()
        .map(|(reason, r)| (reason, r.row_count, r.first_row, r.example_id))
        .collect();
    let valid = marked.into_valid().map_err(other)?;

    let times = valid
        .clone()
        .lazy()
        .select([
            col(kind.contract().time)
                .dt()
                .timestamp(TimeUnit::Microseconds)
                .max()
                .alias("latest"),
            col(kind.contract().time)
                .null_count()
                .cast(DataType::Int64)
                .alias("nulls"),
        ])
        .collect()
        .map_err(other)?;
    stats.valid_rows = valid.height() as u64;
    stats.latest_us = times
        .column("latest")
        .ok()
        .and_then(|c| c.i64().ok()?.get(0));
    stats.null_times = times
        .column("nulls")
        .ok()
        .and_then(|c| c.i64().ok()?.get(0))
        .unwrap_or(0) as u64;
    let k = kind_index(kind);
    let mut out = RowsOut::new();
    out.push(
        -1,
        what::STATS,
        k,
        first_row,
        None,
        None,
        None,
        None,
        Some(serde_json::to_vec(&stats).expect("stats serialise")),
    );
    if valid.height() > 0 {
        if kind.contract().key.is_some() {
            key_rows(ctx, kind, &valid, &mut out).map_err(other)?;
        }
        for (b, mut part) in split_by_bucket(valid, ctx.spec.buckets).map_err(other)? {
            let first = part
                .column("__row")
                .map_err(other)?
                .as_materialized_series()
                .min::<i64>()
                .map_err(other)?
                .unwrap_or(0);
            let blob = to_parquet(&mut part, true).map_err(other)?;
            out.push(
                b as i32,
                what::DATA,
                k,
                first,
                None,
                None,
                None,
                None,
                Some(blob),
            );
        }
    }
    out.finish().map_err(other)
}

/// One `KEY` row per valid row of an input with ids: its bucket, number, id, own time and, for
/// a CSAT response about a ticket, the ticket and whether it is positive.
fn key_rows(
    ctx: &Context,
    kind: InputKind,
    valid: &DataFrame,
    out: &mut RowsOut,
) -> PolarsResult<()> {
    let contract = kind.contract();
    let ids = valid.column("customer_id")?.str()?;
    let buckets = buckets_of(ids, ctx.spec.buckets as u64);
    let rows = valid.column("__row")?.i64()?.clone();
    let time = valid
        .clone()
        .lazy()
        .select([col(contract.time)
            .dt()
            .timestamp(TimeUnit::Microseconds)
            .alias("t")])
        .collect()?;
    let time = time.column("t")?.i64()?.clone();
    let Some(key) = contract.key else {
        return Ok(());
    };
    let keys = valid.column(key)?.str()?.clone();
    // CSAT responses about a ticket, by row number.
    let mut csat: BTreeMap<i64, (String, bool)> = BTreeMap::new();
    if let (InputKind::Surveys, Some(positive_from)) = (kind, ctx.spec.csat_positive_from) {
        let r = crate::pipelines::support_kpis::csat_responses(valid.clone().lazy(), positive_from)
            .select([col("__row"), col("ticket_id"), col("__positive")])
            .collect()?;
        let (rs, ts, ps) = (
            r.column("__row")?.i64()?,
            r.column("ticket_id")?.str()?,
            r.column("__positive")?.bool()?,
        );
        for i in 0..r.height() {
            if let (Some(row), Some(t)) = (rs.get(i), ts.get(i)) {
                csat.insert(row, (t.to_string(), ps.get(i).unwrap_or(false)));
            }
        }
    }
    let k = kind_index(kind);
    for i in 0..valid.height() {
        let row = rows.get(i).unwrap_or(0);
        let (ticket, positive) = match csat.get(&row) {
            Some((t, p)) => (Some(t.clone()), Some(*p as i64)),
            None => (None, None),
        };
        out.push(
            buckets.get(i).unwrap_or(0) as i32,
            what::KEY,
            k,
            row,
            keys.get(i).map(str::to_string),
            ticket,
            time.get(i),
            positive,
            None,
        );
    }
    Ok(())
}

/// One bucket's inputs, as the engine's `Buckets` (whatever index it is asked for).
struct OneBucket(BTreeMap<InputKind, DataFrame>);

impl Buckets for OneBucket {
    fn count(&self) -> usize {
        1
    }

    fn load(
        &self,
        _bucket: usize,
        kinds: &[InputKind],
    ) -> PolarsResult<BTreeMap<InputKind, DataFrame>> {
        Ok(self
            .0
            .iter()
            .filter(|(k, _)| kinds.contains(k))
            .map(|(k, df)| (*k, df.clone()))
            .collect())
    }
}

/// The pipelines of `round` whose maps read the bucket's inputs (the ones Spark runs).
pub fn spark_pipelines<'a>(pipelines: &[&'a dyn Pipeline], round: usize) -> Vec<&'a dyn Pipeline> {
    rounds::active_in(pipelines, round)
        .into_iter()
        .filter(|p| p.reads_inputs(round - p.first_round()))
        .collect()
}

/// The CSAT responses per ticket of this bucket's tickets, in the schema of
/// `support_kpis::csat_by_ticket`.
fn csat_frame(
    ctx: &Context,
    tickets: Vec<String>,
    n: Vec<i64>,
    m: Vec<i64>,
) -> PolarsResult<DataFrame> {
    let positive_from = ctx.spec.csat_positive_from.unwrap_or(0);
    let empty =
        empty_cleaned(ctx, InputKind::Surveys).map_err(|e| polars_err!(ComputeError: "{}", e))?;
    let schema = crate::pipelines::support_kpis::csat_by_ticket(empty.lazy(), positive_from)
        .collect()?
        .schema()
        .clone();
    let df = DataFrame::new_infer_height(vec![
        Column::new("ticket_id".into(), tickets),
        Column::new("__csat_n".into(), n),
        Column::new("__csat_pos".into(), m),
    ])?;
    let exprs: Vec<Expr> = schema
        .iter()
        .map(|(name, dt)| col(name.clone()).cast(dt.clone()))
        .collect();
    df.lazy()
        .select(exprs)
        .sort(["ticket_id"], Default::default())
        .collect()
}

/// Maps one bucket in `round`: `group` is every `ROWS` row of the bucket (its data blobs, its
/// dropped rows, its tickets' CSAT responses, its kept rows). Returns `OUT`.
pub fn map(ctx: &Context, round: usize, group: &[u8]) -> Result<Vec<u8>, Failure> {
    let g = from_parquet(group).map_err(other)?;
    let col_i32 = |name: &str| typed::<Int32Type>(&g, name).map_err(other);
    let (buckets, whats, kinds) = (col_i32("__bucket")?, col_i32("__what")?, col_i32("__kind")?);
    let rows = typed::<Int64Type>(&g, "__row").map_err(other)?;
    let keys = typed::<StringType>(&g, "__key").map_err(other)?;
    let ns = typed::<Int64Type>(&g, "__n").map_err(other)?;
    let ms = typed::<Int64Type>(&g, "__m").map_err(other)?;
    let data = typed::<BinaryType>(&g, "__data").map_err(other)?;
    let bucket = buckets.get(0).unwrap_or(0);

    let mut blobs: BTreeMap<InputKind, Vec<(i64, &[u8])>> = BTreeMap::new();
    let mut drops: BTreeMap<InputKind, Vec<i64>> = BTreeMap::new();
    let mut kept_parts: BTreeMap<&'static str, Vec<(i64, &[u8])>> = BTreeMap::new();
    let (mut tickets, mut n, mut m) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..g.height() {
        let row = rows.get(i).unwrap_or(0);
        match whats.get(i).unwrap_or(-1) {
            what::DATA => {
                let kind = kind_at(kinds.get(i).unwrap_or(-1)).map_err(Failure::Other)?;
                let blob = data
                    .get(i)
                    .ok_or_else(|| other("a data row without data"))?;
                blobs.entry(kind).or_default().push((row, blob));
            }
            what::DROP => {
                let kind = kind_at(kinds.get(i).unwrap_or(-1)).map_err(Failure::Other)?;
                drops.entry(kind).or_default().push(row);
            }
            what::CSAT => {
                tickets.push(keys.get(i).unwrap_or_default().to_string());
                n.push(ns.get(i).unwrap_or(0));
                m.push(ms.get(i).unwrap_or(0));
            }
            what::KEPT => {
                let name = intern(keys.get(i).unwrap_or_default());
                let blob = data
                    .get(i)
                    .ok_or_else(|| other("a kept row without data"))?;
                kept_parts.entry(name).or_default().push((row, blob));
            }
            w => return Err(other(format!("a row of kind {w} in a bucket"))),
        }
    }

    // The bucket's rows of each input the run reads, in row order, without the repeated ids:
    // the bucket file of the local engine.
    let available: Vec<InputKind> = input_kinds(&ctx.job, &ctx.selection).into_iter().collect();
    let mut frames = BTreeMap::new();
    for kind in &available {
        let mut parts = blobs.remove(kind).unwrap_or_default();
        parts.sort_by_key(|(row, _)| *row);
        let mut all = empty_cleaned(ctx, *kind).map_err(Failure::Other)?;
        for (_, blob) in parts {
            let df = from_parquet(blob).map_err(other)?;
            all.vstack_mut_owned(df).map_err(other)?;
        }
        let mut lf = all.lazy().sort(["__row"], Default::default());
        if let Some(rows) = drops.remove(kind) {
            let drop = DataFrame::new_infer_height(vec![Column::new("__row".into(), rows)])
                .map_err(other)?;
            lf = lf.join(
                drop.lazy(),
                [col("__row")],
                [col("__row")],
                JoinArgs::new(JoinType::Anti),
            );
        }
        let df = as_loaded(*kind, lf).collect().map_err(other)?;
        frames.insert(*kind, df);
    }
    let mut kept = BTreeMap::new();
    for (name, mut parts) in kept_parts {
        // Each part once: a frame kept twice under one name would be stacked twice.
        parts.sort_by_key(|(part, _)| *part);
        if parts
            .iter()
            .enumerate()
            .any(|(i, (part, _))| *part != i as i64)
        {
            return Err(other(format!(
                "the kept rows {name} of bucket {bucket} arrived with parts {:?}",
                parts.iter().map(|(p, _)| *p).collect::<Vec<_>>()
            )));
        }
        let parts = parts
            .into_iter()
            .map(|(part, blob)| Ok((part, from_parquet(blob)?)))
            .collect::<PolarsResult<Vec<_>>>()
            .map_err(other)?;
        if let Some(df) = join_parts(parts).map_err(other)? {
            kept.insert(name, df);
        }
    }
    let facts = Facts {
        customers_have_signup: ctx.spec.customers_have_signup,
        csat_by_ticket: match ctx.spec.csat_positive_from {
            Some(_) => Some(csat_frame(ctx, tickets, n, m).map_err(other)?.lazy()),
            None => None,
        },
    };
    let pipelines: Vec<&dyn Pipeline> = ctx.selection.computed.iter().map(|p| p.as_ref()).collect();
    let active = spark_pipelines(&pipelines, round);
    let kinds = rounds::inputs_of(&active, &available);
    let states = rounds::States::new();
    let one = OneBucket(frames);
    let mapped = rounds::map_bucket(
        bucket as usize,
        &active,
        &kinds,
        &one,
        &ctx.cal,
        &facts,
        &states,
        kept,
        round,
    )
    .map_err(other)?;

    let mut out = Out::default();
    for (pipeline, part) in mapped.partials {
        let mut frame = part.frame;
        let what = match part.merge {
            Merge::By { .. } => out_what::BY,
            Merge::Rows { .. } => out_what::ROWS,
        };
        out.push(
            bucket,
            what,
            pipeline,
            part.name,
            &merge_text(part.merge),
            0,
            1,
            to_parquet(&mut frame, true).map_err(other)?,
        );
    }
    for (name, df) in mapped.keep {
        for (i, count, mut part) in parts_of(&df) {
            out.push(
                bucket,
                out_what::KEPT,
                "",
                name,
                "",
                i,
                count,
                to_parquet(&mut part, true).map_err(other)?,
            );
        }
    }
    out.finish().map_err(other)
}

/// Spark's merge of one `By` partial (a worker's call, one per partial:
/// `groupBy("__pipeline", "__name").applyInArrow`): `group` is its `OUT` rows from every
/// bucket; the result is one `OUT` row, their frames folded by the local engine's merge
/// (`engine::partials::fold`: exact integer sums, minima and maxima per group of keys). It
/// carries the smallest bucket number of the group.
pub fn merge(group: &[u8]) -> Result<Vec<u8>, Failure> {
    let g = from_parquet(group).map_err(other)?;
    if g.height() == 0 {
        return Out::default().finish().map_err(other);
    }
    let text = |name: &str| typed::<StringType>(&g, name).map_err(other);
    let (pipelines, names, merges) = (text("__pipeline")?, text("__name")?, text("__merge")?);
    let whats = typed::<Int32Type>(&g, "__what").map_err(other)?;
    let buckets = typed::<Int32Type>(&g, "__bucket").map_err(other)?;
    let data = typed::<BinaryType>(&g, "__data").map_err(other)?;
    let first = |c: &StringChunked| c.get(0).unwrap_or_default().to_string();
    let (pipeline, name, rule) = (first(&pipelines), first(&names), first(&merges));
    for i in 0..g.height() {
        let same = pipelines.get(i) == Some(pipeline.as_str())
            && names.get(i) == Some(name.as_str())
            && merges.get(i) == Some(rule.as_str())
            && whats.get(i) == Some(out_what::BY);
        if !same {
            return Err(other(format!(
                "the merge of {pipeline}.{name} was given a row of another partial"
            )));
        }
    }
    let merge = merge_from(&rule).map_err(Failure::Other)?;
    let frames = data
        .iter()
        .map(|blob| from_parquet(blob.unwrap_or_default()))
        .collect::<PolarsResult<Vec<_>>>()
        .map_err(other)?;
    let columns = frames[0].get_column_names_owned();
    let mut merged = crate::engine::partials::fold(frames, merge, &columns).map_err(other)?;
    let mut out = Out::default();
    out.push(
        buckets.min().unwrap_or(0),
        out_what::BY,
        &pipeline,
        &name,
        &rule,
        0,
        1,
        to_parquet(&mut merged, true).map_err(other)?,
    );
    out.finish().map_err(other)
}

/// `df` cut into parts of about `PART_BYTES`: (part, parts, rows).
pub fn parts_of(df: &DataFrame) -> Vec<(i32, i32, DataFrame)> {
    let bytes = df.estimated_size().max(1);
    let rows = df.height().max(1);
    let per_part = (rows * super::PART_BYTES / bytes).clamp(1, rows);
    let count = rows.div_ceil(per_part) as i32;
    (0..count)
        .map(|i| {
            let part = df.slice(i as i64 * per_part as i64, per_part);
            (i, count, part)
        })
        .collect()
}

/// The `OUT` rows of a bucket's map.
#[derive(Default)]
struct Out {
    bucket: Vec<i32>,
    what: Vec<i32>,
    pipeline: Vec<String>,
    name: Vec<String>,
    merge: Vec<String>,
    part: Vec<i32>,
    parts: Vec<i32>,
    data: Vec<Vec<u8>>,
}

impl Out {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        bucket: i32,
        what: i32,
        pipeline: &str,
        name: &str,
        merge: &str,
        part: i32,
        parts: i32,
        data: Vec<u8>,
    ) {
        self.bucket.push(bucket);
        self.what.push(what);
        self.pipeline.push(pipeline.to_string());
        self.name.push(name.to_string());
        self.merge.push(merge.to_string());
        self.part.push(part);
        self.parts.push(parts);
        self.data.push(data);
    }

    fn finish(self) -> PolarsResult<Vec<u8>> {
        let data: Vec<&[u8]> = self.data.iter().map(|d| d.as_slice()).collect();
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("__bucket".into(), self.bucket),
            Column::new("__what".into(), self.what),
            Column::new("__pipeline".into(), self.pipeline),
            Column::new("__name".into(), self.name),
            Column::new("__merge".into(), self.merge),
            Column::new("__part".into(), self.part),
            Column::new("__parts".into(), self.parts),
            BinaryChunked::from_slice("__data".into(), &data).into_column(),
        ])?;
        to_parquet(&mut df, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `OUT` rows of one `By` partial from three buckets, as Parquet bytes.
    fn group(merge: Merge, frames: Vec<DataFrame>, other_name: Option<usize>) -> Vec<u8> {
        let mut out = Out::default();
        for (b, mut df) in frames.into_iter().enumerate() {
            let name = if other_name == Some(b) { "y" } else { "x" };
            let blob = to_parquet(&mut df, true).unwrap();
            out.push(
                b as i32 + 3,
                out_what::BY,
                "p",
                name,
                &merge_text(merge),
                0,
                1,
                blob,
            );
        }
        out.finish().unwrap()
    }

    fn frames() -> Vec<DataFrame> {
        vec![
            df!("k" => ["a", "b"], "n" => [1i64, 2], "lo" => [5i64, 9], "hi" => [5i64, 9]).unwrap(),
            df!("k" => ["a"], "n" => [10i64], "lo" => [3i64], "hi" => [3i64]).unwrap(),
            df!("k" => ["b", "c"], "n" => [100i64, 7], "lo" => [8i64, 1], "hi" => [20i64, 1])
                .unwrap(),
        ]
    }

    #[test]
    fn spark_merge_folds_a_partial_of_every_bucket_into_one_row() {
        let merge = Merge::By {
            keys: &["k"],
            min: &["lo"],
            max: &["hi"],
        };
        let out = from_parquet(&super::merge(&group(merge, frames(), None)).unwrap()).unwrap();
        assert_eq!(out.height(), 1);
        // The smallest bucket of the group (buckets 3, 4, 5).
        assert_eq!(
            out.column("__bucket").unwrap().i32().unwrap().get(0),
            Some(3)
        );
        let blob = out
            .column("__data")
            .unwrap()
            .binary()
            .unwrap()
            .get(0)
            .unwrap();
        let df = from_parquet(blob)
            .unwrap()
            .sort(["k"], Default::default())
            .unwrap();
        // a: 1 + 10, min(5, 3), max(5, 3); b: 2 + 100, min(9, 8), max(9, 20); c alone.
        let want = df!(
            "k" => ["a", "b", "c"],
            "n" => [11i64, 102, 7],
            "lo" => [3i64, 8, 1],
            "hi" => [5i64, 20, 1]
        )
        .unwrap();
        assert_eq!(df, want);
    }

    #[test]
    fn spark_merge_refuses_rows_of_another_partial() {
        let err = super::merge(&group(Merge::sum(&["k"]), frames(), Some(1))).unwrap_err();
        assert!(err.text().contains("another partial"), "{}", err.text());
    }
}
