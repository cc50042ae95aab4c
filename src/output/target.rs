//! Which directories a run may write into, and the marker that makes a directory a cxmetrics
//! output.
//!
//! A run publishes by renaming files into its output directory and removes what it staged
//! there, so it must never be pointed at a directory that is not its own. Refused (exit 2,
//! before anything is created):
//! - the empty path and the root directory;
//! - a path that exists and is not a directory;
//! - a directory that is or contains an input (a file of an input, a directory input, or a
//!   glob input that would match a table this run writes): later runs would read their own
//!   tables as input;
//! - a non-empty directory that was never a cxmetrics output: it has no `.cxmetrics-output`
//!   marker file and holds no manifest written by an earlier version of cxmetrics.
//!
//! The marker is written by the first run into a new or empty directory (under the writer
//! lock, see `lock`), and records that run's id.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::error::{CxError, Result};
use crate::inputs::Location;

/// The file that marks a directory as a cxmetrics output directory.
pub const MARKER_FILE: &str = ".cxmetrics-output";

/// An output directory that passed `check_target`.
#[derive(Debug, Clone)]
pub struct OutputTarget {
    /// The directory, with the symlinks of its existing part resolved.
    pub dir: PathBuf,
}

/// Checks that `dir` may be the output directory of a run that reads `inputs` and publishes
/// `would_write` (paths relative to the directory). Every problem is listed.
pub fn check_target(
    dir: &Path,
    inputs: &[(String, Location)],
    would_write: &[PathBuf],
) -> std::result::Result<OutputTarget, Vec<String>> {
    if dir.as_os_str().is_empty() {
        return Err(vec!["the output directory is the empty path".into()]);
    }
    let resolved = resolve(dir).map_err(|e| vec![e])?;
    let shown = resolved.display();
    if resolved.parent().is_none() {
        return Err(vec![format!(
            "the output directory {shown} is the root directory"
        )]);
    }
    let mut problems = Vec::new();
    match fs::symlink_metadata(&resolved) {
        Ok(m) if !m.is_dir() => problems.push(format!(
            "the output directory {shown} exists and is not a directory"
        )),
        _ => {}
    }
    for (input, location) in inputs {
        if let Some(why) = overlap(&resolved, location, would_write) {
            problems.push(format!(
                "the output directory {shown} {why} of input `{input}`: later runs would read \
                 their own tables as input; write somewhere else"
            ));
        }
    }
    if problems.is_empty() && resolved.is_dir() && !is_cxmetrics_output(&resolved)? {
        problems.push(format!(
            "the output directory {shown} is not empty and was not written by cxmetrics (it has \
             no {MARKER_FILE} file); use a new or empty directory"
        ));
    }
    if problems.is_empty() {
        Ok(OutputTarget { dir: resolved })
    } else {
        Err(problems)
    }
}

impl OutputTarget {
    /// Creates the directory if needed and marks it as a cxmetrics output (once). Called under
    /// the writer lock.
    pub fn mark(&self, run_id: &str) -> Result<()> {
        let marker = self.dir.join(MARKER_FILE);
        match fs::symlink_metadata(&marker) {
            Ok(m) if m.is_file() => return Ok(()),
            Ok(_) => {
                return Err(CxError::internal(
                    format!("output directory {}", self.dir.display()),
                    format!("{MARKER_FILE} exists and is not a regular file"),
                ))
            }
            Err(_) => {}
        }
        let text = serde_json::json!({
            "cxmetrics_output": true,
            "created_by_run": run_id,
            "cxmetrics_version": env!("CARGO_PKG_VERSION"),
        })
        .to_string();
        let tmp = self.dir.join(format!("{MARKER_FILE}.tmp-{run_id}"));
        let io = |what: &str, e: std::io::Error| {
            CxError::internal(format!("{what} {}", marker.display()), e)
        };
        let mut f = fs::File::create(&tmp).map_err(|e| io("creating", e))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| io("writing", e))?;
        fs::rename(&tmp, &marker).map_err(|e| io("creating", e))
    }
}

/// The existing part of `path` with its symlinks resolved, and the rest appended. `..` after
/// the existing part is resolved textually (those directories do not exist yet).
pub fn resolve(path: &Path) -> std::result::Result<PathBuf, String> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?
            .join(path)
    };
    let mut existing = absolute.clone();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                if part == ".." {
                    out.pop();
                } else if part != "." {
                    out.push(part);
                }
            }
            return Ok(out);
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => {
                // A trailing `..` or `.` has no file name: resolve the parent textually.
                match existing.components().next_back() {
                    Some(Component::ParentDir) => rest.push("..".into()),
                    Some(Component::CurDir) => rest.push(".".into()),
                    _ => return Err(format!("cannot resolve {}", path.display())),
                }
                existing = existing
                    .parent()
                    .ok_or_else(|| format!("cannot resolve {}", path.display()))?
                    .to_path_buf();
            }
        }
    }
}

