//! Pipeline `support_kpis`: helpdesk KPIs per period, overall and per ticket segment.
//!
//! Inputs: `tickets` (required; cleaned: no negative durations, and `first_response_at` /
//! `resolved_at` later than as_of already null), `surveys` (optional, for CSAT). Each ticket
//! belongs to the period containing the local date of `created_at`. Per (period, dimension,
//! dimension_value), with flags that are null counted as false:
//!
//! - `tickets`: tickets created in the period; `resolved`: of those, `resolved_at` not null;
//!   `abandoned`: `abandoned` = true.
//! - `first_response_{mean,median,p90}_s`: first_response_at - created_at in seconds, over
//!   tickets that have a first response and are not abandoned.
//! - `resolution_{mean,median,p90}_s`: resolved_at - created_at in seconds, over resolved tickets.
//!   Percentiles interpolate linearly between order statistics (numpy's default, DuckDB's
//!   `quantile_cont`).
//! - `aht_mean_s`: mean `handle_time_s` over tickets where it is known.
//! - `fcr_rate`: resolved tickets with contacts = 1 / resolved tickets with contacts known.
//! - `reopen_rate`: tickets with reopened = true / resolved.
//! - `abandonment_rate`: abandoned / tickets; `escalation_rate`: escalated / tickets.
//! - `sla_first_response_rate`: responded tickets (first_response_at not null) whose first
//!   response time is at most their channel's target (else the `default` target, 24h unless
//!   configured) / responded tickets.
//! - CSAT: responses with survey = csat joined to the tickets by ticket_id (a ticket may have
//!   several): `csat_responses`, `csat_score` = 100 positive / responses (positive = score at or
//!   above the CSAT scale's `positive_from`, as in `survey_scores`), `csat_response_rate` =
//!   csat_responses / resolved.
//! - Rates are null where their denominator is 0. `complete`: the period's last day <= as_of.

use polars::prelude::*;

use super::common::{by_dimensions, count_true, ratio, ALL};
use super::survey_scores::Scale;
use crate::config::Period;
use crate::time::{parse_duration_s, Calendar};

/// First-response targets in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaTargets {
    pub per_channel: Vec<(String, f64)>,
    pub default: f64,
}

/// Target when the job sets none for a channel and no `default`.
pub const DEFAULT_SLA_S: f64 = 24.0 * 3600.0;

