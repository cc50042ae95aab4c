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
//!   orders input); `cumulative_revenue_per_customer`: revenue summed over periods 0..k /
//!   cohort_size; `complete`: the window's last day <= as_of.

use polars::prelude::*;

use super::common::{by_dimensions, ratio, ALL};
use super::lifecycle::{activity_days, anchor_days, attach_segments};
use super::Inputs;
use crate::config::{ActivitySource, Anchor, Period, RetentionMode};
use crate::contracts::InputKind;
use crate::time::{date_lit, period_index, Calendar};

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

pub fn cohort_retention(
    inputs: &Inputs,
    p: &CohortRetention,
    cal: &Calendar,
) -> PolarsResult<LazyFrame> {
    let acts = activity_days(inputs, &p.activity, cal);
    let as_of_idx = period_index(cal.as_of, p.period);
    let next_idx = period_index(cal.as_of + chrono::Duration::days(1), p.period);

    let customers = anchor_days(p.anchor, &acts, inputs, cal)
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
        .join(
            cidx.clone(),
            [col("customer_id")],
            [col("customer_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_column(
            (p.period.index(col("day")) - col("__cidx"))
                .cast(DataType::Int32)
                .alias("period"),
        )
        .filter(col("period").gt_eq(lit(0)))
        .select([col("customer_id"), col("period")])
        .unique(None, UniqueKeepStrategy::Any);
    let grid = match p.mode {
        RetentionMode::On => grid.join(
            active_k.with_column(lit(true).alias("__active")),
            [col("customer_id"), col("period")],
            [col("customer_id"), col("period")],
            JoinArgs::new(JoinType::Left),
        ),
        RetentionMode::OnOrAfter => grid
            .join(
                active_k
                    .group_by([col("customer_id")])
                    .agg([col("period").max().alias("__last")]),
                [col("customer_id")],
                [col("customer_id")],
                JoinArgs::new(JoinType::Left),
            )
            .with_column(col("period").lt_eq(col("__last")).alias("__active")),
    };

    let has_orders = inputs.contains_key(&InputKind::Orders);
    let grid = if has_orders {
        let revenue = inputs[&InputKind::Orders]
            .clone()
            .join(
                cidx,
                [col("customer_id")],
                [col("customer_id")],
                JoinArgs::new(JoinType::Inner),
            )
            .with_column(
                (p.period.index(cal.local_date(col("ordered_at"))) - col("__cidx"))
                    .cast(DataType::Int32)
                    .alias("period"),
            )
            .filter(col("period").gt_eq(lit(0)))
            .group_by([col("customer_id"), col("period")])
            .agg([col("amount").sum().alias("__revenue")]);
        grid.join(
            revenue,
            [col("customer_id"), col("period")],
            [col("customer_id"), col("period")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("__revenue").fill_null(lit(0.0)))
    } else {
        grid.with_column(lit(NULL).cast(DataType::Float64).alias("__revenue"))
    };

    let grid = attach_segments(grid, inputs, &p.by);
    let revenue_agg = if has_orders {
        col("__revenue").sum()
    } else {
        lit(NULL).cast(DataType::Float64).first()
    };
    let table = by_dimensions(
        grid,
        &[col("cohort"), col("period")],
        &p.by,
        &[
            len().cast(DataType::Int64).alias("cohort_size"),
            col("__active")
                .fill_null(lit(false))
                .cast(DataType::Int64)
                .sum()
                .alias("active_customers"),
            revenue_agg.alias("revenue"),
        ],
    );
    let group = [col("cohort"), col("dimension"), col("dimension_value")];
    Ok(table
        .with_column(col("dimension").neq(lit(ALL)).alias("__not_all"))
        .sort_by_exprs(
            [
                col("cohort"),
                col("__not_all"),
                col("dimension"),
                col("dimension_value"),
                col("period"),
            ],
            Default::default(),
        )
        .with_columns([
            ratio(col("active_customers"), col("cohort_size")).alias("retention_rate"),
            (col("revenue")
                .cum_sum(false)
                .over(group)?
                .cast(DataType::Float64)
                / col("cohort_size").cast(DataType::Float64))
            .alias("cumulative_revenue_per_customer"),
            (p.period.index(col("cohort")) + col("period").cast(DataType::Int64))
                .lt(lit(next_idx))
                .alias("complete"),
        ])
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
            col("complete"),
        ]))
}
