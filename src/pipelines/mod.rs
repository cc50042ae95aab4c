//! The pipelines and the one shape they share.
//!
//! A pipeline is configured by its `Spec` (its own parameters, their checks and their
//! defaults) and run as `map` over customer buckets and `finalize` over the merged results:
//!
//! - `map(bucket)` is a pure function of one bucket's rows (every row of a customer is in the
//!   same bucket). It returns *partials* that merge exactly: integer counts, money as exact
//!   integer parts, exact float sums by exponent (`crate::exact`), minima and maxima, and rows
//!   to be unioned (values whose order statistics a definition needs). It may also keep
//!   per-customer rows of its bucket for a later round.
//! - `finalize(merged partials)` computes what needs every customer at once (rates, intervals,
//!   quantiles, the CLV fits, rank boundaries) and either gives the tables or hands a state to
//!   the pipeline's next round, whose `map` runs over every bucket again.
//!
//! Because partials merge exactly and `finalize` orders what it reduces, every table is the
//! same bytes whatever the number of buckets. Adding a pipeline is one new file with its
//! `Spec` and `Pipeline`, and one line in `REGISTRY`.

pub mod activation;
pub mod churn;
pub mod cohort_retention;
pub mod common;
pub mod cx_impact;
pub mod lifecycle;
pub mod ltv_segments;
pub mod support_kpis;
pub mod survey_scores;

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use polars::prelude::*;

use crate::config::ActivitySource;
use crate::contracts::InputKind;
use crate::keys::CustomerKeys;
use crate::problems::Problems;
use crate::time::Calendar;
use support_kpis::SlaTargets;
use survey_scores::Scales;

/// One bucket's cleaned inputs by kind (customer ids as integer keys).
pub type Inputs = BTreeMap<InputKind, LazyFrame>;

/// Every pipeline, in run order. A pipeline may use what the ones before it settle (the survey
/// scales, the SLA targets, the CLV model) and the per-customer rows they keep.
pub static REGISTRY: &[&dyn Spec] = &[
    &survey_scores::SPEC,
    &support_kpis::SPEC,
    &cohort_retention::SPEC,
    &churn::SPEC,
    &activation::SPEC,
    &ltv_segments::SPEC,
    &cx_impact::SPEC,
];

/// The names of every pipeline, in run order.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|s| s.name()).collect()
}

/// A pipeline's configuration: its name, and the checks and defaults of its parameters.
pub trait Spec: Sync {
    fn name(&self) -> &'static str;

    /// Builds the pipeline from its parameters (the YAML under `pipelines.<name>`, an empty
    /// mapping when none), reporting every problem under `at`. None when the parameters do
    /// not have the right shape; a value out of its range is reported and stands in as the
    /// low end of its range, so that the checks that depend on the pipeline still run.
    fn build(
        &self,
        params: serde_yaml::Value,
        at: &str,
        settings: &mut JobSettings,
        problems: &mut Problems,
    ) -> Option<Box<dyn Pipeline>>;
}

/// What the pipelines' parameters are checked against, and the settings a pipeline shares
/// with the ones after it.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// The inputs the job declares.
    pub declared: BTreeSet<InputKind>,
    /// Survey scales: `survey_scores.scales`, else the defaults. Input cleaning rejects
    /// out-of-scale scores with them, and every CSAT figure uses them.
    pub scales: Scales,
    /// First-response targets: `support_kpis.sla_first_response`, else 24h for every channel.
    pub sla: SlaTargets,
    /// The CLV model of `ltv_segments` when it fits one (cx_impact averages its predictions).
    pub ltv: Option<ltv_segments::LtvSegments>,
}

impl JobSettings {
    pub fn new(declared: BTreeSet<InputKind>) -> Self {
        JobSettings {
            declared,
            scales: Scales::default(),
            sla: SlaTargets::default(),
            ltv: None,
        }
    }
}

/// The inputs a pipeline reads.
#[derive(Debug, Clone, Default)]
pub struct InputUse {
    /// Inputs the job must declare.
    pub required: Vec<InputKind>,
    /// Inputs it uses when the job declares them.
    pub optional: Vec<InputKind>,
    /// Non-contract columns it reads (its `by` segments), by input.
    pub extra: Vec<(InputKind, Vec<String>)>,
}

/// A configured pipeline.
pub trait Pipeline: std::fmt::Debug + Send + Sync {
    fn name(&self) -> &'static str;

