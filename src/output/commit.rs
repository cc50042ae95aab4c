//! Staging, the `_COMMIT` list, publishing by renames, and recovering interrupted runs.
//!
//! A run only ever touches what it created: its staging folder is `.staging-<run id>` and
//! holds a `_RUN` file with that run id; recovery acts on nothing else (an empty folder of
//! that exact name is a run killed before it wrote `_RUN`, and is removed). No symlink is
//! followed when removing, recovering or publishing: a symlink where a staging folder, a
//! staged file or a destination folder should be is an error or is left alone.
//!
//! `_COMMIT` is a text file:
//!
//! ```text
//! cxmetrics-commit 1 <run id>
//! <size> <xxh3-64 hex> <relative path>      (one line per staged file, `_SUCCESS` last)
//! end <number of files>
//! ```
//!
//! It is written under a temporary name, synced and renamed, and a list that does not parse
//! whole (truncated, empty, a count that does not match, a path leaving the directory) is not
//! a commit. Every file is checked against its size and checksum before the first rename.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use polars::prelude::*;

use super::{parquet_compression, plain_strings, warehouse_types, OutputPlan, WrittenTable};
use crate::error::{CxError, Result};

const STAGING_PREFIX: &str = ".staging-";
const RUN_FILE: &str = "_RUN";
const COMMIT: &str = "_COMMIT";
const COMMIT_TMP: &str = "_COMMIT.tmp";
const SUCCESS: &str = "_SUCCESS";
const HEADER: &str = "cxmetrics-commit 1";

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> CxError {
    CxError::internal(format!("{what} {}", path.display()), e)
}

/// One staged file as listed in `_COMMIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    rel: PathBuf,
    size: u64,
    hash: u64,
}

/// Whether `run_id` has the shape of a run id (`YYYYMMDD-YYYYMMDDTHHMMSS.ffffffZ-<pid>`), so
/// that only folders named exactly like a staging folder are ever considered.
fn is_run_id(run_id: &str) -> bool {
    let parts: Vec<&str> = run_id.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [day, stamp, pid] => {
            digits(day, 8)
                && stamp.len() == 23
                && digits(&stamp[..8], 8)
                && &stamp[8..9] == "T"
                && digits(&stamp[9..15], 6)
                && &stamp[15..16] == "."
                && digits(&stamp[16..22], 6)
                && &stamp[22..] == "Z"
                && !pid.is_empty()
                && pid.len() <= 10
                && pid.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// Size and xxh3-64 checksum of a file's bytes.
fn fingerprint(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.digest()))
}

/// A relative path that stays inside the directory: plain names only.
fn inside(rel: &Path) -> bool {
    rel.components().next().is_some() && rel.components().all(|c| matches!(c, Component::Normal(_)))
}

fn commit_text(run_id: &str, entries: &[Entry]) -> String {
    let mut text = format!("{HEADER} {run_id}\n");
    for e in entries {
        text.push_str(&format!("{} {:016x} {}\n", e.size, e.hash, e.rel.display()));
    }
    text.push_str(&format!("end {}\n", entries.len()));
    text
}

/// The entries of a `_COMMIT` text, or None when it is not a whole commit of `run_id`.
fn parse_commit(text: &str, run_id: &str) -> Option<Vec<Entry>> {
    let mut lines = text.split_terminator('\n');
    if lines.next()? != format!("{HEADER} {run_id}") {
        return None;
    }
    let mut entries = Vec::new();
    for line in lines.by_ref() {
        if let Some(n) = line.strip_prefix("end ") {
            if n.parse::<usize>().ok()? != entries.len() || entries.is_empty() {
                return None;
            }
            // Nothing may follow the end line, and the text must end with its newline.
            return (lines.next().is_none() && text.ends_with('\n')).then_some(entries);
        }
        let mut parts = line.splitn(3, ' ');
        let size = parts.next()?.parse().ok()?;
        let hash = u64::from_str_radix(parts.next()?, 16).ok()?;
        let rel = PathBuf::from(parts.next()?);
        if !inside(&rel) {
            return None;
        }
        entries.push(Entry { rel, size, hash });
    }
    None
}

