//! The pipeline registry: which pipelines exist, which inputs and columns each needs, how their
//! parameters are resolved, and how each is built. Every pipeline is a pure function from
//! cleaned input LazyFrames, its parameters and the job's calendar to output LazyFrames: no
//! I/O, no clock.

pub mod activation;
pub mod churn;
pub mod cohort_retention;
pub mod common;
pub mod cx_impact;
pub mod lifecycle;
pub mod ltv_segments;
pub mod support_kpis;
pub mod survey_scores;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;

use crate::config::{
    ActivitySource, Anchor, ChurnMode, Period, PipelinesConfig, SurveyScoresParams,
};
use crate::contracts::InputKind;
use crate::time::Calendar;
use activation::Activation;
use churn::Churn;
use cohort_retention::CohortRetention;
use ltv_segments::LtvSegments;
use support_kpis::{SlaTargets, SupportKpis};
use survey_scores::Scales;

/// Cleaned inputs by kind.
pub type Inputs = BTreeMap<InputKind, LazyFrame>;

/// Every pipeline name cxmetrics knows, in run order.
pub const NAMES: &[&str] = &[
    "survey_scores",
    "support_kpis",
    "cohort_retention",
    "churn",
    "activation",
    "ltv_segments",
    "cx_impact",
];

/// A configured pipeline with its parameters resolved.
#[derive(Debug, Clone)]
pub enum Pipeline {
    SurveyScores(SurveyScoresParams),
    SupportKpis(SupportKpis),
    CohortRetention(CohortRetention),
    Churn(Churn),
    Activation(Activation),
    LtvSegments(LtvSegments),
    CxImpact(cx_impact::CxImpact),
}

/// Facts about the loaded data that some defaults depend on.
#[derive(Clone)]
pub struct BuildContext<'a> {
    pub cal: &'a Calendar,
    /// The job has `customers` and some customer has a `signup_at` (activation's anchor default).
    pub customers_have_signup: bool,
    /// The tables this run has computed so far, by name, so that a pipeline can build on an
    /// earlier one's result instead of computing it again (`cx_impact` takes its predicted
    /// CLV from `customer_ltv`).
    pub computed: BTreeMap<&'static str, LazyFrame>,
    /// The pipelines after the one being built (the runner moves this along), so that
    /// activity another pipeline will count again is kept instead of computed twice.
    pub later: &'a [Pipeline],
    /// `lifecycle::activity_rows` of the lists of activity sources that a later pipeline
    /// counts too: cohort retention and churn usually count the same activity, tens of
    /// millions of rows made into (customer, local day) pairs, and it is computed once for
    /// both.
    pub activity: RefCell<Vec<(Vec<ActivitySource>, DataFrame)>>,
}

impl BuildContext<'_> {
    /// The activity of `sources` (`lifecycle::activity_parts`): the kept frame when an earlier
    /// pipeline counted the same sources; else computed, and kept (as one frame) when a later
    /// pipeline will count them too.
    fn activity_parts(
        &self,
        inputs: &Inputs,
        sources: &[ActivitySource],
    ) -> PolarsResult<Vec<LazyFrame>> {
        let mut kept = self.activity.borrow_mut();
        if let Some((_, df)) = kept.iter().find(|(s, _)| s == sources) {
            return Ok(vec![df.clone().lazy()]);
        }
        let parts = lifecycle::activity_parts(inputs, sources, self.cal);
        if !self
            .later
            .iter()
            .any(|p| p.activity_sources() == Some(sources))
        {
            return Ok(parts);
        }
        let df = lifecycle::union(parts).collect()?;
        kept.push((sources.to_vec(), df.clone()));
        Ok(vec![df.lazy()])
    }

    /// `activity_parts` as one frame.
    fn activity_rows(
        &self,
        inputs: &Inputs,
        sources: &[ActivitySource],
    ) -> PolarsResult<LazyFrame> {
        Ok(lifecycle::union(self.activity_parts(inputs, sources)?))
    }

    /// Forgets the activity that no pipeline in `self.later` counts, so that it is not held in
    /// memory for the rest of the run.
    pub fn keep_activity_for_later(&self) {
        self.activity.borrow_mut().retain(|(sources, _)| {
            self.later
                .iter()
                .any(|p| p.activity_sources() == Some(sources.as_slice()))
        });
    }
}