    /// The tables it writes, in the order it writes them.
    fn tables(&self) -> &'static [&'static str];

    fn inputs(&self) -> InputUse;

    /// `by` columns, with the input they come from (checked by `validate`).
    fn by(&self) -> (InputKind, &[String]);

    /// The activity sources it counts, when it is a lifecycle pipeline (a bucket computes
    /// each list of sources once for all of them).
    fn activity(&self) -> Option<&[ActivitySource]> {
        None
    }

    /// How many map-and-finalize rounds it has.
    fn rounds(&self) -> usize {
        1
    }

    /// The round of the run its first map runs in: after the rounds of the pipelines whose
    /// kept rows it reads.
    fn first_round(&self) -> usize {
        0
    }

    /// Whether its map of round `round` (from 0) reads the bucket's inputs, or only rows kept
    /// earlier (the engine then does not load the inputs for it).
    fn reads_inputs(&self, _round: usize) -> bool {
        true
    }

    /// The frames kept by earlier rounds that its map of `round` reads when that map also
    /// reads inputs: each frame's name and the columns read. The Spark engine runs such a map
    /// in its workers and sends them these of the rows its driver's maps kept (a map that
    /// reads only kept rows runs where they are).
    fn reads_kept(&self, _round: usize) -> &'static [(&'static str, &'static [&'static str])] {
        &[]
    }

    /// The polars engine its maps are collected with (`Engine::Streaming` where that was
    /// measured faster and every aggregation is exact).
    fn engine(&self) -> Engine {
        Engine::InMemory
    }

    /// Its partials (and kept rows) of one bucket, in its round `round` (from 0).
    fn map(&self, round: usize, bucket: &Bucket) -> PolarsResult<MapOutput>;

    /// The merged partials of its round `round`: the next round's state, or the tables.
    fn finalize(&self, round: usize, merged: &Merged) -> PolarsResult<Finalized>;
}

/// Facts about the whole of the inputs, settled by the partition pass before any bucket is
/// mapped.
#[derive(Clone, Default)]
pub struct Facts {
    /// Some customer has a `signup_at` (activation's default anchor).
    pub customers_have_signup: bool,
    /// CSAT responses per ticket over all surveys (ticket_id String, `__csat_n`, `__csat_pos`),
    /// when the job reads surveys: a response's ticket may belong to a customer of another
    /// bucket.
    pub csat_by_ticket: Option<LazyFrame>,
}

/// What a map sees of one bucket.
pub struct Bucket<'a> {
    /// The bucket's number (for logs).
    pub index: usize,
    pub inputs: &'a Inputs,
    pub cal: &'a Calendar,
    pub facts: &'a Facts,
    /// Rows kept by earlier maps of this bucket (this round's earlier pipelines, or earlier
    /// rounds), by name, with string customer ids.
    pub kept: &'a BTreeMap<&'static str, DataFrame>,
    /// The pipeline's state from its previous round's finalize.
    pub state: Option<&'a (dyn Any + Send + Sync)>,
    /// The bucket's customer id dictionary (to turn kept rows' ids into keys).
    pub keys: &'a CustomerKeys,
    /// Activity rows already computed in this bucket, by their list of sources.
    pub activity: &'a RefCell<Vec<(Vec<ActivitySource>, DataFrame)>>,
}

impl Bucket<'_> {
    /// The bucket's input `kind` (the engine loads every input a pipeline requires).
    pub fn input(&self, kind: InputKind) -> LazyFrame {
        self.inputs
            .get(&kind)
            .cloned()
            .expect("the engine loads every required input")
    }

    /// The activity rows of `sources` in this bucket (`lifecycle::activity_parts` as one
    /// frame), computed once per bucket for every pipeline that counts them.
    pub fn activity_rows(&self, sources: &[ActivitySource]) -> PolarsResult<LazyFrame> {
        let mut kept = self.activity.borrow_mut();
        if let Some((_, df)) = kept.iter().find(|(s, _)| s == sources) {
            return Ok(df.clone().lazy());
        }
        let df = lifecycle::union(lifecycle::activity_parts(self.inputs, sources, self.cal))
            .collect()?;
        kept.push((sources.to_vec(), df.clone()));
        Ok(df.lazy())
    }

    /// The kept rows `name` of this bucket with customer ids as this bucket's keys.
    pub fn kept_with_keys(&self, name: &str) -> PolarsResult<Option<LazyFrame>> {
        match self.kept.get(name) {
            Some(df) => Ok(Some(self.keys.encode_frame(df.clone())?.lazy())),
            None => Ok(None),
        }
    }

    /// The pipeline's state, of the type its finalize handed on.
    pub fn state<T: 'static>(&self) -> &T {
        self.state
            .and_then(|s| s.downcast_ref::<T>())
            .expect("the state of the previous round")
    }
}

