//! Semantic validation of a parsed job file, and the resolved `Job` the runner works from.
//!
//! `config` checks the shape of the YAML; this module checks what the values mean: dates, the
//! time zone, scales, thresholds, which inputs each pipeline needs. It reports every problem at
//! once. Checking the input *files* (existence, contracts) is `check_inputs`, shared by the
//! `validate` command and the runner.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::config::{
    self, Compression, InputConfig, JobFile, Layout, ScaleConfig, SurveyScoresParams,
};
use crate::contracts::InputKind;
use crate::error::{ConfigProblem, CxError, Result};
use crate::inputs::{self, InputSource};
use crate::pipelines::Pipeline;

/// A job file that passed every check, with paths resolved against the job file's folder.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub path: PathBuf,
    pub as_of: Option<NaiveDate>,
    pub timezone: String,
    pub inputs: BTreeMap<InputKind, InputConfig>,
    pub pipelines: Vec<Pipeline>,
    /// Survey scales used to reject out-of-scale scores (see `pipelines::job_scales`).
    pub scales: crate::pipelines::survey_scores::Scales,
    pub max_rejected_fraction: f64,
    pub output_dir: Option<PathBuf>,
    pub layout: Layout,
    pub compression: Compression,
}

impl Job {
    /// Folder the job's relative paths are relative to.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Resolves the files of every listed input; all problems are reported together (exit 3).
    pub fn sources(&self, kinds: &BTreeSet<InputKind>) -> Result<BTreeMap<InputKind, InputSource>> {
        let base = self.base_dir();
        let mut problems = Vec::new();
        let mut out = BTreeMap::new();
        for kind in kinds {
            let Some(cfg) = self.inputs.get(kind) else {
                continue;
            };
            match inputs::resolve_files(&base, &cfg.path) {
                Ok(files) => {
                    out.insert(
                        *kind,
                        InputSource {
                            kind: *kind,
                            files,
                            rename: cfg.columns.clone(),
                        },
                    );
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

    /// Extra (segment) columns the given pipelines read from each input.
    pub fn extra_columns(pipelines: &[Pipeline]) -> BTreeMap<InputKind, Vec<String>> {
        let mut out: BTreeMap<InputKind, Vec<String>> = BTreeMap::new();
        for p in pipelines {
            for (kind, cols) in p.extra_columns() {
                let entry = out.entry(kind).or_default();
                for c in cols {
                    if !entry.contains(&c) {
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
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CxError::Config {
        file: shown.clone(),
        problems: vec![ConfigProblem {
            path: String::new(),
            line: None,
            message: format!("cannot read the job file: {e}"),
        }],
    })?;
    let parsed = config::parse_job(&text).map_err(|problems| CxError::Config {
        file: shown.clone(),
        problems,
    })?;
    check(parsed, path).map_err(|problems| CxError::Config {
        file: shown,
        problems,
    })
}

fn problem(path: &str, message: String) -> ConfigProblem {
    ConfigProblem {
        path: path.to_string(),
        line: None,
        message,
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> std::result::Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date in the form YYYY-MM-DD"))
}

fn check(job: JobFile, path: &Path) -> std::result::Result<Job, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    if job.name.trim().is_empty() {
        problems.push(problem("name", "must not be empty".into()));
    }
    let as_of = match job.as_of.as_deref().map(parse_date) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            problems.push(problem("as_of", e));
            None
        }
        None => None,
    };
    if job.timezone.parse::<chrono_tz::Tz>().is_err() {
        problems.push(problem(
            "timezone",
            format!(
                "unknown time zone `{}` (use an IANA name such as `Europe/Berlin`)",
                job.timezone
            ),
        ));
    }
    let q = job.quality.max_rejected_fraction;
    if !(0.0..=1.0).contains(&q) {
        problems.push(problem(
            "quality.max_rejected_fraction",
            format!("must be between 0 and 1, got {q}"),
        ));
    }

    let mut inputs = BTreeMap::new();
    let declared = [
        (InputKind::Orders, &job.inputs.orders),
        (InputKind::Tickets, &job.inputs.tickets),
        (InputKind::Surveys, &job.inputs.surveys),
        (InputKind::Customers, &job.inputs.customers),
        (InputKind::Events, &job.inputs.events),
    ];
    for (kind, cfg) in declared {
        if let Some(cfg) = cfg {
            if cfg.path.trim().is_empty() {
                problems.push(problem(
                    &format!("inputs.{kind}.path"),
                    "must not be empty".into(),
                ));
            }
            for name in cfg.columns.keys() {
                if kind.contract().column(name).is_none() {
                    let known: Vec<&str> = kind.contract().columns.iter().map(|c| c.name).collect();
                    problems.push(problem(
                        &format!("inputs.{kind}.columns.{name}"),
                        format!(
                            "`{name}` is not a column of the {kind} contract (its columns: {})",
                            known.join(", ")
                        ),
                    ));
                }
            }
            inputs.insert(kind, cfg.clone());
        }
    }

    let declared_kinds: BTreeSet<InputKind> = inputs.keys().copied().collect();
    let (pipelines, pipeline_errors) = match Pipeline::from_config(&job.pipelines, &declared_kinds)
    {
        Ok(p) => (p, Vec::new()),
        Err(errors) => (Vec::new(), errors),
    };
    if pipelines.is_empty() && pipeline_errors.is_empty() {
        problems.push(problem("pipelines", "no pipeline is enabled".into()));
    }
    for (path, message) in pipeline_errors {
        problems.push(problem(&path, message));
    }
    for p in &pipelines {
        for kind in p.required_inputs() {
            if !inputs.contains_key(&kind) {
                problems.push(problem(
                    &format!("pipelines.{}", p.name()),
                    format!("needs input `{kind}`, which `inputs` does not declare"),
                ));
            }
        }
        check_by(
            &format!("pipelines.{}.by", p.name()),
            p.by().1,
            &mut problems,
        );
        if let Pipeline::SurveyScores(params) = p {
            check_survey_scores(params, &mut problems);
        }
    }

    let base = path.parent().unwrap_or(Path::new("."));
    let output_dir = job
        .output
        .dir
        .as_ref()
        .map(|d| crate::paths::join_clean(base, d));

    if problems.is_empty() {
        Ok(Job {
            name: job.name,
            path: path.to_path_buf(),
            as_of,
            timezone: job.timezone,
            inputs,
            pipelines,
            scales: crate::pipelines::job_scales(&job.pipelines),
            max_rejected_fraction: q,
            output_dir,
            layout: job.output.layout,
            compression: job.output.compression,
        })
    } else {
        Err(problems)
    }
}

fn check_by(path: &str, by: &[String], problems: &mut Vec<ConfigProblem>) {
    let mut seen = BTreeSet::new();
    for b in by {
        if b.trim().is_empty() {
            problems.push(problem(path, "a `by` column name is empty".into()));
        } else if !seen.insert(b) {
            problems.push(problem(path, format!("`{b}` is listed twice")));
        }
        if b == "all" {
            problems.push(problem(
                path,
                "`all` is reserved for the overall rows".into(),
            ));
        }
    }
}

fn check_scale(path: &str, s: &ScaleConfig, problems: &mut Vec<ConfigProblem>) {
    if s.min >= s.max {
        problems.push(problem(
            path,
            format!("min ({}) must be below max ({})", s.min, s.max),
        ));
    }
    if s.positive_from <= s.min || s.positive_from > s.max {
        problems.push(problem(
            path,
            format!(
                "positive_from ({}) must be above min ({}) and at most max ({})",
                s.positive_from, s.min, s.max
            ),
        ));
    }
    if let Some(n) = s.neutral_from {
        if n <= s.min || n >= s.positive_from {
            problems.push(problem(
                path,
                format!(
                    "neutral_from ({n}) must be above min ({}) and below positive_from ({})",
                    s.min, s.positive_from
                ),
            ));
        }
    }
}

fn check_survey_scores(p: &SurveyScoresParams, problems: &mut Vec<ConfigProblem>) {
    if let Some(s) = &p.scales.csat {
        check_scale("pipelines.survey_scores.scales.csat", s, problems);
    }
    if let Some(s) = &p.scales.ces {
        check_scale("pipelines.survey_scores.scales.ces", s, problems);
    }
}

/// Checks every declared input's files against its contract without reading data: used by the
/// `validate` command. All problems are reported together (exit 3).
pub fn check_inputs(job: &Job) -> Result<Vec<String>> {
    let kinds: BTreeSet<InputKind> = job.inputs.keys().copied().collect();
    let sources = job.sources(&kinds)?;
    let extra = Job::extra_columns(&job.pipelines);
    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for (kind, source) in &sources {
        let mut rows = 0;
        for file in &source.files {
            match inputs::read_schema(file) {
                Ok(schema) => {
                    rows += schema.rows;
                    let want = extra.get(kind).cloned().unwrap_or_default();
                    problems.extend(inputs::contract_problems(source, file, &schema, &want));
                }
                Err(e) => problems.push(format!("{kind}: {e}")),
            }
        }
        summary.push(format!(
            "{kind}: {} file(s), {rows} rows, contract ok",
            source.files.len()
        ));
    }
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(CxError::Input { problems })
    }
}
