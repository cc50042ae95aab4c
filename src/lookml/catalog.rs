//! How each output table re-aggregates: which columns are dimensions, which add up, and how
//! every rate, score, share and mean is rebuilt from sums (the definitions of docs/metrics,
//! whose numerators and denominators each table carries). One entry per table; a column a
//! table has that its entry does not name is a row-level dimension.

/// How a base measure aggregates its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Sum,
    /// A total repeated on every row of a group (a dimension value's customers on each
    /// segment's row): its maximum, not its sum.
    Max,
}

/// A measure computed from other measures.
#[derive(Debug, Clone, Copy)]
pub struct Derived {
    pub name: &'static str,
    /// `factor · num ÷ den` over the base measures `num` and `den`, or (with `expr`) any SQL
    /// over `${measure}` references.
    pub num: &'static str,
    pub den: &'static str,
    pub factor: f64,
    pub expr: Option<&'static str>,
    pub format: Format,
    pub description: &'static str,
}

impl Derived {
    /// The base measures it reads: `num` and `den`, or the `${measure}` references of `expr`.
    pub fn references(&self) -> Vec<&'static str> {
        match self.expr {
            None => vec![self.num, self.den],
            Some(sql) => sql
                .split("${")
                .skip(1)
                .filter_map(|part| part.split('}').next())
                .filter(|name| *name != "TABLE")
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A share or rate between 0 and 1.
    Percent,
    /// A score on 0..100 (or −100..100).
    Score,
    Seconds,
    Money,
    Number,
}

impl Format {
    pub fn lookml(self) -> &'static str {
        match self {
            Format::Percent => "percent_2",
            Format::Score => "decimal_1",
            Format::Seconds => "decimal_0",
            Format::Money => "decimal_2",
            Format::Number => "decimal_2",
        }
    }
}

/// How one table re-aggregates.
#[derive(Debug)]
pub struct TableModel {
    pub table: &'static str,
    /// Columns that are dimensions (their LookML type follows the column's type).
    pub dimensions: &'static [&'static str],
    /// Columns that are base measures, with how they aggregate.
    pub bases: &'static [(&'static str, Agg)],
    pub derived: &'static [Derived],
    /// Whether a row is one customer: its numeric columns are then dimensions too, the base
    /// measures are named `total_<column>`, and there is a `count` measure.
    pub per_customer: bool,
    /// What a user must know to aggregate its rows (in the view's description).
    pub note: &'static str,
}

const fn ratio(
    name: &'static str,
    num: &'static str,
    den: &'static str,
    format: Format,
    description: &'static str,
) -> Derived {
    Derived {
        name,
        num,
        den,
        factor: 1.0,
        expr: None,
        format,
        description,
    }
}

const fn scaled(
    name: &'static str,
    num: &'static str,
    den: &'static str,
    factor: f64,
    description: &'static str,
) -> Derived {
    Derived {
        name,
        num,
        den,
        factor,
        expr: None,
        format: Format::Score,
        description,
    }
}

const fn expr(
    name: &'static str,
    sql: &'static str,
    format: Format,
    description: &'static str,
) -> Derived {
    Derived {
        name,
        num: "",
        den: "",
        factor: 1.0,
        expr: Some(sql),
        format,
        description,
    }
}

use Agg::{Max, Sum};
use Format::{Money, Number, Percent, Seconds};

pub const BREAKDOWN: &str = "Rows come in breakdowns: `dimension` names one (`all` is every row's \
customers together) and `dimension_value` its value. Aggregate within one breakdown (the \
explore filters `dimension` to `all` by default); adding rows of two breakdowns counts their \
customers twice.";

