//! Pipeline `cohort_retention`: for each cohort of customers starting in the same period, the
//! share active in each later period, and the cohort's revenue curve.
//!
//! Definitions (activity and anchor as in `lifecycle`):
//! - A customer's cohort is the first day of the period (week | month | quarter) containing
//!   their anchor date.
//! - For period index k >= 0 the window is the k-th calendar period after the cohort's (k = 0 is
//!   the cohort's own period). Mode `on`: the customer counts at k if active in that window.
//!   Mode `on_or_after`: if active in that window or any later one up to as_of.
//! - Rows for every cohort (with at least one customer) whose start <= as_of and every k from 0
//!   through the period containing as_of, but at most `max_periods` values of k (k <
//!   max_periods), including cells with zero active customers.
//! - `cohort_size`: customers in the cohort; `active_customers`; `retention_rate` =
//!   active_customers / cohort_size; `revenue`: sum of all order amounts (refunds included) of
//!   the cohort's customers with a local order date in the window (null when the job has no
//!   orders input; summed exactly, in whole units and millionths);
//!   `cumulative_revenue_per_customer`: revenue summed over periods 0..k / cohort_size;
//!   `revenue_retention`: revenue / the revenue of the same cohort (and dimension value) in
//!   period 0, null when that is 0 or null;
//!   `complete`: the window's last day <= as_of.

use polars::prelude::*;
use serde::Deserialize;

use super::common::{
    amount_from_parts, by_dimensions, ratio, split_amount, sum_amount_parts, JoinOnCustomer,
    PairKey, SortOverallFirst,
};
use super::lifecycle::{anchor_days, attach_segments, lifecycle_inputs};
use super::{
    activity_or, check_period, in_range, params, ranges, Bucket, Finalized, InputUse, Inputs,
    JobSettings, MapOutput, Merge, Merged, Pipeline, Spec, TableData,
};
use crate::config::{ActivitySource, Anchor, Period, RetentionMode};
use crate::contracts::InputKind;
use crate::engine::profile::collect;
use crate::problems::Problems;
use crate::time::{date_lit, period_index, Calendar};

/// The job file's `pipelines.cohort_retention`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortRetentionParams {
    #[serde(default)]
    pub period: Period,
    #[serde(default)]
    pub anchor: Option<Anchor>,
    #[serde(default)]
    pub activity: Option<Vec<ActivitySource>>,
    #[serde(default)]
    pub mode: RetentionMode,
    #[serde(default = "twelve")]
    pub max_periods: i64,
    #[serde(default)]
    pub by: Vec<String>,
}

fn twelve() -> i64 {
    12
}

/// The configuration of `cohort_retention`.
pub struct CohortRetentionSpec;
pub static SPEC: CohortRetentionSpec = CohortRetentionSpec;

impl Spec for CohortRetentionSpec {
    fn name(&self) -> &'static str {
        "cohort_retention"
    }

    fn build(
        &self,
        value: serde_yaml::Value,
        at: &str,
        _settings: &mut JobSettings,
        problems: &mut Problems,
    ) -> Option<Box<dyn Pipeline>> {
        let p: CohortRetentionParams = params(value, at, problems)?;
        check_period(
            at,
            "period",
            p.period,
            &[Period::Week, Period::Month, Period::Quarter],
            problems,
        );
        let max_periods = in_range(
            &format!("{at}.max_periods"),
            p.max_periods,
            ranges::MAX_PERIODS,
            problems,
        );
        Some(Box::new(CohortRetention {
            period: p.period,
            anchor: p.anchor.unwrap_or(Anchor::FirstActivity),
            activity: activity_or(at, &p.activity, vec![ActivitySource::ORDERS], problems),
            mode: p.mode,
            max_periods,
            by: p.by,
        }))
    }
}

impl Pipeline for CohortRetention {
    fn name(&self) -> &'static str {
        "cohort_retention"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["cohort_retention"]
    }

    fn inputs(&self) -> InputUse {
        lifecycle_inputs(
            &self.activity,
            Some(&self.anchor),
            &self.by,
            &[InputKind::Orders],
        )
    }

    fn by(&self) -> (InputKind, &[String]) {
        (InputKind::Customers, &self.by)
    }

    fn activity(&self) -> Option<&[ActivitySource]> {
        Some(&self.activity)
    }

    fn map(&self, _round: usize, b: &Bucket) -> PolarsResult<MapOutput> {
        let cells = collect(
            cells(b.inputs, b.activity_rows(&self.activity)?, self, b.cal)?,
            "cohort_retention.cells",
            Engine::InMemory,
        )?;
        Ok(MapOutput::default().partial("cells", Merge::sum(KEYS), cells))
    }

    fn finalize(&self, _round: usize, m: &Merged) -> PolarsResult<Finalized> {
        let table = finish(m.get("cells"), self, m.cal)?.collect()?;
        Ok(Finalized::Tables(vec![(
            "cohort_retention",
            TableData::Frame(table),
        )]))
    }
}

