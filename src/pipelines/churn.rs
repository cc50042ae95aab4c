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
//!   of the row's customers, summed exactly (null without an orders input). `complete`: P's
//!   last day <= as_of.
//! - Net revenue retention: the base customers of P are the row's customers whose revenue
//!   (as above) in the period before P is above zero. `nrr_base_revenue` = their revenue in
//!   the period before P; `nrr_revenue` = their revenue in P up to end; both summed exactly
//!   (0 when P has no base customers, null without an orders input);
//!   `net_revenue_retention` = nrr_revenue / nrr_base_revenue, null when the base is 0.

use chrono::Duration;
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
use crate::config::{ActivitySource, Anchor, ChurnMode, Period};
use crate::contracts::InputKind;
use crate::engine::profile::collect;
use crate::problems::Problems;
use crate::time::{date_lit, period_from_index, period_index, Calendar};

/// The job file's `pipelines.churn`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnParams {
    #[serde(default)]
    pub period: Period,
    #[serde(default)]
    pub mode: ChurnMode,
    #[serde(default = "ninety")]
    pub inactive_after_days: i64,
    #[serde(default)]
    pub activity: Option<Vec<ActivitySource>>,
    /// Default: first_activity in inactivity mode, signup in subscription mode.
    #[serde(default)]
    pub anchor: Option<Anchor>,
    #[serde(default)]
    pub by: Vec<String>,
}

fn ninety() -> i64 {
    90
}

/// The configuration of `churn`.
pub struct ChurnSpec;
pub static SPEC: ChurnSpec = ChurnSpec;

impl Spec for ChurnSpec {
    fn name(&self) -> &'static str {
        "churn"
    }

    fn build(
        &self,
        value: serde_yaml::Value,
        at: &str,
        _settings: &mut JobSettings,
        problems: &mut Problems,
    ) -> Option<Box<dyn Pipeline>> {
        let p: ChurnParams = params(value, at, problems)?;
        check_period(
            at,
            "period",
            p.period,
            &[Period::Week, Period::Month, Period::Quarter],
            problems,
        );
        let inactive_after_days = in_range(
            &format!("{at}.inactive_after_days"),
            p.inactive_after_days,
            ranges::DAY_COUNT,
            problems,
        );
        let anchor = p.anchor.unwrap_or(match p.mode {
            ChurnMode::Inactivity => Anchor::FirstActivity,
            ChurnMode::Subscription => Anchor::Signup,
        });
        // In subscription mode activity only matters for a first_activity anchor.
        let default_activity = match (p.mode, &anchor) {
            (ChurnMode::Subscription, a) if *a != Anchor::FirstActivity => vec![],
            _ => vec![ActivitySource::ORDERS],
        };
        Some(Box::new(Churn {
            period: p.period,
            mode: p.mode,
            inactive_after_days,
            activity: activity_or(at, &p.activity, default_activity, problems),
            anchor,
            by: p.by,
        }))
    }
}

impl Pipeline for Churn {
    fn name(&self) -> &'static str {
        "churn"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["churn"]
    }

    fn inputs(&self) -> InputUse {
        let mut u = lifecycle_inputs(
            &self.activity,
            Some(&self.anchor),
            &self.by,
            &[InputKind::Orders],
        );
        if self.mode == ChurnMode::Subscription && !u.required.contains(&InputKind::Customers) {
            u.required.push(InputKind::Customers);
        }
        u
    }

    fn by(&self) -> (InputKind, &[String]) {
        (InputKind::Customers, &self.by)
    }

    fn activity(&self) -> Option<&[ActivitySource]> {
        Some(&self.activity)
    }

    fn engine(&self) -> Engine {
        ENGINE
    }

    fn map(&self, _round: usize, b: &Bucket) -> PolarsResult<MapOutput> {
        let acts = b.activity_rows(&self.activity)?;
        let parts = partials(b.inputs, acts, self, b.cal)?;
        let mut out = MapOutput::default();
        for (name, merge, lf) in parts {
            let df = collect(lf, &format!("churn.{name}"), ENGINE)?;
            out = out.partial(name, merge, df);
        }
        Ok(out)
    }

    fn finalize(&self, _round: usize, m: &Merged) -> PolarsResult<Finalized> {
        let revenue = m.try_get("revenue").zip(m.try_get("nrr"));
        let table = finish(
            m.get("counts"),
            revenue,
            m.get("first"),
            m.get("segments"),
            self,
            m.cal,
        )
        .collect()?;
        Ok(Finalized::Tables(vec![("churn", TableData::Frame(table))]))
    }
}