/// How a partial's frames from every bucket combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Group by the `keys` and sum every other column (integers, exactly), except the columns
    /// in `min` and `max`, which keep their minimum and maximum.
    By {
        keys: &'static [&'static str],
        min: &'static [&'static str],
        max: &'static [&'static str],
    },
    /// Every bucket's rows, kept apart by group (`keys`): the finalize reads them a chunk of
    /// whole groups at a time (`Merged::per_chunk`), so that every value of a group is there
    /// for an exact quantile without every group in memory at once.
    Rows { keys: &'static [&'static str] },
}

impl Merge {
    /// Sums of every non-key column over `keys`.
    pub const fn sum(keys: &'static [&'static str]) -> Merge {
        Merge::By {
            keys,
            min: &[],
            max: &[],
        }
    }
}

/// One partial of one bucket.
pub struct Partial {
    pub name: &'static str,
    pub merge: Merge,
    pub frame: DataFrame,
}

/// What a map returns.
#[derive(Default)]
pub struct MapOutput {
    pub partials: Vec<Partial>,
    /// Per-customer rows of this bucket kept for later maps, by name.
    pub keep: Vec<(&'static str, DataFrame)>,
}

impl MapOutput {
    pub fn partial(mut self, name: &'static str, merge: Merge, frame: DataFrame) -> Self {
        self.partials.push(Partial { name, merge, frame });
        self
    }
}

/// One merged partial: a `By` partial's sums, or a `Rows` partial's chunks of whole groups.
pub enum MergedPartial {
    Frame(Box<LazyFrame>),
    Chunks(Vec<LazyFrame>),
}

/// The merged partials of one round, by name.
pub struct Merged<'a> {
    pub cal: &'a Calendar,
    pub partials: BTreeMap<&'static str, MergedPartial>,
    /// The pipeline's state from its previous round's finalize.
    pub state: Option<&'a (dyn Any + Send + Sync)>,
}

impl Merged<'_> {
    /// The merged partial `name` (every map of the round returns each of its partials); a
    /// `Rows` partial with all its chunks together.
    pub fn get(&self, name: &str) -> LazyFrame {
        self.try_get(name)
            .unwrap_or_else(|| panic!("partial {name} of this round"))
    }

    /// The merged partial `name`, if the maps returned it.
    pub fn try_get(&self, name: &str) -> Option<LazyFrame> {
        Some(match self.partials.get(name)? {
            MergedPartial::Frame(lf) => lf.as_ref().clone(),
            MergedPartial::Chunks(chunks) => {
                concat(chunks.clone(), UnionArgs::default()).expect("chunks of one schema")
            }
        })
    }

    /// `f` applied to each chunk of whole groups of the `Rows` partial `name`, one chunk in
    /// memory at a time, the results stacked (in no particular row order).
    pub fn per_chunk(
        &self,
        name: &str,
        f: impl Fn(LazyFrame) -> PolarsResult<DataFrame>,
    ) -> PolarsResult<DataFrame> {
        let chunks = match self.partials.get(name) {
            Some(MergedPartial::Chunks(chunks)) => chunks.clone(),
            Some(MergedPartial::Frame(lf)) => vec![lf.as_ref().clone()],
            None => panic!("partial {name} of this round"),
        };
        let mut out: Option<DataFrame> = None;
        for chunk in chunks {
            let df = f(chunk)?;
            match &mut out {
                None => out = Some(df),
                Some(all) => {
                    all.vstack_mut_owned(df)?;
                }
            }
        }
        Ok(out.expect("at least one chunk"))
    }

    pub fn state<T: 'static>(&self) -> &T {
        self.state
            .and_then(|s| s.downcast_ref::<T>())
            .expect("the state of the previous round")
    }
}

