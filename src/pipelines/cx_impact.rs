//! Pipeline `cx_impact`: how each customer's support and survey experience relates to what they
//! were worth and whether they stayed.
//!
//! Universe: customers with at least one purchase (amount >= 0) on or before as_of. Drivers,
//! each customer's experience as of the end of as_of (local days in the job time zone):
//! - `nps_category`: category of the latest NPS response (promoter 9-10 / passive 7-8 /
//!   detractor 0-6), or `none`. Needs surveys.
//! - `csat`: the latest CSAT response `satisfied` (score >= the CSAT scale's positive_from) or
//!   `unsatisfied`, or `none`. Needs surveys.
//! - `ticket_volume`: tickets created in the 365 local days up to as_of (as_of - 364 .. as_of):
//!   `0`, `1`, `2-3`, `4+`. Needs tickets.
//! - `first_contact_resolution`: over the customer's resolved tickets: `all_fcr` (every one has
//!   contacts = 1), `some_not_fcr` (any other, unknown contacts included), or
//!   `no_resolved_tickets`.
//! - `first_response_sla`: over the customer's tickets with a first response: `all_met` (every
//!   first response time <= its channel's target from `support_kpis`, else 24h) or
//!   `some_missed`, or `no_responded_tickets`.
//!
//! Outcomes per (driver, driver_value, dimension, dimension_value): `customers`;
//! `share_of_customers` (of the customers in the dimension value); `avg_revenue` (all order
//! amounts up to as_of, refunds included); `avg_predicted_clv` (from `ltv_segments`' fit when
//! that pipeline runs with a model, else null); `churned_share` (no purchase in the last
//! `inactive_after_days` days: the last purchase date <= as_of - inactive_after_days). Event
//! anchored: the driving experience is the latest response (nps_category, csat) or the latest
//! ticket (the ticket drivers); for customers whose experience date + window_days <= as_of:
//! `outcome_customers`, `repurchase_rate` (share with a purchase dated in (experience date,
//! experience date + window_days]) and `revenue_after_per_customer` (order amounts in that
//! window / outcome_customers). `lift_vs_all` = avg_revenue / the dimension value's overall
//! avg_revenue - 1; `churn_lift_vs_all` likewise for churned_share.
//!
//! `nps_migration`: customers with two or more NPS responses, from the category of the first to
//! that of the latest: `customers`, `avg_revenue_before` (order amounts dated in [first
//! response date - window_days, first response date)), `avg_revenue_after` (dated in (latest
//! response date, latest + window_days]), `revenue_change_pct` = 100 (after - before) / before
//! on those per-customer averages (null when before is 0).
//!
//! Money is summed exactly (`common::split_amount`) before any average, and avg_predicted_clv
//! is the exact sum of the predictions (`common::exact_sum_partial`) over their count, so the
//! tables are the same bytes for any split of the customers into buckets.

use polars::prelude::*;
use serde::Deserialize;

use super::common::{
    amount_from_parts, amount_per, by_dimensions, exact_sum_partial, exact_sums, model_value_sums,
    ratio, split_amount, sum_amount_parts, JoinOnCustomer, PairKey, SortOverallFirst,
};
use super::lifecycle::{attach_segments, lifecycle_inputs};
use super::ltv_segments::{LtvSegments, CUSTOMER_LTV};

/// The columns of `customer_ltv` it reads.
const LTV_COLUMNS: &[&str] = &["customer_id", "predicted_clv", "rfm_segment", "value_tier"];
use super::support_kpis::SlaTargets;
use super::survey_scores::Scale;
use super::{
    in_range, params, ranges, Bucket, Finalized, InputUse, Inputs, JobSettings, MapOutput, Merge,
    Merged, Pipeline, Spec, TableData,
};
use crate::config::ActivitySource;
use crate::contracts::InputKind;
use crate::engine::profile::collect;
use crate::problems::Problems;
use crate::time::{date_lit, Calendar};

/// The job file's `pipelines.cx_impact`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CxImpactParams {
    #[serde(default = "ninety")]
    pub window_days: i64,
    #[serde(default = "ninety")]
    pub inactive_after_days: i64,
    #[serde(default)]
    pub by: Vec<String>,
    /// Also write `customer_cx`, one row per customer.
    #[serde(default)]
    pub customer_table: bool,
}

fn ninety() -> i64 {
    90
}

/// The configuration of `cx_impact`.
pub struct CxImpactSpec;
pub static SPEC: CxImpactSpec = CxImpactSpec;

impl Spec for CxImpactSpec {
    fn name(&self) -> &'static str {
        "cx_impact"
    }

    fn build(
        &self,
        value: serde_yaml::Value,
        at: &str,
        settings: &mut JobSettings,
        problems: &mut Problems,
    ) -> Option<Box<dyn Pipeline>> {
        let p: CxImpactParams = params(value, at, problems)?;
        let window_days = in_range(
            &format!("{at}.window_days"),
            p.window_days,
            ranges::DAY_COUNT,
            problems,
        );
        let inactive_after_days = in_range(
            &format!("{at}.inactive_after_days"),
            p.inactive_after_days,
            ranges::DAY_COUNT,
            problems,
        );
        if !settings.declared.contains(&InputKind::Tickets)
            && !settings.declared.contains(&InputKind::Surveys)
        {
            problems.push(at, "needs input `tickets` or `surveys` (or both)");
        }
        Some(Box::new(CxImpact {
            window_days,
            inactive_after_days,
            by: p.by,
            sla: settings.sla.clone(),
            csat: settings.scales.csat,
            ltv: settings.ltv.clone(),
            customer_table: p.customer_table,
        }))
    }
}

