//! The job file: serde types for every key, and the parser that turns YAML text into them.
//!
//! Parsing reports *every* structural problem at once (unknown keys with a "did you mean",
//! wrong types, bad enum values), each with its dotted path and line, into the one
//! `Problems` collector. Each pipeline's parameters are deserialized the same way by its own
//! `Spec` (`deserialize_all`). Semantic checks (time zone names, paths, pipeline inputs,
//! ranges) live in `validate` and in the specs.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

use crate::error::ConfigProblem;
use crate::problems::Problems;

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
    /// Pipeline name -> its parameters (each pipeline's `Spec` reads its own), in file order.
    pub pipelines: serde_yaml::Mapping,
    #[serde(default)]
    pub quality: QualityConfig,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(default)]
    pub execution: ExecutionConfig,
    /// Options of the object store of `s3://`, `gs://`, `az://` paths (`storage::OPTION_KEYS`):
    /// endpoint, region, anonymous, path_style, allow_http and credentials. Never logged.
    #[serde(default)]
    pub storage_options: BTreeMap<String, serde_yaml::Value>,
}

/// `execution`: how the run is split into customer buckets and how much it may use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionConfig {
    /// `auto` (the default) or a number of buckets.
    #[serde(default)]
    pub buckets: Option<serde_yaml::Value>,
    /// The memory the run may use, e.g. `8GiB` (`auto` sizes the buckets to it).
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Threads for the computation (default: every core).
    #[serde(default)]
    pub threads: Option<i64>,
    /// Where the bucket files go (default: a folder inside the output directory).
    #[serde(default)]
    pub work_dir: Option<String>,
    /// `local` (the default) or `spark`.
    #[serde(default)]
    pub engine: Option<String>,
    /// The Spark Connect server (`sc://host:port`), for `engine: spark`.
    #[serde(default)]
    pub remote: Option<String>,
    /// How long to wait for the Spark Connect server, e.g. `30s` (default).
    #[serde(default)]
    pub connect_timeout: Option<String>,
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
    #[serde(default)]
    pub path: Option<String>,
    /// A table name Spark knows (`sales.orders`), instead of `path` (`engine: spark`).
    #[serde(default)]
    pub table: Option<String>,
    /// Contract column name -> the file's own column name (and, for money in integer minor
    /// units, its scale).
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnMapping>,
    /// How old the input's latest row may be at the end of as_of.
    #[serde(default)]
    pub freshness: Option<FreshnessConfig>,
}

/// Where a contract column is in the file: `amount: amount_usd`, or for money kept as an
/// integer of minor units, `amount: { name: amount_cents, scale: 2 }` (the value is the
/// integer times 10^-scale).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ColumnMapping {
    Name(String),
    Scaled(ScaledColumn),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaledColumn {
    pub name: String,
    pub scale: u32,
}

/// The scales a money column of minor units may declare: cents are 2, mills 3; 18 digits is
/// the most an Int64 holds.
pub const MONEY_SCALES: std::ops::RangeInclusive<u32> = 0..=18;

impl ColumnMapping {
    pub fn name(&self) -> &str {
        match self {
            ColumnMapping::Name(n) | ColumnMapping::Scaled(ScaledColumn { name: n, .. }) => n,
        }
    }

    pub fn scale(&self) -> Option<u32> {
        match self {
            ColumnMapping::Name(_) => None,
            ColumnMapping::Scaled(s) => Some(s.scale),
        }
    }
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
    ParetoNbd,
    None,
}

/// An input whose rows count as customer activity (orders: purchases only, amount >= 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Orders,
    Tickets,
    Surveys,
    Events,
}

/// An activity source: an input, and which of its rows count (`activity: [orders, { events:
/// { event_type: [a, b], min_count: 2 } }, { orders: { min_amount: 10 } }]`). A customer is
/// active on a day when the source's counted rows of that day are at least `min_count`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActivitySource {
    pub kind: SourceKind,
    /// Events only: the event types that count (empty: every event).
    pub event_types: Vec<String>,
    /// Orders only: the smallest purchase amount that counts, in millionths of a unit.
    pub min_amount_micros: Option<i64>,
    /// Rows a day needs (1 to 1,000,000).
    pub min_count: u32,
}

impl ActivitySource {
    const fn plain(kind: SourceKind) -> ActivitySource {
        ActivitySource {
            kind,
            event_types: Vec::new(),
            min_amount_micros: None,
            min_count: 1,
        }
    }

