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

use super::common::{by_dimensions, ratio, ALL};
use super::lifecycle::{activity_days, anchor_days, attach_segments};
use super::Inputs;
use crate::config::{ActivationMode, ActivitySource, Anchor, Period};
use crate::time::{date_lit, Calendar};

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

pub fn activation(inputs: &Inputs, p: &Activation, anchor: Anchor, cal: &Calendar) -> LazyFrame {
    let acts = activity_days(inputs, &p.activity, cal);
    let as_of = date_lit(cal.as_of).cast(DataType::Int32);
    let customers = anchor_days(anchor, &acts, inputs, cal)
        .filter(col("anchor").lt_eq(date_lit(cal.as_of)))
        .with_columns([
            p.cohort_period.start(col("anchor")).alias("cohort"),
            col("anchor").cast(DataType::Int32).alias("__s"),
        ]);
    let day_list: Vec<i32> = p.days.iter().map(|d| *d as i32).collect();
    let days = DataFrame::new_infer_height(vec![Column::new("day".into(), day_list)])
        .expect("one column")
        .lazy();
    let grid = customers
        .clone()
        .select([col("customer_id"), col("cohort"), col("__s")])
        .cross_join(days, None)
        .with_column((col("__s") + col("day")).lt_eq(as_of).alias("__eligible"));
    // Activity offsets in days from the anchor.
    let offsets = acts
        .join(
            customers.select([col("customer_id"), col("__s")]),
            [col("customer_id")],
            [col("customer_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .select([
            col("customer_id"),
            (col("day").cast(DataType::Int32) - col("__s")).alias("__o"),
        ]);
    let grid = match p.mode {
        ActivationMode::OnDay => grid.join(
            offsets
                .unique(None, UniqueKeepStrategy::Any)
                .with_column(lit(true).alias("__hit")),
            [col("customer_id"), col("day")],
            [col("customer_id"), col("__o")],
            JoinArgs::new(JoinType::Left),
        ),
        ActivationMode::Within => grid
            .join(
                offsets
                    .filter(col("__o").gt_eq(lit(1)))
                    .group_by([col("customer_id")])
                    .agg([col("__o").min().alias("__first")]),
                [col("customer_id")],
                [col("customer_id")],
                JoinArgs::new(JoinType::Left),
            )
            .with_column(col("__first").lt_eq(col("day")).alias("__hit")),
        ActivationMode::OnOrAfter => grid
            .join(
                offsets
                    .group_by([col("customer_id")])
                    .agg([col("__o").max().alias("__last")]),
                [col("customer_id")],
                [col("customer_id")],
                JoinArgs::new(JoinType::Left),
            )
            .with_column(col("__last").gt_eq(col("day")).alias("__hit")),
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
    .with_columns([
        ratio(col("active"), col("eligible")).alias("rate"),
        col("dimension").neq(lit(ALL)).alias("__not_all"),
    ])
    .sort_by_exprs(
        [
            col("cohort"),
            col("__not_all"),
            col("dimension"),
            col("dimension_value"),
            col("day"),
        ],
        Default::default(),
    )
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
