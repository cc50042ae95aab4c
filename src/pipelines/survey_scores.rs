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
use serde::Deserialize;

use super::common::{by_dimensions, clip, count_true, SortOverallFirst};
use super::{
    params, Bucket, Finalized, InputUse, JobSettings, MapOutput, Merge, Merged, Pipeline, Spec,
    TableData,
};
use crate::config::Period;
use crate::contracts::InputKind;
use crate::engine::profile::collect;
use crate::problems::Problems;
use crate::time::Calendar;

/// The job file's `pipelines.survey_scores`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyScoresParams {
    #[serde(default)]
    pub period: Period,
    /// Survey columns to break the scores down by.
    #[serde(default)]
    pub by: Vec<String>,
    #[serde(default)]
    pub scales: ScalesConfig,
}

/// Overrides of the CSAT and CES answer scales (NPS is always 0-10).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalesConfig {
    pub csat: Option<ScaleConfig>,
    pub ces: Option<ScaleConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleConfig {
    pub min: i64,
    pub max: i64,
    /// Scores at or above this are positive.
    pub positive_from: i64,
    /// Scores in `neutral_from..positive_from` are neutral; below it negative. Absent: no
    /// neutral band.
    #[serde(default)]
    pub neutral_from: Option<i64>,
}

/// The range of every number of a survey scale.
pub const SCALE_BOUND: i64 = 1000;

fn check_scale(at: &str, s: &ScaleConfig, problems: &mut Problems) {
    let values = [
        Some(s.min),
        Some(s.max),
        Some(s.positive_from),
        s.neutral_from,
    ];
    if values
        .iter()
        .flatten()
        .any(|v| !(-SCALE_BOUND..=SCALE_BOUND).contains(v))
    {
        problems.push(
            at,
            format!("every value must be between -{SCALE_BOUND} and {SCALE_BOUND}"),
        );
        return;
    }
    if s.min >= s.max {
        problems.push(at, format!("min ({}) must be below max ({})", s.min, s.max));
    }
    if s.positive_from <= s.min || s.positive_from > s.max {
        problems.push(
            at,
            format!(
                "positive_from ({}) must be above min ({}) and at most max ({})",
                s.positive_from, s.min, s.max
            ),
        );
    }
    if let Some(n) = s.neutral_from {
        if n <= s.min || n >= s.positive_from {
            problems.push(
                at,
                format!(
                    "neutral_from ({n}) must be above min ({}) and below positive_from ({})",
                    s.min, s.positive_from
                ),
            );
        }
    }
}

/// The configuration of `survey_scores`.
pub struct SurveyScoresSpec;
pub static SPEC: SurveyScoresSpec = SurveyScoresSpec;

impl Spec for SurveyScoresSpec {
    fn name(&self) -> &'static str {
        "survey_scores"
    }

    fn build(
        &self,
        value: serde_yaml::Value,
        at: &str,
        settings: &mut JobSettings,
        problems: &mut Problems,
    ) -> Option<Box<dyn Pipeline>> {
        let p: SurveyScoresParams = params(value, at, problems)?;
        if let Some(s) = &p.scales.csat {
            check_scale(&format!("{at}.scales.csat"), s, problems);
        }
        if let Some(s) = &p.scales.ces {
            check_scale(&format!("{at}.scales.ces"), s, problems);
        }
        // The scales hold for the whole job: the input cleaning and every CSAT figure use them.
        settings.scales = Scales::from_config(&p.scales);
        Some(Box::new(SurveyScores(p)))
    }
}

/// The configured pipeline.
#[derive(Debug, Clone)]
pub struct SurveyScores(pub SurveyScoresParams);

