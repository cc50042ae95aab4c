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

use std::collections::BTreeMap;
use std::sync::Arc;

use polars::prelude::*;
use serde::Deserialize;

use super::common::{
    by_dimensions, by_dimensions_rows, count_true, div_scalar, exact_sum_partial, exact_sums,
    ratio, SortOverallFirst,
};
use super::survey_scores::Scale;
use super::{
    params, Bucket, Finalized, InputUse, JobSettings, MapOutput, Merge, Merged, Pipeline, Spec,
    TableData,
};
use crate::business_hours::{business_micros, BusinessHours, BusinessHoursConfig};
use crate::config::Period;
use crate::contracts::InputKind;
use crate::engine::profile::collect;
use crate::problems::Problems;
use crate::time::Calendar;
use crate::validate::parse_bounded_duration;

/// The job file's `pipelines.support_kpis`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportKpisParams {
    #[serde(default = "week")]
    pub period: Period,
    /// Ticket columns to break the KPIs down by.
    #[serde(default = "default_support_by")]
    pub by: Vec<String>,
    /// First-response targets: channel -> duration (`90s`, `15m`, `4h`, `2d`), plus `default`
    /// and `in` (`calendar` or `business_hours`).
    #[serde(default)]
    pub sla_first_response: BTreeMap<String, String>,
    /// Office hours: FRT and TTR are also given in business time.
    #[serde(default)]
    pub business_hours: Option<BusinessHoursConfig>,
}

fn week() -> Period {
    Period::Week
}

fn default_support_by() -> Vec<String> {
    vec!["channel".to_string()]
}

/// The configuration of `support_kpis`.
pub struct SupportKpisSpec;
pub static SPEC: SupportKpisSpec = SupportKpisSpec;

impl Spec for SupportKpisSpec {
    fn name(&self) -> &'static str {
        "support_kpis"
    }

    fn build(
        &self,
        value: serde_yaml::Value,
        at: &str,
        settings: &mut JobSettings,
        problems: &mut Problems,
    ) -> Option<Box<dyn Pipeline>> {
        let p: SupportKpisParams = params(value, at, problems)?;
        let business = p.business_hours.as_ref().and_then(|c| {
            match BusinessHours::from_config(c, &format!("{at}.business_hours")) {
                Ok(h) => Some(Arc::new(h)),
                Err(errors) => {
                    for (path, e) in errors {
                        problems.push(&path, e);
                    }
                    None
                }
            }
        });
        let mut sla = match SlaTargets::from_config(&p.sla_first_response) {
            Ok(sla) => sla,
            Err(errors) => {
                for e in errors {
                    problems.push(&format!("{at}.sla_first_response"), e);
                }
                SlaTargets::default()
            }
        };
        if sla.in_business_hours {
            match &business {
                Some(h) => sla.business = Some(h.clone()),
                None if p.business_hours.is_none() => problems.push(
                    &format!("{at}.sla_first_response.in"),
                    "`business_hours` needs `support_kpis.business_hours`",
                ),
                None => {}
            }
        }
        // cx_impact judges first responses by the same targets.
        settings.sla = sla.clone();
        Some(Box::new(SupportKpis {
            period: p.period,
            by: p.by,
            sla,
            csat: settings.scales.csat,
            business,
        }))
    }
}

/// First-response targets in microseconds, compared with the integer microseconds between
/// the two timestamps so that a response exactly at its target meets it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaTargets {
    pub per_channel: Vec<(String, i64)>,
    pub default: i64,
    /// `in: business_hours`: the targets are business time.
    pub in_business_hours: bool,
    /// The calendar the targets are measured in, when in business hours.
    pub business: Option<Arc<BusinessHours>>,
}

/// Target when the job sets none for a channel and no `default` (24 h).
pub const DEFAULT_SLA_US: i64 = 24 * 3600 * 1_000_000;

/// The most first-response targets a job may give (one per channel, plus `default`).
pub const MAX_SLA_TARGETS: usize = 256;

