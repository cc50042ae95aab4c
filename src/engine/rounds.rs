//! The rounds of a run: every bucket is mapped by every pipeline active in the round, the
//! partials are merged, and each pipeline finalizes. Where the buckets come from and where
//! partials and kept rows live (memory or the work directory) is the caller's (`Buckets`,
//! `Store`, `Partials`); the rounds are the same either way, so one bucket in memory and sixty-four on
//! disk give the same tables.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use polars::prelude::*;

use super::partials::Partials;
use crate::contracts::InputKind;
use crate::keys::CustomerKeys;
use crate::pipelines::{Bucket, Facts, Finalized, Merged, Partial, Pipeline, TableData};
use crate::time::Calendar;

/// The buckets of a run: their number, and one bucket's inputs (customer ids as strings).
pub trait Buckets: Sync {
    fn count(&self) -> usize;
    fn load(
        &self,
        bucket: usize,
        kinds: &[InputKind],
    ) -> PolarsResult<BTreeMap<InputKind, DataFrame>>;
}

/// Where the rows a map keeps for later maps live (memory or the work directory).
pub trait Store {
    /// Keeps a bucket's rows under `name` (string customer ids).
    fn keep(&mut self, bucket: usize, name: &'static str, frame: DataFrame) -> PolarsResult<()>;
    /// Every row kept in `bucket`, by name.
    fn kept(&self, bucket: usize) -> PolarsResult<BTreeMap<&'static str, DataFrame>>;
}

/// Called after each bucket of each round (bucket, buckets, round, rounds, rows read).
pub type Progress<'a> = dyn FnMut(usize, usize, usize, usize, u64) + 'a;

/// The inputs a set of pipelines read: what they require, plus what they can use and the run
/// has.
pub fn inputs_of(pipelines: &[&dyn Pipeline], available: &[InputKind]) -> Vec<InputKind> {
    let mut kinds: Vec<InputKind> = Vec::new();
    for p in pipelines {
        let u = p.inputs();
        for k in u
            .required
            .into_iter()
            .chain(u.optional.into_iter().filter(|k| available.contains(k)))
        {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
    }
    kinds.sort();
    kinds
}

/// What one bucket's maps return.
pub struct BucketOut {
    pub rows: u64,
    /// By pipeline.
    pub partials: Vec<(&'static str, Partial)>,
    /// Rows kept for later maps (string customer ids), by name.
    pub keep: Vec<(&'static str, DataFrame)>,
}

/// Every active pipeline's map of bucket `b` (also run by the Spark workers, `crate::spark`).
#[allow(clippy::too_many_arguments)]
pub fn map_bucket(
    b: usize,
    active: &[&dyn Pipeline],
    kinds: &[InputKind],
    buckets: &dyn Buckets,
    cal: &Calendar,
    facts: &Facts,
    states: &BTreeMap<&'static str, Arc<dyn Any + Send + Sync>>,
    mut kept: BTreeMap<&'static str, DataFrame>,
    round: usize,
) -> PolarsResult<BucketOut> {
    let mut frames = buckets.load(b, kinds)?;
    let rows: u64 = frames.values().map(|f| f.height() as u64).sum();
    let keys = CustomerKeys::encode(&mut frames)?;
    let inputs = frames.into_iter().map(|(k, df)| (k, df.lazy())).collect();
    let activity = RefCell::new(Vec::new());
    let mut out = BucketOut {
        rows,
        partials: Vec::new(),
        keep: Vec::new(),
    };
    for p in active {
        let bucket = Bucket {
            index: b,
            inputs: &inputs,
            cal,
            facts,
            kept: &kept,
            state: states.get(p.name()).map(|s| s.as_ref() as _),
            keys: &keys,
            activity: &activity,
        };
        let mapped = p.map(round - p.first_round(), &bucket)?;
        out.partials
            .extend(mapped.partials.into_iter().map(|part| (p.name(), part)));
        for (name, df) in mapped.keep {
            let df = keys.decode(df)?;
            kept.insert(name, df.clone());
            out.keep.push((name, df));
        }
    }
    Ok(out)
}

/// The message of a panic in a bucket's thread.
fn panic_text(panic: &Box<dyn Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("a bucket's map panicked: {text}")
}

/// What the rounds run: the pipelines, over which buckets, with which inputs available.
pub struct Rounds<'a> {
    pub pipelines: &'a [&'a dyn Pipeline],
    pub buckets: &'a dyn Buckets,
    pub available: &'a [InputKind],
    pub cal: &'a Calendar,
    pub facts: &'a Facts,
    /// Buckets mapped side by side.
    pub parallel: usize,
}

/// Runs every round of the pipelines over the buckets, `parallel` buckets at a time; returns
/// each pipeline's tables in order.
pub fn run(
    r: &Rounds,
    store: &mut dyn Store,
    partials: &mut Partials,
    progress: &mut Progress,
) -> PolarsResult<Vec<(&'static str, TableData)>> {
    let Rounds {
        pipelines,
        buckets,
        available,
        cal,
        facts,
        parallel,
    } = *r;
    let last = round_count(pipelines);
    let mut states = States::new();
    let mut tables = Finished::new();
    for round in 0..last {
        let active = active_in(pipelines, round);
        if active.is_empty() {
            continue;
        }
        let reading: Vec<&dyn Pipeline> = active
            .iter()
            .copied()
            .filter(|p| p.reads_inputs(round - p.first_round()))
            .collect();
        let kinds = inputs_of(&reading, available);
        let count = buckets.count();
        let mut next = 0;
        while next < count {
            // A wave of buckets mapped side by side; what they return is stored in bucket
            // order, so the waves change nothing but the time.
            let wave: Vec<usize> = (next..(next + parallel.max(1)).min(count)).collect();
            next += wave.len();
            let kept: Vec<BTreeMap<&'static str, DataFrame>> = wave
                .iter()
                .map(|&b| store.kept(b))
                .collect::<PolarsResult<_>>()?;
            let map = |b: usize, kept: BTreeMap<&'static str, DataFrame>| {
                map_bucket(
                    b, &active, &kinds, buckets, cal, facts, &states, kept, round,
                )
            };
            let outs: Vec<PolarsResult<BucketOut>> = if wave.len() == 1 {
                vec![map(wave[0], kept.into_iter().next().expect("one"))]
            } else {
                std::thread::scope(|s| {
                    let handles: Vec<_> = wave
                        .iter()
                        .zip(kept)
                        .map(|(&b, kept)| s.spawn(move || map(b, kept)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|panic| {
                                Err(polars_err!(ComputeError: "{}", panic_text(&panic)))
                            })
                        })
                        .collect()
                })
            };
            for (&b, out) in wave.iter().zip(outs) {
                let out = out?;
                for (pipeline, part) in out.partials {
                    partials.add(pipeline, part.name, part.merge, b, part.frame)?;
                }
                for (name, df) in out.keep {
                    store.keep(b, name, df)?;
                }
                progress(b, count, round, last, out.rows);
            }
        }
        finalize_round(&active, round, cal, partials, &mut states, &mut tables)?;
    }
    Ok(in_order(pipelines, tables))
}

