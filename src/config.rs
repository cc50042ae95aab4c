//! The job file: serde types for every key, and the parser that turns YAML text into them.
//!
//! This is the only module that touches `serde_yaml`. Parsing reports *every* structural problem
//! at once (unknown keys with a "did you mean", wrong types, bad enum values), each with its
//! dotted path and line. Semantic checks (time zone names, paths, pipeline inputs, scale
//! consistency) live in `validate`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

use crate::error::ConfigProblem;

/// A whole job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    pub name: String,
    /// `YYYY-MM-DD`; the `--as-of` flag overrides it; default: yesterday in `timezone`.
    #[serde(default)]
    pub as_of: Option<String>,
    /// IANA time zone name; all calendar bucketing happens in it.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub inputs: InputsConfig,
    pub pipelines: PipelinesConfig,
    #[serde(default)]
    pub quality: QualityConfig,
    #[serde(default)]
    pub output: OutputConfig,
}

fn default_timezone() -> String {
    "UTC".to_string()
}

/// The five inputs a job may declare; a pipeline says which it needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputsConfig {
    pub orders: Option<InputConfig>,
    pub tickets: Option<InputConfig>,
    pub surveys: Option<InputConfig>,
    pub customers: Option<InputConfig>,
    pub events: Option<InputConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// A Parquet file, a directory of Parquet files, or a glob; relative to the job file.
    pub path: String,
    /// Contract column name -> the file's own column name.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// How old the input's latest row may be at the end of as_of.
    #[serde(default)]
    pub freshness: Option<FreshnessConfig>,
}

/// `freshness: { warn_after: 2d, error_after: 7d }`: durations like `90s`, `15m`, `4h`, `2d`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessConfig {
    #[serde(default)]
    pub warn_after: Option<String>,
    #[serde(default)]
    pub error_after: Option<String>,
}

/// Pipeline name -> parameters. A key present with an empty value runs with defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinesConfig {
    pub survey_scores: Option<SurveyScoresParams>,
    pub support_kpis: Option<SupportKpisParams>,
    pub cohort_retention: Option<CohortRetentionParams>,
    pub churn: Option<ChurnParams>,
    pub activation: Option<ActivationParams>,
    pub ltv_segments: Option<LtvSegmentsParams>,
    pub cx_impact: Option<CxImpactParams>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CxImpactParams {
    #[serde(default = "ninety")]
    pub window_days: i64,
    #[serde(default = "ninety")]
    pub inactive_after_days: i64,
    #[serde(default)]
    pub by: Vec<String>,
}

/// Time unit of the CLV models' frequency / recency / T.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelUnit {
    Day,
    #[default]
    Week,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClvModel {
    #[default]
    Bgnbd,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LtvSegmentsParams {
    #[serde(default)]
    pub unit: ModelUnit,
    #[serde(default = "twelve")]
    pub horizon_months: i64,
    #[serde(default = "one_percent")]
    pub monthly_discount_rate: f64,
    #[serde(default)]
    pub model: ClvModel,
    #[serde(default)]
    pub by: Vec<String>,
}

fn one_percent() -> f64 {
    0.01
}

/// An input whose rows count as customer activity (orders: purchases only, amount >= 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivitySource {
    Orders,
    Tickets,
    Surveys,
    Events,
}