impl SlaTargets {
    /// Parses `channel -> duration` (with the optional `default` key); lists every bad value.
    pub fn from_config(
        map: &std::collections::BTreeMap<String, String>,
    ) -> Result<SlaTargets, Vec<String>> {
        let mut errors = Vec::new();
        if map.len() > MAX_SLA_TARGETS {
            return Err(vec![format!(
                "lists {} targets; at most {MAX_SLA_TARGETS} are allowed",
                map.len()
            )]);
        }
        let mut per_channel = Vec::new();
        let mut default = DEFAULT_SLA_US;
        let mut in_business_hours = false;
        for (channel, text) in map {
            if channel == "in" {
                match text.as_str() {
                    "calendar" => {}
                    "business_hours" => in_business_hours = true,
                    other => errors.push(format!(
                        "in: `{other}` is not `calendar` or `business_hours`"
                    )),
                }
                continue;
            }
            match parse_bounded_duration(text) {
                Ok(s) if channel == "default" => default = s,
                Ok(s) => per_channel.push((channel.clone(), s)),
                Err(e) => errors.push(format!("{channel}: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(SlaTargets {
                per_channel,
                default,
                in_business_hours,
                business: None,
            })
        } else {
            Err(errors)
        }
    }

    /// Expression: the first-response target of each row's `channel`, in microseconds.
    pub fn target_expr(&self, channel: Expr) -> Expr {
        let mut e = lit(self.default);
        for (ch, s) in self.per_channel.iter().rev() {
            e = when(channel.clone().eq(lit(ch.as_str())))
                .then(lit(*s))
                .otherwise(e);
        }
        e
    }

    /// Expression: whether each row's first response (`first_response_at` − `created_at`, in
    /// business time when the targets are) meets its channel's target; null without one.
    pub fn met_expr(&self) -> Expr {
        let took = match &self.business {
            Some(h) => business_micros(
                col("first_response_at"),
                col("created_at"),
                col("channel"),
                h.clone(),
            ),
            None => micros_between("first_response_at", "created_at"),
        };
        self.meets(took)
    }

    /// Expression: whether `took`, each row's first-response time in microseconds (in the
    /// time the targets are measured in), meets its channel's target.
    pub fn meets(&self, took: Expr) -> Expr {
        took.lt_eq(self.target_expr(col("channel")))
    }
}

impl Default for SlaTargets {
    /// 24h for every channel.
    fn default() -> Self {
        SlaTargets {
            per_channel: Vec::new(),
            default: DEFAULT_SLA_US,
            in_business_hours: false,
            business: None,
        }
    }
}

/// Resolved parameters of the pipeline.
#[derive(Debug, Clone)]
pub struct SupportKpis {
    pub period: Period,
    pub by: Vec<String>,
    pub sla: SlaTargets,
    pub csat: Scale,
    /// With office hours: FRT and TTR also in business time.
    pub business: Option<Arc<BusinessHours>>,
}

impl Pipeline for SupportKpis {
    fn name(&self) -> &'static str {
        "support_kpis"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["support_kpis"]
    }

    fn inputs(&self) -> InputUse {
        InputUse {
            required: vec![InputKind::Tickets],
            // The CSAT responses of all surveys arrive as `Facts::csat_by_ticket`.
            optional: vec![InputKind::Surveys],
            extra: vec![(InputKind::Tickets, self.by.clone())],
        }
    }

    fn by(&self) -> (InputKind, &[String]) {
        (InputKind::Tickets, &self.by)
    }

    fn map(&self, _round: usize, b: &Bucket) -> PolarsResult<MapOutput> {
        let mem = Engine::InMemory;
        // Computed once for the four partials below (the CSAT join reads a table of every
        // bucket's tickets).
        let base = collect(
            per_ticket(
                b.input(InputKind::Tickets),
                b.facts.csat_by_ticket.clone(),
                self,
                b.cal,
            ),
            "support_kpis.tickets",
            mem,
        )?
        .lazy();
        let keys = [col("period")];
        let counts = collect(
            by_dimensions(
                base.clone(),
                &keys,
                &self.by,
                &count_aggs(self.business.is_some()),
            ),
            "support_kpis.counts",
            mem,
        )?;
        let aht = collect(
            exact_sum_partial(base.clone(), &keys, &self.by, col("handle_time_s")),
            "support_kpis.aht",
            mem,
        )?;
        let rows = |value: &str| {
            collect(
                by_dimensions_rows(base.clone(), &keys, &self.by, &[col(value).alias("__v")])
                    .filter(col("__v").is_not_null()),
                &format!("support_kpis.{value}"),
                mem,
            )
        };
        let mut out = MapOutput::default()
            .partial("counts", Merge::sum(KEYS), counts)
            .partial("aht", Merge::sum(EXACT_KEYS), aht)
            .partial("first_response", Merge::Rows { keys: KEYS }, rows("__frt")?)
            .partial("resolution", Merge::Rows { keys: KEYS }, rows("__res")?);
        if self.business.is_some() {
            out = out
                .partial(
                    "first_response_business",
                    Merge::Rows { keys: KEYS },
                    rows("__frtb")?,
                )
                .partial(
                    "resolution_business",
                    Merge::Rows { keys: KEYS },
                    rows("__resb")?,
                );
        }
        Ok(out)
    }

    fn finalize(&self, _round: usize, m: &Merged) -> PolarsResult<Finalized> {
        let table = finish(m, self)?;
        Ok(Finalized::Tables(vec![(
            "support_kpis",
            TableData::Frame(table),
        )]))
    }
}

