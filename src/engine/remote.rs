//! A run whose `output.dir` is in object storage (`s3://bucket/prefix`, `gs://`, `az://`).
//!
//! Object stores have no rename, so the local publish protocol (staging folder, renames) cannot
//! be used there. The run publishes into a local folder first, exactly as a local run does,
//! then commits to the store in this order:
//!
//! 1. `<prefix>/runs/<run id>/_RUN` (the run id) is written first, then every file of the
//!    result (tables, report, run log) under that prefix of its own run, where no reader looks
//!    yet;
//! 2. `<prefix>/manifest.json` is written, naming those files: this single PUT is the commit.
//!    A reader that starts from the manifest sees the previous complete result before it and
//!    the new complete result after it, never a mix;
//! 3. `<prefix>/_SUCCESS` is written;
//! 4. the files of earlier runs are deleted, except those of the run the manifest names at that
//!    moment: only run folders whose `_RUN` names them, so that a run deletes only what a
//!    cxmetrics run created.
//!
//! Like a local output directory, a prefix must be new, empty, or a cxmetrics output (it holds
//! the `.cxmetrics-output` marker a first run writes, or a cxmetrics manifest): a run refuses
//! (exit 2) to write into someone else's objects.
//!
//! A run killed before step 2 leaves the previous result readable, and its uploaded files are
//! deleted by the next successful run. The run log is read from the current result's manifest,
//! so it goes on across runs. There is no cross-host lock on a store: one writer per prefix
//! is the scheduler's job (docs/outputs.md).

use std::path::{Path, PathBuf};

use super::work::{self, WorkDir};
use super::{RunOptions, RunSummary};
use crate::config::Layout;
use crate::error::{CxError, Result};
use crate::output::run_log;
use crate::storage;
use crate::validate::Job;

/// The folder, under a store prefix, of each run's files.
const RUNS: &str = "runs";
/// The file in a run's folder that names the run (written first).
const RUN_FILE: &str = "_RUN";

fn store_err(e: String) -> CxError {
    CxError::Input { problems: vec![e] }
}

/// Runs the job into a local folder and commits the result to `uri`.
pub fn run(job_path: &Path, opts: &RunOptions, job: &Job, uri: &str) -> Result<RunSummary> {
    let upload = Upload::prepare(job, uri)?;
    let summary = super::run_local(job_path, &upload.local_options(opts))?;
    upload.commit(summary)
}

/// A result on its way to object storage: the local folder a run publishes it into, exactly as
/// into a local output directory (`local_options`), and the prefix `commit` then uploads it to.
/// The local engine and the Spark driver both publish through it.
pub struct Upload {
    uri: String,
    local: PathBuf,
    /// The work directory holding `local`; dropping it removes the local copy.
    _work: WorkDir,
}

impl Upload {
    /// Checks the prefix `uri` (marking a new one), creates the local folder and puts the
    /// current result's run log in it, so that the log goes on across runs.
    pub fn prepare(job: &Job, uri: &str) -> Result<Upload> {
        let uri = uri.trim_end_matches('/');
        if job.layout == Layout::Hive {
            return Err(CxError::Usage(format!(
                "{uri}: `layout: hive` is for local output directories; object storage output \
                 is flat (each run's files under its own prefix, the manifest as the commit)"
            )));
        }
        if check_prefix(uri)? {
            let marker = format!("{uri}/{}", crate::output::MARKER_FILE);
            storage::put(&marker, b"{\"cxmetrics_output\": true}\n".to_vec()).map_err(store_err)?;
        }
        let work = local_folder(job)?;
        // Canonical, so that the paths the local run's manifest gives start with it.
        let local = work.path().join("result");
        let local = std::fs::create_dir(&local)
            .and_then(|()| local.canonicalize())
            .map_err(|e| CxError::internal(format!("creating {}", local.display()), e))?;
        carry_run_log(uri, &local)?;
        Ok(Upload {
            uri: uri.to_string(),
            local,
            _work: work,
        })
    }