type Problems = Vec<(String, String)>;

/// The documented ranges of the pipelines' numeric parameters (docs/job-file.md, "Ranges of the numbers").
pub mod ranges {
    /// `cohort_retention.max_periods`.
    pub const MAX_PERIODS: (i64, i64) = (1, 10_000);
    /// Day counts: `churn.inactive_after_days`, `cx_impact.window_days` and
    /// `cx_impact.inactive_after_days` (up to 100 years).
    pub const DAY_COUNT: (i64, i64) = (1, 36_500);
    /// Each of `activation.days`.
    pub const ACTIVATION_DAY: (i64, i64) = (0, 36_500);
    /// How many distinct days `activation.days` may list.
    pub const ACTIVATION_DAYS_MAX: usize = 100;
    /// `ltv_segments.horizon_months` (ten years).
    pub const HORIZON_MONTHS: (i64, i64) = (1, 120);
    /// `ltv_segments.monthly_discount_rate`.
    pub const DISCOUNT_RATE: (f64, f64) = (0.0, 1.0);
}

/// `value` when it lies in `range`; else a problem at `path` and None.
fn in_range(path: String, value: i64, range: (i64, i64), problems: &mut Problems) -> Option<u32> {
    if value < range.0 || value > range.1 {
        problems.push((
            path,
            format!("must be between {} and {}, got {value}", range.0, range.1),
        ));
        return None;
    }
    u32::try_from(value).ok()
}

fn check_period(path: &str, period: Period, allowed: &[Period], problems: &mut Problems) {
    if !allowed.contains(&period) {
        let names: Vec<&str> = allowed.iter().map(|p| p.name()).collect();
        problems.push((
            format!("{path}.period"),
            format!(
                "`{}` is not allowed here; use one of {}",
                period.name(),
                names.join(", ")
            ),
        ));
    }
}

fn activity_or(
    path: &str,
    given: &Option<Vec<ActivitySource>>,
    default: Vec<ActivitySource>,
    problems: &mut Problems,
) -> Vec<ActivitySource> {
    match given {
        None => default,
        Some(list) => {
            let unique: BTreeSet<_> = list.iter().collect();
            if list.is_empty() {
                problems.push((
                    format!("{path}.activity"),
                    "must name at least one input".into(),
                ));
            } else if unique.len() != list.len() {
                problems.push((format!("{path}.activity"), "lists an input twice".into()));
            }
            list.clone()
        }
    }
}

