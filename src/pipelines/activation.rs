//! Pipeline `activation`: D1/D7/D30-style activation of new customers per cohort.
//!
//! Definitions (activity and anchor as in `lifecycle`), for a customer with anchor date s and a
//! day n from `days`:
//! - mode `on_day`: active on s + n; `within`: active on any day in [s + 1, s + n];
//!   `on_or_after`: active on any day >= s + n up to as_of.
//! - The customer is *eligible* for day n when s + n <= as_of; only eligible customers are in
//!   the denominator (and only they are counted as active).
//! - Output per (cohort, day, dimension, dimension_value): `cohort` = start of the
//!   `cohort_period` (day | week | month) containing s; `signups` = customers in the cohort;
//!   `eligible`; `active`; `rate` = active / eligible (null when eligible = 0).

use polars::prelude::*;
use serde::Deserialize;

use super::common::{by_dimensions, ratio, JoinOnCustomer, PairKey, SortOverallFirst};
use super::lifecycle::{
    activity_parts, anchor_days, attach_segments, lifecycle_inputs, per_customer_day, union,
};
use super::{
    activity_or, in_range, params, ranges, Bucket, Finalized, InputUse, Inputs, JobSettings,
    MapOutput, Merge, Merged, Pipeline, Spec, TableData,
};
use crate::config::{ActivationMode, ActivitySource, Anchor, Period};
use crate::contracts::InputKind;
use crate::engine::profile::collect;
use crate::problems::Problems;
use crate::time::{date_lit, Calendar};

/// The job file's `pipelines.activation`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationParams {
    #[serde(default = "activation_days")]
    pub days: Vec<i64>,
    #[serde(default)]
    pub mode: ActivationMode,
    #[serde(default)]
    pub anchor: Option<Anchor>,
    #[serde(default = "week")]
    pub cohort_period: Period,
    #[serde(default)]
    pub activity: Option<Vec<ActivitySource>>,
    #[serde(default)]
    pub by: Vec<String>,
}

fn activation_days() -> Vec<i64> {
    vec![1, 7, 30]
}

fn week() -> Period {
    Period::Week
}

/// The configuration of `activation`.
pub struct ActivationSpec;
pub static SPEC: ActivationSpec = ActivationSpec;

impl Spec for ActivationSpec {
    fn name(&self) -> &'static str {
        "activation"
    }

    fn build(
        &self,
        value: serde_yaml::Value,
        at: &str,
        settings: &mut JobSettings,
        problems: &mut Problems,
    ) -> Option<Box<dyn Pipeline>> {
        let p: ActivationParams = params(value, at, problems)?;
        super::check_period(
            at,
            "cohort_period",
            p.cohort_period,
            &[Period::Day, Period::Week, Period::Month],
            problems,
        );
        if p.days.is_empty() {
            problems.push(&format!("{at}.days"), "must list at least one day");
        }
        let mut days: Vec<u32> = p
            .days
            .iter()
            .map(|d| in_range(&format!("{at}.days"), *d, ranges::ACTIVATION_DAY, problems))
            .collect();
        days.sort_unstable();
        days.dedup();
        if days.len() > ranges::ACTIVATION_DAYS_MAX {
            problems.push(
                &format!("{at}.days"),
                format!(
                    "lists {} days; at most {} are allowed",
                    days.len(),
                    ranges::ACTIVATION_DAYS_MAX
                ),
            );
        }
        let declared: Vec<ActivitySource> = ActivitySource::ALL
            .into_iter()
            .filter(|s| settings.declared.contains(&s.input()))
            .collect();
        Some(Box::new(Activation {
            days,
            mode: p.mode,
            anchor: p.anchor,
            cohort_period: p.cohort_period,
            activity: activity_or(at, &p.activity, declared, problems),
            by: p.by,
        }))
    }
}