/// The keys of the partials: every other column of `counts` is an integer count or sum.
const KEYS: &[&str] = &["period", "dimension", "dimension_value"];
const EXACT_KEYS: &[&str] = &["period", "__e", "dimension", "dimension_value"];

/// CSAT responses per ticket (`ticket_id`, `__csat_n`, `__csat_pos`) over all `surveys`, a
/// positive response being one at or above `positive_from` of the CSAT scale.
pub fn csat_by_ticket(surveys: LazyFrame, positive_from: i64) -> LazyFrame {
    csat_responses(surveys, positive_from)
        .group_by([col("ticket_id")])
        .agg([
            len().cast(DataType::Int64).alias("__csat_n"),
            count_true(col("__positive")).alias("__csat_pos"),
        ])
}

/// The CSAT responses about a ticket, one row per response with `__positive` added; what
/// `csat_by_ticket` counts (the Spark engine counts them with integer sums, `crate::spark`).
pub fn csat_responses(surveys: LazyFrame, positive_from: i64) -> LazyFrame {
    surveys
        .filter(
            col("survey")
                .eq(lit("csat"))
                .and(col("ticket_id").is_not_null()),
        )
        .with_column(
            col("score")
                .gt_eq(lit(positive_from))
                .fill_null(lit(false))
                .alias("__positive"),
        )
}

/// Microseconds from `earlier` to `later` (Int64).
pub fn micros_between(later: &str, earlier: &str) -> Expr {
    col(later).dt().timestamp(TimeUnit::Microseconds)
        - col(earlier).dt().timestamp(TimeUnit::Microseconds)
}

fn seconds_between(later: &str, earlier: &str) -> Expr {
    div_scalar(micros_between(later, earlier), 1_000_000.0)
}

fn flag(name: &str) -> Expr {
    col(name).fill_null(lit(false))
}

/// Every ticket with its period, its response and resolution times (seconds, and whole
/// microseconds for the exact sums) and its flags.
fn per_ticket(
    tickets: LazyFrame,
    csat: Option<LazyFrame>,
    p: &SupportKpis,
    cal: &Calendar,
) -> LazyFrame {
    let tickets = match csat {
        // The responses of this bucket's tickets first (a semi join hashes the bucket's ids,
        // not every response's), then joined to the tickets.
        Some(c) => {
            let ours = c.join(
                tickets.clone().select([col("ticket_id")]),
                [col("ticket_id")],
                [col("ticket_id")],
                JoinArgs::new(JoinType::Semi),
            );
            tickets.join(
                ours,
                [col("ticket_id")],
                [col("ticket_id")],
                JoinArgs::new(JoinType::Left),
            )
        }
        None => tickets.with_columns([
            lit(NULL).cast(DataType::Int64).alias("__csat_n"),
            lit(NULL).cast(DataType::Int64).alias("__csat_pos"),
        ]),
    };
    let responded = col("first_response_at").is_not_null();
    let resolved = col("resolved_at").is_not_null();
    let counted_response = responded.clone().and(flag("abandoned").not());
    let tickets = match &p.business {
        Some(h) => {
            let b = |later: &str| {
                business_micros(col(later), col("created_at"), col("channel"), h.clone())
            };
            // Every response's business time once: the statistics read the counted ones, the
            // targets (when in business hours) all of them.
            tickets
                .with_columns([
                    b("first_response_at").alias("__frb_us"),
                    when(resolved.clone())
                        .then(b("resolved_at"))
                        .otherwise(lit(NULL).cast(DataType::Int64))
                        .alias("__resb_us"),
                ])
                .with_column(
                    when(counted_response.clone())
                        .then(col("__frb_us"))
                        .otherwise(lit(NULL).cast(DataType::Int64))
                        .alias("__frtb_us"),
                )
                .with_columns([
                    div_scalar(col("__frtb_us"), 1_000_000.0).alias("__frtb"),
                    div_scalar(col("__resb_us"), 1_000_000.0).alias("__resb"),
                ])
        }
        None => tickets,
    };
    tickets.with_columns([
        p.period
            .start(cal.local_date(col("created_at")))
            .alias("period"),
        when(counted_response.clone())
            .then(seconds_between("first_response_at", "created_at"))
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias("__frt"),
        when(counted_response)
            .then(micros_between("first_response_at", "created_at"))
            .otherwise(lit(NULL).cast(DataType::Int64))
            .alias("__frt_us"),
        when(resolved.clone())
            .then(seconds_between("resolved_at", "created_at"))
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias("__res"),
        when(resolved.clone())
            .then(micros_between("resolved_at", "created_at"))
            .otherwise(lit(NULL).cast(DataType::Int64))
            .alias("__res_us"),
        // `sla.business` is the calendar of `business_hours`, whose times are `__frb_us`.
        responded
            .clone()
            .and(match (&p.business, &p.sla.business) {
                (Some(_), Some(_)) => p.sla.meets(col("__frb_us")),
                _ => p.sla.met_expr(),
            })
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
    ])
}