    pub const ORDERS: ActivitySource = ActivitySource::plain(SourceKind::Orders);
    pub const TICKETS: ActivitySource = ActivitySource::plain(SourceKind::Tickets);
    pub const SURVEYS: ActivitySource = ActivitySource::plain(SourceKind::Surveys);
    pub const EVENTS: ActivitySource = ActivitySource::plain(SourceKind::Events);
}

/// The largest `min_count` of an activity filter.
pub const MAX_MIN_COUNT: i64 = 1_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivityFilter {
    #[serde(default)]
    event_type: Option<Vec<String>>,
    #[serde(default)]
    min_amount: Option<f64>,
    #[serde(default)]
    min_count: Option<i64>,
}

impl<'de> Deserialize<'de> for ActivitySource {
    /// A bare input name, or a one-key mapping from the input to its filter.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_yaml::Value::deserialize(d)?;
        let kind_of = |v: serde_yaml::Value| {
            serde_yaml::from_value::<SourceKind>(v).map_err(|_| {
                D::Error::custom("an activity source is one of orders, tickets, surveys, events")
            })
        };
        let serde_yaml::Value::Mapping(map) = value else {
            return kind_of(value).map(ActivitySource::plain);
        };
        if map.len() != 1 {
            return Err(D::Error::custom(
                "a filtered activity source is one input with its filter, e.g. `{ events: { event_type: [signup_completed] } }`",
            ));
        }
        let (k, v) = map.into_iter().next().expect("one entry");
        let kind = kind_of(k)?;
        let f: ActivityFilter = serde_yaml::from_value(v).map_err(D::Error::custom)?;
        let min_count = f.min_count.unwrap_or(1);
        if !(1..=MAX_MIN_COUNT).contains(&min_count) {
            return Err(D::Error::custom(format!(
                "min_count must be between 1 and {MAX_MIN_COUNT}, got {min_count}"
            )));
        }
        if f.event_type.is_some() && kind != SourceKind::Events {
            return Err(D::Error::custom("event_type filters the events input only"));
        }
        if f.min_amount.is_some() && kind != SourceKind::Orders {
            return Err(D::Error::custom("min_amount filters the orders input only"));
        }
        let min_amount_micros = match f.min_amount {
            None => None,
            Some(a) if a.is_finite() && (0.0..1e15).contains(&a) => Some((a * 1e6).round() as i64),
            Some(a) => {
                return Err(D::Error::custom(format!(
                    "min_amount must be from 0 to below 1e15, got {a}"
                )))
            }
        };
        if f.event_type
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > 1_000)
        {
            return Err(D::Error::custom("event_type lists 1 to 1,000 event types"));
        }
        let mut event_types = f.event_type.unwrap_or_default();
        event_types.sort();
        event_types.dedup();
        Ok(ActivitySource {
            kind,
            event_types,
            min_amount_micros,
            min_count: min_count as u32,
        })
    }
}

/// A customer's start date: `first_activity`, `signup`, `first_order`, or
/// `{ first_event: [types] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// First active day in the activity sources.
    FirstActivity,
    /// Local date of `customers.signup_at`.
    Signup,
    /// First purchase day (amount >= 0).
    FirstOrder,
    /// First day with an event of one of these types.
    FirstEvent(Vec<String>),
}