    /// `opts` with the local folder as the output directory.
    pub fn local_options(&self, opts: &RunOptions) -> RunOptions {
        let mut local = opts.clone();
        local.output_dir = Some(self.local.clone());
        local
    }

    /// Uploads the result published into the local folder and commits it (steps 1 to 4 of
    /// the module's protocol); `summary` is that publish's, returned with the store's paths.
    pub fn commit(self, summary: RunSummary) -> Result<RunSummary> {
        commit(&self.uri, &self.local, summary)
    }
}

/// Whether the output prefix `uri` may be written, as `output::check_target` decides for a
/// local directory (`run` and `validate` both ask): exit 3 when the bucket is missing or access
/// is denied, exit 2 when the prefix holds objects but is not a cxmetrics output. True when it
/// is empty (the first run marks it).
pub fn check_prefix(uri: &str) -> Result<bool> {
    let uri = uri.trim_end_matches('/');
    let existing = storage::list_all(&format!("{uri}/")).map_err(store_err)?;
    let marker = format!("{uri}/{}", crate::output::MARKER_FILE);
    let ours = |o: &String| o == &marker || o == &format!("{uri}/manifest.json");
    if !existing.is_empty() && !existing.iter().any(ours) {
        return Err(CxError::Target {
            dir: uri.to_string(),
            problems: vec![format!(
                "{uri} holds {} objects and is not a cxmetrics output (no {} and no \
                 manifest.json); use a new or empty prefix",
                existing.len(),
                crate::output::MARKER_FILE
            )],
        });
    }
    Ok(existing.is_empty())
}

