//! Pipeline `churn`: per period, the customers active at its start and end, and the flows
//! between them (churned, new, reactivated).
//!
//! Definitions (activity and anchor as in `lifecycle`; N = `inactive_after_days`):
//! - mode `inactivity` (non-contractual): a customer is active on day d if they have an
//!   activity day in (d - N, d].
//! - mode `subscription` (contractual): active on day d if their signup date <= d and
//!   (churned_at is null or its local date > d), from the `customers` input.
//! - For each period P (week | month | quarter), from the one containing the earliest anchor
//!   through the one containing as_of: end = min(last day of P, as_of); S = customers active on
//!   the day before P starts; E = customers active on end; churned = in S, not in E; new = in E,
//!   not in S, anchor inside [start of P, end]; reactivated = in E, not in S, and not new (for
//!   the default anchors: anchor before P). So E = S - churned + new + reactivated exactly.
//! - `churn_rate` = churned / S; `retention_rate` = (E - new - reactivated) / S; both null when
//!   S = 0. `revenue`: all order amounts (refunds included) with a local date in P up to end,
//!   of the row's customers (null without an orders input). `complete`: P's last day <= as_of.

use chrono::Duration;
use polars::prelude::*;

use super::common::{by_dimensions, ratio, ALL};
use super::lifecycle::{activity_days, anchor_days, attach_segments};
use super::Inputs;
use crate::config::{ActivitySource, Anchor, ChurnMode, Period};
use crate::contracts::InputKind;
use crate::time::{date_lit, period_from_index, period_index, Calendar};

/// Resolved parameters.
#[derive(Debug, Clone)]
pub struct Churn {
    pub period: Period,
    pub mode: ChurnMode,
    pub inactive_after_days: u32,
    pub activity: Vec<ActivitySource>,
    pub anchor: Anchor,
    pub by: Vec<String>,
}

fn days(e: Expr) -> Expr {
    e.cast(DataType::Int32)
}

/// Every period from 1970 through the one containing as_of: index, start, the day before it
/// starts (when S is measured), its end as of as_of (when E is measured), completeness.
fn period_table(period: Period, cal: &Calendar) -> LazyFrame {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let first = period_index(epoch, period);
    let last = period_index(cal.as_of, period);
    let mut idx = Vec::new();
    let mut start = Vec::new();
    let mut end = Vec::new();
    let mut complete = Vec::new();
    for i in first..=last {
        let s = period_from_index(i, period);
        let next = period_from_index(i + 1, period);
        idx.push(i);
        start.push(s);
        end.push((next - Duration::days(1)).min(cal.as_of));
        complete.push(next - Duration::days(1) <= cal.as_of);
    }
    DataFrame::new_infer_height(vec![
        Column::new("__pidx".into(), idx),
        Column::new("period".into(), start),
        Column::new("__end".into(), end),
        Column::new("complete".into(), complete),
    ])
    .expect("equal lengths")
    .lazy()
    .with_column(
        (days(col("period")) - lit(1))
            .cast(DataType::Date)
            .alias("__before"),
    )
}