const KEYS: &[&str] = &["__pidx", "dimension", "dimension_value"];

/// The polars engine the runner collects this table with. Streaming: every aggregation here
/// is an integer count or an exact sum, so the result does not depend on the order in which
/// the engine's morsels meet, and it was measured faster and leaner than in memory
/// (docs/performance.md, "The streaming engine"). The unit tests collect every case with both
/// engines and compare them.
pub const ENGINE: Engine = Engine::Streaming;

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

/// One bucket's partials, from the inputs and `acts`, the `activity_rows` of `p.activity`
/// (repeated (customer, day) rows allowed): `counts` (S, new, reactivated, churned, E per
/// period and segment), `revenue` (exact parts, with an orders input), `first` (the earliest
/// anchor's period index) and `segments` (the segment values of anchored customers).
#[allow(clippy::type_complexity)]
fn partials(
    inputs: &Inputs,
    acts: LazyFrame,
    p: &Churn,
    cal: &Calendar,
) -> PolarsResult<Vec<(&'static str, Merge, LazyFrame)>> {
    let anchors = anchor_days(&p.anchor, std::slice::from_ref(&acts), inputs, cal)
        .filter(col("anchor").lt_eq(date_lit(cal.as_of)));
    let as_of_day = date_lit(cal.as_of).cast(DataType::Int32);

    // Spans [a, b] (day numbers) during which a customer is active.
    let spans = match p.mode {
        ChurnMode::Inactivity => {
            let n = p.inactive_after_days as i32;
            acts.clone()
                .with_column(days(col("day")).alias("__d"))
                .sort(["customer_id", "__d"], Default::default())
                // Sorted by customer, a span starts at each customer's first day and after
                // each gap of more than n days; numbering the starts over the whole frame
                // gives every span its own id without per-customer windows.
                .with_column(
                    when(col("customer_id").eq(col("customer_id").shift(lit(1))))
                        .then(col("__d") - col("__d").shift(lit(1)))
                        .otherwise(lit(NULL).cast(DataType::Int32))
                        .alias("__gap"),
                )
                .with_column(
                    col("__gap")
                        .is_null()
                        .or(col("__gap").gt(lit(n)))
                        .cast(DataType::UInt32)
                        .cum_sum(false)
                        .alias("__span"),
                )
                .group_by([col("__span")])
                .agg([
                    col("customer_id").first(),
                    col("__d").min().alias("__a"),
                    (col("__d").max() + lit(n - 1)).alias("__b"),
                ])
                .drop(cols(["__span"]))
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
    let touched = spans
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
        ]);
    let pair = PairKey::new(&touched, "__pidx");
    let membership = pair
        .group_by(touched, vec![col("__s").any(true), col("__e").any(true)])
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
        .join_on_customer(anchors.clone(), JoinType::Left)
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
        &[len().cast(DataType::Int64).alias("__n")],
    );
    let mut out = vec![
        ("counts", Merge::sum(KEYS), counts),
        (
            "first",
            Merge::By {
                keys: &[],
                min: &["__first"],
                max: &[],
            },
            first,
        ),
        (
            "segments",
            Merge::sum(&["dimension", "dimension_value"]),
            segments,
        ),
    ];
    if inputs.contains_key(&InputKind::Orders) {
        let mut with = vec![p
            .period
            .index(cal.local_date(col("ordered_at")))
            .alias("__pidx")];
        with.extend(split_amount(col("amount"), "__a"));
        let orders = inputs[&InputKind::Orders].clone().with_columns(with);
        // Summed exactly (`common::split_amount`): a float sum depends on the order of the
        // orders, which differs with the buckets and with polars' joins.
        out.push((
            "revenue",
            Merge::sum(KEYS),
            by_dimensions(
                attach_segments(orders.clone(), inputs, &p.by),
                &[col("__pidx")],
                &p.by,
                &sum_amount_parts("__a", "__r"),
            ),
        ));
        out.push(("nrr", Merge::sum(KEYS), nrr_partial(orders, inputs, p)));
    }
    Ok(out)
}

