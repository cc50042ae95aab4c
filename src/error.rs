//! Typed errors for the whole crate, and the mapping from error kind to process exit code.
//!
//! The split is by *whose fault* a failure is: the person who wrote the job file or command line
//! (exit 2), the files the job points at (exit 3), the data inside them breaching a quality
//! threshold (exit 4), or cxmetrics itself / the environment (exit 1).

use std::fmt;

/// One problem found in a job file, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path of the offending key, e.g. `pipelines.survey_scores.period` (empty for the root).
    pub path: String,
    /// 1-based line in the job file, when it can be located.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)
    }
}

/// Errors the runner reports to the user.
#[derive(Debug, thiserror::Error)]
pub enum CxError {
    /// The command line was wrong (unknown pipeline in `--only`, bad `--as-of`, ...).
    #[error("usage error: {0}")]
    Usage(String),

    /// The job file is invalid; every problem found is listed.
    #[error("invalid job file {file}:\n{}", list(problems))]
    Config {
        file: String,
        problems: Vec<ConfigProblem>,
    },

    /// The output directory may not be written: the root, an input's directory, or someone
    /// else's non-empty directory. Checked before anything is created.
    #[error("cannot write to output directory {dir}:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Target { dir: String, problems: Vec<String> },

    /// An input file is missing, unreadable, corrupt or does not match its contract.
    #[error("input error:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Input { problems: Vec<String> },

    /// Too many rows were rejected from an input, or an input is older than its freshness
    /// allows.
    #[error("data-quality threshold breached, nothing was written:\n{}", breaches.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Quality { breaches: Vec<String> },

    /// Anything else: I/O on the output side, a polars failure while computing, a bug.
    #[error("{context}: {message}")]
    Internal { context: String, message: String },
}

fn list(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl CxError {
    /// Process exit code for this error (docs/cli.md, "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            CxError::Usage(_) | CxError::Config { .. } | CxError::Target { .. } => 2,
            CxError::Input { .. } => 3,
            CxError::Quality { .. } => 4,
            CxError::Internal { .. } => 1,
        }
    }

    pub fn input(problem: impl Into<String>) -> Self {
        CxError::Input {
            problems: vec![problem.into()],
        }
    }

    pub fn internal(context: impl Into<String>, err: impl fmt::Display) -> Self {
        CxError::Internal {
            context: context.into(),
            message: err.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, CxError>;