pub fn churn(inputs: &Inputs, p: &Churn, cal: &Calendar) -> PolarsResult<LazyFrame> {
    let acts = activity_days(inputs, &p.activity, cal);
    let anchors =
        anchor_days(p.anchor, &acts, inputs, cal).filter(col("anchor").lt_eq(date_lit(cal.as_of)));
    let as_of_day = date_lit(cal.as_of).cast(DataType::Int32);

    // Spans [a, b] (day numbers) during which a customer is active.
    let spans = match p.mode {
        ChurnMode::Inactivity => {
            let n = p.inactive_after_days as i32;
            acts.clone()
                .with_column(days(col("day")).alias("__d"))
                .sort(["customer_id", "__d"], Default::default())
                .with_column(
                    (col("__d") - col("__d").shift(lit(1)).over([col("customer_id")])?)
                        .alias("__gap"),
                )
                .with_column(
                    col("__gap")
                        .is_null()
                        .or(col("__gap").gt(lit(n)))
                        .cast(DataType::Int32)
                        .cum_sum(false)
                        .over([col("customer_id")])?
                        .alias("__span"),
                )
                .group_by([col("customer_id"), col("__span")])
                .agg([
                    col("__d").min().alias("__a"),
                    (col("__d").max() + lit(n - 1)).alias("__b"),
                ])
        }
        ChurnMode::Subscription => inputs[&InputKind::Customers]
            .clone()
            .filter(col("signup_at").is_not_null())
            .select([
                col("customer_id"),
                days(cal.local_date(col("signup_at"))).alias("__a"),
                when(col("churned_at").is_null())
                    .then(as_of_day.clone())
                    .otherwise(days(cal.local_date(col("churned_at"))) - lit(1))
                    .alias("__b"),
            ]),
    }
    .with_column(
        when(col("__b").gt(as_of_day.clone()))
            .then(as_of_day.clone())
            .otherwise(col("__b"))
            .alias("__b"),
    )
    .filter(col("__a").lt_eq(col("__b")));

    let periods = period_table(p.period, cal);
    let to_idx = |d: Expr| p.period.index(d.cast(DataType::Date));
    // Each span touches the periods from the one containing a through the one after b's.
    let membership = spans
        .with_column(
            int_ranges(
                to_idx(col("__a")),
                to_idx(col("__b")) + lit(2i64),
                lit(1i64),
                DataType::Int64,
            )
            .alias("__pidx"),
        )
        .explode(
            cols(["__pidx"]),
            ExplodeOptions {
                empty_as_null: false,
                keep_nulls: false,
            },
        )
        .join(
            periods.clone(),
            [col("__pidx")],
            [col("__pidx")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_columns([
            days(col("__before"))
                .gt_eq(col("__a"))
                .and(days(col("__before")).lt_eq(col("__b")))
                .alias("__s"),
            days(col("__end"))
                .gt_eq(col("__a"))
                .and(days(col("__end")).lt_eq(col("__b")))
                .alias("__e"),
        ])
        .group_by([col("customer_id"), col("__pidx")])
        .agg([col("__s").any(true), col("__e").any(true)])
        .filter(col("__s").or(col("__e")));

    let flows = membership
        .join(
            periods
                .clone()
                .select([col("__pidx"), col("period"), col("__end")]),
            [col("__pidx")],
            [col("__pidx")],
            JoinArgs::new(JoinType::Inner),
        )
        .join(
            anchors.clone(),
            [col("customer_id")],
            [col("customer_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(
            col("__e")
                .and(col("__s").not())
                .and(col("anchor").gt_eq(col("period")))
                .and(col("anchor").lt_eq(col("__end")))
                .fill_null(lit(false))
                .alias("__new"),
        );
    let flows = attach_segments(flows, inputs, &p.by);
    let as_i64 = |e: Expr| e.cast(DataType::Int64).sum();
    let counts = by_dimensions(
        flows,
        &[col("__pidx")],
        &p.by,
        &[
            as_i64(col("__s")).alias("customers_start"),
            as_i64(col("__new")).alias("new_customers"),
            as_i64(col("__e").and(col("__s").not()).and(col("__new").not())).alias("reactivated"),
            as_i64(col("__s").and(col("__e").not())).alias("churned"),
            as_i64(col("__e")).alias("customers_end"),
        ],
    );

    // Every period from the earliest anchor on, for every segment value a customer has.
    let first = anchors
        .clone()
        .select([p.period.index(col("anchor")).min().alias("__first")]);
    let segments = by_dimensions(
        attach_segments(anchors, inputs, &p.by),
        &[],
        &p.by,
        &[len().alias("__n")],
    )
    .select([col("dimension"), col("dimension_value")]);
    let grid = periods
        .cross_join(first, None)
        .filter(col("__pidx").gt_eq(col("__first")))
        .cross_join(segments, None);

    let revenue = if inputs.contains_key(&InputKind::Orders) {
        let orders = inputs[&InputKind::Orders].clone().with_column(
            p.period
                .index(cal.local_date(col("ordered_at")))
                .alias("__pidx"),
        );
        Some(by_dimensions(
            attach_segments(orders, inputs, &p.by),
            &[col("__pidx")],
            &p.by,
            &[col("amount").sum().alias("revenue")],
        ))
    } else {
        None
    };
    let keys = [col("__pidx"), col("dimension"), col("dimension_value")];
    let mut table = grid.join(
        counts,
        keys.clone(),
        keys.clone(),
        JoinArgs::new(JoinType::Left),
    );
    table = match revenue {
        Some(r) => table
            .join(r, keys.clone(), keys, JoinArgs::new(JoinType::Left))
            .with_column(col("revenue").fill_null(lit(0.0))),
        None => table.with_column(lit(NULL).cast(DataType::Float64).alias("revenue")),
    };
    let zero = |name: &str| col(name).fill_null(lit(0i64)).alias(name);
    Ok(table
        .with_columns([
            zero("customers_start"),
            zero("new_customers"),
            zero("reactivated"),
            zero("churned"),
            zero("customers_end"),
        ])
        .with_columns([
            ratio(col("churned"), col("customers_start")).alias("churn_rate"),
            ratio(
                col("customers_end") - col("new_customers") - col("reactivated"),
                col("customers_start"),
            )
            .alias("retention_rate"),
            col("dimension").neq(lit(ALL)).alias("__not_all"),
        ])
        .sort_by_exprs(
            [
                col("period"),
                col("__not_all"),
                col("dimension"),
                col("dimension_value"),
            ],
            Default::default(),
        )
        .select([
            col("period"),
            col("dimension"),
            col("dimension_value"),
            col("customers_start"),
            col("new_customers"),
            col("reactivated"),
            col("churned"),
            col("customers_end"),
            col("churn_rate"),
            col("retention_rate"),
            col("revenue").cast(DataType::Float64),
            col("complete"),
        ]))
}