impl Pipeline for Activation {
    fn name(&self) -> &'static str {
        "activation"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["activation"]
    }

    fn inputs(&self) -> InputUse {
        lifecycle_inputs(
            &self.activity,
            self.anchor.as_ref(),
            &self.by,
            &[InputKind::Customers],
        )
    }

    fn by(&self) -> (InputKind, &[String]) {
        (InputKind::Customers, &self.by)
    }

    fn activity(&self) -> Option<&[ActivitySource]> {
        Some(&self.activity)
    }

    fn map(&self, _round: usize, b: &Bucket) -> PolarsResult<MapOutput> {
        // The default anchor is the same for every bucket: it depends on all customers.
        let anchor = self
            .anchor
            .clone()
            .unwrap_or(if b.facts.customers_have_signup {
                Anchor::Signup
            } else {
                Anchor::FirstActivity
            });
        let acts = activity_parts(b.inputs, &self.activity, b.cal);
        let cells = collect(
            cells(b.inputs, acts, self, anchor, b.cal),
            "activation.cells",
            Engine::InMemory,
        )?;
        Ok(MapOutput::default().partial(
            "cells",
            Merge::sum(&["cohort", "day", "dimension", "dimension_value"]),
            cells,
        ))
    }

    fn finalize(&self, _round: usize, m: &Merged) -> PolarsResult<Finalized> {
        let table = finish(m.get("cells")).collect()?;
        Ok(Finalized::Tables(vec![(
            "activation",
            TableData::Frame(table),
        )]))
    }
}

/// Resolved parameters (the anchor is resolved when the pipeline is built; see `Pipeline`).
#[derive(Debug, Clone)]
pub struct Activation {
    pub days: Vec<u32>,
    pub mode: ActivationMode,
    pub anchor: Option<Anchor>,
    pub cohort_period: Period,
    pub activity: Vec<ActivitySource>,
    pub by: Vec<String>,
}

/// The table, from the inputs and `acts`, the activity of `p.activity` as parts
/// (`lifecycle::activity_parts`; distinct or not: every mode reads the first, last or
/// particular active days, which repeats do not change). Each part is reduced to what the
/// mode reads before the parts are combined: all activity together is the largest frame of a
/// run, and joining all of it with the anchors held it twice.
fn cells(
    inputs: &Inputs,
    acts: Vec<LazyFrame>,
    p: &Activation,
    anchor: Anchor,
    cal: &Calendar,
) -> LazyFrame {
    let as_of = date_lit(cal.as_of).cast(DataType::Int32);
    let customers = anchor_days(&anchor, &acts, inputs, cal)
        .filter(col("anchor").lt_eq(date_lit(cal.as_of)))
        .with_columns([
            p.cohort_period.start(col("anchor")).alias("cohort"),
            col("anchor").cast(DataType::Int32).alias("__s"),
        ]);
    let starts = customers.clone().select([col("customer_id"), col("__s")]);
    let day_list: Vec<i32> = p.days.iter().map(|d| *d as i32).collect();
    let days = DataFrame::new_infer_height(vec![Column::new("day".into(), day_list)])
        .expect("one column")
        .lazy();
    let grid = customers
        .select([col("customer_id"), col("cohort"), col("__s")])
        .cross_join(days.clone(), None)
        .with_column((col("__s") + col("day")).lt_eq(as_of).alias("__eligible"));
    let grid = match p.mode {
        ActivationMode::OnDay => {
            // The (customer, date) pairs that count, s + n for each asked n: matching each
            // part against them keeps only the few rows on those days, with their n.
            let targets = starts.cross_join(days, None).select([
                col("customer_id"),
                (col("__s") + col("day")).cast(DataType::Date).alias("day"),
                col("day").alias("__n"),
            ]);
            let hits: Vec<LazyFrame> = acts
                .into_iter()
                .map(|part| {
                    PairKey::new(&part, "day")
                        .inner_join(part, targets.clone(), &["__n"])
                        .select([col("customer_id"), col("__n").alias("day")])
                })
                .collect();
            let hits = union(hits);
            let pair = PairKey::new(&hits, "day");
            pair.left_join(
                grid,
                pair.unique(hits).with_column(lit(true).alias("__hit")),
                &["__hit"],
            )
        }
        ActivationMode::Within => {
            let after_anchor: Vec<LazyFrame> = acts
                .into_iter()
                .map(|part| {
                    part.join_on_customer(starts.clone(), JoinType::Inner)
                        .filter(col("day").cast(DataType::Int32).gt(col("__s")))
                        .select([col("customer_id"), col("day")])
                })
                .collect();
            grid.join_on_customer(
                per_customer_day(&after_anchor, |e| e.min(), "__first"),
                JoinType::Left,
            )
            .with_column(
                (col("__first").cast(DataType::Int32) - col("__s"))
                    .lt_eq(col("day"))
                    .alias("__hit"),
            )
        }
        ActivationMode::OnOrAfter => grid
            .join_on_customer(
                per_customer_day(&acts, |e| e.max(), "__last"),
                JoinType::Left,
            )
            .with_column(
                (col("__last").cast(DataType::Int32) - col("__s"))
                    .gt_eq(col("day"))
                    .alias("__hit"),
            ),
    };
    let grid = attach_segments(grid, inputs, &p.by);
    by_dimensions(
        grid,
        &[col("cohort"), col("day")],
        &p.by,
        &[
            len().cast(DataType::Int64).alias("signups"),
            col("__eligible")
                .cast(DataType::Int64)
                .sum()
                .alias("eligible"),
            col("__eligible")
                .and(col("__hit").fill_null(lit(false)))
                .cast(DataType::Int64)
                .sum()
                .alias("active"),
        ],
    )
}