/// The states of the pipelines between rounds, by pipeline.
pub type States = BTreeMap<&'static str, Arc<dyn Any + Send + Sync>>;
/// The tables of the pipelines that have finished, by pipeline.
pub type Finished = BTreeMap<&'static str, Vec<(&'static str, TableData)>>;

/// The pipelines active in `round`, in run order.
pub fn active_in<'a>(pipelines: &[&'a dyn Pipeline], round: usize) -> Vec<&'a dyn Pipeline> {
    pipelines
        .iter()
        .copied()
        .filter(|p| (p.first_round()..p.first_round() + p.rounds()).contains(&round))
        .collect()
}

/// How many rounds the pipelines take.
pub fn round_count(pipelines: &[&dyn Pipeline]) -> usize {
    pipelines
        .iter()
        .map(|p| p.first_round() + p.rounds())
        .max()
        .unwrap_or(0)
}

/// Every active pipeline's finalize of `round` over its merged partials: its next state or its
/// tables.
pub fn finalize_round(
    active: &[&dyn Pipeline],
    round: usize,
    cal: &Calendar,
    partials: &mut Partials,
    states: &mut States,
    tables: &mut Finished,
) -> PolarsResult<()> {
    for p in active {
        let merged = partials.take(p.name())?;
        let m = Merged {
            cal,
            partials: merged,
            state: states.get(p.name()).map(|s| s.as_ref() as _),
        };
        match p.finalize(round - p.first_round(), &m)? {
            Finalized::Next(state) => {
                states.insert(p.name(), state);
            }
            Finalized::Tables(t) => {
                tables.insert(p.name(), t);
            }
        }
    }
    Ok(())
}

/// The tables in the pipelines' order, whatever round each finished in.
pub fn in_order(
    pipelines: &[&dyn Pipeline],
    mut tables: Finished,
) -> Vec<(&'static str, TableData)> {
    pipelines
        .iter()
        .flat_map(|p| tables.remove(p.name()).unwrap_or_default())
        .collect()
}
