//! Semantic validation of a parsed job file, and the resolved `Job` the runner works from.
//!
//! `config` checks the shape of the YAML; this module checks what the values mean: dates, the
//! time zone, thresholds, which inputs each pipeline needs, and builds every pipeline through
//! its `Spec` (which checks its own parameters). Every problem goes into one `Problems`
//! collector and all are reported at once. Checking the input *files* (existence, decoding,
//! contracts) is `check_inputs`, used by the `validate` command.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;

use crate::config::{self, Compression, InputConfig, JobFile, Layout};
use crate::contracts::InputKind;
use crate::error::{ConfigProblem, CxError, Result};
use crate::execution::Execution;
use crate::inputs::{self, Freshness, InputSource, Location};
use crate::pipelines::{self, JobSettings, Pipeline};
use crate::problems::Problems;

/// A job file that passed every check, with paths resolved against the job file's folder.
#[derive(Clone)]
pub struct Job {
    pub name: String,
    pub path: PathBuf,
    pub as_of: Option<NaiveDate>,
    pub timezone: String,
    pub inputs: BTreeMap<InputKind, InputConfig>,
    /// The configured pipelines, in run order.
    pub pipelines: Vec<Arc<dyn Pipeline>>,
    /// Survey scales used to reject out-of-scale scores (`pipelines::JobSettings::scales`).
    pub scales: crate::pipelines::survey_scores::Scales,
    /// `execution`: buckets, memory, threads, work directory.
    pub execution: Execution,
    pub max_rejected_fraction: f64,
    pub output_dir: Option<PathBuf>,
    pub layout: Layout,
    pub compression: Compression,
    /// `storage_options` for object storage paths (secrets: never logged).
    pub storage: crate::storage::StorageOptions,
    /// `output.money`: Float64 or Decimal(38, 6) money columns.
    pub money: crate::config::MoneyType,
    /// `output.report`: publish `report.html` with the tables.
    pub report: bool,
    /// Freshness thresholds by input (`inputs.<name>.freshness`).
    pub freshness: BTreeMap<InputKind, Freshness>,
    /// The job file's folder with its symlinks resolved: relative paths start here, so that
    /// `..` means what `cd` and `ls` from that folder say.
    pub base_dir: PathBuf,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("pipelines", &self.pipelines)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// Resolves the files of every listed input; all problems are reported together (exit 3).
    pub fn sources(
        &self,
        kinds: &BTreeSet<InputKind>,
    ) -> Result<BTreeMap<InputKind, (InputSource, Location)>> {
        let mut problems = Vec::new();
        let mut out = BTreeMap::new();
        for kind in kinds {
            let Some(cfg) = self.inputs.get(kind) else {
                continue;
            };
            let resolved = match (&cfg.path, &cfg.table) {
                (Some(path), _) => inputs::resolve_files(&self.base_dir, path),
                // A table has no files here: Spark reads it (`crate::spark`).
                (None, _) => Ok(Location::Files(Vec::new())),
            };
            match resolved {
                Ok(location) => {
                    let source = self
                        .input_source(*kind, location.files().to_vec())
                        .expect("declared");
                    out.insert(*kind, (source, location));
                }
                Err(e) => problems.push(format!("{kind}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(CxError::Input { problems })
        }
    }

    /// The declared input `kind` with these files: its renames, money scales, freshness and
    /// table. None when the job does not declare it.
    pub fn input_source(&self, kind: InputKind, files: Vec<PathBuf>) -> Option<InputSource> {
        let cfg = self.inputs.get(&kind)?;
        Some(InputSource {
            kind,
            files,
            rename: cfg
                .columns
                .iter()
                .map(|(k, v)| (k.clone(), v.name().to_string()))
                .collect(),
            money_scales: cfg
                .columns
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.scale()?)))
                .collect(),
            freshness: self.freshness.get(&kind).copied(),
            table: cfg.table.clone(),
        })
    }

