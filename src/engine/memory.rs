//! Buckets and partials held in memory: the unit tests' engine, and a run's when its data
//! fits in one bucket.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::rounds::{self, Buckets, PartialFrames, Store};
use crate::contracts::InputKind;
use crate::pipelines::{Facts, Inputs, Merge, Pipeline, TableData};
use crate::time::Calendar;

/// Buckets given as frames.
pub struct InMemory<'a>(pub &'a [BTreeMap<InputKind, DataFrame>]);

impl Buckets for InMemory<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn load(
        &self,
        bucket: usize,
        kinds: &[InputKind],
    ) -> PolarsResult<BTreeMap<InputKind, DataFrame>> {
        Ok(self.0[bucket]
            .iter()
            .filter(|(k, _)| kinds.contains(k))
            .map(|(k, df)| (*k, df.clone()))
            .collect())
    }
}

/// Partials and kept rows in memory.
#[derive(Default)]
pub struct MemoryStore {
    partials: BTreeMap<&'static str, PartialFrames>,
    kept: BTreeMap<usize, BTreeMap<&'static str, DataFrame>>,
}

impl Store for MemoryStore {
    fn add_partial(
        &mut self,
        pipeline: &'static str,
        name: &'static str,
        merge: Merge,
        frame: DataFrame,
    ) -> PolarsResult<()> {
        let list = self.partials.entry(pipeline).or_default();
        match list.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, _, frames)) => frames.push(frame),
            None => list.push((name, merge, vec![frame])),
        }
        Ok(())
    }

    fn take_partials(&mut self, pipeline: &'static str) -> PolarsResult<PartialFrames> {
        Ok(self.partials.remove(pipeline).unwrap_or_default())
    }

    fn keep(&mut self, bucket: usize, name: &'static str, frame: DataFrame) -> PolarsResult<()> {
        self.kept.entry(bucket).or_default().insert(name, frame);
        Ok(())
    }

    fn kept(&self, bucket: usize) -> PolarsResult<BTreeMap<&'static str, DataFrame>> {
        Ok(self.kept.get(&bucket).cloned().unwrap_or_default())
    }

    fn kept_runs(&self, name: &'static str) -> PolarsResult<Vec<DataFrame>> {
        Ok(self
            .kept
            .values()
            .filter_map(|k| k.get(name).cloned())
            .collect())
    }
}

/// Every table of `pipelines` on `buckets` (inputs with string customer ids), in memory.
pub fn run(
    pipelines: &[&dyn Pipeline],
    buckets: &[Inputs],
    cal: &Calendar,
    facts: &Facts,
) -> PolarsResult<BTreeMap<&'static str, DataFrame>> {
    let frames: Vec<BTreeMap<InputKind, DataFrame>> = buckets
        .iter()
        .map(|inputs| {
            inputs
                .iter()
                .map(|(k, lf)| Ok((*k, lf.clone().collect()?)))
                .collect::<PolarsResult<_>>()
        })
        .collect::<PolarsResult<_>>()?;
    let available: Vec<InputKind> = frames
        .first()
        .map(|f| f.keys().copied().collect())
        .unwrap_or_default();
    let mut store = MemoryStore::default();
    let tables = rounds::run(
        pipelines,
        &InMemory(&frames),
        &available,
        cal,
        facts,
        &mut store,
        &mut |_, _, _, _, _| {},
    )?;
    tables
        .into_iter()
        .map(|(name, data)| {
            let df = match data {
                TableData::Frame(df) => df,
                TableData::Kept(kept) => super::sorted::concat_sorted(store.kept_runs(kept)?)?,
            };
            Ok((name, df))
        })
        .collect()
}