/// Stages tables for one run; nothing is visible to readers until `commit`.
pub struct Staging {
    plan: OutputPlan,
    run_id: String,
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl Staging {
    /// Creates `.staging-<run id>` with its `_RUN` file in the (locked, owned) output dir.
    pub fn new(plan: &OutputPlan, run_id: &str) -> Result<Self> {
        let dir = plan.dir.join(format!("{STAGING_PREFIX}{run_id}"));
        fs::create_dir(&dir).map_err(|e| io_err("creating", &dir, e))?;
        write_synced(&dir.join(RUN_FILE), run_id.as_bytes())?;
        Ok(Staging {
            plan: plan.clone(),
            run_id: run_id.to_string(),
            dir,
            files: Vec::new(),
        })
    }

    /// Writes one table into the staging folder.
    pub fn write_table(&mut self, name: &str, df: DataFrame) -> Result<WrittenTable> {
        let (rel, path) = self.table_file(name)?;
        let mut df = warehouse_types(df, self.plan.money)
            .map_err(|e| CxError::internal(format!("table {name}"), e))?;
        let file = File::create(&path).map_err(|e| io_err("creating", &path, e))?;
        self.parquet_writer(file, df.schema())
            .finish(&mut df)
            .map_err(|e| io_err("writing", &path, e))?;
        self.written(name, rel, &path, df.height(), df.schema())
    }

    /// Writes one table given as batches of rows, one row group per batch: only one batch is
    /// in memory at a time.
    pub fn write_batches(
        &mut self,
        name: &str,
        batches: impl Iterator<Item = PolarsResult<DataFrame>>,
    ) -> Result<WrittenTable> {
        let (rel, path) = self.table_file(name)?;
        let table_err = |e| CxError::internal(format!("table {name}"), e);
        let mut writer = None;
        let mut rows = 0;
        let mut schema = None;
        for batch in batches {
            let batch =
                warehouse_types(batch.map_err(table_err)?, self.plan.money).map_err(table_err)?;
            if writer.is_none() {
                let file = File::create(&path).map_err(|e| io_err("creating", &path, e))?;
                writer = Some(
                    self.parquet_writer(file, batch.schema())
                        .batched(batch.schema())
                        .map_err(|e| io_err("writing", &path, e))?,
                );
                schema = Some(batch.schema().clone());
            }
            let w = writer.as_mut().expect("created");
            w.write_batch(&batch)
                .map_err(|e| io_err("writing", &path, e))?;
            rows += batch.height();
        }
        let (Some(w), Some(schema)) = (writer, schema) else {
            return Err(CxError::internal(
                format!("table {name}"),
                "no batch of rows, not even an empty one",
            ));
        };
        w.finish().map_err(|e| io_err("writing", &path, e))?;
        self.written(name, rel, &path, rows, &schema)
    }

    /// A Parquet writer of the run's compression, with statistics, for a table of `schema`
    /// (its strings as plain UTF-8).
    fn parquet_writer(&self, file: File, schema: &Schema) -> ParquetWriter<File> {
        ParquetWriter::new(file)
            .with_compression(parquet_compression(self.plan.compression))
            .with_statistics(StatisticsOptions::default())
            .with_key_value_metadata(Some(plain_strings(schema)))
    }

    /// Where table `name` is staged (to read it back before the commit).
    pub fn staged_table(&self, name: &str) -> PathBuf {
        self.dir.join(self.plan.table_path(name))
    }

    /// Writes a file of the run beside the manifest (the report), published with the tables.
    pub fn write_beside_manifest(&mut self, file: &str, bytes: &[u8]) -> Result<PathBuf> {
        let rel = self.plan.marker_dir().join(file);
        let path = self.dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        write_synced(&path, bytes)?;
        self.files.push(rel.clone());
        Ok(self.plan.dir.join(rel))
    }

    /// The relative and staged paths of table `name`, its folder created.
    fn table_file(&self, name: &str) -> Result<(PathBuf, PathBuf)> {
        let rel = self.plan.table_path(name);
        let path = self.dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        Ok((rel, path))
    }

    /// Syncs a table just written and records it.
    fn written(
        &mut self,
        name: &str,
        rel: PathBuf,
        path: &Path,
        rows: usize,
        schema: &Schema,
    ) -> Result<WrittenTable> {
        sync(path)?;
        self.files.push(rel.clone());
        Ok(WrittenTable {
            name: name.to_string(),
            path: self.plan.dir.join(rel),
            rows,
            columns: schema
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        })
    }

    /// Writes the manifest and `_SUCCESS`, seals the staging folder with `_COMMIT` and
    /// publishes it.
    pub fn commit(mut self, manifest: &serde_json::Value) -> Result<()> {
        let rel = self.plan.marker_dir().join("manifest.json");
        let path = self.dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        let text = serde_json::to_string_pretty(manifest).expect("manifest serialises");
        write_synced(&path, text.as_bytes())?;
        self.files.push(rel);
        let success = self.plan.marker_dir().join(SUCCESS);
        write_synced(&self.dir.join(&success), b"")?;
        self.files.push(success);
        let mut entries = Vec::with_capacity(self.files.len());
        for rel in &self.files {
            let path = self.dir.join(rel);
            let (size, hash) = fingerprint(&path).map_err(|e| io_err("reading", &path, e))?;
            entries.push(Entry {
                rel: rel.clone(),
                size,
                hash,
            });
        }
        let tmp = self.dir.join(COMMIT_TMP);
        write_synced(&tmp, commit_text(&self.run_id, &entries).as_bytes())?;
        let commit = self.dir.join(COMMIT);
        fs::rename(&tmp, &commit).map_err(|e| io_err("writing", &commit, e))?;
        sync_dir(&self.dir);
        #[cfg(debug_assertions)]
        crate::faults::abort_if(crate::faults::ABORT_AFTER_COMMIT_ENV);
        publish(&self.plan.dir, &self.dir, &entries)
    }
}

/// Checks that every listed file is either still staged or already published, intact, and
/// that no destination folder is a symlink; then moves the staged ones into `dir`, `_SUCCESS`
/// last. Idempotent, so that an interrupted publish can be finished later.
fn publish(dir: &Path, staging: &Path, entries: &[Entry]) -> Result<()> {
    let mut pending = Vec::new();
    for e in entries {
        let from = staging.join(&e.rel);
        let to = dir.join(&e.rel);
        let staged = fs::symlink_metadata(&from).ok();
        let matches = |p: &Path| fingerprint(p).is_ok_and(|f| f == (e.size, e.hash));
        match staged {
            Some(m) if m.is_file() && matches(&from) => pending.push(e),
            Some(_) => {
                return Err(CxError::internal(
                    format!("publishing {}", staging.display()),
                    format!(
                        "{} does not match the size and checksum in {COMMIT}",
                        from.display()
                    ),
                ))
            }
            None if fs::symlink_metadata(&to).is_ok_and(|m| m.is_file()) && matches(&to) => {}
            None => {
                return Err(CxError::internal(
                    format!("publishing {}", staging.display()),
                    format!(
                        "{} is neither staged nor published as {COMMIT} lists it",
                        e.rel.display()
                    ),
                ))
            }
        }
        check_parents(dir, &e.rel)?;
    }
    if let Some(last) = pending.last() {
        let success = dir.join(&last.rel);
        if last.rel.file_name().is_some_and(|n| n == SUCCESS)
            && fs::symlink_metadata(&success).is_ok()
        {
            fs::remove_file(&success).map_err(|e| io_err("removing", &success, e))?;
        }
    }
    for e in pending {
        let from = staging.join(&e.rel);
        let to = dir.join(&e.rel);
        make_parents(dir, &e.rel)?;
        fs::rename(&from, &to).map_err(|err| io_err("publishing", &to, err))?;
        #[cfg(debug_assertions)]
        {
            crate::faults::abort_if(crate::faults::ABORT_DURING_PUBLISH_ENV);
            crate::faults::pause_at("publish");
        }
    }
    sync_dir(dir);
    fs::remove_dir_all(staging).map_err(|e| io_err("removing", staging, e))
}

/// Every existing folder between `dir` and `rel`'s file must be a real folder.
fn check_parents(dir: &Path, rel: &Path) -> Result<()> {
    let mut at = dir.to_path_buf();
    let parents: Vec<Component> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for c in parents {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(CxError::internal(
                    format!("publishing into {}", dir.display()),
                    format!(
                        "{} is not a folder of this output directory (a symlink or a file); \
                         a run writes only into folders it created",
                        at.display()
                    ),
                ))
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Creates the missing folders between `dir` and `rel`'s file, one at a time.
fn make_parents(dir: &Path, rel: &Path) -> Result<()> {
    check_parents(dir, rel)?;
    let mut at = dir.to_path_buf();
    for c in rel
        .parent()
        .map(|p| p.components().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        at.push(c);
        if fs::symlink_metadata(&at).is_err() {
            match fs::create_dir(&at) {
                Ok(()) => sync_dir(at.parent().unwrap_or(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("creating", &at, e)),
            }
        }
    }
    check_parents(dir, rel)
}

/// Finishes or discards the runs that were interrupted in `dir` (called under its lock): a
/// staging folder of ours with a whole `_COMMIT` is rolled forward, one without is removed.
/// Anything else is left alone.
pub fn recover(dir: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(notes);
    };
    let mut stagings: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let run_id = name.strip_prefix(STAGING_PREFIX)?.to_string();
            is_run_id(&run_id).then(|| (run_id, e.path()))
        })
        .collect();
    stagings.sort();
    for (run_id, staging) in stagings {
        let meta = fs::symlink_metadata(&staging).map_err(|e| io_err("reading", &staging, e))?;
        if !meta.is_dir() {
            notes.push(format!(
                "left alone {}: not a folder this program created",
                staging.display()
            ));
            continue;
        }
        let run_file = staging.join(RUN_FILE);
        let ours = fs::symlink_metadata(&run_file).is_ok_and(|m| m.is_file())
            && fs::read_to_string(&run_file).is_ok_and(|t| t == run_id);
        if !ours {
            let empty = fs::read_dir(&staging).is_ok_and(|mut d| d.next().is_none());
            if empty {
                fs::remove_dir(&staging).map_err(|e| io_err("removing", &staging, e))?;
                notes.push(format!("removed empty staging {}", staging.display()));
            } else {
                notes.push(format!(
                    "left alone {}: it has no {RUN_FILE} file naming its run",
                    staging.display()
                ));
            }
            continue;
        }
        let commit = staging.join(COMMIT);
        let listed = match fs::symlink_metadata(&commit) {
            Ok(m) if m.is_file() => {
                let text = fs::read_to_string(&commit).unwrap_or_default();
                parse_commit(&text, &run_id)
            }
            _ => None,
        };
        match listed {
            Some(entries) => {
                publish(dir, &staging, &entries)?;
                notes.push(format!(
                    "rolled forward interrupted publish {}",
                    staging.display()
                ));
            }
            None => {
                fs::remove_dir_all(&staging).map_err(|e| io_err("removing", &staging, e))?;
                notes.push(format!("removed incomplete staging {}", staging.display()));
            }
        }
    }
    Ok(notes)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| io_err("creating", path, e))?;
    f.write_all(bytes).map_err(|e| io_err("writing", path, e))?;
    f.sync_all().map_err(|e| io_err("syncing", path, e))
}

