//! Pipeline `survey_scores`: NPS, CSAT and CES per period, overall and per segment.
//!
//! Input: `surveys` (already cleaned: `survey` lower-cased and one of nps/csat/ces, `score`
//! within its scale). Output table `survey_scores`, one row per (period, survey, dimension,
//! dimension_value):
//!
//! - `period`: first day of the period (day/week/month/quarter/year; weeks start Monday)
//!   containing the local date of `submitted_at` in the job's time zone.
//! - `responses`; `positive`, `neutral`, `negative` (counts).
//!   - NPS (0-10): positive = promoters 9-10, neutral = passives 7-8, negative = detractors 0-6.
//!   - CSAT (default 1-5): positive = score >= 4, negative = below; no neutral band.
//!   - CES (default 1-7): positive = 5-7, neutral = 4, negative = 1-3.
//!   - `scales` overrides CSAT/CES: `{min, max, positive_from, neutral_from?}`; positive =
//!     score >= positive_from, neutral = neutral_from <= score < positive_from, negative = the rest.
//! - `score`: NPS = 100 (positive - negative) / responses; CSAT and CES = 100 positive / responses.
//! - `ci_low`, `ci_high`: 95 % intervals with z = 1.959963984540054 (the 0.975 normal quantile).
//!   NPS: score -/+ 100 z sqrt((p+ + p- - (p+ - p-)^2) / n), clipped to [-100, 100], where
//!   p+ = positive / n and p- = negative / n. CSAT/CES: Wilson score interval for
//!   p = positive / n, times 100: (p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).
//! - `mean_score`: mean raw score.
//! - `complete`: the period's last day is on or before as_of.

use polars::prelude::*;

use super::common::{by_dimensions, clip, count_true, ALL};
use crate::config::{ScaleConfig, ScalesConfig, SurveyScoresParams};
use crate::time::Calendar;

/// The 0.975 quantile of the standard normal distribution.
pub const Z95: f64 = 1.959963984540054;

/// An answer scale and how its scores split into positive / neutral / negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub min: i64,
    pub max: i64,
    pub positive_from: i64,
    pub neutral_from: Option<i64>,
}

impl From<ScaleConfig> for Scale {
    fn from(c: ScaleConfig) -> Self {
        Scale {
            min: c.min,
            max: c.max,
            positive_from: c.positive_from,
            neutral_from: c.neutral_from,
        }
    }
}

impl Scale {
    fn negative_below(&self) -> i64 {
        self.neutral_from.unwrap_or(self.positive_from)
    }
}

/// The scales of the three surveys (NPS is fixed at 0-10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scales {
    pub nps: Scale,
    pub csat: Scale,
    pub ces: Scale,
}

impl Default for Scales {
    fn default() -> Self {
        Scales {
            nps: Scale {
                min: 0,
                max: 10,
                positive_from: 9,
                neutral_from: Some(7),
            },
            csat: Scale {
                min: 1,
                max: 5,
                positive_from: 4,
                neutral_from: None,
            },
            ces: Scale {
                min: 1,
                max: 7,
                positive_from: 5,
                neutral_from: Some(4),
            },
        }
    }
}

impl Scales {
    pub fn from_config(cfg: &ScalesConfig) -> Self {
        let d = Scales::default();
        Scales {
            nps: d.nps,
            csat: cfg.csat.map(Scale::from).unwrap_or(d.csat),
            ces: cfg.ces.map(Scale::from).unwrap_or(d.ces),
        }
    }