/// Net revenue retention's sums per period P: over the customers whose revenue in P - 1 is
/// above zero, their revenue in P - 1 (`__nb`) and in P (`__nc`), as exact parts. `orders`
/// carries `__pidx` and the amount parts `__a_w`, `__a_m`; a customer's rows are all in one
/// bucket, so each customer's period revenue is exact here.
fn nrr_partial(orders: LazyFrame, inputs: &Inputs, p: &Churn) -> LazyFrame {
    let per_customer = orders
        .group_by([col("customer_id"), col("__pidx")])
        .agg(sum_amount_parts("__a", "__c"));
    let micros = |w: &str, m: &str| {
        col(w).cast(DataType::Int128) * lit(1_000_000i64).cast(DataType::Int128)
            + col(m).cast(DataType::Int128)
    };
    let base = per_customer
        .clone()
        .filter(micros("__c_w", "__c_m").gt(lit(0i64).cast(DataType::Int128)))
        .select([
            col("customer_id"),
            (col("__pidx") + lit(1i64)).alias("__pidx"),
            col("__c_w").alias("__b_w"),
            col("__c_m").alias("__b_m"),
        ]);
    let joined = base
        .join(
            per_customer,
            [col("customer_id"), col("__pidx")],
            [col("customer_id"), col("__pidx")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            col("__c_w").fill_null(lit(0i64).cast(DataType::Int128)),
            col("__c_m").fill_null(lit(0i64)),
        ]);
    by_dimensions(
        attach_segments(joined, inputs, &p.by),
        &[col("__pidx")],
        &p.by,
        &[
            sum_amount_parts("__b", "__nb"),
            sum_amount_parts("__c", "__nc"),
        ]
        .concat(),
    )
}