impl Pipeline {
    /// The pipelines a job file enables, in run order, with parameters resolved against the
    /// inputs the job declares, and every parameter problem as (dotted path, message). The
    /// pipelines are returned even when there are problems (a value out of range stands in
    /// as the low end of its range), so that the caller can check the rest of them too.
    pub fn from_config(
        cfg: &PipelinesConfig,
        declared: &BTreeSet<InputKind>,
    ) -> (Vec<Pipeline>, Problems) {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let scales = job_scales(cfg);
        let lifecycle_periods = [Period::Week, Period::Month, Period::Quarter];
        if let Some(p) = &cfg.survey_scores {
            out.push(Pipeline::SurveyScores(p.clone()));
        }
        if let Some(p) = &cfg.support_kpis {
            match SlaTargets::from_config(&p.sla_first_response) {
                Ok(sla) => out.push(Pipeline::SupportKpis(SupportKpis {
                    period: p.period,
                    by: p.by.clone(),
                    sla,
                    csat: scales.csat,
                })),
                Err(e) => problems.extend(
                    e.into_iter()
                        .map(|m| ("pipelines.support_kpis.sla_first_response".to_string(), m)),
                ),
            }
        }
        if let Some(p) = &cfg.cohort_retention {
            let path = "pipelines.cohort_retention";
            check_period(path, p.period, &lifecycle_periods, &mut problems);
            let max_periods = in_range(
                format!("{path}.max_periods"),
                p.max_periods,
                ranges::MAX_PERIODS,
                &mut problems,
            )
            .unwrap_or(1);
            out.push(Pipeline::CohortRetention(CohortRetention {
                period: p.period,
                anchor: p.anchor.unwrap_or(Anchor::FirstActivity),
                activity: activity_or(
                    path,
                    &p.activity,
                    vec![ActivitySource::Orders],
                    &mut problems,
                ),
                mode: p.mode,
                max_periods,
                by: p.by.clone(),
            }));
        }
        if let Some(p) = &cfg.churn {
            let path = "pipelines.churn";
            check_period(path, p.period, &lifecycle_periods, &mut problems);
            let inactive_after_days = in_range(
                format!("{path}.inactive_after_days"),
                p.inactive_after_days,
                ranges::DAY_COUNT,
                &mut problems,
            )
            .unwrap_or(1);
            let anchor = p.anchor.unwrap_or(match p.mode {
                ChurnMode::Inactivity => Anchor::FirstActivity,
                ChurnMode::Subscription => Anchor::Signup,
            });
            // In subscription mode activity only matters for a first_activity anchor.
            let default_activity = match (p.mode, anchor) {
                (ChurnMode::Subscription, a) if a != Anchor::FirstActivity => vec![],
                _ => vec![ActivitySource::Orders],
            };
            out.push(Pipeline::Churn(Churn {
                period: p.period,
                mode: p.mode,
                inactive_after_days,
                activity: activity_or(path, &p.activity, default_activity, &mut problems),
                anchor,
                by: p.by.clone(),
            }));
        }
        if let Some(p) = &cfg.activation {
            let path = "pipelines.activation";
            if ![Period::Day, Period::Week, Period::Month].contains(&p.cohort_period) {
                problems.push((
                    format!("{path}.cohort_period"),
                    format!(
                        "`{}` is not allowed here; use one of day, week, month",
                        p.cohort_period.name()
                    ),
                ));
            }
            if p.days.is_empty() {
                problems.push((format!("{path}.days"), "must list at least one day".into()));
            }
            let declared_sources: Vec<ActivitySource> = ActivitySource::ALL
                .into_iter()
                .filter(|s| declared.contains(&s.input()))
                .collect();
            let mut days: Vec<u32> = p
                .days
                .iter()
                .filter_map(|d| {
                    in_range(
                        format!("{path}.days"),
                        *d,
                        ranges::ACTIVATION_DAY,
                        &mut problems,
                    )
                })
                .collect();
            days.sort_unstable();
            days.dedup();
            if days.len() > ranges::ACTIVATION_DAYS_MAX {
                problems.push((
                    format!("{path}.days"),
                    format!(
                        "lists {} days; at most {} are allowed",
                        days.len(),
                        ranges::ACTIVATION_DAYS_MAX
                    ),
                ));
            }
            out.push(Pipeline::Activation(Activation {
                days,
                mode: p.mode,
                anchor: p.anchor,
                cohort_period: p.cohort_period,
                activity: activity_or(path, &p.activity, declared_sources, &mut problems),
                by: p.by.clone(),
            }));
        }
        if let Some(p) = &cfg.ltv_segments {
            let path = "pipelines.ltv_segments";
            let horizon_months = in_range(
                format!("{path}.horizon_months"),
                p.horizon_months,
                ranges::HORIZON_MONTHS,
                &mut problems,
            )
            .unwrap_or(1);
            let (lo, hi) = ranges::DISCOUNT_RATE;
            if !(p.monthly_discount_rate >= lo && p.monthly_discount_rate <= hi) {
                problems.push((
                    format!("{path}.monthly_discount_rate"),
                    format!(
                        "must be between {lo} and {hi}, got {}",
                        p.monthly_discount_rate
                    ),
                ));
            }
            out.push(Pipeline::LtvSegments(LtvSegments {
                unit: p.unit,
                horizon_months,
                monthly_discount_rate: p.monthly_discount_rate,
                model: p.model,
                by: p.by.clone(),
            }));
        }
        if let Some(p) = &cfg.cx_impact {
            let path = "pipelines.cx_impact";
            let window_days = in_range(
                format!("{path}.window_days"),
                p.window_days,
                ranges::DAY_COUNT,
                &mut problems,
            )
            .unwrap_or(1);
            let inactive_after_days = in_range(
                format!("{path}.inactive_after_days"),
                p.inactive_after_days,
                ranges::DAY_COUNT,
                &mut problems,
            )
            .unwrap_or(1);
            if !declared.contains(&InputKind::Tickets) && !declared.contains(&InputKind::Surveys) {
                problems.push((
                    path.to_string(),
                    "needs input `tickets` or `surveys` (or both)".into(),
                ));
            }
            let sla = cfg
                .support_kpis
                .as_ref()
                .and_then(|s| SlaTargets::from_config(&s.sla_first_response).ok())
                .unwrap_or_else(|| {
                    SlaTargets::from_config(&Default::default()).expect("empty map")
                });
            let ltv = out.iter().find_map(|p| match p {
                Pipeline::LtvSegments(l) if l.model == crate::config::ClvModel::Bgnbd => {
                    Some(l.clone())
                }
                _ => None,
            });
            out.push(Pipeline::CxImpact(cx_impact::CxImpact {
                window_days,
                inactive_after_days,
                by: p.by.clone(),
                sla,
                csat: scales.csat,
                ltv,
            }));
        }
        (out, problems)
    }

