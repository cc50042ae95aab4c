//! The rounds of a run: every bucket is mapped by every pipeline active in the round, the
//! partials are merged, and each pipeline finalizes. Where the buckets come from and where
//! partials and kept rows live (memory or the work directory) is the caller's (`Buckets`,
//! `Store`); the rounds are the same either way, so one bucket in memory and sixty-four on
//! disk give the same tables.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use polars::prelude::*;

use crate::contracts::InputKind;
use crate::keys::CustomerKeys;
use crate::pipelines::{
    merge_partials, Bucket, Facts, Finalized, Merge, Merged, Pipeline, TableData,
};
use crate::time::Calendar;

/// The buckets of a run: their number, and one bucket's inputs (customer ids as strings).
pub trait Buckets {
    fn count(&self) -> usize;
    fn load(
        &self,
        bucket: usize,
        kinds: &[InputKind],
    ) -> PolarsResult<BTreeMap<InputKind, DataFrame>>;
}

/// One pipeline's partials: each name's merge rule and every bucket's frame.
pub type PartialFrames = Vec<(&'static str, Merge, Vec<DataFrame>)>;

/// Where partials and kept rows are held between the maps and the finalize.
pub trait Store {
    /// Adds a bucket's frame of a partial.
    fn add_partial(
        &mut self,
        pipeline: &'static str,
        name: &'static str,
        merge: Merge,
        frame: DataFrame,
    ) -> PolarsResult<()>;
    /// Every frame of every partial of `pipeline` added since the last call, by name.
    fn take_partials(&mut self, pipeline: &'static str) -> PolarsResult<PartialFrames>;
    /// Keeps a bucket's rows under `name` (string customer ids).
    fn keep(&mut self, bucket: usize, name: &'static str, frame: DataFrame) -> PolarsResult<()>;
    /// Every row kept in `bucket`, by name.
    fn kept(&self, bucket: usize) -> PolarsResult<BTreeMap<&'static str, DataFrame>>;
    /// The rows every bucket kept under `name`, as sorted runs (each in customer_id order).
    fn kept_runs(&self, name: &'static str) -> PolarsResult<Vec<DataFrame>>;
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

/// Runs every round of `pipelines` over `buckets`; returns each pipeline's tables in order.
pub fn run(
    pipelines: &[&dyn Pipeline],
    buckets: &dyn Buckets,
    available: &[InputKind],
    cal: &Calendar,
    facts: &Facts,
    store: &mut dyn Store,
    progress: &mut Progress,
) -> PolarsResult<Vec<(&'static str, TableData)>> {
    let last = pipelines
        .iter()
        .map(|p| p.first_round() + p.rounds())
        .max()
        .unwrap_or(0);
    let mut states: BTreeMap<&'static str, Arc<dyn Any + Send + Sync>> = BTreeMap::new();
    let mut tables: BTreeMap<&'static str, Vec<(&'static str, TableData)>> = BTreeMap::new();
    for round in 0..last {
        let active: Vec<&dyn Pipeline> = pipelines
            .iter()
            .copied()
            .filter(|p| (p.first_round()..p.first_round() + p.rounds()).contains(&round))
            .collect();
        if active.is_empty() {
            continue;
        }
        let reading: Vec<&dyn Pipeline> = active
            .iter()
            .copied()
            .filter(|p| p.reads_inputs(round - p.first_round()))
            .collect();
        let kinds = inputs_of(&reading, available);
        for b in 0..buckets.count() {
            let mut frames = buckets.load(b, &kinds)?;
            let rows: u64 = frames.values().map(|f| f.height() as u64).sum();
            let keys = CustomerKeys::encode(&mut frames)?;
            let inputs = frames.into_iter().map(|(k, df)| (k, df.lazy())).collect();
            let mut kept = store.kept(b)?;
            let activity = RefCell::new(Vec::new());
            for p in &active {
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
                let out = p.map(round - p.first_round(), &bucket)?;
                for part in out.partials {
                    store.add_partial(p.name(), part.name, part.merge, part.frame)?;
                }
                for (name, df) in out.keep {
                    let df = keys.decode(df)?;
                    store.keep(b, name, df.clone())?;
                    kept.insert(name, df);
                }
            }
            progress(b, buckets.count(), round, last, rows);
        }
        for p in &active {
            let merged: BTreeMap<&'static str, LazyFrame> = store
                .take_partials(p.name())?
                .into_iter()
                .map(|(name, merge, frames)| Ok((name, merge_partials(frames, merge)?)))
                .collect::<PolarsResult<_>>()?;
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
    }
    // In the pipelines' order, whatever round each finished in.
    Ok(pipelines
        .iter()
        .flat_map(|p| tables.remove(p.name()).unwrap_or_default())
        .collect())
}