/// The partial's keys: its other columns are counts and exact money parts.
const KEYS: &[&str] = &["cohort", "period", "dimension", "dimension_value"];

/// Resolved parameters.
#[derive(Debug, Clone)]
pub struct CohortRetention {
    pub period: Period,
    pub anchor: Anchor,
    pub activity: Vec<ActivitySource>,
    pub mode: RetentionMode,
    pub max_periods: u32,
    pub by: Vec<String>,
}

/// One bucket's cells: per (cohort, period k, dimension, dimension_value) the cohort's
/// customers, those counted at k, and their revenue in the window as exact parts (without an
/// orders input, no revenue columns). From the inputs and `acts`, the `activity_rows` of
/// `p.activity` (repeated (customer, day) rows allowed).
fn cells(
    inputs: &Inputs,
    acts: LazyFrame,
    p: &CohortRetention,
    cal: &Calendar,
) -> PolarsResult<LazyFrame> {
    let as_of_idx = period_index(cal.as_of, p.period);

    let customers = anchor_days(&p.anchor, std::slice::from_ref(&acts), inputs, cal)
        .filter(col("anchor").lt_eq(date_lit(cal.as_of)))
        .with_columns([
            p.period.start(col("anchor")).alias("cohort"),
            p.period.index(col("anchor")).alias("__cidx"),
        ]);
    let ks = DataFrame::new_infer_height(vec![Column::new(
        "period".into(),
        (0..p.max_periods as i32).collect::<Vec<i32>>(),
    )])
    .expect("one column")
    .lazy();
    // One row per customer and period index they can be observed in.
    let grid = customers
        .clone()
        .select([col("customer_id"), col("cohort"), col("__cidx")])
        .cross_join(ks, None)
        .filter(
            col("period")
                .cast(DataType::Int64)
                .lt_eq(lit(as_of_idx) - col("__cidx")),
        );

    let cidx = customers
        .clone()
        .select([col("customer_id"), col("__cidx")]);
    let active_k = acts
        .join_on_customer(cidx.clone(), JoinType::Inner)
        .with_column(
            (p.period.index(col("day")) - col("__cidx"))
                .cast(DataType::Int32)
                .alias("period"),
        )
        .filter(col("period").gt_eq(lit(0)))
        .select([col("customer_id"), col("period")]);
    let pair = PairKey::new(&active_k, "period");
    let active_k = pair.unique(active_k);
    let grid = match p.mode {
        RetentionMode::On => pair.left_join(
            grid,
            active_k.with_column(lit(true).alias("__active")),
            &["__active"],
        ),
        RetentionMode::OnOrAfter => grid
            .join_on_customer(
                active_k
                    .group_by([col("customer_id")])
                    .agg([col("period").max().alias("__last")]),
                JoinType::Left,
            )
            .with_column(col("period").lt_eq(col("__last")).alias("__active")),
    };

    let has_orders = inputs.contains_key(&InputKind::Orders);
    let grid = if has_orders {
        let revenue = inputs[&InputKind::Orders]
            .clone()
            .join_on_customer(cidx, JoinType::Inner)
            .with_column(
                (p.period.index(cal.local_date(col("ordered_at"))) - col("__cidx"))
                    .cast(DataType::Int32)
                    .alias("period"),
            )
            .filter(col("period").gt_eq(lit(0)))
            .with_columns(split_amount(col("amount"), "__a"));
        let revenue = pair.group_by(revenue, sum_amount_parts("__a", "__r").to_vec());
        pair.left_join(grid, revenue, &["__r_w", "__r_m"])
            .with_columns([
                col("__r_w").fill_null(lit(0i64)),
                col("__r_m").fill_null(lit(0i64)),
            ])
    } else {
        grid
    };

    let grid = attach_segments(grid, inputs, &p.by);
    // Revenue is summed exactly, in whole units and millionths (`common::split_amount`): a
    // float sum depends on the order of the rows, which differs with the buckets and with
    // polars' parallel joins and group-bys.
    let revenue_aggs = if has_orders {
        sum_amount_parts("__r", "__rev").to_vec()
    } else {
        Vec::new()
    };
    let mut aggs = vec![
        len().cast(DataType::Int64).alias("cohort_size"),
        col("__active")
            .fill_null(lit(false))
            .cast(DataType::Int64)
            .sum()
            .alias("active_customers"),
    ];
    aggs.extend(revenue_aggs);
    Ok(by_dimensions(
        grid,
        &[col("cohort"), col("period")],
        &p.by,
        &aggs,
    ))
}