    /// Where every declared input is, as far as it can be resolved: an input whose files are
    /// missing is left out, and a glob that matches nothing yet is kept with its pattern (the
    /// output directory must not be where it will match). Used to check the output directory
    /// before the inputs' own errors are reported.
    pub fn input_locations(&self) -> Vec<(String, Location)> {
        self.inputs
            .iter()
            .filter_map(|(kind, cfg)| {
                let path = cfg.path.as_ref()?;
                match inputs::resolve_files(&self.base_dir, path) {
                    Ok(location) => Some((kind.name().to_string(), location)),
                    Err(_) if path.contains(['*', '?', '[']) => Some((
                        kind.name().to_string(),
                        Location::Glob(
                            self.base_dir.join(path).to_string_lossy().to_string(),
                            Vec::new(),
                        ),
                    )),
                    Err(_) => None,
                }
            })
            .collect()
    }

    /// Extra (segment) columns the given pipelines read from each input.
    pub fn extra_columns(pipelines: &[Arc<dyn Pipeline>]) -> BTreeMap<InputKind, Vec<String>> {
        let mut out: BTreeMap<InputKind, Vec<String>> = BTreeMap::new();
        let mut seen: BTreeSet<(InputKind, String)> = BTreeSet::new();
        for p in pipelines {
            for (kind, cols) in p.inputs().extra {
                let entry = out.entry(kind).or_default();
                for c in cols {
                    if seen.insert((kind, c.clone())) {
                        entry.push(c);
                    }
                }
            }
        }
        out
    }
}

/// Reads, parses and validates a job file (exit 2 on any problem, all of them listed).
pub fn load_job(path: &Path) -> Result<Job> {
    let job = load_job_file(path)?;
    // Object storage requests of this process (and of the children it starts) use them.
    crate::storage::configure(&job.storage);
    Ok(job)
}

fn load_job_file(path: &Path) -> Result<Job> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CxError::Config {
        file: shown.clone(),
        problems: vec![ConfigProblem {
            path: String::new(),
            line: None,
            message: format!("cannot read the job file: {e}"),
        }],
    })?;
    check_text(&text, path).map_err(|problems| CxError::Config {
        file: shown,
        problems,
    })
}

/// Parses and checks job-file `text` (of the file at `path`).
pub fn check_text(text: &str, path: &Path) -> std::result::Result<Job, Vec<ConfigProblem>> {
    let parsed = config::parse_job(text);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut problems = Problems::new(text);
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(structural) => {
            // The pipelines' own parameters are checked too, so that one run of `validate`
            // lists every problem of the file.
            if let Ok(serde_yaml::Value::Mapping(doc)) = serde_yaml::from_str(text) {
                if let Some(serde_yaml::Value::Mapping(p)) = doc.get("pipelines") {
                    let declared = InputKind::ALL.into_iter().collect();
                    build_pipelines(p, declared, &mut problems);
                }
            }
            let mut all = structural;
            all.extend(problems.into_vec());
            all.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            return Err(all);
        }
    };
    let job = check(parsed, path, &mut problems);
    match job {
        Some(job) if problems.is_empty() => Ok(job),
        _ => Err(problems.into_sorted()),
    }
}

/// Parses an as_of date `YYYY-MM-DD` inside the supported range (`time::as_of_range`).
pub fn parse_date(s: &str) -> std::result::Result<NaiveDate, String> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date in the form YYYY-MM-DD"))?;
    check_as_of(d)
}

/// `d` when it is inside the supported range of as_of dates.
pub fn check_as_of(d: NaiveDate) -> std::result::Result<NaiveDate, String> {
    let (lo, hi) = crate::time::as_of_range();
    if d < lo || d > hi {
        return Err(format!("{d} is outside the supported range {lo} to {hi}"));
    }
    Ok(d)
}

/// The longest a job's name may be, in characters.
const MAX_NAME_CHARS: usize = 200;

/// The longest duration a job file may give (freshness, SLA targets): 36,500 days.
pub const MAX_DURATION_US: i64 = 36_500 * crate::time::DAY_US;

/// A duration from the job file in microseconds, between 0 and `MAX_DURATION_US`.
pub fn parse_bounded_duration(text: &str) -> std::result::Result<i64, String> {
    let us = crate::time::parse_duration_us(text)?;
    if us > MAX_DURATION_US {
        return Err(format!("`{text}` is longer than the maximum of 36500d"));
    }
    Ok(us)
}

