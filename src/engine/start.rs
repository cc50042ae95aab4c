//! The start of a run: the job file and the command line resolved, the output directory
//! checked, locked and recovered, and the inputs found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};

use super::{work, RunOptions};
use crate::contracts::InputKind;
use crate::error::{CxError, Result};
use crate::execution::Execution;
use crate::inputs::InputSource;
use crate::log::{Field, Log};
use crate::output::lock::Holder;
use crate::output::{self, OutputTarget, WriterLock};
use crate::pipelines::{self, Pipeline};
use crate::time::Calendar;
use crate::validate::{self, Job};

/// Everything a run settles before it reads a row.
pub struct Run {
    pub log: Log,
    pub started: chrono::DateTime<Utc>,
    pub t0: Instant,
    pub job: Job,
    pub opts: RunOptions,
    /// The job's `execution` section with the command line's overrides.
    pub execution: Execution,
    pub as_of: NaiveDate,
    pub cal: Calendar,
    pub selection: Selection,
    pub target: OutputTarget,
    pub run_id: String,
    /// Held until the run ends: one writer per output directory.
    pub _lock: WriterLock,
    /// The inputs the computed pipelines read, with their files.
    pub sources: BTreeMap<InputKind, InputSource>,
    /// The extra columns (`by`) each input must have.
    pub extra: BTreeMap<InputKind, Vec<String>>,
    /// Where the work directory goes.
    pub work_root: PathBuf,
}

/// Resolves the job and the command line, prepares the output directory (refused before
/// anything is created when it is not ours to write, then locked for this run alone, and
/// interrupted runs finished or cleared under the lock before any input is read, so that a
/// run that then fails on its inputs still leaves a whole result behind) and finds the inputs.
pub fn open(job_path: &Path, opts: &RunOptions) -> Result<Run> {
    let log = Log::new(opts.log_format);
    let started = Utc::now();
    let t0 = Instant::now();
    let job = validate::load_job(job_path)?;
    let execution = opts.execution.apply(&job.execution);
    if let Some(threads) = execution.threads {
        // Read by polars when its thread pool starts, which is after this (the job file is
        // parsed without polars); the partition processes inherit it.
        std::env::set_var("POLARS_MAX_THREADS", threads.to_string());
    }

    let as_of = match &opts.as_of {
        Some(s) => validate::parse_date(s).map_err(|e| CxError::Usage(format!("--as-of: {e}")))?,
        None => match job.as_of {
            Some(d) => d,
            None => {
                let tz: chrono_tz::Tz = job.timezone.parse().expect("validated");
                let yesterday = Utc::now().with_timezone(&tz).date_naive() - Duration::days(1);
                validate::check_as_of(yesterday).map_err(CxError::Usage)?
            }
        },
    };
    let cal = Calendar::new(as_of, &job.timezone).map_err(CxError::Usage)?;
    let selection = select_pipelines(&job, opts.only.as_deref())?;
    let out_dir = match &opts.output_dir {
        Some(d) if d.as_os_str().is_empty() => {
            return Err(CxError::Usage("--output-dir: the path is empty".into()))
        }
        Some(d) => d.clone(),
        None => job.output_dir.clone().ok_or_else(|| {
            CxError::Usage(
                "no output directory: set `output.dir` in the job or pass --output-dir".into(),
            )
        })?,
    };

    let kinds = input_kinds(&job, &selection);

    let tables_written: Vec<&str> = selection
        .written
        .iter()
        .copied()
        .chain(["rejected_rows"])
        .collect();
    let target = prepare_target(&job, &out_dir, &tables_written, as_of)?;
    // A directory that does not exist yet has nothing to recover: its inputs are found first,
    // so that a run that cannot find them creates nothing.
    let found_first = if target.dir.exists() {
        None
    } else {
        Some(job.sources(&kinds)?)
    };
    let run_id = format!(
        "{}-{}-{}",
        as_of.format("%Y%m%d"),
        started.format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    );
    std::fs::create_dir_all(&target.dir).map_err(|e| {
        CxError::internal(format!("creating output dir {}", target.dir.display()), e)
    })?;
    let lock = WriterLock::acquire(
        &target.dir,
        &Holder::this_process(&run_id, &started.to_rfc3339()),
        opts.wait_for_lock,
    )?;
    target.mark(&run_id)?;
    #[cfg(debug_assertions)]
    crate::faults::pause_if(crate::faults::PAUSE_AFTER_LOCK_ENV);
    let work_root = execution
        .work_dir_in(&job.base_dir)
        .unwrap_or_else(|| target.dir.clone());
    let mut notes = output::recover(&target.dir)?;
    notes.extend(work::remove_stale(&work_root)?);
    for note in notes {
        log.stage(
            "recover",
            "output",
            std::time::Duration::ZERO,
            &[("note", Field::Text(note))],
        );
    }

    let located = match found_first {
        Some(located) => located,
        None => job.sources(&kinds)?,
    };
    let sources: BTreeMap<InputKind, InputSource> =
        located.into_iter().map(|(k, (s, _))| (k, s)).collect();
    let extra = Job::extra_columns(&selection.computed);
    Ok(Run {
        log,
        started,
        t0,
        job,
        opts: opts.clone(),
        execution,
        as_of,
        cal,
        selection,
        target,
        run_id,
        _lock: lock,
        sources,
        extra,
        work_root,
    })
}