pub static TABLES: &[TableModel] = &[
    TableModel {
        table: "survey_scores",
        dimensions: &["period", "survey", "dimension", "dimension_value", "complete"],
        bases: &[
            ("responses", Sum),
            ("positive", Sum),
            ("neutral", Sum),
            ("negative", Sum),
            ("score_sum", Sum),
        ],
        derived: &[
            expr(
                "score",
                "CASE WHEN MIN(${TABLE}.survey) <> MAX(${TABLE}.survey) THEN NULL \
                 WHEN MIN(${TABLE}.survey) = 'nps' THEN 100.0 * (${positive} - ${negative}) / NULLIF(${responses}, 0) \
                 ELSE 100.0 * ${positive} / NULLIF(${responses}, 0) END",
                Format::Score,
                "NPS: 100 · (positive − negative) ÷ responses; CSAT and CES: 100 · positive ÷ \
                 responses. Null over rows of more than one survey: group or filter by survey",
            ),
            ratio("mean_score", "score_sum", "responses", Number, "mean raw score"),
        ],
        per_customer: false,
        note: "Counts add up over periods and segments, so every score re-aggregates: a quarter \
               of monthly rows gives the quarter's NPS. ci_low and ci_high are row-level.",
    },
    TableModel {
        table: "support_kpis",
        dimensions: &["period", "dimension", "dimension_value", "complete"],
        bases: &[
            ("tickets", Sum),
            ("resolved", Sum),
            ("abandoned", Sum),
            ("csat_responses", Sum),
            ("first_responses", Sum),
            ("first_response_total_s", Sum),
            ("resolution_total_s", Sum),
            ("first_response_business_total_s", Sum),
            ("resolution_business_total_s", Sum),
            ("handled", Sum),
            ("handle_time_total_s", Sum),
            ("fcr_resolved", Sum),
            ("resolved_with_contacts", Sum),
            ("reopened", Sum),
            ("escalated", Sum),
            ("responded", Sum),
            ("sla_met", Sum),
            ("csat_positive", Sum),
        ],
        derived: &[
            ratio(
                "first_response_mean_s",
                "first_response_total_s",
                "first_responses",
                Seconds,
                "mean first response time, seconds",
            ),
            ratio(
                "resolution_mean_s",
                "resolution_total_s",
                "resolved",
                Seconds,
                "mean resolution time, seconds",
            ),
            ratio(
                "first_response_business_mean_s",
                "first_response_business_total_s",
                "first_responses",
                Seconds,
                "mean first response time in business seconds",
            ),
            ratio(
                "resolution_business_mean_s",
                "resolution_business_total_s",
                "resolved",
                Seconds,
                "mean resolution time in business seconds",
            ),
            ratio(
                "aht_mean_s",
                "handle_time_total_s",
                "handled",
                Seconds,
                "mean handle time, seconds",
            ),
            ratio(
                "fcr_rate",
                "fcr_resolved",
                "resolved_with_contacts",
                Percent,
                "first contact resolution",
            ),
            ratio("reopen_rate", "reopened", "resolved", Percent, "reopened ÷ resolved"),
            ratio(
                "abandonment_rate",
                "abandoned",
                "tickets",
                Percent,
                "abandoned ÷ tickets",
            ),
            ratio(
                "escalation_rate",
                "escalated",
                "tickets",
                Percent,
                "escalated ÷ tickets",
            ),
            ratio(
                "sla_first_response_rate",
                "sla_met",
                "responded",
                Percent,
                "first responses within target ÷ responded tickets",
            ),
            scaled(
                "csat_score",
                "csat_positive",
                "csat_responses",
                100.0,
                "100 · positive CSAT responses ÷ CSAT responses",
            ),
            ratio(
                "csat_response_rate",
                "csat_responses",
                "resolved",
                Percent,
                "CSAT responses ÷ resolved tickets",
            ),
        ],
        per_customer: false,
        note: "Tickets count in the period of their creation, so every rate and mean \
               re-aggregates over periods and segments: a month of daily rows gives the month. \
               Medians and 90th percentiles are row-level: they do not re-aggregate.",
    },
    TableModel {
        table: "cohort_retention",
        dimensions: &["cohort", "period", "dimension", "dimension_value", "complete"],
        bases: &[
            ("cohort_size", Sum),
            ("active_customers", Sum),
            ("revenue", Sum),
            ("cumulative_revenue", Sum),
            ("period_0_revenue", Sum),
        ],
        derived: &[
            ratio(
                "retention_rate",
                "active_customers",
                "cohort_size",
                Percent,
                "active customers ÷ cohort size",
            ),
            ratio(
                "cumulative_revenue_per_customer",
                "cumulative_revenue",
                "cohort_size",
                Money,
                "revenue of periods 0..k ÷ cohort size",
            ),
            ratio(
                "revenue_retention",
                "revenue",
                "period_0_revenue",
                Percent,
                "revenue ÷ the cohorts' period-0 revenue",
            ),
        ],
        per_customer: false,
        note: "Re-aggregates over cohorts and segments at the same period index k (the pooled \
               retention of several cohorts); do not add rows of different k.",
    },
    TableModel {
        table: "churn",
        dimensions: &["period", "dimension", "dimension_value", "complete"],
        bases: &[
            ("customers_start", Sum),
            ("new_customers", Sum),
            ("reactivated", Sum),
            ("churned", Sum),
            ("customers_end", Sum),
            ("retained", Sum),
            ("revenue", Sum),
            ("nrr_revenue", Sum),
            ("nrr_base_revenue", Sum),
        ],
        derived: &[
            ratio(
                "churn_rate",
                "churned",
                "customers_start",
                Percent,
                "churned ÷ customers at the start",
            ),
            ratio(
                "retention_rate",
                "retained",
                "customers_start",
                Percent,
                "retained ÷ customers at the start",
            ),
            ratio(
                "net_revenue_retention",
                "nrr_revenue",
                "nrr_base_revenue",
                Percent,
                "the base customers' revenue ÷ their base revenue",
            ),
        ],
        per_customer: false,
        note: "Re-aggregates over segments of one period. Over several periods the same sums \
               give the start-weighted mean of the periods' rates, which is not the churn of \
               the longer period (run the pipeline with that period).",
    },
    TableModel {
        table: "activation",
        dimensions: &["cohort", "day", "dimension", "dimension_value"],
        bases: &[("signups", Sum), ("eligible", Sum), ("active", Sum)],
        derived: &[ratio(
            "rate",
            "active",
            "eligible",
            Percent,
            "active ÷ eligible",
        )],
        per_customer: false,
        note: "Re-aggregates over cohorts and segments for the same day n; do not add rows of \
               different days.",
    },
    TableModel {
        table: "ltv_segments",
        dimensions: &["dimension", "dimension_value", "rfm_segment"],
        bases: &[
            ("customers", Sum),
            ("revenue", Sum),
            ("orders", Sum),
            ("recency_days_total", Sum),
            ("predicted_customers", Sum),
            ("predicted_clv_total", Sum),
            ("p_alive_customers", Sum),
            ("p_alive_total", Sum),
            ("dimension_customers", Max),
            ("dimension_revenue", Max),
        ],
        derived: &[
            ratio(
                "share_of_customers",
                "customers",
                "dimension_customers",
                Percent,
                "the segments' customers ÷ the dimension value's",
            ),
            ratio(
                "share_of_revenue",
                "revenue",
                "dimension_revenue",
                Percent,
                "the segments' revenue ÷ the dimension value's",
            ),
            ratio("avg_revenue", "revenue", "customers", Money, "revenue per customer"),
            ratio("avg_orders", "orders", "customers", Number, "orders per customer"),
            ratio(
                "avg_recency_days",
                "recency_days_total",
                "customers",
                Number,
                "mean days since the last purchase",
            ),
            ratio(
                "avg_predicted_clv",
                "predicted_clv_total",
                "predicted_customers",
                Money,
                "mean predicted CLV of the customers that have one",
            ),
            ratio(
                "avg_p_alive",
                "p_alive_total",
                "p_alive_customers",
                Percent,
                "mean P(alive) of the customers that have one",
            ),
        ],
        per_customer: false,
        note: "Re-aggregates over RFM segments within one dimension value (the shares' \
               denominators are that value's totals).",
    },
    TableModel {
        table: "cx_impact",
        dimensions: &["driver", "driver_value", "dimension", "dimension_value"],
        bases: &[
            ("customers", Sum),
            ("outcome_customers", Sum),
            ("revenue", Sum),
            ("predicted_customers", Sum),
            ("predicted_clv_total", Sum),
            ("churned", Sum),
            ("repurchased", Sum),
            ("revenue_after", Sum),
            ("driver_customers", Max),
        ],
        derived: &[
            ratio(
                "share_of_customers",
                "customers",
                "driver_customers",
                Percent,
                "customers ÷ the driver's customers in the dimension value",
            ),
            ratio("avg_revenue", "revenue", "customers", Money, "revenue per customer"),
            ratio(
                "avg_predicted_clv",
                "predicted_clv_total",
                "predicted_customers",
                Money,
                "mean predicted CLV",
            ),
            ratio(
                "churned_share",
                "churned",
                "customers",
                Percent,
                "churned ÷ customers",
            ),
            ratio(
                "repurchase_rate",
                "repurchased",
                "outcome_customers",
                Percent,
                "repurchased in the window ÷ outcome customers",
            ),
            ratio(
                "revenue_after_per_customer",
                "revenue_after",
                "outcome_customers",
                Money,
                "revenue in the window ÷ outcome customers",
            ),
        ],
        per_customer: false,
        note: "Re-aggregates over the values of one driver within one dimension value. The \
               lifts compare a row with its driver's overall figures: row-level.",
    },
    TableModel {
        table: "nps_migration",
        dimensions: &["from_category", "to_category"],
        bases: &[
            ("customers", Sum),
            ("revenue_before", Sum),
            ("revenue_after", Sum),
        ],
        derived: &[
            ratio(
                "avg_revenue_before",
                "revenue_before",
                "customers",
                Money,
                "revenue before per customer",
            ),
            ratio(
                "avg_revenue_after",
                "revenue_after",
                "customers",
                Money,
                "revenue after per customer",
            ),
            expr(
                "revenue_change_pct",
                "100.0 * (${revenue_after} - ${revenue_before}) / NULLIF(${revenue_before}, 0)",
                Format::Score,
                "100 · (after − before) ÷ before",
            ),
        ],
        per_customer: false,
        note: "Re-aggregates over categories.",
    },
    TableModel {
        table: "clv_validation",
        dimensions: &["frequency_bucket"],
        bases: &[
            ("customers", Sum),
            ("predicted_customers", Sum),
            ("predicted_purchases_total", Sum),
            ("actual_purchases_total", Sum),
            ("purchases_abs_error_total", Sum),
            ("spend_customers", Sum),
            ("predicted_spend_total", Sum),
            ("actual_spend_customers", Sum),
            ("actual_spend_total", Sum),
        ],
        derived: &[
            ratio(
                "predicted_purchases_mean",
                "predicted_purchases_total",
                "predicted_customers",
                Number,
                "mean predicted holdout purchases",
            ),
            ratio(
                "actual_purchases_mean",
                "actual_purchases_total",
                "customers",
                Number,
                "mean actual holdout purchases",
            ),
            ratio(
                "purchases_mae",
                "purchases_abs_error_total",
                "predicted_customers",
                Number,
                "mean absolute error of the purchases",
            ),
            ratio(
                "predicted_spend_mean",
                "predicted_spend_total",
                "spend_customers",
                Money,
                "mean predicted order value",
            ),
            ratio(
                "actual_spend_mean",
                "actual_spend_total",
                "actual_spend_customers",
                Money,
                "mean holdout order value",
            ),
        ],
        per_customer: false,
        note: "The `all` bucket is every customer: re-aggregate over the other buckets, or read \
               `all` alone.",
    },
    TableModel {
        table: "clv_model",
        dimensions: &["model", "parameter", "note"],
        bases: &[],
        derived: &[],
        per_customer: false,
        note: "The fitted parameters: row-level values.",
    },
    TableModel {
        table: "rejected_rows",
        dimensions: &["input", "reason", "example_id"],
        bases: &[("row_count", Sum)],
        derived: &[],
        per_customer: false,
        note: "Rows rejected per input and reason.",
    },
    TableModel {
        table: "customer_ltv",
        dimensions: &[],
        bases: &[
            ("orders", Sum),
            ("revenue", Sum),
            ("expected_purchases", Sum),
            ("predicted_clv", Sum),
        ],
        derived: &[ratio(
            "avg_order_value",
            "revenue",
            "orders",
            Money,
            "revenue ÷ orders",
        )],
        per_customer: true,
        note: "One row per customer.",
    },
    TableModel {
        table: "customer_cx",
        dimensions: &[],
        bases: &[("revenue", Sum), ("predicted_clv", Sum)],
        derived: &[],
        per_customer: true,
        note: "One row per customer, with each driver's value and outcome.",
    },
    TableModel {
        table: super::RUN_LOG,
        dimensions: &[],
        bases: &[],
        derived: &[],
        per_customer: true,
        note: "One row per successful run; the datagroup triggers on max(finished_at).",
    },
];

/// The model of `table`, when cxmetrics writes it.
pub fn model(table: &str) -> Option<&'static TableModel> {
    TABLES.iter().find(|m| m.table == table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ratio_refers_to_base_measures_of_its_table() {
        for m in TABLES {
            let base = |n: &str| m.bases.iter().any(|(b, _)| *b == n);
            for d in m.derived {
                let refs = d.references();
                assert!(!refs.is_empty(), "{}.{}", m.table, d.name);
                for name in refs {
                    assert!(base(name), "{}.{}: {name}", m.table, d.name);
                }
                assert!(!base(d.name), "{}.{} is both", m.table, d.name);
            }
        }
    }
}