/// The counts and exact sums per group. Durations are summed in whole microseconds, as
/// 128-bit integers: exact whatever the order of the tickets.
fn count_aggs(business: bool) -> Vec<Expr> {
    let n = |name: &str| col(name).is_not_null().cast(DataType::Int64).sum();
    let total = |name: &str| col(name).cast(DataType::Int128).sum();
    let business = if business {
        vec![
            n("__frtb_us").alias("__frtb_n"),
            total("__frtb_us").alias("__frtb_total"),
            n("__resb_us").alias("__resb_n"),
            total("__resb_us").alias("__resb_total"),
        ]
    } else {
        Vec::new()
    };
    business
        .into_iter()
        .chain([
            len().cast(DataType::Int64).alias("tickets"),
            count_true(col("__resolved")).alias("resolved"),
            count_true(flag("abandoned")).alias("abandoned"),
            n("__frt_us").alias("__frt_n"),
            total("__frt_us").alias("__frt_total"),
            n("__res_us").alias("__res_n"),
            total("__res_us").alias("__res_total"),
            n("handle_time_s").alias("__aht_n"),
            count_true(col("__fcr")).alias("__fcr_n"),
            count_true(col("__contacts_known")).alias("__contacts_n"),
            count_true(flag("reopened")).alias("__reopened_n"),
            count_true(flag("escalated")).alias("__escalated_n"),
            count_true(col("__sla_met")).alias("__sla_n"),
            count_true(col("__responded")).alias("__responded_n"),
            col("__csat_n")
                .fill_null(lit(0i64))
                .sum()
                .alias("csat_responses"),
            col("__csat_pos")
                .fill_null(lit(0i64))
                .sum()
                .alias("__csat_pos_n"),
        ])
        .collect()
}

/// The median and 90th percentile of the partial `name` (rows of `period`, `dimension`,
/// `dimension_value`, `__v`) per group, as `{name}_median_s` and `{name}_p90_s`. Every value of
/// a group is there, whatever bucket it came from: the quantiles are exact. One chunk of
/// groups at a time.
fn quantiles(m: &Merged, name: &str) -> PolarsResult<LazyFrame> {
    let q = |quantile: f64| col("__v").quantile(lit(quantile), QuantileMethod::Linear);
    let df = m.per_chunk(name, |values| {
        collect(
            values
                .group_by(KEYS.iter().map(|k| col(*k)).collect::<Vec<_>>())
                .agg([
                    q(0.5).alias(format!("{name}_median_s")),
                    q(0.9).alias(format!("{name}_p90_s")),
                ]),
            &format!("support_kpis.{name}_quantiles"),
            Engine::InMemory,
        )
    })?;
    Ok(df.lazy())
}

/// Microseconds to seconds, exactly divided.
fn mean_seconds(total_us: Expr, n: Expr) -> Expr {
    div_scalar(ratio(total_us, n), 1_000_000.0)
}

/// The exact sum of microseconds `total_us` in seconds (one rounding to a double, then an
/// exact division).
fn total_seconds(total_us: &str) -> Expr {
    div_scalar(
        col(total_us).cast(DataType::Float64).fill_null(lit(0.0)),
        1_000_000.0,
    )
}

/// Each rate's numerator and denominator and each mean's sum and count, so that rows
/// re-aggregate (a quarter of weekly rows: sum(numerator) ÷ sum(denominator)). Counts are
/// Int64; sums of durations are seconds. `tickets`, `resolved`, `abandoned` and
/// `csat_responses` are columns already.
fn reaggregation(business: bool) -> Vec<Expr> {
    let count = |c: &str| col(c).fill_null(lit(0i64)).cast(DataType::Int64);
    let mut out = vec![
        count("__frt_n").alias("first_responses"),
        col("first_response_total_s"),
        col("resolution_total_s"),
    ];
    if business {
        out.extend([
            col("first_response_business_total_s"),
            col("resolution_business_total_s"),
        ]);
    }
    out.extend([
        count("__aht_n").alias("handled"),
        col("__aht_total")
            .fill_null(lit(0.0))
            .cast(DataType::Float64)
            .alias("handle_time_total_s"),
        count("__fcr_n").alias("fcr_resolved"),
        count("__contacts_n").alias("resolved_with_contacts"),
        count("__reopened_n").alias("reopened"),
        count("__escalated_n").alias("escalated"),
        count("__responded_n").alias("responded"),
        count("__sla_n").alias("sla_met"),
        col("__csat_pos_n")
            .cast(DataType::Int64)
            .alias("csat_positive"),
    ]);
    out
}

