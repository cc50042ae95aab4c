//! `cxmetrics lookml JOB.yaml --out DIR --schema SCHEMA`: a Looker model of the tables a job
//! publishes. One view per table (`<table>.view.lkml`) and `cxmetrics.explore.lkml` with an
//! explore per view and a datagroup on the run log.
//!
//! The views describe the tables as the job's last run wrote them: the columns and types come
//! from the manifest in the job's output directory (so a job's options, such as business hours
//! or customer_cx's drivers, are what the views show). How each table re-aggregates is
//! `catalog`: every rate, score, share and mean is a measure of sums (sum(numerator) ÷
//! sum(denominator)), never an average of the rows' rates; medians, percentiles, intervals and
//! lifts are row-level dimensions with a note.

mod catalog;
mod render;

use std::path::{Path, PathBuf};

use crate::config::Layout;
use crate::error::{CxError, Result};
use crate::output::run_log::RUN_LOG;
use crate::validate;

pub use catalog::{model, TABLES};

/// The explore file's name.
pub const EXPLORE_FILE: &str = "cxmetrics.explore.lkml";

/// Writes the model of the tables of `job`'s output (`output_dir` overrides the job's) into
/// `out`; returns the files written.
pub fn write(
    job_path: &Path,
    output_dir: Option<&Path>,
    out: &Path,
    schema: &str,
) -> Result<Vec<PathBuf>> {
    if schema.is_empty()
        || !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(CxError::Usage(format!(
            "--schema `{schema}`: letters, digits, `_` and `.` only (`analytics` or \
             `project.dataset`)"
        )));
    }
    let job = validate::load_job(job_path)?;
    let dir = output_dir
        .map(Path::to_path_buf)
        .or(job.output_dir.clone())
        .ok_or_else(|| {
            CxError::Usage("the job has no output.dir: pass --output-dir".to_string())
        })?;
    // An object storage result's manifest is the commit; a hive result's, the latest as_of's.
    let manifest_path = match dir.to_str().filter(|d| crate::storage::is_remote(d)) {
        Some(uri) => PathBuf::from(format!("{}/manifest.json", uri.trim_end_matches('/'))),
        None => manifest_of(&dir, job.layout)?,
    };
    let manifest = crate::report::read_manifest(
        &manifest_path,
        "run the job first: the views describe the tables as its run wrote them",
    )?;
    let outputs = manifest["outputs"].as_object().expect("checked");
    let mut tables: Vec<render::Table> = Vec::new();
    for (name, o) in outputs {
        let columns = o["columns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some((
                            c["name"].as_str()?.to_string(),
                            c["type"].as_str()?.to_string(),
                        ))
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        tables.push(render::Table {
            name: name.clone(),
            columns,
        });
    }
    tables.push(render::Table {
        name: RUN_LOG.to_string(),
        columns: render::run_log_columns(),
    });
    std::fs::create_dir_all(out)
        .map_err(|e| CxError::internal(format!("creating {}", out.display()), e))?;
    let mut files = Vec::new();
    for t in &tables {
        let path = out.join(format!("{}.view.lkml", t.name));
        write_file(&path, &render::view(t, schema))?;
        files.push(path);
    }
    let path = out.join(EXPLORE_FILE);
    write_file(&path, &render::explores(&tables, schema))?;
    files.push(path);
    Ok(files)
}

/// The manifest of the result in `dir`: `manifest.json`, or in hive layout the latest
/// as_of's.
fn manifest_of(dir: &Path, layout: Layout) -> Result<PathBuf> {
    match layout {
        Layout::Flat => Ok(dir.join("manifest.json")),
        Layout::Hive => {
            let folder = dir.join("_manifest");
            let mut dates: Vec<String> = std::fs::read_dir(&folder)
                .map_err(|e| {
                    CxError::input(format!(
                        "{}: cannot list ({e}); run the job first",
                        folder.display()
                    ))
                })?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("as_of="))
                .collect();
            dates.sort();
            let last = dates.pop().ok_or_else(|| {
                CxError::input(format!(
                    "{}: no as_of=YYYY-MM-DD folder; run the job first",
                    folder.display()
                ))
            })?;
            Ok(folder.join(last).join("manifest.json"))
        }
    }
}

/// Writes `text` to a temporary name beside `path` and renames it into place.
fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("lkml.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| CxError::internal(format!("writing {}", path.display()), e))
}
