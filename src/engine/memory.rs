//! Buckets and kept rows held in memory: the unit tests' engine, and a run's when its data
//! fits in one bucket.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::partials::Partials;
use super::rounds::{self, Buckets, Store};
use crate::contracts::InputKind;
use crate::pipelines::{Facts, Inputs, Pipeline, TableData};
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

/// Kept rows in memory.
#[derive(Default)]
pub struct MemoryStore {
    kept: BTreeMap<usize, BTreeMap<&'static str, DataFrame>>,
}

impl Store for MemoryStore {
    fn keep(&mut self, bucket: usize, name: &'static str, frame: DataFrame) -> PolarsResult<()> {
        self.kept.entry(bucket).or_default().insert(name, frame);
        Ok(())
    }

    fn kept(&self, bucket: usize) -> PolarsResult<BTreeMap<&'static str, DataFrame>> {
        Ok(self.kept.get(&bucket).cloned().unwrap_or_default())
    }
}

impl MemoryStore {
    /// The rows every bucket kept under `name`, bucket by bucket.
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
    // As many chunks of Rows partials as buckets, so that a split run also splits them.
    let mut partials = Partials::new(frames.len() as u32, None);
    let r = rounds::Rounds {
        pipelines,
        buckets: &InMemory(&frames),
        available: &available,
        cal,
        facts,
        // Two buckets side by side, so that the unit tests also map in parallel.
        parallel: 2,
    };
    let tables = rounds::run(&r, &mut store, &mut partials, &mut |_, _, _, _, _| {})?;
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