/// The table from the merged partials.
fn finish(m: &Merged, p: &SupportKpis) -> PolarsResult<DataFrame> {
    let keys: Vec<Expr> = KEYS.iter().map(|k| col(*k)).collect();
    let join = |left: LazyFrame, right: LazyFrame| {
        left.join(
            right,
            keys.clone(),
            keys.clone(),
            JoinArgs::new(JoinType::Left),
        )
    };
    let aht = exact_sums(m.get("aht"), KEYS, "__aht_total")?;
    let mut table = join(
        join(
            join(m.get("counts"), aht.lazy()),
            quantiles(m, "first_response")?,
        ),
        quantiles(m, "resolution")?,
    );
    let mut business = Vec::new();
    if p.business.is_some() {
        table = join(
            join(table, quantiles(m, "first_response_business")?),
            quantiles(m, "resolution_business")?,
        )
        .with_columns([
            mean_seconds(col("__frtb_total"), col("__frtb_n"))
                .alias("first_response_business_mean_s"),
            mean_seconds(col("__resb_total"), col("__resb_n")).alias("resolution_business_mean_s"),
            total_seconds("__frtb_total").alias("first_response_business_total_s"),
            total_seconds("__resb_total").alias("resolution_business_total_s"),
        ]);
        business = [
            "first_response_business_mean_s",
            "first_response_business_median_s",
            "first_response_business_p90_s",
            "resolution_business_mean_s",
            "resolution_business_median_s",
            "resolution_business_p90_s",
        ]
        .map(|c| col(c).cast(DataType::Float64))
        .to_vec();
    }
    let columns: Vec<Expr> = [
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
    ]
    .into_iter()
    .chain(business)
    .chain([
        col("aht_mean_s").cast(DataType::Float64),
        col("fcr_rate"),
        col("reopen_rate"),
        col("abandonment_rate"),
        col("escalation_rate"),
        col("sla_first_response_rate"),
        col("csat_score"),
        col("csat_response_rate"),
        col("csat_responses").cast(DataType::Int64),
    ])
    .chain(reaggregation(p.business.is_some()))
    .chain([col("complete")])
    .collect();
    table
        .with_columns([
            mean_seconds(col("__frt_total"), col("__frt_n")).alias("first_response_mean_s"),
            mean_seconds(col("__res_total"), col("__res_n")).alias("resolution_mean_s"),
            total_seconds("__frt_total").alias("first_response_total_s"),
            total_seconds("__res_total").alias("resolution_total_s"),
            ratio(col("__aht_total").fill_null(lit(0.0)), col("__aht_n")).alias("aht_mean_s"),
            ratio(col("__fcr_n"), col("__contacts_n")).alias("fcr_rate"),
            ratio(col("__reopened_n"), col("resolved")).alias("reopen_rate"),
            ratio(col("abandoned"), col("tickets")).alias("abandonment_rate"),
            ratio(col("__escalated_n"), col("tickets")).alias("escalation_rate"),
            ratio(col("__sla_n"), col("__responded_n")).alias("sla_first_response_rate"),
            (lit(100.0) * ratio(col("__csat_pos_n"), col("csat_responses"))).alias("csat_score"),
            ratio(col("csat_responses"), col("resolved")).alias("csat_response_rate"),
            m.cal
                .period_complete(col("period"), p.period)
                .alias("complete"),
        ])
        .sort_overall_first(&["period"], &[])
        .select(columns)
        .collect()
}