/// How the output directory `dir` overlaps one input, if it does.
fn overlap(dir: &Path, location: &Location, would_write: &[PathBuf]) -> Option<String> {
    match location {
        Location::Files(files) | Location::Dir(_, files) | Location::Glob(_, files) => {
            if let Location::Dir(d, _) = location {
                if d == dir {
                    return Some("is the directory".into());
                }
            }
            if let Some(f) = files.iter().find(|f| f.starts_with(dir)) {
                return Some(format!("contains the file {}", f.display()));
            }
            if let Location::Glob(pattern, _) = location {
                let pattern = glob::Pattern::new(pattern).ok()?;
                if let Some(p) = would_write
                    .iter()
                    .map(|p| dir.join(p))
                    .find(|p| pattern.matches_path(p))
                {
                    return Some(format!(
                        "would hold {}, which matches the glob",
                        p.display()
                    ));
                }
            }
            None
        }
    }
}

/// Whether a directory may be written by a run: it is empty (but for the lock and marker
/// files of a run starting at the same time), holds the marker, or holds a manifest written by
/// a cxmetrics version from before the marker.
fn is_cxmetrics_output(dir: &Path) -> std::result::Result<bool, Vec<String>> {
    let entries = fs::read_dir(dir).map_err(|e| {
        vec![format!(
            "cannot list the output directory {}: {e}",
            dir.display()
        )]
    })?;
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    if fs::symlink_metadata(dir.join(MARKER_FILE)).is_ok_and(|m| m.is_file()) {
        return Ok(true);
    }
    let ours = [MARKER_FILE, super::LOCK_FILE];
    if names.iter().all(|n| ours.contains(&n.as_str())) {
        return Ok(true);
    }
    Ok(legacy_manifest(&dir.join("manifest.json")) || legacy_hive(&dir.join("_manifest")))
}

/// A manifest written by cxmetrics before output directories had a marker.
fn legacy_manifest(path: &Path) -> bool {
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .is_ok_and(|v| v.get("cxmetrics_version").is_some() && v.get("run_id").is_some())
}

fn legacy_hive(manifests: &Path) -> bool {
    if !fs::symlink_metadata(manifests).is_ok_and(|m| m.is_dir()) {
        return false;
    }
    let Ok(entries) = fs::read_dir(manifests) else {
        return false;
    };
    entries
        .filter_map(|e| e.ok())
        .any(|e| legacy_manifest(&e.path().join("manifest.json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(paths: &[&Path]) -> Location {
        Location::Files(paths.iter().map(|p| p.to_path_buf()).collect())
    }

    #[test]
    fn refuses_root_empty_inputs_and_foreign_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().canonicalize().unwrap();
        let none: Vec<(String, Location)> = Vec::new();
        assert!(check_target(Path::new(""), &none, &[]).is_err());
        assert!(check_target(Path::new("/"), &none, &[])
            .unwrap_err()
            .join("")
            .contains("root"));
        assert!(check_target(Path::new("/tmp/.."), &none, &[]).is_err());
        // New and empty directories are fine.
        assert!(check_target(&d.join("new/out"), &none, &[]).is_ok());
        assert!(check_target(&d, &none, &[]).is_ok());
        // A directory with someone else's file is not.
        fs::write(d.join("notes.txt"), "x").unwrap();
        let e = check_target(&d, &none, &[]).unwrap_err().join("");
        assert!(e.contains("not written by cxmetrics"), "{e}");
        // The marker makes it ours.
        fs::write(d.join(MARKER_FILE), "{}").unwrap();
        assert!(check_target(&d, &none, &[]).is_ok());
        // A file is not a directory.
        let e = check_target(&d.join("notes.txt"), &none, &[])
            .unwrap_err()
            .join("");
        assert!(e.contains("not a directory"), "{e}");
        // Inputs inside, a directory input, and a glob that would match a table.
        let input = d.join("data/orders.parquet");
        let i = vec![("orders".to_string(), files(&[&input]))];
        assert!(check_target(&d.join("data"), &i, &[]).is_err());
        assert!(check_target(&d, &i, &[]).is_err());
        assert!(check_target(&d.join("out"), &i, &[]).is_ok());
        let dir_input = vec![(
            "events".to_string(),
            Location::Dir(d.join("ev"), Vec::new()),
        )];
        assert!(check_target(&d.join("ev"), &dir_input, &[]).is_err());
        let glob = vec![(
            "orders".to_string(),
            Location::Glob(format!("{}/*/*.parquet", d.display()), Vec::new()),
        )];
        let e = check_target(&d.join("out"), &glob, &[PathBuf::from("churn.parquet")])
            .unwrap_err()
            .join("");
        assert!(e.contains("matches the glob"), "{e}");
    }

    #[test]
    fn a_manifest_of_an_earlier_version_counts_as_ours() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("churn.parquet"), "x").unwrap();
        fs::write(d.join("manifest.json"), r#"{"name": "someone else's"}"#).unwrap();
        assert!(!is_cxmetrics_output(d).unwrap());
        fs::write(
            d.join("manifest.json"),
            r#"{"cxmetrics_version": "0.1.0", "run_id": "x"}"#,
        )
        .unwrap();
        assert!(is_cxmetrics_output(d).unwrap());
    }

    #[test]
    fn resolve_follows_existing_symlinks_and_then_dot_dot() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().canonicalize().unwrap();
        fs::create_dir_all(d.join("real/deep")).unwrap();
        std::os::unix::fs::symlink(d.join("real/deep"), d.join("link")).unwrap();
        // link/.. is `real`, not `d`, as the OS resolves it.
        assert_eq!(resolve(&d.join("link/../x")).unwrap(), d.join("real/x"));
        assert_eq!(resolve(&d.join("new/../y")).unwrap(), d.join("y"));
    }
}