    /// The activity a lifecycle pipeline counts (`lifecycle::activity_rows`), or None.
    pub fn activity_sources(&self) -> Option<&[ActivitySource]> {
        match self {
            Pipeline::CohortRetention(p) => Some(&p.activity),
            Pipeline::Churn(p) => Some(&p.activity),
            Pipeline::Activation(p) => Some(&p.activity),
            _ => None,
        }
    }

    /// The polars engine the runner collects this pipeline's tables with: streaming where it
    /// was measured faster and every aggregation is exact, so that reruns still write the
    /// same bytes (`survey_scores::ENGINE`, `churn::ENGINE`); in memory for the rest.
    /// docs/performance.md ("The streaming engine") has the measurements: the float means and sums
    /// of `support_kpis` and `ltv_segments` changed in the last digit between streaming
    /// reruns, `cohort_retention` and `activation` took longer, and `cx_impact` gained
    /// nothing.
    pub fn engine(&self) -> Engine {
        match self {
            Pipeline::SurveyScores(_) => survey_scores::ENGINE,
            Pipeline::Churn(_) => churn::ENGINE,
            _ => Engine::InMemory,
        }
    }

    /// The tables this pipeline writes, in the order it produces them.
    pub fn tables(&self) -> &'static [&'static str] {
        match self {
            Pipeline::SurveyScores(_) => &["survey_scores"],
            Pipeline::SupportKpis(_) => &["support_kpis"],
            Pipeline::CohortRetention(_) => &["cohort_retention"],
            Pipeline::Churn(_) => &["churn"],
            Pipeline::Activation(_) => &["activation"],
            Pipeline::LtvSegments(_) => &["customer_ltv", "ltv_segments", "clv_model"],
            Pipeline::CxImpact(_) => &["cx_impact", "nps_migration"],
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Pipeline::SurveyScores(_) => "survey_scores",
            Pipeline::SupportKpis(_) => "support_kpis",
            Pipeline::CohortRetention(_) => "cohort_retention",
            Pipeline::Churn(_) => "churn",
            Pipeline::Activation(_) => "activation",
            Pipeline::LtvSegments(_) => "ltv_segments",
            Pipeline::CxImpact(_) => "cx_impact",
        }
    }

    /// `by` segments and the input they come from.
    pub fn by(&self) -> (InputKind, &[String]) {
        match self {
            Pipeline::SurveyScores(p) => (InputKind::Surveys, &p.by),
            Pipeline::SupportKpis(p) => (InputKind::Tickets, &p.by),
            Pipeline::CohortRetention(p) => (InputKind::Customers, &p.by),
            Pipeline::Churn(p) => (InputKind::Customers, &p.by),
            Pipeline::Activation(p) => (InputKind::Customers, &p.by),
            Pipeline::LtvSegments(p) => (InputKind::Customers, &p.by),
            Pipeline::CxImpact(p) => (InputKind::Customers, &p.by),
        }
    }

    /// Inputs the job must declare for this pipeline.
    pub fn required_inputs(&self) -> Vec<InputKind> {
        let lifecycle = |activity: &[ActivitySource], anchor: Option<Anchor>, by: &[String]| {
            let mut k: BTreeSet<InputKind> = activity.iter().map(|s| s.input()).collect();
            match anchor {
                Some(Anchor::Signup) => {
                    k.insert(InputKind::Customers);
                }
                Some(Anchor::FirstOrder) => {
                    k.insert(InputKind::Orders);
                }
                _ => {}
            }
            if !by.is_empty() {
                k.insert(InputKind::Customers);
            }
            k.into_iter().collect()
        };
        match self {
            Pipeline::SurveyScores(_) => vec![InputKind::Surveys],
            Pipeline::SupportKpis(_) => vec![InputKind::Tickets],
            Pipeline::CohortRetention(p) => lifecycle(&p.activity, Some(p.anchor), &p.by),
            Pipeline::Churn(p) => {
                let mut k = lifecycle(&p.activity, Some(p.anchor), &p.by);
                if p.mode == ChurnMode::Subscription && !k.contains(&InputKind::Customers) {
                    k.push(InputKind::Customers);
                }
                k
            }
            Pipeline::Activation(p) => lifecycle(&p.activity, p.anchor, &p.by),
            Pipeline::LtvSegments(p) => lifecycle(&[ActivitySource::Orders], None, &p.by),
            Pipeline::CxImpact(p) => lifecycle(&[ActivitySource::Orders], None, &p.by),
        }
    }

    /// Inputs this pipeline uses when the job declares them.
    pub fn optional_inputs(&self) -> Vec<InputKind> {
        match self {
            Pipeline::SurveyScores(_) => vec![],
            Pipeline::SupportKpis(_) => vec![InputKind::Surveys],
            Pipeline::CohortRetention(_) | Pipeline::Churn(_) => vec![InputKind::Orders],
            Pipeline::Activation(_) => vec![InputKind::Customers],
            Pipeline::LtvSegments(_) => vec![],
            Pipeline::CxImpact(_) => vec![InputKind::Tickets, InputKind::Surveys],
        }
    }

    /// Non-contract columns this pipeline reads (its `by` segments), per input.
    pub fn extra_columns(&self) -> Vec<(InputKind, Vec<String>)> {
        let (kind, by) = self.by();
        vec![(kind, by.to_vec())]
    }

    /// Output tables, by name, in the order they are produced.
    pub fn build(
        &self,
        inputs: &Inputs,
        ctx: &BuildContext,
    ) -> PolarsResult<Vec<(&'static str, LazyFrame)>> {
        let cal = ctx.cal;
        let input = |k: InputKind| {
            inputs
                .get(&k)
                .cloned()
                .expect("the runner loads every required input")
        };
        Ok(match self {
            Pipeline::SurveyScores(p) => vec![(
                "survey_scores",
                survey_scores::survey_scores(input(InputKind::Surveys), p, cal),
            )],
            Pipeline::SupportKpis(p) => vec![(
                "support_kpis",
                support_kpis::support_kpis(
                    input(InputKind::Tickets),
                    inputs.get(&InputKind::Surveys).cloned(),
                    p,
                    cal,
                ),
            )],
            Pipeline::CohortRetention(p) => vec![(
                "cohort_retention",
                cohort_retention::cohort_retention(
                    inputs,
                    ctx.activity_rows(inputs, &p.activity)?,
                    p,
                    cal,
                )?,
            )],
            Pipeline::Churn(p) => vec![(
                "churn",
                churn::churn(inputs, ctx.activity_rows(inputs, &p.activity)?, p, cal)?,
            )],
            Pipeline::Activation(p) => {
                let anchor = p.anchor.unwrap_or(if ctx.customers_have_signup {
                    Anchor::Signup
                } else {
                    Anchor::FirstActivity
                });
                let acts = ctx.activity_parts(inputs, &p.activity)?;
                vec![(
                    "activation",
                    activation::activation(inputs, acts, p, anchor, cal),
                )]
            }
            Pipeline::LtvSegments(p) => ltv_segments::ltv_segments(inputs, p, cal)?,
            Pipeline::CxImpact(p) => {
                let fitted = ctx
                    .computed
                    .get("customer_ltv")
                    .map(|t| t.clone().select([col("customer_id"), col("predicted_clv")]));
                cx_impact::cx_impact(inputs, p, cal, fitted)?
            }
        })
    }
}