fn sync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("syncing", path, e))
}

/// Makes a folder's entries (renames, new files) durable; best effort, as some file systems
/// do not sync folders.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "20260630-20260701T020304.000001Z-42";

    #[test]
    fn run_ids_have_an_exact_shape() {
        assert!(is_run_id(RUN));
        for bad in [
            "x",
            "20260630-20260701T020304.000001Z",
            "20260630-20260701T020304.000001Z-",
            "20260630-20260701T020304.000001Z-4a",
            "20260630-20260701X020304.000001Z-42",
            "../20260630-20260701T020304.000001Z-42",
        ] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }

    #[test]
    fn only_a_whole_commit_list_is_a_commit() {
        let entries = vec![
            Entry {
                rel: PathBuf::from("churn/as_of=2026-06-30/part-0.parquet"),
                size: 10,
                hash: 0xabc,
            },
            Entry {
                rel: PathBuf::from("_SUCCESS"),
                size: 0,
                hash: 1,
            },
        ];
        let text = commit_text(RUN, &entries);
        assert_eq!(parse_commit(&text, RUN), Some(entries));
        // Every truncation is not a commit, nor is another run's list, an empty one, or a
        // path that leaves the directory.
        for cut in 0..text.len() {
            assert_eq!(parse_commit(&text[..cut], RUN), None, "{}", &text[..cut]);
        }
        assert_eq!(
            parse_commit(&text, "20260630-20260701T020304.000001Z-43"),
            None
        );
        assert_eq!(parse_commit(&format!("{HEADER} {RUN}\nend 0\n"), RUN), None);
        let escape = format!("{HEADER} {RUN}\n1 00 ../../etc/passwd\nend 1\n");
        assert_eq!(parse_commit(&escape, RUN), None);
        let absolute = format!("{HEADER} {RUN}\n1 00 /etc/passwd\nend 1\n");
        assert_eq!(parse_commit(&absolute, RUN), None);
        assert_eq!(parse_commit(&format!("{text}extra\n"), RUN), None);
    }

    /// A staging folder of RUN in `dir` with `files` (relative path, bytes) and a `_COMMIT`
    /// listing them.
    fn staged(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let staging = dir.join(format!("{STAGING_PREFIX}{RUN}"));
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join(RUN_FILE), RUN).unwrap();
        let mut entries = Vec::new();
        for (rel, bytes) in files {
            let p = staging.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, bytes).unwrap();
            let (size, hash) = fingerprint(&p).unwrap();
            entries.push(Entry {
                rel: PathBuf::from(rel),
                size,
                hash,
            });
        }
        fs::write(staging.join(COMMIT), commit_text(RUN, &entries)).unwrap();
        staging
    }

    #[test]
    fn recovery_rolls_forward_verified_files_and_leaves_foreign_folders_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("a.parquet"), "old").unwrap();
        fs::write(d.join(SUCCESS), "").unwrap();
        staged(d, &[("a.parquet", b"new"), (SUCCESS, b"")]);
        // Someone else's folders, one with our prefix, one a symlink to elsewhere.
        fs::create_dir(d.join(".staging-mine")).unwrap();
        fs::write(d.join(".staging-mine/keep"), "x").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        fs::write(elsewhere.path().join("_COMMIT"), "x").unwrap();
        std::os::unix::fs::symlink(
            elsewhere.path(),
            d.join(".staging-20260630-20260701T020304.000001Z-7"),
        )
        .unwrap();
        let notes = recover(d).unwrap();
        assert_eq!(fs::read_to_string(d.join("a.parquet")).unwrap(), "new");
        assert!(d.join(SUCCESS).is_file());
        assert!(!d.join(format!("{STAGING_PREFIX}{RUN}")).exists());
        assert!(d.join(".staging-mine/keep").is_file());
        assert!(elsewhere.path().join("_COMMIT").is_file());
        assert!(
            notes.iter().any(|n| n.contains("rolled forward")),
            "{notes:?}"
        );
        assert!(notes.iter().any(|n| n.contains("left alone")), "{notes:?}");
    }

    #[test]
    fn a_truncated_commit_is_discarded_and_a_corrupt_file_is_never_published() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("a.parquet"), "old").unwrap();
        let staging = staged(d, &[("a.parquet", b"new"), (SUCCESS, b"")]);
        let text = fs::read_to_string(staging.join(COMMIT)).unwrap();
        fs::write(staging.join(COMMIT), &text[..text.len() - 3]).unwrap();
        recover(d).unwrap();
        assert_eq!(fs::read_to_string(d.join("a.parquet")).unwrap(), "old");
        assert!(!staging.exists());

        let staging = staged(d, &[("a.parquet", b"new"), (SUCCESS, b"")]);
        fs::write(staging.join("a.parquet"), "neW").unwrap();
        let e = recover(d).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        assert_eq!(fs::read_to_string(d.join("a.parquet")).unwrap(), "old");
    }

    #[test]
    fn publishing_refuses_a_symlinked_destination_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), d.join("churn")).unwrap();
        staged(
            d,
            &[
                ("churn/as_of=2026-06-30/part-0.parquet", b"x"),
                (SUCCESS, b""),
            ],
        );
        let e = recover(d).unwrap_err().to_string();
        assert!(e.contains("not a folder of this output directory"), "{e}");
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }
}