fn check(job: JobFile, path: &Path, problems: &mut Problems) -> Option<Job> {
    if job.name.trim().is_empty() {
        problems.push("name", "must not be empty");
    } else if job.name.chars().any(char::is_control) {
        problems.push(
            "name",
            format!(
                "must not contain control characters, got \"{}\"",
                job.name.escape_debug()
            ),
        );
    } else if job.name.chars().count() > MAX_NAME_CHARS {
        problems.push(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters long"),
        );
    }
    let as_of = match job.as_of.as_deref().map(parse_date) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            problems.push("as_of", e);
            None
        }
        None => None,
    };
    if job.timezone.parse::<chrono_tz::Tz>().is_err() {
        problems.push(
            "timezone",
            format!(
                "unknown time zone `{}` (use an IANA name such as `Europe/Berlin`)",
                job.timezone
            ),
        );
    }
    let q = job.quality.max_rejected_fraction;
    if !(0.0..=1.0).contains(&q) {
        problems.push(
            "quality.max_rejected_fraction",
            format!("must be between 0 and 1, got {q}"),
        );
    }

    let mut inputs = BTreeMap::new();
    let mut freshness = BTreeMap::new();
    let declared = [
        (InputKind::Orders, &job.inputs.orders),
        (InputKind::Tickets, &job.inputs.tickets),
        (InputKind::Surveys, &job.inputs.surveys),
        (InputKind::Customers, &job.inputs.customers),
        (InputKind::Events, &job.inputs.events),
    ];
    for (kind, cfg) in declared {
        let Some(cfg) = cfg else {
            continue;
        };
        match (&cfg.path, &cfg.table) {
            (Some(_), Some(_)) => problems.push(
                &format!("inputs.{kind}"),
                "give `path` (files) or `table` (a table Spark knows), not both",
            ),
            (None, None) => problems.push(
                &format!("inputs.{kind}"),
                "needs `path` (a Parquet file, folder or glob) or `table` (engine: spark)",
            ),
            (Some(path), None) if path.trim().is_empty() => {
                problems.push(&format!("inputs.{kind}.path"), "must not be empty")
            }
            (None, Some(table)) if !is_table_name(table) => problems.push(
                &format!("inputs.{kind}.table"),
                format!("`{table}` is not a table name like `sales.orders`"),
            ),
            _ => {}
        }
        for (name, mapping) in &cfg.columns {
            if let (Some(spec), Some(scale)) = (kind.contract().column(name), mapping.scale()) {
                let at = format!("inputs.{kind}.columns.{name}.scale");
                if spec.ty != crate::contracts::ColType::Money {
                    problems.push(
                        &at,
                        format!("`{name}` is not money; only a money column takes a scale"),
                    );
                } else if !crate::config::MONEY_SCALES.contains(&scale) {
                    problems.push(&at, format!("{scale} is out of range: 0 to 18"));
                }
            }
            if kind.contract().column(name).is_none() {
                let known: Vec<&str> = kind.contract().columns.iter().map(|c| c.name).collect();
                problems.push(
                    &format!("inputs.{kind}.columns.{name}"),
                    format!(
                        "`{name}` is not a column of the {kind} contract (its columns: {})",
                        known.join(", ")
                    ),
                );
            }
        }
        if let Some(f) = &cfg.freshness {
            let at = format!("inputs.{kind}.freshness");
            let mut parse = |key: &str, v: &Option<String>| {
                v.as_deref().and_then(|t| match parse_bounded_duration(t) {
                    Ok(us) => Some(us),
                    Err(e) => {
                        problems.push(&format!("{at}.{key}"), e);
                        None
                    }
                })
            };
            let warn = parse("warn_after", &f.warn_after);
            let error = parse("error_after", &f.error_after);
            if let (Some(w), Some(e)) = (warn, error) {
                if w > e {
                    problems.push(&at, "warn_after must not be longer than error_after");
                }
            }
            freshness.insert(
                kind,
                Freshness {
                    warn_after_us: warn,
                    error_after_us: error,
                },
            );
        }
        inputs.insert(kind, cfg.clone());
    }

    let declared_kinds: BTreeSet<InputKind> = inputs.keys().copied().collect();
    let (pipelines, settings) = build_pipelines(&job.pipelines, declared_kinds, problems);
    for p in &pipelines {
        let at = format!("pipelines.{}", p.name());
        for kind in p.inputs().required {
            if !inputs.contains_key(&kind) {
                problems.push(
                    &at,
                    format!("needs input `{kind}`, which `inputs` does not declare"),
                );
            }
        }
        check_by(&format!("{at}.by"), p.by().1, problems);
    }
    let execution = Execution::check(&job.execution, problems);

    // Relative paths start at the job file's real folder (symlinks resolved), and `..` is left
    // to the file system, so a job reached through a symlinked folder reads what `cd` and `ls`
    // from its folder show.
    let base_dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| path.parent().map(Path::to_path_buf).unwrap_or_default());
    if job
        .output
        .dir
        .as_deref()
        .is_some_and(|d| d.trim().is_empty())
    {
        problems.push("output.dir", "must not be empty");
    }
    // An object store URI is not relative to anything.
    let output_dir = job.output.dir.as_ref().map(|d| {
        if crate::storage::is_remote(d) {
            PathBuf::from(d)
        } else {
            base_dir.join(d)
        }
    });
    let mut storage = crate::storage::StorageOptions::default();
    for (key, value) in &job.storage_options {
        let at = format!("storage_options.{key}");
        if !crate::storage::OPTION_KEYS.contains(&key.as_str()) {
            problems.push(
                &at,
                format!(
                    "unknown option (known: {})",
                    crate::storage::OPTION_KEYS.join(", ")
                ),
            );
            continue;
        }
        let text = match value {
            serde_yaml::Value::String(s) => s.clone(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            serde_yaml::Value::Number(n) => n.to_string(),
            _ => {
                problems.push(&at, "must be a string or a boolean");
                continue;
            }
        };
        storage.0.insert(key.clone(), text);
    }

    Some(Job {
        name: job.name,
        path: path.to_path_buf(),
        as_of,
        timezone: job.timezone,
        inputs,
        pipelines,
        scales: settings.scales,
        execution: execution?,
        max_rejected_fraction: q,
        output_dir,
        layout: job.output.layout,
        compression: job.output.compression,
        money: job.output.money,
        storage,
        report: job.output.report,
        base_dir,
        freshness,
    })
}