/// The survey answer scales of a job: `survey_scores.scales` when set, else the defaults. The
/// input reader rejects out-of-scale scores with them, and every pipeline that scores CSAT uses
/// the same scale.
pub fn job_scales(cfg: &PipelinesConfig) -> Scales {
    cfg.survey_scores
        .as_ref()
        .map(|p| Scales::from_config(&p.scales))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::pipelines::lifecycle::testing::Data;

    fn churn_on(activity: Vec<ActivitySource>) -> Pipeline {
        Pipeline::Churn(Churn {
            period: Period::Month,
            mode: ChurnMode::Inactivity,
            inactive_after_days: 30,
            activity,
            anchor: Anchor::FirstActivity,
            by: Vec::new(),
        })
    }

    #[test]
    fn activity_is_kept_only_while_a_later_pipeline_counts_it() {
        let cal = Calendar::new(NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(), "UTC").unwrap();
        let mut d = Data::default();
        d.order("A", "2026-06-01 10:00:00", 5.0)
            .order("A", "2026-06-01 12:00:00", 7.0)
            .event("A", "2026-06-02 10:00:00");
        let inputs = d.inputs();
        let orders = vec![ActivitySource::Orders];
        let both = vec![ActivitySource::Orders, ActivitySource::Events];
        let later = [churn_on(orders.clone()), churn_on(both.clone())];
        let mut ctx = BuildContext {
            cal: &cal,
            customers_have_signup: false,
            computed: BTreeMap::new(),
            later: &later,
            activity: Default::default(),
        };
        let rows = |ctx: &BuildContext, sources: &[ActivitySource]| {
            ctx.activity_rows(&inputs, sources)
                .unwrap()
                .collect()
                .unwrap()
        };
        // Two orders on one day stay two rows: activity is not made distinct.
        let first = rows(&ctx, &orders);
        assert_eq!(first.height(), 2);
        assert_eq!(rows(&ctx, &both).height(), 3);
        assert_eq!(ctx.activity.borrow().len(), 2);
        // The same sources again are the kept frame, not a second entry.
        assert!(rows(&ctx, &orders).equals(&first));
        assert_eq!(ctx.activity.borrow().len(), 2);
        // Sources no later pipeline counts are computed but not kept.
        assert_eq!(rows(&ctx, &[ActivitySource::Events]).height(), 1);
        assert_eq!(ctx.activity.borrow().len(), 2);

        ctx.later = &later[1..];
        ctx.keep_activity_for_later();
        let kept: Vec<Vec<ActivitySource>> = ctx
            .activity
            .borrow()
            .iter()
            .map(|(s, _)| s.clone())
            .collect();
        assert_eq!(kept, vec![both]);
        ctx.later = &[];
        ctx.keep_activity_for_later();
        assert!(ctx.activity.borrow().is_empty());
    }
}