/// The table from the merged cells.
fn finish(cells: LazyFrame, p: &CohortRetention, cal: &Calendar) -> PolarsResult<LazyFrame> {
    let next_idx = period_index(cal.as_of + chrono::Duration::days(1), p.period);
    let has_revenue = cells.clone().collect_schema()?.contains("__rev_w");
    let table = if has_revenue {
        cells
    } else {
        cells.with_columns([
            lit(NULL).cast(DataType::Int128).alias("__rev_w"),
            lit(NULL).cast(DataType::Int64).alias("__rev_m"),
        ])
    };
    let group = [col("cohort"), col("dimension"), col("dimension_value")];
    Ok(table
        .sort_overall_first(&["cohort"], &["period"])
        .with_columns([
            ratio(col("active_customers"), col("cohort_size")).alias("retention_rate"),
            amount_from_parts(col("__rev_w"), col("__rev_m")).alias("revenue"),
            amount_from_parts(
                col("__rev_w").cum_sum(false).over(group.clone())?,
                col("__rev_m").cum_sum(false).over(group)?,
            )
            .alias("cumulative_revenue"),
            (p.period.index(col("cohort")) + col("period").cast(DataType::Int64))
                .lt(lit(next_idx))
                .alias("complete"),
        ])
        .with_columns([
            (col("cumulative_revenue") / col("cohort_size").cast(DataType::Float64))
                .alias("cumulative_revenue_per_customer"),
        ])
        // Sorted by period within each cohort: the first revenue is period 0's.
        .with_column(
            col("revenue")
                .first()
                .over([col("cohort"), col("dimension"), col("dimension_value")])?
                .alias("period_0_revenue"),
        )
        .with_column(ratio(col("revenue"), col("period_0_revenue")).alias("revenue_retention"))
        .select([
            col("cohort"),
            col("period"),
            col("dimension"),
            col("dimension_value"),
            col("cohort_size"),
            col("active_customers"),
            col("retention_rate"),
            col("revenue").cast(DataType::Float64),
            col("cumulative_revenue_per_customer"),
            col("revenue_retention"),
            // The numerators and denominators of the two revenue ratios, so that rows
            // re-aggregate (retention_rate's are active_customers and cohort_size).
            col("cumulative_revenue").cast(DataType::Float64),
            col("period_0_revenue").cast(DataType::Float64),
            col("complete"),
        ]))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::pipelines::lifecycle::testing::*;
    use crate::pipelines::testing::run_one;

    /// The table as a run computes it (one bucket, and three: the same frame).
    fn cohort_retention(
        inputs: &Inputs,
        p: &CohortRetention,
        cal: &Calendar,
    ) -> PolarsResult<LazyFrame> {
        Ok(run_one(p, inputs, cal)["cohort_retention"].clone().lazy())
    }

    fn cal(as_of: &str, tz: &str) -> Calendar {
        Calendar::new(NaiveDate::parse_from_str(as_of, "%Y-%m-%d").unwrap(), tz).unwrap()
    }

    fn params(period: Period, mode: RetentionMode) -> CohortRetention {
        CohortRetention {
            period,
            anchor: Anchor::FirstActivity,
            activity: vec![ActivitySource::ORDERS],
            mode,
            max_periods: 12,
            by: vec![],
        }
    }

    fn data() -> Data {
        let mut d = Data::default();
        d.order("A", "2026-01-05 10:00:00", 100.0)
            .order("A", "2026-03-02 10:00:00", 50.0)
            .order("A", "2026-03-02 16:00:00", 0.0) // a second purchase the same day
            .order("A", "2026-03-09 10:00:00", -30.0) // refund: revenue only
            .order("B", "2026-01-20 10:00:00", 40.0)
            .order("B", "2026-02-14 10:00:00", 60.0)
            .order("C", "2026-02-10 10:00:00", 10.0);
        d
    }

    #[test]
    fn on_and_on_or_after_with_revenue_curve_and_partial_last_period() {
        let c = cal("2026-03-15", "UTC");
        let on = cohort_retention(
            &data().inputs(),
            &params(Period::Month, RetentionMode::On),
            &c,
        )
        .unwrap()
        .collect()
        .unwrap();
        // January cohort (A, B): k = 0, 1, 2 (March contains as_of); February cohort (C): 0, 1.
        assert_eq!(
            dates(&on, "cohort"),
            [
                "2026-01-01",
                "2026-01-01",
                "2026-01-01",
                "2026-02-01",
                "2026-02-01"
            ]
        );
        let k = i32s(&on, "period");
        assert_eq!(k, [0, 1, 2, 0, 1]);
        assert_eq!(i64s(&on, "cohort_size"), [2, 2, 2, 1, 1]);
        // Jan: A, B; Feb: B; Mar: A. C is not active in March: a zero cell.
        assert_eq!(i64s(&on, "active_customers"), [2, 1, 1, 1, 0]);
        assert_eq!(
            f64s(&on, "retention_rate"),
            [Some(1.0), Some(0.5), Some(0.5), Some(1.0), Some(0.0)]
        );
        // Revenue includes the refund: March = 50 - 30.
        assert_eq!(
            f64s(&on, "revenue"),
            [Some(140.0), Some(60.0), Some(20.0), Some(10.0), Some(0.0)]
        );
        assert_eq!(
            f64s(&on, "cumulative_revenue_per_customer"),
            [Some(70.0), Some(100.0), Some(110.0), Some(10.0), Some(10.0)]
        );
        // Revenue in period k over the cohort's period-0 revenue: 60 / 140, 20 / 140; 0 / 10.
        assert_eq!(
            f64s(&on, "revenue_retention"),
            [
                Some(1.0),
                Some(60.0 / 140.0),
                Some(20.0 / 140.0),
                Some(1.0),
                Some(0.0)
            ]
        );
        assert_eq!(bools(&on, "complete"), [true, true, false, true, false]);

        let after = cohort_retention(
            &data().inputs(),
            &params(Period::Month, RetentionMode::OnOrAfter),
            &c,
        )
        .unwrap()
        .collect()
        .unwrap();
        // A is active in March, so counts at k = 1 as well; B's last activity is February.
        assert_eq!(i64s(&after, "active_customers"), [2, 2, 1, 1, 0]);
    }

    #[test]
    fn period_zero_is_everyone_and_max_periods_caps_k() {
        let c = cal("2026-06-30", "UTC");
        let mut p = params(Period::Month, RetentionMode::On);
        p.max_periods = 2;
        let df = cohort_retention(&data().inputs(), &p, &c)
            .unwrap()
            .collect()
            .unwrap();
        let k = i32s(&df, "period");
        assert_eq!(k, [0, 1, 0, 1]);
        let rates = f64s(&df, "retention_rate");
        assert_eq!(rates[0], Some(1.0));
        assert_eq!(rates[2], Some(1.0));
    }

    #[test]
    fn weeks_in_a_dst_change_and_late_evening_activity() {
        // New York switches to DST on Sunday 2026-03-08. Orders at 23:30 local on Sunday
        // March 8 (03:30Z Monday) belong to the week of March 2.
        let mut d = Data::default();
        d.order("A", "2026-03-02 15:00:00", 1.0)
            .order("A", "2026-03-09 03:30:00", 1.0)
            .order("B", "2026-03-09 04:30:00", 1.0); // 00:30 Monday March 9 local
        let c = cal("2026-03-22", "America/New_York");
        let df = cohort_retention(&d.inputs(), &params(Period::Week, RetentionMode::On), &c)
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(
            dates(&df, "cohort"),
            [
                "2026-03-02",
                "2026-03-02",
                "2026-03-02",
                "2026-03-09",
                "2026-03-09"
            ]
        );
        // A's second order is in its own cohort week, so A is not active at k = 1.
        assert_eq!(i64s(&df, "active_customers"), [1, 0, 0, 1, 0]);
        // The week of March 16 ends Sunday March 22 = as_of: complete.
        assert_eq!(bools(&df, "complete"), [true, true, true, true, true]);
    }

    #[test]
    fn segments_by_customer_columns_with_unknown() {
        let mut d = data();
        d.customer("A", Some("2026-01-01 00:00:00"), None, "pro")
            .customer("B", Some("2026-01-01 00:00:00"), None, "free");
        let mut p = params(Period::Month, RetentionMode::On);
        p.by = vec!["plan".into()];
        let df = cohort_retention(&d.inputs(), &p, &cal("2026-02-28", "UTC"))
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(
            strs(&df, "dimension_value"),
            ["all", "all", "free", "free", "pro", "pro", "all", "unknown"]
        );
        assert_eq!(i64s(&df, "active_customers"), [2, 1, 1, 1, 1, 0, 1, 1]);
    }

    #[test]
    fn revenue_is_null_without_an_orders_input() {
        let mut d = Data::default();
        d.event("A", "2026-01-05 10:00:00")
            .event("A", "2026-02-05 10:00:00");
        let mut inputs = d.inputs();
        inputs.remove(&InputKind::Orders);
        let mut p = params(Period::Month, RetentionMode::On);
        p.activity = vec![ActivitySource::EVENTS];
        let df = cohort_retention(&inputs, &p, &cal("2026-02-28", "UTC"))
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(i64s(&df, "active_customers"), [1, 1]);
        assert_eq!(f64s(&df, "revenue"), [None, None]);
        assert_eq!(f64s(&df, "cumulative_revenue_per_customer"), [None, None]);
    }
}