/// A customer's start date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// First active day in the activity sources.
    FirstActivity,
    /// Local date of `customers.signup_at`.
    Signup,
    /// First purchase day (amount >= 0).
    FirstOrder,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionMode {
    #[default]
    On,
    OnOrAfter,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortRetentionParams {
    #[serde(default)]
    pub period: Period,
    #[serde(default)]
    pub anchor: Option<Anchor>,
    #[serde(default)]
    pub activity: Option<Vec<ActivitySource>>,
    #[serde(default)]
    pub mode: RetentionMode,
    #[serde(default = "twelve")]
    pub max_periods: i64,
    #[serde(default)]
    pub by: Vec<String>,
}

fn twelve() -> i64 {
    12
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChurnMode {
    #[default]
    Inactivity,
    Subscription,
}

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationMode {
    #[default]
    OnDay,
    Within,
    OnOrAfter,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationParams {
    #[serde(default = "activation_days")]
    pub days: Vec<i64>,
    #[serde(default)]
    pub mode: ActivationMode,
    #[serde(default)]
    pub anchor: Option<Anchor>,
    #[serde(default = "week")]
    pub cohort_period: Period,
    #[serde(default)]
    pub activity: Option<Vec<ActivitySource>>,
    #[serde(default)]
    pub by: Vec<String>,
}

fn activation_days() -> Vec<i64> {
    vec![1, 7, 30]
}

/// Calendar period used to bucket dates. Weeks start on Monday.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    #[default]
    Month,
    Quarter,
    Year,
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportKpisParams {
    #[serde(default = "week")]
    pub period: Period,
    /// Ticket columns to break the KPIs down by.
    #[serde(default = "default_support_by")]
    pub by: Vec<String>,
    /// First-response targets: channel -> duration (`90s`, `15m`, `4h`, `2d`), plus `default`.
    #[serde(default)]
    pub sla_first_response: BTreeMap<String, String>,
}

fn week() -> Period {
    Period::Week
}

fn default_support_by() -> Vec<String> {
    vec!["channel".to_string()]
}

impl Default for SupportKpisParams {
    fn default() -> Self {
        SupportKpisParams {
            period: Period::Week,
            by: default_support_by(),
            sla_first_response: BTreeMap::new(),
        }
    }
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
    /// Scores in `neutral_from..positive_from` are neutral; below it negative. Absent: no neutral band.
    #[serde(default)]
    pub neutral_from: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// Per input: rejected rows / rows considered above this fails the run (exit 4).
    #[serde(default = "default_max_rejected")]
    pub max_rejected_fraction: f64,
}

fn default_max_rejected() -> f64 {
    0.01
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            max_rejected_fraction: default_max_rejected(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Relative to the job file; `--output-dir` overrides.
    #[serde(default)]
    pub dir: Option<String>,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub compression: Compression,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Flat,
    Hive,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    Snappy,
    Lz4,
    Gzip,
    Uncompressed,
}

/// Parses job-file text, reporting every structural problem found, in file order.
pub fn parse_job(text: &str) -> Result<JobFile, Vec<ConfigProblem>> {
    // A UTF-8 byte order mark (written by some Windows editors) is not part of the document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    parse_all(text).map_err(|mut problems| {
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        problems
    })
}

fn parse_all(text: &str) -> Result<JobFile, Vec<ConfigProblem>> {
    let mut value: Value = match serde_yaml::from_str(text) {
        Ok(Value::Null) => {
            return Err(vec![problem(vec![], None, "the job file is empty".into())]);
        }
        Ok(v) => v,
        Err(e) => {
            let line = e.location().map(|l| l.line());
            let msg = e.to_string();
            // serde_yaml appends " at line L column C"; the line is reported separately.
            let msg = match msg.find(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            return Err(vec![problem(vec![], line, msg)]);
        }
    };
    empty_pipeline_params_to_maps(&mut value);

    // serde stops at the first error; to report them all, each offending key is recorded,
    // taken out of the document, and deserialization is tried again.
    let mut problems = Vec::new();
    let mut removed: Vec<Vec<String>> = Vec::new();
    for _ in 0..200 {
        let err = match serde_path_to_error::deserialize::<_, JobFile>(value.clone()) {
            Ok(job) if problems.is_empty() => return Ok(job),
            Ok(_) => return Err(problems),
            Err(err) => err,
        };
        let mut path: Vec<String> = err
            .path()
            .iter()
            .map(|s| s.to_string())
            .filter(|s| s != "?")
            .collect();
        let raw = err.into_inner().to_string();
        let words = backticked(&raw);
        if raw.starts_with("unknown field") && path.last() != words.first() {
            if let Some(w) = words.first() {
                path.push(w.clone());
            }
        }
        if raw.starts_with("missing field") {
            let field = words.first().cloned().unwrap_or_default();
            let mut missing = path.clone();
            missing.push(field.clone());
            if removed.contains(&missing) {
                // Already reported as a bad value; its absence is a consequence, not news.
                return Err(problems);
            }
            let line = locate(text, &path);
            problems.push(problem(path.clone(), line, raw));
            // Keep looking for more problems: drop the incomplete section, or at the root
            // stand in a placeholder for the missing key.
            let carried_on = if path.is_empty() {
                match (&mut value, field.as_str()) {
                    (Value::Mapping(m), "name") => m.insert("name".into(), "".into()).is_none(),
                    (Value::Mapping(m), "pipelines") => m
                        .insert("pipelines".into(), Value::Mapping(Default::default()))
                        .is_none(),
                    _ => false,
                }
            } else {
                remove_path(&mut value, &path)
            };
            if !carried_on {
                return Err(problems);
            }
            removed.push(path);
            continue;
        }
        let line = locate(text, &path);
        problems.push(problem(path.clone(), line, with_suggestion(&raw)));
        if path.is_empty() || !remove_path(&mut value, &path) {
            return Err(problems);
        }
        removed.push(path);
    }
    Err(problems)
}

fn problem(path: Vec<String>, line: Option<usize>, message: String) -> ConfigProblem {
    ConfigProblem {
        path: path.join("."),
        line,
        message,
    }
}

/// `survey_scores:` with no value means "run with defaults", not "absent".
fn empty_pipeline_params_to_maps(doc: &mut Value) {
    if let Some(Value::Mapping(pipes)) = doc.get_mut("pipelines") {
        for (_, params) in pipes.iter_mut() {
            if params.is_null() {
                *params = Value::Mapping(Default::default());
            }
        }
    }
}

fn backticked(msg: &str) -> Vec<String> {
    msg.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// Rewrites "unknown field `perod`, expected one of ..." into "... did you mean `period`?".
fn with_suggestion(msg: &str) -> String {
    let kind = if msg.starts_with("unknown field") {
        "field"
    } else if msg.starts_with("unknown variant") {
        "variant"
    } else {
        return msg.to_string();
    };
    let words = backticked(msg);
    let Some((bad, candidates)) = words.split_first() else {
        return msg.to_string();
    };
    let best = candidates
        .iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(bad, c), c))
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, good)) => format!("unknown {kind} `{bad}`, did you mean `{good}`?"),
        None => msg.to_string(),
    }
}