impl Pipeline for CxImpact {
    fn name(&self) -> &'static str {
        "cx_impact"
    }

    fn tables(&self) -> &'static [&'static str] {
        if self.customer_table {
            &["cx_impact", "nps_migration", CUSTOMER_CX]
        } else {
            &["cx_impact", "nps_migration"]
        }
    }

    fn inputs(&self) -> InputUse {
        lifecycle_inputs(
            &[ActivitySource::ORDERS],
            None,
            &self.by,
            &[InputKind::Tickets, InputKind::Surveys],
        )
    }

    fn by(&self) -> (InputKind, &[String]) {
        (InputKind::Customers, &self.by)
    }

    /// With a CLV model, in the round where `ltv_segments` keeps each bucket's
    /// `customer_ltv` rows (its second).
    fn first_round(&self) -> usize {
        if self.ltv.is_some() {
            1
        } else {
            0
        }
    }

    fn reads_kept(&self, _round: usize) -> &'static [(&'static str, &'static [&'static str])] {
        match self.ltv {
            Some(_) => &[(CUSTOMER_LTV, LTV_COLUMNS)],
            None => &[],
        }
    }

    fn map(&self, _round: usize, b: &Bucket) -> PolarsResult<MapOutput> {
        let fitted = match &self.ltv {
            Some(_) => b
                .kept_with_keys(CUSTOMER_LTV)?
                .map(|t| t.select(LTV_COLUMNS.iter().map(|c| col(*c)).collect::<Vec<_>>())),
            None => None,
        };
        let mut out = MapOutput::default();
        let (parts, per_customer) = partials(b.inputs, self, b.cal, fitted)?;
        for (name, merge, lf) in parts {
            let df = collect(lf, &format!("cx_impact.{name}"), Engine::InMemory)?;
            out = out.partial(name, merge, df);
        }
        if let Some(lf) = per_customer {
            let df = collect(lf, "cx_impact.customer_cx", Engine::InMemory)?;
            out.keep.push((CUSTOMER_CX, df));
        }
        Ok(out)
    }

    fn finalize(&self, _round: usize, m: &Merged) -> PolarsResult<Finalized> {
        let mut tables = vec![
            ("cx_impact", TableData::Frame(finish_impact(m)?)),
            ("nps_migration", TableData::Frame(finish_migration(m)?)),
        ];
        if self.customer_table {
            tables.push((CUSTOMER_CX, TableData::Kept(CUSTOMER_CX)));
        }
        Ok(Finalized::Tables(tables))
    }
}

/// Resolved parameters.
#[derive(Debug, Clone)]
pub struct CxImpact {
    pub window_days: u32,
    pub inactive_after_days: u32,
    pub by: Vec<String>,
    pub sla: SlaTargets,
    pub csat: Scale,
    /// The `ltv_segments` model, when the job runs one.
    pub ltv: Option<LtvSegments>,
    /// Whether to write `customer_cx`.
    pub customer_table: bool,
}

/// The per-customer table (kept rows of each bucket, written in customer order).
pub const CUSTOMER_CX: &str = "customer_cx";

fn day_num(e: Expr) -> Expr {
    e.cast(DataType::Int32)
}

fn nps_category(score: Expr) -> Expr {
    when(score.clone().gt_eq(lit(9)))
        .then(lit("promoter"))
        .when(score.gt_eq(lit(7)))
        .then(lit("passive"))
        .otherwise(lit("detractor"))
}

/// The driving experience's date `__event` where `has` holds, else null: a customer whose
/// driver value is the "no experience" one (`0`, `no_resolved_tickets`,
/// `no_responded_tickets`) has no outcome window, though they may have older tickets.
fn experience_if(has: Expr) -> Expr {
    when(has)
        .then(col("__event"))
        .otherwise(lit(NULL).cast(DataType::Date))
        .alias("__event")
}

