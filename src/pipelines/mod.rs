//! The pipeline registry: which pipelines exist, which inputs and columns each needs, and how
//! each is built. Every pipeline is a pure function from cleaned input LazyFrames, its
//! parameters and the job's calendar to output LazyFrames: no I/O, no clock.

pub mod common;
pub mod support_kpis;
pub mod survey_scores;

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::config::{PipelinesConfig, SurveyScoresParams};
use crate::contracts::InputKind;
use crate::time::Calendar;
use support_kpis::{SlaTargets, SupportKpis};
use survey_scores::Scales;

/// Every pipeline name cxmetrics knows, in run order.
pub const NAMES: &[&str] = &["survey_scores", "support_kpis"];

/// A configured pipeline with its parameters.
#[derive(Debug, Clone)]
pub enum Pipeline {
    SurveyScores(SurveyScoresParams),
    SupportKpis(SupportKpis),
}

impl Pipeline {
    /// The pipelines a job file enables, in run order, with their parameters resolved; or
    /// every parameter problem as (dotted path, message).
    pub fn from_config(cfg: &PipelinesConfig) -> Result<Vec<Pipeline>, Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let scales = job_scales(cfg);
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
                Err(e) => errors.extend(
                    e.into_iter()
                        .map(|m| ("pipelines.support_kpis.sla_first_response".to_string(), m)),
                ),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Pipeline::SurveyScores(_) => "survey_scores",
            Pipeline::SupportKpis(_) => "support_kpis",
        }
    }

    /// Inputs the job must declare for this pipeline.
    pub fn required_inputs(&self) -> Vec<InputKind> {
        match self {
            Pipeline::SurveyScores(_) => vec![InputKind::Surveys],
            Pipeline::SupportKpis(_) => vec![InputKind::Tickets],
        }
    }

    /// Inputs this pipeline uses when the job declares them.
    pub fn optional_inputs(&self) -> Vec<InputKind> {
        match self {
            Pipeline::SurveyScores(_) => vec![],
            Pipeline::SupportKpis(_) => vec![InputKind::Surveys],
        }
    }

    /// Non-contract columns this pipeline reads (its `by` segments), per input.
    pub fn extra_columns(&self) -> Vec<(InputKind, Vec<String>)> {
        match self {
            Pipeline::SurveyScores(p) => vec![(InputKind::Surveys, p.by.clone())],
            Pipeline::SupportKpis(p) => vec![(InputKind::Tickets, p.by.clone())],
        }
    }

    /// Output tables, by name, in the order they are produced.
    pub fn build(
        &self,
        inputs: &BTreeMap<InputKind, LazyFrame>,
        cal: &Calendar,
    ) -> Vec<(&'static str, LazyFrame)> {
        let input = |k: InputKind| {
            inputs
                .get(&k)
                .cloned()
                .expect("the runner loads every required input")
        };
        match self {
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
        }
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