impl Pipeline for SurveyScores {
    fn name(&self) -> &'static str {
        "survey_scores"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["survey_scores"]
    }

    fn inputs(&self) -> InputUse {
        InputUse {
            required: vec![InputKind::Surveys],
            optional: vec![],
            extra: vec![(InputKind::Surveys, self.0.by.clone())],
        }
    }

    fn by(&self) -> (InputKind, &[String]) {
        (InputKind::Surveys, &self.0.by)
    }

    fn engine(&self) -> Engine {
        ENGINE
    }

    fn map(&self, _round: usize, b: &Bucket) -> PolarsResult<MapOutput> {
        let counts = collect(
            partial_counts(b.input(InputKind::Surveys), &self.0, b.cal),
            "survey_scores.counts",
            ENGINE,
        )?;
        Ok(MapOutput::default().partial("counts", COUNTS_MERGE, counts))
    }

    fn finalize(&self, _round: usize, m: &Merged) -> PolarsResult<Finalized> {
        let table = finish(m.get("counts"), &self.0, m.cal).collect()?;
        Ok(Finalized::Tables(vec![(
            "survey_scores",
            TableData::Frame(table),
        )]))
    }
}

/// The partial's keys; every other column is a count or an integer sum.
const COUNTS_MERGE: Merge = Merge::sum(&["period", "survey", "dimension", "dimension_value"]);

/// The polars engine the runner collects this table with. Streaming: its aggregations are
/// counts and the mean of integer scores, whose float sum is exact in any order, so the
/// result does not depend on how the engine splits the rows, and it was measured faster and
/// leaner than in memory (docs/performance.md, "The streaming engine"). The unit tests collect
/// every case with both engines and compare them.
pub const ENGINE: Engine = Engine::Streaming;

/// The 0.975 quantile of the standard normal distribution.
pub const Z95: f64 = 1.959963984540054;

