//! The pipeline registry: which pipelines exist, which inputs and columns each needs, and how
//! each is built. Every pipeline is a pure function from cleaned input LazyFrames, its
//! parameters and the job's calendar to output LazyFrames: no I/O, no clock.

pub mod common;
pub mod survey_scores;

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::config::{PipelinesConfig, SurveyScoresParams};
use crate::contracts::InputKind;
use crate::time::Calendar;

/// Every pipeline name cxmetrics knows, in run order.
pub const NAMES: &[&str] = &["survey_scores"];

/// A configured pipeline with its parameters.
#[derive(Debug, Clone)]
pub enum Pipeline {
    SurveyScores(SurveyScoresParams),
}

impl Pipeline {
    /// The pipelines a job file enables, in run order.
    pub fn from_config(cfg: &PipelinesConfig) -> Vec<Pipeline> {
        let mut out = Vec::new();
        if let Some(p) = &cfg.survey_scores {
            out.push(Pipeline::SurveyScores(p.clone()));
        }
        out
    }

    pub fn name(&self) -> &'static str {
        match self {
            Pipeline::SurveyScores(_) => "survey_scores",
        }
    }

    /// Inputs the job must declare for this pipeline.
    pub fn required_inputs(&self) -> Vec<InputKind> {
        match self {
            Pipeline::SurveyScores(_) => vec![InputKind::Surveys],
        }
    }

    /// Non-contract columns this pipeline reads (its `by` segments), per input.
    pub fn extra_columns(&self) -> Vec<(InputKind, Vec<String>)> {
        match self {
            Pipeline::SurveyScores(p) => vec![(InputKind::Surveys, p.by.clone())],
        }
    }

    /// Survey answer scales this pipeline configures (used by the input reader to reject
    /// out-of-scale scores).
    pub fn survey_scales(&self) -> Option<survey_scores::Scales> {
        match self {
            Pipeline::SurveyScores(p) => Some(survey_scores::Scales::from_config(&p.scales)),
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
        }
    }
}