    fn each(&self) -> [(&'static str, Scale); 3] {
        [("nps", self.nps), ("csat", self.csat), ("ces", self.ces)]
    }

    /// Why a (lower-cased survey, score) row is invalid, or null.
    pub fn rejection_reason(&self, survey: Expr, score: Expr) -> Expr {
        let mut known = lit(false);
        let mut in_scale = lit(false);
        for (name, s) in self.each() {
            let is = survey.clone().eq(lit(name));
            known = known.or(is.clone());
            in_scale = in_scale.or(is.and(
                score
                    .clone()
                    .gt_eq(lit(s.min))
                    .and(score.clone().lt_eq(lit(s.max))),
            ));
        }
        when(known.not())
            .then(lit("unknown survey type"))
            .when(in_scale.not())
            .then(lit("score out of scale"))
            .otherwise(lit(NULL).cast(DataType::String))
    }

    /// Boolean expressions (positive, neutral, negative) for a valid row.
    fn classify(&self, survey: Expr, score: Expr) -> (Expr, Expr, Expr) {
        let mut pos = lit(false);
        let mut neg = lit(false);
        for (name, s) in self.each() {
            let is = survey.clone().eq(lit(name));
            pos = pos.or(is.clone().and(score.clone().gt_eq(lit(s.positive_from))));
            neg = neg.or(is.and(score.clone().lt(lit(s.negative_below()))));
        }
        let neu = pos.clone().or(neg.clone()).not();
        (pos, neu, neg)
    }
}

/// Computes the `survey_scores` table.
pub fn survey_scores(
    surveys: LazyFrame,
    params: &SurveyScoresParams,
    cal: &Calendar,
) -> LazyFrame {
    let scales = Scales::from_config(&params.scales);
    let (pos, neu, neg) = scales.classify(col("survey"), col("score"));
    let base = surveys.with_columns([
        params
            .period
            .start(cal.local_date(col("submitted_at")))
            .alias("period"),
        pos.alias("__pos"),
        neu.alias("__neu"),
        neg.alias("__neg"),
    ]);
    let counts = by_dimensions(
        base,
        &[col("period"), col("survey")],
        &params.by,
        &[
            len().cast(DataType::Int64).alias("responses"),
            count_true(col("__pos")).alias("positive"),
            count_true(col("__neu")).alias("neutral"),
            count_true(col("__neg")).alias("negative"),
            col("score").cast(DataType::Float64).mean().alias("mean_score"),
        ],
    );

    let n = col("responses").cast(DataType::Float64);
    let p_pos = col("positive").cast(DataType::Float64) / n.clone();
    let p_neg = col("negative").cast(DataType::Float64) / n.clone();
    let z = lit(Z95);
    let z2 = lit(Z95 * Z95);

    let nps = lit(100.0) * (p_pos.clone() - p_neg.clone());
    let nps_half = lit(100.0 * Z95)
        * ((p_pos.clone() + p_neg.clone()
            - (p_pos.clone() - p_neg.clone()) * (p_pos.clone() - p_neg.clone()))
            / n.clone())
        .sqrt();
    let denom = lit(1.0) + z2.clone() / n.clone();
    let center = (p_pos.clone() + z2.clone() / (lit(2.0) * n.clone())) / denom.clone();
    let half = z
        * (p_pos.clone() * (lit(1.0) - p_pos.clone()) / n.clone()
            + z2 / (lit(4.0) * n.clone() * n.clone()))
        .sqrt()
        / denom;
    let is_nps = col("survey").eq(lit("nps"));

    counts
        .with_columns([
            when(is_nps.clone())
                .then(nps.clone())
                .otherwise(lit(100.0) * p_pos)
                .alias("score"),
            when(is_nps.clone())
                .then(clip(nps.clone() - nps_half.clone(), -100.0, 100.0))
                .otherwise(lit(100.0) * (center.clone() - half.clone()))
                .alias("ci_low"),
            when(is_nps)
                .then(clip(nps + nps_half, -100.0, 100.0))
                .otherwise(lit(100.0) * (center + half))
                .alias("ci_high"),
            cal.period_complete(col("period"), params.period)
                .alias("complete"),
        ])
        .select([
            col("period"),
            col("survey"),
            col("dimension"),
            col("dimension_value"),
            col("responses"),
            col("positive"),
            col("neutral"),
            col("negative"),
            col("score"),
            col("mean_score"),
            col("ci_low"),
            col("ci_high"),
            col("complete"),
        ])
        .with_column(col("dimension").neq(lit(ALL)).alias("__not_all"))
        .sort_by_exprs(
            [
                col("period"),
                col("survey"),
                col("__not_all"),
                col("dimension"),
                col("dimension_value"),
            ],
            Default::default(),
        )
        .drop(cols(["__not_all"]))
}