impl SlaTargets {
    /// Parses `channel -> duration` (with the optional `default` key); lists every bad value.
    pub fn from_config(
        map: &std::collections::BTreeMap<String, String>,
    ) -> Result<SlaTargets, Vec<String>> {
        let mut errors = Vec::new();
        let mut per_channel = Vec::new();
        let mut default = DEFAULT_SLA_S;
        for (channel, text) in map {
            match parse_duration_s(text) {
                Ok(s) if channel == "default" => default = s,
                Ok(s) => per_channel.push((channel.clone(), s)),
                Err(e) => errors.push(format!("{channel}: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(SlaTargets {
                per_channel,
                default,
            })
        } else {
            Err(errors)
        }
    }

    fn target_expr(&self, channel: Expr) -> Expr {
        let mut e = lit(self.default);
        for (ch, s) in self.per_channel.iter().rev() {
            e = when(channel.clone().eq(lit(ch.as_str())))
                .then(lit(*s))
                .otherwise(e);
        }
        e
    }
}

/// Resolved parameters of the pipeline.
#[derive(Debug, Clone)]
pub struct SupportKpis {
    pub period: Period,
    pub by: Vec<String>,
    pub sla: SlaTargets,
    pub csat: Scale,
}

fn seconds_between(later: &str, earlier: &str) -> Expr {
    (col(later).dt().timestamp(TimeUnit::Microseconds)
        - col(earlier).dt().timestamp(TimeUnit::Microseconds))
    .cast(DataType::Float64)
        / lit(1_000_000.0)
}

fn flag(name: &str) -> Expr {
    col(name).fill_null(lit(false))
}

/// Computes the `support_kpis` table.
pub fn support_kpis(
    tickets: LazyFrame,
    surveys: Option<LazyFrame>,
    p: &SupportKpis,
    cal: &Calendar,
) -> LazyFrame {
    // CSAT aggregated per ticket first, so a ticket with several responses is still one ticket.
    let csat_per_ticket = surveys.map(|s| {
        s.filter(
            col("survey")
                .eq(lit("csat"))
                .and(col("ticket_id").is_not_null()),
        )
        .group_by([col("ticket_id")])
        .agg([
            len().cast(DataType::Int64).alias("__csat_n"),
            count_true(col("score").gt_eq(lit(p.csat.positive_from))).alias("__csat_pos"),
        ])
    });
    let tickets = match csat_per_ticket {
        Some(c) => tickets.join(
            c,
            [col("ticket_id")],
            [col("ticket_id")],
            JoinArgs::new(JoinType::Left),
        ),
        None => tickets.with_columns([
            lit(NULL).cast(DataType::Int64).alias("__csat_n"),
            lit(NULL).cast(DataType::Int64).alias("__csat_pos"),
        ]),
    };

    let responded = col("first_response_at").is_not_null();
    let resolved = col("resolved_at").is_not_null();
    let base = tickets.with_columns([
        p.period
            .start(cal.local_date(col("created_at")))
            .alias("period"),
        when(responded.clone().and(flag("abandoned").not()))
            .then(seconds_between("first_response_at", "created_at"))
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias("__frt"),
        when(resolved.clone())
            .then(seconds_between("resolved_at", "created_at"))
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias("__res"),
        responded
            .clone()
            .and(
                seconds_between("first_response_at", "created_at")
                    .lt_eq(p.sla.target_expr(col("channel"))),
            )
            .alias("__sla_met"),
        responded.alias("__responded"),
        resolved.clone().alias("__resolved"),
        resolved
            .clone()
            .and(col("contacts").eq(lit(1)))
            .fill_null(lit(false))
            .alias("__fcr"),
        resolved
            .and(col("contacts").is_not_null())
            .alias("__contacts_known"),
    ]);
    let q = |name: &str, quantile: f64| col(name).quantile(lit(quantile), QuantileMethod::Linear);
    let counts = by_dimensions(
        base,
        &[col("period")],
        &p.by,
        &[
            len().cast(DataType::Int64).alias("tickets"),
            count_true(col("__resolved")).alias("resolved"),
            count_true(flag("abandoned")).alias("abandoned"),
            col("__frt").mean().alias("first_response_mean_s"),
            col("__frt").median().alias("first_response_median_s"),
            q("__frt", 0.9).alias("first_response_p90_s"),
            col("__res").mean().alias("resolution_mean_s"),
            col("__res").median().alias("resolution_median_s"),
            q("__res", 0.9).alias("resolution_p90_s"),
            col("handle_time_s").mean().alias("aht_mean_s"),
            count_true(col("__fcr")).alias("__fcr_n"),
            count_true(col("__contacts_known")).alias("__contacts_n"),
            count_true(flag("reopened")).alias("__reopened_n"),
            count_true(flag("escalated")).alias("__escalated_n"),
            count_true(col("__sla_met")).alias("__sla_n"),
            count_true(col("__responded")).alias("__responded_n"),
            col("__csat_n").sum().alias("csat_responses"),
            col("__csat_pos").sum().alias("__csat_pos_n"),
        ],
    );
    counts
        .with_columns([
            ratio(col("__fcr_n"), col("__contacts_n")).alias("fcr_rate"),
            ratio(col("__reopened_n"), col("resolved")).alias("reopen_rate"),
            ratio(col("abandoned"), col("tickets")).alias("abandonment_rate"),
            ratio(col("__escalated_n"), col("tickets")).alias("escalation_rate"),
            ratio(col("__sla_n"), col("__responded_n")).alias("sla_first_response_rate"),
            (lit(100.0) * ratio(col("__csat_pos_n"), col("csat_responses"))).alias("csat_score"),
            ratio(col("csat_responses"), col("resolved")).alias("csat_response_rate"),
            cal.period_complete(col("period"), p.period)
                .alias("complete"),
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
            col("tickets"),
            col("resolved"),
            col("abandoned"),
            col("first_response_mean_s").cast(DataType::Float64),
            col("first_response_median_s").cast(DataType::Float64),
            col("first_response_p90_s").cast(DataType::Float64),
            col("resolution_mean_s").cast(DataType::Float64),
            col("resolution_median_s").cast(DataType::Float64),
            col("resolution_p90_s").cast(DataType::Float64),
            col("aht_mean_s").cast(DataType::Float64),
            col("fcr_rate"),
            col("reopen_rate"),
            col("abandonment_rate"),
            col("escalation_rate"),
            col("sla_first_response_rate"),
            col("csat_score"),
            col("csat_response_rate"),
            col("csat_responses")
                .fill_null(lit(0))
                .cast(DataType::Int64),
            col("complete"),
        ])
}