/// A table a finalize gives.
pub enum TableData {
    Frame(DataFrame),
    /// The rows every bucket kept under this name, in customer_id order.
    Kept(&'static str),
}

/// What a finalize returns: a state for the next round, or (in the last round) the tables.
pub enum Finalized {
    Next(Arc<dyn Any + Send + Sync>),
    Tables(Vec<(&'static str, TableData)>),
}

/// The documented ranges of the pipelines' numeric parameters (docs/job-file.md, "Ranges of
/// the numbers").
pub mod ranges {
    /// `cohort_retention.max_periods`.
    pub const MAX_PERIODS: (i64, i64) = (1, 10_000);
    /// Day counts: `churn.inactive_after_days`, `cx_impact.window_days` and
    /// `cx_impact.inactive_after_days` (up to 100 years).
    pub const DAY_COUNT: (i64, i64) = (1, 36_500);
    /// Each of `activation.days`.
    pub const ACTIVATION_DAY: (i64, i64) = (0, 36_500);
    /// How many distinct days `activation.days` may list.
    pub const ACTIVATION_DAYS_MAX: usize = 100;
    /// `ltv_segments.horizon_months` (ten years).
    pub const HORIZON_MONTHS: (i64, i64) = (1, 120);
    /// `ltv_segments.monthly_discount_rate`.
    pub const DISCOUNT_RATE: (f64, f64) = (0.0, 1.0);
    /// `ltv_segments.holdout_days` (ten years).
    pub const HOLDOUT_DAYS: (i64, i64) = (1, 3_650);
}

/// `value` as a u32 when it lies in `range`; else a problem at `path` and the range's low end.
pub fn in_range(path: &str, value: i64, range: (i64, i64), problems: &mut Problems) -> u32 {
    if value < range.0 || value > range.1 {
        problems.push(
            path,
            format!("must be between {} and {}, got {value}", range.0, range.1),
        );
        return range.0.max(0) as u32;
    }
    value as u32
}

/// Deserializes a pipeline's parameters, reporting every problem under `at`.
pub fn params<T: serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
    at: &str,
    problems: &mut Problems,
) -> Option<T> {
    crate::config::deserialize_all(value, at, &[], problems)
}

/// Checks a lifecycle pipeline's `activity` list (none means `default`).
pub fn activity_or(
    at: &str,
    given: &Option<Vec<ActivitySource>>,
    default: Vec<ActivitySource>,
    problems: &mut Problems,
) -> Vec<ActivitySource> {
    match given {
        None => default,
        Some(list) => {
            let unique: BTreeSet<_> = list.iter().collect();
            if list.is_empty() {
                problems.push(&format!("{at}.activity"), "must name at least one input");
            } else if unique.len() != list.len() {
                problems.push(&format!("{at}.activity"), "lists the same source twice");
            }
            list.clone()
        }
    }
}

/// Checks that `period` is one of `allowed`.
pub fn check_period(
    at: &str,
    key: &str,
    period: crate::config::Period,
    allowed: &[crate::config::Period],
    problems: &mut Problems,
) {
    if !allowed.contains(&period) {
        let names: Vec<&str> = allowed.iter().map(|p| p.name()).collect();
        problems.push(
            &format!("{at}.{key}"),
            format!(
                "`{}` is not allowed here; use one of {}",
                period.name(),
                names.join(", ")
            ),
        );
    }
}

#[cfg(test)]
pub mod testing {
    //! Runs a pipeline on hand-built inputs, as one bucket or split into several, through the
    //! same map-merge-finalize path as the engine.

    use super::*;

    /// The tables of `p` on `buckets` (each a bucket's inputs, customer ids as strings).
    pub fn run_buckets(
        p: &dyn Pipeline,
        buckets: &[Inputs],
        cal: &Calendar,
        facts: &Facts,
    ) -> BTreeMap<&'static str, DataFrame> {
        crate::engine::memory::run(&[p], buckets, cal, facts).unwrap()
    }

    /// The tables of `p` on `inputs`, computed as one bucket and as the customers split into
    /// three buckets by `bucket::bucket_of` (inputs without customer ids by row): both must
    /// give the same frames.
    pub fn run_split(
        p: &dyn Pipeline,
        inputs: &Inputs,
        cal: &Calendar,
        facts: &Facts,
    ) -> BTreeMap<&'static str, DataFrame> {
        let one = run_buckets(p, std::slice::from_ref(inputs), cal, facts);
        let split: Vec<Inputs> = (0..3u32)
            .map(|k| {
                inputs
                    .iter()
                    .map(|(kind, lf)| {
                        let df = lf.clone().collect().unwrap();
                        let part = match df.column("customer_id") {
                            Ok(ids) if ids.dtype() == &DataType::String => {
                                let b = crate::bucket::buckets_of(ids.str().unwrap(), 3);
                                df.filter(&b.equal(k)).unwrap()
                            }
                            _ => {
                                let rows: Vec<u32> =
                                    (0..df.height() as u32).filter(|r| r % 3 == k).collect();
                                df.take(&IdxCa::from_vec("i".into(), rows)).unwrap()
                            }
                        };
                        (*kind, part.lazy())
                    })
                    .collect()
            })
            .collect();
        let three = run_buckets(p, &split, cal, facts);
        for (name, df) in &one {
            assert!(
                df.equals_missing(&three[name]),
                "{name}: one bucket\n{df}\nthree buckets\n{}",
                three[name]
            );
        }
        one
    }

    /// `run_split` without facts.
    pub fn run_one(
        p: &dyn Pipeline,
        inputs: &Inputs,
        cal: &Calendar,
    ) -> BTreeMap<&'static str, DataFrame> {
        run_split(p, inputs, cal, &Facts::default())
    }
}