/// The folder the result is published into before it is uploaded: a work directory
/// (`engine::work`) under the job's `work_dir`, or the system's temporary folder. As for every
/// work directory, one a killed run left there is removed by the next run; dropping it removes
/// it.
fn local_folder(job: &Job) -> Result<WorkDir> {
    let base = job
        .execution
        .work_dir_in(&job.base_dir)
        .unwrap_or_else(std::env::temp_dir);
    work::remove_stale(&base)?;
    let id = format!(
        "upload-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    );
    WorkDir::create(&base, &id)
}

/// Puts the run log of the current result at `uri` into the local folder, where the run
/// appends to it.
fn carry_run_log(uri: &str, local: &Path) -> Result<()> {
    let current = current_manifest(uri)?;
    if let Some(log_uri) = current
        .as_ref()
        .and_then(|m| m["run_log"]["path"].as_str())
        .filter(|p| storage::is_remote(p))
    {
        let bytes = storage::get(log_uri).map_err(store_err)?;
        // The folder is cxmetrics' own: marked, so that the run accepts it with the log in it.
        crate::output::OutputTarget {
            dir: local.to_path_buf(),
        }
        .mark("the-local-copy-of-an-object-storage-result")?;
        let path = local.join(run_log::path(Layout::Flat));
        std::fs::write(&path, &bytes)
            .map_err(|e| CxError::internal(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

fn commit(uri: &str, local: &Path, mut summary: RunSummary) -> Result<RunSummary> {
    let manifest_path = local.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| CxError::internal(format!("reading {}", manifest_path.display()), e))?;
    let mut manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| CxError::internal("the manifest", e))?;
    let run_id = manifest["run_id"]
        .as_str()
        .ok_or_else(|| CxError::internal("the manifest", "no run_id"))?
        .to_string();
    let run_prefix = format!("{uri}/{RUNS}/{run_id}");
    let local_text = format!("{}/", local.display());
    let remote_text = format!("{run_prefix}/");

    // 1. The run's `_RUN`, then its files, under its own prefix.
    storage::put(
        &format!("{remote_text}{RUN_FILE}"),
        run_id.clone().into_bytes(),
    )
    .map_err(store_err)?;
    let mut uploaded = 0usize;
    for rel in result_files(&manifest, &local_text)? {
        let bytes = std::fs::read(local.join(&rel))
            .map_err(|e| CxError::internal(format!("reading {rel}"), e))?;
        storage::put(&format!("{remote_text}{rel}"), bytes).map_err(store_err)?;
        uploaded += 1;
        #[cfg(debug_assertions)]
        crate::faults::abort_after_uploads(uploaded);
    }
    // 2. The manifest, naming them: the commit.
    rewrite_paths(&mut manifest, &local_text, &remote_text);
    manifest["commit"] = serde_json::json!({ "run_prefix": run_prefix, "files": uploaded });
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    storage::put(&format!("{uri}/manifest.json"), text.into_bytes()).map_err(store_err)?;
    // 3. _SUCCESS.
    storage::put(&format!("{uri}/_SUCCESS"), Vec::new()).map_err(store_err)?;
    // 4. Earlier runs' files, but the current manifest's (another writer may have committed).
    let keep =
        current_manifest(uri)?.and_then(|m| m["commit"]["run_prefix"].as_str().map(String::from));
    let runs_root = format!("{uri}/{RUNS}/");
    let listed = storage::list_all(&runs_root).map_err(store_err)?;
    let mut folders: Vec<&str> = listed
        .iter()
        .filter_map(|o| {
            o.strip_prefix(&runs_root)?
                .split_once('/')
                .map(|(id, _)| id)
        })
        .collect();
    folders.dedup();
    let mut stale = Vec::new();
    for id in folders {
        let prefix = format!("{runs_root}{id}/");
        if prefix == remote_text || keep.as_ref().is_some_and(|k| format!("{k}/") == prefix) {
            continue;
        }
        // Only a folder a cxmetrics run created: its `_RUN` names it.
        let run_file = format!("{prefix}{RUN_FILE}");
        let created = listed.contains(&run_file)
            && storage::get(&run_file).map_err(store_err)?.as_ref() == id.as_bytes();
        if created {
            stale.extend(listed.iter().filter(|o| o.starts_with(&prefix)).cloned());
        }
    }
    storage::delete(&stale).map_err(store_err)?;

    summary.output_dir = PathBuf::from(uri);
    for t in &mut summary.tables {
        let shown = t
            .path
            .display()
            .to_string()
            .replacen(&local_text, &remote_text, 1);
        t.path = PathBuf::from(shown);
    }
    Ok(summary)
}

/// The manifest of the current result at `uri`, if there is one.
fn current_manifest(uri: &str) -> Result<Option<serde_json::Value>> {
    let path = format!("{uri}/manifest.json");
    if !storage::exists(&path).map_err(store_err)? {
        return Ok(None);
    }
    crate::report::read_manifest(Path::new(&path), "move it away to start a new result").map(Some)
}

/// The files the local result's manifest names (tables, report, run log), relative to the
/// local folder, in name order.
fn result_files(manifest: &serde_json::Value, local: &str) -> Result<Vec<String>> {
    let tables = manifest["outputs"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.values().map(|t| &t["path"]));
    let mut out = Vec::new();
    for path in tables
        .chain([&manifest["report"], &manifest["run_log"]["path"]])
        .filter_map(|p| p.as_str())
    {
        let rel = path.strip_prefix(local).ok_or_else(|| {
            CxError::internal("the local result", format!("{path} is not under {local}"))
        })?;
        out.push(rel.to_string());
    }
    out.sort();
    Ok(out)
}

/// Replaces the local folder by the run's prefix in every path string of the manifest.
fn rewrite_paths(v: &mut serde_json::Value, local: &str, remote: &str) {
    match v {
        serde_json::Value::String(s) if s.starts_with(local) => {
            *s = s.replacen(local, remote, 1);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| rewrite_paths(x, local, remote)),
        serde_json::Value::Object(o) => {
            o.values_mut().for_each(|x| rewrite_paths(x, local, remote))
        }
        _ => {}
    }
}