fn remove_path(doc: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = doc;
    for seg in parents {
        let next = match cur {
            Value::Mapping(m) => m.get_mut(seg.as_str()),
            Value::Sequence(s) => seg.parse::<usize>().ok().and_then(|i| s.get_mut(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return false,
        }
    }
    match cur {
        Value::Mapping(m) => m.remove(last.as_str()).is_some(),
        Value::Sequence(s) => match last.parse::<usize>() {
            Ok(i) if i < s.len() => {
                s.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Best-effort 1-based line of a dotted key path: each segment is searched for as a mapping
/// key at or after the line where its parent was found.
fn locate(text: &str, path: &[String]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    let mut found = None;
    for seg in path {
        if seg.parse::<usize>().is_ok() {
            continue;
        }
        let at = (start..lines.len()).find(|&i| line_has_key(lines[i], seg))?;
        found = Some(at + 1);
        start = at;
    }
    found
}

fn line_has_key(line: &str, key: &str) -> bool {
    let code = line.split(" #").next().unwrap_or(line);
    code.match_indices(key).any(|(i, _)| {
        let before = code[..i].trim_end();
        let after = code[i + key.len()..].trim_start();
        let before_ok = before.is_empty()
            || before.ends_with('{')
            || before.ends_with(',')
            || before.ends_with('-');
        before_ok && after.starts_with(':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_job_parses_with_defaults() {
        let job = parse_job("name: x\npipelines:\n  survey_scores:\n").unwrap();
        assert_eq!(job.timezone, "UTC");
        assert_eq!(job.quality.max_rejected_fraction, 0.01);
        assert_eq!(job.output.layout, Layout::Flat);
        let params = job.pipelines.survey_scores.unwrap();
        assert_eq!(params.period, Period::Month);
        assert!(params.by.is_empty());
    }

    #[test]
    fn reports_every_problem_with_lines_and_suggestions() {
        let text = "name: x\n\
                    timezon: UTC\n\
                    pipelines:\n  survey_scores: { perod: month, by: [channel] }\n\
                    output:\n  layout: flt\n  compresion: zstd\n";
        let problems = parse_job(text).unwrap_err();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "line 2: timezon: unknown field `timezon`, did you mean `timezone`?",
                "line 4: pipelines.survey_scores.perod: unknown field `perod`, did you mean `period`?",
                "line 6: output.layout: unknown variant `flt`, did you mean `flat`?",
                "line 7: output.compresion: unknown field `compresion`, did you mean `compression`?",
            ],
            "{shown:#?}"
        );
    }

    #[test]
    fn wrong_type_is_reported_without_a_spurious_missing_field() {
        let problems = parse_job("name: [1, 2]\npipelines: {}\n").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "name");
        assert_eq!(problems[0].line, Some(1));
    }

    #[test]
    fn missing_required_keys_do_not_hide_later_problems() {
        let p = parse_job("inputs:\n  surveys: { pth: x }\noutput: { layot: flat }\n").unwrap_err();
        let shown: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "line 2: inputs.surveys.pth: unknown field `pth`, did you mean `path`?",
                "line 2: inputs.surveys: missing field `path`",
                "line 3: output.layot: unknown field `layot`, did you mean `layout`?",
                "missing field `name`",
                "missing field `pipelines`",
            ]
        );
    }

    #[test]
    fn syntax_errors_and_empty_files_are_problems() {
        assert_eq!(
            parse_job("").unwrap_err()[0].message,
            "the job file is empty"
        );
        let p = parse_job("name: x\npipelines: [\n").unwrap_err();
        assert_eq!(p.len(), 1);
        assert!(p[0].line.is_some());
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_document() {
        let job = parse_job("\u{feff}name: x\npipelines:\n  survey_scores:\n").unwrap();
        assert_eq!(job.name, "x");
    }

    #[test]
    fn duplicate_pipeline_is_an_error() {
        let p = parse_job("name: x\npipelines:\n  survey_scores: {}\n  survey_scores: {}\n")
            .unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("duplicate"), "{}", p[0].message);
    }
}