/// (customer_id, value, __event) per driver, for the customers that have a row of its input
/// (`__event` null for those without the driving experience).
fn drivers(
    inputs: &Inputs,
    p: &CxImpact,
    cal: &Calendar,
) -> Vec<(&'static str, &'static str, LazyFrame)> {
    let mut out = Vec::new();
    let as_of = day_num(date_lit(cal.as_of));
    if let Some(surveys) = inputs.get(&InputKind::Surveys) {
        let latest = |survey: &str| {
            // Row-wise values are computed before the group-by, which then only picks the last
            // of each group: expressions inside the aggregation are evaluated group by group
            // (docs/performance.md, "Row values before grouping").
            surveys
                .clone()
                .filter(col("survey").eq(lit(survey)))
                .with_column(cal.local_date(col("submitted_at")).alias("__event"))
                .sort(
                    ["customer_id", "submitted_at", "response_id"],
                    Default::default(),
                )
                .group_by_stable([col("customer_id")])
                .agg([col("score").last().alias("__score"), col("__event").last()])
        };
        out.push((
            "nps_category",
            "none",
            latest("nps").select([
                col("customer_id"),
                nps_category(col("__score")).alias("driver_value"),
                col("__event"),
            ]),
        ));
        out.push((
            "csat",
            "none",
            latest("csat").select([
                col("customer_id"),
                when(col("__score").gt_eq(lit(p.csat.positive_from)))
                    .then(lit("satisfied"))
                    .otherwise(lit("unsatisfied"))
                    .alias("driver_value"),
                col("__event"),
            ]),
        ));
    }
    if let Some(tickets) = inputs.get(&InputKind::Tickets) {
        let met = p.sla.met_expr();
        // The per-ticket flags are columns before the group-by, so that the aggregation sums
        // plain columns (polars' fast path) instead of evaluating expressions group by group.
        let flag = |e: Expr, name: &str| e.cast(DataType::Int64).alias(name);
        let per_customer = tickets
            .clone()
            .with_column(cal.local_date(col("created_at")).alias("__day"))
            .select([
                col("customer_id"),
                col("__day"),
                flag(
                    day_num(col("__day")).gt(as_of.clone() - lit(365)),
                    "__recent",
                ),
                flag(col("resolved_at").is_not_null(), "__resolved"),
                flag(
                    col("resolved_at")
                        .is_not_null()
                        .and(col("contacts").eq(lit(1)).fill_null(lit(false))),
                    "__fcr",
                ),
                flag(col("first_response_at").is_not_null(), "__responded"),
                flag(met.fill_null(lit(false)), "__met"),
            ])
            .group_by([col("customer_id")])
            .agg([
                col("__day").max().alias("__event"),
                col("__recent").sum(),
                col("__resolved").sum(),
                col("__fcr").sum(),
                col("__responded").sum(),
                col("__met").sum(),
            ]);
        let volume = when(col("__recent").eq(lit(0)))
            .then(lit("0"))
            .when(col("__recent").eq(lit(1)))
            .then(lit("1"))
            .when(col("__recent").lt_eq(lit(3)))
            .then(lit("2-3"))
            .otherwise(lit("4+"));
        out.push((
            "ticket_volume",
            "0",
            per_customer.clone().select([
                col("customer_id"),
                volume.alias("driver_value"),
                experience_if(col("__recent").gt(lit(0))),
            ]),
        ));
        out.push((
            "first_contact_resolution",
            "no_resolved_tickets",
            per_customer.clone().select([
                col("customer_id"),
                when(col("__resolved").eq(lit(0)))
                    .then(lit("no_resolved_tickets"))
                    .when(col("__fcr").eq(col("__resolved")))
                    .then(lit("all_fcr"))
                    .otherwise(lit("some_not_fcr"))
                    .alias("driver_value"),
                experience_if(col("__resolved").gt(lit(0))),
            ]),
        ));
        out.push((
            "first_response_sla",
            "no_responded_tickets",
            per_customer.select([
                col("customer_id"),
                when(col("__responded").eq(lit(0)))
                    .then(lit("no_responded_tickets"))
                    .when(col("__met").eq(col("__responded")))
                    .then(lit("all_met"))
                    .otherwise(lit("some_missed"))
                    .alias("driver_value"),
                experience_if(col("__responded").gt(lit(0))),
            ]),
        ));
    }
    out
}

/// One row per (customer, local order day): the day's amounts as exact parts `__amount_w`,
/// `__amount_m` (`common::split_amount`) and whether any order was a purchase.
fn order_days(orders: LazyFrame, cal: &Calendar) -> LazyFrame {
    let mut cols = vec![day_num(cal.local_date(col("ordered_at"))).alias("__d")];
    cols.extend(split_amount(col("amount"), "__a"));
    let orders = orders.with_columns(cols);
    let mut aggs = sum_amount_parts("__a", "__amount").to_vec();
    aggs.push(col("amount").gt_eq(lit(0.0)).any(true).alias("__purchase"));
    PairKey::new(&orders, "__d").group_by(orders, aggs)
}