/// Builds every pipeline the job enables, in registry order (so that each can use what the
/// ones before it settle), reporting unknown names and every parameter problem.
fn build_pipelines(
    config: &serde_yaml::Mapping,
    declared: BTreeSet<InputKind>,
    problems: &mut Problems,
) -> (Vec<Arc<dyn Pipeline>>, JobSettings) {
    let mut settings = JobSettings::new(declared);
    let names = pipelines::names();
    for (key, _) in config {
        let name = key.as_str().unwrap_or("");
        if !names.contains(&name) {
            let close = names
                .iter()
                .map(|n| (strsim::normalized_damerau_levenshtein(name, n), n))
                .filter(|(score, _)| *score >= 0.5)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let hint = match close {
                Some((_, good)) => format!(", did you mean `{good}`?"),
                None => format!(" (pipelines: {})", names.join(", ")),
            };
            problems.push(
                &format!("pipelines.{name}"),
                format!("unknown pipeline `{name}`{hint}"),
            );
        }
    }
    if config.is_empty() {
        problems.push("pipelines", "no pipeline is enabled");
    }
    let mut out: Vec<Arc<dyn Pipeline>> = Vec::new();
    for spec in pipelines::REGISTRY {
        let Some(value) = config.get(spec.name()) else {
            continue;
        };
        let at = format!("pipelines.{}", spec.name());
        if let Some(p) = spec.build(value.clone(), &at, &mut settings, problems) {
            out.push(Arc::from(p));
        }
    }
    (out, settings)
}

/// The most columns a `by` list may name.
pub const MAX_BY_COLUMNS: usize = 64;