/// The table on `tickets` (and all `surveys` for CSAT) as a run computes it, as one bucket and
/// as three (which must agree).
#[cfg(test)]
pub fn support_kpis(
    tickets: LazyFrame,
    surveys: Option<LazyFrame>,
    p: &SupportKpis,
    cal: &Calendar,
) -> LazyFrame {
    use crate::pipelines::{testing::run_split, Facts};
    let facts = Facts {
        csat_by_ticket: surveys.map(|s| csat_by_ticket(s, p.csat.positive_from)),
        ..Default::default()
    };
    let inputs = [(InputKind::Tickets, tickets)].into_iter().collect();
    // As one bucket and as three (the quantiles' values then come from several buckets).
    run_split(p, &inputs, cal, &facts)["support_kpis"]
        .clone()
        .lazy()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::pipelines::survey_scores::Scales;
    use crate::testutil::{self, strs, utc};

    fn us(s: &str) -> Option<i64> {
        Some(testutil::us(s))
    }

    /// T1-T5 in the week of 2026-06-01, T6 in the week of 2026-06-08 (all UTC).
    fn tickets() -> LazyFrame {
        DataFrame::new_infer_height(vec![
            Column::new("ticket_id".into(), ["T1", "T2", "T3", "T4", "T5", "T6"]),
            Column::new(
                "channel".into(),
                ["chat", "chat", "email", "phone", "social", "chat"],
            ),
            utc(
                "created_at",
                vec![
                    us("2026-06-07 23:59:30"), // Sunday night, answered on Monday
                    us("2026-06-03 10:00:00"),
                    us("2026-06-02 09:00:00"),
                    us("2026-06-04 12:00:00"),
                    us("2026-06-05 08:00:00"),
                    us("2026-06-08 09:00:00"),
                ],
            ),
            utc(
                "first_response_at",
                vec![
                    us("2026-06-08 00:00:10"), // 40 s
                    us("2026-06-03 10:01:30"), // 90 s
                    us("2026-06-02 13:00:00"), // 4 h, exactly the email target
                    None,                      // abandoned
                    us("2026-06-06 14:00:00"), // 30 h, misses the 24 h default
                    us("2026-06-08 09:00:20"), // abandoned after a response
                ],
            ),
            utc(
                "resolved_at",
                vec![
                    us("2026-06-08 00:19:30"), // 1200 s
                    us("2026-06-03 10:30:00"), // 1800 s
                    None,
                    None,
                    us("2026-06-06 20:00:00"), // 129600 s
                    None,
                ],
            ),
            Column::new(
                "agent_id".into(),
                [
                    Some("A1"),
                    Some("A2"),
                    Some("A1"),
                    None,
                    Some("A2"),
                    Some("A1"),
                ],
            ),
            Column::new(
                "contacts".into(),
                [Some(1i64), Some(2), None, None, Some(1), None],
            ),
            Column::new(
                "handle_time_s".into(),
                [Some(300.0), Some(500.0), None, None, Some(700.0), None],
            ),
            Column::new(
                "reopened".into(),
                [Some(false), Some(true), None, None, Some(false), None],
            ),
            Column::new(
                "abandoned".into(),
                [
                    Some(false),
                    Some(false),
                    Some(false),
                    Some(true),
                    None,
                    Some(true),
                ],
            ),
            Column::new(
                "escalated".into(),
                [None, Some(false), Some(false), Some(true), None, None],
            ),
        ])
        .unwrap()
        .lazy()
    }

    fn surveys() -> LazyFrame {
        df!(
            "survey" => ["csat", "csat", "csat", "nps", "csat", "csat"],
            "score" => [5i64, 2, 4, 10, 5, 4],
            "ticket_id" => [Some("T1"), Some("T1"), Some("T2"), Some("T2"), None, Some("T99")],
        )
        .unwrap()
        .lazy()
    }

    fn params(by: &[&str]) -> SupportKpis {
        let map = [("chat", "60s"), ("phone", "30s"), ("email", "4h")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SupportKpis {
            period: Period::Week,
            by: by.iter().map(|s| s.to_string()).collect(),
            sla: SlaTargets::from_config(&map).unwrap(),
            csat: Scales::default().csat,
            business: None,
        }
    }

    /// Business hours 09:00-18:00 UTC, Monday to Friday. B1 (email) opened Friday 17:55,
    /// answered Monday 09:05 (600 business seconds), resolved Monday 10:00 (3,900); B3 (email)
    /// opened and answered on the weekend (0); both in the week of 2026-06-01. B2 (chat)
    /// Monday 10:00, answered 10:02 (120), resolved 11:00 (3,600), in the next week.
    #[test]
    fn business_hours_statistics_and_targets() {
        let tickets = DataFrame::new_infer_height(vec![
            Column::new("ticket_id".into(), ["B1", "B2", "B3"]),
            Column::new("channel".into(), ["email", "chat", "email"]),
            utc(
                "created_at",
                vec![
                    us("2026-06-05 17:55:00"),
                    us("2026-06-08 10:00:00"),
                    us("2026-06-06 12:00:00"),
                ],
            ),
            utc(
                "first_response_at",
                vec![
                    us("2026-06-08 09:05:00"),
                    us("2026-06-08 10:02:00"),
                    us("2026-06-07 12:00:00"),
                ],
            ),
            utc(
                "resolved_at",
                vec![us("2026-06-08 10:00:00"), us("2026-06-08 11:00:00"), None],
            ),
            Column::new("contacts".into(), [Some(1i64), Some(1), None]),
            Column::new("handle_time_s".into(), [None::<f64>, None, None]),
            Column::new("reopened".into(), [None::<bool>, None, None]),
            Column::new("abandoned".into(), [Some(false), Some(false), Some(false)]),
            Column::new("escalated".into(), [None::<bool>, None, None]),
        ])
        .unwrap()
        .lazy();
        let config: crate::business_hours::BusinessHoursConfig = serde_yaml::from_str(
            "timezone: UTC\nschedule: { mon: ['09:00-18:00'], tue: ['09:00-18:00'], wed: ['09:00-18:00'], thu: ['09:00-18:00'], fri: ['09:00-18:00'] }",
        )
        .unwrap();
        let hours = Arc::new(BusinessHours::from_config(&config, "b").unwrap());
        let mut p = params(&[]);
        p.business = Some(hours.clone());
        let df = support_kpis(tickets.clone(), None, &p, &cal())
            .collect()
            .unwrap();
        // Overall rows: the week of 06-01, then of 06-08.
        assert_eq!(f(&df, "first_response_business_mean_s", 0), Some(300.0));
        assert_eq!(f(&df, "first_response_business_median_s", 0), Some(300.0));
        assert_eq!(f(&df, "first_response_business_p90_s", 0), Some(540.0));
        assert_eq!(f(&df, "resolution_business_mean_s", 0), Some(3900.0));
        assert_eq!(f(&df, "resolution_business_p90_s", 0), Some(3900.0));
        assert_eq!(f(&df, "first_response_business_median_s", 1), Some(120.0));
        assert_eq!(f(&df, "resolution_business_median_s", 1), Some(3600.0));
        // Calendar time is unchanged: B1 took 2 days 15 h 10 min.
        assert_eq!(
            f(&df, "first_response_mean_s", 0),
            Some((227_400.0 + 86_400.0) / 2.0)
        );
        // Targets in calendar time: B1 and B3 miss email's 4 h; in business time both meet it.
        assert_eq!(f(&df, "sla_first_response_rate", 0), Some(0.0));
        p.sla.in_business_hours = true;
        p.sla.business = Some(hours);
        let df = support_kpis(tickets, None, &p, &cal()).collect().unwrap();
        assert_eq!(f(&df, "sla_first_response_rate", 0), Some(1.0));
        // B2: 120 business seconds against chat's 60 s.
        assert_eq!(f(&df, "sla_first_response_rate", 1), Some(0.0));
    }

    fn cal() -> Calendar {
        Calendar::new(NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(), "UTC").unwrap()
    }

    fn f(df: &DataFrame, name: &str, row: usize) -> Option<f64> {
        df.column(name).unwrap().f64().unwrap().get(row)
    }

    fn i(df: &DataFrame, name: &str, row: usize) -> i64 {
        df.column(name).unwrap().i64().unwrap().get(row).unwrap()
    }

    fn close(got: Option<f64>, want: f64) {
        let g = got.expect("a value");
        assert!(
            (g - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{g} != {want}"
        );
    }

    #[test]
    fn every_metric_on_hand_built_tickets() {
        let df = support_kpis(tickets(), Some(surveys()), &params(&[]), &cal())
            .collect()
            .unwrap();
        assert_eq!(df.height(), 2, "{df}");
        // Week of June 1: T1 (created Sunday, answered Monday) counts in its creation week.
        assert_eq!(i(&df, "tickets", 0), 5);
        assert_eq!(i(&df, "resolved", 0), 3);
        assert_eq!(i(&df, "abandoned", 0), 1);
        // First responses of non-abandoned tickets: 40, 90, 14400, 108000 (an even count).
        close(f(&df, "first_response_mean_s", 0), 122_530.0 / 4.0);
        close(
            f(&df, "first_response_median_s", 0),
            (90.0 + 14_400.0) / 2.0,
        );
        // p90 at position 0.9 * 3 = 2.7: 14400 + 0.7 * (108000 - 14400).
        close(f(&df, "first_response_p90_s", 0), 79_920.0);
        // Resolutions 1200, 1800, 129600.
        close(f(&df, "resolution_mean_s", 0), 44_200.0);
        close(f(&df, "resolution_median_s", 0), 1_800.0);
        close(
            f(&df, "resolution_p90_s", 0),
            1_800.0 + 0.8 * (129_600.0 - 1_800.0),
        );
        close(f(&df, "aht_mean_s", 0), 500.0);
        // Resolved with contacts known: T1 (1), T2 (2), T5 (1).
        close(f(&df, "fcr_rate", 0), 2.0 / 3.0);
        close(f(&df, "reopen_rate", 0), 1.0 / 3.0);
        close(f(&df, "abandonment_rate", 0), 0.2);
        close(f(&df, "escalation_rate", 0), 0.2);
        // Responded: T1 40 <= 60 met, T2 90 > 60 missed, T3 4h <= 4h met, T5 30h > 24h missed.
        close(f(&df, "sla_first_response_rate", 0), 0.5);
        // CSAT on T1 (5, 2) and T2 (4); the NPS, the unlinked and the unknown-ticket rows ignored.
        assert_eq!(i(&df, "csat_responses", 0), 3);
        close(f(&df, "csat_score", 0), 200.0 / 3.0);
        close(f(&df, "csat_response_rate", 0), 1.0);

        // Week of June 8: only T6, abandoned after a response.
        assert_eq!(i(&df, "tickets", 1), 1);
        assert_eq!(
            f(&df, "first_response_mean_s", 1),
            None,
            "abandoned: no response time"
        );
        assert_eq!(f(&df, "first_response_median_s", 1), None);
        close(f(&df, "sla_first_response_rate", 1), 1.0);
        assert_eq!(f(&df, "fcr_rate", 1), None);
        assert_eq!(f(&df, "reopen_rate", 1), None);
        assert_eq!(f(&df, "csat_score", 1), None);
        assert_eq!(f(&df, "csat_response_rate", 1), None);
        assert_eq!(i(&df, "csat_responses", 1), 0);
        let complete: Vec<Option<bool>> = df
            .column("complete")
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(complete, [Some(true), Some(true)]);
    }

    #[test]
    fn breakdown_by_channel_and_agent_with_unknowns() {
        let df = support_kpis(tickets(), None, &params(&["channel", "agent_id"]), &cal())
            .filter(col("period").eq(crate::time::date_lit(
                NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
            )))
            .collect()
            .unwrap();
        let keys: Vec<(String, String)> = strs(&df, "dimension")
            .into_iter()
            .zip(strs(&df, "dimension_value"))
            .collect();
        let k = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            keys,
            [
                k("all", "all"),
                k("agent_id", "A1"),
                k("agent_id", "A2"),
                k("agent_id", "unknown"),
                k("channel", "chat"),
                k("channel", "email"),
                k("channel", "phone"),
                k("channel", "social"),
            ]
        );
        // chat in week 1: T1 (40 s, met) and T2 (90 s, missed the 60 s chat target).
        assert_eq!(i(&df, "tickets", 4), 2);
        close(f(&df, "sla_first_response_rate", 4), 0.5);
        close(f(&df, "first_response_median_s", 4), 65.0);
        // social uses the default 24 h target: 30 h missed.
        close(f(&df, "sla_first_response_rate", 7), 0.0);
        // Without surveys: no CSAT.
        assert_eq!(i(&df, "csat_responses", 0), 0);
        assert_eq!(f(&df, "csat_score", 0), None);
    }

    /// A decimal target is exact: 4.1 h is 14,760 s, so a response at 14,760 s meets it and
    /// one a microsecond later misses it (as floats, 4.1 x 3600 is 14759.999999999998).
    #[test]
    fn a_response_exactly_at_a_decimal_target_meets_it() {
        // T1 and T2 of the fixture, both email, created at 09:00 and answered 4.1 h later
        // and 4.1 h + 1 µs later.
        let at = |t: &str, extra: i64| {
            let v = testutil::us(t);
            utc("x", vec![Some(v), Some(v + extra)])
                .as_materialized_series()
                .clone()
        };
        let tickets = tickets().slice(0, 2).with_columns([
            lit("email").alias("channel"),
            lit(at("2026-06-02 09:00:00", 0)).alias("created_at"),
            lit(at("2026-06-02 13:06:00", 1)).alias("first_response_at"),
            lit(false).alias("abandoned"),
        ]);
        let mut p = params(&[]);
        let map = [("email".to_string(), "4.1h".to_string())].into();
        p.sla = SlaTargets::from_config(&map).unwrap();
        let df = support_kpis(tickets, None, &p, &cal()).collect().unwrap();
        assert_eq!(f(&df, "sla_first_response_rate", 0), Some(0.5));
    }

    #[test]
    fn sla_targets_parse_with_default_and_report_bad_values() {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let t = SlaTargets::from_config(&map(&[("chat", "90s"), ("default", "2d")])).unwrap();
        assert_eq!(t.default, 172_800_000_000);
        assert_eq!(t.per_channel, vec![("chat".to_string(), 90_000_000)]);
        assert_eq!(
            SlaTargets::from_config(&map(&[])).unwrap().default,
            DEFAULT_SLA_US
        );
        let e =
            SlaTargets::from_config(&map(&[("chat", "fast"), ("email", "4 hours")])).unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(e[0].starts_with("chat: `fast` is not a duration"), "{e:?}");
    }

    #[test]
    fn empty_tickets_give_an_empty_table() {
        let empty = tickets().filter(lit(false));
        let df = support_kpis(empty, Some(surveys()), &params(&["channel"]), &cal())
            .collect()
            .unwrap();
        assert_eq!(df.height(), 0);
        // 21 columns and `complete`, and 12 columns of numerators and denominators.
        assert_eq!(df.width(), 34);
    }
}