/// The table from the merged cells.
fn finish(cells: LazyFrame) -> LazyFrame {
    cells
        .with_columns([ratio(col("active"), col("eligible")).alias("rate")])
        .sort_overall_first(&["cohort"], &["day"])
        .select([
            col("cohort"),
            col("day"),
            col("dimension"),
            col("dimension_value"),
            col("signups"),
            col("eligible"),
            col("active"),
            col("rate"),
        ])
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::pipelines::lifecycle::testing::*;
    use crate::pipelines::testing::run_one;

    /// The table with `anchor`, as a run computes it (one bucket, and three: the same frame).
    fn activation(inputs: &Inputs, p: &Activation, anchor: Anchor, cal: &Calendar) -> LazyFrame {
        let p = Activation {
            anchor: Some(anchor),
            ..p.clone()
        };
        run_one(&p, inputs, cal)["activation"].clone().lazy()
    }

    fn cal(as_of: &str, tz: &str) -> Calendar {
        Calendar::new(NaiveDate::parse_from_str(as_of, "%Y-%m-%d").unwrap(), tz).unwrap()
    }

    fn params(mode: ActivationMode) -> Activation {
        Activation {
            days: vec![1, 7, 30],
            mode,
            anchor: None,
            cohort_period: Period::Month,
            activity: vec![ActivitySource::EVENTS],
            by: vec![],
        }
    }

    /// A signs up June 1 23:30 local (New York), active June 2 (twice) and June 8 local;
    /// B signs up June 10, active June 12 (day 2) and July 10 (day 30); C signs up June 20,
    /// never active.
    fn data() -> Data {
        let mut d = Data::default();
        d.customer("A", Some("2026-06-02 03:30:00"), None, "pro")
            .customer("B", Some("2026-06-10 15:00:00"), None, "free")
            .customer("C", Some("2026-06-20 15:00:00"), None, "free")
            .event("A", "2026-06-02 15:00:00")
            .event("A", "2026-06-02 18:00:00")
            .event("A", "2026-06-08 15:00:00")
            .event("B", "2026-06-12 15:00:00")
            .event("B", "2026-07-10 15:00:00");
        d
    }

    fn run(mode: ActivationMode, as_of: &str) -> DataFrame {
        activation(
            &data().inputs(),
            &params(mode),
            Anchor::Signup,
            &cal(as_of, "America/New_York"),
        )
        .collect()
        .unwrap()
    }

    #[test]
    fn on_day_within_and_on_or_after_with_eligibility_near_as_of() {
        // as_of July 10: D30 is eligible for A (July 1) and B (July 10 = as_of), not for C.
        let on = run(ActivationMode::OnDay, "2026-07-10");
        let day = i32s(&on, "day");
        assert_eq!(day, [1, 7, 30]);
        assert_eq!(i64s(&on, "signups"), [3, 3, 3]);
        assert_eq!(i64s(&on, "eligible"), [3, 3, 2]);
        // D1: A (June 2). D7: A (June 8). D30: B (July 10). B's June 12 is day 2.
        assert_eq!(i64s(&on, "active"), [1, 1, 1]);
        assert_eq!(
            f64s(&on, "rate"),
            [Some(1.0 / 3.0), Some(1.0 / 3.0), Some(0.5)]
        );

        let within = run(ActivationMode::Within, "2026-07-10");
        // D1: A; D7: A and B (day 2); D30: A and B.
        assert_eq!(i64s(&within, "active"), [1, 2, 2]);

        let after = run(ActivationMode::OnOrAfter, "2026-07-10");
        // Last active offsets: A 7, B 30, C none.
        assert_eq!(i64s(&after, "active"), [2, 2, 1]);

        // One day earlier B is not eligible for D30 any more.
        let before = run(ActivationMode::OnDay, "2026-07-09");
        assert_eq!(i64s(&before, "eligible"), [3, 3, 1]);
    }

    #[test]
    fn activity_from_several_sources_counts_as_one() {
        // The events of `data()`, plus orders: B on June 11 (day 1), C on June 21 (day 1).
        let mut d = data();
        d.order("B", "2026-06-11 15:00:00", 20.0)
            .order("C", "2026-06-21 15:00:00", 5.0);
        let inputs = d.inputs();
        let cal = cal("2026-07-10", "America/New_York");
        let mut p = params(ActivationMode::OnDay);
        p.activity = vec![ActivitySource::ORDERS, ActivitySource::EVENTS];
        let run = |p: &Activation, anchor: Anchor| {
            activation(&inputs, p, anchor, &cal).collect().unwrap()
        };

        let on = run(&p, Anchor::Signup);
        // D1: A (event), B and C (orders); D7: A; D30: B.
        assert_eq!(i64s(&on, "eligible"), [3, 3, 2]);
        assert_eq!(i64s(&on, "active"), [3, 1, 1]);
        p.mode = ActivationMode::Within;
        assert_eq!(i64s(&run(&p, Anchor::Signup), "active"), [3, 3, 2]);
        // Last active offsets: A 7, B 30, C 1.
        p.mode = ActivationMode::OnOrAfter;
        assert_eq!(i64s(&run(&p, Anchor::Signup), "active"), [3, 2, 1]);

        // First active days across both sources: A June 2 (event), B June 11 (order), C June
        // 21 (order). Only B is active the day after (June 12); D30 is eligible for A alone.
        p.mode = ActivationMode::OnDay;
        let first = run(&p, Anchor::FirstActivity);
        assert_eq!(i64s(&first, "signups"), [3, 3, 3]);
        assert_eq!(i64s(&first, "eligible"), [3, 3, 1]);
        assert_eq!(i64s(&first, "active"), [1, 0, 0]);
    }

    #[test]
    fn nobody_is_eligible_right_after_signing_up() {
        let df = run(ActivationMode::OnDay, "2026-06-01");
        assert_eq!(i64s(&df, "signups"), [1, 1, 1]);
        assert_eq!(i64s(&df, "eligible"), [0, 0, 0]);
        assert_eq!(f64s(&df, "rate"), [None, None, None]);
    }
}