/// An answer scale and how its scores split into positive / neutral / negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
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

    /// The checks a (lower-cased survey, score) row must pass, in order: each condition that
    /// holds names why the row is invalid (the first one that holds is the reason).
    pub fn rejection_checks(&self, survey: Expr, score: Expr) -> [(Expr, &'static str); 2] {
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
        [
            (known.not(), "unknown survey type"),
            (in_scale.not(), "score out of scale"),
        ]
    }

    /// Why a (lower-cased survey, score) row is invalid, or null.
    #[cfg(test)]
    fn rejection_reason(&self, survey: Expr, score: Expr) -> Expr {
        let [(unknown, r1), (out, r2)] = self.rejection_checks(survey, score);
        when(unknown)
            .then(lit(r1))
            .when(out)
            .then(lit(r2))
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

/// One bucket's counts per (period, survey, dimension, dimension_value): responses, positive,
/// neutral, negative, and the sum of the scores (integers, so every sum is exact).
fn partial_counts(surveys: LazyFrame, params: &SurveyScoresParams, cal: &Calendar) -> LazyFrame {
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
    by_dimensions(
        base,
        &[col("period"), col("survey")],
        &params.by,
        &[
            len().cast(DataType::Int64).alias("responses"),
            count_true(col("__pos")).alias("positive"),
            count_true(col("__neu")).alias("neutral"),
            count_true(col("__neg")).alias("negative"),
            col("score")
                .cast(DataType::Int64)
                .sum()
                .alias("__score_sum"),
        ],
    )
}

/// The table from the merged counts.
fn finish(counts: LazyFrame, params: &SurveyScoresParams, cal: &Calendar) -> LazyFrame {
    // The mean of integer scores: their exact sum over the count.
    let counts = counts.with_column(
        (col("__score_sum").cast(DataType::Float64) / col("responses").cast(DataType::Float64))
            .alias("mean_score"),
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
            // mean_score's numerator, so that rows re-aggregate (score's are the counts).
            col("__score_sum").cast(DataType::Int64).alias("score_sum"),
            col("complete"),
        ])
        .sort_overall_first(&["period", "survey"], &[])
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveDateTime};

    use super::*;
    use crate::pipelines::testing::run_buckets;
    use crate::pipelines::Facts;
    use crate::testutil::{i64s, strs};

    fn ts(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    /// Cleaned surveys: (survey, score, submitted_at UTC "YYYY-MM-DD HH:MM:SS", channel).
    fn surveys(rows: &[(&str, i64, &str, Option<&str>)]) -> LazyFrame {
        let at: Vec<i64> = rows.iter().map(|r| ts(r.2)).collect();
        DataFrame::new_infer_height(vec![
            Column::new(
                "survey".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Column::new("score".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            Column::new("submitted_at".into(), at)
                .cast(&DataType::Datetime(
                    TimeUnit::Microseconds,
                    Some(TimeZone::UTC),
                ))
                .unwrap(),
            Column::new(
                "channel".into(),
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            ),
        ])
        .unwrap()
        .lazy()
    }

    fn many(
        survey: &'static str,
        counts: &[(i64, usize)],
    ) -> Vec<(&'static str, i64, &'static str, Option<&'static str>)> {
        counts
            .iter()
            .flat_map(|(score, n)| {
                std::iter::repeat_n((survey, *score, "2026-06-15 12:00:00", Some("email")), *n)
            })
            .collect()
    }

    fn cal(as_of: &str, tz: &str) -> Calendar {
        Calendar::new(NaiveDate::parse_from_str(as_of, "%Y-%m-%d").unwrap(), tz).unwrap()
    }

    /// The table, computed as one bucket and as the rows split into three buckets: both
    /// must be the same frame.
    fn run(
        rows: &[(&str, i64, &str, Option<&str>)],
        params: &SurveyScoresParams,
        c: &Calendar,
    ) -> DataFrame {
        let p = SurveyScores(params.clone());
        let one = [(InputKind::Surveys, surveys(rows))].into_iter().collect();
        let whole = run_buckets(&p, &[one], c, &Facts::default())["survey_scores"].clone();
        let split: Vec<_> = (0..3)
            .map(|k| {
                let part: Vec<_> = rows.iter().skip(k).step_by(3).copied().collect();
                [(InputKind::Surveys, surveys(&part))].into_iter().collect()
            })
            .collect();
        let three = run_buckets(&p, &split, c, &Facts::default())["survey_scores"].clone();
        assert!(whole.equals_missing(&three), "{whole}\n{three}");
        whole
    }

    fn f64s(df: &DataFrame, name: &str) -> Vec<f64> {
        df.column(name)
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    }

    fn dates(df: &DataFrame, name: &str) -> Vec<NaiveDate> {
        df.column(name)
            .unwrap()
            .date()
            .unwrap()
            .as_date_iter()
            .map(|d| d.unwrap())
            .collect()
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} != {b}");
    }

    #[test]
    fn nps_50_promoters_30_passives_20_detractors_is_30() {
        let rows = many(
            "nps",
            &[(10, 25), (9, 25), (8, 15), (7, 15), (6, 10), (0, 10)],
        );
        let df = run(
            &rows,
            &SurveyScoresParams::default(),
            &cal("2026-06-30", "UTC"),
        );
        assert_eq!(df.height(), 1);
        assert_eq!(i64s(&df, "responses"), [100]);
        assert_eq!(i64s(&df, "positive"), [50]);
        assert_eq!(i64s(&df, "neutral"), [30]);
        assert_eq!(i64s(&df, "negative"), [20]);
        close(f64s(&df, "score")[0], 30.0);
        // 30 -/+ 100 * 1.95996 * sqrt((0.5 + 0.2 - 0.3^2) / 100), computed by hand.
        close(f64s(&df, "ci_low")[0], 14.69219192495733);
        close(f64s(&df, "ci_high")[0], 45.30780807504267);
        // mean of 25x10, 25x9, 15x8, 15x7, 10x6, 10x0 = 760 / 100
        close(f64s(&df, "mean_score")[0], 7.6);
    }

    #[test]
    fn nps_extremes_are_plus_and_minus_100_with_clipped_intervals() {
        let c = cal("2026-06-30", "UTC");
        let all_bad = run(
            &many("nps", &[(0, 3), (6, 4)]),
            &SurveyScoresParams::default(),
            &c,
        );
        close(f64s(&all_bad, "score")[0], -100.0);
        close(f64s(&all_bad, "ci_low")[0], -100.0);
        close(f64s(&all_bad, "ci_high")[0], -100.0);
        let all_good = run(
            &many("nps", &[(9, 2), (10, 5)]),
            &SurveyScoresParams::default(),
            &c,
        );
        close(f64s(&all_good, "score")[0], 100.0);
        close(f64s(&all_good, "ci_low")[0], 100.0);
        close(f64s(&all_good, "ci_high")[0], 100.0);
        // One promoter and one detractor: NPS 0, half-width 100*z*sqrt(1/2) > 100 -> clipped.
        let split = run(
            &many("nps", &[(10, 1), (0, 1)]),
            &SurveyScoresParams::default(),
            &c,
        );
        close(f64s(&split, "score")[0], 0.0);
        close(f64s(&split, "ci_low")[0], -100.0);
        close(f64s(&split, "ci_high")[0], 100.0);
    }

    #[test]
    fn csat_80_of_100_satisfied_is_80_with_wilson_interval() {
        let rows = many("csat", &[(5, 40), (4, 40), (3, 10), (1, 10)]);
        let df = run(
            &rows,
            &SurveyScoresParams::default(),
            &cal("2026-06-30", "UTC"),
        );
        close(f64s(&df, "score")[0], 80.0);
        assert_eq!(i64s(&df, "neutral"), [0]);
        assert_eq!(i64s(&df, "negative"), [20]);
        // Published Wilson 95% interval for 80/100: 0.7112 to 0.8666.
        close(f64s(&df, "ci_low")[0], 71.11708344068411);
        close(f64s(&df, "ci_high")[0], 86.66330666689676);
    }

    #[test]
    fn ces_60_of_100_easy_is_60() {
        let rows = many(
            "ces",
            &[(7, 20), (6, 20), (5, 20), (4, 15), (3, 15), (1, 10)],
        );
        let df = run(
            &rows,
            &SurveyScoresParams::default(),
            &cal("2026-06-30", "UTC"),
        );
        close(f64s(&df, "score")[0], 60.0);
        assert_eq!(i64s(&df, "positive"), [60]);
        assert_eq!(i64s(&df, "neutral"), [15]);
        assert_eq!(i64s(&df, "negative"), [25]);
        // Wilson 95% interval for 60/100: 0.5020 to 0.6906.
        close(f64s(&df, "ci_low")[0], 50.20025867910618);
        close(f64s(&df, "ci_high")[0], 69.05987135675412);
    }

    #[test]
    fn scales_override_moves_the_thresholds() {
        let mut params = SurveyScoresParams::default();
        params.scales.csat = Some(ScaleConfig {
            min: 1,
            max: 10,
            positive_from: 8,
            neutral_from: Some(6),
        });
        let rows = many("csat", &[(10, 1), (8, 1), (7, 1), (6, 1), (5, 1)]);
        let df = run(&rows, &params, &cal("2026-06-30", "UTC"));
        assert_eq!(i64s(&df, "positive"), [2]);
        assert_eq!(i64s(&df, "neutral"), [2]);
        assert_eq!(i64s(&df, "negative"), [1]);
        close(f64s(&df, "score")[0], 40.0);
    }

    #[test]
    fn periods_are_local_calendar_periods_across_dst() {
        // New York. 2026-03-01 03:00Z is Feb 28 22:00 local; 2026-03-08 is the DST change
        // (02:00 -> 03:00); 2026-03-09 03:30Z is Mar 8 23:30 EDT, still in the week of Mar 2.
        let rows = [
            ("nps", 10, "2026-03-01 03:00:00", None),
            ("nps", 10, "2026-03-01 05:00:00", None),
            ("nps", 0, "2026-03-09 03:30:00", None),
            ("nps", 0, "2026-03-09 04:30:00", None),
        ];
        let c = cal("2026-03-15", "America/New_York");
        let monthly = run(&rows, &SurveyScoresParams::default(), &c);
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            dates(&monthly, "period"),
            [d("2026-02-01"), d("2026-03-01")]
        );
        assert_eq!(i64s(&monthly, "responses"), [1, 3]);
        let complete: Vec<bool> = monthly
            .column("complete")
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(complete, [true, false]);

        let weekly_params = SurveyScoresParams {
            period: Period::Week,
            ..Default::default()
        };
        let weekly = run(&rows, &weekly_params, &c);
        // Feb 28 (Sat) -> week of Feb 23; Mar 1 00:00 (Sun) -> Feb 23; Mar 8 23:30 (Sun) -> Mar 2;
        // Mar 9 00:30 (Mon) -> Mar 9.
        assert_eq!(
            dates(&weekly, "period"),
            [d("2026-02-23"), d("2026-03-02"), d("2026-03-09")]
        );
        assert_eq!(i64s(&weekly, "responses"), [2, 1, 1]);
        let complete: Vec<bool> = weekly
            .column("complete")
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .map(Option::unwrap)
            .collect();
        // The week of Mar 9 ends Sunday Mar 15 = as_of: complete.
        assert_eq!(complete, [true, true, true]);
    }

    #[test]
    fn by_breaks_down_with_unknown_for_nulls_after_the_overall_rows() {
        let rows = [
            ("csat", 5, "2026-06-01 10:00:00", Some("chat")),
            ("csat", 1, "2026-06-01 10:00:00", Some("chat")),
            ("csat", 4, "2026-06-01 10:00:00", None),
        ];
        let params = SurveyScoresParams {
            by: vec!["channel".into()],
            ..Default::default()
        };
        let df = run(&rows, &params, &cal("2026-06-30", "UTC"));
        assert_eq!(strs(&df, "dimension"), ["all", "channel", "channel"]);
        assert_eq!(strs(&df, "dimension_value"), ["all", "chat", "unknown"]);
        assert_eq!(i64s(&df, "responses"), [3, 2, 1]);
        close(f64s(&df, "score")[1], 50.0);
        close(f64s(&df, "score")[2], 100.0);
    }

    #[test]
    fn empty_input_gives_an_empty_table_with_the_full_schema() {
        let df = run(
            &[],
            &SurveyScoresParams::default(),
            &cal("2026-06-30", "UTC"),
        );
        assert_eq!(df.height(), 0);
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "period",
                "survey",
                "dimension",
                "dimension_value",
                "responses",
                "positive",
                "neutral",
                "negative",
                "score",
                "mean_score",
                "ci_low",
                "ci_high",
                "score_sum",
                "complete"
            ]
        );
        assert_eq!(df.column("score_sum").unwrap().dtype(), &DataType::Int64);
        assert_eq!(df.column("responses").unwrap().dtype(), &DataType::Int64);
        assert_eq!(df.column("period").unwrap().dtype(), &DataType::Date);
    }

    #[test]
    fn rejection_reasons_follow_the_scales() {
        let df = df!(
            "survey" => ["nps", "nps", "csat", "ces", "ces", "star"],
            "score" => [10i64, 11, 0, 7, 8, 3],
        )
        .unwrap();
        let out = df
            .lazy()
            .select([Scales::default()
                .rejection_reason(col("survey"), col("score"))
                .alias("r")])
            .collect()
            .unwrap();
        let r: Vec<Option<&str>> = out.column("r").unwrap().str().unwrap().iter().collect();
        assert_eq!(
            r,
            [
                None,
                Some("score out of scale"),
                Some("score out of scale"),
                None,
                Some("score out of scale"),
                Some("unknown survey type")
            ]
        );
    }
}