impl<'de> Deserialize<'de> for Anchor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Named {
            FirstActivity,
            Signup,
            FirstOrder,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FirstEvent {
            first_event: Vec<String>,
        }
        let value = serde_yaml::Value::deserialize(d)?;
        if let serde_yaml::Value::Mapping(_) = value {
            let f: FirstEvent = serde_yaml::from_value(value).map_err(D::Error::custom)?;
            if f.first_event.is_empty() || f.first_event.len() > 1_000 {
                return Err(D::Error::custom("first_event lists 1 to 1,000 event types"));
            }
            return Ok(Anchor::FirstEvent(f.first_event));
        }
        match serde_yaml::from_value::<Named>(value) {
            Ok(Named::FirstActivity) => Ok(Anchor::FirstActivity),
            Ok(Named::Signup) => Ok(Anchor::Signup),
            Ok(Named::FirstOrder) => Ok(Anchor::FirstOrder),
            Err(_) => Err(D::Error::custom(
                "an anchor is first_activity, signup, first_order or { first_event: [types] }",
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionMode {
    #[default]
    On,
    OnOrAfter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChurnMode {
    #[default]
    Inactivity,
    Subscription,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationMode {
    #[default]
    OnDay,
    Within,
    OnOrAfter,
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
    /// Also write the HTML report (`report.html` beside the manifest).
    #[serde(default)]
    pub report: bool,
    /// How money columns are written: Float64 (default) or Decimal(38, 6).
    #[serde(default)]
    pub money: MoneyType,
}

/// `output.money`: the type of every money column of the tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MoneyType {
    #[default]
    Float64,
    Decimal,
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

/// Parses job-file text, reporting every structural problem found, in file order. The
/// pipelines' own parameters are left as YAML for their `Spec`s.
pub fn parse_job(text: &str) -> Result<JobFile, Vec<ConfigProblem>> {
    // A UTF-8 byte order mark (written by some Windows editors) is not part of the document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut problems = Problems::new(text);
    let value: Value = match serde_yaml::from_str(text) {
        Ok(Value::Null) => {
            problems.push("", "the job file is empty");
            return Err(problems.into_vec());
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
            problems.push_at("", line, msg);
            return Err(problems.into_vec());
        }
    };
    let placeholders = [
        ("name", Value::from("")),
        ("pipelines", Value::Mapping(Default::default())),
    ];
    match deserialize_all::<JobFile>(value, "", &placeholders, &mut problems) {
        Some(job) if problems.is_empty() => Ok(job),
        _ => Err(problems.into_sorted()),
    }
}

/// Deserializes `value` (the YAML at dotted path `at`) into `T`, reporting every structural
/// problem into `problems`: serde stops at the first error, so each offending key is
/// recorded, taken out of the document, and deserialization is tried again. A missing key at
/// the top level is stood in by its `placeholders` value so that the rest is still checked.
/// None when there was any problem.
pub fn deserialize_all<T: serde::de::DeserializeOwned>(
    mut value: Value,
    at: &str,
    placeholders: &[(&str, Value)],
    problems: &mut Problems,
) -> Option<T> {
    if value.is_null() {
        value = Value::Mapping(Default::default());
    }
    let prefix: Vec<String> = if at.is_empty() {
        Vec::new()
    } else {
        at.split('.').map(String::from).collect()
    };
    let start = problems.len();
    let mut removed: Vec<Vec<String>> = Vec::new();
    let done = |problems: &Problems| problems.len() == start;
    for _ in 0..200 {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) if done(problems) => return Some(v),
            Ok(_) => return None,
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
        let full = |p: &[String]| {
            let mut all = prefix.clone();
            all.extend(p.iter().cloned());
            all.join(".")
        };
        if raw.starts_with("missing field") {
            let field = words.first().cloned().unwrap_or_default();
            let mut missing = path.clone();
            missing.push(field.clone());
            if removed.contains(&missing) {
                // Already reported as a bad value; its absence is a consequence, not news.
                return None;
            }
            problems.push(&full(&path), raw);
            // Keep looking for more problems: drop the incomplete section, or at the top
            // stand in a placeholder for the missing key.
            let carried_on = if path.is_empty() {
                match (&mut value, placeholders.iter().find(|(k, _)| *k == field)) {
                    (Value::Mapping(m), Some((k, v))) => m.insert((*k).into(), v.clone()).is_none(),
                    _ => false,
                }
            } else {
                remove_path(&mut value, &path)
            };
            if !carried_on {
                return None;
            }
            removed.push(path);
            continue;
        }
        problems.push(&full(&path), with_suggestion(&raw));
        if path.is_empty() || !remove_path(&mut value, &path) {
            return None;
        }
        removed.push(path);
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_job_parses_with_defaults() {
        let job = parse_job("name: x\npipelines:\n  survey_scores:\n").unwrap();
        assert_eq!(job.timezone, "UTC");
        assert_eq!(job.quality.max_rejected_fraction, 0.01);
        assert_eq!(job.output.layout, Layout::Flat);
        // Each pipeline reads its own parameters (an empty key: the defaults).
        assert!(job.pipelines.get("survey_scores").unwrap().is_null());
    }

    #[test]
    fn reports_every_problem_with_lines_and_suggestions() {
        let text = "name: x\n\
                    timezon: UTC\n\
                    pipelines:\n  survey_scores: { period: month }\n\
                    output:\n  layout: flt\n  compresion: zstd\n";
        let problems = parse_job(text).unwrap_err();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "line 2: timezon: unknown field `timezon`, did you mean `timezone`?",
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