/// The inputs a run reads: what the computed pipelines require, plus what they can use and
/// the job declares.
pub fn input_kinds(job: &Job, selection: &Selection) -> BTreeSet<InputKind> {
    selection
        .computed
        .iter()
        .flat_map(|p| {
            let u = p.inputs();
            let optional = u
                .optional
                .into_iter()
                .filter(|k| job.inputs.contains_key(k));
            u.required.into_iter().chain(optional)
        })
        .collect()
}

/// The pipelines a run computes (the ones selected, and those their rows depend on), and the
/// tables it writes (the selected ones').
pub struct Selection {
    pub computed: Vec<Arc<dyn Pipeline>>,
    pub selected: Vec<&'static str>,
    pub written: Vec<&'static str>,
}

pub fn select_pipelines(job: &Job, only: Option<&[String]>) -> Result<Selection> {
    let all = || Selection {
        computed: job.pipelines.clone(),
        selected: job.pipelines.iter().map(|p| p.name()).collect(),
        written: job
            .pipelines
            .iter()
            .flat_map(|p| p.tables().iter().copied())
            .collect(),
    };
    let Some(only) = only else {
        return Ok(all());
    };
    let configured: Vec<&str> = job.pipelines.iter().map(|p| p.name()).collect();
    let mut problems = Vec::new();
    for name in only {
        if !configured.contains(&name.as_str()) {
            if pipelines::names().contains(&name.as_str()) {
                problems.push(format!(
                    "--only: pipeline `{name}` is not configured in this job"
                ));
            } else {
                problems.push(format!(
                    "--only: unknown pipeline `{name}` (this job has: {})",
                    configured.join(", ")
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(CxError::Usage(problems.join("; ")));
    }
    let selected: Vec<&'static str> = job
        .pipelines
        .iter()
        .map(|p| p.name())
        .filter(|n| only.iter().any(|o| o == n))
        .collect();
    // cx_impact reads the rows ltv_segments keeps: it is computed (not written) along.
    let needs_ltv = job
        .pipelines
        .iter()
        .any(|p| selected.contains(&p.name()) && p.first_round() > 0);
    let computed: Vec<Arc<dyn Pipeline>> = job
        .pipelines
        .iter()
        .filter(|p| selected.contains(&p.name()) || (needs_ltv && p.name() == "ltv_segments"))
        .cloned()
        .collect();
    let written = job
        .pipelines
        .iter()
        .filter(|p| selected.contains(&p.name()))
        .flat_map(|p| p.tables().iter().copied())
        .collect();
    Ok(Selection {
        computed,
        selected,
        written,
    })
}

/// Checks that `out_dir` may receive this run's tables (exit 2 with every problem when not).
fn prepare_target(
    job: &Job,
    out_dir: &Path,
    tables: &[&str],
    as_of: NaiveDate,
) -> Result<OutputTarget> {
    let would_write: Vec<PathBuf> = tables
        .iter()
        .map(|t| output::table_path(job.layout, as_of, t))
        .collect();
    // Every declared input counts, not only the ones this run reads: the next run may read
    // the others.
    output::check_target(out_dir, &job.input_locations(), &would_write).map_err(|problems| {
        CxError::Target {
            dir: out_dir.display().to_string(),
            problems,
        }
    })
}