fn check_by(path: &str, by: &[String], problems: &mut Problems) {
    if by.len() > MAX_BY_COLUMNS {
        problems.push(
            path,
            format!(
                "lists {} columns; at most {MAX_BY_COLUMNS} are allowed",
                by.len()
            ),
        );
        return;
    }
    let mut seen = BTreeSet::new();
    for b in by {
        if b.trim().is_empty() {
            problems.push(path, "a `by` column name is empty");
        } else if !seen.insert(b) {
            problems.push(path, format!("`{b}` is listed twice"));
        }
        if b == "all" {
            problems.push(path, "`all` is reserved for the overall rows");
        }
    }
}

/// A table name: dot-separated parts of letters, digits and `_`, or backquoted parts.
fn is_table_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let quoted = part.len() > 2 && part.starts_with('`') && part.ends_with('`');
            quoted || (!part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_'))
        })
}

/// Checks every declared input's files: each must decode (`check`, see `inputs::check`) and
/// match its contract. Used by the `validate` command. All problems are reported together
/// (exit 3).
pub fn check_inputs(job: &Job, check: &inputs::FileCheck) -> Result<Vec<String>> {
    let kinds: BTreeSet<InputKind> = job.inputs.keys().copied().collect();
    let sources = job.sources(&kinds)?;
    let extra = Job::extra_columns(&job.pipelines);
    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for (kind, (source, _)) in &sources {
        if let Some(table) = &source.table {
            summary.push(format!(
                "{kind}: table `{table}`, read and checked by Spark when the job runs"
            ));
            continue;
        }
        let want = extra.get(kind).cloned().unwrap_or_default();
        let corrupt = inputs::check_files(source, &want, check);
        if !corrupt.is_empty() {
            problems.extend(corrupt);
            continue;
        }
        let mut rows = 0;
        for file in &source.files {
            match inputs::read_schema(file) {
                Ok(schema) => {
                    rows += schema.rows;
                    problems.extend(inputs::contract_problems(source, file, &schema, &want));
                }
                Err(e) => problems.push(format!("{kind}: {e}")),
            }
        }
        summary.push(format!(
            "{kind}: {} file(s), {rows} rows, every file decodes, contract ok",
            source.files.len()
        ));
    }
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(CxError::Input { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(text: &str) -> Vec<String> {
        check_text(text, Path::new("job.yaml"))
            .map(|_| Vec::new())
            .unwrap_or_else(|p| p.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn an_input_is_a_path_or_a_table() {
        let job = |input: &str| {
            format!(
                "name: x\ninputs:\n  surveys: {input}\npipelines:\n  survey_scores: {{}}\n\
                 output:\n  dir: out\n"
            )
        };
        assert_eq!(
            problems_of(&job("{ path: s.parquet }")),
            Vec::<String>::new()
        );
        assert_eq!(
            problems_of(&job("{ table: cx.surveys }")),
            Vec::<String>::new()
        );
        assert_eq!(
            problems_of(&job("{ table: \"`my db`.surveys\" }")),
            Vec::<String>::new()
        );
        let both = problems_of(&job("{ path: s.parquet, table: cx.surveys }"));
        assert!(both[0].contains("not both"), "{both:?}");
        let neither = problems_of(&job("{ freshness: { warn_after: 1d } }"));
        assert!(neither[0].contains("needs `path`"), "{neither:?}");
        let bad = problems_of(&job("{ table: \"drop table x; --\" }"));
        assert!(bad[0].contains("not a table name"), "{bad:?}");
    }

    #[test]
    fn pipeline_parameters_are_checked_by_each_pipeline_with_lines_and_suggestions() {
        let text = "name: x\n\
                    inputs:\n  surveys: { path: s.parquet }\n\
                    pipelines:\n  survey_scores: { perod: month, by: [channel] }\n  \
                    survey_score: {}\n\
                    output:\n  layout: flat\n";
        assert_eq!(
            problems_of(text),
            vec![
                "line 5: pipelines.survey_scores.perod: unknown field `perod`, did you mean `period`?",
                "line 6: pipelines.survey_score: unknown pipeline `survey_score`, did you mean `survey_scores`?",
            ]
        );
    }

    #[test]
    fn an_empty_pipeline_key_runs_with_defaults_and_inputs_are_required() {
        let text = "name: x\npipelines:\n  survey_scores:\n";
        assert_eq!(
            problems_of(text),
            vec!["line 3: pipelines.survey_scores: needs input `surveys`, which `inputs` does not declare"]
        );
    }
}