/// The table from the merged partials.
fn finish(
    counts: LazyFrame,
    revenue: Option<(LazyFrame, LazyFrame)>,
    first: LazyFrame,
    segments: LazyFrame,
    p: &Churn,
    cal: &Calendar,
) -> LazyFrame {
    let periods = period_table(p.period, cal);
    let grid = periods
        .cross_join(first, None)
        .filter(col("__pidx").gt_eq(col("__first")))
        .cross_join(
            segments.select([col("dimension"), col("dimension_value")]),
            None,
        );
    let keys = [col("__pidx"), col("dimension"), col("dimension_value")];
    let mut table = grid.join(
        counts,
        keys.clone(),
        keys.clone(),
        JoinArgs::new(JoinType::Left),
    );
    table = match revenue {
        Some((r, nrr)) => table
            .join(
                r.with_column(amount_from_parts(col("__r_w"), col("__r_m")).alias("revenue"))
                    .drop(cols(["__r_w", "__r_m"])),
                keys.clone(),
                keys.clone(),
                JoinArgs::new(JoinType::Left),
            )
            .join(
                nrr.with_columns([
                    amount_from_parts(col("__nc_w"), col("__nc_m")).alias("nrr_revenue"),
                    amount_from_parts(col("__nb_w"), col("__nb_m")).alias("nrr_base_revenue"),
                ])
                .drop(cols(["__nc_w", "__nc_m", "__nb_w", "__nb_m"])),
                keys.clone(),
                keys,
                JoinArgs::new(JoinType::Left),
            )
            .with_columns([
                col("revenue").fill_null(lit(0.0)),
                col("nrr_revenue").fill_null(lit(0.0)),
                col("nrr_base_revenue").fill_null(lit(0.0)),
            ]),
        None => table.with_columns([
            lit(NULL).cast(DataType::Float64).alias("revenue"),
            lit(NULL).cast(DataType::Float64).alias("nrr_revenue"),
            lit(NULL).cast(DataType::Float64).alias("nrr_base_revenue"),
        ]),
    };
    let zero = |name: &str| col(name).fill_null(lit(0i64)).alias(name);
    table
        .with_columns([
            zero("customers_start"),
            zero("new_customers"),
            zero("reactivated"),
            zero("churned"),
            zero("customers_end"),
        ])
        .with_column(
            (col("customers_end") - col("new_customers") - col("reactivated")).alias("retained"),
        )
        .with_columns([
            ratio(col("churned"), col("customers_start")).alias("churn_rate"),
            ratio(col("retained"), col("customers_start")).alias("retention_rate"),
            ratio(col("nrr_revenue"), col("nrr_base_revenue")).alias("net_revenue_retention"),
        ])
        .sort_overall_first(&["period"], &[])
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
            col("nrr_revenue").cast(DataType::Float64),
            col("nrr_base_revenue").cast(DataType::Float64),
            col("net_revenue_retention").cast(DataType::Float64),
            // retention_rate's numerator, so that rows re-aggregate.
            col("retained").cast(DataType::Int64),
            col("complete"),
        ])
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::pipelines::lifecycle::activity_rows;
    use crate::pipelines::lifecycle::testing::*;
    use crate::pipelines::testing::run_one;
    use crate::testutil::collect_with;

    /// The table as a run computes it (one bucket, and three: the same frame), after checking
    /// that the in-memory engine computes the same partials as `ENGINE`.
    fn churn(inputs: &Inputs, p: &Churn, cal: &Calendar) -> DataFrame {
        let acts = activity_rows(inputs, &p.activity, cal);
        for (_, _, lf) in partials(inputs, acts, p, cal).unwrap() {
            collect_with(lf, ENGINE);
        }
        run_one(p, inputs, cal)["churn"].clone()
    }

    fn cal(as_of: &str, tz: &str) -> Calendar {
        Calendar::new(NaiveDate::parse_from_str(as_of, "%Y-%m-%d").unwrap(), tz).unwrap()
    }

    fn params(mode: ChurnMode, n: u32, by: &[&str]) -> Churn {
        Churn {
            period: Period::Month,
            mode,
            inactive_after_days: n,
            activity: if mode == ChurnMode::Inactivity {
                vec![ActivitySource::ORDERS]
            } else {
                vec![]
            },
            anchor: if mode == ChurnMode::Inactivity {
                Anchor::FirstActivity
            } else {
                Anchor::Signup
            },
            by: by.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn june(df: &DataFrame) -> DataFrame {
        df.clone()
            .lazy()
            .filter(col("period").eq(date_lit(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap())))
            .collect()
            .unwrap()
    }

    /// Net revenue retention by hand. May's revenue > 0: A 100, B 50, C 40 (D's 30 is refunded
    /// to 0, so D is not in June's base). June: A 130, B nothing, C -10 + 20 = 10, D 70, E
    /// (new) 25, F 15. June's base revenue = 190, its NRR revenue = 130 + 0 + 10 = 140. May's
    /// base is F alone (April 20), who bought nothing in May.
    #[test]
    fn net_revenue_retention_by_hand() {
        let mut d = Data::default();
        d.order("F", "2026-04-10 12:00:00", 20.0)
            .order("A", "2026-05-03 12:00:00", 100.0)
            .order("B", "2026-05-04 12:00:00", 50.0)
            .order("C", "2026-05-05 12:00:00", 40.0)
            .order("D", "2026-05-06 12:00:00", 30.0)
            .order("D", "2026-05-07 12:00:00", -30.0)
            .order("A", "2026-06-03 12:00:00", 130.0)
            .order("C", "2026-06-04 12:00:00", -10.0)
            .order("C", "2026-06-05 12:00:00", 20.0)
            .order("D", "2026-06-06 12:00:00", 70.0)
            .order("E", "2026-06-07 12:00:00", 25.0)
            .order("F", "2026-06-08 12:00:00", 15.0);
        let df = churn(
            &d.inputs(),
            &params(ChurnMode::Inactivity, 90, &[]),
            &cal("2026-06-30", "UTC"),
        );
        assert_eq!(
            dates(&df, "period"),
            ["2026-04-01", "2026-05-01", "2026-06-01"]
        );
        assert_eq!(f64s(&df, "revenue"), [Some(20.0), Some(190.0), Some(250.0)]);
        assert_eq!(
            f64s(&df, "nrr_base_revenue"),
            [Some(0.0), Some(20.0), Some(190.0)]
        );
        assert_eq!(
            f64s(&df, "nrr_revenue"),
            [Some(0.0), Some(0.0), Some(140.0)]
        );
        assert_eq!(
            f64s(&df, "net_revenue_retention"),
            [None, Some(0.0), Some(140.0 / 190.0)]
        );
    }

    #[test]
    fn hundred_active_lose_twenty_gain_fifteen() {
        // N = 10. Customers 0-99 buy on May 31 (active on the day before June starts);
        // 0-79 buy again on June 25 (active on June 30), 80-99 do not. 100-114 first buy June 25.
        let mut d = Data::default();
        for i in 0..100 {
            d.order(&format!("C{i}"), "2026-05-31 12:00:00", 10.0);
        }
        for i in 0..80 {
            d.order(&format!("C{i}"), "2026-06-25 12:00:00", 5.0);
        }
        for i in 100..115 {
            d.order(&format!("C{i}"), "2026-06-25 12:00:00", 5.0);
        }
        let df = churn(
            &d.inputs(),
            &params(ChurnMode::Inactivity, 10, &[]),
            &cal("2026-06-30", "UTC"),
        );
        let j = june(&df);
        assert_eq!(i64s(&j, "customers_start"), [100]);
        assert_eq!(i64s(&j, "churned"), [20]);
        assert_eq!(i64s(&j, "new_customers"), [15]);
        assert_eq!(i64s(&j, "reactivated"), [0]);
        assert_eq!(i64s(&j, "customers_end"), [95]);
        assert_eq!(f64s(&j, "churn_rate"), [Some(0.2)]);
        assert_eq!(f64s(&j, "retention_rate"), [Some(0.8)]);
        assert_eq!(f64s(&j, "revenue"), [Some(95.0 * 5.0)]);
        assert_eq!(bools(&j, "complete"), [true]);
        // May: the 100 start; S = 0.
        assert_eq!(dates(&df, "period"), ["2026-05-01", "2026-06-01"]);
        assert_eq!(i64s(&df, "new_customers"), [100, 15]);
        assert_eq!(f64s(&df, "churn_rate")[0], None);
    }

    #[test]
    fn lapsed_customer_comes_back_as_reactivated_and_refunds_are_not_activity() {
        let mut d = Data::default();
        d.order("A", "2026-01-10 12:00:00", 50.0)
            .order("A", "2026-01-10 13:00:00", 0.0) // a second purchase the same day
            // Gone by the end of February with N = 30 ...
            .order("A", "2026-04-15 12:00:00", 20.0) // ... back in April.
            .order("A", "2026-04-20 12:00:00", -20.0) // a refund: revenue, not activity
            .order("B", "2026-03-31 23:30:00", 10.0); // 23:30 local on March 31 in New York
        let c = cal("2026-04-30", "America/New_York");
        let df = churn(&d.inputs(), &params(ChurnMode::Inactivity, 30, &[]), &c);
        assert_eq!(
            dates(&df, "period"),
            ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"]
        );
        assert_eq!(i64s(&df, "customers_start"), [0, 1, 0, 1]);
        assert_eq!(i64s(&df, "churned"), [0, 1, 0, 1]);
        // B's order at 23:30 on March 31 is a March activity in New York (03:30Z on April 1).
        assert_eq!(i64s(&df, "new_customers"), [1, 0, 1, 0]);
        assert_eq!(i64s(&df, "reactivated"), [0, 0, 0, 1]);
        assert_eq!(i64s(&df, "customers_end"), [1, 0, 1, 1]);
        assert_eq!(f64s(&df, "revenue")[3], Some(0.0));
        for row in 0..df.height() {
            let s = i64s(&df, "customers_start")[row];
            let e = i64s(&df, "customers_end")[row];
            let ch = i64s(&df, "churned")[row];
            let n = i64s(&df, "new_customers")[row];
            let r = i64s(&df, "reactivated")[row];
            assert_eq!(e, s - ch + n + r, "row {row}");
        }
    }

    #[test]
    fn subscription_mode_uses_signup_and_churned_at_with_partial_last_period() {
        let mut d = Data::default();
        d.customer("A", Some("2026-05-10 09:00:00"), None, "pro")
            .customer(
                "B",
                Some("2026-05-20 09:00:00"),
                Some("2026-06-05 09:00:00"),
                "free",
            )
            .customer(
                "C",
                Some("2026-06-02 09:00:00"),
                Some("2026-06-30 12:00:00"),
                "pro",
            )
            .customer("D", None, None, "pro") // no signup: never active
            .customer(
                "E",
                Some("2026-05-01 00:00:00"),
                Some("2026-05-31 23:00:00"),
                "free",
            );
        let c = cal("2026-06-20", "UTC");
        let df = churn(
            &d.inputs(),
            &params(ChurnMode::Subscription, 90, &["plan"]),
            &c,
        );
        let j = june(&df);
        assert_eq!(strs(&j, "dimension_value"), ["all", "free", "pro"]);
        // Day before June: A, B active; E churned on May 31 (not active on May 31).
        assert_eq!(i64s(&j, "customers_start"), [2, 1, 1]);
        // End = as_of June 20 (partial month): A and C active; B churned June 5; C's churn on
        // June 30 is after as_of and not known yet.
        assert_eq!(i64s(&j, "churned"), [1, 1, 0]);
        assert_eq!(i64s(&j, "new_customers"), [1, 0, 1]);
        assert_eq!(i64s(&j, "customers_end"), [2, 0, 2]);
        assert_eq!(bools(&j, "complete"), [false, false, false]);
        assert_eq!(f64s(&j, "churn_rate"), [Some(0.5), Some(1.0), Some(0.0)]);
    }
}