/// One bucket's partials: `impact` (counts and exact sums per driver value and dimension),
/// `clv` (the exact sums of predicted_clv by exponent) and `migration` (per NPS journey).
/// `fitted` is (customer_id, predicted_clv) of the bucket's `customer_ltv` rows, when the job
/// runs `ltv_segments` with a model.
#[allow(clippy::type_complexity)]
fn partials(
    inputs: &Inputs,
    p: &CxImpact,
    cal: &Calendar,
    fitted: Option<LazyFrame>,
) -> PolarsResult<(Vec<(&'static str, Merge, LazyFrame)>, Option<LazyFrame>)> {
    let orders = inputs[&InputKind::Orders].clone();
    let as_of = day_num(date_lit(cal.as_of));
    let w = p.window_days as i32;
    // Used for the universe, the outcome windows and the migration windows: compute once.
    let days = order_days(orders.clone(), cal).cache();

    // The universe and its all-time outcomes.
    let mut base = days
        .clone()
        // A column, not an expression inside the aggregation (see `drivers`).
        .with_column(
            when(col("__purchase"))
                .then(col("__d"))
                .otherwise(lit(NULL))
                .alias("__purchase_day"),
        )
        .group_by([col("customer_id")])
        .agg([
            col("__amount_w").sum().alias("__revenue_w"),
            col("__amount_m").sum().alias("__revenue_m"),
            col("__purchase_day").max().alias("__last_purchase"),
        ])
        .filter(col("__last_purchase").is_not_null())
        .with_column(
            col("__last_purchase")
                .lt_eq(as_of.clone() - lit(p.inactive_after_days as i32))
                .alias("__churned"),
        );
    base = match fitted {
        Some(f) => base.join_on_customer(f, JoinType::Left),
        None => base.with_columns([
            lit(NULL).cast(DataType::Float64).alias("predicted_clv"),
            lit(NULL).cast(DataType::String).alias("rfm_segment"),
            lit(NULL).cast(DataType::String).alias("value_tier"),
        ]),
    };
    let base = attach_segments(base, inputs, &p.by);

    let driver_values = drivers(inputs, p, cal);
    // The drivers of the inputs the job has (the same in every bucket), in table order.
    let driver_names: Vec<&'static str> = driver_values.iter().map(|d| d.0).collect();
    let pers: Vec<LazyFrame> = driver_values
        .into_iter()
        .map(|(driver, default, values)| {
            base.clone()
                .join_on_customer(values, JoinType::Left)
                .with_columns([
                    lit(driver).alias("driver"),
                    col("driver_value").fill_null(lit(default)),
                    day_num(col("__event")).alias("__e"),
                ])
                .with_column(
                    col("__e")
                        .is_not_null()
                        .and((col("__e") + lit(w)).lt_eq(as_of.clone()))
                        .alias("__outcome"),
                )
                // Read twice below (event days and the table rows): compute it once.
                .cache()
        })
        .collect();
    // Orders in (event, event + window] for each distinct (customer, event day) with an
    // outcome window. Drivers share event days (the three ticket drivers all use the latest
    // ticket), so the orders are joined once for all of them, not once per driver.
    let mut long = Vec::new();
    if !pers.is_empty() {
        let events = concat(
            pers.iter()
                .map(|per| {
                    per.clone()
                        .filter(col("__outcome"))
                        .select([col("customer_id"), col("__e")])
                })
                .collect::<Vec<_>>(),
            UnionArgs::default(),
        )?;
        let pair = PairKey::new(&events, "__e");
        let windows = pair
            .unique(events)
            .join_on_customer(days.clone(), JoinType::Inner)
            .filter(
                col("__d")
                    .gt(col("__e"))
                    .and(col("__d").lt_eq(col("__e") + lit(w))),
            );
        let mut aggs = sum_amount_parts("__amount", "__after").to_vec();
        aggs.push(col("__purchase").any(true).alias("__repurchased"));
        let after = pair.group_by(windows, aggs).cache();
        for per in pers {
            long.push(
                pair.left_join(
                    per,
                    after.clone(),
                    &["__after_w", "__after_m", "__repurchased"],
                )
                .with_columns([
                    col("__after_w").fill_null(lit(0i64)),
                    col("__after_m").fill_null(lit(0i64)),
                    col("__repurchased").fill_null(lit(false)),
                ]),
            );
        }
    }
    let schema_cols = [
        col("customer_id"),
        col("__e"),
        col("driver"),
        col("driver_value"),
        col("__revenue_w"),
        col("__revenue_m"),
        col("predicted_clv"),
        col("__churned"),
        col("__outcome"),
        col("__after_w"),
        col("__after_m"),
        col("__repurchased"),
    ];
    let long = if long.is_empty() {
        None
    } else {
        let mut sel: Vec<Expr> = schema_cols.to_vec();
        sel.extend(p.by.iter().map(|b| col(b.as_str())));
        Some(concat(
            long.into_iter()
                .map(|l| l.select(sel.clone()))
                .collect::<Vec<_>>(),
            UnionArgs::default(),
        )?)
    };
    let Some(long) = long else {
        return Err(polars_err!(ComputeError: "cx_impact needs tickets or surveys"));
    };
    let per_customer = p
        .customer_table
        .then(|| customer_table(base, long.clone(), &driver_names));
    let outcome = col("__outcome");
    let keys = [col("driver"), col("driver_value")];
    let impact = by_dimensions(
        long.clone(),
        &keys,
        &p.by,
        &[
            len().cast(DataType::Int64).alias("customers"),
            // Money is summed exactly (`common::split_amount`) and predicted CLVs by exponent
            // (`common::exact_sum_partial`): every average is the same whatever the order in
            // which buckets, joins and group-bys hand the customers over.
            col("__revenue_w").sum().alias("__rev_sum_w"),
            col("__revenue_m").sum().alias("__rev_sum_m"),
            col("predicted_clv")
                .is_not_null()
                .cast(DataType::Int64)
                .sum()
                .alias("__clv_n"),
            col("__churned")
                .cast(DataType::Int64)
                .sum()
                .alias("__churned_n"),
            outcome
                .clone()
                .cast(DataType::Int64)
                .sum()
                .alias("outcome_customers"),
            col("__repurchased")
                .and(outcome.clone())
                .cast(DataType::Int64)
                .sum()
                .alias("__rep_n"),
            when(outcome.clone())
                .then(col("__after_w"))
                .otherwise(lit(0i64))
                .cast(DataType::Int128)
                .sum()
                .alias("__after_sum_w"),
            when(outcome)
                .then(col("__after_m"))
                .otherwise(lit(0i64))
                .sum()
                .alias("__after_sum_m"),
        ],
    );
    let clv = exact_sum_partial(long, &keys, &p.by, col("predicted_clv"));
    let migration = match inputs.get(&InputKind::Surveys) {
        None => DataFrame::new_infer_height(vec![
            Column::new_empty("from_category".into(), &DataType::String),
            Column::new_empty("to_category".into(), &DataType::String),
            Column::new_empty("customers".into(), &DataType::Int64),
            Column::new_empty("__before_w".into(), &DataType::Int128),
            Column::new_empty("__before_m".into(), &DataType::Int64),
            Column::new_empty("__after_w".into(), &DataType::Int128),
            Column::new_empty("__after_m".into(), &DataType::Int64),
        ])?
        .lazy(),
        Some(surveys) => {
            let journeys = surveys
                .clone()
                .filter(col("survey").eq(lit("nps")))
                // Row-wise first, as in `drivers`: the aggregation only picks first and last.
                .with_columns([
                    nps_category(col("score")).alias("__category"),
                    day_num(cal.local_date(col("submitted_at"))).alias("__day"),
                ])
                .sort(
                    ["customer_id", "submitted_at", "response_id"],
                    Default::default(),
                )
                .group_by_stable([col("customer_id")])
                .agg([
                    len().alias("__n"),
                    col("__category").first().alias("from_category"),
                    col("__category").last().alias("to_category"),
                    col("__day").first().alias("__first"),
                    col("__day").last().alias("__last"),
                ])
                .filter(col("__n").gt_eq(lit(2)));
            let window_sum = |cond: Expr, name: &str| {
                journeys
                    .clone()
                    .join_on_customer(days.clone(), JoinType::Inner)
                    .filter(cond)
                    .group_by([col("customer_id")])
                    .agg(sum_amount_parts("__amount", name))
            };
            let before = window_sum(
                col("__d")
                    .gt_eq(col("__first") - lit(w))
                    .and(col("__d").lt(col("__first"))),
                "__before",
            );
            let after = window_sum(
                col("__d")
                    .gt(col("__last"))
                    .and(col("__d").lt_eq(col("__last") + lit(w))),
                "__after",
            );
            journeys
                .join_on_customer(before, JoinType::Left)
                .join_on_customer(after, JoinType::Left)
                .group_by([col("from_category"), col("to_category")])
                // Exact sums, as above; customers without orders in a window add 0.
                .agg([
                    len().cast(DataType::Int64).alias("customers"),
                    col("__before_w").cast(DataType::Int128).sum(),
                    col("__before_m").cast(DataType::Int64).sum(),
                    col("__after_w").cast(DataType::Int128).sum(),
                    col("__after_m").cast(DataType::Int64).sum(),
                ])
        }
    };
    Ok((
        vec![
            ("impact", Merge::sum(IMPACT_KEYS), impact),
            ("clv", Merge::sum(CLV_KEYS), clv),
            (
                "migration",
                Merge::sum(&["from_category", "to_category"]),
                migration,
            ),
        ],
        per_customer,
    ))
}

/// The drivers in `customer_cx`'s column order.
/// `customer_cx` of one bucket: from `base` (one row per universe customer) their value and
/// lifecycle state, and from the per-(driver, customer) rows, per driver the job has, the
/// driver value, its experience date and the outcome-window figures. Sorted by customer.
fn customer_table(base: LazyFrame, long: LazyFrame, drivers: &[&str]) -> LazyFrame {
    let base = base.select([
        col("customer_id"),
        amount_from_parts(col("__revenue_w"), col("__revenue_m")).alias("revenue"),
        col("__last_purchase")
            .cast(DataType::Date)
            .alias("last_purchase_date"),
        when(col("__churned"))
            .then(lit("churned"))
            .otherwise(lit("active"))
            .alias("lifecycle_state"),
        col("predicted_clv").cast(DataType::Float64),
        col("rfm_segment"),
        col("value_tier"),
    ]);
    let mut table = base;
    for &d in drivers {
        let outcome = col("__outcome");
        let per = long.clone().filter(col("driver").eq(lit(d))).select([
            col("customer_id"),
            col("driver_value").alias(d),
            col("__e").cast(DataType::Date).alias(format!("{d}_at")),
            outcome.clone().alias(format!("{d}_outcome_window")),
            when(outcome.clone())
                .then(col("__repurchased"))
                .otherwise(lit(NULL).cast(DataType::Boolean))
                .alias(format!("{d}_repurchased")),
            when(outcome)
                .then(amount_from_parts(col("__after_w"), col("__after_m")))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias(format!("{d}_revenue_after")),
        ]);
        table = table.join_on_customer(per, JoinType::Left);
    }
    table.sort(["customer_id"], Default::default())
}

const IMPACT_KEYS: &[&str] = &["driver", "driver_value", "dimension", "dimension_value"];
const CLV_KEYS: &[&str] = &[
    "driver",
    "driver_value",
    "__e",
    "dimension",
    "dimension_value",
];

/// `cx_impact` from the merged partials.
fn finish_impact(m: &Merged) -> PolarsResult<DataFrame> {
    let group = [col("driver"), col("dimension"), col("dimension_value")];
    let keys: Vec<Expr> = IMPACT_KEYS.iter().map(|k| col(*k)).collect();
    let clv = exact_sums(m.get("clv"), IMPACT_KEYS, "__clv_total")?;
    m.get("impact")
        .join(
            clv.lazy(),
            keys.clone(),
            keys,
            JoinArgs::new(JoinType::Left),
        )
        // Sorted first: the window sums below then add their rows in one order.
        .sort_overall_first(&["driver"], &["driver_value"])
        .with_columns([
            col("customers")
                .sum()
                .over(group.clone())?
                .alias("__all_customers"),
            col("__rev_sum_w")
                .sum()
                .over(group.clone())?
                .alias("__all_revenue_w"),
            col("__rev_sum_m")
                .sum()
                .over(group.clone())?
                .alias("__all_revenue_m"),
            col("__churned_n").sum().over(group)?.alias("__all_churned"),
        ])
        .with_columns([
            ratio(col("customers"), col("__all_customers")).alias("share_of_customers"),
            amount_per("__rev_sum", col("customers")).alias("avg_revenue"),
            ratio(col("__clv_total").fill_null(lit(0.0)), col("__clv_n"))
                .alias("avg_predicted_clv"),
            ratio(col("__churned_n"), col("customers")).alias("churned_share"),
            ratio(col("__rep_n"), col("outcome_customers")).alias("repurchase_rate"),
            amount_per("__after_sum", col("outcome_customers")).alias("revenue_after_per_customer"),
            amount_per("__all_revenue", col("__all_customers")).alias("__all_avg_revenue"),
            ratio(col("__all_churned"), col("__all_customers")).alias("__all_churned_share"),
        ])
        .with_columns([
            (ratio(col("avg_revenue"), col("__all_avg_revenue")) - lit(1.0)).alias("lift_vs_all"),
            (ratio(col("churned_share"), col("__all_churned_share")) - lit(1.0))
                .alias("churn_lift_vs_all"),
        ])
        .select(
            [
                col("driver"),
                col("driver_value"),
                col("dimension"),
                col("dimension_value"),
                col("customers"),
                col("share_of_customers"),
                col("avg_revenue"),
                col("avg_predicted_clv").cast(DataType::Float64),
                col("churned_share"),
                col("outcome_customers"),
                col("repurchase_rate"),
                col("revenue_after_per_customer"),
                col("lift_vs_all"),
                col("churn_lift_vs_all"),
                // Each share's and mean's numerator and denominator, so that rows re-aggregate
                // (the lifts are ratios of ratios: row-level only).
                col("__all_customers")
                    .cast(DataType::Int64)
                    .alias("driver_customers"),
                amount_from_parts(col("__rev_sum_w"), col("__rev_sum_m")).alias("revenue"),
            ]
            .into_iter()
            .chain(model_value_sums(
                "__clv_n",
                "__clv_total",
                "predicted_customers",
                "predicted_clv_total",
            ))
            .chain([
                col("__churned_n").cast(DataType::Int64).alias("churned"),
                col("__rep_n").cast(DataType::Int64).alias("repurchased"),
                amount_from_parts(col("__after_sum_w"), col("__after_sum_m"))
                    .alias("revenue_after"),
            ])
            .collect::<Vec<_>>(),
        )
        .collect()
}

/// `nps_migration` from the merged journeys.
fn finish_migration(m: &Merged) -> PolarsResult<DataFrame> {
    m.get("migration")
        .with_columns([
            amount_per("__before", col("customers")).alias("avg_revenue_before"),
            amount_per("__after", col("customers")).alias("avg_revenue_after"),
        ])
        .with_column(
            (lit(100.0)
                * ratio(
                    col("avg_revenue_after") - col("avg_revenue_before"),
                    col("avg_revenue_before"),
                ))
            .alias("revenue_change_pct"),
        )
        .sort(["from_category", "to_category"], Default::default())
        .select([
            col("from_category"),
            col("to_category"),
            col("customers"),
            col("avg_revenue_before"),
            col("avg_revenue_after"),
            col("revenue_change_pct"),
            // The means' sums, so that rows re-aggregate over customers.
            amount_from_parts(col("__before_w"), col("__before_m")).alias("revenue_before"),
            amount_from_parts(col("__after_w"), col("__after_m")).alias("revenue_after"),
        ])
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::pipelines::lifecycle::testing::*;

    /// Both tables as a run computes them (one bucket, and three: the same frames), without a
    /// CLV model.
    fn cx_impact(
        inputs: &Inputs,
        p: &CxImpact,
        cal: &Calendar,
        _fitted: Option<LazyFrame>,
    ) -> PolarsResult<Vec<(&'static str, LazyFrame)>> {
        let tables = crate::pipelines::testing::run_one(p, inputs, cal);
        Ok(["cx_impact", "nps_migration", CUSTOMER_CX]
            .map(|t| (t, tables[t].clone().lazy()))
            .to_vec())
    }

    fn utc(name: &str, v: Vec<Option<&str>>) -> Column {
        Column::new(
            name.into(),
            v.into_iter().map(|s| s.map(us)).collect::<Vec<_>>(),
        )
        .cast(&DataType::Datetime(
            TimeUnit::Microseconds,
            Some(TimeZone::UTC),
        ))
        .unwrap()
    }

    fn inputs() -> Inputs {
        let mut d = Data::default();
        d.order("A", "2026-01-10 12:00:00", 100.0)
            .order("A", "2026-03-15 12:00:00", 50.0)
            .order("B", "2026-02-01 12:00:00", 200.0)
            .order("B", "2026-02-20 12:00:00", -50.0) // a refund: revenue, not a purchase
            .order("C", "2026-06-20 12:00:00", 80.0);
        let mut m = d.inputs();
        m.insert(
            InputKind::Surveys,
            DataFrame::new_infer_height(vec![
                Column::new("response_id".into(), ["R1", "R2", "R3", "R4", "R5", "R6"]),
                Column::new("customer_id".into(), ["A", "A", "A", "B", "C", "D"]),
                Column::new("survey".into(), ["nps", "nps", "csat", "nps", "nps", "nps"]),
                Column::new("score".into(), [3i64, 10, 5, 6, 9, 0]),
                utc(
                    "submitted_at",
                    vec![
                        Some("2026-01-05 12:00:00"),
                        Some("2026-03-01 12:00:00"),
                        Some("2026-03-02 12:00:00"),
                        Some("2026-02-10 12:00:00"),
                        Some("2026-06-25 12:00:00"), // inside the last window
                        Some("2026-03-01 12:00:00"), // D never bought
                    ],
                ),
            ])
            .unwrap()
            .lazy(),
        );
        m.insert(
            InputKind::Tickets,
            DataFrame::new_infer_height(vec![
                Column::new("ticket_id".into(), ["T1", "T2", "T3"]),
                Column::new("customer_id".into(), ["A", "A", "B"]),
                Column::new("channel".into(), ["chat", "email", "chat"]),
                utc(
                    "created_at",
                    vec![
                        Some("2026-03-01 09:00:00"),
                        Some("2025-05-01 09:00:00"),
                        Some("2026-02-05 09:00:00"),
                    ],
                ),
                utc(
                    "first_response_at",
                    vec![
                        Some("2026-03-01 09:00:30"),
                        Some("2025-05-01 14:00:00"),
                        Some("2026-02-05 09:02:00"),
                    ],
                ),
                utc(
                    "resolved_at",
                    vec![
                        Some("2026-03-01 10:00:00"),
                        Some("2025-05-02 09:00:00"),
                        None,
                    ],
                ),
                Column::new("contacts".into(), [Some(1i64), Some(2), None]),
            ])
            .unwrap()
            .lazy(),
        );
        m
    }

    fn params() -> CxImpact {
        let sla = [("chat".to_string(), "60s".to_string())]
            .into_iter()
            .collect();
        CxImpact {
            window_days: 30,
            inactive_after_days: 60,
            by: vec![],
            sla: SlaTargets::from_config(&sla).unwrap(),
            csat: crate::pipelines::survey_scores::Scales::default().csat,
            ltv: None,
            customer_table: true,
        }
    }

    fn row(df: &DataFrame, driver: &str, value: &str) -> DataFrame {
        df.clone()
            .lazy()
            .filter(
                col("driver")
                    .eq(lit(driver))
                    .and(col("driver_value").eq(lit(value))),
            )
            .collect()
            .unwrap()
    }

    fn close(got: Option<f64>, want: f64) {
        let g = got.expect("a value");
        assert!((g - want).abs() < 1e-12, "{g} != {want}");
    }

    #[test]
    fn every_driver_and_outcome_by_hand() {
        let cal = Calendar::new(NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(), "UTC").unwrap();
        let out = cx_impact(&inputs(), &params(), &cal, None).unwrap();
        let impact = out[0].1.clone().collect().unwrap();
        let values = |driver: &str| -> Vec<(String, i64)> {
            let d = impact
                .clone()
                .lazy()
                .filter(col("driver").eq(lit(driver)))
                .collect()
                .unwrap();
            strs(&d, "driver_value")
                .into_iter()
                .zip(i64s(&d, "customers"))
                .collect()
        };
        let v = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
            pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
        };
        // Universe A, B, C (D never bought). Revenue 150, 150, 80; A and B churned (no
        // purchase since May 1: B's refund is not a purchase).
        assert_eq!(
            values("nps_category"),
            v(&[("detractor", 1), ("promoter", 2)])
        );
        assert_eq!(values("csat"), v(&[("none", 2), ("satisfied", 1)]));
        // T2 (2025-05-01) is more than 365 days before as_of.
        assert_eq!(values("ticket_volume"), v(&[("0", 1), ("1", 2)]));
        assert_eq!(
            values("first_contact_resolution"),
            v(&[("no_resolved_tickets", 2), ("some_not_fcr", 1)])
        );
        // A: 30 s chat <= 60 s and 5 h email <= the 24 h default; B: 120 s chat > 60 s.
        assert_eq!(
            values("first_response_sla"),
            v(&[
                ("all_met", 1),
                ("no_responded_tickets", 1),
                ("some_missed", 1)
            ])
        );

        let promoters = row(&impact, "nps_category", "promoter");
        close(f64s(&promoters, "share_of_customers")[0], 2.0 / 3.0);
        close(f64s(&promoters, "avg_revenue")[0], 115.0);
        close(f64s(&promoters, "churned_share")[0], 0.5);
        // C's latest response (June 25) is inside the last 30 days: only A has an outcome.
        assert_eq!(i64s(&promoters, "outcome_customers"), [1]);
        close(f64s(&promoters, "repurchase_rate")[0], 1.0);
        close(f64s(&promoters, "revenue_after_per_customer")[0], 50.0);
        close(
            f64s(&promoters, "lift_vs_all")[0],
            115.0 / (380.0 / 3.0) - 1.0,
        );
        close(
            f64s(&promoters, "churn_lift_vs_all")[0],
            0.5 / (2.0 / 3.0) - 1.0,
        );
        assert_eq!(f64s(&promoters, "avg_predicted_clv"), [None]);

        let detractors = row(&impact, "nps_category", "detractor");
        // B: the only thing in (Feb 10, Mar 12] is the refund: revenue -50, no repurchase.
        close(f64s(&detractors, "repurchase_rate")[0], 0.0);
        close(f64s(&detractors, "revenue_after_per_customer")[0], -50.0);
        close(
            f64s(&detractors, "churn_lift_vs_all")[0],
            1.0 / (2.0 / 3.0) - 1.0,
        );

        let no_csat = row(&impact, "csat", "none");
        assert_eq!(i64s(&no_csat, "outcome_customers"), [0]);
        assert_eq!(f64s(&no_csat, "repurchase_rate"), [None]);

        // Migration: only A has two NPS responses (detractor -> promoter); nothing in the 30
        // days before Jan 5, 50 in the 30 days after Mar 1.
        let mig = out[1].1.clone().collect().unwrap();
        assert_eq!(strs(&mig, "from_category"), ["detractor"]);
        assert_eq!(strs(&mig, "to_category"), ["promoter"]);
        assert_eq!(i64s(&mig, "customers"), [1]);
        assert_eq!(f64s(&mig, "avg_revenue_before"), [Some(0.0)]);
        assert_eq!(f64s(&mig, "avg_revenue_after"), [Some(50.0)]);
        assert_eq!(f64s(&mig, "revenue_change_pct"), [None]);

        // customer_cx: the same customers and figures, one row each.
        let cx = out[2].1.clone().collect().unwrap();
        assert_eq!(strs(&cx, "customer_id"), ["A", "B", "C"]);
        assert_eq!(f64s(&cx, "revenue"), [Some(150.0), Some(150.0), Some(80.0)]);
        assert_eq!(
            strs(&cx, "lifecycle_state"),
            ["churned", "churned", "active"]
        );
        assert_eq!(
            strs(&cx, "nps_category"),
            ["promoter", "detractor", "promoter"]
        );
        assert_eq!(
            bools(&cx, "nps_category_outcome_window"),
            [true, true, false]
        );
        let repurchased: Vec<Option<bool>> = cx
            .column("nps_category_repurchased")
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(repurchased, [Some(true), Some(false), None]);
        assert_eq!(
            f64s(&cx, "nps_category_revenue_after"),
            [Some(50.0), Some(-50.0), None]
        );
        assert_eq!(f64s(&cx, "predicted_clv"), [None, None, None]);
    }

    #[test]
    fn no_driving_experience_means_no_outcome_window_even_with_old_tickets() {
        // E's only ticket is 481 days before as_of, never answered or resolved: ticket_volume
        // 0, no_resolved_tickets and no_responded_tickets, so no driving experience and no
        // outcome window, although E bought nine days after that ticket.
        let mut m = inputs();
        let orders = m[&InputKind::Orders].clone();
        let extra = DataFrame::new_infer_height(vec![
            Column::new("order_id".into(), ["O8", "O9"]),
            Column::new("customer_id".into(), ["E", "E"]),
            utc(
                "ordered_at",
                vec![Some("2025-01-01 12:00:00"), Some("2025-03-15 12:00:00")],
            ),
            Column::new("amount".into(), [10.0, 20.0]),
        ])
        .unwrap();
        m.insert(
            InputKind::Orders,
            concat([orders, extra.lazy()], UnionArgs::default()).unwrap(),
        );
        let tickets = m[&InputKind::Tickets].clone().collect().unwrap();
        let old = DataFrame::new_infer_height(vec![
            Column::new("ticket_id".into(), ["T9"]),
            Column::new("customer_id".into(), ["E"]),
            Column::new("channel".into(), ["email"]),
            utc("created_at", vec![Some("2025-03-06 09:00:00")]),
            utc("first_response_at", vec![None]),
            utc("resolved_at", vec![None]),
            Column::new("contacts".into(), [None::<i64>]),
        ])
        .unwrap();
        m.insert(InputKind::Tickets, tickets.vstack(&old).unwrap().lazy());
        let cal = Calendar::new(NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(), "UTC").unwrap();
        assert_eq!(
            (cal.as_of - NaiveDate::from_ymd_opt(2025, 3, 6).unwrap()).num_days(),
            481
        );
        let out = cx_impact(&m, &params(), &cal, None).unwrap();
        let impact = out[0].1.clone().collect().unwrap();
        for (driver, value, customers) in [
            ("ticket_volume", "0", 2),
            ("first_contact_resolution", "no_resolved_tickets", 3),
            ("first_response_sla", "no_responded_tickets", 2),
        ] {
            let r = row(&impact, driver, value);
            assert_eq!(i64s(&r, "customers"), [customers], "{driver}");
            assert_eq!(i64s(&r, "outcome_customers"), [0], "{driver}");
            assert_eq!(f64s(&r, "repurchase_rate"), [None], "{driver}");
            assert_eq!(f64s(&r, "revenue_after_per_customer"), [None], "{driver}");
        }
    }
}
